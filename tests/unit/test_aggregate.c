// SPDX-License-Identifier: GPL-2.0
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aggregate.h"
#include "strbuf.h"

#define UNUSED __attribute__((unused))
#define FAMILY "http_server_request_duration_seconds"

/*
 * A small parser for the Prometheus text format 0.0.4, written for the test
 * and independent of the agent's code:
 *
 *   # HELP <name> <text>
 *   # TYPE <name> counter|gauge|histogram|...
 *   <name>[{<label>="<escaped value>",...}] <value>
 */
#define MAX_LABELS 12

struct psample {
	char name[128];
	int nlabels;
	char key[MAX_LABELS][64];
	char val[MAX_LABELS][512];
	char group[2048];	/* every label but le, for grouping */
	char le[64];		/* raw le text, "" if none */
	double value;
};

struct pfamily {
	char name[128];
	char type[32];
	int help, typed;
};

struct parsed {
	struct psample *s;
	size_t n, cap;
	struct pfamily fam[32];
	size_t nfam;
};

static struct pfamily *family_get(struct parsed *p, const char *name)
{
	size_t i;

	for (i = 0; i < p->nfam; i++)
		if (!strcmp(p->fam[i].name, name))
			return &p->fam[i];
	assert_true(p->nfam < 32);
	memset(&p->fam[p->nfam], 0, sizeof(p->fam[0]));
	snprintf(p->fam[p->nfam].name, sizeof(p->fam[0].name), "%s", name);
	return &p->fam[p->nfam++];
}

/* The family a sample belongs to: histograms own _bucket, _sum, _count. */
static struct pfamily *family_of(struct parsed *p, const char *name)
{
	static const char *sfx[] = { "_bucket", "_sum", "_count" };
	char base[128];
	size_t i, n = strlen(name), k;

	for (i = 0; i < p->nfam; i++)
		if (!strcmp(p->fam[i].name, name))
			return &p->fam[i];
	for (k = 0; k < 3; k++) {
		size_t sl = strlen(sfx[k]);

		if (n > sl && !strcmp(name + n - sl, sfx[k])) {
			snprintf(base, sizeof(base), "%.*s", (int)(n - sl), name);
			for (i = 0; i < p->nfam; i++)
				if (!strcmp(p->fam[i].name, base) &&
				    !strcmp(p->fam[i].type, "histogram"))
					return &p->fam[i];
		}
	}
	return NULL;
}

static void parse_line(struct parsed *p, const char *line)
{
	struct psample *s;
	const char *c = line;
	char *end;
	size_t n;

	if (line[0] == '#') {
		char kind[8], name[128], rest[256] = "";
		size_t rl;
		struct pfamily *f;

		assert_true(sscanf(line, "# %7s %127s %255[^\n]", kind, name,
				   rest) >= 2);
		f = family_get(p, name);
		if (!strcmp(kind, "HELP")) {
			assert_int_equal(f->help, 0);	/* once per family */
			f->help = 1;
		} else {
			assert_string_equal(kind, "TYPE");
			assert_int_equal(f->typed, 0);
			f->typed = 1;
			rl = strlen(rest);
			assert_true(rl < sizeof(f->type));
			memcpy(f->type, rest, rl + 1);
		}
		return;
	}
	if (p->n == p->cap) {
		p->cap = p->cap ? p->cap * 2 : 256;
		p->s = realloc(p->s, p->cap * sizeof(*p->s));
		assert_non_null(p->s);
	}
	s = &p->s[p->n++];
	memset(s, 0, sizeof(*s));
	n = strcspn(c, "{ ");
	assert_true(n > 0 && n < sizeof(s->name));
	memcpy(s->name, c, n);
	c += n;
	if (*c == '{') {
		c++;
		while (*c != '}') {
			char *v;
			size_t k;

			assert_true(s->nlabels < MAX_LABELS);
			n = strcspn(c, "=");
			assert_true(n > 0 && n < 64);
			memcpy(s->key[s->nlabels], c, n);
			c += n;
			assert_int_equal(*c++, '=');
			assert_int_equal(*c++, '"');
			v = s->val[s->nlabels];
			for (k = 0; *c != '"'; k++) {
				assert_true(k < 511);
				assert_true(*c != '\0' && *c != '\n');
				if (*c == '\\') {
					c++;
					switch (*c) {
					case '\\': v[k] = '\\'; break;
					case '"': v[k] = '"'; break;
					case 'n': v[k] = '\n'; break;
					default: fail_msg("bad escape \\%c", *c);
					}
					c++;
				} else {
					v[k] = *c++;
				}
			}
			v[k] = '\0';
			c++;
			if (!strcmp(s->key[s->nlabels], "le")) {
				snprintf(s->le, sizeof(s->le), "%s", v);
			} else {
				size_t gl = strlen(s->group);
				int w = snprintf(s->group + gl,
						 sizeof(s->group) - gl, "%s=%s;",
						 s->key[s->nlabels], v);

				assert_true(w > 0 &&
					    (size_t)w < sizeof(s->group) - gl);
			}
			s->nlabels++;
			if (*c == ',')
				c++;
			else
				assert_int_equal(*c, '}');
		}
		c++;
	}
	assert_int_equal(*c++, ' ');
	if (!strcmp(c, "+Inf"))
		s->value = INFINITY;
	else {
		s->value = strtod(c, &end);
		assert_true(end != c && *end == '\0');
	}
	/* Samples come after their family's TYPE line. */
	assert_non_null(family_of(p, s->name));
}

