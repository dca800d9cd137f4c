// SPDX-License-Identifier: MIT
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "identity.h"
#include "procinfo.h"
#include "procs.h"

#define PROC_BUCKETS 4096
#define GRACE_NS     (2ULL * 1000000000ULL) /* records may trail the exit notice */
#define CHECK_NS     (5ULL * 1000000000ULL) /* live entries checked against /proc */

struct proc {
	struct proc *next;
	__u32 tgid, gen;
	struct service *svc;
	__u64 dead_ns;                /* 0 while alive */
	double last_user, last_system; /* last sample, seconds */
};

struct procs {
	pthread_mutex_t lock;
	struct proc *tab[PROC_BUCKETS];
	struct service *services;
	unsigned nservices;
	struct service *other;         /* beyond max_services; in services */
	unsigned long long over;       /* processes named "_other" */
	struct procs_opts o;
	unsigned live, dead;
	__u64 last_check_ns;
	double tick;  /* seconds per clock tick */
	long page;
};

static __u64 now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (__u64)ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}

struct procs *procs__new(const struct procs_opts *o)
{
	struct procs *p = calloc(1, sizeof(*p));
	long hz = sysconf(_SC_CLK_TCK);

	if (!p)
		return NULL;
	p->o = *o;
	if (!p->o.max_services)
		p->o.max_services = 10000;
	p->tick = 1.0 / (hz > 0 ? hz : 100);
	p->page = sysconf(_SC_PAGESIZE);
	pthread_mutex_init(&p->lock, NULL);
	return p;
}

void procs__free(struct procs *p)
{
	struct proc *e, *en;
	struct service *s, *sn;
	unsigned i;

	if (!p)
		return;
	for (i = 0; i < PROC_BUCKETS; i++)
		for (e = p->tab[i]; e; e = en) {
			en = e->next;
			free(e);
		}
	for (s = p->services; s; s = sn) {
		sn = s->next;
		free(s->labels);
		free(s);
	}
	pthread_mutex_destroy(&p->lock);
	free(p);
}

void procs__lock(struct procs *p)
{
	pthread_mutex_lock(&p->lock);
}

void procs__unlock(struct procs *p)
{
	pthread_mutex_unlock(&p->lock);
}

static struct service *find_service(struct procs *p, const char *labels)
{
	struct service *s;

	for (s = p->services; s; s = s->next)
		if (!strcmp(s->labels, labels))
			return s;
	return NULL;
}

/* The interned service for a name and container identity. Beyond
 * max_services (with container churn a node sees ever new identities) the
 * rest share one, service_name="_other", which takes the last place. */
static struct service *intern(struct procs *p, const char *name, const struct identity *id)
{
	struct strbuf sb;
	struct service *s;
	size_t nlen;

	strbuf__init(&sb);
	strbuf__puts(&sb, "service_name=\"");
	strbuf__label_value(&sb, name);
	strbuf__puts(&sb, "\"");
	nlen = sb.len;
	identity__labels(id, &sb);
	if (sb.oom)
		goto oom;
	s = find_service(p, sb.buf);
	if (s) {
		strbuf__free(&sb);
		return s;
	}
	if (p->nservices + 1 >= p->o.max_services) {
		if (p->other) {
			strbuf__free(&sb);
			return p->other;
		}
		fprintf(stderr, "procs: %u services (names and containers) seen: processes of new ones are "
				"named service_name=\"_other\" from now on (raise --max-series)\n", p->nservices);
		strbuf__reset(&sb);
		strbuf__puts(&sb, "service_name=\"_other\"");
		nlen = sb.len;
		name = "_other";
		if (sb.oom)
			goto oom;
		p->other = find_service(p, sb.buf);
		if (p->other) {
			strbuf__free(&sb);
			return p->other;
		}
	}
	s = calloc(1, sizeof(*s));
	if (!s)
		goto oom;
	s->labels = strbuf__detach(&sb, NULL);
	if (!s->labels) {
		free(s);
		goto oom;
	}
	s->identity = s->labels + nlen;
	snprintf(s->name, sizeof(s->name), "%s", name);
	s->idx = p->nservices++;
	s->next = p->services;
	p->services = s;
	if (p->nservices >= p->o.max_services)
		p->other = s;
	return s;
oom:
	strbuf__free(&sb);
	/* The first service stands in; only reachable without memory. */
	return p->services;
}

