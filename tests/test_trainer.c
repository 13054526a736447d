/*
 * tests/test_trainer.c — trainer ranks (include/strata_trainer.h) on a local
 * cluster, under MPI:
 *
 *   mpirun -np 2 test_trainer
 *
 * Rank 0 starts 2 strata-servers (tests/cluster.c) and broadcasts their
 * addresses; every rank connects its own client. Checks:
 *  1. mode A lookups (owner exchange) equal mode B direct lookups of the
 *     same keys, bit for bit, with duplicates and an empty batch;
 *  2. 20 BSP steps of SGD, each rank its half of a global batch (keys
 *     repeated within and across halves, gradients depending on the rows
 *     read), end with the rows of a 1-rank run of the same global batches
 *     (rank 0, MPI_COMM_SELF, mode B) on another table, within 1e-5;
 *  3. mode A and mode B give the same rows after that training;
 *  4. the bucketed dense allreduce gives the exact sum and average of
 *     integer-valued vectors spanning more buckets than are in flight;
 *  5. top-k filtering (fraction 0.5), then flush, ends where unfiltered
 *     training does (SGD is linear in the gradients), within 1e-5;
 * and, with row-independent gradients, SSP and ASYNC runs (both modes)
 * end at the same rows after flush; the rows mode A serves are exactly as
 * stale as BSP / SSP(2) / ASYNC allow; under SSP(2) no rank ends step t
 * before a slow rank has ended step t - 2; a failed allocation on one rank
 * fails the lookup on every rank; a NaN gradient on one rank fails the
 * push on every rank and changes nothing; ranks that disagree on the
 * settings fail create on every rank.
 *
 * Only rank 0 starts and stops servers; it kills them if mpirun stops it.
 */
#define _GNU_SOURCE
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#if STRATA_TRAINER_NCCL
#include <nccl.h> /* before strata_trainer.h: declares the NCCL allreduce */
#endif

#include "cluster.h"
#include "strata_trainer.h"
#include "testutil.h"

#define DIM    16
#define NKEYS  400 /* key universe */
#define GBATCH 256 /* global batch per step */
#define STEPS  20
#define LR     0.05f

static int g_rank, g_np;
static cluster_t g_cl;
static strata_client_t *g_client;

/* mpirun SIGTERMs the ranks when one fails: take the servers down too
 * (kill and _exit are async-signal-safe) */
static void on_term(int sig)
{
    for (uint32_t i = 0; i < g_cl.n; i++)
        if (g_cl.pid[i] > 0)
            kill(g_cl.pid[i], SIGKILL);
    _exit(128 + sig);
}

static uint64_t key_of(uint64_t k)
{
    return k * 0x9E3779B97F4A7C15ULL + 12345;
}

static strata_table_schema_t schema_for(const char *name)
{
    return test_cluster_schema(name, DIM, 100000, 2, STRATA_OPT_SGD, LR, 11);
}

static strata_rtable_t *open_table(const char *name)
{
    strata_rtable_t *t = NULL;
    CHECK_OK(strata_client_open_table(g_client, name, &t));
    return t;
}

static strata_trainer_t *make_trainer(MPI_Comm comm, const char *table, strata_sparse_mode_t mode,
                                      strata_sync_mode_t sync, uint32_t staleness, float topk)
{
    strata_trainer_params_t p;
    memset(&p, 0, sizeof(p));
    p.field_mask = STRATA_TRAINER_FIELD_COMM | STRATA_TRAINER_FIELD_CLIENT |
                   STRATA_TRAINER_FIELD_TABLE | STRATA_TRAINER_FIELD_MODE |
                   STRATA_TRAINER_FIELD_CONSISTENCY | STRATA_TRAINER_FIELD_TOPK_FRACTION;
    p.comm = comm;
    p.client = g_client;
    p.table = open_table(table);
    p.mode = mode;
    p.consistency = sync;
    p.topk_fraction = topk;
    if (staleness) {
        p.field_mask |= STRATA_TRAINER_FIELD_STALENESS;
        p.staleness = staleness;
    }
    strata_trainer_t *tr = NULL;
    CHECK_OK(strata_trainer_create(&p, &tr));
    return tr;
}