static void parse(struct parsed *p, const char *text)
{
	char *copy = strdup(text), *line, *save = NULL;

	memset(p, 0, sizeof(*p));
	assert_non_null(copy);
	/* Every line ends in \n, none empty. */
	assert_true(!*text || text[strlen(text) - 1] == '\n');
	assert_null(strstr(text, "\n\n"));
	for (line = strtok_r(copy, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save))
		parse_line(p, line);
	free(copy);
}

static void parsed_free(struct parsed *p)
{
	free(p->s);
}

static double le_value(const char *le)
{
	return !strcmp(le, "+Inf") ? INFINITY : strtod(le, NULL);
}

/* Checks every histogram group: label order, cumulative buckets, le strictly
 * increasing to +Inf, +Inf == _count, one _sum. Returns the group count. */
static size_t check_histograms(struct parsed *p, const char *family)
{
	static const char *order[] = {
		"service_name", "http_request_method",
		"http_response_status_code", "http_route", "url_scheme",
		"server_port", "error_type", "le",
	};
	char bucket[160], sum[160], count[160];
	size_t i, j, groups = 0;

	snprintf(bucket, sizeof(bucket), "%s_bucket", family);
	snprintf(sum, sizeof(sum), "%s_sum", family);
	snprintf(count, sizeof(count), "%s_count", family);
	for (i = 0; i < p->n; i++) {
		struct psample *first = &p->s[i];
		double prev_le = -INFINITY, prev_v = 0, inf = -1;
		int nsum = 0, ncount = 0, seen = 0;

		if (strcmp(first->name, bucket))
			continue;
		/* Only start at a group's first bucket. */
		for (j = 0; j < i; j++)
			if (!strcmp(p->s[j].name, bucket) &&
			    !strcmp(p->s[j].group, first->group))
				break;
		if (j < i)
			continue;
		groups++;
		for (j = 0; j < p->n; j++) {
			struct psample *s = &p->s[j];
			int k;

			if (strcmp(s->group, first->group))
				continue;
			if (!strcmp(s->name, bucket)) {
				double le = le_value(s->le);

				/* HTTP series without identity labels: the
				 * documented order; any series: le last. */
				if (!strcmp(family, FAMILY) && !strstr(s->group, "container_id=")) {
					assert_int_equal(s->nlabels, 8);
					for (k = 0; k < 8; k++)
						assert_string_equal(s->key[k], order[k]);
				}
				assert_string_equal(s->key[s->nlabels - 1], "le");
				assert_true(le > prev_le);
				assert_true(s->value >= prev_v);
				assert_true(s->value == floor(s->value));
				prev_le = le;
				prev_v = s->value;
				if (isinf(le))
					inf = s->value;
				seen++;
			} else if (!strcmp(s->name, sum)) {
				assert_int_equal(s->nlabels, first->nlabels - 1);
				nsum++;
			} else if (!strcmp(s->name, count)) {
				assert_int_equal(s->nlabels, first->nlabels - 1);
				if (!strcmp(family, FAMILY) && !strstr(s->group, "container_id="))
					for (k = 0; k < 7; k++)
						assert_string_equal(s->key[k], order[k]);
				assert_true(inf >= 0);	/* buckets come first */
				assert_true(s->value == inf);
				ncount++;
			}
		}
		assert_true(isinf(prev_le));
		assert_true(seen >= 2);
		assert_int_equal(nsum, 1);
		assert_int_equal(ncount, 1);
	}
	return groups;
}

/* Value of sample name whose group is exactly group and le is le ("" for
 * none); fails when absent. */
static double value_of(struct parsed *p, const char *name, const char *group,
		       const char *le)
{
	size_t i;

	for (i = 0; i < p->n; i++)
		if (!strcmp(p->s[i].name, name) &&
		    !strcmp(p->s[i].group, group) && !strcmp(p->s[i].le, le))
			return p->s[i].value;
	fail_msg("no sample %s{%s le=%s}", name, group, le);
	return NAN;
}

