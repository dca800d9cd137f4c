// SPDX-License-Identifier: MIT
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <linux/capability.h>

#include "privs.h"
#include "procinfo.h"

#ifndef CAP_PERFMON
#define CAP_PERFMON 38
#endif
#ifndef CAP_BPF
#define CAP_BPF 39
#endif

static const char *const names[] = {
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID",
	"CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE",
	"CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW",
	"CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT",
	"CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE",
	"CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE",
	"CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE",
	"CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ",
	"CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
};

/* What each capability of the sets is for, as the start-up error says it. */
static const char *why(int cap, const struct privs_kernel *k)
{
	switch (cap) {
	case CAP_BPF:
		return "load the BPF programs";
	case CAP_PERFMON:
		return "attach them to tracepoints";
	case CAP_SYS_ADMIN:
		return k->last_cap < CAP_BPF ? "load BPF programs on a kernel older than 5.8"
					     : "attach TLS uprobes; or give --no-tls";
	case CAP_SYS_PTRACE:
		return "enter /proc/PID/root and read /proc/PID/exe of other users' processes";
	case CAP_DAC_READ_SEARCH:
		return "list /proc/PID/fd of other users' processes";
	case CAP_SETPCAP:
		return "shrink the bounding set for --drop-caps";
	case CAP_SYS_RESOURCE:
		return "raise RLIMIT_MEMLOCK for BPF maps on a kernel older than 5.11";
	default:
		return "?";
	}
}

const char *privs__name(int cap)
{
	static char buf[16];

	if (cap >= 0 && cap < (int)(sizeof(names) / sizeof(names[0])))
		return names[cap];
	snprintf(buf, sizeof(buf), "cap_%d", cap);
	return buf;
}

char *privs__names(__u64 set, char *out, size_t n)
{
	size_t len = 0;
	int c;

	if (!n)
		return out;
	out[0] = '\0';
	for (c = 0; c < 64; c++) {
		if (!(set & PRIVS_BIT(c)))
			continue;
		len += snprintf(out + len, len < n ? n - len : 0, "%s%s", len ? "," : "", privs__name(c));
		if (len >= n)
			break;
	}
	if (!set)
		snprintf(out, n, "none");
	return out;
}

static int before(const struct privs_kernel *k, int major, int minor)
{
	return k->major < major || (k->major == major && k->minor < minor);
}

void privs__kernel(struct privs_kernel *k)
{
	struct utsname u;
	FILE *f;

	k->last_cap = CAP_BPF; /* unknown: assume a kernel that has CAP_BPF */
	f = fopen("/proc/sys/kernel/cap_last_cap", "re");
	if (f) {
		if (fscanf(f, "%d", &k->last_cap) != 1 || k->last_cap < 0 || k->last_cap > 63)
			k->last_cap = CAP_BPF;
		fclose(f);
	}
	k->major = k->minor = 0;
	if (uname(&u) == 0 && sscanf(u.release, "%d.%d", &k->major, &k->minor) != 2)
		k->major = k->minor = 0;
}

__u64 privs__startup_set(const struct privs_kernel *k, const struct privs_mode *m)
{
	__u64 s = PRIVS_BIT(CAP_SYS_PTRACE) | PRIVS_BIT(CAP_DAC_READ_SEARCH);

	/* Before 5.8 there is no CAP_BPF/CAP_PERFMON: CAP_SYS_ADMIN does both. */
	if (k->last_cap < CAP_BPF)
		s |= PRIVS_BIT(CAP_SYS_ADMIN);
	else
		s |= PRIVS_BIT(CAP_BPF) | PRIVS_BIT(CAP_PERFMON);
	/* perf_uprobe_event_init() asks for CAP_SYS_ADMIN (since the 2025
	 * "perf: Fix privilege check for uprobes"; CAP_PERFMON before). */
	if (m->tls)
		s |= PRIVS_BIT(CAP_SYS_ADMIN);
	/* Maps are charged to the memory cgroup from 5.11 on; before, libbpf
	 * raises RLIMIT_MEMLOCK. */
	if (k->major && before(k, 5, 11))
		s |= PRIVS_BIT(CAP_SYS_RESOURCE);
	if (m->drop)
		s |= PRIVS_BIT(CAP_SETPCAP);
	return s;
}

