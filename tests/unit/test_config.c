// SPDX-License-Identifier: MIT
/* config: the file format, the AION_* environment, and their precedence. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"

#define UNUSED __attribute__((unused))

static const char example[] =
	"# aion-agent configuration\n"
	"listen = 127.0.0.1:9191   # where to serve\n"
	"service_name = \"fallback\"\n"
	"max_routes = 50\n"
	"\n"
	"[target]\n"
	"exe = /usr/sbin/nginx\n"
	"service_name = web\n"
	"[target]\n"
	"  port = 5432\n"
	"  service_name = db\n"
	"[target]\n"
	"pid = 1\n";

static void test_example_file(void **state UNUSED)
{
	struct config c = {};
	char err[CONFIG_ERR] = "";

	assert_int_equal(config__parse(&c, example, "a.conf", err, sizeof(err)), 0);
	assert_string_equal(c.listen, "127.0.0.1:9191");
	assert_string_equal(c.service_name, "fallback");
	assert_int_equal(c.max_routes, 50);
	assert_int_equal(c.max_connections, 0);
	assert_int_equal(c.nsel, 3);
	assert_int_equal(c.sel[0].kind, SEL_EXE);
	assert_string_equal(c.sel[0].exe, "/usr/sbin/nginx");
	assert_string_equal(c.sel[0].service_name, "web");
	assert_int_equal(c.sel[1].kind, SEL_PORT);
	assert_int_equal(c.sel[1].port, 5432);
	assert_string_equal(c.sel[1].service_name, "db");
	assert_int_equal(c.sel[2].kind, SEL_PID);
	assert_int_equal(c.sel[2].pid, 1);
	assert_null(c.sel[2].service_name);
	config__free(&c);
}

static void expect_error(const char *text, const char *needle)
{
	struct config c = {};
	char err[CONFIG_ERR] = "";

	assert_int_equal(config__parse(&c, text, "bad.conf", err, sizeof(err)), -EINVAL);
	if (!strstr(err, needle))
		fail_msg("error %s does not contain %s", err, needle);
	config__free(&c);
}

static void test_errors_name_file_and_line(void **state UNUSED)
{
	expect_error("[target]\nbogus = 1\n", "bad.conf:2: unknown key 'bogus'");
	expect_error("listen = nonsense\n", "bad.conf:1: listen 'nonsense'");
	expect_error("\n\n[targets]\n", "bad.conf:3: unknown section");
	expect_error("[target]\nservice_name = x\n", "bad.conf:1: [target] needs one of");
	expect_error("[target]\nport = 80\nexe = /x\n", "bad.conf:3: a [target] takes one of");
	expect_error("[target]\nport = 70000\n", "bad.conf:2: port '70000'");
	expect_error("[target]\nservice_name = x\nport = 70000\n", "bad.conf:3: port '70000'");
	expect_error("[target]\npid = -3\n", "bad.conf:2: pid '-3'");
	expect_error("[target]\npid = 12abc\n", "bad.conf:2: pid '12abc'");
	expect_error("just words\n", "bad.conf:1: expected 'key = value'");
	expect_error("max_routes = 0\n", "bad.conf:1: max_routes");
	expect_error("max_connections = 10\n", "bad.conf:1: max_connections");
	expect_error("service_name = caf\xc3\xa9\n", "bad.conf:1: service_name");
	expect_error("[target]\nexe = /x\nservice_name = a\nservice_name = b\n", "bad.conf:4: service_name given twice");
	expect_error("color = blue\n", "bad.conf:1: unknown setting 'color'");
	expect_error("body_size_buckets = 10,5\n", "bad.conf:1: body_size_buckets '10,5'");
	expect_error("body_size_buckets = 1,,2\n", "bad.conf:1: body_size_buckets '1,,2'");
	expect_error("body_size_buckets = -1\n", "bad.conf:1: body_size_buckets '-1'");
	expect_error("body_size_buckets = 1,2,\n", "bad.conf:1: body_size_buckets '1,2,' ends with a comma");
	expect_error("body_size_buckets = 1k\n", "bad.conf:1: body_size_buckets '1k'");
	expect_error("tls = maybe\n", "bad.conf:1: tls 'maybe' must be on or off");
	expect_error("bpf_stats = sometimes\n", "bad.conf:1: bpf_stats 'sometimes' must be on or off");
	expect_error("max_series = 99\n", "bad.conf:1: max_series '99' must be a number from 100 to 1000000");
	expect_error("max_series = 1000001\n", "bad.conf:1: max_series '1000001'");
	expect_error("body_size_buckets = 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,"
		     "24,25,26,27,28,29,30,31,32\n", "bad.conf:1: body_size_buckets '0,1,2");
}

/* Body-size buckets: a comma list of increasing byte counts, from the file,
 * the environment or a flag, the highest layer's list whole. */
