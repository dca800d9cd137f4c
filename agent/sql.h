/* SPDX-License-Identifier: MIT */
/* The operation and first table of a SQL statement, from its first bytes:
 * a bounded tokenizer, never a parser. Query text itself never leaves it. */
#ifndef AION_SQL_H
#define AION_SQL_H

#include <stddef.h>

#define SQL_NAME 64

/* text: the statement's first n bytes; truncated: there was more. op gets
 * the first keyword in upper case ("SELECT"; "_OTHER" for a word that is not
 * a statement keyword; "" when there is none), table
 * the first table of a SELECT/INSERT/REPLACE/UPDATE/DELETE/TRUNCATE
 * ("" when unsure: a subquery, a name cut by the end of the text). */
void sql__parse(const char *text, size_t n, int truncated, char op[SQL_NAME], char table[SQL_NAME]);

#endif /* AION_SQL_H */