/* Step `step`'s global batch: GBATCH keys from NKEYS (repeats within the
 * batch), the second half starting with copies of the first half's first
 * keys (repeats across ranks), and a gradient per position. */
static void global_batch(int step, uint64_t *keys, float *g)
{
    test_rng_t rng;
    test_rng_seed(&rng, 1000 + (uint64_t)step);
    for (int i = 0; i < GBATCH; i++)
        keys[i] = key_of(test_rng_below(&rng, NKEYS));
    for (int i = 0; i < 24; i++)
        keys[GBATCH / 2 + i] = keys[i];
    for (int i = 0; i < GBATCH * DIM; i++)
        g[i] = test_rng_float(&rng, -1.0f, 1.0f);
}

/* Train `steps` steps as part `part` of `nparts`. dep: the gradient also
 * depends on the row read (g + 0.5 * row), so a stale read shows. */
static void train(strata_trainer_t *tr, int nparts, int part, int dep, int steps)
{
    static uint64_t keys[GBATCH];
    static float g[GBATCH * DIM], rows[GBATCH * DIM], grads[GBATCH * DIM];
    size_t lo = (size_t)GBATCH * (size_t)part / (size_t)nparts;
    size_t hi = (size_t)GBATCH * (size_t)(part + 1) / (size_t)nparts;
    size_t n = hi - lo;
    for (int t = 0; t < steps; t++) {
        global_batch(t, keys, g);
        CHECK_OK(strata_trainer_lookup(tr, keys + lo, n, rows));
        for (size_t i = 0; i < n * DIM; i++)
            grads[i] = g[lo * DIM + i] + (dep ? 0.5f * rows[i] : 0.0f);
        CHECK_OK(strata_trainer_push(tr, keys + lo, grads, n));
        CHECK_OK(strata_trainer_step_end(tr));
    }
}

/* The rows of every key of the universe (read-only lookup). */
static void read_all(const char *table, float *out)
{
    uint64_t keys[NKEYS];
    for (uint64_t k = 0; k < NKEYS; k++)
        keys[k] = key_of(k);
    CHECK_OK(strata_rtable_lookup(open_table(table), keys, NKEYS, out, NULL, 0));
}

static double max_diff(const char *a, const char *b)
{
    static float ra[NKEYS * DIM], rb[NKEYS * DIM];
    read_all(a, ra);
    read_all(b, rb);
    double m = 0;
    for (int i = 0; i < NKEYS * DIM; i++) {
        CHECK(isfinite(ra[i]) && isfinite(rb[i]), "%s/%s: non-finite row element", a, b);
        double d = fabs((double)ra[i] - (double)rb[i]);
        if (d > m)
            m = d;
    }
    return m;
}

static void print_stats(const char *what, strata_trainer_t *tr)
{
    strata_trainer_stats_t s;
    strata_trainer_get_stats(tr, &s);
    printf("{\"rank\":%d,\"run\":\"%s\",\"steps\":%llu,\"lookup_keys\":%llu,"
           "\"lookup_unique\":%llu,\"keys_sent\":%llu,\"keys_received\":%llu,"
           "\"bytes_sent\":%llu,\"bytes_received\":%llu,\"owner_unique\":%llu,"
           "\"cache_hits\":%llu,\"cache_misses\":%llu,\"store_reads\":%llu,"
           "\"store_pushes\":%llu,\"filtered_rows\":%llu,\"lookup_s\":%.6f,\"push_s\":%.6f,"
           "\"exchange_s\":%.6f,\"store_lookup_s\":%.6f,\"store_push_s\":%.6f,"
           "\"sync_s\":%.6f}\n",
           g_rank, what, (unsigned long long)s.steps, (unsigned long long)s.lookup_keys,
           (unsigned long long)s.lookup_unique, (unsigned long long)s.keys_sent,
           (unsigned long long)s.keys_received, (unsigned long long)s.bytes_sent,
           (unsigned long long)s.bytes_received, (unsigned long long)s.owner_unique,
           (unsigned long long)s.cache_hits, (unsigned long long)s.cache_misses,
           (unsigned long long)s.store_reads, (unsigned long long)s.store_pushes,
           (unsigned long long)s.filtered_rows, s.lookup_s, s.push_s, s.exchange_s,
           s.store_lookup_s, s.store_push_s, s.sync_s);
    fflush(stdout);
}

