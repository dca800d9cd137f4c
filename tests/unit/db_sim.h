/* SPDX-License-Identifier: MIT */
/* The kernel's driver of the database framing parsers (bpf/aion.bpf.c:
 * detect(), load_window(), on_data(), scan_round_p(), db_drain_mark(),
 * db_request(), db_complete(), db_sync_one(), db_head_mask(); fill_db() of
 * bpf/conn.bpf.h), on the host, for one connection seen from one process:
 * the application (client role: it writes requests, reads responses) or
 * the database server (server role: it reads requests, writes responses).
 *
 * Bytes are fed per syscall and per direction of the wire (C: client to
 * server, S: server to client); the driver maps that to the traced
 * process's read/write side. Carry of AION_CARRY bytes per direction,
 * windows of at most `window` bytes (AION_WINDOW unless a test makes them
 * smaller) over a syscall of up to AION_DB_IOV segments, AION_DB_ROUNDS
 * scans per syscall, marks drained after every scan, the queue of
 * AION_QUEUE_DEPTH operations, the events emitted: all as in the kernel.
 *
 * Shared by tests/unit/test_db.c and tests/fuzz/fuzz_db.c; SIM_ASSERT is
 * theirs to define. Every SIM_ASSERT is an invariant the kernel relies on. */
#ifndef AION_DB_SIM_H
#define AION_DB_SIM_H

#include <stdlib.h>
#include <string.h>
#include <linux/types.h>

#ifndef SIM_ASSERT
#define SIM_ASSERT(x) assert_true(x)
#endif

/* The scan loop as the host runs it (http.h), plus an observer that sees
 * every step of the PG, MySQL and Redis scans before it runs: it notes when the
 * parser takes a path that a known bug lies on (DBSIM_HIT_*), so that the
 * tests can tell those failures from new ones. */
struct aion_http_scan;
static long aion_pg_step(__u32 i, void *ctx);
static long aion_my_step(__u32 i, void *ctx);
static long aion_re_step(__u32 i, void *ctx);
static void dbsim_observe(long (*cb)(__u32, void *), void *ctx);
#define AION_LOOP(n, cb, ctx)                                                    \
	do {                                                                     \
		__u32 aion_i_;                                                   \
		for (aion_i_ = 0; aion_i_ < (n); aion_i_++) {                     \
			dbsim_observe((cb), (ctx));                              \
			if ((cb)(aion_i_, (ctx)))                                \
				break;                                           \
		}                                                                \
	} while (0)
#include "aion/db.h"

/* Known bugs whose path the observer (or the driver) saw taken; the
 * numbers are test_db.c's. */
#define DBSIM_HIT_RE_WORD 1  /* B1: inline Redis command name running into the end of the window */
#define DBSIM_HIT_MY_STAT 2  /* B2: EOF/OK ends a result with its status flags outside the window */
#define DBSIM_HIT_CARRY   4  /* B3: the scan stopped inside the carried bytes: framing given up */
#define DBSIM_HIT_MERGE   8  /* B5: operation merged into the tail across a dropped one */
#define DBSIM_HIT_PG_1B   16 /* B7: 'N'/'S'/'G' ending a syscall taken for the SSL answer mid-stream */
#define DBSIM_HIT_RE_PUSH 32 /* B8: RESP3 push while a (UN)SUBSCRIBE waits for its confirmation */
#define DBSIM_NHITS 6

#define DBSIM_ROUNDS 1024 /* AION_DB_ROUNDS in bpf/aion.bpf.c */
#define DBSIM_STMTS  64   /* named PG statements remembered (pg_stmts; LRU of 16384 there) */

enum { DB_DIR_C = 0, DB_DIR_S = 1 }; /* client -> server, server -> client */

/* One record the kernel would put in the ring (struct aion_db_event, the
 * fields the parser decides). */
struct db_ev {
	__u8  op;       /* enum aion_db_op, AION_DB_STMT for a statement's text */
	__u16 error;
	__u32 count;    /* operations this record stands for */
	__u32 stmt;
	__u8  text_len; /* as fill_db() sets it */
	__u8  err_len;
	char  text[AION_DB_TEXT + 1];
	__u64 start, end; /* syscall numbers */
};

/* struct aion_req, the DB fields */
struct db_req {
	__u64 start;
	__u64 body;
	__u8  method;
	__u8  path_len;
	__u16 status;
	__u32 count;
	char  path[AION_PATH_MAX];
};

