/*
 * tests/test_remote_torn.c — concurrent pushers and one-sided readers:
 * no torn row is ever accepted.
 *
 * One server (shared memory, so readers load rows straight from the
 * server's arena while its writer changes them). A table with SGD, lr 1,
 * initializer constant 0 and a small hot key set. Two pusher processes
 * push gradients whose every element in a row is the same value, so every
 * consistent row has all its elements equal; a torn copy (half of one
 * write, half of another) has unequal elements with overwhelming
 * likelihood, since pushers use distinct random values. Readers (read-only
 * clients) look up batches of the hot keys and check every returned row;
 * the default run reads >= 10^7 rows (STRATA_TEST_SCALE scales it).
 * The test also shows the check can fail: a row corrupted on purpose
 * (unequal elements) is caught by the same check.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cluster.h"
#include "testutil.h"

#define DIM 32
#define HOT 512

static strata_client_t *connect_client(const cluster_t *cl, int ro)
{
    strata_client_t *c = NULL;
    CHECK_OK(cluster_client_connect(cl, ro, 30000, &c));
    return c;
}

/** 1 if the row's elements are all equal (a consistent row here). */
static int row_consistent(const float *r)
{
    for (int d = 1; d < DIM; d++)
        if (memcmp(&r[d], &r[0], sizeof(float)) != 0)
            return 0;
    return 1;
}

typedef struct pusher_arg {
    const cluster_t *cl;
    uint64_t seed;
    volatile int stop;
    uint64_t pushed;
    strata_status_t st;
} pusher_arg_t;

static void *pusher(void *argp)
{
    pusher_arg_t *a = argp;
    const cluster_t *cl = a->cl;
    uint64_t seed = a->seed;
    strata_client_t *c = connect_client(cl, 0);
    strata_rtable_t *t;
    CHECK_OK(strata_client_open_table(c, "torn", &t));
    test_rng_t rng;
    test_rng_seed(&rng, seed);
    uint64_t keys[64];
    float g[64 * DIM];
    while (!a->stop) {
        for (int i = 0; i < 64; i++) {
            keys[i] = test_rng_below(&rng, HOT);
            float v = (float)(test_rng_below(&rng, 1u << 20)) / 1048576.0f - 0.5f;
            for (int d = 0; d < DIM; d++)
                g[i * DIM + d] = v;
        }
        a->st = strata_rtable_push(t, keys, g, 64);
        if (a->st != STRATA_OK)
            break;
        a->pushed += 64;
    }
    strata_client_destroy(c);
    return NULL;
}

int main(void)
{
    setenv("UCX_TLS", "sm,self,tcp", 0);
    setenv("UCX_NET_DEVICES", "lo", 0);
    cluster_t cl;
    CHECK(cluster_start(&cl, 1, NULL) == 0, "cluster start");
    strata_client_t *admin = connect_client(&cl, 0);
    strata_table_schema_t s;
    memset(&s, 0, sizeof(s));
    s.field_mask = STRATA_SCHEMA_FIELD_NAME | STRATA_SCHEMA_FIELD_DIM | STRATA_SCHEMA_FIELD_CAPACITY |
                   STRATA_SCHEMA_FIELD_OPTIMIZER | STRATA_SCHEMA_FIELD_INITIALIZER;
    s.name = "torn";
    s.dim = DIM;
    s.capacity = 10000;
    s.optimizer.type = STRATA_OPT_SGD;
    s.optimizer.field_mask = STRATA_OPT_FIELD_LR;
    s.optimizer.lr = 1.0f;
    s.initializer.type = STRATA_INIT_ZEROS;
    CHECK_OK(strata_client_create_table(admin, &s));
    strata_rtable_t *ta;
    CHECK_OK(strata_client_open_table(admin, "torn", &ta));
    uint64_t hot[HOT];
    for (int i = 0; i < HOT; i++)
        hot[i] = (uint64_t)i;
    float *rows = malloc((size_t)HOT * DIM * sizeof(float));
    CHECK_OK(strata_rtable_lookup(ta, hot, HOT, rows, NULL, STRATA_LOOKUP_INIT_MISSING));

    /* the check catches a corrupted row */
    float bad[DIM];
    for (int d = 0; d < DIM; d++)
        bad[d] = d < DIM / 2 ? 0.25f : -0.5f;
    CHECK(!row_consistent(bad), "the check must reject a half-and-half row");

    pthread_t kids[2];
    pusher_arg_t pa[2];
    for (int k = 0; k < 2; k++) {
        memset(&pa[k], 0, sizeof(pa[k]));
        pa[k].cl = &cl;
        pa[k].seed = 1000 + (uint64_t)k;
        CHECK(pthread_create(&kids[k], NULL, pusher, &pa[k]) == 0, "thread");
    }
    strata_client_t *ro = connect_client(&cl, 1);
    strata_rtable_t *t;
    CHECK_OK(strata_client_open_table(ro, "torn", &t));
    uint64_t target = test_scaled(10000000), reads = 0, torn_accepted = 0;
    while (reads < target) {
        CHECK_OK(strata_rtable_lookup(t, hot, HOT, rows, NULL, 0));
        for (int i = 0; i < HOT; i++)
            if (!row_consistent(rows + (size_t)i * DIM))
                torn_accepted++;
        reads += HOT;
    }
    strata_client_stats_t cs;
    strata_client_get_stats(ro, &cs);
    uint64_t pushed = 0;
    for (int k = 0; k < 2; k++)
        pa[k].stop = 1;
    for (int k = 0; k < 2; k++) {
        pthread_join(kids[k], NULL);
        CHECK(pa[k].st == STRATA_OK, "pusher %d: %s", k, strata_status_string(pa[k].st));
        pushed += pa[k].pushed;
    }
    /* the pushers really changed the rows */
    CHECK_OK(strata_rtable_lookup(t, hot, HOT, rows, NULL, 0));
    int changed = 0;
    for (int i = 0; i < HOT; i++)
        changed += rows[(size_t)i * DIM] != 0.0f;
    fprintf(stderr,
            "test_remote_torn: %llu rows read one-sided while 2 pushers wrote; %llu torn "
            "accepted; %llu torn copies caught and re-read; %llu cache hits, %llu rpc keys; "
            "%llu gradient rows pushed; %d/%d rows changed\n",
            (unsigned long long)reads, (unsigned long long)torn_accepted,
            (unsigned long long)cs.torn_retries, (unsigned long long)cs.onesided_hits,
            (unsigned long long)cs.rpc_keys, (unsigned long long)pushed, changed, HOT);
    CHECK(torn_accepted == 0, "%llu torn rows accepted", (unsigned long long)torn_accepted);
    CHECK(cs.onesided_hits > reads / 2, "most reads must be one-sided (%llu of %llu)",
          (unsigned long long)cs.onesided_hits, (unsigned long long)reads);
    CHECK(changed > HOT / 2, "pushers did not change the rows");
    strata_client_destroy(ro);
    strata_client_destroy(admin);
    CHECK(cluster_stop(&cl) == 0, "server exit");
    free(rows);
    return 0;
}
