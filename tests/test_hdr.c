/*
 * tests/test_hdr.c — perf/hdr.c: the bucket layout, exact small values,
 * percentiles against a sorted reference (10^6 log-uniform values),
 * merging, clamping, and the serialized form, whose decoder must reject
 * every malformed buffer (truncations, bad magic/version/bucket/count)
 * and survive random corruption.
 */
#include "hdr.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testutil.h"

#define VMAX ((UINT64_C(1) << HDR_MAX_EXP) - 1)

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

/* Percentiles tested, in hundredths of a percent. */
static const uint32_t k_pct[] = { 1, 10, 100, 1000, 2500, 5000, 7500, 9000, 9900, 9990, 9999, 10000 };
#define NPCT (sizeof(k_pct) / sizeof(k_pct[0]))

/* The histogram of sorted[0..n) answers every percentile with a value in
 * the bucket of the true one, within 1/128 of it. */
static void check_percentiles(const hdr_hist_t *h, const uint64_t *sorted, size_t n)
{
    CHECK(hdr_percentile(h, 0) == sorted[0], "p0 %llu != min %llu",
          (unsigned long long)hdr_percentile(h, 0), (unsigned long long)sorted[0]);
    CHECK(hdr_percentile(h, 100) == sorted[n - 1], "p100 != max");
    for (size_t i = 0; i < NPCT; i++) {
        double p = k_pct[i] / 100.0;
        uint64_t rank = ((uint64_t)k_pct[i] * n + 9999) / 10000;   /* ceil, exact */
        if (rank == 0)
            rank = 1;
        uint64_t truth = sorted[rank - 1];
        uint64_t got = hdr_percentile(h, p);
        uint32_t b = hdr_bucket_of(truth);
        CHECK(hdr_bucket_of(got) == b, "p%.2f: got %llu (bucket %u), true %llu (bucket %u)", p,
              (unsigned long long)got, hdr_bucket_of(got), (unsigned long long)truth, b);
        double rel = fabs((double)got - (double)truth) / (double)(truth ? truth : 1);
        CHECK(rel <= 1.0 / 128, "p%.2f: relative error %g", p, rel);
    }
}

static void check_equal(const hdr_hist_t *a, const hdr_hist_t *b, int exact_sum)
{
    CHECK(a->count == b->count, "count %llu != %llu", (unsigned long long)a->count,
          (unsigned long long)b->count);
    CHECK(a->min == b->min && a->max == b->max, "min/max differ");
    if (exact_sum)
        CHECK(memcmp(&a->sum, &b->sum, sizeof(a->sum)) == 0, "sum %.17g != %.17g", a->sum, b->sum);
    else
        CHECK(fabs(a->sum - b->sum) <= 1e-12 * fabs(a->sum), "sum %.17g vs %.17g", a->sum, b->sum);
    for (uint32_t i = 0; i < HDR_BUCKETS; i++)
        CHECK(a->counts[i] == b->counts[i], "bucket %u: %llu != %llu", i,
              (unsigned long long)a->counts[i], (unsigned long long)b->counts[i]);
}

static void test_layout(void)
{
    CHECK(HDR_BUCKETS == 256 + 32 * 128, "HDR_BUCKETS %u", (unsigned)HDR_BUCKETS);
    CHECK(hdr_bucket_low(0) == 0 && hdr_bucket_high(HDR_BUCKETS - 1) == VMAX, "range ends");
    for (uint32_t b = 0; b < HDR_BUCKETS; b++) {
        uint64_t lo = hdr_bucket_low(b), hi = hdr_bucket_high(b);
        CHECK(lo <= hi, "bucket %u empty", b);
        CHECK(hdr_bucket_of(lo) == b && hdr_bucket_of(hi) == b, "bucket %u ends", b);
        if (b + 1 < HDR_BUCKETS)
            CHECK(hi + 1 == hdr_bucket_low(b + 1), "gap after bucket %u", b);
        if (b < 256)
            CHECK(lo == b && hi == b, "bucket %u not exact", b);
        else
            CHECK((hi - lo + 1) * 128 <= lo, "bucket %u too wide: [%llu, %llu]", b,
                  (unsigned long long)lo, (unsigned long long)hi);
    }
    CHECK(hdr_bucket_of(VMAX + 1) == HDR_BUCKETS - 1 && hdr_bucket_of(UINT64_MAX) == HDR_BUCKETS - 1,
          "values past 2^40 in the last bucket");
}

