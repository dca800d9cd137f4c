// SPDX-License-Identifier: GPL-2.0
/* HTTP/1.x framing parser (include/aion/http.h) on real captured bytes.
 *
 * The captures under tests/unit/captures/ were recorded from real clients
 * (curl, python http.client, wrk, node) and real servers (nginx, python
 * http.server, node) by tests/unit/captures/capture.py. Besides calling
 * aion_http_scan() directly, the tests drive the parser through sim_data(),
 * a host copy of on_data()/scan_round()/drain_mark() in bpf/aion.bpf.c:
 * start-line carry of AION_CARRY bytes, windows of AION_WINDOW bytes over a
 * syscall whose total may be larger, AION_ROUNDS scans per syscall, marks
 * drained after every scan, head_req from the queue of pending requests.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <linux/types.h>
#include "aion/http.h"

#define UNUSED __attribute__((unused))

#define CAPDIR      "tests/unit/captures/"
#define MAX_GOT     96 /* marks one simulated connection records */
#define MAX_REPORT  6  /* failing cases printed per test before giving up */

/* ---- captures ------------------------------------------------------------ */

struct blob {
	__u8 *p;
	size_t n;
};

static struct blob load(const char *name)
{
	char path[256];
	struct blob b = { 0 };
	FILE *f;
	long n;

	snprintf(path, sizeof(path), CAPDIR "%s", name);
	f = fopen(path, "rb");
	if (!f)
		fail_msg("%s: %s (run make unit from the repo root; regenerate with "
			 "tests/unit/captures/capture.py)", path, strerror(errno));
	assert_int_equal(fseek(f, 0, SEEK_END), 0);
	n = ftell(f);
	assert_true(n > 0);
	rewind(f);
	b.p = malloc(n);
	assert_non_null(b.p);
	assert_int_equal(fread(b.p, 1, n, f), (size_t)n);
	fclose(f);
	b.n = n;
	return b;
}

static void blob_cat(struct blob *b, const void *p, size_t n)
{
	b->p = realloc(b->p, b->n + n);
	assert_non_null(b->p);
	memcpy(b->p + b->n, p, n);
	b->n += n;
}

static void blob_str(struct blob *b, const char *s)
{
	blob_cat(b, s, strlen(s));
}

/* An independent oracle: the Content-Length header of the first message. */
static __u64 oracle_clen(const struct blob *b)
{
	size_t i, hl = 0;

	for (i = 0; i + 3 < b->n; i++)
		if (!memcmp(b->p + i, "\r\n\r\n", 4)) {
			hl = i;
			break;
		}
	for (i = 0; i + 16 < hl; i++)
		if (!strncasecmp((const char *)b->p + i, "\r\ncontent-length:", 17))
			return strtoull((const char *)b->p + i + 17, NULL, 10);
	return 0;
}

/* Data bytes of a chunked body: the chunk sizes summed, decoded here apart
 * from the parser (extensions and trailers are not in the captures). */
static __u64 oracle_chunked(const struct blob *b)
{
	size_t i = 0, hl = 0;
	__u64 sum = 0, v;
	char *end;

	for (i = 0; i + 3 < b->n; i++)
		if (!memcmp(b->p + i, "\r\n\r\n", 4)) {
			hl = i + 4;
			break;
		}
	for (i = hl; i < b->n;) {
		v = strtoull((const char *)b->p + i, &end, 16);
		if (end == (const char *)b->p + i)
			break;
		sum += v;
		if (!v)
			break;
		i = (size_t)(end - (const char *)b->p) + 2 + v + 2;
	}
	return sum;
}

#include "http_sim.h"

/* ---- expectations -------------------------------------------------------- */

struct want {
	__u8 kind;
	__u8 method;     /* START of a request */
	__u16 status;    /* START of a response */
	__u64 body;      /* END */
	const char *path; /* START of a request */
};

static const char *kind_name(__u8 k)
{
	return k == AION_MARK_START ? "START" : k == AION_MARK_END ? "END" :
	       k == AION_MARK_HOST ? "HOST" : "?";
}

static void describe(const struct sim *m, char *out, size_t n)
{
	size_t o = 0;
	__u32 i;

	o += snprintf(out + o, n - o, "[");
	for (i = 0; i < m->n && o < n; i++) {
		const struct got *g = &m->m[i];

		if (g->kind == AION_MARK_START && m->request) {
			char path[AION_PATH_MAX + 1];
			__u32 j;

			for (j = 0; j < g->path_len && g->path[j] != ' '; j++)
				path[j] = g->path[j] >= 32 && g->path[j] < 127 ? g->path[j] : '.';
			path[j] = 0;
			o += snprintf(out + o, n - o, " START(m=%u '%s')", g->method, path);
		}
		else if (g->kind == AION_MARK_START)
			o += snprintf(out + o, n - o, " START(%u)", g->status);
		else if (o < n)
			o += snprintf(out + o, n - o, " END(body=%llu)", (unsigned long long)g->body);
	}
	if (o < n)
		snprintf(out + o, n - o, " ] garbage=%u stalled=%u exhausted=%u state=%u open=%u carry=%u",
			 m->garbage, m->stalled, m->exhausted, m->fr.state, m->fr.open, m->carry_len);
}

/* 0 when the marks recorded by m are w[]. The path must be the one sent when
 * full_path, else a prefix of it (the kernel copies it from the window that
 * holds the START, which may end inside the target). */