static int has_group(struct parsed *p, const char *group)
{
	size_t i;

	for (i = 0; i < p->n; i++)
		if (!strcmp(p->s[i].group, group))
			return 1;
	return 0;
}

static void render_parse(struct aggregate *a, struct parsed *p)
{
	struct strbuf sb;
	struct pfamily *f;

	strbuf__init(&sb);
	assert_int_equal(aggregate__render(a, &sb), 0);
	parse(p, sb.buf);
	strbuf__free(&sb);

	f = family_get(p, FAMILY);
	assert_true(f->help && f->typed);
	assert_string_equal(f->type, "histogram");
	f = family_get(p, "aion_agent_series_overflow_total");
	assert_true(f->help && f->typed);
	assert_string_equal(f->type, "counter");
	f = family_get(p, "aion_agent_series");
	assert_true(f->help && f->typed);
	assert_string_equal(f->type, "gauge");
	check_histograms(p, FAMILY);
}

#define G(svc, m, st, route, sch, port, err)                                  \
	"service_name=" svc ";http_request_method=" m                          \
	";http_response_status_code=" st ";http_route=" route                  \
	";url_scheme=" sch ";server_port=" port ";error_type=" err ";"

static void add(struct aggregate *a, const char *svc, const char *method,
		unsigned status, const char *route, const char *err, double v)
{
	struct http_sample s = {
		.service = svc, .method = method, .status = status,
		.route = route, .server_port = 8080, .scheme = "http",
		.error_type = err, .seconds = v,
	};

	aggregate__http_server(a, &s);
}

static double overflow_of(struct parsed *p)
{
	return value_of(p, "aion_agent_series_overflow_total",
			"metric=" FAMILY ";", "");
}

static void test_empty_render(void **state UNUSED)
{
	struct aggregate *a = aggregate__new(NULL);
	struct parsed p;

	assert_non_null(a);
	render_parse(a, &p);
	assert_true(overflow_of(&p) == 0);
	assert_true(value_of(&p, "aion_agent_series", "", "") == 0);
	assert_int_equal(check_histograms(&p, FAMILY), 0);
	assert_int_equal(aggregate__series(a), 0);
	parsed_free(&p);
	aggregate__free(a);
	aggregate__free(NULL);
}

static void test_counts_and_sums(void **state UNUSED)
{
	static const char *les[] = {
		"0.005", "0.01", "0.025", "0.05", "0.075", "0.1", "0.25",
		"0.5", "0.75", "1", "2.5", "5", "7.5", "10", "+Inf",
	};
	const char *g1 = G("shop", "GET", "200", "/users/{id}", "http", "8080", "");
	const char *g2 = G("shop", "POST", "500", "/users", "http", "8080", "500");
	struct aggregate *a = aggregate__new(NULL);
	struct parsed p;
	size_t i;
	int k;

	assert_non_null(a);
	for (k = 0; k < 7; k++)
		add(a, "shop", "GET", 200, "/users/{id}", "", 0.2);
	for (k = 0; k < 3; k++)
		add(a, "shop", "POST", 500, "/users", "500", 1.5);
	add(a, "shop", "POST", 500, "/users", "500", 12.0);
	assert_int_equal(aggregate__series(a), 2);

	render_parse(a, &p);
	assert_int_equal(check_histograms(&p, FAMILY), 2);
	/* Default buckets, in order, formatted like Prometheus. */
	for (i = 0; i < 15; i++)
		assert_true(value_of(&p, FAMILY "_bucket", g1, les[i]) ==
			    (i < 6 ? 0 : 7));
	assert_true(value_of(&p, FAMILY "_count", g1, "") == 7);
	assert_true(fabs(value_of(&p, FAMILY "_sum", g1, "") - 1.4) < 1e-9);

	assert_true(value_of(&p, FAMILY "_bucket", g2, "1") == 0);
	assert_true(value_of(&p, FAMILY "_bucket", g2, "2.5") == 3);
	assert_true(value_of(&p, FAMILY "_bucket", g2, "10") == 3);
	assert_true(value_of(&p, FAMILY "_bucket", g2, "+Inf") == 4);
	assert_true(value_of(&p, FAMILY "_count", g2, "") == 4);
	assert_true(fabs(value_of(&p, FAMILY "_sum", g2, "") - 16.5) < 1e-9);
	assert_true(value_of(&p, "aion_agent_series", "", "") == 2);
	assert_true(overflow_of(&p) == 0);
	parsed_free(&p);

	/* A render reads, it does not reset. */
	render_parse(a, &p);
	assert_true(value_of(&p, FAMILY "_count", g1, "") == 7);
	parsed_free(&p);
	aggregate__free(a);
}

