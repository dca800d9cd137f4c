// SPDX-License-Identifier: MIT
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* memmem */
#endif
#include <errno.h>
#include <fcntl.h>
#include <gelf.h>
#include <limits.h>
#include <libelf.h>
#include <string.h>
#include <unistd.h>
#include <linux/types.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include "tlsplace.h"

static const char *const fn_names[FN__COUNT] = {
	"SSL_read", "SSL_write", "SSL_read_ex", "SSL_write_ex", "SSL_do_handshake", "SSL_free",
	"gnutls_record_recv", "gnutls_record_send", "gnutls_handshake", "gnutls_deinit",
};

/* ---- ELF ---------------------------------------------------------------- */

static int needs_tls(const char *name)
{
	return !strncmp(name, "libssl.", 7) || !strncmp(name, "libgnutls.", 10) ||
	       !strncmp(name, "libboringssl", 12);
}

int tlsplace__facts(const char *path, struct tls_facts *f)
{
	Elf_Scn *scn = NULL;
	GElf_Shdr sh;
	Elf *e;
	int fd;

	memset(f, 0, sizeof(*f));
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	e = elf_begin(fd, ELF_C_READ_MMAP, NULL);
	if (!e || elf_kind(e) != ELF_K_ELF) {
		if (e)
			elf_end(e);
		close(fd);
		return -ENOEXEC;
	}
	while ((scn = elf_nextscn(e, scn)) != NULL) {
		Elf_Data *d;
		size_t i, n;

		if (!gelf_getshdr(scn, &sh))
			continue;
		if (sh.sh_type != SHT_SYMTAB && sh.sh_type != SHT_DYNSYM && sh.sh_type != SHT_DYNAMIC)
			continue;
		d = elf_getdata(scn, NULL);
		if (!d || !sh.sh_entsize)
			continue;
		n = sh.sh_size / sh.sh_entsize;
		if (sh.sh_type == SHT_DYNAMIC) {
			for (i = 0; i < n; i++) {
				GElf_Dyn dyn;
				const char *name;

				if (!gelf_getdyn(d, (int)i, &dyn) || dyn.d_tag != DT_NEEDED)
					continue;
				name = elf_strptr(e, sh.sh_link, dyn.d_un.d_val);
				if (name && needs_tls(name))
					f->needs_tls = 1;
			}
			continue;
		}
		if (sh.sh_type == SHT_SYMTAB)
			f->has_symtab = 1;
		for (i = 0; i < n; i++) {
			GElf_Sym sym;
			const char *name;
			int k;

			if (!gelf_getsym(d, (int)i, &sym) || sym.st_shndx == SHN_UNDEF ||
			    GELF_ST_TYPE(sym.st_info) != STT_FUNC || !sym.st_value)
				continue;
			name = elf_strptr(e, sh.sh_link, sym.st_name);
			if (!name || (name[0] != 'S' && name[0] != 'g'))
				continue;
			for (k = 0; k < FN__COUNT; k++)
				if (!f->fn[k] && !strcmp(name, fn_names[k]))
					f->fn[k] = sym.st_value;
		}
	}
	{
		size_t i, n = 0;

		if (!elf_getphdrnum(e, &n))
			for (i = 0; i < n && f->nsegs < TLS_MAX_SEGS; i++) {
				GElf_Phdr ph;

				if (!gelf_getphdr(e, (int)i, &ph) || ph.p_type != PT_LOAD ||
				    !(ph.p_flags & PF_X))
					continue;
				f->seg[f->nsegs].vaddr = ph.p_vaddr;
				f->seg[f->nsegs].size = ph.p_filesz;
				f->seg[f->nsegs].off = ph.p_offset;
				f->nsegs++;
			}
	}
	if (f->fn[FN_SSL_READ] && f->fn[FN_SSL_WRITE])
		f->lib = TLS_LIB_OPENSSL;
	else if (f->fn[FN_GNUTLS_RECV] && f->fn[FN_GNUTLS_SEND])
		f->lib = TLS_LIB_GNUTLS;
	elf_end(e);
	close(fd);
	return 0;
}

/* A stripped binary's bytes still carry OpenSSL's or BoringSSL's name, or
 * the source file name their error reports record (OpenSSL_version, which
 * holds the version text, is linked in only when the program calls it). */
