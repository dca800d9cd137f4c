/* SPDX-License-Identifier: MIT */
/* The ring-buffer consumer: turns completed-request records into samples,
 * keeps the tgid -> service_name cache, and removes exited processes from
 * the kernel's maps. Runs on the main thread. */
#ifndef AION_EVENTS_H
#define AION_EVENTS_H

#include "aggregate.h"
#include "strbuf.h"

struct aion_bpf;
struct events;

struct events_opts {
	struct aion_bpf *skel;
	struct aggregate *agg;
	const char *service_name; /* service id 1; NULL: executable base name */
};

struct events *events__new(const struct events_opts *o);
void events__free(struct events *ev);
/* Wait up to timeout_ms for records, handle all that are there. 0 or -errno. */
int events__poll(struct events *ev, int timeout_ms);
/* Render the gauges that come from the kernel's maps, and self-metrics. */
int events__render(struct events *ev, struct strbuf *out);

#endif /* AION_EVENTS_H */
