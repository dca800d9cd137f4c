// SPDX-License-Identifier: MIT
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include <bpf/bpf.h>

#include "aion/abi.h"
#include "privs.h"
#include "procinfo.h"
#include "targets.h"

#define MAX_EXES 64

struct exe_sel {
	char *path;
	__u32 svc;
};

struct targets {
	struct targets_maps m;
	struct procs *procs;
	__u64 *bits;  /* the kernel's target_bits array, shared memory */
	size_t bits_len;
	struct exe_sel exes[MAX_EXES];
	int nexes;
	__u32 gen;    /* incarnations numbered here (AION_GEN_AGENT set) */
};

struct targets *targets__new(const struct targets_maps *m, struct procs *procs)
{
	struct targets *t = calloc(1, sizeof(*t));
	long page = sysconf(_SC_PAGESIZE);

	if (!t)
		return NULL;
	t->m = *m;
	t->procs = procs;
	t->bits_len = ((size_t)m->nwords * sizeof(__u64) + page - 1) / page * page;
	t->bits = mmap(NULL, t->bits_len, PROT_READ | PROT_WRITE, MAP_SHARED, m->bits_fd, 0);
	if (t->bits == MAP_FAILED) {
		int err = -errno;

		fprintf(stderr, "targets: cannot map the target bitmap: %s\n", strerror(-err));
		free(t);
		errno = -err;
		return NULL;
	}
	return t;
}

void targets__free(struct targets *t)
{
	int i;

	if (!t)
		return;
	munmap(t->bits, t->bits_len);
	for (i = 0; i < t->nexes; i++)
		free(t->exes[i].path);
	free(t);
}

/* Put pid in the kernel's set unless it is there; announce it. */
static int target_insert(struct targets *t, int pid, __u32 svc, const char *reason)
{
	struct aion_target v = { .service_id = svc };
	__u32 key = (__u32)pid;

	if ((__u32)pid >> 6 >= t->m.nwords)
		return -ERANGE;
	if (bpf_map_lookup_elem(t->m.targets_fd, &key, &v) == 0)
		return -EEXIST; /* already traced (inherited, or another selector) */
	v.service_id = svc;
	v.gen = AION_GEN_AGENT | ++t->gen;
	if (bpf_map_update_elem(t->m.targets_fd, &key, &v, BPF_NOEXIST))
		return -errno;
	/* The kernel sets and clears bits with atomics too (fork, exit). */
	__atomic_fetch_or(&t->bits[key >> 6], 1ULL << (key & 63), __ATOMIC_SEQ_CST);
	procs__add(t->procs, key, v.gen, svc, reason);
	return 0;
}

struct pid_pair {
	int pid;
	int ppid;
};

struct pid_list {
	struct pid_pair *v;
	size_t n, cap;
};

static int collect(int pid, void *arg)
{
	struct pid_list *l = arg;
	int ppid = procinfo__ppid(pid);

	if (ppid < 0)
		return 0; /* exited meanwhile */
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 512;
		struct pid_pair *v = realloc(l->v, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		l->v = v;
		l->cap = cap;
	}
	l->v[l->n].pid = pid;
	l->v[l->n].ppid = ppid;
	l->n++;
	return 0;
}

/* pid (already inserted) and its descendants. */
static int add_tree(struct targets *t, int pid, __u32 svc, const char *reason)
{
	struct pid_list l = {};
	int *queue, head = 0, tail = 0, err, added = 0;
	char why[64];
	size_t i;

	err = procinfo__for_each(collect, &l);
	if (err) {
		free(l.v);
		return err;
	}
	queue = calloc(l.n + 1, sizeof(*queue));
	if (!queue) {
		free(l.v);
		return -ENOMEM;
	}
	queue[tail++] = pid;
	while (head < tail) {
		int parent = queue[head++];

		snprintf(why, sizeof(why), "child of pid %d (%s)", parent, reason);
		for (i = 0; i < l.n; i++) {
			if (l.v[i].ppid != parent || l.v[i].pid == parent)
				continue;
			if (target_insert(t, l.v[i].pid, svc, why) == 0)
				added++;
			if (tail < (int)l.n + 1)
				queue[tail++] = l.v[i].pid;
			l.v[i].ppid = -1; /* visit once */
		}
	}
	free(queue);
	free(l.v);
	return added;
}

