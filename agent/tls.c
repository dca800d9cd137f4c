// SPDX-License-Identifier: MIT
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <gelf.h>
#include <libelf.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "aion/abi.h"
#include "aion.skel.h"
#include "loader.h"
#include "privs.h"
#include "tls.h"
#include "tlsplace.h"

static const char *const lib_names[] = { [TLS_LIB_NONE] = "none", [TLS_LIB_OPENSSL] = "openssl",
					 [TLS_LIB_GNUTLS] = "gnutls" };

enum file_state { F_NONE = 1, F_PROBED, F_FAILED };

struct file_seen {
	dev_t dev;
	ino_t ino;
	enum file_state state;
};

#define MAX_FILES 4096

enum err_reason { ERR_STRIPPED, ERR_ATTACH, ERR_FILES_FULL, ERR__COUNT };
static const char *const err_names[ERR__COUNT] = {
	[ERR_STRIPPED] = "stripped_binary",
	[ERR_ATTACH] = "uprobe_attach",
	[ERR_FILES_FULL] = "file_table_full",
};

struct tls {
	struct aion_bpf *skel;
	struct file_seen *files;
	unsigned nfiles;
	struct bpf_link **links;
	unsigned nlinks, caplinks;
	unsigned libraries;            /* files with probes */
	unsigned long long errors[ERR__COUNT];
	int full_warned;
};

struct tls *tls__new(struct aion_bpf *skel)
{
	struct tls *t = calloc(1, sizeof(*t));

	if (!t)
		return NULL;
	t->skel = skel;
	t->files = calloc(MAX_FILES, sizeof(*t->files));
	if (!t->files) {
		free(t);
		return NULL;
	}
	elf_version(EV_CURRENT);
	return t;
}

void tls__free(struct tls *t)
{
	if (!t)
		return;
	loader__destroy_links(t->links, t->nlinks);
	free(t->links);
	free(t->files);
	free(t);
}

static void count_err(struct tls *t, enum err_reason r)
{
	__atomic_add_fetch(&t->errors[r], 1, __ATOMIC_RELAXED);
}

/* ---- probes (where: tlsplace.c) ----------------------------------------- */

static int keep_link(struct tls *t, struct bpf_link *l)
{
	if (t->nlinks == t->caplinks) {
		unsigned cap = t->caplinks ? t->caplinks * 2 : 32;
		struct bpf_link **n = realloc(t->links, cap * sizeof(*n));

		if (!n)
			return -ENOMEM;
		t->links = n;
		t->caplinks = cap;
	}
	t->links[t->nlinks++] = l;
	return 0;
}

static struct bpf_link *uprobe(struct bpf_program *p, const char *path, long off, int ret)
{
	LIBBPF_OPTS(bpf_uprobe_opts, o, .retprobe = ret);

	return bpf_program__attach_uprobe_opts(p, -1, path, (size_t)off, &o);
}

/* Attach lib's probes to the file at path (name: how the log calls it).
 * Returns the probes attached, or -errno (nothing left attached). */