static void test_body_size_buckets(void **state UNUSED)
{
	struct config flags = {}, file = {};
	char err[CONFIG_ERR] = "";

	assert_int_equal(config__parse(&file, "body_size_buckets = 0,100,1000\n", "a.conf", err,
				       sizeof(err)), 0);
	assert_int_equal(file.nsize_buckets, 3);
	assert_true(file.size_buckets[0] == 0 && file.size_buckets[1] == 100 &&
		    file.size_buckets[2] == 1000);
	config__merge(&flags, &file);
	assert_int_equal(flags.nsize_buckets, 3);
	assert_true(flags.size_buckets[2] == 1000);
	config__free(&flags);
	config__free(&file);

	memset(&flags, 0, sizeof(flags));
	memset(&file, 0, sizeof(file));
	assert_int_equal(config__parse(&file, "body_size_buckets = 0,100,1000\n", "a.conf", err,
				       sizeof(err)), 0);
	setenv("AION_BODY_SIZE_BUCKETS", "64", 1);
	assert_int_equal(config__from_env(&flags, err, sizeof(err)), 0);
	unsetenv("AION_BODY_SIZE_BUCKETS");
	config__merge(&flags, &file);
	assert_int_equal(flags.nsize_buckets, 1);
	assert_true(flags.size_buckets[0] == 64);
	config__free(&flags);
	config__free(&file);
}

/* fuzz_config finding: a refused list used to be half written over the
 * one before (12 over 0: bounds 12,3 that do not increase). */
