// SPDX-License-Identifier: GPL-2.0
/* libFuzzer harness for the --web-config parser (agent/webconfig.c). The
 * input is the file's text, in a buffer of exactly its size plus the NUL
 * (ASan sees any read past it). Checked: no crash, no leak; a file that
 * parses has both cert_file and key_file or neither, both under the web
 * config's directory when relative, and users with distinct names without
 * ':' and 60-character $2?$ hashes; a file that does not parse leaves the
 * struct empty and says "dir/web.yml:LINE: " on one line. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "webconfig.h"

#define CHECK(x) do { if (!(x)) __builtin_trap(); } while (0)
#define NAME "dir/web.yml"

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n);

static void check_path(const char *p)
{
	CHECK(p && *p);
	CHECK(p[0] == '/' || !strncmp(p, "dir/", 4));
}

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
	struct webconfig w = {};
	char err[WEBCONFIG_ERR] = "";
	unsigned i, j;
	char *text;
	int rc;

	text = malloc(n + 1);
	if (!text)
		return 0;
	memcpy(text, d, n);
	text[n] = '\0';
	rc = webconfig__parse(&w, text, NAME, err, sizeof(err));
	if (rc) {
		CHECK(rc == -EINVAL);
		CHECK(!strncmp(err, NAME ":", strlen(NAME) + 1));
		CHECK(!strchr(err, '\n'));
		CHECK(!w.cert_file && !w.key_file && !w.nusers);
		free(text);
		return 0;
	}
	CHECK(!w.cert_file == !w.key_file);
	if (w.cert_file) {
		check_path(w.cert_file);
		check_path(w.key_file);
	}
	CHECK(w.nusers <= WEBCONFIG_MAX_USERS);
	for (i = 0; i < w.nusers; i++) {
		CHECK(*w.users[i].name && !strchr(w.users[i].name, ':'));
		CHECK(strlen(w.users[i].hash) == 60 && !strncmp(w.users[i].hash, "$2", 2));
		for (j = 0; j < i; j++)
			CHECK(strcmp(w.users[i].name, w.users[j].name));
	}
	webconfig__free(&w);
	free(text);
	return 0;
}
