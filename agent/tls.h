/* SPDX-License-Identifier: MIT */
/* TLS libraries: finds the files that implement OpenSSL's SSL_read/
 * SSL_write (libssl, BoringSSL, a binary with OpenSSL linked in) or
 * GnuTLS's gnutls_record_recv/send among what traced processes map, and
 * attaches the kernel side's uprobes once per file, for every process
 * that maps it (the programs keep to traced processes). */
#ifndef AION_TLS_H
#define AION_TLS_H

#include <linux/types.h>

#include "strbuf.h"

struct aion_bpf;
struct tls;

struct tls *tls__new(struct aion_bpf *skel);
/* Detach every probe and free. Accepts NULL. */
void tls__free(struct tls *t);
/* Look through pid's executable mappings for TLS files not probed yet.
 * -ESRCH when pid is gone. */
int tls__scan_pid(struct tls *t, int pid);
/* Every process in the kernel's target map (or every process, all). */
void tls__scan_targets(struct tls *t, int all);
/* The kernel saw pid map a new file executable (ino, dev: kernel
 * encoding). */
void tls__on_map(struct tls *t, int pid, __u64 ino, __u32 dev);
/* A --exe file: probed when it defines the TLS functions itself; a
 * stripped one that embeds OpenSSL or BoringSSL is reported. */
void tls__add_exe(struct tls *t, const char *path);
/* aion_agent_tls_libraries and aion_agent_instrumentation_errors_total
 * (no_socket: the kernel's count of TLS plaintext with no socket known).
 * Accepts NULL (TLS off). */
int tls__render(struct tls *t, struct strbuf *out, unsigned long long no_socket);

#endif /* AION_TLS_H */
