// SPDX-License-Identifier: GPL-2.0
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aggregate.h"

#define HTTP_SERVER_DURATION "http_server_request_duration_seconds"
#define MAX_BUCKETS 64

/* Compared by address to tell a sample sent to overflow from one that
 * already carried this route. */
static const char OVERFLOW_ROUTE[] = "/*";

static const double default_buckets[] = {
	0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10,
};

static const double default_size_buckets[] = {
	0, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192,
};

/* Bucket sets: durations (seconds) and body sizes (bytes). */
enum { BSET_SECONDS = 0, BSET_BYTES = 1, BSETS };

struct bset {
	double *bounds;
	char (*le)[32];		/* bounds pre-formatted for the le label */
	size_t nb;
};

/* Interned string: every label value is stored once however many series use
 * it. routes counts the distinct routes admitted when it names a service. */
struct istr {
	uint64_t hash;
	unsigned routes;
	char s[];
};

struct series {
	unsigned fam;		/* enum agg_family */
	/* HTTP: the body-size series of the same label set (request,
	 * response), made on first use. */
	struct series *body[2];
	struct istr *service, *identity, *method, *route, *scheme, *error_type;
	char *labels;		/* the escaped label block, built once */
	size_t labels_len;
	unsigned status, port;
	uint64_t count;
	double sum;
	uint64_t bucket[];	/* per bucket, not cumulative; +Inf is count */
};

/* (service, route) pairs admitted by the route budget. */
struct route_pair {
	struct istr *service, *route;
};

/* Open addressing with linear probing; cap is a power of two, load <= 1/2. */
struct slot {
	uint64_t hash;
	void *p;
};

struct htab {
	struct slot *slots;
	size_t cap, n;
};

struct aggregate {
	pthread_mutex_t lock;
	struct bset bs[BSETS];
	unsigned max_routes;
	size_t max_family_series;
	struct htab strs, series_by_key, routes, by_labels;
	size_t fam_series[AGG_FAMILIES];
	unsigned long long fam_overflow[AGG_FAMILIES];
	struct series **series;	/* insertion order, for stable output */
	size_t nseries, series_cap;
	unsigned long long overflow;
	struct strbuf labels;	/* scratch for building label blocks */
};

/* FNV-1a, then a final avalanche so low bits are usable as an index. */
static uint64_t hash__bytes(uint64_t h, const void *p, size_t n)
{
	const unsigned char *s = p;

	while (n--) {
		h ^= *s++;
		h *= 0x100000001b3ULL;
	}
	return h;
}

static uint64_t hash__mix(uint64_t h)
{
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53ULL;
	h ^= h >> 33;
	return h;
}

#define HASH_SEED 0xcbf29ce484222325ULL

static uint64_t hash__str(uint64_t h, const char *s)
{
	/* Include the NUL so ("ab","c") and ("a","bc") differ. */
	return hash__bytes(h, s, strlen(s) + 1);
}

typedef bool (*htab_eq_fn)(const void *p, const void *key);

static struct slot *htab__find(struct htab *t, uint64_t h, htab_eq_fn eq,
			       const void *key)
{
	size_t mask, i;

	if (!t->cap)
		return NULL;
	mask = t->cap - 1;
	for (i = h & mask;; i = (i + 1) & mask) {
		struct slot *sl = &t->slots[i];

		if (!sl->p)
			return NULL;
		if (sl->hash == h && eq(sl->p, key))
			return sl;
	}
}

static void htab__place(struct slot *slots, size_t cap, uint64_t h, void *p)
{
	size_t mask = cap - 1, i;

	for (i = h & mask; slots[i].p; i = (i + 1) & mask)
		;
	slots[i].hash = h;
	slots[i].p = p;
}

