// SPDX-License-Identifier: GPL-2.0
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <crypt.h>
#include <microhttpd.h>
#include <zlib.h>

#include "expo.h"

/* Limits of the endpoint (README "Endpoints"). At EXPO_CONN_LIMIT MHD
 * stops accepting, and new connections, a scraper's included, wait in the
 * backlog until one closes: EXPO_PER_IP_LIMIT keeps one client address
 * from getting there (MHD accepts and closes its connections beyond it). */
#define EXPO_CONN_LIMIT 256
#define EXPO_PER_IP_LIMIT 16
/* Idle connections (nothing received or sent for this long) are closed. */
#define EXPO_CONN_TIMEOUT_S 10
/* Per connection, request line and headers included: beyond it MHD
 * answers 431 (headers) or 414 (URI) and closes. */
#define EXPO_CONN_MEMORY (32 * 1024)
/* bcrypt checks of not yet verified credentials: one costs ~100 ms of CPU
 * at cost 10, more at higher costs. They run one at a time on their own
 * thread (the HTTP thread serves scrapes meanwhile), at most this many a
 * second (a token bucket with as many in reserve); beyond, or while one
 * runs, 429. Verified ones are cached. */
#define EXPO_BCRYPT_PER_S 2
#define EXPO_PASS_MAX 256
#define EXPO_REALM "aion"
#define EXPO_LOG_PER_MIN 10
#define METRICS_CTYPE "text/plain; version=0.0.4; charset=utf-8"

struct expo_user {
	char *name;
	char *hash;
	/* The last password bcrypt accepted, zero-padded, so that a scraper
	 * pays bcrypt once, not on every scrape. */
	char ok[EXPO_PASS_MAX];
	bool has_ok;
};

/* The one bcrypt check in flight: its connection is suspended until the
 * worker resumes it. */
enum { JOB_IDLE, JOB_QUEUED, JOB_RUNNING, JOB_DONE };

struct auth_job {
	int state;		/* under expo.mu */
	struct MHD_Connection *c;
	int user;		/* index in expo.users; -1: no such user */
	char pass[EXPO_PASS_MAX];
	bool ok;
};

struct expo {
	struct MHD_Daemon *d;
	expo_render_fn render;
	void *arg;
	int ready;		/* read on the HTTP thread: __atomic */
	int starting;		/* hold back libmicrohttpd's own start errors */
	unsigned port;
	bool tls;
	/* Basic auth: users' caches and the bucket on the HTTP thread, the
	 * job shared with the bcrypt worker under mu. */
	struct expo_user *users;
	unsigned nusers;
	double tokens;		/* bcrypt checks left (token bucket) */
	struct timespec refill;
	struct crypt_data *cd;	/* the worker's */
	pthread_t worker;
	bool worker_up;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool stop;
	struct auth_job job;
	/* libmicrohttpd's messages (mostly about clients: limits reached,
	 * TLS errors): EXPO_LOG_PER_MIN a minute, or a client could fill the
	 * logs. Written on the HTTP thread only. */
	time_t log_window;
	unsigned log_lines;
	unsigned long log_quiet;
};

static int parse_port(const char *s, in_port_t *port)
{
	unsigned long v = 0;
	size_t i;

	/* Digits only: strtoul would take signs, spaces and "0x". */
	for (i = 0; s[i]; i++) {
		if (s[i] < '0' || s[i] > '9' || i >= 5)
			return -EINVAL;
		v = v * 10 + (s[i] - '0');
	}
	if (!i || v < 1 || v > 65535)
		return -EINVAL;
	*port = htons((in_port_t)v);
	return 0;
}