int tlsplace__embeds_tls(const char *path)
{
	static const char *const marks[] = { "OpenSSL 1.", "OpenSSL 3.", "BoringSSL",
					     "ssl/ssl_lib.c" };
	struct stat st;
	int fd, found = 0;
	void *m;
	size_t i;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	if (fstat(fd, &st) || st.st_size <= 0) {
		close(fd);
		return 0;
	}
	m = mmap(NULL, st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	close(fd);
	if (m == MAP_FAILED)
		return 0;
	for (i = 0; i < sizeof(marks) / sizeof(marks[0]) && !found; i++)
		found = memmem(m, st.st_size, marks[i], strlen(marks[i])) != NULL;
	munmap(m, st.st_size);
	return found;
}

/* ---- probes ------------------------------------------------------------- *
 *
 * A uprobe costs what its instruction costs: x86 uprobes emulate push,
 * nop, jmp, call and jcc (a fraction of a microsecond per hit) and
 * single-step anything else out of line (about 20 µs per hit on a VM).
 * OpenSSL's SSL_read/SSL_write begin with `sub $imm,%rsp`. Their _ex
 * twins begin with `sub $8,%rsp; call ssl_read_internal` (resp. write):
 * the function that does the work for both, with the _ex arguments, and
 * whose first instruction is a push. The probes go there when the code
 * has that shape, on the public functions otherwise. */

/* The file offset of va, or -1 (also when a hostile segment's offset puts
 * it past what a long holds: never a negative offset but -1). */
static long vaddr_off(const struct tls_facts *f, GElf_Addr va)
{
	GElf_Addr off;
	unsigned i;

	for (i = 0; i < f->nsegs; i++)
		if (va >= f->seg[i].vaddr && va < f->seg[i].vaddr + f->seg[i].size) {
			off = va - f->seg[i].vaddr + f->seg[i].off;
			return off > LONG_MAX ? -1 : (long)off;
		}
	return -1;
}

static int code_at(const char *path, const struct tls_facts *f, GElf_Addr va, unsigned char *b,
		   size_t n)
{
	long off = vaddr_off(f, va);
	int fd, ok;

	if (off < 0)
		return -1;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ok = pread(fd, b, n, off) == (ssize_t)n;
	close(fd);
	return ok ? 0 : -1;
}

/* 1 when x86 uprobes emulate the instruction at b. */
static int emulated(const unsigned char *b)
{
	return (b[0] >= 0x50 && b[0] <= 0x57) ||                  /* push reg */
	       (b[0] == 0x41 && b[1] >= 0x50 && b[1] <= 0x57) ||  /* push r8..r15 */
	       b[0] == 0x90 || b[0] == 0xe8 || b[0] == 0xe9 ||     /* nop, call, jmp */
	       b[0] == 0xeb || (b[0] >= 0x70 && b[0] <= 0x7f) ||   /* jmp8, jcc8 */
	       (b[0] == 0x0f && b[1] >= 0x80 && b[1] <= 0x8f);     /* jcc32 */
}

/* The function SSL_read_ex/SSL_write_ex at va calls first, when it is
 * called straight away and starts with an emulated instruction; else 0. */
static GElf_Addr inner_call(const char *path, const struct tls_facts *f, GElf_Addr va)
{
	unsigned char b[16], t[4];
	GElf_Addr target;
	size_t i = 0;
	__s32 rel;

	if (!va || code_at(path, f, va, b, sizeof(b)))
		return 0;
	if (b[0] == 0xf3 && b[1] == 0x0f && b[2] == 0x1e && b[3] == 0xfa)
		i = 4; /* endbr64 */
	if (b[i] == 0x48 && b[i + 1] == 0x83 && b[i + 2] == 0xec)
		i += 4; /* sub $imm8,%rsp */
	if (b[i] != 0xe8)
		return 0;
	memcpy(&rel, &b[i + 1], sizeof(rel));
	target = va + i + 5 + (GElf_Addr)(__s64)rel;
	if (code_at(path, f, target, t, sizeof(t)) || !emulated(t))
		return 0;
	return target;
}

static struct tls_probe probe(const struct tls_facts *f, GElf_Addr va, enum tls_role role, int ret,
			      int required, const char *what)
{
	return (struct tls_probe){ va ? vaddr_off(f, va) : -1, role, ret, required, what };
}

size_t tlsplace__plan(const char *path, const struct tls_facts *f, struct tls_probe *pr,
		      int *slow)
{
	GElf_Addr rd, wr;
	unsigned char b[8];
	size_t n = 0;

	*slow = 0;
	if (f->lib == TLS_LIB_GNUTLS) {
		pr[n++] = probe(f, f->fn[FN_GNUTLS_RECV], ROLE_GNUTLS_RECV, 1, 1, "gnutls_record_recv");
		pr[n++] = probe(f, f->fn[FN_GNUTLS_SEND], ROLE_GNUTLS_SEND, 1, 1, "gnutls_record_send");
		pr[n++] = probe(f, f->fn[FN_GNUTLS_HANDSHAKE], ROLE_HANDSHAKE, 1, 0, "gnutls_handshake");
		pr[n++] = probe(f, f->fn[FN_GNUTLS_DEINIT], ROLE_FREE, 0, 0, "gnutls_deinit");
		if (!code_at(path, f, f->fn[FN_GNUTLS_RECV], b, sizeof(b)) && !emulated(b))
			*slow = 1;
		return n;
	}
	rd = inner_call(path, f, f->fn[FN_SSL_READ_EX]);
	wr = inner_call(path, f, f->fn[FN_SSL_WRITE_EX]);
	if (rd && wr && rd != wr) {
		pr[n++] = probe(f, rd, ROLE_READ_EX, 1, 1, "ssl_read_internal");
		pr[n++] = probe(f, wr, ROLE_WRITE_EX, 1, 1, "ssl_write_internal");
	} else {
		pr[n++] = probe(f, f->fn[FN_SSL_READ], ROLE_READ, 1, 1, "SSL_read");
		pr[n++] = probe(f, f->fn[FN_SSL_WRITE], ROLE_WRITE, 1, 1, "SSL_write");
		pr[n++] = probe(f, f->fn[FN_SSL_READ_EX], ROLE_READ_EX, 1, 0, "SSL_read_ex");
		pr[n++] = probe(f, f->fn[FN_SSL_WRITE_EX], ROLE_WRITE_EX, 1, 0, "SSL_write_ex");
		if (!code_at(path, f, f->fn[FN_SSL_READ], b, sizeof(b)) && !emulated(b))
			*slow = 1;
	}
	pr[n++] = probe(f, f->fn[FN_SSL_HANDSHAKE], ROLE_HANDSHAKE, 1, 0, "SSL_do_handshake");
	/* SSL_free: `test %rdi,%rdi; je` at its start: probe the je. */
	{
		GElf_Addr va = f->fn[FN_SSL_FREE];

		if (va && !code_at(path, f, va, b, sizeof(b)) && b[0] == 0x48 && b[1] == 0x85 &&
		    b[2] == 0xff && emulated(&b[3]))
			va += 3;
		pr[n++] = probe(f, va, ROLE_FREE, 0, 0, "SSL_free");
	}
	return n;
}

