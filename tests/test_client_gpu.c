/*
 * tests/test_client_gpu.c — client lookups into device buffers
 * (strata_rtable_lookup_device) against strata_rtable_lookup into host
 * memory, on a local cluster of 2 servers (shared memory and TCP on
 * loopback).
 *
 * Without a CUDA device (or built without CUDA) it checks that the call
 * answers UNSUPPORTED for a real table and INVALID_PARAM for no table,
 * then exits 77. On a device:
 *   a. rows made by lookups with INIT_MISSING and changed by a push; a
 *      device lookup of the same keys (duplicates and absent keys among
 *      them) into cudaMalloc'ed memory equals, bit for bit, the host
 *      lookup, found codes too — through the one-sided path (auto mode)
 *      and the RPC path, on the default stream and on a stream of its own;
 *   b. a batch larger than the first (the client's bounce buffer grows),
 *      with INIT_MISSING through the device call, then read on the host;
 *   c. a second table with an odd dim (5);
 *   d. a host pointer (pageable or pinned) as d_out: UNSUPPORTED, and
 *      d_out NULL or keys NULL: INVALID_PARAM; n = 0: OK; INIT_MISSING
 *      on a read-only client: READ_ONLY;
 *   e. clients destroyed with their bounce buffers (no crash; leaks would
 *      show under compute-sanitizer's leak check, not run here).
 *
 * The device memory comes from gpu/ (gpu_malloc, a static CUDA runtime)
 * while libstrata's client loads libcudart itself: the two runtimes share
 * the device's primary context, as PyTorch's and libstrata's would.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster.h"
#include "gpu/gpu.h"
#include "strata_config.h"
#include "testutil.h"

#define DIM 24

static strata_table_schema_t schema_for(const char *name, uint32_t dim)
{
    return test_cluster_schema(name, dim, 400000, 2, STRATA_OPT_ADAGRAD, 0.05f, 7);
}

static strata_client_t *connect_client(const cluster_t *cl, int read_only, strata_read_mode_t mode)
{
    strata_client_params_t p = cluster_client_params(cl, read_only, 20000);
    p.field_mask |= STRATA_CLIENT_FIELD_READ_MODE;
    p.read_mode = mode;
    strata_client_t *c = NULL;
    CHECK_OK(strata_client_connect(&p, &c));
    return c;
}

/** n keys in [0, range): duplicates likely when n is close to range. */
static uint64_t *make_keys(test_rng_t *rng, size_t n, uint64_t range)
{
    uint64_t *k = malloc(n * sizeof(*k));
    CHECK(k, "oom");
    for (size_t i = 0; i < n; i++)
        k[i] = 1 + test_rng_below(rng, range);
    return k;
}

/** Device lookup of keys into fresh device memory vs the host lookup on
 *  the same table handle: rows and found codes must be equal bytes. */
static void compare(strata_rtable_t *t, const uint64_t *keys, size_t n, uint32_t dim, void *stream,
                    const char *what)
{
    size_t bytes = n * dim * sizeof(float);
    float *host = malloc(bytes), *back = malloc(bytes);
    uint8_t *f_host = malloc(n), *f_dev = malloc(n);
    CHECK(host && back && f_host && f_dev, "oom");
    void *d_out;
    CHECK_OK(gpu_malloc(&d_out, bytes));
    CHECK_OK(gpu_memset(d_out, 0xff, bytes, stream)); /* NaNs where nothing lands */
    CHECK_OK(gpu_stream_sync(stream));
    memset(f_dev, 0xee, n);
    CHECK_OK(strata_rtable_lookup_device(t, keys, n, d_out, f_dev, 0, stream));
    CHECK_OK(gpu_memcpy(back, d_out, bytes, stream));
    CHECK_OK(gpu_stream_sync(stream));
    CHECK_OK(strata_rtable_lookup(t, keys, n, host, f_host, 0));
    for (size_t i = 0; i < n; i++) {
        CHECK(f_dev[i] == f_host[i],
              "%s: key %zu (%llu) found %u on the device path, %u on "
              "the host",
              what, i, (unsigned long long)keys[i], f_dev[i], f_host[i]);
        CHECK(memcmp(back + i * dim, host + i * dim, dim * sizeof(float)) == 0,
              "%s: row %zu (key %llu) differs (%g vs %g first float)", what, i,
              (unsigned long long)keys[i], back[i * dim], host[i * dim]);
    }
    gpu_free(d_out);
    free(host);
    free(back);
    free(f_host);
    free(f_dev);
}

