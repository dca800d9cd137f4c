/* SPDX-License-Identifier: MIT */
/* HTTP/1.x message framing, shared by the BPF programs and the host tests.
 *
 * One parser, two compilers: everything here is bounded C over a window that
 * was already copied out of the traced process. The caller keeps a
 * struct aion_http_frame per direction of a connection, copies up to
 * AION_WINDOW bytes of a syscall's data into a scratch buffer of AION_SCRATCH
 * bytes, and runs aion_http_scan(). The scan walks message by message:
 *
 *   request:   METHOD SP target SP HTTP/1.x CRLF      response: HTTP/1.x SP ddd SP reason CRLF
 *              *(header CRLF)                                   *(header CRLF)
 *              CRLF                                             CRLF
 *              body (Content-Length | chunked | none)          body (Content-Length | chunked |
 *                                                                     none for HEAD/1xx/204/304 |
 *                                                                     until close)
 *
 * and leaves marks: a message started at offset X (method, target, status),
 * a message ended at offset Y. Bodies are skipped arithmetically, so a
 * message may end beyond the copied window: the frame carries what is left
 * into the next syscall. Headers are searched a word (8 bytes) at a time for
 * '\n', and only line starts are compared with the two headers that frame a
 * message (Content-Length, Transfer-Encoding).
 *
 * In BPF the step runs under bpf_loop(), so the verifier sees one step, not
 * the product of every loop bound.
 */
#ifndef AION_HTTP_H
#define AION_HTTP_H

#include "abi.h"

#ifndef __always_inline
#define __always_inline inline __attribute__((always_inline))
#endif

#define AION_SCRATCH     2048 /* scratch buffer size: window + slack, power of 2 */
#define AION_MAX_MARKS   8    /* marks one scan can leave before it must be drained */
#define AION_SCAN_STEPS  192  /* steps per window: 128 words + lines + messages */
#define AION_CARRY       80   /* start-line bytes carried to the next syscall */
#define AION_ROUNDS      16   /* scans per syscall: windows, or drains of full marks;
			       * a header block must end within this many windows */

/* Any byte of the scratch buffer; callers compare positions with len first. */
#define AION_B(s, i) ((s)->buf[(i) & (AION_SCRATCH - 1)])

enum aion_hf_state {
	AION_HF_START = 0,   /* expecting a start line */
	AION_HF_HEADERS,     /* inside the header block */
	AION_HF_BODY,        /* skipping `left` bytes of body */
	AION_HF_CHUNK_SIZE,  /* expecting a chunk-size line */
	AION_HF_CHUNK_DATA,  /* skipping `left` bytes of chunk data + CRLF */
	AION_HF_UNTIL_CLOSE, /* response body delimited by connection close */
	AION_HF_OPAQUE,      /* lost the framing: resynchronise on a start line */
	AION_HF_LINE,        /* at the start of a header line not examined yet */
	AION_HF_TRAILER,     /* after the last chunk: expecting the final CRLF */
};

/* Per-direction framing state; lives in the connection table. */
struct aion_http_frame {
	__u64 left;      /* body / chunk bytes still to come */
	__u64 clen;      /* body bytes of the current message: Content-Length,
			  * chunk sizes so far, or bytes so far until close */
	__u8  state;     /* enum aion_hf_state */
	__u8  chunked;
	__u8  has_clen;
	__u8  no_body;   /* response to HEAD, or 1xx/204/304 */
	__u16 status;    /* status of the current response */
	__u8  interim;   /* current response is 1xx: it does not end the request */
	__u8  open;      /* a START was marked and its END not yet */
};

enum aion_mark_kind {
	AION_MARK_START = 1,
	AION_MARK_END   = 2,
	AION_MARK_HOST  = 4, /* request's Host value: path_off, pad = length */
};

struct aion_http_mark {
	__u8  kind;     /* enum aion_mark_kind */
	__u8  method;   /* START of a request: enum aion_http_method */
	__u16 status;   /* START of a response */
	__u16 path_off; /* START of a request: window offset of the target */
	__u16 pad;
	__u64 body;     /* END: body bytes of the message (Content-Length, the
			 * chunk sizes summed, or bytes until close) */
};