static int attach(struct tls *t, const char *path, const char *name, const struct tls_facts *f)
{
	struct aion_bpf *s = t->skel;
	struct bpf_program *entry[] = {
		[ROLE_READ] = s->progs.aion_ssl_read,         [ROLE_WRITE] = s->progs.aion_ssl_write,
		[ROLE_READ_EX] = s->progs.aion_ssl_read_ex,   [ROLE_WRITE_EX] = s->progs.aion_ssl_write_ex,
		[ROLE_HANDSHAKE] = s->progs.aion_tls_handshake,
		[ROLE_GNUTLS_RECV] = s->progs.aion_gnutls_recv,
		[ROLE_GNUTLS_SEND] = s->progs.aion_gnutls_send, [ROLE_FREE] = s->progs.aion_tls_free,
	};
	struct tls_probe pr[TLS_MAX_PROBES];
	unsigned first = t->nlinks;
	size_t i, n;
	int err = 0, probes = 0, slow;

	n = tlsplace__plan(path, f, pr, &slow);
	for (i = 0; i < n; i++) {
		struct bpf_link *l;
		int k;

		if (pr[i].off < 0) {
			if (!pr[i].required)
				continue; /* a function this version lacks */
			err = -ENOENT;
			k = 0;
		} else {
			/* The return probe first: an entry never waits for a
			 * return that is not watched. */
			for (k = pr[i].ret ? 1 : 0; k >= 0; k--) {
				l = uprobe(k ? s->progs.aion_tls_ret : entry[pr[i].role], path, pr[i].off, k);
				if (!l) {
					err = -errno;
					break;
				}
				if (keep_link(t, l)) {
					bpf_link__destroy(l);
					err = -ENOMEM;
					break;
				}
				probes++;
			}
		}
		if (k >= 0) {
			if (pr[i].required) {
				/* EACCES: perf_uprobe_event_init() wants CAP_SYS_ADMIN. */
				fprintf(stderr, "tls: cannot attach to %s in %s: %s (%s)\n",
					pr[i].what, name, strerror(-err),
					err == -EACCES || err == -EPERM ?
					"uprobes need CAP_SYS_ADMIN; or give --no-tls" :
					"uprobes need a kernel with CONFIG_UPROBE_EVENTS");
				goto undo;
			}
			err = 0;
		}
	}
	if (slow)
		fprintf(stderr, "tls: %s: the read/write functions start with an instruction that "
				"uprobes single-step: each TLS read or write costs the process ~20 us "
				"more on a VM\n", name);
	return probes;
undo:
	while (t->nlinks > first)
		bpf_link__destroy(t->links[--t->nlinks]);
	return err;
}

static struct file_seen *seen(struct tls *t, dev_t dev, ino_t ino)
{
	unsigned i;

	for (i = 0; i < t->nfiles; i++)
		if (t->files[i].dev == dev && t->files[i].ino == ino)
			return &t->files[i];
	return NULL;
}

/* Inspect the file at path (as the agent reaches it; name: as the process
 * sees it) once, and probe it when it implements TLS. exe: a --exe file,
 * checked for being stripped. */
static int inspect(struct tls *t, const char *path, const char *name, int exe)
{
	struct tls_facts f;
	struct file_seen *fs;
	struct stat st;
	int n;

	if (stat(path, &st))
		return -errno;
	if (!S_ISREG(st.st_mode) || seen(t, st.st_dev, st.st_ino))
		return 0;
	if (t->nfiles == MAX_FILES) {
		if (!t->full_warned++)
			fprintf(stderr, "tls: %u files inspected: files mapped from now on are not "
					"looked at for TLS\n", MAX_FILES);
		count_err(t, ERR_FILES_FULL);
		return 0;
	}
	fs = &t->files[t->nfiles++];
	fs->dev = st.st_dev;
	fs->ino = st.st_ino;
	fs->state = F_NONE;
	if (tlsplace__facts(path, &f))
		return 0;
	if (f.lib == TLS_LIB_NONE) {
		if (exe && !f.has_symtab && !f.needs_tls && tlsplace__embeds_tls(path)) {
			fprintf(stderr, "tls: %s embeds OpenSSL or BoringSSL but is stripped (no symbol "
					"table): its TLS traffic cannot be traced (keep its symbols, or "
					"link libssl dynamically)\n", name);
			count_err(t, ERR_STRIPPED);
		}
		return 0;
	}
	n = attach(t, path, name, &f);
	if (n < 0) {
		fs->state = F_FAILED;
		count_err(t, ERR_ATTACH);
		return 0;
	}
	fs->state = F_PROBED;
	__atomic_add_fetch(&t->libraries, 1, __ATOMIC_RELAXED);
	fprintf(stderr, "tls: attached to %s (%s, %d probes)\n", name, lib_names[f.lib], n);
	return 0;
}

/* 1 when /proc/PID/root itself cannot be entered (not one file in it). */
static int root_denied(int pid)
{
	char root[64];
	struct stat st;

	snprintf(root, sizeof(root), "/proc/%d/root/", pid);
	return stat(root, &st) && (errno == EACCES || errno == EPERM);
}

