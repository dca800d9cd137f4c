// SPDX-License-Identifier: MIT
/* privs: the capability sets per kernel and mode, /proc status parsing,
 * and --drop-caps run for real in a forked child with a second thread. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/wait.h>
#include <linux/capability.h>

#include "privs.h"

#define UNUSED __attribute__((unused))
#define B(c) PRIVS_BIT(c)

static const struct privs_kernel k618 = { 40, 6, 18 }, k61 = { 40, 6, 1 }, k510 = { 40, 5, 10 },
				 k54 = { 37, 5, 4 };

static void test_startup_set(void **state UNUSED)
{
	struct privs_mode tls = { 1, 0 }, notls = { 0, 0 }, drop = { 1, 1 };
	__u64 proc = B(CAP_SYS_PTRACE) | B(CAP_DAC_READ_SEARCH);

	assert_int_equal(privs__startup_set(&k618, &tls),
			 B(CAP_BPF) | B(CAP_PERFMON) | B(CAP_SYS_ADMIN) | proc);
	assert_int_equal(privs__startup_set(&k618, &notls), B(CAP_BPF) | B(CAP_PERFMON) | proc);
	assert_int_equal(privs__startup_set(&k618, &drop),
			 B(CAP_BPF) | B(CAP_PERFMON) | B(CAP_SYS_ADMIN) | B(CAP_SETPCAP) | proc);
	/* 5.10: maps are charged to RLIMIT_MEMLOCK. */
	assert_int_equal(privs__startup_set(&k510, &notls),
			 B(CAP_BPF) | B(CAP_PERFMON) | B(CAP_SYS_RESOURCE) | proc);
	/* 5.4: no CAP_BPF/CAP_PERFMON yet, CAP_SYS_ADMIN does both. */
	assert_int_equal(privs__startup_set(&k54, &notls),
			 B(CAP_SYS_ADMIN) | B(CAP_SYS_RESOURCE) | proc);
}

static void test_keep_set(void **state UNUSED)
{
	struct privs_mode tls = { 1, 1 }, notls = { 0, 1 };
	__u64 proc = B(CAP_SYS_PTRACE) | B(CAP_DAC_READ_SEARCH);

	assert_int_equal(privs__keep_set(&k618, &tls), B(CAP_SYS_ADMIN) | proc);
	assert_int_equal(privs__keep_set(&k618, &notls), proc);
	/* Before 6.5 a bpf() call on a map fd needs CAP_BPF too. */
	assert_int_equal(privs__keep_set(&k61, &notls), B(CAP_BPF) | proc);
	assert_int_equal(privs__keep_set(&k54, &notls), B(CAP_SYS_ADMIN) | proc);
	/* What is kept is always part of what start-up needed. */
	assert_int_equal(privs__keep_set(&k618, &tls) & ~privs__startup_set(&k618, &tls), 0);
	assert_int_equal(privs__keep_set(&k61, &notls) & ~privs__startup_set(&k61, &notls), 0);
	assert_int_equal(privs__keep_set(&k54, &tls) & ~privs__startup_set(&k54, &tls), 0);
}

static void test_names(void **state UNUSED)
{
	char buf[256];

	assert_string_equal(privs__name(CAP_SYS_PTRACE), "CAP_SYS_PTRACE");
	assert_string_equal(privs__name(CAP_BPF), "CAP_BPF");
	assert_string_equal(privs__name(CAP_CHOWN), "CAP_CHOWN");
	assert_string_equal(privs__name(41), "cap_41");
	assert_string_equal(privs__names(B(CAP_DAC_READ_SEARCH) | B(CAP_SYS_ADMIN) | B(CAP_BPF), buf,
					 sizeof(buf)),
			    "CAP_DAC_READ_SEARCH,CAP_SYS_ADMIN,CAP_BPF");
	assert_string_equal(privs__names(0, buf, sizeof(buf)), "none");
	/* Truncated, still terminated. */
	privs__names(~0ULL, buf, 20);
	assert_int_equal(strlen(buf), 19);
}