/* The scan lives in a per-CPU map value on the BPF side, not on the stack:
 * values loaded from a map are not tracked precisely, so the verifier sees
 * every bpf_loop() step alike and converges at once. */
struct aion_http_scan {
	__u32 len;         /* valid bytes in the window */
	__u32 total;       /* bytes of the syscall from the window start (>= len) */
	__u32 pos;         /* window offset the scan has reached */
	__u8  request;     /* 1: parse requests, 0: parse responses */
	__u8  head_req;    /* bit i: the i-th response from pos answers a HEAD */
	__u8  nmarks;
	__u8  full;        /* stopped because marks are full */
	__u8  garbage;     /* stopped on bytes that are not HTTP */
	__u8  partial;     /* stopped on an incomplete start line at the end */
	__u8  want_host;   /* requests: mark the Host header's value (clients) */
	__u8  pad;
	struct aion_http_frame f;
	struct aion_http_mark marks[AION_MAX_MARKS];
	__u8  buf[AION_SCRATCH] __attribute__((aligned(8))); /* the window: [0, len) valid */
};

#ifdef __clang__
#define AION_UNROLL _Pragma("unroll")
#else
#define AION_UNROLL
#endif

#if defined(AION_LOOP)
/* the includer drives the steps itself (tests count them) */
#elif defined(__bpf__)
#define AION_LOOP(n, cb, ctx) bpf_loop((n), (cb), (ctx), 0)
#else
#define AION_LOOP(n, cb, ctx)                                  \
	do {                                                   \
		__u32 aion_i_;                                 \
		for (aion_i_ = 0; aion_i_ < (n); aion_i_++)     \
			if ((cb)(aion_i_, (ctx)))              \
				break;                         \
	} while (0)
#endif

static __always_inline int aion_lit(const struct aion_http_scan *s, __u32 p,
				    const char *lit, __u32 n)
{
	__u32 i;

	if (p + n > s->len)
		return 0;
AION_UNROLL
	for (i = 0; i < 18; i++) {
		if (i >= n)
			break;
		if (AION_B(s, p + i) != (__u8)lit[i])
			return 0;
	}
	return 1;
}

/* Case-insensitive: lit is lower case; |0x20 folds letters, keeps '-' ':'. */
static __always_inline int aion_lit_ci(const struct aion_http_scan *s, __u32 p,
				       const char *lit, __u32 n)
{
	__u32 i;

	if (p + n > s->len)
		return 0;
AION_UNROLL
	for (i = 0; i < 18; i++) {
		if (i >= n)
			break;
		if ((AION_B(s, p + i) | 0x20) != (__u8)lit[i])
			return 0;
	}
	return 1;
}

/* Request line: returns the method and sets *path_off, 0 if not a request.
 * Sets *more when the bytes so far are a prefix of a method. */
static __always_inline __u8 aion_http_method(const struct aion_http_scan *s, __u32 p,
					     __u32 *path_off)
{
	__u8 c = p < s->len ? AION_B(s, p) : 0;

	switch (c) {
	case 'G':
		if (aion_lit(s, p, "GET ", 4)) { *path_off = p + 4; return AION_METHOD_GET; }
		break;
	case 'H':
		if (aion_lit(s, p, "HEAD ", 5)) { *path_off = p + 5; return AION_METHOD_HEAD; }
		break;
	case 'P':
		if (aion_lit(s, p, "POST ", 5)) { *path_off = p + 5; return AION_METHOD_POST; }
		if (aion_lit(s, p, "PUT ", 4)) { *path_off = p + 4; return AION_METHOD_PUT; }
		if (aion_lit(s, p, "PATCH ", 6)) { *path_off = p + 6; return AION_METHOD_PATCH; }
		break;
	case 'D':
		if (aion_lit(s, p, "DELETE ", 7)) { *path_off = p + 7; return AION_METHOD_DELETE; }
		break;
	case 'O':
		if (aion_lit(s, p, "OPTIONS ", 8)) { *path_off = p + 8; return AION_METHOD_OPTIONS; }
		break;
	case 'C':
		if (aion_lit(s, p, "CONNECT ", 8)) { *path_off = p + 8; return AION_METHOD_CONNECT; }
		break;
	case 'T':
		if (aion_lit(s, p, "TRACE ", 6)) { *path_off = p + 6; return AION_METHOD_TRACE; }
		break;
	}
	return AION_METHOD_UNKNOWN;
}

