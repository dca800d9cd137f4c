/* SPDX-License-Identifier: MIT */
/* Process lifecycle: the target set follows fork in the kernel (a pre-fork
 * server's new worker is traced before its first request), exec of a
 * selected executable and listen() on a selected port add a target, exit
 * removes it. Every change is reported to the agent on proc_events. */
#ifndef AION_PROCESS_BPF_H
#define AION_PROCESS_BPF_H

#define TCP_LISTEN_STATE 10

struct proc_note {
	__u8 kind;
	__u8 flags;
	__u16 port;
	__u32 tgid;
	__u32 ppid;
	__u32 svc;
	__u32 gen;
};

/* task's executable's base name into out (NUL-terminated). */
static __always_inline void exe_name(struct task_struct *task, char *out, __u32 n)
{
	const unsigned char *name = BPF_CORE_READ(task, mm, exe_file, f_path.dentry, d_name.name);

	out[0] = 0;
	if (name)
		bpf_probe_read_kernel_str(out, n, name);
}

/* AION_EV_PROC_MAP: the file (inode, device) in the CPU-time fields. */
static __always_inline void proc_notice_file(struct proc_note *n, struct task_struct *task,
					     __u64 ino, __u64 dev)
{
	struct aion_proc_event *e = bpf_ringbuf_reserve(&proc_events, sizeof(*e), 0);

	if (!e) {
		count(AION_CNT_PROC_LOST);
		return;
	}
	e->kind = n->kind;
	e->flags = 0;
	exe_name(task, e->name, sizeof(e->name));
	e->port = 0;
	e->tgid = n->tgid;
	e->ppid = 0;
	e->service_id = 0;
	e->gen = 0;
	e->pad2 = 0;
	e->cpu_user_ns = ino;
	e->cpu_system_ns = dev;
	bpf_ringbuf_submit(e, 0);
}

static __always_inline void proc_notice(struct proc_note *n, struct task_struct *task,
					struct task_struct *exiting)
{
	struct aion_proc_event *e = bpf_ringbuf_reserve(&proc_events, sizeof(*e), 0);

	if (!e) {
		count(AION_CNT_PROC_LOST);
		return;
	}
	e->kind = n->kind;
	e->flags = n->flags;
	exe_name(task, e->name, sizeof(e->name));
	e->port = n->port;
	e->tgid = n->tgid;
	e->ppid = n->ppid;
	e->service_id = n->svc;
	e->gen = n->gen;
	e->pad2 = 0;
	e->cpu_user_ns = 0;
	e->cpu_system_ns = 0;
	if (exiting) {
		/* The leader's own time plus that of the threads gone before it
		 * (the kernel adds the leader's to signal only at release). */
		e->cpu_user_ns = BPF_CORE_READ(exiting, utime) + BPF_CORE_READ(exiting, signal, utime);
		e->cpu_system_ns = BPF_CORE_READ(exiting, stime) + BPF_CORE_READ(exiting, signal, stime);
	}
	bpf_ringbuf_submit(e, 0);
}

static __always_inline __u32 gen_new(void)
{
	return (__sync_fetch_and_add(&gen_next, 1) + 1) & ~AION_GEN_AGENT;
}

/* Add tgid to the target set as a new incarnation; 0 on success. */
static __always_inline int target_add(__u32 tgid, __u32 svc, __u32 *gen)
{
	struct aion_target t = { .service_id = svc, .gen = gen_new() };

	if (bpf_map_update_elem(&targets, &tgid, &t, BPF_ANY)) {
		count(AION_CNT_TARGET_TABLE_FULL);
		return -1;
	}
	target_bit(tgid, 1);
	*gen = t.gen;
	return 0;
}

SEC("tp_btf/sched_process_fork")
int BPF_PROG(aion_fork, struct task_struct *parent, struct task_struct *child)
{
	struct proc_note n = { .kind = AION_EV_PROC_FORK };
	struct aion_target *t;

	n.ppid = parent->tgid;
	n.tgid = child->tgid;
	if (n.ppid == n.tgid)
		return 0; /* a thread */
	t = target_of(n.ppid);
	if (!t)
		return 0;
	n.svc = t->service_id;
	if (target_add(n.tgid, n.svc, &n.gen))
		return 0;
	proc_notice(&n, child, NULL);
	return 0;
}

