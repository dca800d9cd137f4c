/* SPDX-License-Identifier: MIT */
/* The agent's own health that is not a kernel counter: build, process
 * usage, scrape time, and (with --bpf-stats) the kernel's run count and
 * run time of every loaded BPF program. */
#ifndef AION_SELFMETRICS_H
#define AION_SELFMETRICS_H

#include "strbuf.h"

struct bpf_object;
struct selfmetrics;

struct selfmetrics_opts {
	const char *version;
	const char *revision; /* NULL or "": "unknown" */
	/* Turn on the kernel's BPF run-time statistics for the agent's
	 * lifetime (BPF_ENABLE_STATS; needs CAP_SYS_ADMIN). */
	int bpf_stats;
};

/* NULL + errno; with bpf_stats, after one line on stderr when the kernel
 * refuses the statistics. */
struct selfmetrics *selfmetrics__new(const struct selfmetrics_opts *o);
/* The programs to report with --bpf-stats (NULL: none); set once loaded. */
void selfmetrics__set_object(struct selfmetrics *s, struct bpf_object *obj);
/* A /metrics body took this long to build: reported by the next scrape. */
void selfmetrics__scrape_done(struct selfmetrics *s, double seconds);
/* Appends the aion_agent_build_info, aion_agent_process_*,
 * aion_agent_scrape_duration_seconds and aion_agent_bpf_program_* families.
 * 0 or -ENOMEM. */
int selfmetrics__render(struct selfmetrics *s, struct strbuf *out);
/* Accepts NULL; turns the statistics off again. */
void selfmetrics__free(struct selfmetrics *s);

#endif /* AION_SELFMETRICS_H */
