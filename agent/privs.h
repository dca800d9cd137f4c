/* SPDX-License-Identifier: MIT */
/* The capabilities the agent needs: checked at start-up, and (--drop-caps)
 * reduced to what later work needs once everything is attached. The sets
 * and the reason for each capability are in README "Privileges". */
#ifndef AION_PRIVS_H
#define AION_PRIVS_H

#include <stddef.h>
#include <linux/types.h>

#define PRIVS_BIT(cap) (1ULL << (cap))

/* Kernel facts the sets depend on (privs__kernel() reads this machine's). */
struct privs_kernel {
	int last_cap;    /* /proc/sys/kernel/cap_last_cap */
	int major, minor; /* uname release */
};

/* What the agent does: TLS uprobes on, --drop-caps asked. */
struct privs_mode {
	int tls;
	int drop;
};

/* This machine's struct privs_kernel. */
void privs__kernel(struct privs_kernel *k);
/* Capabilities needed to start (load, attach, read /proc of any process). */
__u64 privs__startup_set(const struct privs_kernel *k, const struct privs_mode *m);
/* Capabilities kept by --drop-caps (later uprobes, /proc of new targets). */
__u64 privs__keep_set(const struct privs_kernel *k, const struct privs_mode *m);
/* "CAP_SYS_PTRACE" (or "cap_41" for a number this build does not name). */
const char *privs__name(int cap);
/* The names in set, comma-separated ("none" when empty); returns out. */
char *privs__names(__u64 set, char *out, size_t n);

/* The Cap* and NoNewPrivs lines of a /proc/PID/status text. */
struct privs_status {
	__u64 inh, prm, eff, bnd, amb;
	int no_new_privs;
};
/* 0, or -EINVAL when a line is missing or malformed. */
int privs__parse_status(const char *text, struct privs_status *st);

/* The effective set of the calling thread, or -errno. */
int privs__effective(__u64 *eff);
/* Start-up check: 0, or -EPERM after one line on stderr that names the
 * missing capabilities, what each is for, and the fix. */
int privs__check(const struct privs_mode *m);
/* Reduce every thread of the process to privs__keep_set(): effective,
 * permitted and bounding sets; inheritable and ambient emptied;
 * no_new_privs set. Checked against /proc/self/task/TID/status. One line
 * on stderr either way; 0 or -errno. */
int privs__drop(const struct privs_mode *m);

/* A /proc file of process pid that could not be read for lack of a
 * capability (what: "maps"): logged once, counted. */
void privs__proc_denied(const char *what, int pid, int err);
/* How many times privs__proc_denied() was called. */
unsigned long long privs__proc_denied_count(void);

#endif /* AION_PRIVS_H */