/* Could the bytes [p, len) still become a start line? (for carrying) */
static __always_inline int aion_http_start_prefix(const struct aion_http_scan *s, __u32 p)
{
	__u8 c;

	if (p >= s->len)
		return 0;
	c = AION_B(s, p);
	if (!s->request)
		return c == 'H';
	return c == 'G' || c == 'H' || c == 'P' || c == 'D' || c == 'O' || c == 'C' || c == 'T';
}

/* Response status line "HTTP/1.x ddd": the status, 0 if not one. */
static __always_inline __u16 aion_http_status(const struct aion_http_scan *s, __u32 p)
{
	__u8 a, b, c, t;

	if (!aion_lit(s, p, "HTTP/1.", 7) || p + 13 > s->len)
		return 0;
	if (AION_B(s, p + 7) != '0' && AION_B(s, p + 7) != '1')
		return 0;
	if (AION_B(s, p + 8) != ' ')
		return 0;
	a = AION_B(s, p + 9);
	b = AION_B(s, p + 10);
	c = AION_B(s, p + 11);
	t = AION_B(s, p + 12);
	if (a < '1' || a > '5' || b < '0' || b > '9' || c < '0' || c > '9')
		return 0;
	if (t != ' ' && t != '\r' && t != '\n')
		return 0;
	return (__u16)((a - '0') * 100 + (b - '0') * 10 + (c - '0'));
}

/* Decimal value after "name:" and optional blanks; -1 when none. */
static __always_inline __s64 aion_http_decimal(const struct aion_http_scan *s, __u32 p)
{
	__s64 v = 0;
	__u32 i, digits = 0;
	__u8 c;

AION_UNROLL
	for (i = 0; i < 4; i++) {
		c = p < s->len ? AION_B(s, p) : 0;
		if (c != ' ' && c != '\t')
			break;
		p++;
	}
AION_UNROLL
	for (i = 0; i < 15; i++) {
		c = p < s->len ? AION_B(s, p) : 0;
		if (c < '0' || c > '9')
			break;
		v = v * 10 + (c - '0');
		digits++;
		p++;
	}
	return digits ? v : -1;
}

/* Does the request target starting at p end inside the window? */
static __always_inline int aion_http_target_end(const struct aion_http_scan *s, __u32 p)
{
	__u32 i;
	__u8 c;

	for (i = 0; i < AION_PATH_MAX; i++) {
		if (p + i >= s->len)
			return 0;
		c = AION_B(s, p + i);
		if (c == ' ' || c == '\r' || c == '\n')
			return 1;
	}
	return 1;
}

static __always_inline void aion_http_mark(struct aion_http_scan *s, __u8 kind, __u8 method,
					   __u16 status, __u32 path_off, __u64 body)
{
	__u8 n = s->nmarks;

	if (n >= AION_MAX_MARKS)
		return;
	s->marks[n & (AION_MAX_MARKS - 1)].kind = kind;
	s->marks[n & (AION_MAX_MARKS - 1)].method = method;
	s->marks[n & (AION_MAX_MARKS - 1)].status = status;
	s->marks[n & (AION_MAX_MARKS - 1)].path_off = (__u16)path_off;
	s->marks[n & (AION_MAX_MARKS - 1)].body = body;
	s->nmarks = n + 1;
	if (n + 1 >= AION_MAX_MARKS)
		s->full = 1;
}

static __always_inline void aion_http_end(struct aion_http_scan *s)
{
	struct aion_http_frame *f = &s->f;

	if (f->open) {
		aion_http_mark(s, AION_MARK_END, 0, f->status, 0,
			       (f->has_clen || f->chunked || f->state == AION_HF_UNTIL_CLOSE) &&
					       !f->no_body ? f->clen : 0);
		if (!s->request)
			s->head_req >>= 1; /* the next response answers the next request */
	}
	f->open = 0;
	f->state = AION_HF_START;
	f->interim = 0;
}