static void test_refused_buckets_change_nothing(void **state UNUSED)
{
	static const char text[] = "\nbody_size_buckets= 0,3\nbody_size_buckets=12,";
	struct config c = {};
	char err[CONFIG_ERR] = "";

	assert_int_equal(config__parse(&c, text, "a.conf", err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "a.conf:3: body_size_buckets '12,' ends with a comma");
	assert_int_equal(c.nsize_buckets, 2);
	assert_true(c.size_buckets[0] == 0 && c.size_buckets[1] == 3);
	assert_int_equal(config__set(&c, "body_size_buckets", "7,8,9,1", err, sizeof(err)), -EINVAL);
	assert_int_equal(c.nsize_buckets, 2);
	assert_true(c.size_buckets[0] == 0 && c.size_buckets[1] == 3 && c.size_buckets[2] == 0);
	config__free(&c);
}

static void test_too_many_selectors(void **state UNUSED)
{
	struct config c = {};
	char err[CONFIG_ERR], *text = calloc(1, 64 * 1024);
	size_t off = 0;
	int i;

	assert_non_null(text);
	for (i = 0; i <= CONFIG_MAX_SELECTORS; i++)
		off += snprintf(text + off, 64 * 1024 - off, "[target]\npid = %d\n", i + 1);
	assert_int_equal(config__parse(&c, text, "many.conf", err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "at most 64 selectors"));
	config__free(&c);
	free(text);
}

/* max_series and bpf_stats: file, AION_MAX_SERIES / AION_BPF_STATS, and
 * the higher layer wins. */
static void test_series_and_stats(void **state UNUSED)
{
	struct config env = {}, file = {};
	char err[CONFIG_ERR] = "";

	assert_int_equal(config__parse(&file, "max_series = 2500\nbpf_stats = on\n", "a.conf", err,
				       sizeof(err)), 0);
	assert_int_equal(file.max_series, 2500);
	assert_int_equal(file.bpf_stats, 1);
	setenv("AION_MAX_SERIES", "100", 1);
	setenv("AION_BPF_STATS", "off", 1);
	assert_int_equal(config__from_env(&env, err, sizeof(err)), 0);
	unsetenv("AION_MAX_SERIES");
	unsetenv("AION_BPF_STATS");
	config__merge(&env, &file);
	assert_int_equal(env.max_series, 100);
	assert_int_equal(env.bpf_stats, -1);
	config__free(&env);
	config__free(&file);
}

/* tls: on/off (1/0, true/false, yes/no) from the file or AION_TLS; the
 * flag (--no-tls, set as -1 by main.c) over both. Unset stays 0 (on). */
static void test_tls(void **state UNUSED)
{
	struct config flags = {}, env = {}, file = {};
	char err[CONFIG_ERR] = "";

	assert_int_equal(config__parse(&file, "tls = off\n", "a.conf", err, sizeof(err)), 0);
	assert_int_equal(file.tls, -1);
	assert_int_equal(config__set(&env, "tls", "yes", err, sizeof(err)), 0);
	assert_int_equal(env.tls, 1);
	config__merge(&env, &file);
	assert_int_equal(env.tls, 1); /* env over file */
	flags.tls = -1;               /* --no-tls */
	config__merge(&flags, &env);
	assert_int_equal(flags.tls, -1);
	config__free(&flags);
	config__free(&env);
	config__free(&file);

	memset(&env, 0, sizeof(env));
	setenv("AION_TLS", "0", 1);
	assert_int_equal(config__from_env(&env, err, sizeof(err)), 0);
	assert_int_equal(env.tls, -1);
	setenv("AION_TLS", "sometimes", 1);
	config__free(&env);
	memset(&env, 0, sizeof(env));
	assert_int_equal(config__from_env(&env, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "tls 'sometimes' must be on or off"));
	unsetenv("AION_TLS");
	config__free(&env);
	memset(&env, 0, sizeof(env));
	assert_int_equal(config__from_env(&env, err, sizeof(err)), 0);
	assert_int_equal(env.tls, 0);
	config__free(&env);
}

/* ring_buffer_size: bytes, optionally with a binary K/M/G suffix; a power of
 * two from 4096 to 1G (the kernel's rule for ring buffers: also a multiple of
 * the page size); env over file, unset stays 0 (the 4 MiB default). */
static void test_ring_buffer_size(void **state UNUSED)
{
	static const struct {
		const char *in;
		unsigned long want;
	} good[] = {
		{ "4096", 4096 }, { "4K", 4096 }, { "8k", 8192 }, { "65536", 65536 },
		{ "4M", 4UL << 20 }, { "1m", 1UL << 20 }, { "1G", 1UL << 30 },
		{ "1073741824", 1UL << 30 },
	};
	static const char *const bad[] = {
		"", "0", "2048", "4095", "6000", "12K", "3M", "2G", "2048M", "4T", "4KB", "K", "-4096",
		"+4096", " 4096", "4096 ", "0x1000", "99999999999999999999", "18014398509481984K",
	};
	struct config env = {}, file = {};
	char err[CONFIG_ERR] = "";
	size_t i;

	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		struct config c = {};

		if (config__set(&c, "ring_buffer_size", good[i].in, err, sizeof(err)))
			fail_msg("ring_buffer_size '%s' refused: %s", good[i].in, err);
		if (c.ring_buffer_size != good[i].want)
			fail_msg("ring_buffer_size '%s': %lu, want %lu", good[i].in, c.ring_buffer_size,
				 good[i].want);
	}
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct config c = {};

		err[0] = '\0';
		if (config__set(&c, "ring_buffer_size", bad[i], err, sizeof(err)) != -EINVAL)
			fail_msg("ring_buffer_size '%s' accepted (%lu)", bad[i], c.ring_buffer_size);
		if (!strstr(err, "ring_buffer_size '") || !strstr(err, "power of two") || strchr(err, '\n'))
			fail_msg("ring_buffer_size '%s': unclear error '%s'", bad[i], err);
		assert_int_equal(c.ring_buffer_size, 0);
	}
	expect_error("ring_buffer_size = 5000\n", "bad.conf:1: ring_buffer_size '5000'");

	assert_int_equal(config__parse(&file, "ring_buffer_size = 64K\n", "a.conf", err, sizeof(err)), 0);
	assert_int_equal(file.ring_buffer_size, 65536);
	setenv("AION_RING_BUFFER_SIZE", "16M", 1);
	assert_int_equal(config__from_env(&env, err, sizeof(err)), 0);
	config__merge(&env, &file);
	assert_int_equal(env.ring_buffer_size, 16UL << 20); /* env over file */
	config__free(&env);
	setenv("AION_RING_BUFFER_SIZE", "100", 1);
	assert_int_equal(config__from_env(&env, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "AION_RING_BUFFER_SIZE: ring_buffer_size '100'"));
	unsetenv("AION_RING_BUFFER_SIZE");
	config__free(&env);
	config__free(&file);
}

