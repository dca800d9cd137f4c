// SPDX-License-Identifier: MIT
/* Where the TLS probes go, checked on this machine's real libraries:
 * Debian's libssl.so.3 (OpenSSL 3) and libgnutls.so.30. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <libelf.h>

#include "tlsplace.h"

#define UNUSED __attribute__((unused))
#define LIBSSL "/usr/lib/x86_64-linux-gnu/libssl.so.3"
#define LIBGNUTLS "/usr/lib/x86_64-linux-gnu/libgnutls.so.30"

static void bytes_at(const char *path, long off, unsigned char *b, size_t n)
{
	int fd = open(path, O_RDONLY);

	assert_true(fd >= 0);
	assert_int_equal(pread(fd, b, n, off), (ssize_t)n);
	close(fd);
}

static long sym_off(const struct tls_facts *f, GElf_Addr va)
{
	unsigned i;

	for (i = 0; i < f->nsegs; i++)
		if (va >= f->seg[i].vaddr && va < f->seg[i].vaddr + f->seg[i].size)
			return (long)(va - f->seg[i].vaddr + f->seg[i].off);
	return -1;
}

static int is_push(const unsigned char *b)
{
	return (b[0] >= 0x50 && b[0] <= 0x57) || (b[0] == 0x41 && b[1] >= 0x50 && b[1] <= 0x57);
}

/* OpenSSL: SSL_read starts with `sub $imm,%rsp` (single-stepped), so the
 * read/write probes go on the function SSL_read_ex calls first, which
 * starts with a push; SSL_read calls that same function (so one probe
 * covers both). SSL_free's probe is on the je after its first test. */
static void test_openssl(void **state UNUSED)
{
	struct tls_facts f;
	struct tls_probe pr[TLS_MAX_PROBES];
	unsigned char b[0x40];
	long rd = -1, wr = -1, ssl_read, fr = -1;
	size_t i, n;
	int slow = -1, calls_rd = 0;

	assert_int_equal(tlsplace__facts(LIBSSL, &f), 0);
	assert_int_equal(f.lib, TLS_LIB_OPENSSL);
	assert_true(f.fn[FN_SSL_READ] && f.fn[FN_SSL_READ_EX] && f.fn[FN_SSL_FREE]);
	n = tlsplace__plan(LIBSSL, &f, pr, &slow);
	assert_int_equal(slow, 0);
	assert_int_equal(n, 4);
	for (i = 0; i < n; i++) {
		if (pr[i].role == ROLE_READ_EX)
			rd = pr[i].off;
		if (pr[i].role == ROLE_WRITE_EX)
			wr = pr[i].off;
		if (pr[i].role == ROLE_FREE)
			fr = pr[i].off;
		assert_true(pr[i].role != ROLE_READ && pr[i].role != ROLE_WRITE);
	}
	assert_true(rd > 0 && wr > 0 && rd != wr);
	bytes_at(LIBSSL, rd, b, 2);
	assert_true(is_push(b));
	bytes_at(LIBSSL, wr, b, 2);
	assert_true(is_push(b));
	ssl_read = sym_off(&f, f.fn[FN_SSL_READ]);
	bytes_at(LIBSSL, ssl_read, b, sizeof(b));
	assert_false(is_push(b)); /* why SSL_read itself is not probed */
	for (i = 0; i + 5 <= sizeof(b); i++) {
		int32_t rel;

		if (b[i] != 0xe8)
			continue;
		memcpy(&rel, &b[i + 1], 4);
		if (ssl_read + (long)i + 5 + rel == rd)
			calls_rd = 1;
	}
	assert_true(calls_rd);
	assert_int_equal(fr, sym_off(&f, f.fn[FN_SSL_FREE]) + 3);
	bytes_at(LIBSSL, fr, b, 1);
	assert_true(b[0] == 0x74 || b[0] == 0x0f);
	assert_int_equal(tlsplace__embeds_tls(LIBSSL), 1);
}

/* GnuTLS: the public functions at their entries, marked slow. */
static void test_gnutls(void **state UNUSED)
{
	struct tls_facts f;
	struct tls_probe pr[TLS_MAX_PROBES];
	int slow = -1;
	size_t n;

	assert_int_equal(tlsplace__facts(LIBGNUTLS, &f), 0);
	assert_int_equal(f.lib, TLS_LIB_GNUTLS);
	n = tlsplace__plan(LIBGNUTLS, &f, pr, &slow);
	assert_int_equal(n, 4);
	assert_int_equal(pr[0].role, ROLE_GNUTLS_RECV);
	assert_int_equal(pr[0].off, sym_off(&f, f.fn[FN_GNUTLS_RECV]));
	assert_true(pr[0].required && pr[0].ret);
	assert_int_equal(slow, 1);
}

/* A program with no TLS of its own: nothing to probe, nothing embedded. */
static void test_not_tls(void **state UNUSED)
{
	struct tls_facts f;

	assert_int_equal(tlsplace__facts("/bin/true", &f), 0);
	assert_int_equal(f.lib, TLS_LIB_NONE);
	assert_int_equal(tlsplace__embeds_tls("/bin/true"), 0);
	assert_int_equal(tlsplace__facts("/nonexistent/file", &f), -ENOENT);
	assert_int_equal(tlsplace__facts("/etc/hostname", &f), -ENOEXEC);
}

/* Caught by fuzz_tlsplace's check on a hostile file: an executable
 * segment at file offset 2^63 gave negative probe offsets (-2^63 plus the
 * function's place), neither a file offset nor the -1 that says "not in
 * the file". Here: this machine's libssl with that one field changed. */
static void test_hostile_segment_offset(void **state UNUSED)
{
	char path[] = "/tmp/aion-tlsplace-XXXXXX";
	struct tls_probe pr[TLS_MAX_PROBES];
	struct tls_facts f;
	Elf64_Ehdr *eh;
	Elf64_Phdr *ph;
	unsigned char *b;
	size_t n, i;
	int fd, slow, patched = 0;
	FILE *in;

	b = malloc(16 << 20);
	assert_non_null(b);
	in = fopen(LIBSSL, "rb");
	assert_non_null(in);
	n = fread(b, 1, 16 << 20, in);
	fclose(in);
	assert_true(n > sizeof(*eh) && n < 16 << 20);
	eh = (Elf64_Ehdr *)b;
	for (i = 0; i < eh->e_phnum; i++) {
		ph = (Elf64_Phdr *)(b + eh->e_phoff + i * eh->e_phentsize);
		if (ph->p_type == PT_LOAD && (ph->p_flags & PF_X)) {
			ph->p_offset = 1ULL << 63;
			patched++;
		}
	}
	assert_int_equal(patched, 1);
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, b, n), (ssize_t)n);
	close(fd);
	free(b);
	assert_int_equal(tlsplace__facts(path, &f), 0);
	assert_int_equal(f.lib, TLS_LIB_OPENSSL);
	assert_int_equal(f.nsegs, 1);
	n = tlsplace__plan(path, &f, pr, &slow);
	assert_int_equal(n, 6);
	for (i = 0; i < n; i++)
		assert_int_equal(pr[i].off, -1);
	assert_int_equal(slow, 0);
	unlink(path);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_openssl),
		cmocka_unit_test(test_gnutls),
		cmocka_unit_test(test_not_tls),
		cmocka_unit_test(test_hostile_segment_offset),
	};

	elf_version(EV_CURRENT);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