/* Header block finished at window offset p: decide how the body is framed. */
static __always_inline void aion_http_headers_done(struct aion_http_scan *s, __u32 p)
{
	struct aion_http_frame *f = &s->f;

	s->pos = p;
	if (!s->request && f->no_body) {
		aion_http_end(s);
	} else if (f->chunked) {
		f->clen = 0; /* from here: the chunk sizes summed */
		f->state = AION_HF_CHUNK_SIZE;
	} else if (f->has_clen) {
		if (f->clen == 0) {
			aion_http_end(s);
		} else {
			f->left = f->clen;
			f->state = AION_HF_BODY;
		}
	} else if (s->request) {
		aion_http_end(s); /* a request without length has no body */
	} else {
		f->clen = 0; /* from here: the bytes until close */
		f->state = AION_HF_UNTIL_CLOSE;
	}
}

/* Are the bytes [p, len) a case-insensitive prefix of lit? */
static __always_inline int aion_prefix_ci(const struct aion_http_scan *s, __u32 p,
					  const char *lit, __u32 n)
{
	__u32 i;

AION_UNROLL
	for (i = 0; i < 18; i++) {
		if (i >= n || p + i >= s->len)
			break;
		if ((AION_B(s, p + i) | 0x20) != (__u8)lit[i])
			return 0;
	}
	return 1;
}

/* The element that starts at p (a line) is cut by the end of the window:
 * stop at p in state st. At the end of the syscall the caller carries the
 * bytes (partial) when they are few enough, else it is parsed as it is (0);
 * inside a larger syscall the caller loads the next window from p. */
static __always_inline int aion_http_cut(struct aion_http_scan *s, __u32 p, __u8 st)
{
	if (s->total == s->len) {
		if (s->len - p >= AION_CARRY)
			return 0;
		s->partial = 1;
	}
	s->pos = p;
	s->f.state = st;
	return 1;
}

static __always_inline long aion_http_step_start(struct aion_http_scan *s)
{
	struct aion_http_frame *f = &s->f;
	__u32 p = s->pos, path_off = 0;
	__u8 method;
	__u16 status;

	if (p >= s->len)
		return 1;
	f->has_clen = 0;
	f->clen = 0;
	f->chunked = 0;
	f->no_body = 0;
	f->interim = 0;
	f->status = 0;
	if (s->request) {
		method = aion_http_method(s, p, &path_off);
		if (method == AION_METHOD_UNKNOWN)
			goto not_start;
		/* The target must be whole (or AION_PATH_MAX long) before the
		 * request is taken: a client that writes a byte at a time
		 * has its start line carried until it is. */
		if (path_off + AION_PATH_MAX > s->len && !aion_http_target_end(s, path_off) &&
		    aion_http_cut(s, p, AION_HF_START))
			return 1;
		aion_http_mark(s, AION_MARK_START, method, 0, path_off, 0);
		f->open = 1;
		s->pos = path_off;
	} else {
		status = aion_http_status(s, p);
		if (!status)
			goto not_start;
		f->status = status;
		f->interim = status < 200;
		f->no_body = status < 200 || status == 204 || status == 304 || (s->head_req & 1);
		if (!f->interim) {
			aion_http_mark(s, AION_MARK_START, 0, status, 0, 0);
			f->open = 1;
		}
		s->pos = p + 12;
	}
	f->state = AION_HF_HEADERS;
	return 0;
not_start:
	/* Too short to tell, at the end of the window: carry it at the end of
	 * the syscall, else read on in the next window. */
	if (s->len - p < 13 && aion_http_start_prefix(s, p) &&
	    aion_http_cut(s, p, AION_HF_START))
		return 1;
	s->garbage = 1;
	f->state = AION_HF_OPAQUE;
	return 1;
}

/* Does the value after "name:" run into the end of the window? */
static __always_inline int aion_http_value_cut(const struct aion_http_scan *s, __u32 p)
{
	__u32 i;
	__u8 c;

AION_UNROLL
	for (i = 0; i < 20; i++) {
		if (p >= s->len)
			return 1;
		c = AION_B(s, p);
		if (c != ' ' && c != '\t' && (c < '0' || c > '9'))
			return 0;
		p++;
	}
	return 0;
}

#define AION_ONES  0x0101010101010101ULL
#define AION_HIGHS 0x8080808080808080ULL
#define AION_NLS   0x0a0a0a0a0a0a0a0aULL

