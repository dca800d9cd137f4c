// SPDX-License-Identifier: MIT
/* libFuzzer harness for route normalisation (agent/route.c): the request
 * target comes from the traced process's peer, byte for byte. Input: byte 0
 * bit 0: the capture was cut (truncated), bits 1-7: the size of a second,
 * small out buffer (0 to 127); the rest is the target, in a buffer of
 * exactly its size (ASan sees any read past it). Checked: no crash; the
 * route is NUL-terminated, not empty, printable ASCII, and its length is
 * what route__normalize returns; a target of at most 64 bytes
 * (what the kernel captures) gives a route shorter than ROUTE_MAX; a small
 * out buffer gets the same return and a prefix of the same route. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "route.h"

#define CHECK(x) do { if (!(x)) __builtin_trap(); } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n);

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
	char *path, out[4 * 4096], small[128];
	size_t len, r, r2, i, ssz;
	int truncated;

	if (n < 1 || n > 4096)
		return 0;
	truncated = d[0] & 1;
	ssz = d[0] >> 1;
	len = n - 1;
	path = malloc(len ? len : 1);
	if (!path)
		return 0;
	memcpy(path, d + 1, len);
	r = route__normalize(path, len, truncated, out, sizeof(out));
	CHECK(r < sizeof(out));
	CHECK(strlen(out) == r);
	CHECK(r >= 1);
	for (i = 0; i < r; i++)
		CHECK(out[i] >= 0x21 && out[i] <= 0x7e);
	if (len <= 64)
		CHECK(r < ROUTE_MAX);
	memset(small, 'X', sizeof(small));
	r2 = route__normalize(path, len, truncated, small, ssz);
	CHECK(r2 == r);
	if (ssz) {
		size_t k = r < ssz - 1 ? r : ssz - 1;

		CHECK(!memcmp(small, out, k) && small[k] == '\0');
	}
	for (i = ssz; i < sizeof(small); i++)
		CHECK(small[i] == 'X');
	free(path);
	return 0;
}
