/* SPDX-License-Identifier: MIT */
/* The connection table: fd -> socket resolution, the request queue, and
 * completion of requests into the ring buffer. */
#ifndef AION_CONN_BPF_H
#define AION_CONN_BPF_H

#define AF_INET      2
#define AF_INET6     10
#define SOCK_STREAM  1
#define IPPROTO_TCP  6
#define S_IFMT       00170000
#define S_IFSOCK     0140000

const volatile __u32 self_tgid = 0;

static __always_inline int is_target(__u32 tgid)
{
	__u64 *w;

	if (trace_all)
		return tgid != self_tgid;
	w = target_word(tgid);
	return w && ((*w >> (tgid & 63)) & 1);
}


/* The struct file behind fd of the current task, or NULL. Reads the
 * task's fd table as DESIGN.md describes. */
static __always_inline struct file *fd_to_file(__u32 fd)
{
	struct task_struct *task = bpf_get_current_task_btf();
	struct fdtable *fdt;
	struct file **fds;
	struct file *f = NULL;
	unsigned int max;

	fdt = BPF_CORE_READ(task, files, fdt);
	if (!fdt)
		return NULL;
	max = BPF_CORE_READ(fdt, max_fds);
	if (fd >= max)
		return NULL;
	fds = BPF_CORE_READ(fdt, fd);
	if (bpf_probe_read_kernel(&f, sizeof(f), &fds[fd]))
		return NULL;
	return f;
}

/* The struct sock behind fd of the current task, or NULL when fd is not a
 * socket. */
static __always_inline struct sock *fd_to_sock(__u32 fd)
{
	struct file *f = fd_to_file(fd);
	struct socket *sock;
	umode_t mode;

	if (!f)
		return NULL;
	mode = BPF_CORE_READ(f, f_inode, i_mode);
	if ((mode & S_IFMT) != S_IFSOCK)
		return NULL;
	sock = BPF_CORE_READ(f, private_data);
	if (!sock)
		return NULL;
	return BPF_CORE_READ(sock, sk);
}

/* Create the table entry for fd: a TCP connection, or a cached "not
 * traced" verdict. Returns the entry for a TCP connection, else NULL. */
static __always_inline struct conn *conn_new(struct conn_key *k, __u8 role)
{
	struct sock *sk = fd_to_sock(k->fd);
	struct conn *c;
	__u16 family, type, proto;
	__u8 one = 1;
	__u32 zero = 0;
	struct conn *zc;

	if (!sk) {
		bpf_map_update_elem(&nonsock, k, &one, BPF_ANY);
		return NULL;
	}
	family = BPF_CORE_READ(sk, __sk_common.skc_family);
	type = BPF_CORE_READ(sk, sk_type);
	proto = BPF_CORE_READ(sk, sk_protocol);
	if ((family != AF_INET && family != AF_INET6) || type != SOCK_STREAM ||
	    proto != IPPROTO_TCP) {
		bpf_map_update_elem(&nonsock, k, &one, BPF_ANY);
		return NULL;
	}
	/* Insert a zeroed entry (from a map nobody writes: too big for the
	 * stack, and for clang's inline memset), then fill it in place. */
	zc = bpf_map_lookup_elem(&zero_conn, &zero);
	if (!zc || bpf_map_update_elem(&conns, k, zc, BPF_ANY)) {
		count(AION_CNT_CONN_TABLE_FULL);
		return NULL;
	}
	c = bpf_map_lookup_elem(&conns, k);
	if (!c)
		return NULL;
	c->sk = (__u64)sk;
	{
		struct aion_target *t = target_of(k->tgid);

		if (t) {
			c->svc = t->service_id;
			c->gen = t->gen;
		}
	}
	c->kind = CK_TCP;
	c->role = role;
	c->lport = BPF_CORE_READ(sk, __sk_common.skc_num);
	c->rport = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
	if (family == AF_INET) {
		__u32 la = BPF_CORE_READ(sk, __sk_common.skc_rcv_saddr);
		__u32 ra = BPF_CORE_READ(sk, __sk_common.skc_daddr);

		c->laddr[10] = c->laddr[11] = c->raddr[10] = c->raddr[11] = 0xff;
		__builtin_memcpy(&c->laddr[12], &la, 4);
		__builtin_memcpy(&c->raddr[12], &ra, 4);
	} else {
		BPF_CORE_READ_INTO(&c->laddr, sk, __sk_common.skc_v6_rcv_saddr);
		BPF_CORE_READ_INTO(&c->raddr, sk, __sk_common.skc_v6_daddr);
	}
	if (role != AION_ROLE_CLIENT) {
		__u64 skey = (__u64)sk;

		bpf_map_update_elem(&socks, &skey, k, BPF_ANY);
	}
	return c;
}