/* Index (0..7) of the lowest byte flagged in m (only 0x80 bits set): with
 * b = that byte's 0x80 bit shifted down to 0x01, b * ONES has ones in bytes
 * index..7, and multiplying by ONES again sums them into the top byte. */
static __always_inline __u32 aion_first_byte(__u64 m)
{
	__u64 b = (m & -m) >> 7;

	return 8 - (__u32)(((b * AION_ONES) * AION_ONES) >> 56);
}

#define AION_NO_NL 0xffffffffu

/* The first '\n' at or after p, looked for a word at a time in the 4
 * aligned words from p's: its offset, or AION_NO_NL with *next where to
 * look next. The lowest byte the zero-byte trick flags is always a real
 * match (a borrow only runs upwards from one). Assumes a little-endian
 * machine, as x86-64 and arm64 are. */
static __always_inline __u32 aion_find_nl(const struct aion_http_scan *s, __u32 p, __u32 *next)
{
	__u32 a = p & ~7u, j, o, q;
	__u64 w, x, m;

AION_UNROLL
	for (j = 0; j < 4; j++) {
		o = a + j * 8;
		if (o >= s->len)
			break;
		w = *(const __u64 *)&s->buf[o & (AION_SCRATCH / 2 - 1) & ~7u];
		if (j == 0) /* bytes before p become 0xff: no match, no borrow */
			w |= (1ULL << ((p & 7) * 8)) - 1;
		x = w ^ AION_NLS;
		m = (x - AION_ONES) & ~x & AION_HIGHS;
		if (!m)
			continue;
		q = o + aion_first_byte(m);
		if (q >= s->len)
			break;
		return q;
	}
	*next = a + 32 < s->len ? a + 32 : s->len;
	return AION_NO_NL;
}

/* The first '\n' in the 8 aligned words from p's (57 to 64 bytes): its
 * offset, or AION_NO_NL with *end set when the window ends before. */
static __always_inline __u32 aion_find_nl2(const struct aion_http_scan *s, __u32 p, int *end)
{
	__u32 q, next = 0;

	q = aion_find_nl(s, p, &next);
	if (q == AION_NO_NL && next < s->len)
		q = aion_find_nl(s, next, &next);
	*end = q == AION_NO_NL && next >= s->len;
	return q;
}

/* Handle the line that starts at window offset ls (just after a '\n'). */
static __always_inline long aion_http_step_line(struct aion_http_scan *s, __u32 ls)
{
	struct aion_http_frame *f = &s->f;
	__u8 c;
	__s64 v;

	if (ls >= s->len) {
		/* The line starts with the next window or syscall. */
		s->pos = ls;
		f->state = AION_HF_LINE;
		return 1;
	}
	c = AION_B(s, ls);
	if (c == '\r' && ls + 1 >= s->len && aion_http_cut(s, ls, AION_HF_LINE))
		return 1;
	if ((c | 0x20) == 'c' && ls + 15 > s->len && aion_prefix_ci(s, ls, "content-length:", 15) &&
	    aion_http_cut(s, ls, AION_HF_LINE))
		return 1;
	if ((c | 0x20) == 't' && ls + 18 > s->len && aion_prefix_ci(s, ls, "transfer-encoding:", 18) &&
	    aion_http_cut(s, ls, AION_HF_LINE))
		return 1;
	if ((c | 0x20) == 'h' && s->want_host && ls + 5 > s->len && aion_prefix_ci(s, ls, "host:", 5) &&
	    aion_http_cut(s, ls, AION_HF_LINE))
		return 1;
	if (c == '\r' && ls + 1 < s->len && AION_B(s, ls + 1) == '\n') {
		aion_http_headers_done(s, ls + 2);
		return 0;
	}
	if (c == '\n') {
		aion_http_headers_done(s, ls + 1);
		return 0;
	}
	if ((c | 0x20) == 'c' && aion_lit_ci(s, ls, "content-length:", 15)) {
		v = aion_http_decimal(s, ls + 15);
		if (aion_http_value_cut(s, ls + 15) && aion_http_cut(s, ls, AION_HF_LINE))
			return 1;
		if (v >= 0) {
			f->clen = (__u64)v;
			f->has_clen = 1;
		}
	} else if ((c | 0x20) == 'h' && s->want_host && aion_lit_ci(s, ls, "host:", 5)) {
		__u32 q = ls + 5, i, n = 0, e;
		int end = 0;

AION_UNROLL
		for (i = 0; i < 4; i++) {
			if (q < s->len && (AION_B(s, q) == ' ' || AION_B(s, q) == '\t'))
				q++;
		}
		/* The value up to the end of the line (CR, blanks after it
		 * dropped); not marked when the line is longer than we look. */
		e = aion_find_nl2(s, q, &end);
		if (end && aion_http_cut(s, ls, AION_HF_LINE))
			return 1;
		if (e != AION_NO_NL && e > q) {
			n = e - q;
AION_UNROLL
			for (i = 0; i < 4; i++) {
				__u8 h = AION_B(s, q + n - 1);

				if (n && (h == '\r' || h == ' ' || h == '\t'))
					n--;
			}
			if (n > AION_PATH_MAX)
				n = AION_PATH_MAX;
		}
		if (n && f->open && s->nmarks < AION_MAX_MARKS) {
			aion_http_mark(s, AION_MARK_HOST, 0, 0, q, 0);
			s->marks[(s->nmarks - 1) & (AION_MAX_MARKS - 1)].pad = (__u16)n;
		}
	} else if ((c | 0x20) == 't' && aion_lit_ci(s, ls, "transfer-encoding:", 18)) {
		__u32 q = ls + 18;
		__u32 i;

AION_UNROLL
		for (i = 0; i < 4; i++) {
			if (q < s->len && (AION_B(s, q) == ' ' || AION_B(s, q) == '\t'))
				q++;
		}
		if (q + 7 > s->len && aion_prefix_ci(s, q, "chunked", 7) &&
		    aion_http_cut(s, ls, AION_HF_LINE))
			return 1;
		if (aion_lit_ci(s, q, "chunked", 7))
			f->chunked = 1;
	}
	s->pos = ls;
	return 0;
}

