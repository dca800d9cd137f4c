// SPDX-License-Identifier: MIT
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <gelf.h>
#include <libelf.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "aion/abi.h"
#include "aion.skel.h"
#include "tls.h"

enum tls_lib { LIB_NONE = 0, LIB_OPENSSL, LIB_GNUTLS };

static const char *const lib_names[] = { [LIB_NONE] = "none", [LIB_OPENSSL] = "openssl",
					 [LIB_GNUTLS] = "gnutls" };

/* The functions the probes go on (symbol values). */
enum fn {
	FN_SSL_READ, FN_SSL_WRITE, FN_SSL_READ_EX, FN_SSL_WRITE_EX, FN_SSL_HANDSHAKE, FN_SSL_FREE,
	FN_GNUTLS_RECV, FN_GNUTLS_SEND, FN_GNUTLS_HANDSHAKE, FN_GNUTLS_DEINIT, FN__COUNT,
};
static const char *const fn_names[FN__COUNT] = {
	"SSL_read", "SSL_write", "SSL_read_ex", "SSL_write_ex", "SSL_do_handshake", "SSL_free",
	"gnutls_record_recv", "gnutls_record_send", "gnutls_handshake", "gnutls_deinit",
};

#define MAX_SEGS 16

/* What an ELF file says about TLS. */
struct elf_facts {
	enum tls_lib lib; /* the library whose functions it defines */
	int has_symtab;   /* a .symtab section (not stripped) */
	int needs_tls;    /* DT_NEEDED names libssl or libgnutls */
	GElf_Addr fn[FN__COUNT]; /* 0: not defined */
	struct { GElf_Addr vaddr, size, off; } seg[MAX_SEGS]; /* executable PT_LOADs */
	unsigned nsegs;
};

enum file_state { F_NONE = 1, F_PROBED, F_FAILED };

struct file_seen {
	dev_t dev;
	ino_t ino;
	enum file_state state;
};

#define MAX_FILES 4096

enum err_reason { ERR_STRIPPED, ERR_ATTACH, ERR_FILES_FULL, ERR__COUNT };
static const char *const err_names[ERR__COUNT] = {
	[ERR_STRIPPED] = "stripped_binary",
	[ERR_ATTACH] = "uprobe_attach",
	[ERR_FILES_FULL] = "file_table_full",
};

struct tls {
	struct aion_bpf *skel;
	struct file_seen *files;
	unsigned nfiles;
	struct bpf_link **links;
	unsigned nlinks, caplinks;
	unsigned libraries;            /* files with probes */
	unsigned long long errors[ERR__COUNT];
	int full_warned;
};

struct tls *tls__new(struct aion_bpf *skel)
{
	struct tls *t = calloc(1, sizeof(*t));

	if (!t)
		return NULL;
	t->skel = skel;
	t->files = calloc(MAX_FILES, sizeof(*t->files));
	if (!t->files) {
		free(t);
		return NULL;
	}
	elf_version(EV_CURRENT);
	return t;
}

void tls__free(struct tls *t)
{
	unsigned i;

	if (!t)
		return;
	for (i = 0; i < t->nlinks; i++)
		bpf_link__destroy(t->links[i]);
	free(t->links);
	free(t->files);
	free(t);
}

static void count_err(struct tls *t, enum err_reason r)
{
	__atomic_add_fetch(&t->errors[r], 1, __ATOMIC_RELAXED);
}

/* ---- ELF ---------------------------------------------------------------- */

static int needs_tls(const char *name)
{
	return !strncmp(name, "libssl.", 7) || !strncmp(name, "libgnutls.", 10) ||
	       !strncmp(name, "libboringssl", 12);
}

static int elf_facts(const char *path, struct elf_facts *f)
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
			for (i = 0; i < n && f->nsegs < MAX_SEGS; i++) {
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
		f->lib = LIB_OPENSSL;
	else if (f->fn[FN_GNUTLS_RECV] && f->fn[FN_GNUTLS_SEND])
		f->lib = LIB_GNUTLS;
	elf_end(e);
	close(fd);
	return 0;
}

