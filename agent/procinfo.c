// SPDX-License-Identifier: MIT
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "procinfo.h"

__u32 procinfo__kdev(dev_t dev)
{
	return (__u32)((major(dev) << 20) | minor(dev));
}

int procinfo__read_file(const char *path, char *buf, size_t n)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t r;

	if (fd < 0)
		return -errno;
	r = read(fd, buf, n - 1);
	close(fd);
	if (r < 0)
		return -errno;
	buf[r] = '\0';
	return (int)r;
}

/* Label values must be UTF-8: a name is kept to printable ASCII, anything
 * else (a byte of a non-UTF-8 file name, a control character) becomes '_'. */
static void printable(char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || (unsigned char)*s > 0x7e)
			*s = '_';
}

int procinfo__name(const char *link, const char *comm, char *out, size_t n)
{
	const char *base, *del;
	size_t bl, cl;

	if (n == 0)
		return -EINVAL;
	base = strrchr(link, '/');
	base = base ? base + 1 : link;
	/* A file deleted since: the kernel appends " (deleted)". */
	del = strstr(base, " (deleted)");
	bl = del && del[10] == '\0' ? (size_t)(del - base) : strlen(base);
	cl = strcspn(comm, "\n");
	if (bl) {
		snprintf(out, n, "%.*s", (int)bl, base);
		/* A multi-call binary reached through a link of another
		 * name (redis-server -> redis-check-rdb, busybox): the
		 * command name the kernel took from the path is the
		 * better name. Related names (python3 for python3.11)
		 * keep the file's. A title a process gave itself
		 * ("gunicorn: worker") is not a command name. */
		if (cl && strncmp(base, comm, cl < bl ? cl : bl) && !memchr(comm, ' ', cl) &&
		    !memchr(comm, ':', cl))
			snprintf(out, n, "%.*s", (int)cl, comm);
	} else if (cl) {
		/* Kernel threads and exited processes have no exe: use comm. */
		snprintf(out, n, "%.*s", (int)cl, comm);
	} else {
		return -ENOENT;
	}
	printable(out);
	return 0;
}

int procinfo__exe_name(int pid, char *out, size_t n)
{
	char path[64], link[4096], comm[64];
	ssize_t r;
	int c;

	if (n == 0)
		return -EINVAL;
	snprintf(path, sizeof(path), "/proc/%d/exe", pid);
	r = readlink(path, link, sizeof(link) - 1);
	link[r > 0 ? r : 0] = '\0';
	snprintf(path, sizeof(path), "/proc/%d/comm", pid);
	c = procinfo__read_file(path, comm, sizeof(comm));
	if (c < 0)
		comm[0] = '\0';
	r = procinfo__name(link, comm, out, n);
	return r == -ENOENT && c < 0 ? c : (int)r;
}

int procinfo__file_id(const char *path, __u64 *ino, __u32 *kdev)
{
	struct stat st;

	if (stat(path, &st))
		return -errno;
	*ino = st.st_ino;
	*kdev = procinfo__kdev(st.st_dev);
	return 0;
}

int procinfo__exe_id(int pid, __u64 *ino, __u32 *kdev)
{
	char path[64];

	snprintf(path, sizeof(path), "/proc/%d/exe", pid);
	return procinfo__file_id(path, ino, kdev);
}

int procinfo__parse_ppid(const char *text)
{
	const char *p;
	int ppid;

	/* comm may hold spaces and parentheses: parse after the last ')'. */
	p = strrchr(text, ')');
	if (!p || sscanf(p + 1, " %*c %d", &ppid) != 1 || ppid < 0)
		return -EINVAL;
	return ppid;
}

int procinfo__ppid(int pid)
{
	char path[64], buf[1024];
	int r;

	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	r = procinfo__read_file(path, buf, sizeof(buf));
	if (r < 0)
		return r;
	return procinfo__parse_ppid(buf);
}

int procinfo__alive(int pid)
{
	char path[64];

	snprintf(path, sizeof(path), "/proc/%d", pid);
	return access(path, F_OK) == 0;
}

int procinfo__for_each(int (*fn)(int pid, void *arg), void *arg)
{
	DIR *d = opendir("/proc");
	struct dirent *de;
	int err = 0;

	if (!d)
		return -errno;
	while ((de = readdir(d))) {
		char *end;
		long pid;

		if (!isdigit((unsigned char)de->d_name[0]))
			continue;
		pid = strtol(de->d_name, &end, 10);
		if (*end || pid <= 0)
			continue;
		err = fn((int)pid, arg);
		if (err)
			break;
	}
	closedir(d);
	return err < 0 ? err : 0;
}

int procinfo__parse_stat(const char *text, struct proc_stat *st)
{
	unsigned long long ut, stt;
	long threads, rss;
	const char *p;

	p = strrchr(text, ')');
	/* After comm: state(3) ... utime(14) stime(15) ... num_threads(20) ...
	 * rss(24), in pages. */
	if (!p || sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu"
			 " %*d %*d %*d %*d %ld %*d %*u %*u %ld", &ut, &stt, &threads, &rss) != 4)
		return -EINVAL;
	st->user_ticks = ut;
	st->system_ticks = stt;
	st->threads = threads;
	st->rss_pages = rss;
	return 0;
}

int procinfo__stat(int pid, struct proc_stat *st)
{
	char path[64], buf[2048];
	int r;

	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	r = procinfo__read_file(path, buf, sizeof(buf));
	if (r < 0)
		return r;
	return procinfo__parse_stat(buf, st);
}

long procinfo__count_fds(int pid)
{
	char path[64];
	struct dirent *de;
	long n = 0;
	DIR *d;

	snprintf(path, sizeof(path), "/proc/%d/fd", pid);
	d = opendir(path);
	if (!d)
		return -errno;
	while ((de = readdir(d)))
		if (de->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}