struct dbsim {
	struct aion_http_scan s;     /* the per-CPU scratch */
	struct aion_http_frame fr[2]; /* 0: bytes read, 1: bytes written */
	__u8  carry[2][AION_CARRY];
	__u32 carry_len[2];
	__u64 carry_ns[2];
	__u8  proto, role, tries;
	__u8  perspective;           /* AION_ROLE_CLIENT or AION_ROLE_SERVER: who is traced */
	__u32 head, tail;
	struct db_req q[AION_QUEUE_DEPTH];
	__u32 parse_hash;
	__u8  parse_len;
	char  parse_text[AION_PATH_MAX];
	struct { __u32 hash; __u8 len; char text[AION_PATH_MAX]; } stmts[DBSIM_STMTS]; /* pg_stmts */
	__u32 nstmts;
	__u32 window;                /* bytes per window, <= AION_WINDOW */
	__u64 now;                   /* syscalls so far */
	struct db_ev *ev;
	__u32 nev, cap;
	/* what the kernel counts or cannot see */
	__u32 garbage;    /* syscalls that ended on garbage (AION_CNT_PARSE_GIVEUP) */
	__u32 queue_full; /* AION_CNT_QUEUE_FULL */
	__u32 exhausted;  /* syscalls whose rounds ran out with bytes not parsed (framing given up) */
	__u32 undetected; /* syscalls before the protocol was known */
	__u32 detect_lost; /* of those, syscalls whose bytes were dropped, not carried */
	__u32 marks;      /* marks drained */
	__u32 bad_text;   /* START/STMT marks whose text lies outside the window's valid bytes */
	__u32 bad_etext;  /* END marks whose error text does (Redis, bug B4 of test_db.c) */
	__u32 orphans;    /* END marks that found no operation waiting, once one was queued */
	int   started;    /* an operation was queued */
	__u32 hits;       /* DBSIM_HIT_* */
	__u32 hit_at[DBSIM_NHITS]; /* events emitted when each DBSIM_HIT_* was first seen */
	__u32 exhausted_at; /* events emitted when the rounds first ran out */
	int   dropped;    /* an operation was dropped (queue full) since the tail was queued */
};

static struct dbsim *dbsim_cur; /* the driver the observer reports to */

static void dbsim_hit(struct dbsim *m, __u32 bit)
{
	__u32 i = (__u32)__builtin_ctz(bit);

	if (!(m->hits & bit))
		m->hit_at[i] = m->nev;
	m->hits |= bit;
}

static void dbsim_observe(long (*cb)(__u32, void *), void *ctx)
{
	const struct aion_http_scan *s;
	const struct aion_db_frame *f;
	__u32 p, plen;
	__u8 t;

	if (!dbsim_cur || (cb != aion_pg_step && cb != aion_my_step && cb != aion_re_step))
		return;
	s = *(struct aion_http_scan **)ctx;
	f = AION_DBF(s);
	p = s->pos;
	if (s->full || s->garbage || f->state == 0xff || p >= s->len || p >= s->total)
		return;
	t = AION_B(s, p);
	if (s->request) {
		/* An inline command whose name runs into the end of the window. */
		if (cb == aion_re_step && f->state == RE_CMD && (t | 0x20) >= 'a' && (t | 0x20) <= 'z' &&
		    aion_re_word(s, p, 32) == s->len - p && s->len - p < 32)
			dbsim_hit(dbsim_cur, DBSIM_HIT_RE_WORD);
		return;
	}
	if (cb == aion_re_step) {
		/* A push at the top of a reply while the oldest command is a
		 * (P|S)(UN)SUBSCRIBE: in RESP3 its confirmation is that push. */
		const struct db_req *r = &dbsim_cur->q[dbsim_cur->head & (AION_QUEUE_DEPTH - 1)];
		char name[16];
		__u32 k, n = r->path_len < sizeof(name) - 1 ? r->path_len : sizeof(name) - 1;

		if (f->state != RE_ELEM || !(f->flags & RE_F_TOP) || t != '>' ||
		    dbsim_cur->head == dbsim_cur->tail)
			return;
		for (k = 0; k < n; k++)
			name[k] = (char)(r->path[k] & ~0x20);
		name[n] = 0;
		if (strstr(name, "SUBSCRIBE"))
			dbsim_hit(dbsim_cur, DBSIM_HIT_RE_PUSH);
		return;
	}
	if (cb == aion_pg_step) {
		/* Only the first byte of the response stream can be the answer
		 * to SSLRequest/GSSENCRequest (state PG_INIT). */
		if (f->state == PG_MSG && p + 1 == s->total && (t == 'N' || t == 'S' || t == 'G'))
			dbsim_hit(dbsim_cur, DBSIM_HIT_PG_1B);
		return;
	}
	if (p + 5 > s->len || f->state == MY_SKIP)
		return;
	plen = aion_le24(s, p);
	t = AION_B(s, p + 4);
	if ((f->state == MY_IDLE || f->state == MY_AFTER_DEFS || f->state == MY_ROWS) &&
	    ((t == 0xfe && plen < 9 && !(f->state == MY_AFTER_DEFS && plen == 5)) ||
	     (t == 0x00 && f->state == MY_IDLE && !((s->head_req & 1) && plen >= 12))) &&
	    p + 4 + plen > s->len)
		dbsim_hit(dbsim_cur, DBSIM_HIT_MY_STAT);
}

