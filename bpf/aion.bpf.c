// SPDX-License-Identifier: GPL-2.0 OR MIT
/* aion kernel side: syscall tracepoints feed the HTTP framing parser, sched
 * tracepoints keep the target set, sock:inet_sock_set_state ends requests
 * whose peer went away. One object so that every family shares the maps. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_endian.h>
#include "aion/abi.h"
#include "aion/http.h"
#include "aion/db.h"
#include "maps.bpf.h"
#include "conn.bpf.h"
#include "process.bpf.h"

char LICENSE[] SEC("license") = "Dual MIT/GPL";

#define ECONNRESET   104
#define ETIMEDOUT    110
#define ECONNREFUSED 111
#define EINPROGRESS  115
#define TCP_SYN_SENT 2
#define TCP_CLOSE    7

/* ---- syscall arguments at exit ---------------------------------------- */

/* The user registers saved at syscall entry still hold the arguments when
 * the syscall returns, so the exit tracepoint alone is enough: no enter
 * program, no per-thread map between the two. */
#if defined(__TARGET_ARCH_x86)
#define SYSCALL_ARG1(r) ((r)->di)
#define SYSCALL_ARG2(r) ((r)->si)
#define SYSCALL_ARG3(r) ((r)->dx)
#define SYSCALL_ARG5(r) ((r)->r8)
#elif defined(__TARGET_ARCH_arm64)
#define SYSCALL_ARG1(r) ((r)->orig_x0)
#define SYSCALL_ARG2(r) ((r)->regs[1])
#define SYSCALL_ARG3(r) ((r)->regs[2])
#define SYSCALL_ARG5(r) ((r)->regs[4])
#else
#error "aion: syscall argument registers are not defined for this architecture"
#endif

static __always_inline void syscall_args(struct sys_args *a, __u8 kind, __u8 write)
{
	struct pt_regs *regs = (struct pt_regs *)bpf_task_pt_regs(bpf_get_current_task_btf());

	a->fd = SYSCALL_ARG1(regs);
	a->ptr = SYSCALL_ARG2(regs);
	a->cnt = SYSCALL_ARG3(regs);
	a->kind = kind;
	a->write = write;
}

/* ---- the data path ------------------------------------------------------ */

struct seg_ctx {
	struct seg *segs;
	__u8 *buf;
	__u64 left;  /* load: bytes of the syscall not yet given to a segment;
		      * copy: bytes to skip before copying */
	__u32 dst;   /* copy: where the next byte goes in buf */
	__u32 n;     /* load: segments that hold bytes; copy: bytes copied */
};

/* bpf_loop callback: cut segment i to the bytes the syscall moved. */
static long clamp_seg(__u32 i, void *ctx)
{
	struct seg_ctx *x = ctx;
	struct seg *sg;

	if (i >= AION_MAX_IOV || !x->left)
		return 1;
	sg = &x->segs[i & (AION_MAX_IOV - 1)];
	if (sg->len > x->left)
		sg->len = x->left;
	x->left -= sg->len;
	x->n = i + 1;
	return 0;
}

/* The iovec array of a readv/writev/recvmsg/sendmsg: 0, or -1 when there
 * is none to read. */
static __always_inline int iov_array(struct sys_args *a, __u64 *iovp, __u64 *n)
{
	struct user_msghdr mh;

	if (a->kind == IO_MSG) {
		if (bpf_probe_read_user(&mh, sizeof(mh), (void *)a->ptr))
			return -1;
		*iovp = (__u64)mh.msg_iov;
		*n = mh.msg_iovlen;
		return 0;
	}
	if (a->kind == IO_IOV) {
		*iovp = a->ptr;
		*n = a->cnt;
		return 0;
	}
	return -1;
}

/* Resolve the syscall's bytes into at most AION_MAX_IOV segments: the
 * iovecs are read straight into segs (struct iovec and struct seg have
 * the same layout), then cut to the bytes the syscall moved. */
static __always_inline __u32 load_segs(struct sys_args *a, long ret, struct seg *segs)
{
	struct seg_ctx x = { .segs = segs, .left = ret };
	__u64 iovp, n;

	if (a->kind == IO_PLAIN) {
		segs[0].ptr = a->ptr;
		segs[0].len = ret;
		return 1;
	}
	if (iov_array(a, &iovp, &n))
		return 0;
	if (n > AION_MAX_IOV)
		n = AION_MAX_IOV;
	if (!n || bpf_probe_read_user(segs, n * sizeof(struct seg), (void *)iovp))
		return 0;
	bpf_loop(n, clamp_seg, &x, 0);
	return x.n;
}

/* The same for the database programs: the first AION_DB_IOV iovecs,
 * unrolled (a loop callback here blows up their verification). */
static __always_inline __u32 load_segs_db(struct sys_args *a, long ret, struct seg *segs)
{
	struct iovec iov[AION_DB_IOV];
	__u64 iovp, n, left = ret, sz;
	__u32 i, cnt = 0;

	if (a->kind == IO_PLAIN) {
		segs[0].ptr = a->ptr;
		segs[0].len = ret;
		return 1;
	}
	if (iov_array(a, &iovp, &n))
		return 0;
	sz = (n < AION_DB_IOV ? n : AION_DB_IOV) * sizeof(iov[0]);
	if (!sz || sz > sizeof(iov) || bpf_probe_read_user(iov, sz, (void *)iovp))
		return 0;
#pragma unroll
	for (i = 0; i < AION_DB_IOV; i++) {
		if (i >= n || !left)
			break;
		segs[i].ptr = (__u64)iov[i].iov_base;
		segs[i].len = iov[i].iov_len < left ? iov[i].iov_len : left;
		left -= segs[i].len;
		cnt++;
	}
	return cnt;
}

/* bpf_loop callback: copy what segment i holds of the bytes wanted. */
static long copy_seg(__u32 i, void *ctx)
{
	struct seg_ctx *x = ctx;
	struct seg *sg;
	__u32 dst = x->dst;
	__u64 n;

	if (i >= AION_MAX_IOV || dst >= AION_WINDOW)
		return 1;
	sg = &x->segs[i & (AION_MAX_IOV - 1)];
	if (x->left >= sg->len) {
		x->left -= sg->len;
		return 0;
	}
	n = sg->len - x->left;
	if (n > AION_WINDOW - dst)
		n = AION_WINDOW - dst;
	if (n > AION_WINDOW)
		n = AION_WINDOW;
	if (bpf_probe_read_user(&x->buf[dst & (AION_WINDOW - 1)], n, (void *)(sg->ptr + x->left)))
		return 1;
	x->dst = dst + n;
	x->n += n;
	x->left = 0;
	return 0;
}

