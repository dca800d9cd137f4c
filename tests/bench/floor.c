// SPDX-License-Identifier: MIT
/* Loader for the benchmark floor (floor.bpf.c): open, load, attach every
 * empty tracepoint program and, for each `--lib PATH` (a TLS library file
 * the traced processes map), the empty uprobes on the functions the agent
 * probes there; print "READY <n>" (n = attachments) on stdout, wait for
 * SIGTERM or SIGINT, detach and exit 0.
 *
 *   aion-floor [--lib /usr/lib/x86_64-linux-gnu/libssl.so.3 ...]
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <bpf/libbpf.h>

#include "floor.skel.h"

static volatile sig_atomic_t stop;

/* The functions the agent probes in an OpenSSL library (1.1/3), entry and
 * return: keep in step with the agent's TLS attach list. */
struct tls_probe {
	const char *func;
	int entry, ret;
};

static const struct tls_probe openssl_probes[] = {
	{ "SSL_read", 1, 1 },
	{ "SSL_write", 1, 1 },
	{ "SSL_read_ex", 1, 1 },
	{ "SSL_write_ex", 1, 1 },
	{ "SSL_do_handshake", 1, 1 },
	{ "SSL_free", 1, 0 },
};

#define MAX_LIBS 8
#define MAX_TLS_LINKS (MAX_LIBS * 2 * sizeof(openssl_probes) / sizeof(openssl_probes[0]))

static struct bpf_link *tls_links[MAX_TLS_LINKS];
static int n_tls_links;

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

/* One uprobe (or uretprobe) of prog on func in lib, for every process
 * (pid -1), the function found by name as the agent finds it. */
static int attach_tls(struct bpf_program *prog, const char *lib, const char *func, int ret)
{
	LIBBPF_OPTS(bpf_uprobe_opts, opts, .func_name = func, .retprobe = ret);
	struct bpf_link *l;

	l = bpf_program__attach_uprobe_opts(prog, -1, lib, 0, &opts);
	if (!l) {
		int err = -errno;

		fprintf(stderr, "aion-floor: cannot attach a %s to %s in %s: %s\n",
			ret ? "uretprobe" : "uprobe", func, lib, strerror(-err));
		return err;
	}
	tls_links[n_tls_links++] = l;
	return 0;
}

static int attach_lib(struct floor_bpf *skel, const char *lib)
{
	const char *base = strrchr(lib, '/');
	size_t i;
	int err;

	base = base ? base + 1 : lib;
	if (strncmp(base, "libssl.so", 9) != 0) {
		fprintf(stderr, "aion-floor: %s: not a TLS library the floor knows (libssl.so*)\n", lib);
		return -EINVAL;
	}
	for (i = 0; i < sizeof(openssl_probes) / sizeof(openssl_probes[0]); i++) {
		const struct tls_probe *t = &openssl_probes[i];

		if (t->entry && (err = attach_tls(skel->progs.floor_uprobe, lib, t->func, 0)))
			return err;
		if (t->ret && (err = attach_tls(skel->progs.floor_uretprobe, lib, t->func, 1)))
			return err;
	}
	return 0;
}

int main(int argc, char **argv)
{
	const char *libs[MAX_LIBS];
	struct sigaction sa;
	struct floor_bpf *skel;
	struct bpf_program *p;
	sigset_t mask, old;
	int err, i, n = 0, n_libs = 0;

	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--lib") == 0 && i + 1 < argc && n_libs < MAX_LIBS) {
			libs[n_libs++] = argv[++i];
		} else {
			fprintf(stderr, "usage: aion-floor [--lib TLS_LIBRARY]... (at most %d)\n", MAX_LIBS);
			return 2;
		}
	}

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
	/* SEC("uprobe") without a target: the skeleton leaves them unattached. */
	err = floor_bpf__attach(skel);
	if (err) {
		fprintf(stderr, "aion-floor: cannot attach: %s\n", strerror(-err));
		goto cleanup;
	}
	for (i = 0; i < n_libs; i++) {
		err = attach_lib(skel, libs[i]);
		if (err)
			goto cleanup;
	}
	bpf_object__for_each_program(p, skel->obj)
		if (p != skel->progs.floor_uprobe && p != skel->progs.floor_uretprobe)
			n++;
	printf("READY %d\n", n + n_tls_links);
	fflush(stdout);

	/* Sleep until a signal; block it between the check and the wait. */
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigprocmask(SIG_BLOCK, &mask, &old);
	while (!stop)
		sigsuspend(&old);
	sigprocmask(SIG_SETMASK, &old, NULL);

cleanup:
	while (n_tls_links > 0)
		bpf_link__destroy(tls_links[--n_tls_links]);
	floor_bpf__destroy(skel);
	return err ? 1 : 0;
}
