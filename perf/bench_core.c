/*
 * perf/bench_core.c — the in-process table against this machine's limits and
 * against an abseil peer, in one run.
 *
 * For each dim (16/64/128), key distribution (uniform, Zipf(0.99)) and
 * thread count (1, 2) it measures, each time-boxed:
 *   gather_limit   a plain row array on huge pages read at random: memcpy of
 *                  each row to an output buffer, prefetching a few rows
 *                  ahead, for rows of the embedding size (dim*4 bytes) and
 *                  of Strata's slot stride (core_row_stride(dim));
 *   rmw_limit      the apply limit: the same array at the slot stride plus
 *                  a state array of dim floats per row, laid out like a
 *                  shard's, Adagrad applied in place (core_optim_apply, the
 *                  shard's per-row math) at the gather limit's positions,
 *                  prefetching for write every line of the row and state a
 *                  few keys ahead; no index, checksum or lock. One thread,
 *                  or N threads each on the rows of its own keys
 *                  (strata_key_shard(key, N)), as the sharded apply;
 *   absl_lookup    absl::flat_hash_map key -> row index + copy of the row,
 *                  plain and software-prefetched (perf/absl_peer.cc);
 *   absl_apply     the same map + Adagrad applied in place;
 *   lookup         strata_table_lookup, flags 0 (read-only, lock-free);
 *   apply          strata_table_apply_gradients with Adagrad: one thread on
 *                  all keys; N threads each on the keys of its own shard
 *                  (schema.nshards = N); N threads sharing all keys.
 * Each result is one JSON line on stdout with the full configuration, the
 * limit and peer figures measured in the same run, the ratios (apply lines
 * carry rmw_limit_rows_per_s and ratio_rmw_limit), and
 * meets_target where the issue sets a target (lookup >= 0.5x the gather
 * limit and >= 2x absl; Adagrad apply >= 5M rows/s per core at dim 64).
 * Targets are printed, never asserted. A summary line ends the run.
 * Progress (loading, touching memory) goes to stderr.
 *
 * Noise: this runs on small shared machines. Each window also records the
 * measuring threads' CPU time: cpu_share (CPU / wall, below ~0.95 someone
 * else had the core) and rows_per_cpu_s, the rate had each thread kept its
 * core; lines carry both the wall-clock ratios (meets_target) and the
 * CPU-normalized ones (meets_target_cpu).
 *
 * Keys: ranks drawn uniformly or from Zipf(s) (rejection-inversion,
 * Hörmann & Derflinger) are pre-generated before timing. A rank becomes a
 * key by a bijective 64-bit mix and a row position by a keyed Feistel
 * permutation of [0, rows), so hot keys are spread over the whole table in
 * every structure (the table is loaded in position order, the peer's row
 * array and the gather array are indexed by position).
 *
 * Memory: one dim at a time; the gather array, the peer and one state
 * array (the peer's accumulators, then rmw_limit's: phase A; rmw_limit runs
 * last in it, on the gather array) are freed before the table (phase B) is
 * built. The default (20M rows at dim
 * 64, other dims scaled to about the same bytes) peaks near 11.6 GiB RSS,
 * almost all of it the table at dim 64 (rows, Adagrad state, index);
 * rows shrink, with a note, when MemAvailable is smaller.
 *
 * Threading: worker threads are pinned to cores 0, 1, ... when
 * sched_setaffinity allows. Timing: CLOCK_MONOTONIC.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "core/layout.h"
#include "core/optim.h"
#include "perf/absl_peer.h"
#include "perf/perf_util.h"
#include "strata.h"
#include "strata_config.h"

/* ------------------------------------------------------------------------ */
/* configuration                                                            */
/* ------------------------------------------------------------------------ */

#define MAX_THREADS 8
#define MAX_DIMS 8
#define HUGE_PAGE_BYTES (2ull << 20)

#define DEFAULT_ROWS_AT_64 20000000ull  /* rows at dim 64; other dims scaled */
#define QUICK_ROWS_AT_64 (1ull << 19)
#define DEFAULT_SECONDS 3.0
#define QUICK_SECONDS 0.1
#define DEFAULT_WARMUP 0.5
#define QUICK_WARMUP 0.02
#define DEFAULT_STREAM (1ull << 23)     /* pre-generated keys per distribution */
#define QUICK_STREAM (1ull << 17)
#define DEFAULT_BATCH 1024
#define PREFETCH_AUTO UINT32_MAX        /* gather limit's prefetch distance: */
#define PREFETCH_MIN_ROWS 8             /*   at least this many rows ahead, */
#define PREFETCH_LINES 32               /*   and about this many lines in flight */
#define LOAD_BATCH 4096

#define ADAGRAD_LR 0.01f
#define ADAGRAD_EPS 1e-10f

#define TARGET_RATIO_GATHER 0.5
#define TARGET_RATIO_ABSL 2.0
#define TARGET_APPLY_PER_CORE 5e6
#define TARGET_APPLY_DIM 64u

enum { DIST_UNIFORM = 0, DIST_ZIPF = 1, NDIST = 2 };
static const char *const dist_name[NDIST] = {"uniform", "zipf"};

typedef struct bench_opts {
    uint32_t dims[MAX_DIMS];       /**< dims to run, in order */
    unsigned ndims;                /**< entries in dims */
    unsigned threads[MAX_THREADS]; /**< thread counts to run, in order */
    unsigned nthreads;             /**< entries in threads */
    unsigned max_threads;          /**< largest of threads: the table's nshards */
    bool dist_on[NDIST];           /**< which distributions run */
    double zipf_s;                 /**< Zipf exponent */
    uint64_t rows;                 /**< rows for every dim; 0: scaled default */
    uint64_t rows_at_64;           /**< the scaled default's rows at dim 64 */
    double seconds;                /**< timed window per measurement */
    double warmup;                 /**< untimed run before each window */
    size_t batch;                  /**< keys per call */
    int huge_pages;                /**< 1: MADV_HUGEPAGE everywhere */
    size_t stream_len;             /**< pre-generated keys per distribution */
    unsigned prefetch;             /**< gather limit's prefetch distance in
                                        rows; PREFETCH_AUTO: by row size */
    bool peers;                    /**< run the abseil peer */
    bool gather;                   /**< run the gather limit */
    bool table;                    /**< run the Strata table */
    bool quick;                    /**< CI smoke run */
} bench_opts_t;

static bench_opts_t opt;
static unsigned ncpu = 1;
static double run_t0;
static unsigned noisy_windows;      /* windows with cpu_share < NOISY_SHARE */
static double min_cpu_share = 1.0;  /* least cpu_share of any window */

#define NOISY_SHARE 0.95

/* ------------------------------------------------------------------------ */
/* small helpers                                                            */
/* ------------------------------------------------------------------------ */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/** CPU time of the calling thread: with the wall time of a window it tells
 *  how much of the core the thread really had (others' builds steal it). */
static double thread_cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void die(const char *what, const char *detail)
{
    fprintf(stderr, "bench_core: %s: %s\n", what, detail);
    exit(1);
}

static void *xmalloc(size_t len)
{
    void *p = NULL;
    if (posix_memalign(&p, 64, len ? len : 64) != 0)
        die("out of memory", "posix_memalign");
    return p;
}

/** MurmurHash3's fmix64: a bijection on u64 (each step is invertible). */
static inline uint64_t fmix64(uint64_t k)
{
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdull;
    k ^= k >> 33;
    k *= 0xc4ceb9fe1a85ec53ull;
    k ^= k >> 33;
    return k;
}

/** The key of a rank: distinct ranks give distinct, well-spread keys. */
static inline uint64_t key_of_rank(uint64_t rank)
{
    return fmix64(rank ^ 0x3c6ef372fe94f82bull);
}

/** Value of element c of the row at position p (load pattern, verifiable). */
static inline float row_value(uint64_t p, uint32_t c)
{
    return (float)((p * 31u + c) & 1023u) * (1.0f / 1024.0f) - 0.5f;
}

static double loadavg1(void)
{
    double l = -1.0;
    FILE *f = fopen("/proc/loadavg", "r");
    if (f) {
        if (fscanf(f, "%lf", &l) != 1)
            l = -1.0;
        fclose(f);
    }
    return l;
}

/** A "Key:   N kB" field of a /proc file, in bytes; 0 when absent. */
static uint64_t proc_kb_field(const char *path, const char *field)
{
    char line[256];
    uint64_t v = 0;
    size_t flen = strlen(field);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    while (fgets(line, sizeof(line), f)) {
        if (strncmp(line, field, flen) == 0 && line[flen] == ':') {
            v = strtoull(line + flen + 1, NULL, 10) * 1024ull;
            break;
        }
    }
    fclose(f);
    return v;
}

static double gib(uint64_t bytes)
{
    return (double)bytes / (double)(1ull << 30);
}

static uint64_t next_pow2(uint64_t x)
{
    uint64_t p = 1;
    while (p < x)
        p <<= 1;
    return p;
}

static bool pin_to_cpu(unsigned tid)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(tid % ncpu, &set);
    return sched_setaffinity(0, sizeof(set), &set) == 0;
}

/* ------------------------------------------------------------------------ */
/* JSON lines                                                               */
/* ------------------------------------------------------------------------ */

typedef struct jline {
    char buf[16384]; /**< the line being built */
    size_t len;      /**< bytes used */
    bool first;      /**< no field written yet at this nesting level */
} jline_t;

static void jl_raw(jline_t *j, const char *s)
{
    size_t n = strlen(s);
    if (j->len + n + 2 >= sizeof(j->buf))
        n = sizeof(j->buf) - j->len - 2;
    memcpy(j->buf + j->len, s, n);
    j->len += n;
    j->buf[j->len] = '\0';
}

static void jl_begin(jline_t *j, const char *bench)
{
    j->len = 0;
    j->buf[0] = '\0';
    j->first = true;
    jl_raw(j, "{");
    jl_raw(j, "\"bench\":\"");
    jl_raw(j, bench);
    jl_raw(j, "\"");
    j->first = false;
}

static void jl_key(jline_t *j, const char *k)
{
    if (!j->first)
        jl_raw(j, ",");
    j->first = false;
    jl_raw(j, "\"");
    jl_raw(j, k);
    jl_raw(j, "\":");
}

static void jl_str(jline_t *j, const char *k, const char *v)
{
    jl_key(j, k);
    jl_raw(j, "\"");
    for (const char *c = v; *c; c++) { /* escape what our strings may hold */
        char e[8];
        if (*c == '"' || *c == '\\') {
            e[0] = '\\';
            e[1] = *c;
            e[2] = '\0';
        } else if ((unsigned char)*c < 0x20) {
            snprintf(e, sizeof(e), "\\u%04x", (unsigned)(unsigned char)*c);
        } else {
            e[0] = *c;
            e[1] = '\0';
        }
        jl_raw(j, e);
    }
    jl_raw(j, "\"");
}

static void jl_u64(jline_t *j, const char *k, uint64_t v)
{
    char b[32];
    snprintf(b, sizeof(b), "%llu", (unsigned long long)v);
    jl_key(j, k);
    jl_raw(j, b);
}