/* Copy the syscall bytes [skip, skip + room) into buf at dst. */
static __always_inline __u32 copy_segs(__u8 *buf, __u32 dst, struct seg *segs, __u32 nsegs,
				       __u64 skip)
{
	struct seg_ctx x = { .segs = segs, .buf = buf, .left = skip, .dst = dst };

	if (!nsegs)
		return 0;
	bpf_loop(nsegs, copy_seg, &x, 0);
	return x.n;
}

/* The same over the first AION_DB_IOV segments, unrolled: the database
 * programs, whose verification a loop callback here would blow up. */
static __always_inline __u32 copy_segs_db(__u8 *buf, __u32 dst, struct seg *segs, __u32 nsegs,
					  __u64 skip)
{
	__u32 i, copied = 0;
	__u64 n;

#pragma unroll
	for (i = 0; i < AION_DB_IOV; i++) {
		if (i >= nsegs || dst >= AION_WINDOW)
			break;
		if (skip >= segs[i].len) {
			skip -= segs[i].len;
			continue;
		}
		n = segs[i].len - skip;
		if (n > AION_WINDOW - dst)
			n = AION_WINDOW - dst;
		if (n > AION_WINDOW)
			n = AION_WINDOW;
		if (bpf_probe_read_user(&buf[dst & (AION_WINDOW - 1)], n, (void *)(segs[i].ptr + skip)))
			break;
		dst += n;
		copied += n;
		skip = 0;
	}
	return copied;
}

/* A request started: queue it. */
static __always_inline void on_request(struct conn *c, __u32 tgid, struct aion_http_mark *m,
				       const __u8 *buf, __u32 len, __u64 start_ns)
{
	__u32 t = c->tail, off = m->path_off, pl;
	struct aion_req *r;

	if (t - c->head >= AION_QUEUE_DEPTH) {
		count(AION_CNT_QUEUE_FULL);
		return;
	}
	r = &c->q[t & (AION_QUEUE_DEPTH - 1)];
	r->start_ns = start_ns;
	r->method = m->method;
	r->status = 0;
	r->body = 0;
	pl = off < len ? len - off : 0;
	r->count = 0;
	c->tail = t + 1;
	if (c->role == AION_ROLE_CLIENT) {
		/* The server's address, until a Host header names it. */
		r->path_len = 0;
		__builtin_memcpy(r->path, c->raddr, 16);
		return;
	}
	r->path_len = pl > AION_PATH_MAX ? AION_PATH_MAX : pl;
	__builtin_memcpy(r->path, &buf[off & (AION_WINDOW - 1)], AION_PATH_MAX);
	active_add(tgid, c->lport, 1);
	{
		struct tcp_sock *tp = (struct tcp_sock *)c->sk;

		c->wseq = BPF_CORE_READ(tp, write_seq);
	}
}

struct drain_ctx {
	struct conn *c;
	struct aion_http_scan *s;
	struct work *w;
	__u64 now;
	__u64 first_ns;
	__u32 tgid;
	__u16 err;
};

/* bpf_loop callback: act on mark i of the scan. */
static long drain_mark(__u32 i, void *ctx)
{
	struct drain_ctx *d = ctx;
	struct conn *c = d->c;
	struct aion_http_scan *s = d->s;
	struct aion_http_mark *m;
	__u32 h;

	if (i >= s->nmarks || i >= AION_MAX_MARKS)
		return 1;
	m = &s->marks[i & (AION_MAX_MARKS - 1)];
	if (s->request) {
		if (m->kind == AION_MARK_START) {
			on_request(c, d->tgid, m, s->buf, s->len, d->first_ns);
			d->first_ns = d->now;
		} else if (m->kind == AION_MARK_HOST) {
			if (c->tail != c->head) {
				struct aion_req *r = &c->q[(c->tail - 1) & (AION_QUEUE_DEPTH - 1)];
				__u32 off = m->path_off;

				r->path_len = m->pad > AION_PATH_MAX ? AION_PATH_MAX : m->pad;
				r->count = AION_HTTP_HOST;
				__builtin_memcpy(r->path, &s->buf[off & (AION_WINDOW - 1)], AION_PATH_MAX);
			}
		} else if (c->tail != c->head) {
			c->q[(c->tail - 1) & (AION_QUEUE_DEPTH - 1)].body = m->body;
		}
	} else if (m->kind == AION_MARK_START) {
		if (c->tail != c->head)
			c->q[c->head & (AION_QUEUE_DEPTH - 1)].status = m->status;
	} else if (claim_head(c, &h)) {
		emit_http(c, d->tgid, h, AION_ERR_NONE, m->status, m->body, d->now);
	}
	return 0;
}

#define AION_DB_ROUNDS 1024 /* more for databases: 1024 windows or drains of 8 marks */

/* Bit i: the i-th request waiting for a response is a HEAD (no body). */
static __always_inline __u8 head_mask(struct conn *c)
{
	__u32 i, h = c->head, n = c->tail - c->head;
	__u8 m = 0;

	AION_UNROLL
	for (i = 0; i < AION_QUEUE_DEPTH; i++) {
		if (i >= n)
			break;
		if (c->q[(h + i) & (AION_QUEUE_DEPTH - 1)].method == AION_METHOD_HEAD)
			m |= 1 << i;
	}
	return m;
}

/* ---- database operations ------------------------------------------------ */

static __always_inline int same_text(const char *a, const __u8 *b, __u32 n)
{
	__u64 x, y, m;
	__u32 i;

	/* Eight words, the last ones masked to n bytes. */
#pragma unroll
	for (i = 0; i < 8; i++) {
		__builtin_memcpy(&x, a + i * 8, 8);
		__builtin_memcpy(&y, b + i * 8, 8);
		m = n >= (i + 1) * 8 ? ~0ULL : n <= i * 8 ? 0 : (1ULL << ((n - i * 8) * 8)) - 1;
		if ((x ^ y) & m)
			return 0;
	}
	return 1;
}

/* An operation was sent: queue it. Identical operations sent together (a
 * Redis pipeline of GETs, a PostgreSQL pipeline of Executes of one
 * statement) share an entry: 100 GETs do not need 100 slots. Its status
 * counts those answered and not reported yet. */