struct dseg {
	const __u8 *p; /* NULL: sendfile, nothing copied */
	__u64 n;
};

/* proto: AION_PROTO_UNKNOWN to learn it from the first bytes as the kernel
 * does (detect()), else that protocol from the start with role perspective
 * (an adopted connection whose role the kernel knew). */
static struct dbsim *dbsim_new(__u8 perspective, __u8 proto)
{
	struct dbsim *m = calloc(1, sizeof(*m));

	SIM_ASSERT(m != NULL);
	m->perspective = perspective;
	m->window = AION_WINDOW;
	if (proto) {
		m->proto = proto;
		m->role = perspective;
	}
	return m;
}

static void dbsim_free(struct dbsim *m)
{
	if (m) {
		free(m->ev);
		free(m);
	}
}

/* Stale scratch bytes that would frame messages of every protocol if read
 * past len. */
static void dbsim_poison(struct aion_http_scan *s)
{
	static __u8 pat[sizeof(s->buf)];
	static int ready;

	if (!ready) {
		static const char p[] = "*2\r\n$3\r\nGET\r\n$1\r\nk\r\n-ERR x\r\n"
					"Q\0\0\0\x0dselect 1\0Z\0\0\0\x05I"
					"\x05\0\0\0\x03sel\xff\x01\0\0\0\0";
		size_t i;

		for (i = 0; i < sizeof(pat); i++)
			pat[i] = (__u8)p[i % (sizeof(p) - 1)];
		ready = 1;
	}
	memcpy(s->buf, pat, sizeof(pat));
}

/* copy_segs() with a window of w bytes. */
static __u32 dbsim_copy(__u8 *buf, __u32 dst, const struct dseg *segs, __u32 nsegs, __u64 skip,
			__u32 w)
{
	__u32 i, copied = 0;
	__u64 n;

	for (i = 0; i < AION_DB_IOV; i++) {
		if (i >= nsegs || dst >= w)
			break;
		if (skip >= segs[i].n) {
			skip -= segs[i].n;
			continue;
		}
		n = segs[i].n - skip;
		if (n > w - dst)
			n = w - dst;
		if (!segs[i].p)
			break; /* not readable: bpf_probe_read_user() fails */
		memcpy(buf + dst, segs[i].p + skip, n);
		dst += n;
		copied += n;
		skip = 0;
	}
	return copied;
}

/* emit_db() + fill_db(): n operations alike. */
static void dbsim_emit(struct dbsim *m, const struct db_req *r, __u16 err, __u32 stmt, __u8 op,
		       const __u8 *etext, __u32 elen, __u32 n)
{
	struct db_ev *e;

	if (m->nev == m->cap) {
		m->cap = m->cap ? m->cap * 2 : 64;
		m->ev = realloc(m->ev, m->cap * sizeof(*m->ev));
		SIM_ASSERT(m->ev != NULL);
	}
	e = &m->ev[m->nev++];
	memset(e, 0, sizeof(*e));
	e->op = op;
	e->error = err;
	e->count = n;
	e->stmt = stmt;
	e->start = r->start;
	e->end = m->now;
	e->text_len = r->path_len > AION_DB_TEXT ? AION_DB_TEXT : r->path_len;
	memcpy(e->text, r->path, e->text_len);
	if (etext && elen) {
		if (elen > AION_DB_TEXT - 32)
			elen = AION_DB_TEXT - 32;
		if (e->text_len > 32)
			e->text_len = 32;
		memset(e->text + e->text_len, 0, sizeof(e->text) - e->text_len);
		memcpy(e->text + 32, etext, elen);
		e->err_len = (__u8)elen;
	}
}

