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
#include <time.h>
#include <unistd.h>

#include <bpf/bpf.h>

#include "aion.skel.h"
#include "aggregate.h"
#include "config.h"
#include "events.h"
#include "expo.h"
#include "loader.h"
#include "privs.h"
#include "procinfo.h"
#include "procs.h"
#include "selfmetrics.h"
#include "targets.h"
#include "tls.h"
#include "webconfig.h"

#ifndef AION_VERSION
#define AION_VERSION "0.1.0"
#endif
#ifndef AION_REVISION
#define AION_REVISION ""
#endif

static const char usage[] =
"Usage: aion-agent [SELECTOR]... [OPTION]...\n"
"Measure the HTTP and database requests that unmodified processes serve and\n"
"make, from eBPF, and serve them as Prometheus metrics.\n"
"\n"
"Selectors (at least one, here, in AION_* variables or in --config; repeatable\n"
"and combinable):\n"
"  --pid PID            trace this process and every process it forks\n"
"  --exe PATH           trace every process whose executable is this file,\n"
"                       running now or started later; inside a container the\n"
"                       path is looked up in the process's own root\n"
"  --port N             trace every process listening on TCP port N, now or\n"
"                       later, and the processes it forks\n"
"  --all                trace every process on the host\n"
"\n"
"Options:\n"
"  --config FILE        settings and [target] sections (see README); flags\n"
"                       override AION_* variables, which override the file\n"
"  --listen ADDR:PORT   where to serve /metrics, /healthz, /readyz\n"
"                       (default 0.0.0.0:9090; [::1]:9090 and :9090 work too)\n"
"  --service-name NAME  service_name label of every target without its own\n"
"                       (default: the executable's base name, e.g. nginx)\n"
"  --max-routes N       distinct http_route values kept per service; the rest\n"
"                       are counted under http_route=\"/*\" (default 100)\n"
"  --max-series N       label sets kept per metric family (HTTP server, HTTP\n"
"                       client, database client, database server); samples of\n"
"                       new ones beyond are only counted (default 10000)\n"
"  --max-connections N  connections tracked at once (default 16384)\n"
"  --body-size-buckets LIST\n"
"                       bounds in bytes of the http_*_body_size_bytes\n"
"                       histograms, increasing, comma-separated (default\n"
"                       0,32,64,128,256,512,1024,2048,4096,8192)\n"
"  --ring-buffer-size BYTES\n"
"                       size of the kernel's ring buffer of completed\n"
"                       requests: a power of two from 4096 to 1G, K/M/G\n"
"                       suffixes (default 4M)\n"
"  --web-config FILE    TLS and basic auth of the endpoint, in Prometheus\n"
"                       exporter-toolkit's format (see README, Endpoints)\n"
"  --k8s-log-dir DIR    where kubelet's container log links name pods\n"
"                       (default /var/log/containers)\n"
"  --no-tls             do not attach uprobes to TLS libraries (OpenSSL,\n"
"                       GnuTLS): HTTPS and TLS database traffic is then not\n"
"                       measured (default: TLS is traced)\n"
"  --bpf-stats          export the kernel's run count and run time of each BPF\n"
"                       program (adds two clock reads to every run; needs\n"
"                       CAP_SYS_ADMIN)\n"
"  --drop-caps          once attached and serving, keep only the capabilities\n"
"                       later work needs (see README \"Privileges\")\n"
"  --verbose            print libbpf's messages (the verifier's log on failure)\n"
"  -h, --help           print this help and exit\n"
"  --version            print the version and exit\n"
"\n"
"Environment: AION_CONFIG, AION_PID, AION_EXE, AION_PORT (comma-separated),\n"
"AION_ALL=1, AION_LISTEN, AION_SERVICE_NAME, AION_MAX_ROUTES,\n"
"AION_MAX_SERIES, AION_MAX_CONNECTIONS, AION_BODY_SIZE_BUCKETS, AION_K8S_LOG_DIR,\n"
"AION_TLS=off, AION_BPF_STATS=on, AION_RING_BUFFER_SIZE, AION_WEB_CONFIG,\n"
"AION_DROP_CAPS=1.\n"
"\n"
"Needs root, or CAP_BPF, CAP_PERFMON, CAP_SYS_ADMIN (TLS uprobes), CAP_SYS_PTRACE\n"
"and CAP_DAC_READ_SEARCH (+ CAP_SETPCAP for --drop-caps), and a kernel with BTF.\n"
"Example: sudo aion-agent --exe /usr/sbin/nginx && curl -s localhost:9090/metrics\n";

