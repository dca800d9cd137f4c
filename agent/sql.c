// SPDX-License-Identifier: MIT
#include <ctype.h>
#include <string.h>

#include "sql.h"

struct lex {
	const char *s;
	size_t n, i;
	int truncated;
};

/* Skip blanks and comments; 0 when the text ends (or a comment does not). */
static int skip(struct lex *l)
{
	while (l->i < l->n) {
		char c = l->s[l->i];

		if (isspace((unsigned char)c)) {
			l->i++;
		} else if (c == '-' && l->i + 1 < l->n && l->s[l->i + 1] == '-') {
			while (l->i < l->n && l->s[l->i] != '\n')
				l->i++;
		} else if (c == '#') {
			while (l->i < l->n && l->s[l->i] != '\n')
				l->i++;
		} else if (c == '/' && l->i + 1 < l->n && l->s[l->i + 1] == '*') {
			const char *e = NULL;
			size_t j;

			for (j = l->i + 2; j + 1 < l->n; j++)
				if (l->s[j] == '*' && l->s[j + 1] == '/') {
					e = l->s + j;
					break;
				}
			if (!e) {
				l->i = l->n;
				return 0;
			}
			l->i = (size_t)(e - l->s) + 2;
		} else {
			return 1;
		}
	}
	return 0;
}

static int word_char(char c)
{
	return isalnum((unsigned char)c) || c == '_' || c == '$';
}

/* The next keyword, upper case, into w (at most SQL_NAME - 1); its length. */
static size_t keyword(struct lex *l, char w[SQL_NAME])
{
	size_t k = 0;

	w[0] = '\0';
	if (!skip(l) || !isalpha((unsigned char)l->s[l->i]))
		return 0;
	while (l->i < l->n && word_char(l->s[l->i])) {
		if (k < SQL_NAME - 1)
			w[k++] = (char)toupper((unsigned char)l->s[l->i]);
		l->i++;
	}
	w[k] = '\0';
	return k;
}

/* A table name: identifiers joined by '.', each plain or quoted ("x",
 * `x`, [x]); the quotes are dropped. 0 when it is not one or may be cut. */
static int table_name(struct lex *l, char out[SQL_NAME])
{
	size_t k = 0;

	out[0] = '\0';
	if (!skip(l))
		return 0;
	for (;;) {
		char c = l->s[l->i], close = c == '"' ? '"' : c == '`' ? '`' : c == '[' ? ']' : 0;

		if (close) {
			l->i++;
			for (;;) {
				while (l->i < l->n && l->s[l->i] != close) {
					if (k >= SQL_NAME - 1 || !isprint((unsigned char)l->s[l->i]))
						goto bad;
					out[k++] = l->s[l->i++];
				}
				if (l->i >= l->n)
					goto bad; /* cut inside the quotes */
				l->i++;
				/* A doubled quote stands for one ("a""b" is a"b). */
				if (l->i < l->n && l->s[l->i] == close && close != ']') {
					if (k >= SQL_NAME - 1)
						goto bad;
					out[k++] = close;
					l->i++;
					continue;
				}
				if (l->i >= l->n && l->truncated)
					goto bad; /* a doubled quote may follow */
				break;
			}
		} else if (word_char(c)) {
			while (l->i < l->n && word_char(l->s[l->i])) {
				if (k >= SQL_NAME - 1)
					goto bad;
				out[k++] = l->s[l->i++];
			}
		} else {
			goto bad;
		}
		if (l->i >= l->n && l->truncated)
			goto bad; /* the name may go on */
		if (l->i < l->n && l->s[l->i] == '.' && k < SQL_NAME - 1) {
			out[k++] = '.';
			l->i++;
			if (l->i >= l->n)
				goto bad;
			continue;
		}
		break;
	}
	out[k] = '\0';
	return k > 0;
bad:
	out[0] = '\0';
	return 0;
}

/* PostgreSQL dollar quoting at l->i ($$...$$, $tag$...$tag$): skip it, 1;
 * 0 when it is not one ($1, a parameter). At the end of the text when the
 * closing tag is not there. */
static int dollar_quote(struct lex *l)
{
	size_t st = l->i, j = l->i + 1, tl;

	while (j < l->n && (isalnum((unsigned char)l->s[j]) || l->s[j] == '_'))
		j++;
	if (j >= l->n || l->s[j] != '$' || (j > st + 1 && isdigit((unsigned char)l->s[st + 1])))
		return 0;
	tl = j + 1 - st; /* the tag, both dollars included */
	for (j = j + 1; j + tl <= l->n; j++)
		if (!memcmp(l->s + j, l->s + st, tl)) {
			l->i = j + tl;
			return 1;
		}
	l->i = l->n;
	return 1;
}

