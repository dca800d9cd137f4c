// SPDX-License-Identifier: GPL-2.0
/* webconfig: the --web-config subset of exporter-toolkit's YAML, good files
 * and every error a user can meet, each with FILE:LINE and the fix. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "webconfig.h"

#define UNUSED __attribute__((unused))

/* htpasswd -nbBC 10 prom secret */
#define HASH "$2y$10$UXY/QGepOy7CXCvV/qY96OD2M.WJmFBeIzVT7WywCfetNMYZes4W2"
#define HASH_B "$2b$04$23DzzFktFPrMZo.j5kqQuOwS.XGwB/ZqRNV0iDCxgkStdd0r4FE36"

static void test_example(void **state UNUSED)
{
	static const char text[] =
		"# aion endpoint\n"
		"---\n"
		"tls_server_config:   # HTTPS\n"
		"  cert_file: server.crt\n"
		"  key_file: \"keys/server.key\"  # quoted\n"
		"\n"
		"basic_auth_users:\n"
		"  prom: " HASH "\n"
		"  'o''brien': '" HASH_B "'\n"
		"  \"q\\\"uote\": \"" HASH "\"\n";
	struct webconfig w = {};
	char err[WEBCONFIG_ERR] = "";

	assert_int_equal(webconfig__parse(&w, text, "/etc/aion/web.yml", err, sizeof(err)), 0);
	assert_string_equal(w.cert_file, "/etc/aion/server.crt");
	assert_string_equal(w.key_file, "/etc/aion/keys/server.key");
	assert_int_equal(w.nusers, 3);
	assert_string_equal(w.users[0].name, "prom");
	assert_string_equal(w.users[0].hash, HASH);
	assert_string_equal(w.users[1].name, "o'brien");
	assert_string_equal(w.users[1].hash, HASH_B);
	assert_string_equal(w.users[2].name, "q\"uote");
	webconfig__free(&w);
}

static void test_paths_and_layouts(void **state UNUSED)
{
	struct webconfig w = {};
	char err[WEBCONFIG_ERR] = "";

	/* No directory in the name: paths as given; absolute ones kept;
	 * CRLF line ends; 4-space indentation; '#' not after a space is text. */
	assert_int_equal(webconfig__parse(&w, "tls_server_config:\r\n    cert_file: a#b.crt\r\n"
					  "    key_file: /k/server.key\r\n", "web.yml",
					  err, sizeof(err)), 0);
	assert_string_equal(w.cert_file, "a#b.crt");
	assert_string_equal(w.key_file, "/k/server.key");
	assert_int_equal(w.nusers, 0);
	webconfig__free(&w);

	assert_int_equal(webconfig__parse(&w, "tls_server_config:\n cert_file: c\n key_file: k\n",
					  "/web.yml", err, sizeof(err)), 0);
	assert_string_equal(w.cert_file, "/c");
	webconfig__free(&w);

	/* Auth only. */
	assert_int_equal(webconfig__parse(&w, "basic_auth_users:\n  a: " HASH "\n", "d/w.yml",
					  err, sizeof(err)), 0);
	assert_null(w.cert_file);
	assert_int_equal(w.nusers, 1);
	webconfig__free(&w);

	/* Empty, or only comments: neither TLS nor auth, like exporter-toolkit. */
	assert_int_equal(webconfig__parse(&w, "", "w.yml", err, sizeof(err)), 0);
	assert_int_equal(webconfig__parse(&w, "# nothing\n\n   \n", "w.yml", err, sizeof(err)), 0);
	assert_null(w.cert_file);
	assert_int_equal(w.nusers, 0);
}

static void expect_error(const char *text, const char *want)
{
	struct webconfig w = {};
	char err[WEBCONFIG_ERR] = "";

	assert_int_equal(webconfig__parse(&w, text, "web.yml", err, sizeof(err)), -EINVAL);
	if (strncmp(err, want, strlen(want)))
		fail_msg("for:\n%s\nwant an error starting with: %s\ngot: %s", text, want, err);
	/* Nothing is left allocated on failure. */
	assert_null(w.cert_file);
	assert_int_equal(w.nusers, 0);
}

#define TLS "tls_server_config:\n  cert_file: c\n  key_file: k\n"

