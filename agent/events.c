// SPDX-License-Identifier: MIT
#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/mman.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "aion/abi.h"
#include "aion.skel.h"
#include "events.h"
#include "procinfo.h"
#include "procs.h"
#include "targets.h"
#include "tls.h"
#include "route.h"
#include "sql.h"
#include <arpa/inet.h>

static const char *const method_names[AION_METHOD__COUNT] = {
	[AION_METHOD_UNKNOWN] = "_OTHER", [AION_METHOD_GET] = "GET",
	[AION_METHOD_HEAD] = "HEAD",      [AION_METHOD_POST] = "POST",
	[AION_METHOD_PUT] = "PUT",        [AION_METHOD_DELETE] = "DELETE",
	[AION_METHOD_CONNECT] = "CONNECT", [AION_METHOD_OPTIONS] = "OPTIONS",
	[AION_METHOD_TRACE] = "TRACE",    [AION_METHOD_PATCH] = "PATCH",
};

/* Prepared statements' text by (connection, statement): direct-mapped, a
 * collision forgets the older one (its executes report _OTHER). */
#define STMT_SLOTS 8192

struct stmt_slot {
	__u64 conn;
	__u32 stmt;
	__u8 len;
	char text[AION_DB_TEXT];
};

#define DB_CACHE_SLOTS 4096

struct db_cache_key {
	__u64 conn;
	__u32 tgid, gen, service_id, stmt;
	__u16 error, port;
	__u8 role, system, op, text_len, err_len, pad[3];
	__u8 addr[16];
	char text[AION_DB_TEXT];
};

struct db_cache_slot {
	__u64 hash;
	struct db_cache_key key;
	char *labels;
};

struct port_name {
	const struct service *svc;
	__u32 tgid;
};

#define MAX_FILL 32
/* A walk of every table is one system call per entry (up to ~150,000 when
 * all are full, ~60 ms): at most once a second, however often scraped. */
#define MAP_SAMPLE_NS 1000000000ULL

struct events {
	struct aion_bpf *skel;
	struct aggregate *agg;
	struct procs *procs;
	struct targets *targets;
	struct tls *tls;
	const char *const *exe_paths;
	unsigned nexe_paths;
	struct ring_buffer *rb;
	unsigned long long handled;
	int ncpus;
	int flush_warned;
	struct aion_active_slot *active; /* the kernel's array, mapped */
	size_t active_len;
	struct port_name *ports[65536];  /* service seen last on each port */
	__u64 last_sweep_ns;
	struct stmt_slot *stmts;
	struct strbuf dbl; /* label block being built */
	struct db_cache_slot *db_cache;
	struct db_cache_key db_key;
	__u64 db_hash;
	/* aion_agent_map_entries, walked at most every MAP_SAMPLE_NS. */
	struct map_fill {
		const char *name;
		unsigned entries, max;
	} fill[MAX_FILL];
	unsigned nfill;
	__u64 fill_ns;
};

static __u64 now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (__u64)ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}

/* server_address of a client record: the Host value lower-cased, without
 * its port or an IPv6 literal's brackets, kept to the bytes a host name may
 * hold; or the server's IP when the request named no host. */
static void client_address(const struct aion_http_event *e, char *out, size_t sz)
{
	size_t n = e->path_len > AION_PATH_MAX ? AION_PATH_MAX : e->path_len, i, o = 0;
	const char *h = e->path;

	if (!(e->flags & AION_HTTP_HOST) || !n) {
		if (!memcmp(e->path, "\0\0\0\0\0\0\0\0\0\0\xff\xff", 12))
			inet_ntop(AF_INET, &e->path[12], out, sz);
		else
			inet_ntop(AF_INET6, e->path, out, sz);
		return;
	}
	if (h[0] == '[') { /* [v6]:port */
		const char *c = memchr(h, ']', n);

		h++;
		n = c ? (size_t)(c - h) : n - 1;
	} else {
		const char *c = memchr(h, ':', n);

		if (c)
			n = (size_t)(c - h);
	}
	for (i = 0; i < n && o + 1 < sz; i++) {
		unsigned char c = (unsigned char)h[i];

		if (isalnum(c) || c == '.' || c == '-' || c == ':' || c == '_')
			out[o++] = (char)tolower(c);
		else
			out[o++] = '_';
	}
	out[o] = '\0';
}