static void test_bucket_boundaries(void **state UNUSED)
{
	const char *g = G("b", "GET", "200", "/", "http", "8080", "");
	struct aggregate *a = aggregate__new(NULL);
	struct parsed p;

	add(a, "b", "GET", 200, "/", "", 0.005);	/* le="0.005" exactly */
	add(a, "b", "GET", 200, "/", "", 0.0);
	add(a, "b", "GET", 200, "/", "", 0.1);
	add(a, "b", "GET", 200, "/", "", 10.0);
	add(a, "b", "GET", 200, "/", "", 10.000001);
	render_parse(a, &p);
	assert_true(value_of(&p, FAMILY "_bucket", g, "0.005") == 2);
	assert_true(value_of(&p, FAMILY "_bucket", g, "0.075") == 2);
	assert_true(value_of(&p, FAMILY "_bucket", g, "0.1") == 3);
	assert_true(value_of(&p, FAMILY "_bucket", g, "7.5") == 3);
	assert_true(value_of(&p, FAMILY "_bucket", g, "10") == 4);
	assert_true(value_of(&p, FAMILY "_bucket", g, "+Inf") == 5);
	assert_true(fabs(value_of(&p, FAMILY "_sum", g, "") - 20.105001) < 1e-9);
	parsed_free(&p);
	aggregate__free(a);
}

static void test_label_escaping(void **state UNUSED)
{
	const char *svc = "we\"ird\\svc\nname";
	const char *g = G("we\"ird\\svc\nname", "GET", "404", "/a\"b", "http",
			  "8080", "");
	struct aggregate *a = aggregate__new(NULL);
	struct strbuf sb;
	struct parsed p;

	add(a, svc, "GET", 404, "/a\"b", "", 0.01);
	strbuf__init(&sb);
	assert_int_equal(aggregate__render(a, &sb), 0);
	assert_non_null(strstr(sb.buf, "service_name=\"we\\\"ird\\\\svc\\nname\""));
	strbuf__free(&sb);

	render_parse(a, &p);
	assert_true(value_of(&p, FAMILY "_count", g, "") == 1);
	parsed_free(&p);
	aggregate__free(a);
}

static void test_route_budget(void **state UNUSED)
{
	static const char *routes[] = { "/r1", "/r2", "/r3", "/r4", "/r5" };
	struct agg_opts o = { .max_routes_per_service = 3 };
	struct aggregate *a = aggregate__new(&o);
	struct parsed p;
	size_t i;

	assert_non_null(a);
	for (i = 0; i < 5; i++)
		add(a, "a", "GET", 200, routes[i], "", 0.01);
	/* An admitted route keeps working; the other service has its own
	 * budget. */
	add(a, "a", "GET", 200, "/r1", "", 0.01);
	for (i = 0; i < 3; i++)
		add(a, "b", "GET", 200, routes[i], "", 0.01);
	assert_int_equal(aggregate__overflow(a), 2);

	render_parse(a, &p);
	assert_int_equal(check_histograms(&p, FAMILY), 4 + 3);
	assert_true(value_of(&p, FAMILY "_count",
			     G("a", "GET", "200", "/r1", "http", "8080", ""), "") == 2);
	assert_true(value_of(&p, FAMILY "_count",
			     G("a", "GET", "200", "/r3", "http", "8080", ""), "") == 1);
	assert_true(value_of(&p, FAMILY "_count",
			     G("a", "GET", "200", "/*", "http", "8080", ""), "") == 2);
	assert_false(has_group(&p, G("a", "GET", "200", "/r4", "http", "8080", "")));
	assert_false(has_group(&p, G("a", "GET", "200", "/r5", "http", "8080", "")));
	assert_false(has_group(&p, G("b", "GET", "200", "/*", "http", "8080", "")));
	assert_true(value_of(&p, FAMILY "_count",
			     G("b", "GET", "200", "/r3", "http", "8080", ""), "") == 1);
	assert_true(overflow_of(&p) == 2);
	assert_true(value_of(&p, "aion_agent_series", "", "") == 7);
	parsed_free(&p);

	/* Every overflowing sample counts, repeats included; other labels of an
	 * admitted route do not use budget. */
	add(a, "a", "GET", 200, "/r4", "", 0.01);
	add(a, "a", "POST", 201, "/r2", "", 0.01);
	add(a, "a", "DELETE", 200, "/r9", "", 0.01);
	render_parse(a, &p);
	assert_true(overflow_of(&p) == 4);
	assert_true(value_of(&p, FAMILY "_count",
			     G("a", "GET", "200", "/*", "http", "8080", ""), "") == 3);
	assert_true(value_of(&p, FAMILY "_count",
			     G("a", "DELETE", "200", "/*", "http", "8080", ""), "") == 1);
	assert_true(value_of(&p, FAMILY "_count",
			     G("a", "POST", "201", "/r2", "http", "8080", ""), "") == 1);
	parsed_free(&p);
	aggregate__free(a);
}