/* 1. mode A lookups == mode B lookups, bit for bit */
static void check_lookup_equal(void)
{
    strata_trainer_t *a =
        make_trainer(MPI_COMM_WORLD, "look", STRATA_SPARSE_OWNER, STRATA_SYNC_BSP, 0, 0);
    strata_trainer_t *b =
        make_trainer(MPI_COMM_WORLD, "look", STRATA_SPARSE_DIRECT, STRATA_SYNC_BSP, 0, 0);
    test_rng_t rng;
    test_rng_seed(&rng, 77 + (uint64_t)g_rank);
    enum { B = 700 };
    static uint64_t keys[B];
    static float ra[B * DIM], rb[B * DIM];
    for (int round = 0; round < 6; round++) {
        size_t n = 1 + test_rng_below(&rng, B);
        if (round == 3 && g_rank == g_np - 1)
            n = 0; /* an empty batch on one rank */
        for (size_t i = 0; i < n; i++)
            keys[i] = key_of(test_rng_below(&rng, 3 * NKEYS)); /* repeats, new keys */
        memset(ra, 0xff, sizeof(ra));
        CHECK_OK(strata_trainer_lookup(a, keys, n, ra));
        CHECK_OK(strata_trainer_lookup(b, keys, n, rb));
        for (size_t i = 0; i < n; i++)
            CHECK(memcmp(ra + i * DIM, rb + i * DIM, DIM * sizeof(float)) == 0,
                  "rank %d round %d key %zu: mode A row %g != mode B row %g", g_rank, round, i,
                  ra[i * DIM], rb[i * DIM]);
        CHECK_OK(strata_trainer_step_end(a));
        CHECK_OK(strata_trainer_step_end(b));
    }
    strata_trainer_stats_t s;
    strata_trainer_get_stats(a, &s);
    if (g_np > 1)
        CHECK(s.keys_sent > 0 && s.keys_received > 0 && s.bytes_sent > 0,
              "mode A exchanged nothing");
    print_stats("lookup_A", a);

    /* a NaN on the last rank: BAD_VALUE on every rank, no row changes */
    static float before[B * DIM], after[B * DIM], grads[B * DIM];
    size_t n = 64;
    for (size_t i = 0; i < n; i++)
        keys[i] = key_of(i);
    for (size_t i = 0; i < n * DIM; i++)
        grads[i] = 1.0f;
    if (g_rank == g_np - 1)
        grads[5] = NAN;
    CHECK_OK(strata_trainer_lookup(b, keys, n, before));
    strata_status_t st = strata_trainer_push(a, keys, grads, n);
    CHECK(st == STRATA_ERR_BAD_VALUE, "rank %d: NaN push gave %s", g_rank,
          strata_status_string(st));
    st = strata_trainer_push(b, keys, grads, n);
    CHECK(st == STRATA_ERR_BAD_VALUE, "rank %d: NaN push (mode B) gave %s", g_rank,
          strata_status_string(st));
    CHECK_OK(strata_trainer_lookup(b, keys, n, after));
    CHECK(memcmp(before, after, n * DIM * sizeof(float)) == 0, "a failed push changed rows");

    /* an allocation failing on the last rank (its scratch must grow for a
     * batch larger than any before) fails the lookup on every rank, and
     * the next one works */
    enum { BIG = 5000 };
    uint64_t *big = malloc(BIG * sizeof(uint64_t));
    float *bout = malloc((size_t)BIG * DIM * sizeof(float));
    CHECK(big && bout, "malloc");
    for (size_t i = 0; i < BIG; i++)
        big[i] = key_of(i);
    if (g_rank == g_np - 1)
        strata_test_fail_alloc(1, 0);
    st = strata_trainer_lookup(a, big, BIG, bout);
    strata_test_fail_alloc(0, 0);
    if (g_np > 1 || g_rank == g_np - 1)
        CHECK(st == STRATA_ERR_NOMEM, "rank %d: lookup with a failed allocation gave %s", g_rank,
              strata_status_string(st));
    CHECK_OK(strata_trainer_lookup(a, big, BIG, bout));
    free(big);
    free(bout);
    strata_trainer_destroy(a);
    strata_trainer_destroy(b);

    /* settings that differ between ranks fail create everywhere */
    strata_trainer_params_t p;
    memset(&p, 0, sizeof(p));
    p.field_mask = STRATA_TRAINER_FIELD_COMM | STRATA_TRAINER_FIELD_CLIENT |
                   STRATA_TRAINER_FIELD_TABLE | STRATA_TRAINER_FIELD_TOPK_FRACTION;
    p.comm = MPI_COMM_WORLD;
    p.client = g_client;
    p.table = open_table("look");
    p.topk_fraction = g_rank == 0 ? 0.5f : 0.25f;
    strata_trainer_t *bad = NULL;
    st = strata_trainer_create(&p, &bad);
    if (g_np > 1)
        CHECK(st == STRATA_ERR_INVALID_PARAM && bad == NULL, "mismatched create gave %s",
              strata_status_string(st));
    else
        strata_trainer_destroy(bad);
    p.topk_fraction = 2.0f; /* invalid on every rank */
    CHECK(strata_trainer_create(&p, &bad) == STRATA_ERR_INVALID_PARAM, "topk 2 accepted");
}