static int on_http_client(struct events *ev, const struct aion_http_event *e)
{
	char addr[INET6_ADDRSTRLEN + AION_PATH_MAX], status[8];
	const char *method = e->method < AION_METHOD__COUNT ? method_names[e->method] : "_OTHER";
	const char *err = "";
	unsigned st = e->status, flags = AGG_BODY_REQ | AGG_BODY_RESP;
	const struct service *svc;
	struct strbuf *b = &ev->dbl;

	switch (e->error) {
	case AION_ERR_CONN_CLOSED:
		err = "connection_closed";
		break;
	case AION_ERR_TIMEOUT:
		err = "timeout";
		break;
	case AION_ERR_REFUSED:
		err = "connection_refused";
		flags = 0; /* no request was sent */
		break;
	default:
		if (st >= 400) {
			snprintf(status, sizeof(status), "%u", st);
			err = status;
		}
	}
	if (e->error) {
		st = 0;
		flags &= AGG_BODY_REQ; /* no response ended */
	}
	if (e->flags & AION_HTTP_CONNECT)
		flags = 0; /* no request was sent either */
	client_address(e, addr, sizeof(addr));
	procs__lock(ev->procs);
	svc = procs__service(ev->procs, e->tgid, e->gen, e->service_id);
	strbuf__reset(b);
	strbuf__printf(b, "%s,http_request_method=\"%s\",http_response_status_code=\"%u\",server_address=\"",
		       svc->labels, method, st);
	strbuf__label_value(b, addr);
	strbuf__printf(b, "\",server_port=\"%u\",url_scheme=\"%s\",error_type=\"%s\"", e->server_port,
		       e->flags & AION_HTTP_TLS ? "https" : "http", err);
	procs__unlock(ev->procs);
	if (!b->oom)
		aggregate__http_client(ev->agg, b->buf,
				       e->end_ns > e->start_ns ? (double)(e->end_ns - e->start_ns) / 1e9 : 0,
				       flags, e->req_body, e->resp_body);
	return 0;
}

static int on_http(struct events *ev, const struct aion_http_event *e)
{
	char route[ROUTE_MAX], status[8];
	struct http_sample smp = {};
	const struct service *svc;
	size_t plen = e->path_len > AION_PATH_MAX ? AION_PATH_MAX : e->path_len;
	int truncated = plen == AION_PATH_MAX && !memchr(e->path, ' ', plen);

	if (e->role == AION_ROLE_CLIENT)
		return on_http_client(ev, e);
	if (e->role != AION_ROLE_SERVER)
		return 0;
	route__normalize(e->path, plen, truncated, route, sizeof(route));
	smp.method = e->method < AION_METHOD__COUNT ? method_names[e->method] : "_OTHER";
	smp.status = e->status;
	smp.route = route;
	smp.server_port = e->server_port;
	smp.scheme = e->flags & AION_HTTP_TLS ? "https" : "http";
	smp.error_type = "";
	smp.body_flags = AGG_BODY_REQ | AGG_BODY_RESP;
	smp.req_body = e->req_body;
	smp.resp_body = e->resp_body;
	if (e->error) {
		smp.error_type = "connection_closed";
		smp.status = 0;
		smp.body_flags = AGG_BODY_REQ;
	} else if (e->status >= 500) {
		snprintf(status, sizeof(status), "%u", e->status);
		smp.error_type = status;
	}
	smp.seconds = e->end_ns > e->start_ns ? (double)(e->end_ns - e->start_ns) / 1e9 : 0;
	procs__lock(ev->procs);
	svc = procs__service(ev->procs, e->tgid, e->gen, e->service_id);
	smp.service = svc->name;
	smp.identity = svc->identity;
	aggregate__http_server(ev->agg, &smp);
	procs__unlock(ev->procs);
	return 0;
}