static __always_inline void db_request(struct conn *c, __u32 tgid, struct aion_http_mark *m,
				       const __u8 *buf, __u32 len, __u64 start_ns)
{
	__u32 t = c->tail, off = m->path_off, tl = m->pad;
	const __u8 *text = &buf[off & (AION_WINDOW - 1)];
	struct aion_req *r;
	int from_parse = m->method == AION_DB_EXECUTE && c->proto == AION_PROTO_PG &&
			 m->body == c->parse_hash;

	if (from_parse) {
		/* Executes the statement parsed last: its text is at hand. */
		text = (const __u8 *)c->parse_text;
		tl = c->parse_len;
	} else if (m->method == AION_DB_EXECUTE && c->proto == AION_PROTO_PG) {
		struct stmt_key sk = { .sk = c->sk, .hash = (__u32)m->body };
		struct stmt_text *st = bpf_map_lookup_elem(&pg_stmts, &sk);

		if (st) {
			text = (const __u8 *)st->text;
			tl = st->len;
		}
	}
	if (tl > AION_PATH_MAX)
		tl = AION_PATH_MAX;
	if (t != c->head && !c->qlost && (m->method == AION_DB_COMMAND || m->method == AION_DB_EXECUTE)) {
		r = &c->q[(t - 1) & (AION_QUEUE_DEPTH - 1)];
		/* Same text (pgbench prepares each command of a script under
		 * its own name), or the same unknown statement. */
		if (r->method == m->method && r->start_ns == start_ns && r->path_len == tl &&
		    (tl ? same_text(r->path, text, tl) : r->body == m->body)) {
			r->count++;
			return;
		}
	}
	if (t - c->head >= AION_QUEUE_DEPTH) {
		/* Dropped: a later operation must not join an earlier one
		 * across it. */
		c->qlost = 1;
		count(AION_CNT_QUEUE_FULL);
		return;
	}
	c->qlost = 0;
	r = &c->q[t & (AION_QUEUE_DEPTH - 1)];
	r->start_ns = start_ns;
	r->method = m->method;
	r->status = 0;
	r->count = 1;
	r->body = m->body;
	r->path_len = tl;
	__builtin_memcpy(r->path, text, AION_PATH_MAX);
	c->tail = t + 1;
	if (t == c->head)
		pool_used(c, tgid, 1); /* the connection is in use from now */
}

/* Complete the oldest operation (one of its pipelined copies). */
static __always_inline void db_complete(struct conn *c, __u32 tgid, __u16 err, __u32 stmt,
					const __u8 *etext, __u32 elen, __u64 now)
{
	struct aion_req *r;
	__u32 h;

	if (c->head == c->tail)
		return;
	r = &c->q[c->head & (AION_QUEUE_DEPTH - 1)];
	if (r->count > 1) {
		/* One of identical pipelined operations: successes are
		 * reported together (status counts them), errors one by one. */
		r->count--;
		if (err)
			emit_db(c, tgid, r, err, (__u32)r->body, r->method, etext, elen, now, 1);
		else
			r->status++;
		return;
	}
	if (!claim_head(c, &h))
		return;
	if (c->head == c->tail)
		pool_used(c, tgid, -1); /* idle again */
	r = &c->q[h & (AION_QUEUE_DEPTH - 1)];
	if (r->method == AION_DB_SYNC)
		return;
	if (r->method == AION_DB_COMMAND || r->method == AION_DB_EXECUTE) {
		__u32 done = r->status;

		if (err && done)
			emit_db(c, tgid, r, 0, (__u32)r->body, r->method, NULL, 0, now, done);
		emit_db(c, tgid, r, err, (__u32)r->body, r->method, etext, elen, now, err ? 1 : done + 1);
		return;
	}
	emit_db(c, tgid, r, err, r->method == AION_DB_PREPARE ? stmt : (__u32)r->body, r->method,
		etext, elen, now, 1);
	if (r->method == AION_DB_PREPARE && !err)
		/* MySQL: the statement id the server gave this text. */
		emit_db(c, tgid, r, 0, stmt, AION_DB_STMT, NULL, 0, now, 1);
}

/* PG ReadyForQuery: the simple Query at the head ends, or everything up to
 * the Sync of an extended-query pipeline (executes the server skipped
 * after an error fail with that error). */
static long db_sync_one(__u32 i, void *ctx)
{
	struct drain_ctx *d = ctx;
	struct conn *c = d->c;
	struct aion_req *r;
	__u8 kind;

	if (c->head == c->tail)
		return 1;
	r = &c->q[c->head & (AION_QUEUE_DEPTH - 1)];
	kind = r->method;
	db_complete(c, d->tgid, kind == AION_DB_QUERY && r->status ? r->status : d->err, 0, NULL, 0,
		    d->now);
	return kind == AION_DB_QUERY || kind == AION_DB_SYNC;
}

static long db_drain_mark(__u32 i, void *ctx)
{
	struct drain_ctx *d = ctx;
	struct conn *c = d->c;
	struct aion_http_scan *s = d->s;
	struct aion_http_mark *m;
	struct aion_req *r;
	__u32 off;

	if (i >= s->nmarks || i >= AION_MAX_MARKS)
		return 1;
	m = &s->marks[i & (AION_MAX_MARKS - 1)];
	if (m->kind == AION_MARK_START) {
		db_request(c, d->tgid, m, s->buf, s->len, d->first_ns);
		d->first_ns = d->now;
	} else if (m->kind == AION_MARK_STMT) {
		/* PG Parse: remember the text for the Execute that follows;
		 * a named statement's text also goes to the agent. */
		off = m->path_off;
		c->parse_hash = (__u32)m->body;
		c->parse_len = m->pad > AION_PATH_MAX ? AION_PATH_MAX : m->pad;
		__builtin_memcpy(c->parse_text, &s->buf[off & (AION_WINDOW - 1)], AION_PATH_MAX);
		if (m->body != AION_PG_UNNAMED) {
			struct stmt_key sk = { .sk = c->sk, .hash = (__u32)m->body };
			struct work *w = d->w;

			w->stmt.len = c->parse_len;
			__builtin_memcpy(w->stmt.text, c->parse_text, AION_PATH_MAX);
			bpf_map_update_elem(&pg_stmts, &sk, &w->stmt, BPF_ANY);

			r = &w->tmp;
			r->start_ns = d->now;
			r->path_len = c->parse_len;
			__builtin_memcpy(r->path, c->parse_text, AION_PATH_MAX);
			emit_db(c, d->tgid, r, 0, (__u32)m->body, AION_DB_STMT, NULL, 0, d->now, 1);
		}
	} else if (m->method == AION_DBEND_SYNC) {
		d->err = m->status;
		bpf_loop(65536, db_sync_one, d, 0); /* entries may stand for many */
	} else if (c->head != c->tail) {
		r = &c->q[c->head & (AION_QUEUE_DEPTH - 1)];
		if (c->proto == AION_PROTO_PG && r->method == AION_DB_QUERY) {
			if (m->status)
				r->status = m->status; /* a simple Query ends at ReadyForQuery */
		} else if (r->method != AION_DB_SYNC) {
			off = m->path_off;
			db_complete(c, d->tgid, m->status, (__u32)m->body,
				    m->pad ? &s->buf[off & (AION_WINDOW - 1)] : NULL, m->pad, d->now);
		}
	}
	return 0;
}

