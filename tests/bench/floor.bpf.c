// SPDX-License-Identifier: GPL-2.0 OR MIT
/* The benchmark's floor: empty programs on exactly the tracepoints that
 * bpf/aion.bpf.c and bpf/process.bpf.h attach to. What the traced process
 * pays with this attached is the cost of merely being attached (the
 * tracepoint trampoline and the program call); the agent's extra cost is
 * what its programs do on top. Keep this list in step with the agent's
 * SEC() lines that it attaches: the data-path programs (aion_data, aion_pg,
 * aion_mysql, aion_redis) are tail-called from the syscall programs and
 * aion_flush is run on demand, so none of them has a counterpart here; nor
 * have the TLS plaintext programs (aion_tls_data, aion_tls_pg, ...), tail-
 * called from the uprobes. The agent's TLS uprobes (on each TLS library
 * file its traced processes map) are the two programs at the end, which
 * floor.c attaches to the functions of its tables for every library named
 * with --lib.
 * bench.py checks at run time that both attach to the same tracepoints and
 * uprobes. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

char LICENSE[] SEC("license") = "Dual MIT/GPL";

#define EMPTY_TP(sec, name)                 \
	SEC("tracepoint/" sec)              \
	int floor_##name(void *ctx)         \
	{                                   \
		return 0;                   \
	}

#define SYSCALL_EXIT(name) EMPTY_TP("syscalls/sys_exit_" #name, exit_##name)

/* The agent reads syscall arguments from pt_regs at exit: no enter programs
 * on the data path (connect's is below). */
SYSCALL_EXIT(read)
SYSCALL_EXIT(recvfrom)
SYSCALL_EXIT(readv)
SYSCALL_EXIT(recvmsg)
SYSCALL_EXIT(write)
SYSCALL_EXIT(sendto)
SYSCALL_EXIT(writev)
SYSCALL_EXIT(sendmsg)
SYSCALL_EXIT(sendfile64)
SYSCALL_EXIT(connect)
/* TLS (on by default): a traced process mapping a file executable, so that
 * the agent finds TLS libraries loaded late. */
SYSCALL_EXIT(mmap)

/* connect() is timed from its entry (a refused or timed-out connect is a
 * client request that failed). */
EMPTY_TP("syscalls/sys_enter_connect", enter_connect)
EMPTY_TP("syscalls/sys_exit_accept", exit_accept)
EMPTY_TP("syscalls/sys_exit_accept4", exit_accept4)
EMPTY_TP("syscalls/sys_enter_close", enter_close)
EMPTY_TP("sock/inet_sock_set_state", sock_state)
EMPTY_TP("sched/sched_process_exit", process_exit)

SEC("tp_btf/sched_process_fork")
int BPF_PROG(floor_fork, struct task_struct *parent, struct task_struct *child)
{
	return 0;
}

SEC("tp_btf/sched_process_exec")
int BPF_PROG(floor_exec, struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)
{
	return 0;
}

/* TLS: one empty program for every function entry and one for every
 * return the agent probes in a TLS library, OpenSSL or GnuTLS (floor.c
 * attaches them, per library file, pid -1 as the agent does). An empty program costs the same
 * whichever function it is on, so two programs serve all the probes. */
SEC("uprobe")
int floor_uprobe(void *ctx)
{
	return 0;
}

SEC("uretprobe")
int floor_uretprobe(void *ctx)
{
	return 0;
}

/* ---- the "min" variant (aion-floor --min) --------------------------------
 * Not empty: about the least work a per-request timing does on the two
 * data hooks a request passes through (in-kernel aggregation included): test the process against a target bit, find the
 * connection's state by (tgid, fd), read the clock, read the first 16 bytes
 * the syscall moved (enough to tell a request or a response start) and, on
 * a write, put the time since the last read in a log2 histogram. No
 * parsing, no record to userspace. With --min these programs take the
 * place of the empty ones on read, recvfrom, write, writev and sendto; the
 * other tracepoints keep their empty programs, so the attached set is the
 * same. */

#if !defined(__TARGET_ARCH_x86)
#error "the min and lean variants read the syscall's registers of x86-64"
#endif

struct min_key {
	__u32 tgid;
	__u32 fd;
};

struct min_state {
	__u64 start_ns;
	__u8 head[16];
};

/* One bit per traced tgid (floor.c sets them from --pid), as the agent's
 * target_bits. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 65536);
	__type(key, __u32);
	__type(value, __u64);
} min_bits SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, struct min_key);
	__type(value, struct min_state);
} min_conns SEC(".maps");

/* 0: hook runs in traced processes; 1: writes timed; 2..65: log2 buckets. */
#define MIN_COUNTS 66
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, MIN_COUNTS);
	__type(key, __u32);
	__type(value, __u64);
} min_counts SEC(".maps");

static __always_inline void min_count(__u32 i)
{
	__u64 *v = bpf_map_lookup_elem(&min_counts, &i);

	if (v)
		*v += 1;
}