/* Caller has checked that the key is absent. */
static int htab__insert(struct htab *t, uint64_t h, void *p)
{
	if ((t->n + 1) * 2 > t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 64, i;
		struct slot *slots = calloc(cap, sizeof(*slots));

		if (!slots)
			return -ENOMEM;
		for (i = 0; i < t->cap; i++)
			if (t->slots[i].p)
				htab__place(slots, cap, t->slots[i].hash,
					    t->slots[i].p);
		free(t->slots);
		t->slots = slots;
		t->cap = cap;
	}
	htab__place(t->slots, t->cap, h, p);
	t->n++;
	return 0;
}

static bool istr__eq(const void *p, const void *key)
{
	return !strcmp(((const struct istr *)p)->s, key);
}

static struct istr *aggregate__intern(struct aggregate *a, const char *s)
{
	uint64_t h = hash__mix(hash__str(HASH_SEED, s));
	struct slot *sl = htab__find(&a->strs, h, istr__eq, s);
	size_t n;
	struct istr *is;

	if (sl)
		return sl->p;
	n = strlen(s);
	is = malloc(sizeof(*is) + n + 1);
	if (!is)
		return NULL;
	is->hash = h;
	is->routes = 0;
	memcpy(is->s, s, n + 1);
	if (htab__insert(&a->strs, h, is)) {
		free(is);
		return NULL;
	}
	return is;
}

/* Lookup key for a series, holding the sample's raw strings. */
struct series_key {
	const char *service, *identity, *method, *route, *scheme, *error_type;
	unsigned status, port;
};

static uint64_t series_key__hash(const struct series_key *k)
{
	uint64_t h = HASH_SEED;

	h = hash__str(h, k->service);
	h = hash__str(h, k->identity);
	h = hash__str(h, k->method);
	h = hash__str(h, k->route);
	h = hash__str(h, k->scheme);
	h = hash__str(h, k->error_type);
	h = hash__bytes(h, &k->status, sizeof(k->status));
	h = hash__bytes(h, &k->port, sizeof(k->port));
	return hash__mix(h);
}

static bool series__eq(const void *p, const void *key)
{
	const struct series *s = p;
	const struct series_key *k = key;

	return s->status == k->status && s->port == k->port &&
	       !strcmp(s->route->s, k->route) &&
	       !strcmp(s->service->s, k->service) &&
	       !strcmp(s->identity->s, k->identity) &&
	       !strcmp(s->method->s, k->method) &&
	       !strcmp(s->error_type->s, k->error_type) &&
	       !strcmp(s->scheme->s, k->scheme);
}

struct route_key {
	const struct istr *service;
	const char *route;
};

static uint64_t route_key__hash(const struct istr *service, const char *route)
{
	return hash__mix(hash__str(service->hash, route));
}

static bool route_pair__eq(const void *p, const void *key)
{
	const struct route_pair *rp = p;
	const struct route_key *k = key;

	return rp->service == k->service && !strcmp(rp->route->s, k->route);
}

int aggregate__format_float(char *buf, size_t sz, double v)
{
	char tmp[40];
	int p, exp;

	if (isnan(v))
		return snprintf(buf, sz, "NaN");
	if (isinf(v))
		return snprintf(buf, sz, v > 0 ? "+Inf" : "-Inf");
	if (v == 0)
		return snprintf(buf, sz, "0");
	/* Shortest digit count that reads back as the same double... */
	for (p = 1; p < 17; p++) {
		snprintf(tmp, sizeof(tmp), "%.*e", p - 1, v);
		if (strtod(tmp, NULL) == v)
			break;
	}
	snprintf(tmp, sizeof(tmp), "%.*e", p - 1, v);
	exp = atoi(strchr(tmp, 'e') + 1);
	/* ...then Go's choice for 'g' with shortest precision: exponent form
	 * when exp < -4 || exp >= 6 (so 1e+06 but 100000). */
	if (exp < -4 || exp >= 6)
		return snprintf(buf, sz, "%s", tmp);
	return snprintf(buf, sz, "%.*f", p - 1 - exp > 0 ? p - 1 - exp : 0, v);
}

