// SPDX-License-Identifier: MIT
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
#include "route.h"

static const char *const method_names[AION_METHOD__COUNT] = {
	[AION_METHOD_UNKNOWN] = "_OTHER", [AION_METHOD_GET] = "GET",
	[AION_METHOD_HEAD] = "HEAD",      [AION_METHOD_POST] = "POST",
	[AION_METHOD_PUT] = "PUT",        [AION_METHOD_DELETE] = "DELETE",
	[AION_METHOD_CONNECT] = "CONNECT", [AION_METHOD_OPTIONS] = "OPTIONS",
	[AION_METHOD_TRACE] = "TRACE",    [AION_METHOD_PATCH] = "PATCH",
};

struct port_name {
	const struct service *svc;
	__u32 tgid;
};

struct events {
	struct aion_bpf *skel;
	struct aggregate *agg;
	struct procs *procs;
	struct targets *targets;
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
};

static __u64 now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (__u64)ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}

static int on_http(struct events *ev, const struct aion_http_event *e)
{
	char route[ROUTE_MAX], status[8];
	struct http_sample smp = {};
	const struct service *svc;
	size_t plen = e->path_len > AION_PATH_MAX ? AION_PATH_MAX : e->path_len;
	int truncated = plen == AION_PATH_MAX && !memchr(e->path, ' ', plen);

	if (e->role != AION_ROLE_SERVER)
		return 0;
	route__normalize(e->path, plen, truncated, route, sizeof(route));
	smp.method = e->method < AION_METHOD__COUNT ? method_names[e->method] : "_OTHER";
	smp.status = e->status;
	smp.route = route;
	smp.server_port = e->server_port;
	smp.scheme = "http";
	smp.error_type = "";
	if (e->error == AION_ERR_CONN_CLOSED) {
		smp.error_type = "connection_closed";
		smp.status = 0;
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
	char why[4200];

	switch (p->kind) {
	case AION_EV_PROC_FORK:
		snprintf(why, sizeof(why), "fork of pid %u", p->ppid);
		procs__add(ev->procs, p->tgid, p->gen, p->service_id, why);
		break;
	case AION_EV_PROC_EXEC:
		if (p->service_id < ev->nexe_paths && ev->exe_paths[p->service_id])
			snprintf(why, sizeof(why), "exec of %s", ev->exe_paths[p->service_id]);
		else
			snprintf(why, sizeof(why), "exec by a traced process");
		procs__add(ev->procs, p->tgid, p->gen, p->service_id, why);
		break;
	case AION_EV_PROC_LISTEN:
		snprintf(why, sizeof(why), "listens on port %u", p->port);
		procs__add(ev->procs, p->tgid, p->gen, p->service_id, why);
		break;
	case AION_EV_PROC_EXIT:
		procs__exit(ev->procs, p->tgid, p->gen, p->cpu_user_ns, p->cpu_system_ns);
		break;
	case AION_EV_PROC_EXEC_OTHER:
		if (ev->targets)
			targets__on_exec(ev->targets, (int)p->tgid);
		break;
	}
}

static int on_record(void *ctx, void *data, size_t size)
{
	struct events *ev = ctx;
	const struct aion_proc_event *p = data;

	if (size < 1)
		return 0;
	ev->handled++;
	switch (*(const __u8 *)data) {
	case AION_EV_HTTP: {
		/* 1 to AION_BATCH records back to back (bpf/conn.bpf.h). */
		const struct aion_http_event *e = data;
		size_t i, n = size / sizeof(*e);

		for (i = 0; i < n; i++)
			if (e[i].kind == AION_EV_HTTP)
				on_http(ev, &e[i]);
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
	char key[16], next[16];
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
	ev->targets = o->targets;
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
	char key[16], next[16];
	void *prev = NULL;
	unsigned n = 0;

	while (bpf_map_get_next_key(fd, prev, next) == 0 && n < (1u << 24)) {
		memcpy(key, next, key_size);
		prev = key;
		n++;
	}
	return n;
}

int events__render(struct events *ev, struct strbuf *out)
{
	static const struct {
		const char *name;
		size_t key_size;
	} maps[] = { { "targets", 4 }, { "conns", 8 }, { "nonsock", 8 }, { "socks", 8 } };
	struct bpf_map *m;
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

	strbuf__puts(out, "# HELP aion_agent_map_entries Entries in a kernel map now.\n"
			  "# TYPE aion_agent_map_entries gauge\n");
	for (i = 0; i < sizeof(maps) / sizeof(maps[0]); i++) {
		m = bpf_object__find_map_by_name(ev->skel->obj, maps[i].name);
		if (m)
			strbuf__printf(out, "aion_agent_map_entries{map=\"%s\"} %u\n", maps[i].name,
				       map_entries(bpf_map__fd(m), maps[i].key_size));
	}
	strbuf__puts(out, "# HELP aion_agent_map_max_entries Capacity of a kernel map.\n"
			  "# TYPE aion_agent_map_max_entries gauge\n");
	for (i = 0; i < sizeof(maps) / sizeof(maps[0]); i++) {
		m = bpf_object__find_map_by_name(ev->skel->obj, maps[i].name);
		if (m)
			strbuf__printf(out, "aion_agent_map_max_entries{map=\"%s\"} %u\n", maps[i].name,
				       bpf_map__max_entries(m));
	}
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
		(unsigned long long)counter_sum(cfd, AION_CNT_CONN_TABLE_FULL),
		(unsigned long long)counter_sum(cfd, AION_CNT_TARGET_TABLE_FULL),
		(unsigned long long)counter_sum(cfd, AION_CNT_PROC_LOST),
		(unsigned long long)counter_sum(cfd, AION_CNT_QUEUE_FULL),
		(unsigned long long)counter_sum(cfd, AION_CNT_ADOPTED));
	return out->oom ? -ENOMEM : 0;
}
