// SPDX-License-Identifier: MIT
/* aion-agent: RED metrics of unmodified processes, from eBPF. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "aion.skel.h"
#include "aggregate.h"
#include "events.h"
#include "expo.h"
#include "loader.h"
#include "procinfo.h"
#include "targets.h"

#ifndef AION_VERSION
#define AION_VERSION "0.1.0"
#endif

#define MAX_SELECTORS 64

static const char usage[] =
"Usage: aion-agent [SELECTOR]... [OPTION]...\n"
"Measure the HTTP requests that unmodified processes serve, from eBPF, and\n"
"serve them as Prometheus metrics.\n"
"\n"
"Selectors (at least one; repeatable and combinable):\n"
"  --pid PID            trace this process and every process it forks\n"
"  --exe PATH           trace every process whose executable is this file,\n"
"                       running now or started later\n"
"  --all                trace every process on the host\n"
"\n"
"Options:\n"
"  --listen ADDR:PORT   where to serve /metrics, /healthz, /readyz\n"
"                       (default 0.0.0.0:9090; [::1]:9090 and :9090 work too)\n"
"  --service-name NAME  service_name label of every target (default: the\n"
"                       executable's base name, e.g. nginx)\n"
"  --max-routes N       distinct http_route values kept per service; the rest\n"
"                       are counted under http_route=\"/*\" (default 100)\n"
"  --max-connections N  connections tracked at once (default 16384)\n"
"  --verbose            print libbpf's messages (the verifier's log on failure)\n"
"  -h, --help           print this help and exit\n"
"  --version            print the version and exit\n"
"\n"
"Needs root (CAP_BPF, CAP_PERFMON, CAP_SYS_ADMIN) and a kernel with BTF.\n"
"Example: sudo aion-agent --exe /usr/sbin/nginx && curl -s localhost:9090/metrics\n";

struct config {
	int pids[MAX_SELECTORS];
	int npids;
	const char *exes[MAX_SELECTORS];
	int nexes;
	int all;
	const char *listen;
	const char *service_name;
	unsigned max_routes;
	unsigned max_connections;
	int verbose;
};

struct agent {
	struct aggregate *agg;
	struct events *ev;
};

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static int parse_uint(const char *s, unsigned long max, unsigned long *out)
{
	char *end;
	unsigned long v;

	if (!s || !*s || *s == '-' || *s == '+')
		return -EINVAL;
	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || *end || v > max)
		return -EINVAL;
	*out = v;
	return 0;
}

/* 0, or 2 after one line on stderr (usage error), or -1 for --help/--version. */
static int parse_args(int argc, char **argv, struct config *c)
{
	enum { O_PID = 256, O_EXE, O_ALL, O_LISTEN, O_SVC, O_ROUTES, O_CONNS, O_VERBOSE, O_VERSION };
	static const struct option opts[] = {
		{ "pid", required_argument, NULL, O_PID },
		{ "exe", required_argument, NULL, O_EXE },
		{ "all", no_argument, NULL, O_ALL },
		{ "listen", required_argument, NULL, O_LISTEN },
		{ "service-name", required_argument, NULL, O_SVC },
		{ "max-routes", required_argument, NULL, O_ROUTES },
		{ "max-connections", required_argument, NULL, O_CONNS },
		{ "verbose", no_argument, NULL, O_VERBOSE },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, O_VERSION },
		{},
	};
	struct sockaddr_storage ss;
	socklen_t sl;
	unsigned long v;
	int opt;

	c->listen = "0.0.0.0:9090";
	c->max_routes = 100;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		switch (opt) {
		case O_PID:
			if (parse_uint(optarg, INT_MAX, &v) || v == 0) {
				fprintf(stderr, "aion-agent: --pid '%s' is not a process id (a positive number)\n", optarg);
				return 2;
			}
			if (c->npids == MAX_SELECTORS) {
				fprintf(stderr, "aion-agent: at most %d --pid selectors\n", MAX_SELECTORS);
				return 2;
			}
			c->pids[c->npids++] = (int)v;
			break;
		case O_EXE:
			if (c->nexes == MAX_SELECTORS) {
				fprintf(stderr, "aion-agent: at most %d --exe selectors\n", MAX_SELECTORS);
				return 2;
			}
			c->exes[c->nexes++] = optarg;
			break;
		case O_ALL:
			c->all = 1;
			break;
		case O_LISTEN:
			if (expo__parse_listen(optarg, &ss, &sl)) {
				fprintf(stderr, "aion-agent: --listen '%s' is not ADDR:PORT "
						"(e.g. 0.0.0.0:9090, [::1]:9090, :9090)\n", optarg);
				return 2;
			}
			c->listen = optarg;
			break;
		case O_SVC: {
			const char *p;

			for (p = optarg; *p && *p >= 0x20 && *p <= 0x7e; p++)
				;
			if (!*optarg || strlen(optarg) > 63 || *p) {
				fprintf(stderr, "aion-agent: --service-name must be 1 to 63 printable ASCII characters\n");
				return 2;
			}
			c->service_name = optarg;
			break;
		}
		case O_ROUTES:
			if (parse_uint(optarg, 100000, &v) || v == 0) {
				fprintf(stderr, "aion-agent: --max-routes '%s' must be a number from 1 to 100000\n", optarg);
				return 2;
			}
			c->max_routes = (unsigned)v;
			break;
		case O_CONNS:
			if (parse_uint(optarg, 1 << 22, &v) || v < 64) {
				fprintf(stderr, "aion-agent: --max-connections '%s' must be a number from 64 to 4194304\n", optarg);
				return 2;
			}
			c->max_connections = (unsigned)v;
			break;
		case O_VERBOSE:
			c->verbose = 1;
			break;
		case 'h':
			fputs(usage, stdout);
			return -1;
		case O_VERSION:
			printf("aion-agent %s\n", AION_VERSION);
			return -1;
		case ':':
			fprintf(stderr, "aion-agent: %s needs a value (see --help)\n", argv[optind - 1]);
			return 2;
		default:
			fprintf(stderr, "aion-agent: unknown option '%s' (see --help)\n", argv[optind - 1]);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "aion-agent: unexpected argument '%s' (see --help)\n", argv[optind]);
		return 2;
	}
	if (!c->npids && !c->nexes && !c->all) {
		fprintf(stderr, "aion-agent: nothing to trace: give --pid PID, --exe PATH or --all (see --help)\n");
		return 2;
	}
	return 0;
}