/* The HTTP server family has a label-set budget too (max_family_series),
 * over every service: a service per process name (--all) or many ports
 * cannot grow it without bound. An existing label set keeps counting. */
static void test_http_server_family_budget(void **state UNUSED)
{
	struct agg_opts o = { .max_family_series = 3 };
	struct aggregate *a = aggregate__new(&o);
	struct parsed p;

	assert_non_null(a);
	add(a, "a", "GET", 200, "/x", "", 0.01);
	add(a, "b", "GET", 200, "/x", "", 0.01);
	add(a, "c", "GET", 200, "/x", "", 0.01);
	add(a, "d", "GET", 200, "/x", "", 0.01); /* over: counted only */
	add(a, "a", "GET", 500, "/x", "", 0.01); /* a new label set of a: over */
	add(a, "b", "GET", 200, "/x", "", 0.01); /* existing: counted */
	assert_int_equal(aggregate__overflow(a), 2);
	render_parse(a, &p);
	assert_int_equal(check_histograms(&p, FAMILY), 3);
	assert_true(value_of(&p, FAMILY "_count", G("b", "GET", "200", "/x", "http", "8080", ""), "") == 2);
	assert_false(has_group(&p, G("d", "GET", "200", "/x", "http", "8080", "")));
	assert_true(overflow_of(&p) == 2);
	parsed_free(&p);
	aggregate__free(a);
}

static void test_custom_buckets_and_format(void **state UNUSED)
{
	static const double b[] = { 1e-05, 0.1, 0.3, 100000, 1e6 };
	struct agg_opts o = { .buckets = b, .nbuckets = 5 };
	const char *g = G("c", "GET", "200", "/", "http", "8080", "");
	struct aggregate *a = aggregate__new(&o);
	struct parsed p;
	char buf[64];

	assert_non_null(a);
	add(a, "c", "GET", 200, "/", "", 0.1 + 0.2);	/* > 0.3 */
	add(a, "c", "GET", 200, "/", "", 2e6);
	render_parse(a, &p);
	assert_true(value_of(&p, FAMILY "_bucket", g, "1e-05") == 0);
	assert_true(value_of(&p, FAMILY "_bucket", g, "0.3") == 0);
	assert_true(value_of(&p, FAMILY "_bucket", g, "100000") == 1);
	assert_true(value_of(&p, FAMILY "_bucket", g, "1e+06") == 1);
	assert_true(value_of(&p, FAMILY "_bucket", g, "+Inf") == 2);
	parsed_free(&p);
	aggregate__free(a);

	aggregate__format_float(buf, sizeof(buf), 0.30000000000000004);
	assert_string_equal(buf, "0.30000000000000004");
	aggregate__format_float(buf, sizeof(buf), 1.0);
	assert_string_equal(buf, "1");
	aggregate__format_float(buf, sizeof(buf), 0);
	assert_string_equal(buf, "0");
	aggregate__format_float(buf, sizeof(buf), 123456.5);
	assert_string_equal(buf, "123456.5");
	aggregate__format_float(buf, sizeof(buf), 1234567);
	assert_string_equal(buf, "1.234567e+06");
	aggregate__format_float(buf, sizeof(buf), 0.0001);
	assert_string_equal(buf, "0.0001");
	aggregate__format_float(buf, sizeof(buf), INFINITY);
	assert_string_equal(buf, "+Inf");
}

static void test_bad_opts(void **state UNUSED)
{
	static const double dec[] = { 0.1, 0.05 };
	static const double dup[] = { 0.1, 0.1 };
	static const double inf[] = { 0.1, INFINITY };
	struct agg_opts o = { .buckets = dec, .nbuckets = 2 };

	errno = 0;
	assert_null(aggregate__new(&o));
	assert_int_equal(errno, EINVAL);
	o.buckets = dup;
	assert_null(aggregate__new(&o));
	o.buckets = inf;
	assert_null(aggregate__new(&o));
	o.buckets = dec;
	o.nbuckets = 0;
	assert_null(aggregate__new(&o));
}

