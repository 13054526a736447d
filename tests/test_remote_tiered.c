/*
 * tests/test_remote_tiered.c — a table 4x larger than its DRAM budget,
 * served by strata-server over DRAM and the NVMe tier (hierarchy/).
 *
 * Two servers with --nvme-dir and a table whose dram_budget is a quarter of
 * the rows it gets. Random creating lookups and Adagrad pushes over 20000
 * keys go through a read-write client while an in-process reference table
 * (all in DRAM) takes the same steps; then every row is read back through a
 * read-only client (one-sided where the row is in DRAM, RPC with promotion
 * from NVMe otherwise) and must equal the reference bit for bit. The tier
 * counters must show demotions and NVMe hits. The servers are then stopped
 * (SIGTERM: dirty rows flushed to NVMe) and restarted on the same
 * directory: every row reads back again, and one more step still matches
 * the reference (optimizer state went through NVMe too).
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cluster.h"
#include "testutil.h"

#define DIM 16
#define KEYS 20000

static void compare_all(strata_rtable_t *t, strata_table_t *ref, const uint64_t *keys,
                        const char *when)
{
    static float got[KEYS * DIM], want[KEYS * DIM];
    static uint8_t fg[KEYS], fw[KEYS];
    CHECK_OK(strata_rtable_lookup(t, keys, KEYS, got, fg, 0));
    CHECK_OK(strata_table_lookup(ref, keys, KEYS, want, fw, 0));
    for (int i = 0; i < KEYS; i++) {
        CHECK((fg[i] == STRATA_ROW_FOUND) == (fw[i] == STRATA_ROW_FOUND),
              "%s: key %llu found %u, reference %u", when, (unsigned long long)keys[i], fg[i],
              fw[i]);
        CHECK(memcmp(got + (size_t)i * DIM, want + (size_t)i * DIM, DIM * sizeof(float)) == 0,
              "%s: key %llu: row differs (%g vs %g)", when, (unsigned long long)keys[i],
              got[(size_t)i * DIM], want[(size_t)i * DIM]);
    }
}

int main(void)
{
    setenv("UCX_TLS", "sm,self,tcp", 0);
    setenv("UCX_NET_DEVICES", "lo", 0);
    char dir[] = "/tmp/strata-tiered-XXXXXX";
    CHECK(mkdtemp(dir), "mkdtemp");
    static const char *extra[8];
    extra[0] = "--nvme-dir";
    extra[1] = dir;
    extra[2] = "--table";
    extra[3] = "name=tiered,dim=16,capacity=40000,dram_budget=5000,shards_per_server=1,"
               "optimizer=adagrad,lr=0.1";
    extra[4] = NULL;
    static cluster_t cl; /* static: its atexit cleanup may run after main returns */
    CHECK(cluster_start(&cl, 2, extra) == 0, "cluster start");
    cl.keep = 1;
    strata_client_t *rw, *ro;
    CHECK_OK(cluster_client_connect(&cl, 0, 20000, &rw));
    CHECK_OK(cluster_client_connect(&cl, 1, 20000, &ro));
    strata_rtable_t *t, *tr;
    CHECK_OK(strata_client_open_table(rw, "tiered", &t));
    CHECK_OK(strata_client_open_table(ro, "tiered", &tr));

    /* the reference: the same schema, all rows in DRAM */
    strata_table_schema_t s = *strata_rtable_schema(t);
    s.nshards = 1;
    s.capacity = 40000;
    s.eviction = STRATA_EVICT_NONE;
    strata_table_t *ref = test_reference_table(&s);

    static uint64_t keys[KEYS], batch[1024];
    static float grads[1024 * DIM], rows[1024 * DIM];
    test_rng_t rng;
    test_rng_seed(&rng, test_seed(5));
    for (int i = 0; i < KEYS; i++)
        keys[i] = test_rng_next(&rng) | 1;
    for (int round = 0; round < (int)test_scaled(120); round++) {
        size_t n = 1 + test_rng_below(&rng, 1024);
        for (size_t i = 0; i < n; i++)
            batch[i] = keys[test_rng_below(&rng, KEYS)];
        if (round % 3 == 0) {
            CHECK_OK(strata_rtable_lookup(t, batch, n, rows, NULL, STRATA_LOOKUP_INIT_MISSING));
            CHECK_OK(strata_table_lookup(ref, batch, n, rows, NULL, STRATA_LOOKUP_INIT_MISSING));
            continue;
        }
        /* distinct keys per push: the client sums duplicates, the
         * reference would apply them as separate steps */
        size_t m = 0;
        for (size_t i = 0; i < n; i++) {
            int dup = 0;
            for (size_t j = 0; j < m && !dup; j++)
                dup = batch[j] == batch[i];
            if (!dup)
                batch[m++] = batch[i];
        }
        for (size_t i = 0; i < m * DIM; i++)
            grads[i] = test_rng_float(&rng, -1, 1);
        CHECK_OK(strata_rtable_push(t, batch, grads, m));
        CHECK_OK(strata_table_apply_gradients(ref, batch, grads, m));
    }
    /* every key exists after this (creating lookups of all of them) */
    for (int i = 0; i < KEYS; i += 1024) {
        size_t n = KEYS - i < 1024 ? (size_t)(KEYS - i) : 1024;
        CHECK_OK(strata_rtable_lookup(t, keys + i, n, rows, NULL, STRATA_LOOKUP_INIT_MISSING));
        CHECK_OK(strata_table_lookup(ref, keys + i, n, rows, NULL, STRATA_LOOKUP_INIT_MISSING));
    }
    compare_all(tr, ref, keys, "before restart");
    strata_tier_stats_t ts;
    strata_table_stats_t st;
    CHECK_OK(strata_rtable_get_tier_stats(tr, &ts));
    CHECK_OK(strata_rtable_get_stats(tr, &st, NULL));
    fprintf(stderr,
            "tiered: %llu rows in DRAM (budget 5000) of %d; dram hits %llu misses %llu, nvme hits "
            "%llu misses %llu, promotions %llu, demotions %llu, writebacks %llu, nvme rows %llu\n",
            (unsigned long long)st.rows, KEYS, (unsigned long long)ts.dram_hits,
            (unsigned long long)ts.dram_misses, (unsigned long long)ts.nvme_hits,
            (unsigned long long)ts.nvme_misses, (unsigned long long)ts.promotions,
            (unsigned long long)ts.demotions, (unsigned long long)ts.writebacks,
            (unsigned long long)ts.nvme_rows);
    CHECK(st.rows <= 5000, "DRAM holds %llu rows, over its budget", (unsigned long long)st.rows);
    CHECK(ts.demotions > 0 && ts.nvme_hits > 0 && ts.promotions > 0 && ts.nvme_rows > 0,
          "the NVMe tier was not used");
    strata_client_destroy(ro);
    strata_client_destroy(rw);

    /* SIGTERM (flush to NVMe), restart on the same directory */
    CHECK(cluster_stop(&cl) == 0, "servers exit 0 after flushing");
    for (uint32_t i = 0; i < 2; i++)
        CHECK(cluster_restart_one(&cl, i) == 0, "restart %u", i);
    snprintf(cl.servers, sizeof(cl.servers), "127.0.0.1:%u,127.0.0.1:%u", cl.port[0],
             cl.port[1]);
    CHECK_OK(cluster_client_connect(&cl, 0, 20000, &rw));
    CHECK_OK(strata_client_open_table(rw, "tiered", &t));
    compare_all(t, ref, keys, "after restart");
    for (size_t i = 0; i < 1024 * DIM; i++)
        grads[i] = test_rng_float(&rng, -1, 1);
    CHECK_OK(strata_rtable_push(t, keys, grads, 1024));
    CHECK_OK(strata_table_apply_gradients(ref, keys, grads, 1024));
    compare_all(t, ref, keys, "after restart and a step");
    /* DROP removes the table's NVMe directories */
    char sub0[256];
    snprintf(sub0, sizeof(sub0), "%s/tiered.0", dir);
    CHECK(access(sub0, F_OK) == 0, "%s exists before DROP", sub0);
    CHECK_OK(strata_client_drop_table(rw, "tiered"));
    CHECK(access(sub0, F_OK) != 0, "%s still exists after DROP", sub0);
    strata_client_destroy(rw);
    cl.keep = 0;
    CHECK(cluster_stop(&cl) == 0, "second stop");
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    CHECK(system(cmd) == 0, "cleanup");
    strata_table_destroy(ref);
    fprintf(stderr, "test_remote_tiered: %d rows over DRAM and NVMe match the reference, "
                    "before and after a restart\n",
            KEYS);
    return 0;
}