int tls__scan_pid(struct tls *t, int pid)
{
	char maps[64], line[4400], path[4400 + 32];
	FILE *fp;

	snprintf(maps, sizeof(maps), "/proc/%d/maps", pid);
	fp = fopen(maps, "re");
	if (!fp && (errno == EACCES || errno == EPERM))
		goto denied;
	if (!fp)
		return -ESRCH;
	errno = 0;
	while (fgets(line, sizeof(line), fp)) {
		char perms[8], *file;
		size_t len;

		/* start-end perms offset dev inode path */
		if (sscanf(line, "%*s %7s", perms) != 1 || perms[2] != 'x')
			continue;
		file = strchr(line, '/');
		if (!file)
			continue;
		len = strlen(file);
		if (len && file[len - 1] == '\n')
			file[--len] = '\0';
		if (len > 10 && !strcmp(file + len - 10, " (deleted)"))
			continue;
		snprintf(path, sizeof(path), "/proc/%d/root%s", pid, file);
		/* /proc/PID/root is ptrace-checked too (maps only asks for
		 * CAP_PERFMON): without CAP_SYS_PTRACE every path fails. */
		if (inspect(t, path, file, 0) == -EACCES && root_denied(pid)) {
			fclose(fp);
			goto denied;
		}
	}
	/* The ptrace check may come at the first read rather than at open. */
	if (ferror(fp) && (errno == EACCES || errno == EPERM)) {
		fclose(fp);
		goto denied;
	}
	fclose(fp);
	return 0;
denied:
	/* Another user's process, and no CAP_SYS_PTRACE (or an LSM said no). */
	privs__proc_denied("maps or root", pid, EACCES);
	return -EACCES;
}

void tls__scan_targets(struct tls *t, int all)
{
	if (all) {
		DIR *d = opendir("/proc");
		struct dirent *de;

		if (!d)
			return;
		while ((de = readdir(d)) != NULL)
			if (isdigit((unsigned char)de->d_name[0]) && atoi(de->d_name) != getpid())
				tls__scan_pid(t, atoi(de->d_name));
		closedir(d);
		return;
	}
	{
		int fd = bpf_map__fd(t->skel->maps.targets);
		__u32 key, next, *prev = NULL;

		while (!bpf_map_get_next_key(fd, prev, &next)) {
			tls__scan_pid(t, (int)next);
			key = next;
			prev = &key;
		}
	}
}

void tls__on_map(struct tls *t, int pid, __u64 ino, __u32 dev)
{
	if (tls__scan_pid(t, pid)) {
		/* Gone before it could be looked at: let the next process
		 * that maps the file report it again. */
		struct aion_file_key k = { .ino = ino, .dev = dev };

		bpf_map_delete_elem(bpf_map__fd(t->skel->maps.exec_files), &k);
	}
}

void tls__add_exe(struct tls *t, const char *path)
{
	char host[4200];

	if (!access(path, R_OK)) {
		inspect(t, path, path, 1);
		return;
	}
	snprintf(host, sizeof(host), "/proc/1/root%s", path);
	inspect(t, host, path, 1);
}

int tls__render(struct tls *t, struct strbuf *out, unsigned long long no_socket)
{
	int i;

	strbuf__printf(out,
		"# HELP aion_agent_tls_libraries Files (TLS libraries, binaries with TLS linked in) with uprobes attached.\n"
		"# TYPE aion_agent_tls_libraries gauge\n"
		"aion_agent_tls_libraries %u\n"
		"# HELP aion_agent_instrumentation_errors_total Targets or files that could not be instrumented, by reason.\n"
		"# TYPE aion_agent_instrumentation_errors_total counter\n",
		t ? __atomic_load_n(&t->libraries, __ATOMIC_RELAXED) : 0);
	for (i = 0; i < ERR__COUNT; i++)
		strbuf__printf(out, "aion_agent_instrumentation_errors_total{reason=\"%s\"} %llu\n",
			       err_names[i],
			       t ? __atomic_load_n(&t->errors[i], __ATOMIC_RELAXED) : 0ULL);
	strbuf__printf(out, "aion_agent_instrumentation_errors_total{reason=\"tls_no_socket\"} %llu\n",
		       no_socket);
	strbuf__printf(out, "aion_agent_instrumentation_errors_total{reason=\"proc_access_denied\"} %llu\n",
		       privs__proc_denied_count());
	return out->oom ? -ENOMEM : 0;
}
