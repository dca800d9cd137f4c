// SPDX-License-Identifier: MIT
/* Loader for the benchmark floor (floor.bpf.c): open, load, attach every
 * empty tracepoint program and, for each `--file PATH` (a file the traced
 * processes map executable), the empty uprobes where the agent puts its TLS
 * probes when that file is a TLS library (OpenSSL or GnuTLS; any other file
 * is skipped, as the agent skips it); print "READY <n>" (n = attachments) on
 * stdout, wait for SIGTERM or SIGINT, detach and exit 0.
 *
 *   aion-floor [--file /usr/lib/x86_64-linux-gnu/libssl.so.3 ...]
 *
 * Where the probes go mirrors agent/tls.c (elf_facts, inner_call, plan):
 * keep the two in step; bench.py checks that the floor and the agent hold
 * the same uprobes (file and offset). */
#include <errno.h>
#include <fcntl.h>
#include <gelf.h>
#include <libelf.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <bpf/libbpf.h>

#include "floor.skel.h"

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static int quiet(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	if (level == LIBBPF_DEBUG || level == LIBBPF_INFO)
		return 0;
	return vfprintf(stderr, fmt, ap);
}

/* ---- what a file is (as agent/tls.c elf_facts sees it) ------------------ */

enum tls_lib { LIB_NONE = 0, LIB_OPENSSL, LIB_GNUTLS };

enum fn {
	FN_SSL_READ, FN_SSL_WRITE, FN_SSL_READ_EX, FN_SSL_WRITE_EX, FN_SSL_HANDSHAKE, FN_SSL_FREE,
	FN_GNUTLS_RECV, FN_GNUTLS_SEND, FN_GNUTLS_HANDSHAKE, FN_GNUTLS_DEINIT, FN__COUNT,
};
static const char *const fn_names[FN__COUNT] = {
	"SSL_read", "SSL_write", "SSL_read_ex", "SSL_write_ex", "SSL_do_handshake", "SSL_free",
	"gnutls_record_recv", "gnutls_record_send", "gnutls_handshake", "gnutls_deinit",
};

#define MAX_SEGS 16

struct elf_facts {
	enum tls_lib lib;
	GElf_Addr fn[FN__COUNT];          /* symbol values; 0: not defined */
	struct { GElf_Addr vaddr, size, off; } seg[MAX_SEGS]; /* executable PT_LOADs */
	unsigned nsegs;
};