static struct service *resolve(struct procs *p, __u32 tgid, __u32 svc_id, const char *hint)
{
	static struct service fallback = { .labels = "service_name=\"unknown\"", .identity = "", .name = "unknown" };
	struct identity id = {};
	const char *name = NULL;
	char exe[64];
	struct service *s;

	if (svc_id < p->o.nnames && p->o.names[svc_id])
		name = p->o.names[svc_id];
	else if (p->o.default_name)
		name = p->o.default_name;
	if (!name) {
		if (procinfo__exe_name((int)tgid, exe, sizeof(exe))) {
			size_t i;

			/* Gone already: the name the kernel reported. */
			snprintf(exe, sizeof(exe), "%s", hint && *hint ? hint : "unknown");
			for (i = 0; exe[i]; i++)
				if ((unsigned char)exe[i] < 0x20 || (unsigned char)exe[i] > 0x7e)
					exe[i] = '_';
		}
		name = exe;
	}
	identity__of_pid((int)tgid, p->o.k8s_log_dir, &id);
	s = intern(p, name, &id);
	return s ? s : &fallback;
}

static struct proc *find(struct procs *p, __u32 tgid, __u32 gen)
{
	struct proc *e;

	for (e = p->tab[tgid % PROC_BUCKETS]; e; e = e->next)
		if (e->tgid == tgid && e->gen == gen)
			return e;
	return NULL;
}

static struct proc *find_live(struct procs *p, __u32 tgid)
{
	struct proc *e;

	for (e = p->tab[tgid % PROC_BUCKETS]; e; e = e->next)
		if (e->tgid == tgid && !e->dead_ns)
			return e;
	return NULL;
}

static void kill_entry(struct procs *p, struct proc *e, double user, double system)
{
	if (e->dead_ns)
		return;
	e->dead_ns = now_ns();
	e->svc->dead_user += user > e->last_user ? user : e->last_user;
	e->svc->dead_system += system > e->last_system ? system : e->last_system;
	e->svc->live--;
	p->live--;
	p->dead++;
}

static struct proc *insert(struct procs *p, __u32 tgid, __u32 gen, __u32 svc_id, const char *hint)
{
	struct proc *e = calloc(1, sizeof(*e)), *old;

	if (!e)
		return NULL;
	/* An older incarnation still marked live (exec, or an exit notice
	 * lost) ends here. */
	while ((old = find_live(p, tgid)))
		kill_entry(p, old, 0, 0);
	e->tgid = tgid;
	e->gen = gen;
	e->svc = resolve(p, tgid, svc_id, hint);
	if (e->svc == p->other)
		p->over++;
	e->svc->live++;
	p->live++;
	e->next = p->tab[tgid % PROC_BUCKETS];
	p->tab[tgid % PROC_BUCKETS] = e;
	return e;
}

/* An incarnation known only to be gone: it keeps a late announcement (or
 * a trailing record) from creating a live entry. */
static struct proc *insert_dead(struct procs *p, __u32 tgid, __u32 gen)
{
	static struct service gone = { .labels = "service_name=\"unknown\"", .identity = "",
				       .name = "unknown" };
	struct proc *e = calloc(1, sizeof(*e));

	if (!e)
		return NULL;
	e->tgid = tgid;
	e->gen = gen;
	e->svc = &gone;
	e->dead_ns = now_ns();
	p->dead++;
	e->next = p->tab[tgid % PROC_BUCKETS];
	p->tab[tgid % PROC_BUCKETS] = e;
	return e;
}

void procs__add(struct procs *p, __u32 tgid, __u32 gen, __u32 svc_id, const char *reason)
{
	procs__add_named(p, tgid, gen, svc_id, reason, NULL);
}

void procs__add_named(struct procs *p, __u32 tgid, __u32 gen, __u32 svc_id, const char *reason,
		      const char *name)
{
	struct proc *e;

	pthread_mutex_lock(&p->lock);
	e = find(p, tgid, gen);
	if (e && e->dead_ns) {
		pthread_mutex_unlock(&p->lock);
		return; /* its exit was handled first */
	}
	if (!e)
		e = insert(p, tgid, gen, svc_id, name);
	if (e && p->o.log)
		fprintf(stderr, "targets: pid %u (%s) instrumented: %s\n", tgid, e->svc->name, reason);
	pthread_mutex_unlock(&p->lock);
}

