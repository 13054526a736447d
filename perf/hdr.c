/*
 * perf/hdr.c — the log-linear latency histogram of hdr.h.
 *
 * Layout: bucket b < 256 holds exactly the value b. For v >= 256 with top
 * bit k (8 <= k < HDR_MAX_EXP), the bucket is 256 + (k - 8) * 128 + the 7
 * bits below the top one, so [2^k, 2^(k+1)) is split into 128 buckets of
 * width 2^(k-7): a bucket's width is at most 1/128 of its low value.
 *
 * Invariants (kept by hdr_record_n and hdr_merge, checked by
 * hdr_deserialize): count is the sum of counts[]; when count > 0, min
 * lies in the lowest nonzero bucket and max in the highest, min <= max;
 * when count == 0, min == UINT64_MAX, max == 0, sum == 0. Values >= 2^40
 * are clamped to 2^40 - 1 before they are recorded (min, max and sum see
 * the clamped value), so min and max always lie in their buckets.
 *
 * Threading: none; a histogram is used by one thread at a time.
 */
#include "hdr.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#define HDR_EXACT (1u << (HDR_SUB_BITS + 1))            /* 256 exact buckets */
#define HDR_VMAX ((UINT64_C(1) << HDR_MAX_EXP) - 1)      /* largest recordable value */
#define HDR_MAGIC "HDR1"
#define HDR_VERSION 1u
#define HDR_HEAD_BYTES (4 + 4 + 8 + 8 + 8 + 8 + 4)       /* magic .. nonzero count */
#define HDR_PAIR_BYTES (4 + 8)

_Static_assert(HDR_BUCKETS == HDR_EXACT + (HDR_MAX_EXP - HDR_SUB_BITS - 1) * (1u << HDR_SUB_BITS),
               "HDR_BUCKETS: 256 exact buckets plus 128 per power of two in [2^8, 2^40)");
_Static_assert(HDR_MAX_EXP < 64, "values fit in uint64_t");

void hdr_init(hdr_hist_t *h)
{
    memset(h, 0, sizeof(*h));
    h->min = UINT64_MAX;
}

uint32_t hdr_bucket_of(uint64_t v)
{
    if (v > HDR_VMAX)
        v = HDR_VMAX;
    if (v < HDR_EXACT)
        return (uint32_t)v;
    unsigned k = 63u - (unsigned)__builtin_clzll(v);      /* 8 <= k < HDR_MAX_EXP */
    unsigned sub = (unsigned)(v >> (k - HDR_SUB_BITS)) & ((1u << HDR_SUB_BITS) - 1);
    return HDR_EXACT + (k - HDR_SUB_BITS - 1) * (1u << HDR_SUB_BITS) + sub;
}

uint64_t hdr_bucket_low(uint32_t b)
{
    if (b >= HDR_BUCKETS)
        b = HDR_BUCKETS - 1;
    if (b < HDR_EXACT)
        return b;
    unsigned k = (b - HDR_EXACT) / (1u << HDR_SUB_BITS) + HDR_SUB_BITS + 1;
    uint64_t sub = (b - HDR_EXACT) % (1u << HDR_SUB_BITS);
    return ((UINT64_C(1) << HDR_SUB_BITS) + sub) << (k - HDR_SUB_BITS);
}

uint64_t hdr_bucket_high(uint32_t b)
{
    if (b >= HDR_BUCKETS)
        b = HDR_BUCKETS - 1;
    if (b < HDR_EXACT)
        return b;
    unsigned k = (b - HDR_EXACT) / (1u << HDR_SUB_BITS) + HDR_SUB_BITS + 1;
    return hdr_bucket_low(b) + (UINT64_C(1) << (k - HDR_SUB_BITS)) - 1;
}

/* A bucket's reported value: its midpoint, pulled into [min, max] so that
 * the extremes' buckets report no value that was never recorded past them. */
static uint64_t hdr_bucket_value(const hdr_hist_t *h, uint32_t b)
{
    uint64_t lo = hdr_bucket_low(b), hi = hdr_bucket_high(b);
    uint64_t v = lo + (hi - lo) / 2;
    if (v < h->min)
        v = h->min;
    if (v > h->max)
        v = h->max;
    return v;
}

void hdr_record_n(hdr_hist_t *h, uint64_t v, uint64_t count)
{
    if (count == 0)
        return;
    if (v > HDR_VMAX)
        v = HDR_VMAX;
    h->counts[hdr_bucket_of(v)] += count;
    h->count += count;
    if (v < h->min)
        h->min = v;
    if (v > h->max)
        h->max = v;
    h->sum += (double)v * (double)count;
}

void hdr_record(hdr_hist_t *h, uint64_t v)
{
    hdr_record_n(h, v, 1);
}

void hdr_merge(hdr_hist_t *dst, const hdr_hist_t *src)
{
    if (src->count == 0)
        return;
    for (uint32_t b = 0; b < HDR_BUCKETS; b++)
        dst->counts[b] += src->counts[b];
    dst->count += src->count;
    if (src->min < dst->min)
        dst->min = src->min;
    if (src->max > dst->max)
        dst->max = src->max;
    dst->sum += src->sum;
}