/* db_request() */
static void dbsim_request(struct dbsim *m, const struct aion_http_mark *k, __u64 start)
{
	struct aion_http_scan *s = &m->s;
	__u32 t = m->tail, tl = k->pad, i;
	const char *text = (const char *)s->buf + (k->path_off & (AION_WINDOW - 1));
	struct db_req *r;

	if (k->method == AION_DB_EXECUTE && m->proto == AION_PROTO_PG && k->body == m->parse_hash) {
		/* Executes the statement parsed last. */
		text = m->parse_text;
		tl = m->parse_len;
	} else if (k->method == AION_DB_EXECUTE && m->proto == AION_PROTO_PG) {
		for (i = 0; i < m->nstmts; i++)
			if (m->stmts[i].hash == (__u32)k->body) {
				text = m->stmts[i].text;
				tl = m->stmts[i].len;
				break;
			}
	}
	if (tl > AION_PATH_MAX)
		tl = AION_PATH_MAX;
	if (t != m->head && !m->dropped && (k->method == AION_DB_COMMAND || k->method == AION_DB_EXECUTE)) {
		r = &m->q[(t - 1) & (AION_QUEUE_DEPTH - 1)];
		if (r->method == k->method && r->start == start && r->path_len == tl &&
		    (tl ? !memcmp(r->path, text, tl) : r->body == k->body)) {
			if (m->dropped)
				dbsim_hit(m, DBSIM_HIT_MERGE);
			r->count++;
			return;
		}
	}
	if (t - m->head >= AION_QUEUE_DEPTH) {
		m->queue_full++;
		m->dropped = 1;
		return;
	}
	m->dropped = 0;
	m->started = 1;
	r = &m->q[t & (AION_QUEUE_DEPTH - 1)];
	memset(r, 0, sizeof(*r));
	r->start = start;
	r->method = k->method;
	r->count = 1;
	r->body = k->body;
	r->path_len = (__u8)tl;
	memcpy(r->path, text, tl);
	m->tail = t + 1;
}

/* db_complete() */
static void dbsim_complete(struct dbsim *m, __u16 err, __u32 stmt, const __u8 *etext, __u32 elen)
{
	struct db_req *r;

	if (m->head == m->tail)
		return;
	r = &m->q[m->head & (AION_QUEUE_DEPTH - 1)];
	if (r->count > 1) {
		/* Successes of identical pipelined operations are reported
		 * together (status counts them), errors one by one. */
		r->count--;
		if (err)
			dbsim_emit(m, r, err, (__u32)r->body, r->method, etext, elen, 1);
		else
			r->status++;
		return;
	}
	m->head++;
	if (r->method == AION_DB_SYNC)
		return;
	if (r->method == AION_DB_COMMAND || r->method == AION_DB_EXECUTE) {
		__u32 done = r->status;

		if (err && done)
			dbsim_emit(m, r, 0, (__u32)r->body, r->method, NULL, 0, done);
		dbsim_emit(m, r, err, (__u32)r->body, r->method, etext, elen, err ? 1 : done + 1);
		return;
	}
	dbsim_emit(m, r, err, r->method == AION_DB_PREPARE ? stmt : (__u32)r->body, r->method, etext, elen, 1);
	if (r->method == AION_DB_PREPARE && !err)
		dbsim_emit(m, r, 0, stmt, AION_DB_STMT, NULL, 0, 1);
}