int expo__parse_listen(const char *s, struct sockaddr_storage *ss,
		       socklen_t *len)
{
	char host[INET6_ADDRSTRLEN];
	const char *colon, *port;
	size_t n;
	in_port_t p;

	if (!s || !ss || !len)
		return -EINVAL;
	memset(ss, 0, sizeof(*ss));
	if (s[0] == '[') {
		const char *rb = strchr(s, ']');

		if (!rb || rb[1] != ':')
			return -EINVAL;
		n = rb - (s + 1);
		port = rb + 2;
		if (n >= sizeof(host))
			return -EINVAL;
		memcpy(host, s + 1, n);
		host[n] = '\0';
	} else {
		colon = strrchr(s, ':');
		/* An unbracketed IPv6 address has several colons: refuse it. */
		if (!colon || memchr(s, ':', colon - s))
			return -EINVAL;
		n = colon - s;
		port = colon + 1;
		if (n >= sizeof(host))
			return -EINVAL;
		memcpy(host, s, n);
		host[n] = '\0';
	}
	if (parse_port(port, &p))
		return -EINVAL;

	if (s[0] == '[' || !host[0]) {
		struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;

		/* ":PORT" is every address: the IPv6 wildcard, dual stack. */
		if (host[0] && inet_pton(AF_INET6, host, &a6->sin6_addr) != 1)
			return -EINVAL;
		if (!host[0])
			a6->sin6_addr = in6addr_any;
		a6->sin6_family = AF_INET6;
		a6->sin6_port = p;
		*len = sizeof(*a6);
	} else {
		struct sockaddr_in *a4 = (struct sockaddr_in *)ss;

		if (inet_pton(AF_INET, host, &a4->sin_addr) != 1)
			return -EINVAL;
		a4->sin_family = AF_INET;
		a4->sin_port = p;
		*len = sizeof(*a4);
	}
	return 0;
}

static void expo__log(void *cls, const char *fmt, va_list ap)
{
	struct expo *e = cls;
	struct timespec now;
	char msg[256];
	size_t n;

	if (__atomic_load_n(&e->starting, __ATOMIC_RELAXED))
		return;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	n = strlen(msg);
	while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
		msg[--n] = '\0';
	clock_gettime(CLOCK_MONOTONIC, &now);
	if (now.tv_sec - e->log_window >= 60) {
		if (e->log_quiet)
			fprintf(stderr, "expo: libmicrohttpd: %lu more messages in the last minute "
				"not shown\n", e->log_quiet);
		e->log_window = now.tv_sec;
		e->log_lines = 0;
		e->log_quiet = 0;
	}
	if (e->log_lines == EXPO_LOG_PER_MIN) {
		e->log_quiet++;
		return;
	}
	e->log_lines++;
	if (!strncmp(msg, "Server reached", 14)) {
		fprintf(stderr, "expo: libmicrohttpd: %s (limits: %d connections, %d per client "
			"address)\n", msg, EXPO_CONN_LIMIT, EXPO_PER_IP_LIMIT);
		return;
	}
	fprintf(stderr, "expo: libmicrohttpd: %s\n", msg);
}

static enum MHD_Result expo__reply(struct MHD_Connection *c, unsigned code,
				   const char *ctype, const char *body)
{
	struct MHD_Response *r;
	enum MHD_Result ret;

	/* Static bodies: MHD may point at them without copying. */
	r = MHD_create_response_from_buffer(strlen(body), (void *)body,
					    MHD_RESPMEM_PERSISTENT);
	if (!r)
		return MHD_NO;
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
	if (code == MHD_HTTP_METHOD_NOT_ALLOWED)
		MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
	if (code == MHD_HTTP_TOO_MANY_REQUESTS)
		MHD_add_response_header(r, MHD_HTTP_HEADER_RETRY_AFTER, "1");
	if (code == MHD_HTTP_UNAUTHORIZED)
		ret = MHD_queue_basic_auth_fail_response(c, EXPO_REALM, r);
	else
		ret = MHD_queue_response(c, code, r);
	MHD_destroy_response(r);
	return ret;
}

/* Is there a "q=0" (or 0.0, 0.000) among the ";"-separated params? */
static bool params__q_zero(const char *p, const char *end)
{
	while (p < end) {
		const char *pe = memchr(p, ';', end - p);

		if (!pe)
			pe = end;
		while (p < pe && (*p == ' ' || *p == '\t'))
			p++;
		if (pe - p >= 2 && (*p == 'q' || *p == 'Q') && p[1] == '=') {
			const char *v = p + 2;

			if (v == pe || *v != '0')
				return false;
			for (v++; v < pe && (*v == '.' || *v == '0'); v++)
				;
			while (v < pe && (*v == ' ' || *v == '\t'))
				v++;
			return v == pe;
		}
		if (pe == end)
			break;
		p = pe + 1;
	}
	return false;
}

