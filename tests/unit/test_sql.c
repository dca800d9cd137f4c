// SPDX-License-Identifier: GPL-2.0
/* The bounded SQL tokenizer (agent/sql.c): sql__parse(text, n, truncated,
 * op, table) names the operation (the first keyword, "_OTHER" for a word
 * that is not a statement keyword, "" for none) and the first table of a
 * SELECT/INSERT/REPLACE/UPDATE/DELETE/TRUNCATE ("" when unsure).
 *
 * Cases are exact. A few are marked with a bug these tests found (see kb
 * below, all fixed): a regression fails naming it (AION_DB_LENIENT=1 only
 * counts them, AION_DB_VERBOSE=1 prints them). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sql.h"

#define UNUSED __attribute__((unused))
#define N(a) (sizeof(a) / sizeof((a)[0]))

static const char *const kb[] = {
	NULL,
	"S1 PostgreSQL's ONLY and LATERAL are taken for the table: TRUNCATE [TABLE] ONLY t, "
	"SELECT ... FROM ONLY t, FROM LATERAL f() (sql__parse: TRUNCATE and SELECT branches)",
	"S2 a dollar-quoted string ($$ ... $$, $tag$ ... $tag$) is read as words: a FROM inside it "
	"names a wrong table (seek_keyword)",
	"S3 a doubled quote inside a quoted identifier (\"a\"\"b\", `a``b`) ends the name there "
	"(table_name)",
};

struct sqlcase {
	const char *text;
	size_t n;      /* 0: strlen(text) */
	int truncated;
	const char *op, *table;
	int bug;       /* index in kb, 0: none */
};

#define C(t, tr, o, tb) { t, 0, tr, o, tb, 0 }
#define CB(t, tr, o, tb, b) { t, 0, tr, o, tb, b }

