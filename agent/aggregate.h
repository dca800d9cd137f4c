/* SPDX-License-Identifier: GPL-2.0 */
/* Label sets -> histograms, rendered in the Prometheus text format 0.0.4. */
#ifndef AION_AGGREGATE_H
#define AION_AGGREGATE_H

#include <stddef.h>

#include "strbuf.h"

struct aggregate;

/* Histogram families. */
enum agg_family {
	AGG_HTTP_SERVER = 0, /* http_server_request_duration_seconds (aggregate__http_server) */
	AGG_DB_CLIENT,       /* db_client_operation_duration_seconds */
	AGG_DB_SERVER,       /* db_server_operation_duration_seconds */
	AGG_HTTP_CLIENT,     /* http_client_request_duration_seconds (aggregate__http_client) */
	/* Body sizes, in bytes, made alongside the HTTP series of the same labels. */
	AGG_HTTP_SERVER_REQ_BODY,  /* http_server_request_body_size_bytes */
	AGG_HTTP_SERVER_RESP_BODY, /* http_server_response_body_size_bytes */
	AGG_HTTP_CLIENT_REQ_BODY,  /* http_client_request_body_size_bytes */
	AGG_HTTP_CLIENT_RESP_BODY, /* http_client_response_body_size_bytes */
	AGG_FAMILIES,
};

struct agg_opts {
	/* Upper bounds in seconds, strictly increasing and finite; NULL: the
	 * defaults 0.005 .. 10 of DESIGN.md. +Inf is implicit. */
	const double *buckets;
	size_t nbuckets;
	/* Upper bounds in bytes of the body-size histograms, likewise; NULL:
	 * 0, 32, 64, ... 8192. */
	const double *size_buckets;
	size_t nsize_buckets;
	/* Distinct http_route values per service_name; 0: 100. */
	unsigned max_routes_per_service;
	/* Label sets per duration family (HTTP server and client, database
	 * client and server; the body-size twins follow their HTTP series);
	 * 0: 10000. */
	unsigned max_family_series;
};

struct http_sample {
	const char *service;
	/* Labels rendered after service_name, already escaped and each with a
	 * leading comma (,container_id="..."); NULL or "" for none. */
	const char *identity;
	const char *method;
	unsigned status;	/* 0: no response; rendered as "" */
	const char *route;	/* normalised (route__normalize) */
	unsigned server_port;
	const char *scheme;
	const char *error_type;	/* "" on success */
	double seconds;
	unsigned body_flags;	/* AGG_BODY_*: which body sizes to observe */
	unsigned long long req_body, resp_body;
};

#define AGG_BODY_REQ  1 /* the request's body size is known */
#define AGG_BODY_RESP 2 /* a response ended: its body size is known */

/* NULL + errno (EINVAL for bad buckets, ENOMEM). o may be NULL. */
struct aggregate *aggregate__new(const struct agg_opts *o);
/* Accepts NULL. */
void aggregate__free(struct aggregate *a);
/* Adds one sample; O(1) and allocation-free for an existing label set.
 * NULL strings count as "". A new route beyond the service's budget goes to
 * the overflow route (slash, star) and counts in
 * aion_agent_series_overflow_total. */
void aggregate__http_server(struct aggregate *a, const struct http_sample *s);
/* Adds n samples of seconds to the series of family fam (not
 * AGG_HTTP_SERVER nor a body-size family) with this label block (escaped, without braces). Beyond
 * the family's budget samples are only counted in
 * aion_agent_series_overflow_total. */
void aggregate__observe(struct aggregate *a, unsigned fam, const char *labels, double seconds,
			unsigned n);
/* Adds one HTTP client sample to the series with this label block (escaped,
 * without braces), and its body sizes (body_flags: AGG_BODY_*). Same budget
 * as aggregate__observe. */
void aggregate__http_client(struct aggregate *a, const char *labels, double seconds,
			    unsigned body_flags, unsigned long long req_body,
			    unsigned long long resp_body);
/* Appends every family to out; 0 or -ENOMEM. Reads only: nothing resets. */
int aggregate__render(struct aggregate *a, struct strbuf *out);
/* Number of label sets held. */
unsigned long long aggregate__series(struct aggregate *a);
/* Samples sent to overflow (budget exhausted or out of memory). */
unsigned long long aggregate__overflow(struct aggregate *a);

/* Formats v the way Prometheus prints floats (Go's shortest 'g'):
 * "0.005", "1", "2.5", "1e+06", "+Inf". Returns snprintf's result. */
int aggregate__format_float(char *buf, size_t sz, double v);

#endif /* AION_AGGREGATE_H */