/* Does Accept-Encoding list gzip, and not with q=0? */
static bool accepts_gzip(const char *ae)
{
	const char *p = ae;

	while (*p) {
		const char *tok, *end = strchr(p, ',');
		size_t tn;

		if (!end)
			end = p + strlen(p);
		while (p < end && (*p == ' ' || *p == '\t'))
			p++;
		tok = p;
		while (p < end && *p != ';' && *p != ' ' && *p != '\t')
			p++;
		tn = p - tok;
		if (((tn == 4 && !strncasecmp(tok, "gzip", 4)) ||
		     (tn == 6 && !strncasecmp(tok, "x-gzip", 6))) &&
		    !params__q_zero(p, end))
			return true;
		if (!*end)
			break;
		p = end + 1;
	}
	return false;
}

/* gzip-wrapped deflate of (buf, len) into a new malloc'd buffer. */
static void *gzip__compress(const char *buf, size_t len, size_t *out_len)
{
	z_stream zs;
	uLong bound;
	void *out;

	if (len > UINT_MAX)
		return NULL;
	memset(&zs, 0, sizeof(zs));
	/* 15 + 16: 32 KiB window with the gzip header and trailer. */
	if (deflateInit2(&zs, Z_BEST_SPEED, Z_DEFLATED, 15 + 16, 8,
			 Z_DEFAULT_STRATEGY) != Z_OK)
		return NULL;
	bound = deflateBound(&zs, len);
	out = bound <= UINT_MAX ? malloc(bound) : NULL;
	if (!out) {
		deflateEnd(&zs);
		return NULL;
	}
	zs.next_in = (Bytef *)buf;
	zs.avail_in = len;
	zs.next_out = out;
	zs.avail_out = bound;
	if (deflate(&zs, Z_FINISH) != Z_STREAM_END) {
		deflateEnd(&zs);
		free(out);
		return NULL;
	}
	*out_len = zs.total_out;
	deflateEnd(&zs);
	return out;
}

static enum MHD_Result expo__metrics(struct expo *e, struct MHD_Connection *c)
{
	const char *ae;
	struct MHD_Response *r;
	struct strbuf sb;
	enum MHD_Result ret;
	size_t len, zlen;
	void *body, *z;
	bool gz = false;
	int err;

	strbuf__init(&sb);
	err = e->render ? e->render(&sb, e->arg) : 0;
	if (!err && sb.oom)
		err = -ENOMEM;
	if (err) {
		fprintf(stderr, "expo: rendering /metrics failed: %s\n",
			strerror(-err));
		strbuf__free(&sb);
		return expo__reply(c, MHD_HTTP_INTERNAL_SERVER_ERROR,
				   "text/plain; charset=utf-8",
				   "metrics rendering failed\n");
	}
	body = strbuf__detach(&sb, &len);
	if (!body)
		return MHD_NO;

	ae = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
					 MHD_HTTP_HEADER_ACCEPT_ENCODING);
	if (ae && accepts_gzip(ae)) {
		/* On failure fall back to the identity encoding. */
		z = gzip__compress(body, len, &zlen);
		if (z) {
			free(body);
			body = z;
			len = zlen;
			gz = true;
		}
	}
	r = MHD_create_response_from_buffer_with_free_callback(len, body, free);
	if (!r) {
		free(body);
		return MHD_NO;
	}
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, METRICS_CTYPE);
	MHD_add_response_header(r, MHD_HTTP_HEADER_VARY,
				MHD_HTTP_HEADER_ACCEPT_ENCODING);
	if (gz)
		MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_ENCODING,
					"gzip");
	ret = MHD_queue_response(c, MHD_HTTP_OK, r);
	MHD_destroy_response(r);
	return ret;
}

/* Compares all of both zero-padded buffers, whatever they hold. */
static bool pass__equal(const char *a, const char *b)
{
	unsigned char d = 0;
	size_t i;

	for (i = 0; i < EXPO_PASS_MAX; i++)
		d |= (unsigned char)(a[i] ^ b[i]);
	return !d;
}

