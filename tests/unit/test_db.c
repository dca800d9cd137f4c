// SPDX-License-Identifier: GPL-2.0
/* Database framing parsers (include/aion/db.h) on real captured bytes.
 *
 * tests/unit/captures/db/ holds whole conversations recorded between real
 * clients (psql, pgbench, psycopg2, the mariadb client, perl DBD::MariaDB
 * for the binary protocol, redis-cli, redis-benchmark, redis-py, a raw
 * RESP3 socket) and real servers (PostgreSQL 15, MariaDB 10.11, Redis 7)
 * by tests/unit/captures/db/capture.py: every recv() of a recording proxy,
 * with its direction (NAME.bin + NAME.idx).
 *
 * Each conversation is driven through db_sim.h, the host copy of the
 * kernel's driver (detect, carry, windows, rounds, marks, the queue of
 * operations, db_drain_mark/db_complete/db_sync_one, the events), as seen
 * by the application (client role) and by the database server (server
 * role), and the operations the events stand for are compared with the
 * ones the capture script sent: kind, text (SQL, command name), error
 * (SQLSTATE class, MySQL error number, Redis error prefix), statement,
 * count, in order; every reply must pair with an operation and nothing may
 * stay queued, carried or unparsed. The bytes are fed as captured, every
 * chunk cut in two at every byte, one byte per syscall, in syscalls of
 * fixed sizes, as writev()s, and with windows smaller than AION_WINDOW.
 * Scenarios that no installed client produces are built from the protocol
 * documentation (pipelines with errors, portal suspension, MySQL's classic
 * binary protocol, Redis inline commands and RESP3 types), and every
 * message is pushed across the window boundary one byte at a time.
 *
 * Bugs found by these tests (kb_text below, all fixed) are told apart from
 * new failures by the parser path that db_sim.h sees taken, so that a
 * regression names its bug; they fail the test (AION_DB_LENIENT=1 only
 * counts them, AION_DB_VERBOSE=1 prints examples). Limits by design are
 * counted, never failed.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <endian.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <linux/types.h>
#include "db_sim.h"

#define UNUSED __attribute__((unused))
#define CAPDIR "tests/unit/captures/db/"
#define MAX_REPORT 3 /* failing cases printed per capture and mode */

#define PGERR(a, b) ((__u16)((a) << 8 | (b)))

/* FNV-1a, as aion_pg_name() hashes a statement name (an independent copy). */
static __u32 fnv(const char *name)
{
	__u32 h = 0x811c9dc5u;

	while (*name)
		h = (h ^ (__u8)*name++) * 16777619u;
	return h;
}

/* ---- conversations --------------------------------------------------------- */

struct chunk {
	int dir; /* DB_DIR_C, DB_DIR_S */
	size_t off, len;
};

struct conv {
	__u8 *p;
	size_t n;
	struct chunk *ch;
	size_t nch;
};

static struct conv conv_load(const char *name)
{
	char path[256], line[512];
	struct conv c = { 0 };
	size_t off = 0, cap = 0;
	FILE *f;
	long n;

	snprintf(path, sizeof(path), CAPDIR "%s.bin", name);
	f = fopen(path, "rb");
	if (!f)
		fail_msg("%s: %s (run make unit from the repo root; regenerate with "
			 "tests/unit/captures/db/capture.py)", path, strerror(errno));
	assert_int_equal(fseek(f, 0, SEEK_END), 0);
	n = ftell(f);
	assert_true(n > 0);
	rewind(f);
	c.p = malloc(n);
	assert_non_null(c.p);
	assert_int_equal(fread(c.p, 1, n, f), (size_t)n);
	fclose(f);
	c.n = n;

	snprintf(path, sizeof(path), CAPDIR "%s.idx", name);
	f = fopen(path, "r");
	if (!f)
		fail_msg("%s: %s", path, strerror(errno));
	while (fgets(line, sizeof(line), f)) {
		char d;
		size_t len;

		if (line[0] == '#' || line[0] == '\n')
			continue;
		assert_int_equal(sscanf(line, "%c %zu", &d, &len), 2);
		assert_true(d == 'C' || d == 'S');
		if (c.nch == cap) {
			cap = cap ? cap * 2 : 32;
			c.ch = realloc(c.ch, cap * sizeof(*c.ch));
			assert_non_null(c.ch);
		}
		c.ch[c.nch].dir = d == 'C' ? DB_DIR_C : DB_DIR_S;
		c.ch[c.nch].off = off;
		c.ch[c.nch].len = len;
		c.nch++;
		off += len;
	}
	fclose(f);
	assert_int_equal(off, c.n);
	return c;
}

static void conv_free(struct conv *c)
{
	free(c->p);
	free(c->ch);
}

/* ---- synthetic conversations (for what cannot be captured as such) ----------- */

struct build {
	struct conv c;
	size_t cap;
};

/* Append bytes to the conversation; a new chunk unless `same` (then the
 * bytes join the last chunk: one syscall). */
static void bput(struct build *b, int dir, int same, const void *p, size_t n)
{
	struct conv *c = &b->c;

	if (c->n + n > b->cap) {
		b->cap = (c->n + n) * 2 + 64;
		c->p = realloc(c->p, b->cap);
		assert_non_null(c->p);
	}
	memcpy(c->p + c->n, p, n);
	if (!same || !c->nch || c->ch[c->nch - 1].dir != dir) {
		c->ch = realloc(c->ch, (c->nch + 1) * sizeof(*c->ch));
		assert_non_null(c->ch);
		c->ch[c->nch].dir = dir;
		c->ch[c->nch].off = c->n;
		c->ch[c->nch].len = 0;
		c->nch++;
	}
	c->ch[c->nch - 1].len += n;
	c->n += n;
}

/* A PostgreSQL typed message: type, then the payload (n bytes). */
static void pg_msg(struct build *b, int dir, int same, char type, const void *payload, size_t n)
{
	__u8 h[5] = { (__u8)type, (__u8)((n + 4) >> 24), (__u8)((n + 4) >> 16), (__u8)((n + 4) >> 8),
		      (__u8)(n + 4) };

	bput(b, dir, same, h, 5);
	if (n)
		bput(b, dir, 1, payload, n);
}

/* Parse (unnamed), Bind, Describe portal, Execute for sql: one pipeline step. */
static void pg_extended(struct build *b, const char *stmt, const char *sql)
{
	__u8 p[AION_WINDOW + 256];
	size_t n = 0, sl = strlen(stmt) + 1, ql = strlen(sql) + 1;

	assert_true(sl + ql + 2 <= sizeof(p));

	memcpy(p, stmt, sl);
	memcpy(p + sl, sql, ql);
	n = sl + ql;
	p[n++] = 0; /* no parameter types */
	p[n++] = 0;
	pg_msg(b, DB_DIR_C, 1, 'P', p, n);
	n = 0;
	p[n++] = 0; /* unnamed portal */
	memcpy(p + n, stmt, sl);
	n += sl;
	memset(p + n, 0, 6); /* no formats, no parameters, no result formats */
	n += 6;
	pg_msg(b, DB_DIR_C, 1, 'B', p, n);
	pg_msg(b, DB_DIR_C, 1, 'D', "P", 2);
	pg_msg(b, DB_DIR_C, 1, 'E', "\0\0\0\0", 5);
}

static void pg_error(struct build *b, int same, const char *sqlstate)
{
	char p[256];
	size_t n = 0;

	n += (size_t)sprintf(p + n, "SERROR") + 1;
	n += (size_t)sprintf(p + n, "VERROR") + 1;
	n += (size_t)sprintf(p + n, "C%s", sqlstate) + 1;
	n += (size_t)sprintf(p + n, "Msomething went wrong") + 1;
	p[n++] = 0;
	pg_msg(b, DB_DIR_S, same, 'E', p, n);
}

/* One row result (T, D, C) for a pipeline step, after ParseComplete and
 * BindComplete. */
static void pg_row_result(struct build *b, int same)
{
	static const __u8 t[] = { 0, 1, '?', 'c', 'o', 'l', 'u', 'm', 'n', '?', 0, 0, 0, 0, 0, 0, 0,
				  0, 0, 0, 0, 0x17, 0, 4, 0xff, 0xff, 0xff, 0xff, 0, 0 };
	static const __u8 d[] = { 0, 1, 0, 0, 0, 1, '1' };

	pg_msg(b, DB_DIR_S, same, '1', NULL, 0);
	pg_msg(b, DB_DIR_S, 1, '2', NULL, 0);
	pg_msg(b, DB_DIR_S, 1, 'T', t, sizeof(t));
	pg_msg(b, DB_DIR_S, 1, 'D', d, sizeof(d));
	pg_msg(b, DB_DIR_S, 1, 'C', "SELECT 1", 9);
}

/* A MySQL packet: 3-byte length, sequence, payload. */
static void my_pkt(struct build *b, int dir, int same, __u8 seq, const void *payload, size_t n)
{
	__u8 h[4] = { (__u8)n, (__u8)(n >> 8), (__u8)(n >> 16), seq };

	bput(b, dir, same, h, 4);
	bput(b, dir, 1, payload, n);
}

static void my_query(struct build *b, int same, const char *sql)
{
	__u8 p[AION_WINDOW + 256];
	size_t n = strlen(sql);

	assert_true(n + 1 <= sizeof(p));
	p[0] = 0x03;
	memcpy(p + 1, sql, n);
	my_pkt(b, DB_DIR_C, same, 0, p, n + 1);
}

static void my_ok(struct build *b, int same, __u8 seq, __u16 status)
{
	__u8 p[7] = { 0, 0, 0, (__u8)status, (__u8)(status >> 8), 0, 0 };

	my_pkt(b, DB_DIR_S, same, seq, p, 7);
}

static void my_err(struct build *b, int same, __u8 seq, __u16 code)
{
	char p[64];
	int n = sprintf(p, "%c%c%c#42000You have an error", 0xff, code & 0xff, code >> 8);

	my_pkt(b, DB_DIR_S, same, seq, p, (size_t)n);
}

/* A Redis command as an array of bulk strings. */
static void re_cmd(struct build *b, int same, int argc, const char *const *argv)
{
	char h[32];
	int i;

	sprintf(h, "*%d\r\n", argc);
	bput(b, DB_DIR_C, same, h, strlen(h));
	for (i = 0; i < argc; i++) {
		sprintf(h, "$%zu\r\n", strlen(argv[i]));
		bput(b, DB_DIR_C, 1, h, strlen(h));
		bput(b, DB_DIR_C, 1, argv[i], strlen(argv[i]));
		bput(b, DB_DIR_C, 1, "\r\n", 2);
	}
}

static void bstr(struct build *b, int dir, int same, const char *s)
{
	bput(b, dir, same, s, strlen(s));
}

/* ---- expectations ------------------------------------------------------------ */

/* One expected event. text: the full text sent (the event holds its first
 * AION_DB_TEXT bytes, 32 when it also carries a Redis error prefix). */
struct xev {
	__u8 op;
	__u16 error;
	const char *text;
	const char *etext; /* Redis error prefix */
	const char *pgstmt; /* PG: statement name (hash); NULL: 0 */
	__u32 mystmt;      /* MySQL statement id */
	int times;         /* 0: once */
};

/* Known parser/driver bugs, and limits by design (see the report that came
 * with this file). A run whose every difference from the expectation is
 * one of these fails naming it (only counted with AION_DB_LENIENT=1;
 * limits never fail); anything else fails. The
 * derailing ones are recognised by the path the parser takes (db_sim.h,
 * DBSIM_HIT_*) and explain only the events from that point on. When a bug
 * is fixed, delete its entry: the tests then hold the fix. */
enum kb {
	KB_RE_WORD,    /* B1 */
	KB_MY_STATUS,  /* B2 */
	KB_CARRY,      /* B3 */
	KB_RE_ERRTEXT, /* B4 */
	KB_MERGE,      /* B5 */
	KB_PG_PARSE,   /* B6 */
	KB_PG_1B,      /* B7 */
	KB_RE_PUSH,    /* B8 */
	KB_QUEUE,      /* L1 */
	KB_DETECT,     /* L2 */
	KB_N,
};
#define KB(b) (1u << (b))
#define KB_UNEXPLAINED (1u << 31)
#define KB_LIMITS (KB(KB_DETECT) | KB(KB_QUEUE) | KB(KB_RE_PUSH))