static const struct sqlcase cases[] = {
	/* empty, blank, comments only */
	C("", 0, "", ""),
	C("   \t\r\n ", 0, "", ""),
	C("-- nothing here", 0, "", ""),
	C("# nothing here", 0, "", ""),
	C("/* nothing */", 0, "", ""),
	C("/* not closed", 0, "", ""),
	C("1 + 1", 0, "", ""),
	C("(", 0, "", ""),
	/* the first word: a statement keyword, or _OTHER */
	C("select 1", 0, "SELECT", ""),
	C("SELEC 1", 0, "_OTHER", ""),
	C("frobnicate the database", 0, "_OTHER", ""),
	C("BEGIN", 0, "BEGIN", ""),
	C("commit", 0, "COMMIT", ""),
	C("SET NAMES 'utf8mb4'", 0, "SET", ""),
	C("EXPLAIN SELECT * FROM t", 0, "EXPLAIN", ""),
	C("WITH x AS (SELECT 1 FROM a) SELECT * FROM x", 0, "WITH", ""),
	C("CALL p()", 0, "CALL", ""),
	C("a_very_long_word_that_is_no_keyword_at_all_and_goes_on_for_a_long_while_yes", 0, "_OTHER", ""),
	/* comments, whitespace and parentheses before and inside */
	C("-- a comment\nSELECT a FROM t", 0, "SELECT", "t"),
	C("# a MySQL comment\nSELECT a FROM t", 0, "SELECT", "t"),
	C("/* hint */ SELECT /* x FROM y */ a FROM t", 0, "SELECT", "t"),
	C("\n\t  select a\n  from t\n", 0, "SELECT", "t"),
	C("((SELECT a FROM t))", 0, "SELECT", "t"),
	C("( /* c */ ( select 1 from t ) )", 0, "SELECT", "t"),
	C("SELECT a -- FROM x\nFROM t", 0, "SELECT", "t"),
	C("INSERT /* x */ INTO /* y */ t VALUES (1)", 0, "INSERT", "t"),
	/* SELECT: FROM at parenthesis depth 0, outside quotes */
	C("SELECT (SELECT max(x) FROM a) AS m, b FROM t", 0, "SELECT", "t"),
	C("SELECT EXTRACT(YEAR FROM d), SUBSTRING(s FROM 2) FROM t", 0, "SELECT", "t"),
	C("SELECT 'FROM x' AS s, \"from\" FROM t", 0, "SELECT", "t"),
	C("SELECT `from` FROM t", 0, "SELECT", "t"),
	C("SELECT * FROM t1, t2", 0, "SELECT", "t1"),
	C("SELECT * FROM t AS x JOIN u ON 1", 0, "SELECT", "t"),
	C("SELECT * FROM (SELECT 1) AS sub", 0, "SELECT", ""),
	C("SELECT 1", 0, "SELECT", ""),
	C("SELECT * FROM", 0, "SELECT", ""),
	C("SELECT x FROM t;DROP TABLE u", 0, "SELECT", "t"),
	C("select\tfrom_x FROM t", 0, "SELECT", "t"),
	C("SELECT * FROMAGE", 0, "SELECT", ""),
	/* quoted identifiers, schema.table */
	C("SELECT * FROM \"Orders\"", 0, "SELECT", "Orders"),
	C("SELECT * FROM `order items`", 0, "SELECT", "order items"),
	C("SELECT * FROM [dbo].[t x]", 0, "SELECT", "dbo.t x"),
	C("SELECT * FROM public.orders WHERE id = 1", 0, "SELECT", "public.orders"),
	C("SELECT * FROM \"public\".\"Orders\"", 0, "SELECT", "public.Orders"),
	C("SELECT * FROM db.`t`", 0, "SELECT", "db.t"),
	C("SELECT * FROM s.", 0, "SELECT", ""),
	C("SELECT * FROM \"not closed", 0, "SELECT", ""),
	/* INSERT / REPLACE */
	C("INSERT INTO t VALUES (1)", 0, "INSERT", "t"),
	C("insert into t(a, b) values (1, 2)", 0, "INSERT", "t"),
	C("INSERT IGNORE INTO t VALUES (1)", 0, "INSERT", "t"),
	C("INSERT LOW_PRIORITY IGNORE INTO s.t VALUES (1)", 0, "INSERT", "s.t"),
	C("INSERT HIGH_PRIORITY INTO t VALUES (1)", 0, "INSERT", "t"),
	C("INSERT DELAYED INTO t VALUES (1)", 0, "INSERT", "t"),
	C("INSERT INTO t SELECT * FROM u", 0, "INSERT", "t"),
	C("INSERT t VALUES (1)", 0, "INSERT", ""), /* MySQL's INTO-less form: unsure */
	C("REPLACE INTO t VALUES (1)", 0, "REPLACE", "t"),
	C("REPLACE LOW_PRIORITY INTO `t` VALUES (1)", 0, "REPLACE", "t"),
	/* UPDATE */
	C("UPDATE t SET a = 1", 0, "UPDATE", "t"),
	C("UPDATE ONLY t SET a = 1", 0, "UPDATE", "t"),
	C("UPDATE LOW_PRIORITY IGNORE s.t SET a = 1", 0, "UPDATE", "s.t"),
	C("UPDATE t1 JOIN t2 ON 1 SET a = 1", 0, "UPDATE", "t1"),
	/* DELETE */
	C("DELETE FROM t WHERE id = 3", 0, "DELETE", "t"),
	C("DELETE FROM ONLY t", 0, "DELETE", "t"),
	C("delete from public.t", 0, "DELETE", "public.t"),
	C("DELETE t FROM t JOIN u ON 1", 0, "DELETE", "t"),
	C("DELETE", 0, "DELETE", ""),
	/* TRUNCATE */
	C("TRUNCATE TABLE t", 0, "TRUNCATE", "t"),
	C("TRUNCATE t", 0, "TRUNCATE", "t"),
	C("truncate table s.t", 0, "TRUNCATE", "s.t"),
	/* names up to SQL_NAME - 1 bytes; longer: unsure */
	C("SELECT * FROM t23456789012345678901234567890123456789012345678901234567890123", 0, "SELECT",
	  "t23456789012345678901234567890123456789012345678901234567890123"),
	C("SELECT * FROM t234567890123456789012345678901234567890123456789012345678901234", 0, "SELECT", ""),
	C("SELECT * FROM \"a\x01b\"", 0, "SELECT", ""),
	/* truncated text: a name that runs to the end may go on */
	C("SELECT * FROM orders_arch", 1, "SELECT", ""),
	C("SELECT * FROM orders_arch", 0, "SELECT", "orders_arch"),
	C("SELECT * FROM orders WHERE", 1, "SELECT", "orders"),
	C("SELECT * FROM public.", 1, "SELECT", ""),
	C("SELECT * FROM public", 1, "SELECT", ""),
	C("SELECT * FROM \"Ord", 1, "SELECT", ""),
	C("INSERT INTO t", 1, "INSERT", ""),
	C("INSERT INTO t ", 1, "INSERT", "t"),
	C("UPDATE LOW_PRI", 1, "UPDATE", ""),
	C("TRUNCATE TAB", 1, "TRUNCATE", ""),
	C("DELETE FROM t", 1, "DELETE", ""),
	C("SELECT a FROM t /* a comment that is cut", 1, "SELECT", "t"),
	/* texts as the kernel sends them: a PG Parse text with its NUL and
	 * parameter count (bug B6 of test_db.c), a text of 56 bytes */
	{ "SELECT abalance FROM pgbench_accounts WHERE aid = $1;\0\0", 55, 0, "SELECT", "pgbench_accounts", 0 },
	{ "INSERT INTO t VALUES ($1)\0\0\x01\0\0\0\x17", 32, 0, "INSERT", "t", 0 },
	C("SELECT aid, abalance FROM pgbench_accounts WHERE aid <= ", 1, "SELECT", "pgbench_accounts"),
	/* PostgreSQL syntax the tokenizer does not know (known bugs) */
	CB("TRUNCATE TABLE ONLY t", 0, "TRUNCATE", "t", 1),
	CB("TRUNCATE ONLY t", 0, "TRUNCATE", "t", 1),
	CB("SELECT * FROM ONLY t", 0, "SELECT", "t", 1),
	CB("SELECT * FROM LATERAL f()", 0, "SELECT", "", 1),
	CB("SELECT $$ FROM x $$ FROM t", 0, "SELECT", "t", 2),
	CB("SELECT $q$ it's FROM x $q$ AS s FROM t", 0, "SELECT", "t", 2),
	CB("SELECT * FROM \"a\"\"b\"", 0, "SELECT", "a\"b", 3),
};