static void on_proc(struct events *ev, const struct aion_proc_event *p)
{
	char why[4200], name[sizeof(p->name) + 1];

	memcpy(name, p->name, sizeof(p->name));
	name[sizeof(p->name)] = '\0';

	switch (p->kind) {
	case AION_EV_PROC_FORK:
		snprintf(why, sizeof(why), "fork of pid %u", p->ppid);
		procs__add_named(ev->procs, p->tgid, p->gen, p->service_id, why, name);
		break;
	case AION_EV_PROC_EXEC:
		if ((p->flags & AION_PROC_MATCHED) && p->service_id < ev->nexe_paths &&
		    ev->exe_paths[p->service_id])
			snprintf(why, sizeof(why), "exec of %s", ev->exe_paths[p->service_id]);
		else
			snprintf(why, sizeof(why), "a traced process exec'd %s", name);
		procs__add_named(ev->procs, p->tgid, p->gen, p->service_id, why, name);
		break;
	case AION_EV_PROC_LISTEN:
		snprintf(why, sizeof(why), "listens on port %u", p->port);
		procs__add_named(ev->procs, p->tgid, p->gen, p->service_id, why, name);
		/* Traced from now on, with its libraries already mapped. */
		if (ev->tls)
			tls__scan_pid(ev->tls, (int)p->tgid);
		break;
	case AION_EV_PROC_MAP:
		if (ev->tls)
			tls__on_map(ev->tls, (int)p->tgid, p->cpu_user_ns, (__u32)p->cpu_system_ns);
		break;
	case AION_EV_PROC_EXIT:
		if (p->flags & AION_PROC_EXECED)
			snprintf(why, sizeof(why), "exec'd %s", name);
		else
			snprintf(why, sizeof(why), "exited");
		procs__exit(ev->procs, p->tgid, p->gen, p->cpu_user_ns, p->cpu_system_ns, why);
		break;
	case AION_EV_PROC_EXEC_OTHER:
		if (ev->targets)
			targets__on_exec(ev->targets, (int)p->tgid);
		/* Matched by path: traced from now on, its libraries maybe
		 * mapped already. Execs of other files are none of TLS's
		 * business: a probe on a library is paid by every process
		 * that maps it. */
		if (ev->tls) {
			struct aion_target t;
			__u32 tgid = p->tgid;

			if (!bpf_map_lookup_elem(bpf_map__fd(ev->skel->maps.targets), &tgid, &t))
				tls__scan_pid(ev->tls, (int)p->tgid);
		}
		break;
	}
}

static struct stmt_slot *stmt_slot(struct events *ev, __u64 conn, __u32 stmt)
{
	__u64 h = (conn ^ (conn >> 17) ^ ((__u64)stmt * 0x9e3779b97f4a7c15ULL)) * 0xff51afd7ed558ccdULL;

	return &ev->stmts[(h >> 40) % STMT_SLOTS];
}

static const char *const db_systems[] = {
	[AION_PROTO_PG] = "postgresql", [AION_PROTO_MYSQL] = "mysql", [AION_PROTO_REDIS] = "redis",
};

static const char *my_command(__u32 cmd)
{
	switch (cmd) {
	case 0x02: return "INIT_DB";
	case 0x04: return "FIELD_LIST";
	case 0x08: return "SHUTDOWN";
	case 0x09: return "STATISTICS";
	case 0x0d: return "DEBUG";
	case 0x11: return "CHANGE_USER";
	case 0x1a: return "STMT_RESET";
	case 0x1c: return "STMT_FETCH";
	case 0x1f: return "RESET_CONNECTION";
	}
	return "_OTHER";
}

/* Printable ASCII only, upper case, at most n - 1 bytes. */
static void upper_name(const char *s, size_t len, char *out, size_t n)
{
	size_t i, k = 0;

	for (i = 0; i < len && k + 1 < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c < 0x21 || c > 0x7e)
			break;
		out[k++] = (char)(c >= 'a' && c <= 'z' ? c - 32 : c);
	}
	out[k] = '\0';
}

/* The label block of a record, cached by everything in it that names the
 * series (not times, not count): a pipeline of the same statement builds
 * it once. Direct-mapped; a collision rebuilds. */
static const char *db_labels_cached(struct events *ev, const struct aion_db_event *e,
				    struct db_cache_key *k, __u64 *hash)
{
	struct db_cache_slot *sl;
	const unsigned char *b = (const unsigned char *)k;
	__u64 h = 0xcbf29ce484222325ULL;
	size_t i;

	memset(k, 0, sizeof(*k));
	k->tgid = e->tgid;
	k->gen = e->gen;
	k->service_id = e->service_id;
	k->role = e->role;
	k->system = e->system;
	k->op = e->op;
	k->error = e->error;
	k->port = e->server_port;
	k->text_len = e->text_len;
	k->err_len = e->err_len;
	if (e->op == AION_DB_EXECUTE && !e->text_len) {
		k->conn = e->conn; /* named by the statement table */
		k->stmt = e->stmt;
	}
	memcpy(k->addr, e->addr, sizeof(k->addr));
	memcpy(k->text, e->text, sizeof(k->text));
	for (i = 0; i < sizeof(*k); i++)
		h = (h ^ b[i]) * 0x100000001b3ULL;
	*hash = h;
	sl = &ev->db_cache[(h >> 20) % DB_CACHE_SLOTS];
	if (sl->labels && sl->hash == h && !memcmp(&sl->key, k, sizeof(*k)))
		return sl->labels;
	return NULL;
}