/* MySQL: 1 when the operation waiting is a PREPARE (its answer carries the
 * statement id), 2 when it is a COM_FIELD_LIST. */
static __always_inline __u8 db_head_mask(struct conn *c)
{
	struct aion_req *r;

	if (c->head == c->tail)
		return 0;
	r = &c->q[c->head & (AION_QUEUE_DEPTH - 1)];
	if (r->method == AION_DB_PREPARE)
		return 1;
	if (r->method == AION_DB_OTHER && r->body == 0x04)
		return 2; /* COM_FIELD_LIST: definitions without a count */
	return 0;
}

struct round_ctx {
	struct drain_ctx d;
	struct work *w;
};

/* One scan of the window for protocol P, then the marks; the next window
 * is loaded when the framing needs bytes past this one. */
static __always_inline long scan_round_p(struct round_ctx *r, __u8 proto)
{
	struct aion_http_scan *s = r->d.s;
	struct conn *c = r->d.c;
	struct work *w = r->w;

	s->garbage = 0;
	s->partial = 0;
	if (proto == AION_PROTO_HTTP) {
		s->head_req = head_mask(c);
		aion_http_scan(s);
		bpf_loop(AION_MAX_MARKS, drain_mark, &r->d, 0);
	} else {
		s->head_req = db_head_mask(c);
		aion_db_scan(s, proto);
		bpf_loop(AION_MAX_MARKS, db_drain_mark, &r->d, 0);
	}
	if (s->full)
		return 0;
	if (s->garbage || s->partial || s->pos >= s->total)
		return 1;
	/* The framing needs bytes past where this window ended (or where the
	 * steps ran out): load the next window from there. */
	w->base += s->pos;
	if (w->base < w->carry)
		return 1;
	s->total -= s->pos;
	s->pos = 0;
	s->len = proto == AION_PROTO_HTTP ?
			 copy_segs(s->buf, 0, w->segs, w->nsegs, w->base - w->carry) :
			 copy_segs_db(s->buf, 0, w->segs, w->nsegs, w->base - w->carry);
	return s->len ? 0 : 1;
}

#define SCAN_ROUND(name, proto)                                  \
	static long scan_round_##name(__u32 i, void *ctx)        \
	{                                                        \
		return scan_round_p(ctx, proto);                 \
	}

SCAN_ROUND(http, AION_PROTO_HTTP)
SCAN_ROUND(pg, AION_PROTO_PG)
SCAN_ROUND(my, AION_PROTO_MYSQL)
SCAN_ROUND(re, AION_PROTO_REDIS)

/* The syscall's first window (carried bytes + the first segment) in the
 * scratch scan; r is set up for the rounds. */
static __always_inline struct aion_http_scan *load_window(struct conn *c, __u32 tgid,
							  struct sys_args *a, long ret,
							  struct round_ctx *r, __u8 all_segs)
{
	struct aion_http_scan *s;
	struct work *w;
	__u32 zero = 0, carry;
	__u64 now = bpf_ktime_get_ns();
	__u8 dir = a->write ? 1 : 0;

	w = bpf_map_lookup_elem(&scratch, &zero);
	if (!w)
		return NULL;
	s = &w->s;
	w->nsegs = a->kind == IO_SENDFILE ? 0 : all_segs ? load_segs_db(a, ret, w->segs) :
		   load_segs(a, ret, w->segs);
	w->base = 0;

	carry = c->carry_len[dir & 1];
	if (carry > AION_CARRY)
		carry = AION_CARRY;
	if (carry)
		__builtin_memcpy(s->buf, c->carry[dir & 1], AION_CARRY);
	w->carry = carry;
	r->w = w;
	r->d.w = w;
	r->d.c = c;
	r->d.s = s;
	r->d.now = now;
	r->d.tgid = tgid;
	/* Carried bytes of a start line date the request from their arrival. */
	r->d.first_ns = carry && c->fr[dir & 1].state == AION_HF_START ? c->carry_ns[dir & 1] : now;
	s->f = c->fr[dir & 1];
	/* HTTP: the first segment only: for a writev of headers + body the
	 * body is skipped by its length, never looked at; a later round loads
	 * more when the framing needs it. Databases: every segment (a reply
	 * written with writev is cut anywhere). */
	s->len = carry + (all_segs ? copy_segs_db(s->buf, carry, w->segs, w->nsegs, 0) :
				     copy_segs(s->buf, carry, w->segs, w->nsegs ? 1 : 0, 0));
	s->total = carry + ret;
	s->pos = 0;
	return s;
}

