// SPDX-License-Identifier: MIT
/* procinfo: what /proc says about this very test process. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>
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
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
