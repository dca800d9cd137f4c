// SPDX-License-Identifier: MIT
/* libFuzzer harness for the identity parsers (agent/identity.c): the text
 * of /proc/PID/cgroup, whose paths a container runtime or a privileged
 * process names, and the kubelet's log link names in /var/log/containers.
 * Input: byte 0 even: the rest is a cgroup file's text; odd: a log link
 * name, matched against the container id CID below (what the seeds use).
 * Checked: no crash, no read past the text; a container id is empty or 64
 * lower-case hex digits, and found exactly when the parser says so; a pod
 * uid is empty or 8-4-4-4-12 lower-case hex; pod, namespace and container
 * names are 1 to 253 bytes without '_'; the labels render. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "identity.h"
#include "strbuf.h"

#define CHECK(x) do { if (!(x)) __builtin_trap(); } while (0)
#define CID "3f1c2e9d8b7a6f5e4d3c2b1a0f9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f10"

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n);

static int lower_hex(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

static void check_name(const char *s, int found)
{
	size_t n = strnlen(s, IDENTITY_NAME);

	CHECK(n < IDENTITY_NAME);
	CHECK(found ? n >= 1 : n == 0);
	CHECK(!memchr(s, '_', n));
}

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
	struct identity id;
	struct strbuf sb;
	char *text;
	size_t i, len;
	int found;

	if (n < 1)
		return 0;
	text = malloc(n);
	if (!text)
		return 0;
	memcpy(text, d + 1, n - 1);
	text[n - 1] = '\0';
	memset(&id, 0, sizeof(id));
	if (d[0] & 1) {
		found = identity__parse_k8s_log(text, CID, &id);
		CHECK(found == 0 || found == 1);
		check_name(id.k8s_pod, found);
		check_name(id.k8s_namespace, found);
		check_name(id.k8s_container, found);
		CHECK(!found || strlen(text) > 64 + 5);
	} else {
		found = identity__parse_cgroup(text, &id);
		len = strnlen(id.container_id, IDENTITY_CID);
		CHECK(found == (len != 0));
		CHECK(len == 0 || len == 64);
		for (i = 0; i < len; i++)
			CHECK(lower_hex(id.container_id[i]));
		len = strnlen(id.pod_uid, IDENTITY_UID);
		CHECK(len == 0 || len == 36);
		for (i = 0; i < len; i++)
			CHECK(i == 8 || i == 13 || i == 18 || i == 23 ? id.pod_uid[i] == '-'
								 : lower_hex(id.pod_uid[i]));
	}
	strbuf__init(&sb);
	CHECK(identity__labels(&id, &sb) == 0);
	strbuf__free(&sb);
	free(text);
	return 0;
}