/* 4. dense allreduce, exact */
static void check_dense(void)
{
    strata_trainer_params_t p;
    memset(&p, 0, sizeof(p));
    p.field_mask = STRATA_TRAINER_FIELD_COMM | STRATA_TRAINER_FIELD_CLIENT |
                   STRATA_TRAINER_FIELD_TABLE | STRATA_TRAINER_FIELD_DENSE_BUCKET_BYTES;
    p.comm = MPI_COMM_WORLD;
    p.client = g_client;
    p.table = open_table("look");
    p.dense_bucket_bytes = 1000; /* 250 floats: 12 buckets, more than in flight */
    strata_trainer_t *tr = NULL;
    CHECK_OK(strata_trainer_create(&p, &tr));
    enum { N = 250 * 11 + 17 };
    static float v[N];
    for (int avg = 0; avg < 2; avg++) {
        for (int i = 0; i < N; i++)
            v[i] = (float)((i * 7 + g_rank * 13) % 101) - 50.0f;
        CHECK_OK(strata_trainer_allreduce_dense(tr, v, N, avg));
        for (int i = 0; i < N; i++) {
            float sum = 0;
            for (int r = 0; r < g_np; r++)
                sum += (float)((i * 7 + r * 13) % 101) - 50.0f;
            float want = avg ? sum / (float)g_np : sum;
            CHECK(v[i] == want, "dense[%d] (avg %d) = %g, want %g", i, avg, v[i], want);
        }
    }
    CHECK_OK(strata_trainer_allreduce_dense(tr, v, 0, 1));
    strata_trainer_stats_t s;
    strata_trainer_get_stats(tr, &s);
    CHECK(s.dense_bytes == 2 * N * sizeof(float), "dense_bytes %llu",
          (unsigned long long)s.dense_bytes);
    printf("{\"rank\":%d,\"run\":\"dense\",\"floats\":%d,\"buckets\":12,\"allreduce_s\":%.6f}\n",
           g_rank, N, s.allreduce_s);
    strata_trainer_destroy(tr);
}

