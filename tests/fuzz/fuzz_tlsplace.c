// SPDX-License-Identifier: MIT
/* libFuzzer harness for the ELF reader that places TLS probes
 * (agent/tlsplace.c). The agent reads every file a traced process maps
 * executable, and the process chooses that file: its bytes are hostile.
 * Input: the whole file, written to a memfd that the functions open by
 * its /proc/self/fd path, as they open a process's files through
 * /proc/PID/root. Run as the agent runs them: tlsplace__facts, then
 * tlsplace__plan when a library was recognised, tlsplace__embeds_tls when
 * not. Checked: no crash, no hang (libFuzzer's -timeout), no leak; at most
 * TLS_MAX_SEGS segments; the library is named only when both its read and
 * write functions are defined; the plan has 1 to TLS_MAX_PROBES probes,
 * each with a known role and a file offset, or -1 (not in the file). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "tlsplace.h"

#define CHECK(x) do { if (!(x)) __builtin_trap(); } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n);

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
	static int fd = -1;
	static char path[64];
	struct tls_probe pr[TLS_MAX_PROBES];
	struct tls_facts f;
	size_t np, i;
	int slow;

	if (fd < 0) {
		CHECK(elf_version(EV_CURRENT) != EV_NONE);
		fd = memfd_create("fuzz_tlsplace", MFD_CLOEXEC);
		CHECK(fd >= 0);
		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	}
	CHECK(!ftruncate(fd, 0) && (!n || pwrite(fd, d, n, 0) == (ssize_t)n));
	if (tlsplace__facts(path, &f))
		return 0;
	CHECK(f.nsegs <= TLS_MAX_SEGS);
	CHECK(f.lib != TLS_LIB_OPENSSL || (f.fn[FN_SSL_READ] && f.fn[FN_SSL_WRITE]));
	CHECK(f.lib != TLS_LIB_GNUTLS || (f.fn[FN_GNUTLS_RECV] && f.fn[FN_GNUTLS_SEND]));
	if (f.lib == TLS_LIB_NONE) {
		CHECK(tlsplace__embeds_tls(path) <= 1);
		return 0;
	}
	memset(pr, 0, sizeof(pr));
	np = tlsplace__plan(path, &f, pr, &slow);
	CHECK(np >= 1 && np <= TLS_MAX_PROBES);
	CHECK(slow == 0 || slow == 1);
	for (i = 0; i < np; i++) {
		CHECK(pr[i].role >= ROLE_READ && pr[i].role <= ROLE_FREE);
		CHECK(pr[i].what && pr[i].what[0]);
		CHECK(pr[i].off >= -1);
	}
	return 0;
}