static int sim_check(const struct sim *m, const struct want *w, __u32 nw, int full_path,
		     int until_close, char *why, size_t whylen)
{
	char got[1024];
	__u32 i;

	describe(m, got, sizeof(got));
	if (m->n != nw || m->lost) {
		snprintf(why, whylen, "%u marks, want %u: %s", m->n, nw, got);
		return -1;
	}
	for (i = 0; i < nw; i++) {
		const struct got *g = &m->m[i];

		if (g->kind != w[i].kind) {
			snprintf(why, whylen, "mark %u is %s, want %s: %s", i, kind_name(g->kind),
				 kind_name(w[i].kind), got);
			return -1;
		}
		if (g->kind == AION_MARK_END) {
			if (g->body != w[i].body) {
				snprintf(why, whylen, "mark %u body %llu, want %llu: %s", i,
					 (unsigned long long)g->body, (unsigned long long)w[i].body, got);
				return -1;
			}
			continue;
		}
		if (m->request) {
			size_t pl = strlen(w[i].path);
			char full[AION_PATH_MAX + 2];

			snprintf(full, sizeof(full), "%s ", w[i].path);
			if (g->method != w[i].method) {
				snprintf(why, whylen, "mark %u method %u, want %u: %s", i, g->method,
					 w[i].method, got);
				return -1;
			}
			if ((full_path && (g->path_len < pl + 1 || memcmp(g->path, full, pl + 1))) ||
			    (!full_path && memcmp(g->path, full, g->path_len < pl + 1 ? g->path_len : pl + 1))) {
				snprintf(why, whylen, "mark %u path '%.*s', want '%s': %s", i,
					 (int)g->path_len, g->path, w[i].path, got);
				return -1;
			}
		} else if (g->status != w[i].status) {
			snprintf(why, whylen, "mark %u status %u, want %u: %s", i, g->status,
				 w[i].status, got);
			return -1;
		}
	}
	if (m->garbage || m->stalled || m->exhausted) {
		snprintf(why, whylen, "parse trouble on valid bytes: %s", got);
		return -1;
	}
	if (until_close ? (m->fr.state != AION_HF_UNTIL_CLOSE || !m->fr.open)
			: (m->fr.state != AION_HF_START || m->fr.open || m->carry_len)) {
		snprintf(why, whylen, "final frame state %u open %u carry %u, want %s: %s",
			 m->fr.state, m->fr.open, m->carry_len,
			 until_close ? "UNTIL_CLOSE open" : "START closed", got);
		return -1;
	}
	return 0;
}

/* ---- the capture table --------------------------------------------------- */

struct capture {
	const char *file;
	int request;
	__u32 nmsg;         /* messages, back to back */
	__u8 method;        /* request: method; response: method of the request */
	const char *path;   /* request */
	__u16 status;       /* response */
	long long body;     /* END body; -1: the capture's Content-Length header,
			     * -2: its chunk sizes summed */
	int until_close;    /* HTTP/1.0 without length: START, no END */
};

static const struct capture captures[] = {
	{ "req_curl_get.bin", 1, 1, AION_METHOD_GET, "/api/users?id=42", 0, 0, 0 },
	{ "req_curl_post.bin", 1, 1, AION_METHOD_POST, "/api/items", 0, 20, 0 },
	{ "req_curl_head.bin", 1, 1, AION_METHOD_HEAD, "/index.html", 0, 0, 0 },
	{ "req_python_get.bin", 1, 1, AION_METHOD_GET, "/health", 0, 0, 0 },
	{ "req_python_put.bin", 1, 1, AION_METHOD_PUT, "/api/users/7", 0, 37, 0 },
	{ "req_wrk.bin", 1, 1, AION_METHOD_GET, "/bench", 0, 0, 0 },
	{ "req_node_get.bin", 1, 1, AION_METHOD_GET, "/node/path?q=1", 0, 0, 0 },
	{ "resp_nginx_ok.bin", 0, 1, AION_METHOD_GET, NULL, 200, 3, 0 },
	{ "resp_nginx_503.bin", 0, 1, AION_METHOD_GET, NULL, 503, -1, 0 },
	{ "resp_nginx_204.bin", 0, 1, AION_METHOD_GET, NULL, 204, 0, 0 },
	{ "resp_nginx_file.bin", 0, 1, AION_METHOD_GET, NULL, 200, 20480, 0 },
	{ "resp_nginx_gzip_chunked.bin", 0, 1, AION_METHOD_GET, NULL, 200, -2, 0 },
	/* HEAD: no body follows; END reports the Content-Length header. */
	{ "resp_nginx_head.bin", 0, 1, AION_METHOD_HEAD, NULL, 200, 0, 0 },
	{ "resp_nginx_pipelined_get.bin", 0, 3, AION_METHOD_GET, NULL, 200, 3, 0 },
	{ "resp_nginx_pipelined_head.bin", 0, 3, AION_METHOD_HEAD, NULL, 200, 0, 0 },
	{ "resp_python_file.bin", 0, 1, AION_METHOD_GET, NULL, 200, 30, 0 },
	{ "resp_python_404.bin", 0, 1, AION_METHOD_GET, NULL, 404, -1, 0 },
	/* 100 Continue then 201: the interim response leaves no mark. */
	{ "resp_python_100_continue.bin", 0, 1, AION_METHOD_POST, NULL, 201, 14, 0 },
	{ "resp_python_http10.bin", 0, 1, AION_METHOD_GET, NULL, 200, 0, 1 },
	{ "resp_node_chunked.bin", 0, 1, AION_METHOD_GET, NULL, 200, -2, 0 },
	{ "resp_node_chunked_big.bin", 0, 1, AION_METHOD_GET, NULL, 200, -2, 0 },
};
#define NCAPTURES (sizeof(captures) / sizeof(captures[0]))

static __u32 capture_want(const struct capture *c, const struct blob *b, struct want *w)
{
	__u64 body = c->body >= 0 ? (__u64)c->body : c->body == -2 ? oracle_chunked(b) : oracle_clen(b);
	__u32 i, n = 0;

	for (i = 0; i < c->nmsg; i++) {
		w[n].kind = AION_MARK_START;
		w[n].method = c->method;
		w[n].status = c->status;
		w[n].path = c->path;
		n++;
		if (c->until_close)
			continue;
		w[n].kind = AION_MARK_END;
		w[n].body = body;
		n++;
	}
	return n;
}

static struct sim *capture_sim(const struct capture *c)
{
	struct sim *m = sim_new(c->request);
	__u32 i;

	if (!c->request)
		for (i = 0; i < c->nmsg; i++)
			sim_expect_method(m, c->method);
	return m;
}

/* Offset just past the first '\n': the end of the start line. */
static size_t start_line_end(const struct blob *b)
{
	const __u8 *nl = memchr(b->p, '\n', b->n);

	return nl ? (size_t)(nl - b->p) + 1 : b->n;
}

/* ---- one piece ----------------------------------------------------------- */