static const char *const kb_text[KB_N] = {
	[KB_RE_WORD] = "B1 Redis: an inline command whose name is cut by the end of a syscall is named "
		       "by its first bytes: the carry test is !aion_re_word() (an empty word) where it "
		       "should be a word that reaches the end of the window (aion_re_request, RE_CMD)",
	[KB_MY_STATUS] = "B2 MySQL: an EOF/OK packet whose status flags are not in the window is taken as "
			 "the end of the operation (SERVER_MORE_RESULTS_EXISTS unseen): a multi-result "
			 "response ends early and its error goes to no one (aion_my_end, aion_my_ok_status)",
	[KB_CARRY] = "B3 a syscall whose first window (carried bytes + its first segment only) ends "
		     "inside the carried message cannot load the next one (scan_round_p: w->base < "
		     "w->carry) and on_data() then gives the framing up: a writev()/readv() with a short "
		     "first iovec after a cut header loses the connection (bpf/aion.bpf.c)",
	[KB_RE_ERRTEXT] = "B4 Redis: the error prefix of a reply is wrong when its line is cut: the "
			  "offset kept in left >> 32 is a window offset that the END mark (made when "
			  "the line ends, in a later window or syscall) uses on other bytes; and a "
			  "prefix cut by a window edge inside a syscall is taken short, the cut check "
			  "only handles the end of the syscall (aion_re_response '-', aion_re_done)",
	[KB_MERGE] = "B5 once the queue is full, an operation is still merged into the last queued one "
		     "though a dropped one lies between them: replies are then paired with the wrong "
		     "operations (db_request in bpf/aion.bpf.c: the merge is tried before the full check)",
	[KB_PG_PARSE] = "B6 PG Parse: the text length counts the rest of the message, so the SQL "
			"comes with its NUL, the parameter count and the parameter type OIDs "
			"(aion_pg_request, case 'P')",
	[KB_PG_1B] = "B7 PG: a response syscall that ends one byte into an 'S' (ParameterStatus), 'N' "
		     "(NoticeResponse) or 'G' (CopyInResponse) message is taken for the one-byte answer "
		     "to SSLRequest at any point of the stream: framing lost (aion_pg_response)",
	[KB_RE_PUSH] = "L3 (by design, README Measurement limits) Redis pub/sub is not paired: RESP3 confirms "
		       "SUBSCRIBE/UNSUBSCRIBE (and P/S variants) by push messages, which complete no "
		       "operation, so a connection in subscribe mode is not measured (aion_re_response, "
		       "RE_F_PUSH)",
	[KB_QUEUE] = "L1 (by design) a pipeline that reaches the kernel in several syscalls does not share "
		     "queue entries (identical operations merge within one syscall only): past "
		     "AION_QUEUE_DEPTH operations the rest are dropped and counted (AION_CNT_QUEUE_FULL); "
		     "the events that are emitted are right",
	[KB_DETECT] = "L2 (by design) detect() carries at most 15 bytes: a MySQL greeting or PG "
		      "StartupMessage that does not come whole in one syscall is not recognised, and the "
		      "connection is parsed from the first syscall that tells, if any (bpf/aion.bpf.c "
		      "detect, aion_detect)",
};

/* The id of a known bug or limit ("B4", "L1"). */
static const char *kb_id(int b)
{
	static char id[8];
	size_t n = strcspn(kb_text[b], " ");

	snprintf(id, sizeof(id), "%.*s", (int)(n < 7 ? n : 7), kb_text[b]);
	return id;
}

struct capspec {
	const char *name;
	__u8 proto;
	const struct xev *x;
	size_t nx;
	__u32 queue_full; /* operations the kernel drops by design (queue depth) */
};

#define Q(sql) { AION_DB_QUERY, 0, sql, NULL, NULL, 0, 0 }
#define QE(sql, err) { AION_DB_QUERY, err, sql, NULL, NULL, 0, 0 }
#define RC(cmd) { AION_DB_COMMAND, 0, cmd, NULL, NULL, 0, 0 }
#define RE(cmd, pfx) { AION_DB_COMMAND, 1, cmd, pfx, NULL, 0, 0 }
#define N(a) (sizeof(a) / sizeof((a)[0]))


static const struct xev x_pg_psql[] = {
	Q("select g, 'row ' || g as name from generate_series(1, 5) g;"),
	QE("select 1/0;", PGERR('2', '2')),
	Q("create temp table t (id int primary key, v text);"),
	Q("insert into t values (1, 'a'), (2, 'b');"),
	Q("update t set v = 'c' where id = 2;"),
	Q("select 1 ; select 2;"), /* one Query, two statements */
};
static const struct xev x_pg_big[] = { Q("select repeat('x', 100000)") };
static const struct xev x_pg_pgbench_extended[] = {
	{ AION_DB_EXECUTE, 0, "SELECT abalance FROM pgbench_accounts WHERE aid = $1;", NULL, "", 0, 5 },
};
static const struct xev x_pg_pgbench_prepared[] = {
	{ AION_DB_STMT, 0, "SELECT abalance FROM pgbench_accounts WHERE aid = $1;", NULL, "P_0", 0, 0 },
	{ AION_DB_EXECUTE, 0, "SELECT abalance FROM pgbench_accounts WHERE aid = $1;", NULL, "P_0", 0, 5 },
};
/* The server skips the third after the error: it fails with its class. */
static const struct xev x_pg_pipeline_error[] = {
	{ AION_DB_EXECUTE, 0, "select 1;", NULL, "", 0, 0 },
	{ AION_DB_EXECUTE, PGERR('2', '2'), "select 1/0;", NULL, "", 0, 0 },
	{ AION_DB_EXECUTE, PGERR('2', '2'), "select 2;", NULL, "", 0, 0 },
};
static const struct xev x_pg_psycopg2[] = {
	Q("BEGIN"),
	Q("SELECT aid, abalance FROM pgbench_accounts WHERE aid <= 3 ORDER BY aid"),
	Q("UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid = 1"),
	Q("COMMIT"),
	Q("BEGIN"),
	QE("INSERT INTO pgbench_branches (bid) VALUES (1)", PGERR('2', '3')),
	Q("ROLLBACK"),
};
static const struct xev x_my_cli[] = {
	Q("SELECT id, name FROM t"),
	Q("INSERT INTO t VALUES (1, 'one'), (2, 'two'), (3, 'three')"),
	Q("SELECT id, name FROM t ORDER BY id"),
	QE("SELEC 1", 1064),
	Q("UPDATE t SET name = 'uno' WHERE id = 1"),
	Q("SELECT seq, REPEAT('y', 60) AS pad FROM seq_1_to_300"),
	Q("SELECT REPEAT('z', 100000) AS big"),
	Q("SELECT 1 AS a; SELECT 2 AS b, 3 AS c"), /* two result sets, MORE_RESULTS */
	Q("DELETE FROM t WHERE id = 3"),
};
static const struct xev x_my_prepared[] = {
	Q("SET NAMES 'utf8mb4'"),
	Q("SET character_set_server = 'utf8mb4'"),
	Q("SET collation_connection = 'utf8mb4_unicode_ci'"),
	Q("SET collation_server = 'utf8mb4_unicode_ci'"),
	{ AION_DB_PREPARE, 0, "SELECT id, name FROM t WHERE id >= ?", NULL, NULL, 1, 0 },
	{ AION_DB_STMT, 0, "SELECT id, name FROM t WHERE id >= ?", NULL, NULL, 1, 0 },
	{ AION_DB_EXECUTE, 0, "", NULL, NULL, 1, 2 }, /* 2 rows, then 1 row */
	{ AION_DB_PREPARE, 0, "INSERT INTO t (id, name) VALUES (?, ?)", NULL, NULL, 2, 0 },
	{ AION_DB_STMT, 0, "INSERT INTO t (id, name) VALUES (?, ?)", NULL, NULL, 2, 0 },
	{ AION_DB_EXECUTE, 0, "", NULL, NULL, 2, 0 },
	{ AION_DB_EXECUTE, 1062, "", NULL, NULL, 2, 0 }, /* duplicate key */
	{ AION_DB_OTHER, 0, "", NULL, NULL, 0x1a, 0 },   /* COM_STMT_RESET (its OK) */
};
static const struct xev x_re_cli[] = {
	RC("COMMAND"), /* COMMAND DOCS: redis-cli's first command, a 170 KB reply */
	RC("SET"), RC("GET"), RC("GET"), RC("RPUSH"), RC("LRANGE"),
	RC("MULTI"), RC("INCR"), RC("LRANGE"), RC("EXEC"),
	RE("INCR", "ERR"), RE("NOSUCHCOMMAND", "ERR"), RE("LPUSH", "WRONGTYPE"),
	RC("DEL"),
};
static const struct xev x_re_resp3[] = {
	RC("HELLO"), RC("COMMAND"), RC("HSET"), RC("HGETALL"), RC("CONFIG"), RC("SADD"), RC("SMEMBERS"),
	RC("HGET"),
};
static const struct xev x_re_bench_get[] = { { AION_DB_COMMAND, 0, "GET", NULL, NULL, 0, 48 } };
static const struct xev x_re_bench_lrange[] = { { AION_DB_COMMAND, 0, "LRANGE", NULL, NULL, 0, 48 } };
static const struct xev x_re_pipeline_get100[] = { { AION_DB_COMMAND, 0, "GET", NULL, NULL, 0, 100 } };
/* 100 different-by-turns commands in one write: AION_QUEUE_DEPTH of them
 * are queued, the other 92 are dropped and counted (AION_CNT_QUEUE_FULL). */
static const struct xev x_re_pipeline_mixed[] = {
	RC("SET"), RC("GET"), RC("SET"), RC("GET"), RC("SET"), RC("GET"), RC("SET"), RC("GET"),
};
static const struct xev x_re_big[] = { RC("SET"), RC("GET"), RC("STRLEN") };
/* The published message is a push: no operation. */
static const struct xev x_re_resp3_pubsub[] = {
	RC("HELLO"), RC("SUBSCRIBE"), RC("PING"), RC("UNSUBSCRIBE"), RC("GET"),
};

#define CAP(n, p) { #n, p, x_##n, N(x_##n), 0 }
static const struct capspec caps[] = {
	CAP(pg_psql, AION_PROTO_PG),
	CAP(pg_big, AION_PROTO_PG),
	CAP(pg_pgbench_extended, AION_PROTO_PG),
	CAP(pg_pgbench_prepared, AION_PROTO_PG),
	CAP(pg_pipeline_error, AION_PROTO_PG),
	CAP(pg_psycopg2, AION_PROTO_PG),
	CAP(my_cli, AION_PROTO_MYSQL),
	CAP(my_prepared, AION_PROTO_MYSQL),
	CAP(re_cli, AION_PROTO_REDIS),
	CAP(re_resp3, AION_PROTO_REDIS),
	CAP(re_bench_get, AION_PROTO_REDIS),
	CAP(re_bench_lrange, AION_PROTO_REDIS),
	CAP(re_pipeline_get100, AION_PROTO_REDIS),
	{ "re_pipeline_mixed", AION_PROTO_REDIS, x_re_pipeline_mixed, N(x_re_pipeline_mixed), 92 },
	CAP(re_big, AION_PROTO_REDIS),
	CAP(re_resp3_pubsub, AION_PROTO_REDIS),
};
#define NCAPS N(caps)

static const char *pname(__u8 p)
{
	return p == AION_ROLE_CLIENT ? "client" : "server";
}

static const char *op_name(__u8 op)
{
	static const char *const n[] = { "?", "QUERY", "EXECUTE", "PREPARE", "COMMAND", "PING",
					 "OTHER", "SYNC", "STMT" };

	return op < N(n) ? n[op] : "?";
}

static size_t describe_ev(const struct db_ev *e, char *out, size_t n)
{
	char t[AION_DB_TEXT + 1], et[AION_DB_TEXT + 1];
	__u32 i;

	for (i = 0; i < e->text_len && i < AION_DB_TEXT; i++)
		t[i] = e->text[i] >= 32 && e->text[i] < 127 ? e->text[i] : '.';
	t[i] = 0;
	for (i = 0; i < e->err_len && i < AION_DB_TEXT - 32; i++)
		et[i] = e->text[32 + i] >= 32 && e->text[32 + i] < 127 ? e->text[32 + i] : '.';
	et[i] = 0;
	return (size_t)snprintf(out, n, "%s%s%.0u(err=%u%s%s stmt=%08x '%s')", op_name(e->op),
				e->count != 1 ? " x" : "", e->count != 1 ? e->count : 0, e->error,
				e->err_len ? " " : "", et, e->stmt, t);
}