void procs__exit(struct procs *p, __u32 tgid, __u32 gen, __u64 user_ns, __u64 system_ns,
		 const char *why)
{
	struct proc *e;

	pthread_mutex_lock(&p->lock);
	e = gen ? find(p, tgid, gen) : find_live(p, tgid);
	if (e && !e->dead_ns) {
		kill_entry(p, e, user_ns / 1e9, system_ns / 1e9);
		if (p->o.log)
			fprintf(stderr, "targets: pid %u (%s) dropped: %s\n", tgid, e->svc->name, why);
	} else if (!e && gen) {
		/* Exit seen before the announcement: remember the incarnation as
		 * gone so that a late announcement is not taken as live. */
		insert_dead(p, tgid, gen);
	}
	pthread_mutex_unlock(&p->lock);
}

const struct service *procs__service(struct procs *p, __u32 tgid, __u32 gen, __u32 svc_id)
{
	struct proc *e = gen ? find(p, tgid, gen) : find_live(p, tgid);

	if (e)
		return e->svc;
	/* Not announced (yet): a process that is gone is only named, never
	 * registered as live. */
	if (!procinfo__alive((int)tgid))
		return resolve(p, tgid, svc_id, NULL);
	e = insert(p, tgid, gen, svc_id, NULL);
	return e ? e->svc : resolve(p, tgid, svc_id, NULL);
}

int procs__gone(struct procs *p, __u32 tgid)
{
	struct proc *e;
	int dead = 0;

	for (e = p->tab[tgid % PROC_BUCKETS]; e; e = e->next) {
		if (e->tgid != tgid)
			continue;
		if (!e->dead_ns)
			return 0;
		dead = 1;
	}
	return dead;
}

unsigned procs__sweep(struct procs *p)
{
	struct proc **pp, *e;
	__u64 now = now_ns();
	unsigned i, n;

	pthread_mutex_lock(&p->lock);
	/* An exit notice lost in a full ring would leave its process live
	 * forever: look in /proc now and then. */
	if (p->live && now - p->last_check_ns >= CHECK_NS) {
		p->last_check_ns = now;
		for (i = 0; i < PROC_BUCKETS; i++)
			for (e = p->tab[i]; e; e = e->next)
				if (!e->dead_ns && !procinfo__alive((int)e->tgid)) {
					kill_entry(p, e, 0, 0);
					if (p->o.log)
						fprintf(stderr, "targets: pid %u (%s) dropped: exited (found in /proc)\n",
							e->tgid, e->svc->name);
				}
	}
	n = p->dead;
	for (i = 0; p->dead && i < PROC_BUCKETS; i++) {
		for (pp = &p->tab[i]; (e = *pp);) {
			if (e->dead_ns && now - e->dead_ns >= GRACE_NS) {
				*pp = e->next;
				free(e);
				p->dead--;
			} else {
				pp = &e->next;
			}
		}
	}
	pthread_mutex_unlock(&p->lock);
	return n;
}

unsigned procs__live(struct procs *p)
{
	unsigned n;

	pthread_mutex_lock(&p->lock);
	n = p->live;
	pthread_mutex_unlock(&p->lock);
	return n;
}

struct sample {
	__u32 tgid, gen;
	struct service *svc;
	struct proc_stat st;
	long fds;
	int ok;
};

struct totals {
	double user, system, rss;
	long fds, threads;
};

