/*
 * perf/bench_remote.c — remote (client/server) benchmark of Strata.
 *
 * For each transport (sm: UCX_TLS=sm,self,tcp; tcp: UCX_TLS=tcp,self; both
 * with UCX_NET_DEVICES=lo unless set) a fresh one-server local cluster
 * (tests/cluster.c) is started, a table per dim is created and N keys are
 * loaded with INIT_MISSING lookups; then:
 *  - lookups (read-only client, AUTO mode, uniform keys) per batch size:
 *    keys/s, p50/p99 batch latency, server CPU s per M keys, one-sided
 *    hit ratio; plus RPC mode at batch 1024 on sm;
 *  - pushes (read-write client, batch 1024, finite random gradients);
 *  - transport ceilings: "mapped_memcpy" (random row-sized copies out of a
 *    ucp_mem_map(ALLOCATE)ed region in this process) and "ucp_get"
 *    (a plain ucp_get loop, rdma_get_batch, against a region of a second
 *    worker progressed by its own thread, over an endpoint made by worker
 *    address without error handling, so UCX uses shared memory: over "sm"
 *    the lanes are sysv/posix/cma; over "tcp", TCP);
 *  - peers (when built with STRATA_HAVE_PEER_KV): Redis and memcached on
 *    the same key stream and value size.
 * One JSON line per result on stdout; progress on stderr.
 */
#define _GNU_SOURCE
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cluster.h"
#include "perf_util.h"
#include "rdma/ucx.h"
#include "strata.h"
#if STRATA_HAVE_PEER_KV
#include "peer_kv.h"
#endif

#define MAXB 16
#define MAXD 8
#define STREAM_LEN (1u << 22)

static struct {
    uint64_t nkeys;
    double seconds;
    uint32_t dims[MAXD], ndims;
    uint32_t batches[MAXB], nbatches;
    const char *transports[2];
    int ntransports;
    int peers;
    uint32_t loc_cache; /* 0: client default */
} opt;

static uint64_t *g_stream; /* uniform keys over [0, nkeys) */

static uint64_t rng_state = 0x9E3779B97F4A7C15ull; /**< splitmix64 state: the run's one stream */