int main(void)
{
    setenv("UCX_TLS", "sm,self,tcp", 0); /* the environment may choose */
    setenv("UCX_NET_DEVICES", "lo", 0);  /* loopback only */
    uint64_t seed = test_seed(11);
    test_rng_t rng;
    test_rng_seed(&rng, seed);

    /* the stub refuses everything; the real call checks its arguments */
    CHECK(strata_rtable_lookup_device(NULL, NULL, 0, NULL, NULL, 0, NULL) ==
              (STRATA_HAVE_CUDA ? STRATA_ERR_INVALID_PARAM : STRATA_ERR_UNSUPPORTED),
          "NULL table");
    int ndev = 0;
    int have_device = gpu_device_count(&ndev) == STRATA_OK && ndev > 0;

    static cluster_t cl; /* outlives main for cluster.c's atexit cleanup */
    CHECK(cluster_start(&cl, 2, NULL) == 0, "cluster start");
    strata_client_t *rw = connect_client(&cl, 0, STRATA_READ_AUTO);
    strata_table_schema_t s = schema_for("emb", DIM);
    CHECK_OK(strata_client_create_table(rw, &s));
    strata_rtable_t *t;
    CHECK_OK(strata_client_open_table(rw, "emb", &t));

    if (!have_device) {
        /* no device: the call must refuse, whatever d_out is */
        uint64_t k = 1;
        float row[DIM];
        strata_status_t st = strata_rtable_lookup_device(t, &k, 1, row, NULL, 0, NULL);
        CHECK(st == STRATA_ERR_UNSUPPORTED, "no device: %s (%s)", strata_status_string(st),
              strata_last_error());
        printf("test_client_gpu: no CUDA device (%s): device lookup answered UNSUPPORTED; "
               "skip\n",
               strata_last_error());
        strata_client_destroy(rw);
        CHECK(cluster_stop(&cl) == 0, "servers exited cleanly");
        return TEST_SKIP;
    }

    strata_client_t *rpc = connect_client(&cl, 1, STRATA_READ_RPC);
    strata_client_t *ro = connect_client(&cl, 1, STRATA_READ_AUTO);
    strata_rtable_t *t_rpc, *t_ro;
    CHECK_OK(strata_client_open_table(rpc, "emb", &t_rpc));
    CHECK_OK(strata_client_open_table(ro, "emb", &t_ro));
    void *stream;
    CHECK_OK(gpu_stream_create(&stream));

    /* a. rows created, half of them pushed; the keys asked are drawn from a
     *    wider range, so many are absent (initializer values, MISSING) */
    const size_t n0 = test_scaled(20000);
    uint64_t *made = make_keys(&rng, n0, 40000);
    float *rows = malloc(n0 * DIM * sizeof(float));
    CHECK(rows, "oom");
    CHECK_OK(strata_rtable_lookup(t, made, n0, rows, NULL, STRATA_LOOKUP_INIT_MISSING));
    for (size_t i = 0; i < n0 * DIM; i++)
        rows[i] = test_rng_float(&rng, -1, 1);
    CHECK_OK(strata_rtable_push(t, made, rows, n0 / 2));
    free(rows);
    const size_t n1 = test_scaled(8000);
    uint64_t *ask = make_keys(&rng, n1, 50000);
    compare(t, ask, n1, DIM, NULL, "auto, default stream");
    compare(t, ask, n1, DIM, stream, "auto, own stream");
    compare(t_ro, ask, n1, DIM, stream, "auto, read-only client");
    compare(t_rpc, ask, n1, DIM, NULL, "rpc, default stream");
    compare(t_rpc, ask, n1, DIM, stream, "rpc, own stream");
    strata_client_stats_t cs;
    strata_client_get_stats(ro, &cs);
    printf("auto client: %llu one-sided hits, %llu by index, %llu absent, %llu by rpc\n",
           (unsigned long long)cs.onesided_hits, (unsigned long long)cs.onesided_index,
           (unsigned long long)cs.onesided_absent, (unsigned long long)cs.rpc_keys);

    /* b. a larger batch (the bounce buffer grows), creating rows on the
     *    device path; then the same keys read on the host */
    const size_t n2 = test_scaled(120000);
    uint64_t *big = make_keys(&rng, n2, 300000);
    void *d_big;
    CHECK_OK(gpu_malloc(&d_big, n2 * DIM * sizeof(float)));
    uint8_t *f_big = malloc(n2);
    CHECK(f_big, "oom");
    CHECK_OK(
        strata_rtable_lookup_device(t, big, n2, d_big, f_big, STRATA_LOOKUP_INIT_MISSING, stream));
    size_t created = 0;
    for (size_t i = 0; i < n2; i++)
        created += f_big[i] == STRATA_ROW_CREATED;
    CHECK(created > 0, "INIT_MISSING through the device path created nothing");
    float *back = malloc(n2 * DIM * sizeof(float)), *host = malloc(n2 * DIM * sizeof(float));
    CHECK(back && host, "oom");
    CHECK_OK(gpu_memcpy(back, d_big, n2 * DIM * sizeof(float), stream));
    CHECK_OK(gpu_stream_sync(stream));
    CHECK_OK(strata_rtable_lookup(t, big, n2, host, NULL, 0));
    CHECK(memcmp(back, host, n2 * DIM * sizeof(float)) == 0,
          "rows created through the device path differ from a host read");
    compare(t_rpc, big, n2, DIM, stream, "rpc, large batch");
    printf("large batch: %zu keys, %zu created\n", n2, created);
    free(back);
    free(host);
    free(f_big);
    gpu_free(d_big);

    /* c. an odd dim */
    strata_table_schema_t s5 = schema_for("odd", 5);
    CHECK_OK(strata_client_create_table(rw, &s5));
    strata_rtable_t *t5;
    CHECK_OK(strata_client_open_table(rw, "odd", &t5));
    float *r5 = malloc(n1 * 5 * sizeof(float));
    CHECK(r5, "oom");
    CHECK_OK(strata_rtable_lookup(t5, made, n1, r5, NULL, STRATA_LOOKUP_INIT_MISSING));
    free(r5);
    compare(t5, ask, n1, 5, stream, "dim 5");

    /* d. argument errors */
    float hrow[DIM];
    uint64_t k = ask[0];
    strata_status_t st = strata_rtable_lookup_device(t, &k, 1, hrow, NULL, 0, NULL);
    CHECK(st == STRATA_ERR_UNSUPPORTED, "pageable host d_out: %s", strata_status_string(st));
    void *pinned;
    CHECK_OK(gpu_host_alloc(&pinned, DIM * sizeof(float)));
    st = strata_rtable_lookup_device(t, &k, 1, pinned, NULL, 0, NULL);
    CHECK(st == STRATA_ERR_UNSUPPORTED, "pinned host d_out: %s", strata_status_string(st));
    gpu_host_free(pinned);
    void *d_one;
    CHECK_OK(gpu_malloc(&d_one, DIM * sizeof(float)));
    CHECK(strata_rtable_lookup_device(t, &k, 1, NULL, NULL, 0, NULL) == STRATA_ERR_INVALID_PARAM,
          "d_out NULL");
    CHECK(strata_rtable_lookup_device(t, NULL, 1, d_one, NULL, 0, NULL) == STRATA_ERR_INVALID_PARAM,
          "keys NULL");
    CHECK(strata_rtable_lookup_device(t, &k, 1, d_one, NULL, 0x80, NULL) ==
              STRATA_ERR_INVALID_PARAM,
          "unknown flags");
    CHECK_OK(strata_rtable_lookup_device(t, NULL, 0, NULL, NULL, 0, NULL));
    st = strata_rtable_lookup_device(t_ro, &k, 1, d_one, NULL, STRATA_LOOKUP_INIT_MISSING, NULL);
    CHECK(st == STRATA_ERR_READ_ONLY, "INIT_MISSING on a read-only client: %s",
          strata_status_string(st));
    CHECK_OK(strata_rtable_lookup_device(t, &k, 1, d_one, NULL, 0, NULL)); /* still works */
    gpu_free(d_one);

    /* e. clients go with their bounce buffers */
    gpu_stream_destroy(stream);
    strata_client_destroy(rpc);
    strata_client_destroy(ro);
    strata_client_destroy(rw);
    CHECK(cluster_stop(&cl) == 0, "servers exited cleanly");
    free(made);
    free(ask);
    free(big);
    printf("test_client_gpu: OK\n");
    return 0;
}