static void test_captures_one_piece(void **state UNUSED)
{
	struct aion_http_scan *s = calloc(1, sizeof(*s));
	char why[1536];
	size_t i;
	int bad = 0;

	assert_non_null(s);
	for (i = 0; i < NCAPTURES; i++) {
		const struct capture *c = &captures[i];
		struct blob b = load(c->file);
		struct want w[8];
		__u32 nw = capture_want(c, &b, w);
		struct sim *m = capture_sim(c);

		/* Through the kernel's driver: one syscall. */
		sim_data(m, b.p, b.n);
		if (sim_check(m, w, nw, 1, c->until_close, why, sizeof(why))) {
			print_error("%s in one piece: %s\n", c->file, why);
			bad++;
		}
		free(m);

		/* Directly, when it fits the window: the scan reaches the end. */
		if (b.n <= AION_WINDOW && c->nmsg == 1) {
			memset(s, 0, sizeof(*s));
			memcpy(s->buf, b.p, b.n);
			s->len = s->total = b.n;
			s->request = c->request;
			s->head_req = c->method == AION_METHOD_HEAD;
			aion_http_scan(s);
			assert_int_equal(s->pos, s->total);
			assert_int_equal(s->garbage, 0);
			assert_int_equal(s->partial, 0);
			assert_int_equal(s->nmarks, c->until_close ? 1 : 2);
			assert_int_equal(s->marks[0].kind, AION_MARK_START);
			if (c->request) {
				size_t pl = strlen(c->path);

				assert_int_equal(s->marks[0].method, c->method);
				assert_int_equal(s->marks[0].path_off, start_line_end(&b) -
						 (pl + strlen(" HTTP/1.1\r\n")));
				assert_memory_equal(s->buf + s->marks[0].path_off, c->path, pl);
				assert_int_equal(s->buf[s->marks[0].path_off + pl], ' ');
			} else {
				assert_int_equal(s->marks[0].status, c->status);
			}
			if (c->until_close) {
				assert_int_equal(s->f.state, AION_HF_UNTIL_CLOSE);
				assert_int_equal(s->f.open, 1);
			} else {
				assert_int_equal(s->marks[1].kind, AION_MARK_END);
				assert_int_equal(s->marks[1].body, w[1].body);
				assert_int_equal(s->f.state, AION_HF_START);
				assert_int_equal(s->f.open, 0);
			}
		}

		/* A message framed by Content-Length ends with its last byte,
		 * not one byte earlier. */
		if (c->nmsg == 1 && !c->until_close && oracle_clen(&b) &&
		    c->method != AION_METHOD_HEAD) {
			m = capture_sim(c);
			sim_data(m, b.p, b.n - 1);
			if (m->n != 1 || m->m[0].kind != AION_MARK_START) {
				describe(m, why, sizeof(why));
				print_error("%s without its last byte: %s\n", c->file, why);
				bad++;
			}
			sim_data(m, b.p + b.n - 1, 1);
			assert_int_equal(m->n, 2);
			assert_int_equal(m->m[1].kind, AION_MARK_END);
			free(m);
		}
		free(b.p);
	}
	free(s);
	if (bad)
		fail_msg("%d capture(s) misparsed in one piece", bad);
}

/* ---- split into syscalls ------------------------------------------------- */

/* Every capture as two syscalls, cut at every byte. */
static void test_captures_split_everywhere(void **state UNUSED)
{
	char why[1536];
	size_t i, k;
	int bad = 0;

	for (i = 0; i < NCAPTURES; i++) {
		const struct capture *c = &captures[i];
		struct blob b = load(c->file);
		struct want w[8];
		__u32 nw = capture_want(c, &b, w);
		size_t nfail = 0, first = 0;

		for (k = 1; k < b.n; k++) {
			struct sim *m = capture_sim(c);

			sim_data(m, b.p, k);
			sim_data(m, b.p + k, b.n - k);
			if (sim_check(m, w, nw, 1, c->until_close, why, sizeof(why))) {
				if (!nfail++)
					first = k;
				if (nfail <= 2)
					print_error("%s cut at %zu/%zu ('%c' | '%c'): %s\n", c->file, k,
						    b.n, b.p[k - 1] >= 32 ? b.p[k - 1] : '.',
						    b.p[k] >= 32 ? b.p[k] : '.', why);
			}
			free(m);
		}
		if (nfail) {
			print_error("%s: %zu of %zu cuts misparsed (first at %zu)\n", c->file, nfail,
				    b.n - 1, first);
			bad++;
		}
		free(b.p);
	}
	if (bad)
		fail_msg("%d capture(s) misparsed when cut in two syscalls", bad);
}

/* Every capture one byte per syscall. */
static void test_captures_byte_by_byte(void **state UNUSED)
{
	char why[1536];
	size_t i, k;
	int bad = 0;

	for (i = 0; i < NCAPTURES; i++) {
		const struct capture *c = &captures[i];
		struct blob b = load(c->file);
		struct want w[8];
		__u32 nw = capture_want(c, &b, w);
		struct sim *m = capture_sim(c);

		for (k = 0; k < b.n; k++)
			sim_data(m, b.p + k, 1);
		if (sim_check(m, w, nw, 1, c->until_close, why, sizeof(why))) {
			print_error("%s byte by byte: %s\n", c->file, why);
			bad++;
		}
		free(m);
		free(b.p);
	}
	if (bad)
		fail_msg("%d capture(s) misparsed one byte per syscall", bad);
}

/* ---- pipelining ---------------------------------------------------------- */

static void check_split_everywhere(const struct blob *b, int request, const __u8 *head,
				   __u32 nhead, const struct want *w, __u32 nw)
{
	char why[1536];
	size_t k, nfail = 0;
	__u32 j;

	for (k = 0; k <= b->n; k++) {
		struct sim *m = sim_new(request);

		for (j = 0; j < nhead; j++)
			sim_expect_method(m, head[j]);
		if (k)
			sim_data(m, b->p, k);
		if (k < b->n)
			sim_data(m, b->p + k, b->n - k);
		if (sim_check(m, w, nw, 1, 0, why, sizeof(why)) && nfail++ < 2)
			print_error("cut at %zu/%zu: %s\n", k, b->n, why);
		free(m);
	}
	if (nfail)
		fail_msg("%zu of %zu cuts misparsed", nfail, b->n + 1);
}

/* curl GET + python PUT + wrk GET back to back in one read. */
static void test_pipelined_three_requests(void **state UNUSED)
{
	struct blob a = load("req_curl_get.bin"), p = load("req_python_put.bin"),
		    r = load("req_wrk.bin"), b = { 0 };
	const struct want w[] = {
		{ AION_MARK_START, AION_METHOD_GET, 0, 0, "/api/users?id=42" },
		{ AION_MARK_END, 0, 0, 0, NULL },
		{ AION_MARK_START, AION_METHOD_PUT, 0, 0, "/api/users/7" },
		{ AION_MARK_END, 0, 0, 37, NULL },
		{ AION_MARK_START, AION_METHOD_GET, 0, 0, "/bench" },
		{ AION_MARK_END, 0, 0, 0, NULL },
	};

	blob_cat(&b, a.p, a.n);
	blob_cat(&b, p.p, p.n);
	blob_cat(&b, r.p, r.n);
	check_split_everywhere(&b, 1, NULL, 0, w, 6);
	free(a.p);
	free(p.p);
	free(r.p);
	free(b.p);
}