/* db_drain_mark() over the marks of one scan. */
static void dbsim_drain(struct dbsim *m, __u64 *first)
{
	struct aion_http_scan *s = &m->s;
	__u32 i, j;

	SIM_ASSERT(s->nmarks <= AION_MAX_MARKS);
	for (i = 0; i < s->nmarks; i++) {
		const struct aion_http_mark *k = &s->marks[i];
		struct db_req *r;

		m->marks++;
		SIM_ASSERT(k->kind == AION_MARK_START || k->kind == AION_MARK_END ||
			   k->kind == AION_MARK_STMT);
		SIM_ASSERT(k->pad <= AION_PATH_MAX);
		/* The kernel copies text from the window: it must be bytes of
		 * this syscall, not stale scratch. */
		if (k->pad && (__u32)k->path_off + k->pad > s->len) {
			if (k->kind == AION_MARK_END)
				m->bad_etext++;
			else
				m->bad_text++;
		}
		if (k->kind == AION_MARK_START) {
			SIM_ASSERT(s->request);
			SIM_ASSERT(k->method >= AION_DB_QUERY && k->method <= AION_DB_SYNC);
			dbsim_request(m, k, *first);
			*first = m->now;
		} else if (k->kind == AION_MARK_STMT) {
			struct db_req tmp;

			SIM_ASSERT(s->request);
			m->parse_hash = (__u32)k->body;
			m->parse_len = k->pad > AION_PATH_MAX ? AION_PATH_MAX : k->pad;
			memset(m->parse_text, 0, sizeof(m->parse_text));
			memcpy(m->parse_text, s->buf + (k->path_off & (AION_WINDOW - 1)), m->parse_len);
			if (k->body != AION_PG_UNNAMED) {
				for (j = 0; j < m->nstmts; j++)
					if (m->stmts[j].hash == (__u32)k->body)
						break;
				if (j == m->nstmts && m->nstmts < DBSIM_STMTS)
					m->nstmts++;
				if (j < DBSIM_STMTS) {
					m->stmts[j].hash = (__u32)k->body;
					m->stmts[j].len = m->parse_len;
					memcpy(m->stmts[j].text, m->parse_text, AION_PATH_MAX);
				}
				memset(&tmp, 0, sizeof(tmp));
				tmp.start = m->now;
				tmp.path_len = m->parse_len;
				memcpy(tmp.path, m->parse_text, AION_PATH_MAX);
				dbsim_emit(m, &tmp, 0, (__u32)k->body, AION_DB_STMT, NULL, 0, 1);
			}
		} else if (k->method == AION_DBEND_SYNC) {
			SIM_ASSERT(!s->request);
			if (m->head == m->tail && m->started)
				m->orphans++;
			/* bpf_loop(65536, db_sync_one) */
			for (j = 0; j < 65536; j++) {
				__u8 kind;

				if (m->head == m->tail)
					break;
				r = &m->q[m->head & (AION_QUEUE_DEPTH - 1)];
				kind = r->method;
				dbsim_complete(m, kind == AION_DB_QUERY && r->status ? r->status : k->status,
					       0, NULL, 0);
				if (kind == AION_DB_QUERY || kind == AION_DB_SYNC)
					break;
			}
		} else {
			SIM_ASSERT(!s->request);
			if (m->head == m->tail) {
				if (m->started)
					m->orphans++;
				continue;
			}
			r = &m->q[m->head & (AION_QUEUE_DEPTH - 1)];
			if (m->proto == AION_PROTO_PG && r->method == AION_DB_QUERY) {
				if (k->status)
					r->status = k->status;
			} else if (r->method != AION_DB_SYNC) {
				dbsim_complete(m, k->status, (__u32)k->body,
					       k->pad ? s->buf + (k->path_off & (AION_WINDOW - 1)) : NULL, k->pad);
			}
		}
	}
}

/* The first window of a syscall: carry + every segment, as load_window()
 * does for databases (all_segs). */
static void dbsim_load(struct dbsim *m, __u8 dir, const struct dseg *segs, __u32 nsegs, __u64 ret,
		       __u32 *carry)
{
	struct aion_http_scan *s = &m->s;
	__u32 c = m->carry_len[dir];

	if (c > AION_CARRY)
		c = AION_CARRY;
	dbsim_poison(s);
	if (c)
		memcpy(s->buf, m->carry[dir], AION_CARRY);
	s->f = m->fr[dir];
	s->len = c + dbsim_copy(s->buf, c, segs, nsegs, 0, m->window);
	s->total = (__u32)(c + ret);
	s->pos = 0;
	*carry = c;
}

/* detect(): 0 when nothing is to be parsed now. */
static __u8 dbsim_detect(struct dbsim *m, __u8 dir, const struct dseg *segs, __u32 nsegs, __u64 ret)
{
	struct aion_http_scan *s = &m->s;
	__u32 carry;
	__u8 req = 0, p;

	dbsim_load(m, dir, segs, nsegs, ret, &carry);
	p = aion_detect(s, &req);
	if (!p) {
		if (s->len == s->total && s->len < 16) {
			memcpy(m->carry[dir], s->buf, AION_CARRY);
			m->carry_ns[dir] = m->now;
			m->carry_len[dir] = s->len;
		} else {
			m->carry_len[dir] = 0;
			m->detect_lost++;
		}
		if (++m->tries >= 64)
			m->proto = AION_PROTO_NONE;
		return 0;
	}
	m->proto = p;
	m->role = (req == (dir == 0)) ? AION_ROLE_SERVER : AION_ROLE_CLIENT;
	if (p == AION_PROTO_HTTP) {
		m->carry_len[dir] = 0;
		return 0;
	}
	return p;
}