static void test_web_config(void **state UNUSED)
{
	struct config flags = {}, env = {}, file = {};
	char err[CONFIG_ERR] = "";

	assert_int_equal(config__parse(&file, "web_config = /etc/aion/web.yml\n", "a.conf",
				       err, sizeof(err)), 0);
	assert_string_equal(file.web_config, "/etc/aion/web.yml");
	setenv("AION_WEB_CONFIG", "env.yml", 1);
	assert_int_equal(config__from_env(&env, err, sizeof(err)), 0);
	unsetenv("AION_WEB_CONFIG");
	assert_string_equal(env.web_config, "env.yml");
	config__merge(&env, &file);
	assert_string_equal(env.web_config, "env.yml");   /* env over file */
	assert_int_equal(config__set(&flags, "web_config", "flag.yml", err, sizeof(err)), 0);
	config__merge(&flags, &env);
	assert_string_equal(flags.web_config, "flag.yml"); /* flag over env */
	config__free(&flags);
	config__free(&env);
	config__free(&file);

	memset(&file, 0, sizeof(file));
	assert_int_equal(config__parse(&file, "\nweb_config = \"\"\n", "bad.conf", err, sizeof(err)),
			 -EINVAL);
	assert_string_equal(err, "bad.conf:2: web_config needs a file (see README, Endpoints)");
	config__free(&file);
}

/* drop_caps: on/off from the file (drop_caps = on) or AION_DROP_CAPS; the
 * flag (--drop-caps, set as 1 by main.c) over both; unset stays 0 (off). */
static void test_drop_caps(void **state UNUSED)
{
	struct config flags = {}, env = {}, file = {};
	char err[CONFIG_ERR] = "";

	assert_int_equal(config__parse(&file, "drop_caps = on   # after attach\n", "a.conf", err,
				       sizeof(err)), 0);
	assert_int_equal(file.drop_caps, 1);
	assert_int_equal(file.tls, 0); /* the other on/off setting is untouched */
	assert_int_equal(config__set(&env, "drop_caps", "no", err, sizeof(err)), 0);
	assert_int_equal(env.drop_caps, -1);
	config__merge(&env, &file);
	assert_int_equal(env.drop_caps, -1); /* env over file */
	flags.drop_caps = 1;                 /* --drop-caps */
	config__merge(&flags, &env);
	assert_int_equal(flags.drop_caps, 1);
	config__free(&flags);
	config__free(&env);
	config__free(&file);

	expect_error("drop_caps = later\n", "bad.conf:1: drop_caps 'later' must be on or off");

	memset(&env, 0, sizeof(env));
	setenv("AION_DROP_CAPS", "1", 1);
	assert_int_equal(config__from_env(&env, err, sizeof(err)), 0);
	assert_int_equal(env.drop_caps, 1);
	config__free(&env);
	memset(&env, 0, sizeof(env));
	setenv("AION_DROP_CAPS", "sometimes", 1);
	assert_int_equal(config__from_env(&env, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "AION_DROP_CAPS: drop_caps 'sometimes' must be on or off"));
	unsetenv("AION_DROP_CAPS");
	config__free(&env);
	memset(&env, 0, sizeof(env));
	assert_int_equal(config__from_env(&env, err, sizeof(err)), 0);
	assert_int_equal(env.drop_caps, 0);
	config__free(&env);
}

