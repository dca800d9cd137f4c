// SPDX-License-Identifier: MIT
/* libFuzzer harness for the database framing parsers (include/aion/db.h:
 * PostgreSQL, MySQL, Redis), driven exactly as the kernel drives them
 * (tests/unit/db_sim.h: detection, carry, windows, rounds, the queue of
 * operations, the events).
 *
 * Input (what `capture.py seeds` writes from tests/unit/captures/db/):
 *   byte 0   bits 0-1: protocol (0 PG, 1 MySQL, 2 Redis, 3 learnt from the
 *            first bytes); bit 2: seen by the server (else the client);
 *            bit 3: learn it from the first bytes anyway; bits 4-5:
 *            window of 1024, 512, 256 or 128 bytes
 *   byte 1   how each chunk is cut into syscalls: 0 as it comes, else the
 *            seed of random cuts (1 byte to 2 KB, some as writev() of up
 *            to 4 segments, one in 32 a sendfile() with nothing copied)
 *   then     chunks: 1 byte direction (bit 0: 0 client -> server, 1 back),
 *            2 bytes length (big endian, cut to what is left), the bytes.
 * Checked: no crash, no read or write out of bounds (ASan, UBSan), and the
 * invariants db_sim.h asserts (the scan never runs past a syscall, marks
 * are of their side and kind, texts are at most AION_PATH_MAX, carried
 * bytes fit the carry); on top: no operation's text comes from outside
 * the bytes of its syscall, every event is well formed. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define SIM_ASSERT(x) do { if (!(x)) __builtin_trap(); } while (0)
#include "db_sim.h"

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n);

static const __u8 protos[] = { AION_PROTO_PG, AION_PROTO_MYSQL, AION_PROTO_REDIS, AION_PROTO_UNKNOWN };
static const __u32 windows[] = { AION_WINDOW, 512, 256, 128 };

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
	struct dbsim *m;
	uint32_t seed;
	size_t pos = 2, i;
	__u8 proto;

	if (n < 2)
		return 0;
	proto = d[0] & 8 ? AION_PROTO_UNKNOWN : protos[d[0] & 3];
	m = dbsim_new(d[0] & 4 ? AION_ROLE_SERVER : AION_ROLE_CLIENT, proto);
	m->window = windows[(d[0] >> 4) & 3];
	seed = d[1] * 2654435761u + 1;
	while (pos < n) {
		int wd = d[pos] & 1 ? DB_DIR_S : DB_DIR_C;
		size_t len = 0, off = 0;

		pos++;
		if (pos + 2 <= n) {
			len = (size_t)d[pos] << 8 | d[pos + 1];
			pos += 2;
		}
		if (len > n - pos)
			len = n - pos;
		if (!len)
			continue;
		while (off < len) {
			size_t k = len - off;
			struct dseg sg[AION_MAX_IOV];
			__u32 ns = 1, j;

			if (d[1]) {
				seed = seed * 1103515245u + 12345u;
				k = 1 + (seed >> 8) % 2048;
				if (k > len - off)
					k = len - off;
			}
			sg[0] = (struct dseg){ d + pos + off, k };
			if (d[1] && !((seed >> 4) & 31)) {
				sg[0].p = NULL; /* sendfile: counted, nothing copied */
			} else if (d[1] && ((seed >> 9) & 3) && k > 1) {
				/* writev(): the first segment short, the rest in pieces */
				size_t a = 1 + (seed >> 12) % (k < 64 ? k - 1 : 63), rest = k - a;

				sg[0].n = a;
				ns = 1 + (seed >> 9) % 3;
				for (j = 1; j < ns; j++) {
					size_t piece = j + 1 == ns ? rest : rest / 2;

					sg[j] = (struct dseg){ d + pos + off + (k - rest), piece };
					rest -= piece;
				}
			}
			dbsim_segs(m, wd, sg, ns, k);
			off += k;
		}
		pos += len;
	}
	/* Texts of operations come from the syscall that carried them. */
	SIM_ASSERT(m->bad_text == 0);
	for (i = 0; i < m->nev; i++) {
		const struct db_ev *e = &m->ev[i];

		SIM_ASSERT(e->op >= AION_DB_QUERY && e->op <= AION_DB_STMT && e->op != AION_DB_SYNC);
		SIM_ASSERT(e->count >= 1);
		SIM_ASSERT(e->text_len <= AION_DB_TEXT);
		SIM_ASSERT(e->err_len <= AION_DB_TEXT - 32);
		SIM_ASSERT(!e->err_len || e->text_len <= 32);
		SIM_ASSERT(e->start <= e->end);
	}
	SIM_ASSERT(m->tail - m->head <= AION_QUEUE_DEPTH);
	dbsim_free(m);
	return 0;
}
