/* SPDX-License-Identifier: MIT */
/* Database wire protocols: PostgreSQL (v3), MySQL/MariaDB (client/server
 * protocol) and Redis (RESP2/RESP3), framed over the same window and scan
 * struct as HTTP (http.h), shared by the BPF programs and the host tests.
 *
 * The scan walks messages and leaves marks, as for HTTP:
 *   START  an operation was sent: method = enum aion_db_op, path_off/pad =
 *          window offset/length of its text (SQL, command name), body =
 *          statement (PG name hash, MySQL statement id) or command byte;
 *   END    a response completed one operation (PG ReadyForQuery: every
 *          operation up to the Sync, method = AION_DBEND_SYNC); status =
 *          error (PG SQLSTATE class, MySQL error number, Redis 1 with the
 *          prefix at path_off/pad); body = MySQL statement id of a
 *          PREPARE_OK;
 *   STMT   PG Parse: statement body (name hash) has text path_off/pad.
 * Payloads are skipped by their length, never copied: a message may end in
 * a later window or syscall, and a header cut by the end of a syscall is
 * carried (aion_http_cut) like an HTTP start line.
 */
#ifndef AION_DB_H
#define AION_DB_H

#include "http.h"

#define AION_MARK_STMT 3

enum aion_dbend {
	AION_DBEND_ONE  = 0, /* completes the oldest operation */
	AION_DBEND_SYNC = 1, /* PG ReadyForQuery: completes through the next Sync / the Query */
};

/* Per-direction state of a database connection: same size and place as
 * struct aion_http_frame (the connection holds one or the other). */
struct aion_db_frame {
	__u64 left;   /* payload bytes still to skip */
	__u64 aux;    /* Redis: elements still to come; MySQL: packets; PG request: bound statement */
	__u8  state;
	__u8  sub;    /* state after the payload is skipped */
	__u8  flags;
	__u8  pad;
	__u16 code;   /* PG: error class seen since the last ReadyForQuery */
	__u8  pad2;
	__u8  open;
};
_Static_assert(sizeof(struct aion_db_frame) == sizeof(struct aion_http_frame), "db frame size");

#define AION_DBF(s) ((struct aion_db_frame *)&(s)->f)

/* FNV-1a of the empty name: PostgreSQL's unnamed statement. */
#define AION_PG_UNNAMED 0x811c9dc5u

static __always_inline __u32 aion_be32(const struct aion_http_scan *s, __u32 p)
{
	return ((__u32)AION_B(s, p) << 24) | ((__u32)AION_B(s, p + 1) << 16) |
	       ((__u32)AION_B(s, p + 2) << 8) | AION_B(s, p + 3);
}

static __always_inline __u32 aion_le24(const struct aion_http_scan *s, __u32 p)
{
	return AION_B(s, p) | ((__u32)AION_B(s, p + 1) << 8) | ((__u32)AION_B(s, p + 2) << 16);
}

static __always_inline __u32 aion_le32(const struct aion_http_scan *s, __u32 p)
{
	return aion_le24(s, p) | ((__u32)AION_B(s, p + 3) << 24);
}

static __always_inline __u16 aion_le16(const struct aion_http_scan *s, __u32 p)
{
	return AION_B(s, p) | ((__u16)AION_B(s, p + 1) << 8);
}

static __always_inline void aion_db_mark(struct aion_http_scan *s, __u8 kind, __u8 method,
					 __u16 status, __u32 off, __u32 tlen, __u64 body)
{
	__u8 n = s->nmarks;

	if (n >= AION_MAX_MARKS)
		return;
	s->marks[n & (AION_MAX_MARKS - 1)].kind = kind;
	s->marks[n & (AION_MAX_MARKS - 1)].method = method;
	s->marks[n & (AION_MAX_MARKS - 1)].status = status;
	s->marks[n & (AION_MAX_MARKS - 1)].path_off = (__u16)off;
	s->marks[n & (AION_MAX_MARKS - 1)].pad = (__u16)(tlen > AION_PATH_MAX ? AION_PATH_MAX : tlen);
	s->marks[n & (AION_MAX_MARKS - 1)].body = body;
	s->nmarks = n + 1;
	if (n + 1 >= AION_MAX_MARKS)
		s->full = 1;
}

/* Text length of an operation at off with at most max bytes in the message. */
static __always_inline __u32 aion_db_tlen(const struct aion_http_scan *s, __u32 off, __u64 max)
{
	__u32 in = off < s->len ? s->len - off : 0;

	if (max > in)
		max = in;
	return max > AION_PATH_MAX ? AION_PATH_MAX : (__u32)max;
}

