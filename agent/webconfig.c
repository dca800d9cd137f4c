// SPDX-License-Identifier: GPL-2.0
/* A strict parser for the YAML subset of webconfig.h: two levels of block
 * mappings, plain, 'single' and "double" quoted scalars, # comments. What
 * it does not understand is an error, never ignored: a web config whose
 * TLS or auth part were silently dropped would serve metrics in clear. */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "webconfig.h"

#define SCALAR_MAX 4096

enum section { SEC_NONE, SEC_TLS, SEC_USERS };

struct parser {
	struct webconfig *w;
	const char *name;
	char *err;
	size_t n;
	int line;
	enum section sec;
	int sec_line;		/* line of the current section's key */
	int child_indent;	/* 0: no child line yet */
	bool seen_tls, seen_users;
	bool content;		/* a key line was seen (then '---' is an error) */
	int cert_line, key_line;
};

static int errf(struct parser *p, const char *fmt, ...)
{
	char msg[WEBCONFIG_ERR];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	snprintf(p->err, p->n, "%s:%d: %s", p->name, p->line, msg);
	return -EINVAL;
}

static bool at_comment_or_end(const char *s)
{
	while (*s == ' ')
		s++;
	return !*s || *s == '#';
}

/* One scalar at *s into out. A key ends at ':' (followed by a space or the
 * end of the line); a value at the end of the line or a " #" comment.
 * Moves *s past it. 0 or -EINVAL after errf(). */
static int scalar(struct parser *p, const char **s, bool key, char *out)
{
	const char *c = *s;
	size_t len = 0;

	if (*c == '"' || *c == '\'') {
		char q = *c++;

		for (;; c++) {
			if (!*c)
				return errf(p, "unterminated %s quote (close it on the same line)",
					    q == '"' ? "double" : "single");
			if (*c == q) {
				if (q == '\'' && c[1] == '\'') {
					c++;	/* '' is a quote inside '...' */
				} else {
					c++;
					break;
				}
			} else if (q == '"' && *c == '\\') {
				c++;
				if (*c != '"' && *c != '\\')
					return errf(p, "unsupported escape '\\%c' in a double-quoted value "
						    "(only \\\" and \\\\; or use single quotes)", *c ? *c : ' ');
			}
			if (len + 1 >= SCALAR_MAX)
				return errf(p, "value longer than %d characters", SCALAR_MAX - 1);
			out[len++] = *c;
		}
		out[len] = '\0';
		if (key) {
			while (*c == ' ')
				c++;
			if (*c != ':')
				return errf(p, "expected ':' after the quoted key");
		} else if (*c && (*c != ' ' || !at_comment_or_end(c))) {
			return errf(p, "unexpected text after the quoted value");
		}
		*s = c;
		return 0;
	}
	if (strchr("{[&*!|>%@`,?", *c) && *c)
		return errf(p, "'%c' starts YAML this parser does not support (flow "
			    "collections, anchors, tags, block scalars): write a plain or quoted value",
			    *c);
	if (*c == '-' && (c[1] == ' ' || !c[1]))
		return errf(p, "lists are not supported here: write `key: value` lines");
	for (; *c; c++) {
		if (*c == ':' && (c[1] == ' ' || !c[1])) {
			if (key)
				break;
			return errf(p, "': ' inside a plain value: quote the value");
		}
		if (*c == '#' && c > *s && c[-1] == ' ')
			break;
		if (len + 1 >= SCALAR_MAX)
			return errf(p, "value longer than %d characters", SCALAR_MAX - 1);
		out[len++] = *c;
	}
	while (len && out[len - 1] == ' ')
		len--;
	out[len] = '\0';
	if (key && *c != ':')
		return errf(p, "expected `key: value` or `key:` (a mapping)");
	*s = c;
	return 0;
}

static int set_path(struct parser *p, char **dst, const char *key, const char *v)
{
	const char *slash = strrchr(p->name, '/');
	int dirlen = slash ? (int)(slash - p->name) : 0;
	char *s;

	if (*dst)
		return errf(p, "%s is given twice: keep one", key);
	if (!*v)
		return errf(p, "%s needs a file name", key);
	/* Relative to the web config's directory, like exporter-toolkit. */
	if (*v == '/' || !slash)
		s = strdup(v);
	else if (asprintf(&s, "%.*s/%s", dirlen, p->name, v) < 0)
		s = NULL;
	if (!s)
		return -ENOMEM;
	*dst = s;
	return 0;
}