/* bcrypt's output against the stored hash, in constant time. */
static bool hash__equal(const char *h, const char *want)
{
	size_t n = strlen(want), i;
	unsigned char d = strlen(h) != n;

	for (i = 0; i < n && h[i]; i++)
		d |= (unsigned char)(h[i] ^ want[i]);
	return !d;
}

/* One bcrypt check may start now: refill EXPO_BCRYPT_PER_S a second. */
static bool auth__take(struct expo *e)
{
	struct timespec now;
	double dt;

	clock_gettime(CLOCK_MONOTONIC, &now);
	dt = (now.tv_sec - e->refill.tv_sec) + (now.tv_nsec - e->refill.tv_nsec) / 1e9;
	e->refill = now;
	e->tokens += dt * EXPO_BCRYPT_PER_S;
	if (e->tokens > EXPO_BCRYPT_PER_S)
		e->tokens = EXPO_BCRYPT_PER_S;
	if (e->tokens < 1)
		return false;
	e->tokens -= 1;
	return true;
}

/* The bcrypt worker: one job at a time, its connection resumed when done. */
static void *auth__worker(void *arg)
{
	struct expo *e = arg;
	char pass[EXPO_PASS_MAX];
	struct MHD_Connection *c;
	const char *hash, *h;
	bool ok;
	int user;

	pthread_mutex_lock(&e->mu);
	for (;;) {
		while (!e->stop && e->job.state != JOB_QUEUED)
			pthread_cond_wait(&e->cv, &e->mu);
		if (e->job.state != JOB_QUEUED)
			break;	/* stopping, nothing queued */
		e->job.state = JOB_RUNNING;
		memcpy(pass, e->job.pass, sizeof(pass));
		user = e->job.user;
		c = e->job.c;
		pthread_mutex_unlock(&e->mu);
		/* An unknown user costs a bcrypt too: the time does not tell. */
		hash = e->users[user >= 0 ? user : 0].hash;
		h = crypt_r(pass, hash, e->cd);
		ok = user >= 0 && h && hash__equal(h, hash);
		explicit_bzero(pass, sizeof(pass));
		pthread_mutex_lock(&e->mu);
		e->job.ok = ok;
		e->job.state = JOB_DONE;
		pthread_mutex_unlock(&e->mu);
		MHD_resume_connection(c);
		pthread_mutex_lock(&e->mu);
	}
	pthread_mutex_unlock(&e->mu);
	return NULL;
}

/* Frees the job slot; under mu. */
static void job__clear(struct expo *e)
{
	explicit_bzero(e->job.pass, sizeof(e->job.pass));
	e->job.state = JOB_IDLE;
	e->job.c = NULL;
}

/* The worker's answer, once the connection is resumed. */
static unsigned auth__result(struct expo *e, void **req_cls)
{
	struct expo_user *u = NULL;
	bool ok;

	pthread_mutex_lock(&e->mu);
	ok = e->job.state == JOB_DONE && e->job.ok;
	if (ok) {
		u = &e->users[e->job.user];
		memcpy(u->ok, e->job.pass, sizeof(u->ok));
		u->has_ok = true;
	}
	job__clear(e);
	pthread_mutex_unlock(&e->mu);
	*req_cls = e;
	return ok ? MHD_HTTP_OK : MHD_HTTP_UNAUTHORIZED;
}

/* MHD_HTTP_OK, MHD_HTTP_UNAUTHORIZED, MHD_HTTP_TOO_MANY_REQUESTS, or 0:
 * the connection is suspended until the worker has run bcrypt. */
