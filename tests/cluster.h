/*
 * tests/cluster.h — start and stop a local cluster of strata-server
 * processes for tests and benchmarks.
 *
 * Each server is exec'ed from STRATA_SERVER_BIN (set by CMake to the built
 * binary), listens on 127.0.0.1 on a free port (--port 0 --port-file) and
 * is killed by cluster_stop (SIGTERM, then SIGKILL after 5 s) and by an
 * atexit handler, so no test leaves a server behind.
 *
 * A program that must not leave servers behind even when it is SIGKILLed
 * (perf/strata_demo.c, perf/strata_perf.c, examples/inference/infer.c)
 * also arms the watchdog (cluster_watchdog_start) before starting them.
 *
 * Threading: single-threaded use.
 */
#ifndef STRATA_TESTS_CLUSTER_H
#define STRATA_TESTS_CLUSTER_H

#include <stdint.h>
#include <sys/types.h>

#include "strata.h"

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

/** Client parameters for c: its servers and secret (borrowed from c, which
 *  must outlive the strata_client_connect call), read_only and timeout_ms
 *  set; the caller may add fields (read mode, location cache) first. */
strata_client_params_t cluster_client_params(const cluster_t *c, int read_only,
                                             uint32_t timeout_ms);

/** strata_client_connect with cluster_client_params(c, read_only,
 *  timeout_ms): *client_p is written only on STRATA_OK. */
strata_status_t cluster_client_connect(const cluster_t *c, int read_only, uint32_t timeout_ms,
                                       strata_client_t **client_p);

/*
 * The watchdog: a process forked before the servers, holding the read end
 * of a pipe whose write end (close-on-exec, so no server holds it) only
 * this process keeps. It is told the pid of every server to guard, and to
 * stand down once the servers are stopped. If the pipe ends without that
 * (this process was killed: SIGKILL, a crash) it SIGTERMs the servers,
 * SIGKILLs those still there 5 s later, runs the cleanup callback and
 * exits. It ignores terminal signals, so it outlives whatever killed this
 * process. One watchdog per process; once it runs, every server
 * cluster_start and cluster_restart_one spawn is guarded.
 */

/** Runs in the watchdog after it has stopped the servers of a process
 *  that died; it sees that process's memory as it was when the watchdog
 *  was forked. */
typedef void (*cluster_watchdog_cleanup_cb_t)(void *arg);

/** Fork the watchdog: before cluster_start, and before this process has
 *  threads or a client. cleanup (NULL: none) and arg are for the watchdog
 *  process. Returns 0, or -1 with errno set (then there is no watchdog). */
int cluster_watchdog_start(cluster_watchdog_cleanup_cb_t cleanup, void *arg);

/** Guard pid too (a server cluster.c did not spawn). No-op without a
 *  watchdog. */
void cluster_watchdog_watch(pid_t pid);

/** The servers are stopped: the watchdog exits doing nothing and is
 *  reaped. Safe without a watchdog and when repeated. */
void cluster_watchdog_release(void);

/** In a child forked from this process that does not exec: close the
 *  child's copy of the pipe, so the watchdog still sees this process die
 *  while the child lives. */
void cluster_watchdog_forget(void);

#endif