static void test_empty(void)
{
    hdr_hist_t *h = malloc(sizeof(*h)), *g = malloc(sizeof(*g));
    CHECK(h && g, "malloc");
    hdr_init(h);
    CHECK(h->count == 0 && h->min == UINT64_MAX && h->max == 0 && h->sum == 0, "init");
    for (size_t i = 0; i < NPCT; i++)
        CHECK(hdr_percentile(h, k_pct[i] / 100.0) == 0, "empty percentile");
    CHECK(hdr_percentile(h, 0) == 0 && hdr_mean(h) == 0, "empty p0/mean");
    unsigned char buf[64];
    size_t n = hdr_serialize(h, buf, sizeof(buf));
    CHECK(n == 44, "empty serialized size %zu", n);
    memset(g, 0xa5, sizeof(*g));
    CHECK(hdr_deserialize(g, buf, n) == 0, "empty round trip");
    check_equal(h, g, 1);
    /* merging an empty one changes nothing */
    hdr_record(g, 7);
    hdr_merge(g, h);
    CHECK(g->count == 1 && g->min == 7 && g->max == 7, "merge of empty");
    free(g);
    free(h);
}

static void test_exact_small(void)
{
    hdr_hist_t *h = malloc(sizeof(*h));
    CHECK(h, "malloc");
    hdr_init(h);
    hdr_record(h, 5);
    for (size_t i = 0; i < NPCT; i++)
        CHECK(hdr_percentile(h, k_pct[i] / 100.0) == 5, "single value");
    CHECK(hdr_mean(h) == 5, "mean");

    hdr_init(h);
    for (uint64_t v = 0; v < 256; v++)
        hdr_record_n(h, v, 4);
    CHECK(h->count == 1024 && h->min == 0 && h->max == 255, "count/min/max");
    for (uint64_t v = 0; v < 256; v++)
        CHECK(h->counts[v] == 4, "bucket %llu", (unsigned long long)v);
    /* value at rank r (1-based) is (r - 1) / 4 */
    for (uint32_t pm = 1; pm <= 1000; pm++) {
        double p = pm / 10.0;
        uint64_t rank = ((uint64_t)pm * 1024 + 999) / 1000;
        CHECK(hdr_percentile(h, p) == (rank - 1) / 4, "p%.1f: %llu, expected %llu", p,
              (unsigned long long)hdr_percentile(h, p), (unsigned long long)((rank - 1) / 4));
    }
    CHECK(fabs(hdr_mean(h) - 127.5) < 1e-12, "mean %g", hdr_mean(h));
    hdr_record_n(h, 3, 0);
    CHECK(h->count == 1024, "record_n of 0 changes nothing");
    free(h);
}

static void test_clamp(void)
{
    hdr_hist_t *h = malloc(sizeof(*h));
    CHECK(h, "malloc");
    hdr_init(h);
    hdr_record(h, UINT64_MAX);
    hdr_record(h, VMAX + 1);
    hdr_record(h, UINT64_C(1) << 50);
    CHECK(h->count == 3 && h->counts[HDR_BUCKETS - 1] == 3, "clamped into the last bucket");
    CHECK(h->max == VMAX && h->min == VMAX, "min/max clamped: %llu", (unsigned long long)h->max);
    CHECK(hdr_percentile(h, 100) == VMAX && hdr_percentile(h, 50) == VMAX, "percentile of clamped");
    CHECK(isfinite(hdr_mean(h)) && hdr_mean(h) == (double)VMAX, "mean of clamped");
    hdr_record(h, 1);
    unsigned char buf[128];
    size_t n = hdr_serialize(h, buf, sizeof(buf));
    hdr_hist_t *g = malloc(sizeof(*g));
    CHECK(g && n <= sizeof(buf) && hdr_deserialize(g, buf, n) == 0, "clamped round trip");
    check_equal(h, g, 1);
    free(g);
    free(h);
}

static uint64_t log_uniform(test_rng_t *r)
{
    /* log-uniform over [1, 2^40), with 1% zeros and 1% clamped giants */
    uint64_t k = test_rng_below(r, 100);
    if (k == 0)
        return 0;
    if (k == 1)
        return VMAX + test_rng_below(r, UINT64_C(1) << 50);
    double u = (double)(test_rng_next(r) >> 11) * 0x1.0p-53;
    uint64_t v = (uint64_t)exp2(u * HDR_MAX_EXP);
    return v > VMAX ? VMAX : v;
}