static int elf_facts(const char *path, struct elf_facts *f)
{
	Elf_Scn *scn = NULL;
	GElf_Shdr sh;
	size_t i, n = 0;
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

		if (!gelf_getshdr(scn, &sh) || (sh.sh_type != SHT_SYMTAB && sh.sh_type != SHT_DYNSYM))
			continue;
		d = elf_getdata(scn, NULL);
		if (!d || !sh.sh_entsize)
			continue;
		for (i = 0; i < sh.sh_size / sh.sh_entsize; i++) {
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
	if (!elf_getphdrnum(e, &n))
		for (i = 0; i < n && f->nsegs < MAX_SEGS; i++) {
			GElf_Phdr ph;

			if (!gelf_getphdr(e, (int)i, &ph) || ph.p_type != PT_LOAD || !(ph.p_flags & PF_X))
				continue;
			f->seg[f->nsegs].vaddr = ph.p_vaddr;
			f->seg[f->nsegs].size = ph.p_filesz;
			f->seg[f->nsegs].off = ph.p_offset;
			f->nsegs++;
		}
	if (f->fn[FN_SSL_READ] && f->fn[FN_SSL_WRITE])
		f->lib = LIB_OPENSSL;
	else if (f->fn[FN_GNUTLS_RECV] && f->fn[FN_GNUTLS_SEND])
		f->lib = LIB_GNUTLS;
	elf_end(e);
	close(fd);
	return 0;
}

static long vaddr_off(const struct elf_facts *f, GElf_Addr va)
{
	unsigned i;

	for (i = 0; i < f->nsegs; i++)
		if (va >= f->seg[i].vaddr && va < f->seg[i].vaddr + f->seg[i].size)
			return (long)(va - f->seg[i].vaddr + f->seg[i].off);
	return -1;
}

static int code_at(const char *path, const struct elf_facts *f, GElf_Addr va, unsigned char *b, size_t n)
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

/* 1 when x86 uprobes emulate the instruction at b (push, nop, call, jmp,
 * jcc); anything else is single-stepped, ~20 us per hit on a VM. */
static int emulated(const unsigned char *b)
{
	return (b[0] >= 0x50 && b[0] <= 0x57) || (b[0] == 0x41 && b[1] >= 0x50 && b[1] <= 0x57) ||
	       b[0] == 0x90 || b[0] == 0xe8 || b[0] == 0xe9 || b[0] == 0xeb ||
	       (b[0] >= 0x70 && b[0] <= 0x7f) || (b[0] == 0x0f && b[1] >= 0x80 && b[1] <= 0x8f);
}

/* The function SSL_read_ex/SSL_write_ex at va calls straight away
 * (`[endbr64;] [sub $imm8,%rsp;] call X`) when X starts with an emulated
 * instruction (OpenSSL 3's ssl_read_internal/ssl_write_internal); else 0. */
static GElf_Addr inner_call(const char *path, const struct elf_facts *f, GElf_Addr va)
{
	unsigned char b[16], t[4];
	GElf_Addr target;
	size_t i = 0;
	int32_t rel;

	if (!va || code_at(path, f, va, b, sizeof(b)))
		return 0;
	if (b[0] == 0xf3 && b[1] == 0x0f && b[2] == 0x1e && b[3] == 0xfa)
		i = 4;
	if (b[i] == 0x48 && b[i + 1] == 0x83 && b[i + 2] == 0xec)
		i += 4;
	if (b[i] != 0xe8)
		return 0;
	memcpy(&rel, &b[i + 1], sizeof(rel));
	target = va + i + 5 + (GElf_Addr)(int64_t)rel;
	if (code_at(path, f, target, t, sizeof(t)) || !emulated(t))
		return 0;
	return target;
}

/* ---- the probes ---------------------------------------------------------- */

struct probe {
	GElf_Addr va;
	int ret;        /* also the return probe */
	int required;   /* else skipped when the file lacks it */
	const char *what;
};

/* Where the agent puts lib's probes in this file (agent/tls.c plan()). */
static size_t plan(const char *path, const struct elf_facts *f, struct probe *pr)
{
	GElf_Addr rd, wr, va;
	unsigned char b[8];
	size_t n = 0;

	if (f->lib == LIB_GNUTLS) {
		pr[n++] = (struct probe){ f->fn[FN_GNUTLS_RECV], 1, 1, "gnutls_record_recv" };
		pr[n++] = (struct probe){ f->fn[FN_GNUTLS_SEND], 1, 1, "gnutls_record_send" };
		pr[n++] = (struct probe){ f->fn[FN_GNUTLS_HANDSHAKE], 1, 0, "gnutls_handshake" };
		pr[n++] = (struct probe){ f->fn[FN_GNUTLS_DEINIT], 0, 0, "gnutls_deinit" };
		return n;
	}
	rd = inner_call(path, f, f->fn[FN_SSL_READ_EX]);
	wr = inner_call(path, f, f->fn[FN_SSL_WRITE_EX]);
	if (rd && wr && rd != wr) {
		pr[n++] = (struct probe){ rd, 1, 1, "ssl_read_internal" };
		pr[n++] = (struct probe){ wr, 1, 1, "ssl_write_internal" };
	} else {
		pr[n++] = (struct probe){ f->fn[FN_SSL_READ], 1, 1, "SSL_read" };
		pr[n++] = (struct probe){ f->fn[FN_SSL_WRITE], 1, 1, "SSL_write" };
		pr[n++] = (struct probe){ f->fn[FN_SSL_READ_EX], 1, 0, "SSL_read_ex" };
		pr[n++] = (struct probe){ f->fn[FN_SSL_WRITE_EX], 1, 0, "SSL_write_ex" };
	}
	pr[n++] = (struct probe){ f->fn[FN_SSL_HANDSHAKE], 1, 0, "SSL_do_handshake" };
	/* SSL_free starts with `test %rdi,%rdi; je`: the probe is on the je. */
	va = f->fn[FN_SSL_FREE];
	if (va && !code_at(path, f, va, b, sizeof(b)) && b[0] == 0x48 && b[1] == 0x85 && b[2] == 0xff &&
	    emulated(&b[3]))
		va += 3;
	pr[n++] = (struct probe){ va, 0, 0, "SSL_free" };
	return n;
}

#define MAX_FILES 256
#define MAX_LINKS (MAX_FILES * 16)

static struct bpf_link *tls_links[MAX_LINKS];
static int n_tls_links;

/* The probes of one file, pid -1, by file offset (as the agent attaches
 * them): the number attached, 0 for a file that is no TLS library, or
 * -errno. */
static int attach_file(struct floor_bpf *skel, const char *path)
{
	struct elf_facts f;
	struct probe pr[8];
	size_t i, n;
	int k, probes = 0;

	if (elf_facts(path, &f) || f.lib == LIB_NONE)
		return 0;
	n = plan(path, &f, pr);
	for (i = 0; i < n; i++) {
		long off = pr[i].va ? vaddr_off(&f, pr[i].va) : -1;

		if (off < 0) {
			if (!pr[i].required)
				continue;
			fprintf(stderr, "aion-floor: %s: no %s\n", path, pr[i].what);
			return -ENOENT;
		}
		for (k = pr[i].ret ? 1 : 0; k >= 0; k--) {
			LIBBPF_OPTS(bpf_uprobe_opts, o, .retprobe = k);
			struct bpf_link *l;

			if (n_tls_links == MAX_LINKS)
				return -E2BIG;
			l = bpf_program__attach_uprobe_opts(k ? skel->progs.floor_uretprobe : skel->progs.floor_uprobe,
							    -1, path, (size_t)off, &o);
			if (!l) {
				int err = -errno;

				if (!pr[i].required)
					break;
				fprintf(stderr, "aion-floor: cannot attach a %s to %s in %s: %s\n",
					k ? "uretprobe" : "uprobe", pr[i].what, path, strerror(-err));
				return err;
			}
			tls_links[n_tls_links++] = l;
			probes++;
		}
	}
	return probes;
}

int main(int argc, char **argv)
{
	const char *files[MAX_FILES];
	struct { dev_t dev; ino_t ino; } seen[MAX_FILES];
	struct sigaction sa;
	struct floor_bpf *skel;
	struct bpf_program *p;
	sigset_t mask, old;
	int err, i, j, n = 0, n_files = 0, n_seen = 0;

	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--file") == 0 && i + 1 < argc && n_files < MAX_FILES) {
			files[n_files++] = argv[++i];
		} else {
			fprintf(stderr, "usage: aion-floor [--file PATH]... (at most %d)\n", MAX_FILES);
			return 2;
		}
	}

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	libbpf_set_print(quiet);
	elf_version(EV_CURRENT);

	skel = floor_bpf__open_and_load();
	if (!skel) {
		fprintf(stderr, "aion-floor: cannot open/load the BPF object: %s\n", strerror(errno));
		return 1;
	}
	/* SEC("uprobe") without a target: the skeleton leaves them unattached. */
	err = floor_bpf__attach(skel);
	if (err) {
		fprintf(stderr, "aion-floor: cannot attach: %s\n", strerror(-err));
		goto cleanup;
	}
	/* Once per file (device and inode), as the agent. */
	for (i = 0; i < n_files; i++) {
		struct stat st;

		if (stat(files[i], &st) || !S_ISREG(st.st_mode))
			continue;
		for (j = 0; j < n_seen; j++)
			if (seen[j].dev == st.st_dev && seen[j].ino == st.st_ino)
				break;
		if (j < n_seen)
			continue;
		seen[n_seen].dev = st.st_dev;
		seen[n_seen++].ino = st.st_ino;
		err = attach_file(skel, files[i]);
		if (err < 0)
			goto cleanup;
		err = 0;
	}
	bpf_object__for_each_program(p, skel->obj)
		if (p != skel->progs.floor_uprobe && p != skel->progs.floor_uretprobe)
			n++;
	printf("READY %d\n", n + n_tls_links);
	fflush(stdout);

	/* Sleep until a signal; block it between the check and the wait. */
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigprocmask(SIG_BLOCK, &mask, &old);
	while (!stop)
		sigsuspend(&old);
	sigprocmask(SIG_SETMASK, &old, NULL);

cleanup:
	while (n_tls_links > 0)
		bpf_link__destroy(tls_links[--n_tls_links]);
	floor_bpf__destroy(skel);
	return err ? 1 : 0;
}
