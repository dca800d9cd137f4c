// SPDX-License-Identifier: MIT
/* The agent's own health: build, process usage, scrape time, BPF run time. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "procinfo.h"
#include "selfmetrics.h"

struct selfmetrics {
	char *build_labels;      /* version="...",revision="...",... (escaped) */
	double start_time;       /* Unix time the agent started */
	int stats_fd;            /* BPF_ENABLE_STATS: held open while enabled; -1 */
	struct bpf_object *obj;
	unsigned long long scrape_ns; /* the last /metrics build; atomics */
	int scraped;
};

static char *build_labels(const struct selfmetrics_opts *o)
{
	struct utsname u;
	struct strbuf sb;
	const char *rev = o && o->revision && *o->revision ? o->revision : "unknown";

	strbuf__init(&sb);
	if (uname(&u))
		snprintf(u.release, sizeof(u.release), "unknown");
	strbuf__puts(&sb, "version=\"");
	strbuf__label_value(&sb, o && o->version ? o->version : "unknown");
	strbuf__puts(&sb, "\",revision=\"");
	strbuf__label_value(&sb, rev);
	strbuf__printf(&sb, "\",libbpf_version=\"%u.%u\",kernel_release=\"", libbpf_major_version(),
		       libbpf_minor_version());
	strbuf__label_value(&sb, u.release);
	strbuf__puts(&sb, "\"");
	return strbuf__detach(&sb, NULL);
}

struct selfmetrics *selfmetrics__new(const struct selfmetrics_opts *o)
{
	struct selfmetrics *s = calloc(1, sizeof(*s));
	struct timespec ts;

	if (!s)
		return NULL;
	s->stats_fd = -1;
	s->build_labels = build_labels(o);
	if (!s->build_labels) {
		free(s);
		errno = ENOMEM;
		return NULL;
	}
	clock_gettime(CLOCK_REALTIME, &ts);
	s->start_time = ts.tv_sec + ts.tv_nsec / 1e9;
	if (o && o->bpf_stats) {
		s->stats_fd = bpf_enable_stats(BPF_STATS_RUN_TIME);
		if (s->stats_fd < 0) {
			int err = -s->stats_fd;

			fprintf(stderr, "aion-agent: --bpf-stats: the kernel refused to count BPF run "
					"time: %s (it needs CAP_SYS_ADMIN; or leave --bpf-stats out)\n",
				strerror(err));
			free(s->build_labels);
			free(s);
			errno = err;
			return NULL;
		}
	}
	return s;
}

void selfmetrics__set_object(struct selfmetrics *s, struct bpf_object *obj)
{
	if (s)
		s->obj = obj;
}

void selfmetrics__scrape_done(struct selfmetrics *s, double seconds)
{
	if (!s || seconds < 0)
		return;
	__atomic_store_n(&s->scrape_ns, (unsigned long long)(seconds * 1e9), __ATOMIC_RELAXED);
	__atomic_store_n(&s->scraped, 1, __ATOMIC_RELEASE);
}

static void render_process(struct strbuf *out, const struct selfmetrics *s)
{
	struct proc_stat st;
	struct rlimit rl;
	long tck = sysconf(_SC_CLK_TCK), page = sysconf(_SC_PAGESIZE);
	long fds = procinfo__count_fds(getpid());

	if (procinfo__stat(getpid(), &st) == 0 && tck > 0 && page > 0)
		strbuf__printf(out,
			"# HELP aion_agent_process_cpu_seconds_total CPU time the agent has used (user and system).\n"
			"# TYPE aion_agent_process_cpu_seconds_total counter\n"
			"aion_agent_process_cpu_seconds_total %.2f\n"
			"# HELP aion_agent_process_resident_memory_bytes Resident memory of the agent.\n"
			"# TYPE aion_agent_process_resident_memory_bytes gauge\n"
			"aion_agent_process_resident_memory_bytes %lld\n"
			"# HELP aion_agent_process_threads Threads of the agent.\n"
			"# TYPE aion_agent_process_threads gauge\n"
			"aion_agent_process_threads %ld\n",
			(double)(st.user_ticks + st.system_ticks) / tck, (long long)st.rss_pages * page,
			st.threads);
	if (fds >= 0)
		strbuf__printf(out,
			"# HELP aion_agent_process_open_fds Open file descriptors of the agent.\n"
			"# TYPE aion_agent_process_open_fds gauge\n"
			"aion_agent_process_open_fds %ld\n", fds);
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
		strbuf__printf(out,
			"# HELP aion_agent_process_max_fds Open file descriptor limit of the agent.\n"
			"# TYPE aion_agent_process_max_fds gauge\n"
			"aion_agent_process_max_fds %llu\n", (unsigned long long)rl.rlim_cur);
	strbuf__printf(out,
		"# HELP aion_agent_process_start_time_seconds When the agent started, in seconds since the epoch.\n"
		"# TYPE aion_agent_process_start_time_seconds gauge\n"
		"aion_agent_process_start_time_seconds %.3f\n", s->start_time);
}