/* No response (status 0) renders as "0": a connection_closed error. */
static void test_status_zero_and_nulls(void **state UNUSED)
{
	struct aggregate *a = aggregate__new(NULL);
	struct http_sample s = { .service = "s", .seconds = 0.5,
				 .error_type = "connection_closed" };
	struct parsed p;

	aggregate__http_server(a, &s);
	render_parse(a, &p);
	assert_true(value_of(&p, FAMILY "_count",
			     G("s", "", "0", "", "", "0", "connection_closed"),
			     "") == 1);
	parsed_free(&p);
	aggregate__free(a);
}

static void test_many_series_stable_order(void **state UNUSED)
{
	struct agg_opts o = { .max_routes_per_service = 5000 };
	struct aggregate *a = aggregate__new(&o);
	struct strbuf s1, s2;
	char route[32];
	int i, r;

	for (r = 0; r < 3; r++)
		for (i = 0; i < 4000; i++) {
			snprintf(route, sizeof(route), "/r/%d", i);
			add(a, "many", "GET", 200 + i % 3, route, "", 0.001 * i);
		}
	assert_int_equal(aggregate__series(a), 4000);
	assert_int_equal(aggregate__overflow(a), 0);
	strbuf__init(&s1);
	strbuf__init(&s2);
	assert_int_equal(aggregate__render(a, &s1), 0);
	add(a, "many", "GET", 200, "/r/0", "", 0.001);
	add(a, "many", "GET", 200, "/r/0", "", 0.001);
	assert_int_equal(aggregate__render(a, &s2), 0);
	/* Same series in the same order: compare the _count label sets. */
	{
		const char *k = "\n" FAMILY "_count{";
		const char *x = s1.buf, *y = s2.buf;
		size_t nx, ny, n = 0;

		while ((x = strstr(x, k)) && (y = strstr(y, k))) {
			nx = strcspn(x, "}");
			ny = strcspn(y, "}");
			assert_int_equal(nx, ny);
			assert_memory_equal(x, y, nx);
			x += nx;
			y += ny;
			n++;
		}
		assert_int_equal(n, 4000);
	}
	assert_non_null(strstr(s1.buf, "http_route=\"/r/0\""));
	assert_true(strstr(s1.buf, "http_route=\"/r/0\"") <
		    strstr(s1.buf, "http_route=\"/r/3999\""));
	strbuf__free(&s1);
	strbuf__free(&s2);
	aggregate__free(a);
}

struct feeder {
	struct aggregate *a;
	int n;
};

static void *feed(void *arg)
{
	struct feeder *f = arg;
	char route[16];
	int i;

	for (i = 0; i < f->n; i++) {
		snprintf(route, sizeof(route), "/t/%d", i % 50);
		add(f->a, "thr", "GET", 200, route, "", 0.25);
	}
	return NULL;
}

#define DBC "db_client_operation_duration_seconds"
#define DBS "db_server_operation_duration_seconds"

/* Database families: keyed by the caller's label block, n samples at once,
 * their own budget, and an identity block after service_name for HTTP. */
static void test_db_families_and_identity(void **state UNUSED)
{
	struct agg_opts o = { .max_family_series = 2 };
	struct aggregate *a = aggregate__new(&o);
	const char *l1 = "service_name=\"app\",db_system_name=\"redis\",db_operation_name=\"GET\"";
	const char *l2 = "service_name=\"app\",db_system_name=\"redis\",db_operation_name=\"SET\"";
	const char *l3 = "service_name=\"app\",db_system_name=\"redis\",db_operation_name=\"DEL\"";
	struct http_sample h = {
		.service = "web", .identity = ",container_id=\"abc\"", .method = "GET", .status = 200,
		.route = "/", .server_port = 80, .scheme = "http", .error_type = "", .seconds = 0.001,
	};
	struct parsed p;

	assert_non_null(a);
	aggregate__observe(a, AGG_DB_CLIENT, l1, 0.002, 16);
	aggregate__observe(a, AGG_DB_CLIENT, l1, 0.3, 1);
	aggregate__observe(a, AGG_DB_SERVER, l1, 0.001, 5);
	aggregate__observe(a, AGG_DB_CLIENT, l2, 0.001, 0);  /* nothing */
	aggregate__observe(a, AGG_HTTP_SERVER, l2, 0.001, 1); /* not this way */
	aggregate__observe(a, AGG_DB_CLIENT, l2, 0.001, 2);
	aggregate__observe(a, AGG_DB_CLIENT, l3, 0.001, 7);  /* over the budget of 2 */
	aggregate__http_server(a, &h);
	render_parse(a, &p);
	assert_int_equal(check_histograms(&p, DBC), 2);
	assert_int_equal(check_histograms(&p, DBS), 1);
	assert_true(value_of(&p, DBC "_count", "service_name=app;db_system_name=redis;db_operation_name=GET;", "") == 17);
	assert_true(value_of(&p, DBC "_bucket", "service_name=app;db_system_name=redis;db_operation_name=GET;", "0.005") == 16);
	assert_true(value_of(&p, DBC "_bucket", "service_name=app;db_system_name=redis;db_operation_name=GET;", "0.5") == 17);
	assert_true(fabs(value_of(&p, DBC "_sum", "service_name=app;db_system_name=redis;db_operation_name=GET;", "") - 0.332) < 1e-9);
	assert_true(value_of(&p, DBS "_count", "service_name=app;db_system_name=redis;db_operation_name=GET;", "") == 5);
	assert_true(value_of(&p, DBC "_count", "service_name=app;db_system_name=redis;db_operation_name=SET;", "") == 2);
	assert_false(has_group(&p, "service_name=app;db_system_name=redis;db_operation_name=DEL;"));
	assert_true(value_of(&p, "aion_agent_series_overflow_total", "metric=" DBC ";", "") == 7);
	assert_true(value_of(&p, "aion_agent_series_overflow_total", "metric=" DBS ";", "") == 0);
	assert_true(value_of(&p, FAMILY "_count", "service_name=web;container_id=abc;http_request_method=GET;"
			     "http_response_status_code=200;http_route=/;url_scheme=http;server_port=80;error_type=;", "") == 1);
	assert_true(value_of(&p, "aion_agent_series", "", "") == 4);
	parsed_free(&p);
	aggregate__free(a);
}

