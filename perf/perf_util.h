/*
 * perf/perf_util.h — the small helpers perf/'s programs and
 * examples/inference/infer.c share: a monotonic clock, the splitmix64
 * generator, two Zipf samplers, latency samples and nearest-rank
 * percentiles, client counter deltas, option values.
 *
 * Each program compiles perf_util.c in (perf/CMakeLists.txt,
 * examples/CMakeLists.txt). The generator steps are inline: bench_core.c
 * calls them in loops it builds at -O3.
 *
 * Threading: no shared state; a sampler, once built, may be read by many
 * threads and forked processes at once; a generator state belongs to one.
 */
#ifndef STRATA_PERF_UTIL_H
#define STRATA_PERF_UTIL_H

#include <stddef.h>
#include <stdint.h>

#include "strata.h"

/** CLOCK_MONOTONIC in nanoseconds. */
uint64_t perf_now_ns(void);

/** CLOCK_MONOTONIC in seconds. */
double perf_now_s(void);

/** splitmix64's finalizer: a bijection on u64 (so also rank -> key). */
static inline uint64_t perf_mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/** splitmix64: advance *state, return 64 random bits. */
static inline uint64_t perf_rand_next(uint64_t *state)
{
    *state += 0x9e3779b97f4a7c15ull;
    return perf_mix64(*state);
}

/** Uniform in [0, 1), 53 bits. */
static inline double perf_rand_u01(uint64_t *state)
{
    return (double)(perf_rand_next(state) >> 11) * 0x1.0p-53;
}

/** Uniform in [0, n) (multiply-shift; n > 0). */
static inline uint64_t perf_rand_below(uint64_t *state, uint64_t n)
{
    return (uint64_t)(((unsigned __int128)perf_rand_next(state) * n) >> 64);
}

/** Greatest common divisor (gcd(a, 0) = a). */
uint64_t perf_gcd_u64(uint64_t a, uint64_t b);

/** Zipf(s) over ranks by rejection-inversion (Hörmann & Derflinger 1996,
 *  as Apache Commons' RejectionInversionZipfSampler): O(1) memory and
 *  time per draw, exact for any n and s > 0. */
typedef struct perf_zipf {
    double s;   /**< exponent */
    double n;   /**< number of ranks */
    double hx1; /**< H(1.5) - 1 */
    double hxn; /**< H(n + 0.5) */
    double sq;  /**< 2 - H^-1(H(2.5) - h(2)): the acceptance squeeze */
} perf_zipf_t;

/** Build the sampler of Zipf(s) over n >= 1 ranks. */
void perf_zipf_init(perf_zipf_t *z, uint64_t n, double s);

/** A rank in [0, n), 0 the most frequent; advances *rng (perf_rand_next). */
uint64_t perf_zipf_draw(const perf_zipf_t *z, uint64_t *rng);

/** Zipf(s) by table: cdf[i] = P(rank <= i), drawn by binary search. Built
 *  once (n doubles), then read by any number of processes. */
typedef struct perf_zipf_cdf {
    double *cdf; /**< n increasing values, cdf[n-1] = 1; owned */
    uint64_t n;  /**< ranks */
} perf_zipf_cdf_t;

/** Build the table of Zipf(s) over n >= 1 ranks. 0, or -1 when out of
 *  memory (z->cdf is then NULL). Free with perf_zipf_cdf_free. */
int perf_zipf_cdf_init(perf_zipf_cdf_t *z, uint64_t n, double s);

/** The rank (0 the most frequent) of a uniform u in [0, 1): the first i
 *  with cdf[i] > u. */
uint64_t perf_zipf_cdf_rank(const perf_zipf_cdf_t *z, double u);

/** Free the table; safe on a zeroed or freed one. */
void perf_zipf_cdf_free(perf_zipf_cdf_t *z);

/** Latency samples in ns, one per request in order, with a scratch copy
 *  to sort for percentiles. Zero-initialize; free with perf_lat_free. */
typedef struct perf_lat {
    uint64_t *ns;   /**< samples; owned */
    size_t n;       /**< samples held */
    size_t cap;     /**< entries allocated in ns */
    size_t mark;    /**< the caller's: first sample of its current window */
    uint64_t *tmp;  /**< sorted copy (perf_lat_sorted); owned */
    size_t tmp_cap; /**< entries allocated in tmp */
} perf_lat_t;

/** Append a sample; once max are held, later ones are dropped (0 all the
 *  same: the caller's counts still run). -1 when out of memory. */
int perf_lat_add(perf_lat_t *l, uint64_t ns, size_t max);

/** Samples [from, l->n) sorted ascending, in l->tmp (valid until the next
 *  call); from < l->n. NULL when out of memory. */
const uint64_t *perf_lat_sorted(perf_lat_t *l, size_t from);

/** Free the samples and zero *l. */
void perf_lat_free(perf_lat_t *l);

/** d = a - b for every counter: what a client did between snapshot b and
 *  the later snapshot a. */
void perf_client_stats_delta(const strata_client_stats_t *a, const strata_client_stats_t *b,
                             strata_client_stats_t *d);

/** A rate for a progress line: "1.23M", "45.6k" or "789". */
void perf_fmt_rate(char *buf, size_t len, double v);

/** Option value v of option name as a decimal integer in [lo, hi] (a
 *  number in [lo, hi] for perf_parse_double) into *out; otherwise a line
 *  "PROG: NAME V: want ..." on stderr, -1, and *out untouched. */
int perf_parse_u64(const char *prog, const char *name, const char *v, uint64_t lo, uint64_t hi,
                   uint64_t *out);
int perf_parse_double(const char *prog, const char *name, const char *v, double lo, double hi,
                      double *out);

/** qsort comparator of uint64_t, ascending. */
int perf_cmp_u64(const void *a, const void *b);

/** Percentile q (0 < q <= 1) of sorted[0..n), n > 0, by nearest rank:
 *  sorted[ceil(q * n) - 1]. */
uint64_t perf_pct_sorted(const uint64_t *sorted, size_t n, double q);

#endif