/* Parse the syscall's bytes as protocol P. */
static __always_inline void on_data(struct conn *c, __u32 tgid, struct sys_args *a, long ret,
				    __u8 proto)
{
	struct round_ctx r = {};
	struct aion_http_scan *s;
	__u8 dir = a->write ? 1 : 0;
	struct aion_http_frame *f = &c->fr[dir & 1];

	/* Body bytes that end inside no message: nothing to copy or scan. */
	if (proto == AION_PROTO_HTTP && !c->carry_len[dir & 1]) {
		if (f->state == AION_HF_BODY && f->left > (__u64)ret) {
			f->left -= ret;
			return;
		}
		if (f->state == AION_HF_UNTIL_CLOSE) {
			f->clen += ret;
			return;
		}
	}
	s = load_window(c, tgid, a, ret, &r, proto != AION_PROTO_HTTP);
	if (!s)
		return;
	/* Requests are what a server reads and what a client writes. */
	s->request = (c->role == AION_ROLE_SERVER) == (dir == 0);
	s->want_host = c->role == AION_ROLE_CLIENT;
	if (proto == AION_PROTO_HTTP)
		bpf_loop(AION_ROUNDS, scan_round_http, &r, 0);
	else if (proto == AION_PROTO_PG)
		bpf_loop(AION_DB_ROUNDS, scan_round_pg, &r, 0);
	else if (proto == AION_PROTO_MYSQL)
		bpf_loop(AION_DB_ROUNDS, scan_round_my, &r, 0);
	else
		bpf_loop(AION_DB_ROUNDS, scan_round_re, &r, 0);
	if (proto != AION_PROTO_HTTP && c->head != c->tail) {
		/* Pipelined operations answered by this syscall: one record. */
		struct aion_req *q = &c->q[c->head & (AION_QUEUE_DEPTH - 1)];

		if ((q->method == AION_DB_COMMAND || q->method == AION_DB_EXECUTE) && q->status) {
			emit_db(c, tgid, q, 0, (__u32)q->body, q->method, NULL, 0, r.d.now, q->status);
			q->status = 0;
		}
	}

	if (!s->garbage && !s->partial && s->pos < s->total) {
		/* The rounds ran out inside this syscall (a header block over
		 * AION_ROUNDS windows, thousands of pipelined commands): the
		 * framing is lost from here. */
		if (proto == AION_PROTO_HTTP)
			s->f.state = AION_HF_OPAQUE;
		else
			AION_DBF(s)->state = 0xff;
		s->garbage = 1;
	}
	if (s->garbage)
		count(proto == AION_PROTO_HTTP ? AION_CNT_PARSE_GIVEUP :
		      proto == AION_PROTO_PG ? AION_CNT_PARSE_PG :
		      proto == AION_PROTO_MYSQL ? AION_CNT_PARSE_MYSQL : AION_CNT_PARSE_REDIS);
	if (s->partial && s->pos < s->len && s->len - s->pos < AION_CARRY) {
		/* An incomplete start line or header: keep it, with its first byte's time. */
		__u32 p = s->pos;

		__builtin_memcpy(c->carry[dir & 1], &s->buf[p & (AION_WINDOW - 1)], AION_CARRY);
		c->carry_ns[dir & 1] = r.d.first_ns;
		c->carry_len[dir & 1] = s->len - p;
	} else {
		c->carry_len[dir & 1] = 0;
	}
	c->fr[dir & 1] = s->f;
}

/* What the connection speaks, and which side is the server, is learnt
 * from the first bytes that tell (a start line, a startup message, a RESP
 * array, a MySQL greeting): the side that reads requests or writes
 * responses is the server. Until then nothing is parsed; a few bytes that
 * do not tell yet are carried to the next syscall. Returns the protocol,
 * or 0 when nothing is to be parsed now. */
static __always_inline __u8 detect(struct conn *c, __u32 tgid, struct sys_args *a, long ret,
				   int tls)
{
	struct round_ctx r = {};
	struct aion_http_scan *s = load_window(c, tgid, a, ret, &r, 1);
	__u8 dir = a->write ? 1 : 0, req = 0, p;

	if (!s)
		return 0;
	if (!tls && aion_tls_record(s)) {
		/* Ciphertext of a library not (yet) probed: never parsed. */
		c->tls |= CONN_TLS_CIPHER;
		c->carry_len[dir & 1] = 0;
		return 0;
	}
	p = aion_detect(s, &req);
	if (!p) {
		if (s->len == s->total && s->len < 16) {
			__builtin_memcpy(c->carry[dir & 1], s->buf, AION_CARRY);
			c->carry_ns[dir & 1] = r.d.first_ns;
			c->carry_len[dir & 1] = s->len;
		} else {
			c->carry_len[dir & 1] = 0;
		}
		if (++c->tries >= 64)
			c->proto = AION_PROTO_NONE;
		return 0;
	}
	c->proto = p;
	c->role = (req == (dir == 0)) ? AION_ROLE_SERVER : AION_ROLE_CLIENT;
	pool_open(c, tgid);
	if (p == AION_PROTO_HTTP && (c->role == AION_ROLE_SERVER) != (dir == 0)) {
		c->carry_len[dir & 1] = 0;
		return 0; /* joined mid-exchange: the first request is still to come */
	}
	return p;
}

/* The data path proper, reached by tail calls so that the verifier checks
 * it once, not once per syscall program: aion_data (slot 0) finds the
 * connection, learns its protocol and parses HTTP; a database connection
 * goes on to its protocol's program (slot = enum aion_proto), which holds
 * that parser alone. */
struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, AION_PROTO_NONE);
	__type(key, __u32);
	__type(value, __u32);
} data_prog SEC(".maps");

/* The TLS twins of data_prog, for the uprobe-type programs (a tail call
 * stays within one program type). */
struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, AION_PROTO_NONE);
	__type(key, __u32);
	__type(value, __u32);
} tls_prog SEC(".maps");

/* The bytes to parse: a syscall's (arguments from its registers, length
 * from the tracepoint) or a TLS call's plaintext (staged in scratch). */
static __always_inline void io_args(void *ctx, struct work *w, struct sys_args *a, long *ret,
				    int tls)
{
	if (tls) {
		*a = w->targs;
		*ret = w->tret;
	} else {
		syscall_args(a, w->io_kind, w->io_write);
		*ret = ((struct trace_event_raw_sys_exit *)ctx)->ret;
	}
}

/* The first plaintext of a connection: the parse state is the library's
 * from now on; whatever the syscalls framed before (a PostgreSQL
 * SSLRequest, a MySQL greeting) starts over. */
static __always_inline void tls_take(struct conn *c, __u32 tgid)
{
	if (c->tls & CONN_TLS_PLAIN)
		return;
	pool_close(c, tgid);
	c->tls = CONN_TLS_CIPHER | CONN_TLS_PLAIN;
	c->proto = AION_PROTO_UNKNOWN;
	c->tries = 0;
	c->carry_len[0] = c->carry_len[1] = 0;
	__builtin_memset(&c->fr, 0, sizeof(c->fr));
	c->head = c->tail;
}