/* A stripped binary's bytes still carry OpenSSL's or BoringSSL's name, or
 * the source file name their error reports record (OpenSSL_version, which
 * holds the version text, is linked in only when the program calls it). */
static int embeds_tls(const char *path)
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

static long vaddr_off(const struct elf_facts *f, GElf_Addr va)
{
	unsigned i;

	for (i = 0; i < f->nsegs; i++)
		if (va >= f->seg[i].vaddr && va < f->seg[i].vaddr + f->seg[i].size)
			return (long)(va - f->seg[i].vaddr + f->seg[i].off);
	return -1;
}

static int code_at(const char *path, const struct elf_facts *f, GElf_Addr va, unsigned char *b,
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
static GElf_Addr inner_call(const char *path, const struct elf_facts *f, GElf_Addr va)
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

struct probe {
	GElf_Addr va;           /* where */
	struct bpf_program *entry;
	int ret;                /* also the return probe */
	int required;
	const char *what;       /* for messages */
};

static int keep_link(struct tls *t, struct bpf_link *l)
{
	if (t->nlinks == t->caplinks) {
		unsigned cap = t->caplinks ? t->caplinks * 2 : 32;
		struct bpf_link **n = realloc(t->links, cap * sizeof(*n));

		if (!n)
			return -ENOMEM;
		t->links = n;
		t->caplinks = cap;
	}
	t->links[t->nlinks++] = l;
	return 0;
}

static struct bpf_link *uprobe(struct bpf_program *p, const char *path, long off, int ret)
{
	LIBBPF_OPTS(bpf_uprobe_opts, o, .retprobe = ret);

	return bpf_program__attach_uprobe_opts(p, -1, path, (size_t)off, &o);
}

/* Where lib's probes go in this file: n entries of pr; *slow set when the
 * read/write probes sit on single-stepped instructions. */
static size_t plan(struct tls *t, const char *path, const struct elf_facts *f, struct probe *pr,
		   int *slow)
{
	struct aion_bpf *s = t->skel;
	GElf_Addr rd, wr;
	unsigned char b[8];
	size_t n = 0;

	*slow = 0;
	if (f->lib == LIB_GNUTLS) {
		pr[n++] = (struct probe){ f->fn[FN_GNUTLS_RECV], s->progs.aion_gnutls_recv, 1, 1,
					  "gnutls_record_recv" };
		pr[n++] = (struct probe){ f->fn[FN_GNUTLS_SEND], s->progs.aion_gnutls_send, 1, 1,
					  "gnutls_record_send" };
		pr[n++] = (struct probe){ f->fn[FN_GNUTLS_HANDSHAKE], s->progs.aion_tls_handshake, 1, 0,
					  "gnutls_handshake" };
		pr[n++] = (struct probe){ f->fn[FN_GNUTLS_DEINIT], s->progs.aion_tls_free, 0, 0,
					  "gnutls_deinit" };
		if (!code_at(path, f, f->fn[FN_GNUTLS_RECV], b, sizeof(b)) && !emulated(b))
			*slow = 1;
		return n;
	}
	rd = inner_call(path, f, f->fn[FN_SSL_READ_EX]);
	wr = inner_call(path, f, f->fn[FN_SSL_WRITE_EX]);
	if (rd && wr && rd != wr) {
		pr[n++] = (struct probe){ rd, s->progs.aion_ssl_read_ex, 1, 1, "ssl_read_internal" };
		pr[n++] = (struct probe){ wr, s->progs.aion_ssl_write_ex, 1, 1, "ssl_write_internal" };
	} else {
		pr[n++] = (struct probe){ f->fn[FN_SSL_READ], s->progs.aion_ssl_read, 1, 1, "SSL_read" };
		pr[n++] = (struct probe){ f->fn[FN_SSL_WRITE], s->progs.aion_ssl_write, 1, 1, "SSL_write" };
		pr[n++] = (struct probe){ f->fn[FN_SSL_READ_EX], s->progs.aion_ssl_read_ex, 1, 0,
					  "SSL_read_ex" };
		pr[n++] = (struct probe){ f->fn[FN_SSL_WRITE_EX], s->progs.aion_ssl_write_ex, 1, 0,
					  "SSL_write_ex" };
		if (!code_at(path, f, f->fn[FN_SSL_READ], b, sizeof(b)) && !emulated(b))
			*slow = 1;
	}
	pr[n++] = (struct probe){ f->fn[FN_SSL_HANDSHAKE], s->progs.aion_tls_handshake, 1, 0,
				  "SSL_do_handshake" };
	/* SSL_free: `test %rdi,%rdi; je` at its start: probe the je. */
	{
		GElf_Addr va = f->fn[FN_SSL_FREE];

		if (va && !code_at(path, f, va, b, sizeof(b)) && b[0] == 0x48 && b[1] == 0x85 &&
		    b[2] == 0xff && emulated(&b[3]))
			va += 3;
		pr[n++] = (struct probe){ va, s->progs.aion_tls_free, 0, 0, "SSL_free" };
	}
	return n;
}

/* Attach lib's probes to the file at path (name: how the log calls it).
 * Returns the probes attached, or -errno (nothing left attached). */
static int attach(struct tls *t, const char *path, const char *name, const struct elf_facts *f)
{
	struct probe pr[8];
	unsigned first = t->nlinks;
	size_t i, n;
	int err = 0, probes = 0, slow;

	n = plan(t, path, f, pr, &slow);
	for (i = 0; i < n; i++) {
		long off = pr[i].va ? vaddr_off(f, pr[i].va) : -1;
		struct bpf_link *l;
		int k;

		if (off < 0) {
			if (!pr[i].required)
				continue; /* a function this version lacks */
			err = -ENOENT;
			k = 0;
		} else {
			/* The return probe first: an entry never waits for a
			 * return that is not watched. */
			for (k = pr[i].ret ? 1 : 0; k >= 0; k--) {
				l = uprobe(k ? t->skel->progs.aion_tls_ret : pr[i].entry, path, off, k);
				if (!l) {
					err = -errno;
					break;
				}
				if (keep_link(t, l)) {
					bpf_link__destroy(l);
					err = -ENOMEM;
					break;
				}
				probes++;
			}
		}
		if (k >= 0) {
			if (pr[i].required) {
				fprintf(stderr, "tls: cannot attach to %s in %s: %s (uprobes need "
						"CONFIG_UPROBE_EVENTS and CAP_PERFMON or root)\n",
					pr[i].what, name, strerror(-err));
				goto undo;
			}
			err = 0;
		}
	}
	if (slow)
		fprintf(stderr, "tls: %s: the read/write functions start with an instruction that "
				"uprobes single-step: each TLS read or write costs the process ~20 us "
				"more on a VM\n", name);
	return probes;
undo:
	while (t->nlinks > first)
		bpf_link__destroy(t->links[--t->nlinks]);
	return err;
}

static struct file_seen *seen(struct tls *t, dev_t dev, ino_t ino)
{
	unsigned i;

	for (i = 0; i < t->nfiles; i++)
		if (t->files[i].dev == dev && t->files[i].ino == ino)
			return &t->files[i];
	return NULL;
}

/* Inspect the file at path (as the agent reaches it; name: as the process
 * sees it) once, and probe it when it implements TLS. exe: a --exe file,
 * checked for being stripped. */
static void inspect(struct tls *t, const char *path, const char *name, int exe)
{
	struct elf_facts f;
	struct file_seen *fs;
	struct stat st;
	int n;

	if (stat(path, &st) || !S_ISREG(st.st_mode) || seen(t, st.st_dev, st.st_ino))
		return;
	if (t->nfiles == MAX_FILES) {
		if (!t->full_warned++)
			fprintf(stderr, "tls: %u files inspected: files mapped from now on are not "
					"looked at for TLS\n", MAX_FILES);
		count_err(t, ERR_FILES_FULL);
		return;
	}
	fs = &t->files[t->nfiles++];
	fs->dev = st.st_dev;
	fs->ino = st.st_ino;
	fs->state = F_NONE;
	if (elf_facts(path, &f))
		return;
	if (f.lib == LIB_NONE) {
		if (exe && !f.has_symtab && !f.needs_tls && embeds_tls(path)) {
			fprintf(stderr, "tls: %s embeds OpenSSL or BoringSSL but is stripped (no symbol "
					"table): its TLS traffic cannot be traced (keep its symbols, or "
					"link libssl dynamically)\n", name);
			count_err(t, ERR_STRIPPED);
		}
		return;
	}
	n = attach(t, path, name, &f);
	if (n < 0) {
		fs->state = F_FAILED;
		count_err(t, ERR_ATTACH);
		return;
	}
	fs->state = F_PROBED;
	__atomic_add_fetch(&t->libraries, 1, __ATOMIC_RELAXED);
	fprintf(stderr, "tls: attached to %s (%s, %d probes)\n", name, lib_names[f.lib], n);
}

int tls__scan_pid(struct tls *t, int pid)
{
	char maps[64], line[4400], path[4400 + 32];
	FILE *fp;

	snprintf(maps, sizeof(maps), "/proc/%d/maps", pid);
	fp = fopen(maps, "re");
	if (!fp)
		return -ESRCH;
	while (fgets(line, sizeof(line), fp)) {
		char perms[8], *file;
		size_t len;

		/* start-end perms offset dev inode path */
		if (sscanf(line, "%*s %7s", perms) != 1 || perms[2] != 'x')
			continue;
		file = strchr(line, '/');
		if (!file)
			continue;
		len = strlen(file);
		if (len && file[len - 1] == '\n')
			file[--len] = '\0';
		if (len > 10 && !strcmp(file + len - 10, " (deleted)"))
			continue;
		snprintf(path, sizeof(path), "/proc/%d/root%s", pid, file);
		inspect(t, path, file, 0);
	}
	fclose(fp);
	return 0;
}

void tls__scan_targets(struct tls *t, int all)
{
	if (all) {
		DIR *d = opendir("/proc");
		struct dirent *de;

		if (!d)
			return;
		while ((de = readdir(d)) != NULL)
			if (isdigit((unsigned char)de->d_name[0]) && atoi(de->d_name) != getpid())
				tls__scan_pid(t, atoi(de->d_name));
		closedir(d);
		return;
	}
	{
		int fd = bpf_map__fd(t->skel->maps.targets);
		__u32 key, next, *prev = NULL;

		while (!bpf_map_get_next_key(fd, prev, &next)) {
			tls__scan_pid(t, (int)next);
			key = next;
			prev = &key;
		}
	}
}

void tls__on_map(struct tls *t, int pid, __u64 ino, __u32 dev)
{
	if (tls__scan_pid(t, pid)) {
		/* Gone before it could be looked at: let the next process
		 * that maps the file report it again. */
		struct aion_file_key k = { .ino = ino, .dev = dev };

		bpf_map_delete_elem(bpf_map__fd(t->skel->maps.exec_files), &k);
	}
}

void tls__add_exe(struct tls *t, const char *path)
{
	char host[4200];

	if (!access(path, R_OK)) {
		inspect(t, path, path, 1);
		return;
	}
	snprintf(host, sizeof(host), "/proc/1/root%s", path);
	inspect(t, host, path, 1);
}

int tls__render(struct tls *t, struct strbuf *out, unsigned long long no_socket)
{
	int i;

	strbuf__printf(out,
		"# HELP aion_agent_tls_libraries Files (TLS libraries, binaries with TLS linked in) with uprobes attached.\n"
		"# TYPE aion_agent_tls_libraries gauge\n"
		"aion_agent_tls_libraries %u\n"
		"# HELP aion_agent_instrumentation_errors_total Targets or files that could not be instrumented, by reason.\n"
		"# TYPE aion_agent_instrumentation_errors_total counter\n",
		t ? __atomic_load_n(&t->libraries, __ATOMIC_RELAXED) : 0);
	for (i = 0; i < ERR__COUNT; i++)
		strbuf__printf(out, "aion_agent_instrumentation_errors_total{reason=\"%s\"} %llu\n",
			       err_names[i],
			       t ? __atomic_load_n(&t->errors[i], __ATOMIC_RELAXED) : 0ULL);
	strbuf__printf(out, "aion_agent_instrumentation_errors_total{reason=\"tls_no_socket\"} %llu\n",
		       no_socket);
	return out->oom ? -ENOMEM : 0;
}
