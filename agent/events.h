/* SPDX-License-Identifier: MIT */
/* The ring-buffer consumer: turns completed-request records into samples,
 * process events into the registry (procs.h), and removes exited processes
 * from the kernel's maps. Runs on the main thread. */
#ifndef AION_EVENTS_H
#define AION_EVENTS_H

#include "aggregate.h"
#include "procs.h"
#include "strbuf.h"
#include "targets.h"
#include "tls.h"

struct aion_bpf;
struct events;

struct events_opts {
	struct aion_bpf *skel;
	struct aggregate *agg;
	struct procs *procs;      /* identities and the process registry */
	struct targets *targets;  /* asked about execs of other files */
	struct tls *tls;          /* told about files mapped executable; NULL: no TLS */
	/* By service id: the --exe path of that selector, else NULL (for the
	 * "instrumented: exec of PATH" log line). */
	const char *const *exe_paths;
	unsigned nexe_paths;
};

struct events *events__new(const struct events_opts *o);
void events__free(struct events *ev);
/* Wait up to timeout_ms for records, handle all that are there. 0 or -errno. */
int events__poll(struct events *ev, int timeout_ms);
/* Render the gauges that come from the kernel's maps, and self-metrics. */
int events__render(struct events *ev, struct strbuf *out);

#endif /* AION_EVENTS_H */
