/*
 * perf/bench_gpu.c — throughput of the HBM table (gpu/gpu.h) at the points
 * of HierarchicalKV's published benchmark table, against the device's own
 * memory bandwidth measured in the same run. One JSON line per result.
 *
 *   bench_gpu [--capacity ROWS] [--keys N] [--reps N] [--dims 8,64]
 *             [--load-factors 0.5,1.0]
 *
 * Method (HierarchicalKV's benchmark/merlin_hashtable_benchmark.cc.cu):
 * capacity 64Mi rows, 1Mi keys per call; the table is filled with
 * consecutive keys by insert_or_assign until its load factor reaches the
 * target (within 0.001, or as close as 400 fill calls get at 1.0, where
 * full buckets evict); each measured call then uses keys of which 60%
 * were the most recently inserted (hits) and 40% are new. find and
 * insert_or_assign run on an SGD table (no optimizer state, like HKV's
 * plain values); apply runs on all-present keys (hit rate 1.0) with SGD
 * and with Adam (2*dim+1 state floats per row). Each point is the median
 * of --reps calls (each on fresh keys), timed from a synchronized stream
 * to the call's completion (launch latency included, ~1% of a call).
 *
 * Units: kv_per_s is keys per second; hkv_units is the same divided by
 * 2^30, the unit of HierarchicalKV's "B-KV/s" table (its A100 80GB
 * numbers at dim 64, load factor 0.5: find 1.98, insert_or_assign 0.83).
 * bound_kv_per_s is the measured copy bandwidth divided by a byte model of
 * each operation (bytes_per_key, see op_bytes): the rate the device's
 * memory would allow if the operation moved only those bytes.
 *
 * Without a CUDA device it prints {"bench":"gpu","skipped":...} and exits
 * 0. Never run by ctest.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gpu/gpu.h"

#define MAX_POINTS 8

typedef struct bench_cfg {
    uint64_t capacity;            /**< table rows */
    size_t keys;                  /**< keys per call */
    int reps;                     /**< measured calls per point */
    uint32_t dims[MAX_POINTS];    /**< row widths */
    int ndims;
    double lfs[MAX_POINTS];       /**< load factors */
    int nlfs;
} bench_cfg_t;

static void *stream;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void die(const char *what, strata_status_t st)
{
    printf("{\"bench\":\"gpu\",\"error\":\"%s: %s: %s\"}\n", what, strata_status_string(st),
           strata_last_error());
    exit(1);
}