int targets__add_pid(struct targets *t, int pid, __u32 svc)
{
	int err;

	if (pid <= 0 || !procinfo__alive(pid))
		return -ESRCH;
	/* Insert first, then walk: a child forked meanwhile is either seen
	 * here or inherited in the kernel's fork hook. */
	err = target_insert(t, pid, svc, "--pid");
	if (err && err != -EEXIST)
		return err;
	err = add_tree(t, pid, svc, "--pid");
	return err < 0 ? err : 0;
}

static int exe_key_add(struct targets *t, __u64 ino, __u32 dev, __u32 svc)
{
	struct aion_exe_key key = { .ino = ino, .dev = dev };

	if (bpf_map_update_elem(t->m.exes_fd, &key, &svc, BPF_ANY))
		return -errno;
	return 0;
}

/* Is pid's executable the file at sel->path inside pid's root? */
static int exe_matches(int pid, const struct exe_sel *sel, __u64 *ino, __u32 *dev)
{
	char path[PATH_MAX + 32];
	__u64 ei, pi;
	__u32 ed, pd;
	int err;

	err = procinfo__exe_id(pid, &ei, &ed);
	if (err == -EACCES || err == -EPERM)
		privs__proc_denied("exe", pid, err); /* another user's, no CAP_SYS_PTRACE */
	if (err)
		return 0;
	snprintf(path, sizeof(path), "/proc/%d/root%s", pid, sel->path);
	if (procinfo__file_id(path, &pi, &pd))
		return 0;
	*ino = ei;
	*dev = ed;
	return ei == pi && ed == pd;
}

struct exe_scan {
	struct targets *t;
	const struct exe_sel *sel;
	int found;
};

static int match_exe(int pid, void *arg)
{
	struct exe_scan *s = arg;
	char why[PATH_MAX + 16];
	__u64 ino;
	__u32 dev;

	if (!exe_matches(pid, s->sel, &ino, &dev))
		return 0;
	/* Its file (maybe a container's copy) is matched at exec from now on. */
	exe_key_add(s->t, ino, dev, s->sel->svc);
	snprintf(why, sizeof(why), "--exe %s", s->sel->path);
	if (target_insert(s->t, pid, s->sel->svc, why) == 0)
		s->found++;
	return 0;
}

int targets__add_exe(struct targets *t, const char *path, __u32 svc)
{
	struct exe_sel *sel;
	struct exe_scan s = { .t = t };
	char host[PATH_MAX + 16];
	__u64 ino;
	__u32 dev;
	int known = 0, err;

	if (*path != '/')
		return -EINVAL;
	if (t->nexes == MAX_EXES)
		return -E2BIG;
	sel = &t->exes[t->nexes];
	sel->path = strdup(path);
	if (!sel->path)
		return -ENOMEM;
	sel->svc = svc;
	t->nexes++;
	/* The exes map first: a process exec'd during the scan is caught by
	 * the kernel's exec hook. The file as the agent sees it, and as the
	 * host sees it (the agent may run in a container with hostPID). */
	if (procinfo__file_id(path, &ino, &dev) == 0) {
		err = exe_key_add(t, ino, dev, svc);
		if (err)
			return err;
		known = 1;
	}
	snprintf(host, sizeof(host), "/proc/1/root%s", path);
	if (procinfo__file_id(host, &ino, &dev) == 0) {
		err = exe_key_add(t, ino, dev, svc);
		if (err)
			return err;
		known = 1;
	}
	/* Any other file at that path inside a process's root is matched when
	 * it is exec'd (and a replaced binary is followed by path). */
	*t->m.report_execs = 1;
	s.sel = sel;
	err = procinfo__for_each(match_exe, &s);
	if (err)
		return err;
	if (!known && !s.found)
		fprintf(stderr, "targets: --exe %s: no such file here or on the host yet; "
				"processes that run it (in a container too) are traced when they start\n", path);
	fprintf(stderr, "targets: --exe %s: %d running process%s traced, later ones on exec\n",
		path, s.found, s.found == 1 ? "" : "es");
	return 0;
}

void targets__on_exec(struct targets *t, int pid)
{
	char why[PATH_MAX + 32];
	__u64 ino;
	__u32 dev;
	int i;

	for (i = 0; i < t->nexes; i++) {
		if (!exe_matches(pid, &t->exes[i], &ino, &dev))
			continue;
		exe_key_add(t, ino, dev, t->exes[i].svc);
		snprintf(why, sizeof(why), "exec of %s", t->exes[i].path);
		if (target_insert(t, pid, t->exes[i].svc, why) == 0)
			add_tree(t, pid, t->exes[i].svc, why);
		return;
	}
}

/* ---- --port -------------------------------------------------------------- */