static int env_on(const char *name)
{
	const char *e = getenv(name);

	return e && *e && strcmp(e, "0");
}

static void test_cases(void **state UNUSED)
{
	int bad = 0, known[N(kb)] = { 0 };
	size_t i;

	for (i = 0; i < N(cases); i++) {
		const struct sqlcase *c = &cases[i];
		size_t n = c->n ? c->n : strlen(c->text);
		char op[SQL_NAME], table[SQL_NAME], *copy = malloc(n ? n : 1);
		int ok;

		assert_non_null(copy);
		memcpy(copy, c->text, n); /* exactly n bytes: ASan sees a read past them */
		memset(op, 'x', sizeof(op));
		memset(table, 'x', sizeof(table));
		sql__parse(copy, n, c->truncated, op, table);
		free(copy);
		ok = !strcmp(op, c->op) && !strcmp(table, c->table);
		if (ok && c->bug) {
			print_message("  case %zu passes though marked %.2s: remove the mark ('%s')\n", i, kb[c->bug],
				      c->text);
		} else if (!ok && c->bug) {
			known[c->bug]++;
			if (env_on("AION_DB_VERBOSE"))
				print_message("  known bug %.2s: '%s' gives op '%s' table '%s', want '%s' '%s'\n", kb[c->bug],
					      c->text, op, table, c->op, c->table);
		} else if (!ok) {
			print_error("'%.*s' (%zu bytes, truncated %d): op '%s' table '%s', want '%s' '%s'\n",
				    (int)n, c->text, n, c->truncated, op, table, c->op, c->table);
			bad++;
		}
	}
	for (i = 1; i < N(kb); i++)
		if (known[i])
			print_message("  %d case(s) hit known bug %.2s (AION_DB_VERBOSE=1: which)\n", known[i], kb[i]);
	if (bad)
		fail_msg("%d of %zu cases wrong", bad, N(cases));
	for (i = 1; i < N(kb); i++)
		if (known[i] && !env_on("AION_DB_LENIENT"))
			fail_msg("known bug %s (fixed: it must not come back)", kb[i]);
}

/* Every prefix of a statement, taken as the first bytes of a longer text:
 * the table is the whole name or "", never a part of it; the operation is
 * the statement's or "" / _OTHER while its keyword is cut. */