/* One 2-rank run, flushed; returns nothing, the rows are in the table. */
static void run(const char *table, strata_sparse_mode_t mode, strata_sync_mode_t sync, uint32_t s,
                float topk, int dep, const char *label)
{
    strata_trainer_t *tr = make_trainer(MPI_COMM_WORLD, table, mode, sync, s, topk);
    train(tr, g_np, g_rank, dep, STEPS);
    CHECK_OK(strata_trainer_flush(tr));
    strata_trainer_stats_t st;
    strata_trainer_get_stats(tr, &st);
    CHECK(st.residual_rows == 0, "%s: residuals after flush", label);
    if (topk > 0)
        CHECK(st.filtered_rows > 0, "%s: top-k held nothing back", label);
    if (mode == STRATA_SPARSE_OWNER && sync == STRATA_SYNC_SSP)
        CHECK(st.cache_hits > 0, "%s: SSP cache never hit", label);
    print_stats(label, tr);
    strata_trainer_destroy(tr);
}

/* How many optimizer steps of gradient `per_step` (all ones) a row has
 * taken since it held w0. */
static long steps_taken(float w0, float w, float per_step)
{
    return lroundf((w0 - w) / (LR * per_step));
}

/* Staleness of mode A reads: one key, every rank pushes gradient 1 each
 * step (the owner steps once with np). At step t the row read must have
 * taken u steps with BSP: u == t; SSP(2): t-2 <= u <= t, and the cache
 * must have served some stale rows; ASYNC: t-1 <= u <= t (the owner
 * re-reads a key it pushed; the last push may still be in flight). */
static void check_staleness(const char *table, strata_sync_mode_t sync, uint32_t s)
{
    strata_trainer_t *tr = make_trainer(MPI_COMM_WORLD, table, STRATA_SPARSE_OWNER, sync, s, 0);
    uint64_t key = key_of(7);
    float row[DIM], g[DIM], w0 = 0;
    for (int d = 0; d < DIM; d++)
        g[d] = 1.0f;
    long lo_seen = 0, lag_max = 0;
    for (long t = 0; t < 12; t++) {
        CHECK_OK(strata_trainer_lookup(tr, &key, 1, row));
        if (t == 0)
            w0 = row[0];
        long u = steps_taken(w0, row[0], (float)g_np);
        long lo = sync == STRATA_SYNC_BSP ? t : sync == STRATA_SYNC_SSP ? t - (long)s : t - 1;
        CHECK(u >= lo && u <= t, "%s: step %ld read a row %ld steps old (allowed %ld)", table, t,
              t - u, t - lo);
        lag_max = t - u > lag_max ? t - u : lag_max;
        lo_seen++;
        CHECK_OK(strata_trainer_push(tr, &key, g, 1));
        CHECK_OK(strata_trainer_step_end(tr));
    }
    if (sync == STRATA_SYNC_SSP)
        CHECK(lag_max == (long)s, "%s: SSP(%u) never served a row %u steps old (max %ld)", table, s,
              s, lag_max);
    CHECK_OK(strata_trainer_flush(tr));
    CHECK_OK(strata_trainer_lookup(tr, &key, 1, row));
    CHECK(steps_taken(w0, row[0], (float)g_np) == 12, "%s: %ld steps after flush", table,
          steps_taken(w0, row[0], (float)g_np));
    printf("{\"rank\":%d,\"run\":\"staleness_%s\",\"max_lag\":%ld,\"reads\":%ld}\n", g_rank, table,
           lag_max, lo_seen);
    strata_trainer_destroy(tr);
}

/* SSP clock, mode B: the last rank is slow and counts its steps in a row
 * of the store (a push of ones per step, applied before its step_end);
 * after rank 0's step_end number t that rank must have ended step t - s. */
