/* SPDX-License-Identifier: MIT */
/* The registry of instrumented processes: each incarnation (tgid, gen) with
 * its service identity (service_name and container labels), the log line
 * when it is instrumented or dropped, and the process_* metrics of every
 * service. Thread-safe: the HTTP thread renders while the main thread
 * updates. */
#ifndef AION_PROCS_H
#define AION_PROCS_H

#include <linux/types.h>

#include "strbuf.h"

struct procs;

/* A service identity, interned: pointers stay valid until procs__free. */
struct service {
	struct service *next;
	char *labels;          /* service_name="..."[,container_id="..."...] */
	const char *identity;  /* the part of labels after service_name */
	char name[64];
	double dead_user, dead_system; /* CPU seconds of processes gone */
	unsigned live;
	unsigned idx;           /* creation order, 0 upwards */
};

struct procs_opts {
	/* Configured names by service id (index); NULL entries and ids beyond
	 * nnames fall back to default_name, then to the executable's name. */
	const char *const *names;
	unsigned nnames;
	const char *default_name;
	const char *k8s_log_dir; /* NULL: /var/log/containers */
	int log;                 /* one stderr line per process instrumented/dropped */
	/* Distinct services (name + container identity) kept; processes of
	 * later ones are named service_name="_other". 0: 10000. */
	unsigned max_services;
};

struct procs *procs__new(const struct procs_opts *o);
void procs__free(struct procs *p);
/* tgid (incarnation gen) joined the target set; reason goes in the log
 * line. An older live incarnation of the same tgid is dropped. */
void procs__add(struct procs *p, __u32 tgid, __u32 gen, __u32 svc_id, const char *reason);
/* The same, with the executable's base name as the kernel saw it: used when
 * the process is already gone from /proc (NULL: none). */
void procs__add_named(struct procs *p, __u32 tgid, __u32 gen, __u32 svc_id, const char *reason,
		      const char *name);
/* tgid left the set (why: "exited", "exec'd bash"); CPU times from the
 * kernel (0 when unknown). */
void procs__exit(struct procs *p, __u32 tgid, __u32 gen, __u64 user_ns, __u64 system_ns,
		 const char *why);
/* The identity for a record of (tgid, gen): the incarnation's (also shortly
 * after its exit); gen 0 (not in the target set, --all) or an incarnation
 * not announced yet is resolved from /proc now. Never NULL. Hold the
 * lock (procs__lock) while using the result. */
const struct service *procs__service(struct procs *p, __u32 tgid, __u32 gen, __u32 svc_id);
void procs__lock(struct procs *p);
void procs__unlock(struct procs *p);
/* 1 when tgid has exited (longer than the grace period for trailing
 * records) and no live process has that tgid. Call under the lock. */
int procs__gone(struct procs *p, __u32 tgid);
/* Forget incarnations that exited more than the grace period ago; returns
 * how many there were (their tgids are procs__gone until then). */
unsigned procs__sweep(struct procs *p);
/* Live processes in the registry. */
unsigned procs__live(struct procs *p);
/* process_* families and aion_agent_instrumented_processes. */
int procs__render(struct procs *p, struct strbuf *out);

#endif /* AION_PROCS_H */