__u64 privs__keep_set(const struct privs_kernel *k, const struct privs_mode *m)
{
	/* /proc of targets found later: exec of an --exe file, TLS maps,
	 * process_open_fds. */
	__u64 s = PRIVS_BIT(CAP_SYS_PTRACE) | PRIVS_BIT(CAP_DAC_READ_SEARCH);

	if (m->tls)
		s |= PRIVS_BIT(CAP_SYS_ADMIN); /* a uprobe per library mapped later */
	/* Before 6.5 (with kernel.unprivileged_bpf_disabled, the default)
	 * every bpf() call, even on a map fd, needs CAP_BPF. */
	if (k->major && before(k, 6, 5))
		s |= k->last_cap < CAP_BPF ? PRIVS_BIT(CAP_SYS_ADMIN) : PRIVS_BIT(CAP_BPF);
	return s;
}

static int hex_field(const char *text, const char *key, __u64 *out)
{
	const char *p = text;
	size_t kl = strlen(key);
	char *end;

	while (p && *p) {
		if (!strncmp(p, key, kl) && p[kl] == ':') {
			p += kl + 1;
			while (*p == '\t' || *p == ' ')
				p++;
			errno = 0;
			*out = strtoull(p, &end, 16);
			if (end == p || errno || (*end && *end != '\n'))
				return -EINVAL;
			return 0;
		}
		p = strchr(p, '\n');
		if (p)
			p++;
	}
	return -EINVAL;
}

int privs__parse_status(const char *text, struct privs_status *st)
{
	__u64 nnp;

	if (hex_field(text, "CapInh", &st->inh) || hex_field(text, "CapPrm", &st->prm) ||
	    hex_field(text, "CapEff", &st->eff) || hex_field(text, "CapBnd", &st->bnd) ||
	    hex_field(text, "CapAmb", &st->amb) || hex_field(text, "NoNewPrivs", &nnp) || nnp > 1)
		return -EINVAL;
	st->no_new_privs = (int)nnp;
	return 0;
}

int privs__effective(__u64 *eff)
{
	struct __user_cap_header_struct h = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct d[2] = {};

	if (syscall(SYS_capget, &h, d))
		return -errno;
	*eff = (__u64)d[1].effective << 32 | d[0].effective;
	return 0;
}

int privs__check(const struct privs_mode *m)
{
	struct privs_kernel k;
	__u64 need, eff, miss;
	char line[1024];
	size_t len = 0;
	int c, err;

	privs__kernel(&k);
	need = privs__startup_set(&k, m);
	err = privs__effective(&eff);
	if (err) {
		fprintf(stderr, "privs: cannot read the capabilities (capget): %s\n", strerror(-err));
		return err;
	}
	miss = need & ~eff;
	if (!miss)
		return 0;
	for (c = 0; c < 64 && len < sizeof(line); c++)
		if (miss & PRIVS_BIT(c))
			len += snprintf(line + len, sizeof(line) - len, "%s%s (to %s)", len ? ", " : "",
					privs__name(c), why(c, &k));
	fprintf(stderr, "privs: missing %s: grant %s (systemd AmbientCapabilities=, Kubernetes "
			"securityContext.capabilities.add) or run as root; see README \"Privileges\"\n",
		line, miss & (miss - 1) ? "them" : "it");
	return -EPERM;
}

/* ---- --drop-caps ---------------------------------------------------------- */

/* Capabilities are per thread: each thread drops its own, the others from
 * a signal handler (as glibc does for setuid()). */
static __u64 drop_keep;
static int drop_last_cap;
static int drop_acks, drop_err;

static int drop_self(void)
{
	struct __user_cap_header_struct h = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct d[2] = {};
	int c;

	/* The bounding set first: dropping from it needs CAP_SETPCAP. */
	for (c = 0; c <= drop_last_cap; c++)
		if (!(drop_keep & PRIVS_BIT(c)) && prctl(PR_CAPBSET_READ, c, 0, 0, 0) == 1 &&
		    prctl(PR_CAPBSET_DROP, c, 0, 0, 0))
			return -errno;
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) && errno != EINVAL)
		return -errno;
	d[0].effective = d[0].permitted = (__u32)drop_keep;
	d[1].effective = d[1].permitted = (__u32)(drop_keep >> 32);
	if (syscall(SYS_capset, &h, d))
		return -errno;
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))
		return -errno;
	return 0;
}

