/*
 * perf/bench_tier.c — the NVMe tier against the machine's disk and a peer,
 * and the tier manager on a skewed workload, in one run.
 *
 *  load        N rows of 256-byte values written to a fresh NVMe store
 *              (batched io_uring writes, one sync at the end): rows/s, MB/s,
 *              and the DRAM index's bytes per key.
 *  randread    for each queue depth (1, 32, 128): fio (ioengine io_uring,
 *              direct=1, randread, bs 4k, the same iodepth, fixed buffers
 *              and registered files) on the store's own sealed segment
 *              files, and the store's batched reads of uniformly random
 *              keys at that queue depth (each value checked), alternated
 *              for --rounds rounds (order flipped each round) so the noise
 *              of a shared machine falls on both; medians are reported
 *              with every round's pair. The ratio compares the store's page
 *              reads per second with fio's IOPS (target >= 0.85); rows/s
 *              is also printed (a few keys of a batch share a page).
 *  rocksdb     RocksDB (C API) loaded with the same keys and 256-byte
 *              values, compacted, then 16 threads of random Gets with
 *              direct reads (bench_tier_rocksdb.c); the store is measured
 *              again right after, single-threaded at queue depth 128 (the
 *              server's shard thread). Target: >= 1.5x RocksDB's Gets/s.
 *  zipf        the tier manager (DRAM over NVMe) on Zipf(0.99) lookups of
 *              Z rows (dim 64, 256-byte rows) for DRAM budgets of 1% .. 40%
 *              of the rows, under LRU and LFU (keys sampled as the lookups
 *              run, batches of 1024): DRAM hit rate, lookups/s,
 *              NVMe page reads/s; the 10% point is the headline. A PNG
 *              (gnuplot) plots hit rate and throughput against the budget.
 *
 * One JSON line per result on stdout ({"bench":"tier","test":...}); a
 * summary line last; progress on stderr. Targets are printed, never
 * asserted. Data lives in a fresh directory under --dir (default $TMPDIR
 * or /tmp), removed at the end (--keep keeps it); the run checks free
 * space first and shrinks N when the disk is short. Default: N = 2M rows
 * (~0.6 GB store, ~0.6 GB RocksDB), Z = 1M rows, 3 s windows, 3 rounds:
 * about four minutes. The Zipf points warm the DRAM first (at least 2 s
 * and 3 lookups per DRAM row, at most 15 s) and report how full it was.
 *
 * Threading: the store and the tier run on the main thread (their writer);
 * RocksDB's readers on their own threads.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bench_tier.h"
#include "perf_util.h"
#include "core/hash.h"
#include "core/init.h"
#include "core/optim.h"
#include "hierarchy/nvme.h"
#include "hierarchy/tier.h"

#define VBYTES 256u          /* value bytes: 64 floats */
#define DIM 64u
#define MAX_FILES 4096
#define STREAM 1000000u      /* pre-generated random keys */

typedef struct opts {
    char dir[512];           /**< parent directory of the run's data */
    uint64_t rows;           /**< rows in the store (randread, rocksdb) */
    uint64_t zipf_rows;      /**< rows of the Zipf tier */
    double seconds;          /**< each timed window */
    double zipf_seconds;     /**< each Zipf window */
    double zipf_s;           /**< Zipf exponent */
    unsigned threads;        /**< RocksDB readers */
    unsigned rounds;         /**< fio / store alternations per queue depth */
    char png[512];           /**< plot path */
    int skip_fio, skip_rocksdb, skip_zipf, keep;
    uint32_t ring_flags;     /**< HIER_NVME_SINGLE_THREAD or 0 (--ring) */
} opts_t;

/** --ring: COOP_TASKRUN (default) or SINGLE_ISSUER | DEFER_TASKRUN. */
static uint32_t g_ring_flags;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static double cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/** The store's keys: any u64, not 0..N. */
static uint64_t key_of(uint64_t i)
{
    return core_mix64(i + 0x5bd1e995ull);
}

static void value_fill(uint64_t key, uint32_t *v)
{
    v[0] = (uint32_t)key;
    v[1] = (uint32_t)(key >> 32);
    for (uint32_t j = 2; j < VBYTES / 4; j++)
        v[j] = (uint32_t)(key * 31 + j);
}