/* Inside the header block: find the next '\n', up to 4 words per step. */
static __always_inline long aion_http_step_headers(struct aion_http_scan *s)
{
	__u32 p = s->pos, q, next = 0;

	if (p >= s->len)
		return 1; /* headers continue in the next syscall */
	q = aion_find_nl(s, p, &next);
	if (q != AION_NO_NL)
		return aion_http_step_line(s, q + 1);
	s->pos = next;
	return 0;
}

/* Skip body bytes; true when the current body (or chunk) is complete. */
static __always_inline int aion_http_skip(struct aion_http_scan *s)
{
	struct aion_http_frame *f = &s->f;
	__u32 avail = s->total > s->pos ? s->total - s->pos : 0;

	if (f->left <= avail) {
		s->pos += (__u32)f->left;
		f->left = 0;
		return 1;
	}
	f->left -= avail;
	s->pos = s->total;
	return 0;
}

/* "hex[;ext]CRLF": a chunk-size line. Extensions (up to 56 bytes, as far
 * as aion_find_nl2 looks) are skipped to the end of the line. */
static __always_inline long aion_http_step_chunk_size(struct aion_http_scan *s)
{
	struct aion_http_frame *f = &s->f;
	__u32 p = s->pos, i, digits = 0;
	__u64 v = 0;
	__u8 c;

	if (p >= s->len)
		return 1;
	for (i = 0; i < 10; i++) {
		c = p < s->len ? AION_B(s, p) : 0;
		if (c >= '0' && c <= '9')
			v = (v << 4) | (c - '0');
		else if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f')
			v = (v << 4) | ((c | 0x20) - 'a' + 10);
		else
			break;
		digits++;
		p++;
	}
	/* Hex digits, maybe a CR, then the end of the window: cut. */
	if (digits && digits < 10 && (p >= s->len || (p + 1 == s->len && AION_B(s, p) == '\r')) &&
	    aion_http_cut(s, s->pos, AION_HF_CHUNK_SIZE))
		return 1;
	c = p < s->len ? AION_B(s, p) : 0;
	if (digits && digits < 10 && (c == ';' || c == ' ' || c == '\t')) {
		/* Extensions: to the end of the line. */
		int end = 0;
		__u32 q = aion_find_nl2(s, p, &end);

		if (q != AION_NO_NL) {
			p = q + 1;
			goto sized;
		}
		if (end && aion_http_cut(s, s->pos, AION_HF_CHUNK_SIZE))
			return 1;
		digits = 0; /* too long: lose the framing */
	}
	if (!digits || p + 2 > s->len || AION_B(s, p) != '\r' || AION_B(s, p + 1) != '\n') {
		f->state = AION_HF_OPAQUE;
		s->garbage = 1;
		return 1;
	}
	p += 2;
sized:
	s->pos = p;
	if (v == 0) {
		/* Last chunk: the message ends here; the empty trailer
		 * section (one CRLF) may come with the next syscall. */
		aion_http_end(s);
		f->state = AION_HF_TRAILER;
		f->left = 0;
		return 0;
	}
	f->left = v + 2;
	f->clen += v;
	f->state = AION_HF_CHUNK_DATA;
	return 0;
}