static void on_drop_signal(int sig)
{
	int saved = errno, err = drop_self();

	(void)sig;
	if (err)
		__atomic_store_n(&drop_err, err, __ATOMIC_SEQ_CST);
	__atomic_add_fetch(&drop_acks, 1, __ATOMIC_SEQ_CST);
	errno = saved;
}

static int read_status(int tid, struct privs_status *st)
{
	char path[64], buf[4096];
	int r;

	snprintf(path, sizeof(path), "/proc/self/task/%d/status", tid);
	r = procinfo__read_file(path, buf, sizeof(buf));
	if (r < 0)
		return r;
	return privs__parse_status(buf, st);
}

static int dropped(int tid)
{
	struct privs_status st;

	if (read_status(tid, &st))
		return -1; /* gone */
	return st.eff == drop_keep && st.prm == drop_keep && st.bnd == drop_keep && !st.inh &&
	       !st.amb && st.no_new_privs;
}

/* Signal every other thread that still holds more (sig 0: signal none);
 * the number of threads not dropped yet (this one included), the threads
 * counted in *n, or -errno. */
static int signal_others(int sig, int *n)
{
	int self = (int)syscall(SYS_gettid), sent = 0;
	struct dirent *de;
	DIR *d = opendir("/proc/self/task");

	if (!d)
		return -errno;
	*n = 0;
	while ((de = readdir(d))) {
		int tid = atoi(de->d_name);

		if (tid <= 0)
			continue;
		(*n)++;
		if (dropped(tid))
			continue;
		sent++;
		if (sig && tid != self)
			syscall(SYS_tgkill, getpid(), tid, sig);
	}
	closedir(d);
	return sent;
}

int privs__drop(const struct privs_mode *m)
{
	struct privs_kernel k;
	struct sigaction sa = { .sa_handler = on_drop_signal, .sa_flags = SA_RESTART }, old;
	struct timespec tick = { 0, 1000000 };
	char kept[512];
	int sig = SIGRTMIN + 1, round, sent = 0, threads = 0, ms, err;

	privs__kernel(&k);
	drop_keep = privs__keep_set(&k, m);
	drop_last_cap = k.last_cap;
	sigemptyset(&sa.sa_mask);
	if (sigaction(sig, &sa, &old))
		return -errno;
	/* A thread created meanwhile by one not yet dropped is caught by the
	 * next round. */
	for (round = 0; round < 3; round++) {
		__atomic_store_n(&drop_acks, 0, __ATOMIC_SEQ_CST);
		sent = signal_others(sig, &threads) - 1; /* this thread is not dropped yet */
		if (sent <= 0)
			break;
		for (ms = 0; ms < 2000 && __atomic_load_n(&drop_acks, __ATOMIC_SEQ_CST) < sent; ms++)
			nanosleep(&tick, NULL);
	}
	err = drop_self();
	if (!err)
		err = __atomic_load_n(&drop_err, __ATOMIC_SEQ_CST);
	if (!err)
		sent = signal_others(0, &threads); /* 0 when every thread is done */
	sigaction(sig, &old, NULL);
	privs__names(drop_keep, kept, sizeof(kept));
	if (err || sent) {
		fprintf(stderr, "privs: --drop-caps failed: %s (it needs CAP_SETPCAP at start-up; "
				"keeping %s was asked)\n",
			err ? strerror(-err) : sent < 0 ? strerror(-sent) : "a thread kept its capabilities",
			kept);
		return err ? err : sent < 0 ? sent : -EPERM;
	}
	fprintf(stderr, "privs: capabilities dropped in %d thread%s: kept %s (effective, permitted, "
			"bounding); inheritable and ambient empty; no_new_privs set\n",
		threads, threads == 1 ? "" : "s", kept);
	return 0;
}

/* ---- /proc denied ------------------------------------------------------- */

static unsigned long long proc_denied;

void privs__proc_denied(const char *what, int pid, int err)
{
	if (__atomic_fetch_add(&proc_denied, 1, __ATOMIC_RELAXED) == 0)
		fprintf(stderr, "privs: cannot read /proc/%d/%s: %s: processes of other users are not "
				"fully instrumented (grant CAP_SYS_PTRACE and CAP_DAC_READ_SEARCH); counted "
				"in aion_agent_instrumentation_errors_total{reason=\"proc_access_denied\"}\n",
			pid, what, strerror(err < 0 ? -err : err));
}

unsigned long long privs__proc_denied_count(void)
{
	return __atomic_load_n(&proc_denied, __ATOMIC_RELAXED);
}
