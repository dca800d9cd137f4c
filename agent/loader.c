// SPDX-License-Identifier: MIT
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>
#include <linux/magic.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "aion.skel.h"
#include "aion/abi.h"
#include "loader.h"

static bool verbose;

static int libbpf_print(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	if (level == LIBBPF_DEBUG && !verbose)
		return 0;
	if (level == LIBBPF_INFO && !verbose)
		return 0;
	return vfprintf(stderr, fmt, ap);
}

/* Mount a pseudo filesystem where a DaemonSet's host mount would be. */
static int ensure_mounted(const char *dir, const char *type, long magic)
{
	struct statfs st;

	if (statfs(dir, &st) == 0 && (long)st.f_type == magic)
		return 0;
	if (mount(type, dir, type, 0, NULL) && errno != EBUSY) {
		fprintf(stderr, "loader: cannot mount %s at %s: %s (mount it first, or grant "
				"CAP_SYS_ADMIN)\n",
			type, dir, strerror(errno));
		return -errno;
	}
	return 0;
}

int loader__preflight(void)
{
	if (access("/sys/kernel/btf/vmlinux", R_OK)) {
		fprintf(stderr, "loader: this kernel has no BTF (/sys/kernel/btf/vmlinux is missing): "
				"aion needs a kernel built with CONFIG_DEBUG_INFO_BTF=y\n");
		return -ENOTSUP;
	}
	/* The capabilities are checked by privs__check(). */
	if (ensure_mounted("/sys/kernel/tracing", "tracefs", TRACEFS_MAGIC))
		return -EPERM;
	ensure_mounted("/sys/fs/bpf", "bpf", BPF_FS_MAGIC); /* nice to have */
	return 0;
}

__u32 loader__bitmap_words(void)
{
	unsigned long pid_max = 4194304; /* PID_MAX_LIMIT on 64-bit */
	FILE *f = fopen("/proc/sys/kernel/pid_max", "r");

	if (f) {
		if (fscanf(f, "%lu", &pid_max) != 1 || pid_max == 0 || pid_max > 4194304)
			pid_max = 4194304;
		fclose(f);
	}
	return (__u32)((pid_max + 63) / 64);
}

/* Fill a tail-call array: slot 0 the data path, slot = protocol its parser. */
static int install_data_path(struct bpf_map *map, struct bpf_program *data, struct bpf_program *pg,
			     struct bpf_program *mysql, struct bpf_program *redis, const char *what)
{
	struct bpf_program *progs[] = {
		[0] = data, [AION_PROTO_PG] = pg, [AION_PROTO_MYSQL] = mysql, [AION_PROTO_REDIS] = redis,
	};
	__u32 i;

	for (i = 0; i < sizeof(progs) / sizeof(progs[0]); i++) {
		int pfd;

		if (!progs[i])
			continue;
		pfd = bpf_program__fd(progs[i]);
		if (bpf_map_update_elem(bpf_map__fd(map), &i, &pfd, BPF_ANY)) {
			int err = -errno;

			fprintf(stderr, "loader: cannot install the %sdata-path programs: %s\n", what,
				strerror(-err));
			return err;
		}
	}
	return 0;
}

struct aion_bpf *loader__start(const struct loader_opts *o)
{
	struct aion_bpf *skel;
	int err;

