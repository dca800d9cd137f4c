// SPDX-License-Identifier: MIT
/* libFuzzer harness for the HTTP framing parser, driven exactly as the kernel
 * drives it (tests/unit/http_sim.h). Input: byte 0 picks the direction and
 * which waiting requests are HEADs (responses) or whether Host values are
 * marked (requests, as for a client's), byte 1 seeds how the rest is cut into
 * syscalls (1 to 2048 bytes each, some "sendfile" with nothing copied).
 * Checked: no crash, no read or write out of bounds (ASan), the scan never
 * runs past a syscall's bytes, every mark is a START or an END (or a HOST
 * inside the window, for a client's requests), carried bytes fit the carry. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define SIM_ASSERT(x) do { if (!(x)) __builtin_trap(); } while (0)
#define MAX_GOT     4096
#include "http_sim.h"

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n);

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
	struct sim *m;
	uint32_t seed;
	size_t pos = 2, chunk;
	int i;

	if (n < 2)
		return 0;
	m = sim_new(d[0] & 1);
	m->want_host = m->request && (d[0] & 2);
	if (!m->request)
		for (i = 0; i < 7; i++)
			sim_expect_method(m, (d[0] >> (i + 1)) & 1 ? AION_METHOD_HEAD : AION_METHOD_GET);
	seed = d[1] * 2654435761u + 1;
	while (pos < n) {
		seed = seed * 1103515245u + 12345u;
		chunk = 1 + (seed >> 8) % 2048;
		if (chunk > n - pos)
			chunk = n - pos;
		/* One syscall in 16 is a sendfile: bytes counted, none copied. */
		sim_data(m, ((seed >> 4) & 15) ? d + pos : NULL, chunk);
		SIM_ASSERT(m->carry_len < AION_CARRY);
		pos += chunk;
	}
	for (i = 0; i < (int)m->n; i++)
		SIM_ASSERT(m->m[i].kind == AION_MARK_START || m->m[i].kind == AION_MARK_END ||
			   (m->want_host && m->m[i].kind == AION_MARK_HOST));
	free(m);
	return 0;
}