/* Families whose series are body sizes, made alongside an HTTP series. */
static bool fam__bytes(unsigned fam)
{
	return fam >= AGG_HTTP_SERVER_REQ_BODY && fam <= AGG_HTTP_CLIENT_RESP_BODY;
}

static bool buckets__valid(const double *b, size_t nb)
{
	size_t i;

	if (!nb || nb > MAX_BUCKETS)
		return false;
	for (i = 0; i < nb; i++)
		if (!isfinite(b[i]) || (i && b[i] <= b[i - 1]))
			return false;
	return true;
}

static int bset__init(struct bset *bs, const double *b, size_t nb)
{
	size_t i;

	bs->nb = nb;
	bs->bounds = malloc(nb * sizeof(*bs->bounds));
	bs->le = malloc(nb * sizeof(*bs->le));
	if (!bs->bounds || !bs->le)
		return -ENOMEM;
	for (i = 0; i < nb; i++) {
		bs->bounds[i] = b[i];
		aggregate__format_float(bs->le[i], sizeof(bs->le[i]), b[i]);
	}
	return 0;
}

struct aggregate *aggregate__new(const struct agg_opts *o)
{
	const double *b = default_buckets, *zb = default_size_buckets;
	size_t nb = sizeof(default_buckets) / sizeof(default_buckets[0]);
	size_t nzb = sizeof(default_size_buckets) / sizeof(default_size_buckets[0]);
	struct aggregate *a;
	int err;

	if (o && o->buckets) {
		b = o->buckets;
		nb = o->nbuckets;
		if (!buckets__valid(b, nb))
			goto einval;
	}
	if (o && o->size_buckets) {
		zb = o->size_buckets;
		nzb = o->nsize_buckets;
		if (!buckets__valid(zb, nzb))
			goto einval;
	}
	a = calloc(1, sizeof(*a));
	if (!a)
		return NULL;
	err = pthread_mutex_init(&a->lock, NULL);
	if (err) {
		free(a);
		errno = err;
		return NULL;
	}
	strbuf__init(&a->labels);
	a->max_family_series = o && o->max_family_series ? o->max_family_series : 10000;
	a->max_routes = o && o->max_routes_per_service ?
			o->max_routes_per_service : 100;
	if (bset__init(&a->bs[BSET_SECONDS], b, nb) || bset__init(&a->bs[BSET_BYTES], zb, nzb)) {
		aggregate__free(a);
		errno = ENOMEM;
		return NULL;
	}
	return a;
einval:
	errno = EINVAL;
	return NULL;
}

void aggregate__free(struct aggregate *a)
{
	size_t i;

	if (!a)
		return;
	for (i = 0; i < a->nseries; i++) {
		if (!fam__bytes(a->series[i]->fam))
			free(a->series[i]->labels);
		free(a->series[i]);
	}
	free(a->series);
	for (i = 0; i < a->routes.cap; i++)
		free(a->routes.slots[i].p);
	for (i = 0; i < a->strs.cap; i++)
		free(a->strs.slots[i].p);
	free(a->routes.slots);
	free(a->strs.slots);
	free(a->series_by_key.slots);
	free(a->by_labels.slots);
	strbuf__free(&a->labels);
	for (i = 0; i < BSETS; i++) {
		free(a->bs[i].bounds);
		free(a->bs[i].le);
	}
	pthread_mutex_destroy(&a->lock);
	free(a);
}

static void series__observe_n(const struct aggregate *a, struct series *s, double v, unsigned n);

/* A zeroed series with buckets of set bs, with room made for it in the
 * series array (the caller appends it); NULL when out of memory. */