static void db_labels_store(struct events *ev, const struct db_cache_key *k, __u64 h,
			    const char *labels)
{
	struct db_cache_slot *sl = &ev->db_cache[(h >> 20) % DB_CACHE_SLOTS];
	char *copy = strdup(labels);

	if (!copy)
		return;
	free(sl->labels);
	sl->labels = copy;
	sl->hash = h;
	sl->key = *k;
}

static int on_db(struct events *ev, const struct aion_db_event *e)
{
	char op[SQL_NAME], table[SQL_NAME], err[32], addr[INET6_ADDRSTRLEN];
	const char *text = e->text, *system;
	size_t tlen = e->text_len > AION_DB_TEXT ? AION_DB_TEXT : e->text_len;
	const struct service *svc;
	struct stmt_slot *sl;
	struct strbuf *b = &ev->dbl;

	if (e->system >= sizeof(db_systems) / sizeof(db_systems[0]) || !db_systems[e->system])
		return 0;
	system = db_systems[e->system];
	if (e->op == AION_DB_STMT) {
		sl = stmt_slot(ev, e->conn, e->stmt);
		sl->conn = e->conn;
		sl->stmt = e->stmt;
		sl->len = (__u8)tlen;
		memcpy(sl->text, e->text, AION_DB_TEXT);
		return 0;
	}
	if (e->role != AION_ROLE_CLIENT && e->role != AION_ROLE_SERVER)
		return 0;
	{
		struct db_cache_key k;
		const char *hit;
		__u64 h;

		hit = db_labels_cached(ev, e, &k, &h);
		if (hit) {
			aggregate__observe(ev->agg, e->role == AION_ROLE_CLIENT ? AGG_DB_CLIENT : AGG_DB_SERVER,
					   hit, e->end_ns > e->start_ns ? (double)(e->end_ns - e->start_ns) / 1e9 : 0,
					   e->count ? e->count : 1);
			return 0;
		}
		ev->db_key = k;
		ev->db_hash = h;
	}
	if (e->op == AION_DB_EXECUTE && !tlen) {
		sl = stmt_slot(ev, e->conn, e->stmt);
		if (sl->conn == e->conn && sl->stmt == e->stmt) {
			text = sl->text;
			tlen = sl->len;
		}
	}
	op[0] = table[0] = '\0';
	switch (e->op) {
	case AION_DB_COMMAND:
		upper_name(text, tlen > 32 ? 32 : tlen, op, sizeof(op));
		break;
	case AION_DB_PING:
		snprintf(op, sizeof(op), "PING");
		break;
	case AION_DB_OTHER:
		snprintf(op, sizeof(op), "%s", my_command(e->stmt));
		break;
	case AION_DB_PREPARE:
		sql__parse(text, tlen, tlen >= AION_DB_TEXT, op, table);
		snprintf(op, sizeof(op), "PREPARE");
		break;
	default: /* QUERY, EXECUTE */
		sql__parse(text, tlen, tlen >= AION_DB_TEXT, op, table);
		break;
	}
	if (!op[0])
		snprintf(op, sizeof(op), "_OTHER");
	err[0] = '\0';
	if (e->error) {
		if (e->system == AION_PROTO_PG) {
			err[0] = (char)(e->error >> 8);
			err[1] = (char)(e->error & 0xff);
			err[2] = '\0';
			if (!isalnum((unsigned char)err[0]) || !isalnum((unsigned char)err[1]))
				snprintf(err, sizeof(err), "_OTHER");
		} else if (e->system == AION_PROTO_MYSQL) {
			snprintf(err, sizeof(err), "%u", e->error);
		} else {
			upper_name(e->text + 32, e->err_len > 24 ? 24 : e->err_len, err, sizeof(err));
			if (!err[0])
				snprintf(err, sizeof(err), "ERR");
		}
	}
	if (e->addr[0] == 0 && !memcmp(e->addr, "\0\0\0\0\0\0\0\0\0\0\xff\xff", 12))
		inet_ntop(AF_INET, &e->addr[12], addr, sizeof(addr));
	else
		inet_ntop(AF_INET6, e->addr, addr, sizeof(addr));

	procs__lock(ev->procs);
	svc = procs__service(ev->procs, e->tgid, e->gen, e->service_id);
	strbuf__reset(b);
	strbuf__printf(b, "%s,db_system_name=\"%s\",db_operation_name=\"", svc->labels, system);
	strbuf__label_value(b, op);
	strbuf__puts(b, "\",db_collection_name=\"");
	strbuf__label_value(b, table);
	strbuf__printf(b, "\",server_address=\"%s\",server_port=\"%u\",error_type=\"", addr, e->server_port);
	strbuf__label_value(b, err);
	strbuf__puts(b, "\"");
	procs__unlock(ev->procs);
	/* A statement not named yet (its text may come later) is not cached. */
	if (!b->oom && !(e->op == AION_DB_EXECUTE && !tlen))
		db_labels_store(ev, &ev->db_key, ev->db_hash, b->buf);
	if (!b->oom)
		aggregate__observe(ev->agg, e->role == AION_ROLE_CLIENT ? AGG_DB_CLIENT : AGG_DB_SERVER, b->buf,
				   e->end_ns > e->start_ns ? (double)(e->end_ns - e->start_ns) / 1e9 : 0,
				   e->count ? e->count : 1);
	return 0;
}