/* floor(log2(v)) for v > 0 (clang-14's BPF backend has no ctlz). */
static __always_inline __u32 min_log2(__u64 v)
{
	__u32 r = 0;

	if (v >> 32) { v >>= 32; r += 32; }
	if (v >> 16) { v >>= 16; r += 16; }
	if (v >> 8) { v >>= 8; r += 8; }
	if (v >> 4) { v >>= 4; r += 4; }
	if (v >> 2) { v >>= 2; r += 2; }
	if (v >> 1)
		r += 1;
	return r;
}

/* The current process is one of --pid's: count the run (min and lean). */
static __always_inline int min_target(void)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32, idx = tgid >> 6;
	__u64 *w = bpf_map_lookup_elem(&min_bits, &idx);

	if (!w || !((*w >> (tgid & 63)) & 1))
		return 0;
	min_count(0);
	return 1;
}

static __always_inline int min_io(struct trace_event_raw_sys_exit *ctx, int iov, int write)
{
	struct min_key k = { .tgid = bpf_get_current_pid_tgid() >> 32 };
	struct min_state *s, z = {};
	struct pt_regs *regs;
	__u64 now, d;
	void *buf;

	if (!min_target() || ctx->ret <= 0)
		return 0;
	regs = (struct pt_regs *)bpf_task_pt_regs(bpf_get_current_task_btf());
	k.fd = regs->di;
	buf = (void *)regs->si;
	s = bpf_map_lookup_elem(&min_conns, &k);
	if (!s) {
		bpf_map_update_elem(&min_conns, &k, &z, BPF_NOEXIST);
		s = bpf_map_lookup_elem(&min_conns, &k);
		if (!s)
			return 0;
	}
	now = bpf_ktime_get_ns();
	if (iov) {
		struct iovec v;

		if (bpf_probe_read_user(&v, sizeof(v), buf))
			return 0;
		buf = v.iov_base;
	}
	bpf_probe_read_user(s->head, sizeof(s->head), buf);
	if (!write) {
		s->start_ns = now;
	} else if (s->start_ns) {
		d = now - s->start_ns;
		s->start_ns = 0;
		min_count(1);
		min_count(2 + min_log2(d | 1));
	}
	return 0;
}

#define MIN_EXIT(name, iov, write)                                         \
	SEC("tracepoint/syscalls/sys_exit_" #name)                         \
	int min_exit_##name(struct trace_event_raw_sys_exit *ctx)          \
	{                                                                  \
		return min_io(ctx, iov, write);                            \
	}

MIN_EXIT(read, 0, 0)
MIN_EXIT(recvfrom, 0, 0)
MIN_EXIT(write, 0, 1)
MIN_EXIT(sendto, 0, 1)
MIN_EXIT(writev, 1, 1)

/* ---- the "lean" variant (aion-floor --lean) ------------------------------
 * A leaner minimum than min, on other hooks: the socket tracepoints
 * sock_recv_length and sock_send_length (tp_btf, kernel >= 6.3; they fire
 * for socket I/O only and hand over the struct sock), the connection's
 * state in socket-local storage instead of a hash, and no read of the
 * request's bytes: the first read after a response starts the next
 * request. The write reads the first 16 bytes it sent (where a status code
 * would be) and puts the time since that first read in the log2 histogram.
 * With --lean these two take the place of the empty programs on the nine
 * data syscalls (the other tracepoints keep theirs). */

struct lean_state {
	__u64 start_ns;
	__u8 head[16];
};

struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct lean_state);
} lean_sk SEC(".maps");

SEC("tp_btf/sock_recv_length")
int BPF_PROG(lean_recv, struct sock *sk, int ret, int flags)
{
	struct lean_state *st;

	if (!min_target() || ret <= 0)
		return 0;
	st = bpf_sk_storage_get(&lean_sk, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
	if (st && !st->start_ns)
		st->start_ns = bpf_ktime_get_ns();
	return 0;
}

SEC("tp_btf/sock_send_length")
int BPF_PROG(lean_send, struct sock *sk, int ret, int flags)
{
	struct lean_state *st;
	struct pt_regs *regs;
	struct iovec v;
	void *buf;
	__u64 d;

	if (!min_target() || ret <= 0)
		return 0;
	st = bpf_sk_storage_get(&lean_sk, sk, 0, 0);
	if (!st || !st->start_ns)
		return 0;
	d = bpf_ktime_get_ns() - st->start_ns;
	st->start_ns = 0;
	/* writev's first iovec (nginx), or the buffer of write/send. */
	regs = (struct pt_regs *)bpf_task_pt_regs(bpf_get_current_task_btf());
	buf = (void *)regs->si;
	if (regs->orig_ax == 20 /* __NR_writev */) {
		if (bpf_probe_read_user(&v, sizeof(v), buf))
			return 0;
		buf = v.iov_base;
	}
	bpf_probe_read_user(st->head, sizeof(st->head), buf);
	min_count(1);
	min_count(2 + min_log2(d | 1));
	return 0;
}