static void test_env(void **state UNUSED)
{
	struct config c = {};
	char err[CONFIG_ERR] = "";

	setenv("AION_LISTEN", ":9300", 1);
	setenv("AION_PID", "10, 20", 1);
	setenv("AION_PORT", "8080", 1);
	setenv("AION_EXE", "/a,/b", 1);
	setenv("AION_ALL", "0", 1);
	assert_int_equal(config__from_env(&c, err, sizeof(err)), 0);
	assert_string_equal(c.listen, ":9300");
	assert_int_equal(c.nsel, 5);
	assert_int_equal(c.sel[0].pid, 10);
	assert_int_equal(c.sel[1].pid, 20);
	assert_string_equal(c.sel[2].exe, "/a");
	assert_string_equal(c.sel[3].exe, "/b");
	assert_int_equal(c.sel[4].port, 8080);
	config__free(&c);

	setenv("AION_PORT", "http", 1);
	assert_int_equal(config__from_env(&c, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "AION_PORT: port 'http'"));
	config__free(&c);
	unsetenv("AION_LISTEN");
	unsetenv("AION_PID");
	unsetenv("AION_PORT");
	unsetenv("AION_EXE");
	unsetenv("AION_ALL");
}

static void test_precedence(void **state UNUSED)
{
	struct config flags = {}, env = {}, file = {};
	char err[CONFIG_ERR] = "";

	assert_int_equal(config__parse(&file, example, "a.conf", err, sizeof(err)), 0);
	assert_int_equal(config__set(&env, "listen", ":9400", err, sizeof(err)), 0);
	assert_int_equal(config__set(&env, "max_routes", "7", err, sizeof(err)), 0);
	assert_int_equal(config__set(&flags, "max_routes", "9", err, sizeof(err)), 0);
	config__merge(&env, &file);
	config__merge(&flags, &env);
	assert_string_equal(flags.listen, ":9400");       /* env over file */
	assert_int_equal(flags.max_routes, 9);            /* flag over env */
	assert_string_equal(flags.service_name, "fallback"); /* file when nobody else */
	assert_int_equal(flags.nsel, 3);                  /* the file's selectors */
	config__free(&flags);
	config__free(&env);
	config__free(&file);

	/* Selectors on the command line replace the file's. */
	memset(&flags, 0, sizeof(flags));
	assert_int_equal(config__parse(&file, example, "a.conf", err, sizeof(err)), 0);
	assert_int_equal(config__add_selector(&flags, SEL_PORT, "80", NULL, err, sizeof(err)), 0);
	config__merge(&flags, &file);
	assert_int_equal(flags.nsel, 1);
	assert_int_equal(flags.sel[0].port, 80);
	config__free(&flags);
	config__free(&file);
}

static void test_load_file(void **state UNUSED)
{
	char path[] = "/tmp/aion-conf-XXXXXX", err[CONFIG_ERR] = "";
	struct config c = {};
	int fd = mkstemp(path);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, example, strlen(example)), (ssize_t)strlen(example));
	close(fd);
	assert_int_equal(config__load(&c, path, err, sizeof(err)), 0);
	assert_int_equal(c.nsel, 3);
	config__free(&c);
	/* A binary file is refused, a missing one named. */
	fd = open(path, O_WRONLY | O_TRUNC);
	assert_int_equal(write(fd, "listen\0= x", 10), 10);
	close(fd);
	assert_int_equal(config__load(&c, path, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "not a text file"));
	unlink(path);
	assert_int_equal(config__load(&c, path, err, sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, path));
	config__free(&c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_example_file),
		cmocka_unit_test(test_errors_name_file_and_line),
		cmocka_unit_test(test_too_many_selectors),
		cmocka_unit_test(test_body_size_buckets),
		cmocka_unit_test(test_refused_buckets_change_nothing),
		cmocka_unit_test(test_tls),
		cmocka_unit_test(test_ring_buffer_size),
		cmocka_unit_test(test_web_config),
		cmocka_unit_test(test_env),
		cmocka_unit_test(test_drop_caps),
		cmocka_unit_test(test_series_and_stats),
		cmocka_unit_test(test_precedence),
		cmocka_unit_test(test_load_file),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