/* Ten pipelined requests: the scan stops with 8 marks, the caller drains and
 * scans again from pos. */
static void test_pipelined_ten_requests_marks_full(void **state UNUSED)
{
	struct blob r = load("req_wrk.bin"), b = { 0 };
	struct aion_http_scan *s = calloc(1, sizeof(*s));
	struct want w[20];
	__u32 i, starts = 0, ends = 0;

	assert_non_null(s);
	for (i = 0; i < 10; i++)
		blob_cat(&b, r.p, r.n);
	assert_true(b.n <= AION_WINDOW);
	memcpy(s->buf, b.p, b.n);
	s->len = s->total = b.n;
	s->request = 1;

	aion_http_scan(s);
	assert_int_equal(s->nmarks, AION_MAX_MARKS);
	assert_int_equal(s->full, 1);
	assert_int_equal(s->pos, 4 * r.n); /* stopped right after the 4th END */
	for (i = 0; i < 3; i++) {
		__u32 j;

		if (i)
			aion_http_scan(s);
		for (j = 0; j < s->nmarks; j++) {
			if (s->marks[j].kind == AION_MARK_START) {
				assert_int_equal(s->marks[j].method, AION_METHOD_GET);
				assert_int_equal(s->marks[j].path_off, (starts * r.n) + 4);
				starts++;
			} else {
				assert_int_equal(s->marks[j].kind, AION_MARK_END);
				ends++;
			}
		}
	}
	assert_int_equal(s->full, 0);
	assert_int_equal(s->nmarks, 4);
	assert_int_equal(s->pos, s->total);
	assert_int_equal(starts, 10);
	assert_int_equal(ends, 10);

	for (i = 0; i < 10; i++) {
		w[2 * i] = (struct want){ AION_MARK_START, AION_METHOD_GET, 0, 0, "/bench" };
		w[2 * i + 1] = (struct want){ AION_MARK_END, 0, 0, 0, NULL };
	}
	check_split_everywhere(&b, 1, NULL, 0, w, 20);
	free(s);
	free(r.p);
	free(b.p);
}

/* Content-Length, chunked and 204 responses back to back in one write. */
static void test_pipelined_three_responses(void **state UNUSED)
{
	struct blob a = load("resp_nginx_ok.bin"), c = load("resp_node_chunked.bin"),
		    e = load("resp_nginx_204.bin"), b = { 0 };
	const __u8 head[] = { AION_METHOD_GET, AION_METHOD_GET, AION_METHOD_GET };
	struct want w[] = {
		{ AION_MARK_START, 0, 200, 0, NULL }, { AION_MARK_END, 0, 0, 3, NULL },
		{ AION_MARK_START, 0, 200, 0, NULL }, { AION_MARK_END, 0, 0, 0, NULL },
		{ AION_MARK_START, 0, 204, 0, NULL }, { AION_MARK_END, 0, 0, 0, NULL },
	};

	w[3].body = oracle_chunked(&c);
	assert_true(w[3].body > 0);
	blob_cat(&b, a.p, a.n);
	blob_cat(&b, c.p, c.n);
	blob_cat(&b, e.p, e.n);
	check_split_everywhere(&b, 0, head, 3, w, 6);
	free(a.p);
	free(c.p);
	free(e.p);
	free(b.p);
}

/* HTTP/1.1 pipelined responses to HEAD (captured from nginx): no body is
 * skipped, whatever Content-Length says. Without head_req the parser would
 * eat 3 bytes of the next status line: the queue is what frames them. */
static void test_pipelined_head_responses(void **state UNUSED)
{
	/* Three HEAD responses nginx sent to three pipelined HEADs. */
	struct blob b = load("resp_nginx_pipelined_head.bin");
	const __u8 heads[] = { AION_METHOD_HEAD, AION_METHOD_HEAD, AION_METHOD_HEAD };
	const struct want wh[] = { /* no body follows a HEAD response: size 0 */
		{ AION_MARK_START, 0, 200, 0, NULL }, { AION_MARK_END, 0, 0, 0, NULL },
		{ AION_MARK_START, 0, 200, 0, NULL }, { AION_MARK_END, 0, 0, 0, NULL },
		{ AION_MARK_START, 0, 200, 0, NULL }, { AION_MARK_END, 0, 0, 0, NULL },
	};
	/* GET, HEAD, GET responses back to back. */
	struct blob g = load("resp_nginx_ok.bin"), h = load("resp_nginx_head.bin"), all = { 0 };
	const __u8 mix[] = { AION_METHOD_GET, AION_METHOD_HEAD, AION_METHOD_GET };
	const struct want wm[] = {
		{ AION_MARK_START, 0, 200, 0, NULL }, { AION_MARK_END, 0, 0, 3, NULL },
		{ AION_MARK_START, 0, 200, 0, NULL }, { AION_MARK_END, 0, 0, 0, NULL },
		{ AION_MARK_START, 0, 200, 0, NULL }, { AION_MARK_END, 0, 0, 3, NULL },
	};

	check_split_everywhere(&b, 0, heads, 3, wh, 6);
	blob_cat(&all, g.p, g.n);
	blob_cat(&all, h.p, h.n);
	blob_cat(&all, g.p, g.n);
	check_split_everywhere(&all, 0, mix, 3, wm, 6);
	free(g.p);
	free(h.p);
	free(all.p);
	free(b.p);
}

/* A POST whose body looks like a request, then a GET: the body is skipped
 * by length and its size lands on the END mark. */
static void test_post_body_then_get(void **state UNUSED)
{
	struct blob p = load("req_curl_post.bin"), g = load("req_wrk.bin"), b = { 0 };
	const char *body = "GET /not-a-request HTTP/1.1\r\n\r\n";
	char head[128];
	const struct want w[] = {
		{ AION_MARK_START, AION_METHOD_POST, 0, 0, "/api/items" },
		{ AION_MARK_END, 0, 0, 20, NULL },
		{ AION_MARK_START, AION_METHOD_POST, 0, 0, "/form" },
		{ AION_MARK_END, 0, 0, 31, NULL },
		{ AION_MARK_START, AION_METHOD_GET, 0, 0, "/bench" },
		{ AION_MARK_END, 0, 0, 0, NULL },
	};

	assert_int_equal(strlen(body), 31);
	snprintf(head, sizeof(head), "POST /form HTTP/1.1\r\nHost: x\r\ncontent-length:%zu\r\n\r\n",
		 strlen(body));
	blob_cat(&b, p.p, p.n);
	blob_str(&b, head);
	blob_str(&b, body);
	blob_cat(&b, g.p, g.n);
	check_split_everywhere(&b, 1, NULL, 0, w, 6);
	free(p.p);
	free(g.p);
	free(b.p);
}