static __always_inline void active_add(__u32 tgid, __u16 port, __s64 d)
{
	__u32 key = port;
	struct aion_active_slot *v = bpf_map_lookup_elem(&active, &key);

	if (!v)
		return;
	__sync_fetch_and_add(&v->n, d);
	if (d > 0)
		v->tgid = tgid;
}

static __always_inline __u64 rb_flags(void)
{
	return bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA) >= wakeup_bytes ?
		       BPF_RB_FORCE_WAKEUP : BPF_RB_NO_WAKEUP;
}

/* Fill record e for request r of c. */
static __always_inline void fill_http(struct aion_http_event *e, struct conn *c, __u32 tgid,
				      struct aion_req *r, __u8 err, __u16 status, __u64 resp_body,
				      __u64 now)
{
	e->kind = AION_EV_HTTP;
	e->role = c->role;
	e->method = r->method;
	e->error = err;
	e->status = status;
	e->server_port = c->role == AION_ROLE_CLIENT ? c->rport : c->lport;
	e->tgid = tgid;
	e->service_id = c->svc;
	e->gen = c->gen;
	e->start_ns = r->start_ns;
	e->end_ns = now;
	e->req_body = r->body;
	e->resp_body = resp_body;
	e->path_len = r->path_len;
	e->flags = (c->role == AION_ROLE_CLIENT ? r->count & (AION_HTTP_HOST | AION_HTTP_CONNECT) : 0) |
		   (c->tls & CONN_TLS_PLAIN ? AION_HTTP_TLS : 0);
	e->pad[0] = e->pad[1] = 0;
	__builtin_memcpy(e->path, r->path, AION_PATH_MAX);
}

/* Write the staged records as one ring-buffer record. */
static __always_inline void stage_flush(struct stage *st)
{
	__u32 n = st->n;

	if (!n)
		return;
	if (n > AION_BATCH)
		n = AION_BATCH;
	if (bpf_ringbuf_output(&events, st->ev, n * sizeof(st->ev[0]), rb_flags()))
		count_n(AION_CNT_EVENTS_LOST, n);
	st->n = 0;
}

/* Room for one 128-byte record: the next slot of this CPU's stage (*stp
 * set), or, when a program this one interrupted is appending to the stage
 * (a softirq, or aion_flush's IPI), space reserved in the ring (*stp
 * NULL). NULL when the ring is full (counted). Hand it to record_done. */
static __always_inline void *record_slot(struct stage **stp, __u64 now)
{
	__u32 zero = 0, n;
	struct stage *st = bpf_map_lookup_elem(&stage, &zero);
	void *e;

	*stp = NULL;
	/* Test and set in one step: uprobe programs run with migration,
	 * not preemption, disabled, so another one on this CPU could pass
	 * a plain test before the set and fill the same slot. */
	if (st && __sync_val_compare_and_swap(&st->busy, 0, 1) == 0) {
		n = st->n;
		if (n >= AION_BATCH) {
			stage_flush(st);
			n = 0;
		}
		if (!n)
			st->first_ns = now;
		*stp = st;
		return &st->ev[n & (AION_BATCH - 1)];
	}
	e = bpf_ringbuf_reserve(&events, sizeof(struct aion_http_event), 0);
	if (!e)
		count(AION_CNT_EVENTS_LOST);
	return e;
}

/* The record in the slot is filled: stage it (flushing a full or old
 * stage) or submit it to the ring. */
