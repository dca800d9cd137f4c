// SPDX-License-Identifier: MIT
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "config.h"
#include "expo.h"

static int errf(char *err, size_t n, const char *fmt, ...)
{
	va_list ap;

	if (err && n) {
		va_start(ap, fmt);
		vsnprintf(err, n, fmt, ap);
		va_end(ap);
	}
	return -EINVAL;
}

static int parse_uint(const char *s, unsigned long max, unsigned long *out)
{
	char *end;
	unsigned long v;

	if (!s || !*s || *s == '-' || *s == '+' || isspace((unsigned char)*s))
		return -EINVAL;
	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || *end || v > max)
		return -EINVAL;
	*out = v;
	return 0;
}

/* on/1/true/yes -> 1, off/0/false/no -> -1. 0 or -EINVAL. */
static int parse_switch(const char *s, int *out)
{
	static const char *const on[] = { "on", "1", "true", "yes" }, *const off[] = { "off", "0", "false", "no" };
	size_t i;

	for (i = 0; i < sizeof(on) / sizeof(on[0]); i++) {
		if (!strcmp(s, on[i])) {
			*out = 1;
			return 0;
		}
		if (!strcmp(s, off[i])) {
			*out = -1;
			return 0;
		}
	}
	return -EINVAL;
}

int config__check_name(const char *s)
{
	const char *p;

	for (p = s; *p && *p >= 0x20 && *p <= 0x7e; p++)
		;
	return (!*s || strlen(s) > 63 || *p) ? -EINVAL : 0;
}

int config__add_selector(struct config *c, enum selector_kind kind, const char *value,
			 const char *service_name, char *err, size_t n)
{
	struct selector s = { .kind = kind };
	unsigned long v;

	if (c->nsel == CONFIG_MAX_SELECTORS)
		return errf(err, n, "at most %d selectors", CONFIG_MAX_SELECTORS);
	if (service_name && config__check_name(service_name))
		return errf(err, n, "service_name '%s' must be 1 to 63 printable ASCII characters",
			    service_name);
	switch (kind) {
	case SEL_PID:
		if (parse_uint(value, INT_MAX, &v) || v == 0)
			return errf(err, n, "pid '%s' is not a process id (a positive number)", value);
		s.pid = (int)v;
		break;
	case SEL_PORT:
		if (parse_uint(value, 65535, &v) || v == 0)
			return errf(err, n, "port '%s' is not a TCP port (1 to 65535)", value);
		s.port = (unsigned)v;
		break;
	case SEL_EXE:
		if (!value || !*value)
			return errf(err, n, "exe needs a path");
		if (strlen(value) >= PATH_MAX)
			return errf(err, n, "exe path is longer than %d bytes", PATH_MAX - 1);
		s.exe = strdup(value);
		if (!s.exe)
			return -ENOMEM;
		break;
	case SEL_ALL:
		if (value && strcmp(value, "1") && strcmp(value, "true") && strcmp(value, "yes"))
			return errf(err, n, "all takes no value but 1/true/yes ('%s')", value);
		break;
	default:
		return errf(err, n, "unknown selector");
	}
	if (service_name) {
		s.service_name = strdup(service_name);
		if (!s.service_name) {
			free(s.exe);
			return -ENOMEM;
		}
	}
	c->sel[c->nsel++] = s;
	return 0;
}

static int set_str(char **dst, const char *v)
{
	char *d = strdup(v);

	if (!d)
		return -ENOMEM;
	free(*dst);
	*dst = d;
	return 0;
}

