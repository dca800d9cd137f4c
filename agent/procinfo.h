/* SPDX-License-Identifier: MIT */
/* What /proc says about a process: its executable, its parent, its usage. */
#ifndef AION_PROCINFO_H
#define AION_PROCINFO_H

#include <stddef.h>
#include <sys/types.h>
#include <linux/types.h>

/* Reads up to n - 1 bytes of a small file (/proc) into buf, NUL-terminated.
 * Bytes read, or -errno. */
int procinfo__read_file(const char *path, char *buf, size_t n);
/* Base name of the process's executable ("nginx"), else its comm. 0 or -errno. */
int procinfo__exe_name(int pid, char *out, size_t n);
/* The name procinfo__exe_name gives from the text of the exe link (""
 * when there is none) and of /proc/PID/comm ("" when unread): printable
 * ASCII, cut to n. 0, or -ENOENT when neither names anything. */
int procinfo__name(const char *link, const char *comm, char *out, size_t n);
/* Device (kernel encoding) and inode of the process's executable. 0 or -errno. */
int procinfo__exe_id(int pid, __u64 *ino, __u32 *kdev);
/* Device (kernel encoding) and inode of the file at path. 0 or -errno. */
int procinfo__file_id(const char *path, __u64 *ino, __u32 *kdev);
/* Parent process id, or -errno. */
int procinfo__ppid(int pid);
/* The parent process id in the text of /proc/PID/stat, or -EINVAL. */
int procinfo__parse_ppid(const char *text);
/* 1 when /proc/PID exists, else 0. */
int procinfo__alive(int pid);
/* Call fn for every process id in /proc; stops early when fn returns non-zero. */
int procinfo__for_each(int (*fn)(int pid, void *arg), void *arg);
struct proc_stat {
	unsigned long long user_ticks;   /* clock ticks (sysconf _SC_CLK_TCK) */
	unsigned long long system_ticks;
	long threads;
	long rss_pages;
};

/* CPU times, threads and RSS from /proc/PID/stat. 0 or -errno. */
int procinfo__stat(int pid, struct proc_stat *st);
/* The same from the text of /proc/PID/stat. 0 or -EINVAL. */
int procinfo__parse_stat(const char *text, struct proc_stat *st);
/* Open file descriptors (entries of /proc/PID/fd), or -errno. */
long procinfo__count_fds(int pid);
/* The kernel's dev_t encoding (major << 20 | minor) of a user-space dev_t. */
__u32 procinfo__kdev(dev_t dev);

#endif /* AION_PROCINFO_H */