/* Operations the first k events of m stand for. */
static size_t ops_of(const struct dbsim *m, size_t k)
{
	size_t i, n = 0;

	for (i = 0; i < k && i < m->nev; i++)
		n += m->ev[i].count;
	return n;
}

static void describe(const struct dbsim *m, size_t from, char *out, size_t n)
{
	size_t o = 0, i;

	o += (size_t)snprintf(out + o, n - o, "%u events, %zu operations [", m->nev, ops_of(m, m->nev));
	for (i = from; i < m->nev && o + 100 < n; i++) {
		o += (size_t)snprintf(out + o, n - o, " #%zu ", i);
		o += describe_ev(&m->ev[i], out + o, n - o);
	}
	if (o + 200 < n)
		snprintf(out + o, n - o,
			 " ] proto=%u role=%u garbage=%u exhausted=%u queue_full=%u bad_text=%u/%u queued=%u "
			 "state=%u/%u carry=%u/%u",
			 m->proto, m->role, m->garbage, m->exhausted, m->queue_full, m->bad_text, m->bad_etext,
			 m->tail - m->head, m->fr[0].state, m->fr[1].state, m->carry_len[0], m->carry_len[1]);
}

/* The i-th expected event of cs (times expanded); NULL past the end. */
static const struct xev *nth_x(const struct capspec *cs, size_t i)
{
	size_t k;

	for (k = 0; k < cs->nx; k++) {
		size_t t = cs->x[k].times ? (size_t)cs->x[k].times : 1;

		if (i < t)
			return &cs->x[k];
		i -= t;
	}
	return NULL;
}

static size_t count_x(const struct capspec *cs)
{
	size_t i = 0;

	while (nth_x(cs, i))
		i++;
	return i;
}

/* How event e differs from x: 0, a known bug, or KB_UNEXPLAINED. hits:
 * the DBSIM_HIT_* of the run. */
static unsigned ev_diff(const struct db_ev *e, const struct xev *x, __u8 proto, __u32 hits, char *why,
			size_t n)
{
	size_t tl = strlen(x->text), cap = x->etext ? 32 : AION_DB_TEXT;
	__u32 stmt = x->pgstmt ? fnv(x->pgstmt) : x->mystmt;
	unsigned mask = 0;
	char got[256];

	if (tl > cap)
		tl = cap;
	describe_ev(e, got, sizeof(got));
	if (e->op != x->op || e->error != x->error || e->stmt != stmt) {
		snprintf(why, n, "%s(err=%u stmt=%08x), want %s(err=%u stmt=%08x) '%s': %s", op_name(e->op),
			 e->error, e->stmt, op_name(x->op), x->error, stmt, x->text, got);
		return KB_UNEXPLAINED;
	}
	if (e->text_len != tl || memcmp(e->text, x->text, tl)) {
		size_t k;

		snprintf(why, n, "text '%.*s' (%u bytes), want '%.*s': %s", e->text_len, e->text, e->text_len,
			 (int)tl, x->text, got);
		for (k = 0; k < e->text_len && k < tl && e->text[k] == x->text[k]; k++)
			;
		if (k == e->text_len && k < tl && proto == AION_PROTO_REDIS && (hits & DBSIM_HIT_RE_WORD))
			mask |= KB(KB_RE_WORD); /* a strict prefix of an inline command */
		else if (proto == AION_PROTO_PG && (e->op == AION_DB_EXECUTE || e->op == AION_DB_STMT) &&
			 k == tl && e->text_len > tl && !e->text[tl])
			mask |= KB(KB_PG_PARSE); /* the SQL, its NUL, more */
		else
			return KB_UNEXPLAINED;
	}
	if (x->etext ? (e->err_len != strlen(x->etext) || memcmp(e->text + 32, x->etext, e->err_len))
		     : e->err_len != 0) {
		snprintf(why, n, "error text of %u bytes, want '%s': %s", e->err_len, x->etext ? x->etext : "",
			 got);
		mask |= proto == AION_PROTO_REDIS && x->etext ? KB(KB_RE_ERRTEXT) : KB_UNEXPLAINED;
	}
	return mask;
}

/* How m's run differs from what cs expects: 0 (exactly the events, every
 * reply paired, nothing lost, queued, carried or unparsed), a mask of
 * known bugs and limits, or with KB_UNEXPLAINED. first_split: the
 * connection's first message did not come whole in its first syscall. A
 * known bug that derails the framing (B2, B3, B5, B8, B9: seen taken by
 * db_sim.h) explains the differences from the events emitted after it on,
 * never the ones before. */
static unsigned sim_diff(const struct dbsim *m, const struct capspec *cs, __u8 persp, int first_split,
			 char *why, size_t n)
{
	char got[4096], w[512] = "";
	size_t i, nx = count_x(cs), at = 0, at_op = 0, bad_at = (size_t)-1, ev = 0, in_ev = 0;
	size_t nops = ops_of(m, m->nev);
	unsigned mask = 0, d, derail = 0;

	why[0] = 0;
	if (m->proto != cs->proto || m->role != persp) {
		describe(m, 0, got, sizeof(got));
		snprintf(why, n, "detected proto %u role %u, want %u %u: %s", m->proto, m->role, cs->proto,
			 persp, got);
		return first_split && (m->proto == AION_PROTO_UNKNOWN || m->proto == AION_PROTO_NONE) ?
			       KB(KB_DETECT) : KB_UNEXPLAINED;
	}
	/* Bytes dropped before the protocol was known (the first message came
	 * in pieces): what follows starts wherever detection caught on. */
	if (first_split && m->detect_lost && (nops != nx || m->head != m->tail)) {
		describe(m, 0, got, sizeof(got));
		snprintf(why, n, "detected after %u syscall(s) of dropped bytes: %s", m->detect_lost, got);
		return KB(KB_DETECT);
	}
	/* Operation i is covered by event ev (its in_ev-th of count). */
	for (i = 0; i < nx && ev < m->nev; i++) {
		d = ev_diff(&m->ev[ev], nth_x(cs, i), cs->proto, m->hits, w, sizeof(w));
		if (d && !mask) {
			at = ev;
			at_op = i;
		}
		if (d & KB_UNEXPLAINED) {
			at = bad_at = ev;
			at_op = i;
			mask |= d;
			break;
		}
		mask |= d;
		if (++in_ev >= m->ev[ev].count) {
			ev++;
			in_ev = 0;
		}
	}
	if (mask) {
		describe(m, at > 2 ? at - 2 : 0, got, sizeof(got));
		snprintf(why, n, "event %zu (operation %zu): %s; from #%zu: %s", at, at_op, w, at > 2 ? at - 2 : 0,
			 got);
	}
	if (m->bad_etext)
		mask |= cs->proto == AION_PROTO_REDIS ? KB(KB_RE_ERRTEXT) : KB_UNEXPLAINED;
	if (m->bad_text)
		mask |= KB_UNEXPLAINED;
	if (!mask && nops < nx && m->queue_full > cs->queue_full &&
	    nops + (m->queue_full - cs->queue_full) == nx && m->orphans == m->queue_full && !m->garbage &&
	    m->head == m->tail && !m->carry_len[0] && !m->carry_len[1] && !m->exhausted) {
		/* Dropped, counted, and nothing misattributed: the limit. */
		describe(m, nx > 2 && m->nev >= nx ? nx - 2 : 0, got, sizeof(got));
		snprintf(why, n, "%zu operations, %u dropped (queue full): %s", nops, m->queue_full, got);
		return KB(KB_QUEUE);
	}
	if (nops != nx || m->garbage || m->queue_full != cs->queue_full || m->orphans != m->queue_full ||
	    m->head != m->tail || m->carry_len[0] || m->carry_len[1] || m->exhausted) {
		if (!(mask & KB_UNEXPLAINED)) {
			describe(m, m->nev > 4 ? m->nev - 4 : 0, got, sizeof(got));
			snprintf(why, n, "%zu operations, want %zu; queue_full %u want %u; orphan replies %u; %s",
				 nops, nx, m->queue_full, cs->queue_full, m->orphans, got);
		}
		mask |= KB_UNEXPLAINED;
	}
	if (!(mask & KB_UNEXPLAINED))
		return mask;
	/* A derailment explains what came after it, not before. */
	{
		static const struct { __u32 hit; int kb; } dr[] = {
			{ DBSIM_HIT_MY_STAT, KB_MY_STATUS }, { DBSIM_HIT_CARRY, KB_CARRY },
			{ DBSIM_HIT_MERGE, KB_MERGE },       { DBSIM_HIT_PG_1B, KB_PG_1B },
			{ DBSIM_HIT_RE_PUSH, KB_RE_PUSH },
		};
		size_t k;

		for (k = 0; k < N(dr); k++)
			if ((m->hits & dr[k].hit) &&
			    bad_at >= m->hit_at[__builtin_ctz(dr[k].hit)])
				derail |= KB(dr[k].kb);
	}
	if (derail)
		mask = (mask & ~KB_UNEXPLAINED) | derail;
	return mask;
}

/* Per-test tally of the runs judged. */
static struct {
	int unexpected, printed;
	int known[KB_N], kprinted[KB_N];
} tally;

static int env_on(const char *name)
{
	const char *e = getenv(name);

	return e && *e && strcmp(e, "0");
}

/* Known bugs fail the test: they are all fixed. AION_DB_LENIENT=1 only
 * counts them (for work on the parser). */
static int strict_mode(void)
{
	return !env_on("AION_DB_LENIENT");
}

static void begin(void)
{
	memset(&tally, 0, sizeof(tally));
}

/* Judge one run; prints the first few cases of each kind. 0 when exact. */
static int judge(const struct dbsim *m, const struct capspec *cs, __u8 persp, int first_split, const char *fmt,
		 ...)
{
	char why[8192], what[256];
	unsigned mask = sim_diff(m, cs, persp, first_split, why, sizeof(why));
	va_list ap;
	int b;

	if (!mask)
		return 0;
	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	if (mask & KB_UNEXPLAINED) {
		tally.unexpected++;
		if (tally.printed++ < MAX_REPORT * 2)
			print_error("%s (%s): %s\n", what, pname(persp), why);
		return -1;
	}
	for (b = 0; b < KB_N; b++) {
		if (!(mask & KB(b)))
			continue;
		tally.known[b]++;
		if (env_on("AION_DB_VERBOSE") && tally.kprinted[b]++ < 2)
			print_message("  known %s %s: %s (%s): %.600s\n", KB(b) & KB_LIMITS ? "limit" : "bug",
				      kb_id(b), what, pname(persp), why);
	}
	return 1;
}

/* End of a test: fails on anything unexpected (or, strict, on known bugs).
 * Known bugs and limits: one line (AION_DB_VERBOSE=1: examples of each). */
static void finish(const char *test)
{
	char line[512];
	size_t o = 0;
	int b, known = 0;

	for (b = 0; b < KB_N; b++) {
		if (!tally.known[b])
			continue;
		if (!(KB(b) & KB_LIMITS))
			known += tally.known[b];
		o += (size_t)snprintf(line + o, sizeof(line) - o, "%s%s x%d", o ? ", " : "", kb_id(b),
				      tally.known[b]);
		if (o >= sizeof(line))
			o = sizeof(line) - 1;
	}
	if (o)
		print_message("  %s: runs with known bugs/limits: %s\n", test, line);
	if (tally.unexpected)
		fail_msg("%s: %d run(s) misparsed (not a known bug)", test, tally.unexpected);
	if (known && strict_mode()) {
		for (b = 0; b < KB_N; b++)
			if (tally.known[b] && !(KB(b) & KB_LIMITS))
				print_error("  %s\n", kb_text[b]);
		fail_msg("%s: %d run(s) hit known bugs (AION_DB_STRICT)", test, known);
	}
}

/* ---- feeding ----------------------------------------------------------------- */

static const __u8 persps[] = { AION_ROLE_CLIENT, AION_ROLE_SERVER };

/* Chunks [from, to) of c, each in syscalls of at most piece bytes (0: whole). */
static void feed(struct dbsim *m, const struct conv *c, size_t from, size_t to, size_t piece)
{
	size_t i, o;

	for (i = from; i < to; i++) {
		const struct chunk *k = &c->ch[i];

		if (!piece) {
			dbsim_data(m, k->dir, c->p + k->off, k->len);
			continue;
		}
		for (o = 0; o < k->len; o += piece)
			dbsim_data(m, k->dir, c->p + k->off + o, k->len - o < piece ? k->len - o : piece);
	}
}