/* Skip payload bytes; true when the current payload is complete. */
static __always_inline int aion_db_skip(struct aion_http_scan *s)
{
	struct aion_db_frame *f = AION_DBF(s);
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

static __always_inline long aion_db_garbage(struct aion_http_scan *s)
{
	s->garbage = 1;
	AION_DBF(s)->state = 0xff;
	s->pos = s->total;
	return 1;
}

/* need bytes at p do not fit the window: carry them (end of syscall, when
 * they are few) or load the next window from p; 1 when the step must stop
 * there. 0: they fit, or they cannot be had (too many to carry): go on
 * with what is there. */
static __always_inline long aion_db_cut(struct aion_http_scan *s, __u32 p, __u32 need)
{
	if (p + need <= s->len)
		return 0;
	return aion_http_cut(s, p, AION_DBF(s)->state);
}

/* ---- PostgreSQL --------------------------------------------------------- */

enum { PG_INIT = 0, PG_MSG, PG_SKIP };

struct aion_name_ctx {
	const struct aion_http_scan *s;
	__u32 p, h, end;
};

static long aion_name_byte(__u32 i, void *ctx)
{
	struct aion_name_ctx *n = ctx;
	__u8 c;

	if (n->p + i >= n->s->len)
		return 1;
	c = AION_B(n->s, n->p + i);
	if (!c) {
		n->end = n->p + i + 1;
		return 1;
	}
	n->h = (n->h ^ c) * 16777619u;
	return 0;
}

/* FNV-1a of the NUL-terminated name at p (up to 63 bytes); *end gets the
 * offset after its NUL, or 0 when it does not end inside the window. */
static __always_inline __u32 aion_pg_name(const struct aion_http_scan *s, __u32 p, __u32 *end)
{
	struct aion_name_ctx n = { .s = s, .p = p, .h = AION_PG_UNNAMED, .end = 0 };

	AION_LOOP(64, aion_name_byte, &n);
	*end = n.end;
	return n.h;
}

static __always_inline long aion_pg_request(struct aion_http_scan *s)
{
	struct aion_db_frame *f = AION_DBF(s);
	__u32 p = s->pos, plen, e1, e2, h;
	__u8 t;

	if (f->state == PG_INIT) {
		if (aion_db_cut(s, p, 8))
			return 1;
		plen = aion_be32(s, p);
		h = aion_be32(s, p + 4);
		f->state = PG_MSG;
		/* StartupMessage 3.0, SSLRequest, GSSENCRequest, CancelRequest:
		 * no type byte. Anything else: typed messages of an adopted
		 * connection. */
		if ((h == 196608 || h == 80877103 || h == 80877104 || h == 80877102) &&
		    plen >= 8 && plen <= 10000) {
			f->left = plen;
			/* After SSLRequest/GSSENCRequest answered 'N', the
			 * StartupMessage comes, untyped too. */
			f->sub = h == 80877103 || h == 80877104 ? PG_INIT : PG_MSG;
			f->state = PG_SKIP;
		}
		return 0;
	}
	if (aion_db_cut(s, p, 5))
		return 1;
	t = AION_B(s, p);
	plen = aion_be32(s, p + 1);
	if (plen < 4 || plen > (1u << 30))
		return aion_db_garbage(s);
	plen -= 4;
	switch (t) {
	case 'Q':
		/* The text's first bytes must be in the window to be named. */
		if (aion_db_cut(s, p, 5 + (plen < AION_PATH_MAX ? plen : AION_PATH_MAX)))
			return 1;
		aion_db_mark(s, AION_MARK_START, AION_DB_QUERY, 0, p + 5,
			     aion_db_tlen(s, p + 5, plen ? plen - 1 : 0), 0);
		break;
	case 'P':
		/* Parse: statement name, query. Both must be in the window. */
		h = aion_pg_name(s, p + 5, &e1);
		if (!e1 && p + 5 + 64 > s->len && aion_db_cut(s, p, s->len - p + 1))
			return 1;
		if (e1) {
			__u32 ql = plen > e1 - p - 5 ? plen - (e1 - p - 5) - 1 : 0;

			if (aion_db_cut(s, p, e1 - p + (ql < AION_PATH_MAX ? ql : AION_PATH_MAX)))
				return 1;
			/* The query is NUL-terminated; parameter types follow. */
			aion_pg_name(s, e1, &e2);
			if (e2 && e2 - e1 - 1 < ql)
				ql = e2 - e1 - 1;
			aion_db_mark(s, AION_MARK_STMT, 0, 0, e1, aion_db_tlen(s, e1, ql), h);
		}
		break;
	case 'B':
		/* Bind: portal name, statement name. */
		aion_pg_name(s, p + 5, &e1);
		h = e1 ? aion_pg_name(s, e1, &e2) : 0;
		if ((!e1 || !e2) && p + 5 + 128 > s->len && aion_db_cut(s, p, s->len - p + 1))
			return 1;
		if (e1 && e2)
			f->aux = h;
		break;
	case 'E':
		aion_db_mark(s, AION_MARK_START, AION_DB_EXECUTE, 0, 0, 0, f->aux);
		break;
	case 'S':
		aion_db_mark(s, AION_MARK_START, AION_DB_SYNC, 0, 0, 0, 0);
		break;
	}
	s->pos = p + 5;
	f->left = plen;
	f->sub = PG_MSG;
	f->state = PG_SKIP;
	return 0;
}

struct aion_class_ctx {
	const struct aion_http_scan *s;
	__u32 p;
	__u8 at_field;
	__u16 cls;
};

static long aion_class_byte(__u32 i, void *ctx)
{
	struct aion_class_ctx *k = ctx;
	const struct aion_http_scan *s = k->s;
	__u32 q = k->p + i;
	__u8 c;

	if (q + 3 > s->len)
		return 1;
	c = AION_B(s, q);
	if (k->at_field) {
		if (!c)
			return 1; /* the terminator: no 'C' field */
		if (c == 'C') {
			k->cls = (__u16)(AION_B(s, q + 1) << 8 | AION_B(s, q + 2));
			return 1;
		}
		k->at_field = 0;
	} else if (!c) {
		k->at_field = 1;
	}
	return 0;
}

/* SQLSTATE class of the ErrorResponse whose fields start at p: the first
 * two characters of field 'C', as ('2' << 8 | '2'); '??' when not found in
 * the first 256 bytes (it is the third field in practice). */
static __always_inline __u16 aion_pg_class(const struct aion_http_scan *s, __u32 p)
{
	struct aion_class_ctx k = { .s = s, .p = p, .at_field = 1, .cls = '?' << 8 | '?' };

	AION_LOOP(256, aion_class_byte, &k);
	return k.cls;
}

static __always_inline long aion_pg_response(struct aion_http_scan *s)
{
	struct aion_db_frame *f = AION_DBF(s);
	__u32 p = s->pos, plen;
	__u16 cls;
	__u8 t;

	if (p >= s->len)
		return 1;
	t = AION_B(s, p);
	/* The one-byte answer to SSLRequest/GSSENCRequest: the first byte
	 * the server sends, nothing after it in the same write. */
	if ((t == 'N' || t == 'S' || t == 'G') && p + 1 == s->total && f->state == PG_INIT) {
		s->pos = p + 1;
		return 0;
	}
	if (aion_db_cut(s, p, 5))
		return 1;
	plen = aion_be32(s, p + 1);
	if (plen < 4 || plen > (1u << 30))
		return aion_db_garbage(s);
	plen -= 4;
	switch (t) {
	case 'C': /* CommandComplete */
	case 'I': /* EmptyQueryResponse */
	case 's': /* PortalSuspended */
		aion_db_mark(s, AION_MARK_END, AION_DBEND_ONE, 0, 0, 0, 0);
		break;
	case 'E':
		if (p + 5 + 64 > s->len && p + 5 + plen > s->len && aion_db_cut(s, p, s->len - p + 1))
			return 1;
		cls = aion_pg_class(s, p + 5);
		f->code = cls;
		aion_db_mark(s, AION_MARK_END, AION_DBEND_ONE, cls, 0, 0, 0);
		break;
	case 'Z':
		aion_db_mark(s, AION_MARK_END, AION_DBEND_SYNC, f->code, 0, 0, 0);
		f->code = 0;
		break;
	}
	s->pos = p + 5;
	f->left = plen;
	f->sub = PG_MSG;
	f->state = PG_SKIP;
	return 0;
}

/* ---- MySQL / MariaDB ----------------------------------------------------- */

enum { MY_IDLE = 0, MY_SKIP, MY_COLDEFS, MY_AFTER_DEFS, MY_ROWS, MY_PREP_DEFS, MY_PREP_TAIL };

#define AION_MY_MORE_RESULTS 0x0008

static __always_inline long aion_my_request(struct aion_http_scan *s)
{
	struct aion_db_frame *f = AION_DBF(s);
	__u32 p = s->pos, plen;
	__u8 seq, cmd;

	if (f->state == MY_SKIP) {
		if (aion_db_skip(s))
			f->state = MY_IDLE;
		return 0;
	}
	if (aion_db_cut(s, p, 5))
		return 1;
	plen = aion_le24(s, p);
	seq = AION_B(s, p + 3);
	if (seq == 0 && plen >= 1) {
		cmd = AION_B(s, p + 4);
		/* A statement's first bytes must be in the window to be named. */
		if ((cmd == 0x03 || cmd == 0x16) &&
		    aion_db_cut(s, p, 5 + (plen - 1 < AION_PATH_MAX ? plen - 1 : AION_PATH_MAX)))
			return 1;
		switch (cmd) {
		case 0x03: /* COM_QUERY */
			aion_db_mark(s, AION_MARK_START, AION_DB_QUERY, 0, p + 5,
				     aion_db_tlen(s, p + 5, plen - 1), 0);
			break;
		case 0x16: /* COM_STMT_PREPARE */
			aion_db_mark(s, AION_MARK_START, AION_DB_PREPARE, 0, p + 5,
				     aion_db_tlen(s, p + 5, plen - 1), 0);
			break;
		case 0x17: /* COM_STMT_EXECUTE */
			if (aion_db_cut(s, p, 9))
				return 1;
			aion_db_mark(s, AION_MARK_START, AION_DB_EXECUTE, 0, 0, 0, aion_le32(s, p + 5));
			break;
		case 0x0e: /* COM_PING */
			aion_db_mark(s, AION_MARK_START, AION_DB_PING, 0, 0, 0, 0);
			break;
		case 0x01: /* COM_QUIT */
		case 0x18: /* COM_STMT_SEND_LONG_DATA */
		case 0x19: /* COM_STMT_CLOSE: no response to any of these */
			break;
		default:
			aion_db_mark(s, AION_MARK_START, AION_DB_OTHER, 0, 0, 0, cmd);
			break;
		}
	}
	s->pos = p + 4;
	f->left = plen;
	f->state = MY_SKIP;
	return 0;
}

/* Status flags of an OK packet whose payload starts at p (0xfe or 0x00,
 * affected rows, last insert id as length-encoded integers, status). */
static __always_inline __u16 aion_my_ok_status(const struct aion_http_scan *s, __u32 p)
{
	__u32 i;
	__u8 c;

	p++;
	for (i = 0; i < 2; i++) {
		if (p >= s->len)
			return 0;
		c = AION_B(s, p);
		p += c < 0xfb ? 1 : c == 0xfc ? 3 : c == 0xfd ? 4 : 9;
	}
	if (p + 2 > s->len)
		return 0;
	return aion_le16(s, p);
}

/* A result set or OK/EOF ended at the packet at p (payload type t): the
 * operation completes unless more result sets follow. */
static __always_inline void aion_my_end(struct aion_http_scan *s, __u32 p, __u32 plen, __u8 t)
{
	__u16 st = plen == 5 ? aion_le16(s, p + 7) : aion_my_ok_status(s, p + 4);

	if (p + 4 + plen <= s->len && (st & AION_MY_MORE_RESULTS)) {
		AION_DBF(s)->sub = MY_IDLE; /* the next result set follows */
		return;
	}
	aion_db_mark(s, AION_MARK_END, AION_DBEND_ONE, 0, 0, 0, 0);
	AION_DBF(s)->sub = MY_IDLE;
}

static __always_inline long aion_my_response(struct aion_http_scan *s)
{
	struct aion_db_frame *f = AION_DBF(s);
	__u32 p = s->pos, plen;
	__u8 t, seq, st = f->state, eof, eof5;
	__u64 n;

	if (st == MY_SKIP) {
		if (aion_db_skip(s))
			f->state = f->sub;
		return 0;
	}
	if (aion_db_cut(s, p, 5))
		return 1;
	plen = aion_le24(s, p);
	seq = AION_B(s, p + 3);
	t = AION_B(s, p + 4);
	eof = t == 0xfe && plen < 9;
	eof5 = t == 0xfe && plen == 5;
	/* An OK or EOF may say that more result sets follow: read it whole. */
	if ((eof || (t == 0x00 && st == MY_IDLE)) && plen < 64 && aion_db_cut(s, p, 4 + plen))
		return 1;
	f->sub = st;
	switch (st) {
	case MY_IDLE:
		if (t == 0xff) {
			if (aion_db_cut(s, p, 7))
				return 1;
			aion_db_mark(s, AION_MARK_END, AION_DBEND_ONE, aion_le16(s, p + 5), 0, 0, 0);
		} else if ((s->head_req & 2) && t != 0xff) {
			/* COM_FIELD_LIST: column definitions, then EOF. */
			if (eof)
				aion_my_end(s, p, plen, t);
			else
				f->sub = MY_ROWS;
			s->head_req = 0;
		} else if (t == 0x00 && (s->head_req & 1) && plen >= 12) {
			/* PREPARE_OK: statement id, columns, parameters; their
			 * definitions follow. */
			if (aion_db_cut(s, p, 15))
				return 1;
			aion_db_mark(s, AION_MARK_END, AION_DBEND_ONE, 0, 0, 0, aion_le32(s, p + 5));
			s->head_req = 0;
			f->aux = (__u64)aion_le16(s, p + 9) + aion_le16(s, p + 11);
			f->sub = f->aux ? MY_PREP_DEFS : MY_IDLE;
		} else if (t == 0x00 || eof) {
			aion_my_end(s, p, plen, t);
			s->head_req = 0;
		} else if ((t == 0x0a && seq == 0) || t == 0xfb) {
			/* server greeting, LOCAL INFILE request */
		} else {
			/* A result set: the column count, then the definitions.
			 * With MariaDB's metadata cache the count is followed
			 * by a byte that says whether definitions follow. */
			__u32 cs = 1;

			n = t < 0xfb ? t : 0;
			if (t == 0xfc) {
				if (aion_db_cut(s, p, 7))
					return 1;
				n = aion_le16(s, p + 5);
				cs = 3;
			}
			if (plen == cs + 1) {
				if (aion_db_cut(s, p, 4 + cs + 1))
					return 1;
				if (!AION_B(s, p + 4 + cs))
					n = 0; /* cached: no definitions */
			}
			f->aux = n;
			f->sub = n ? MY_COLDEFS : MY_AFTER_DEFS;
			s->head_req = 0;
		}
		break;
	case MY_COLDEFS:
		if (f->aux)
			f->aux--;
		f->sub = f->aux ? MY_COLDEFS : MY_AFTER_DEFS;
		break;
	case MY_AFTER_DEFS:
	case MY_ROWS:
		if (st == MY_AFTER_DEFS && eof5) {
			f->sub = MY_ROWS; /* the EOF after the definitions */
		} else if (t == 0xff) {
			if (aion_db_cut(s, p, 7))
				return 1;
			aion_db_mark(s, AION_MARK_END, AION_DBEND_ONE, aion_le16(s, p + 5), 0, 0, 0);
			f->sub = MY_IDLE;
		} else if (eof) {
			aion_my_end(s, p, plen, t);
		} else {
			f->sub = MY_ROWS;
		}
		break;
	case MY_PREP_DEFS:
		if (!eof5 && f->aux)
			f->aux--;
		f->sub = f->aux ? MY_PREP_DEFS : MY_PREP_TAIL;
		break;
	case MY_PREP_TAIL:
		if (!eof5) {
			f->state = MY_IDLE; /* not ours: the next response */
			return 0;
		}
		f->sub = MY_IDLE;
		break;
	default:
		return aion_db_garbage(s);
	}
	s->pos = p + 4;
	f->left = plen;
	f->state = MY_SKIP;
	return 0;
}

/* ---- Redis (RESP2 / RESP3) ------------------------------------------------ */

enum { RE_CMD = 0, RE_ARG_HDR, RE_ARG_DATA, RE_LINE, RE_ELEM, RE_BULK };

#define RE_F_FIRST 1 /* request: the next bulk string is the command name */
#define RE_F_TOP   2 /* response: the next element is the top-level reply */
#define RE_F_PUSH  4 /* response: no END when the message completes (a push, or an error reported) */
#define RE_F_ERR   8 /* response: the reply is an error */

struct aion_int_ctx {
	const struct aion_http_scan *s;
	__u32 p, end;
	__s64 v;
	__u8 neg, digits;
	int r;
};

static long aion_int_byte(__u32 i, void *ctx)
{
	struct aion_int_ctx *k = ctx;
	const struct aion_http_scan *s = k->s;
	__u32 q = k->p + i;
	__u8 c;

	if (q >= s->len) {
		k->r = 0;
		return 1;
	}
	c = AION_B(s, q);
	if (i == 0 && c == '-') {
		k->neg = 1;
		return 0;
	}
	if (c >= '0' && c <= '9' && k->digits < 18) {
		k->v = k->v * 10 + (c - '0');
		k->digits++;
		return 0;
	}
	if (c != '\r' || !k->digits) {
		k->r = -1;
		return 1;
	}
	if (q + 1 >= s->len) {
		k->r = 0;
		return 1;
	}
	if (AION_B(s, q + 1) != '\n') {
		k->r = -1;
		return 1;
	}
	k->end = q + 2;
	k->r = 1;
	return 1;
}

/* "[-]digits\r\n" at p: the value, *end after the LF. 0: not there yet
 * (cut), -1: not a number. */
static __always_inline int aion_re_int(const struct aion_http_scan *s, __u32 p, __s64 *v, __u32 *end)
{
	struct aion_int_ctx k = { .s = s, .p = p, .r = -1 };

	AION_LOOP(21, aion_int_byte, &k);
	if (k.r == 1) {
		*v = k.neg ? -k.v : k.v;
		*end = k.end;
	}
	return k.r;
}

/* Find '\n' from pos, up to 4 words per step (as HTTP headers are
 * scanned); true when found (pos is after it). */
static __always_inline int aion_re_line(struct aion_http_scan *s)
{
	__u32 next = 0, q = aion_find_nl(s, s->pos, &next);

	if (q != AION_NO_NL) {
		s->pos = q + 1;
		return 1;
	}
	s->pos = next;
	return 0;
}

struct aion_word_ctx {
	const struct aion_http_scan *s;
	__u32 p, max, n;
};

static long aion_word_byte(__u32 i, void *ctx)
{
	struct aion_word_ctx *k = ctx;
	__u8 c;

	if (i >= k->max || k->p + i >= k->s->len)
		return 1;
	c = AION_B(k->s, k->p + i);
	if (c == ' ' || c == '\r' || c == '\n')
		return 1;
	k->n = i + 1;
	return 0;
}

/* Length of the word at p (command name, error prefix): up to a blank or
 * CR, at most max (<= 32) bytes. */
static __always_inline __u32 aion_re_word(const struct aion_http_scan *s, __u32 p, __u32 max)
{
	struct aion_word_ctx k = { .s = s, .p = p, .max = max, .n = 0 };

	AION_LOOP(32, aion_word_byte, &k);
	return k.n;
}

static __always_inline long aion_re_request(struct aion_http_scan *s)
{
	struct aion_db_frame *f = AION_DBF(s);
	__u32 p = s->pos, end = 0;
	__s64 v = 0;
	int r;
	__u8 c;

	switch (f->state) {
	case RE_CMD:
		if (p >= s->len)
			return 1;
		c = AION_B(s, p);
		if (c == '*') {
			r = aion_re_int(s, p + 1, &v, &end);
			if (r == 0)
				return aion_db_cut(s, p, s->len - p + 1);
			if (r < 0 || v > 1000000)
				return aion_db_garbage(s);
			s->pos = end;
			if (v > 0) {
				f->aux = (__u64)v;
				f->flags = RE_F_FIRST;
				f->state = RE_ARG_HDR;
			}
			return 0;
		}
		if (c == '\r' || c == '\n') {
			s->pos = p + 1;
			return 0;
		}
		if ((c | 0x20) < 'a' || (c | 0x20) > 'z')
			return aion_db_garbage(s);
		/* An inline command: its first word, then the rest of the line. */
		if (p + 32 > s->len && aion_re_word(s, p, 32) == s->len - p &&
		    aion_db_cut(s, p, s->len - p + 1))
			return 1;
		aion_db_mark(s, AION_MARK_START, AION_DB_COMMAND, 0, p, aion_re_word(s, p, 32), 0);
		f->state = RE_LINE;
		return 0;
	case RE_ARG_HDR:
		if (p >= s->len)
			return 1;
		if (AION_B(s, p) != '$')
			return aion_db_garbage(s);
		r = aion_re_int(s, p + 1, &v, &end);
		if (r == 0)
			return aion_db_cut(s, p, s->len - p + 1);
		if (r < 0 || v < 0)
			return aion_db_garbage(s);
		if (f->flags & RE_F_FIRST) {
			/* The command name must be in the window to be named. */
			if (end + (v < 32 ? v : 32) > s->len && aion_db_cut(s, p, s->len - p + 1))
				return 1;
			aion_db_mark(s, AION_MARK_START, AION_DB_COMMAND, 0, end, aion_db_tlen(s, end, v), 0);
			f->flags = 0;
		}
		s->pos = end;
		f->left = (__u64)v + 2;
		f->state = RE_ARG_DATA;
		return 0;
	case RE_ARG_DATA:
		if (aion_db_skip(s)) {
			if (f->aux)
				f->aux--;
			f->state = f->aux ? RE_ARG_HDR : RE_CMD;
		}
		return 0;
	default: /* RE_LINE: the rest of an inline command */
		if (p >= s->len)
			return 1; /* in the next window or syscall */
		if (aion_re_line(s))
			f->state = RE_CMD;
		return 0;
	}
}

/* An element of a reply is complete: the reply may be too. */
static __always_inline void aion_re_done(struct aion_http_scan *s)
{
	struct aion_db_frame *f = AION_DBF(s);

	if (f->aux)
		f->aux--;
	if (f->aux)
		return;
	if (!(f->flags & RE_F_PUSH))
		aion_db_mark(s, AION_MARK_END, AION_DBEND_ONE, (f->flags & RE_F_ERR) ? 1 : 0, 0, 0, 0);
	f->flags = 0;
	f->code = 0;
	f->left = 0;
	f->state = RE_CMD; /* RE_CMD == 0: the next reply */
}

static __always_inline long aion_re_response(struct aion_http_scan *s)
{
	struct aion_db_frame *f = AION_DBF(s);
	__u32 p = s->pos, end = 0, top;
	__s64 v = 0;
	int r;
	__u8 c;

	switch (f->state) {
	case RE_CMD: /* a new reply */
		f->aux = 1;
		f->flags = RE_F_TOP;
		f->code = 0;
		f->left = 0;
		f->state = RE_ELEM;
		return 0;
	case RE_ELEM:
		if (p >= s->len)
			return 1;
		c = AION_B(s, p);
		top = f->flags & RE_F_TOP;
		f->flags &= ~RE_F_TOP;
		switch (c) {
		case '-':
			if (top) {
				/* An error reply: it ends the operation here, while its
				 * prefix is in the window (the rest of the line is
				 * skipped after). */
				if (p + 26 > s->len && aion_re_word(s, p + 1, 24) == s->len - p - 1 &&
				    aion_db_cut(s, p, s->len - p + 1)) {
					f->flags |= RE_F_TOP;
					return 1;
				}
				aion_db_mark(s, AION_MARK_END, AION_DBEND_ONE, 1, p + 1,
					     aion_re_word(s, p + 1, 24), 0);
				f->flags |= RE_F_PUSH; /* reported: no END when it completes */
			}
			/* fall through */
		case '+': case ':': case ',': case '#': case '(': case '_':
			s->pos = p + 1;
			f->state = RE_LINE;
			return 0;
		case '$': case '=': case '!':
			r = aion_re_int(s, p + 1, &v, &end);
			if (r == 0) {
				if (top)
					f->flags |= RE_F_TOP;
				return aion_db_cut(s, p, s->len - p + 1);
			}
			if (r < 0)
				return aion_db_garbage(s);
			if (c == '!' && top)
				f->flags |= RE_F_ERR;
			s->pos = end;
			if (v < 0) {
				aion_re_done(s);
				return 0;
			}
			f->left = (f->left & ~0xffffffffULL) | ((__u64)v + 2);
			f->state = RE_BULK;
			return 0;
		case '*': case '~': case '>': case '%': case '|':
			r = aion_re_int(s, p + 1, &v, &end);
			if (r == 0) {
				if (top)
					f->flags |= RE_F_TOP;
				return aion_db_cut(s, p, s->len - p + 1);
			}
			if (r < 0 || v > 1000000)
				return aion_db_garbage(s);
			s->pos = end;
			if (c == '>' && top)
				f->flags |= RE_F_PUSH;
			if (v <= 0) {
				aion_re_done(s);
				return 0;
			}
			if (c == '%')
				v *= 2;
			if (c == '|') {
				/* An attribute annotates the element that follows. */
				f->aux += 2 * v;
				if (top)
					f->flags |= RE_F_TOP;
				return 0;
			}
			f->aux += v - 1;
			return 0;
		default:
			return aion_db_garbage(s);
		}
	case RE_BULK: {
		/* Skip (length + CRLF), kept in left's low half. */
		__u32 avail = s->total > p ? s->total - p : 0, want = (__u32)f->left;

		if (want <= avail) {
			s->pos = p + want;
			f->left &= ~0xffffffffULL;
			f->state = RE_ELEM;
			aion_re_done(s);
		} else {
			f->left -= avail;
			s->pos = s->total;
		}
		return 0;
	}
	default: /* RE_LINE */
		if (p >= s->len)
			return 1; /* in the next window or syscall */
		if (aion_re_line(s)) {
			f->state = RE_ELEM;
			aion_re_done(s);
		}
		return 0;
	}
}

/* ---- dispatch ------------------------------------------------------------- */

static __always_inline int aion_db_stop(struct aion_http_scan *s)
{
	if (s->full || s->pos >= s->total || s->garbage)
		return 1;
	if (AION_DBF(s)->state == 0xff) {
		s->pos = s->total; /* framing lost: nothing more on this connection */
		return 1;
	}
	return 0;
}

static long aion_pg_step(__u32 i, void *ctx)
{
	struct aion_http_scan *s = *(struct aion_http_scan **)ctx;
	struct aion_db_frame *f = AION_DBF(s);

	(void)i;
	if (aion_db_stop(s))
		return 1;
	if (f->state == PG_SKIP) {
		if (aion_db_skip(s))
			f->state = f->sub;
		return 0;
	}
	return s->request ? aion_pg_request(s) : aion_pg_response(s);
}

static long aion_my_step(__u32 i, void *ctx)
{
	struct aion_http_scan *s = *(struct aion_http_scan **)ctx;

	(void)i;
	if (aion_db_stop(s))
		return 1;
	return s->request ? aion_my_request(s) : aion_my_response(s);
}

static long aion_re_step(__u32 i, void *ctx)
{
	struct aion_http_scan *s = *(struct aion_http_scan **)ctx;

	(void)i;
	if (aion_db_stop(s))
		return 1;
	return s->request ? aion_re_request(s) : aion_re_response(s);
}

/* Scan [pos, len) of the window for proto, leaving marks. */
static __always_inline void aion_db_scan(struct aion_http_scan *s, __u8 proto)
{
	struct aion_http_scan *sp = s;

	s->nmarks = 0;
	s->full = 0;
	if (proto == AION_PROTO_PG)
		AION_LOOP(AION_SCAN_STEPS, aion_pg_step, &sp);
	else if (proto == AION_PROTO_MYSQL)
		AION_LOOP(AION_SCAN_STEPS, aion_my_step, &sp);
	else if (proto == AION_PROTO_REDIS)
		AION_LOOP(AION_SCAN_STEPS, aion_re_step, &sp);
}

/* 1 when the first bytes are a TLS record header (handshake, alert,
 * change cipher spec or application data; SSL 3.0 to TLS 1.3 record
 * versions): ciphertext, which only a TLS library's plaintext can tell
 * anything about. */
static __always_inline int aion_tls_record(const struct aion_http_scan *s)
{
	__u8 t;

	if (s->len < 3)
		return 0;
	t = AION_B(s, 0);
	return t >= 0x14 && t <= 0x17 && AION_B(s, 1) == 0x03 && AION_B(s, 2) <= 0x04;
}

/* What do the first bytes of a connection say? The protocol, and in
 * *request whether they are a request (1) or a response (0). */
static __always_inline __u8 aion_detect(const struct aion_http_scan *s, __u8 *request)
{
	__u32 po = 0, l, code;
	__s64 v = 0;
	__u32 end = 0;
	__u8 c;

	if (s->len < 4)
		return AION_PROTO_UNKNOWN;
	*request = 1;
	if (aion_http_method(s, 0, &po))
		return AION_PROTO_HTTP;
	if (aion_http_status(s, 0)) {
		*request = 0;
		return AION_PROTO_HTTP;
	}
	c = AION_B(s, 0);
	/* Redis: an array of bulk strings. */
	if (c == '*' && aion_re_int(s, 1, &v, &end) == 1 && v > 0 && end < s->len &&
	    AION_B(s, end) == '$')
		return AION_PROTO_REDIS;
	/* PostgreSQL: StartupMessage 3.0 / SSLRequest / GSSENCRequest; or a
	 * simple or extended query of an adopted connection. */
	if (s->len >= 8) {
		l = aion_be32(s, 0);
		code = aion_be32(s, 4);
		if ((code == 196608 || code == 80877103 || code == 80877104) && l >= 8 && l <= 10000 &&
		    l <= s->total)
			return AION_PROTO_PG;
	}
	if ((c == 'Q' || c == 'P') && s->len >= 6) {
		l = aion_be32(s, 1);
		if (l > 4 && l + 1 <= s->total && (c == 'P' || l + 1 == s->total))
			return AION_PROTO_PG;
	}
	/* MySQL: the server's greeting (protocol 10), or a command packet. */
	if (s->len >= 6) {
		l = aion_le24(s, 0);
		if (AION_B(s, 3) == 0 && AION_B(s, 4) == 0x0a && l >= 20 && l < 1024 && l + 4 <= s->total &&
		    AION_B(s, 5) >= '1' && AION_B(s, 5) <= '9') {
			*request = 0;
			return AION_PROTO_MYSQL;
		}
		c = AION_B(s, 4);
		if (AION_B(s, 3) == 0 && l >= 1 && l + 4 == s->total &&
		    (c == 0x03 || c == 0x16 || c == 0x17 || c == 0x0e))
			return AION_PROTO_MYSQL;
	}
	return AION_PROTO_UNKNOWN;
}

#endif /* AION_DB_H */