	verbose = o->verbose;
	libbpf_set_print(libbpf_print);
	skel = aion_bpf__open();
	if (!skel) {
		err = -errno;
		fprintf(stderr, "loader: cannot open the BPF object: %s\n", strerror(-err));
		errno = -err;
		return NULL;
	}
	skel->rodata->trace_all = o->trace_all;
	skel->rodata->self_tgid = (__u32)getpid();
	bpf_map__set_max_entries(skel->maps.target_bits, loader__bitmap_words());
	bpf_map__set_max_entries(skel->maps.tls_tids, loader__bitmap_words());
	/* aion_flush is run on demand (events.c), never attached. */
	bpf_program__set_autoattach(skel->progs.aion_flush, false);
	/* The data-path programs are reached by tail calls only. */
	bpf_program__set_autoattach(skel->progs.aion_data, false);
	bpf_program__set_autoattach(skel->progs.aion_pg, false);
	bpf_program__set_autoattach(skel->progs.aion_mysql, false);
	bpf_program__set_autoattach(skel->progs.aion_redis, false);
	{
		/* TLS: the uprobes are attached per library file (tls.c); the
		 * plaintext programs are reached by tail calls. */
		struct bpf_program *tls[] = {
			skel->progs.aion_ssl_read, skel->progs.aion_ssl_write,
			skel->progs.aion_ssl_read_ex, skel->progs.aion_ssl_write_ex,
			skel->progs.aion_tls_handshake, skel->progs.aion_gnutls_recv,
			skel->progs.aion_gnutls_send, skel->progs.aion_tls_free,
			skel->progs.aion_tls_ret, skel->progs.aion_tls_data,
			skel->progs.aion_tls_pg, skel->progs.aion_tls_mysql,
			skel->progs.aion_tls_redis,
		};
		size_t i;

		for (i = 0; i < sizeof(tls) / sizeof(tls[0]); i++) {
			bpf_program__set_autoattach(tls[i], false);
			if (o->no_tls)
				bpf_program__set_autoload(tls[i], false);
		}
		if (o->no_tls)
			bpf_program__set_autoload(skel->progs.aion_exit_mmap, false);
	}
	if (o->max_connections) {
		bpf_map__set_max_entries(skel->maps.conns, o->max_connections);
		bpf_map__set_max_entries(skel->maps.socks, o->max_connections);
	}
	if (o->ring_buffer_size) {
		/* Wake-ups are asked for past 1/16 of the ring (256 KiB of the
		 * default 4 MiB): a small ring must not fill between polls
		 * without one. */
		bpf_map__set_max_entries(skel->maps.events, (__u32)o->ring_buffer_size);
		skel->rodata->wakeup_bytes = (__u32)(o->ring_buffer_size / 16);
	}
	err = aion_bpf__load(skel);
	if (err) {
		fprintf(stderr, "loader: the kernel refused the BPF programs: %s%s\n", strerror(-err),
			err == -EPERM ? " (run as root, or grant CAP_BPF and CAP_PERFMON)" :
					" (run with --verbose for the verifier's log)");
		goto fail;
	}
	/* Slot 0: the data path; slot = protocol: that protocol's parser. For
	 * syscalls, and (their uprobe-type copies) for TLS plaintext. */
	err = install_data_path(skel->maps.data_prog, skel->progs.aion_data, skel->progs.aion_pg,
				skel->progs.aion_mysql, skel->progs.aion_redis, "");
	if (!err && !o->no_tls)
		err = install_data_path(skel->maps.tls_prog, skel->progs.aion_tls_data,
					skel->progs.aion_tls_pg, skel->progs.aion_tls_mysql,
					skel->progs.aion_tls_redis, "TLS ");
	if (err)
		goto fail;
	err = aion_bpf__attach(skel);
	if (err) {
		fprintf(stderr, "loader: cannot attach to the syscall and sched tracepoints: %s "
				"(is tracefs mounted at /sys/kernel/tracing?)\n", strerror(-err));
		goto fail;
	}
	return skel;
fail:
	aion_bpf__destroy(skel);
	errno = -err;
	return NULL;
}

/* Closing a link waits for an RCU grace period (a syscall tracepoint's,
 * a uprobe's: tens of ms each, over a second for all of them in a row):
 * close them from a few threads so that the waits overlap and SIGTERM stays
 * well within its 2 s. */
#define DETACH_THREADS 8

struct detach_job {
	struct bpf_link **v;
	size_t n, first;
};

static void *detach_some(void *arg)
{
	struct detach_job *j = arg;
	size_t i;

	for (i = j->first; i < j->n; i += DETACH_THREADS) {
		bpf_link__destroy(j->v[i]);
		j->v[i] = NULL;
	}
	return NULL;
}

void loader__destroy_links(struct bpf_link **v, size_t n)
{
	struct detach_job jobs[DETACH_THREADS];
	pthread_t th[DETACH_THREADS];
	int i, started[DETACH_THREADS] = {};

	for (i = 0; i < DETACH_THREADS && (size_t)i < n; i++) {
		jobs[i] = (struct detach_job){ v, n, (size_t)i };
		started[i] = !pthread_create(&th[i], NULL, detach_some, &jobs[i]);
		if (!started[i])
			detach_some(&jobs[i]); /* no thread: this one does it */
	}
	while (i-- > 0)
		if (started[i])
			pthread_join(th[i], NULL);
}

void loader__stop(struct aion_bpf *skel)
{
	struct bpf_object_skeleton *s;
	struct bpf_link **v;
	int i;

	if (!skel)
		return;
	s = skel->skeleton;
	v = calloc(s->prog_cnt, sizeof(*v));
	if (v) {
		for (i = 0; i < s->prog_cnt; i++) {
			v[i] = *s->progs[i].link;
			*s->progs[i].link = NULL;
		}
		loader__destroy_links(v, s->prog_cnt);
		free(v);
	}
	aion_bpf__destroy(skel); /* maps, programs (and the links, one by one, if calloc failed) */
}
