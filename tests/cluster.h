/*
 * tests/cluster.h — start and stop a local cluster of strata-server
 * processes for tests and benchmarks.
 *
 * Each server is exec'ed from STRATA_SERVER_BIN (set by CMake to the built
 * binary), listens on 127.0.0.1 on a free port (--port 0 --port-file) and
 * is killed by cluster_stop (SIGTERM, then SIGKILL after 5 s) and by an
 * atexit handler, so no test leaves a server behind.
 *
 * Threading: single-threaded use.
 */
#ifndef STRATA_TESTS_CLUSTER_H
#define STRATA_TESTS_CLUSTER_H

#include <stdint.h>
#include <sys/types.h>

#define CLUSTER_MAX 8

typedef struct cluster {
    uint32_t n;
    pid_t pid[CLUSTER_MAX];
    uint16_t port[CLUSTER_MAX];
    char dir[128];                /**< temp dir with port files, secret, logs */
    char servers[CLUSTER_MAX * 32]; /**< "127.0.0.1:p0,127.0.0.1:p1" */
    char secret[64];
    const char *const *extra;     /**< the extra arguments (borrowed) */
    int keep;                     /**< cluster_stop keeps dir (for a restart) */
} cluster_t;

/** Start n servers with the given extra arguments (NULL-terminated,
 *  may be NULL; borrowed for the cluster's life), secret "test-secret".
 *  c is registered for an atexit cleanup until cluster_stop: it must
 *  outlive main if the program may return without stopping it. Returns 0 or -1 with a message on
 *  stderr. Inherits the environment (UCX_TLS etc.). */
int cluster_start(cluster_t *c, uint32_t n, const char *const *extra_args);

/** Start (again) server i only, same arguments as before. */
int cluster_restart_one(cluster_t *c, uint32_t i);

/** SIGKILL server i now (a crash). */
void cluster_kill(cluster_t *c, uint32_t i);

/** SIGTERM every server and wait; returns 0 when all exited 0. Removes
 *  the cluster's directory unless c->keep (then cluster_restart_one may
 *  start servers again). */
int cluster_stop(cluster_t *c);

/** Path of a server's log file. */
const char *cluster_log(const cluster_t *c, uint32_t i);

#endif
