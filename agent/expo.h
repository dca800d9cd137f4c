/* SPDX-License-Identifier: GPL-2.0 */
/* HTTP exposition: /metrics, /healthz, /readyz over libmicrohttpd. */
#ifndef AION_EXPO_H
#define AION_EXPO_H

#include <sys/socket.h>

#include "strbuf.h"
#include "webconfig.h"

struct expo;

/* Appends the metrics text to out; 0 or -errno (answered with 500). Called
 * on the HTTP thread, without any expo lock held. */
typedef int (*expo_render_fn)(struct strbuf *out, void *arg);

struct expo_opts {
	/* "ADDR:PORT": "0.0.0.0:9090", "[::1]:9090", ":9090" (all addresses,
	 * IPv6 and IPv4 where the host has IPv6). Numeric only. */
	const char *listen;
	expo_render_fn render;
	void *arg;
	/* HTTPS when both are set: PEM texts (copied by libmicrohttpd). */
	const char *tls_cert;
	const char *tls_key;
	/* Basic auth on every path but /healthz, /health and /readyz when
	 * nusers > 0 (bcrypt hashes; copied). */
	const struct webconfig_user *users;
	unsigned nusers;
};

/* Numeric address and port 1..65535; ":PORT" gives the IPv6 wildcard with
 * family AF_INET6. 0 or -EINVAL. */
int expo__parse_listen(const char *s, struct sockaddr_storage *ss,
		       socklen_t *len);
/* Listens and serves from an internal thread; NULL + errno, after one line
 * on stderr naming the address and the cause. */
struct expo *expo__start(const struct expo_opts *o);
/* /readyz answers 200 once ready is 1, 503 before. */
void expo__set_ready(struct expo *e, int ready);
/* Port actually bound (host order). */
unsigned expo__port(const struct expo *e);
/* Stops serving and frees; accepts NULL. */
void expo__stop(struct expo *e);

#endif /* AION_EXPO_H */