#define SRB "http_server_request_body_size_bytes"
#define SSB "http_server_response_body_size_bytes"
#define HC "http_client_request_duration_seconds"
#define CRB "http_client_request_body_size_bytes"
#define CSB "http_client_response_body_size_bytes"

/* Body sizes: byte buckets (0, 32, ... 8192 by default, or the caller's),
 * one series per HTTP series and side, observed only when the sample says
 * the size is known; the client family keyed by its label block. */
static void test_body_sizes_and_client(void **state UNUSED)
{
	static const char *les[] = {
		"0", "32", "64", "128", "256", "512", "1024", "2048", "4096", "8192", "+Inf",
	};
	static const double want_req[] = { 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3 };
	const char *g = G("web", "POST", "200", "/up", "http", "8080", "");
	const char *ge = G("web", "POST", "0", "/up", "http", "8080", "connection_closed");
	const char *cl = "service_name=\"cli\",http_request_method=\"GET\",http_response_status_code=\"200\","
			 "server_address=\"example.com\",server_port=\"80\",url_scheme=\"http\",error_type=\"\"";
	const char *cg = "service_name=cli;http_request_method=GET;http_response_status_code=200;"
			 "server_address=example.com;server_port=80;url_scheme=http;error_type=;";
	struct http_sample h = {
		.service = "web", .method = "POST", .status = 200, .route = "/up", .server_port = 8080,
		.scheme = "http", .error_type = "", .seconds = 0.001,
		.body_flags = AGG_BODY_REQ | AGG_BODY_RESP,
	};
	struct aggregate *a = aggregate__new(NULL);
	struct parsed p;
	size_t i;

	assert_non_null(a);
	h.req_body = 0, h.resp_body = 3;
	aggregate__http_server(a, &h);
	h.req_body = 4096, h.resp_body = 8193;
	aggregate__http_server(a, &h);
	h.req_body = 52428800, h.resp_body = 32;
	aggregate__http_server(a, &h);
	/* An aborted request: its request size only. */
	h.status = 0, h.error_type = "connection_closed", h.body_flags = AGG_BODY_REQ;
	h.req_body = 7, h.resp_body = 999;
	aggregate__http_server(a, &h);
	/* No size known: the duration only. */
	h.body_flags = 0;
	aggregate__http_server(a, &h);
	aggregate__http_client(a, cl, 0.25, AGG_BODY_REQ | AGG_BODY_RESP, 10, 100);
	aggregate__http_client(a, cl, 0.5, AGG_BODY_REQ, 20, 0);
	render_parse(a, &p);
	assert_int_equal(check_histograms(&p, SRB), 2);
	assert_int_equal(check_histograms(&p, SSB), 1);
	assert_int_equal(check_histograms(&p, HC), 1);
	assert_int_equal(check_histograms(&p, CRB), 1);
	assert_int_equal(check_histograms(&p, CSB), 1);
	for (i = 0; i < 11; i++)
		assert_true(value_of(&p, SRB "_bucket", g, les[i]) == want_req[i]);
	assert_true(value_of(&p, SRB "_sum", g, "") == 4096 + 52428800);
	assert_true(value_of(&p, SSB "_bucket", g, "0") == 0);
	assert_true(value_of(&p, SSB "_bucket", g, "32") == 2);
	assert_true(value_of(&p, SSB "_bucket", g, "8192") == 2);
	assert_true(value_of(&p, SSB "_bucket", g, "+Inf") == 3);
	assert_true(value_of(&p, SSB "_sum", g, "") == 3 + 8193 + 32);
	assert_true(value_of(&p, SRB "_count", ge, "") == 1);
	assert_true(value_of(&p, SRB "_sum", ge, "") == 7);
	assert_true(value_of(&p, FAMILY "_count", ge, "") == 2);
	assert_true(value_of(&p, HC "_count", cg, "") == 2);
	assert_true(value_of(&p, HC "_bucket", cg, "0.25") == 1);
	assert_true(value_of(&p, CRB "_count", cg, "") == 2);
	assert_true(value_of(&p, CRB "_sum", cg, "") == 30);
	assert_true(value_of(&p, CSB "_count", cg, "") == 1);
	assert_true(value_of(&p, CSB "_bucket", cg, "64") == 0);
	assert_true(value_of(&p, CSB "_bucket", cg, "128") == 1);
	/* Budgets are the duration families': body families have no line. */
	assert_true(value_of(&p, "aion_agent_series_overflow_total", "metric=" HC ";", "") == 0);
	for (i = 0; i < p.n; i++)
		assert_null(strstr(p.s[i].group, "metric=" SRB));
	{
		struct pfamily *f = family_get(&p, CSB);

		assert_true(f->help && f->typed);
		assert_string_equal(f->type, "histogram");
	}
	parsed_free(&p);
	aggregate__free(a);

	/* The caller's byte buckets; bad ones are refused. */
	{
		static const double zb[] = { 10, 1000 };
		static const double bad[] = { 10, 10 };
		struct agg_opts o = { .size_buckets = zb, .nsize_buckets = 2 };
		struct agg_opts ob = { .size_buckets = bad, .nsize_buckets = 2 };

		a = aggregate__new(&o);
		assert_non_null(a);
		aggregate__http_client(a, cl, 0.001, AGG_BODY_REQ, 11, 0);
		render_parse(a, &p);
		assert_true(value_of(&p, CRB "_bucket", cg, "10") == 0);
		assert_true(value_of(&p, CRB "_bucket", cg, "1000") == 1);
		assert_true(value_of(&p, CRB "_bucket", cg, "+Inf") == 1);
		/* The duration buckets are untouched. */
		assert_true(value_of(&p, HC "_bucket", cg, "0.005") == 1);
		parsed_free(&p);
		aggregate__free(a);
		errno = 0;
		assert_null(aggregate__new(&ob));
		assert_int_equal(errno, EINVAL);
	}
}

