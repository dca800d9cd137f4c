// SPDX-License-Identifier: GPL-2.0
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "expo.h"
#include "strbuf.h"

#define UNUSED __attribute__((unused))

struct render_ctx {
	int err;
	int calls;
	char *text;
};

static int render(struct strbuf *out, void *arg)
{
	struct render_ctx *r = arg;

	__atomic_add_fetch(&r->calls, 1, __ATOMIC_RELAXED);
	if (r->err)
		return r->err;
	return strbuf__puts(out, r->text);
}

static unsigned free_port(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	assert_true(fd >= 0);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
	close(fd);
	return ntohs(a.sin_port);
}

struct resp {
	int status;
	char *raw;	/* whole response, NUL-terminated */
	size_t raw_len;
	char *headers;	/* points into raw, NUL at the blank line */
	char *body;
	size_t body_len;
};

static void resp_free(struct resp *r)
{
	free(r->raw);
}

/* Sends req as is and reads until the server closes. */
static void http(unsigned port, const char *req, struct resp *r)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	struct timeval tv = { .tv_sec = 5 };
	size_t cap = 4096, off, n = strlen(req);
	char *sep;
	ssize_t got;
	int fd;

	memset(r, 0, sizeof(*r));
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	a.sin_port = htons(port);
	fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(fd >= 0);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	for (off = 0; off < n; off += got) {
		got = write(fd, req + off, n - off);
		assert_true(got > 0);
	}
	r->raw = malloc(cap);
	assert_non_null(r->raw);
	for (off = 0;;) {
		if (cap - off < 1024) {
			cap *= 2;
			r->raw = realloc(r->raw, cap);
			assert_non_null(r->raw);
		}
		got = read(fd, r->raw + off, cap - off - 1);
		if (got <= 0)
			break;
		off += got;
	}
	close(fd);
	r->raw[off] = '\0';
	r->raw_len = off;
	assert_true(sscanf(r->raw, "HTTP/1.%*d %d", &r->status) == 1);
	sep = strstr(r->raw, "\r\n\r\n");
	assert_non_null(sep);
	*sep = '\0';
	r->headers = r->raw;
	r->body = sep + 4;
	r->body_len = r->raw + off - r->body;
}

/* Header value (case-insensitive name), or NULL. */
static const char *header(struct resp *r, const char *name, char *buf,
			  size_t sz)
{
	const char *p = strstr(r->headers, "\r\n");
	size_t n = strlen(name);

	while (p) {
		p += 2;
		if (!strncasecmp(p, name, n) && p[n] == ':') {
			const char *v = p + n + 1;
			size_t vl;

			while (*v == ' ')
				v++;
			vl = strcspn(v, "\r");
			snprintf(buf, sz, "%.*s", (int)vl, v);
			return buf;
		}
		p = strstr(p, "\r\n");
	}
	return NULL;
}

static void get(unsigned port, const char *method, const char *path,
		const char *extra, struct resp *r)
{
	char req[512];

	snprintf(req, sizeof(req),
		 "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n%s\r\n",
		 method, path, extra ? extra : "");
	http(port, req, r);
}

struct fixture {
	struct render_ctx rc;
	struct expo *e;
	unsigned port;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	struct expo_opts o;
	char listen[32];
	struct strbuf sb;
	int i;

	if (!f)
		return -1;
	/* ~60 KiB of metrics-like text: gzip has something to chew on. */
	strbuf__init(&sb);
	for (i = 0; i < 1000; i++)
		strbuf__printf(&sb, "test_metric_total{i=\"%d\"} %d\n", i, i * 7);
	f->rc.text = strbuf__detach(&sb, NULL);
	f->port = free_port();
	snprintf(listen, sizeof(listen), "127.0.0.1:%u", f->port);
	o = (struct expo_opts){ .listen = listen, .render = render,
				.arg = &f->rc };
	f->e = expo__start(&o);
	if (!f->e)
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	expo__stop(f->e);
	free(f->rc.text);
	free(f);
	return 0;
}

static void test_health(void **state)
{
	struct fixture *f = *state;
	struct resp r;

	assert_int_equal(expo__port(f->e), f->port);
	get(f->port, "GET", "/healthz", NULL, &r);
	assert_int_equal(r.status, 200);
	assert_string_equal(r.body, "ok\n");
	resp_free(&r);
	get(f->port, "GET", "/health", NULL, &r);
	assert_int_equal(r.status, 200);
	assert_string_equal(r.body, "ok\n");
	resp_free(&r);
}