static unsigned auth__check(struct expo *e, struct MHD_Connection *c, void **req_cls)
{
	char *name, *pass = NULL, given[EXPO_PASS_MAX] = "";
	unsigned i, code = MHD_HTTP_UNAUTHORIZED;
	int user = -1;
	size_t len;

	if (*req_cls == &e->job)
		return auth__result(e, req_cls);
	name = MHD_basic_auth_get_username_password(c, &pass);
	if (!name || !pass)
		goto out;
	len = strlen(pass);
	if (len >= EXPO_PASS_MAX)
		goto out;
	memcpy(given, pass, len);
	for (i = 0; i < e->nusers; i++)
		if (!strcmp(e->users[i].name, name))
			user = (int)i;
	if (user >= 0 && e->users[user].has_ok && pass__equal(e->users[user].ok, given)) {
		code = MHD_HTTP_OK;
		goto out;
	}
	code = MHD_HTTP_TOO_MANY_REQUESTS;
	pthread_mutex_lock(&e->mu);
	if (e->job.state == JOB_IDLE && auth__take(e)) {
		e->job.state = JOB_QUEUED;
		e->job.c = c;
		e->job.user = user;
		memcpy(e->job.pass, given, sizeof(given));
		*req_cls = &e->job;
		MHD_suspend_connection(c);
		pthread_cond_signal(&e->cv);
		code = 0;
	}
	pthread_mutex_unlock(&e->mu);
out:
	explicit_bzero(given, sizeof(given));
	if (pass) {
		explicit_bzero(pass, strlen(pass));
		MHD_free(pass);
	}
	if (name)
		MHD_free(name);
	return code;
}

/* A request ends: if its connection went away before it read the worker's
 * answer, free the job slot. */
static void expo__completed(void *cls, struct MHD_Connection *c, void **req_cls,
			    enum MHD_RequestTerminationCode toe)
{
	struct expo *e = cls;

	(void)toe;
	if (*req_cls != &e->job)
		return;
	pthread_mutex_lock(&e->mu);
	if (e->job.c == c && e->job.state == JOB_DONE)
		job__clear(e);
	pthread_mutex_unlock(&e->mu);
	*req_cls = NULL;
}

static enum MHD_Result expo__handle(void *cls, struct MHD_Connection *c,
				    const char *url, const char *method,
				    const char *version, const char *upload,
				    size_t *upload_size, void **req_cls)
{
	struct expo *e = cls;

	(void)version;
	(void)upload;
	/* Other methods are answered in the first call, before any body is
	 * read: no endpoint takes one, and MHD then drops whatever the
	 * client sends and closes. */
	if (strcmp(method, MHD_HTTP_METHOD_GET) &&
	    strcmp(method, MHD_HTTP_METHOD_HEAD))
		return expo__reply(c, MHD_HTTP_METHOD_NOT_ALLOWED,
				   "text/plain; charset=utf-8",
				   "method not allowed\n");
	/* GET and HEAD in the second call, once the request is complete: a
	 * response queued in the first one makes libmicrohttpd 0.9.75 close
	 * the connection, and scrapers would reconnect (and redo the TLS
	 * handshake) every time. A body, if any, is skipped. */
	if (!*req_cls) {
		*req_cls = e;
		return MHD_YES;
	}
	if (*upload_size) {
		*upload_size = 0;
		return MHD_YES;
	}
	/* Probes stay open: kubelet's carry no credentials, and they say
	 * nothing but "ok" and "ready". */
	if (e->nusers && strcmp(url, "/healthz") && strcmp(url, "/health") &&
	    strcmp(url, "/readyz")) {
		unsigned code = auth__check(e, c, req_cls);

		if (!code)
			return MHD_YES;	/* suspended until bcrypt answers */
		if (code == MHD_HTTP_UNAUTHORIZED)
			return expo__reply(c, code, "text/plain; charset=utf-8",
					   "unauthorized\n");
		if (code == MHD_HTTP_TOO_MANY_REQUESTS)
			return expo__reply(c, code, "text/plain; charset=utf-8",
					   "too many password checks, retry in a second\n");
	}
	if (!strcmp(url, "/metrics"))
		return expo__metrics(e, c);
	if (!strcmp(url, "/healthz") || !strcmp(url, "/health"))
		return expo__reply(c, MHD_HTTP_OK, "text/plain; charset=utf-8",
				   "ok\n");
	if (!strcmp(url, "/readyz")) {
		if (__atomic_load_n(&e->ready, __ATOMIC_ACQUIRE))
			return expo__reply(c, MHD_HTTP_OK,
					   "text/plain; charset=utf-8",
					   "ready\n");
		return expo__reply(c, MHD_HTTP_SERVICE_UNAVAILABLE,
				   "text/plain; charset=utf-8", "not ready\n");
	}
	if (!strcmp(url, "/"))
		return expo__reply(c, MHD_HTTP_OK, "text/html; charset=utf-8",
				   "<html><head><title>aion</title></head><body>"
				   "<h1>aion agent</h1>"
				   "<p><a href=\"/metrics\">Metrics</a></p>"
				   "</body></html>\n");
	return expo__reply(c, MHD_HTTP_NOT_FOUND, "text/plain; charset=utf-8",
			   "not found\n");
}