uint64_t hdr_percentile(const hdr_hist_t *h, double p)
{
    if (h->count == 0)
        return 0;
    if (!(p > 0))           /* also NaN */
        return h->min;
    if (p >= 100)
        return h->max;
    /* rank = ceil(p% of count), the 1-based position in sorted order; the
     * small slack keeps 99.9% of 1000 at 999 despite 0.999 not being exact */
    double r = ceil(p / 100.0 * (double)h->count - 1e-7);
    uint64_t rank = r < 1 ? 1 : (r >= (double)h->count ? h->count : (uint64_t)r);
    uint64_t cum = 0;
    for (uint32_t b = 0; b < HDR_BUCKETS; b++) {
        cum += h->counts[b];
        if (cum >= rank)
            return hdr_bucket_value(h, b);
    }
    return h->max;          /* unreachable while count == sum of counts */
}

double hdr_mean(const hdr_hist_t *h)
{
    return h->count ? h->sum / (double)h->count : 0.0;
}

/* --- serialization ------------------------------------------------------ */

static unsigned char *put_u32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
    return p + 4;
}

static unsigned char *put_u64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (8 * i));
    return p + 8;
}

static uint32_t get_u32(const unsigned char *p)
{
    uint32_t v = 0;
    for (int i = 0; i < 4; i++)
        v |= (uint32_t)p[i] << (8 * i);
    return v;
}

static uint64_t get_u64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

size_t hdr_serialize(const hdr_hist_t *h, void *buf, size_t cap)
{
    uint32_t nz = 0;
    for (uint32_t b = 0; b < HDR_BUCKETS; b++)
        nz += h->counts[b] != 0;
    size_t need = HDR_HEAD_BYTES + (size_t)nz * HDR_PAIR_BYTES;
    if (buf == NULL)
        return need;

    /* Build in a local piece at a time so that at most cap bytes are
     * written even when the buffer is short. */
    unsigned char head[HDR_HEAD_BYTES], *p = head;
    uint64_t sum_bits;
    memcpy(&sum_bits, &h->sum, sizeof(sum_bits));
    memcpy(p, HDR_MAGIC, 4);
    p = put_u32(p + 4, HDR_VERSION);
    p = put_u64(p, h->count);
    p = put_u64(p, h->min);
    p = put_u64(p, h->max);
    p = put_u64(p, sum_bits);
    put_u32(p, nz);

    unsigned char *out = buf;
    size_t off = 0;
    size_t n = cap < sizeof(head) ? cap : sizeof(head);
    memcpy(out, head, n);
    off = n;
    for (uint32_t b = 0; b < HDR_BUCKETS && off < cap; b++) {
        if (h->counts[b] == 0)
            continue;
        unsigned char pair[HDR_PAIR_BYTES];
        put_u64(put_u32(pair, b), h->counts[b]);
        n = cap - off < sizeof(pair) ? cap - off : sizeof(pair);
        memcpy(out + off, pair, n);
        off += n;
    }
    return need;
}

int hdr_deserialize(hdr_hist_t *h, const void *buf, size_t len)
{
    const unsigned char *p = buf;
    if (buf == NULL || len < HDR_HEAD_BYTES || memcmp(p, HDR_MAGIC, 4) != 0)
        return -1;
    if (get_u32(p + 4) != HDR_VERSION)
        return -1;
    uint64_t count = get_u64(p + 8), min = get_u64(p + 16), max = get_u64(p + 24);
    uint64_t sum_bits = get_u64(p + 32);
    uint32_t nz = get_u32(p + 40);
    double sum;
    memcpy(&sum, &sum_bits, sizeof(sum));
    if (nz > HDR_BUCKETS || len != HDR_HEAD_BYTES + (size_t)nz * HDR_PAIR_BYTES)
        return -1;
    if (!isfinite(sum) || sum < 0)
        return -1;

    hdr_init(h);
    uint64_t total = 0;
    int64_t prev = -1;
    for (uint32_t i = 0; i < nz; i++) {
        const unsigned char *q = p + HDR_HEAD_BYTES + (size_t)i * HDR_PAIR_BYTES;
        uint32_t b = get_u32(q);
        uint64_t c = get_u64(q + 4);
        /* buckets strictly ascending (no duplicates), in range, nonzero */
        if (b >= HDR_BUCKETS || (int64_t)b <= prev || c == 0)
            return -1;
        if (__builtin_add_overflow(total, c, &total))
            return -1;
        h->counts[b] = c;
        prev = b;
    }
    if (total != count)
        return -1;
    if (count == 0) {
        if (min != UINT64_MAX || max != 0 || sum != 0)
            return -1;
    } else {
        /* min in the lowest nonzero bucket, max in the highest */
        uint32_t first = get_u32(p + HDR_HEAD_BYTES);
        uint32_t last = (uint32_t)prev;
        if (min > max || max > HDR_VMAX || hdr_bucket_of(min) != first ||
            hdr_bucket_of(max) != last)
            return -1;
    }
    h->count = count;
    h->min = min;
    h->max = max;
    h->sum = sum;
    return 0;
}

int hdr_write_cdf(const hdr_hist_t *h, const char *path)
{
    FILE *f = fopen(path, "w");
    if (f == NULL)
        return -1;
    uint64_t cum = 0;
    for (uint32_t b = 0; b < HDR_BUCKETS && h->count; b++) {
        if (h->counts[b] == 0)
            continue;
        cum += h->counts[b];
        fprintf(f, "%.9g %.9g\n", (double)hdr_bucket_value(h, b) / 1e3,
                (double)cum / (double)h->count);
    }
    int err = ferror(f) ? (errno ? errno : EIO) : 0;
    if (fclose(f) != 0 && err == 0)
        err = errno ? errno : EIO;
    if (err) {
        errno = err;
        return -1;
    }
    return 0;
}