static void test_readyz(void **state)
{
	struct fixture *f = *state;
	struct resp r;

	get(f->port, "GET", "/readyz", NULL, &r);
	assert_int_equal(r.status, 503);
	assert_string_equal(r.body, "not ready\n");
	resp_free(&r);
	expo__set_ready(f->e, 1);
	get(f->port, "GET", "/readyz", NULL, &r);
	assert_int_equal(r.status, 200);
	assert_string_equal(r.body, "ready\n");
	resp_free(&r);
	expo__set_ready(f->e, 0);
	get(f->port, "GET", "/readyz", NULL, &r);
	assert_int_equal(r.status, 503);
	resp_free(&r);
}

static void test_metrics_plain(void **state)
{
	struct fixture *f = *state;
	char h[128];
	struct resp r;

	get(f->port, "GET", "/metrics", NULL, &r);
	assert_int_equal(r.status, 200);
	assert_int_equal(r.body_len, strlen(f->rc.text));
	assert_memory_equal(r.body, f->rc.text, r.body_len);
	assert_non_null(header(&r, "Content-Type", h, sizeof(h)));
	assert_string_equal(h, "text/plain; version=0.0.4; charset=utf-8");
	assert_null(header(&r, "Content-Encoding", h, sizeof(h)));
	resp_free(&r);

	/* Query strings are ignored; gzip;q=0 means no gzip. */
	get(f->port, "GET", "/metrics?x=1", "Accept-Encoding: gzip;q=0\r\n", &r);
	assert_int_equal(r.status, 200);
	assert_null(header(&r, "Content-Encoding", h, sizeof(h)));
	assert_memory_equal(r.body, f->rc.text, r.body_len);
	resp_free(&r);
}

static void test_metrics_gzip(void **state)
{
	static const char *accept[] = {
		"Accept-Encoding: gzip\r\n",
		"Accept-Encoding: identity, GZIP;q=0.5\r\n",
		"Accept-Encoding: deflate,x-gzip\r\n",
	};
	struct fixture *f = *state;
	size_t want = strlen(f->rc.text), i;
	char *out = malloc(want + 16);
	char h[128];
	struct resp r;
	z_stream zs;

	assert_non_null(out);
	for (i = 0; i < sizeof(accept) / sizeof(accept[0]); i++) {
		get(f->port, "GET", "/metrics", accept[i], &r);
		assert_int_equal(r.status, 200);
		assert_non_null(header(&r, "Content-Encoding", h, sizeof(h)));
		assert_string_equal(h, "gzip");
		assert_non_null(header(&r, "Vary", h, sizeof(h)));
		assert_string_equal(h, "Accept-Encoding");
		assert_true(r.body_len < want / 4);

		memset(&zs, 0, sizeof(zs));
		assert_int_equal(inflateInit2(&zs, 16 + MAX_WBITS), Z_OK);
		zs.next_in = (Bytef *)r.body;
		zs.avail_in = r.body_len;
		zs.next_out = (Bytef *)out;
		zs.avail_out = want + 16;
		assert_int_equal(inflate(&zs, Z_FINISH), Z_STREAM_END);
		assert_int_equal(zs.total_out, want);
		assert_memory_equal(out, f->rc.text, want);
		inflateEnd(&zs);
		resp_free(&r);
	}
	free(out);
}

static void test_head(void **state)
{
	struct fixture *f = *state;
	char h[64];
	struct resp r;

	get(f->port, "HEAD", "/metrics", NULL, &r);
	assert_int_equal(r.status, 200);
	assert_int_equal(r.body_len, 0);
	assert_non_null(header(&r, "Content-Length", h, sizeof(h)));
	assert_int_equal(strtoul(h, NULL, 10), strlen(f->rc.text));
	resp_free(&r);
}

static void test_render_error(void **state)
{
	struct fixture *f = *state;
	struct resp r;

	f->rc.err = -EIO;
	get(f->port, "GET", "/metrics", NULL, &r);
	f->rc.err = 0;
	assert_int_equal(r.status, 500);
	resp_free(&r);
	get(f->port, "GET", "/metrics", NULL, &r);
	assert_int_equal(r.status, 200);
	resp_free(&r);
}