/** Median of n values (n <= 16); copies. */
static double median(const double *v, unsigned n)
{
    double a[16];
    memcpy(a, v, n * sizeof(double));
    for (unsigned i = 1; i < n; i++)
        for (unsigned j = i; j > 0 && a[j - 1] > a[j]; j--) {
            double t = a[j];
            a[j] = a[j - 1];
            a[j - 1] = t;
        }
    return n % 2 ? a[n / 2] : 0.5 * (a[n / 2 - 1] + a[n / 2]);
}

/** The 1-minute load average (how busy the shared machine was). */
static double loadavg1(void)
{
    double l = -1;
    FILE *f = fopen("/proc/loadavg", "r");
    if (f) {
        if (fscanf(f, "%lf", &l) != 1)
            l = -1;
        fclose(f);
    }
    return l;
}

static void die(const char *what, strata_status_t st)
{
    fprintf(stderr, "bench_tier: %s: %s (%s)\n", what, strata_status_string(st),
            strata_last_error());
    exit(1);
}


/* --- fio ------------------------------------------------------------------ */

/** fio's read IOPS on files at queue depth qd, or -1 (note says why). */
static double run_fio(const char *files, unsigned qd, double seconds, char *note, size_t ncap)
{
    size_t cap = strlen(files) + 1024;
    char *cmd = malloc(cap);
    snprintf(cmd, cap,
             "fio --name=bench_tier --ioengine=io_uring --direct=1 --rw=randread --bs=4k "
             "--iodepth=%u --fixedbufs --registerfiles --norandommap --randrepeat=0 "
             "--time_based --runtime=%.0f --ramp_time=1 --group_reporting "
             "--output-format=json --filename=%s 2>&1",
             qd, seconds < 1 ? 1 : seconds, files);
    FILE *p = popen(cmd, "r");
    free(cmd);
    if (!p) {
        snprintf(note, ncap, "popen fio: %s", strerror(errno));
        return -1;
    }
    size_t len = 0, bcap = 1 << 16;
    char *buf = malloc(bcap);
    size_t r;
    while ((r = fread(buf + len, 1, bcap - len - 1, p)) > 0) {
        len += r;
        if (len + 1 == bcap)
            buf = realloc(buf, bcap *= 2);
    }
    buf[len] = 0;
    int rc = pclose(p);
    double iops = -1;
    const char *rd = strstr(buf, "\"read\"");
    const char *io = rd ? strstr(rd, "\"iops\"") : NULL;
    const char *colon = io ? strchr(io, ':') : NULL;
    if (rc == 0 && colon)
        iops = strtod(colon + 1, NULL);
    else
        snprintf(note, ncap, "fio failed (status %d): %.200s", rc, buf);
    free(buf);
    return iops;
}

/* --- the store's random reads ---------------------------------------------- */

typedef struct rr_result {
    double rows_per_s;   /**< keys read per second */
    double pages_per_s;  /**< page reads per second */
    double cpu_share;    /**< process CPU seconds per second */
    uint64_t bad;        /**< keys not found or wrong */
} rr_result_t;

static rr_result_t store_randread(hier_nvme_t *s, const uint64_t *stream, unsigned qd,
                                  double seconds)
{
    strata_status_t st = hier_nvme_set_queue_depth(s, qd);
    if (st != STRATA_OK)
        die("set queue depth", st);
    size_t batch = qd == 1 ? 256 : 4096;
    uint32_t *vals = malloc(batch * VBYTES);
    uint8_t *sts = malloc(batch);
    size_t cur = 0;
    rr_result_t r = {0, 0, 0, 0};
    hier_nvme_stats_t a, b;
    double t_end = now_s() + 1.0, t0 = 0, c0 = 0;
    uint64_t rows = 0;
    int timed = 0;
    for (;;) {
        double t = now_s();
        if (t >= t_end) {
            if (timed)
                break;
            timed = 1; /* warm-up over: start the window */
            t0 = t;
            c0 = cpu_s();
            t_end = t + seconds;
            hier_nvme_get_stats(s, &a);
            rows = 0;
        }
        if (cur + batch > STREAM)
            cur = 0;
        st = hier_nvme_get(s, stream + cur, batch, vals, NULL, sts, 0);
        if (st != STRATA_OK)
            die("get", st);
        for (size_t i = 0; i < batch; i++)
            r.bad += sts[i] != HIER_NVME_FOUND || vals[i * (VBYTES / 4)] != (uint32_t)stream[cur + i];
        cur += batch;
        rows += batch;
    }
    double el = now_s() - t0;
    hier_nvme_get_stats(s, &b);
    r.rows_per_s = (double)rows / el;
    r.pages_per_s = (double)(b.page_reads - a.page_reads) / el;
    r.cpu_share = (cpu_s() - c0) / el;
    free(sts);
    free(vals);
    return r;
}