/** Server utime+stime in seconds from /proc/<pid>/stat, -1 on error. */
static double proc_cpu_s(pid_t pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = 0;
    char *p = strrchr(buf, ')');
    if (!p)
        return -1;
    unsigned long ut = 0, st = 0;
    /* after ")": state(3) ... utime is field 14, stime 15 */
    if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
        return -1;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

typedef struct win {
    double keys_per_s, p50_us, p99_us, cpu_per_m, secs;
    uint64_t keys;
    int ok;
    char err[96];
} win_t;

#define LAT_CAP (1u << 22)
static uint64_t *g_lat;

/** Run lookups (push when grads) in batches of b over the key stream for
 *  opt.seconds after a short warmup. */
static win_t run_window(strata_rtable_t *t, uint32_t dim, uint32_t b, pid_t spid, const float *grads,
                        double seconds)
{
    win_t w;
    memset(&w, 0, sizeof(w));
    float *out = malloc((size_t)b * dim * sizeof(float));
    size_t pos = (perf_rand_next(&rng_state) % STREAM_LEN) & ~(size_t)0;
    double warm_end = perf_now_s() + 0.2;
    strata_status_t st = STRATA_OK;
    while (perf_now_s() < warm_end && st == STRATA_OK) {
        if (pos + b > STREAM_LEN)
            pos = 0;
        st = grads ? strata_rtable_push(t, g_stream + pos, grads, b)
                   : strata_rtable_lookup(t, g_stream + pos, b, out, NULL, 0);
        pos += b;
    }
    uint64_t nlat = 0, keys = 0;
    double c0 = proc_cpu_s(spid), t0 = perf_now_s(), tend = t0 + seconds, t1 = t0;
    while (st == STRATA_OK) {
        if (pos + b > STREAM_LEN)
            pos = 0;
        struct timespec a, z;
        clock_gettime(CLOCK_MONOTONIC, &a);
        st = grads ? strata_rtable_push(t, g_stream + pos, grads, b)
                   : strata_rtable_lookup(t, g_stream + pos, b, out, NULL, 0);
        clock_gettime(CLOCK_MONOTONIC, &z);
        pos += b;
        keys += b;
        if (nlat < LAT_CAP)
            g_lat[nlat++] = (uint64_t)(z.tv_sec - a.tv_sec) * 1000000000ull +
                            (uint64_t)(z.tv_nsec - a.tv_nsec);
        t1 = (double)z.tv_sec + (double)z.tv_nsec * 1e-9;
        if (t1 >= tend)
            break;
    }
    double c1 = proc_cpu_s(spid);
    free(out);
    if (st != STRATA_OK) {
        snprintf(w.err, sizeof(w.err), "%s", strata_status_string(st));
        return w;
    }
    w.ok = 1;
    w.secs = t1 - t0;
    w.keys = keys;
    w.keys_per_s = (double)keys / w.secs;
    qsort(g_lat, nlat, sizeof(uint64_t), perf_cmp_u64);
    w.p50_us = (double)g_lat[nlat / 2] / 1e3;
    w.p99_us = (double)g_lat[(size_t)((double)nlat * 0.99)] / 1e3;
    w.cpu_per_m = (c0 >= 0 && c1 >= 0) ? (c1 - c0) / ((double)keys / 1e6) : -1;
    return w;
}

static strata_client_t *connect_client(const cluster_t *cl, int ro, strata_read_mode_t mode)
{
    strata_client_params_t p = cluster_client_params(cl, ro, 60000);
    p.field_mask |= STRATA_CLIENT_FIELD_READ_MODE;
    p.read_mode = mode;
    if (opt.loc_cache) {
        p.field_mask |= STRATA_CLIENT_FIELD_LOC_CACHE;
        p.loc_cache_entries = opt.loc_cache;
    }
    strata_client_t *c = NULL;
    strata_status_t st = strata_client_connect(&p, &c);
    if (st != STRATA_OK) {
        fprintf(stderr, "bench_remote: connect: %s: %s\n", strata_status_string(st),
                strata_last_error());
        return NULL;
    }
    return c;
}

/* ---- ceilings ---------------------------------------------------------- */

static uint32_t row_bytes(uint32_t dim)
{
    return (32u + 4u * dim + 63u) & ~63u;
}

static void ceiling_memcpy(rdma_ctx_t *ctx, const char *tr, uint32_t dim, uint64_t nrows)
{
    uint32_t rb = row_bytes(dim);
    size_t len = (size_t)nrows * rb;
    ucp_mem_map_params_t mp = {
        .field_mask = UCP_MEM_MAP_PARAM_FIELD_LENGTH | UCP_MEM_MAP_PARAM_FIELD_FLAGS,
        .length = len,
        .flags = UCP_MEM_MAP_ALLOCATE};
    ucp_mem_h memh;
    if (ucp_mem_map(rdma_ctx_ucp(ctx), &mp, &memh) != UCS_OK) {
        printf("{\"bench\":\"ceiling\",\"kind\":\"mapped_memcpy\",\"transport\":\"%s\",\"dim\":%u,"
               "\"skipped\":\"ucp_mem_map failed\"}\n", tr, dim);
        return;
    }
    ucp_mem_attr_t ma = {.field_mask = UCP_MEM_ATTR_FIELD_ADDRESS};
    ucp_mem_query(memh, &ma);
    char *base = ma.address;
    memset(base, 1, len);
    const uint32_t B = 1024;
    char *dst = aligned_alloc(64, (size_t)B * rb);
    uint64_t copies = 0;
    size_t pos = 0;
    double t0 = perf_now_s(), t1 = t0;
    while (t1 - t0 < opt.seconds) {
        for (uint32_t i = 0; i < B; i++) {
            if (pos >= STREAM_LEN)
                pos = 0;
            memcpy(dst + (size_t)i * rb, base + (size_t)(g_stream[pos++] % nrows) * rb, rb);
        }
        __asm__ __volatile__("" ::"r"(dst) : "memory");
        copies += B;
        t1 = perf_now_s();
    }
    printf("{\"bench\":\"ceiling\",\"kind\":\"mapped_memcpy\",\"transport\":\"%s\",\"dim\":%u,"
           "\"row_bytes\":%u,\"rows\":%" PRIu64 ",\"keys_per_s\":%.0f,\"GB_per_s\":%.2f}\n",
           tr, dim, rb, nrows, (double)copies / (t1 - t0),
           (double)copies * rb / (t1 - t0) / 1e9);
    fflush(stdout);
    free(dst);
    ucp_mem_unmap(rdma_ctx_ucp(ctx), memh);
}

typedef struct mini_srv {
    rdma_ctx_t *ctx;
    rdma_worker_t *w;
    ucp_listener_h lis;
    uint16_t port;
    ucp_ep_h ep;
    volatile int stop;
    volatile int ready;
    strata_status_t st;
} mini_srv_t;

static void mini_conn(ucp_conn_request_h req, void *arg)
{
    mini_srv_t *s = arg;
    s->st = rdma_ep_accept(s->w, req, NULL, NULL, &s->ep);
}

static void *mini_thread(void *arg)
{
    mini_srv_t *s = arg;
    s->st = rdma_worker_create(s->ctx, &s->w);
    if (s->st == STRATA_OK)
        s->st = rdma_listen(s->w, "127.0.0.1", 0, mini_conn, s, &s->lis, &s->port);
    s->ready = s->st == STRATA_OK ? 1 : -1;
    if (s->ready < 0)
        return NULL;
    while (!s->stop)
        rdma_worker_progress(s->w);
    if (s->ep)
        rdma_ep_close(s->w, s->ep, 1, 0);
    ucp_listener_destroy(s->lis);
    rdma_worker_destroy(s->w);
    return NULL;
}

static void ceiling_ucp_get(rdma_ctx_t *ctx, const char *tr, uint32_t dim, uint64_t nrows)
{
    const char *why = NULL;
    uint32_t rb = row_bytes(dim);
    size_t len = (size_t)nrows * rb;
    ucp_mem_h memh = NULL;
    void *rkbuf = NULL;
    size_t rklen = 0;
    ucp_mem_map_params_t mp = {
        .field_mask = UCP_MEM_MAP_PARAM_FIELD_LENGTH | UCP_MEM_MAP_PARAM_FIELD_FLAGS,
        .length = len,
        .flags = UCP_MEM_MAP_ALLOCATE};
    if (ucp_mem_map(rdma_ctx_ucp(ctx), &mp, &memh) != UCS_OK) {
        printf("{\"bench\":\"ceiling\",\"kind\":\"ucp_get\",\"transport\":\"%s\",\"dim\":%u,"
               "\"skipped\":\"ucp_mem_map failed\"}\n", tr, dim);
        return;
    }
    ucp_mem_attr_t ma = {.field_mask = UCP_MEM_ATTR_FIELD_ADDRESS};
    ucp_mem_query(memh, &ma);
    memset(ma.address, 2, len);
    ucp_rkey_pack(rdma_ctx_ucp(ctx), memh, &rkbuf, &rklen);

    mini_srv_t s;
    memset(&s, 0, sizeof(s));
    s.ctx = ctx;
    pthread_t th;
    pthread_create(&th, NULL, mini_thread, &s);
    while (!s.ready)
        usleep(1000);
    rdma_worker_t *w = NULL;
    ucp_ep_h ep = NULL;
    ucp_rkey_h rkey = NULL;
    void *local = NULL;
    const uint32_t B = 1024;
    char *dst = aligned_alloc(64, (size_t)B * rb);
    rdma_get_t *g = calloc(B, sizeof(*g));
    int direct = -1;
    if (s.ready < 0) {
        why = "listener failed";
        goto out;
    }
    if (rdma_worker_create(ctx, &w) != STRATA_OK) {
        why = "worker failed";
        goto out;
    }
    /* connect by worker address without error handling: UCX 1.13 leaves
     * shared-memory transports out of PEER-mode endpoints (the mode the
     * client and server use), so their gets between processes of one host
     * would be emulated over TCP; this endpoint gets sysv/posix/cma lanes */
    {
        void *addr;
        size_t alen;
        while (!s.w)
            usleep(1000);
        if (rdma_worker_address(s.w, &addr, &alen) != STRATA_OK) {
            why = "worker address failed";
            goto out;
        }
        strata_status_t cst = rdma_ep_connect_address(w, addr, NULL, NULL, &ep);
        rdma_worker_address_free(s.w, addr);
        if (cst != STRATA_OK) {
            why = "connect failed";
            goto out;
        }
    }
    if (rdma_rkey_unpack(ep, rkbuf, rklen, (uint64_t)(uintptr_t)ma.address, &rkey, &local) !=
        STRATA_OK) {
        why = "rkey unpack failed";
        goto out;
    }
    /* one round trip for wire-up */
    g[0] = (rdma_get_t){.ep = ep, .rkey = rkey, .raddr = (uint64_t)(uintptr_t)ma.address,
                        .dst = dst, .len = rb};
    if (rdma_get_batch(w, g, 1, 1, rdma_now_ns() + 10000000000ull) != STRATA_OK) {
        why = "first get failed";
        goto out;
    }
    direct = rdma_ep_gets_direct(ep);
    uint64_t gets = 0, nlat = 0;
    size_t pos = 0;
    double t0 = perf_now_s(), t1 = t0;
    while (t1 - t0 < opt.seconds) {
        for (uint32_t i = 0; i < B; i++) {
            if (pos >= STREAM_LEN)
                pos = 0;
            g[i] = (rdma_get_t){.ep = ep, .rkey = rkey,
                                .raddr = (uint64_t)(uintptr_t)ma.address +
                                         (g_stream[pos++] % nrows) * rb,
                                .dst = dst + (size_t)i * rb, .len = rb};
        }
        uint64_t a = rdma_now_ns();
        if (rdma_get_batch(w, g, B, 256, a + 10000000000ull) != STRATA_OK) {
            why = "get batch failed";
            goto out;
        }
        uint64_t z = rdma_now_ns();
        if (nlat < LAT_CAP)
            g_lat[nlat++] = z - a;
        gets += B;
        t1 = perf_now_s();
    }
    qsort(g_lat, nlat, sizeof(uint64_t), perf_cmp_u64);
    printf("{\"bench\":\"ceiling\",\"kind\":\"ucp_get\",\"transport\":\"%s\",\"dim\":%u,"
           "\"row_bytes\":%u,\"batch\":%u,\"window\":256,\"gets_direct\":%d,\"keys_per_s\":%.0f,"
           "\"p50_us\":%.1f,\"p99_us\":%.1f,\"note\":\"in-process peer worker (progressed by its own thread), "
           "endpoint by worker address, batches of 1024 gets, 256 per flush\"}\n",
           tr, dim, rb, B, direct, (double)gets / (t1 - t0), (double)g_lat[nlat / 2] / 1e3,
           (double)g_lat[(size_t)((double)nlat * 0.99)] / 1e3);
out:
    if (why)
        printf("{\"bench\":\"ceiling\",\"kind\":\"ucp_get\",\"transport\":\"%s\",\"dim\":%u,"
               "\"skipped\":\"%s\"}\n", tr, dim, why);
    fflush(stdout);
    if (rkey)
        ucp_rkey_destroy(rkey);
    if (ep)
        rdma_ep_close(w, ep, 1, rdma_now_ns() + 1000000000ull);
    s.stop = 1;
    pthread_join(th, NULL);
    if (w)
        rdma_worker_destroy(w);
    free(g);
    free(dst);
    ucp_rkey_buffer_release(rkbuf);
    ucp_mem_unmap(rdma_ctx_ucp(ctx), memh);
}

/* ---- the main measurements --------------------------------------------- */

/* strata keys/s by [transport][dim index][batch index], auto mode */
static double g_ours[2][MAXD][MAXB];

static int run_transport(int ti)
{
    const char *tr = opt.transports[ti];
    setenv("UCX_TLS", !strcmp(tr, "sm") ? "sm,self,tcp" : "tcp,self", 1);
    setenv("UCX_NET_DEVICES", "lo", 0);
    fprintf(stderr, "bench_remote: transport %s (UCX_TLS=%s UCX_NET_DEVICES=%s)\n", tr,
            getenv("UCX_TLS"), getenv("UCX_NET_DEVICES"));
    cluster_t cl;
    if (cluster_start(&cl, 1, NULL) != 0) {
        printf("{\"bench\":\"lookup\",\"transport\":\"%s\",\"error\":\"cluster_start failed\"}\n",
               tr);
        return -1;
    }
    pid_t spid = cl.pid[0];
    strata_client_t *rw = connect_client(&cl, 0, STRATA_READ_AUTO);
    strata_client_t *ro = connect_client(&cl, 1, STRATA_READ_AUTO);
    strata_client_t *rpc = connect_client(&cl, 1, STRATA_READ_RPC);
    if (!rw || !ro || !rpc) {
        cluster_stop(&cl);
        return -1;
    }
    for (uint32_t di = 0; di < opt.ndims; di++) {
        uint32_t dim = opt.dims[di];
        char name[32];
        snprintf(name, sizeof(name), "bench_d%u", dim);
        strata_table_schema_t s;
        memset(&s, 0, sizeof(s));
        s.field_mask = STRATA_SCHEMA_FIELD_NAME | STRATA_SCHEMA_FIELD_DIM |
                       STRATA_SCHEMA_FIELD_CAPACITY;
        s.name = name;
        s.dim = dim;
        s.capacity = opt.nkeys + opt.nkeys / 4 + 1024;
        strata_status_t st = strata_client_create_table(rw, &s);
        strata_rtable_t *trw = NULL, *tro = NULL, *trpc = NULL;
        if (st == STRATA_OK)
            st = strata_client_open_table(rw, name, &trw);
        if (st != STRATA_OK) {
            printf("{\"bench\":\"lookup\",\"transport\":\"%s\",\"dim\":%u,\"error\":\"create/open: "
                   "%s\"}\n", tr, dim, strata_status_string(st));
            continue;
        }
        /* load 0..N-1 */
        double l0 = perf_now_s();
        uint64_t *k = malloc(4096 * sizeof(uint64_t));
        float *out = malloc((size_t)4096 * dim * sizeof(float));
        for (uint64_t base = 0; base < opt.nkeys && st == STRATA_OK; base += 4096) {
            size_t n = opt.nkeys - base < 4096 ? (size_t)(opt.nkeys - base) : 4096;
            for (size_t i = 0; i < n; i++)
                k[i] = base + i;
            st = strata_rtable_lookup(trw, k, n, out, NULL, STRATA_LOOKUP_INIT_MISSING);
        }
        fprintf(stderr, "bench_remote: %s dim %u: loaded %" PRIu64 " keys in %.1f s (%s)\n", tr,
                dim, opt.nkeys, perf_now_s() - l0, strata_status_string(st));
        if (st == STRATA_OK)
            st = strata_client_open_table(ro, name, &tro);
        if (st == STRATA_OK)
            st = strata_client_open_table(rpc, name, &trpc);
        /* warm the read-only client's location cache: every key once */
        for (uint64_t base = 0; base < opt.nkeys && st == STRATA_OK; base += 4096) {
            size_t n = opt.nkeys - base < 4096 ? (size_t)(opt.nkeys - base) : 4096;
            for (size_t i = 0; i < n; i++)
                k[i] = base + i;
            st = strata_rtable_lookup(tro, k, n, out, NULL, 0);
        }
        free(k);
        free(out);
        if (st != STRATA_OK) {
            printf("{\"bench\":\"lookup\",\"transport\":\"%s\",\"dim\":%u,\"error\":\"load: %s\"}\n",
                   tr, dim, strata_status_string(st));
            fflush(stdout);
            continue;
        }
        /* the key stream: uniform over the loaded set */
        for (size_t i = 0; i < STREAM_LEN; i++)
            g_stream[i] = perf_rand_next(&rng_state) % opt.nkeys;

        for (uint32_t bi = 0; bi < opt.nbatches; bi++) {
            uint32_t b = opt.batches[bi];
            strata_client_stats_t a, z;
            strata_client_get_stats(ro, &a);
            win_t w = run_window(tro, dim, b, spid, NULL, opt.seconds);
            strata_client_get_stats(ro, &z);
            uint64_t lk = z.lookups - a.lookups;
            double hit = lk ? (double)(z.onesided_hits - a.onesided_hits) / (double)lk : 0;
            double rpcr = lk ? (double)(z.rpc_keys - a.rpc_keys) / (double)lk : 0;
            uint64_t uk = z.unique_keys - a.unique_keys;
            double hitu = uk ? (double)(z.onesided_hits - a.onesided_hits) / (double)uk : 0;
            double idxu = uk ? (double)(z.onesided_index - a.onesided_index) / (double)uk : 0;
            if (w.ok) {
                g_ours[ti][di][bi] = w.keys_per_s;
                printf("{\"bench\":\"lookup\",\"transport\":\"%s\",\"mode\":\"auto\",\"dim\":%u,"
                       "\"keys\":%" PRIu64 ",\"batch\":%u,\"keys_per_s\":%.0f,\"p50_us\":%.1f,"
                       "\"p99_us\":%.1f,\"server_cpu_s_per_mkeys\":%.4f,\"onesided_hit_ratio\":%.4f,"
                       "\"onesided_hit_ratio_unique\":%.4f,\"onesided_index_ratio_unique\":%.4f,"
                       "\"rpc_key_ratio\":%.4f,\"onesided\":%d,\"loc_cache_entries\":%u,"
                       "\"seconds\":%.2f}\n",
                       tr, dim, opt.nkeys, b, w.keys_per_s, w.p50_us, w.p99_us, w.cpu_per_m, hit,
                       hitu, idxu, rpcr, strata_client_server_onesided(ro, 0),
                       opt.loc_cache ? opt.loc_cache : 1048576u, w.secs);
            } else {
                printf("{\"bench\":\"lookup\",\"transport\":\"%s\",\"mode\":\"auto\",\"dim\":%u,"
                       "\"batch\":%u,\"error\":\"%s\"}\n", tr, dim, b, w.err);
            }
            fflush(stdout);
        }
        if (!strcmp(tr, "sm")) {
            /* warm: RPC has no cache, but run a short window first anyway */
            strata_client_stats_t a, z;
            strata_client_get_stats(rpc, &a);
            win_t w = run_window(trpc, dim, 1024, spid, NULL, opt.seconds);
            strata_client_get_stats(rpc, &z);
            uint64_t lk = z.lookups - a.lookups;
            if (w.ok)
                printf("{\"bench\":\"lookup\",\"transport\":\"%s\",\"mode\":\"rpc\",\"dim\":%u,"
                       "\"keys\":%" PRIu64 ",\"batch\":1024,\"keys_per_s\":%.0f,\"p50_us\":%.1f,"
                       "\"p99_us\":%.1f,\"server_cpu_s_per_mkeys\":%.4f,\"rpc_key_ratio\":%.4f,"
                       "\"seconds\":%.2f}\n",
                       tr, dim, opt.nkeys, w.keys_per_s, w.p50_us, w.p99_us, w.cpu_per_m,
                       lk ? (double)(z.rpc_keys - a.rpc_keys) / (double)lk : 0, w.secs);
            else
                printf("{\"bench\":\"lookup\",\"transport\":\"%s\",\"mode\":\"rpc\",\"dim\":%u,"
                       "\"batch\":1024,\"error\":\"%s\"}\n", tr, dim, w.err);
            fflush(stdout);
        }
        /* pushes */
        {
            float *gr = malloc((size_t)1024 * dim * sizeof(float));
            for (size_t i = 0; i < (size_t)1024 * dim; i++)
                gr[i] = (float)(perf_rand_u01(&rng_state) - 0.5) * 0.02f;
            win_t w = run_window(trw, dim, 1024, spid, gr, opt.seconds);
            if (w.ok)
                printf("{\"bench\":\"push\",\"transport\":\"%s\",\"dim\":%u,\"keys\":%" PRIu64
                       ",\"batch\":1024,\"keys_per_s\":%.0f,\"p50_us\":%.1f,\"p99_us\":%.1f,"
                       "\"server_cpu_s_per_mkeys\":%.4f,\"seconds\":%.2f}\n",
                       tr, dim, opt.nkeys, w.keys_per_s, w.p50_us, w.p99_us, w.cpu_per_m, w.secs);
            else
                printf("{\"bench\":\"push\",\"transport\":\"%s\",\"dim\":%u,\"error\":\"%s\"}\n", tr,
                       dim, w.err);
            fflush(stdout);
            free(gr);
        }
        /* ceilings, in this process, same UCX environment */
        {
            rdma_ctx_t *ctx = NULL;
            if (rdma_ctx_create(&ctx) == STRATA_OK) {
                ceiling_memcpy(ctx, tr, dim, opt.nkeys);
                ceiling_ucp_get(ctx, tr, dim, opt.nkeys);
                rdma_ctx_destroy(ctx);
            } else {
                printf("{\"bench\":\"ceiling\",\"transport\":\"%s\",\"dim\":%u,"
                       "\"skipped\":\"rdma_ctx_create failed\"}\n", tr, dim);
            }
            fflush(stdout);
        }
        strata_client_drop_table(rw, name);
    }
    strata_client_destroy(rpc);
    strata_client_destroy(ro);
    strata_client_destroy(rw);
    int rc = cluster_stop(&cl);
    fprintf(stderr, "bench_remote: transport %s done (server exit %d)\n", tr, rc);
    return 0;
}

#if STRATA_HAVE_PEER_KV
static void run_peers(void)
{
    int smi = -1;
    for (int i = 0; i < opt.ntransports; i++)
        if (!strcmp(opt.transports[i], "sm"))
            smi = i;
    for (uint32_t di = 0; di < opt.ndims; di++) {
        uint32_t dim = opt.dims[di];
        for (size_t i = 0; i < STREAM_LEN; i++)
            g_stream[i] = perf_rand_next(&rng_state) % opt.nkeys;
        struct { uint32_t batch, pipeline; } shapes[2] = {{16, 16}, {1024, 1}};
        for (int si = 0; si < 2; si++) {
            double ours = -1;
            for (uint32_t bi = 0; bi < opt.nbatches; bi++)
                if (opt.batches[bi] == shapes[si].batch && smi >= 0)
                    ours = g_ours[smi][di][bi];
            double peer_kps[2] = {-1, -1};
            for (int p = 0; p < 2; p++) {
                const char *pname = p ? "memcached" : "redis";
                fprintf(stderr, "bench_remote: peer %s dim %u batch %u pipeline %u\n", pname, dim,
                        shapes[si].batch, shapes[si].pipeline);
                peer_kv_config_t c;
                memset(&c, 0, sizeof(c));
                c.keys = g_stream;
                c.nkeys_stream = STREAM_LEN;
                c.nkeys_loaded = opt.nkeys;
                c.value_bytes = 4 * dim;
                c.batch = shapes[si].batch;
                c.pipeline = shapes[si].pipeline;
                c.connections = 1;
                c.seconds = opt.seconds;
                c.warmup_s = 0.2;
                c.server_cpu = -1;
                c.client_cpu = -1;
                peer_kv_result_t r;
                int rc = p ? peer_memcached_run(&c, &r) : peer_redis_run(&c, &r);
                if (rc == 0 && r.ok) {
                    peer_kps[p] = r.keys_per_s;
                    printf("{\"bench\":\"peer\",\"peer\":\"%s\",\"dim\":%u,\"value_bytes\":%u,"
                           "\"keys\":%" PRIu64 ",\"batch\":%u,\"pipeline\":%u,\"keys_per_s\":%.0f,"
                           "\"p50_us\":%.1f,\"p99_us\":%.1f,\"server_cpu_s_per_mkeys\":%.4f,"
                           "\"client_cpu_util\":%.2f,\"strata_sm_auto_keys_per_s\":%.0f,"
                           "\"strata_ratio\":%.2f}\n",
                           pname, dim, 4 * dim, opt.nkeys, shapes[si].batch, shapes[si].pipeline,
                           r.keys_per_s, r.p50_us, r.p99_us, r.server_cpu_s_per_mkeys,
                           r.client_cpu_util, ours, ours > 0 ? ours / r.keys_per_s : -1);
                } else {
                    printf("{\"bench\":\"peer\",\"peer\":\"%s\",\"dim\":%u,\"batch\":%u,"
                           "\"pipeline\":%u,\"skipped\":\"rc %d: %s\"}\n",
                           pname, dim, shapes[si].batch, shapes[si].pipeline, rc, r.note);
                }
                fflush(stdout);
            }
            printf("{\"bench\":\"compare\",\"dim\":%u,\"batch\":%u,\"peer_pipeline\":%u,"
                   "\"strata_sm_auto_keys_per_s\":%.0f,\"redis_keys_per_s\":%.0f,"
                   "\"memcached_keys_per_s\":%.0f,\"ratio_vs_redis\":%.2f,"
                   "\"ratio_vs_memcached\":%.2f,\"note\":\"strata: 1 batch in flight; peers: "
                   "batch x pipeline in flight\"}\n",
                   dim, shapes[si].batch, shapes[si].pipeline, ours, peer_kps[0], peer_kps[1],
                   ours > 0 && peer_kps[0] > 0 ? ours / peer_kps[0] : -1,
                   ours > 0 && peer_kps[1] > 0 ? ours / peer_kps[1] : -1);
            fflush(stdout);
        }
    }
}
#endif

static uint32_t parse_list(const char *s, uint32_t *v, uint32_t max)
{
    uint32_t n = 0;
    char *dup = strdup(s), *save = NULL;
    for (char *t = strtok_r(dup, ",", &save); t && n < max; t = strtok_r(NULL, ",", &save))
        v[n++] = (uint32_t)strtoul(t, NULL, 10);
    free(dup);
    return n;
}

static void usage(void)
{
    fprintf(stderr, "usage: bench_remote [--quick] [--seconds S] [--dims 16,64] "
                    "[--batches 1,16,256,1024,16384] [--keys N] [--transports sm,tcp] "
                    "[--loc-cache ENTRIES] [--no-peers]\n");
}

int main(int argc, char **argv)
{
    opt.nkeys = 1000000;
    opt.seconds = 2;
    opt.ndims = parse_list("16,64", opt.dims, MAXD);
    opt.nbatches = parse_list("1,16,256,1024,16384", opt.batches, MAXB);
    opt.transports[0] = "sm";
    opt.transports[1] = "tcp";
    opt.ntransports = 2;
    opt.peers = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--quick")) {
            opt.nkeys = 100000;
            opt.nbatches = parse_list("1,256,1024", opt.batches, MAXB);
            opt.ndims = parse_list("64", opt.dims, MAXD);
            opt.seconds = 1;
        } else if (!strcmp(a, "--no-peers")) {
            opt.peers = 0;
        } else if (v && !strcmp(a, "--seconds")) {
            opt.seconds = atof(v), i++;
        } else if (v && !strcmp(a, "--dims")) {
            opt.ndims = parse_list(v, opt.dims, MAXD), i++;
        } else if (v && !strcmp(a, "--batches")) {
            opt.nbatches = parse_list(v, opt.batches, MAXB), i++;
        } else if (v && !strcmp(a, "--loc-cache")) {
            opt.loc_cache = (uint32_t)strtoul(v, NULL, 10), i++;
        } else if (v && !strcmp(a, "--keys")) {
            opt.nkeys = strtoull(v, NULL, 10), i++;
        } else if (v && !strcmp(a, "--transports")) {
            opt.ntransports = 0;
            if (strstr(v, "sm"))
                opt.transports[opt.ntransports++] = "sm";
            if (strstr(v, "tcp"))
                opt.transports[opt.ntransports++] = "tcp";
            i++;
        } else {
            usage();
            return 2;
        }
    }
    for (uint32_t i = 0; i < opt.nbatches; i++)
        if (opt.batches[i] == 0 || opt.batches[i] > STREAM_LEN / 2) {
            usage();
            return 2;
        }
    if (opt.nkeys == 0 || opt.ndims == 0 || opt.seconds <= 0) {
        usage();
        return 2;
    }
    g_stream = malloc((size_t)STREAM_LEN * sizeof(uint64_t));
    g_lat = malloc((size_t)LAT_CAP * sizeof(uint64_t));
    double t0 = perf_now_s();
    for (int ti = 0; ti < opt.ntransports; ti++)
        run_transport(ti);
#if STRATA_HAVE_PEER_KV
    if (opt.peers)
        run_peers();
#else
    if (opt.peers)
        printf("{\"bench\":\"peer\",\"skipped\":\"built without strata_peer_kv (hiredis/"
               "libmemcached not found)\"}\n");
#endif
    fprintf(stderr, "bench_remote: done in %.1f s\n", perf_now_s() - t0);
    free(g_stream);
    free(g_lat);
    return 0;
}