static void test_methods_and_paths(void **state)
{
	struct fixture *f = *state;
	int calls = f->rc.calls;
	char h[64];
	struct resp r;

	get(f->port, "POST", "/metrics", "Content-Length: 0\r\n", &r);
	assert_int_equal(r.status, 405);
	assert_non_null(header(&r, "Allow", h, sizeof(h)));
	assert_string_equal(h, "GET, HEAD");
	resp_free(&r);

	/* A body is never read into anything. */
	http(f->port, "PUT /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
		      "Content-Length: 11\r\n\r\nhello world", &r);
	assert_int_equal(r.status, 405);
	resp_free(&r);
	assert_int_equal(f->rc.calls, calls);

	get(f->port, "GET", "/nope", NULL, &r);
	assert_int_equal(r.status, 404);
	resp_free(&r);
	get(f->port, "GET", "/metricsx", NULL, &r);
	assert_int_equal(r.status, 404);
	resp_free(&r);

	get(f->port, "GET", "/", NULL, &r);
	assert_int_equal(r.status, 200);
	assert_non_null(header(&r, "Content-Type", h, sizeof(h)));
	assert_true(!strncmp(h, "text/html", 9));
	assert_non_null(strstr(r.body, "href=\"/metrics\""));
	resp_free(&r);

	/* HTTP/1.0 without Host works too. */
	http(f->port, "GET /healthz HTTP/1.0\r\n\r\n", &r);
	assert_int_equal(r.status, 200);
	resp_free(&r);
}

/* Basic auth: 401 with the realm, probes open, a verified password cached
 * (no bcrypt, so never 429), bcrypt checks of others rationed (429). */