static __always_inline int data_main(void *ctx, int tls)
{
	struct sys_args a;
	struct conn_key k;
	struct conn *c;
	struct work *w;
	__u32 zero = 0;
	long ret;
	__u8 p;

	w = bpf_map_lookup_elem(&scratch, &zero);
	if (!w)
		return 0;
	k.tgid = bpf_get_current_pid_tgid() >> 32;
	io_args(ctx, w, &a, &ret, tls);
	k.fd = a.fd;
	c = bpf_map_lookup_elem(&conns, &k);
	if (!c) {
		if (ret <= 0 || bpf_map_lookup_elem(&nonsock, &k))
			return 0;
		c = conn_new(&k, AION_ROLE_UNKNOWN);
		if (!c)
			return 0;
		count(AION_CNT_ADOPTED);
	}
	if (tls)
		tls_take(c, k.tgid);
	else if (w->in_tls)
		c->tls |= CONN_TLS_CIPHER;
	if (ret <= 0) {
		/* A read that saw the end of the stream, a reset or a timeout:
		 * for a client, end-of-file also ends a response delimited
		 * by the close. */
		if (!a.write)
			conn_abort(c, k.tgid, bpf_ktime_get_ns(),
				   c->role == AION_ROLE_CLIENT && ret == 0,
				   ret == -ETIMEDOUT ? AION_ERR_TIMEOUT : AION_ERR_CONN_CLOSED);
		return 0;
	}
	if (!tls && c->tls)
		return 0; /* ciphertext */
	p = c->proto;
	if (p == AION_PROTO_UNKNOWN)
		p = detect(c, k.tgid, &a, ret, tls);
	if (p == AION_PROTO_HTTP) {
		on_data(c, k.tgid, &a, ret, AION_PROTO_HTTP);
		return 0;
	}
	if (p == AION_PROTO_PG || p == AION_PROTO_MYSQL || p == AION_PROTO_REDIS) {
		w->key = k;
		if (tls)
			bpf_tail_call(ctx, &tls_prog, p);
		else
			bpf_tail_call(ctx, &data_prog, p);
	}
	return 0;
}

SEC("tracepoint")
int aion_data(struct trace_event_raw_sys_exit *ctx)
{
	return data_main(ctx, 0);
}

static __always_inline int db_data(void *ctx, __u8 proto, int tls)
{
	struct sys_args a;
	struct conn *c;
	struct work *w;
	__u32 zero = 0;
	long ret;

	w = bpf_map_lookup_elem(&scratch, &zero);
	if (!w)
		return 0;
	io_args(ctx, w, &a, &ret, tls);
	c = bpf_map_lookup_elem(&conns, &w->key);
	if (!c || c->proto != proto)
		return 0;
	on_data(c, w->key.tgid, &a, ret, proto);
	return 0;
}

SEC("tracepoint")
int aion_pg(struct trace_event_raw_sys_exit *ctx)
{
	return db_data(ctx, AION_PROTO_PG, 0);
}

SEC("tracepoint")
int aion_mysql(struct trace_event_raw_sys_exit *ctx)
{
	return db_data(ctx, AION_PROTO_MYSQL, 0);
}

SEC("tracepoint")
int aion_redis(struct trace_event_raw_sys_exit *ctx)
{
	return db_data(ctx, AION_PROTO_REDIS, 0);
}

/* ---- TLS libraries: plaintext at the library's API ----------------------
 *
 * Uprobes (entry and return) on OpenSSL's ssl_read_internal/
 * ssl_write_internal (what SSL_read/SSL_read_ex and SSL_write/SSL_write_ex
 * call; the agent finds them, see agent/tls.c, or falls back to the public
 * functions), SSL_do_handshake, and GnuTLS's gnutls_record_recv/
 * gnutls_record_send/gnutls_handshake, attached once per library file. The
 * entry notes the call per thread; the syscalls made inside it tell its
 * socket (and are ciphertext, left alone); the return hands the plaintext
 * to the same parsers as the syscalls, on the same connection entry. */

static __always_inline int tls_enter(struct pt_regs *ctx, __u8 op, int ex)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct tls_call t = {};

	if (!is_target(id >> 32))
		return 0;
	t.ssl = PT_REGS_PARM1(ctx);
	t.buf = PT_REGS_PARM2(ctx);
	t.lenp = ex ? PT_REGS_PARM4(ctx) : 0;
	t.fd = -1;
	t.op = op;
	if (!bpf_map_update_elem(&tls_calls, &id, &t, BPF_ANY))
		tls_tid((__u32)id, 1);
	return 0;
}

SEC("uprobe")
int aion_ssl_read(struct pt_regs *ctx)
{
	return tls_enter(ctx, TLS_READ, 0);
}

SEC("uprobe")
int aion_ssl_write(struct pt_regs *ctx)
{
	return tls_enter(ctx, TLS_WRITE, 0);
}

SEC("uprobe")
int aion_ssl_read_ex(struct pt_regs *ctx)
{
	return tls_enter(ctx, TLS_READ, 1);
}

SEC("uprobe")
int aion_ssl_write_ex(struct pt_regs *ctx)
{
	return tls_enter(ctx, TLS_WRITE, 1);
}

SEC("uprobe")
int aion_tls_handshake(struct pt_regs *ctx)
{
	return tls_enter(ctx, TLS_HANDSHAKE, 0);
}

SEC("uprobe")
int aion_gnutls_recv(struct pt_regs *ctx)
{
	return tls_enter(ctx, TLS_READ | TLS_WIDE, 0);
}

SEC("uprobe")
int aion_gnutls_send(struct pt_regs *ctx)
{
	return tls_enter(ctx, TLS_WRITE | TLS_WIDE, 0);
}

/* SSL_free / gnutls_deinit: the session's socket is forgotten. */
SEC("uprobe")
int aion_tls_free(struct pt_regs *ctx)
{
	struct tls_sock_key k = {};
	__u64 id = bpf_get_current_pid_tgid();

	if (!is_target(id >> 32))
		return 0;
	k.ssl = PT_REGS_PARM1(ctx);
	k.tgid = id >> 32;
	bpf_map_delete_elem(&tls_socks, &k);
	return 0;
}

SEC("uretprobe")
int aion_tls_ret(struct pt_regs *ctx)
{
	__u64 id = bpf_get_current_pid_tgid(), n = 0;
	struct tls_sock_key k = {};
	struct tls_call *t, call;
	struct work *w;
	__u32 zero = 0;
	__s32 *fdp;
	long ret;

	t = bpf_map_lookup_elem(&tls_calls, &id);
	if (!t)
		return 0;
	call = *t;
	bpf_map_delete_elem(&tls_calls, &id);
	tls_tid((__u32)id, 0);
	ret = call.op & TLS_WIDE ? (long)PT_REGS_RC(ctx) : (long)(int)PT_REGS_RC(ctx);
	k.ssl = call.ssl;
	k.tgid = id >> 32;
	if (call.fd >= 0) {
		fdp = bpf_map_lookup_elem(&tls_socks, &k);
		if (!fdp || *fdp != call.fd)
			bpf_map_update_elem(&tls_socks, &k, &call.fd, BPF_ANY);
	} else {
		fdp = bpf_map_lookup_elem(&tls_socks, &k);
		if (!fdp) {
			if ((call.op & 3) != TLS_HANDSHAKE && ret > 0)
				count(AION_CNT_TLS_NO_SOCKET);
			return 0;
		}
		call.fd = *fdp;
	}
	if ((call.op & 3) == TLS_HANDSHAKE)
		return 0;
	if (call.lenp) {
		if (ret != 1 || bpf_probe_read_user(&n, sizeof(n), (void *)call.lenp))
			return 0;
		ret = (long)n;
	}
	if (ret <= 0)
		return 0;
	w = bpf_map_lookup_elem(&scratch, &zero);
	if (!w)
		return 0;
	w->targs.ptr = call.buf;
	w->targs.cnt = ret;
	w->targs.fd = call.fd;
	w->targs.kind = IO_PLAIN;
	w->targs.write = (call.op & 3) == TLS_WRITE;
	w->targs.pad = 0;
	w->tret = ret;
	bpf_tail_call(ctx, &tls_prog, 0);
	return 0;
}

