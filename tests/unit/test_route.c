// SPDX-License-Identifier: GPL-2.0
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "route.h"

#define UNUSED __attribute__((unused))

struct route_case {
	const char *in;
	size_t len;	/* 0: strlen(in) */
	int truncated;
	const char *out;
};

static void run_cases(const struct route_case *c, size_t n)
{
	char out[ROUTE_MAX];
	size_t i, len, r;

	for (i = 0; i < n; i++) {
		len = c[i].len ? c[i].len : strlen(c[i].in);
		memset(out, 'X', sizeof(out));
		r = route__normalize(c[i].in, len, c[i].truncated, out,
				     sizeof(out));
		if (strcmp(out, c[i].out))
			fail_msg("case %zu: '%.*s' (truncated=%d): got '%s', want '%s'",
				 i, (int)len, c[i].in, c[i].truncated, out,
				 c[i].out);
		assert_int_equal(r, strlen(c[i].out));
	}
}

#define RUN(cases) run_cases(cases, sizeof(cases) / sizeof(cases[0]))

static void test_plain_paths(void **state UNUSED)
{
	static const struct route_case cases[] = {
		{ "/", 0, 0, "/" },
		{ "", 0, 0, "/" },
		{ "/users", 0, 0, "/users" },
		{ "/api/v1/users", 0, 0, "/api/v1/users" },
		{ "/a/b/", 0, 0, "/a/b/" },
		{ "//a//b", 0, 0, "//a//b" },	/* nothing collapsed */
		{ "/static/app.min.js", 0, 0, "/static/app.min.js" },
		{ "/v2/items-list", 0, 0, "/v2/items-list" },
		{ "/%7Euser", 0, 0, "/%7Euser" },
		{ "*", 0, 0, "*" },
		{ "/*", 0, 0, "/*" },
	};

	RUN(cases);
}

static void test_terminators(void **state UNUSED)
{
	static const struct route_case cases[] = {
		{ "/search?q=1", 0, 0, "/search" },
		{ "/search?q=/x/123", 0, 0, "/search" },
		{ "/page#frag", 0, 0, "/page" },
		{ "/x HTTP/1.1", 0, 0, "/x" },
		{ "?a=b", 0, 0, "/" },
		{ "/a\0/b", 5, 0, "/a" },
		{ "/users/42?x=1", 0, 0, "/users/{id}" },
		{ "*?", 0, 0, "*" },
	};

	RUN(cases);
}

static void test_absolute_form(void **state UNUSED)
{
	static const struct route_case cases[] = {
		{ "http://example.com/x", 0, 0, "/x" },
		{ "https://example.com:8443/a/b?c=d", 0, 0, "/a/b" },
		{ "HTTP://Example.COM/users/17", 0, 0, "/users/{id}" },
		{ "http://example.com", 0, 0, "/" },
		{ "http://example.com?x=1", 0, 0, "/" },
		{ "http://example.com/", 0, 0, "/" },
		{ "http://example.com/a/partial", 0, 1, "/a/*" },
		{ "http://example.com", 0, 1, "/*" },
		/* Not absolute: stays a path, empty segment kept. */
		{ "/http://x/y", 0, 0, "/http://x/y" },
	};

	RUN(cases);
}

static void test_numeric_ids(void **state UNUSED)
{
	static const struct route_case cases[] = {
		{ "/users/123", 0, 0, "/users/{id}" },
		{ "/users/0/orders/99999999999999999999", 0, 0,
		  "/users/{id}/orders/{id}" },
		{ "/1/2/3", 0, 0, "/{id}/{id}/{id}" },
		{ "/v1/x", 0, 0, "/v1/x" },
		{ "/12a", 0, 0, "/12a" },
		{ "/-1", 0, 0, "/-1" },
		{ "/1.5", 0, 0, "/1.5" },
	};

	RUN(cases);
}

