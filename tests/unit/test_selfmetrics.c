// SPDX-License-Identifier: MIT
/* The agent's own metrics that need no kernel program: build info, process
 * usage read from /proc/self (checked against getrusage-independent facts),
 * scrape duration. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/utsname.h>
#include <unistd.h>
#include <cmocka.h>

#include "selfmetrics.h"

#define UNUSED __attribute__((unused))

/* The value of the sample line that starts with name (labels included). */
static double sample(const char *text, const char *name)
{
	size_t n = strlen(name);
	const char *p = text;

	while ((p = strstr(p, name))) {
		if ((p == text || p[-1] == '\n') && p[n] == ' ')
			return strtod(p + n + 1, NULL);
		p += n;
	}
	fail_msg("no sample %s in:\n%s", name, text);
	return -1;
}

static void test_render(void **state UNUSED)
{
	struct selfmetrics_opts o = { .version = "1.2.3", .revision = "abc\"d" };
	struct selfmetrics *s = selfmetrics__new(&o);
	struct strbuf sb;
	struct utsname u;
	struct rlimit rl;
	char want[512];
	void *big;

	assert_non_null(s);
	assert_int_equal(uname(&u), 0);
	/* Touch 8 MiB so that the resident size has a known lower bound. */
	big = malloc(8 << 20);
	assert_non_null(big);
	memset(big, 1, 8 << 20);

	strbuf__init(&sb);
	assert_int_equal(selfmetrics__render(s, &sb), 0);
	assert_non_null(strstr(sb.buf, "aion_agent_build_info{version=\"1.2.3\",revision=\"abc\\\"d\","
				    "libbpf_version=\"1."));
	snprintf(want, sizeof(want), "kernel_release=\"%s\"} 1\n", u.release);
	assert_non_null(strstr(sb.buf, want));
	assert_true(sample(sb.buf, "aion_agent_process_resident_memory_bytes") >= 8 << 20);
	assert_true(sample(sb.buf, "aion_agent_process_threads") == 1);
	assert_true(sample(sb.buf, "aion_agent_process_open_fds") >= 3);
	assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
	assert_true(sample(sb.buf, "aion_agent_process_max_fds") == (double)rl.rlim_cur);
	assert_true(sample(sb.buf, "aion_agent_process_cpu_seconds_total") >= 0);
	assert_true(sample(sb.buf, "aion_agent_process_start_time_seconds") > 1.7e9);
	/* No scrape finished yet: no duration; no program statistics asked. */
	assert_null(strstr(sb.buf, "aion_agent_scrape_duration_seconds"));
	assert_null(strstr(sb.buf, "aion_agent_bpf_program"));

	selfmetrics__scrape_done(s, 0.125);
	strbuf__reset(&sb);
	assert_int_equal(selfmetrics__render(s, &sb), 0);
	assert_true(sample(sb.buf, "aion_agent_scrape_duration_seconds") == 0.125);
	/* Every family has its HELP and TYPE once. */
	assert_non_null(strstr(sb.buf, "# TYPE aion_agent_build_info gauge\n"));
	assert_non_null(strstr(sb.buf, "# TYPE aion_agent_process_cpu_seconds_total counter\n"));
	assert_non_null(strstr(sb.buf, "# TYPE aion_agent_scrape_duration_seconds gauge\n"));
	strbuf__free(&sb);
	free(big);
	selfmetrics__free(s);
}

static void test_defaults(void **state UNUSED)
{
	struct selfmetrics *s = selfmetrics__new(NULL);
	struct strbuf sb;

	assert_non_null(s);
	strbuf__init(&sb);
	assert_int_equal(selfmetrics__render(s, &sb), 0);
	assert_non_null(strstr(sb.buf, "aion_agent_build_info{version=\"unknown\",revision=\"unknown\","));
	strbuf__free(&sb);
	selfmetrics__free(s);
	selfmetrics__free(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_render),
		cmocka_unit_test(test_defaults),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