/* ---- larger than the window ---------------------------------------------- */

static size_t header_len(const struct blob *b)
{
	size_t i;

	for (i = 0; i + 3 < b->n; i++)
		if (!memcmp(b->p + i, "\r\n\r\n", 4))
			return i + 4;
	fail_msg("no header block");
	return 0;
}

/* The 20 KB file: one write of headers + body (total 20 KB, window 1 KB);
 * headers then the body in pieces; headers then sendfile (nothing copied). */
static void test_large_response(void **state UNUSED)
{
	struct blob b = load("resp_nginx_file.bin");
	size_t hl = header_len(&b), off, piece;
	const struct want w[] = {
		{ AION_MARK_START, 0, 200, 0, NULL }, { AION_MARK_END, 0, 0, 20480, NULL },
	};
	char why[1536];
	struct sim *m;

	assert_int_equal(b.n - hl, 20480);
	assert_true(b.n > AION_WINDOW);

	m = sim_new(0);
	sim_data(m, b.p, b.n);
	assert_int_equal(sim_check(m, w, 2, 1, 0, why, sizeof(why)), 0);
	free(m);

	/* Everything but the last body byte: still open. */
	m = sim_new(0);
	sim_data(m, b.p, b.n - 1);
	assert_int_equal(m->n, 1);
	assert_int_equal(m->fr.state, AION_HF_BODY);
	assert_int_equal(m->fr.left, 1);
	sim_data(m, b.p + b.n - 1, 1);
	if (sim_check(m, w, 2, 1, 0, why, sizeof(why)))
		fail_msg("last byte apart: %s", why);
	free(m);

	for (piece = 1000; piece <= 16384; piece *= 2) {
		/* write(headers), then the body in write()s or sendfile()s. */
		int sf;

		for (sf = 0; sf < 2; sf++) {
			m = sim_new(0);
			sim_data(m, b.p, hl);
			assert_int_equal(m->n, 1);
			for (off = hl; off < b.n; off += piece) {
				size_t n = b.n - off < piece ? b.n - off : piece;

				assert_int_equal(m->n, 1); /* no END before the last piece */
				sim_data(m, sf ? NULL : b.p + off, n);
			}
			if (sim_check(m, w, 2, 1, 0, why, sizeof(why)))
				fail_msg("body in %s pieces of %zu: %s", sf ? "sendfile" : "write",
					 piece, why);
			free(m);
		}
	}
	free(b.p);
}

/* Every split of a message across the window boundary inside one syscall:
 * an X-Pad header of growing length pushes the rest of the bytes over
 * offset AION_WINDOW one byte at a time. */
static void sweep_window(int request, const char *pre, const char *post, const __u8 *head,
			 __u32 nhead, const struct want *w, __u32 nw)
{
	char why[1536];
	__u32 pad, nfail = 0;

	for (pad = 0; pad < AION_WINDOW; pad++) {
		struct blob b = { 0 };
		struct sim *m = sim_new(request);
		__u32 j;

		blob_str(&b, pre);
		blob_str(&b, "X-Pad: ");
		for (j = 0; j < pad; j++)
			blob_str(&b, "p");
		blob_str(&b, post);
		for (j = 0; j < nhead; j++)
			sim_expect_method(m, head[j]);
		sim_data(m, b.p, b.n);
		if (sim_check(m, w, nw, 1, 0, why, sizeof(why))) {
			if (nfail < MAX_REPORT)
				print_error("window ends at byte %u of the tail: %s\n",
					    (__u32)(AION_WINDOW - (b.n - strlen(post))), why);
			nfail++;
		}
		free(m);
		free(b.p);
	}
	if (nfail)
		fail_msg("%u of %u window boundaries misparsed", nfail, AION_WINDOW);
}

static void test_window_boundary_requests(void **state UNUSED)
{
	const struct want w[] = {
		{ AION_MARK_START, AION_METHOD_GET, 0, 0, "/a" },
		{ AION_MARK_END, 0, 0, 0, NULL },
		{ AION_MARK_START, AION_METHOD_POST, 0, 0, "/b" },
		{ AION_MARK_END, 0, 0, 5, NULL },
		{ AION_MARK_START, AION_METHOD_GET, 0, 0, "/c" },
		{ AION_MARK_END, 0, 0, 0, NULL },
	};

	sweep_window(1, "GET /a HTTP/1.1\r\nHost: x\r\n",
		     "\r\n\r\n"
		     "POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
		     "GET /c HTTP/1.1\r\nHost: x\r\n\r\n",
		     NULL, 0, w, 6);
}

static void test_window_boundary_responses(void **state UNUSED)
{
	const __u8 head[] = { AION_METHOD_GET, AION_METHOD_GET, AION_METHOD_GET };
	const struct want w[] = {
		{ AION_MARK_START, 0, 200, 0, NULL }, { AION_MARK_END, 0, 0, 5 + 26, NULL },
		{ AION_MARK_START, 0, 404, 0, NULL }, { AION_MARK_END, 0, 0, 2, NULL },
		{ AION_MARK_START, 0, 204, 0, NULL }, { AION_MARK_END, 0, 0, 0, NULL },
	};

	sweep_window(0, "HTTP/1.1 200 OK\r\n",
		     "\r\nTransfer-Encoding: chunked\r\n\r\n"
		     "5\r\nhello\r\n1a\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\n\r\n"
		     "HTTP/1.1 404 Not Found\r\nContent-Length: 2\r\n\r\nno"
		     "HTTP/1.1 204 No Content\r\n\r\n",
		     head, 3, w, 6);
}

/* ---- interim, close-delimited, resynchronisation ------------------------- */

/* 100 Continue and the final response in separate writes, as servers send
 * them: no mark for the interim one, the request stays at the queue head. */
