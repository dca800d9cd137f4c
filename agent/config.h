/* SPDX-License-Identifier: MIT */
/* Settings from three layers: command-line flags over AION_* environment
 * variables over a config file (--config FILE). Every value is checked by
 * the same code whichever layer it comes from. */
#ifndef AION_CONFIG_H
#define AION_CONFIG_H

#include <stddef.h>

#define CONFIG_MAX_SELECTORS 64
#define CONFIG_ERR 256

enum selector_kind {
	SEL_PID = 1,
	SEL_EXE,
	SEL_PORT,
	SEL_ALL,
};

struct selector {
	enum selector_kind kind;
	int pid;            /* SEL_PID */
	unsigned port;      /* SEL_PORT */
	char *exe;          /* SEL_EXE */
	char *service_name; /* NULL: the global service_name, else the executable's */
};

#define CONFIG_MAX_SIZE_BUCKETS 32

struct config {
	struct selector sel[CONFIG_MAX_SELECTORS];
	int nsel;
	char *listen;       /* NULL: unset */
	char *service_name;
	char *k8s_log_dir;
	char *web_config;   /* --web-config FILE: TLS and basic auth of the endpoint */
	unsigned max_routes;      /* 0: unset */
	unsigned max_connections; /* 0: unset */
	double size_buckets[CONFIG_MAX_SIZE_BUCKETS]; /* body-size histogram bounds, bytes */
	unsigned nsize_buckets;   /* 0: unset */
	int tls;                  /* TLS-library uprobes: 0 unset, 1 on, -1 off */
	unsigned max_series;      /* label sets per metric family; 0: unset */
	int bpf_stats;            /* kernel BPF run-time statistics: 0 unset, 1 on, -1 off */
	unsigned long ring_buffer_size; /* bytes of the `events` ring buffer; 0: unset */
	int drop_caps;            /* --drop-caps: 0 unset, 1 on, -1 off */
};

#define CONFIG_RING_MIN (4096UL)
#define CONFIG_RING_MAX (1UL << 30)

/* One selector from its text value (as given to --pid, --exe, --port, or
 * "1" for all). 0, or -EINVAL with a message in err. */
int config__add_selector(struct config *c, enum selector_kind kind, const char *value,
			 const char *service_name, char *err, size_t n);
/* One setting by its file/env name (listen, service_name, max_routes,
 * max_connections, max_series, body_size_buckets, k8s_log_dir, tls, bpf_stats,
 * ring_buffer_size, web_config, drop_caps). 0, -ENOENT for an unknown name, or -EINVAL
 * with a message in err. */
int config__set(struct config *c, const char *key, const char *value, char *err, size_t n);
/* Parse a config file's text; name is used in messages ("FILE:LINE: ...").
 * 0, or -EINVAL with the message in err. */
int config__parse(struct config *c, const char *text, const char *name, char *err, size_t n);
/* Read and parse a config file. 0 or -errno with the message in err. */
int config__load(struct config *c, const char *path, char *err, size_t n);
/* The AION_* environment variables (see --help). 0 or -EINVAL + err. */
int config__from_env(struct config *c, char *err, size_t n);
/* Complete hi with lo: unset settings come from lo; lo's selectors are
 * taken only when hi has none. Moves what it takes (lo is left empty). */
void config__merge(struct config *hi, struct config *lo);
void config__free(struct config *c);
/* 0 when s is a valid service_name (1 to 63 printable ASCII characters). */
int config__check_name(const char *s);

#endif /* AION_CONFIG_H */
