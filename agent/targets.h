/* SPDX-License-Identifier: MIT */
/* Target selection: which processes the kernel side traces. The kernel
 * holds the set (tgid -> service id, incarnation) and follows fork, exec of
 * a selected file and listen() on a selected port itself; this module seeds
 * it from the selectors and from what already runs, and matches execs of
 * other files against --exe paths inside each process's root. */
#ifndef AION_TARGETS_H
#define AION_TARGETS_H

#include <linux/types.h>

#include "procs.h"

struct targets;

struct targets_maps {
	int targets_fd;      /* tgid -> struct aion_target (hash) */
	int bits_fd;         /* one bit per tgid (mmapable array of nwords __u64) */
	__u32 nwords;
	int exes_fd;         /* struct aion_exe_key -> service id */
	int ports_fd;        /* __u16 port -> service id */
	volatile __u32 *report_execs; /* the kernel's switch for AION_EV_PROC_EXEC_OTHER */
};

struct targets *targets__new(const struct targets_maps *m, struct procs *procs);
void targets__free(struct targets *t);
/* Trace pid and every descendant it has now (later forks are followed in
 * the kernel). 0 or -errno (-ESRCH: no such process). */
int targets__add_pid(struct targets *t, int pid, __u32 svc);
/* Trace every process whose executable is the file at path (in the
 * agent's root, the host's through /proc/1/root, or the process's own
 * root): those running now, and those exec'd later. 0 or -errno. */
int targets__add_exe(struct targets *t, const char *path, __u32 svc);
/* Trace every process listening on TCP port (any network namespace), now
 * and later (their children too). 0 or -errno. */
int targets__add_port(struct targets *t, unsigned port, __u32 svc);
/* pid exec'd a file that is not a known --exe file: match it by path. */
void targets__on_exec(struct targets *t, int pid);
/* Entries of the kernel's target map. */
unsigned targets__count(struct targets *t);

#endif /* AION_TARGETS_H */
