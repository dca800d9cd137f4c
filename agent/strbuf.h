/* SPDX-License-Identifier: GPL-2.0 */
/* Growable, always NUL-terminated byte buffer for building text output. */
#ifndef AION_STRBUF_H
#define AION_STRBUF_H

#include <stddef.h>

struct strbuf {
	char *buf;	/* never NULL: points at "" until the first growth */
	size_t len, cap;
	int oom;	/* sticky: set on the first allocation failure */
};

/* Empty buffer; allocates nothing. */
void strbuf__init(struct strbuf *sb);
/* Releases memory and re-initialises; accepts NULL. */
void strbuf__free(struct strbuf *sb);
/* len = 0 and oom = 0; keeps the memory for reuse. */
void strbuf__reset(struct strbuf *sb);
/* Make room for n more bytes (plus NUL); 0 or -ENOMEM. */
int strbuf__reserve(struct strbuf *sb, size_t n);
/* Appends n bytes of s; 0 or -ENOMEM (then oom = 1). */
int strbuf__append(struct strbuf *sb, const char *s, size_t n);
int strbuf__puts(struct strbuf *sb, const char *s);
int strbuf__printf(struct strbuf *sb, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Appends s escaped for a Prometheus label value: \\ \" \n. */
int strbuf__label_value(struct strbuf *sb, const char *s);
/* Hands the malloc'd string to the caller (free() it) and re-initialises sb;
 * *len gets its length. NULL + errno on allocation failure or after oom. */
char *strbuf__detach(struct strbuf *sb, size_t *len);

#endif /* AION_STRBUF_H */