static void test_parse_status(void **state UNUSED)
{
	static const char text[] =
		"Name:\taion-agent\n"
		"NoNewPrivs:\t1\n"
		"CapInh:\t0000000000000000\n"
		"CapPrm:\t0000000000280004\n"
		"CapEff:\t0000000000280004\n"
		"CapBnd:\t0000000000280004\n"
		"CapAmb:\t0000000000000000\n";
	struct privs_status st;
	char real[8192];
	ssize_t r;
	int fd;

	assert_int_equal(privs__parse_status(text, &st), 0);
	assert_int_equal(st.eff, B(CAP_SYS_ADMIN) | B(CAP_SYS_PTRACE) | B(CAP_DAC_READ_SEARCH));
	assert_int_equal(st.prm, st.eff);
	assert_int_equal(st.bnd, st.eff);
	assert_int_equal(st.inh, 0);
	assert_int_equal(st.amb, 0);
	assert_int_equal(st.no_new_privs, 1);
	assert_int_equal(privs__parse_status("CapInh:\t0\nCapPrm:\t0\n", &st), -EINVAL);
	assert_int_equal(privs__parse_status("CapInh:\tzz\nCapPrm:\t0\nCapEff:\t0\nCapBnd:\t0\n"
					     "CapAmb:\t0\nNoNewPrivs:\t0\n", &st), -EINVAL);
	/* This process's own status parses, and CapEff is what capget says. */
	fd = open("/proc/self/status", O_RDONLY);
	assert_true(fd >= 0);
	r = read(fd, real, sizeof(real) - 1);
	close(fd);
	assert_true(r > 0);
	real[r] = '\0';
	assert_int_equal(privs__parse_status(real, &st), 0);
	{
		__u64 eff;

		assert_int_equal(privs__effective(&eff), 0);
		assert_int_equal(st.eff, eff);
	}
}

static int block_fd = -1;

static void *blocked(void *arg)
{
	char c;

	(void)arg;
	while (read(block_fd, &c, 1) < 0 && errno == EINTR)
		;
	return NULL;
}

/* In the child: a second thread blocked in read(), then privs__drop();
 * every task of the child must show exactly the kept set. */
static int drop_child(void)
{
	struct privs_mode m = { 1, 1 };
	struct privs_kernel k;
	struct privs_status st;
	pthread_t th;
	int p[2], n = 0, bad = 0;
	struct dirent *de;
	DIR *d;
	__u64 keep;

	privs__kernel(&k);
	keep = privs__keep_set(&k, &m);
	if (pipe(p) || (block_fd = p[0], pthread_create(&th, NULL, blocked, NULL)))
		return 10;
	if (privs__drop(&m))
		return 11;
	d = opendir("/proc/self/task");
	if (!d)
		return 12;
	while ((de = readdir(d))) {
		char path[300], buf[4096];
		ssize_t r;
		int fd;

		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/self/task/%s/status", de->d_name);
		fd = open(path, O_RDONLY);
		r = fd < 0 ? -1 : read(fd, buf, sizeof(buf) - 1);
		if (fd >= 0)
			close(fd);
		if (r <= 0)
			return 13;
		buf[r] = '\0';
		if (privs__parse_status(buf, &st))
			return 14;
		n++;
		bad += st.eff != keep || st.prm != keep || st.bnd != keep || st.inh || st.amb ||
		       !st.no_new_privs;
	}
	closedir(d);
	write(p[1], "x", 1);
	pthread_join(th, NULL);
	return n == 2 && !bad ? 0 : 20 + bad;
}

static void test_drop_for_real(void **state UNUSED)
{
	struct privs_mode m = { 1, 1 };
	int status;
	pid_t pid;

	/* It needs the start-up set (CAP_SETPCAP above all): run as root. */
	if (privs__check(&m))
		fail_msg("test_drop_for_real needs root (the start-up capability set)");
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		_exit(drop_child());
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_startup_set),
		cmocka_unit_test(test_keep_set),
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_parse_status),
		cmocka_unit_test(test_drop_for_real),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