/* --- the Zipf tier workload ------------------------------------------------ */

typedef struct zp_point {
    double budget;       /**< DRAM rows / table rows */
    double hit_rate;     /**< DRAM hits / lookups (window) */
    double lookups_per_s;
    double nvme_pages_per_s;
    double promotions_per_s;
    double cpu_share;
    double fill;         /**< DRAM rows / budget when the window opened */
    double warm_s;       /**< warm-up spent */
    double loadavg;      /**< 1-minute load average after the window */
    uint64_t bad;
} zp_point_t;

/** Keys of one batch: Zipf ranks spread over the table by a bijection of
 *  [0, rows), so hot rows are scattered over pages and the index. */
static void zipf_batch(const perf_zipf_t *z, uint64_t *rng, uint64_t zrows, size_t n, uint64_t *keys,
                       uint32_t *rows)
{
    for (size_t i = 0; i < n; i++) {
        uint64_t rank = perf_zipf_draw(z, rng);
        uint64_t row = (rank * 2654435761ull + 12345) % zrows;
        keys[i] = key_of(row ^ 0x7777ull);
        rows[i] = (uint32_t)row;
    }
}

static zp_point_t zipf_point(const char *dir, uint64_t zrows, double budget, hier_policy_t pol,
                             const perf_zipf_t *z, uint64_t seed, double warm_s, double seconds)
{
    hier_tier_config_t c;
    memset(&c, 0, sizeof(c));
    c.dram.dim = DIM;
    c.dram.capacity = (uint64_t)((double)zrows * budget);
    strata_optimizer_params_t op;
    memset(&op, 0, sizeof(op));
    op.type = STRATA_OPT_SGD;
    core_optim_resolve(&op, &c.dram.optimizer);
    core_init_resolve(NULL, 0, &c.dram.initializer);
    c.nvme.dir = dir;
    c.nvme.queue_depth = 128;
    c.nvme.expected_keys = zrows;
    c.nvme.flags = g_ring_flags;
    c.policy = pol;
    hier_tier_t *t = NULL;
    strata_status_t st = hier_tier_create(&c, &t);
    if (st != STRATA_OK)
        die("tier create", st);
    const size_t B = 1024;
    float *out = malloc(B * DIM * sizeof(float));
    uint64_t *keys = malloc(B * sizeof(uint64_t));
    uint32_t *rows = malloc(B * sizeof(uint32_t));
    uint64_t rng = seed;
    zp_point_t p;
    memset(&p, 0, sizeof(p));
    p.budget = budget;
    hier_tier_stats_t a, b;
    uint64_t lookups = 0;
    /* warm-up: at least warm_s and 3 lookups per DRAM row (a cold DRAM
     * would charge compulsory misses to the window), at most 15 s */
    double tw = now_s(), t_end = tw + warm_s, t0 = 0, c0 = 0;
    int timed = 0;
    for (;;) {
        double tn = now_s();
        if (!timed && tn >= t_end && lookups < 3 * c.dram.capacity && tn < tw + 15.0)
            t_end = tn + 0.25;
        if (tn >= t_end) {
            if (timed)
                break;
            timed = 1;
            t0 = tn;
            c0 = cpu_s();
            t_end = tn + seconds;
            hier_tier_get_stats(t, &a);
            p.fill = (double)a.dram_rows / (double)c.dram.capacity;
            p.warm_s = tn - tw;
            lookups = 0;
        }
        zipf_batch(z, &rng, zrows, B, keys, rows);
        st = hier_tier_lookup(t, keys, NULL, B, out, NULL, 0, 0);
        if (st != STRATA_OK)
            die("tier lookup", st);
        /* every row: its first element is its row index (see the load) */
        for (size_t i = 0; i < B; i++)
            p.bad += out[i * DIM] != (float)rows[i];
        lookups += B;
    }
    double el = now_s() - t0;
    hier_tier_get_stats(t, &b);
    uint64_t hits = b.dram_hits - a.dram_hits, miss = b.dram_misses - a.dram_misses;
    p.hit_rate = (double)hits / (double)(hits + miss);
    p.lookups_per_s = (double)lookups / el;
    p.nvme_pages_per_s = (double)(b.nvme.page_reads - a.nvme.page_reads) / el;
    p.promotions_per_s = (double)(b.promotions - a.promotions) / el;
    p.cpu_share = (cpu_s() - c0) / el;
    hier_tier_destroy(t);
    free(rows);
    free(keys);
    free(out);
    return p;
}

