// SPDX-License-Identifier: GPL-2.0
#include <stdbool.h>
#include <string.h>

#include "route.h"

/* Output cursor that counts everything but stores only what fits. */
struct rout {
	char *out;
	size_t sz, n;
};

static void rout__putc(struct rout *o, char c)
{
	if (o->n + 1 < o->sz)
		o->out[o->n] = c;
	o->n++;
}

static void rout__puts(struct rout *o, const char *s)
{
	while (*s)
		rout__putc(o, *s++);
}

static bool is_digit(unsigned char c) { return c >= '0' && c <= '9'; }

static bool is_hex(unsigned char c)
{
	return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static bool is_alpha(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool is_uuid(const unsigned char *s, size_t n)
{
	size_t i;

	if (n != 36)
		return false;
	for (i = 0; i < n; i++) {
		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (s[i] != '-')
				return false;
		} else if (!is_hex(s[i])) {
			return false;
		}
	}
	return true;
}

/* Ids: all digits; a UUID; hex of >= 16 chars; a [A-Za-z0-9_-] token of
 * >= 20 chars holding a digit (session ids, base64url keys). */
static bool segment__is_id(const unsigned char *s, size_t n)
{
	bool digits = true, hex = true, token = true, has_digit = false;
	size_t i;

	if (!n)
		return false;
	if (is_uuid(s, n))
		return true;
	for (i = 0; i < n; i++) {
		unsigned char c = s[i];

		if (is_digit(c))
			has_digit = true;
		else
			digits = false;
		if (!is_hex(c))
			hex = false;
		if (!is_digit(c) && !is_alpha(c) && c != '_' && c != '-')
			token = false;
	}
	return digits || (hex && n >= 16) || (token && n >= 20 && has_digit);
}

static void segment__emit(struct rout *o, const unsigned char *s, size_t n)
{
	size_t i;

	if (segment__is_id(s, n)) {
		rout__puts(o, "{id}");
		return;
	}
	/* Keep label values printable ASCII: no controls, spaces or UTF-8. */
	for (i = 0; i < n; i++)
		rout__putc(o, s[i] >= 0x21 && s[i] <= 0x7e ? (char)s[i] : '_');
}

/* Length of an "scheme://" prefix, or 0 when the target is not absolute. */
static size_t scheme__len(const unsigned char *s, size_t n)
{
	size_t i = 0;

	if (!n || !is_alpha(s[0]))
		return 0;
	while (i < n && (is_alpha(s[i]) || is_digit(s[i]) || s[i] == '+' ||
			 s[i] == '-' || s[i] == '.'))
		i++;
	if (n - i >= 3 && s[i] == ':' && s[i + 1] == '/' && s[i + 2] == '/')
		return i + 3;
	return 0;
}

static bool is_end(unsigned char c)
{
	return c == '?' || c == '#' || c == ' ' || c == '\0';
}

size_t route__normalize(const char *path, size_t len, int truncated,
			char *out, size_t out_sz)
{
	const unsigned char *s = (const unsigned char *)path;
	struct rout o = { .out = out, .sz = out_sz };
	size_t end = 0, start = 0, i, seg;
	bool cut;

	if (!s)
		len = 0;
	while (end < len && !is_end(s[end]))
		end++;
	/* A terminator proves the path itself was captured whole. */
	cut = truncated && end == len;

	/* Absolute form "http://host/x": drop scheme and authority. */
	i = scheme__len(s, end);
	if (i) {
		while (i < end && s[i] != '/')
			i++;
		if (i == end) {
			rout__puts(&o, cut ? "/*" : "/");
			goto done;
		}
		start = i;
	}

	if (start == end) {
		rout__putc(&o, '/');
		goto done;
	}
	if (end - start == 1 && s[start] == '*' && !cut) {
		rout__putc(&o, '*');
		goto done;
	}

	for (seg = start, i = start; i <= end; i++) {
		if (i < end && s[i] != '/')
			continue;
		if (i == end && cut) {
			/* The last segment may be partial: do not guess. */
			rout__putc(&o, '*');
			break;
		}
		segment__emit(&o, s + seg, i - seg);
		if (i < end)
			rout__putc(&o, '/');
		seg = i + 1;
	}
done:
	if (out_sz)
		out[o.n < out_sz ? o.n : out_sz - 1] = '\0';
	return o.n;
}