static void test_percentiles_and_merge(uint64_t seed)
{
    const size_t n = (size_t)test_scaled(1000000);
    uint64_t *vals = malloc(n * sizeof(*vals));
    hdr_hist_t *all = malloc(sizeof(*all)), *a = malloc(sizeof(*a)), *b = malloc(sizeof(*b));
    hdr_hist_t *m = malloc(sizeof(*m)), *rt = malloc(sizeof(*rt));
    CHECK(vals && all && a && b && m && rt, "malloc");
    test_rng_t r;
    test_rng_seed(&r, seed);
    hdr_init(all);
    hdr_init(a);
    hdr_init(b);
    long double sum = 0;
    for (size_t i = 0; i < n; i++) {
        uint64_t v = log_uniform(&r);
        /* B: a narrower, shifted distribution, so A and B differ */
        if (i % 3 == 0)
            v = 1000 + v % 100000;
        vals[i] = v > VMAX ? VMAX : v;
        hdr_record(all, v);
        hdr_record(i % 3 == 0 ? b : a, v);
        sum += vals[i];
    }
    qsort(vals, n, sizeof(*vals), cmp_u64);
    CHECK(all->count == n && all->min == vals[0] && all->max == vals[n - 1], "count/min/max");
    CHECK(fabsl((long double)hdr_mean(all) - sum / n) <= 1e-9L * (sum / n), "mean");
    check_percentiles(all, vals, n);

    /* merge(A, B) is the histogram of A ∪ B, bucket by bucket */
    hdr_init(m);
    hdr_merge(m, a);
    hdr_merge(m, b);
    check_equal(m, all, 0);
    for (size_t i = 0; i < NPCT; i++)
        CHECK(hdr_percentile(m, k_pct[i] / 100.0) == hdr_percentile(all, k_pct[i] / 100.0),
              "merged percentile");
    check_percentiles(m, vals, n);

    /* serialize -> deserialize round trip, and the size query */
    size_t need = hdr_serialize(all, NULL, 0);
    unsigned char *buf = malloc(need + 16);
    CHECK(buf, "malloc");
    memset(buf, 0xee, need + 16);
    CHECK(hdr_serialize(all, buf, need) == need, "serialize size");
    for (size_t i = need; i < need + 16; i++)
        CHECK(buf[i] == 0xee, "serialize wrote past its size");
    CHECK(hdr_deserialize(rt, buf, need) == 0, "deserialize");
    check_equal(all, rt, 1);
    /* a short buffer is written up to cap only */
    memset(buf, 0xee, need + 16);
    CHECK(hdr_serialize(all, buf, 57) == need, "short serialize returns need");
    for (size_t i = 57; i < need + 16; i++)
        CHECK(buf[i] == 0xee, "short serialize wrote byte %zu", i);
    free(buf);

    /* record_n(v, k) == k times record(v) */
    hdr_init(a);
    hdr_init(b);
    for (int i = 0; i < 100; i++) {
        uint64_t v = log_uniform(&r), k = 1 + test_rng_below(&r, 5);
        hdr_record_n(a, v, k);
        for (uint64_t j = 0; j < k; j++)
            hdr_record(b, v);
    }
    check_equal(a, b, 0);

    /* CDF file: one line per nonzero bucket, ascending, ending at 1 */
    char path[] = "/tmp/test_hdr_cdf.XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0, "mkstemp");
    close(fd);
    CHECK(hdr_write_cdf(all, path) == 0, "write cdf");
    FILE *f = fopen(path, "r");
    CHECK(f, "open cdf");
    uint32_t nz = 0, lines = 0;
    for (uint32_t i = 0; i < HDR_BUCKETS; i++)
        nz += all->counts[i] != 0;
    double x, y, px = -1, py = 0;
    while (fscanf(f, "%lf %lf", &x, &y) == 2) {
        CHECK(x > px && y > py && y <= 1.0, "cdf not increasing at line %u", lines);
        px = x;
        py = y;
        lines++;
    }
    fclose(f);
    unlink(path);
    CHECK(lines == nz && py == 1.0, "cdf lines %u of %u, last %g", lines, nz, py);
    CHECK(hdr_write_cdf(all, "/nonexistent-dir/x.dat") == -1, "cdf to a bad path fails");

    free(rt);
    free(m);
    free(b);
    free(a);
    free(all);
    free(vals);
}