/* --- main ------------------------------------------------------------------ */

static void usage(void)
{
    fprintf(stderr,
            "usage: bench_tier [--dir DIR] [--rows N] [--zipf-rows N] [--seconds S]\n"
            "                  [--zipf-seconds S] [--threads T] [--rounds R] [--png FILE]\n"
            "                  [--ring coop|defer]\n"
            "                  [--skip-fio] [--skip-rocksdb] [--skip-zipf] [--keep]\n");
}

static void parse(int argc, char **argv, opts_t *o)
{
    memset(o, 0, sizeof(*o));
    const char *tmp = getenv("TMPDIR");
    snprintf(o->dir, sizeof(o->dir), "%s", tmp && *tmp ? tmp : "/tmp");
    o->rows = 2000000;
    o->zipf_rows = 1000000;
    o->seconds = 3;
    o->zipf_seconds = 3;
    o->zipf_s = 0.99;
    o->threads = 16;
    o->rounds = 3;
    snprintf(o->png, sizeof(o->png), "bench_tier_zipf.png");
    static const struct option lo[] = {
        {"dir", 1, 0, 'd'},          {"rows", 1, 0, 'n'},      {"zipf-rows", 1, 0, 'z'},
        {"seconds", 1, 0, 's'},      {"zipf-seconds", 1, 0, 'Z'}, {"threads", 1, 0, 't'},
        {"png", 1, 0, 'p'},          {"skip-fio", 0, 0, 'F'},  {"skip-rocksdb", 0, 0, 'R'},
        {"skip-zipf", 0, 0, 'S'},    {"keep", 0, 0, 'k'},      {"help", 0, 0, 'h'},
        {"rounds", 1, 0, 'r'},       {"ring", 1, 0, 'g'},
        {0, 0, 0, 0}};
    int ch;
    while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (ch) {
        case 'd': snprintf(o->dir, sizeof(o->dir), "%s", optarg); break;
        case 'n': o->rows = strtoull(optarg, NULL, 0); break;
        case 'z': o->zipf_rows = strtoull(optarg, NULL, 0); break;
        case 's': o->seconds = atof(optarg); break;
        case 'Z': o->zipf_seconds = atof(optarg); break;
        case 't': o->threads = (unsigned)atoi(optarg); break;
        case 'p': snprintf(o->png, sizeof(o->png), "%s", optarg); break;
        case 'F': o->skip_fio = 1; break;
        case 'R': o->skip_rocksdb = 1; break;
        case 'S': o->skip_zipf = 1; break;
        case 'k': o->keep = 1; break;
        case 'r': o->rounds = (unsigned)atoi(optarg); break;
        case 'g': o->ring_flags = strcmp(optarg, "defer") == 0 ? HIER_NVME_SINGLE_THREAD : 0; break;
        default: usage(); exit(2);
        }
    }
    if (o->rows < 100000 || o->zipf_rows < 10000 || o->seconds <= 0 || o->threads == 0 ||
        o->rounds == 0 || o->rounds > 15) {
        usage();
        exit(2);
    }
}

static void rm_rf(const char *dir)
{
    char cmd[1200];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "bench_tier: could not remove %s\n", dir);
}

/** Load rows key_of(0..n) (or zipf rows: key_of(i ^ salt), value row i)
 *  into a fresh store in dir; returns the open store. */
