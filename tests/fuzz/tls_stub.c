// SPDX-License-Identifier: MIT
/* Seeds for fuzz_tlsplace: tiny shared objects shaped like the libraries
 * the agent probes, built at `make fuzz` time (no libc, a few KB each).
 * -DOPENSSL: SSL_read ... SSL_free, with SSL_read_ex/SSL_write_ex as
 * OpenSSL 3 builds them (endbr64; sub $8,%rsp; call the internal function,
 * which starts with a push) and SSL_free starting with test %rdi,%rdi; je.
 * -DGNUTLS: gnutls_record_recv ... gnutls_deinit. Neither: a library that
 * only needs libssl (link it against the OpenSSL stub). */
#if defined(OPENSSL) && defined(__x86_64__)
__asm__(".text\n"
	".globl SSL_read_ex, SSL_write_ex, SSL_free\n"
	".type SSL_read_ex,@function\n"
	"SSL_read_ex: endbr64; sub $8,%rsp; call ssl_read_internal; add $8,%rsp; ret\n"
	".size SSL_read_ex,.-SSL_read_ex\n"
	".type SSL_write_ex,@function\n"
	"SSL_write_ex: endbr64; sub $8,%rsp; call ssl_write_internal; add $8,%rsp; ret\n"
	".size SSL_write_ex,.-SSL_write_ex\n"
	".type ssl_read_internal,@function\n"
	"ssl_read_internal: push %rbp; xor %eax,%eax; pop %rbp; ret\n"
	".size ssl_read_internal,.-ssl_read_internal\n"
	".type ssl_write_internal,@function\n"
	"ssl_write_internal: push %rbx; mov $1,%eax; pop %rbx; ret\n"
	".size ssl_write_internal,.-ssl_write_internal\n"
	".type SSL_free,@function\n"
	"SSL_free: test %rdi,%rdi; je 1f; nop; 1: ret\n"
	".size SSL_free,.-SSL_free\n");
int SSL_read(void *s, void *b, int n) { return s && b ? n : -1; }
int SSL_write(void *s, const void *b, int n) { return s && b ? n : -1; }
int SSL_do_handshake(void *s) { return s ? 1 : -1; }
#elif defined(GNUTLS)
long gnutls_record_recv(void *s, void *b, unsigned long n) { return s && b ? (long)n : -1; }
long gnutls_record_send(void *s, const void *b, unsigned long n) { return s && b ? (long)n : -1; }
int gnutls_handshake(void *s) { return s ? 0 : -1; }
void gnutls_deinit(void *s) { (void)s; }
#else
int SSL_read(void *s, void *b, int n);
int uses_ssl(void *s, void *b) { return SSL_read(s, b, 1); }
#endif