/* After the last chunk: trailer fields, each skipped to the end of its
 * line, up to the CRLF that ends the section. A start line there means the
 * peer left the section out: it is the next message. */
static __always_inline long aion_http_step_trailer(struct aion_http_scan *s)
{
	__u32 p = s->pos, q, next = 0, po = 0;
	__u8 c;

	if (p >= s->len)
		return 1;
	c = AION_B(s, p);
	if (!s->f.left && c == '\r' && p + 1 >= s->len && aion_http_cut(s, p, AION_HF_TRAILER))
		return 1;
	if (!s->f.left && c == '\r' && p + 1 < s->len && AION_B(s, p + 1) == '\n') {
		s->pos = p + 2;
	} else if (!s->f.left && c == '\n') {
		s->pos = p + 1;
	} else if (s->f.left || (!aion_http_status(s, p) && !(s->request && aion_http_method(s, p, &po)))) {
		/* A trailer field (or the rest of one the window cut): skip
		 * its line; left notes a line that goes on past the window. */
		q = aion_find_nl(s, p, &next);
		s->f.left = q == AION_NO_NL;
		s->pos = q != AION_NO_NL ? q + 1 : next;
		return 0;
	}
	s->f.state = AION_HF_START;
	return 0;
}

/* One step of the scan: bpf_loop callback on the BPF side. */
static long aion_http_step(__u32 i, void *ctx)
{
	struct aion_http_scan *s = *(struct aion_http_scan **)ctx;

	(void)i;
	if (s->full || s->pos >= s->total)
		return 1;
	switch (s->f.state) {
	case AION_HF_START:
		return aion_http_step_start(s);
	case AION_HF_HEADERS:
		return aion_http_step_headers(s);
	case AION_HF_LINE:
		s->f.state = AION_HF_HEADERS;
		return aion_http_step_line(s, s->pos);
	case AION_HF_TRAILER:
		return aion_http_step_trailer(s);
	case AION_HF_BODY:
		if (aion_http_skip(s))
			aion_http_end(s);
		return 0;
	case AION_HF_CHUNK_SIZE:
		return aion_http_step_chunk_size(s);
	case AION_HF_CHUNK_DATA:
		if (aion_http_skip(s))
			s->f.state = AION_HF_CHUNK_SIZE;
		return 0;
	default: /* AION_HF_OPAQUE, AION_HF_UNTIL_CLOSE */
		/* Resynchronise only where a syscall starts with a start line:
		 * whatever was open ended before it. */
		if (s->pos == 0) {
			__u32 po = 0;

			if ((s->request && aion_http_method(s, 0, &po)) ||
			    (!s->request && aion_http_status(s, 0))) {
				aion_http_end(s);
				return 0;
			}
		}
		if (s->f.state == AION_HF_UNTIL_CLOSE)
			s->f.clen += s->total - s->pos;
		s->pos = s->total;
		return 1;
	}
}

/* Scan [pos, len) of the window, leaving marks; resumes where the previous
 * syscall left the frame. Stops when marks are full (drain and call again),
 * at the end of the window, or on garbage. */
static __always_inline void aion_http_scan(struct aion_http_scan *s)
{
	struct aion_http_scan *sp = s;

	s->nmarks = 0;
	s->full = 0;
	AION_LOOP(AION_SCAN_STEPS, aion_http_step, &sp);
}

#endif /* AION_HTTP_H */