static int on_record(void *ctx, void *data, size_t size)
{
	struct events *ev = ctx;
	const struct aion_proc_event *p = data;

	if (size < 1)
		return 0;
	ev->handled++;
	switch (*(const __u8 *)data) {
	case AION_EV_HTTP:
	case AION_EV_DB: {
		/* 1 to AION_BATCH records back to back (bpf/conn.bpf.h). */
		const struct aion_http_event *e = data;
		size_t i, n = size / sizeof(*e);

		for (i = 0; i < n; i++) {
			if (e[i].kind == AION_EV_HTTP)
				on_http(ev, &e[i]);
			else if (e[i].kind == AION_EV_DB)
				on_db(ev, (const struct aion_db_event *)&e[i]);
		}
		ev->handled += n - (n > 0);
		return 0;
	}
	default:
		if (size >= sizeof(*p))
			on_proc(ev, p);
		return 0;
	}
}

/* Delete every key of a map keyed by a struct starting with a __u32 tgid
 * when that process is gone. */
static void sweep_map(struct events *ev, int fd, size_t key_size)
{
	char key[32], next[32];
	void *prev = NULL;
	__u32 tgid;

	while (bpf_map_get_next_key(fd, prev, next) == 0) {
		memcpy(&tgid, next, sizeof(tgid));
		memcpy(key, next, key_size);
		prev = key;
		if (procs__gone(ev->procs, tgid))
			bpf_map_delete_elem(fd, key);
	}
}

/* Exited processes leave every map (conns, nonsock; the kernel removed
 * them from targets), once records that trail the exit are handled. */
static void sweep(struct events *ev)
{
	__u64 now = now_ns();

	if (now - ev->last_sweep_ns < 1000000000ULL)
		return;
	ev->last_sweep_ns = now;
	procs__lock(ev->procs);
	sweep_map(ev, bpf_map__fd(ev->skel->maps.conns), sizeof(__u64));
	sweep_map(ev, bpf_map__fd(ev->skel->maps.nonsock), sizeof(__u64));
	sweep_map(ev, bpf_map__fd(ev->skel->maps.db_pool), sizeof(struct aion_pool_key));
	procs__unlock(ev->procs);
	procs__sweep(ev->procs);
}

struct events *events__new(const struct events_opts *o)
{
	struct events *ev = calloc(1, sizeof(*ev));
	int err;