static __always_inline void record_done(struct stage *st, void *e, __u64 now)
{
	__u32 n;

	if (!st) {
		bpf_ringbuf_submit(e, rb_flags());
		return;
	}
	n = st->n + 1;
	st->n = n;
	if (n >= AION_BATCH || now - st->first_ns >= AION_BATCH_NS)
		stage_flush(st);
	WRITE_ONCE(st->busy, 0);
}

/* Report request r of c as completed. */
static __always_inline void emit_http_req(struct conn *c, __u32 tgid, struct aion_req *r,
					  __u8 err, __u16 status, __u64 resp_body, __u64 now)
{
	struct stage *st;
	struct aion_http_event *e = record_slot(&st, now);

	if (!e)
		return;
	fill_http(e, c, tgid, r, err, status, resp_body, now);
	record_done(st, e, now);
}

/* Report request h of c as completed; the caller has claimed it. */
static __always_inline void emit_http(struct conn *c, __u32 tgid, __u32 h, __u8 err,
				      __u16 status, __u64 resp_body, __u64 now)
{
	if (c->role == AION_ROLE_SERVER)
		active_add(tgid, c->lport, -1);
	emit_http_req(c, tgid, &c->q[h & (AION_QUEUE_DEPTH - 1)], err, status, resp_body, now);
}

static __always_inline void fill_db(struct aion_db_event *e, struct conn *c, __u32 tgid,
				    struct aion_req *r, __u16 err, __u32 stmt, __u8 op,
				    const __u8 *etext, __u32 elen, __u64 now, __u32 n)
{
	e->kind = AION_EV_DB;
	e->role = c->role;
	e->system = c->proto;
	e->op = op;
	e->error = err;
	e->server_port = c->role == AION_ROLE_CLIENT ? c->rport : c->lport;
	e->tgid = tgid;
	e->service_id = c->svc;
	e->start_ns = r->start_ns;
	e->end_ns = now;
	e->gen = c->gen;
	e->count = n;
	e->conn = c->sk;
	e->stmt = stmt;
	e->text_len = r->path_len > AION_DB_TEXT ? AION_DB_TEXT : r->path_len;
	e->err_len = 0;
	e->pad[0] = e->pad[1] = 0;
	if (c->role == AION_ROLE_CLIENT)
		__builtin_memcpy(e->addr, c->raddr, 16);
	else
		__builtin_memcpy(e->addr, c->laddr, 16);
	__builtin_memcpy(e->text, r->path, AION_DB_TEXT);
	if (etext && elen) {
		/* Redis: the command name is short; the error prefix goes after it. */
		if (elen > AION_DB_TEXT - 32)
			elen = AION_DB_TEXT - 32;
		if (e->text_len > 32)
			e->text_len = 32;
		__builtin_memcpy(&e->text[32], etext, AION_DB_TEXT - 32);
		e->err_len = elen;
	}
}

/* Report n database operations alike (or a statement's text, op
 * AION_DB_STMT). */
static __always_inline void emit_db(struct conn *c, __u32 tgid, struct aion_req *r, __u16 err,
				    __u32 stmt, __u8 op, const __u8 *etext, __u32 elen, __u64 now,
				    __u32 n)
{
	struct stage *st;
	struct aion_db_event *e;

	/* A statement's text goes to the ring at once: the operations that
	 * use it may end on another CPU, whose stage can be sent before this
	 * one's, and the agent must know the statement first. */
	if (op == AION_DB_STMT) {
		e = bpf_ringbuf_reserve(&events, sizeof(struct aion_http_event), 0);
		if (!e) {
			count(AION_CNT_EVENTS_LOST);
			return;
		}
		fill_db(e, c, tgid, r, err, stmt, op, etext, elen, now, n);
		bpf_ringbuf_submit(e, rb_flags());
		return;
	}
	e = record_slot(&st, now);
	if (!e)
		return;
	fill_db(e, c, tgid, r, err, stmt, op, etext, elen, now, n);
	record_done(st, e, now);
}

/* ---- db_client_connection_count ------------------------------------------ */