SEC("uprobe")
int aion_tls_data(struct pt_regs *ctx)
{
	return data_main(ctx, 1);
}

SEC("uprobe")
int aion_tls_pg(struct pt_regs *ctx)
{
	return db_data(ctx, AION_PROTO_PG, 1);
}

SEC("uprobe")
int aion_tls_mysql(struct pt_regs *ctx)
{
	return db_data(ctx, AION_PROTO_MYSQL, 1);
}

SEC("uprobe")
int aion_tls_redis(struct pt_regs *ctx)
{
	return db_data(ctx, AION_PROTO_REDIS, 1);
}

/* A traced process mapped a file executable (ld.so, dlopen): report each
 * file once, so that the agent finds TLS libraries loaded late. */
SEC("tracepoint/syscalls/sys_exit_mmap")
int aion_exit_mmap(struct trace_event_raw_sys_exit *ctx)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	struct task_struct *task;
	struct pt_regs *regs;
	struct aion_file_key k = {};
	struct file *f;
	__u8 one = 1;
	int fd;

	if (!is_target(tgid) || (ctx->ret < 0 && ctx->ret > -4096))
		return 0;
	task = bpf_get_current_task_btf();
	regs = (struct pt_regs *)bpf_task_pt_regs(task);
	if (!(SYSCALL_ARG3(regs) & 4 /* PROT_EXEC */))
		return 0;
	fd = (int)SYSCALL_ARG5(regs);
	f = fd_to_file(fd);
	if (!f)
		return 0;
	k.ino = BPF_CORE_READ(f, f_inode, i_ino);
	k.dev = BPF_CORE_READ(f, f_inode, i_sb, s_dev);
	if (bpf_map_lookup_elem(&exec_files, &k))
		return 0;
	bpf_map_update_elem(&exec_files, &k, &one, BPF_ANY);
	{
		struct proc_note n = { .kind = AION_EV_PROC_MAP, .tgid = tgid };

		proc_notice_file(&n, task, k.ino, k.dev);
	}
	return 0;
}

static __always_inline int exit_io(struct trace_event_raw_sys_exit *ctx, __u8 kind, __u8 write)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 zero = 0, tgid = id >> 32;
	long ret = ctx->ret;
	struct work *w;
	__u8 in_tls = 0;

	if (!is_target(tgid))
		return 0;
	if (in_tls_call((__u32)id)) {
		/* Inside a TLS call: this is its socket, and ciphertext. */
		struct tls_call *t = bpf_map_lookup_elem(&tls_calls, &id);

		if (t) {
			struct pt_regs *regs = (struct pt_regs *)bpf_task_pt_regs(
				bpf_get_current_task_btf());

			t->fd = (__s32)SYSCALL_ARG1(regs);
			in_tls = 1;
		}
	}
	if (ret < 0 && ret != -ECONNRESET && ret != -ETIMEDOUT)
		return 0; /* EAGAIN and friends: nothing moved */
	w = bpf_map_lookup_elem(&scratch, &zero);
	if (!w)
		return 0;
	w->io_kind = kind;
	w->io_write = write;
	w->in_tls = in_tls;
	bpf_tail_call(ctx, &data_prog, 0);
	return 0;
}