static int tls_key(struct parser *p, const char *k, const char *v)
{
	/* exporter-toolkit settings aion does not implement, with the reason. */
	static const char *const unsupported[] = {
		"client_auth_type", "client_ca_file", "client_allowed_sans",
		"min_version", "max_version", "cipher_suites",
		"prefer_server_cipher_suites", "curve_preferences", "cert", "key",
	};
	size_t i;
	int rc;

	if (!strcmp(k, "cert_file")) {
		rc = set_path(p, &p->w->cert_file, k, v);
		p->cert_line = p->line;
		return rc;
	}
	if (!strcmp(k, "key_file")) {
		rc = set_path(p, &p->w->key_file, k, v);
		p->key_line = p->line;
		return rc;
	}
	for (i = 0; i < sizeof(unsupported) / sizeof(unsupported[0]); i++)
		if (!strcmp(k, unsupported[i]))
			return errf(p, "tls_server_config: %s is not supported by aion "
				    "(no client certificates, GnuTLS's default versions and "
				    "ciphers, files only): remove it", k);
	return errf(p, "tls_server_config: unknown key '%s' (it takes cert_file and key_file)", k);
}

static bool is_bcrypt(const char *h)
{
	size_t i;

	if (strlen(h) != 60 || h[0] != '$' || h[1] != '2' ||
	    (h[2] != 'a' && h[2] != 'b' && h[2] != 'y') || h[3] != '$' ||
	    h[4] < '0' || h[4] > '3' || h[5] < '0' || h[5] > '9' || h[6] != '$')
		return false;
	if ((h[4] - '0') * 10 + (h[5] - '0') < 4 || (h[4] - '0') * 10 + (h[5] - '0') > 31)
		return false;
	for (i = 7; i < 60; i++)
		if (!strchr("./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789", h[i]))
			return false;
	return true;
}

static int user_key(struct parser *p, const char *k, const char *v)
{
	struct webconfig *w = p->w;
	struct webconfig_user *u;
	unsigned i;

	if (!*k)
		return errf(p, "basic_auth_users: empty user name");
	if (strchr(k, ':'))
		return errf(p, "basic_auth_users: user name '%s' contains ':', which basic auth "
			    "cannot carry: rename the user", k);
	for (i = 0; i < w->nusers; i++)
		if (!strcmp(w->users[i].name, k))
			return errf(p, "basic_auth_users: user '%s' is given twice: keep one", k);
	if (!is_bcrypt(v))
		return errf(p, "basic_auth_users: the password of '%s' is not a bcrypt hash "
			    "($2y$, $2b$ or $2a$, 60 characters; e.g. from `htpasswd -nBC 10 USER`)", k);
	if (w->nusers == WEBCONFIG_MAX_USERS)
		return errf(p, "basic_auth_users: more than %d users", WEBCONFIG_MAX_USERS);
	u = &w->users[w->nusers];
	u->name = strdup(k);
	u->hash = strdup(v);
	if (!u->name || !u->hash) {
		free(u->name);
		free(u->hash);
		u->name = u->hash = NULL;
		return -ENOMEM;
	}
	w->nusers++;
	return 0;
}

/* The end of a section: what it must contain. */
static int section_close(struct parser *p)
{
	int line = p->line, rc = 0;

	p->line = p->sec_line;
	if (p->sec == SEC_TLS && (!p->w->cert_file || !p->w->key_file))
		rc = errf(p, "tls_server_config needs both cert_file and key_file");
	else if (p->sec == SEC_USERS && !p->w->nusers)
		rc = errf(p, "basic_auth_users has no users: add `NAME: BCRYPT_HASH` lines "
			  "under it or remove it");
	p->line = line;
	p->sec = SEC_NONE;
	return rc;
}

static int top_key(struct parser *p, const char *k, const char *rest)
{
	int rc = section_close(p);

	if (rc)
		return rc;
	if (!strcmp(k, "tls_server_config") || !strcmp(k, "basic_auth_users")) {
		bool tls = k[0] == 't';

		if ((tls && p->seen_tls) || (!tls && p->seen_users))
			return errf(p, "%s is given twice: keep one", k);
		if (!at_comment_or_end(rest))
			return errf(p, "%s takes indented `key: value` lines below it, not a value", k);
		if (tls)
			p->seen_tls = true;
		else
			p->seen_users = true;
		p->sec = tls ? SEC_TLS : SEC_USERS;
		p->sec_line = p->line;
		p->child_indent = 0;
		return 0;
	}
	if (!strcmp(k, "http_server_config"))
		return errf(p, "http_server_config is not supported by aion (it serves HTTP/1.1 "
			    "only and sets no extra headers): remove it");
	return errf(p, "unknown key '%s' (a web config takes tls_server_config and "
		    "basic_auth_users)", k);
}