int config__set(struct config *c, const char *key, const char *value, char *err, size_t n)
{
	struct sockaddr_storage ss;
	socklen_t sl;
	unsigned long v;

	if (!strcmp(key, "listen")) {
		if (expo__parse_listen(value, &ss, &sl))
			return errf(err, n, "listen '%s' is not ADDR:PORT (e.g. 0.0.0.0:9090, [::1]:9090, :9090)",
				    value);
		return set_str(&c->listen, value);
	}
	if (!strcmp(key, "service_name")) {
		if (config__check_name(value))
			return errf(err, n, "service_name must be 1 to 63 printable ASCII characters");
		return set_str(&c->service_name, value);
	}
	if (!strcmp(key, "k8s_log_dir")) {
		if (!*value)
			return errf(err, n, "k8s_log_dir needs a directory");
		return set_str(&c->k8s_log_dir, value);
	}
	if (!strcmp(key, "web_config")) {
		if (!*value)
			return errf(err, n, "web_config needs a file (see README, Endpoints)");
		return set_str(&c->web_config, value);
	}
	if (!strcmp(key, "max_routes")) {
		if (parse_uint(value, 100000, &v) || v == 0)
			return errf(err, n, "max_routes '%s' must be a number from 1 to 100000", value);
		c->max_routes = (unsigned)v;
		return 0;
	}
	if (!strcmp(key, "body_size_buckets")) {
		/* Parsed aside: a refused value leaves the setting as it was. */
		double b[CONFIG_MAX_SIZE_BUCKETS];
		const char *p = value;
		unsigned nb = 0;
		char *end;

		while (*p) {
			errno = 0;
			v = strtoul(p, &end, 10);
			if (end == p || errno || v > (1UL << 40) || (*end && *end != ',') ||
			    nb >= CONFIG_MAX_SIZE_BUCKETS || (nb && (double)v <= b[nb - 1]) ||
			    *p == '-' || *p == '+' || *p == ' ')
				return errf(err, n, "body_size_buckets '%s' must be 1 to %d increasing byte counts "
					    "separated by commas, e.g. 0,100,1000,10000", value,
					    CONFIG_MAX_SIZE_BUCKETS);
			b[nb++] = (double)v;
			p = *end ? end + 1 : end;
			if (*end && !*p)
				return errf(err, n, "body_size_buckets '%s' ends with a comma", value);
		}
		if (!nb)
			return errf(err, n, "body_size_buckets needs at least one bound, e.g. 0,100,1000");
		memcpy(c->size_buckets, b, nb * sizeof(b[0]));
		c->nsize_buckets = nb;
		return 0;
	}
	if (!strcmp(key, "tls") || !strcmp(key, "drop_caps")) {
		if (parse_switch(value, !strcmp(key, "tls") ? &c->tls : &c->drop_caps))
			return errf(err, n, "%s '%s' must be on or off", key, value);
		return 0;
	}
	if (!strcmp(key, "bpf_stats")) {
		if (parse_switch(value, &c->bpf_stats))
			return errf(err, n, "bpf_stats '%s' must be on or off", value);
		return 0;
	}
	if (!strcmp(key, "max_series")) {
		if (parse_uint(value, 1000000, &v) || v < 100)
			return errf(err, n, "max_series '%s' must be a number from 100 to 1000000", value);
		c->max_series = (unsigned)v;
		return 0;
	}
	if (!strcmp(key, "ring_buffer_size")) {
		/* The kernel wants a power of two that is a multiple of the
		 * page size; K/M/G are binary (4M = 4194304). */
		unsigned long mul = 1, page = (unsigned long)sysconf(_SC_PAGESIZE);
		char num[32];
		size_t len = strlen(value);

		if (len && len < sizeof(num)) {
			memcpy(num, value, len + 1);
			switch (num[len - 1]) {
			case 'k': case 'K': mul = 1UL << 10; break;
			case 'm': case 'M': mul = 1UL << 20; break;
			case 'g': case 'G': mul = 1UL << 30; break;
			}
			if (mul > 1)
				num[len - 1] = '\0';
		}
		if (!len || len >= sizeof(num) || parse_uint(num, CONFIG_RING_MAX / mul, &v))
			v = 0;
		v *= mul;
		if (v < CONFIG_RING_MIN || (v & (v - 1)) || v % page)
			return errf(err, n, "ring_buffer_size '%s' must be a power of two of bytes from 4096 "
				    "to 1G (and a multiple of the page size, %lu), e.g. 4M", value, page);
		c->ring_buffer_size = v;
		return 0;
	}
	if (!strcmp(key, "max_connections")) {
		if (parse_uint(value, 1 << 22, &v) || v < 64)
			return errf(err, n, "max_connections '%s' must be a number from 64 to 4194304", value);
		c->max_connections = (unsigned)v;
		return 0;
	}
	return -ENOENT;
}

static char *trim(char *s)
{
	char *e;

	while (isspace((unsigned char)*s))
		s++;
	e = s + strlen(s);
	while (e > s && isspace((unsigned char)e[-1]))
		*--e = '\0';
	return s;
}

/* A pending [target] section. */
struct section {
	int open, line, vline; /* lines of [target] and of its selector */
	enum selector_kind kind;
	char *value;
	char *service_name;
};

