// SPDX-License-Identifier: MIT
/* Loader for the benchmark floor (floor.bpf.c): open, load, attach every
 * empty tracepoint program and, for each `--file PATH` (a file the traced
 * processes map executable), the empty uprobes where the agent puts its TLS
 * probes when that file is a TLS library (OpenSSL or GnuTLS; any other file
 * is skipped, as the agent skips it); print "READY <n>" (n = attachments) on
 * stdout, wait for SIGTERM or SIGINT, detach and exit 0.
 *
 *   aion-floor [--file /usr/lib/x86_64-linux-gnu/libssl.so.3 ...]
 *   aion-floor --min --pid PID [--pid PID ...] [--file ...]
 *   aion-floor --lean --pid PID [--pid PID ...] [--file ...]
 *
 * --min: the "min" variant: on read, recvfrom, write, writev and sendto the
 * min_exit_* programs (floor.bpf.c: about the least work of a per-request
 * timing) replace the empty ones, for the processes named by --pid; at exit
 * it prints "HITS <runs in traced processes> TIMED <writes timed>".
 * --lean: the "lean" variant: tp_btf programs on sock_recv_length and
 * sock_send_length (floor.bpf.c) replace the empty ones on the nine data
 * syscalls; same output at exit.
 *
 * Where the probes go mirrors agent/tls.c (elf_facts, inner_call, plan):
 * keep the two in step; bench.py checks that the floor and the agent hold
 * the same uprobes (file and offset). */
#include <errno.h>
#include <fcntl.h>
#include <gelf.h>
#include <libelf.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <bpf/libbpf.h>

#include "floor.skel.h"
#include "tlsplace.h"

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

/* ---- the probes: where the agent puts them (agent/tlsplace.c) ---------- */

#define MAX_FILES 256
#define MAX_LINKS (MAX_FILES * 16)

static struct bpf_link *tls_links[MAX_LINKS];
static int n_tls_links;

/* The probes of one file, pid -1, by file offset (as the agent attaches
 * them): the number attached, 0 for a file that is no TLS library, or
 * -errno. */
static int attach_file(struct floor_bpf *skel, const char *path)
{
	struct tls_facts f;
	struct tls_probe pr[TLS_MAX_PROBES];
	size_t i, n;
	int k, probes = 0, slow;

	if (tlsplace__facts(path, &f) || f.lib == TLS_LIB_NONE)
		return 0;
	n = tlsplace__plan(path, &f, pr, &slow);
	for (i = 0; i < n; i++) {
		long off = pr[i].off;

		if (off < 0) {
			if (!pr[i].required)
				continue;
			fprintf(stderr, "aion-floor: %s: no %s\n", path, pr[i].what);
			return -ENOENT;
		}
		for (k = pr[i].ret ? 1 : 0; k >= 0; k--) {
			LIBBPF_OPTS(bpf_uprobe_opts, o, .retprobe = k);
			struct bpf_link *l;

			if (n_tls_links == MAX_LINKS)
				return -E2BIG;
			l = bpf_program__attach_uprobe_opts(k ? skel->progs.floor_uretprobe : skel->progs.floor_uprobe,
							    -1, path, (size_t)off, &o);
			if (!l) {
				int err = -errno;

				if (!pr[i].required)
					break;
				fprintf(stderr, "aion-floor: cannot attach a %s to %s in %s: %s\n",
					k ? "uretprobe" : "uprobe", pr[i].what, path, strerror(-err));
				return err;
			}
			tls_links[n_tls_links++] = l;
			probes++;
		}
	}
	return probes;
}