/* Selectors that name something absent fail before anything is loaded. */
static int check_selectors(const struct config *c)
{
	struct stat st;
	int i;

	for (i = 0; i < c->npids; i++) {
		if (!procinfo__alive(c->pids[i])) {
			fprintf(stderr, "aion-agent: --pid %d: no such process\n", c->pids[i]);
			return -ESRCH;
		}
	}
	for (i = 0; i < c->nexes; i++) {
		if (stat(c->exes[i], &st)) {
			fprintf(stderr, "aion-agent: --exe %s: %s\n", c->exes[i], strerror(errno));
			return -errno;
		}
		if (!S_ISREG(st.st_mode)) {
			fprintf(stderr, "aion-agent: --exe %s: not a regular file\n", c->exes[i]);
			return -EINVAL;
		}
	}
	return 0;
}

static int render(struct strbuf *out, void *arg)
{
	struct agent *a = arg;
	int err;

	err = aggregate__render(a->agg, out);
	if (err)
		return err;
	if (a->ev)
		return events__render(a->ev, out);
	return 0;
}

int main(int argc, char **argv)
{
	struct config cfg = {};
	struct agent agent = {};
	struct agg_opts aopts = {};
	struct loader_opts lopts = {};
	struct expo_opts eopts = {};
	struct events_opts vopts = {};
	struct aion_bpf *skel = NULL;
	struct targets *tg = NULL;
	struct expo *expo = NULL;
	struct sigaction sa = {};
	__u32 svc;
	int err, i;

	err = parse_args(argc, argv, &cfg);
	if (err)
		return err < 0 ? 0 : err;
	if (check_selectors(&cfg))
		return 1;
	if (loader__preflight())
		return 1;

	/* A scrape builds a large body and frees it: keep such buffers in
	 * their own mappings so that the memory goes back to the system
	 * (glibc would otherwise raise its threshold and keep them). */
	mallopt(M_MMAP_THRESHOLD, 256 * 1024);
	mallopt(M_TRIM_THRESHOLD, 1024 * 1024);

	sa.sa_handler = on_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	aopts.max_routes_per_service = cfg.max_routes;
	agent.agg = aggregate__new(&aopts);
	if (!agent.agg) {
		fprintf(stderr, "aion-agent: cannot set up the aggregator: %s\n", strerror(errno));
		return 1;
	}
	/* Serve /healthz at once; /readyz turns 200 once targets are traced. */
	eopts.listen = cfg.listen;
	eopts.render = render;
	eopts.arg = &agent;
	expo = expo__start(&eopts);
	if (!expo) {
		err = -errno;
		goto cleanup;
	}

	lopts.trace_all = cfg.all;
	lopts.max_connections = cfg.max_connections;
	lopts.verbose = cfg.verbose;
	skel = loader__start(&lopts);
	if (!skel) {
		err = -errno;
		goto cleanup;
	}
	vopts.skel = skel;
	vopts.agg = agent.agg;
	vopts.service_name = cfg.service_name;
	agent.ev = events__new(&vopts);
	if (!agent.ev) {
		err = -errno;
		goto cleanup;
	}
	tg = targets__new(bpf_map__fd(skel->maps.targets), bpf_map__fd(skel->maps.target_bits),
			  bpf_map__max_entries(skel->maps.target_bits), bpf_map__fd(skel->maps.exes));
	if (!tg) {
		err = -errno;
		goto cleanup;
	}
	svc = cfg.service_name ? 1 : 0;
	for (i = 0; i < cfg.nexes; i++) {
		err = targets__add_exe(tg, cfg.exes[i], svc);
		if (err) {
			fprintf(stderr, "aion-agent: --exe %s: %s\n", cfg.exes[i], strerror(-err));
			goto cleanup;
		}
	}
	for (i = 0; i < cfg.npids; i++) {
		err = targets__add_pid(tg, cfg.pids[i], svc);
		if (err) {
			fprintf(stderr, "aion-agent: --pid %d: %s\n", cfg.pids[i],
				err == -ESRCH ? "no such process" : strerror(-err));
			goto cleanup;
		}
	}
	fprintf(stderr, "aion-agent: ready: tracing %s, metrics on http://%s/metrics\n",
		cfg.all ? "every process" : "the selected processes", cfg.listen);
	expo__set_ready(expo, 1);

	err = 0;
	while (!stop) {
		err = events__poll(agent.ev, 50);
		if (err) {
			fprintf(stderr, "aion-agent: reading the ring buffers failed: %s\n", strerror(-err));
			break;
		}
	}
	if (stop)
		fprintf(stderr, "aion-agent: stopping: programs detached\n");

cleanup:
	expo__set_ready(expo, 0);
	expo__stop(expo);
	/* Detach before freeing what the render callback reads. */
	loader__stop(skel);
	skel = NULL;
	events__free(agent.ev);
	targets__free(tg);
	aggregate__free(agent.agg);
	return err < 0 ? 1 : 0;
}