	if (!ev)
		return NULL;
	ev->skel = o->skel;
	ev->agg = o->agg;
	ev->procs = o->procs;
	strbuf__init(&ev->dbl);
	ev->stmts = calloc(STMT_SLOTS, sizeof(*ev->stmts));
	ev->db_cache = calloc(DB_CACHE_SLOTS, sizeof(*ev->db_cache));
	if (!ev->stmts || !ev->db_cache) {
		err = -ENOMEM;
		goto fail;
	}
	ev->targets = o->targets;
	ev->tls = o->tls;
	ev->exe_paths = o->exe_paths;
	ev->nexe_paths = o->nexe_paths;
	ev->ncpus = libbpf_num_possible_cpus();
	if (ev->ncpus < 1)
		ev->ncpus = 1;
	/* Process events first: a new process is announced before its
	 * requests are handled. */
	ev->rb = ring_buffer__new(bpf_map__fd(o->skel->maps.proc_events), on_record, ev, NULL);
	if (!ev->rb) {
		err = -errno;
		goto fail;
	}
	err = ring_buffer__add(ev->rb, bpf_map__fd(o->skel->maps.events), on_record, ev);
	if (err)
		goto fail;
	ev->active_len = bpf_map__max_entries(o->skel->maps.active) * sizeof(struct aion_active_slot);
	ev->active = mmap(NULL, ev->active_len, PROT_READ, MAP_SHARED,
			  bpf_map__fd(o->skel->maps.active), 0);
	if (ev->active == MAP_FAILED) {
		ev->active = NULL;
		err = -errno;
		goto fail;
	}
	return ev;
fail:
	fprintf(stderr, "events: cannot set up the ring buffers: %s\n", strerror(-err));
	events__free(ev);
	errno = -err;
	return NULL;
}

void events__free(struct events *ev)
{
	unsigned i;

	if (!ev)
		return;
	ring_buffer__free(ev->rb);
	if (ev->active)
		munmap(ev->active, ev->active_len);
	free(ev->stmts);
	if (ev->db_cache)
		for (i = 0; i < DB_CACHE_SLOTS; i++)
			free(ev->db_cache[i].labels);
	free(ev->db_cache);
	strbuf__free(&ev->dbl);
	for (i = 0; i < 65536; i++)
		free(ev->ports[i]);
	free(ev);
}

/* Have every CPU write out the request records it has staged: a CPU that
 * went quiet would otherwise keep them until its next request. */
static void flush_stages(struct events *ev)
{
	int fd = bpf_program__fd(ev->skel->progs.aion_flush), i;
	LIBBPF_OPTS(bpf_test_run_opts, opts, .flags = BPF_F_TEST_RUN_ON_CPU);

	for (i = 0; i < ev->ncpus; i++) {
		opts.cpu = i;
		if (bpf_prog_test_run_opts(fd, &opts) && !ev->flush_warned) {
			fprintf(stderr, "events: cannot flush CPU %d's staged records: %s "
					"(records of a quiet CPU arrive with its next request)\n",
				i, strerror(errno));
			ev->flush_warned = 1;
		}
	}
}

int events__poll(struct events *ev, int timeout_ms)
{
	int err;

	/* Records are submitted without a wake-up (it costs ~2 µs each), so
	 * poll mostly times out: consume whatever is there afterwards. */
	err = ring_buffer__poll(ev->rb, timeout_ms);
	if (err < 0 && err != -EINTR)
		return err;
	flush_stages(ev);
	err = ring_buffer__consume(ev->rb);
	if (err < 0 && err != -EINTR)
		return err;
	sweep(ev);
	return 0;
}

static __u64 counter_sum(int fd, __u32 idx)
{
	int ncpu = libbpf_num_possible_cpus();
	__u64 *vals, sum = 0;
	int i;

	if (ncpu <= 0)
		return 0;
	vals = calloc(ncpu, sizeof(*vals));
	if (!vals)
		return 0;
	if (bpf_map_lookup_elem(fd, &idx, vals) == 0)
		for (i = 0; i < ncpu; i++)
			sum += vals[i];
	free(vals);
	return sum;
}

/* Live keys of a hash map (walked: a hash map has no count to read). */
static unsigned map_entries(int fd, size_t key_size)
{
	char key[256], next[256];
	void *prev = NULL;
	unsigned n = 0;

	if (key_size > sizeof(key))
		return 0;
	while (bpf_map_get_next_key(fd, prev, next) == 0 && n < (1u << 24)) {
		memcpy(key, next, key_size);
		prev = key;
		n++;
	}
	return n;
}

/* Entries and capacity of every hash table of the object, sampled: the
 * walk is repeated at most every MAP_SAMPLE_NS (arrays are always full and
 * ring buffers are reported by their losses). Called by the scrape thread
 * only. */