static hier_nvme_t *load_store(const char *dir, uint64_t n, int zipf_layout, double *secs,
                               uint64_t expected)
{
    hier_nvme_config_t c;
    memset(&c, 0, sizeof(c));
    c.dir = dir;
    c.value_bytes = VBYTES;
    c.queue_depth = 128;
    c.write_batch_pages = 64;
    c.write_ring_pages = 256;
    c.expected_keys = expected;
    c.flags = HIER_NVME_CREATE | g_ring_flags;
    hier_nvme_t *s = NULL;
    strata_status_t st = hier_nvme_open(&c, &s);
    if (st != STRATA_OK)
        die("open store", st);
    const size_t B = 4096;
    uint64_t *keys = malloc(B * sizeof(uint64_t));
    uint32_t *vals = malloc(B * VBYTES);
    double t0 = now_s();
    for (uint64_t base = 0; base < n; base += B) {
        size_t m = n - base < B ? (size_t)(n - base) : B;
        for (size_t i = 0; i < m; i++) {
            uint64_t r = base + i;
            if (zipf_layout) {
                keys[i] = key_of(r ^ 0x7777ull);
                float *f = (float *)(vals + i * (VBYTES / 4));
                for (uint32_t j = 0; j < DIM; j++)
                    f[j] = (float)r + (float)j * (1.0f / 64);
            } else {
                keys[i] = key_of(r);
                value_fill(keys[i], vals + i * (VBYTES / 4));
            }
        }
        st = hier_nvme_put(s, keys, m, vals, NULL, NULL);
        if (st != STRATA_OK)
            die("load put", st);
        if (base % (B * 64) == 0)
            fprintf(stderr, "\rbench_tier: loading %s: %5.1f%%", dir, 100.0 * (double)base / (double)n);
    }
    st = hier_nvme_sync(s);
    if (st != STRATA_OK)
        die("load sync", st);
    *secs = now_s() - t0;
    fprintf(stderr, "\rbench_tier: loaded %" PRIu64 " rows in %.1f s          \n", n, *secs);
    free(vals);
    free(keys);
    return s;
}