/* Every capture, both roles, syscalls of at most piece bytes, windows of
 * window bytes. When the first message is cut (detection cannot work, L2)
 * the parsers are also run on a connection whose protocol is known (an
 * adopted one), so that they are still judged on every piece. */
static void check_mode(const char *mode, size_t piece, __u32 window)
{
	size_t i, p, g;

	for (i = 0; i < NCAPS; i++) {
		struct conv c = conv_load(caps[i].name);
		int first_split = piece && piece < c.ch[0].len;

		for (p = 0; p < N(persps); p++) {
			for (g = 0; g < (first_split ? 2u : 1u); g++) {
				struct dbsim *m = dbsim_new(persps[p], g ? caps[i].proto : AION_PROTO_UNKNOWN);

				m->window = window;
				feed(m, &c, 0, c.nch, piece);
				judge(m, &caps[i], persps[p], first_split && !g, "%s %s%s", caps[i].name, mode,
				      g ? ", protocol known" : "");
				dbsim_free(m);
			}
		}
		conv_free(&c);
	}
}

/* ---- the captures, fed as captured and in other cuts ---------------------------- */

static void test_captures_as_captured(void **state UNUSED)
{
	begin();
	check_mode("as captured", 0, AION_WINDOW);
	finish("as captured");
}

static void test_captures_byte_by_byte(void **state UNUSED)
{
	begin();
	check_mode("one byte per syscall", 1, AION_WINDOW);
	finish("one byte per syscall");
}

/* Syscalls of fixed sizes: headers and texts cut at every kind of place. */
static void test_captures_fixed_pieces(void **state UNUSED)
{
	static const size_t pieces[] = { 2, 3, 5, 7, 13, 64, 100, 1000, 1023, 1025, 4096 };
	char mode[64];
	size_t i;

	begin();
	for (i = 0; i < N(pieces); i++) {
		snprintf(mode, sizeof(mode), "in syscalls of %zu bytes", pieces[i]);
		check_mode(mode, pieces[i], AION_WINDOW);
	}
	finish("fixed pieces");
}

/* Windows smaller than the messages: the parser must ask for the next
 * window (scan_round_p) wherever a message runs past the one it has. The
 * syscalls are kept to 12 windows, within the kernel's rounds (B3 apart). */
static void test_captures_small_windows(void **state UNUSED)
{
	static const __u32 windows[] = { 512, 256, 160 };
	char mode[64];
	size_t i;

	begin();
	for (i = 0; i < N(windows); i++) {
		snprintf(mode, sizeof(mode), "with %u-byte windows", windows[i]);
		check_mode(mode, 12 * windows[i], windows[i]);
	}
	finish("small windows");
}

/* Snapshots of the driver between chunks. The events list is append-only:
 * a snapshot keeps its length. */
static void snap_restore(struct dbsim *m, const struct dbsim *snap)
{
	struct db_ev *ev = m->ev;
	__u32 cap = m->cap;

	*m = *snap;
	m->ev = ev;
	m->cap = cap;
}

/* Same parsing state (what the future depends on), times aside. */
static int same_state(const struct dbsim *a, const struct dbsim *b)
{
	__u32 i, d;

	if (memcmp(a->fr, b->fr, sizeof(a->fr)) || a->proto != b->proto || a->role != b->role ||
	    a->head != b->head || a->tail != b->tail || a->parse_hash != b->parse_hash ||
	    a->parse_len != b->parse_len || memcmp(a->parse_text, b->parse_text, a->parse_len) ||
	    a->garbage != b->garbage || a->exhausted != b->exhausted || a->queue_full != b->queue_full ||
	    a->bad_text != b->bad_text || a->bad_etext != b->bad_etext || a->nev != b->nev)
		return 0;
	for (d = 0; d < 2; d++)
		if (a->carry_len[d] != b->carry_len[d] || memcmp(a->carry[d], b->carry[d], a->carry_len[d]))
			return 0;
	for (i = a->head; i != a->tail; i++) {
		const struct db_req *x = &a->q[i & (AION_QUEUE_DEPTH - 1)], *y = &b->q[i & (AION_QUEUE_DEPTH - 1)];

		if (x->method != y->method || x->body != y->body || x->status != y->status ||
		    x->count != y->count || x->path_len != y->path_len || memcmp(x->path, y->path, x->path_len))
			return 0;
		for (d = 0; d < 2; d++)
			if ((x->start == a->carry_ns[d]) != (y->start == b->carry_ns[d]))
				return 0;
	}
	return 1;
}

/* Every chunk of every capture cut in two syscalls at every byte (in
 * chunks over 8 KB: every byte of the first and last 2 KB, and every 61st
 * byte between). A cut that leaves the driver in the same state as the
 * whole chunk did, with the same events, needs no replay of the rest;
 * otherwise the rest is played and the whole judged. */
static void test_captures_split_everywhere(void **state UNUSED)
{
	size_t i, p, j, k, e;

	begin();
	for (i = 0; i < NCAPS; i++) {
		struct conv c = conv_load(caps[i].name);

		for (p = 0; p < N(persps); p++) {
			struct dbsim *ref = dbsim_new(persps[p], AION_PROTO_UNKNOWN), *m;
			struct dbsim *snaps = calloc(c.nch + 1, sizeof(*snaps));

			assert_non_null(snaps);
			for (j = 0; j < c.nch; j++) {
				snaps[j] = *ref;
				feed(ref, &c, j, j + 1, 0);
			}
			snaps[c.nch] = *ref;
			m = dbsim_new(persps[p], AION_PROTO_UNKNOWN);
			m->cap = ref->cap;
			m->ev = malloc(m->cap * sizeof(*m->ev));
			assert_non_null(m->ev);
			for (j = 0; j < c.nch; j++) {
				const struct chunk *ch = &c.ch[j];

				/* The reference events up to this chunk's end (a
				 * replay after the previous chunk's cuts wrote over them). */
				memcpy(m->ev, ref->ev, snaps[j + 1].nev * sizeof(*m->ev));
				for (k = 1; k < ch->len; k++) {
					int ok;

					if (ch->len > 8192 && k > 2048 && k < ch->len - 2048 && k % 61)
						continue;
					snap_restore(m, &snaps[j]);
					dbsim_data(m, ch->dir, c.p + ch->off, k);
					dbsim_data(m, ch->dir, c.p + ch->off + k, ch->len - k);
					ok = same_state(m, &snaps[j + 1]);
					for (e = 0; ok && e < m->nev; e++) {
						const struct db_ev *x = &m->ev[e], *y = &ref->ev[e];

						ok = x->op == y->op && x->error == y->error && x->stmt == y->stmt &&
						     x->text_len == y->text_len && x->err_len == y->err_len &&
						     !memcmp(x->text, y->text, sizeof(x->text));
					}
					if (ok)
						continue; /* as whole: judged as captured */
					/* Different: play the rest and judge the whole. */
					feed(m, &c, j + 1, c.nch, 0);
					judge(m, &caps[i], persps[p], j == 0, "%s chunk %zu (%c, %zu bytes) cut at %zu",
					      caps[i].name, j, ch->dir == DB_DIR_C ? 'C' : 'S', ch->len, k);
				}
			}
			dbsim_free(m);
			free(snaps);
			dbsim_free(ref);
		}
		conv_free(&c);
	}
	finish("split in two syscalls");
}

/* Each chunk as a writev() of 2 to 4 segments: the first window holds the
 * first segment only, later windows any. */
static void test_captures_writev(void **state UNUSED)
{
	static const size_t firsts[] = { 1, 4, 5, 9, 40 };
	size_t i, p, j, f;

	begin();
	for (i = 0; i < NCAPS; i++) {
		struct conv c = conv_load(caps[i].name);

		for (p = 0; p < N(persps); p++) {
			for (f = 0; f < N(firsts); f++) {
				struct dbsim *m = dbsim_new(persps[p], AION_PROTO_UNKNOWN);

				for (j = 0; j < c.nch; j++) {
					const struct chunk *ch = &c.ch[j];
					struct dseg sg[4];
					size_t a = firsts[f] < ch->len ? firsts[f] : ch->len, rest = ch->len - a;
					__u32 ns = 0;

					/* Detection looks at the first segment only: keep
					 * the connection's first syscall whole. */
					if (m->proto == AION_PROTO_UNKNOWN) {
						dbsim_data(m, ch->dir, c.p + ch->off, ch->len);
						continue;
					}
					sg[ns++] = (struct dseg){ c.p + ch->off, a };
					if (rest > 2) {
						sg[ns++] = (struct dseg){ c.p + ch->off + a, rest / 3 };
						sg[ns++] = (struct dseg){ c.p + ch->off + a + rest / 3, rest / 3 };
						sg[ns++] = (struct dseg){ c.p + ch->off + a + 2 * (rest / 3),
									  rest - 2 * (rest / 3) };
					} else if (rest) {
						sg[ns++] = (struct dseg){ c.p + ch->off + a, rest };
					}
					dbsim_segs(m, ch->dir, sg, ns, ch->len);
				}
				judge(m, &caps[i], persps[p], 0, "%s as writev (first segment %zu)", caps[i].name,
				      firsts[f]);
				dbsim_free(m);
			}
		}
		conv_free(&c);
	}
	finish("writev");
}

/* ---- detection ------------------------------------------------------------------ */

static __u8 detect_bytes(const void *p, size_t n, size_t total, __u8 *req)
{
	struct aion_http_scan *s = calloc(1, sizeof(*s));
	__u8 r;

	assert_non_null(s);
	dbsim_poison(s);
	if (n > AION_WINDOW)
		n = AION_WINDOW;
	memcpy(s->buf, p, n);
	s->len = (__u32)n;
	s->total = (__u32)total;
	*req = 0xee;
	r = aion_detect(s, req);
	free(s);
	return r;
}

static const __u8 tls_hello[] = {
	0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03, 0x5f, 0x1c, 0x7a, 0x3e, 0x9b,
	0x02, 0x44, 0xd1, 0x0a, 0x0d, 0x0a, 0x47, 0x45, 0x54, 0x20, 0x2f, 0x20, 0x48, 0x54, 0x54, 0x50,
	0x2f, 0x31, 0x2e, 0x31, 0x0d, 0x0a, 0x00, 0x00, 0x3e, 0x13, 0x02, 0x13, 0x03, 0x13, 0x01, 0xc0,
	0x2c, 0xc0, 0x30, 0x00, 0x9f, 0xcc, 0xa9, 0xcc, 0xa8, 0xcc, 0xaa, 0xc0, 0x2b, 0xc0, 0x2f, 0x00,
};

static __u64 rng_state;

static __u32 rng(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return (__u32)(rng_state >> 16);
}

/* The first chunk of each capture is told apart as its protocol, and which
 * side sent it; the first bytes of other protocols are not taken for a
 * database. */
/* The first bytes of real TLS connections (tests/unit/captures/tls_*.bin,
 * recorded between curl -k and nginx with ssl): a TLS record, whatever
 * the cut, and never taken for a protocol. Clear-text openings are not. */
static int tls_bytes(const void *p, size_t n)
{
	struct aion_http_scan *s = calloc(1, sizeof(*s));
	int r;

	assert_non_null(s);
	dbsim_poison(s);
	if (n > AION_WINDOW)
		n = AION_WINDOW;
	memcpy(s->buf, p, n);
	s->len = (__u32)n;
	s->total = (__u32)n;
	r = aion_tls_record(s);
	free(s);
	return r;
}

static void test_tls_record(void **state UNUSED)
{
	static const char *const files[] = { "tests/unit/captures/tls_curl_client_hello.bin",
					     "tests/unit/captures/tls_nginx_server_hello.bin" };
	static const char get[] = "GET / HTTP/1.1\r\n", resp[] = "HTTP/1.1 200 OK\r\n";
	static const __u8 alert[] = { 0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x28 };
	static const __u8 appdata[] = { 0x17, 0x03, 0x03, 0x00, 0x20 };
	static const __u8 sslv2[] = { 0x80, 0x2e, 0x01, 0x03, 0x01 };
	__u8 buf[4096], req;
	size_t i, k, n;

	for (i = 0; i < 2; i++) {
		FILE *f = fopen(files[i], "rb");

		if (!f)
			fail_msg("%s: %s (run make unit from the repo root)", files[i], strerror(errno));
		n = fread(buf, 1, sizeof(buf), f);
		fclose(f);
		assert_true(n > 100);
		assert_int_equal(buf[0], 0x16);
		assert_int_equal(tls_bytes(buf, n), 1);
		assert_int_equal(detect_bytes(buf, n, n, &req), AION_PROTO_UNKNOWN);
		/* Three bytes tell; fewer do not. */
		for (k = 0; k < 3; k++)
			assert_int_equal(tls_bytes(buf, k), 0);
		assert_int_equal(tls_bytes(buf, 3), 1);
	}
	assert_int_equal(tls_bytes(alert, sizeof(alert)), 1);
	assert_int_equal(tls_bytes(appdata, sizeof(appdata)), 1);
	assert_int_equal(tls_bytes(sslv2, sizeof(sslv2)), 0);
	assert_int_equal(tls_bytes(get, sizeof(get) - 1), 0);
	assert_int_equal(tls_bytes(resp, sizeof(resp) - 1), 0);
	/* A PostgreSQL SSLRequest is clear text; the TLS after it is not. */
	{
		static const __u8 sslreq[] = { 0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f };

		assert_int_equal(tls_bytes(sslreq, sizeof(sslreq)), 0);
	}
}