struct options {
	struct config cfg;   /* flags, then completed from env and file */
	const char *config_path;
	int verbose;
	int all;
	struct webconfig web;
	char *tls_cert, *tls_key;	/* PEM texts of web.cert_file, key_file */
};

struct agent {
	struct aggregate *agg;
	struct events *ev;
	struct procs *procs;
	struct selfmetrics *self;
};

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

/* 0, or 2 after one line on stderr (usage error), or -1 for --help/--version. */
/* "max_routes '0' must ..." -> "--max-routes '0' must ...": name the flag. */
static void flag_error(const char *err)
{
	char buf[CONFIG_ERR];
	size_t i;

	snprintf(buf, sizeof(buf), "%s", err);
	for (i = 0; buf[i] && buf[i] != ' '; i++)
		if (buf[i] == '_')
			buf[i] = '-';
	fprintf(stderr, "aion-agent: --%s\n", buf);
}

static int parse_args(int argc, char **argv, struct options *o)
{
	enum { O_PID = 256, O_EXE, O_PORT, O_ALL, O_CONFIG, O_LISTEN, O_SVC, O_ROUTES, O_CONNS,
	       O_K8S, O_SIZES, O_SERIES, O_RING, O_WEB, O_VERBOSE, O_VERSION, O_NO_TLS, O_BPF_STATS,
	       O_DROP_CAPS };
	static const struct option opts[] = {
		{ "pid", required_argument, NULL, O_PID },
		{ "exe", required_argument, NULL, O_EXE },
		{ "port", required_argument, NULL, O_PORT },
		{ "all", no_argument, NULL, O_ALL },
		{ "config", required_argument, NULL, O_CONFIG },
		{ "listen", required_argument, NULL, O_LISTEN },
		{ "service-name", required_argument, NULL, O_SVC },
		{ "max-routes", required_argument, NULL, O_ROUTES },
		{ "max-connections", required_argument, NULL, O_CONNS },
		{ "k8s-log-dir", required_argument, NULL, O_K8S },
		{ "body-size-buckets", required_argument, NULL, O_SIZES },
		{ "ring-buffer-size", required_argument, NULL, O_RING },
		{ "web-config", required_argument, NULL, O_WEB },
		{ "verbose", no_argument, NULL, O_VERBOSE },
		{ "no-tls", no_argument, NULL, O_NO_TLS },
		{ "max-series", required_argument, NULL, O_SERIES },
		{ "bpf-stats", no_argument, NULL, O_BPF_STATS },
		{ "drop-caps", no_argument, NULL, O_DROP_CAPS },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, O_VERSION },
		{},
	};
	static const char *const set_keys[] = {
		[O_LISTEN - O_LISTEN] = "listen", [O_SVC - O_LISTEN] = "service_name",
		[O_ROUTES - O_LISTEN] = "max_routes", [O_CONNS - O_LISTEN] = "max_connections",
		[O_K8S - O_LISTEN] = "k8s_log_dir", [O_SIZES - O_LISTEN] = "body_size_buckets",
		[O_SERIES - O_LISTEN] = "max_series",
		[O_RING - O_LISTEN] = "ring_buffer_size",
		[O_WEB - O_LISTEN] = "web_config",
	};
	char err[CONFIG_ERR];
	int opt, rc;

	opterr = 0;
	while ((opt = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		switch (opt) {
		case O_PID:
		case O_EXE:
		case O_PORT:
		case O_ALL:
			rc = config__add_selector(&o->cfg, opt == O_PID ? SEL_PID : opt == O_EXE ? SEL_EXE :
					      opt == O_PORT ? SEL_PORT : SEL_ALL,
					      opt == O_ALL ? NULL : optarg, NULL, err, sizeof(err));
			if (rc) {
				flag_error(rc == -ENOMEM ? "out of memory" : err);
				return 2;
			}
			break;
		case O_CONFIG:
			o->config_path = optarg;
			break;
		case O_LISTEN:
		case O_SVC:
		case O_ROUTES:
		case O_CONNS:
		case O_K8S:
		case O_SIZES:
		case O_SERIES:
		case O_RING:
		case O_WEB:
			rc = config__set(&o->cfg, set_keys[opt - O_LISTEN], optarg, err, sizeof(err));
			if (rc) {
				flag_error(rc == -ENOMEM ? "out of memory" : err);
				return 2;
			}
			break;
		case O_VERBOSE:
			o->verbose = 1;
			break;
		case O_NO_TLS:
			o->cfg.tls = -1;
			break;
		case O_BPF_STATS:
			o->cfg.bpf_stats = 1;
			break;
		case O_DROP_CAPS:
			o->cfg.drop_caps = 1;
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
	return 0;
}

/* Complete the flags with the environment and the config file. 0 or 2. */
static int load_layers(struct options *o)
{
	struct config env = {}, file = {};
	char err[CONFIG_ERR];
	const char *path = o->config_path;
	int rc;

	rc = config__from_env(&env, err, sizeof(err));
	if (rc) {
		fprintf(stderr, "aion-agent: %s\n", rc == -ENOMEM ? "out of memory" : err);
		goto fail;
	}
	if (!path)
		path = getenv("AION_CONFIG");
	if (path && *path) {
		rc = config__load(&file, path, err, sizeof(err));
		if (rc) {
			fprintf(stderr, "aion-agent: config %s\n", rc == -ENOMEM ? "out of memory" : err);
			goto fail;
		}
	}
	config__merge(&env, &file);
	config__merge(&o->cfg, &env);
	config__free(&env);
	config__free(&file);
	if (!o->cfg.nsel) {
		fprintf(stderr, "aion-agent: nothing to trace: give --pid PID, --exe PATH, --port N or --all "
				"(or a [target] in --config; see --help)\n");
		return 2;
	}
	return 0;
fail:
	config__free(&env);
	config__free(&file);
	return 2;
}

/* --web-config: 0; 2 when the file does not parse (a usage error); 1 when
 * its certificate or key cannot be read. */
static int load_web(struct options *o)
{
	char err[WEBCONFIG_ERR];
	int rc;

	if (!o->cfg.web_config)
		return 0;
	rc = webconfig__load(&o->web, o->cfg.web_config, err, sizeof(err));
	if (rc) {
		fprintf(stderr, "aion-agent: web config %s\n", rc == -ENOMEM ? "out of memory" : err);
		return 2;
	}
	if (!o->web.cert_file)
		return 0;
	o->tls_cert = webconfig__read_pem(o->web.cert_file, "cert_file", err, sizeof(err));
	if (o->tls_cert)
		o->tls_key = webconfig__read_pem(o->web.key_file, "key_file", err, sizeof(err));
	if (!o->tls_key) {
		fprintf(stderr, "aion-agent: web config %s: %s\n", o->cfg.web_config, err);
		return 1;
	}
	return 0;
}

static void options__free(struct options *o)
{
	config__free(&o->cfg);
	webconfig__free(&o->web);
	free(o->tls_cert);
	if (o->tls_key)
		explicit_bzero(o->tls_key, strlen(o->tls_key));
	free(o->tls_key);
}

/* Selectors that name something absent fail before anything is loaded. */
static int check_selectors(struct options *o)
{
	struct stat st;
	int i;

	for (i = 0; i < o->cfg.nsel; i++) {
		struct selector *s = &o->cfg.sel[i];

		if (s->kind == SEL_ALL)
			o->all = 1;
		if (s->kind == SEL_PID && !procinfo__alive(s->pid)) {
			fprintf(stderr, "aion-agent: --pid %d: no such process\n", s->pid);
			return -ESRCH;
		}
		if (s->kind != SEL_EXE)
			continue;
		if (s->exe[0] != '/') {
			fprintf(stderr, "aion-agent: --exe %s: give an absolute path (it is also looked up "
					"inside containers)\n", s->exe);
			return -EINVAL;
		}
		if (stat(s->exe, &st) == 0 && !S_ISREG(st.st_mode)) {
			fprintf(stderr, "aion-agent: --exe %s: not a regular file\n", s->exe);
			return -EINVAL;
		}
	}
	return 0;
}

static double now_seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int render(struct strbuf *out, void *arg)
{
	struct agent *a = arg;
	double t0 = now_seconds();
	int err;

	err = aggregate__render(a->agg, out);
	if (!err)
		err = procs__render(a->procs, out);
	if (!err && a->ev)
		err = events__render(a->ev, out);
	if (!err)
		err = selfmetrics__render(a->self, out);
	selfmetrics__scrape_done(a->self, now_seconds() - t0);
	return err;
}

int main(int argc, char **argv)
{
	struct options opt = {};
	struct config *cfg = &opt.cfg;
	struct agent agent = {};
	struct agg_opts aopts = {};
	struct loader_opts lopts = {};
	struct expo_opts eopts = {};
	struct events_opts vopts = {};
	struct procs_opts popts = {};
	struct selfmetrics_opts sopts = { .version = AION_VERSION, .revision = AION_REVISION };
	struct targets_maps tmaps = {};
	const char *names[CONFIG_MAX_SELECTORS + 1] = {};
	const char *exe_paths[CONFIG_MAX_SELECTORS + 1] = {};
	struct aion_bpf *skel = NULL;
	struct targets *tg = NULL;
	struct tls *tls = NULL;
	struct expo *expo = NULL;
	struct sigaction sa = {};
	struct privs_mode pmode = {};
	int err, i;

	err = parse_args(argc, argv, &opt);
	if (!err)
		err = load_layers(&opt);
	if (!err)
		err = load_web(&opt);
	if (err) {
		options__free(&opt);
		return err < 0 ? 0 : err;
	}
	pmode.tls = cfg->tls >= 0;
	pmode.drop = cfg->drop_caps > 0;
	if (check_selectors(&opt) || privs__check(&pmode) || loader__preflight()) {
		options__free(&opt);
		return 1;
	}
	if (!cfg->listen)
		cfg->listen = strdup("0.0.0.0:9090");
	if (!cfg->listen) {
		options__free(&opt);
		return 1;
	}

	/* A scrape builds a large body and frees it: keep such buffers in
	 * their own mappings so that the memory goes back to the system
	 * (glibc would otherwise raise its threshold and keep them). */
	mallopt(M_MMAP_THRESHOLD, 256 * 1024);
	mallopt(M_TRIM_THRESHOLD, 1024 * 1024);

	sa.sa_handler = on_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	/* Service id i + 1 is selector i's (children inherit it in the
	 * kernel); 0 is for processes no selector named (--all). */
	for (i = 0; i < cfg->nsel; i++) {
		names[i + 1] = cfg->sel[i].service_name;
		exe_paths[i + 1] = cfg->sel[i].exe;
	}
	popts.names = names;
	popts.nnames = cfg->nsel + 1;
	popts.default_name = cfg->service_name;
	popts.k8s_log_dir = cfg->k8s_log_dir;
	popts.log = !opt.all;
	popts.max_services = cfg->max_series ? cfg->max_series : 10000;
	agent.procs = procs__new(&popts);
	aopts.max_routes_per_service = cfg->max_routes ? cfg->max_routes : 100;
	aopts.max_family_series = cfg->max_series ? cfg->max_series : 10000;
	if (cfg->nsize_buckets) {
		aopts.size_buckets = cfg->size_buckets;
		aopts.nsize_buckets = cfg->nsize_buckets;
	}
	agent.agg = aggregate__new(&aopts);
	if (!agent.agg || !agent.procs) {
		fprintf(stderr, "aion-agent: cannot set up the aggregator: %s\n", strerror(errno));
		err = -ENOMEM;
		goto cleanup;
	}
	sopts.bpf_stats = cfg->bpf_stats > 0;
	agent.self = selfmetrics__new(&sopts);
	if (!agent.self) {
		if (!sopts.bpf_stats)
			fprintf(stderr, "aion-agent: out of memory\n");
		err = -ENOMEM;
		goto cleanup;
	}
	/* Serve /healthz at once; /readyz turns 200 once targets are traced. */
	eopts.listen = cfg->listen;
	eopts.render = render;
	eopts.arg = &agent;
	eopts.tls_cert = opt.tls_cert;
	eopts.tls_key = opt.tls_key;
	eopts.users = opt.web.users;
	eopts.nusers = opt.web.nusers;
	expo = expo__start(&eopts);
	if (!expo) {
		err = -errno;
		goto cleanup;
	}

	lopts.trace_all = opt.all;
	lopts.max_connections = cfg->max_connections;
	lopts.ring_buffer_size = cfg->ring_buffer_size;
	lopts.verbose = opt.verbose;
	lopts.no_tls = cfg->tls < 0;
	skel = loader__start(&lopts);
	if (!skel) {
		err = -errno;
		goto cleanup;
	}
	selfmetrics__set_object(agent.self, skel->obj);
	tmaps.targets_fd = bpf_map__fd(skel->maps.targets);
	tmaps.bits_fd = bpf_map__fd(skel->maps.target_bits);
	tmaps.nwords = bpf_map__max_entries(skel->maps.target_bits);
	tmaps.exes_fd = bpf_map__fd(skel->maps.exes);
	tmaps.ports_fd = bpf_map__fd(skel->maps.ports);
	tmaps.report_execs = &skel->bss->report_execs;
	tg = targets__new(&tmaps, agent.procs);
	if (!tg) {
		err = -errno;
		goto cleanup;
	}
	if (cfg->tls >= 0) {
		tls = tls__new(skel);
		if (!tls) {
			err = -errno;
			goto cleanup;
		}
	}
	vopts.tls = tls;
	vopts.skel = skel;
	vopts.agg = agent.agg;
	vopts.procs = agent.procs;
	vopts.targets = tg;
	vopts.exe_paths = exe_paths;
	vopts.nexe_paths = cfg->nsel + 1;
	agent.ev = events__new(&vopts);
	if (!agent.ev) {
		err = -errno;
		goto cleanup;
	}
	for (i = 0; i < cfg->nsel; i++) {
		struct selector *s = &cfg->sel[i];

		switch (s->kind) {
		case SEL_EXE: {
			__u32 sid = i + 1;
			__u8 one = 1;

			/* Its processes leave the set when they exec another file. */
			bpf_map_update_elem(bpf_map__fd(skel->maps.exe_services), &sid, &one, BPF_ANY);
			err = targets__add_exe(tg, s->exe, i + 1);
			if (err)
				fprintf(stderr, "aion-agent: --exe %s: %s\n", s->exe, strerror(-err));
			break;
		}
		case SEL_PID:
			err = targets__add_pid(tg, s->pid, i + 1);
			if (err)
				fprintf(stderr, "aion-agent: --pid %d: %s\n", s->pid,
					err == -ESRCH ? "no such process" : strerror(-err));
			break;
		case SEL_PORT:
			err = targets__add_port(tg, s->port, i + 1);
			if (err)
				fprintf(stderr, "aion-agent: --port %u: %s\n", s->port, strerror(-err));
			break;
		default:
			err = 0;
			break;
		}
		if (err)
			goto cleanup;
	}
	if (tls) {
		/* TLS libraries of what runs now (later ones are reported by
		 * the kernel as they are mapped), and --exe binaries with TLS
		 * linked in. */
		for (i = 0; i < cfg->nsel; i++)
			if (cfg->sel[i].kind == SEL_EXE)
				tls__add_exe(tls, cfg->sel[i].exe);
		tls__scan_targets(tls, opt.all);
	}
	/* Everything that needs more than the kept set is done. */
	if (pmode.drop) {
		err = privs__drop(&pmode);
		if (err)
			goto cleanup;
	}
	fprintf(stderr, "aion-agent: ready: tracing %s, metrics on %s://%s/metrics%s\n",
		opt.all ? "every process" : "the selected processes", opt.tls_cert ? "https" : "http",
		cfg->listen, opt.web.nusers ? " (basic auth)" : "");
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
	tls__free(tls);
	selfmetrics__set_object(agent.self, NULL);
	loader__stop(skel);
	skel = NULL;
	events__free(agent.ev);
	targets__free(tg);
	aggregate__free(agent.agg);
	procs__free(agent.procs);
	selfmetrics__free(agent.self);
	options__free(&opt);
	return err < 0 ? 1 : 0;
}
