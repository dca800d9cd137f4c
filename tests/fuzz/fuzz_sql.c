// SPDX-License-Identifier: MIT
/* libFuzzer harness for the SQL tokenizer (agent/sql.c). Input: byte 0
 * picks where the text is cut for a second look (and bit 7: the text is
 * itself truncated), the rest is the text, in a buffer of exactly its size
 * (ASan sees any read past it). Checked: no crash; op and table are
 * terminated and shorter than SQL_NAME; op is "", "_OTHER" or an upper-case
 * keyword; the table is printable; the first bytes of the text, taken as
 * a truncated text, name no table or the same one (never a part of it). */
#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sql.h"

#define CHECK(x) do { if (!(x)) __builtin_trap(); } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n);

static void well_formed(const char op[SQL_NAME], const char table[SQL_NAME])
{
	size_t i;

	CHECK(memchr(op, 0, SQL_NAME) && memchr(table, 0, SQL_NAME));
	for (i = 0; op[i]; i++)
		CHECK(isupper((unsigned char)op[i]) || isdigit((unsigned char)op[i]) || op[i] == '_' ||
		      op[i] == '$');
	CHECK(!op[0] || !strcmp(op, "_OTHER") || isupper((unsigned char)op[0]));
	for (i = 0; table[i]; i++)
		CHECK(isprint((unsigned char)table[i]));
}

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
	char op[SQL_NAME], table[SQL_NAME], op2[SQL_NAME], table2[SQL_NAME];
	size_t len, cut;
	char *text;

	if (n < 1)
		return 0;
	len = n - 1;
	text = malloc(len ? len : 1);
	if (!text)
		return 0;
	memcpy(text, d + 1, len);
	memset(op, 0x55, sizeof(op));
	memset(table, 0x55, sizeof(table));
	sql__parse(text, len, d[0] >> 7, op, table);
	well_formed(op, table);
	/* Deterministic. */
	sql__parse(text, len, d[0] >> 7, op2, table2);
	CHECK(!strcmp(op, op2) && !strcmp(table, table2));
	/* The first bytes, truncated: the same table or none. */
	cut = len ? (d[0] & 0x7f) * len / 127 : 0;
	sql__parse(text, cut, 1, op2, table2);
	well_formed(op2, table2);
	CHECK(!table2[0] || !strcmp(table2, table));
	free(text);
	return 0;
}
