/*
 * perf/hdr.h — an HDR-style latency histogram (log-linear buckets), as
 * HdrHistogram does it: values from 1 ns to ~1.1e12 ns (18 minutes) with 2
 * significant decimal digits (relative error <= 1/128 < 1%), fixed size,
 * mergeable by adding counts, serializable to a fixed little-endian form
 * so histograms from many processes (or MPI ranks) can be merged.
 *
 * Bucket layout: values v < 256 have their own bucket; above, each power
 * of two [2^k, 2^(k+1)) is split into 128 equal sub-buckets. A bucket's
 * reported value is its midpoint (or v itself when exact).
 *
 * Threading: a histogram is used by one thread at a time.
 */
#ifndef STRATA_PERF_HDR_H
#define STRATA_PERF_HDR_H

#include <stddef.h>
#include <stdint.h>

#define HDR_SUB_BITS 7                       /**< 128 sub-buckets per power of 2 */
#define HDR_MAX_EXP 40                       /**< values < 2^40 ns */
/** 256 exact buckets for v < 2^8, then 128 per power of two up to 2^40 */
#define HDR_BUCKETS ((HDR_MAX_EXP - HDR_SUB_BITS - 1) * (1u << HDR_SUB_BITS) + (2u << HDR_SUB_BITS))

typedef struct hdr_hist {
    uint64_t count;              /**< values recorded */
    uint64_t min, max;           /**< exact extremes (min UINT64_MAX when empty) */
    double sum;                  /**< for the mean */
    uint64_t counts[HDR_BUCKETS];
} hdr_hist_t;

void hdr_init(hdr_hist_t *h);

/** Record value v (ns); values >= 2^40 are clamped to 2^40 - 1 (the last
 *  bucket), and min, max and sum see the clamped value. */
void hdr_record(hdr_hist_t *h, uint64_t v);

/** Record v count times. */
void hdr_record_n(hdr_hist_t *h, uint64_t v, uint64_t count);

/** dst += src. */
void hdr_merge(hdr_hist_t *dst, const hdr_hist_t *src);

/** Value at percentile p (0..100): the value of the bucket holding the
 *  ceil(p% * count)-th smallest recorded value, i.e. the smallest bucket
 *  such that at least p% of the values are in it or below; the bucket's
 *  value is its midpoint pulled into [min, max]. 0 when empty. p >= 100
 *  gives max, p <= 0 gives min. */
uint64_t hdr_percentile(const hdr_hist_t *h, double p);

double hdr_mean(const hdr_hist_t *h);

/** Bucket index of v, and the lowest / highest value a bucket holds. */
uint32_t hdr_bucket_of(uint64_t v);
uint64_t hdr_bucket_low(uint32_t b);
uint64_t hdr_bucket_high(uint32_t b);

/** Serialized form: "HDR1" magic, u32 version 1, u64 count, min, max,
 *  f64 sum, u32 nonzero bucket count, then (u32 bucket, u64 count) pairs;
 *  all little-endian. hdr_serialize returns the bytes needed (call with
 *  buf NULL to size it) and writes at most cap bytes. hdr_deserialize
 *  returns 0, or -1 on any malformed input (bad magic, version, bucket out
 *  of range, truncated, inconsistent count), leaving *h unspecified. */
size_t hdr_serialize(const hdr_hist_t *h, void *buf, size_t cap);
int hdr_deserialize(hdr_hist_t *h, const void *buf, size_t len);

/** Write the CDF as "value_us cumulative_fraction" lines (one per nonzero
 *  bucket) to a file, for plotting; returns 0 or -1 (errno). */
int hdr_write_cdf(const hdr_hist_t *h, const char *path);

#endif