static struct series *series__alloc(struct aggregate *a, int bs)
{
	if (a->nseries == a->series_cap) {
		size_t cap = a->series_cap ? a->series_cap * 2 : 64;
		struct series **arr = realloc(a->series, cap * sizeof(*arr));

		if (!arr)
			return NULL;
		a->series = arr;
		a->series_cap = cap;
	}
	return calloc(1, sizeof(struct series) + a->bs[bs].nb * sizeof(uint64_t));
}


static const struct bset *series__bset(const struct aggregate *a, const struct series *s)
{
	return &a->bs[fam__bytes(s->fam) ? BSET_BYTES : BSET_SECONDS];
}

/* The body-size series of HTTP series s: which = 0 request, 1 response.
 * Made on first use with s's labels; NULL when out of memory. */
static struct series *series__body(struct aggregate *a, struct series *s, int which)
{
	struct series *b = s->body[which];
	unsigned fam;

	if (b)
		return b;
	fam = (s->fam == AGG_HTTP_SERVER ? AGG_HTTP_SERVER_REQ_BODY : AGG_HTTP_CLIENT_REQ_BODY) + which;
	b = series__alloc(a, BSET_BYTES);
	if (!b)
		return NULL;
	b->fam = fam;
	b->labels = s->labels; /* shared: freed with s */
	b->labels_len = s->labels_len;
	a->series[a->nseries++] = b;
	a->fam_series[fam]++;
	s->body[which] = b;
	return b;
}

/* Body sizes of one HTTP sample into the companions of s. */
static void series__sizes(struct aggregate *a, struct series *s, unsigned flags,
			  unsigned long long req, unsigned long long resp)
{
	struct series *b;

	if (flags & AGG_BODY_REQ) {
		b = series__body(a, s, 0);
		if (b)
			series__observe_n(a, b, (double)req, 1);
	}
	if (flags & AGG_BODY_RESP) {
		b = series__body(a, s, 1);
		if (b)
			series__observe_n(a, b, (double)resp, 1);
	}
}

static void series__observe_n(const struct aggregate *a, struct series *s, double v, unsigned n)
{
	const struct bset *bs = series__bset(a, s);
	size_t lo = 0, hi = bs->nb;

	/* First bound with v <= le; hi == nb means only +Inf. */
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;

		if (v <= bs->bounds[mid])
			hi = mid;
		else
			lo = mid + 1;
	}
	if (lo < bs->nb)
		s->bucket[lo] += n;
	s->count += n;
	s->sum += v * n;
}

static void series__observe(const struct aggregate *a, struct series *s, double v)
{
	series__observe_n(a, s, v, 1);
}

/* Route budget: returns route, or OVERFLOW_ROUTE once the service holds
 * max_routes others. NULL on allocation failure. */
static const char *aggregate__admit_route(struct aggregate *a,
					  struct istr *service,
					  const char *route)
{
	struct route_key rk = { .service = service, .route = route };
	uint64_t h = route_key__hash(service, route);
	struct route_pair *rp;

	if (!strcmp(route, OVERFLOW_ROUTE))
		return route;
	if (htab__find(&a->routes, h, route_pair__eq, &rk))
		return route;
	if (service->routes >= a->max_routes) {
		a->overflow++;
		return OVERFLOW_ROUTE;
	}
	rp = malloc(sizeof(*rp));
	if (!rp)
		return NULL;
	rp->service = service;
	rp->route = aggregate__intern(a, route);
	if (!rp->route || htab__insert(&a->routes, h, rp)) {
		free(rp);
		return NULL;
	}
	service->routes++;
	return route;
}