static __always_inline struct aion_pool_val *pool_of(struct conn *c, __u32 tgid, int create)
{
	struct aion_pool_key k = { .tgid = tgid, .port = c->rport, .system = c->proto };
	struct aion_pool_val zero = {}, *v;

	__builtin_memcpy(k.addr, c->raddr, 16);
	v = bpf_map_lookup_elem(&db_pool, &k);
	if (!v && create) {
		bpf_map_update_elem(&db_pool, &k, &zero, BPF_NOEXIST);
		v = bpf_map_lookup_elem(&db_pool, &k);
	}
	return v;
}

/* A traced client's connection turned out to be a database's. */
static __always_inline void pool_open(struct conn *c, __u32 tgid)
{
	struct aion_pool_val *v;

	if (c->pooled || c->role != AION_ROLE_CLIENT || c->proto < AION_PROTO_PG ||
	    c->proto > AION_PROTO_REDIS)
		return;
	v = pool_of(c, tgid, 1);
	if (!v)
		return;
	__sync_fetch_and_add(&v->open, 1);
	c->pooled = 1;
}

static __always_inline void pool_used(struct conn *c, __u32 tgid, __s64 d)
{
	struct aion_pool_val *v;

	if (!c->pooled)
		return;
	v = pool_of(c, tgid, 0);
	if (v)
		__sync_fetch_and_add(&v->used, d);
}

/* The connection goes away (close, exit). */
static __always_inline void pool_close(struct conn *c, __u32 tgid)
{
	struct aion_pool_val *v;

	if (!c->pooled)
		return;
	v = pool_of(c, tgid, 0);
	if (v) {
		__sync_fetch_and_add(&v->open, -1);
		if (c->head != c->tail)
			__sync_fetch_and_add(&v->used, -1);
	}
	c->pooled = 0;
}

/* Claim the oldest request in flight; false when there is none or another
 * CPU (a socket state change) claimed it first. */
static __always_inline int claim_head(struct conn *c, __u32 *h)
{
	__u32 cur = c->head;

	if (cur == c->tail)
		return 0;
	if (__sync_val_compare_and_swap(&c->head, cur, cur + 1) != cur)
		return 0;
	*h = cur;
	return 1;
}

/* The connection ended: every request still waiting ends as error err now.
 * With ended, the response stream ended cleanly (the server closed after
 * writing, the client read end-of-file): a response delimited by the close
 * ends successfully. */
static __always_inline void conn_abort(struct conn *c, __u32 tgid, __u64 now, int ended, __u8 err)
{
	struct aion_http_frame *f;
	__u32 h, i;

	if (c->proto != AION_PROTO_HTTP)
		return;
	if (c->role == AION_ROLE_SERVER)
		f = &c->fr[1];
	else if (c->role == AION_ROLE_CLIENT)
		f = &c->fr[0];
	else
		return;
	if (ended && f->state == AION_HF_UNTIL_CLOSE && f->open) {
		f->open = 0;
		if (claim_head(c, &h))
			emit_http(c, tgid, h, AION_ERR_NONE, f->status, f->clen, now);
	}
	for (i = 0; i < AION_QUEUE_DEPTH; i++) {
		if (!claim_head(c, &h))
			break;
		emit_http(c, tgid, h, err, 0, 0, now);
	}
}

/* A client's connect() failed (err: AION_ERR_REFUSED or AION_ERR_TIMEOUT):
 * one record with no request, for the server it was meant for. */
static __always_inline void conn_failed(struct conn *c, __u32 tgid, __u8 err, __u64 now)
{
	struct aion_req *r;
	__u32 zero = 0;
	struct work *w = bpf_map_lookup_elem(&scratch, &zero);

	if (!w || !c->connect_ns)
		return;
	r = &w->tmp;
	r->start_ns = c->connect_ns;
	r->body = 0;
	r->method = AION_METHOD_UNKNOWN;
	r->path_len = 0;
	r->status = 0;
	r->count = AION_HTTP_CONNECT;
	__builtin_memcpy(r->path, c->raddr, 16);
	c->connect_ns = 0;
	emit_http_req(c, tgid, r, err, 0, 0, now);
}

#endif /* AION_CONN_BPF_H */
