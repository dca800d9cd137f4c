// SPDX-License-Identifier: MIT
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include <bpf/bpf.h>

#include "aion/abi.h"
#include "procinfo.h"
#include "targets.h"

struct targets {
	int targets_fd;
	int exes_fd;
	__u64 *bits;  /* the kernel's target_bits array, shared memory */
	size_t bits_len;
	__u32 nwords;
};

struct targets *targets__new(int targets_fd, int bits_fd, __u32 nwords, int exes_fd)
{
	struct targets *t = calloc(1, sizeof(*t));
	long page = sysconf(_SC_PAGESIZE);

	if (!t)
		return NULL;
	t->targets_fd = targets_fd;
	t->exes_fd = exes_fd;
	t->nwords = nwords;
	t->bits_len = ((size_t)nwords * sizeof(__u64) + page - 1) / page * page;
	t->bits = mmap(NULL, t->bits_len, PROT_READ | PROT_WRITE, MAP_SHARED, bits_fd, 0);
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
	if (!t)
		return;
	munmap(t->bits, t->bits_len);
	free(t);
}

static int target_insert(struct targets *t, int pid, __u32 svc)
{
	struct aion_target v = { .service_id = svc };
	__u32 key = (__u32)pid;

	if ((__u32)pid >> 6 >= t->nwords)
		return -ERANGE;
	if (bpf_map_update_elem(t->targets_fd, &key, &v, BPF_ANY))
		return -errno;
	/* The kernel sets and clears bits with atomics too (fork, exit). */
	__atomic_fetch_or(&t->bits[key >> 6], 1ULL << (key & 63), __ATOMIC_SEQ_CST);
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

int targets__add_pid(struct targets *t, int pid, __u32 svc)
{
	struct pid_list l = {};
	int *queue, head = 0, tail = 0, err, added = 0;
	size_t i;

	if (pid <= 0 || !procinfo__alive(pid))
		return -ESRCH;
	/* Insert first, then walk: a child forked meanwhile is either seen
	 * here or inherited in the kernel's fork hook. */
	err = target_insert(t, pid, svc);
	if (err)
		return err;
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

		for (i = 0; i < l.n; i++) {
			if (l.v[i].ppid != parent || l.v[i].pid == parent)
				continue;
			if (target_insert(t, l.v[i].pid, svc) == 0)
				added++;
			if (tail < (int)l.n + 1)
				queue[tail++] = l.v[i].pid;
			l.v[i].ppid = -1; /* visit once */
		}
	}
	fprintf(stderr, "targets: --pid %d: traced with %d descendant%s\n", pid, added,
		added == 1 ? "" : "s");
	free(queue);
	free(l.v);
	return 0;
}

struct exe_scan {
	struct targets *t;
	struct aion_exe_key key;
	__u32 svc;
	int found;
};

static int match_exe(int pid, void *arg)
{
	struct exe_scan *s = arg;
	__u64 ino;
	__u32 dev;

	if (procinfo__exe_id(pid, &ino, &dev))
		return 0;
	if (ino == s->key.ino && dev == s->key.dev && target_insert(s->t, pid, s->svc) == 0)
		s->found++;
	return 0;
}

int targets__add_exe(struct targets *t, const char *path, __u32 svc)
{
	struct exe_scan s = { .t = t, .svc = svc };
	int err;

	err = procinfo__file_id(path, &s.key.ino, &s.key.dev);
	if (err)
		return err;
	/* The exes map first: a process exec'd during the scan is caught by
	 * the kernel's exec hook. */
	if (bpf_map_update_elem(t->exes_fd, &s.key, &svc, BPF_ANY))
		return -errno;
	err = procinfo__for_each(match_exe, &s);
	if (err)
		return err;
	fprintf(stderr, "targets: --exe %s: %d running process%s traced, later ones on exec\n",
		path, s.found, s.found == 1 ? "" : "es");
	return 0;
}

unsigned targets__count(struct targets *t)
{
	__u32 key, next, *prev = NULL;
	unsigned n = 0;

	while (bpf_map_get_next_key(t->targets_fd, prev, &next) == 0) {
		n++;
		key = next;
		prev = &key;
	}
	return n;
}