static int series__labels(struct strbuf *sb, const struct series *s)
{
	strbuf__puts(sb, "service_name=\"");
	strbuf__label_value(sb, s->service->s);
	strbuf__puts(sb, "\"");
	strbuf__puts(sb, s->identity->s); /* pre-escaped: ,container_id="..." */
	strbuf__puts(sb, ",http_request_method=\"");
	strbuf__label_value(sb, s->method->s);
	strbuf__puts(sb, "\",http_response_status_code=\"");
	strbuf__printf(sb, "%u", s->status); /* 0: no response was sent */
	strbuf__puts(sb, "\",http_route=\"");
	strbuf__label_value(sb, s->route->s);
	strbuf__puts(sb, "\",url_scheme=\"");
	strbuf__label_value(sb, s->scheme->s);
	strbuf__printf(sb, "\",server_port=\"%u\",error_type=\"", s->port);
	strbuf__label_value(sb, s->error_type->s);
	return strbuf__puts(sb, "\"");
}

static struct series *aggregate__add_series(struct aggregate *a,
					    const struct series_key *k,
					    uint64_t h)
{
	struct series *s;

	s = series__alloc(a, BSET_SECONDS);
	if (!s)
		return NULL;
	s->service = aggregate__intern(a, k->service);
	s->identity = aggregate__intern(a, k->identity);
	s->method = aggregate__intern(a, k->method);
	s->route = aggregate__intern(a, k->route);
	s->scheme = aggregate__intern(a, k->scheme);
	s->error_type = aggregate__intern(a, k->error_type);
	s->status = k->status;
	s->port = k->port;
	/* Interned strings that were created here stay in the pool: harmless,
	 * and the next attempt finds them. */
	if (!s->service || !s->identity || !s->method || !s->route || !s->scheme || !s->error_type)
		goto fail;
	strbuf__reset(&a->labels);
	if (series__labels(&a->labels, s))
		goto fail;
	s->labels = strbuf__detach(&a->labels, &s->labels_len);
	if (!s->labels || htab__insert(&a->series_by_key, h, s))
		goto fail;
	a->series[a->nseries++] = s;
	a->fam_series[AGG_HTTP_SERVER]++;
	return s;
fail:
	free(s->labels);
	free(s);
	return NULL;
}

#define STR_OR_EMPTY(s) ((s) ? (s) : "")

void aggregate__http_server(struct aggregate *a, const struct http_sample *smp)
{
	struct series_key k = {
		.service = STR_OR_EMPTY(smp->service),
		.identity = STR_OR_EMPTY(smp->identity),
		.method = STR_OR_EMPTY(smp->method),
		.route = STR_OR_EMPTY(smp->route),
		.scheme = STR_OR_EMPTY(smp->scheme),
		.error_type = STR_OR_EMPTY(smp->error_type),
		.status = smp->status,
		.port = smp->server_port,
	};
	double v = smp->seconds >= 0 ? smp->seconds : 0; /* NaN too */
	struct istr *service;
	struct slot *sl;
	struct series *s;
	uint64_t h;

	pthread_mutex_lock(&a->lock);
	/* Fast path: an existing series was admitted when it was created. */
	h = series_key__hash(&k);
	sl = htab__find(&a->series_by_key, h, series__eq, &k);
	if (sl) {
		series__observe(a, sl->p, v);
		series__sizes(a, sl->p, smp->body_flags, smp->req_body, smp->resp_body);
		goto out;
	}
	/* The family's budget: a new label set beyond it is only counted, and
	 * nothing of it is kept (no service, no route). */
	if (a->fam_series[AGG_HTTP_SERVER] >= a->max_family_series)
		goto drop;
	service = aggregate__intern(a, k.service);
	if (!service)
		goto drop;
	k.route = aggregate__admit_route(a, service, k.route);
	if (!k.route)
		goto drop;
	if (k.route == OVERFLOW_ROUTE) {
		h = series_key__hash(&k);
		sl = htab__find(&a->series_by_key, h, series__eq, &k);
		if (sl) {
			series__observe(a, sl->p, v);
			series__sizes(a, sl->p, smp->body_flags, smp->req_body, smp->resp_body);
			goto out;
		}
	}
	s = aggregate__add_series(a, &k, h);
	if (!s)
		goto drop;
	series__observe(a, s, v);
	series__sizes(a, s, smp->body_flags, smp->req_body, smp->resp_body);
	goto out;
drop:
	/* Over budget or out of memory: counted with the route budget's losses. */
	a->overflow++;
out:
	pthread_mutex_unlock(&a->lock);
}