int procs__render(struct procs *p, struct strbuf *out)
{
	struct sample *v = NULL;
	struct totals *t = NULL;
	struct service *s;
	struct proc *e;
	unsigned n = 0, cap, i, ns = 0, j;
	static const char *const hdr[] = {
		"# HELP process_cpu_time_seconds_total CPU time used by the service's traced processes (exited ones included).\n"
		"# TYPE process_cpu_time_seconds_total counter\n",
		"# HELP process_memory_usage_bytes Resident memory of the service's traced processes.\n"
		"# TYPE process_memory_usage_bytes gauge\n",
		"# HELP process_open_fds Open file descriptors of the service's traced processes.\n"
		"# TYPE process_open_fds gauge\n",
		"# HELP process_threads Threads of the service's traced processes.\n"
		"# TYPE process_threads gauge\n",
	};

	/* Copy the live set under the lock, read /proc outside it. */
	pthread_mutex_lock(&p->lock);
	cap = p->live;
	v = calloc(cap ? cap : 1, sizeof(*v));
	ns = p->nservices;
	t = calloc(ns ? ns : 1, sizeof(*t));
	if (!v || !t) {
		pthread_mutex_unlock(&p->lock);
		free(v);
		free(t);
		return -ENOMEM;
	}
	for (i = 0; i < PROC_BUCKETS && n < cap; i++)
		for (e = p->tab[i]; e && n < cap; e = e->next)
			if (!e->dead_ns) {
				v[n].tgid = e->tgid;
				v[n].gen = e->gen;
				v[n].svc = e->svc;
				n++;
			}
	pthread_mutex_unlock(&p->lock);

	for (i = 0; i < n; i++) {
		v[i].ok = procinfo__stat((int)v[i].tgid, &v[i].st) == 0;
		v[i].fds = v[i].ok ? procinfo__count_fds((int)v[i].tgid) : 0;
		if (v[i].fds < 0)
			v[i].fds = 0;
	}

	pthread_mutex_lock(&p->lock);
	for (i = 0; i < n; i++) {
		e = find(p, v[i].tgid, v[i].gen);
		if (!e || e->dead_ns || !v[i].ok)
			continue; /* gone meanwhile: its CPU is in dead_* */
		e->last_user = v[i].st.user_ticks * p->tick;
		e->last_system = v[i].st.system_ticks * p->tick;
	}
	for (s = p->services; s; s = s->next) {
		if (s->idx >= ns)
			continue;
		t[s->idx].user += s->dead_user;
		t[s->idx].system += s->dead_system;
	}
	for (i = 0; i < PROC_BUCKETS; i++)
		for (e = p->tab[i]; e; e = e->next) {
			if (e->dead_ns || e->svc->idx >= ns)
				continue;
			t[e->svc->idx].user += e->last_user;
			t[e->svc->idx].system += e->last_system;
		}
	for (i = 0; i < n; i++) {
		if (!v[i].ok || v[i].svc->idx >= ns)
			continue;
		j = v[i].svc->idx;
		t[j].rss += (double)v[i].st.rss_pages * p->page;
		t[j].fds += v[i].fds;
		t[j].threads += v[i].st.threads;
	}
	strbuf__puts(out, hdr[0]);
	for (s = p->services; s; s = s->next) {
		j = s->idx;
		if (j >= ns)
			continue;
		strbuf__printf(out, "process_cpu_time_seconds_total{%s,cpu_mode=\"user\"} %.2f\n", s->labels, t[j].user);
		strbuf__printf(out, "process_cpu_time_seconds_total{%s,cpu_mode=\"system\"} %.2f\n", s->labels, t[j].system);
	}
	strbuf__puts(out, hdr[1]);
	for (s = p->services; s; s = s->next)
		if (s->idx < ns)
			strbuf__printf(out, "process_memory_usage_bytes{%s} %.0f\n", s->labels, t[s->idx].rss);
	strbuf__puts(out, hdr[2]);
	for (s = p->services; s; s = s->next)
		if (s->idx < ns)
			strbuf__printf(out, "process_open_fds{%s} %ld\n", s->labels, t[s->idx].fds);
	strbuf__puts(out, hdr[3]);
	for (s = p->services; s; s = s->next)
		if (s->idx < ns)
			strbuf__printf(out, "process_threads{%s} %ld\n", s->labels, t[s->idx].threads);
	strbuf__printf(out, "# HELP aion_agent_instrumented_processes Processes in the target set (with --all: those seen so far).\n"
			    "# TYPE aion_agent_instrumented_processes gauge\n"
			    "aion_agent_instrumented_processes %u\n"
			    "# HELP aion_agent_service_overflow_total Processes (forks and execs) named service_name=\"_other\" because --max-series services were already seen.\n"
			    "# TYPE aion_agent_service_overflow_total counter\n"
			    "aion_agent_service_overflow_total %llu\n", p->live, p->over);
	pthread_mutex_unlock(&p->lock);
	free(v);
	free(t);
	return out->oom ? -ENOMEM : 0;
}