static void check_ssp_clock(uint32_t s)
{
    strata_trainer_t *tr =
        make_trainer(MPI_COMM_WORLD, "clkB", STRATA_SPARSE_DIRECT, STRATA_SYNC_SSP, s, 0);
    strata_rtable_t *t = open_table("clkB");
    uint64_t key = key_of(9);
    float row[DIM], g[DIM], w0;
    for (int d = 0; d < DIM; d++)
        g[d] = 1.0f;
    CHECK_OK(strata_rtable_lookup(t, &key, 1, row, NULL, STRATA_LOOKUP_INIT_MISSING));
    w0 = row[0];
    MPI_Barrier(MPI_COMM_WORLD);
    int slow = g_np - 1;
    long ahead_max = 0;
    for (long step = 1; step <= 10; step++) {
        if (g_rank == slow && g_np > 1) {
            usleep(20000);
            CHECK_OK(strata_trainer_push(tr, &key, g, 1));
        } else {
            CHECK_OK(strata_trainer_push(tr, NULL, NULL, 0));
        }
        CHECK_OK(strata_trainer_step_end(tr));
        if (g_rank == 0 && g_np > 1) {
            CHECK_OK(strata_rtable_lookup(t, &key, 1, row, NULL, 0));
            long done = steps_taken(w0, row[0], 1.0f);
            CHECK(done >= step - (long)s, "SSP(%u): rank 0 ended step %ld, the slow rank only %ld",
                  s, step, done);
            ahead_max = step - done > ahead_max ? step - done : ahead_max;
        }
    }
    if (g_rank == 0)
        printf("{\"rank\":0,\"run\":\"ssp_clock\",\"s\":%u,\"max_ahead\":%ld}\n", s, ahead_max);
    CHECK_OK(strata_trainer_flush(tr));
    strata_trainer_destroy(tr);
}

static void phase(const char *what, double *t0)
{
    double now = MPI_Wtime();
    if (g_rank == 0)
        printf("{\"phase\":\"%s\",\"s\":%.3f}\n", what, now - *t0);
    *t0 = now;
}

int main(int argc, char **argv)
{
    setenv("UCX_TLS", "sm,self,tcp", 1);
    setenv("UCX_NET_DEVICES", "lo", 0);
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &g_np);
    double t_start = MPI_Wtime(), t_start_copy = t_start;
#if STRATA_TRAINER_NCCL
    /* built with NCCL: link the GPU allreduce in (no GPU runs it here) */
    void *volatile nccl_fn = (void *)strata_trainer_allreduce_dense_nccl;
    (void)nccl_fn;