/* Series of a family other than HTTP server are keyed by their whole
 * label block, built by the caller. */
struct label_key {
	unsigned fam;
	const char *labels;
};

static bool series__eq_labels(const void *p, const void *key)
{
	const struct series *s = p;
	const struct label_key *k = key;

	return s->fam == k->fam && !strcmp(s->labels, k->labels);
}

/* The series of family fam with this label block, made when new and within
 * the family's budget; NULL otherwise (counted). Lock held. */
static struct series *aggregate__labelled(struct aggregate *a, unsigned fam, const char *labels,
					  unsigned n)
{
	struct label_key k = { .fam = fam, .labels = labels };
	struct series *s = NULL;
	struct slot *sl;
	uint64_t h;

	h = hash__mix(hash__str(hash__bytes(HASH_SEED, &fam, sizeof(fam)), labels));
	sl = htab__find(&a->by_labels, h, series__eq_labels, &k);
	if (sl)
		return sl->p;
	if (a->fam_series[fam] >= a->max_family_series) {
		a->fam_overflow[fam] += n;
		return NULL;
	}
	s = series__alloc(a, BSET_SECONDS);
	if (!s)
		goto drop;
	s->fam = fam;
	s->labels = strdup(labels);
	if (!s->labels)
		goto drop;
	s->labels_len = strlen(labels);
	if (htab__insert(&a->by_labels, h, s))
		goto drop;
	a->series[a->nseries++] = s;
	a->fam_series[fam]++;
	return s;
drop:
	if (s) {
		free(s->labels);
		free(s);
	}
	a->fam_overflow[fam] += n;
	return NULL;
}

void aggregate__observe(struct aggregate *a, unsigned fam, const char *labels, double seconds,
			unsigned n)
{
	double v = seconds >= 0 ? seconds : 0;
	struct series *s;

	if (fam == AGG_HTTP_SERVER || fam >= AGG_FAMILIES || fam__bytes(fam) || !n)
		return;
	pthread_mutex_lock(&a->lock);
	s = aggregate__labelled(a, fam, labels, n);
	if (s)
		series__observe_n(a, s, v, n);
	pthread_mutex_unlock(&a->lock);
}

void aggregate__http_client(struct aggregate *a, const char *labels, double seconds,
			    unsigned body_flags, unsigned long long req_body,
			    unsigned long long resp_body)
{
	double v = seconds >= 0 ? seconds : 0;
	struct series *s;

	pthread_mutex_lock(&a->lock);
	s = aggregate__labelled(a, AGG_HTTP_CLIENT, labels, 1);
	if (s) {
		series__observe_n(a, s, v, 1);
		series__sizes(a, s, body_flags, req_body, resp_body);
	}
	pthread_mutex_unlock(&a->lock);
}

/* Decimal digits of v at p; returns the length. */
static size_t u64_dec(char *p, uint64_t v)
{
	char tmp[24];
	size_t n = 0, i;

	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	for (i = 0; i < n; i++)
		p[i] = tmp[n - 1 - i];
	return n;
}

/* One sample line: NAME{LABELS[,le="LE"]} VALUE\n, without printf. */
static void line(struct strbuf *out, const char *name, size_t name_len, const struct series *s,
		 const char *le, size_t le_len, const char *val, size_t val_len)
{
	size_t need = name_len + s->labels_len + le_len + val_len + 16;
	char *p;

	if (strbuf__reserve(out, need))
		return;
	p = out->buf + out->len;
	memcpy(p, name, name_len), p += name_len;
	*p++ = '{';
	memcpy(p, s->labels, s->labels_len), p += s->labels_len;
	if (le) {
		memcpy(p, ",le=\"", 5), p += 5;
		memcpy(p, le, le_len), p += le_len;
		*p++ = '"';
	}
	*p++ = '}';
	*p++ = ' ';
	memcpy(p, val, val_len), p += val_len;
	*p++ = '\n';
	out->len = (size_t)(p - out->buf);
	out->buf[out->len] = '\0';
}