static void sample_fill(struct events *ev)
{
	__u64 now = now_ns();
	struct bpf_map *m;

	if (ev->nfill && now - ev->fill_ns < MAP_SAMPLE_NS)
		return;
	ev->nfill = 0;
	bpf_object__for_each_map(m, ev->skel->obj) {
		enum bpf_map_type t = bpf_map__type(m);

		if (t != BPF_MAP_TYPE_HASH && t != BPF_MAP_TYPE_LRU_HASH)
			continue;
		if (ev->nfill == MAX_FILL)
			break;
		ev->fill[ev->nfill].name = bpf_map__name(m);
		ev->fill[ev->nfill].max = bpf_map__max_entries(m);
		ev->fill[ev->nfill].entries = map_entries(bpf_map__fd(m), bpf_map__key_size(m));
		ev->nfill++;
	}
	ev->fill_ns = now;
}

/* db_client_connection_count: the kernel's per-(process, server) counts,
 * summed per service. */
static void render_pools(struct events *ev, struct strbuf *out)
{
	int fd = bpf_map__fd(ev->skel->maps.db_pool);
	struct aion_pool_key key, next, *prev = NULL;
	struct aion_pool_val v;
	struct pool_row {
		char *labels;
		long long used, open;
	} *rows = NULL, *nr;
	size_t n = 0, i;
	char addr[INET6_ADDRSTRLEN];
	const struct service *svc;
	struct strbuf b;

	strbuf__init(&b);
	procs__lock(ev->procs);
	while (bpf_map_get_next_key(fd, prev, &next) == 0 && n < 4096) {
		key = next;
		prev = &key;
		if (bpf_map_lookup_elem(fd, &key, &v) || key.system >= sizeof(db_systems) / sizeof(db_systems[0]) ||
		    !db_systems[key.system] || procs__gone(ev->procs, key.tgid))
			continue;
		svc = procs__service(ev->procs, key.tgid, 0, 0);
		if (key.addr[0] == 0 && !memcmp(key.addr, "\0\0\0\0\0\0\0\0\0\0\xff\xff", 12))
			inet_ntop(AF_INET, &key.addr[12], addr, sizeof(addr));
		else
			inet_ntop(AF_INET6, key.addr, addr, sizeof(addr));
		strbuf__reset(&b);
		strbuf__printf(&b, "%s,db_system_name=\"%s\",server_address=\"%s\",server_port=\"%u\"",
			       svc->labels, db_systems[key.system], addr, key.port);
		if (b.oom)
			break;
		for (i = 0; i < n && strcmp(rows[i].labels, b.buf); i++)
			;
		if (i == n) {
			nr = realloc(rows, (n + 1) * sizeof(*rows));
			if (!nr)
				break;
			rows = nr;
			rows[n].labels = strdup(b.buf);
			if (!rows[n].labels)
				break;
			rows[n].used = rows[n].open = 0;
			n++;
		}
		rows[i].open += v.open > 0 ? v.open : 0;
		rows[i].used += v.used > 0 ? v.used : 0;
	}
	procs__unlock(ev->procs);
	strbuf__free(&b);
	if (n)
		strbuf__puts(out, "# HELP db_client_connection_count Connections of traced processes to database servers: used while an operation is in flight.\n"
				  "# TYPE db_client_connection_count gauge\n");
	for (i = 0; i < n; i++) {
		long long used = rows[i].used < rows[i].open ? rows[i].used : rows[i].open;

		strbuf__printf(out, "db_client_connection_count{%s,state=\"used\"} %lld\n"
				    "db_client_connection_count{%s,state=\"idle\"} %lld\n",
			       rows[i].labels, used, rows[i].labels, rows[i].open - used);
		free(rows[i].labels);
	}
	free(rows);
}

