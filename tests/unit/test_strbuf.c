// SPDX-License-Identifier: GPL-2.0
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "strbuf.h"

static void test_init_is_empty_string(void **state __attribute__((unused)))
{
	struct strbuf sb;

	strbuf__init(&sb);
	assert_non_null(sb.buf);
	assert_string_equal(sb.buf, "");
	assert_int_equal(sb.len, 0);
	strbuf__free(&sb);
	strbuf__free(&sb);	/* twice is fine */
	strbuf__free(NULL);
}

static void test_append_growth(void **state __attribute__((unused)))
{
	struct strbuf sb;
	char chunk[37];
	size_t i, total = 0;

	strbuf__init(&sb);
	for (i = 0; i < sizeof(chunk); i++)
		chunk[i] = 'a' + i % 26;
	/* ~370 KiB in odd-sized pieces to cross many growth steps. */
	for (i = 0; i < 10000; i++) {
		assert_int_equal(strbuf__append(&sb, chunk, i % sizeof(chunk)), 0);
		total += i % sizeof(chunk);
		assert_int_equal(sb.len, total);
		assert_int_equal(sb.buf[sb.len], '\0');
		assert_true(sb.cap > sb.len);
	}
	for (i = 0, total = 0; i < 10000; i++) {
		assert_memory_equal(sb.buf + total, chunk, i % sizeof(chunk));
		total += i % sizeof(chunk);
	}
	assert_int_equal(strlen(sb.buf), sb.len);
	assert_int_equal(sb.oom, 0);
	strbuf__free(&sb);
}

static void test_printf_growth(void **state __attribute__((unused)))
{
	struct strbuf sb;
	char expect[64];
	size_t off = 0;
	int i;

	strbuf__init(&sb);
	for (i = 0; i < 5000; i++)
		assert_int_equal(strbuf__printf(&sb, "line %d %s %.3f\n", i,
						"x", i / 8.0), 0);
	assert_true(sb.len > 64 * 1024);
	for (i = 0; i < 5000; i++) {
		int n = snprintf(expect, sizeof(expect), "line %d %s %.3f\n", i,
				 "x", i / 8.0);

		assert_memory_equal(sb.buf + off, expect, n);
		off += n;
	}
	assert_int_equal(off, sb.len);
	assert_int_equal(sb.buf[sb.len], '\0');
	strbuf__free(&sb);
}

static void test_printf_large_single(void **state __attribute__((unused)))
{
	struct strbuf sb;
	char *big = malloc(20000);

	assert_non_null(big);
	memset(big, 'z', 19999);
	big[19999] = '\0';
	strbuf__init(&sb);
	assert_int_equal(strbuf__puts(&sb, "<"), 0);
	assert_int_equal(strbuf__printf(&sb, "%s>", big), 0);
	assert_int_equal(sb.len, 20001);
	assert_int_equal(sb.buf[0], '<');
	assert_int_equal(sb.buf[20000], '>');
	assert_int_equal(sb.buf[20001], '\0');
	/* An empty format changes nothing. */
	assert_int_equal(strbuf__printf(&sb, "%s", ""), 0);
	assert_int_equal(sb.len, 20001);
	strbuf__free(&sb);
	free(big);
}

static void test_reset_keeps_memory(void **state __attribute__((unused)))
{
	struct strbuf sb;
	char *p;
	size_t cap;

	strbuf__init(&sb);
	assert_int_equal(strbuf__puts(&sb, "hello world"), 0);
	p = sb.buf;
	cap = sb.cap;
	strbuf__reset(&sb);
	assert_int_equal(sb.len, 0);
	assert_string_equal(sb.buf, "");
	assert_ptr_equal(sb.buf, p);
	assert_int_equal(sb.cap, cap);
	assert_int_equal(strbuf__puts(&sb, "again"), 0);
	assert_string_equal(sb.buf, "again");
	strbuf__free(&sb);
}

static void test_label_escaping(void **state __attribute__((unused)))
{
	static const struct {
		const char *in, *out;
	} cases[] = {
		{ "", "" },
		{ "plain", "plain" },
		{ "a\"b", "a\\\"b" },
		{ "a\\b", "a\\\\b" },
		{ "a\nb", "a\\nb" },
		{ "\"\\\n", "\\\"\\\\\\n" },
		{ "tab\tstays", "tab\tstays" },
		{ "ünï", "ünï" },
	};
	struct strbuf sb;
	size_t i;

	strbuf__init(&sb);
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		strbuf__reset(&sb);
		assert_int_equal(strbuf__label_value(&sb, cases[i].in), 0);
		assert_string_equal(sb.buf, cases[i].out);
		assert_int_equal(sb.len, strlen(cases[i].out));
	}
	strbuf__free(&sb);
}

static void test_label_escaping_long(void **state __attribute__((unused)))
{
	struct strbuf sb;
	char in[3001];
	size_t i;

	for (i = 0; i < 3000; i++)
		in[i] = "a\"\\\n"[i % 4];
	in[3000] = '\0';
	strbuf__init(&sb);
	assert_int_equal(strbuf__label_value(&sb, in), 0);
	/* each 4-byte group "a\"\\\n" becomes 7 bytes */
	assert_int_equal(sb.len, 750 * 7);
	for (i = 0; i < 750; i++)
		assert_memory_equal(sb.buf + i * 7, "a\\\"\\\\\\n", 7);
	strbuf__free(&sb);
}

static void test_detach(void **state __attribute__((unused)))
{
	struct strbuf sb;
	size_t len = 99;
	char *p;

	strbuf__init(&sb);
	p = strbuf__detach(&sb, &len);
	assert_non_null(p);
	assert_string_equal(p, "");
	assert_int_equal(len, 0);
	free(p);

	assert_int_equal(strbuf__puts(&sb, "abc"), 0);
	p = strbuf__detach(&sb, &len);
	assert_string_equal(p, "abc");
	assert_int_equal(len, 3);
	assert_int_equal(sb.len, 0);
	assert_string_equal(sb.buf, "");
	free(p);
	strbuf__free(&sb);
}

static void test_oom_is_sticky(void **state __attribute__((unused)))
{
	struct strbuf sb;

	strbuf__init(&sb);
	assert_int_equal(strbuf__puts(&sb, "x"), 0);
	/* A size that cannot be represented: fails without calling malloc. */
	assert_int_equal(strbuf__reserve(&sb, (size_t)-1), -ENOMEM);
	assert_int_equal(sb.oom, 1);
	assert_int_equal(strbuf__puts(&sb, "y"), -ENOMEM);
	assert_int_equal(strbuf__printf(&sb, "%d", 1), -ENOMEM);
	assert_string_equal(sb.buf, "x");
	strbuf__reset(&sb);
	assert_int_equal(sb.oom, 0);
	assert_int_equal(strbuf__puts(&sb, "z"), 0);
	assert_string_equal(sb.buf, "z");
	strbuf__free(&sb);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_init_is_empty_string),
		cmocka_unit_test(test_append_growth),
		cmocka_unit_test(test_printf_growth),
		cmocka_unit_test(test_printf_large_single),
		cmocka_unit_test(test_reset_keeps_memory),
		cmocka_unit_test(test_label_escaping),
		cmocka_unit_test(test_label_escaping_long),
		cmocka_unit_test(test_detach),
		cmocka_unit_test(test_oom_is_sticky),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