static const struct family {
	const char *name, *help;
	const char *bucket, *sum, *count;
} families[AGG_FAMILIES] = {
	[AGG_HTTP_SERVER] = { HTTP_SERVER_DURATION, "Duration of HTTP server requests.",
			      HTTP_SERVER_DURATION "_bucket", HTTP_SERVER_DURATION "_sum",
			      HTTP_SERVER_DURATION "_count" },
	[AGG_DB_CLIENT] = { "db_client_operation_duration_seconds",
			    "Duration of database operations, as the client application sees them.",
			    "db_client_operation_duration_seconds_bucket",
			    "db_client_operation_duration_seconds_sum",
			    "db_client_operation_duration_seconds_count" },
	[AGG_DB_SERVER] = { "db_server_operation_duration_seconds",
			    "Duration of database operations, as the traced database server answers them.",
			    "db_server_operation_duration_seconds_bucket",
			    "db_server_operation_duration_seconds_sum",
			    "db_server_operation_duration_seconds_count" },
#define FAMILY(n, h) { n, h, n "_bucket", n "_sum", n "_count" }
	[AGG_HTTP_CLIENT] = FAMILY("http_client_request_duration_seconds",
				   "Duration of HTTP client requests: first byte of the request written to the end of the response read."),
	[AGG_HTTP_SERVER_REQ_BODY] = FAMILY("http_server_request_body_size_bytes",
					    "Body sizes of HTTP server requests (Content-Length or chunk sizes summed)."),
	[AGG_HTTP_SERVER_RESP_BODY] = FAMILY("http_server_response_body_size_bytes",
					     "Body sizes of HTTP server responses (Content-Length, chunk sizes summed, or bytes until close)."),
	[AGG_HTTP_CLIENT_REQ_BODY] = FAMILY("http_client_request_body_size_bytes",
					    "Body sizes of HTTP client requests (Content-Length or chunk sizes summed)."),
	[AGG_HTTP_CLIENT_RESP_BODY] = FAMILY("http_client_response_body_size_bytes",
					     "Body sizes of HTTP client responses (Content-Length, chunk sizes summed, or bytes until close)."),
#undef FAMILY
};

/* counts: the series' buckets, then count; sum apart. */
static void series__render(const struct aggregate *a, const struct series *s,
			   const uint64_t *counts, double sum, struct strbuf *out)
{
	const struct family *f = &families[s->fam];
	const struct bset *bs = series__bset(a, s);
	size_t bl = strlen(f->bucket), sl = strlen(f->sum), cl = strlen(f->count);
	char val[40];
	uint64_t cum = 0, count = counts[bs->nb];
	size_t i, n;

	for (i = 0; i < bs->nb; i++) {
		cum += counts[i];
		n = u64_dec(val, cum);
		line(out, f->bucket, bl, s, bs->le[i], strlen(bs->le[i]), val, n);
	}
	n = u64_dec(val, count);
	line(out, f->bucket, bl, s, "+Inf", 4, val, n);
	aggregate__format_float(val, sizeof(val), sum);
	line(out, f->sum, sl, s, NULL, 0, val, strlen(val));
	n = u64_dec(val, count);
	line(out, f->count, cl, s, NULL, 0, val, n);
}

/* The lock is held only to copy the counters: rendering a large set takes
 * long enough that holding it would stall the ring-buffer consumer. Series
 * are never freed, so their pointers stay valid outside the lock. */
