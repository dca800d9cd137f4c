/* SPDX-License-Identifier: MIT */
/* The kernel's driver of the HTTP framing parser (bpf/aion.bpf.c:
 * on_data(), scan_round(), drain_mark()), on the host: carry, windows of
 * AION_WINDOW bytes, rounds, draining marks. Shared by the cmocka tests and
 * the fuzzer; SIM_ASSERT is theirs to define. Needs MAX_GOT. */
#ifndef AION_HTTP_SIM_H
#define AION_HTTP_SIM_H

#include <stdlib.h>
#include <string.h>
#include <linux/types.h>
#include "aion/http.h"

#ifndef SIM_ASSERT
#define SIM_ASSERT(x) assert_true(x)
#endif

/* ---- the kernel's driver, on the host ------------------------------------ */

struct got {
	__u8 kind;
	__u8 method;
	__u16 status;
	__u64 body;
	__u32 path_len;
	char path[AION_PATH_MAX + 1]; /* what on_request() copies: window bytes */
};

struct sim {
	struct aion_http_scan s; /* the per-CPU scratch map value */
	struct aion_http_frame fr;
	__u8 carry[AION_CARRY];
	__u32 carry_len;
	int request;
	int want_host; /* a client's requests: Host values are marked */
	__u8 q[256]; /* methods of requests waiting for their response */
	__u32 qh, qt;
	struct got m[MAX_GOT];
	__u32 n, lost;
	__u32 garbage;   /* syscalls that ended on garbage (AION_CNT_PARSE_GIVEUP) */
	__u32 exhausted; /* syscalls that ran out of rounds with bytes left */
	__u32 stalled;   /* scans that stopped inside the window for no reason */
};

static struct sim *sim_new(int request)
{
	struct sim *m = calloc(1, sizeof(*m));

	SIM_ASSERT(m != NULL);
	m->request = request;
	return m;
}

static void sim_expect_method(struct sim *m, __u8 method)
{
	m->q[m->qt++ & 255] = method;
}

/* Stale scratch bytes that would frame messages if read past len. */
static void poison(struct aion_http_scan *s)
{
	static const char pat[] = "\r\nContent-Length: 7\r\n\r\nGET /x HTTP/1.1\r\n"
				  "HTTP/1.1 200 OK\r\n0\r\n\r\n";
	size_t i;

	for (i = 0; i < sizeof(s->buf); i++)
		s->buf[i] = pat[i % (sizeof(pat) - 1)];
}

/* copy_segs() for one segment of n bytes. */
static __u32 copy_seg(__u8 *buf, __u32 dst, const __u8 *data, __u64 n, __u64 skip)
{
	__u64 c;

	if (dst >= AION_WINDOW || skip >= n)
		return 0;
	c = n - skip;
	if (c > AION_WINDOW - dst)
		c = AION_WINDOW - dst;
	memcpy(buf + dst, data + skip, c);
	return (__u32)c;
}

/* drain_mark() */
static void sim_drain(struct sim *m)
{
	struct aion_http_scan *s = &m->s;
	__u32 i, off, pl;

	SIM_ASSERT(s->nmarks <= AION_MAX_MARKS);
	for (i = 0; i < s->nmarks; i++) {
		struct aion_http_mark *k = &s->marks[i];
		struct got *g;

		SIM_ASSERT(k->kind == AION_MARK_START || k->kind == AION_MARK_END ||
			   (k->kind == AION_MARK_HOST && m->request && m->want_host));
		if (m->n >= MAX_GOT) {
			m->lost++;
			continue;
		}
		g = &m->m[m->n++];
		memset(g, 0, sizeof(*g));
		g->kind = k->kind;
		g->method = k->method;
		g->status = k->status;
		g->body = k->body;
		if (k->kind == AION_MARK_HOST) {
			off = k->path_off;
			SIM_ASSERT(k->pad >= 1 && k->pad <= AION_PATH_MAX && off + k->pad <= s->len);
			g->path_len = k->pad;
			memcpy(g->path, s->buf + off, g->path_len);
		} else if (m->request && k->kind == AION_MARK_START) {
			off = k->path_off;
			SIM_ASSERT(off <= s->len);
			pl = off < s->len ? s->len - off : 0;
			g->path_len = pl > AION_PATH_MAX ? AION_PATH_MAX : pl;
			memcpy(g->path, s->buf + off, g->path_len);
			m->q[m->qt++ & 255] = k->method;
		} else if (!m->request && k->kind == AION_MARK_END && m->qh != m->qt) {
			m->qh++;
		}
	}
}

/* on_data(): one syscall of ret bytes; data NULL for sendfile (nothing copied). */
static void sim_data(struct sim *m, const __u8 *data, __u64 ret)
{
	struct aion_http_scan *s = &m->s;
	__u64 n = data ? ret : 0, base = 0;
	__u32 carry = m->carry_len, round;

	if (carry > AION_CARRY)
		carry = AION_CARRY;
	poison(s);
	if (carry)
		memcpy(s->buf, m->carry, AION_CARRY);
	s->request = m->request;
	s->want_host = m->want_host;
	s->f = m->fr;
	s->len = carry + copy_seg(s->buf, carry, data, n, 0);
	s->total = (__u32)(carry + ret);
	s->pos = 0;
	for (round = 0; round < AION_ROUNDS; round++) {
		{ /* head_mask(): bit j for the j-th waiting request */
			__u32 j;

			s->head_req = 0;
			for (j = 0; j < 8 && m->qh + j != m->qt; j++)
				if (m->q[(m->qh + j) & 255] == AION_METHOD_HEAD)
					s->head_req |= 1 << j;
		}
		s->garbage = 0;
		s->partial = 0;
		aion_http_scan(s);
		SIM_ASSERT(s->pos <= s->total);
		sim_drain(m);
		if (s->full)
			continue;
		if (s->garbage || s->partial || s->pos >= s->total)
			break;
		base += s->pos;
		if (base < carry)
			break;
		s->total -= s->pos;
		s->pos = 0;
		s->len = copy_seg(s->buf, 0, data, n, base - carry);
		if (!s->len)
			break;
	}
	if (round == AION_ROUNDS && s->pos < s->total) {
		/* Out of rounds inside the syscall: the framing is lost. */
		m->exhausted++;
		s->f.state = AION_HF_OPAQUE;
		s->garbage = 1;
	}
	if (s->garbage)
		m->garbage++;
	if (s->partial && s->pos < s->len && s->len - s->pos < AION_CARRY) {
		memcpy(m->carry, s->buf + s->pos, AION_CARRY);
		m->carry_len = s->len - s->pos;
	} else {
		m->carry_len = 0;
	}
	m->fr = s->f;
}

#endif /* AION_HTTP_SIM_H */