/* libmicrohttpd does not say why a start failed: bind the address once
 * ourselves to find out (EADDRINUSE, EADDRNOTAVAIL, EACCES...). */
static int bind__probe(const struct sockaddr_storage *ss, socklen_t len)
{
	int fd, one = 1, err = 0;

	fd = socket(ss->ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (const struct sockaddr *)ss, len))
		err = -errno;
	close(fd);
	return err;
}

static struct MHD_Daemon *expo__daemon(struct expo *e,
				       const struct expo_opts *o,
				       const struct sockaddr_storage *ss,
				       bool dual)
{
	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG;
	struct MHD_OptionItem tls[] = {
		{ MHD_OPTION_HTTPS_MEM_CERT, 0, (void *)o->tls_cert },
		{ MHD_OPTION_HTTPS_MEM_KEY, 0, (void *)o->tls_key },
		{ MHD_OPTION_END, 0, NULL },
	};

	flags |= MHD_is_feature_supported(MHD_FEATURE_EPOLL) == MHD_YES ?
		 MHD_USE_EPOLL : MHD_USE_AUTO;
	if (ss->ss_family == AF_INET6)
		flags |= dual ? MHD_USE_DUAL_STACK : MHD_USE_IPv6;
	if (e->nusers)
		flags |= MHD_ALLOW_SUSPEND_RESUME;
	if (e->tls)
		flags |= MHD_USE_TLS;
	else
		tls[0].option = MHD_OPTION_END;
	return MHD_start_daemon(flags, 0, NULL, NULL, expo__handle, e,
				MHD_OPTION_EXTERNAL_LOGGER, expo__log, e,
				MHD_OPTION_NOTIFY_COMPLETED, expo__completed, e,
				MHD_OPTION_SOCK_ADDR, (const struct sockaddr *)ss,
				MHD_OPTION_CONNECTION_LIMIT, (unsigned)EXPO_CONN_LIMIT,
				MHD_OPTION_PER_IP_CONNECTION_LIMIT,
				(unsigned)EXPO_PER_IP_LIMIT,
				MHD_OPTION_CONNECTION_TIMEOUT,
				(unsigned)EXPO_CONN_TIMEOUT_S,
				MHD_OPTION_CONNECTION_MEMORY_LIMIT,
				(size_t)EXPO_CONN_MEMORY,
				MHD_OPTION_ARRAY, tls,
				MHD_OPTION_END);
}

/* Stops the bcrypt worker after its job, if any: before the daemon, whose
 * connection it resumes. */
static void auth__stop(struct expo *e)
{
	if (!e->worker_up)
		return;
	pthread_mutex_lock(&e->mu);
	e->stop = true;
	pthread_cond_signal(&e->cv);
	pthread_mutex_unlock(&e->mu);
	pthread_join(e->worker, NULL);
	e->worker_up = false;
}

static void expo__free(struct expo *e)
{
	unsigned i;

	auth__stop(e);
	explicit_bzero(e->job.pass, sizeof(e->job.pass));
	pthread_mutex_destroy(&e->mu);
	pthread_cond_destroy(&e->cv);
	for (i = 0; i < e->nusers; i++) {
		free(e->users[i].name);
		free(e->users[i].hash);
		explicit_bzero(e->users[i].ok, sizeof(e->users[i].ok));
	}
	free(e->users);
	free(e->cd);
	free(e);
}