static int section_close(struct config *c, struct section *s, const char *name, char *err, size_t n)
{
	char msg[CONFIG_ERR];
	int rc = 0;

	if (!s->open)
		return 0;
	if (!s->kind)
		rc = errf(err, n, "%s:%d: [target] needs one of pid, exe, port or all", name, s->line);
	else if (config__add_selector(c, s->kind, s->value, s->service_name, msg, sizeof(msg)))
		rc = errf(err, n, "%s:%d: %s", name, strstr(msg, "service_name") ? s->line : s->vline, msg);
	free(s->value);
	free(s->service_name);
	memset(s, 0, sizeof(*s));
	return rc;
}

static const struct {
	const char *key;
	enum selector_kind kind;
} sel_keys[] = {
	{ "pid", SEL_PID }, { "exe", SEL_EXE }, { "port", SEL_PORT }, { "all", SEL_ALL },
};

int config__parse(struct config *c, const char *text, const char *name, char *err, size_t n)
{
	struct section sec = {};
	char *copy = strdup(text), *line, *next, *key, *val, *eq, msg[CONFIG_ERR];
	int lineno = 0, rc = 0;
	size_t i;

	if (!copy)
		return -ENOMEM;
	for (line = copy; line && !rc; line = next) {
		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		lineno++;
		/* '#' starts a comment (also after a value). */
		if ((eq = strchr(line, '#')))
			*eq = '\0';
		line = trim(line);
		if (!*line)
			continue;
		if (*line == '[') {
			rc = section_close(c, &sec, name, err, n);
			if (rc)
				break;
			if (strcmp(line, "[target]")) {
				rc = errf(err, n, "%s:%d: unknown section '%s' (only [target])", name, lineno, line);
				break;
			}
			sec.open = 1;
			sec.line = lineno;
			continue;
		}
		eq = strchr(line, '=');
		if (!eq) {
			rc = errf(err, n, "%s:%d: expected 'key = value', got '%s'", name, lineno, line);
			break;
		}
		*eq = '\0';
		key = trim(line);
		val = trim(eq + 1);
		if (strlen(val) >= 2 && (*val == '"' || *val == '\'') && val[strlen(val) - 1] == *val) {
			val[strlen(val) - 1] = '\0';
			val++;
		}
		if (sec.open) {
			if (!strcmp(key, "service_name")) {
				if (sec.service_name) {
					rc = errf(err, n, "%s:%d: service_name given twice", name, lineno);
					break;
				}
				sec.service_name = strdup(val);
				if (!sec.service_name)
					rc = -ENOMEM;
				continue;
			}
			for (i = 0; i < sizeof(sel_keys) / sizeof(sel_keys[0]); i++)
				if (!strcmp(key, sel_keys[i].key))
					break;
			if (i == sizeof(sel_keys) / sizeof(sel_keys[0])) {
				rc = errf(err, n, "%s:%d: unknown key '%s' in [target] (pid, exe, port, all, service_name)",
					  name, lineno, key);
				break;
			}
			if (sec.kind) {
				rc = errf(err, n, "%s:%d: a [target] takes one of pid, exe, port or all; start another [target]",
					  name, lineno);
				break;
			}
			sec.kind = sel_keys[i].kind;
			sec.vline = lineno;
			sec.value = strdup(val);
			if (!sec.value)
				rc = -ENOMEM;
			continue;
		}
		rc = config__set(c, key, val, msg, sizeof(msg));
		if (rc == -ENOENT)
			rc = errf(err, n, "%s:%d: unknown setting '%s' (listen, service_name, max_routes, "
				  "max_series, max_connections, body_size_buckets, k8s_log_dir, tls, bpf_stats, "
				  "ring_buffer_size, web_config, drop_caps, or a [target] section)",
				  name, lineno, key);
		else if (rc)
			rc = errf(err, n, "%s:%d: %s", name, lineno, msg);
	}
	if (!rc)
		rc = section_close(c, &sec, name, err, n);
	free(sec.value);
	free(sec.service_name);
	free(copy);
	return rc;
}

int config__load(struct config *c, const char *path, char *err, size_t n)
{
	FILE *f = fopen(path, "re");
	char *text;
	size_t len;
	int rc;

	if (!f) {
		rc = -errno;
		errf(err, n, "%s: %s", path, strerror(-rc));
		return rc;
	}
	text = calloc(1, 1 << 20);
	if (!text) {
		fclose(f);
		return -ENOMEM;
	}
	len = fread(text, 1, (1 << 20) - 1, f);
	if (ferror(f) || !feof(f)) {
		fclose(f);
		free(text);
		return errf(err, n, "%s: cannot read it whole (a config file is at most 1 MiB)", path);
	}
	fclose(f);
	if (memchr(text, '\0', len)) {
		free(text);
		return errf(err, n, "%s: not a text file", path);
	}
	rc = config__parse(c, text, path, err, n);
	free(text);
	return rc;
}