static void test_basic_auth(void **state UNUSED)
{
	/* bcrypt of "scrape pw", cost 4 (fast enough for a unit test). */
	const struct webconfig_user users[] = {
		{ "prom", "$2b$04$xhDvx242JmWxPvu8.bPzV.WaBvm6BaugJAyqnvKGgLA7DukmQSuLq" },
	};
	struct render_ctx rc = { .text = "m 1\n" };
	struct expo_opts o = { .render = render, .arg = &rc, .users = users, .nusers = 1 };
	const char *good = "Authorization: Basic cHJvbTpzY3JhcGUgcHc=\r\n";      /* prom:scrape pw */
	const char *wrong = "Authorization: Basic cHJvbTp3cm9uZw==\r\n";         /* prom:wrong */
	unsigned port = free_port(), n401 = 0, n429 = 0, i;
	char listen[32], buf[128];
	struct timespec t0, t1;
	struct resp r;
	struct expo *e;
	double dt;

	snprintf(listen, sizeof(listen), "127.0.0.1:%u", port);
	o.listen = listen;
	e = expo__start(&o);
	assert_non_null(e);
	expo__set_ready(e, 1);

	get(port, "GET", "/metrics", NULL, &r);
	assert_int_equal(r.status, 401);
	assert_string_equal(header(&r, "WWW-Authenticate", buf, sizeof(buf)), "Basic realm=\"aion\"");
	assert_int_equal(rc.calls, 0);
	resp_free(&r);
	get(port, "GET", "/", NULL, &r);
	assert_int_equal(r.status, 401);
	resp_free(&r);
	get(port, "GET", "/healthz", NULL, &r);
	assert_int_equal(r.status, 200);
	resp_free(&r);
	get(port, "GET", "/readyz", NULL, &r);
	assert_int_equal(r.status, 200);
	resp_free(&r);

	get(port, "GET", "/metrics", good, &r);
	assert_int_equal(r.status, 200);
	assert_string_equal(r.body, "m 1\n");
	resp_free(&r);

	/* Wrong passwords as fast as possible: bcrypt at most 2 a second
	 * (plus 2 in reserve, one of them already spent above). */
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (i = 0; i < 20; i++) {
		get(port, "GET", "/metrics", wrong, &r);
		if (r.status == 429) {
			n429++;
			assert_string_equal(header(&r, "Retry-After", buf, sizeof(buf)), "1");
		} else {
			assert_int_equal(r.status, 401);
			n401++;
		}
		resp_free(&r);
		/* The verified password needs no bcrypt: never rationed. */
		get(port, "GET", "/metrics", good, &r);
		assert_int_equal(r.status, 200);
		resp_free(&r);
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	dt = (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
	assert_true(n401 >= 1);
	assert_true(n401 <= 2 + 2 * dt);
	assert_int_equal(n401 + n429, 20);
	assert_true(n429 >= 1);
	expo__stop(e);
}

struct slow_req {
	unsigned port;
	int status;
	int seq;
	int *order;
};

static void *wrong_password(void *arg)
{
	struct slow_req *q = arg;
	struct resp r;

	get(q->port, "GET", "/metrics", "Authorization: Basic cHJvbTp3cm9uZw==\r\n", &r);
	q->status = r.status;
	q->seq = __atomic_add_fetch(q->order, 1, __ATOMIC_SEQ_CST);
	resp_free(&r);
	return NULL;
}

/* bcrypt runs beside the HTTP thread: while a wrong password's check at
 * cost 12 (~0.5 s) runs, a verified scraper is answered. */
static void test_basic_auth_does_not_block(void **state UNUSED)
{
	const struct webconfig_user users[] = {
		{ "prom", "$2b$12$Nj/HRPwM4kg678.cAlG7xOvJjN2MJ7TJDYTLv84Tt50grVNN6Mgju" },
	};
	struct render_ctx rc = { .text = "m 1\n" };
	struct expo_opts o = { .render = render, .arg = &rc, .users = users, .nusers = 1 };
	const char *good = "Authorization: Basic cHJvbTpzY3JhcGUgcHc=\r\n";
	struct slow_req q = {};
	int order = 0, mine;
	char listen[32];
	struct resp r;
	pthread_t t;
	struct expo *e;

	q.port = free_port();
	q.order = &order;
	snprintf(listen, sizeof(listen), "127.0.0.1:%u", q.port);
	o.listen = listen;
	e = expo__start(&o);
	assert_non_null(e);
	get(q.port, "GET", "/metrics", good, &r);	/* bcrypt once, then cached */
	assert_int_equal(r.status, 200);
	resp_free(&r);
	assert_int_equal(pthread_create(&t, NULL, wrong_password, &q), 0);
	usleep(100 * 1000);				/* its bcrypt is running */
	get(q.port, "GET", "/metrics", good, &r);
	mine = __atomic_add_fetch(&order, 1, __ATOMIC_SEQ_CST);
	assert_int_equal(r.status, 200);
	resp_free(&r);
	pthread_join(t, NULL);
	assert_int_equal(q.status, 401);
	assert_int_equal(mine, 1);			/* answered first */
	assert_int_equal(q.seq, 2);
	expo__stop(e);
}

/* A client that leaves while its password is checked does not keep the
 * one bcrypt slot: the next check runs (200, not 429). */
static void test_basic_auth_client_leaves(void **state UNUSED)
{
	const struct webconfig_user users[] = {
		{ "prom", "$2b$12$Nj/HRPwM4kg678.cAlG7xOvJjN2MJ7TJDYTLv84Tt50grVNN6Mgju" },
	};
	struct render_ctx rc = { .text = "m 1\n" };
	struct expo_opts o = { .render = render, .arg = &rc, .users = users, .nusers = 1 };
	const char req[] = "GET /metrics HTTP/1.1\r\nHost: x\r\n"
			   "Authorization: Basic cHJvbTp3cm9uZw==\r\n\r\n";
	struct sockaddr_in a = { .sin_family = AF_INET };
	unsigned port = free_port();
	char listen[32];
	struct resp r;
	struct expo *e;
	int fd, i;

	snprintf(listen, sizeof(listen), "127.0.0.1:%u", port);
	o.listen = listen;
	e = expo__start(&o);
	assert_non_null(e);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	a.sin_port = htons(port);
	fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(write(fd, req, sizeof(req) - 1), (ssize_t)sizeof(req) - 1);
	usleep(100 * 1000);
	close(fd);
	/* The right password: 429 while that check runs, then 200. */
	for (i = 0; i < 100; i++) {
		get(port, "GET", "/metrics", "Authorization: Basic cHJvbTpzY3JhcGUgcHc=\r\n", &r);
		if (r.status != 429)
			break;
		resp_free(&r);
		usleep(100 * 1000);
	}
	assert_int_equal(r.status, 200);
	resp_free(&r);
	expo__stop(e);
}

static void test_parse_listen(void **state UNUSED)
{
	static const char *bad[] = {
		"9090x", "1.2.3.4", "1.2.3.4:0", "1.2.3.4:70000", "[::1]",
		"host:80", "", ":", "1.2.3.4:", "1.2.3.4:+80", "1.2.3.4:-1",
		"1.2.3.4: 80", "::1:9090", "[::1]9090", "[::1]:", "[zz]:80",
		"1.2.3:80", "1.2.3.4.5:80", "256.1.1.1:80", "1.2.3.4:080000",
		"1.2.3.4:0x50", "localhost:9090", "[1.2.3.4]:80",
	};
	struct sockaddr_storage ss;
	struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;
	socklen_t len;
	size_t i;

	assert_int_equal(expo__parse_listen("127.0.0.1:9090", &ss, &len), 0);
	assert_int_equal(ss.ss_family, AF_INET);
	assert_int_equal(len, sizeof(struct sockaddr_in));
	assert_int_equal(ntohs(a4->sin_port), 9090);
	assert_int_equal(ntohl(a4->sin_addr.s_addr), INADDR_LOOPBACK);

	assert_int_equal(expo__parse_listen("0.0.0.0:1", &ss, &len), 0);
	assert_int_equal(ntohs(a4->sin_port), 1);
	assert_int_equal(a4->sin_addr.s_addr, htonl(INADDR_ANY));

	assert_int_equal(expo__parse_listen("1.2.3.4:65535", &ss, &len), 0);
	assert_int_equal(ntohs(a4->sin_port), 65535);

	assert_int_equal(expo__parse_listen("[::1]:9090", &ss, &len), 0);
	assert_int_equal(ss.ss_family, AF_INET6);
	assert_int_equal(len, sizeof(struct sockaddr_in6));
	assert_int_equal(ntohs(a6->sin6_port), 9090);
	assert_memory_equal(&a6->sin6_addr, &in6addr_loopback,
			    sizeof(in6addr_loopback));

	/* ":PORT" means every address. */
	assert_int_equal(expo__parse_listen(":9090", &ss, &len), 0);
	assert_int_equal(ss.ss_family, AF_INET6);
	assert_int_equal(ntohs(a6->sin6_port), 9090);
	assert_memory_equal(&a6->sin6_addr, &in6addr_any, sizeof(in6addr_any));

	assert_int_equal(expo__parse_listen("[::]:80", &ss, &len), 0);
	assert_int_equal(expo__parse_listen("[::ffff:10.0.0.1]:80", &ss, &len), 0);

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (expo__parse_listen(bad[i], &ss, &len) != -EINVAL)
			fail_msg("accepted '%s'", bad[i]);
	assert_int_equal(expo__parse_listen(NULL, &ss, &len), -EINVAL);
}

static void test_start_errors(void **state UNUSED)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	struct expo_opts o = { .render = render };
	socklen_t len = sizeof(a);
	char addr[32];
	int fd;

	o.listen = "nonsense";
	errno = 0;
	assert_null(expo__start(&o));
	assert_int_equal(errno, EINVAL);
	assert_null(expo__start(NULL));

	/* A port somebody else listens on. */
	fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(fd >= 0);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(fd, 1), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
	snprintf(addr, sizeof(addr), "127.0.0.1:%u", ntohs(a.sin_port));
	o.listen = addr;
	errno = 0;
	assert_null(expo__start(&o));
	assert_int_equal(errno, EADDRINUSE);
	close(fd);

	expo__stop(NULL);
}

static void test_start_stop_ipv6(void **state UNUSED)
{
	struct expo_opts o = { .render = render };
	char listen[32];
	struct expo *e;
	int fd = socket(AF_INET6, SOCK_STREAM, 0);

	/* The machines this runs on have IPv6 loopback: its absence is a
	 * failure that says so, not a skip. */
	if (fd < 0)
		fail_msg("no IPv6 socket on this host (%s): this test needs ::1", strerror(errno));
	close(fd);
	snprintf(listen, sizeof(listen), "[::1]:%u", free_port());
	o.listen = listen;
	e = expo__start(&o);
	if (!e)
		fail_msg("cannot listen on %s: %s (this test needs IPv6 loopback)", listen, strerror(errno));
	expo__stop(e);
}

static void test_all_addresses(void **state UNUSED)
{
	struct render_ctx rc = { .text = "x 1\n" };
	struct expo_opts o = { .render = render, .arg = &rc };
	unsigned port = free_port();
	char addr[32];
	struct resp r;
	struct expo *e;

	/* ":PORT" listens on IPv6 and IPv4 (or IPv4 alone without IPv6). */
	snprintf(addr, sizeof(addr), ":%u", port);
	o.listen = addr;
	e = expo__start(&o);
	assert_non_null(e);
	assert_int_equal(expo__port(e), port);
	get(port, "GET", "/metrics", NULL, &r);
	assert_int_equal(r.status, 200);
	assert_string_equal(r.body, "x 1\n");
	resp_free(&r);
	expo__stop(e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_health, setup, teardown),
		cmocka_unit_test_setup_teardown(test_readyz, setup, teardown),
		cmocka_unit_test_setup_teardown(test_metrics_plain, setup, teardown),
		cmocka_unit_test_setup_teardown(test_metrics_gzip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_head, setup, teardown),
		cmocka_unit_test_setup_teardown(test_render_error, setup, teardown),
		cmocka_unit_test_setup_teardown(test_methods_and_paths, setup, teardown),
		cmocka_unit_test(test_basic_auth),
		cmocka_unit_test(test_basic_auth_does_not_block),
		cmocka_unit_test(test_basic_auth_client_leaves),
		cmocka_unit_test(test_parse_listen),
		cmocka_unit_test(test_start_errors),
		cmocka_unit_test(test_start_stop_ipv6),
		cmocka_unit_test(test_all_addresses),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
