/* SPDX-License-Identifier: MIT */
/* Where TLS probes go in a file: what an ELF file defines (OpenSSL's or
 * GnuTLS's read/write functions), and the plan of uprobes on it, as file
 * offsets with the role of each. No BPF here: the agent (tls.c) attaches
 * its programs by role, the benchmark's floor its empty ones, and the unit
 * tests check the plan against the machine's real libraries. */
#ifndef AION_TLSPLACE_H
#define AION_TLSPLACE_H

#include <gelf.h>

enum tls_lib { TLS_LIB_NONE = 0, TLS_LIB_OPENSSL, TLS_LIB_GNUTLS };

/* The functions the probes go on (symbol values). */
enum tls_fn {
	FN_SSL_READ, FN_SSL_WRITE, FN_SSL_READ_EX, FN_SSL_WRITE_EX, FN_SSL_HANDSHAKE, FN_SSL_FREE,
	FN_GNUTLS_RECV, FN_GNUTLS_SEND, FN_GNUTLS_HANDSHAKE, FN_GNUTLS_DEINIT, FN__COUNT,
};

#define TLS_MAX_SEGS 16

/* What an ELF file says about TLS. */
struct tls_facts {
	enum tls_lib lib;       /* the library whose functions it defines */
	int has_symtab;         /* a .symtab section (not stripped) */
	int needs_tls;          /* DT_NEEDED names libssl or libgnutls */
	GElf_Addr fn[FN__COUNT]; /* 0: not defined */
	struct { GElf_Addr vaddr, size, off; } seg[TLS_MAX_SEGS]; /* executable PT_LOADs */
	unsigned nsegs;
};

/* What a probe's entry program does with the call. */
enum tls_role {
	ROLE_READ,        /* (ssl, buf, num) -> int bytes */
	ROLE_WRITE,
	ROLE_READ_EX,     /* (ssl, buf, num, size_t *bytes) -> 1/0 */
	ROLE_WRITE_EX,
	ROLE_HANDSHAKE,   /* ties the session to its socket */
	ROLE_GNUTLS_RECV, /* (session, buf, size) -> ssize_t bytes */
	ROLE_GNUTLS_SEND,
	ROLE_FREE,        /* (ssl): the session is gone */
};

struct tls_probe {
	long off;          /* file offset; -1: the file lacks the function */
	enum tls_role role;
	int ret;           /* also a return probe */
	int required;      /* else skipped when the file lacks it */
	const char *what;  /* for messages */
};

#define TLS_MAX_PROBES 8

/* Read path's facts (elf_version must have been called). 0 or -errno. */
int tlsplace__facts(const char *path, struct tls_facts *f);
/* The probes for f's library in path: their number (pr holds
 * TLS_MAX_PROBES); *slow is set when the read/write probes sit on
 * instructions that uprobes single-step. */
size_t tlsplace__plan(const char *path, const struct tls_facts *f, struct tls_probe *pr,
		      int *slow);
/* 1 when path's bytes carry OpenSSL's or BoringSSL's name or source
 * file names (a stripped binary with one linked in). */
int tlsplace__embeds_tls(const char *path);

#endif /* AION_TLSPLACE_H */
