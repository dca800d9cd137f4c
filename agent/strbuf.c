// SPDX-License-Identifier: GPL-2.0
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "strbuf.h"

/* Shared empty string so buf is a valid C string before any growth;
 * cap == 0 marks it as not owned. */
static char strbuf__empty[1];

void strbuf__init(struct strbuf *sb)
{
	sb->buf = strbuf__empty;
	sb->len = 0;
	sb->cap = 0;
	sb->oom = 0;
}

void strbuf__free(struct strbuf *sb)
{
	if (!sb)
		return;
	if (sb->cap)
		free(sb->buf);
	strbuf__init(sb);
}

void strbuf__reset(struct strbuf *sb)
{
	sb->len = 0;
	sb->oom = 0;
	if (sb->cap)
		sb->buf[0] = '\0';
}

int strbuf__reserve(struct strbuf *sb, size_t n)
{
	size_t need, cap;
	char *p;

	if (sb->oom)
		return -ENOMEM;
	if (n > (size_t)-1 - sb->len - 1)
		goto oom;
	need = sb->len + n + 1;
	if (need <= sb->cap)
		return 0;
	cap = sb->cap ? sb->cap : 64;
	while (cap < need)
		cap = cap > (size_t)-1 / 2 ? need : cap * 2;
	p = sb->cap ? realloc(sb->buf, cap) : malloc(cap);
	if (!p)
		goto oom;
	if (!sb->cap)
		p[0] = '\0';
	sb->buf = p;
	sb->cap = cap;
	return 0;
oom:
	sb->oom = 1;
	return -ENOMEM;
}

int strbuf__append(struct strbuf *sb, const char *s, size_t n)
{
	int err;

	err = strbuf__reserve(sb, n);
	if (err)
		return err;
	if (!n)
		return 0;
	memcpy(sb->buf + sb->len, s, n);
	sb->len += n;
	sb->buf[sb->len] = '\0';
	return 0;
}

int strbuf__puts(struct strbuf *sb, const char *s)
{
	return strbuf__append(sb, s, strlen(s));
}

int strbuf__printf(struct strbuf *sb, const char *fmt, ...)
{
	va_list ap, ap2;
	size_t avail;
	int n, err;

	if (sb->oom)
		return -ENOMEM;
	va_start(ap, fmt);
	va_copy(ap2, ap);
	avail = sb->cap ? sb->cap - sb->len : 0;
	n = vsnprintf(avail ? sb->buf + sb->len : NULL, avail, fmt, ap);
	va_end(ap);
	if (n < 0) {
		va_end(ap2);
		if (sb->cap)
			sb->buf[sb->len] = '\0';
		return -EINVAL;
	}
	if ((size_t)n >= avail) {
		err = strbuf__reserve(sb, n);
		if (err) {
			va_end(ap2);
			if (sb->cap)
				sb->buf[sb->len] = '\0';
			return err;
		}
		vsnprintf(sb->buf + sb->len, sb->cap - sb->len, fmt, ap2);
	}
	va_end(ap2);
	sb->len += n;
	return 0;
}

int strbuf__label_value(struct strbuf *sb, const char *s)
{
	const char *run = s;
	const char *esc;
	int err;

	/* Copy runs of plain bytes in one go; only three bytes need escaping. */
	for (; *s; s++) {
		switch (*s) {
		case '\\': esc = "\\\\"; break;
		case '"': esc = "\\\""; break;
		case '\n': esc = "\\n"; break;
		default: continue;
		}
		err = strbuf__append(sb, run, s - run);
		if (!err)
			err = strbuf__append(sb, esc, 2);
		if (err)
			return err;
		run = s + 1;
	}
	return strbuf__append(sb, run, s - run);
}

char *strbuf__detach(struct strbuf *sb, size_t *len)
{
	char *p;

	if (sb->oom) {
		strbuf__free(sb);
		errno = ENOMEM;
		return NULL;
	}
	p = sb->cap ? sb->buf : strdup("");
	if (!p) {
		errno = ENOMEM;
		return NULL;
	}
	if (len)
		*len = sb->len;
	strbuf__init(sb);
	return p;
}