static void test_truncated_prefixes(void **state UNUSED)
{
	static const struct {
		const char *text, *op, *table;
	} st[] = {
		{ "SELECT aid, abalance FROM pgbench_accounts WHERE aid = 1", "SELECT", "pgbench_accounts" },
		{ "select * from \"public\".\"Order Items\" o where o.id = 7", "SELECT", "public.Order Items" },
		{ "INSERT IGNORE INTO inventory.stock_levels (sku) VALUES (1)", "INSERT", "inventory.stock_levels" },
		{ "UPDATE ONLY accounts SET balance = balance - 1", "UPDATE", "accounts" },
		{ "DELETE FROM ONLY sessions WHERE expires < now()", "DELETE", "sessions" },
		{ "TRUNCATE TABLE audit_log_2024", "TRUNCATE", "audit_log_2024" },
		{ "REPLACE INTO `kv` VALUES ('a', 'b')", "REPLACE", "kv" },
		{ "SELECT (SELECT count(*) FROM a) AS n FROM [dbo].[big table] x", "SELECT", "dbo.big table" },
	};
	size_t i, k;

	for (i = 0; i < N(st); i++) {
		size_t n = strlen(st[i].text);

		for (k = 0; k <= n; k++) {
			char op[SQL_NAME], table[SQL_NAME], *copy = malloc(k ? k : 1);

			assert_non_null(copy);
			memcpy(copy, st[i].text, k);
			sql__parse(copy, k, k < n, op, table);
			free(copy);
			if (table[0] && strcmp(table, st[i].table))
				fail_msg("'%.*s' (cut) gives table '%s': part of '%s'", (int)k, st[i].text, table,
					 st[i].table);
			if (op[0] && strcmp(op, st[i].op) && strcmp(op, "_OTHER"))
				fail_msg("'%.*s' (cut) gives op '%s'", (int)k, st[i].text, op);
			if (k == n && (strcmp(op, st[i].op) || strcmp(table, st[i].table)))
				fail_msg("'%s' gives '%s' '%s', want '%s' '%s'", st[i].text, op, table, st[i].op,
					 st[i].table);
		}
	}
}

static uint64_t rng_state;

static uint32_t rng(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return (uint32_t)(rng_state >> 16);
}

/* Random texts (SQL-ish tokens and bytes): the results are terminated,
 * short, an upper-case word (or _OTHER, or ""), a printable name; and a
 * table found in a cut text is the table of the whole one. */
static void test_random(void **state UNUSED)
{
	static const char *const tok[] = {
		"SELECT ", "select ", "FROM ", "from ", "INSERT ", "INTO ", "IGNORE ", "UPDATE ", "DELETE ",
		"TRUNCATE ", "TABLE ", "ONLY ", "(", ")", "'", "\"", "`", "[", "]", ".", ",", " ", "\n", "-- ",
		"/*", "*/", "#", "t", "orders", "s.t", "$1", "\\", "x", "\0", "\xff", ";", "=",
	};
	char text[256];
	uint32_t it;

	rng_state = 0x0123456789abcdefULL;
	for (it = 0; it < 200000; it++) {
		size_t n = 0, k, j;
		char op[SQL_NAME], table[SQL_NAME], op2[SQL_NAME], table2[SQL_NAME];

		while (n < sizeof(text) - 16 && (rng() & 15)) {
			const char *t = tok[rng() % N(tok)];
			size_t l = t[0] ? strlen(t) : 1;

			if (rng() % 8 == 0) {
				text[n++] = (char)rng();
				continue;
			}
			memcpy(text + n, t, l);
			n += l;
		}
		sql__parse(text, n, 0, op, table);
		assert_true(strlen(op) < SQL_NAME);
		assert_true(strlen(table) < SQL_NAME);
		for (j = 0; op[j]; j++)
			assert_true(isupper((unsigned char)op[j]) || isdigit((unsigned char)op[j]) || op[j] == '_' ||
				    op[j] == '$');
		for (j = 0; table[j]; j++)
			assert_true(isprint((unsigned char)table[j]));
		/* The same text cut short: nothing but the whole table, or "". */
		k = n ? rng() % (n + 1) : 0;
		sql__parse(text, k, 1, op2, table2);
		if (table2[0] && strcmp(table2, table))
			fail_msg("the first %zu bytes name table '%s', the whole text (%zu bytes) '%s': '%.*s'", k,
				 table2, n, table, (int)n, text);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cases),
		cmocka_unit_test(test_truncated_prefixes),
		cmocka_unit_test(test_random),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