/* Copies the users and starts the bcrypt worker; 0 or -errno. */
static int expo__users(struct expo *e, const struct expo_opts *o)
{
	unsigned i;
	int err;

	if (!o->nusers)
		return 0;
	e->users = calloc(o->nusers, sizeof(*e->users));
	e->cd = calloc(1, sizeof(*e->cd));
	if (!e->users || !e->cd)
		return -ENOMEM;
	for (i = 0; i < o->nusers; i++, e->nusers++) {
		e->users[i].name = strdup(o->users[i].name);
		e->users[i].hash = strdup(o->users[i].hash);
		if (!e->users[i].name || !e->users[i].hash) {
			e->nusers++;
			return -ENOMEM;
		}
	}
	e->tokens = EXPO_BCRYPT_PER_S;
	clock_gettime(CLOCK_MONOTONIC, &e->refill);
	err = pthread_create(&e->worker, NULL, auth__worker, e);
	if (err)
		return -err;
	e->worker_up = true;
	return 0;
}

struct expo *expo__start(const struct expo_opts *o)
{
	struct sockaddr_storage ss;
	const union MHD_DaemonInfo *info;
	struct expo *e;
	socklen_t len;
	bool wildcard;
	int err;

	if (!o || expo__parse_listen(o->listen, &ss, &len)) {
		fprintf(stderr, "expo: invalid listen address '%s' (want ADDR:PORT, "
			"e.g. 0.0.0.0:9090, [::1]:9090 or :9090)\n",
			o && o->listen ? o->listen : "");
		errno = EINVAL;
		return NULL;
	}
	e = calloc(1, sizeof(*e));
	if (!e)
		return NULL;
	e->render = o->render;
	e->arg = o->arg;
	e->starting = 1;
	e->tls = o->tls_cert && o->tls_key;
	pthread_mutex_init(&e->mu, NULL);
	pthread_cond_init(&e->cv, NULL);
	err = expo__users(e, o);
	if (err) {
		fprintf(stderr, "expo: cannot set up basic auth: %s\n", strerror(-err));
		expo__free(e);
		errno = -err;
		return NULL;
	}
	wildcard = ss.ss_family == AF_INET6 &&
		   !memcmp(&((struct sockaddr_in6 *)&ss)->sin6_addr,
			   &in6addr_any, sizeof(in6addr_any));
	e->d = expo__daemon(e, o, &ss, wildcard);
	err = e->d ? 0 : bind__probe(&ss, len);
	if (!e->d && wildcard && err == -EAFNOSUPPORT) {
		/* No IPv6 on this host: all addresses means all IPv4 ones. */
		struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;
		in_port_t port = ((struct sockaddr_in6 *)&ss)->sin6_port;

		memset(&ss, 0, sizeof(ss));
		a4->sin_family = AF_INET;
		a4->sin_addr.s_addr = htonl(INADDR_ANY);
		a4->sin_port = port;
		len = sizeof(*a4);
		e->d = expo__daemon(e, o, &ss, false);
		err = e->d ? 0 : bind__probe(&ss, len);
	}
	if (!e->d && !err && e->tls) {
		/* The address is free: GnuTLS refused the certificate or key. */
		fprintf(stderr, "expo: cannot serve HTTPS on %s: libmicrohttpd rejected the "
			"certificate or key (check that cert_file and key_file are a matching "
			"PEM pair)\n", o->listen);
		expo__free(e);
		errno = EINVAL;
		return NULL;
	}
	if (!e->d) {
		if (!err)
			err = -EIO;
		fprintf(stderr, "expo: cannot listen on %s: %s (pick another with --listen)\n",
			o->listen, strerror(-err));
		expo__free(e);
		errno = -err;
		return NULL;
	}
	__atomic_store_n(&e->starting, 0, __ATOMIC_RELAXED);
	info = MHD_get_daemon_info(e->d, MHD_DAEMON_INFO_BIND_PORT);
	e->port = info ? info->port : 0;
	return e;
}

void expo__set_ready(struct expo *e, int ready)
{
	if (e)
		__atomic_store_n(&e->ready, !!ready, __ATOMIC_RELEASE);
}

unsigned expo__port(const struct expo *e)
{
	return e ? e->port : 0;
}

void expo__stop(struct expo *e)
{
	if (!e)
		return;
	auth__stop(e);
	if (e->d)
		MHD_stop_daemon(e->d);
	expo__free(e);
}