/* Move to the keyword kw at parenthesis depth 0 outside quotes; 1 when found. */
static int seek_keyword(struct lex *l, const char *kw)
{
	size_t kn = strlen(kw);
	int depth = 0;

	while (skip(l)) {
		char c = l->s[l->i];

		if (c == '\'' || c == '"' || c == '`') {
			l->i++;
			while (l->i < l->n && l->s[l->i] != c)
				l->i++;
			if (l->i >= l->n)
				return 0;
			l->i++;
		} else if (c == '$' && dollar_quote(l)) {
			if (l->i >= l->n)
				return 0; /* cut inside it */
		} else if (c == '(') {
			depth++;
			l->i++;
		} else if (c == ')') {
			depth--;
			l->i++;
		} else if (word_char(c)) {
			size_t st = l->i;

			while (l->i < l->n && word_char(l->s[l->i]))
				l->i++;
			if (!depth && l->i - st == kn && !strncasecmp(l->s + st, kw, kn))
				return 1;
		} else {
			l->i++;
		}
	}
	return 0;
}

/* The table after FROM (or TRUNCATE [TABLE]): PostgreSQL's ONLY is skipped;
 * LATERAL (a function or subquery) names no table. */
static void from_table(struct lex *l, char table[SQL_NAME])
{
	char w[SQL_NAME];
	size_t at = l->i;

	table[0] = '\0';
	if (keyword(l, w)) {
		if (!strcmp(w, "LATERAL"))
			return;
		if (strcmp(w, "ONLY"))
			l->i = at;
	}
	table_name(l, table);
}

/* Statement keywords reported as db_operation_name; anything else (a typo,
 * a dialect's oddity) is _OTHER, so that label values stay few. */
static const char *const verbs[] = {
	"ALTER", "ANALYZE", "BEGIN", "CALL", "CHECKPOINT", "CLOSE", "CLUSTER", "COMMENT", "COMMIT",
	"COPY", "CREATE", "DEALLOCATE", "DECLARE", "DELETE", "DESC", "DESCRIBE", "DISCARD", "DO",
	"DROP", "END", "EXECUTE", "EXPLAIN", "FETCH", "GRANT", "HANDLER", "INSERT", "LISTEN", "LOAD",
	"LOCK", "MERGE", "MOVE", "NOTIFY", "OPTIMIZE", "PREPARE", "REINDEX", "RELEASE", "RENAME",
	"REPLACE", "RESET", "REVOKE", "ROLLBACK", "SAVEPOINT", "SELECT", "SET", "SHOW", "START",
	"TABLE", "TRUNCATE", "UNLISTEN", "UPDATE", "USE", "VACUUM", "VALUES", "WITH",
};

static int known_verb(const char *w)
{
	size_t lo = 0, hi = sizeof(verbs) / sizeof(verbs[0]);

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		int c = strcmp(w, verbs[mid]);

		if (!c)
			return 1;
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return 0;
}

void sql__parse(const char *text, size_t n, int truncated, char op[SQL_NAME], char table[SQL_NAME])
{
	struct lex l = { .s = text, .n = n, .truncated = truncated };
	char w[SQL_NAME];

	op[0] = table[0] = '\0';
	/* "(SELECT ...)": a parenthesised statement. */
	while (skip(&l) && l.s[l.i] == '(')
		l.i++;
	if (!keyword(&l, op))
		return;
	if (!known_verb(op)) {
		strcpy(op, "_OTHER");
		return;
	}
	if (!strcmp(op, "SELECT")) {
		if (seek_keyword(&l, "FROM"))
			from_table(&l, table);
	} else if (!strcmp(op, "INSERT") || !strcmp(op, "REPLACE")) {
		while (keyword(&l, w) && strcmp(w, "INTO"))
			if (strcmp(w, "IGNORE") && strcmp(w, "LOW_PRIORITY") && strcmp(w, "DELAYED") &&
			    strcmp(w, "HIGH_PRIORITY"))
				return;
		if (!strcmp(w, "INTO"))
			table_name(&l, table);
	} else if (!strcmp(op, "UPDATE")) {
		size_t at = l.i;

		while (keyword(&l, w) && (!strcmp(w, "LOW_PRIORITY") || !strcmp(w, "IGNORE") ||
					   !strcmp(w, "ONLY")))
			at = l.i;
		l.i = at;
		table_name(&l, table);
	} else if (!strcmp(op, "DELETE")) {
		if (seek_keyword(&l, "FROM"))
			from_table(&l, table);
	} else if (!strcmp(op, "TRUNCATE")) {
		size_t at = l.i;

		if (!keyword(&l, w) || strcmp(w, "TABLE"))
			l.i = at;
		from_table(&l, table);
	}
}