int config__from_env(struct config *c, char *err, size_t n)
{
	static const struct {
		const char *env, *key;
	} settings[] = {
		{ "AION_LISTEN", "listen" },
		{ "AION_SERVICE_NAME", "service_name" },
		{ "AION_MAX_ROUTES", "max_routes" },
		{ "AION_MAX_CONNECTIONS", "max_connections" },
		{ "AION_BODY_SIZE_BUCKETS", "body_size_buckets" },
		{ "AION_K8S_LOG_DIR", "k8s_log_dir" },
		{ "AION_TLS", "tls" },
		{ "AION_MAX_SERIES", "max_series" },
		{ "AION_BPF_STATS", "bpf_stats" },
		{ "AION_RING_BUFFER_SIZE", "ring_buffer_size" },
		{ "AION_WEB_CONFIG", "web_config" },
		{ "AION_DROP_CAPS", "drop_caps" },
	};
	static const struct {
		const char *env;
		enum selector_kind kind;
	} lists[] = {
		{ "AION_PID", SEL_PID }, { "AION_EXE", SEL_EXE }, { "AION_PORT", SEL_PORT },
	};
	char msg[CONFIG_ERR], *copy, *tok, *save;
	const char *v;
	size_t i;
	int rc;

	for (i = 0; i < sizeof(settings) / sizeof(settings[0]); i++) {
		v = getenv(settings[i].env);
		if (!v || !*v)
			continue;
		rc = config__set(c, settings[i].key, v, msg, sizeof(msg));
		if (rc)
			return errf(err, n, "%s: %s", settings[i].env, msg);
	}
	for (i = 0; i < sizeof(lists) / sizeof(lists[0]); i++) {
		v = getenv(lists[i].env);
		if (!v || !*v)
			continue;
		copy = strdup(v);
		if (!copy)
			return -ENOMEM;
		for (tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
			tok = trim(tok);
			if (!*tok)
				continue;
			rc = config__add_selector(c, lists[i].kind, tok, NULL, msg, sizeof(msg));
			if (rc) {
				free(copy);
				return errf(err, n, "%s: %s", lists[i].env, msg);
			}
		}
		free(copy);
	}
	v = getenv("AION_ALL");
	if (v && *v && strcmp(v, "0") && strcmp(v, "false") && strcmp(v, "no")) {
		rc = config__add_selector(c, SEL_ALL, v, NULL, msg, sizeof(msg));
		if (rc)
			return errf(err, n, "AION_ALL: %s", msg);
	}
	return 0;
}

static void take_str(char **hi, char **lo)
{
	if (!*hi) {
		*hi = *lo;
		*lo = NULL;
	}
}

void config__merge(struct config *hi, struct config *lo)
{
	int i;

	take_str(&hi->listen, &lo->listen);
	take_str(&hi->service_name, &lo->service_name);
	take_str(&hi->k8s_log_dir, &lo->k8s_log_dir);
	take_str(&hi->web_config, &lo->web_config);
	if (!hi->max_routes)
		hi->max_routes = lo->max_routes;
	if (!hi->max_connections)
		hi->max_connections = lo->max_connections;
	if (!hi->tls)
		hi->tls = lo->tls;
	if (!hi->max_series)
		hi->max_series = lo->max_series;
	if (!hi->bpf_stats)
		hi->bpf_stats = lo->bpf_stats;
	if (!hi->ring_buffer_size)
		hi->ring_buffer_size = lo->ring_buffer_size;
	if (!hi->drop_caps)
		hi->drop_caps = lo->drop_caps;
	if (!hi->nsize_buckets) {
		memcpy(hi->size_buckets, lo->size_buckets, sizeof(hi->size_buckets));
		hi->nsize_buckets = lo->nsize_buckets;
	}
	if (!hi->nsel) {
		for (i = 0; i < lo->nsel; i++)
			hi->sel[i] = lo->sel[i];
		hi->nsel = lo->nsel;
		lo->nsel = 0;
	}
}

void config__free(struct config *c)
{
	int i;

	for (i = 0; i < c->nsel; i++) {
		free(c->sel[i].exe);
		free(c->sel[i].service_name);
	}
	free(c->listen);
	free(c->service_name);
	free(c->k8s_log_dir);
	free(c->web_config);
	memset(c, 0, sizeof(*c));
}
