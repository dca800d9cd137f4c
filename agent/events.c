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
#include "route.h"

#define SVC_BUCKETS 1024
#define SVC_NAME    64
#define DEAD_GRACE_NS (2ULL * 1000000000ULL) /* records may trail the exit notice */

static const char *const method_names[AION_METHOD__COUNT] = {
	[AION_METHOD_UNKNOWN] = "_OTHER", [AION_METHOD_GET] = "GET",
	[AION_METHOD_HEAD] = "HEAD",      [AION_METHOD_POST] = "POST",
	[AION_METHOD_PUT] = "PUT",        [AION_METHOD_DELETE] = "DELETE",
	[AION_METHOD_CONNECT] = "CONNECT", [AION_METHOD_OPTIONS] = "OPTIONS",
	[AION_METHOD_TRACE] = "TRACE",    [AION_METHOD_PATCH] = "PATCH",
};

struct svc {
	struct svc *next;
	__u32 tgid;
	__u64 dead_ns; /* 0 while alive */
	char name[SVC_NAME];
};

struct port_name {
	__u32 tgid;
	char name[SVC_NAME];
};

struct events {
	struct aion_bpf *skel;
	struct aggregate *agg;
	const char *service_name;
	struct ring_buffer *rb;
	pthread_mutex_t lock; /* svc table: the HTTP thread reads it */
	struct svc *svc[SVC_BUCKETS];
	unsigned long long handled;
	int ncpus;
	int flush_warned;
	struct aion_active_slot *active; /* the kernel's array, mapped */
	size_t active_len;
	struct port_name *ports[65536];  /* service seen last on each port */
	unsigned ndead;
	__u64 last_sweep_ns;
};

static __u64 now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (__u64)ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}

/* The service name of tgid; the caller holds the lock. */
static const char *svc_name(struct events *ev, __u32 tgid, __u32 service_id)
{
	struct svc **b = &ev->svc[tgid % SVC_BUCKETS], *s;

	(void)service_id; /* one --service-name names every target for now */
	if (ev->service_name)
		return ev->service_name;
	for (s = *b; s; s = s->next)
		if (s->tgid == tgid)
			return s->name;
	s = calloc(1, sizeof(*s));
	if (!s)
		return "unknown";
	s->tgid = tgid;
	if (procinfo__exe_name((int)tgid, s->name, sizeof(s->name)))
		snprintf(s->name, sizeof(s->name), "unknown");
	s->next = *b;
	*b = s;
	return s->name;
}

static void svc_mark_dead(struct events *ev, __u32 tgid)
{
	struct svc *s;

	for (s = ev->svc[tgid % SVC_BUCKETS]; s; s = s->next) {
		if (s->tgid == tgid && !s->dead_ns) {
			s->dead_ns = now_ns();
			ev->ndead++;
		}
	}
}

static int on_http(struct events *ev, const struct aion_http_event *e)
{
	char route[ROUTE_MAX], status[8];
	struct http_sample smp = {};
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
	pthread_mutex_lock(&ev->lock);
	smp.service = svc_name(ev, e->tgid, e->service_id);
	aggregate__http_server(ev->agg, &smp);
	pthread_mutex_unlock(&ev->lock);
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
	case AION_EV_PROC_EXIT:
		if (size >= sizeof(*p)) {
			pthread_mutex_lock(&ev->lock);
			svc_mark_dead(ev, p->tgid);
			pthread_mutex_unlock(&ev->lock);
		}
		return 0;
	case AION_EV_PROC_EXEC:
		if (size >= sizeof(*p))
			fprintf(stderr, "targets: pid %u exec'd a selected executable: traced\n", p->tgid);
		return 0;
	default:
		return 0;
	}
}

/* Delete every key of a map keyed by a struct starting with a __u32 tgid
 * when that tgid is marked dead. */