static void jl_f64(jline_t *j, const char *k, double v)
{
    char b[48];
    jl_key(j, k);
    if (!isfinite(v)) {
        jl_raw(j, "null");
        return;
    }
    snprintf(b, sizeof(b), "%.6g", v);
    jl_raw(j, b);
}

/** A figure that may be unavailable (negative: null). */
static void jl_opt(jline_t *j, const char *k, double v)
{
    if (v < 0) {
        jl_key(j, k);
        jl_raw(j, "null");
    } else {
        jl_f64(j, k, v);
    }
}

static void jl_bool(jline_t *j, const char *k, bool v)
{
    jl_key(j, k);
    jl_raw(j, v ? "true" : "false");
}

static void jl_null(jline_t *j, const char *k)
{
    jl_key(j, k);
    jl_raw(j, "null");
}

static void jl_end(jline_t *j)
{
    jl_raw(j, "}");
    puts(j->buf);
    fflush(stdout);
}

/* ------------------------------------------------------------------------ */
/* progress on stderr                                                       */
/* ------------------------------------------------------------------------ */

typedef struct progress {
    const char *what;  /**< e.g. "load strata table" */
    uint32_t dim;      /**< for the message */
    uint64_t total;    /**< units to do */
    uint64_t done;     /**< units done (atomic) */
    double unit_bytes; /**< bytes per unit, for a rate */
    double t0;         /**< start */
    double last;       /**< last report (reporter thread only) */
} progress_t;

static void progress_start(progress_t *p, const char *what, uint32_t dim, uint64_t total,
                           double unit_bytes)
{
    p->what = what;
    p->dim = dim;
    p->total = total;
    p->done = 0;
    p->unit_bytes = unit_bytes;
    p->t0 = p->last = now_s();
}

static void progress_print(progress_t *p, bool final)
{
    double t = now_s(), el = t - p->t0;
    uint64_t d = __atomic_load_n(&p->done, __ATOMIC_RELAXED);
    double pct = p->total ? 100.0 * (double)d / (double)p->total : 100.0;
    fprintf(stderr, "bench_core: dim %u: %s: %5.1f%% (%llu/%llu) %.1f s, %.2f GB/s%s\n", p->dim,
            p->what, pct, (unsigned long long)d, (unsigned long long)p->total, el,
            el > 0 ? (double)d * p->unit_bytes / el / 1e9 : 0.0, final ? " done" : "");
    p->last = t;
}

/** Count units done; thread 0 reports about once a second. */
static void progress_add(progress_t *p, uint64_t units, unsigned tid)
{
    __atomic_fetch_add(&p->done, units, __ATOMIC_RELAXED);
    if (tid == 0 && now_s() - p->last >= 1.0)
        progress_print(p, false);
}

/* ------------------------------------------------------------------------ */
/* parallel helper for setup work (fill, load)                              */
/* ------------------------------------------------------------------------ */

typedef void (*par_fn_t)(void *arg, unsigned tid, unsigned nthreads);

typedef struct par_thread {
    par_fn_t fn;       /**< work */
    void *arg;         /**< its argument */
    unsigned tid;      /**< this thread */
    unsigned nthreads; /**< all threads */
} par_thread_t;

static void *par_main(void *p)
{
    par_thread_t *t = p;
    (void)pin_to_cpu(t->tid);
    t->fn(t->arg, t->tid, t->nthreads);
    return NULL;
}

static void run_parallel(unsigned nthreads, par_fn_t fn, void *arg)
{
    pthread_t th[MAX_THREADS];
    par_thread_t pt[MAX_THREADS];
    if (nthreads < 1)
        nthreads = 1;
    if (nthreads > MAX_THREADS)
        nthreads = MAX_THREADS;
    for (unsigned i = 0; i < nthreads; i++) {
        pt[i] = (par_thread_t){fn, arg, i, nthreads};
        if (pthread_create(&th[i], NULL, par_main, &pt[i]) != 0)
            die("pthread_create", strerror(errno));
    }
    for (unsigned i = 0; i < nthreads; i++)
        pthread_join(th[i], NULL);
}

/* ------------------------------------------------------------------------ */
/* memory regions on huge pages                                             */
/* ------------------------------------------------------------------------ */

typedef struct region {
    void *map;      /**< mmap result */
    size_t map_len; /**< mmap length */
    void *base;     /**< 2 MiB aligned start */
    size_t len;     /**< usable bytes */
} region_t;