static void test_concurrent_render(void **state UNUSED)
{
	struct feeder f = { .a = aggregate__new(NULL), .n = 200000 };
	struct parsed p;
	struct strbuf sb;
	pthread_t t;
	double total = 0;
	int i;

	assert_int_equal(pthread_create(&t, NULL, feed, &f), 0);
	strbuf__init(&sb);
	for (i = 0; i < 50; i++) {
		strbuf__reset(&sb);
		assert_int_equal(aggregate__render(f.a, &sb), 0);
	}
	strbuf__free(&sb);
	pthread_join(t, NULL);

	render_parse(f.a, &p);
	for (i = 0; i < 50; i++) {
		char g[256];

		snprintf(g, sizeof(g),
			 G("thr", "GET", "200", "/t/%d", "http", "8080", ""), i);
		total += value_of(&p, FAMILY "_bucket", g, "0.25");
		assert_true(value_of(&p, FAMILY "_bucket", g, "0.1") == 0);
	}
	assert_true(total == f.n);
	parsed_free(&p);
	aggregate__free(f.a);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_empty_render),
		cmocka_unit_test(test_counts_and_sums),
		cmocka_unit_test(test_bucket_boundaries),
		cmocka_unit_test(test_label_escaping),
		cmocka_unit_test(test_route_budget),
		cmocka_unit_test(test_http_server_family_budget),
		cmocka_unit_test(test_custom_buckets_and_format),
		cmocka_unit_test(test_bad_opts),
		cmocka_unit_test(test_status_zero_and_nulls),
		cmocka_unit_test(test_many_series_stable_order),
		cmocka_unit_test(test_db_families_and_identity),
		cmocka_unit_test(test_body_sizes_and_client),
		cmocka_unit_test(test_concurrent_render),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