struct inode_set {
	unsigned long *v;
	size_t n, cap;
};

static int inode_add(struct inode_set *s, unsigned long ino)
{
	size_t i;

	for (i = 0; i < s->n; i++)
		if (s->v[i] == ino)
			return 0;
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 16;
		unsigned long *v = realloc(s->v, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		s->v = v;
		s->cap = cap;
	}
	s->v[s->n++] = ino;
	return 0;
}

static int inode_has(const struct inode_set *s, unsigned long ino)
{
	size_t i;

	for (i = 0; i < s->n; i++)
		if (s->v[i] == ino)
			return 1;
	return 0;
}

struct port_scan {
	struct targets *t;
	unsigned port;
	__u32 svc;
	struct inode_set netns;    /* network namespaces read already */
	struct inode_set sockets;  /* inodes of listening sockets on port */
	int found;
};

/* Listening sockets on s->port in /proc/PID/net/tcp{,6}. */
static void read_listeners(struct port_scan *s, int pid, const char *file)
{
	char path[64], line[512];
	unsigned long ino;
	unsigned lport, st;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/net/%s", pid, file);
	f = fopen(path, "re");
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		/* sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode */
		if (sscanf(line, " %*u: %*[0-9A-Fa-f]:%x %*[0-9A-Fa-f]:%*x %x %*x:%*x %*x:%*x %*x %*u %*u %lu",
			   &lport, &st, &ino) != 3)
			continue;
		if (st == 0x0A && lport == s->port && ino)
			inode_add(&s->sockets, ino);
	}
	fclose(f);
}

static int scan_netns(int pid, void *arg)
{
	struct port_scan *s = arg;
	char path[64], link[64];
	unsigned long ns;
	ssize_t r;

	snprintf(path, sizeof(path), "/proc/%d/ns/net", pid);
	r = readlink(path, link, sizeof(link) - 1);
	if (r <= 0)
		return 0;
	link[r] = '\0';
	if (sscanf(link, "net:[%lu]", &ns) != 1 || inode_has(&s->netns, ns))
		return 0;
	inode_add(&s->netns, ns);
	read_listeners(s, pid, "tcp");
	read_listeners(s, pid, "tcp6");
	return 0;
}

static int scan_fds(int pid, void *arg)
{
	struct port_scan *s = arg;
	char path[300], link[64], why[48];
	struct dirent *de;
	unsigned long ino;
	ssize_t r;
	DIR *d;
	int hit = 0;

	snprintf(path, sizeof(path), "/proc/%d/fd", pid);
	d = opendir(path);
	if (!d && errno == EACCES)
		privs__proc_denied("fd", pid, errno); /* mode 0500: CAP_DAC_READ_SEARCH */
	if (!d)
		return 0;
	while (!hit && (de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/%d/fd/%s", pid, de->d_name);
		r = readlink(path, link, sizeof(link) - 1);
		if (r <= 0)
			continue;
		link[r] = '\0';
		if (sscanf(link, "socket:[%lu]", &ino) == 1 && inode_has(&s->sockets, ino))
			hit = 1;
	}
	closedir(d);
	if (hit) {
		snprintf(why, sizeof(why), "--port %u", s->port);
		if (target_insert(s->t, pid, s->svc, why) == 0)
			s->found++;
		add_tree(s->t, pid, s->svc, why);
	}
	return 0;
}

int targets__add_port(struct targets *t, unsigned port, __u32 svc)
{
	struct port_scan s = { .t = t, .port = port, .svc = svc };
	__u16 key = (__u16)port;
	int err;

	if (!port || port > 65535)
		return -EINVAL;
	/* The kernel's listen hook first, then what listens already. */
	if (bpf_map_update_elem(t->m.ports_fd, &key, &svc, BPF_ANY))
		return -errno;
	err = procinfo__for_each(scan_netns, &s);
	if (!err && s.sockets.n)
		err = procinfo__for_each(scan_fds, &s);
	free(s.netns.v);
	free(s.sockets.v);
	if (err)
		return err;
	fprintf(stderr, "targets: --port %u: %d listening process%s traced, later ones on listen()\n",
		port, s.found, s.found == 1 ? "" : "es");
	return 0;
}

unsigned targets__count(struct targets *t)
{
	__u32 key, next, *prev = NULL;
	unsigned n = 0;

	while (bpf_map_get_next_key(t->m.targets_fd, prev, &next) == 0) {
		n++;
		key = next;
		prev = &key;
	}
	return n;
}