#define OK(expr)                                 \
    do {                                         \
        strata_status_t st_ = (expr);            \
        if (st_ != STRATA_OK)                    \
            die(#expr, st_);                     \
    } while (0)

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/** A byte model of one key's memory traffic (DRAM sectors are 32 bytes):
 *  find: key 8 + found 1 + digest sector 32, and on a hit key sector 32 +
 *  row read 4d + row write 4d; insert_or_assign: key 8 + row in 4d + row
 *  out 4d + digest sector 32 + key, score and flag sectors read and
 *  written (3 * 64); apply: key 8 + gradient 4d + digest 32 + key, score,
 *  flag sectors r/w (192) + row r/w 8d + optimizer state r/w 8 * state
 *  floats. A floor, not a measurement: probes past the first sector and
 *  partial-sector writes cost more. */
static double op_bytes(const char *op, uint32_t dim, double hit, uint32_t state_floats)
{
    const double d = dim;
    if (!strcmp(op, "find"))
        return 8 + 1 + 32 + hit * (32 + 8 * d);
    if (!strcmp(op, "insert_or_assign"))
        return 8 + 8 * d + 32 + 192;
    return 8 + 4 * d + 32 + 192 + 8 * d + 8.0 * state_floats;
}

/** Fraction of the n found flags (or result codes == want) that are set,
 *  read back from the device. */
static double found_fraction(const uint8_t *d_found, size_t n, uint8_t want, uint8_t *h_buf)
{
    OK(gpu_memcpy(h_buf, d_found, n, stream));
    OK(gpu_stream_sync(stream));
    size_t c = 0;
    for (size_t i = 0; i < n; i++)
        c += h_buf[i] == want;
    return (double)c / (double)n;
}

typedef struct table_ctx {
    gpu_table_t *t;
    uint64_t next_key;   /**< keys [0, next_key) have been inserted */
    double lf;           /**< load factor reached */
    int fill_calls;      /**< insert calls the fill took */
} table_ctx_t;

/** Fill with consecutive keys until the load factor reaches target. */
static void fill(table_ctx_t *c, double target, size_t keys, uint64_t *h_keys, uint64_t *d_keys,
                 float *d_vals)
{
    gpu_table_info_t info;
    gpu_table_get_info(c->t, &info);
    const uint64_t want = (uint64_t)(target * (double)info.capacity);
    uint64_t size = 0;
    c->fill_calls = 0;
    while (c->fill_calls < 400) {
        uint64_t deficit = want > size ? want - size : 0;
        if ((double)deficit < 0.001 * (double)info.capacity || deficit == 0)
            break;
        size_t n = deficit < keys ? (size_t)deficit : keys;
        if (n < keys / 16)
            n = keys / 16; /* near full, most new keys land in full buckets */
        for (size_t i = 0; i < n; i++)
            h_keys[i] = c->next_key + i;
        c->next_key += n;
        OK(gpu_memcpy(d_keys, h_keys, n * 8, stream));
        OK(gpu_table_insert_or_assign(c->t, d_keys, d_vals, n, NULL, stream));
        OK(gpu_table_size(c->t, &size, stream));
        c->fill_calls++;
    }
    OK(gpu_table_size(c->t, &size, stream));
    c->lf = (double)size / (double)info.capacity;
}

/** Keys for one measured call: hit * n drawn from the last inserted
 *  (present) keys, the rest new (consumed from next_key). */
static void make_keys(table_ctx_t *c, size_t n, double hit, uint64_t *h_keys, uint64_t *seed)
{
    const uint64_t base = c->next_key; /* hits: keys inserted before this call */
    const uint64_t recent = base < (uint64_t)n ? base : (uint64_t)n;
    for (size_t i = 0; i < n; i++) {
        *seed += 0x9e3779b97f4a7c15ULL;
        uint64_t r = *seed;
        r = (r ^ (r >> 31)) * 0xbf58476d1ce4e5b9ULL;
        r ^= r >> 29;
        const int is_hit = (double)(r >> 11) * 0x1.0p-53 < hit;
        if (is_hit && recent)
            h_keys[i] = base - 1 - (r >> 20) % recent;
        else
            h_keys[i] = c->next_key++;
    }
}

static void emit(const char *op, const char *opt, uint32_t dim, double lf_target,
                 const table_ctx_t *c, const bench_cfg_t *cfg, double hit, double found,
                 double *secs, int reps, double bw_gbps, uint32_t state_floats, const char *ref)
{
    qsort(secs, (size_t)reps, sizeof(double), cmp_double);
    const double med = secs[reps / 2], best = secs[0];
    const double kvps = (double)cfg->keys / med;
    const double bytes = op_bytes(op, dim, hit, state_floats);
    const double bound = bw_gbps * 1e9 / bytes;
    printf("{\"bench\":\"gpu\",\"op\":\"%s\",\"optimizer\":\"%s\",\"dim\":%u,"
           "\"load_factor\":%.2f,\"load_factor_reached\":%.4f,\"fill_calls\":%d,"
           "\"capacity\":%llu,\"keys_per_call\":%zu,\"hit_rate\":%.2f,\"found\":%.4f,\"reps\":%d,"
           "\"median_ms\":%.4f,\"best_ms\":%.4f,\"kv_per_s\":%.4e,\"hkv_units\":%.3f,"
           "\"bytes_per_key_model\":%.0f,\"bound_kv_per_s\":%.4e,\"ratio_to_bound\":%.3f%s}\n",
           op, opt, dim, lf_target, c->lf, c->fill_calls, (unsigned long long)cfg->capacity,
           cfg->keys, hit, found, reps, med * 1e3, best * 1e3, kvps, kvps / 1073741824.0, bytes, bound,
           kvps / bound, ref);
    fflush(stdout);
}

static void run_point(const bench_cfg_t *cfg, uint32_t dim, double lf, double bw_gbps,
                      strata_optimizer_type_t type, uint64_t *h_keys, uint64_t *d_keys,
                      float *d_vals, float *d_out, uint8_t *d_found)
{
    gpu_table_config_t tc;
    memset(&tc, 0, sizeof(tc));
    tc.field_mask = GPU_TABLE_FIELD_DIM | GPU_TABLE_FIELD_CAPACITY | GPU_TABLE_FIELD_OPTIMIZER |
                    GPU_TABLE_FIELD_EVICTION;
    tc.dim = dim;
    tc.capacity = cfg->capacity;
    tc.optimizer.type = type;
    tc.eviction = STRATA_EVICT_LRU;
    table_ctx_t c;
    memset(&c, 0, sizeof(c));
    strata_status_t st = gpu_table_create(&tc, &c.t);
    if (st != STRATA_OK) {
        printf("{\"bench\":\"gpu\",\"dim\":%u,\"load_factor\":%.2f,\"skipped\":\"%s\"}\n", dim,
               lf, strata_last_error());
        return;
    }
    gpu_table_info_t info;
    gpu_table_get_info(c.t, &info);
    const char *opt = type == STRATA_OPT_ADAM ? "adam" : "sgd";
    fill(&c, lf, cfg->keys, h_keys, d_keys, d_vals);
    uint64_t seed = 12345 + dim;
    double secs[64];
    const int reps = cfg->reps < 64 ? cfg->reps : 64;
    const size_t n = cfg->keys;
    char ref[96];
    double found = -1;
    uint8_t *h_buf = malloc(n);
    if (!h_buf)
        die("malloc", STRATA_ERR_NOMEM);
    gpu_insert_opts_t res = {.field_mask = GPU_INSERT_FIELD_RESULT, .d_result = d_found};

    if (type == STRATA_OPT_SGD) {
        /* find, hit rate 0.6 */
        for (int r = -1; r < reps; r++) {
            const uint64_t mark = c.next_key;
            make_keys(&c, n, 0.6, h_keys, &seed);
            c.next_key = mark; /* a find's new keys stay absent: reuse them */
            OK(gpu_memcpy(d_keys, h_keys, n * 8, stream));
            OK(gpu_stream_sync(stream));
            double t0 = now_s();
            OK(gpu_table_find(c.t, d_keys, n, d_out, d_found, stream));
            OK(gpu_stream_sync(stream));
            if (r >= 0)
                secs[r] = now_s() - t0;
            else
                found = found_fraction(d_found, n, 1, h_buf);
        }
        snprintf(ref, sizeof(ref), "%s",
                 dim == 64 && lf == 0.5 ? ",\"hkv_a100_published\":1.98" : "");
        emit("find", opt, dim, lf, &c, cfg, 0.6, found, secs, reps, bw_gbps, 0, ref);

        /* insert_or_assign, hit rate 0.6 (40% new keys: inserts, or
         * evictions at load factor 1.0) */
        for (int r = -1; r < reps; r++) {
            make_keys(&c, n, 0.6, h_keys, &seed);
            OK(gpu_memcpy(d_keys, h_keys, n * 8, stream));
            OK(gpu_stream_sync(stream));
            double t0 = now_s();
            OK(gpu_table_insert_or_assign(c.t, d_keys, d_vals, n, r >= 0 ? NULL : &res, stream));
            OK(gpu_stream_sync(stream));
            if (r >= 0)
                secs[r] = now_s() - t0;
            else
                found = found_fraction(d_found, n, GPU_INSERT_ASSIGNED, h_buf);
        }
        snprintf(ref, sizeof(ref), "%s",
                 dim == 64 && lf == 0.5 ? ",\"hkv_a100_published\":0.83" : "");
        emit("insert_or_assign", opt, dim, lf, &c, cfg, 0.6, found, secs, reps, bw_gbps, 0, ref);
    }

    /* apply, every key present */
    for (int r = -1; r < reps; r++) {
        make_keys(&c, n, 1.0, h_keys, &seed);
        OK(gpu_memcpy(d_keys, h_keys, n * 8, stream));
        OK(gpu_stream_sync(stream));
        double t0 = now_s();
        OK(gpu_table_apply(c.t, d_keys, d_vals, n, d_found, stream));
        OK(gpu_stream_sync(stream));
        if (r >= 0)
            secs[r] = now_s() - t0;
        else
            found = found_fraction(d_found, n, 1, h_buf);
    }
    emit("apply", opt, dim, lf, &c, cfg, 1.0, found, secs, reps, bw_gbps, info.state_floats, "");
    free(h_buf);
    gpu_table_destroy(c.t);
}

static int parse_list_u32(const char *s, uint32_t *out)
{
    int n = 0;
    for (char *e; *s && n < MAX_POINTS; s = *e ? e + 1 : e)
        out[n++] = (uint32_t)strtoul(s, &e, 10);
    return n;
}

static int parse_list_d(const char *s, double *out)
{
    int n = 0;
    for (char *e; *s && n < MAX_POINTS; s = *e ? e + 1 : e)
        out[n++] = strtod(s, &e);
    return n;
}

int main(int argc, char **argv)
{
    bench_cfg_t cfg = {.capacity = 64ull << 20,
                       .keys = 1u << 20,
                       .reps = 7,
                       .dims = {8, 64},
                       .ndims = 2,
                       .lfs = {0.5, 1.0},
                       .nlfs = 2};
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--capacity"))
            cfg.capacity = strtoull(argv[i + 1], NULL, 0);
        else if (!strcmp(argv[i], "--keys"))
            cfg.keys = strtoull(argv[i + 1], NULL, 0);
        else if (!strcmp(argv[i], "--reps"))
            cfg.reps = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--dims"))
            cfg.ndims = parse_list_u32(argv[i + 1], cfg.dims);
        else if (!strcmp(argv[i], "--load-factors"))
            cfg.nlfs = parse_list_d(argv[i + 1], cfg.lfs);
        else {
            fprintf(stderr, "usage: %s [--capacity ROWS] [--keys N] [--reps N] [--dims 8,64] "
                            "[--load-factors 0.5,1.0]\n",
                    argv[0]);
            return 2;
        }
    }
    if (cfg.reps < 1)
        cfg.reps = 1;
    int ndev = 0;
    if (gpu_device_count(&ndev) != STRATA_OK) {
        printf("{\"bench\":\"gpu\",\"skipped\":\"no CUDA device\",\"reason\":\"%s\"}\n",
               strata_last_error());
        return 0;
    }
    char name[128] = "";
    uint64_t mem = 0;
    int ccmaj = 0, ccmin = 0, sms = 0;
    OK(gpu_device_describe(name, sizeof(name), &mem, &ccmaj, &ccmin, &sms));
    printf("{\"bench\":\"gpu\",\"what\":\"device\",\"name\":\"%s\",\"cc\":\"%d.%d\",\"sms\":%d,"
           "\"mem_gib\":%.1f}\n",
           name, ccmaj, ccmin, sms, (double)mem / 1073741824.0);
    gpu_bandwidth_t bw;
    OK(gpu_measure_bandwidth((size_t)2 << 30, 10, &bw));
    const double bw_gbps =
        bw.copy_kernel_gbps > bw.memcpy_d2d_gbps ? bw.copy_kernel_gbps : bw.memcpy_d2d_gbps;
    printf("{\"bench\":\"gpu\",\"what\":\"bandwidth\",\"buffer_bytes\":%.0f,"
           "\"copy_kernel_gbps\":%.1f,\"memcpy_d2d_gbps\":%.1f,\"limit_gbps\":%.1f,"
           "\"counted\":\"bytes read + bytes written\"}\n",
           bw.bytes, bw.copy_kernel_gbps, bw.memcpy_d2d_gbps, bw_gbps);
    fflush(stdout);

    OK(gpu_stream_create(&stream));
    uint32_t maxdim = 0;
    for (int i = 0; i < cfg.ndims; i++)
        maxdim = cfg.dims[i] > maxdim ? cfg.dims[i] : maxdim;
    uint64_t *h_keys = NULL, *d_keys = NULL;
    float *d_vals = NULL, *d_out = NULL;
    uint8_t *d_found = NULL;
    OK(gpu_host_alloc((void **)&h_keys, cfg.keys * 8));
    OK(gpu_malloc((void **)&d_keys, cfg.keys * 8));
    OK(gpu_malloc((void **)&d_vals, cfg.keys * maxdim * 4));
    OK(gpu_malloc((void **)&d_out, cfg.keys * maxdim * 4));
    OK(gpu_malloc((void **)&d_found, cfg.keys));
    OK(gpu_memset(d_vals, 0, cfg.keys * maxdim * 4, stream)); /* zero gradients/rows: finite */
    for (int di = 0; di < cfg.ndims; di++)
        for (int li = 0; li < cfg.nlfs; li++) {
            run_point(&cfg, cfg.dims[di], cfg.lfs[li], bw_gbps, STRATA_OPT_SGD, h_keys, d_keys,
                      d_vals, d_out, d_found);
            run_point(&cfg, cfg.dims[di], cfg.lfs[li], bw_gbps, STRATA_OPT_ADAM, h_keys, d_keys,
                      d_vals, d_out, d_found);
        }
    gpu_free(d_keys);
    gpu_free(d_vals);
    gpu_free(d_out);
    gpu_free(d_found);
    gpu_host_free(h_keys);
    gpu_stream_destroy(stream);
    return 0;
}
