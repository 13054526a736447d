/*
 * tests/test_remote.c — the cluster data path end to end, against a local
 * reference table.
 *
 *   test_remote sm|tcp
 *
 * Starts 2 strata-server processes (2 shards each) with UCX_TLS set for the
 * transport, creates a table through the client, then runs random batches
 * of lookups (read-only and creating), pushes (Adagrad, with duplicate
 * keys) through a read-write client and lookups through a read-only
 * client, and applies the same operations to an in-process strata_table_t
 * with the same schema. Every row read remotely must equal the reference
 * bit for bit (the initializer and optimizer are deterministic). Also
 * checks the async API, the one-sided path's use (shared memory: location
 * cache hits and index reads; TCP: RPC in auto mode), and index growth
 * while clients hold cached layouts.
 */
#define _GNU_SOURCE
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster.h"
#include "testutil.h"

#define DIM 24

static strata_table_schema_t schema_for(const char *name, uint64_t cap, uint32_t shards)
{
    return test_cluster_schema(name, DIM, cap, shards, STRATA_OPT_ADAGRAD, 0.05f, 7);
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

typedef struct async_ctx {
    int fired;
    strata_status_t st;
} async_ctx_t;

static void on_done(strata_request_t *req, strata_status_t st, void *arg)
{
    (void)req;
    async_ctx_t *a = arg;
    a->fired++;
    a->st = st;
}

int main(int argc, char **argv)
{
    const char *tr = argc > 1 ? argv[1] : "sm";
    int shm = strcmp(tr, "tcp") != 0;
    setenv("UCX_TLS", shm ? "sm,self,tcp" : "tcp,self", 1);
    setenv("UCX_NET_DEVICES", "lo", 0); /* loopback only */
    uint64_t seed = test_seed(42);
    test_rng_t rng;
    test_rng_seed(&rng, seed);

    cluster_t cl;
    /* a tiny first index, so it grows while clients hold its layout */
    static const char *const extra[] = {"--initial-buckets", "64", NULL};
    /* STRATA_TEST_SERVERS="h:p,h:p": use running servers (2 of them, secret
     * test-secret, started with --initial-buckets 64) — the multi-host test
     * in network namespaces does this */
    const char *ext = getenv("STRATA_TEST_SERVERS");
    if (ext) {
        memset(&cl, 0, sizeof(cl));
        snprintf(cl.servers, sizeof(cl.servers), "%s", ext);
        snprintf(cl.secret, sizeof(cl.secret), "test-secret");
    } else {
        CHECK(cluster_start(&cl, 2, extra) == 0, "cluster start");
    }

    strata_client_t *rw = connect_client(&cl, 0, STRATA_READ_AUTO);
    strata_client_t *ro = connect_client(&cl, 1, STRATA_READ_AUTO);
    strata_client_t *rpc = connect_client(&cl, 1, STRATA_READ_RPC);

    /* small initial capacity so the index grows while clients cache it */
    strata_table_schema_t s = schema_for("emb", 200000, 2);
    CHECK_OK(strata_client_create_table(rw, &s));
    CHECK(strata_client_create_table(rw, &s) == STRATA_ERR_EXISTS, "second create must fail");

    strata_table_t *ref = test_reference_table(&s);

    strata_rtable_t *t, *tr_ro, *tr_rpc;
    CHECK_OK(strata_client_open_table(rw, "emb", &t));
    CHECK_OK(strata_client_open_table(ro, "emb", &tr_ro));
    CHECK_OK(strata_client_open_table(rpc, "emb", &tr_rpc));
    for (uint32_t i = 0; i < 2; i++)
        CHECK(strata_client_server_onesided(ro, i) == shm,
              "server %u: one-sided %d under %s (auto mode)", i,
              strata_client_server_onesided(ro, i), tr);
    CHECK(strata_client_server_onesided(rpc, 0) == 0, "rpc mode");
    CHECK(strata_rtable_schema(t)->dim == DIM, "dim");
    CHECK(strata_rtable_schema(t)->nshards == 4, "4 shards in all, got %u",
          strata_rtable_schema(t)->nshards);
    strata_rtable_t *none;
    CHECK(strata_client_open_table(rw, "nope", &none) == STRATA_ERR_UNKNOWN_TABLE,
          "unknown table");

    const size_t B = 2048;
    uint64_t *keys = malloc(B * sizeof(uint64_t));
    float *grads = malloc(B * DIM * sizeof(float));
    float *got = malloc(B * DIM * sizeof(float));
    float *want = malloc(B * DIM * sizeof(float));
    uint8_t *fgot = malloc(B), *fwant = malloc(B);
    uint64_t keyspace = 60000;
    uint64_t rounds = test_scaled(300), compared = 0;
    for (uint64_t r = 0; r < rounds; r++) {
        size_t n = 1 + test_rng_below(&rng, B);
        for (size_t i = 0; i < n; i++)
            keys[i] = test_rng_below(&rng, keyspace) * 0x9E3779B1ull;
        int op = (int)test_rng_below(&rng, 4);
        if (op == 0) { /* push with duplicates */
            for (size_t i = 0; i < n * DIM; i++)
                grads[i] = test_rng_float(&rng, -1, 1);
            /* the client sums duplicates into one step: do the same for
             * the reference */
            CHECK_OK(strata_rtable_push(t, keys, grads, n));
            for (size_t i = 0; i < n; i++) {
                int dup = 0;
                for (size_t j = 0; j < i; j++)
                    if (keys[j] == keys[i]) {
                        dup = 1;
                        break;
                    }
                if (dup)
                    continue;
                float sum[DIM] = {0};
                for (size_t j = i; j < n; j++)
                    if (keys[j] == keys[i])
                        for (int d = 0; d < DIM; d++)
                            sum[d] += grads[j * DIM + d];
                CHECK_OK(strata_table_apply_gradients(ref, &keys[i], sum, 1));
            }
            continue;
        }
        strata_rtable_t *which = op == 1 ? t : op == 2 ? tr_ro : tr_rpc;
        uint32_t flags = op == 1 ? STRATA_LOOKUP_INIT_MISSING : 0;
        CHECK_OK(strata_rtable_lookup(which, keys, n, got, fgot, flags));
        CHECK_OK(strata_table_lookup(ref, keys, n, want, fwant, flags));
        for (size_t i = 0; i < n; i++) {
            /* CREATED vs FOUND differ when the same key repeats in one batch
             * (the client dedups); compare presence */
            int g_present = fgot[i] == STRATA_ROW_FOUND || fgot[i] == STRATA_ROW_CREATED;
            int w_present = fwant[i] == STRATA_ROW_FOUND || fwant[i] == STRATA_ROW_CREATED;
            CHECK(g_present == w_present, "round %llu op %d key %llu: found %u, reference %u",
                  (unsigned long long)r, op, (unsigned long long)keys[i], fgot[i], fwant[i]);
            CHECK(memcmp(got + i * DIM, want + i * DIM, DIM * sizeof(float)) == 0,
                  "round %llu op %d key %llu: row differs (%g vs %g)", (unsigned long long)r, op,
                  (unsigned long long)keys[i], got[i * DIM], want[i * DIM]);
            compared++;
        }
    }
    /* async: two lookups and a push in flight at once */
    {
        size_t n = 1000;
        for (size_t i = 0; i < n; i++)
            keys[i] = test_rng_below(&rng, keyspace) * 0x9E3779B1ull;
        float *got2 = malloc(n * DIM * sizeof(float));
        async_ctx_t a1 = {0};
        strata_request_t *r1, *r2;
        CHECK(strata_rtable_lookup_async(tr_ro, keys, n, got, NULL, 0, on_done, &a1, &r1) ==
                  STRATA_INPROGRESS,
              "async lookup 1");
        CHECK(strata_rtable_lookup_async(tr_rpc, keys, n, got2, NULL, 0, NULL, NULL, &r2) ==
                  STRATA_INPROGRESS,
              "async lookup 2");
        CHECK_OK(strata_request_wait(r2));
        CHECK_OK(strata_request_wait(r1));
        CHECK(a1.fired == 1 && a1.st == STRATA_OK, "callback fired %d", a1.fired);
        CHECK(strata_request_test(r1) == STRATA_OK, "test after completion");
        strata_request_free(r1);
        strata_request_free(r2);
        CHECK_OK(strata_table_lookup(ref, keys, n, want, NULL, 0));
        CHECK(memcmp(got, want, n * DIM * sizeof(float)) == 0, "async one-sided rows");
        CHECK(memcmp(got2, want, n * DIM * sizeof(float)) == 0, "async rpc rows");
        free(got2);
    }
    /* the get path (what an RDMA NIC would serve): one-sided mode without
     * the shared-memory mapping, so rows and buckets are read with
     * ucp_get batches (emulated over TCP here) and validated */
    {
        setenv("STRATA_NO_RKEY_PTR", "1", 1);
        strata_client_t *gc = connect_client(&cl, 1, STRATA_READ_ONESIDED);
        strata_rtable_t *gt;
        CHECK_OK(strata_client_open_table(gc, "emb", &gt));
        unsetenv("STRATA_NO_RKEY_PTR");
        size_t n = 1500;
        for (size_t i = 0; i < n; i++)
            keys[i] = test_rng_below(&rng, keyspace) * 0x9E3779B1ull;
        CHECK_OK(strata_table_lookup(ref, keys, n, want, fwant, 0));
        for (int pass = 0; pass < 2; pass++) { /* index reads, then cache hits */
            CHECK_OK(strata_rtable_lookup(gt, keys, n, got, fgot, 0));
            for (size_t i = 0; i < n; i++)
                CHECK((fgot[i] == STRATA_ROW_FOUND) == (fwant[i] == STRATA_ROW_FOUND) &&
                          memcmp(got + i * DIM, want + i * DIM, DIM * sizeof(float)) == 0,
                      "get path, pass %d, key %llu differs", pass, (unsigned long long)keys[i]);
        }
        strata_client_stats_t gs;
        strata_client_get_stats(gc, &gs);
        fprintf(stderr, "get path: %llu index reads, %llu cache hits, %llu rpc keys\n",
                (unsigned long long)gs.onesided_index, (unsigned long long)gs.onesided_hits,
                (unsigned long long)gs.rpc_keys);
        CHECK(gs.onesided_index > 0 && gs.onesided_hits > 0, "the get path was not used");
        strata_client_destroy(gc);
    }
    /* errors the client catches itself */
    grads[3] = NAN;
    CHECK(strata_rtable_push(t, keys, grads, 4) == STRATA_ERR_BAD_VALUE, "NaN push");
    CHECK(strata_rtable_push(tr_ro, keys, grads, 1) == STRATA_ERR_READ_ONLY, "ro push");
    CHECK(strata_rtable_lookup(tr_ro, keys, 1, got, NULL, STRATA_LOOKUP_INIT_MISSING) ==
              STRATA_ERR_READ_ONLY,
          "ro init lookup");

    strata_client_stats_t st;
    strata_client_get_stats(ro, &st);
    fprintf(stderr,
            "test_remote %s: %llu rows compared; read-only client: %llu cache hits, %llu index "
            "reads, %llu absent one-sided, %llu rpc keys, %llu torn retries, %llu relayouts\n",
            tr, (unsigned long long)compared, (unsigned long long)st.onesided_hits,
            (unsigned long long)st.onesided_index, (unsigned long long)st.onesided_absent,
            (unsigned long long)st.rpc_keys,
            (unsigned long long)st.torn_retries, (unsigned long long)st.relayouts);
    if (shm) {
        CHECK(st.onesided_hits > 0 && st.onesided_index > 0 && st.onesided_absent > 0,
              "shared memory: the one-sided path was not used");
        CHECK(st.relayouts > 0, "the index grew but no client re-read the layout");
    } else {
        CHECK(st.onesided_hits == 0 && st.rpc_keys > 0, "tcp auto mode must use RPC");
    }
    strata_table_stats_t rs, ss;
    double cpu = 0;
    CHECK_OK(strata_table_get_stats(ref, &rs));
    CHECK_OK(strata_rtable_get_stats(tr_ro, &ss, &cpu));
    fprintf(stderr, "reference rows %llu, servers' rows %llu, server CPU %.3f s\n",
            (unsigned long long)rs.rows, (unsigned long long)ss.rows, cpu);
    CHECK(ss.rows == rs.rows, "the servers hold %llu rows, the reference %llu",
          (unsigned long long)ss.rows, (unsigned long long)rs.rows);
    CHECK(ss.capacity == 200000 && cpu > 0, "capacity %llu, cpu %g",
          (unsigned long long)ss.capacity, cpu);
    CHECK(st.bytes_sent > 0 && st.bytes_received > 0, "byte counters");
    if (shm)
        CHECK(st.bytes_onesided > 0, "one-sided byte counter");

    /* keys the read-only client has in its location cache */
    uint64_t cached[32];
    int ncached = 0;
    CHECK_OK(strata_rtable_lookup(tr_ro, keys, 1000, got, fgot, 0));
    for (size_t i = 0; i < 1000 && ncached < 32; i++)
        if (fgot[i] == STRATA_ROW_FOUND)
            cached[ncached++] = keys[i];
    CHECK(ncached == 32, "32 stored keys among 1000");
    CHECK_OK(strata_rtable_lookup(tr_ro, cached, 32, got, NULL, 0));
    CHECK_OK(strata_client_drop_table(rw, "emb"));
    CHECK(strata_rtable_lookup(tr_rpc, keys, 4, got, NULL, 0) == STRATA_ERR_UNKNOWN_TABLE,
          "lookup after drop: %s", strata_last_error());
    /* the one-sided reader holds a mapping of the dropped table's memory
     * (shared memory): it must notice, not serve stale rows */
    CHECK(strata_rtable_lookup(tr_ro, cached, 32, got, NULL, 0) == STRATA_ERR_UNKNOWN_TABLE,
          "one-sided lookup after drop: %s", strata_last_error());
    strata_client_destroy(rpc);
    strata_client_destroy(ro);
    strata_client_destroy(rw);
    strata_table_destroy(ref);
    if (!ext)
        CHECK(cluster_stop(&cl) == 0, "servers exit 0 on SIGTERM");
    free(keys);
    free(grads);
    free(got);
    free(want);
    free(fgot);
    free(fwant);
    return 0;
}