static void region_alloc(region_t *r, size_t len)
{
    size_t rounded = (len + HUGE_PAGE_BYTES - 1) & ~(size_t)(HUGE_PAGE_BYTES - 1);
    r->map_len = rounded + HUGE_PAGE_BYTES;
    r->map = mmap(NULL, r->map_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                  -1, 0);
    if (r->map == MAP_FAILED)
        die("mmap", strerror(errno));
    uintptr_t b = ((uintptr_t)r->map + HUGE_PAGE_BYTES - 1) & ~(uintptr_t)(HUGE_PAGE_BYTES - 1);
    r->base = (void *)b;
    r->len = len;
    (void)madvise(r->base, rounded, opt.huge_pages ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
}

static void region_free(region_t *r)
{
    if (r->map)
        munmap(r->map, r->map_len);
    memset(r, 0, sizeof(*r));
}

/* ------------------------------------------------------------------------ */
/* key streams                                                              */
/* ------------------------------------------------------------------------ */

/** A keyed Feistel permutation of [0, n), by cycle walking over the
 *  smallest even-bit power of two >= n. */
typedef struct perm {
    uint64_t n;       /**< domain size */
    unsigned half;    /**< bits per half */
    uint64_t mask;    /**< (1 << half) - 1 */
    uint64_t rk[4];   /**< round keys */
} perm_t;

static void perm_init(perm_t *p, uint64_t n, uint64_t seed)
{
    unsigned bits = 2;
    while ((1ull << bits) < n)
        bits++;
    bits += bits & 1;
    p->n = n;
    p->half = bits / 2;
    p->mask = (1ull << p->half) - 1;
    for (int i = 0; i < 4; i++)
        p->rk[i] = perf_rand_next(&seed);
}

static inline uint64_t perm_round(const perm_t *p, uint64_t x, int r)
{
    return fmix64(x ^ p->rk[r]) & p->mask;
}

static inline uint64_t perm_fwd(const perm_t *p, uint64_t v)
{
    do {
        uint64_t l = v >> p->half, r = v & p->mask;
        for (int i = 0; i < 4; i++) {
            uint64_t t = l ^ perm_round(p, r, i);
            l = r;
            r = t;
        }
        v = (l << p->half) | r;
    } while (v >= p->n);
    return v;
}

static inline uint64_t perm_inv(const perm_t *p, uint64_t v)
{
    do {
        uint64_t l = v >> p->half, r = v & p->mask;
        for (int i = 3; i >= 0; i--) {
            uint64_t t = r ^ perm_round(p, l, i);
            r = l;
            l = t;
        }
        v = (l << p->half) | r;
    } while (v >= p->n);
    return v;
}

/** Pre-generated keys of one distribution, and the same keys split by
 *  shard for the one-writer-per-shard apply. */
typedef struct key_stream {
    int dist;                           /**< DIST_* */
    size_t len;                         /**< entries in keys/pos */
    uint64_t *keys;                     /**< keys in draw order */
    uint32_t *pos;                      /**< row position of each key */
    uint64_t *shard_keys[MAX_THREADS];  /**< keys of shard s, draw order */
    size_t shard_len[MAX_THREADS];      /**< entries in shard_keys[s] */
    unsigned nshards;                   /**< shards split into */
    double top1_share;                  /**< share of the most frequent rank */
    double gen_seconds;                 /**< time to generate */
} key_stream_t;

static void stream_make(key_stream_t *ks, int dist, uint64_t rows, const perm_t *perm,
                        unsigned nshards)
{
    double t0 = now_s();
    memset(ks, 0, sizeof(*ks));
    ks->dist = dist;
    ks->len = opt.stream_len;
    ks->keys = xmalloc(ks->len * sizeof(uint64_t));
    ks->pos = xmalloc(ks->len * sizeof(uint32_t));
    uint64_t rng = 0x853c49e6748fea9bull ^ ((uint64_t)dist << 32) ^ rows;
    perf_zipf_t z;
    memset(&z, 0, sizeof(z));
    if (dist == DIST_ZIPF)
        perf_zipf_init(&z, rows, opt.zipf_s);
    size_t top = 0;
    for (size_t i = 0; i < ks->len; i++) {
        uint64_t rank;
        if (dist == DIST_ZIPF)
            rank = perf_zipf_draw(&z, &rng);
        else
            rank = perf_rand_below(&rng, rows);
        top += rank == 0;
        ks->pos[i] = (uint32_t)perm_fwd(perm, rank);
        ks->keys[i] = key_of_rank(rank);
    }
    ks->top1_share = (double)top / (double)ks->len;
    ks->nshards = nshards;
    if (nshards > 1) {
        size_t count[MAX_THREADS] = {0};
        for (size_t i = 0; i < ks->len; i++)
            count[strata_key_shard(ks->keys[i], nshards)]++;
        for (unsigned s = 0; s < nshards; s++) {
            ks->shard_keys[s] = xmalloc((count[s] ? count[s] : 1) * sizeof(uint64_t));
            ks->shard_len[s] = 0;
        }
        for (size_t i = 0; i < ks->len; i++) {
            unsigned s = strata_key_shard(ks->keys[i], nshards);
            ks->shard_keys[s][ks->shard_len[s]++] = ks->keys[i];
        }
    }
    ks->gen_seconds = now_s() - t0;
}

static void stream_free(key_stream_t *ks)
{
    free(ks->keys);
    free(ks->pos);
    for (unsigned s = 0; s < MAX_THREADS; s++)
        free(ks->shard_keys[s]);
    memset(ks, 0, sizeof(*ks));
}

/* ------------------------------------------------------------------------ */
/* the time-boxed measurement                                               */
/* ------------------------------------------------------------------------ */

/** One batch of work: returns the rows done (n), or SIZE_MAX on error. */
typedef size_t (*bench_op_t)(void *arg, unsigned tid, const uint64_t *keys, const uint32_t *pos,
                             size_t n);

/** The slice of a stream one thread walks, batch by batch, wrapping. */
typedef struct lane {
    const uint64_t *keys; /**< keys (always) */
    const uint32_t *pos;  /**< positions (NULL for shard-split lanes) */
    size_t len;           /**< entries */
    size_t start;         /**< first entry this thread uses */
} lane_t;

typedef struct measure {
    bench_op_t op;                 /**< the work */
    void *arg;                     /**< its context */
    unsigned nthreads;             /**< threads */
    lane_t lane[MAX_THREADS];      /**< per thread */
    pthread_barrier_t barrier;     /**< start of warmup, start of window */
    uint64_t rows[MAX_THREADS];    /**< rows done in the window */
    double elapsed[MAX_THREADS];   /**< window length actually run */
    double cpu[MAX_THREADS];       /**< thread CPU time in the window */
    bool pinned[MAX_THREADS];      /**< sched_setaffinity worked */
    int failed;                    /**< an op returned SIZE_MAX */
} measure_t;

typedef struct measure_thread {
    measure_t *m;  /**< shared */
    unsigned tid;  /**< this thread */
} measure_thread_t;

static void *measure_main(void *p)
{
    measure_thread_t *mt = p;
    measure_t *m = mt->m;
    unsigned tid = mt->tid;
    const lane_t *ln = &m->lane[tid];
    const size_t batch = opt.batch;
    size_t off = ln->start;
    bool ok = true;

    m->pinned[tid] = pin_to_cpu(tid);
    pthread_barrier_wait(&m->barrier);
    double until = now_s() + opt.warmup;
    while (ok && now_s() < until) {
        if (off + batch > ln->len)
            off = 0;
        ok = m->op(m->arg, tid, ln->keys + off, ln->pos ? ln->pos + off : NULL, batch) != SIZE_MAX;
        off += batch;
    }
    pthread_barrier_wait(&m->barrier);
    uint64_t rows = 0;
    double c0 = thread_cpu_s();
    double t0 = now_s(), t = t0;
    while (ok && t - t0 < opt.seconds) {
        if (off + batch > ln->len)
            off = 0;
        size_t n = m->op(m->arg, tid, ln->keys + off, ln->pos ? ln->pos + off : NULL, batch);
        if (n == SIZE_MAX) {
            ok = false;
            break;
        }
        rows += n;
        off += batch;
        t = now_s();
    }
    m->rows[tid] = rows;
    m->elapsed[tid] = now_s() - t0;
    m->cpu[tid] = thread_cpu_s() - c0;
    if (!ok)
        __atomic_store_n(&m->failed, 1, __ATOMIC_RELAXED);
    return NULL;
}

typedef struct result {
    double rows_per_s;  /**< sum over threads of rows / own window; -1 failed */
    double rows_per_cpu_s; /**< sum over threads of rows / own CPU time: the
                                rate had each thread kept its core (noise-
                                robust; optimistic where threads sleep on a
                                lock); -1 failed */
    double elapsed;     /**< longest window */
    bool pinned;        /**< every thread pinned */
    double cpu_share;   /**< least CPU/wall ratio over the threads: < ~0.95
                             means others took the core and the figure is low */
    double load1;       /**< load average when it started */
} result_t;

static result_t measure_run(measure_t *m)
{
    pthread_t th[MAX_THREADS];
    measure_thread_t mt[MAX_THREADS];
    result_t r = {0, 0, 0, true, 1.0, loadavg1()};
    m->failed = 0;
    pthread_barrier_init(&m->barrier, NULL, m->nthreads);
    for (unsigned i = 0; i < m->nthreads; i++) {
        mt[i] = (measure_thread_t){m, i};
        if (pthread_create(&th[i], NULL, measure_main, &mt[i]) != 0)
            die("pthread_create", strerror(errno));
    }
    for (unsigned i = 0; i < m->nthreads; i++)
        pthread_join(th[i], NULL);
    pthread_barrier_destroy(&m->barrier);
    for (unsigned i = 0; i < m->nthreads; i++) {
        if (m->elapsed[i] > 0)
            r.rows_per_s += (double)m->rows[i] / m->elapsed[i];
        if (m->cpu[i] > 0)
            r.rows_per_cpu_s += (double)m->rows[i] / m->cpu[i];
        if (m->elapsed[i] > r.elapsed)
            r.elapsed = m->elapsed[i];
        r.pinned = r.pinned && m->pinned[i];
        if (m->elapsed[i] > 0 && m->cpu[i] / m->elapsed[i] < r.cpu_share)
            r.cpu_share = m->cpu[i] / m->elapsed[i];
    }
    if (m->failed)
        r.rows_per_s = r.rows_per_cpu_s = -1.0;
    if (r.cpu_share < NOISY_SHARE)
        noisy_windows++;
    if (r.cpu_share < min_cpu_share)
        min_cpu_share = r.cpu_share;
    return r;
}

/** Lanes over the whole stream: thread i starts i/n of the way in. */
static void lanes_shared(measure_t *m, const key_stream_t *ks, unsigned nthreads, bool with_pos)
{
    m->nthreads = nthreads;
    for (unsigned i = 0; i < nthreads; i++) {
        size_t start = ks->len / nthreads * i;
        start -= start % opt.batch;
        m->lane[i] = (lane_t){ks->keys, with_pos ? ks->pos : NULL, ks->len, start};
    }
}

/** Lanes of shard-split keys: thread i gets only the keys of shard i. */
static void lanes_sharded(measure_t *m, const key_stream_t *ks, unsigned nthreads)
{
    m->nthreads = nthreads;
    for (unsigned i = 0; i < nthreads; i++)
        m->lane[i] = (lane_t){ks->shard_keys[i], NULL, ks->shard_len[i], 0};
}

/* ------------------------------------------------------------------------ */
/* the operations measured                                                  */
/* ------------------------------------------------------------------------ */

typedef struct bufs {
    float *out[MAX_THREADS];   /**< batch * dim output rows per thread */
    float *grads[MAX_THREADS]; /**< batch * dim gradients per thread */
} bufs_t;

typedef struct gather_ctx {
    const uint8_t *base;  /**< row array */
    size_t stride;        /**< bytes between rows */
    size_t off;           /**< offset of the embedding in a row */
    size_t lines;         /**< cache lines prefetched per row, from its start */
    uint32_t dim;         /**< floats copied per row */
    unsigned prefetch;    /**< rows ahead */
    bufs_t *bufs;         /**< outputs */
} gather_ctx_t;

/** The tuned gather: prefetch the row `prefetch` positions ahead, copy this
 *  one. bytes is a constant at each call site so memcpy is inlined. */
static inline __attribute__((always_inline)) void
gather_rows(const gather_ctx_t *g, const uint32_t *pos, size_t n, uint8_t *out, size_t bytes)
{
    const uint8_t *base = g->base;
    const size_t stride = g->stride, off = g->off, lines = g->lines, pf = g->prefetch;
    for (size_t i = 0; i < n; i++) {
        if (i + pf < n) {
            const uint8_t *r = base + (size_t)pos[i + pf] * stride;
            for (size_t l = 0; l < lines; l++)
                __builtin_prefetch(r + 64 * l, 0, 3);
        }
        memcpy(out + i * bytes, base + (size_t)pos[i] * stride + off, bytes);
    }
}

static size_t op_gather(void *arg, unsigned tid, const uint64_t *keys, const uint32_t *pos,
                        size_t n)
{
    (void)keys;
    const gather_ctx_t *g = arg;
    uint8_t *out = (uint8_t *)g->bufs->out[tid];
    switch (g->dim) {
    case 16:
        gather_rows(g, pos, n, out, 64);
        break;
    case 32:
        gather_rows(g, pos, n, out, 128);
        break;
    case 64:
        gather_rows(g, pos, n, out, 256);
        break;
    case 128:
        gather_rows(g, pos, n, out, 512);
        break;
    case 256:
        gather_rows(g, pos, n, out, 1024);
        break;
    default:
        gather_rows(g, pos, n, out, 4ull * g->dim);
        break;
    }
    return n;
}

/** The apply limit: Strata's shard layout (slot-stride rows, a separate
 *  state array) updated in place, without index, checksum or lock. The
 *  math is core_optim_apply, the function the shard calls per row: this
 *  file is built with errno-setting sqrtf (no -fno-math-errno), which
 *  keeps a loop written here scalar, while core's copy is vectorized. */
typedef struct rmw_ctx {
    uint8_t *rows;                   /**< row array, stride bytes per row */
    float *state;                    /**< Adagrad accumulators, dim per row */
    size_t stride;                   /**< core_row_stride(dim) */
    size_t row_lines;                /**< lines prefetched per row, from its start */
    size_t state_lines;              /**< lines prefetched per state row */
    uint32_t dim;                    /**< floats updated per row */
    unsigned prefetch;               /**< rows ahead */
    strata_optimizer_params_t optim; /**< resolved Adagrad, the table's lr/eps */
    bufs_t *bufs;                    /**< gradients */
} rmw_ctx_t;

/** Prefetch for write every line of the row and state `prefetch` keys
 *  ahead (as the shard's apply pipeline does), update this one in place. */
static size_t op_rmw(void *arg, unsigned tid, const uint64_t *keys, const uint32_t *pos, size_t n)
{
    (void)keys;
    const rmw_ctx_t *c = arg;
    uint8_t *const rows = c->rows;
    float *const state = c->state;
    const float *grads = c->bufs->grads[tid];
    const size_t stride = c->stride, dim = c->dim, pf = c->prefetch;
    const size_t rl = c->row_lines, sl = c->state_lines;
    for (size_t i = 0; i < n; i++) {
        if (i + pf < n) {
            const uint8_t *r = rows + (size_t)pos[i + pf] * stride;
            const uint8_t *a = (const uint8_t *)(state + (size_t)pos[i + pf] * dim);
            for (size_t l = 0; l < rl; l++)
                __builtin_prefetch(r + 64 * l, 1, 3);
            for (size_t l = 0; l < sl; l++)
                __builtin_prefetch(a + 64 * l, 1, 3);
        }
        core_row_t *row = (core_row_t *)(void *)(rows + (size_t)pos[i] * stride);
        core_optim_apply(&c->optim, c->dim, row->emb, state + (size_t)pos[i] * dim,
                         grads + i * dim);
    }
    return n;
}

typedef struct peer_ctx {
    absl_peer_t *peer;          /**< key -> row index */
    float *rows;                /**< dense rows, dim floats each */
    float *acc;                 /**< Adagrad accumulators, same shape */
    uint32_t dim;               /**< floats per row */
    bufs_t *bufs;               /**< outputs and gradients */
    uint64_t hits[MAX_THREADS]; /**< keys found (per thread, for a hit rate) */
    uint64_t seen[MAX_THREADS]; /**< keys looked up */
} peer_ctx_t;

static size_t op_absl_lookup(void *arg, unsigned tid, const uint64_t *keys, const uint32_t *pos,
                             size_t n)
{
    (void)pos;
    peer_ctx_t *c = arg;
    c->hits[tid] += absl_peer_lookup(c->peer, keys, n, c->rows, c->dim, c->bufs->out[tid]);
    c->seen[tid] += n;
    return n;
}

static size_t op_absl_lookup_pf(void *arg, unsigned tid, const uint64_t *keys,
                                const uint32_t *pos, size_t n)
{
    (void)pos;
    peer_ctx_t *c = arg;
    c->hits[tid] +=
        absl_peer_lookup_prefetch(c->peer, keys, n, c->rows, c->dim, c->bufs->out[tid]);
    c->seen[tid] += n;
    return n;
}

static size_t op_absl_apply(void *arg, unsigned tid, const uint64_t *keys, const uint32_t *pos,
                            size_t n)
{
    (void)pos;
    peer_ctx_t *c = arg;
    c->hits[tid] += absl_peer_apply_adagrad(c->peer, keys, c->bufs->grads[tid], n, c->rows,
                                            c->acc, c->dim, ADAGRAD_LR, ADAGRAD_EPS);
    c->seen[tid] += n;
    return n;
}

typedef struct table_ctx {
    strata_table_t *table;      /**< the table measured */
    bufs_t *bufs;               /**< outputs and gradients */
    strata_status_t err[MAX_THREADS]; /**< first failure per thread */
} table_ctx_t;

static size_t op_lookup(void *arg, unsigned tid, const uint64_t *keys, const uint32_t *pos,
                        size_t n)
{
    (void)pos;
    table_ctx_t *c = arg;
    strata_status_t st = strata_table_lookup(c->table, keys, n, c->bufs->out[tid], NULL, 0);
    if (st != STRATA_OK) {
        c->err[tid] = st;
        return SIZE_MAX;
    }
    return n;
}

static size_t op_apply(void *arg, unsigned tid, const uint64_t *keys, const uint32_t *pos,
                       size_t n)
{
    (void)pos;
    table_ctx_t *c = arg;
    strata_status_t st = strata_table_apply_gradients(c->table, keys, c->bufs->grads[tid], n);
    if (st != STRATA_OK) {
        c->err[tid] = st;
        return SIZE_MAX;
    }
    return n;
}

/* ------------------------------------------------------------------------ */
/* per-dim state and result lines                                           */
/* ------------------------------------------------------------------------ */

/** A measured rate: wall-clock and per CPU second (see result_t). */
typedef struct fig {
    double wall; /**< rows/s; -1 unmeasured */
    double cpu;  /**< rows per CPU second; -1 unmeasured */
} fig_t;

/** Figures kept for the ratios, by distribution and thread-count slot. */
typedef struct figures {
    fig_t gather_emb[NDIST][MAX_THREADS];  /**< gather limit, embedding-size rows */
    fig_t gather_slot[NDIST][MAX_THREADS]; /**< gather limit, slot-stride rows */
    fig_t absl[NDIST][MAX_THREADS];        /**< abseil lookup, plain */
    fig_t absl_pf[NDIST][MAX_THREADS];     /**< abseil lookup, prefetched */
    fig_t absl_apply[NDIST][MAX_THREADS];  /**< abseil + Adagrad */
    fig_t rmw[NDIST][MAX_THREADS];         /**< apply limit (op_rmw) */
} figures_t;

static fig_t fig_of(const result_t *r)
{
    return (fig_t){r->rows_per_s, r->rows_per_cpu_s};
}

/** ours / theirs, or -1 when either is missing. */
static double ratio(double ours, double theirs)
{
    return ours >= 0 && theirs > 0 ? ours / theirs : -1.0;
}

typedef struct dim_run {
    uint32_t dim;                 /**< elements per row */
    uint64_t rows;                /**< rows in every structure */
    bool rows_reduced;            /**< shrunk to fit MemAvailable */
    uint64_t stride;              /**< core_row_stride(dim) */
    uint64_t est_peak;            /**< estimated peak bytes */
    perm_t perm;                  /**< rank -> position */
    key_stream_t ks[NDIST];       /**< pre-generated keys */
    bufs_t bufs;                  /**< per-thread buffers */
    figures_t fig;                /**< limit and peer figures */
} dim_run_t;

/** Summary counters. */
typedef struct summary {
    unsigned lines;             /**< result lines printed */
    unsigned targets;           /**< lines carrying meets_target */
    unsigned met;               /**< of which true */
    unsigned met_cpu;           /**< of which meets_target_cpu is true */
    unsigned failures;          /**< measurements that errored */
    char missed[4096];          /**< JSON array body of missed targets */
    size_t missed_len;          /**< bytes used */
} summary_t;

static summary_t sum;

static void note_target(bool met, const char *bench, uint32_t dim, int dist, unsigned threads,
                        const char *mode)
{
    sum.targets++;
    if (met) {
        sum.met++;
        return;
    }
    char item[160];
    int n = snprintf(item, sizeof(item), "%s\"%s%s%s dim=%u %s t=%u\"", sum.missed_len ? "," : "",
                     bench, mode ? " " : "", mode ? mode : "", dim, dist_name[dist], threads);
    if (n > 0 && sum.missed_len + (size_t)n < sizeof(sum.missed)) {
        memcpy(sum.missed + sum.missed_len, item, (size_t)n + 1);
        sum.missed_len += (size_t)n;
    }
}

/** The configuration fields every result line carries. */
static void jl_config(jline_t *j, const dim_run_t *d, int dist, unsigned threads,
                      const result_t *r)
{
    jl_u64(j, "dim", d->dim);
    jl_u64(j, "rows", d->rows);
    jl_str(j, "dist", dist_name[dist]);
    if (dist == DIST_ZIPF)
        jl_f64(j, "zipf_s", opt.zipf_s);
    else
        jl_null(j, "zipf_s");
    jl_u64(j, "threads", threads);
    jl_u64(j, "batch", opt.batch);
    jl_bool(j, "huge_pages", opt.huge_pages != 0);
    jl_f64(j, "seconds", opt.seconds);
    jl_f64(j, "warmup_s", opt.warmup);
    jl_u64(j, "stream_keys", d->ks[dist].len);
    if (r) {
        jl_f64(j, "elapsed_s", r->elapsed);
        jl_bool(j, "pinned", r->pinned);
        jl_f64(j, "cpu_share", r->cpu_share);
        jl_f64(j, "loadavg1", r->load1);
    }
}

/* ------------------------------------------------------------------------ */
/* phase A: the gather limit and the abseil peer                            */
/* ------------------------------------------------------------------------ */

typedef struct fill_ctx {
    uint8_t *base;     /**< region start */
    uint64_t rows;     /**< rows of the dense pattern */
    uint32_t dim;      /**< floats per dense row */
    size_t total;      /**< bytes to touch in all */
    int zero;          /**< 1: write zeros only (accumulators) */
    progress_t *prog;  /**< units: MiB */
} fill_ctx_t;

/** Touch a region: the dense row pattern in its first rows*dim floats
 *  (the peer's row array), zeros elsewhere. Threads take 1 MiB chunks
 *  interleaved. */
static void fill_worker(void *arg, unsigned tid, unsigned nthreads)
{
    fill_ctx_t *f = arg;
    const size_t chunk = 1u << 20;
    const size_t dense = (size_t)f->rows * f->dim * sizeof(float);
    for (size_t c = (size_t)tid * chunk; c < f->total; c += (size_t)nthreads * chunk) {
        size_t end = c + chunk < f->total ? c + chunk : f->total;
        size_t lo = c;
        if (!f->zero && lo < dense) {
            size_t hi = end < dense ? end : dense;
            float *v = (float *)(void *)(f->base + lo);
            size_t e0 = lo / sizeof(float), e1 = hi / sizeof(float);
            uint64_t p = e0 / f->dim;
            uint32_t col = (uint32_t)(e0 % f->dim);
            for (size_t e = e0; e < e1; e++) {
                *v++ = row_value(p, col);
                if (++col == f->dim) {
                    col = 0;
                    p++;
                }
            }
            lo = hi;
        }
        if (lo < end)
            memset(f->base + lo, 0, end - lo);
        progress_add(f->prog, 1, tid);
    }
}

static void fill_region(region_t *r, uint64_t rows, uint32_t dim, int zero, const char *what)
{
    progress_t prog;
    fill_ctx_t f = {r->base, rows, dim, r->len, zero, &prog};
    progress_start(&prog, what, dim, (r->len + (1u << 20) - 1) >> 20, (double)(1u << 20));
    run_parallel(ncpu < opt.max_threads ? ncpu : opt.max_threads, fill_worker, &f);
    progress_print(&prog, true);
}

static void emit_gather(dim_run_t *d, int dist, unsigned threads, const char *variant,
                        const gather_ctx_t *g, const result_t *r, uint64_t thp)
{
    jline_t j;
    jl_begin(&j, "gather_limit");
    jl_str(&j, "variant", variant);
    jl_opt(&j, "rows_per_s", r->rows_per_s);
    jl_opt(&j, "rows_per_cpu_s", r->rows_per_cpu_s);
    jl_f64(&j, "gb_per_s", r->rows_per_s * 4.0 * d->dim / 1e9);
    jl_u64(&j, "row_bytes", 4ull * d->dim);
    jl_u64(&j, "stride", g->stride);
    jl_u64(&j, "lines_prefetched", g->lines);
    jl_u64(&j, "prefetch_dist", g->prefetch);
    jl_f64(&j, "thp_gib", gib(thp));
    jl_config(&j, d, dist, threads, r);
    jl_end(&j);
    sum.lines++;
}

static void emit_peer(dim_run_t *d, int dist, unsigned threads, const char *bench,
                      const char *mode, const peer_ctx_t *c, const result_t *r)
{
    uint64_t hits = 0, seen = 0;
    for (unsigned i = 0; i < MAX_THREADS; i++) {
        hits += c->hits[i];
        seen += c->seen[i];
    }
    jline_t j;
    jl_begin(&j, bench);
    if (mode)
        jl_str(&j, "mode", mode);
    jl_opt(&j, "rows_per_s", r->rows_per_s);
    jl_opt(&j, "rows_per_s_per_core", r->rows_per_s < 0 ? -1 : r->rows_per_s / threads);
    jl_opt(&j, "rows_per_cpu_s", r->rows_per_cpu_s);
    jl_f64(&j, "hit_rate", seen ? (double)hits / (double)seen : 0.0);
    jl_str(&j, "peer", "absl::flat_hash_map<uint64_t,uint32_t> + dense row array");
    jl_config(&j, d, dist, threads, r);
    jl_end(&j);
    sum.lines++;
}

/** Rows the gather limit prefetches ahead: measured on the 2-core VM, one
 *  line rows gain up to 25% from 32 ahead, rows of 4+ lines are flat from
 *  8 on (the line fill buffers are the limit). */
static unsigned prefetch_rows(size_t lines)
{
    if (opt.prefetch != PREFETCH_AUTO)
        return opt.prefetch;
    size_t r = PREFETCH_LINES / (lines ? lines : 1);
    return r < PREFETCH_MIN_ROWS ? PREFETCH_MIN_ROWS : (unsigned)r;
}

static void emit_rmw(dim_run_t *d, int dist, unsigned threads, const char *mode,
                     const rmw_ctx_t *c, const result_t *r, uint64_t thp)
{
    jline_t j;
    jl_begin(&j, "rmw_limit");
    jl_str(&j, "variant", "slot_stride+state");
    jl_str(&j, "mode", mode);
    jl_str(&j, "optimizer", "adagrad");
    jl_opt(&j, "rows_per_s", r->rows_per_s);
    jl_opt(&j, "rows_per_s_per_core", r->rows_per_s < 0 ? -1 : r->rows_per_s / threads);
    jl_opt(&j, "rows_per_cpu_s", r->rows_per_cpu_s);
    jl_f64(&j, "gb_per_s", r->rows_per_s * 4.0 * d->dim / 1e9);
    jl_u64(&j, "row_bytes", 4ull * d->dim);
    jl_u64(&j, "stride", c->stride);
    jl_u64(&j, "state_bytes", 4ull * d->dim);
    jl_u64(&j, "lines_prefetched", c->row_lines + c->state_lines);
    jl_u64(&j, "prefetch_dist", c->prefetch);
    jl_f64(&j, "thp_gib", gib(thp));
    jl_config(&j, d, dist, threads, r);
    jl_end(&j);
    sum.lines++;
}

/** The apply limit on the gather array (rows at the slot stride, their
 *  contents whatever earlier phases left) and a state array of dim floats
 *  per row. One thread walks the gather limit's positions; N threads each
 *  walk the positions of their own keys (strata_key_shard(key, N)), in
 *  draw order, so no two threads write one row, as the sharded apply. */
static void rmw_limit_run(dim_run_t *d, region_t *arr, region_t *state)
{
    const uint32_t dim = d->dim;
    const size_t emb = 4ull * dim;
    if (!state->base) {
        region_alloc(state, d->rows * emb);
        fill_region(state, d->rows, dim, 1, "touch rmw limit state array");
    }
    uint64_t thp = proc_kb_field("/proc/self/smaps_rollup", "AnonHugePages");
    rmw_ctx_t c;
    memset(&c, 0, sizeof(c));
    c.rows = arr->base;
    c.state = state->base;
    c.stride = d->stride;
    c.row_lines = (core_row_bytes(dim) + 63) / 64;
    c.state_lines = (emb + 63) / 64;
    c.dim = dim;
    c.prefetch = prefetch_rows(c.row_lines + c.state_lines);
    c.bufs = &d->bufs;
    strata_optimizer_params_t in;
    memset(&in, 0, sizeof(in));
    in.field_mask = STRATA_OPT_FIELD_LR | STRATA_OPT_FIELD_EPS;
    in.type = STRATA_OPT_ADAGRAD;
    in.lr = ADAGRAD_LR;
    in.eps = ADAGRAD_EPS;
    core_optim_resolve(&in, &c.optim);

    for (int dist = 0; dist < NDIST; dist++) {
        if (!opt.dist_on[dist])
            continue;
        const key_stream_t *ks = &d->ks[dist];
        uint32_t *part = xmalloc(ks->len * sizeof(uint32_t));
        for (unsigned ti = 0; ti < opt.nthreads; ti++) {
            unsigned t = opt.threads[ti];
            measure_t m;
            memset(&m, 0, sizeof(m));
            if (t == 1) {
                lanes_shared(&m, ks, 1, true);
            } else {
                /* part holds thread 0's positions, then thread 1's, ... */
                size_t at = 0;
                m.nthreads = t;
                for (unsigned i = 0; i < t; i++) {
                    size_t start = at;
                    for (size_t k = 0; k < ks->len; k++)
                        if (strata_key_shard(ks->keys[k], t) == i)
                            part[at++] = ks->pos[k];
                    /* keys is unread by op_rmw; any slice as long works */
                    m.lane[i] = (lane_t){ks->keys, part + start, at - start, 0};
                }
            }
            m.op = op_rmw;
            m.arg = &c;
            result_t r = measure_run(&m);
            d->fig.rmw[dist][ti] = fig_of(&r);
            emit_rmw(d, dist, t, t == 1 ? "single" : "partitioned", &c, &r, thp);
        }
        free(part);
    }
}

static void phase_gather_and_peer(dim_run_t *d)
{
    region_t arr, state;
    const uint32_t dim = d->dim;
    const size_t emb = 4ull * dim;

    /* One array sized for the slot stride serves both gathers (the dense
     * embedding-size rows use its prefix), is the peer's row array and,
     * last, the apply limit's row array. state is the peer's accumulators,
     * then the apply limit's state array. */
    memset(&state, 0, sizeof(state));
    region_alloc(&arr, d->rows * d->stride);
    double t0 = now_s();
    fill_region(&arr, d->rows, dim, 0, "touch gather/peer row array");
    double fill_s = now_s() - t0;
    uint64_t thp = proc_kb_field("/proc/self/smaps_rollup", "AnonHugePages");
    {
        jline_t j;
        jl_begin(&j, "setup");
        jl_str(&j, "what", "touch gather array");
        jl_u64(&j, "dim", dim);
        jl_u64(&j, "rows", d->rows);
        jl_u64(&j, "bytes", arr.len);
        jl_f64(&j, "seconds", fill_s);
        jl_f64(&j, "gb_per_s", (double)arr.len / fill_s / 1e9);
        jl_f64(&j, "thp_gib", gib(thp));
        jl_end(&j);
    }

    const size_t lines_e = (emb + 63) / 64, lines_s = (core_row_bytes(dim) + 63) / 64;
    gather_ctx_t ge = {arr.base, emb, 0, lines_e, dim, prefetch_rows(lines_e), &d->bufs};
    gather_ctx_t gs = {arr.base, d->stride, CORE_ROW_HEADER_BYTES, lines_s, dim,
                       prefetch_rows(lines_s), &d->bufs};
    for (int dist = 0; dist < NDIST && opt.gather; dist++) {
        if (!opt.dist_on[dist])
            continue;
        for (unsigned ti = 0; ti < opt.nthreads; ti++) {
            unsigned t = opt.threads[ti];
            measure_t m;
            memset(&m, 0, sizeof(m));
            lanes_shared(&m, &d->ks[dist], t, true);
            m.op = op_gather;
            m.arg = &ge;
            result_t r = measure_run(&m);
            d->fig.gather_emb[dist][ti] = fig_of(&r);
            emit_gather(d, dist, t, "embedding", &ge, &r, thp);

            memset(&m, 0, sizeof(m));
            lanes_shared(&m, &d->ks[dist], t, true);
            m.op = op_gather;
            m.arg = &gs;
            r = measure_run(&m);
            d->fig.gather_slot[dist][ti] = fig_of(&r);
            emit_gather(d, dist, t, "slot_stride", &gs, &r, thp);
        }
    }

    if (!opt.peers || !STRATA_HAVE_ABSL)
        goto rmw_limit;

    /* The peer: key -> position, built in position order like the table. */
    t0 = now_s();
    absl_peer_t *peer = absl_peer_create(d->rows);
    if (!peer)
        die("absl peer", "out of memory");
    {
        progress_t prog;
        const size_t chunk = 1u << 16;
        uint64_t *keys = xmalloc(chunk * sizeof(uint64_t));
        uint32_t *idx = xmalloc(chunk * sizeof(uint32_t));
        progress_start(&prog, "build absl peer map", dim, d->rows, 12.0);
        for (uint64_t p0 = 0; p0 < d->rows; p0 += chunk) {
            size_t n = d->rows - p0 < chunk ? (size_t)(d->rows - p0) : chunk;
            for (size_t i = 0; i < n; i++) {
                keys[i] = key_of_rank(perm_inv(&d->perm, p0 + i));
                idx[i] = (uint32_t)(p0 + i);
            }
            if (absl_peer_insert(peer, keys, idx, n) != 0)
                die("absl peer", "out of memory while inserting");
            progress_add(&prog, n, 0);
        }
        progress_print(&prog, true);
        free(keys);
        free(idx);
    }
    double build_s = now_s() - t0;

    /* Verify one batch: every key found, every value as loaded. */
    const key_stream_t *ks0 = &d->ks[opt.dist_on[DIST_UNIFORM] ? DIST_UNIFORM : DIST_ZIPF];
    size_t vn = opt.batch < ks0->len ? opt.batch : ks0->len;
    size_t vh = absl_peer_lookup(peer, ks0->keys, vn, arr.base, dim, d->bufs.out[0]);
    bool verified = vh == vn;
    for (size_t i = 0; i < vn && verified; i++)
        for (uint32_t c = 0; c < dim; c++)
            if (d->bufs.out[0][i * dim + c] != row_value(ks0->pos[i], c))
                verified = false;
    {
        jline_t j;
        jl_begin(&j, "setup");
        jl_str(&j, "what", "build absl peer");
        jl_u64(&j, "dim", dim);
        jl_u64(&j, "rows", absl_peer_size(peer));
        jl_f64(&j, "seconds", build_s);
        jl_f64(&j, "rows_per_s", (double)d->rows / build_s);
        jl_bool(&j, "verified", verified);
        jl_end(&j);
    }

    region_alloc(&state, d->rows * emb);
    fill_region(&state, d->rows, dim, 1, "touch absl peer accumulators");

    for (int dist = 0; dist < NDIST; dist++) {
        if (!opt.dist_on[dist])
            continue;
        for (unsigned ti = 0; ti < opt.nthreads; ti++) {
            unsigned t = opt.threads[ti];
            measure_t m;
            peer_ctx_t c = {peer, arr.base, state.base, dim, &d->bufs, {0}, {0}};

            memset(&m, 0, sizeof(m));
            lanes_shared(&m, &d->ks[dist], t, false);
            m.op = op_absl_lookup;
            m.arg = &c;
            result_t r = measure_run(&m);
            d->fig.absl[dist][ti] = fig_of(&r);
            emit_peer(d, dist, t, "absl_lookup", NULL, &c, &r);

            memset(&c.hits, 0, sizeof(c.hits));
            memset(&c.seen, 0, sizeof(c.seen));
            memset(&m, 0, sizeof(m));
            lanes_shared(&m, &d->ks[dist], t, false);
            m.op = op_absl_lookup_pf;
            m.arg = &c;
            r = measure_run(&m);
            d->fig.absl_pf[dist][ti] = fig_of(&r);
            emit_peer(d, dist, t, "absl_lookup_prefetch", NULL, &c, &r);
        }
    }
    /* Apply last: it changes the rows the lookups verified. Several threads
     * only on disjoint keys (the shard split), as the table's writers. */
    for (int dist = 0; dist < NDIST; dist++) {
        if (!opt.dist_on[dist])
            continue;
        for (unsigned ti = 0; ti < opt.nthreads; ti++) {
            unsigned t = opt.threads[ti];
            if (t > 1 && t != d->ks[dist].nshards)
                continue;
            measure_t m;
            peer_ctx_t c = {peer, arr.base, state.base, dim, &d->bufs, {0}, {0}};
            memset(&m, 0, sizeof(m));
            if (t == 1)
                lanes_shared(&m, &d->ks[dist], 1, false);
            else
                lanes_sharded(&m, &d->ks[dist], t);
            m.op = op_absl_apply;
            m.arg = &c;
            result_t r = measure_run(&m);
            d->fig.absl_apply[dist][ti] = fig_of(&r);
            emit_peer(d, dist, t, "absl_apply", t == 1 ? "single" : "partitioned", &c, &r);
        }
    }
    absl_peer_destroy(peer);
rmw_limit:
    /* Last: it rewrites the rows the peer verified. */
    if (opt.gather)
        rmw_limit_run(d, &arr, &state);
    region_free(&state);
    region_free(&arr);
}

/* ------------------------------------------------------------------------ */
/* phase B: the Strata table                                                */
/* ------------------------------------------------------------------------ */

typedef struct load_ctx {
    strata_table_t *table;  /**< being loaded */
    const dim_run_t *d;     /**< rows, perm, dim */
    unsigned nshards;       /**< loader i writes only shard i's keys */
    progress_t *prog;       /**< units: rows */
    strata_status_t err;    /**< first failure */
} load_ctx_t;

/** Loader thread tid assigns, in position order, the rows whose keys
 *  belong to shard tid (with one shard per loader, writers never wait). */
static void load_worker(void *arg, unsigned tid, unsigned nthreads)
{
    load_ctx_t *l = arg;
    const uint32_t dim = l->d->dim;
    uint64_t *keys = xmalloc(LOAD_BATCH * sizeof(uint64_t));
    float *vals = xmalloc((size_t)LOAD_BATCH * dim * sizeof(float));
    size_t n = 0;
    for (uint64_t p = 0; p < l->d->rows; p++) {
        uint64_t key = key_of_rank(perm_inv(&l->d->perm, p));
        if (nthreads > 1 && strata_key_shard(key, l->nshards) % nthreads != tid)
            continue;
        keys[n] = key;
        for (uint32_t c = 0; c < dim; c++)
            vals[n * dim + c] = row_value(p, c);
        if (++n == LOAD_BATCH) {
            strata_status_t st = strata_table_assign(l->table, keys, vals, n);
            if (st != STRATA_OK) {
                l->err = st;
                fprintf(stderr, "bench_core: load: %s (%s)\n", strata_status_string(st),
                        strata_last_error());
                break;
            }
            progress_add(l->prog, n, tid);
            n = 0;
        }
    }
    if (n > 0 && l->err == STRATA_OK) {
        strata_status_t st = strata_table_assign(l->table, keys, vals, n);
        if (st != STRATA_OK)
            l->err = st;
        else
            progress_add(l->prog, n, tid);
    }
    free(keys);
    free(vals);
}

/** The lookup target on one set of figures (wall or CPU-normalized):
 *  1 met, 0 missed; *have_g / *have_a say which figures existed. */
static bool lookup_meets(double ours, double ge, double ab, bool *meets_g, bool *meets_a,
                         bool *have_g, bool *have_a)
{
    *have_g = ratio(ours, ge) >= 0;
    *have_a = ratio(ours, ab) >= 0;
    *meets_g = *have_g && ours / ge >= TARGET_RATIO_GATHER;
    *meets_a = *have_a && ours / ab >= TARGET_RATIO_ABSL;
    return ours >= 0 && (*have_g || *have_a) && (!*have_g || *meets_g) && (!*have_a || *meets_a);
}

static void jl_tristate(jline_t *j, const char *k, bool have, bool v)
{
    if (have)
        jl_bool(j, k, v);
    else
        jl_null(j, k);
}

static void emit_lookup(dim_run_t *d, int dist, unsigned threads, int ti, unsigned nshards,
                        const result_t *r, strata_status_t err)
{
    const fig_t ge = d->fig.gather_emb[dist][ti], gs = d->fig.gather_slot[dist][ti];
    const fig_t ab = d->fig.absl[dist][ti], abp = d->fig.absl_pf[dist][ti];
    double ours = r->rows_per_s, ours_cpu = r->rows_per_cpu_s;
    bool ok = ours >= 0, mg, ma, hg, ha;
    jline_t j;
    jl_begin(&j, "lookup");
    jl_opt(&j, "rows_per_s", ours);
    jl_opt(&j, "ns_per_row_per_thread", ok && ours > 0 ? 1e9 * threads / ours : -1);
    jl_opt(&j, "gather_emb_rows_per_s", ge.wall);
    jl_opt(&j, "gather_slot_rows_per_s", gs.wall);
    jl_opt(&j, "absl_rows_per_s", ab.wall);
    jl_opt(&j, "absl_prefetch_rows_per_s", abp.wall);
    jl_opt(&j, "ratio_gather_emb", ratio(ours, ge.wall));
    jl_opt(&j, "ratio_gather_slot", ratio(ours, gs.wall));
    jl_opt(&j, "ratio_absl", ratio(ours, ab.wall));
    jl_opt(&j, "ratio_absl_prefetch", ratio(ours, abp.wall));
    jl_f64(&j, "target_ratio_gather", TARGET_RATIO_GATHER);
    jl_f64(&j, "target_ratio_absl", TARGET_RATIO_ABSL);
    bool meets = lookup_meets(ours, ge.wall, ab.wall, &mg, &ma, &hg, &ha);
    jl_tristate(&j, "meets_gather_target", hg, mg);
    jl_tristate(&j, "meets_absl_target", ha, ma);
    jl_bool(&j, "meets_target", meets);
    note_target(meets, "lookup", d->dim, dist, threads, NULL);
    /* The same on CPU-normalized rates: what a quiet machine would show. */
    jl_opt(&j, "rows_per_cpu_s", ours_cpu);
    jl_opt(&j, "ratio_gather_emb_cpu", ratio(ours_cpu, ge.cpu));
    jl_opt(&j, "ratio_gather_slot_cpu", ratio(ours_cpu, gs.cpu));
    jl_opt(&j, "ratio_absl_cpu", ratio(ours_cpu, ab.cpu));
    jl_opt(&j, "ratio_absl_prefetch_cpu", ratio(ours_cpu, abp.cpu));
    bool meets_cpu = lookup_meets(ours_cpu, ge.cpu, ab.cpu, &mg, &ma, &hg, &ha);
    jl_bool(&j, "meets_target_cpu", meets_cpu);
    sum.met_cpu += meets_cpu;
    jl_u64(&j, "nshards", nshards);
    jl_u64(&j, "flags", 0);
    if (!ok) {
        jl_str(&j, "error", strata_status_string(err));
        sum.failures++;
    }
    jl_config(&j, d, dist, threads, r);
    jl_end(&j);
    sum.lines++;
}

static void emit_apply(dim_run_t *d, int dist, unsigned threads, int ti, unsigned nshards,
                       const char *mode, const result_t *r, strata_status_t err)
{
    const fig_t ab = d->fig.absl_apply[dist][ti], rl = d->fig.rmw[dist][ti];
    double ours = r->rows_per_s, ours_cpu = r->rows_per_cpu_s;
    bool ok = ours >= 0;
    double per_core = ok ? ours / threads : -1;
    double per_core_cpu = ours_cpu >= 0 ? ours_cpu / threads : -1;
    jline_t j;
    jl_begin(&j, "apply");
    jl_str(&j, "mode", mode);
    jl_str(&j, "optimizer", "adagrad");
    jl_opt(&j, "rows_per_s", ours);
    jl_opt(&j, "rows_per_s_per_core", per_core);
    jl_opt(&j, "absl_apply_rows_per_s", ab.wall);
    jl_opt(&j, "ratio_absl", ratio(ours, ab.wall));
    jl_opt(&j, "rmw_limit_rows_per_s", rl.wall);
    jl_opt(&j, "ratio_rmw_limit", ratio(ours, rl.wall));
    if (d->dim == TARGET_APPLY_DIM) {
        jl_f64(&j, "target_rows_per_s_per_core", TARGET_APPLY_PER_CORE);
        bool meets = ok && per_core >= TARGET_APPLY_PER_CORE;
        jl_bool(&j, "meets_target", meets);
        note_target(meets, "apply", d->dim, dist, threads, mode);
    }
    /* CPU-normalized; optimistic for "shared", whose threads sleep on the
     * shard locks without spending CPU. */
    jl_opt(&j, "rows_per_cpu_s", ours_cpu);
    jl_opt(&j, "rows_per_cpu_s_per_core", per_core_cpu);
    jl_opt(&j, "ratio_absl_cpu", ratio(ours_cpu, ab.cpu));
    jl_opt(&j, "ratio_rmw_limit_cpu", ratio(ours_cpu, rl.cpu));
    if (d->dim == TARGET_APPLY_DIM) {
        bool meets_cpu = per_core_cpu >= TARGET_APPLY_PER_CORE;
        jl_bool(&j, "meets_target_cpu", meets_cpu);
        sum.met_cpu += meets_cpu;
    }
    jl_u64(&j, "nshards", nshards);
    if (!ok) {
        jl_str(&j, "error", strata_status_string(err));
        sum.failures++;
    }
    jl_config(&j, d, dist, threads, r);
    jl_end(&j);
    sum.lines++;
}

static strata_status_t first_err(const table_ctx_t *c)
{
    for (unsigned i = 0; i < MAX_THREADS; i++)
        if (c->err[i] != STRATA_OK)
            return c->err[i];
    return STRATA_OK;
}

static void phase_table(dim_run_t *d)
{
    const uint32_t dim = d->dim;
    const unsigned nshards = opt.max_threads;
    strata_table_params_t tp;
    memset(&tp, 0, sizeof(tp));
    tp.field_mask = STRATA_TABLE_PARAM_FIELD_SCHEMA | STRATA_TABLE_PARAM_FIELD_HUGE_PAGES;
    tp.huge_pages = opt.huge_pages;
    tp.schema.field_mask = STRATA_SCHEMA_FIELD_NAME | STRATA_SCHEMA_FIELD_DIM |
                           STRATA_SCHEMA_FIELD_CAPACITY | STRATA_SCHEMA_FIELD_OPTIMIZER |
                           STRATA_SCHEMA_FIELD_NSHARDS;
    tp.schema.name = "bench_core";
    tp.schema.dim = dim;
    /* Shards are filled by key hash, so each gets rows/nshards +- a few
     * sqrt(rows): leave slack (reserved, never touched). */
    tp.schema.capacity = d->rows + d->rows / 64 + 65536;
    tp.schema.optimizer.field_mask = STRATA_OPT_FIELD_LR | STRATA_OPT_FIELD_EPS;
    tp.schema.optimizer.type = STRATA_OPT_ADAGRAD;
    tp.schema.optimizer.lr = ADAGRAD_LR;
    tp.schema.optimizer.eps = ADAGRAD_EPS;
    tp.schema.nshards = nshards;

    strata_table_t *table = NULL;
    strata_status_t st = strata_table_create(&tp, &table);
    if (st != STRATA_OK) {
        jline_t j;
        jl_begin(&j, "setup");
        jl_str(&j, "what", "create strata table");
        jl_u64(&j, "dim", dim);
        jl_str(&j, "error", strata_status_string(st));
        jl_str(&j, "detail", strata_last_error());
        jl_end(&j);
        sum.failures++;
        return;
    }

    progress_t prog;
    load_ctx_t l = {table, d, nshards, &prog, STRATA_OK};
    progress_start(&prog, "load strata table (strata_table_assign)", dim, d->rows,
                   (double)(d->stride + 4ull * dim));
    double t0 = now_s();
    unsigned loaders = nshards < ncpu ? nshards : ncpu;
    run_parallel(loaders, load_worker, &l);
    double load_s = now_s() - t0;
    progress_print(&prog, true);

    strata_table_stats_t stats;
    memset(&stats, 0, sizeof(stats));
    (void)strata_table_get_stats(table, &stats);

    /* Verify one batch: every key found with the values loaded. */
    const key_stream_t *ks0 = &d->ks[opt.dist_on[DIST_UNIFORM] ? DIST_UNIFORM : DIST_ZIPF];
    size_t vn = opt.batch < ks0->len ? opt.batch : ks0->len;
    uint8_t *found = xmalloc(vn);
    bool verified = l.err == STRATA_OK &&
                    strata_table_lookup(table, ks0->keys, vn, d->bufs.out[0], found, 0) == STRATA_OK;
    for (size_t i = 0; i < vn && verified; i++) {
        if (found[i] != STRATA_ROW_FOUND)
            verified = false;
        for (uint32_t c = 0; c < dim && verified; c++)
            if (d->bufs.out[0][i * dim + c] != row_value(ks0->pos[i], c))
                verified = false;
    }
    free(found);
    {
        jline_t j;
        jl_begin(&j, "setup");
        jl_str(&j, "what", "load strata table");
        jl_u64(&j, "dim", dim);
        jl_u64(&j, "rows", stats.rows);
        jl_u64(&j, "nshards", nshards);
        jl_u64(&j, "loaders", loaders);
        jl_f64(&j, "seconds", load_s);
        jl_f64(&j, "rows_per_s", (double)d->rows / load_s);
        jl_f64(&j, "bytes_rows_gib", gib(stats.bytes_rows));
        jl_f64(&j, "bytes_state_gib", gib(stats.bytes_state));
        jl_f64(&j, "bytes_index_gib", gib(stats.bytes_index));
        jl_u64(&j, "index_buckets", stats.index_buckets);
        jl_f64(&j, "thp_gib", gib(proc_kb_field("/proc/self/smaps_rollup", "AnonHugePages")));
        jl_f64(&j, "rss_gib", gib(proc_kb_field("/proc/self/status", "VmRSS")));
        jl_bool(&j, "verified", verified);
        if (l.err != STRATA_OK) {
            jl_str(&j, "error", strata_status_string(l.err));
            jl_str(&j, "detail", strata_last_error());
        }
        jl_end(&j);
    }
    if (l.err != STRATA_OK) {
        sum.failures++;
        goto destroy;
    }

    for (int dist = 0; dist < NDIST; dist++) {
        if (!opt.dist_on[dist])
            continue;
        for (unsigned ti = 0; ti < opt.nthreads; ti++) {
            unsigned t = opt.threads[ti];
            measure_t m;
            table_ctx_t c = {table, &d->bufs, {STRATA_OK}};
            memset(&m, 0, sizeof(m));
            lanes_shared(&m, &d->ks[dist], t, false);
            m.op = op_lookup;
            m.arg = &c;
            result_t r = measure_run(&m);
            emit_lookup(d, dist, t, (int)ti, nshards, &r, first_err(&c));
        }
    }
    for (int dist = 0; dist < NDIST; dist++) {
        if (!opt.dist_on[dist])
            continue;
        for (unsigned ti = 0; ti < opt.nthreads; ti++) {
            unsigned t = opt.threads[ti];
            measure_t m;
            table_ctx_t c = {table, &d->bufs, {STRATA_OK}};
            result_t r;
            if (t == 1) {
                memset(&m, 0, sizeof(m));
                lanes_shared(&m, &d->ks[dist], 1, false);
                m.op = op_apply;
                m.arg = &c;
                r = measure_run(&m);
                emit_apply(d, dist, 1, (int)ti, nshards, "single", &r, first_err(&c));
                continue;
            }
            if (t == nshards) { /* one writer per shard, own keys only */
                memset(&m, 0, sizeof(m));
                lanes_sharded(&m, &d->ks[dist], t);
                m.op = op_apply;
                m.arg = &c;
                r = measure_run(&m);
                emit_apply(d, dist, t, (int)ti, nshards, "sharded", &r, first_err(&c));
            }
            /* every thread on every shard: writers meet on the shard locks */
            memset(&c.err, 0, sizeof(c.err));
            memset(&m, 0, sizeof(m));
            lanes_shared(&m, &d->ks[dist], t, false);
            m.op = op_apply;
            m.arg = &c;
            r = measure_run(&m);
            emit_apply(d, dist, t, (int)ti, nshards, "shared", &r, first_err(&c));
        }
    }
destroy:
    strata_table_destroy(table);
}

/* ------------------------------------------------------------------------ */
/* sizing                                                                   */
/* ------------------------------------------------------------------------ */

/** Default rows for a dim: the dim-64 count scaled so that row slots plus
 *  Adagrad state take about the same bytes (capped at 2x the rows). */
static uint64_t default_rows(uint32_t dim)
{
    double per64 = (double)core_row_stride(64) + 4.0 * 64;
    double per = (double)core_row_stride(dim) + 4.0 * dim;
    double r = (double)opt.rows_at_64 * per64 / per;
    double cap = 2.0 * (double)opt.rows_at_64;
    if (r > cap)
        r = cap;
    uint64_t rows = (uint64_t)r;
    return rows < 1024 ? 1024 : rows;
}

/** Estimated peak bytes of one dim's run (the larger phase). */
static uint64_t estimate_peak(uint32_t dim, uint64_t rows)
{
    uint64_t stride = core_row_stride(dim), emb = 4ull * dim;
    uint64_t streams = 2ull * opt.stream_len * (8 + 4 + 8) + opt.stream_len * 4; /* + rmw lanes */
    uint64_t absl = opt.peers && STRATA_HAVE_ABSL ? next_pow2(rows * 8 / 7 + 1) * 17 : 0;
    /* Phase A: the gather array, the peer's map, and one state array
     * (the peer's accumulators, then the apply limit's). */
    uint64_t phase_a = rows * stride + (absl || opt.gather ? rows * emb : 0) + absl;
    /* Buckets at the index's 3/4 load rule; x1.5 below for the old index
     * kept while a larger one is built. */
    uint64_t buckets = next_pow2(rows * 4 / 3 / 7 + 1);
    uint64_t phase_b = rows * (stride + emb + 16 + 8) + buckets * 64 * 3 / 2;
    return (phase_a > phase_b ? phase_a : phase_b) + streams;
}

/* ------------------------------------------------------------------------ */
/* one dim                                                                  */
/* ------------------------------------------------------------------------ */

static void run_dim(uint32_t dim)
{
    dim_run_t *d = calloc(1, sizeof(*d));
    if (!d)
        die("out of memory", "dim state");
    d->dim = dim;
    d->stride = core_row_stride(dim);
    d->rows = opt.rows ? opt.rows : default_rows(dim);
    if (d->rows > UINT32_MAX)
        d->rows = UINT32_MAX;
    uint64_t avail = proc_kb_field("/proc/meminfo", "MemAvailable");
    d->est_peak = estimate_peak(dim, d->rows);
    while (avail && d->est_peak > avail / 100 * 85 && d->rows > 4096) {
        d->rows = d->rows * 9 / 10;
        d->rows_reduced = true;
        d->est_peak = estimate_peak(dim, d->rows);
    }
    if (d->rows_reduced)
        fprintf(stderr, "bench_core: dim %u: rows reduced to %llu to fit MemAvailable %.1f GiB\n",
                dim, (unsigned long long)d->rows, gib(avail));
    for (int dist = 0; dist < NDIST; dist++)
        for (unsigned t = 0; t < MAX_THREADS; t++)
            d->fig.gather_emb[dist][t] = d->fig.gather_slot[dist][t] = d->fig.absl[dist][t] =
                d->fig.absl_pf[dist][t] = d->fig.absl_apply[dist][t] = d->fig.rmw[dist][t] =
                    (fig_t){-1.0, -1.0};

    perm_init(&d->perm, d->rows, 0x6a09e667f3bcc908ull ^ dim);
    uint64_t grng = 0xbb67ae8584caa73bull;
    for (unsigned t = 0; t < opt.max_threads; t++) {
        d->bufs.out[t] = xmalloc(opt.batch * dim * sizeof(float));
        d->bufs.grads[t] = xmalloc(opt.batch * dim * sizeof(float));
        memset(d->bufs.out[t], 0, opt.batch * dim * sizeof(float));
        for (size_t i = 0; i < opt.batch * dim; i++) /* nonzero, |g| <= 0.05 */
            d->bufs.grads[t][i] = (float)(perf_rand_u01(&grng) * 0.1 - 0.05) + 1e-4f;
    }

    fprintf(stderr, "bench_core: dim %u: %llu rows, stride %llu B, est. peak %.1f GiB; generating keys\n",
            dim, (unsigned long long)d->rows, (unsigned long long)d->stride, gib(d->est_peak));
    for (int dist = 0; dist < NDIST; dist++) {
        if (!opt.dist_on[dist])
            continue;
        stream_make(&d->ks[dist], dist, d->rows, &d->perm, opt.max_threads);
        jline_t j;
        jl_begin(&j, "setup");
        jl_str(&j, "what", "key stream");
        jl_u64(&j, "dim", dim);
        jl_u64(&j, "rows", d->rows);
        jl_bool(&j, "rows_reduced_for_memory", d->rows_reduced);
        jl_f64(&j, "est_peak_gib", gib(d->est_peak));
        jl_str(&j, "dist", dist_name[dist]);
        if (dist == DIST_ZIPF)
            jl_f64(&j, "zipf_s", opt.zipf_s);
        jl_u64(&j, "stream_keys", d->ks[dist].len);
        jl_f64(&j, "top1_share", d->ks[dist].top1_share);
        jl_f64(&j, "seconds", d->ks[dist].gen_seconds);
        jl_end(&j);
    }

    if (opt.gather || (opt.peers && STRATA_HAVE_ABSL))
        phase_gather_and_peer(d);
    if (opt.table)
        phase_table(d);

    for (int dist = 0; dist < NDIST; dist++)
        stream_free(&d->ks[dist]);
    for (unsigned t = 0; t < opt.max_threads; t++) {
        free(d->bufs.out[t]);
        free(d->bufs.grads[t]);
    }
    free(d);
}

/* ------------------------------------------------------------------------ */
/* options                                                                  */
/* ------------------------------------------------------------------------ */

static void usage(FILE *f)
{
    fprintf(f,
            "usage: bench_core [options]\n"
            "  --dims LIST       dims to run (default 16,64,128)\n"
            "  --rows N          rows for every dim (default: 20M at dim 64, other dims\n"
            "                    scaled to about the same bytes; --quick: 512K at 64)\n"
            "  --threads LIST    thread counts (default 1,2); the table gets nshards =\n"
            "                    the largest\n"
            "  --dists LIST      uniform,zipf (default both)\n"
            "  --zipf-s X        Zipf exponent (default 0.99)\n"
            "  --seconds S       timed window per measurement (default 3, --quick 0.1)\n"
            "  --warmup S        untimed run before each window (default 0.5, --quick 0.02)\n"
            "  --batch N         keys per call (default 1024)\n"
            "  --stream N        pre-generated keys per distribution (default 8M)\n"
            "  --prefetch N      gather and rmw limits' prefetch distance in rows (default:\n"
            "                    about 32 cache lines ahead, at least 8 rows)\n"
            "  --huge-pages 0|1  MADV_HUGEPAGE for every array and the table (default 1)\n"
            "  --only LIST       run only these of gather,peer,table (default all);\n"
            "                    gather includes the rmw (apply) limit\n"
            "  --no-peers        skip the abseil peer (same as --only gather,table)\n"
            "  --quick           small table, short windows: a CI smoke run (< 30 s)\n"
            "Prints one JSON line per result on stdout, progress on stderr.\n");
}

static unsigned parse_list(const char *s, unsigned *out, unsigned max, unsigned lo, unsigned hi,
                           const char *what)
{
    unsigned n = 0;
    const char *p = s;
    while (*p) {
        char *end;
        unsigned long v = strtoul(p, &end, 10);
        if (end == p || v < lo || v > hi || n == max) {
            fprintf(stderr, "bench_core: bad %s list '%s' (values %u..%u, at most %u)\n", what, s,
                    lo, hi, max);
            exit(2);
        }
        out[n++] = (unsigned)v;
        p = end;
        if (*p == ',')
            p++;
        else if (*p)
            break;
    }
    if (n == 0 || *p) {
        fprintf(stderr, "bench_core: bad %s list '%s'\n", what, s);
        exit(2);
    }
    return n;
}

static double parse_double(const char *s, const char *what, double lo, double hi)
{
    char *end;
    double v = strtod(s, &end);
    if (end == s || *end || !(v >= lo && v <= hi)) {
        fprintf(stderr, "bench_core: bad %s '%s' (%g..%g)\n", what, s, lo, hi);
        exit(2);
    }
    return v;
}

static void parse_options(int argc, char **argv)
{
    enum { O_DIMS = 256, O_ROWS, O_THREADS, O_DISTS, O_ZIPF, O_SECONDS, O_WARMUP, O_BATCH,
           O_STREAM, O_PREFETCH, O_HUGE, O_NOPEERS, O_ONLY, O_QUICK, O_HELP };
    static const struct option longopts[] = {
        {"dims", required_argument, NULL, O_DIMS},
        {"rows", required_argument, NULL, O_ROWS},
        {"threads", required_argument, NULL, O_THREADS},
        {"dists", required_argument, NULL, O_DISTS},
        {"zipf-s", required_argument, NULL, O_ZIPF},
        {"seconds", required_argument, NULL, O_SECONDS},
        {"warmup", required_argument, NULL, O_WARMUP},
        {"batch", required_argument, NULL, O_BATCH},
        {"stream", required_argument, NULL, O_STREAM},
        {"prefetch", required_argument, NULL, O_PREFETCH},
        {"huge-pages", required_argument, NULL, O_HUGE},
        {"no-peers", no_argument, NULL, O_NOPEERS},
        {"only", required_argument, NULL, O_ONLY},
        {"quick", no_argument, NULL, O_QUICK},
        {"help", no_argument, NULL, O_HELP},
        {NULL, 0, NULL, 0}};
    double seconds = -1, warmup = -1;
    double stream = -1;
    bool dims_set = false, threads_set = false;

    opt.zipf_s = 0.99;
    opt.batch = DEFAULT_BATCH;
    opt.huge_pages = 1;
    opt.prefetch = PREFETCH_AUTO;
    opt.peers = opt.gather = opt.table = true;
    opt.dist_on[DIST_UNIFORM] = opt.dist_on[DIST_ZIPF] = true;

    int c;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (c) {
        case O_DIMS:
            opt.ndims = parse_list(optarg, opt.dims, MAX_DIMS, 1, STRATA_DIM_MAX, "dims");
            dims_set = true;
            break;
        case O_ROWS:
            opt.rows = (uint64_t)parse_double(optarg, "rows", 1024, 4e9);
            break;
        case O_THREADS:
            opt.nthreads = parse_list(optarg, opt.threads, MAX_THREADS, 1, MAX_THREADS, "threads");
            threads_set = true;
            break;
        case O_DISTS: {
            opt.dist_on[DIST_UNIFORM] = strstr(optarg, "uniform") != NULL;
            opt.dist_on[DIST_ZIPF] = strstr(optarg, "zipf") != NULL;
            if (!opt.dist_on[DIST_UNIFORM] && !opt.dist_on[DIST_ZIPF]) {
                fprintf(stderr, "bench_core: --dists takes uniform,zipf\n");
                exit(2);
            }
            break;
        }
        case O_ZIPF:
            opt.zipf_s = parse_double(optarg, "zipf-s", 0.01, 10.0);
            if (fabs(opt.zipf_s - 1.0) < 1e-9)
                opt.zipf_s = 1.0 + 1e-9; /* the sampler's formulas need s != 1 */
            break;
        case O_SECONDS:
            seconds = parse_double(optarg, "seconds", 0.001, 3600);
            break;
        case O_WARMUP:
            warmup = parse_double(optarg, "warmup", 0, 3600);
            break;
        case O_BATCH:
            opt.batch = (size_t)parse_double(optarg, "batch", 1, 1 << 20);
            break;
        case O_STREAM:
            stream = parse_double(optarg, "stream", 1024, 1ull << 31);
            break;
        case O_PREFETCH:
            opt.prefetch = (unsigned)parse_double(optarg, "prefetch", 0, 256);
            break;
        case O_HUGE:
            opt.huge_pages = parse_double(optarg, "huge-pages", 0, 1) != 0;
            break;
        case O_NOPEERS:
            opt.peers = false;
            break;
        case O_ONLY:
            opt.gather = strstr(optarg, "gather") != NULL;
            opt.peers = strstr(optarg, "peer") != NULL;
            opt.table = strstr(optarg, "table") != NULL;
            if (!opt.gather && !opt.peers && !opt.table) {
                fprintf(stderr, "bench_core: --only takes gather,peer,table\n");
                exit(2);
            }
            break;
        case O_QUICK:
            opt.quick = true;
            break;
        case O_HELP:
            usage(stdout);
            exit(0);
        default:
            usage(stderr);
            exit(2);
        }
    }
    if (optind < argc) {
        usage(stderr);
        exit(2);
    }
    if (!dims_set) {
        opt.dims[0] = 16, opt.dims[1] = 64, opt.dims[2] = 128;
        opt.ndims = 3;
    }
    if (!threads_set) {
        opt.threads[0] = 1, opt.threads[1] = 2;
        opt.nthreads = 2;
    }
    opt.max_threads = 1;
    for (unsigned i = 0; i < opt.nthreads; i++)
        if (opt.threads[i] > opt.max_threads)
            opt.max_threads = opt.threads[i];
    opt.rows_at_64 = opt.quick ? QUICK_ROWS_AT_64 : DEFAULT_ROWS_AT_64;
    opt.seconds = seconds >= 0 ? seconds : opt.quick ? QUICK_SECONDS : DEFAULT_SECONDS;
    opt.warmup = warmup >= 0 ? warmup : opt.quick ? QUICK_WARMUP : DEFAULT_WARMUP;
    opt.stream_len = stream >= 0 ? (size_t)stream : opt.quick ? QUICK_STREAM : DEFAULT_STREAM;
    /* Every lane must hold a few batches, shard-split lanes included. */
    if (opt.stream_len < 4 * opt.batch * opt.max_threads)
        opt.stream_len = 4 * opt.batch * opt.max_threads;
}

