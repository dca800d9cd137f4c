/* SPDX-License-Identifier: MIT */
/* Target selection: which processes the kernel side traces. The kernel
 * holds the set (tgid -> service id) and follows fork and exec itself; this
 * module seeds it from the selectors and from what already runs. */
#ifndef AION_TARGETS_H
#define AION_TARGETS_H

#include <linux/types.h>

struct targets;

/* targets_fd: tgid -> service (hash); bits_fd: one bit per tgid (mmapable
 * array of nwords __u64); exes_fd: --exe device+inode set. */
struct targets *targets__new(int targets_fd, int bits_fd, __u32 nwords, int exes_fd);
void targets__free(struct targets *t);
/* Trace pid and every descendant it has now (later forks are followed in
 * the kernel). 0 or -errno (-ESRCH: no such process). */
int targets__add_pid(struct targets *t, int pid, __u32 svc);
/* Trace every process whose executable is the file at path: those running
 * now, and (through the exes map) those exec'd later. 0 or -errno. */
int targets__add_exe(struct targets *t, const char *path, __u32 svc);
/* Processes in the kernel's target set. */
unsigned targets__count(struct targets *t);

#endif /* AION_TARGETS_H */