static void put32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static void put64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static void test_deserialize_rejects(uint64_t seed)
{
    hdr_hist_t *h = malloc(sizeof(*h)), *g = malloc(sizeof(*g));
    CHECK(h && g, "malloc");
    hdr_init(h);
    hdr_record_n(h, 3, 10);
    hdr_record_n(h, 1000, 5);
    hdr_record_n(h, 123456789, 2);
    size_t n = hdr_serialize(h, NULL, 0);
    CHECK(n == 44 + 3 * 12, "size %zu", n);
    unsigned char *ok = malloc(n + 1), *bad = malloc(n + 1);
    CHECK(ok && bad, "malloc");
    hdr_serialize(h, ok, n);
    CHECK(hdr_deserialize(g, ok, n) == 0, "valid buffer");
    CHECK(hdr_deserialize(g, NULL, 0) == -1, "NULL");

    /* every truncation, each in a buffer of exactly that size (ASan sees
     * any read past it), and a trailing byte */
    for (size_t len = 0; len < n; len++) {
        unsigned char *t = malloc(len ? len : 1);
        CHECK(t, "malloc");
        memcpy(t, ok, len);
        CHECK(hdr_deserialize(g, t, len) == -1, "truncated to %zu accepted", len);
        free(t);
    }
    memcpy(bad, ok, n);
    bad[n] = 0;
    CHECK(hdr_deserialize(g, bad, n + 1) == -1, "trailing byte accepted");

#define MUTATE(what, stmt)                                      \
    do {                                                        \
        memcpy(bad, ok, n);                                     \
        stmt;                                                   \
        CHECK(hdr_deserialize(g, bad, n) == -1, what " accepted"); \
    } while (0)
    MUTATE("bad magic", bad[0] = 'X');
    MUTATE("bad version 0", put32(bad + 4, 0));
    MUTATE("bad version 2", put32(bad + 4, 2));
    MUTATE("count + 1", put64(bad + 8, h->count + 1));
    MUTATE("count - 1", put64(bad + 8, h->count - 1));
    MUTATE("min outside its bucket", put64(bad + 16, 4));
    MUTATE("max outside its bucket", put64(bad + 24, 1000));
    MUTATE("min > max", put64(bad + 16, UINT64_MAX));
    MUTATE("NaN sum", put64(bad + 32, UINT64_C(0x7ff8000000000000)));
    MUTATE("negative sum", put64(bad + 32, UINT64_C(0xbff0000000000000)));
    MUTATE("nonzero count too big", put32(bad + 40, 4));
    MUTATE("nonzero count huge", put32(bad + 40, UINT32_MAX));
    MUTATE("bucket out of range", put32(bad + 44 + 2 * 12, HDR_BUCKETS));
    MUTATE("bucket far out of range", put32(bad + 44 + 2 * 12, UINT32_MAX));
    MUTATE("duplicate bucket", put32(bad + 44 + 12, 3));
    MUTATE("descending buckets", (put32(bad + 44, hdr_bucket_of(1000)), put32(bad + 44 + 12, 3)));
    MUTATE("zero-count pair", (put64(bad + 44 + 4, 0), put64(bad + 8, 7)));
    MUTATE("bucket counts overflow",
           (put64(bad + 44 + 4, UINT64_MAX), put64(bad + 44 + 16, 6), put64(bad + 8, 5)));
#undef MUTATE

    /* an empty histogram must be canonical */
    hdr_hist_t *e = malloc(sizeof(*e));
    CHECK(e, "malloc");
    hdr_init(e);
    unsigned char eb[44];
    CHECK(hdr_serialize(e, eb, sizeof(eb)) == 44, "empty size");
    put64(eb + 16, 0);
    CHECK(hdr_deserialize(g, eb, 44) == -1, "empty with min 0 accepted");
    free(e);

    /* random corruption: never crashes; anything accepted is consistent
     * (it serializes back to the same bytes) */
    test_rng_t r;
    test_rng_seed(&r, seed ^ 0x5eed);
    unsigned char *back = malloc(n + 1);
    CHECK(back, "malloc");
    uint64_t iters = test_scaled(200000), accepted = 0;
    for (uint64_t it = 0; it < iters; it++) {
        memcpy(bad, ok, n);
        int flips = 1 + (int)test_rng_below(&r, 4);
        for (int k = 0; k < flips; k++)
            bad[test_rng_below(&r, n)] ^= (unsigned char)(1u << test_rng_below(&r, 8));
        if (hdr_deserialize(g, bad, n) == 0) {
            accepted++;
            CHECK(hdr_serialize(g, back, n) == n && memcmp(back, bad, n) == 0,
                  "accepted corruption is not canonical");
            uint64_t total = 0;
            for (uint32_t i = 0; i < HDR_BUCKETS; i++)
                total += g->counts[i];
            CHECK(total == g->count, "accepted corruption: inconsistent count");
        }
    }
    printf("corruption: %llu of %llu mutants accepted (sum/min/max/counts still consistent)\n",
           (unsigned long long)accepted, (unsigned long long)iters);
    free(back);
    free(bad);
    free(ok);
    free(g);
    free(h);
}

int main(void)
{
    uint64_t seed = test_seed(20240611);
    test_layout();
    test_empty();
    test_exact_small();
    test_clamp();
    test_percentiles_and_merge(seed);
    test_deserialize_rejects(seed);
    printf("test_hdr: ok\n");
    return 0;
}