static void test_100_continue(void **state UNUSED)
{
	struct blob b = load("resp_python_100_continue.bin");
	const char *interim = "HTTP/1.1 100 Continue\r\n\r\n";
	size_t il = strlen(interim);
	struct sim *m = sim_new(0);
	char why[1536];
	const struct want w[] = {
		{ AION_MARK_START, 0, 201, 0, NULL }, { AION_MARK_END, 0, 0, 14, NULL },
	};

	assert_memory_equal(b.p, interim, il);
	sim_expect_method(m, AION_METHOD_POST);
	sim_data(m, b.p, il);
	assert_int_equal(m->n, 0);
	assert_int_equal(m->fr.state, AION_HF_START);
	assert_int_equal(m->fr.open, 0);
	assert_int_equal(m->qh, 0); /* still waiting for the final response */
	sim_data(m, b.p + il, b.n - il);
	if (sim_check(m, w, 2, 1, 0, why, sizeof(why)))
		fail_msg("%s", why);
	free(m);
	free(b.p);
}

/* HTTP/1.0 without length: START, body until close, no END; a start line at
 * the beginning of a later syscall ends it. */
static void test_http10_until_close(void **state UNUSED)
{
	struct blob b = load("resp_python_http10.bin"), ok = load("resp_nginx_ok.bin");
	struct sim *m = sim_new(0);

	assert_memory_equal(b.p, "HTTP/1.0 200", 12);
	sim_expect_method(m, AION_METHOD_GET);
	sim_expect_method(m, AION_METHOD_GET);
	sim_data(m, b.p, b.n);
	assert_int_equal(m->n, 1);
	assert_int_equal(m->m[0].kind, AION_MARK_START);
	assert_int_equal(m->m[0].status, 200);
	assert_int_equal(m->fr.state, AION_HF_UNTIL_CLOSE);
	assert_int_equal(m->fr.open, 1);
	/* More body, even body that looks like a status line mid-syscall. */
	sim_data(m, (const __u8 *)"more body HTTP/1.1 200 OK\r\n", 27);
	assert_int_equal(m->n, 1);
	assert_int_equal(m->garbage, 0);
	sim_data(m, ok.p, ok.n);
	assert_int_equal(m->n, 4);
	assert_int_equal(m->m[1].kind, AION_MARK_END);
	/* Its body: every byte after the header block, until the next start. */
	{
		const __u8 *hb = memmem(b.p, b.n, "\r\n\r\n", 4);

		assert_non_null(hb);
		assert_int_equal(m->m[1].body, b.n - (size_t)(hb + 4 - b.p) + 27);
	}
	assert_int_equal(m->m[2].kind, AION_MARK_START);
	assert_int_equal(m->m[3].kind, AION_MARK_END);
	assert_int_equal(m->m[3].body, 3);
	free(m);
	free(b.p);
	free(ok.p);
}

/* ---- a client's requests: the Host value -------------------------------- */

/* The Host header's value from the capture, found apart from the parser. */
static size_t oracle_host(const struct blob *b, char *out, size_t sz)
{
	size_t i, n = 0;

	for (i = 0; i + 7 < b->n; i++)
		if (!strncasecmp((const char *)b->p + i, "\r\nhost:", 7)) {
			i += 7;
			while (b->p[i] == ' ')
				i++;
			while (i < b->n && b->p[i] != '\r' && n + 1 < sz)
				out[n++] = (char)b->p[i++];
			break;
		}
	out[n] = 0;
	return n;
}

/* Every request capture, with Host marking on (a client's side): START,
 * HOST with the header's value, END, however the bytes are cut into
 * syscalls; with it off (a server's side) no HOST mark at all. */
static void test_host_marks(void **state UNUSED)
{
	__u32 ci, cut, on;

	for (ci = 0; ci < NCAPTURES; ci++) {
		const struct capture *c = &captures[ci];
		struct blob b;
		char host[AION_PATH_MAX + 1];
		size_t hl;

		if (!c->request)
			continue;
		b = load(c->file);
		hl = oracle_host(&b, host, sizeof(host));
		assert_true(hl > 0);
		for (on = 0; on < 2; on++)
			for (cut = 0; cut <= b.n; cut++) {
				struct sim *m = sim_new(1);
				__u32 i, hosts = 0, ends = 0;

				m->want_host = on;
				if (cut)
					sim_data(m, b.p, cut);
				if (cut < b.n)
					sim_data(m, b.p + cut, b.n - cut);
				for (i = 0; i < m->n; i++) {
					if (m->m[i].kind == AION_MARK_END)
						ends++;
					if (m->m[i].kind != AION_MARK_HOST)
						continue;
					hosts++;
					if (m->m[i].path_len != hl || memcmp(m->m[i].path, host, hl))
						fail_msg("%s cut at %u: host '%.*s', want '%s'", c->file, cut,
							 (int)m->m[i].path_len, m->m[i].path, host);
				}
				if (hosts != on || ends != 1 || m->garbage)
					fail_msg("%s cut at %u, marking %u: %u HOST marks, %u END, garbage %u",
						 c->file, cut, on, hosts, ends, m->garbage);
				free(m);
			}
		free(b.p);
	}
}

/* Chunk extensions are skipped to the end of their line; trailer fields,
 * each on its line, end at the empty line; the next response follows. Cut
 * at every byte, and one byte per syscall. */
static void test_chunk_extensions_and_trailers(void **state UNUSED)
{
	const char *r = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
			"5;name=v\r\nhello\r\n1a ; q=\"a;b\"\r\nabcdefghijklmnopqrstuvwxyz\r\n"
			"0;last\r\nX-Checksum: 1234\r\nX-Other: 5\r\n\r\n"
			"HTTP/1.1 404 Not Found\r\nContent-Length: 2\r\n\r\nno";
	const __u8 head[] = { AION_METHOD_GET, AION_METHOD_GET };
	const struct want w[] = {
		{ AION_MARK_START, 0, 200, 0, NULL }, { AION_MARK_END, 0, 0, 5 + 26, NULL },
		{ AION_MARK_START, 0, 404, 0, NULL }, { AION_MARK_END, 0, 0, 2, NULL },
	};
	struct blob b = { 0 };
	struct sim *m;
	char why[1536];
	size_t i;

	blob_str(&b, r);
	check_split_everywhere(&b, 0, head, 2, w, 4);
	m = sim_new(0);
	sim_expect_method(m, AION_METHOD_GET);
	sim_expect_method(m, AION_METHOD_GET);
	for (i = 0; i < b.n; i++)
		sim_data(m, b.p + i, 1);
	if (sim_check(m, w, 4, 1, 0, why, sizeof(why)))
		fail_msg("byte by byte: %s", why);
	free(m);
	free(b.p);
}

/* A chunk-size line whose extensions run past 64 bytes (aion_find_nl2): the
 * framing is lost (counted), never guessed. */