static void test_unsupported_keys(void **state UNUSED)
{
	expect_error(TLS "  client_auth_type: RequireAndVerifyClientCert\n",
		     "web.yml:4: tls_server_config: client_auth_type is not supported by aion");
	expect_error("tls_server_config:\n  client_ca_file: ca.pem\n  cert_file: c\n",
		     "web.yml:2: tls_server_config: client_ca_file is not supported");
	expect_error(TLS "  min_version: TLS13\n", "web.yml:4: tls_server_config: min_version is not");
	expect_error(TLS "  cipher_suites: x\n", "web.yml:4: tls_server_config: cipher_suites is not");
	expect_error("http_server_config:\n  http2: false\n",
		     "web.yml:1: http_server_config is not supported by aion (it serves HTTP/1.1 "
		     "only and sets no extra headers): remove it");
	expect_error("\nfoo: 1\n", "web.yml:2: unknown key 'foo' (a web config takes "
		     "tls_server_config and basic_auth_users)");
	expect_error("tls_server_config:\n  certfile: c\n",
		     "web.yml:2: tls_server_config: unknown key 'certfile' (it takes cert_file and key_file)");
}

static void test_structure_errors(void **state UNUSED)
{
	expect_error("tls_server_config:\n  cert_file: c\n",
		     "web.yml:1: tls_server_config needs both cert_file and key_file");
	expect_error("tls_server_config:\nbasic_auth_users:\n  a: " HASH "\n",
		     "web.yml:1: tls_server_config needs both cert_file and key_file");
	expect_error("basic_auth_users:\n# none\n",
		     "web.yml:1: basic_auth_users has no users: add `NAME: BCRYPT_HASH` lines");
	expect_error(TLS TLS, "web.yml:4: tls_server_config is given twice: keep one");
	expect_error("tls_server_config:\n  cert_file: c\n  cert_file: d\n",
		     "web.yml:3: cert_file is given twice: keep one");
	expect_error("tls_server_config:\n\tcert_file: c\n",
		     "web.yml:2: a tab in the indentation: indent with spaces");
	expect_error("tls_server_config:\n  cert_file: c\n   key_file: k\n",
		     "web.yml:3: indented by 3 spaces where this block uses 2: align it");
	expect_error("  cert_file: c\n",
		     "web.yml:1: indented line outside tls_server_config or basic_auth_users");
	expect_error("tls_server_config: {cert_file: c, key_file: k}\n",
		     "web.yml:1: tls_server_config takes indented `key: value` lines below it");
	expect_error("tls_server_config:\n  cert_file: {a: b}\n",
		     "web.yml:2: '{' starts YAML this parser does not support");
	expect_error("tls_server_config:\n  cert_file: &anchor c\n",
		     "web.yml:2: '&' starts YAML this parser does not support");
	expect_error("tls_server_config:\n  - cert_file: c\n",
		     "web.yml:2: lists are not supported here");
	expect_error("tls_server_config:\n  cert_file:\n  key_file: k\n",
		     "web.yml:2: 'cert_file' needs a value on the same line");
	expect_error("tls_server_config:\n  cert_file: a: b\n",
		     "web.yml:2: ': ' inside a plain value: quote the value");
	expect_error("tls_server_config:\n  cert_file: \"c\n",
		     "web.yml:2: unterminated double quote");
	expect_error("tls_server_config:\n  cert_file: 'c\n",
		     "web.yml:2: unterminated single quote");
	expect_error("tls_server_config:\n  cert_file: \"c\\n\"\n",
		     "web.yml:2: unsupported escape '\\n'");
	expect_error("tls_server_config:\n  cert_file: 'c' d\n",
		     "web.yml:2: unexpected text after the quoted value");
	expect_error("tls_server_config:\n  'cert_file' x: c\n",
		     "web.yml:2: expected ':' after the quoted key");
	expect_error("just words\n", "web.yml:1: expected `key: value`");
	expect_error("tls_server_config:\n  cert_file:c\n", "web.yml:2: expected `key: value`");
	expect_error(TLS "---\n", "web.yml:4: one YAML document only");
	expect_error("tls_server_config:\n  cert_file: \"\"\n", "web.yml:2: cert_file needs a file name");
}