static void sweep_map(struct events *ev, int fd, size_t key_size)
{
	char key[16], next[16];
	void *prev = NULL;
	__u32 tgid;
	struct svc *s;
	int dead;

	while (bpf_map_get_next_key(fd, prev, next) == 0) {
		memcpy(&tgid, next, sizeof(tgid));
		dead = 0;
		for (s = ev->svc[tgid % SVC_BUCKETS]; s; s = s->next)
			if (s->tgid == tgid && s->dead_ns)
				dead = 1;
		memcpy(key, next, key_size);
		prev = key;
		if (dead)
			bpf_map_delete_elem(fd, key);
	}
}

/* Exited processes leave every map, a grace period after their exit. */
static void sweep(struct events *ev)
{
	__u64 now = now_ns();
	struct svc **pp, *s;
	unsigned i;

	if (!ev->ndead || now - ev->last_sweep_ns < DEAD_GRACE_NS)
		return;
	ev->last_sweep_ns = now;
	pthread_mutex_lock(&ev->lock);
	sweep_map(ev, bpf_map__fd(ev->skel->maps.conns), sizeof(__u64));
	sweep_map(ev, bpf_map__fd(ev->skel->maps.nonsock), sizeof(__u64));
	for (i = 0; i < SVC_BUCKETS; i++) {
		for (pp = &ev->svc[i]; (s = *pp);) {
			if (s->dead_ns && now - s->dead_ns >= DEAD_GRACE_NS) {
				*pp = s->next;
				free(s);
				ev->ndead--;
			} else {
				pp = &s->next;
			}
		}
	}
	pthread_mutex_unlock(&ev->lock);
}

struct events *events__new(const struct events_opts *o)
{
	struct events *ev = calloc(1, sizeof(*ev));
	int err;

	if (!ev)
		return NULL;
	ev->skel = o->skel;
	ev->agg = o->agg;
	ev->service_name = o->service_name;
	ev->ncpus = libbpf_num_possible_cpus();
	if (ev->ncpus < 1)
		ev->ncpus = 1;
	pthread_mutex_init(&ev->lock, NULL);
	ev->rb = ring_buffer__new(bpf_map__fd(o->skel->maps.events), on_record, ev, NULL);
	if (!ev->rb) {
		err = -errno;
		goto fail;
	}
	err = ring_buffer__add(ev->rb, bpf_map__fd(o->skel->maps.proc_events), on_record, ev);
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
	struct svc *s, *n;
	unsigned i;

	if (!ev)
		return;
	ring_buffer__free(ev->rb);
	if (ev->active)
		munmap(ev->active, ev->active_len);
	for (i = 0; i < 65536; i++)
		free(ev->ports[i]);
	for (i = 0; i < SVC_BUCKETS; i++)
		for (s = ev->svc[i]; s; s = n) {
			n = s->next;
			free(s);
		}
	pthread_mutex_destroy(&ev->lock);
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

int events__render(struct events *ev, struct strbuf *out)
{
	int cfd = bpf_map__fd(ev->skel->maps.counters);
	struct port_name *pn;
	unsigned port;
	__u32 tgid;
	__s64 n;

	/* In-flight requests per server port. A port shows up once a request
	 * was started there and stays (series never disappear). */
	strbuf__puts(out, "# HELP http_server_active_requests Requests read by a traced server and not yet answered.\n"
			  "# TYPE http_server_active_requests gauge\n");
	pthread_mutex_lock(&ev->lock);
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
		if (pn->tgid != tgid) {
			pn->tgid = tgid;
			snprintf(pn->name, sizeof(pn->name), "%s", svc_name(ev, tgid, 0));
		}
		strbuf__puts(out, "http_server_active_requests{service_name=\"");
		strbuf__label_value(out, pn->name);
		strbuf__printf(out, "\",server_port=\"%u\"} %lld\n", port, n > 0 ? (long long)n : 0);
	}
	pthread_mutex_unlock(&ev->lock);

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
		(unsigned long long)counter_sum(cfd, AION_CNT_QUEUE_FULL),
		(unsigned long long)counter_sum(cfd, AION_CNT_ADOPTED));
	return out->oom ? -ENOMEM : 0;
}