static void test_chunk_extension_too_long(void **state UNUSED)
{
	struct blob b = { 0 };
	struct sim *m = sim_new(0);
	char ext[72];

	memset(ext, 'x', sizeof(ext) - 1);
	ext[0] = ';';
	ext[sizeof(ext) - 1] = 0;
	blob_str(&b, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5");
	blob_str(&b, ext);
	blob_str(&b, "\r\nhello\r\n0\r\n\r\n");
	sim_expect_method(m, AION_METHOD_GET);
	sim_data(m, b.p, b.n);
	assert_int_equal(m->n, 1);
	assert_int_equal(m->garbage, 1);
	assert_int_equal(m->fr.state, AION_HF_OPAQUE);
	free(m);
	free(b.p);
}

/* A header block longer than AION_ROUNDS windows in one syscall: the
 * framing is lost and counted, and the next response (at the start of the
 * next syscall) ends the first one and is paired with the second request. */
static void test_header_block_over_rounds(void **state UNUSED)
{
	struct blob b = { 0 }, nf = { 0 };
	struct sim *m = sim_new(0);
	char line[128];
	int i;

	blob_str(&b, "HTTP/1.1 200 OK\r\n");
	for (i = 0; i < (AION_ROUNDS + 2) * AION_WINDOW / 40; i++) {
		snprintf(line, sizeof(line), "X-Filler-%05d: %020d\r\n", i, i);
		blob_str(&b, line);
	}
	blob_str(&b, "Content-Length: 11\r\n\r\nhello world");
	assert_true(b.n > AION_ROUNDS * AION_WINDOW);
	blob_str(&nf, "HTTP/1.1 404 Not Found\r\nContent-Length: 2\r\n\r\nno");
	sim_expect_method(m, AION_METHOD_GET);
	sim_expect_method(m, AION_METHOD_GET);
	sim_data(m, b.p, b.n);
	assert_int_equal(m->garbage, 1);
	assert_int_equal(m->n, 1);
	assert_int_equal(m->m[0].kind, AION_MARK_START);
	assert_int_equal(m->m[0].status, 200);
	sim_data(m, nf.p, nf.n);
	assert_int_equal(m->n, 4);
	assert_int_equal(m->m[1].kind, AION_MARK_END);
	assert_int_equal(m->m[2].kind, AION_MARK_START);
	assert_int_equal(m->m[2].status, 404);
	assert_int_equal(m->m[3].kind, AION_MARK_END);
	assert_int_equal(m->m[3].body, 2);
	assert_int_equal(m->qh, 2);
	free(m);
	free(b.p);
	free(nf.p);
}

/* ---- garbage ------------------------------------------------------------- */

/* A TLS 1.2/1.3 ClientHello record header and the start of its body. */
static const __u8 tls_hello[] = {
	0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03, 0x5f, 0x1c, 0x7a,
	0x3e, 0x9b, 0x02, 0x44, 0xd1, 0x0a, 0x0d, 0x0a, 0x47, 0x45, 0x54, 0x20, 0x2f, 0x20,
	0x48, 0x54, 0x54, 0x50, 0x2f, 0x31, 0x2e, 0x31, 0x0d, 0x0a, 0x00, 0x00, 0x3e, 0x13,
	0x02, 0x13, 0x03, 0x13, 0x01, 0xc0, 0x2c, 0xc0, 0x30, 0x00, 0x9f, 0xcc, 0xa9, 0xcc,
	0xa8, 0xcc, 0xaa, 0xc0, 0x2b, 0xc0, 0x2f, 0x00, 0x9e, 0xc0, 0x24, 0xc0, 0x28, 0x00,
	0x6b, 0xc0, 0x23, 0xc0, 0x27, 0x00, 0x67, 0xc0, 0x0a, 0xc0, 0x14, 0x00, 0x39, 0xc0,
	0x09, 0xc0, 0x13, 0x00, 0x33, 0x00, 0x9d, 0x00, 0x9c, 0x00, 0x3d, 0x00, 0x3c, 0x00,
	0x35, 0x00, 0x2f, 0x00, 0xff, 0x01, 0x00, 0x01, 0x75, 0x00, 0x00, 0x00, 0x0e, 0x00,
};

static void expect_garbage(int request, const __u8 *p, size_t n, const char *what)
{
	struct sim *m = sim_new(request);
	struct aion_http_scan *s = calloc(1, sizeof(*s));

	assert_non_null(s);
	sim_expect_method(m, AION_METHOD_GET);
	sim_data(m, p, n);
	if (m->n || !m->garbage || m->fr.state != AION_HF_OPAQUE || m->carry_len)
		fail_msg("%s (%s): %u marks, garbage %u, state %u, carry %u", what,
			 request ? "request" : "response", m->n, m->garbage, m->fr.state,
			 m->carry_len);
	/* Stays opaque for the rest of the stream... */
	sim_data(m, p, n);
	assert_int_equal(m->n, 0);
	/* ...until a syscall starts with a start line. */
	if (request)
		sim_data(m, (const __u8 *)"GET /again HTTP/1.1\r\n\r\n", 23);
	else
		sim_data(m, (const __u8 *)"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 38);
	assert_int_equal(m->n, 2);
	assert_int_equal(m->m[0].kind, AION_MARK_START);
	assert_int_equal(m->m[1].kind, AION_MARK_END);
	free(m);

	/* Directly: the scan flags garbage, leaves no START. */
	memcpy(s->buf, p, n < AION_WINDOW ? n : AION_WINDOW);
	s->len = n < AION_WINDOW ? n : AION_WINDOW;
	s->total = n;
	s->request = request;
	aion_http_scan(s);
	assert_int_equal(s->garbage, 1);
	assert_int_equal(s->nmarks, 0);
	free(s);
}

static void test_garbage_tls(void **state UNUSED)
{
	expect_garbage(1, tls_hello, sizeof(tls_hello), "TLS ClientHello");
	expect_garbage(0, tls_hello, sizeof(tls_hello), "TLS ClientHello");
	/* A TLS server hello + alert as a response */
	expect_garbage(0, (const __u8 *)"\x16\x03\x03\x00\x5a\x02\x00\x00\x56\x03\x03", 11,
		       "TLS ServerHello");
}

static void test_garbage_binary(void **state UNUSED)
{
	__u8 bin[600];
	size_t i;

	for (i = 0; i < sizeof(bin); i++)
		bin[i] = (__u8)i;
	expect_garbage(1, bin, sizeof(bin), "binary ramp");
	expect_garbage(0, bin, sizeof(bin), "binary ramp");
	expect_garbage(1, (const __u8 *)"\x00\x01\x02\x03GET / HTTP/1.1\r\n\r\n", 22, "NUL prefix");
	expect_garbage(1, (const __u8 *)"get / HTTP/1.1\r\n\r\n", 18, "lower-case method");
	expect_garbage(1, (const __u8 *)"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 24, "HTTP/2 preface");
	expect_garbage(0, (const __u8 *)"HTTP/2 200\r\n\r\n", 14, "HTTP/2 status");
	expect_garbage(0, (const __u8 *)"HTTP/1.1 2x0 OK\r\n\r\n", 19, "bad status");
	expect_garbage(0, (const __u8 *)"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n", 32, "SSH banner");
	/* A valid response then a bad chunk size: framing lost, not guessed. */
	{
		struct sim *m = sim_new(0);
		const char *r = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n";

		sim_expect_method(m, AION_METHOD_GET);
		sim_data(m, (const __u8 *)r, strlen(r));
		assert_int_equal(m->n, 1);
		assert_int_equal(m->garbage, 1);
		assert_int_equal(m->fr.state, AION_HF_OPAQUE);
		free(m);
	}
}

static __u64 rng_state = 0x9e3779b97f4a7c15ULL;

static __u32 rng(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return (__u32)(rng_state >> 16);
}

/* Random bytes, random syscall sizes: no START (unless the bytes happen to
 * open with a start line), invariants hold, nothing hangs. Run the binary
 * under valgrind or -fsanitize=address to check it never reads outside. */
static void test_garbage_random(void **state UNUSED)
{
	static __u8 buf[4096];
	__u32 it, i;

	rng_state = 0x9e3779b97f4a7c15ULL;
	for (it = 0; it < 4000; it++) {
		__u32 n = 1 + rng() % sizeof(buf), off = 0;
		struct sim *m = sim_new(it & 1);

		for (i = 0; i < n; i++)
			buf[i] = (__u8)rng();
		/* Steer away from the 7 start bytes so no START is legitimate. */
		if (buf[0] == 'G' || buf[0] == 'H' || buf[0] == 'P' || buf[0] == 'D' ||
		    buf[0] == 'O' || buf[0] == 'C' || buf[0] == 'T')
			buf[0] = 0;
		while (off < n) {
			__u32 k = 1 + rng() % (n - off);

			sim_data(m, buf + off, k);
			assert_true(m->carry_len < AION_CARRY);
			off += k;
		}
		for (i = 0; i < m->n; i++)
			assert_int_not_equal(m->m[i].kind, AION_MARK_START);
		assert_int_equal(m->n, 0);
		assert_true(m->garbage >= 1);
		assert_int_equal(m->fr.open, 0);
		free(m);
	}
}

/* Captures with random bytes flipped, cut at random places: whatever the
 * marks, the invariants hold (path offsets inside the window, START/END
 * alternate per message, pos never past total). */
static void test_mutated_captures(void **state UNUSED)
{
	__u32 it, i;

	rng_state = 0x1234567887654321ULL;
	for (i = 0; i < NCAPTURES; i++) {
		const struct capture *c = &captures[i];
		struct blob b = load(c->file);

		for (it = 0; it < 300; it++) {
			__u8 *p = malloc(b.n);
			struct sim *m = capture_sim(c);
			__u32 flips = 1 + rng() % 8, j, off = 0, opened = 0;

			assert_non_null(p);
			memcpy(p, b.p, b.n);
			for (j = 0; j < flips; j++) {
				__u32 at = rng() % (b.n < 600 ? b.n : 600);

				p[at] = j & 1 ? (__u8)rng() : (__u8)"\r\n0 9:aGH"[rng() % 9];
			}
			while (off < b.n) {
				__u32 k = 1 + rng() % (b.n - off);

				sim_data(m, p + off, k);
				off += k;
			}
			for (j = 0; j < m->n; j++) {
				if (m->m[j].kind == AION_MARK_START) {
					assert_true(m->m[j].path_len <= AION_PATH_MAX);
					opened++;
				}
			}
			assert_true(m->n <= 2 * opened + 1);
			free(p);
			free(m);
		}
		free(b.p);
	}
}

/* ---- step budget --------------------------------------------------------- */

/* A header block of many tiny lines: one step per line. The scan must not
 * stop inside the window without telling the caller why (the kernel would
 * treat the rest of the syscall as consumed and lose the framing). */
static void test_many_short_header_lines(void **state UNUSED)
{
	struct blob b = { 0 };
	struct sim *m = sim_new(1);
	char why[1536];
	const struct want w[] = {
		{ AION_MARK_START, AION_METHOD_POST, 0, 0, "/many" },
		{ AION_MARK_END, 0, 0, 2, NULL },
		{ AION_MARK_START, AION_METHOD_GET, 0, 0, "/next" },
		{ AION_MARK_END, 0, 0, 0, NULL },
	};
	int i;

	blob_str(&b, "POST /many HTTP/1.1\r\n");
	for (i = 0; i < 190; i++)
		blob_str(&b, "a:1\r\n");
	blob_str(&b, "Content-Length: 2\r\n\r\nokGET /next HTTP/1.1\r\n\r\n");
	assert_true(b.n <= AION_WINDOW);
	sim_data(m, b.p, b.n);
	if (sim_check(m, w, 4, 1, 0, why, sizeof(why)))
		fail_msg("%zu-byte request with 190 header lines: %s", b.n, why);
	free(m);
	free(b.p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_captures_one_piece),
		cmocka_unit_test(test_captures_split_everywhere),
		cmocka_unit_test(test_captures_byte_by_byte),
		cmocka_unit_test(test_pipelined_three_requests),
		cmocka_unit_test(test_pipelined_ten_requests_marks_full),
		cmocka_unit_test(test_pipelined_three_responses),
		cmocka_unit_test(test_pipelined_head_responses),
		cmocka_unit_test(test_post_body_then_get),
		cmocka_unit_test(test_large_response),
		cmocka_unit_test(test_window_boundary_requests),
		cmocka_unit_test(test_window_boundary_responses),
		cmocka_unit_test(test_100_continue),
		cmocka_unit_test(test_http10_until_close),
		cmocka_unit_test(test_host_marks),
		cmocka_unit_test(test_chunk_extensions_and_trailers),
		cmocka_unit_test(test_chunk_extension_too_long),
		cmocka_unit_test(test_header_block_over_rounds),
		cmocka_unit_test(test_garbage_tls),
		cmocka_unit_test(test_garbage_binary),
		cmocka_unit_test(test_garbage_random),
		cmocka_unit_test(test_mutated_captures),
		cmocka_unit_test(test_many_short_header_lines),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
