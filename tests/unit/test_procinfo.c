// SPDX-License-Identifier: MIT
/* procinfo: what /proc says about this very test process, and the parsers
 * of those texts on what a process may name itself. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "procinfo.h"

#define UNUSED __attribute__((unused))

static void test_exe_name_is_own_binary(void **state UNUSED)
{
	char name[64];

	assert_int_equal(procinfo__exe_name(getpid(), name, sizeof(name)), 0);
	assert_string_equal(name, "test_procinfo");
}

static void test_exe_id_matches_stat(void **state UNUSED)
{
	struct stat st;
	__u64 ino;
	__u32 dev;

	assert_int_equal(stat("/proc/self/exe", &st), 0);
	assert_int_equal(procinfo__exe_id(getpid(), &ino, &dev), 0);
	assert_true(ino == st.st_ino);
	assert_int_equal(dev, (major(st.st_dev) << 20) | minor(st.st_dev));
}

static void test_kdev_encoding(void **state UNUSED)
{
	/* The kernel keeps 20 bits of minor: 8:1 is 0x800001, 259:7 0x10300007. */
	assert_int_equal(procinfo__kdev(makedev(8, 1)), 0x800001);
	assert_int_equal(procinfo__kdev(makedev(259, 7)), 0x10300007);
}

static void test_ppid_and_alive(void **state UNUSED)
{
	assert_int_equal(procinfo__ppid(getpid()), getppid());
	assert_int_equal(procinfo__alive(getpid()), 1);
	assert_int_equal(procinfo__alive(0x3fffffff), 0);
	assert_true(procinfo__ppid(0x3fffffff) < 0);
	assert_true(procinfo__exe_name(0x3fffffff, (char[8]){ 0 }, 8) < 0);
}

/* A process names itself: its comm, in parentheses in /proc/PID/stat, may
 * hold spaces, ')' and what looks like the next fields. */
static void test_stat_with_hostile_comm(void **state UNUSED)
{
	char old[17] = "";
	struct proc_stat st;

	assert_int_equal(prctl(PR_GET_NAME, old), 0);
	assert_int_equal(prctl(PR_SET_NAME, "x) R 1 2 (y) Z"), 0);
	assert_int_equal(procinfo__ppid(getpid()), getppid());
	assert_int_equal(procinfo__stat(getpid(), &st), 0);
	assert_int_equal(st.threads, 1);
	assert_true(st.rss_pages > 0);
	assert_int_equal(prctl(PR_SET_NAME, old), 0);
	/* Texts cut before the fields, or without the comm's ')'. */
	assert_int_equal(procinfo__parse_ppid("42 (a) S"), -EINVAL);
	assert_int_equal(procinfo__parse_ppid("42 a S 1"), -EINVAL);
	assert_int_equal(procinfo__parse_ppid("42 (a) S -3 1"), -EINVAL);
	assert_int_equal(procinfo__parse_stat("42 (a) S 1 42 42 0 -1 4194560 1 0 0 0 7", &st), -EINVAL);
	assert_int_equal(procinfo__parse_stat("", &st), -EINVAL);
}

static void expect_name(const char *link, const char *comm, const char *want)
{
	char out[64];

	assert_int_equal(procinfo__name(link, comm, out, sizeof(out)), 0);
	assert_string_equal(out, want);
}

static void test_name_from_link_and_comm(void **state UNUSED)
{
	char out[4];

	expect_name("/usr/sbin/nginx", "nginx\n", "nginx");
	expect_name("/usr/bin/python3.11", "python3\n", "python3.11");
	expect_name("/usr/bin/redis-check-rdb", "redis-server\n", "redis-server");
	expect_name("/usr/bin/gunicorn", "gunicorn: worker\n", "gunicorn");
	expect_name("/opt/app (deleted)", "app\n", "app");
	expect_name("/opt/a (deleted)x", "", "a (deleted)x");
	expect_name("", "kworker/0:1\n", "kworker/0:1");
	expect_name("/tmp/caf\xc3\xa9\n", "", "caf___");
	expect_name("/x", "\x01\x7f\n", "__");
	assert_int_equal(procinfo__name("", "", out, sizeof(out)), -ENOENT);
	assert_int_equal(procinfo__name("/dir/", "\n", out, sizeof(out)), -ENOENT);
	assert_int_equal(procinfo__name("/usr/bin/nginx", "", out, sizeof(out)), 0);
	assert_string_equal(out, "ngi");
}

static int count_self(int pid, void *arg)
{
	if (pid == getpid())
		++*(int *)arg;
	return 0;
}

static void test_for_each_sees_self(void **state UNUSED)
{
	int seen = 0;

	assert_int_equal(procinfo__for_each(count_self, &seen), 0);
	assert_int_equal(seen, 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_exe_name_is_own_binary),
		cmocka_unit_test(test_exe_id_matches_stat),
		cmocka_unit_test(test_kdev_encoding),
		cmocka_unit_test(test_ppid_and_alive),
		cmocka_unit_test(test_for_each_sees_self),
		cmocka_unit_test(test_stat_with_hostile_comm),
		cmocka_unit_test(test_name_from_link_and_comm),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