int main(int argc, char **argv)
{
	const char *files[MAX_FILES];
	struct { dev_t dev; ino_t ino; } seen[MAX_FILES];
	struct sigaction sa;
	struct floor_bpf *skel;
	struct bpf_program *p;
	sigset_t mask, old;
	int err, i, j, n = 0, n_files = 0, n_seen = 0, min = 0, lean = 0, n_pids = 0;
	unsigned long pids[64];

	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--file") == 0 && i + 1 < argc && n_files < MAX_FILES) {
			files[n_files++] = argv[++i];
		} else if (strcmp(argv[i], "--min") == 0) {
			min = 1;
		} else if (strcmp(argv[i], "--lean") == 0) {
			lean = 1;
		} else if (strcmp(argv[i], "--pid") == 0 && i + 1 < argc && n_pids < 64) {
			char *end;

			pids[n_pids] = strtoul(argv[++i], &end, 10);
			if (*end || !pids[n_pids] || pids[n_pids] >= 65536 * 64) {
				fprintf(stderr, "aion-floor: --pid %s: not a pid below %d\n", argv[i], 65536 * 64);
				return 2;
			}
			n_pids++;
		} else {
			fprintf(stderr, "usage: aion-floor [--min|--lean --pid PID...] [--file PATH]... (at most %d files, 64 pids)\n",
				MAX_FILES);
			return 2;
		}
	}

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	libbpf_set_print(quiet);
	elf_version(EV_CURRENT);

	if ((min || lean) && !n_pids) {
		fprintf(stderr, "aion-floor: --min and --lean need the traced processes: --pid PID\n");
		return 2;
	}
	if (min && lean) {
		fprintf(stderr, "aion-floor: --min or --lean, not both\n");
		return 2;
	}
	skel = floor_bpf__open();
	if (!skel) {
		fprintf(stderr, "aion-floor: cannot open the BPF object: %s\n", strerror(errno));
		return 1;
	}
	{
		/* Either the empty data-path programs or their min twins. */
		struct bpf_program *twins[][2] = {
			{ skel->progs.floor_exit_read, skel->progs.min_exit_read },
			{ skel->progs.floor_exit_recvfrom, skel->progs.min_exit_recvfrom },
			{ skel->progs.floor_exit_write, skel->progs.min_exit_write },
			{ skel->progs.floor_exit_sendto, skel->progs.min_exit_sendto },
			{ skel->progs.floor_exit_writev, skel->progs.min_exit_writev },
		};

		/* lean: none of the nine data syscalls, two socket tracepoints */
		struct bpf_program *data[] = {
			skel->progs.floor_exit_read, skel->progs.floor_exit_recvfrom,
			skel->progs.floor_exit_readv, skel->progs.floor_exit_recvmsg,
			skel->progs.floor_exit_write, skel->progs.floor_exit_sendto,
			skel->progs.floor_exit_writev, skel->progs.floor_exit_sendmsg,
			skel->progs.floor_exit_sendfile64,
		};

		for (i = 0; i < (int)(sizeof(twins) / sizeof(twins[0])); i++) {
			bpf_program__set_autoattach(twins[i][0], !min);
			bpf_program__set_autoattach(twins[i][1], min);
		}
		for (i = 0; lean && i < (int)(sizeof(data) / sizeof(data[0])); i++)
			bpf_program__set_autoattach(data[i], false);
		/* Not even loaded unless asked for (the socket tracepoints are
		 * kernel >= 6.3). */
		bpf_program__set_autoload(skel->progs.lean_recv, lean);
		bpf_program__set_autoload(skel->progs.lean_send, lean);
		for (i = 0; i < (int)(sizeof(twins) / sizeof(twins[0])); i++)
			bpf_program__set_autoload(twins[i][1], min);
	}
	err = floor_bpf__load(skel);
	if (err) {
		fprintf(stderr, "aion-floor: cannot load the BPF object: %s\n", strerror(-err));
		goto cleanup;
	}
	for (i = 0; i < n_pids; i++) {
		__u32 idx = pids[i] >> 6;
		__u64 word = 0;

		bpf_map__lookup_elem(skel->maps.min_bits, &idx, sizeof(idx), &word, sizeof(word), 0);
		word |= 1ULL << (pids[i] & 63);
		if (bpf_map__update_elem(skel->maps.min_bits, &idx, sizeof(idx), &word, sizeof(word), 0)) {
			err = -errno;
			fprintf(stderr, "aion-floor: cannot set pid %lu: %s\n", pids[i], strerror(errno));
			goto cleanup;
		}
	}
	/* SEC("uprobe") without a target: the skeleton leaves them unattached. */
	err = floor_bpf__attach(skel);
	if (err) {
		fprintf(stderr, "aion-floor: cannot attach: %s\n", strerror(-err));
		goto cleanup;
	}
	/* Once per file (device and inode), as the agent. */
	for (i = 0; i < n_files; i++) {
		struct stat st;

		if (stat(files[i], &st) || !S_ISREG(st.st_mode))
			continue;
		for (j = 0; j < n_seen; j++)
			if (seen[j].dev == st.st_dev && seen[j].ino == st.st_ino)
				break;
		if (j < n_seen)
			continue;
		seen[n_seen].dev = st.st_dev;
		seen[n_seen++].ino = st.st_ino;
		err = attach_file(skel, files[i]);
		if (err < 0)
			goto cleanup;
		err = 0;
	}
	bpf_object__for_each_program(p, skel->obj)
		if (bpf_program__autoload(p) && bpf_program__autoattach(p) && p != skel->progs.floor_uprobe &&
		    p != skel->progs.floor_uretprobe)
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
	if (min || lean) {
		/* The per-CPU counts, summed. */
		int ncpu = libbpf_num_possible_cpus();
		__u64 tot[2] = { 0, 0 }, *v;
		__u32 k;

		v = ncpu > 0 ? calloc(ncpu, sizeof(*v)) : NULL;
		for (k = 0; v && k < 2; k++)
			if (!bpf_map__lookup_elem(skel->maps.min_counts, &k, sizeof(k), v, ncpu * sizeof(*v), 0))
				for (j = 0; j < ncpu; j++)
					tot[k] += v[j];
		free(v);
		printf("HITS %llu TIMED %llu\n", (unsigned long long)tot[0], (unsigned long long)tot[1]);
		fflush(stdout);
	}

cleanup:
	while (n_tls_links > 0)
		bpf_link__destroy(tls_links[--n_tls_links]);
	floor_bpf__destroy(skel);
	return err ? 1 : 0;
}