int events__render(struct events *ev, struct strbuf *out)
{
	size_t i;

	int cfd = bpf_map__fd(ev->skel->maps.counters);
	struct port_name *pn;
	unsigned port;
	__u32 tgid;
	__s64 n;

	/* In-flight requests per server port. A port shows up once a request
	 * was started there and stays (series never disappear). */
	strbuf__puts(out, "# HELP http_server_active_requests Requests read by a traced server and not yet answered.\n"
			  "# TYPE http_server_active_requests gauge\n");
	procs__lock(ev->procs);
	for (port = 0; port < 65536; port++) {
		tgid = __atomic_load_n(&ev->active[port].tgid, __ATOMIC_RELAXED);
		if (!tgid)
			continue;
		n = __atomic_load_n(&ev->active[port].n, __ATOMIC_RELAXED);
		pn = ev->ports[port];
		if (!pn) {
			pn = ev->ports[port] = calloc(1, sizeof(*pn));
			if (!pn)
				continue;
		}
		if (pn->tgid != tgid || !pn->svc) {
			pn->tgid = tgid;
			pn->svc = procs__service(ev->procs, tgid, 0, 0);
		}
		strbuf__printf(out, "http_server_active_requests{%s,server_port=\"%u\"} %lld\n",
			       pn->svc->labels, port, n > 0 ? (long long)n : 0);
	}
	procs__unlock(ev->procs);

	render_pools(ev, out);
	sample_fill(ev);
	strbuf__puts(out, "# HELP aion_agent_map_entries Entries in a kernel hash table (sampled at most once a second).\n"
			  "# TYPE aion_agent_map_entries gauge\n");
	for (i = 0; i < ev->nfill; i++)
		strbuf__printf(out, "aion_agent_map_entries{map=\"%s\"} %u\n", ev->fill[i].name,
			       ev->fill[i].entries);
	strbuf__puts(out, "# HELP aion_agent_map_max_entries Capacity of a kernel hash table.\n"
			  "# TYPE aion_agent_map_max_entries gauge\n");
	for (i = 0; i < ev->nfill; i++)
		strbuf__printf(out, "aion_agent_map_max_entries{map=\"%s\"} %u\n", ev->fill[i].name,
			       ev->fill[i].max);
	strbuf__printf(out,
		"# HELP aion_agent_events_total Records read from the kernel's ring buffers.\n"
		"# TYPE aion_agent_events_total counter\n"
		"aion_agent_events_total %llu\n"
		"# HELP aion_agent_events_lost_total Records the kernel could not reserve in a full ring buffer.\n"
		"# TYPE aion_agent_events_lost_total counter\n"
		"aion_agent_events_lost_total %llu\n"
		"# HELP aion_agent_parse_errors_total Syscall data on a traced socket that could not be framed.\n"
		"# TYPE aion_agent_parse_errors_total counter\n"
		"aion_agent_parse_errors_total{protocol=\"http\"} %llu\n"
		"aion_agent_parse_errors_total{protocol=\"postgresql\"} %llu\n"
		"aion_agent_parse_errors_total{protocol=\"mysql\"} %llu\n"
		"aion_agent_parse_errors_total{protocol=\"redis\"} %llu\n"
		"# HELP aion_agent_map_update_errors_total Kernel map updates that failed (map full).\n"
		"# TYPE aion_agent_map_update_errors_total counter\n"
		"aion_agent_map_update_errors_total{map=\"conns\"} %llu\n"
		"aion_agent_map_update_errors_total{map=\"targets\"} %llu\n"
		"# HELP aion_agent_process_events_lost_total Process events (fork, exec, exit) the kernel could not report.\n"
		"# TYPE aion_agent_process_events_lost_total counter\n"
		"aion_agent_process_events_lost_total %llu\n"
		"# HELP aion_agent_requests_dropped_total Pipelined requests beyond the per-connection queue.\n"
		"# TYPE aion_agent_requests_dropped_total counter\n"
		"aion_agent_requests_dropped_total{reason=\"queue_full\"} %llu\n"
		"# HELP aion_agent_connections_adopted_total Connections open before they were first seen, adopted from the fd table.\n"
		"# TYPE aion_agent_connections_adopted_total counter\n"
		"aion_agent_connections_adopted_total %llu\n",
		__atomic_load_n(&ev->handled, __ATOMIC_RELAXED),
		(unsigned long long)counter_sum(cfd, AION_CNT_EVENTS_LOST),
		(unsigned long long)counter_sum(cfd, AION_CNT_PARSE_GIVEUP),
		(unsigned long long)counter_sum(cfd, AION_CNT_PARSE_PG),
		(unsigned long long)counter_sum(cfd, AION_CNT_PARSE_MYSQL),
		(unsigned long long)counter_sum(cfd, AION_CNT_PARSE_REDIS),
		(unsigned long long)counter_sum(cfd, AION_CNT_CONN_TABLE_FULL),
		(unsigned long long)counter_sum(cfd, AION_CNT_TARGET_TABLE_FULL),
		(unsigned long long)counter_sum(cfd, AION_CNT_PROC_LOST),
		(unsigned long long)counter_sum(cfd, AION_CNT_QUEUE_FULL),
		(unsigned long long)counter_sum(cfd, AION_CNT_ADOPTED));
	return tls__render(ev->tls, out, counter_sum(cfd, AION_CNT_TLS_NO_SOCKET));
}