int main(int argc, char **argv)
{
    opts_t o;
    parse(argc, argv, &o);
    g_ring_flags = o.ring_flags;
    char root[600];
    snprintf(root, sizeof(root), "%s/bench_tier.XXXXXX", o.dir);
    if (!mkdtemp(root)) {
        fprintf(stderr, "bench_tier: mkdtemp %s: %s\n", root, strerror(errno));
        return 1;
    }
    /* free space: the store, RocksDB (twice its size while compacting),
     * the Zipf store, with a margin */
    struct statvfs vf;
    double need = 0;
    if (statvfs(root, &vf) == 0) {
        double avail = (double)vf.f_bavail * (double)vf.f_frsize;
        double per_row = 300.0 * (1.1 + (o.skip_rocksdb ? 0 : 2.2));
        need = per_row * (double)o.rows + 330.0 * (double)o.zipf_rows;
        if (need * 1.3 > avail) {
            uint64_t fit = (uint64_t)((avail / 1.3 - 330.0 * (double)o.zipf_rows) / per_row);
            fprintf(stderr, "bench_tier: %.1f GB free under %s: rows %" PRIu64 " -> %" PRIu64 "\n",
                    avail / 1e9, o.dir, o.rows, fit);
            if (fit < 100000) {
                fprintf(stderr, "bench_tier: not enough disk\n");
                rm_rf(root);
                return 1;
            }
            o.rows = fit;
            need = per_row * (double)o.rows + 330.0 * (double)o.zipf_rows;
        }
        fprintf(stderr, "bench_tier: %.1f GB free, this run needs about %.1f GB (in %s)\n",
                avail / 1e9, need / 1e9, root);
    }

    /* --- load ------------------------------------------------------------ */
    char sdir[700];
    snprintf(sdir, sizeof(sdir), "%s/store", root);
    double load_s;
    hier_nvme_t *s = load_store(sdir, o.rows, 0, &load_s, o.rows);
    hier_nvme_stats_t ss;
    hier_nvme_get_stats(s, &ss);
    double bpk = (double)ss.index_bytes / (double)ss.keys;
    printf("{\"bench\":\"tier\",\"test\":\"load\",\"rows\":%" PRIu64 ",\"value_bytes\":%u,"
           "\"page_bytes\":%u,\"rows_per_page\":%u,\"seconds\":%.3f,\"rows_per_s\":%.0f,"
           "\"write_mb_per_s\":%.1f,\"segments\":%" PRIu64 ",\"write_submits\":%" PRIu64 ","
           "\"pages_written\":%" PRIu64 "}\n",
           o.rows, VBYTES, ss.page_bytes, ss.records_per_page, load_s,
           (double)o.rows / load_s, (double)ss.pages_written * ss.page_bytes / load_s / 1e6,
           ss.segments, ss.write_submits, ss.pages_written);
    printf("{\"bench\":\"tier\",\"test\":\"index\",\"keys\":%" PRIu64 ",\"index_bytes\":%" PRIu64
           ",\"bytes_per_key\":%.2f,\"load_factor\":%.3f,\"target_bytes_per_key\":16,"
           "\"meets_target\":%s}\n",
           ss.keys, ss.index_bytes, bpk, (double)ss.keys / (double)(ss.index_buckets * 5),
           bpk <= 16.0 ? "true" : "false");
    fflush(stdout);

    /* the sealed segment files, for fio (the open head is partly unwritten:
     * fallocated space reads as zeros without touching the disk) */
    char *paths = malloc((size_t)MAX_FILES * 256);
    uint32_t nseg = hier_nvme_segment_paths(s, paths, MAX_FILES, 256);
    size_t flen = 0;
    char *files = malloc((size_t)nseg * 257 + 1);
    files[0] = 0;
    for (uint32_t i = 0; i + 1 < nseg && i < MAX_FILES; i++) { /* all but the last (head) */
        flen += (size_t)sprintf(files + flen, "%s%s", flen ? ":" : "", paths + (size_t)i * 256);
    }
    if (!flen && nseg) /* one segment only: use it */
        sprintf(files, "%s", paths);

    uint64_t *stream = malloc((size_t)STREAM * sizeof(uint64_t));
    uint64_t rng = 42;
    for (uint32_t i = 0; i < STREAM; i++)
        stream[i] = key_of((uint64_t)(((unsigned __int128)perf_rand_next(&rng) * o.rows) >> 64));

    /* --- randread vs fio --------------------------------------------------- */
    static const unsigned qds[3] = {1, 32, 128};
    double ours_qd128 = 0, fio_qd128 = 0;
    int all_met = 1;
    for (int q = 0; q < 3; q++) {
        unsigned qd = qds[q];
        char note[300] = "";
        double fio[16], ours[16], ratio[16], rows_s[16], cpu[16];
        uint64_t bad = 0;
        double load0 = loadavg1();
        /* alternate fio and the store (order flipped every round) so the
         * noise of a shared machine falls on both; medians are reported */
        for (unsigned rd = 0; rd < o.rounds; rd++) {
            fio[rd] = -1;
            for (int side = 0; side < 2; side++) {
                int do_fio = (side == 0) == (rd % 2 == 0);
                if (do_fio) {
                    if (!o.skip_fio && !note[0]) {
                        fprintf(stderr, "bench_tier: qd %u round %u: fio on %u files\n", qd, rd + 1,
                                nseg > 1 ? nseg - 1 : 1);
                        fio[rd] = run_fio(files, qd, o.seconds, note, sizeof(note));
                    }
                } else {
                    fprintf(stderr, "bench_tier: qd %u round %u: store\n", qd, rd + 1);
                    rr_result_t r = store_randread(s, stream, qd, o.seconds);
                    ours[rd] = r.pages_per_s;
                    rows_s[rd] = r.rows_per_s;
                    cpu[rd] = r.cpu_share;
                    bad += r.bad;
                }
            }
            ratio[rd] = fio[rd] > 0 ? ours[rd] / fio[rd] : -1;
        }
        double mfio = median(fio, o.rounds), mours = median(ours, o.rounds);
        double mratio = median(ratio, o.rounds), mrows = median(rows_s, o.rounds);
        int met = mratio >= 0.85;
        all_met &= met;
        if (qd == 128) {
            ours_qd128 = mrows;
            fio_qd128 = mfio;
        }
        char rounds_json[600];
        size_t rl = 0;
        for (unsigned rd = 0; rd < o.rounds; rd++)
            rl += (size_t)snprintf(rounds_json + rl, sizeof(rounds_json) - rl, "%s[%.0f,%.0f]",
                                   rd ? "," : "", fio[rd], ours[rd]);
        printf("{\"bench\":\"tier\",\"test\":\"randread\",\"qd\":%u,\"block_bytes\":4096,"
               "\"rows\":%" PRIu64 ",\"value_bytes\":%u,\"seconds\":%.1f,\"rounds\":%u,"
               "\"fio_iops\":%.0f,\"ours_page_reads_per_s\":%.0f,\"ours_rows_per_s\":%.0f,"
               "\"ratio_vs_fio\":%.3f,\"target\":0.85,\"meets_target\":%s,"
               "\"ours_cpu_share\":%.2f,\"bad_rows\":%" PRIu64 ",\"loadavg\":%.2f,"
               "\"fio_ours_per_round\":[%s]%s%s%s}\n",
               qd, o.rows, VBYTES, o.seconds, o.rounds, mfio, mours, mrows, mratio,
               met ? "true" : "false", median(cpu, o.rounds), bad, load0, rounds_json,
               note[0] ? ",\"note\":\"" : "", note[0] ? "fio unavailable" : "",
               note[0] ? "\"" : "");
        if (note[0])
            fprintf(stderr, "bench_tier: %s\n", note);
        fflush(stdout);
    }

    /* --- RocksDB ----------------------------------------------------------- */
    double rocks = -1, ours_again = -1;
    if (!o.skip_rocksdb) {
        uint64_t *keys = malloc(o.rows * sizeof(uint64_t));
        for (uint64_t i = 0; i < o.rows; i++)
            keys[i] = key_of(i);
        fprintf(stderr, "bench_tier: rocksdb: loading %" PRIu64 " keys\n", o.rows);
        bt_rocksdb_result_t rr;
        bt_rocksdb_run(root, keys, o.rows, VBYTES, o.threads, o.seconds, &rr);
        free(keys);
        fprintf(stderr, "bench_tier: store randread qd 128 (after rocksdb)\n");
        rr_result_t r = store_randread(s, stream, 128, o.seconds);
        ours_again = r.rows_per_s;
        if (rr.ok)
            rocks = rr.gets_per_s;
        double ratio = rocks > 0 ? ours_again / rocks : -1;
        all_met &= ratio >= 1.5;
        printf("{\"bench\":\"tier\",\"test\":\"rocksdb\",\"rows\":%" PRIu64 ",\"value_bytes\":%u,"
               "\"rocksdb_threads\":%u,\"rocksdb_direct_reads\":%s,\"rocksdb_load_s\":%.1f,"
               "\"rocksdb_sst_bytes\":%" PRIu64 ",\"rocksdb_gets_per_s\":%.0f,"
               "\"rocksdb_bad\":%" PRIu64 ",\"ours_threads\":1,\"ours_qd\":128,"
               "\"ours_rows_per_s\":%.0f,\"ratio\":%.3f,\"target\":1.5,\"meets_target\":%s%s%s%s}\n",
               o.rows, VBYTES, o.threads, rr.direct_reads ? "true" : "false", rr.load_s,
               rr.sst_bytes, rocks, rr.bad, ours_again, ratio, ratio >= 1.5 ? "true" : "false",
               rr.note[0] ? ",\"note\":\"" : "", rr.note[0] ? rr.note : "",
               rr.note[0] ? "\"" : "");
        fflush(stdout);
    }
    hier_nvme_close(s);
    rm_rf(sdir);

    /* --- Zipf over the tier ------------------------------------------------ */
    if (!o.skip_zipf) {
        char zdir[700];
        snprintf(zdir, sizeof(zdir), "%s/zipf", root);
        double zl;
        hier_nvme_t *zs = load_store(zdir, o.zipf_rows, 1, &zl, o.zipf_rows);
        hier_nvme_close(zs);
        perf_zipf_t z;
        perf_zipf_init(&z, o.zipf_rows, o.zipf_s);
        static const double budgets[] = {0.01, 0.02, 0.05, 0.10, 0.20, 0.40};
        enum { NB = sizeof(budgets) / sizeof(budgets[0]) };
        zp_point_t pts[2][NB];
        static const hier_policy_t pols[2] = {HIER_POLICY_LRU, HIER_POLICY_LFU};
        static const char *pname[2] = {"lru", "lfu"};
        for (int pi = 0; pi < 2; pi++) {
            for (int bi = 0; bi < (int)NB; bi++) {
                fprintf(stderr, "bench_tier: zipf %s budget %.0f%%\n", pname[pi], budgets[bi] * 100);
                zp_point_t p = zipf_point(zdir, o.zipf_rows, budgets[bi], pols[pi], &z,
                                          7 + (uint64_t)bi, 2.0, o.zipf_seconds);
                p.loadavg = loadavg1();
                pts[pi][bi] = p;
                printf("{\"bench\":\"tier\",\"test\":\"zipf\",\"zipf_s\":%.2f,\"rows\":%" PRIu64
                       ",\"dim\":%u,\"policy\":\"%s\",\"dram_budget\":%.2f,\"dram_rows\":%" PRIu64
                       ",\"batch\":1024,\"hit_rate\":%.4f,\"lookups_per_s\":%.0f,"
                       "\"nvme_page_reads_per_s\":%.0f,\"promotions_per_s\":%.0f,"
                       "\"cpu_share\":%.2f,\"dram_fill_at_start\":%.3f,\"warm_s\":%.1f,"
                       "\"loadavg\":%.2f,\"bad_rows\":%" PRIu64 ",\"headline\":%s}\n",
                       o.zipf_s, o.zipf_rows, DIM, pname[pi], budgets[bi],
                       (uint64_t)((double)o.zipf_rows * budgets[bi]), p.hit_rate, p.lookups_per_s,
                       p.nvme_pages_per_s, p.promotions_per_s, p.cpu_share, p.fill, p.warm_s,
                       p.loadavg, p.bad,
                       budgets[bi] == 0.10 ? "true" : "false");
                fflush(stdout);
            }
        }
        /* the plot */
        char dat[800], gp[800];
        snprintf(dat, sizeof(dat), "%s/zipf.dat", root);
        snprintf(gp, sizeof(gp), "%s/zipf.gp", root);
        FILE *f = fopen(dat, "w");
        if (f) {
            fprintf(f, "# budget_pct hit_lru klookups_lru hit_lfu klookups_lfu\n");
            for (int bi = 0; bi < (int)NB; bi++)
                fprintf(f, "%.0f %.4f %.1f %.4f %.1f\n", budgets[bi] * 100, pts[0][bi].hit_rate,
                        pts[0][bi].lookups_per_s / 1e3, pts[1][bi].hit_rate,
                        pts[1][bi].lookups_per_s / 1e3);
            fclose(f);
        }
        f = fopen(gp, "w");
        if (f) {
            fprintf(f,
                    "set terminal png size 1000,600\n"
                    "set output '%s'\n"
                    "set title 'Strata tier: Zipf(%.2f) lookups, %" PRIu64 " rows of 256 B, DRAM over NVMe'\n"
                    "set xlabel 'DRAM budget (%% of rows)'\n"
                    "set logscale x\n"
                    "set xtics (1,2,5,10,20,40)\n"
                    "set ylabel 'DRAM hit rate'\n"
                    "set yrange [0:1]\n"
                    "set y2label 'lookups/s (thousands)'\n"
                    "set y2tics\n"
                    "set ytics nomirror\n"
                    "set key bottom right\n"
                    "set grid\n"
                    "plot '%s' u 1:2 w lp lw 2 t 'hit rate, LRU', "
                    "'' u 1:4 w lp lw 2 t 'hit rate, LFU', "
                    "'' u 1:3 axes x1y2 w lp dt 2 t 'klookups/s, LRU', "
                    "'' u 1:5 axes x1y2 w lp dt 2 t 'klookups/s, LFU'\n",
                    o.png, o.zipf_s, o.zipf_rows, dat);
            fclose(f);
            char cmd[1700];
            snprintf(cmd, sizeof(cmd), "gnuplot '%s' 2>&1", gp);
            int rc = system(cmd);
            fprintf(stderr, "bench_tier: plot %s %s\n", o.png, rc == 0 ? "written" : "FAILED (gnuplot)");
        }
    }

    printf("{\"bench\":\"tier\",\"test\":\"summary\",\"index_bytes_per_key\":%.2f,"
           "\"qd128_ours_rows_per_s\":%.0f,\"qd128_fio_iops\":%.0f,\"rocksdb_gets_per_s\":%.0f,"
           "\"ours_vs_rocksdb\":%.3f,\"all_targets_met\":%s}\n",
           bpk, ours_qd128, fio_qd128, rocks, rocks > 0 ? ours_again / rocks : -1.0,
           all_met ? "true" : "false");
    free(stream);
    free(files);
    free(paths);
    if (!o.keep)
        rm_rf(root);
    else
        fprintf(stderr, "bench_tier: data kept in %s\n", root);
    return 0;
}