static void test_users(void **state UNUSED)
{
	char text[64 * 90], *p;
	int i;

	expect_error("basic_auth_users:\n  prom: secret\n",
		     "web.yml:2: basic_auth_users: the password of 'prom' is not a bcrypt hash");
	/* $2x$ (a broken old variant), a cost out of range, a cut hash. */
	expect_error("basic_auth_users:\n  a: $2x$10$UXY/QGepOy7CXCvV/qY96OD2M.WJmFBeIzVT7WywCfetNMYZes4W2\n",
		     "web.yml:2: basic_auth_users: the password of 'a' is not a bcrypt hash");
	expect_error("basic_auth_users:\n  a: $2y$03$UXY/QGepOy7CXCvV/qY96OD2M.WJmFBeIzVT7WywCfetNMYZes4W2\n",
		     "web.yml:2: basic_auth_users: the password of 'a' is not a bcrypt hash");
	expect_error("basic_auth_users:\n  a: $2y$10$UXY/QGepOy7CXCvV/qY96OD2M.WJmFBeIzVT7WywCfetNMYZes4W\n",
		     "web.yml:2: basic_auth_users: the password of 'a' is not a bcrypt hash");
	expect_error("basic_auth_users:\n  a: " HASH "\n  a: " HASH "\n",
		     "web.yml:3: basic_auth_users: user 'a' is given twice: keep one");
	expect_error("basic_auth_users:\n  'a:b': " HASH "\n",
		     "web.yml:2: basic_auth_users: user name 'a:b' contains ':'");
	expect_error("basic_auth_users:\n  '': " HASH "\n",
		     "web.yml:2: basic_auth_users: empty user name");

	p = text + sprintf(text, "basic_auth_users:\n");
	for (i = 0; i <= WEBCONFIG_MAX_USERS; i++)
		p += sprintf(p, "  u%d: %s\n", i, HASH);
	expect_error(text, "web.yml:66: basic_auth_users: more than 64 users");
}

static char *write_tmp(const char *text)
{
	static char path[64];
	int fd;

	snprintf(path, sizeof(path), "/tmp/aion-test-webconfig-XXXXXX");
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	return path;
}

static void test_load_and_pem(void **state UNUSED)
{
	struct webconfig w = {};
	char err[WEBCONFIG_ERR] = "", *path, *pem;

	assert_int_equal(webconfig__load(&w, "/nonexistent/web.yml", err, sizeof(err)), -ENOENT);
	assert_string_equal(err, "/nonexistent/web.yml: No such file or directory");

	path = write_tmp("tls_server_config:\n  cert_file: c.pem\n  key_file: k.pem\n");
	assert_int_equal(webconfig__load(&w, path, err, sizeof(err)), 0);
	assert_string_equal(w.cert_file, "/tmp/c.pem");
	webconfig__free(&w);
	unlink(path);

	path = write_tmp("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n");
	pem = webconfig__read_pem(path, "cert_file", err, sizeof(err));
	assert_non_null(pem);
	assert_non_null(strstr(pem, "MIIB"));
	free(pem);
	/* A certificate is not a key. */
	assert_null(webconfig__read_pem(path, "key_file", err, sizeof(err)));
	assert_non_null(strstr(err, "no PEM private key in it"));
	unlink(path);

	path = write_tmp("-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n");
	pem = webconfig__read_pem(path, "key_file", err, sizeof(err));
	assert_non_null(pem);
	free(pem);
	assert_null(webconfig__read_pem(path, "cert_file", err, sizeof(err)));
	assert_non_null(strstr(err, "no PEM certificate in it (want a -----BEGIN CERTIFICATE----- block)"));
	unlink(path);

	assert_null(webconfig__read_pem("/nonexistent/k.pem", "key_file", err, sizeof(err)));
	assert_string_equal(err, "key_file /nonexistent/k.pem: No such file or directory");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_example),
		cmocka_unit_test(test_paths_and_layouts),
		cmocka_unit_test(test_unsupported_keys),
		cmocka_unit_test(test_structure_errors),
		cmocka_unit_test(test_users),
		cmocka_unit_test(test_load_and_pem),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
