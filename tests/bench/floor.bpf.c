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
