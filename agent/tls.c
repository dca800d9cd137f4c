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

/* What an ELF file says about TLS. */
struct elf_facts {
	enum tls_lib lib; /* the library whose functions it defines */
	int has_symtab;   /* a .symtab section (not stripped) */
	int needs_tls;    /* DT_NEEDED names libssl or libgnutls */
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
		for (i = 0; i < n && f->lib == LIB_NONE; i++) {
			GElf_Sym sym;
			const char *name;

			if (!gelf_getsym(d, (int)i, &sym) || sym.st_shndx == SHN_UNDEF ||
			    GELF_ST_TYPE(sym.st_info) != STT_FUNC)
				continue;
			name = elf_strptr(e, sh.sh_link, sym.st_name);
			if (!name || (name[0] != 'S' && name[0] != 'g'))
				continue;
			if (!strcmp(name, "SSL_read"))
				f->lib = LIB_OPENSSL;
			else if (!strcmp(name, "gnutls_record_recv"))
				f->lib = LIB_GNUTLS;
		}
	}
	elf_end(e);
	close(fd);
	return 0;
}

/* A stripped binary's bytes still carry OpenSSL's or BoringSSL's name. */
static int embeds_tls(const char *path)
{
	static const char *const marks[] = { "OpenSSL 1.", "OpenSSL 3.", "BoringSSL" };
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

/* ---- probes ------------------------------------------------------------- */

struct probe {
	const char *fn;
	struct bpf_program *entry;
	int ret;      /* also the return probe */
	int required;
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

static struct bpf_link *uprobe(struct bpf_program *p, const char *path, const char *fn, int ret)
{
	LIBBPF_OPTS(bpf_uprobe_opts, o, .func_name = fn, .retprobe = ret);

	return bpf_program__attach_uprobe_opts(p, -1, path, 0, &o);
}

/* Attach lib's probes to the file at path (name: how the log calls it).
 * Returns the probes attached, or -errno (nothing left attached). */
static int attach(struct tls *t, const char *path, const char *name, enum tls_lib lib)
{
	struct aion_bpf *s = t->skel;
	struct probe openssl[] = {
		{ "SSL_read", s->progs.aion_ssl_read, 1, 1 },
		{ "SSL_write", s->progs.aion_ssl_write, 1, 1 },
		{ "SSL_read_ex", s->progs.aion_ssl_read_ex, 1, 0 },
		{ "SSL_write_ex", s->progs.aion_ssl_write_ex, 1, 0 },
		{ "SSL_do_handshake", s->progs.aion_tls_handshake, 1, 0 },
		{ "SSL_free", s->progs.aion_tls_free, 0, 0 },
	};
	struct probe gnutls[] = {
		{ "gnutls_record_recv", s->progs.aion_gnutls_recv, 1, 1 },
		{ "gnutls_record_send", s->progs.aion_gnutls_send, 1, 1 },
		{ "gnutls_handshake", s->progs.aion_tls_handshake, 1, 0 },
		{ "gnutls_deinit", s->progs.aion_tls_free, 0, 0 },
	};
	struct probe *pr = lib == LIB_OPENSSL ? openssl : gnutls;
	size_t i, n = lib == LIB_OPENSSL ? sizeof(openssl) / sizeof(openssl[0]) :
					   sizeof(gnutls) / sizeof(gnutls[0]);
	unsigned first = t->nlinks;
	int err = 0, probes = 0;

	for (i = 0; i < n; i++) {
		struct bpf_link *l;
		int k;

		/* The return probe first: an entry never waits for a return
		 * that is not watched. */
		for (k = pr[i].ret ? 1 : 0; k >= 0; k--) {
			l = uprobe(k ? s->progs.aion_tls_ret : pr[i].entry, path, pr[i].fn, k);
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
		if (k >= 0) {
			if (pr[i].required) {
				fprintf(stderr, "tls: cannot attach to %s in %s: %s (needs uprobes: "
						"CONFIG_UPROBE_EVENTS and CAP_PERFMON)\n",
					pr[i].fn, name, strerror(-err));
				goto undo;
			}
			/* An optional function this version lacks (SSL_read_ex
			 * before OpenSSL 1.1.1): its entry is not watched. */
			err = 0;
		}
	}
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
	n = attach(t, path, name, f.lib);
	if (n < 0) {
		fs->state = F_FAILED;
		count_err(t, ERR_ATTACH);
		return;
	}
	fs->state = F_PROBED;
	__atomic_add_fetch(&t->libraries, 1, __ATOMIC_RELAXED);
	t->skel->bss->tls_on = 1;
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