static void test_detect(void **state UNUSED)
{
	static const __u8 gssenc[] = { 0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x30 };
	static const __u8 cancel[] = { 0, 0, 0, 16, 0x04, 0xd2, 0x16, 0x2e, 0, 0, 0x30, 0x39, 1, 2, 3, 4 };
	static const char pgq[] = "Q\0\0\0\x0dselect 1";
	static const char mycom[] = "\x09\0\0\0\x03select 1";
	__u8 buf[4096], req;
	size_t i, k;

	for (i = 0; i < NCAPS; i++) {
		struct conv c = conv_load(caps[i].name);
		const struct chunk *ch = &c.ch[0];
		int want_req = caps[i].proto != AION_PROTO_MYSQL; /* MySQL: the server speaks first */

		assert_int_equal(ch->dir, want_req ? DB_DIR_C : DB_DIR_S);
		if (detect_bytes(c.p, ch->len, ch->len, &req) != caps[i].proto || req != want_req)
			fail_msg("%s: first chunk (%zu bytes) detected as %u/%u", caps[i].name, ch->len,
				 detect_bytes(c.p, ch->len, ch->len, &req), req);
		/* Fewer than 4 bytes tell nothing (the kernel carries them). */
		for (k = 0; k < 4 && k < ch->len; k++)
			assert_int_equal(detect_bytes(c.p, k, k, &req), AION_PROTO_UNKNOWN);
		conv_free(&c);
	}
	/* The PG startup packet without SSLRequest (psycopg2, sslmode=disable). */
	{
		struct conv c = conv_load("pg_psycopg2");

		assert_int_equal(be32toh(*(__u32 *)(c.p + 4)), 196608);
		assert_int_equal(detect_bytes(c.p, c.ch[0].len, c.ch[0].len, &req), AION_PROTO_PG);
		assert_int_equal(req, 1);
		conv_free(&c);
	}
	assert_int_equal(detect_bytes(gssenc, 8, 8, &req), AION_PROTO_PG);
	assert_int_equal(req, 1);
	/* CancelRequest comes on a connection of its own and expects nothing. */
	assert_int_equal(detect_bytes(cancel, 16, 16, &req), AION_PROTO_UNKNOWN);
	/* An adopted connection: a whole simple query, a COM_QUERY packet. */
	assert_int_equal(detect_bytes(pgq, 14, 14, &req), AION_PROTO_PG);
	assert_int_equal(detect_bytes(mycom, 13, 13, &req), AION_PROTO_MYSQL);
	assert_int_equal(req, 1);
	/* ... but not one with more bytes behind it (it may be anything). */
	assert_int_equal(detect_bytes(pgq, 14, 20, &req), AION_PROTO_UNKNOWN);
	assert_int_equal(detect_bytes(mycom, 13, 20, &req), AION_PROTO_UNKNOWN);

	/* HTTP stays HTTP. */
	assert_int_equal(detect_bytes("GET / HTTP/1.1\r\n\r\n", 18, 18, &req), AION_PROTO_HTTP);
	assert_int_equal(req, 1);
	assert_int_equal(detect_bytes("HTTP/1.1 200 OK\r\n\r\n", 19, 19, &req), AION_PROTO_HTTP);
	assert_int_equal(req, 0);
	/* TLS, SSH, HTTP/2, a Redis inline command, a RESP reply: not a database. */
	assert_int_equal(detect_bytes(tls_hello, sizeof(tls_hello), 517, &req), AION_PROTO_UNKNOWN);
	assert_int_equal(detect_bytes("\x16\x03\x03\x00\x5a\x02\x00\x00\x56\x03\x03", 11, 95, &req),
			 AION_PROTO_UNKNOWN);
	assert_int_equal(detect_bytes("SSH-2.0-OpenSSH_9.2p1\r\n", 23, 23, &req), AION_PROTO_UNKNOWN);
	assert_int_equal(detect_bytes("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 24, 24, &req), AION_PROTO_UNKNOWN);
	assert_int_equal(detect_bytes("PING\r\n", 6, 6, &req), AION_PROTO_UNKNOWN);
	assert_int_equal(detect_bytes("+OK\r\n", 5, 5, &req), AION_PROTO_UNKNOWN);
	assert_int_equal(detect_bytes("*2\r\n:1\r\n:2\r\n", 12, 12, &req), AION_PROTO_UNKNOWN);
	assert_int_equal(detect_bytes("*-1\r\n$3\r\n", 9, 9, &req), AION_PROTO_UNKNOWN);
	/* Random bytes (none can meet the rules by chance in practice). */
	rng_state = 0x2545f4914f6cdd1dULL;
	for (i = 0; i < 200000; i++) {
		size_t n = 4 + rng() % 200;

		for (k = 0; k < n; k++)
			buf[k] = (__u8)rng();
		if (detect_bytes(buf, n, n + (rng() & 1 ? 0 : rng() % 5000), &req) != AION_PROTO_UNKNOWN) {
			char hex[64];

			for (k = 0; k < 16 && k < n; k++)
				sprintf(hex + 2 * k, "%02x", buf[k]);
			fail_msg("random bytes %s... (%zu) detected as %u", hex, n,
				 detect_bytes(buf, n, n, &req));
		}
	}
}

/* The kernel's detect() one byte per syscall: the first bytes are carried
 * until they tell (covered for whole captures by test_captures_byte_by_byte);
 * 64 syscalls that never tell give the connection up. */
static void test_detect_gives_up(void **state UNUSED)
{
	struct dbsim *m = dbsim_new(AION_ROLE_CLIENT, AION_PROTO_UNKNOWN);
	int i;

	for (i = 0; i < 63; i++)
		dbsim_data(m, DB_DIR_C, tls_hello, sizeof(tls_hello));
	assert_int_equal(m->proto, AION_PROTO_UNKNOWN);
	dbsim_data(m, DB_DIR_C, tls_hello, sizeof(tls_hello));
	assert_int_equal(m->proto, AION_PROTO_NONE);
	dbsim_data(m, DB_DIR_C, "*1\r\n$4\r\nPING\r\n", 14);
	assert_int_equal(m->proto, AION_PROTO_NONE);
	assert_int_equal(m->nev, 0);
	dbsim_free(m);
}

/* ---- garbage ---------------------------------------------------------------------- */

struct garbage {
	const char *what;
	const __u8 *p;
	size_t n;
};

/* After a whole valid conversation, bytes that are not the protocol on
 * both directions: no event comes of them, nothing crashes, and (PG,
 * Redis) the framing is given up for good. */
static void test_garbage_after_stream(void **state UNUSED)
{
	static const char *const names[] = { "pg_psql", "pg_pipeline_error", "my_cli", "re_big",
					     "re_bench_get" };
	static __u8 ramp[600], rnd[3000];
	const struct garbage g[] = {
		{ "HTTP request", (const __u8 *)"GET / HTTP/1.1\r\nHost: x\r\n\r\n", 27 },
		{ "TLS ClientHello", tls_hello, sizeof(tls_hello) },
		{ "SSH banner", (const __u8 *)"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n", 32 },
		{ "binary ramp", ramp, sizeof(ramp) },
		{ "random", rnd, sizeof(rnd) },
	};
	size_t i, j, p, k;
	int bad = 0;

	for (i = 0; i < sizeof(ramp); i++)
		ramp[i] = (__u8)(i + 0x80);
	rng_state = 0x1234abcd5678ef01ULL;
	for (i = 0; i < sizeof(rnd); i++)
		rnd[i] = (__u8)rng();
	for (i = 0; i < N(names); i++) {
		struct conv c = conv_load(names[i]);
		for (j = 0; j < N(g); j++) {
			for (p = 0; p < N(persps); p++) {
				struct dbsim *m = dbsim_new(persps[p], AION_PROTO_UNKNOWN);
				char why[4096];
				__u32 nev;

				feed(m, &c, 0, c.nch, 0);
				nev = m->nev;
				/* Garbage as a request, then as a response, in
				 * pieces, then a valid request and response. */
				dbsim_data(m, DB_DIR_C, g[j].p, g[j].n);
				dbsim_data(m, DB_DIR_S, g[j].p, g[j].n);
				for (k = 0; k < g[j].n; k += 7)
					dbsim_data(m, k & 8 ? DB_DIR_S : DB_DIR_C, g[j].p + k,
						   g[j].n - k < 7 ? g[j].n - k : 7);
				if (m->nev != nev) {
					describe(m, nev, why, sizeof(why));
					print_error("%s + %s (%s): events from garbage: %s\n", names[i], g[j].what,
						    pname(persps[p]), why);
					bad++;
				}
				dbsim_free(m);
			}
		}
		conv_free(&c);
	}
	if (bad)
		fail_msg("%d cases made events out of garbage", bad);
}

/* Garbage that each parser must refuse: the framing is given up (counted),
 * and a valid request after it leaves no event. */
static void test_garbage_gives_up(void **state UNUSED)
{
	static const struct {
		__u8 proto;
		int dir;
		const char *what;
		const char *p;
		size_t n;
	} g[] = {
		{ AION_PROTO_PG, DB_DIR_C, "HTTP request", "GET / HTTP/1.1\r\n\r\n", 18 },
		{ AION_PROTO_PG, DB_DIR_C, "length < 4", "Q\0\0\0\x02xxxxx", 10 },
		{ AION_PROTO_PG, DB_DIR_S, "length > 1 GB", "D\x7f\0\0\0xxxx", 9 },
		{ AION_PROTO_REDIS, DB_DIR_C, "binary", "\x16\x03\x01\x02\x00\x01", 6 },
		{ AION_PROTO_REDIS, DB_DIR_C, "bad array length", "*x\r\n", 4 },
		{ AION_PROTO_REDIS, DB_DIR_C, "bulk expected", "*2\r\n+GET\r\n", 10 },
		{ AION_PROTO_REDIS, DB_DIR_C, "array too long", "*2000000\r\n", 10 },
		{ AION_PROTO_REDIS, DB_DIR_S, "unknown type", "@1\r\n", 4 },
		{ AION_PROTO_REDIS, DB_DIR_S, "bad bulk length", "$1x\r\n", 5 },
	};
	size_t i;

	for (i = 0; i < N(g); i++) {
		struct dbsim *m = dbsim_new(AION_ROLE_CLIENT, g[i].proto);
		static const char pgq[] = "Q\0\0\0\x0dselect 1";
		static const char req[] = "*1\r\n$4\r\nPING\r\n";

		if (g[i].dir == DB_DIR_S) /* a request waiting for the answer */
			dbsim_data(m, DB_DIR_C, g[i].proto == AION_PROTO_PG ? pgq : req,
				   g[i].proto == AION_PROTO_PG ? 14 : 14);
		dbsim_data(m, g[i].dir, g[i].p, g[i].n);
		if (m->garbage != 1 || m->fr[g[i].dir == DB_DIR_C ? 1 : 0].state != 0xff)
			fail_msg("%s (proto %u): garbage %u state %u", g[i].what, g[i].proto, m->garbage,
				 m->fr[g[i].dir == DB_DIR_C ? 1 : 0].state);
		/* Lost for good on that side. */
		dbsim_data(m, g[i].dir, g[i].proto == AION_PROTO_PG ? (g[i].dir == DB_DIR_C ? pgq : "Z\0\0\0\x05I")
								     : (g[i].dir == DB_DIR_C ? req : "+PONG\r\n"),
			   g[i].proto == AION_PROTO_PG ? (g[i].dir == DB_DIR_C ? 14 : 6)
						       : (g[i].dir == DB_DIR_C ? 14 : 7));
		assert_int_equal(m->nev, 0);
		assert_int_equal(m->bad_text, 0);
		dbsim_free(m);
	}
}

/* Random bytes on a connection already taken for each protocol (an
 * adopted one, or detection fooled): never a crash, never a text outside
 * the window, and the invariants of db_sim.h hold. Run the binary under
 * valgrind or ASan to check it never reads outside. */
static void test_garbage_random(void **state UNUSED)
{
	static __u8 buf[8192];
	static const __u8 protos[] = { AION_PROTO_PG, AION_PROTO_MYSQL, AION_PROTO_REDIS };
	__u32 it, i;

	rng_state = 0x9e3779b97f4a7c15ULL;
	for (it = 0; it < 6000; it++) {
		__u32 n = 1 + rng() % sizeof(buf), off = 0;
		struct dbsim *m = dbsim_new(persps[it & 1], protos[(it >> 1) % 3]);

		for (i = 0; i < n; i++)
			buf[i] = (__u8)rng();
		while (off < n) {
			__u32 k = 1 + rng() % (n - off);

			dbsim_data(m, rng() & 1 ? DB_DIR_C : DB_DIR_S, buf + off, k);
			off += k;
		}
		assert_int_equal(m->bad_text, 0);
		dbsim_free(m);
	}
}

/* Captures with bytes flipped, cut at random places: whatever the events,
 * the driver's invariants hold and no text comes from outside the window. */
static void test_mutated_captures(void **state UNUSED)
{
	size_t i;
	__u32 it, j;

	rng_state = 0x1234567887654321ULL;
	for (i = 0; i < NCAPS; i++) {
		struct conv c = conv_load(caps[i].name);
		size_t n = c.n < 8192 ? c.n : 8192;
		__u8 *p = malloc(n);

		assert_non_null(p);
		for (it = 0; it < 200; it++) {
			struct dbsim *m = dbsim_new(persps[it & 1], it & 2 ? caps[i].proto : AION_PROTO_UNKNOWN);
			__u32 flips = 1 + rng() % 8;
			size_t ci;

			memcpy(p, c.p, n);
			for (j = 0; j < flips; j++)
				p[rng() % n] = j & 1 ? (__u8)rng() : (__u8)"\r\n\0\xff\xfe*$-:QZECP\x03\x17"[rng() % 16];
			for (ci = 0; ci < c.nch && c.ch[ci].off < n; ci++) {
				size_t o = c.ch[ci].off, e = o + c.ch[ci].len < n ? o + c.ch[ci].len : n;

				while (o < e) {
					size_t k = 1 + rng() % (e - o);

					dbsim_data(m, c.ch[ci].dir, p + o, k);
					o += k;
				}
			}
			assert_int_equal(m->bad_text, 0);
			dbsim_free(m);
		}
		free(p);
		conv_free(&c);
	}
}

/* ---- scenarios -------------------------------------------------------------------- */

/* A built conversation, both roles, as built and in syscalls of 1, 7 and
 * 1000 bytes. */
static void check_conv(const struct conv *c, const struct capspec *cs, const char *what)
{
	static const size_t pieces[] = { 0, 1, 7, 1000 };
	size_t p, k, g;

	for (p = 0; p < N(persps); p++) {
		for (k = 0; k < N(pieces); k++) {
			int first_split = pieces[k] && pieces[k] < c->ch[0].len;

			for (g = 0; g < (first_split ? 2u : 1u); g++) {
				struct dbsim *m = dbsim_new(persps[p], g ? cs->proto : AION_PROTO_UNKNOWN);

				feed(m, c, 0, c->nch, pieces[k]);
				judge(m, cs, persps[p], first_split && !g, "%s, pieces of %zu%s", what, pieces[k],
				      g ? ", protocol known" : "");
				dbsim_free(m);
			}
		}
	}
}

/* 100 commands in one write (real bytes, redis-py): identical ones share
 * one queue entry, every reply completes one of them. */
static void test_redis_pipeline_100(void **state UNUSED)
{
	struct conv c = conv_load("re_pipeline_get100");
	struct dbsim *m = dbsim_new(AION_ROLE_CLIENT, AION_PROTO_UNKNOWN);
	size_t i;

	assert_int_equal(c.nch, 2);
	feed(m, &c, 0, 1, 0);
	assert_int_equal(m->tail - m->head, 1); /* one entry, count 100 */
	assert_int_equal(m->q[m->head & (AION_QUEUE_DEPTH - 1)].count, 100);
	feed(m, &c, 1, 2, 0);
	/* The 100 answers in one read: one record for all (successes are
	 * reported together). */
	assert_int_equal(ops_of(m, m->nev), 100);
	assert_int_equal(m->nev, 1);
	for (i = 0; i < m->nev; i++) {
		assert_int_equal(m->ev[i].op, AION_DB_COMMAND);
		assert_int_equal(m->ev[i].error, 0);
		assert_int_equal(m->ev[i].text_len, 3);
		assert_memory_equal(m->ev[i].text, "GET", 3);
	}
	assert_int_equal(m->exhausted, 0);
	assert_int_equal(m->queue_full, 0);
	dbsim_free(m);
	conv_free(&c);
}

/* PG pipeline: several Executes before one Sync, an error in the middle:
 * those before it succeed, the failing one and every one the server
 * skipped fail with its class; the next pipeline is clean. */
static void test_pg_pipeline_error(void **state UNUSED)
{
	static const struct xev x[] = {
		{ AION_DB_EXECUTE, 0, "select 1", NULL, "", 0, 0 },
		{ AION_DB_EXECUTE, 0, "insert into a values (1)", NULL, "", 0, 0 },
		{ AION_DB_EXECUTE, PGERR('2', '3'), "insert into a values (1)", NULL, "", 0, 0 },
		{ AION_DB_EXECUTE, PGERR('2', '3'), "select 3", NULL, "", 0, 0 },
		{ AION_DB_EXECUTE, PGERR('2', '3'), "select 4", NULL, "", 0, 0 },
		{ AION_DB_EXECUTE, 0, "select 5", NULL, "s5", 0, 0 },
		{ AION_DB_STMT, 0, "select 5", NULL, "s5", 0, 0 },
		{ AION_DB_EXECUTE, 0, "select 6", NULL, "", 0, 0 },
		{ AION_DB_QUERY, PGERR('4', '2'), "select nope", NULL, NULL, 0, 0 },
	};
	/* Order of the events: an Execute is reported when it completes; the
	 * STMT of the named statement when its Parse is sent. */
	const struct xev order[] = { x[0], x[1], x[2], x[3], x[4], x[6], x[5], x[7], x[8] };
	struct capspec cs = { "pipeline", AION_PROTO_PG, order, N(order), 0 };
	struct build b = { 0 };

	/* Startup with an SSLRequest, as libpq does. */
	bput(&b, DB_DIR_C, 0, "\0\0\0\x08\x04\xd2\x16\x2f", 8);
	bput(&b, DB_DIR_S, 0, "N", 1);
	bput(&b, DB_DIR_C, 0, "\0\0\0\x13\0\x03\0\0user\0aion\0", 19);
	pg_msg(&b, DB_DIR_S, 0, 'R', "\0\0\0\0", 4);
	pg_msg(&b, DB_DIR_S, 1, 'Z', "I", 1);
	/* Pipeline 1: five Executes, one Sync; the third fails. */
	pg_extended(&b, "", "select 1");
	pg_extended(&b, "", "insert into a values (1)");
	pg_extended(&b, "", "insert into a values (1)");
	pg_extended(&b, "", "select 3");
	pg_extended(&b, "", "select 4");
	pg_msg(&b, DB_DIR_C, 1, 'S', NULL, 0);
	pg_row_result(&b, 0);
	pg_row_result(&b, 1);
	pg_msg(&b, DB_DIR_S, 1, '1', NULL, 0);
	pg_msg(&b, DB_DIR_S, 1, '2', NULL, 0);
	pg_error(&b, 1, "23505");
	pg_msg(&b, DB_DIR_S, 0, 'Z', "I", 1); /* in a syscall of its own */
	/* Pipeline 2: a named statement and an unnamed one, clean. */
	pg_extended(&b, "s5", "select 5");
	pg_extended(&b, "", "select 6");
	pg_msg(&b, DB_DIR_C, 1, 'S', NULL, 0);
	pg_row_result(&b, 0);
	pg_row_result(&b, 1);
	pg_msg(&b, DB_DIR_S, 1, 'Z', "I", 1);
	/* A simple query that fails: its error is noted, reported at Z. */
	pg_msg(&b, DB_DIR_C, 0, 'Q', "select nope", 12);
	pg_error(&b, 0, "42703");
	pg_msg(&b, DB_DIR_S, 1, 'Z', "I", 1);

	begin();
	check_conv(&b.c, &cs, "PG pipeline with an error");
	conv_free(&b.c);
	finish(__func__);
}

/* MySQL: a multi-statement query (real bytes in my_cli) and a CALL whose
 * results carry SERVER_MORE_RESULTS_EXISTS: one operation each, ended by
 * the last OK; the error of a later statement ends it too. */
static void test_mysql_more_results(void **state UNUSED)
{
	static const struct xev x[] = {
		Q("SELECT 1 AS a; SELECT 2 AS b, 3 AS c"),
		Q("CALL p()"),
		QE("SELECT 1; SELEC 2", 1064),
		Q("DO 1"),
	};
	struct capspec cs = { "more results", AION_PROTO_MYSQL, x, N(x), 0 };
	struct conv real = conv_load("my_cli");
	struct build b = { 0 };
	size_t i;

	/* The greeting (real), the handshake (real), its OK. */
	for (i = 0; i < 3; i++)
		bput(&b, real.ch[i].dir, 0, real.p + real.ch[i].off, real.ch[i].len);
	/* The real multi-statement exchange. */
	for (i = 0; i < real.nch; i++) {
		if (real.ch[i].dir == DB_DIR_C && real.ch[i].len > 5 &&
		    !memcmp(real.p + real.ch[i].off + 5, "SELECT 1 AS a;", 14)) {
			bput(&b, DB_DIR_C, 0, real.p + real.ch[i].off, real.ch[i].len);
			bput(&b, DB_DIR_S, 0, real.p + real.ch[i + 1].off, real.ch[i + 1].len);
			break;
		}
	}
	assert_true(i < real.nch);
	/* CALL: a result set (MORE_RESULTS in its EOF), then the final OK. */
	my_query(&b, 0, "CALL p()");
	my_pkt(&b, DB_DIR_S, 0, 1, "\x01", 1);
	my_pkt(&b, DB_DIR_S, 1, 2, "\x03" "def\0\0\0\x01x\0\x0c\x3f\0\x01\0\0\0\x08\x81\0\0\0\0", 23);
	my_pkt(&b, DB_DIR_S, 1, 3, "\xfe\0\0\x0a\0", 5);
	my_pkt(&b, DB_DIR_S, 1, 4, "\x01" "1", 2);
	my_pkt(&b, DB_DIR_S, 1, 5, "\xfe\0\0\x0a\0", 5); /* MORE_RESULTS | AUTOCOMMIT */
	my_ok(&b, 0, 6, 0x0002);                      /* in a later syscall */
	/* A multi-statement whose second statement fails. */
	my_query(&b, 0, "SELECT 1; SELEC 2");
	my_pkt(&b, DB_DIR_S, 0, 1, "\x01", 1);
	my_pkt(&b, DB_DIR_S, 1, 2, "\x03" "def\0\0\0\x01" "1\0\x0c\x3f\0\x01\0\0\0\x08\x81\0\0\0\0", 23);
	my_pkt(&b, DB_DIR_S, 1, 3, "\xfe\0\0\x0a\0", 5);
	my_pkt(&b, DB_DIR_S, 1, 4, "\x01" "1", 2);
	my_pkt(&b, DB_DIR_S, 1, 5, "\xfe\0\0\x0a\0", 5);
	my_err(&b, 1, 6, 1064);
	my_query(&b, 0, "DO 1");
	my_ok(&b, 0, 1, 0x0002);

	begin();
	check_conv(&b.c, &cs, "MySQL more results");
	conv_free(&b.c);
	conv_free(&real);
	finish(__func__);
}

/* A MySQL binary result set whose column definitions the server leaves
 * out (MariaDB's MARIADB_CLIENT_CACHE_METADATA: the column count packet
 * ends with a 0 "metadata follows" byte): COM_STMT_EXECUTE of a prepared
 * SELECT that returns one row, then a query. Bytes as in my_prepared. */
static void test_mysql_execute_cached_metadata(void **state UNUSED)
{
	static const struct xev x[] = {
		{ AION_DB_PREPARE, 0, "SELECT id, name FROM t WHERE id >= ?", NULL, NULL, 1, 0 },
		{ AION_DB_STMT, 0, "SELECT id, name FROM t WHERE id >= ?", NULL, NULL, 1, 0 },
		{ AION_DB_EXECUTE, 0, "", NULL, NULL, 1, 0 },
		Q("DO 1"),
	};
	struct capspec cs = { "cached metadata", AION_PROTO_MYSQL, x, N(x), 0 };
	struct conv real = conv_load("my_prepared");
	struct build b = { 0 };
	size_t i;

	for (i = 0; i < 3; i++)
		bput(&b, real.ch[i].dir, 0, real.p + real.ch[i].off, real.ch[i].len);
	for (i = 0; i < real.nch; i++) /* COM_STMT_PREPARE and its answer */
		if (real.ch[i].dir == DB_DIR_C && real.p[real.ch[i].off + 4] == 0x16)
			break;
	assert_true(i + 1 < real.nch);
	bput(&b, DB_DIR_C, 0, real.p + real.ch[i].off, real.ch[i].len);
	bput(&b, DB_DIR_S, 0, real.p + real.ch[i + 1].off, real.ch[i + 1].len);
	/* COM_STMT_EXECUTE stmt 1, the real second execution's answer: column
	 * count 2 + "no metadata", EOF, one binary row, EOF. */
	for (i += 2; i < real.nch; i++)
		if (real.ch[i].dir == DB_DIR_C && real.p[real.ch[i].off + 4] == 0x17 &&
		    real.p[real.ch[i].off + 19] == '2')
			break;
	assert_true(i + 1 < real.nch);
	bput(&b, DB_DIR_C, 0, real.p + real.ch[i].off, real.ch[i].len);
	bput(&b, DB_DIR_S, 0, real.p + real.ch[i + 1].off, real.ch[i + 1].len);
	assert_memory_equal(real.p + real.ch[i + 1].off, "\x02\0\0\x01\x02\0\x05\0\0\x02\xfe", 11);
	my_query(&b, 0, "DO 1");
	my_ok(&b, 0, 1, 0x0002);

	begin();
	check_conv(&b.c, &cs, "MySQL execute, cached metadata");
	conv_free(&b.c);
	conv_free(&real);
	finish(__func__);
}

/* PG, from the protocol documentation: an Execute with a row limit ends in
 * PortalSuspended, the next one in CommandComplete; two pipelines, each
 * with its Sync, written before any answer (the first fails: its other
 * Executes fail with it, the second is clean); NoticeResponse and
 * ParameterStatus between results; an empty query; a simple query with
 * two statements, the second failing. */
static void test_pg_portal_syncs_notices(void **state UNUSED)
{
	static const struct xev x[] = {
		{ AION_DB_EXECUTE, 0, "select * from big", NULL, "", 0, 0 }, /* suspended */
		{ AION_DB_EXECUTE, 0, "select * from big", NULL, "", 0, 0 }, /* the rest */
		{ AION_DB_EXECUTE, PGERR('4', '2'), "select nope", NULL, "", 0, 0 },
		{ AION_DB_EXECUTE, PGERR('4', '2'), "select 2", NULL, "", 0, 0 },
		{ AION_DB_EXECUTE, 0, "select 3", NULL, "", 0, 0 },
		{ AION_DB_EXECUTE, 0, "select 4", NULL, "", 0, 0 },
		Q("set application_name = 'web'"),
		Q(""),
		QE("select 1; select 1/0", PGERR('2', '2')),
		Q("select 5"),
	};
	struct capspec cs = { "portal, syncs, notices", AION_PROTO_PG, x, N(x), 0 };
	static const __u8 notice[] = "SNOTICE\0VNOTICE\0C00000\0Mhello\0";
	struct build b = { 0 };
	__u8 e[5] = { 0, 0, 0, 0, 2 }; /* portal "", at most 2 rows */

	bput(&b, DB_DIR_C, 0, "\0\0\0\x13\0\x03\0\0user\0aion\0", 19);
	pg_msg(&b, DB_DIR_S, 0, 'R', "\0\0\0\0", 4);
	pg_msg(&b, DB_DIR_S, 1, 'S', "client_encoding\0UTF8", 21);
	pg_msg(&b, DB_DIR_S, 1, 'Z', "I", 1);
	/* Row limit: Parse, Bind, Execute(2), Execute(2), Sync. */
	pg_msg(&b, DB_DIR_C, 0, 'P', "\0select * from big\0\0", 21);
	pg_msg(&b, DB_DIR_C, 1, 'B', "\0\0\0\0\0\0\0", 8);
	pg_msg(&b, DB_DIR_C, 1, 'E', e, 5);
	pg_msg(&b, DB_DIR_C, 1, 'E', e, 5);
	pg_msg(&b, DB_DIR_C, 1, 'S', NULL, 0);
	pg_msg(&b, DB_DIR_S, 0, '1', NULL, 0);
	pg_msg(&b, DB_DIR_S, 1, '2', NULL, 0);
	pg_msg(&b, DB_DIR_S, 1, 'D', "\0\x01\0\0\0\x01x", 7);
	pg_msg(&b, DB_DIR_S, 1, 'D', "\0\x01\0\0\0\x01y", 7);
	pg_msg(&b, DB_DIR_S, 1, 's', NULL, 0);
	pg_msg(&b, DB_DIR_S, 0, 'D', "\0\x01\0\0\0\x01z", 7);
	pg_msg(&b, DB_DIR_S, 1, 'C', "SELECT 3", 9);
	pg_msg(&b, DB_DIR_S, 1, 'Z', "I", 1);
	/* Two pipelines in one write; the first fails at its first Execute. */
	pg_extended(&b, "", "select nope");
	pg_extended(&b, "", "select 2");
	pg_msg(&b, DB_DIR_C, 1, 'S', NULL, 0);
	pg_extended(&b, "", "select 3");
	pg_extended(&b, "", "select 4");
	pg_msg(&b, DB_DIR_C, 1, 'S', NULL, 0);
	pg_error(&b, 0, "42703");
	pg_msg(&b, DB_DIR_S, 1, 'Z', "I", 1);
	pg_msg(&b, DB_DIR_S, 0, 'N', notice, sizeof(notice));
	pg_row_result(&b, 1);
	pg_row_result(&b, 1);
	pg_msg(&b, DB_DIR_S, 1, 'Z', "I", 1);
	/* SET of a reported parameter: C, S, Z. */
	pg_msg(&b, DB_DIR_C, 0, 'Q', "set application_name = 'web'", 29);
	pg_msg(&b, DB_DIR_S, 0, 'C', "SET", 4);
	pg_msg(&b, DB_DIR_S, 1, 'S', "application_name\0web", 21);
	pg_msg(&b, DB_DIR_S, 1, 'Z', "I", 1);
	/* An empty query: EmptyQueryResponse. */
	pg_msg(&b, DB_DIR_C, 0, 'Q', "", 1);
	pg_msg(&b, DB_DIR_S, 0, 'I', NULL, 0);
	pg_msg(&b, DB_DIR_S, 1, 'Z', "I", 1);
	/* Two statements, the second fails: one operation, its error. */
	pg_msg(&b, DB_DIR_C, 0, 'Q', "select 1; select 1/0", 21);
	pg_msg(&b, DB_DIR_S, 0, 'T', "\0\x01?column?\0\0\0\0\0\0\0\0\0\0\x17\0\x04\xff\xff\xff\xff\0\0", 29);
	pg_msg(&b, DB_DIR_S, 1, 'D', "\0\x01\0\0\0\x01" "1", 7);
	pg_msg(&b, DB_DIR_S, 1, 'C', "SELECT 1", 9);
	pg_msg(&b, DB_DIR_S, 1, 'N', notice, sizeof(notice));
	pg_error(&b, 1, "22012");
	pg_msg(&b, DB_DIR_S, 1, 'Z', "I", 1);
	pg_msg(&b, DB_DIR_C, 0, 'Q', "select 5", 9);
	pg_row_result(&b, 0);
	pg_msg(&b, DB_DIR_S, 1, 'Z', "I", 1);

	begin();
	check_conv(&b.c, &cs, "PG portal, syncs, notices");
	{
		/* The suspended Execute ends with PortalSuspended, not later. */
		struct dbsim *m = dbsim_new(AION_ROLE_CLIENT, AION_PROTO_UNKNOWN);

		feed(m, &b.c, 0, b.c.nch, 0);
		assert_true(m->nev >= 2);
		assert_int_equal(m->ev[0].count, 1);
		assert_int_equal(m->ev[1].count, 1);
		assert_int_equal(m->ev[1].op, AION_DB_EXECUTE);
		assert_int_equal(m->ev[1].error, 0);
		assert_true(m->ev[0].end < m->ev[1].end);
		dbsim_free(m);
	}
	conv_free(&b.c);
	finish(__func__);
}

/* MySQL's classic binary protocol (no MariaDB metadata cache), from the
 * protocol documentation: PREPARE_OK with parameter and column
 * definitions, a COM_STMT_EXECUTE that returns a row (definitions sent),
 * one that fails, COM_PING, COM_INIT_DB, COM_STMT_CLOSE (no answer), a
 * PREPARE that fails. */
static void test_mysql_classic_prepared(void **state UNUSED)
{
	static const struct xev x[] = {
		{ AION_DB_PREPARE, 0, "SELECT a FROM t WHERE id = ?", NULL, NULL, 7, 0 },
		{ AION_DB_STMT, 0, "SELECT a FROM t WHERE id = ?", NULL, NULL, 7, 0 },
		{ AION_DB_EXECUTE, 0, "", NULL, NULL, 7, 0 },
		{ AION_DB_EXECUTE, 1146, "", NULL, NULL, 7, 0 },
		{ AION_DB_PING, 0, "", NULL, NULL, 0, 0 },
		{ AION_DB_OTHER, 0, "", NULL, NULL, 0x02, 0 }, /* COM_INIT_DB */
		{ AION_DB_PREPARE, 1064, "SELEC x", NULL, NULL, 0, 0 },
		{ AION_DB_PREPARE, 0, "INSERT INTO t VALUES (?, ?)", NULL, NULL, 8, 0 },
		{ AION_DB_STMT, 0, "INSERT INTO t VALUES (?, ?)", NULL, NULL, 8, 0 },
		{ AION_DB_EXECUTE, 0, "", NULL, NULL, 8, 0 },
		Q("DO 1"),
	};
	struct capspec cs = { "classic prepared", AION_PROTO_MYSQL, x, N(x), 0 };
	static const char def[] = "\x03" "def\0\0\0\x01" "a\0\x0c\x3f\0\x0b\0\0\0\x03\x01\0\0\0\0";
	struct conv real = conv_load("my_cli");
	struct build b = { 0 };
	size_t i;

	for (i = 0; i < 3; i++) /* the real greeting, handshake, OK */
		bput(&b, real.ch[i].dir, 0, real.p + real.ch[i].off, real.ch[i].len);
	my_pkt(&b, DB_DIR_C, 0, 0, "\x16SELECT a FROM t WHERE id = ?", 29);
	my_pkt(&b, DB_DIR_S, 0, 1, "\0\x07\0\0\0\x01\0\x01\0\0\0\0", 12); /* id 7, 1 column, 1 param */
	my_pkt(&b, DB_DIR_S, 1, 2, def, sizeof(def) - 1);
	my_pkt(&b, DB_DIR_S, 1, 3, "\xfe\0\0\x02\0", 5);
	my_pkt(&b, DB_DIR_S, 1, 4, def, sizeof(def) - 1);
	my_pkt(&b, DB_DIR_S, 1, 5, "\xfe\0\0\x02\0", 5);
	/* COM_STMT_EXECUTE 7, no cursor, 1 iteration, one LONG parameter = 1 */
	my_pkt(&b, DB_DIR_C, 0, 0, "\x17\x07\0\0\0\0\x01\0\0\0\0\x01\x03\0\x01\0\0\0", 18);
	my_pkt(&b, DB_DIR_S, 0, 1, "\x01", 1);
	my_pkt(&b, DB_DIR_S, 1, 2, def, sizeof(def) - 1);
	my_pkt(&b, DB_DIR_S, 1, 3, "\xfe\0\0\x02\0", 5);
	my_pkt(&b, DB_DIR_S, 1, 4, "\0\0\x2a\0\0\0", 6); /* binary row: a = 42 */
	my_pkt(&b, DB_DIR_S, 1, 5, "\xfe\0\0\x02\0", 5);
	my_pkt(&b, DB_DIR_C, 0, 0, "\x17\x07\0\0\0\0\x01\0\0\0\0\x01\x03\0\x02\0\0\0", 18);
	my_err(&b, 0, 1, 1146);
	my_pkt(&b, DB_DIR_C, 0, 0, "\x0e", 1);
	my_ok(&b, 0, 1, 0x0002);
	my_pkt(&b, DB_DIR_C, 0, 0, "\x02" "db", 3);
	my_ok(&b, 0, 1, 0x0002);
	my_pkt(&b, DB_DIR_C, 0, 0, "\x19\x07\0\0\0", 5); /* COM_STMT_CLOSE: no answer */
	my_pkt(&b, DB_DIR_C, 0, 0, "\x16SELEC x", 8);
	my_err(&b, 0, 1, 1064);
	/* No columns, two parameters: their definitions, one EOF. */
	my_pkt(&b, DB_DIR_C, 0, 0, "\x16INSERT INTO t VALUES (?, ?)", 28);
	my_pkt(&b, DB_DIR_S, 0, 1, "\0\x08\0\0\0\0\0\x02\0\0\0\0", 12);
	my_pkt(&b, DB_DIR_S, 1, 2, def, sizeof(def) - 1);
	my_pkt(&b, DB_DIR_S, 1, 3, def, sizeof(def) - 1);
	my_pkt(&b, DB_DIR_S, 1, 4, "\xfe\0\0\x02\0", 5);
	my_pkt(&b, DB_DIR_C, 0, 0, "\x17\x08\0\0\0\0\x01\0\0\0\0\x01\x03\0\x03\0\x01\0\0\0\x02\0\0\0", 24);
	my_ok(&b, 0, 1, 0x0002);
	my_query(&b, 0, "DO 1");
	my_ok(&b, 0, 1, 0x0002);

	begin();
	check_conv(&b.c, &cs, "MySQL classic prepared");
	conv_free(&b.c);
	conv_free(&real);
	finish(__func__);
}

/* Redis inline commands (telnet style) after a RESP one; RESP3 replies
 * with an attribute, a set, a double, a big number, a verbatim string,
 * a null and a blob error; a nested array. */
static void test_redis_inline_and_types(void **state UNUSED)
{
	static const struct xev x[] = {
		RC("PING"), RC("SET"), RC("get"), RC("PING"),
		RC("CLIENT"), RC("SMEMBERS"), RC("ZSCORE"), RC("DEBUG"), RC("LOLWUT"), RC("GET"),
		{ AION_DB_COMMAND, 1, "FCALL", NULL, NULL, 0, 0 }, /* blob error: no prefix */
		RC("EXEC"),
	};
	struct capspec cs = { "inline and types", AION_PROTO_REDIS, x, N(x), 0 };
	const char *ping[] = { "PING" };
	struct build b = { 0 };

	re_cmd(&b, 0, 1, ping);
	bstr(&b, DB_DIR_S, 0, "+PONG\r\n");
	bstr(&b, DB_DIR_C, 0, "SET k v\r\n");
	bstr(&b, DB_DIR_S, 0, "+OK\r\n");
	bstr(&b, DB_DIR_C, 0, "get k\r\n");
	bstr(&b, DB_DIR_S, 0, "$1\r\nv\r\n");
	bstr(&b, DB_DIR_C, 0, "\r\nPING\r\n"); /* an empty line first */
	bstr(&b, DB_DIR_S, 0, "+PONG\r\n");
	bstr(&b, DB_DIR_C, 0, "*3\r\n$6\r\nCLIENT\r\n$8\r\nTRACKING\r\n$2\r\nON\r\n");
	bstr(&b, DB_DIR_S, 0, "|1\r\n+key-popularity\r\n%1\r\n$1\r\na\r\n,0.5\r\n+OK\r\n");
	bstr(&b, DB_DIR_C, 0, "*2\r\n$8\r\nSMEMBERS\r\n$1\r\ns\r\n");
	bstr(&b, DB_DIR_S, 0, "~2\r\n$1\r\na\r\n#t\r\n");
	bstr(&b, DB_DIR_C, 0, "*3\r\n$6\r\nZSCORE\r\n$1\r\nz\r\n$1\r\nm\r\n");
	bstr(&b, DB_DIR_S, 0, ",3.14\r\n");
	bstr(&b, DB_DIR_C, 0, "*2\r\n$5\r\nDEBUG\r\n$6\r\nBIGNUM\r\n");
	bstr(&b, DB_DIR_S, 0, "(3492890328409238509324850943850943825024385\r\n");
	bstr(&b, DB_DIR_C, 0, "*1\r\n$6\r\nLOLWUT\r\n");
	bstr(&b, DB_DIR_S, 0, "=15\r\ntxt:Some string\r\n");
	bstr(&b, DB_DIR_C, 0, "*2\r\n$3\r\nGET\r\n$1\r\nx\r\n");
	bstr(&b, DB_DIR_S, 0, "_\r\n");
	bstr(&b, DB_DIR_C, 0, "*3\r\n$5\r\nFCALL\r\n$1\r\nf\r\n$1\r\n0\r\n");
	bstr(&b, DB_DIR_S, 0, "!21\r\nSYNTAX invalid syntax\r\n");
	bstr(&b, DB_DIR_C, 0, "*1\r\n$4\r\nEXEC\r\n");
	bstr(&b, DB_DIR_S, 0, "*3\r\n*2\r\n:1\r\n*0\r\n$-1\r\n*-1\r\n");

	begin();
	check_conv(&b.c, &cs, "Redis inline and RESP3 types");
	conv_free(&b.c);
	finish(__func__);
}

/* ---- window boundaries --------------------------------------------------------------- */

/* A first message of growing size pushes the messages after it over the
 * window boundary (offset AION_WINDOW in the syscall) one byte at a time;
 * everything in one syscall per direction. */
static void sweep(const char *what, __u8 proto, void (*build)(struct build *, size_t pad),
		  const struct xev *x, size_t nx)
{
	struct capspec cs = { what, proto, x, nx, 0 };
	size_t pad, p;

	begin();
	for (pad = 0; pad < AION_WINDOW + 64; pad++) {
		struct build b = { 0 };

		build(&b, pad);
		for (p = 0; p < N(persps); p++) {
			struct dbsim *m = dbsim_new(persps[p], proto);

			feed(m, &b.c, 0, b.c.nch, 0);
			judge(m, &cs, persps[p], 0, "%s, padding %zu", what, pad);
			dbsim_free(m);
		}
		conv_free(&b.c);
	}
	finish(what);
}

static char padsql[AION_WINDOW + 128];

static const char *pad_sql(const char *head, size_t pad)
{
	size_t n = strlen(head);

	memcpy(padsql, head, n);
	memset(padsql + n, 'x', pad);
	padsql[n + pad] = 0;
	return padsql;
}

/* PG: a pipeline of Parse/Bind/Describe/Execute steps and one Sync in one
 * write, and their results in one read. */
static void build_pg(struct build *b, size_t pad)
{
	pg_extended(b, "", pad_sql("select '", pad));
	pg_extended(b, "", "insert into orders_archive values (1)");
	pg_extended(b, "st", "update accounts set balance = balance - 1");
	pg_msg(b, DB_DIR_C, 1, 'S', NULL, 0);
	pg_row_result(b, 0);
	pg_row_result(b, 1);
	pg_msg(b, DB_DIR_S, 1, '1', NULL, 0);
	pg_msg(b, DB_DIR_S, 1, '2', NULL, 0);
	pg_error(b, 1, "40001");
	pg_msg(b, DB_DIR_S, 1, 'Z', "I", 1);
}

static void test_window_boundary_pg(void **state UNUSED)
{
	/* The first text is the padded one build_pg() left in padsql. */
	struct xev x[] = {
		{ AION_DB_EXECUTE, 0, padsql, NULL, "", 0, 0 },
		{ AION_DB_EXECUTE, 0, "insert into orders_archive values (1)", NULL, "", 0, 0 },
		{ AION_DB_STMT, 0, "update accounts set balance = balance - 1", NULL, "st", 0, 0 },
		{ AION_DB_EXECUTE, PGERR('4', '0'), "update accounts set balance = balance - 1", NULL, "st", 0, 0 },
	};
	/* STMT is emitted with the Parse, before the first Execute completes. */
	{
		struct xev o[] = { x[2], x[0], x[1], x[3] };

		sweep("PG pipeline over the window boundary", AION_PROTO_PG, build_pg, o, 4);
	}
}

/* MySQL: two COM_QUERY packets in one write (a client that pipelines, or a
 * writev), and a response with rows before an error packet. */
static void build_my(struct build *b, size_t pad)
{
	my_query(b, 0, pad_sql("SELECT '", pad));
	my_query(b, 1, "INSERT INTO orders_archive VALUES (1)");
	my_query(b, 1, "UPDATE accounts SET balance = balance - 1");
	my_pkt(b, DB_DIR_S, 0, 1, "\x01", 1);
	my_pkt(b, DB_DIR_S, 1, 2, "\x03" "def\0\0\0\x01x\0\x0c\x3f\0\x01\0\0\0\x08\x81\0\0\0\0", 23);
	my_pkt(b, DB_DIR_S, 1, 3, "\xfe\0\0\x02\0", 5);
	my_pkt(b, DB_DIR_S, 1, 4, "\x01" "1", 2);
	my_pkt(b, DB_DIR_S, 1, 5, "\xfe\0\0\x02\0", 5);
	my_ok(b, 1, 1, 0x0002);
	my_err(b, 1, 1, 1213);
}

static void test_window_boundary_mysql(void **state UNUSED)
{
	static const struct xev x[] = {
		Q(padsql), /* as build_my() left it */
		Q("INSERT INTO orders_archive VALUES (1)"),
		QE("UPDATE accounts SET balance = balance - 1", 1213),
	};

	sweep("MySQL queries over the window boundary", AION_PROTO_MYSQL, build_my, x, N(x));
}

/* Redis: a pipeline whose commands and replies (an error among them) cross
 * the window boundary. */
static void build_re(struct build *b, size_t pad)
{
	const char *set[] = { "SET", "k", pad_sql("", pad) };
	const char *hget[] = { "HGET", "h", "f" };
	const char *incr[] = { "INCR", "k" };
	char h[32];

	re_cmd(b, 0, 3, set);
	re_cmd(b, 1, 3, hget);
	re_cmd(b, 1, 2, incr);
	sprintf(h, "$%zu\r\n", pad);
	bstr(b, DB_DIR_S, 0, "+OK\r\n");
	bstr(b, DB_DIR_S, 1, h);
	bput(b, DB_DIR_S, 1, padsql, pad); /* the value is the reply to HGET */
	bstr(b, DB_DIR_S, 1, "\r\n-ERR value is not an integer or out of range\r\n");
}

static void test_window_boundary_redis(void **state UNUSED)
{
	static const struct xev x[] = { RC("SET"), RC("HGET"), RE("INCR", "ERR") };

	sweep("Redis pipeline over the window boundary", AION_PROTO_REDIS, build_re, x, N(x));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_captures_as_captured),
		cmocka_unit_test(test_captures_byte_by_byte),
		cmocka_unit_test(test_captures_fixed_pieces),
		cmocka_unit_test(test_captures_small_windows),
		cmocka_unit_test(test_captures_split_everywhere),
		cmocka_unit_test(test_captures_writev),
		cmocka_unit_test(test_detect),
		cmocka_unit_test(test_tls_record),
		cmocka_unit_test(test_detect_gives_up),
		cmocka_unit_test(test_garbage_after_stream),
		cmocka_unit_test(test_garbage_gives_up),
		cmocka_unit_test(test_garbage_random),
		cmocka_unit_test(test_mutated_captures),
		cmocka_unit_test(test_redis_pipeline_100),
		cmocka_unit_test(test_pg_pipeline_error),
		cmocka_unit_test(test_mysql_more_results),
		cmocka_unit_test(test_mysql_execute_cached_metadata),
		cmocka_unit_test(test_pg_portal_syncs_notices),
		cmocka_unit_test(test_mysql_classic_prepared),
		cmocka_unit_test(test_redis_inline_and_types),
		cmocka_unit_test(test_window_boundary_pg),
		cmocka_unit_test(test_window_boundary_mysql),
		cmocka_unit_test(test_window_boundary_redis),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
