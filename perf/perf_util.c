/*
 * perf/perf_util.c — the helpers perf/'s programs and the inference
 * example share (perf_util.h). No state of its own.
 */
#define _GNU_SOURCE
#include "perf_util.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

uint64_t perf_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

double perf_now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

uint64_t perf_gcd_u64(uint64_t a, uint64_t b)
{
    while (b) {
        uint64_t t = a % b;
        a = b;
        b = t;
    }
    return a;
}

/* ---- Zipf by rejection-inversion --------------------------------------- */

static double zipf_helper1(double x) /* log1p(x) / x */
{
    return fabs(x) > 1e-8 ? log1p(x) / x : 1.0 - x * (0.5 - x * (1.0 / 3.0 - 0.25 * x));
}

static double zipf_helper2(double x) /* expm1(x) / x */
{
    return fabs(x) > 1e-8 ? expm1(x) / x
                          : 1.0 + x * 0.5 * (1.0 + x * (1.0 / 3.0) * (1.0 + 0.25 * x));
}

static double zipf_h(const perf_zipf_t *z, double x)
{
    return exp(-z->s * log(x));
}

static double zipf_H(const perf_zipf_t *z, double x)
{
    double lx = log(x);
    return zipf_helper2((1.0 - z->s) * lx) * lx;
}

static double zipf_Hinv(const perf_zipf_t *z, double x)
{
    double t = x * (1.0 - z->s);
    if (t < -1.0)
        t = -1.0;
    return exp(zipf_helper1(t) * x);
}

void perf_zipf_init(perf_zipf_t *z, uint64_t n, double s)
{
    z->s = s;
    z->n = (double)n;
    z->hx1 = zipf_H(z, 1.5) - 1.0;
    z->hxn = zipf_H(z, z->n + 0.5);
    z->sq = 2.0 - zipf_Hinv(z, zipf_H(z, 2.5) - zipf_h(z, 2.0));
}

uint64_t perf_zipf_draw(const perf_zipf_t *z, uint64_t *rng)
{
    for (;;) {
        double u = z->hxn + perf_rand_u01(rng) * (z->hx1 - z->hxn);
        double x = zipf_Hinv(z, u);
        double k = floor(x + 0.5);
        if (k < 1.0)
            k = 1.0;
        else if (k > z->n)
            k = z->n;
        if (k - x <= z->sq || u >= zipf_H(z, k + 0.5) - zipf_h(z, k))
            return (uint64_t)k - 1;
    }
}

/* ---- Zipf by table ----------------------------------------------------- */

int perf_zipf_cdf_init(perf_zipf_cdf_t *z, uint64_t n, double s)
{
    z->n = n;
    z->cdf = malloc(n * sizeof(double));
    if (!z->cdf)
        return -1;
    double sum = 0;
    for (uint64_t i = 0; i < n; i++) {
        sum += pow((double)(i + 1), -s);
        z->cdf[i] = sum;
    }
    for (uint64_t i = 0; i < n; i++)
        z->cdf[i] /= sum;
    z->cdf[n - 1] = 1.0;
    return 0;
}

uint64_t perf_zipf_cdf_rank(const perf_zipf_cdf_t *z, double u)
{
    uint64_t lo = 0, hi = z->n - 1;
    while (lo < hi) {
        uint64_t mid = lo + (hi - lo) / 2;
        if (z->cdf[mid] > u)
            hi = mid;
        else
            lo = mid + 1;
    }
    return lo;
}

void perf_zipf_cdf_free(perf_zipf_cdf_t *z)
{
    free(z->cdf);
    z->cdf = NULL;
}

/* ---- percentiles ------------------------------------------------------- */

int perf_cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

int perf_lat_add(perf_lat_t *l, uint64_t ns, size_t max)
{
    if (l->n == l->cap) {
        if (l->cap >= max)
            return 0;
        size_t cap = l->cap ? l->cap * 2 : 65536;
        uint64_t *p = realloc(l->ns, cap * sizeof(uint64_t));
        if (!p)
            return -1;
        l->ns = p;
        l->cap = cap;
    }
    l->ns[l->n++] = ns;
    return 0;
}

const uint64_t *perf_lat_sorted(perf_lat_t *l, size_t from)
{
    size_t n = l->n - from;
    if (n > l->tmp_cap) {
        uint64_t *p = realloc(l->tmp, n * sizeof(uint64_t));
        if (!p)
            return NULL;
        l->tmp = p;
        l->tmp_cap = n;
    }
    memcpy(l->tmp, l->ns + from, n * sizeof(uint64_t));
    qsort(l->tmp, n, sizeof(uint64_t), perf_cmp_u64);
    return l->tmp;
}

void perf_lat_free(perf_lat_t *l)
{
    free(l->ns);
    free(l->tmp);
    memset(l, 0, sizeof(*l));
}

uint64_t perf_pct_sorted(const uint64_t *sorted, size_t n, double q)
{
    size_t idx = (size_t)ceil(q * (double)n);
    idx = idx ? idx - 1 : 0;
    return sorted[idx < n ? idx : n - 1];
}

/* ---- client counters, progress lines, options -------------------------- */

void perf_client_stats_delta(const strata_client_stats_t *a, const strata_client_stats_t *b,
                             strata_client_stats_t *d)
{
    d->lookups = a->lookups - b->lookups;
    d->unique_keys = a->unique_keys - b->unique_keys;
    d->onesided_hits = a->onesided_hits - b->onesided_hits;
    d->onesided_index = a->onesided_index - b->onesided_index;
    d->onesided_absent = a->onesided_absent - b->onesided_absent;
    d->rpc_keys = a->rpc_keys - b->rpc_keys;
    d->torn_retries = a->torn_retries - b->torn_retries;
    d->stale_locations = a->stale_locations - b->stale_locations;
    d->pushes = a->pushes - b->pushes;
    d->rpcs = a->rpcs - b->rpcs;
    d->relayouts = a->relayouts - b->relayouts;
    d->bytes_sent = a->bytes_sent - b->bytes_sent;
    d->bytes_received = a->bytes_received - b->bytes_received;
    d->bytes_onesided = a->bytes_onesided - b->bytes_onesided;
}

void perf_fmt_rate(char *buf, size_t len, double v)
{
    if (v >= 1e6)
        snprintf(buf, len, "%.2fM", v / 1e6);
    else if (v >= 1e3)
        snprintf(buf, len, "%.1fk", v / 1e3);
    else
        snprintf(buf, len, "%.0f", v);
}

int perf_parse_u64(const char *prog, const char *name, const char *v, uint64_t lo, uint64_t hi,
                   uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long x = strtoull(v, &end, 10);
    if (errno || end == v || *end || v[0] == '-' || x < lo || x > hi) {
        fprintf(stderr, "%s: %s %s: want an integer in [%" PRIu64 ", %" PRIu64 "]\n", prog, name, v,
                lo, hi);
        return -1;
    }
    *out = x;
    return 0;
}

int perf_parse_double(const char *prog, const char *name, const char *v, double lo, double hi,
                      double *out)
{
    char *end;
    errno = 0;
    double x = strtod(v, &end);
    if (errno || end == v || *end || !(x >= lo && x <= hi)) {
        fprintf(stderr, "%s: %s %s: want a number in [%g, %g]\n", prog, name, v, lo, hi);
        return -1;
    }
    *out = x;
    return 0;
}