#define EXIT(name, kind, write)                                            \
	SEC("tracepoint/syscalls/sys_exit_" #name)                         \
	int aion_exit_##name(struct trace_event_raw_sys_exit *ctx)         \
	{                                                                  \
		return exit_io(ctx, kind, write);                          \
	}

EXIT(read, IO_PLAIN, 0)
EXIT(recvfrom, IO_PLAIN, 0)
EXIT(readv, IO_IOV, 0)
EXIT(recvmsg, IO_MSG, 0)
EXIT(write, IO_PLAIN, 1)
EXIT(sendto, IO_PLAIN, 1)
EXIT(writev, IO_IOV, 1)
EXIT(sendmsg, IO_MSG, 1)
EXIT(sendfile64, IO_SENDFILE, 1)

SEC("tracepoint/syscalls/sys_enter_connect")
int aion_enter_connect(struct trace_event_raw_sys_enter *ctx)
{
	__u64 id = bpf_get_current_pid_tgid(), now;

	if (!is_target(id >> 32))
		return 0;
	now = bpf_ktime_get_ns();
	bpf_map_update_elem(&connecting, &id, &now, BPF_ANY);
	return 0;
}

/* The connect() failure a socket's error stands for. */
static __always_inline __u8 connect_err(struct sock *sk)
{
	return BPF_CORE_READ(sk, sk_err) == ETIMEDOUT ? AION_ERR_TIMEOUT : AION_ERR_REFUSED;
}

SEC("tracepoint/syscalls/sys_exit_connect")
int aion_exit_connect(struct trace_event_raw_sys_exit *ctx)
{
	__u64 id = bpf_get_current_pid_tgid(), *startp, start, now, skey;
	struct conn_key k = { .tgid = id >> 32 };
	struct sockaddr_in6 sa = {};
	long ret = ctx->ret;
	struct sys_args a;
	struct conn *c;

	if (!is_target(k.tgid))
		return 0;
	now = bpf_ktime_get_ns();
	startp = bpf_map_lookup_elem(&connecting, &id);
	start = startp ? *startp : now;
	if (startp)
		bpf_map_delete_elem(&connecting, &id);
	if (ret != 0 && ret != -EINPROGRESS && ret != -ECONNREFUSED && ret != -ETIMEDOUT)
		return 0;
	syscall_args(&a, 0, 1);
	k.fd = a.fd;
	bpf_map_delete_elem(&nonsock, &k);
	c = conn_new(&k, AION_ROLE_CLIENT);
	if (!c)
		return 0;
	c->connect_ns = start;
	if (ret == 0)
		c->connect_ns = 0;
	if (ret == -ECONNREFUSED || ret == -ETIMEDOUT) {
		/* The socket forgot its peer: take it from the arguments. */
		if (!bpf_probe_read_user(&sa, sizeof(sa), (void *)a.ptr)) {
			c->rport = bpf_ntohs(sa.sin6_port);
			if (sa.sin6_family == AF_INET) {
				struct sockaddr_in *s4 = (struct sockaddr_in *)&sa;

				__builtin_memset(c->raddr, 0, 10);
				c->raddr[10] = c->raddr[11] = 0xff;
				__builtin_memcpy(&c->raddr[12], &s4->sin_addr, 4);
			} else {
				__builtin_memcpy(c->raddr, &sa.sin6_addr, 16);
			}
		}
		conn_failed(c, k.tgid, ret == -ETIMEDOUT ? AION_ERR_TIMEOUT : AION_ERR_REFUSED, now);
		return 0;
	}
	if (ret == -EINPROGRESS) {
		struct sock *sk = (struct sock *)c->sk;

		if (BPF_CORE_READ(sk, __sk_common.skc_state) == TCP_CLOSE) {
			/* Already refused while connect() ran (loopback). */
			conn_failed(c, k.tgid, connect_err(sk), now);
			return 0;
		}
		/* Its outcome comes as a socket state change. */
		skey = c->sk;
		bpf_map_update_elem(&socks, &skey, &k, BPF_ANY);
	}
	return 0;
}

/* ---- connection lifecycle ---------------------------------------------- */

static __always_inline int exit_accept(struct trace_event_raw_sys_exit *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct conn_key k = { .tgid = id >> 32, .fd = ctx->ret };

	if (ctx->ret < 0 || !is_target(k.tgid))
		return 0;
	bpf_map_delete_elem(&nonsock, &k);
	conn_new(&k, AION_ROLE_SERVER);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_accept")
int aion_exit_accept(struct trace_event_raw_sys_exit *ctx)
{
	return exit_accept(ctx);
}

SEC("tracepoint/syscalls/sys_exit_accept4")
int aion_exit_accept4(struct trace_event_raw_sys_exit *ctx)
{
	return exit_accept(ctx);
}

SEC("tracepoint/syscalls/sys_enter_close")
int aion_enter_close(struct trace_event_raw_sys_enter *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct conn_key k = { .tgid = id >> 32, .fd = ctx->args[0] };
	struct conn *c;

	if (!is_target(k.tgid))
		return 0;
	c = bpf_map_lookup_elem(&conns, &k);
	if (!c) {
		bpf_map_delete_elem(&nonsock, &k);
		return 0;
	}
	if (c->role == AION_ROLE_CLIENT) {
		/* The client gives up: on its requests in flight, or on its
		 * connect still pending. */
		__u64 now = bpf_ktime_get_ns();
		struct sock *sk = (struct sock *)c->sk;

		conn_abort(c, k.tgid, now, 0, AION_ERR_TIMEOUT);
		if (c->connect_ns && sk && BPF_CORE_READ(sk, __sk_common.skc_state) == TCP_SYN_SENT)
			conn_failed(c, k.tgid, AION_ERR_TIMEOUT, now);
	} else {
		conn_abort(c, k.tgid, bpf_ktime_get_ns(), 1, AION_ERR_CONN_CLOSED);
	}
	pool_close(c, k.tgid);
	if (c->sk) {
		__u64 skey = c->sk;

		bpf_map_delete_elem(&socks, &skey);
	}
	bpf_map_delete_elem(&conns, &k);
	return 0;
}

/* The peer closed or reset: requests still waiting for a response fail now,
 * not when the server gets round to writing. Runs in any task's context. */
SEC("tracepoint/sock/inet_sock_set_state")
int aion_sock_state(struct trace_event_raw_inet_sock_set_state *ctx)
{
	__u64 skey = (__u64)ctx->skaddr;
	struct conn_key *kp, k;
	struct conn *c;

	if (ctx->protocol != IPPROTO_TCP)
		return 0;
	if (ctx->newstate == TCP_LISTEN_STATE) {
		on_listen(ctx->sport);
		return 0;
	}
	if (ctx->oldstate == TCP_SYN_SENT) {
		/* A traced client's connect() in progress: refused, timed out,
		 * or established (then nothing is left to report). */
		kp = bpf_map_lookup_elem(&socks, &skey);
		if (!kp)
			return 0;
		k = *kp;
		c = bpf_map_lookup_elem(&conns, &k);
		if (!c || c->sk != skey || c->role != AION_ROLE_CLIENT)
			return 0;
		if (ctx->newstate == TCP_CLOSE)
			conn_failed(c, k.tgid, connect_err((struct sock *)ctx->skaddr),
				    bpf_ktime_get_ns());
		else
			c->connect_ns = 0;
		return 0;
	}
	if (ctx->oldstate != 1 /* ESTABLISHED */)
		return 0;
	if (ctx->newstate != 8 /* CLOSE_WAIT */ && ctx->newstate != 7 /* CLOSE */)
		return 0;
	kp = bpf_map_lookup_elem(&socks, &skey);
	if (!kp)
		return 0;
	k = *kp;
	c = bpf_map_lookup_elem(&conns, &k);
	/* A client may still have the response to read: its reads tell. */
	if (!c || c->sk != skey || c->role == AION_ROLE_CLIENT)
		return 0;
	{
		/* The server wrote since its last request started: a response
		 * is on its way (the write's exit program may not have run
		 * yet on another CPU). Its end, or the close, decides. */
		struct tcp_sock *tp = (struct tcp_sock *)ctx->skaddr;

		if (c->head != c->tail && BPF_CORE_READ(tp, write_seq) != c->wseq)
			return 0;
	}
	conn_abort(c, k.tgid, bpf_ktime_get_ns(), 0, AION_ERR_CONN_CLOSED);
	return 0;
}

/* Run by the agent on each CPU (BPF_PROG_TEST_RUN with
 * BPF_F_TEST_RUN_ON_CPU, from an IPI) after each poll, so that a CPU that
 * went quiet does not keep its last records. Never attached. */
SEC("raw_tp")
int aion_flush(void *ctx)
{
	__u32 zero = 0;
	struct stage *st = bpf_map_lookup_elem(&stage, &zero);

	if (st && !READ_ONCE(st->busy))
		stage_flush(st);
	return 0;
}