int aggregate__render(struct aggregate *a, struct strbuf *out)
{
	struct series **ser = NULL;
	unsigned long long overflow, fam_overflow[AGG_FAMILIES];
	size_t fam_n[AGG_FAMILIES];
	unsigned fam;
	uint64_t *counts = NULL;
	double *sums = NULL;
	size_t *at = NULL;
	size_t i, n, nb, stride, total = 0;
	int err = 0;

	pthread_mutex_lock(&a->lock);
	n = a->nseries;
	/* Room for the counters of the widest bucket set, per series. */
	stride = (a->bs[0].nb > a->bs[1].nb ? a->bs[0].nb : a->bs[1].nb) + 1;
	overflow = a->overflow;
	memcpy(fam_overflow, a->fam_overflow, sizeof(fam_overflow));
	memcpy(fam_n, a->fam_series, sizeof(fam_n));
	if (n) {
		ser = malloc(n * sizeof(*ser));
		counts = malloc(n * stride * sizeof(*counts));
		sums = malloc(n * sizeof(*sums));
		at = malloc(n * sizeof(*at));
		if (!ser || !counts || !sums || !at) {
			pthread_mutex_unlock(&a->lock);
			err = -ENOMEM;
			goto out;
		}
		for (i = 0; i < n; i++) {
			ser[i] = a->series[i];
			nb = series__bset(a, ser[i])->nb;
			at[i] = total;
			memcpy(&counts[total], ser[i]->bucket, nb * sizeof(*counts));
			counts[total + nb] = ser[i]->count;
			total += nb + 1;
			sums[i] = ser[i]->sum;
		}
	}
	pthread_mutex_unlock(&a->lock);

	/* One allocation for the whole body: growing by doubling would copy
	 * it several times over. */
	if (n) {
		size_t est = 0;

		for (i = 0; i < n; i++)
			est += (stride + 2) * (ser[i]->labels_len + 48 + 48);
		strbuf__reserve(out, est);
	}
	for (fam = 0; fam < AGG_FAMILIES; fam++) {
		/* HTTP's family is always there (its series are counted apart);
		 * the others once they have a series. */
		if (fam != AGG_HTTP_SERVER && !fam_n[fam])
			continue;
		strbuf__printf(out, "# HELP %s %s\n# TYPE %s histogram\n", families[fam].name,
			       families[fam].help, families[fam].name);
		for (i = 0; i < n; i++)
			if (ser[i]->fam == fam)
				series__render(a, ser[i], &counts[at[i]], sums[i], out);
	}
	strbuf__printf(out,
		"# HELP aion_agent_series_overflow_total Samples sent to an overflow series because a series budget was exhausted.\n"
		"# TYPE aion_agent_series_overflow_total counter\n"
		"aion_agent_series_overflow_total{metric=\"" HTTP_SERVER_DURATION "\"} %llu\n",
		overflow);
	for (fam = 1; fam < AGG_FAMILIES; fam++)
		if (!fam__bytes(fam)) /* made with their HTTP series, never over budget */
			strbuf__printf(out, "aion_agent_series_overflow_total{metric=\"%s\"} %llu\n",
				       families[fam].name, fam_overflow[fam]);
	strbuf__printf(out,
		"# HELP aion_agent_series Label sets held by the aggregator.\n"
		"# TYPE aion_agent_series gauge\n"
		"aion_agent_series %zu\n", n);
out:
	free(ser);
	free(counts);
	free(sums);
	free(at);
	return err ? err : out->oom ? -ENOMEM : 0;
}

unsigned long long aggregate__series(struct aggregate *a)
{
	unsigned long long n;

	pthread_mutex_lock(&a->lock);
	n = a->nseries;
	pthread_mutex_unlock(&a->lock);
	return n;
}

unsigned long long aggregate__overflow(struct aggregate *a)
{
	unsigned long long n;

	pthread_mutex_lock(&a->lock);
	n = a->overflow;
	pthread_mutex_unlock(&a->lock);
	return n;
}
