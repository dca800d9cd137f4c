/* SPDX-License-Identifier: MIT */
/* Process lifecycle: the target set follows fork in the kernel (a pre-fork
 * server's new worker is traced before its first request), exec of a
 * selected executable adds a target, exit removes it. */
#ifndef AION_PROCESS_BPF_H
#define AION_PROCESS_BPF_H

static __always_inline void proc_notice(__u8 kind, __u32 tgid, __u32 ppid, __u32 svc)
{
	struct aion_proc_event *e = bpf_ringbuf_reserve(&proc_events, sizeof(*e), 0);

	if (!e) {
		count(AION_CNT_EVENTS_LOST);
		return;
	}
	e->kind = kind;
	e->tgid = tgid;
	e->ppid = ppid;
	e->service_id = svc;
	bpf_ringbuf_submit(e, 0);
}

SEC("tp_btf/sched_process_fork")
int BPF_PROG(aion_fork, struct task_struct *parent, struct task_struct *child)
{
	__u32 ptgid = parent->tgid, ctgid = child->tgid;
	struct aion_target *t, nt;

	if (ptgid == ctgid)
		return 0; /* a thread */
	t = target_of(ptgid);
	if (!t)
		return 0;
	nt = *t;
	if (bpf_map_update_elem(&targets, &ctgid, &nt, BPF_ANY)) {
		count(AION_CNT_TARGET_TABLE_FULL);
		return 0;
	}
	target_bit(ctgid, 1);
	proc_notice(AION_EV_PROC_FORK, ctgid, ptgid, nt.service_id);
	return 0;
}

SEC("tp_btf/sched_process_exec")
int BPF_PROG(aion_exec, struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)
{
	struct aion_exe_key key = {};
	struct aion_target t = {};
	struct inode *ino;
	__u32 tgid = p->tgid, *svc;

	ino = BPF_CORE_READ(bprm, file, f_inode);
	if (!ino)
		return 0;
	key.ino = BPF_CORE_READ(ino, i_ino);
	key.dev = BPF_CORE_READ(ino, i_sb, s_dev);
	svc = bpf_map_lookup_elem(&exes, &key);
	if (!svc)
		return 0;
	t.service_id = *svc;
	if (bpf_map_update_elem(&targets, &tgid, &t, BPF_ANY)) {
		count(AION_CNT_TARGET_TABLE_FULL);
		return 0;
	}
	target_bit(tgid, 1);
	proc_notice(AION_EV_PROC_EXEC, tgid, 0, t.service_id);
	return 0;
}

SEC("tracepoint/sched/sched_process_exit")
int aion_exit(void *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tgid = id >> 32;

	if ((__u32)id != tgid)
		return 0; /* a thread, not the process */
	if (bpf_map_delete_elem(&targets, &tgid) == 0 || trace_all) {
		target_bit(tgid, 0);
		proc_notice(AION_EV_PROC_EXIT, tgid, 0, 0);
	}
	return 0;
}

#endif /* AION_PROCESS_BPF_H */
