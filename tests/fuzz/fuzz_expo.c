// SPDX-License-Identifier: MIT
/* libFuzzer harness for the text parsers of the exposition endpoint
 * (agent/expo.c, included whole to reach its static helpers): --listen
 * values (expo__parse_listen) and the Accept-Encoding header any scraper
 * sends (accepts_gzip, params__q_zero). Input: byte 0 even: the rest is a
 * listen value; odd: an Accept-Encoding value. Checked: no crash, no read
 * past the text; an accepted address has port 1-65535, the length of its
 * family, and prints back (inet_ntop) to a value parsed to the same
 * address; gzip is accepted only when the header names it. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "expo.c"

#define CHECK(x) do { if (!(x)) __builtin_trap(); } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n);

static void check_listen(const char *s)
{
	struct sockaddr_storage ss, ss2;
	char host[INET6_ADDRSTRLEN], again[INET6_ADDRSTRLEN + 16];
	socklen_t len, len2;

	if (expo__parse_listen(s, &ss, &len))
		return;
	if (ss.ss_family == AF_INET) {
		struct sockaddr_in *a = (struct sockaddr_in *)&ss;

		CHECK(len == sizeof(*a) && ntohs(a->sin_port) >= 1);
		CHECK(inet_ntop(AF_INET, &a->sin_addr, host, sizeof(host)));
		snprintf(again, sizeof(again), "%s:%u", host, ntohs(a->sin_port));
	} else {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;

		CHECK(ss.ss_family == AF_INET6);
		CHECK(len == sizeof(*a) && ntohs(a->sin6_port) >= 1);
		CHECK(inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof(host)));
		snprintf(again, sizeof(again), "[%s]:%u", host, ntohs(a->sin6_port));
	}
	CHECK(!expo__parse_listen(again, &ss2, &len2));
	CHECK(len2 == len && !memcmp(&ss, &ss2, len));
}

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
	char *s;

	if (n < 1)
		return 0;
	s = malloc(n);
	if (!s)
		return 0;
	memcpy(s, d + 1, n - 1);
	s[n - 1] = '\0';
	if (d[0] & 1)
		CHECK(!accepts_gzip(s) || strcasestr(s, "gzip"));
	else
		check_listen(s);
	free(s);
	return 0;
}