#endif

    int ok = 1;
    if (g_rank == 0) {
        signal(SIGTERM, on_term);
        signal(SIGINT, on_term);
        ok = cluster_start(&g_cl, 2, NULL) == 0;
    }
    MPI_Bcast(&ok, 1, MPI_INT, 0, MPI_COMM_WORLD);
    CHECK(ok, "cluster start (rank 0)");
    MPI_Bcast(g_cl.servers, sizeof(g_cl.servers), MPI_CHAR, 0, MPI_COMM_WORLD);
    MPI_Bcast(g_cl.secret, sizeof(g_cl.secret), MPI_CHAR, 0, MPI_COMM_WORLD);

    strata_client_params_t cp;
    memset(&cp, 0, sizeof(cp));
    cp.field_mask =
        STRATA_CLIENT_FIELD_SERVERS | STRATA_CLIENT_FIELD_SECRET | STRATA_CLIENT_FIELD_TIMEOUT_MS;
    cp.servers = g_cl.servers;
    cp.secret = g_cl.secret;
    cp.secret_len = strlen(g_cl.secret);
    cp.timeout_ms = 20000;
    CHECK_OK(strata_client_connect(&cp, &g_client));

    static const char *const tables[] = {"look",   "bspA",   "bspB",   "refdep",   "topkA",
                                         "topkB",  "sspA",   "sspB",   "asyncA",   "asyncB",
                                         "refind", "clkbsp", "clkssp", "clkasync", "clkB"};
    const size_t ntables = sizeof(tables) / sizeof(tables[0]);
    if (g_rank == 0)
        for (size_t i = 0; i < ntables; i++) {
            strata_table_schema_t s = schema_for(tables[i]);
            CHECK_OK(strata_client_create_table(g_client, &s));
        }
    MPI_Barrier(MPI_COMM_WORLD);
    double t_phase = MPI_Wtime();
    phase("setup", &t_start_copy);

    check_lookup_equal();
    phase("lookup", &t_phase);
    check_dense();
    phase("dense", &t_phase);
    check_staleness("clkbsp", STRATA_SYNC_BSP, 0);
    check_staleness("clkssp", STRATA_SYNC_SSP, 2);
    check_staleness("clkasync", STRATA_SYNC_ASYNC, 0);
    phase("staleness", &t_phase);
    check_ssp_clock(2);
    phase("ssp_clock", &t_phase);

    /* 2, 3: BSP with row-dependent gradients, both modes */
    run("bspA", STRATA_SPARSE_OWNER, STRATA_SYNC_BSP, 0, 0, 1, "bsp_A");
    run("bspB", STRATA_SPARSE_DIRECT, STRATA_SYNC_BSP, 0, 0, 1, "bsp_B");
    /* 5 and the other consistency modes: row-independent gradients */
    run("topkA", STRATA_SPARSE_OWNER, STRATA_SYNC_BSP, 0, 0.5f, 0, "topk_A");
    run("topkB", STRATA_SPARSE_DIRECT, STRATA_SYNC_BSP, 0, 0.5f, 0, "topk_B");
    run("sspA", STRATA_SPARSE_OWNER, STRATA_SYNC_SSP, 2, 0, 0, "ssp2_A");
    run("sspB", STRATA_SPARSE_DIRECT, STRATA_SYNC_SSP, 2, 0, 0, "ssp2_B");
    run("asyncA", STRATA_SPARSE_OWNER, STRATA_SYNC_ASYNC, 0, 0, 0, "async_A");
    run("asyncB", STRATA_SPARSE_DIRECT, STRATA_SYNC_ASYNC, 0, 0, 0, "async_B");
    MPI_Barrier(MPI_COMM_WORLD);
    phase("training", &t_phase);

    if (g_rank == 0) {
        /* the 1-rank references, on rank 0 alone */
        strata_trainer_t *ref =
            make_trainer(MPI_COMM_SELF, "refdep", STRATA_SPARSE_DIRECT, STRATA_SYNC_BSP, 0, 0);
        train(ref, 1, 0, 1, STEPS);
        strata_trainer_destroy(ref);
        ref = make_trainer(MPI_COMM_SELF, "refind", STRATA_SPARSE_OWNER, STRATA_SYNC_BSP, 0, 0);
        train(ref, 1, 0, 0, STEPS);
        strata_trainer_destroy(ref);

        static const char *const pairs[][2] = {
            {"bspA", "refdep"},  {"bspB", "refdep"},   {"bspA", "bspB"},
            {"topkA", "refind"}, {"topkB", "refind"},  {"sspA", "refind"},
            {"sspB", "refind"},  {"asyncA", "refind"}, {"asyncB", "refind"}};
        for (size_t i = 0; i < sizeof(pairs) / sizeof(pairs[0]); i++) {
            double d = max_diff(pairs[i][0], pairs[i][1]);
            printf("{\"compare\":\"%s vs %s\",\"max_abs_diff\":%.3g}\n", pairs[i][0], pairs[i][1],
                   d);
            CHECK(d <= 1e-5, "%s vs %s: rows differ by %g", pairs[i][0], pairs[i][1], d);
        }
        /* the trained rows moved away from the initializer's */
        static float r0[NKEYS * DIM];
        read_all("bspA", r0);
        float mx = 0;
        for (int i = 0; i < NKEYS * DIM; i++)
            mx = fabsf(r0[i]) > mx ? fabsf(r0[i]) : mx;
        CHECK(mx > 0.2f, "training left rows at the initializer (max %g)", mx);
    }
    MPI_Barrier(MPI_COMM_WORLD);
    phase("references", &t_phase);
    strata_client_destroy(g_client);
    MPI_Barrier(MPI_COMM_WORLD);
    if (g_rank == 0) {
        CHECK(cluster_stop(&g_cl) == 0, "servers did not exit cleanly");
        printf("test_trainer: %d ranks, OK in %.2f s\n", g_np, MPI_Wtime() - t_start);
    }
    MPI_Finalize();
    return 0;
}