/* ------------------------------------------------------------------------ */
/* main                                                                     */
/* ------------------------------------------------------------------------ */

static void read_thp_mode(char *buf, size_t len)
{
    snprintf(buf, len, "unknown");
    FILE *f = fopen("/sys/kernel/mm/transparent_hugepage/enabled", "r");
    if (!f)
        return;
    char line[128];
    if (fgets(line, sizeof(line), f)) {
        char *a = strchr(line, '['), *b = a ? strchr(a, ']') : NULL;
        if (a && b && (size_t)(b - a - 1) < len) {
            memcpy(buf, a + 1, (size_t)(b - a - 1));
            buf[b - a - 1] = '\0';
        }
    }
    fclose(f);
}

int main(int argc, char **argv)
{
    parse_options(argc, argv);
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    ncpu = n > 0 ? (unsigned)n : 1;
    run_t0 = now_s();

    char thp[32];
    read_thp_mode(thp, sizeof(thp));
    {
        jline_t j;
        jl_begin(&j, "config");
        jl_str(&j, "strata_version", strata_version_string());
        jl_u64(&j, "ncpu", ncpu);
        jl_f64(&j, "mem_total_gib", gib(proc_kb_field("/proc/meminfo", "MemTotal")));
        jl_f64(&j, "mem_available_gib", gib(proc_kb_field("/proc/meminfo", "MemAvailable")));
        jl_str(&j, "thp_enabled", thp);
        jl_bool(&j, "absl_peer", opt.peers && STRATA_HAVE_ABSL);
        jl_bool(&j, "quick", opt.quick);
        jl_u64(&j, "rows_at_dim64", opt.rows ? opt.rows : opt.rows_at_64);
        jl_bool(&j, "rows_scaled_by_dim", opt.rows == 0);
        jl_u64(&j, "batch", opt.batch);
        jl_f64(&j, "seconds", opt.seconds);
        jl_f64(&j, "warmup_s", opt.warmup);
        jl_u64(&j, "stream_keys", opt.stream_len);
        jl_f64(&j, "zipf_s", opt.zipf_s);
        if (opt.prefetch == PREFETCH_AUTO)
            jl_str(&j, "gather_prefetch_dist", "auto: max(8 rows, 32 lines)");
        else
            jl_u64(&j, "gather_prefetch_dist", opt.prefetch);
        jl_bool(&j, "huge_pages", opt.huge_pages != 0);
        jl_f64(&j, "loadavg1", loadavg1());
        jl_end(&j);
    }
    if (!STRATA_HAVE_ABSL && opt.peers)
        fprintf(stderr, "bench_core: built without libabsl-dev: the abseil peer is skipped\n");

    for (unsigned i = 0; i < opt.ndims; i++)
        run_dim(opt.dims[i]);

    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    jline_t j;
    jl_begin(&j, "summary");
    jl_f64(&j, "elapsed_s", now_s() - run_t0);
    jl_u64(&j, "result_lines", sum.lines);
    jl_u64(&j, "targets", sum.targets);
    jl_u64(&j, "targets_met", sum.met);
    jl_u64(&j, "targets_met_cpu", sum.met_cpu);
    jl_bool(&j, "all_targets_met", sum.targets > 0 && sum.met == sum.targets);
    jl_key(&j, "missed");
    jl_raw(&j, "[");
    jl_raw(&j, sum.missed);
    jl_raw(&j, "]");
    jl_u64(&j, "failures", sum.failures);
    jl_f64(&j, "max_rss_gib", (double)ru.ru_maxrss * 1024.0 / (double)(1ull << 30));
    jl_f64(&j, "loadavg1", loadavg1());
    jl_u64(&j, "noisy_windows", noisy_windows);
    jl_f64(&j, "min_cpu_share", min_cpu_share);
    jl_str(&j, "note", "2-core VM shared with builds: figures taken while others compile are "
                       "noisy: cpu_share per line is the measuring threads' CPU time over wall time, below 0.95 another process took the core; rerun on a quiet machine");
    jl_bool(&j, "quick", opt.quick);
    jl_end(&j);
    return sum.failures ? 1 : 0;
}
