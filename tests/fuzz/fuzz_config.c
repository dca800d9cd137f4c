// SPDX-License-Identifier: MIT
/* libFuzzer harness for the settings parsers (agent/config.c): the config
 * file (--config FILE), the AION_* environment and each value parser
 * (listen, body_size_buckets, selectors ...); fuzz_config_file.c gives
 * the bytes to config__load as a file. Input: byte 0 % 4 picks what the
 * rest is:
 *   0     a config file's text (up to a NUL) given to config__parse
 *   1     "KEY=VALUE": one setting by config__set
 *   2     one AION_* variable (byte 1 picks it) with the rest as its value
 *   3     a selector value (byte 1 picks pid, exe, port or all)
 * Checked: no crash, no leak (libFuzzer's LeakSanitizer), no read past the
 * bytes; a refusal says why in one non-empty line; what is accepted is in
 * range (selectors, max_routes, max_connections, increasing bucket bounds,
 * a listen address expo__parse_listen takes, a printable service_name). */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "config.h"
#include "expo.h"

#define CHECK(x) do { if (!(x)) __builtin_trap(); } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n);

static const char *const envs[] = {
	"AION_LISTEN", "AION_SERVICE_NAME", "AION_MAX_ROUTES", "AION_MAX_CONNECTIONS",
	"AION_BODY_SIZE_BUCKETS", "AION_K8S_LOG_DIR", "AION_TLS", "AION_PID", "AION_EXE",
	"AION_PORT", "AION_ALL",
};

static void well_formed(const struct config *c)
{
	struct sockaddr_storage ss;
	socklen_t sl;
	unsigned i;

	CHECK(c->nsel >= 0 && c->nsel <= CONFIG_MAX_SELECTORS);
	for (i = 0; i < (unsigned)c->nsel; i++) {
		const struct selector *s = &c->sel[i];

		CHECK(s->kind >= SEL_PID && s->kind <= SEL_ALL);
		CHECK(s->kind != SEL_PID || s->pid > 0);
		CHECK(s->kind != SEL_PORT || (s->port >= 1 && s->port <= 65535));
		CHECK(s->kind != SEL_EXE || (s->exe && *s->exe));
		CHECK(!s->service_name || !config__check_name(s->service_name));
	}
	CHECK(!c->listen || !expo__parse_listen(c->listen, &ss, &sl));
	CHECK(!c->service_name || !config__check_name(c->service_name));
	CHECK(!c->k8s_log_dir || *c->k8s_log_dir);
	CHECK(c->max_routes <= 100000);
	CHECK(!c->max_connections || (c->max_connections >= 64 && c->max_connections <= 1 << 22));
	CHECK(c->nsize_buckets <= CONFIG_MAX_SIZE_BUCKETS);
	for (i = 1; i < c->nsize_buckets; i++)
		CHECK(c->size_buckets[i] > c->size_buckets[i - 1]);
	CHECK(c->tls >= -1 && c->tls <= 1);
}

/* A refusal: a message of one line (file and env values hold no newline
 * of their own: the file is cut at them, the env case filters them). */
static void refusal(int rc, const char *err)
{
	if (rc == -ENOMEM)
		return;
	CHECK(rc == -EINVAL || rc == -ENOENT);
	if (rc == -EINVAL) {
		CHECK(memchr(err, 0, CONFIG_ERR));
		CHECK(err[0] && !strchr(err, '\n'));
	}
}

static char *text_of(const uint8_t *d, size_t n)
{
	char *s = malloc(n + 1);

	if (s) {
		memcpy(s, d, n);
		s[n] = '\0';
	}
	return s;
}

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
	struct config c = {};
	char err[CONFIG_ERR], *s, *eq;
	int rc = 0;

	if (n < 2)
		return 0;
	memset(err, 0, sizeof(err));
	switch (d[0] % 4) {
	case 0:
		s = text_of(d + 1, n - 1);
		if (!s)
			return 0;
		rc = config__parse(&c, s, "fuzz.conf", err, sizeof(err));
		free(s);
		break;
	case 1:
		s = text_of(d + 1, n - 1);
		if (!s)
			return 0;
		eq = strchr(s, '=');
		if (eq && !strchr(s, '\n')) {
			*eq = '\0';
			rc = config__set(&c, s, eq + 1, err, sizeof(err));
		}
		free(s);
		break;
	case 2:
		s = text_of(d + 2, n - 2);
		if (!s)
			return 0;
		if (!strchr(s, '\n')) {
			const char *name = envs[d[1] % (sizeof(envs) / sizeof(envs[0]))];

			CHECK(!setenv(name, s, 1));
			rc = config__from_env(&c, err, sizeof(err));
			unsetenv(name);
		}
		free(s);
		break;
	case 3:
		s = text_of(d + 2, n - 2);
		if (!s)
			return 0;
		if (!strchr(s, '\n'))
			rc = config__add_selector(&c, (enum selector_kind)(1 + d[1] % 4), s,
						  d[1] & 4 ? "svc" : NULL, err, sizeof(err));
		free(s);
		break;
	}
	if (rc)
		refusal(rc, err);
	well_formed(&c);
	config__free(&c);
	return 0;
}