/* Service ids whose selector is --exe: such a target that execs another
 * file leaves the set (a --pid or --port target stays). Set by the agent. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 128);
	__type(key, __u32);
	__type(value, __u8);
} exe_services SEC(".maps");

SEC("tp_btf/sched_process_exec")
int BPF_PROG(aion_exec, struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)
{
	struct proc_note n = { .kind = AION_EV_PROC_EXEC };
	struct aion_exe_key key = {};
	struct aion_target *t;
	struct inode *ino;
	__u32 *svc;

	n.tgid = p->tgid;
	/* The new executable: mm->exe_file was set by the exec (bprm->file
	 * may already be released or replaced by an interpreter). */
	ino = BPF_CORE_READ(p, mm, exe_file, f_inode);
	if (!ino)
		return 0;
	key.ino = BPF_CORE_READ(ino, i_ino);
	key.dev = BPF_CORE_READ(ino, i_sb, s_dev);
	svc = bpf_map_lookup_elem(&exes, &key);
	t = target_of(n.tgid);
	if (svc) {
		n.svc = *svc;
		n.flags = AION_PROC_MATCHED;
	} else if (t) {
		__u32 sid = t->service_id;
		__u8 *by_exe = bpf_map_lookup_elem(&exe_services, &sid);

		n.svc = sid;
		if (by_exe && *by_exe) {
			/* No longer the selected file: out of the set. */
			n.kind = AION_EV_PROC_EXIT;
			n.flags = AION_PROC_EXECED;
			n.gen = t->gen;
			bpf_map_delete_elem(&targets, &n.tgid);
			target_bit(n.tgid, 0);
			if (report_execs) {
				/* ...unless it matches by path inside its root. */
				proc_notice(&n, p, NULL);
				n.kind = AION_EV_PROC_EXEC_OTHER;
				n.flags = 0;
			}
			proc_notice(&n, p, NULL);
			return 0;
		}
		/* a --pid/--port target exec'd: a new incarnation */
	} else {
		if (report_execs) {
			n.kind = AION_EV_PROC_EXEC_OTHER;
			proc_notice(&n, p, NULL);
		}
		return 0;
	}
	if (target_add(n.tgid, n.svc, &n.gen))
		return 0;
	proc_notice(&n, p, NULL);
	return 0;
}

/* listen() on a --port port: runs in the listening task (inet_sock_set_state
 * to TCP_LISTEN is fired from inet_csk_listen_start). */
static __always_inline void on_listen(__u16 port)
{
	struct proc_note n = { .kind = AION_EV_PROC_LISTEN, .port = port };
	__u32 *svc = bpf_map_lookup_elem(&ports, &port);

	if (!svc)
		return;
	n.tgid = bpf_get_current_pid_tgid() >> 32;
	if (target_of(n.tgid))
		return;
	n.svc = *svc;
	if (target_add(n.tgid, n.svc, &n.gen))
		return;
	proc_notice(&n, bpf_get_current_task_btf(), NULL);
}

/* bpf_for_each_map_elem callbacks: forget the exiting process's fds, so
 * that a process that gets its pid next does not inherit their state. */
static long forget_conn(struct bpf_map *map, struct conn_key *k, struct conn *c, __u32 *tgid)
{
	if (k->tgid == *tgid) {
		pool_close(c, k->tgid);
		if (c->sk) {
			__u64 skey = c->sk;

			bpf_map_delete_elem(&socks, &skey);
		}
		bpf_map_delete_elem(&conns, k);
	}
	return 0;
}

static long forget_nonsock(struct bpf_map *map, struct conn_key *k, __u8 *v, __u32 *tgid)
{
	if (k->tgid == *tgid)
		bpf_map_delete_elem(&nonsock, k);
	return 0;
}

SEC("tracepoint/sched/sched_process_exit")
int aion_exit(void *ctx)
{
	struct proc_note n = { .kind = AION_EV_PROC_EXIT };
	__u64 id = bpf_get_current_pid_tgid();
	struct aion_target *t;

	n.tgid = id >> 32;
	if ((__u32)id != n.tgid)
		return 0; /* a thread, not the process */
	t = target_of(n.tgid);
	if (t) {
		n.svc = t->service_id;
		n.gen = t->gen;
		bpf_map_delete_elem(&targets, &n.tgid);
		/* A walk of both tables (~tens of µs), for traced processes
		 * only; with --all the agent sweeps them instead. */
		bpf_for_each_map_elem(&conns, forget_conn, &n.tgid, 0);
		bpf_for_each_map_elem(&nonsock, forget_nonsock, &n.tgid, 0);
	} else if (!trace_all) {
		return 0;
	}
	target_bit(n.tgid, 0);
	proc_notice(&n, bpf_get_current_task_btf(), bpf_get_current_task_btf());
	return 0;
}

#endif /* AION_PROCESS_BPF_H */
