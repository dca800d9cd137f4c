/* SPDX-License-Identifier: GPL-2.0 */
/* --web-config FILE: TLS and basic auth of the metrics endpoint, in the
 * subset of Prometheus exporter-toolkit's YAML format that aion supports:
 *
 *   tls_server_config:
 *     cert_file: server.crt      # relative to the web config's directory
 *     key_file: server.key
 *   basic_auth_users:
 *     prometheus: $2y$10$...      # bcrypt hash ($2y$, $2b$ or $2a$)
 *
 * Any other key is an error that says what to do about it. */
#ifndef AION_WEBCONFIG_H
#define AION_WEBCONFIG_H

#include <stddef.h>

#define WEBCONFIG_MAX_USERS 64
#define WEBCONFIG_MAX_SIZE (64 * 1024)
#define WEBCONFIG_ERR 512

struct webconfig_user {
	char *name;
	char *hash;		/* bcrypt, 60 characters */
};

struct webconfig {
	char *cert_file;	/* NULL: plain HTTP; else key_file is set too */
	char *key_file;
	struct webconfig_user users[WEBCONFIG_MAX_USERS];
	unsigned nusers;	/* 0: no authentication */
};

/* Parses a web config's text; name is the file's path, used in messages
 * ("FILE:LINE: ...") and to resolve relative cert/key paths. 0, -EINVAL
 * with a one-line message in err, or -ENOMEM. */
int webconfig__parse(struct webconfig *w, const char *text, const char *name,
		     char *err, size_t n);
/* Reads and parses a web config file. 0 or -errno with the message in err. */
int webconfig__load(struct webconfig *w, const char *path, char *err, size_t n);
/* Reads a PEM file (what: "cert_file" or "key_file") into a NUL-terminated
 * buffer to free(); NULL with the message in err when it cannot be read or
 * holds no PEM block of the expected kind. */
char *webconfig__read_pem(const char *path, const char *what, char *err, size_t n);
/* Frees what parse/load allocated; accepts a zeroed struct. */
void webconfig__free(struct webconfig *w);

#endif /* AION_WEBCONFIG_H */