static void test_uuids(void **state UNUSED)
{
	static const struct route_case cases[] = {
		{ "/o/123e4567-e89b-12d3-a456-426614174000", 0, 0, "/o/{id}" },
		{ "/o/123E4567-E89B-12D3-A456-426614174000/items", 0, 0,
		  "/o/{id}/items" },
		{ "/o/123e4567-E89B-12d3-A456-426614174000", 0, 0, "/o/{id}" },
		/* No digit: only the UUID rule can catch these. */
		{ "/o/abcdefab-cdef-abcd-efab-cdefabcdefab", 0, 0, "/o/{id}" },
		{ "/o/ABCDEFAB-CDEF-ABCD-EFAB-CDEFABCDEFAB", 0, 0, "/o/{id}" },
		/* Wrong group sizes / length / a non-hex letter: not UUIDs. */
		{ "/o/abcdefabc-def-abcd-efab-cdefabcdefab", 0, 0,
		  "/o/abcdefabc-def-abcd-efab-cdefabcdefab" },
		{ "/o/abcdefab-cdef-abcd-efab-cdefabcdefa", 0, 0,
		  "/o/abcdefab-cdef-abcd-efab-cdefabcdefa" },
		{ "/o/abcdefab-cdef-abcd-efab-cdefabcdefag", 0, 0,
		  "/o/abcdefab-cdef-abcd-efab-cdefabcdefag" },
		/* With digits, a near-UUID is still a token. */
		{ "/o/123e4567e-89b-12d3-a456-42661417400", 0, 0, "/o/{id}" },
	};

	RUN(cases);
}

static void test_hex_ids(void **state UNUSED)
{
	static const struct route_case cases[] = {
		{ "/h/0123456789abcde", 0, 0, "/h/0123456789abcde" },	/* 15 */
		{ "/h/0123456789abcdef", 0, 0, "/h/{id}" },		/* 16 */
		{ "/h/0123456789ABCDEF", 0, 0, "/h/{id}" },
		{ "/h/deadbeefdeadbeef", 0, 0, "/h/{id}" },	/* no digit */
		{ "/h/deadbeefdeadbee", 0, 0, "/h/deadbeefdeadbee" },
		{ "/h/da39a3ee5e6b4b0d3255bfef95601890afd80709", 0, 0,
		  "/h/{id}" },
		{ "/h/0123456789abcdeg", 0, 0, "/h/0123456789abcdeg" },
	};

	RUN(cases);
}

static void test_token_ids(void **state UNUSED)
{
	static const struct route_case cases[] = {
		/* 20 chars with a digit */
		{ "/s/abcdefghijklmnopqrs1", 0, 0, "/s/{id}" },
		{ "/s/abcdefghijklmnopqrst12", 0, 0, "/s/{id}" },
		/* 19 chars */
		{ "/s/abcdefghijklmnopqr1", 0, 0, "/s/abcdefghijklmnopqr1" },
		/* 20+ chars, no digit: a word */
		{ "/s/getAllTheThingsForUsers", 0, 0,
		  "/s/getAllTheThingsForUsers" },
		{ "/s/Ab_cd-Ef_gh-Ij_kl-90", 0, 0, "/s/{id}" },
		/* a '.' is not token material */
		{ "/s/abcdefghij.klmnopqrs1", 0, 0, "/s/abcdefghij.klmnopqrs1" },
		{ "/reset/eyJhbGciOiJIUzI1NiJ9/confirm", 0, 0,
		  "/reset/{id}/confirm" },
	};

	RUN(cases);
}

static void test_non_ascii(void **state UNUSED)
{
	static const struct route_case cases[] = {
		{ "/caf\xc3\xa9", 0, 0, "/caf__" },
		{ "/a\tb", 0, 0, "/a_b" },
		{ "/a\x7f", 0, 0, "/a_" },
		{ "/\x01\x02", 0, 0, "/__" },
		{ "/\xff/12", 0, 0, "/_/{id}" },
		/* A non-ASCII byte spoils an id: kept, sanitised. */
		{ "/123\xe2\x82\xac", 0, 0, "/123___" },
	};

	RUN(cases);
}