/* Kernel statistics of each loaded program. A program reached by a tail
 * call is not entered through the kernel's accounting: its runs and time
 * are counted in the program that called it. */
static void render_bpf(struct strbuf *out, const struct selfmetrics *s)
{
	struct bpf_program *p;
	struct strbuf runs, secs;

	strbuf__init(&runs);
	strbuf__init(&secs);
	bpf_object__for_each_program(p, s->obj) {
		struct bpf_prog_info info;
		__u32 len = sizeof(info);
		int fd = bpf_program__fd(p);

		memset(&info, 0, sizeof(info));
		if (fd < 0 || bpf_obj_get_info_by_fd(fd, &info, &len))
			continue;
		strbuf__printf(&runs, "aion_agent_bpf_program_runs_total{program=\"%s\"} %llu\n",
			       bpf_program__name(p), (unsigned long long)info.run_cnt);
		strbuf__printf(&secs, "aion_agent_bpf_program_run_seconds_total{program=\"%s\"} %.9f\n",
			       bpf_program__name(p), info.run_time_ns / 1e9);
	}
	strbuf__puts(out, "# HELP aion_agent_bpf_program_runs_total Runs of each BPF program (--bpf-stats; "
			  "tail-called programs count in their caller).\n"
			  "# TYPE aion_agent_bpf_program_runs_total counter\n");
	strbuf__append(out, runs.buf, runs.len);
	strbuf__puts(out, "# HELP aion_agent_bpf_program_run_seconds_total Time spent in each BPF program "
			  "(--bpf-stats; tail-called programs count in their caller).\n"
			  "# TYPE aion_agent_bpf_program_run_seconds_total counter\n");
	strbuf__append(out, secs.buf, secs.len);
	if (runs.oom || secs.oom)
		out->oom = 1;
	strbuf__free(&runs);
	strbuf__free(&secs);
}

int selfmetrics__render(struct selfmetrics *s, struct strbuf *out)
{
	strbuf__printf(out,
		"# HELP aion_agent_build_info The agent's version and build; always 1.\n"
		"# TYPE aion_agent_build_info gauge\n"
		"aion_agent_build_info{%s} 1\n", s->build_labels);
	render_process(out, s);
	if (__atomic_load_n(&s->scraped, __ATOMIC_ACQUIRE))
		strbuf__printf(out,
			"# HELP aion_agent_scrape_duration_seconds Time the previous /metrics body took to build.\n"
			"# TYPE aion_agent_scrape_duration_seconds gauge\n"
			"aion_agent_scrape_duration_seconds %.6f\n",
			__atomic_load_n(&s->scrape_ns, __ATOMIC_RELAXED) / 1e9);
	if (s->stats_fd >= 0 && s->obj)
		render_bpf(out, s);
	return out->oom ? -ENOMEM : 0;
}

void selfmetrics__free(struct selfmetrics *s)
{
	if (!s)
		return;
	if (s->stats_fd >= 0)
		close(s->stats_fd);
	free(s->build_labels);
	free(s);
}
