// SPDX-License-Identifier: MIT
/* Loader for the benchmark floor (floor.bpf.c): open, load, attach every
 * empty program, print "READY <n>" (n = programs attached) on stdout, wait
 * for SIGTERM or SIGINT, detach and exit 0. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <bpf/libbpf.h>

#include "floor.skel.h"

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static int quiet(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	if (level == LIBBPF_DEBUG || level == LIBBPF_INFO)
		return 0;
	return vfprintf(stderr, fmt, ap);
}

int main(void)
{
	struct sigaction sa;
	struct floor_bpf *skel;
	struct bpf_program *p;
	sigset_t mask, old;
	int err, n = 0;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	libbpf_set_print(quiet);

	skel = floor_bpf__open_and_load();
	if (!skel) {
		fprintf(stderr, "aion-floor: cannot open/load the BPF object: %s\n", strerror(errno));
		return 1;
	}
	err = floor_bpf__attach(skel);
	if (err) {
		fprintf(stderr, "aion-floor: cannot attach: %s\n", strerror(-err));
		floor_bpf__destroy(skel);
		return 1;
	}
	bpf_object__for_each_program(p, skel->obj)
		n++;
	printf("READY %d\n", n);
	fflush(stdout);

	/* Sleep until a signal; block it between the check and the wait. */
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigprocmask(SIG_BLOCK, &mask, &old);
	while (!stop)
		sigsuspend(&old);
	sigprocmask(SIG_SETMASK, &old, NULL);

	floor_bpf__destroy(skel);
	return 0;
}