static void test_truncation(void **state UNUSED)
{
	static const struct route_case cases[] = {
		{ "/a/b/partialsegm", 0, 1, "/a/b/*" },
		{ "/a/b/", 0, 1, "/a/b/*" },
		{ "/partial", 0, 1, "/*" },
		{ "/users/123/ord", 0, 1, "/users/{id}/*" },
		{ "/users/123", 0, 1, "/users/*" },
		/* A query (or other end) seen: the path is whole. */
		{ "/a/b?long=quer", 0, 1, "/a/b" },
		{ "/a/b#fra", 0, 1, "/a/b" },
		{ "/a/b HTT", 0, 1, "/a/b" },
		{ "/a/b/\0\0\0", 8, 1, "/a/b/" },
		{ "", 0, 1, "/" },
	};

	RUN(cases);
}

static void test_64_byte_capture(void **state UNUSED)
{
	/* What the kernel hands over: 64 bytes, cut in the middle. */
	const char *cap =
		"/api/v1/tenants/42/projects/123e4567-e89b-12d3-a456-42661417";
	char out[ROUTE_MAX];

	assert_int_equal(route__normalize(cap, strlen(cap), 1, out, sizeof(out)),
			 strlen("/api/v1/tenants/{id}/projects/*"));
	assert_string_equal(out, "/api/v1/tenants/{id}/projects/*");

	/* Worst-case growth fits ROUTE_MAX: 64 bytes of "1/" pairs. */
	char ids[65];
	size_t i, r;

	for (i = 0; i < 64; i++)
		ids[i] = i % 2 ? '1' : '/';
	ids[64] = '\0';
	r = route__normalize(ids, 64, 0, out, sizeof(out));
	assert_int_equal(r, 32 * 5);
	assert_true(r < ROUTE_MAX);
}

static void test_out_buffer_limits(void **state UNUSED)
{
	char out[16];
	size_t r;

	/* "/users/{id}" is 11 chars: 12 bytes fit exactly. */
	memset(out, 'X', sizeof(out));
	r = route__normalize("/users/42", 9, 0, out, 12);
	assert_int_equal(r, 11);
	assert_string_equal(out, "/users/{id}");
	assert_int_equal(out[12], 'X');

	/* One byte short: prefix, NUL-terminated, nothing written beyond. */
	memset(out, 'X', sizeof(out));
	r = route__normalize("/users/42", 9, 0, out, 11);
	assert_int_equal(r, 11);
	assert_string_equal(out, "/users/{id");
	assert_int_equal(out[11], 'X');

	memset(out, 'X', sizeof(out));
	r = route__normalize("/abc", 4, 0, out, 1);
	assert_int_equal(r, 4);
	assert_int_equal(out[0], '\0');
	assert_int_equal(out[1], 'X');

	/* out_sz 0: nothing written at all. */
	memset(out, 'X', sizeof(out));
	r = route__normalize("/abc", 4, 0, out, 0);
	assert_int_equal(r, 4);
	assert_int_equal(out[0], 'X');
	r = route__normalize("/abc", 4, 0, NULL, 0);
	assert_int_equal(r, 4);

	/* "*" and "/" in a 1-byte buffer. */
	r = route__normalize("*", 1, 0, out, 1);
	assert_int_equal(r, 1);
	assert_string_equal(out, "");
	r = route__normalize("", 0, 0, out, 2);
	assert_int_equal(r, 1);
	assert_string_equal(out, "/");
}

static void test_len_bounds_input(void **state UNUSED)
{
	char out[ROUTE_MAX];

	/* Bytes past len are never read as part of the path. */
	route__normalize("/abc/def", 4, 0, out, sizeof(out));
	assert_string_equal(out, "/abc");
	route__normalize("/abc/def", 4, 1, out, sizeof(out));
	assert_string_equal(out, "/*");
	route__normalize(NULL, 0, 0, out, sizeof(out));
	assert_string_equal(out, "/");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_plain_paths),
		cmocka_unit_test(test_terminators),
		cmocka_unit_test(test_absolute_form),
		cmocka_unit_test(test_numeric_ids),
		cmocka_unit_test(test_uuids),
		cmocka_unit_test(test_hex_ids),
		cmocka_unit_test(test_token_ids),
		cmocka_unit_test(test_non_ascii),
		cmocka_unit_test(test_truncation),
		cmocka_unit_test(test_64_byte_capture),
		cmocka_unit_test(test_out_buffer_limits),
		cmocka_unit_test(test_len_bounds_input),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