/* on_data() for one syscall of the traced process: dir 0 read, 1 write. */
static void dbsim_on_data(struct dbsim *m, __u8 dir, const struct dseg *segs, __u32 nsegs, __u64 ret)
{
	struct aion_http_scan *s = &m->s;
	__u64 base = 0, first;
	__u32 carry, round, done = 0;
	__u8 proto = m->proto;

	dbsim_cur = m;
	dbsim_load(m, dir, segs, nsegs, ret, &carry);
	first = carry && m->fr[dir].state == AION_HF_START ? m->carry_ns[dir] : m->now;
	s->request = (m->role == AION_ROLE_SERVER) == (dir == 0);
	for (round = 0; round < DBSIM_ROUNDS && !done; round++) {
		/* scan_round_p() */
		s->garbage = 0;
		s->partial = 0;
		{ /* db_head_mask() */
			const struct db_req *h = &m->q[m->head & (AION_QUEUE_DEPTH - 1)];

			s->head_req = m->head == m->tail ? 0 : h->method == AION_DB_PREPARE ? 1 :
				      h->method == AION_DB_OTHER && h->body == 0x04 ? 2 : 0;
		}
		aion_db_scan(s, proto);
		SIM_ASSERT(s->pos <= s->total);
		SIM_ASSERT(s->len <= s->total && s->len <= AION_WINDOW);
		dbsim_drain(m, &first);
		if (s->full)
			continue;
		if (s->garbage || s->partial || s->pos >= s->total) {
			done = 1;
			break;
		}
		base += s->pos;
		if (base < carry) {
			/* The next window would start inside the carried
			 * bytes: it cannot be loaded. */
			dbsim_hit(m, DBSIM_HIT_CARRY);
			done = 1;
			break;
		}
		s->total -= s->pos;
		s->pos = 0;
		s->len = dbsim_copy(s->buf, 0, segs, nsegs, base - carry, m->window);
		if (!s->len) {
			done = 1;
			break;
		}
	}
	if (m->head != m->tail) {
		/* Pipelined operations answered by this syscall: one record. */
		struct db_req *q = &m->q[m->head & (AION_QUEUE_DEPTH - 1)];

		if ((q->method == AION_DB_COMMAND || q->method == AION_DB_EXECUTE) && q->status) {
			dbsim_emit(m, q, 0, (__u32)q->body, q->method, NULL, 0, q->status);
			q->status = 0;
		}
	}
	if (!s->garbage && !s->partial && s->pos < s->total) {
		/* The rounds ran out, or the scan stopped in carried bytes:
		 * the framing is lost from here. */
		AION_DBF(s)->state = 0xff;
		s->garbage = 1;
		if (!done && !m->exhausted++)
			m->exhausted_at = m->nev;
	}
	if (s->garbage)
		m->garbage++;
	if (s->partial && s->pos < s->len && s->len - s->pos < AION_CARRY) {
		memcpy(m->carry[dir], s->buf + s->pos, AION_CARRY);
		m->carry_ns[dir] = first;
		m->carry_len[dir] = s->len - s->pos;
	} else {
		m->carry_len[dir] = 0;
	}
	SIM_ASSERT(m->carry_len[dir] < AION_CARRY);
	m->fr[dir] = s->f;
}

/* One syscall of ret bytes in segments, on the wire direction wd. */
static void dbsim_segs(struct dbsim *m, int wd, const struct dseg *segs, __u32 nsegs, __u64 ret)
{
	/* The client writes what goes to the server; the server reads it. */
	__u8 dir = (m->perspective == AION_ROLE_CLIENT) == (wd == DB_DIR_C) ? 1 : 0;
	__u8 p = m->proto;

	m->now++;
	if (!ret)
		return;
	if (p == AION_PROTO_UNKNOWN) {
		m->undetected++;
		p = dbsim_detect(m, dir, segs, nsegs, ret);
	}
	if (p == AION_PROTO_PG || p == AION_PROTO_MYSQL || p == AION_PROTO_REDIS)
		dbsim_on_data(m, dir, segs, nsegs, ret);
}

/* One read()/write() of n bytes (data NULL: counted, none copied). */
static void dbsim_data(struct dbsim *m, int wd, const void *data, __u64 n)
{
	struct dseg seg = { (const __u8 *)data, n };

	dbsim_segs(m, wd, &seg, 1, n);
}

#endif /* AION_DB_SIM_H */