static int parse_line(struct parser *p, const char *s, char *key, char *val)
{
	int indent = 0, rc;
	const char *c;

	for (c = s; *c == ' ' || *c == '\t'; c++) {
		if (*c == '\t')
			return errf(p, "a tab in the indentation: indent with spaces");
		indent++;
	}
	if (at_comment_or_end(c))
		return 0;
	if (indent == 0 && !strncmp(c, "---", 3) && at_comment_or_end(c + 3))
		return !p->content ? 0 : errf(p, "one YAML document only: remove this '---'");
	p->content = true;
	rc = scalar(p, &c, true, key);
	if (rc)
		return rc;
	c++;	/* the ':' */
	while (*c == ' ')
		c++;
	if (indent == 0)
		return top_key(p, key, c);
	if (p->sec == SEC_NONE)
		return errf(p, "indented line outside tls_server_config or basic_auth_users: "
			    "fix the indentation");
	if (!p->child_indent)
		p->child_indent = indent;
	else if (indent != p->child_indent)
		return errf(p, "indented by %d spaces where this block uses %d: align it",
			    indent, p->child_indent);
	if (at_comment_or_end(c))
		return errf(p, "'%s' needs a value on the same line", key);
	rc = scalar(p, &c, false, val);
	if (rc)
		return rc;
	return p->sec == SEC_TLS ? tls_key(p, key, val) : user_key(p, key, val);
}

int webconfig__parse(struct webconfig *w, const char *text, const char *name,
		     char *err, size_t n)
{
	struct parser p = { .w = w, .name = name, .err = err, .n = n };
	char *copy, *line, *next, *key, *val;
	size_t len;
	int rc = 0;

	copy = strdup(text);
	key = malloc(SCALAR_MAX);
	val = malloc(SCALAR_MAX);
	if (!copy || !key || !val) {
		rc = -ENOMEM;
		goto out;
	}
	for (line = copy; line && !rc; line = next) {
		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		len = strlen(line);
		if (len && line[len - 1] == '\r')
			line[--len] = '\0';
		p.line++;
		rc = parse_line(&p, line, key, val);
	}
	if (!rc)
		rc = section_close(&p);
out:
	free(copy);
	free(key);
	free(val);
	if (rc)
		webconfig__free(w);
	return rc;
}

/* A whole small file, NUL-terminated; NULL with the message in err. */
static char *read_file(const char *path, size_t max, char *err, size_t n, int *rc)
{
	FILE *f = fopen(path, "re");
	char *buf;
	size_t len;

	if (!f) {
		*rc = -errno;
		snprintf(err, n, "%s: %s", path, strerror(errno));
		return NULL;
	}
	buf = malloc(max + 1);
	if (!buf) {
		fclose(f);
		*rc = -ENOMEM;
		snprintf(err, n, "%s: out of memory", path);
		return NULL;
	}
	len = fread(buf, 1, max, f);
	if (ferror(f) || !feof(f)) {
		*rc = ferror(f) ? -EIO : -EFBIG;
		snprintf(err, n, "%s: %s", path, ferror(f) ? "read error" :
			 "too large (at most 64 KiB)");
		fclose(f);
		free(buf);
		return NULL;
	}
	fclose(f);
	buf[len] = '\0';
	if (memchr(buf, '\0', len)) {
		*rc = -EINVAL;
		snprintf(err, n, "%s: not a text file", path);
		free(buf);
		return NULL;
	}
	return buf;
}

int webconfig__load(struct webconfig *w, const char *path, char *err, size_t n)
{
	char *text;
	int rc = 0;

	text = read_file(path, WEBCONFIG_MAX_SIZE, err, n, &rc);
	if (!text)
		return rc;
	rc = webconfig__parse(w, text, path, err, n);
	free(text);
	return rc;
}

char *webconfig__read_pem(const char *path, const char *what, char *err, size_t n)
{
	bool key = !strcmp(what, "key_file");
	char msg[WEBCONFIG_ERR], *pem;
	const char *b;
	int rc;

	pem = read_file(path, WEBCONFIG_MAX_SIZE, msg, sizeof(msg), &rc);
	if (!pem) {
		snprintf(err, n, "%s %s", what, msg);
		return NULL;
	}
	b = strstr(pem, "-----BEGIN ");
	if (!b || (key ? !strstr(b, "PRIVATE KEY-----") :
		   strncmp(b, "-----BEGIN CERTIFICATE-----", 27))) {
		snprintf(err, n, "%s %s: no PEM %s in it (want a -----BEGIN %s----- block)",
			 what, path, key ? "private key" : "certificate",
			 key ? "PRIVATE KEY" : "CERTIFICATE");
		free(pem);
		return NULL;
	}
	return pem;
}

void webconfig__free(struct webconfig *w)
{
	unsigned i;

	if (!w)
		return;
	free(w->cert_file);
	free(w->key_file);
	for (i = 0; i < w->nusers; i++) {
		free(w->users[i].name);
		free(w->users[i].hash);
	}
	memset(w, 0, sizeof(*w));
}
