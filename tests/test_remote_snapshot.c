/*
 * tests/test_remote_snapshot.c — a cluster's tables survive a SIGTERM
 * restart through --snapshot-dir.
 *
 * Two servers with a snapshot directory. A table created at run time by a
 * client (so no configuration names it) gets rows and Adagrad steps; the
 * servers are stopped with SIGTERM (they drain and save), started again
 * with the same arguments, and every row read back must equal the rows
 * read before the restart, and a further push must give the same result as
 * on an in-process reference table that took the same steps (so the
 * optimizer state was saved too). A corrupted snapshot stops the server
 * at start with an error instead of serving a partial table.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cluster.h"
#include "testutil.h"

#define DIM 16
#define N 3000

static strata_client_t *connect_client(const cluster_t *cl)
{
    strata_client_t *c = NULL;
    CHECK_OK(cluster_client_connect(cl, 0, 10000, &c));
    return c;
}

int main(void)
{
    setenv("UCX_TLS", "sm,self,tcp", 0);
    setenv("UCX_NET_DEVICES", "lo", 0);
    char dir[] = "/tmp/strata-snap-XXXXXX";
    CHECK(mkdtemp(dir), "mkdtemp");
    const char *extra[] = {"--snapshot-dir", dir, NULL};
    static cluster_t cl; /* static: its atexit cleanup may run after main returns */
    CHECK(cluster_start(&cl, 2, extra) == 0, "cluster start");
    cl.keep = 1;
    strata_client_t *c = connect_client(&cl);
    strata_table_schema_t s;
    memset(&s, 0, sizeof(s));
    s.field_mask = STRATA_SCHEMA_FIELD_NAME | STRATA_SCHEMA_FIELD_DIM | STRATA_SCHEMA_FIELD_CAPACITY |
                   STRATA_SCHEMA_FIELD_OPTIMIZER | STRATA_SCHEMA_FIELD_NSHARDS;
    s.name = "snap";
    s.dim = DIM;
    s.capacity = 20000;
    s.nshards = 2;
    s.optimizer.type = STRATA_OPT_ADAGRAD;
    s.optimizer.field_mask = STRATA_OPT_FIELD_LR;
    s.optimizer.lr = 0.1f;
    CHECK_OK(strata_client_create_table(c, &s));
    strata_table_t *ref = test_reference_table(&s);

    static uint64_t keys[N];
    static float grads[N * DIM], before[N * DIM], after[N * DIM], want[N * DIM];
    test_rng_t rng;
    test_rng_seed(&rng, test_seed(7));
    for (int i = 0; i < N; i++)
        keys[i] = test_rng_next(&rng);
    for (int i = 0; i < N * DIM; i++)
        grads[i] = test_rng_float(&rng, -1, 1);
    strata_rtable_t *t;
    CHECK_OK(strata_client_open_table(c, "snap", &t));
    CHECK_OK(strata_rtable_push(t, keys, grads, N));
    CHECK_OK(strata_rtable_push(t, keys, grads, N / 2));
    CHECK_OK(strata_rtable_lookup(t, keys, N, before, NULL, 0));
    CHECK_OK(strata_table_apply_gradients(ref, keys, grads, N));
    CHECK_OK(strata_table_apply_gradients(ref, keys, grads, N / 2));
    strata_client_destroy(c);

    /* SIGTERM: drain and save; then start again on the same directory */
    CHECK(cluster_stop(&cl) == 0, "servers exit 0 after saving");
    for (uint32_t i = 0; i < 2; i++)
        CHECK(cluster_restart_one(&cl, i) == 0, "restart %u", i);
    snprintf(cl.servers, sizeof(cl.servers), "127.0.0.1:%u,127.0.0.1:%u", cl.port[0],
             cl.port[1]);
    c = connect_client(&cl);
    CHECK_OK(strata_client_open_table(c, "snap", &t));
    CHECK_OK(strata_rtable_lookup(t, keys, N, after, NULL, 0));
    CHECK(memcmp(before, after, sizeof(before)) == 0, "rows differ after the restart");
    /* optimizer state survived: one more step matches the reference */
    CHECK_OK(strata_rtable_push(t, keys, grads, N));
    CHECK_OK(strata_table_apply_gradients(ref, keys, grads, N));
    CHECK_OK(strata_rtable_lookup(t, keys, N, after, NULL, 0));
    CHECK_OK(strata_table_lookup(ref, keys, N, want, NULL, 0));
    CHECK(memcmp(after, want, sizeof(want)) == 0, "Adagrad state was not restored");
    strata_table_stats_t st;
    CHECK_OK(strata_rtable_get_stats(t, &st, NULL));
    CHECK(st.rows == N, "%llu rows after restart", (unsigned long long)st.rows);
    strata_client_destroy(c);
    CHECK(cluster_stop(&cl) == 0, "second stop");

    /* a corrupted snapshot: the server refuses to start */
    char path[256];
    snprintf(path, sizeof(path), "%s/snap.0-of-2.snap", dir);
    FILE *f = fopen(path, "r+b");
    CHECK(f, "snapshot file %s", path);
    fseek(f, 200, SEEK_SET);
    fputc(0x5a, f);
    fclose(f);
    int rc = cluster_restart_one(&cl, 0);
    CHECK(rc != 0, "a server started on a corrupted snapshot");
    fprintf(stderr, "corrupted snapshot refused; server log:\n");
    char cmd[400];
    snprintf(cmd, sizeof(cmd), "grep -h CORRUPT %s/server.0.log >&2; rm -rf %s %s", cl.dir, dir,
             cl.dir);
    CHECK(system(cmd) == 0, "the log names the corruption");
    strata_table_destroy(ref);
    fprintf(stderr, "test_remote_snapshot: %d rows and their Adagrad state survived a restart\n", N);
    return 0;
}
