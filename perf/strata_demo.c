/*
 * perf/strata_demo.c — the README's main job: a local Strata cluster with
 * a training workload and an inference reader running against it at once.
 *
 *   strata_demo [--seconds S] [--quick] [--servers N] [--dim D] [--keys N]
 *               [--batch N] [--read-batch N] [--transport sm|tcp]
 *
 * The parent starts N strata-server processes on 127.0.0.1 (tests/cluster.c)
 * and forks two workers, each with its own client:
 *   trainer    creates the table (Adagrad, lr 0.05), then loops: a batch of
 *              --batch Zipf(0.99) keys over --keys, strata_rtable_lookup
 *              with STRATA_LOOKUP_INIT_MISSING, strata_rtable_push of
 *              gradients 0.01 * row;
 *   inference  a read-only client looking up batches of --read-batch Zipf
 *              keys (flags 0), timing every request.
 * Both run --seconds from a common start. Workers report to the parent
 * through a pipe each (fixed-size demo_msg_t records, PIPE_BUF-atomic): a
 * READY record once connected, a PROGRESS record about once a second, a
 * FINAL record with totals, percentiles, client counters and status.
 * The parent prints a progress line on stderr about once a second and, at
 * the end, one JSON line per role and a "summary" line on stdout.
 *
 * Exit status: 0 only when both workers finished without an error and
 * every server exited 0 after SIGTERM; 1 otherwise; 130 when interrupted.
 *
 * Process rules: the parent never touches UCX (it forks only after the
 * servers are running and before any client exists). Workers leave only by
 * _exit (never running the parent's atexit handlers, which kill the
 * servers) and die with the parent (PR_SET_PDEATHSIG). Every exit path of
 * the parent kills and reaps the workers it started and stops the
 * cluster; every wait is bounded (client calls time out after 10 s, the
 * parent's waits after fixed deadlines).
 *
 * Threading: each process is single-threaded.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cluster.h"
#include "perf_util.h"
#include "strata.h"

#define DEMO_TABLE            "demo_emb"
#define DEMO_ZIPF_S           0.99
#define DEMO_TIMEOUT_MS       10000
#define DEMO_READY_DEADLINE_S 60.0 /**< connect + create + open, per worker */
#define DEMO_FINISH_GRACE_S   40.0 /**< after --seconds: a stuck call times out in 10 s */
#define DEMO_EXIT_DEADLINE_S  15.0 /**< FINAL sent -> process reaped */

/* ------------------------------------------------------------------------ */
/* Options                                                                  */
/* ------------------------------------------------------------------------ */

typedef struct demo_opts {
    double seconds;        /**< how long both roles run */
    uint32_t servers;      /**< strata-server processes */
    uint32_t dim;          /**< row width */
    uint64_t keys;         /**< Zipf keyspace (distinct keys) */
    uint32_t batch;        /**< trainer keys per batch */
    uint32_t read_batch;   /**< inference keys per batch */
    const char *transport; /**< "sm" or "tcp"; NULL = from UCX_TLS or default */
    char ucx_tls[128];     /**< UCX_TLS in effect (for the report) */
} demo_opts_t;

static void usage(FILE *f)
{
    fprintf(f, "usage: strata_demo [--seconds S] [--quick] [--servers N] [--dim D] [--keys N]\n"
               "                   [--batch N] [--read-batch N] [--transport sm|tcp]\n"
               "  Starts a local cluster of N strata-servers (default 2) and runs a trainer\n"
               "  (lookup with INIT_MISSING + Adagrad push, batches of --batch Zipf(0.99) keys,\n"
               "  default 4096 over --keys 2000000) beside a read-only inference reader\n"
               "  (batches of --read-batch, default 512) for --seconds (default 20; --quick: 5).\n"
               "  Progress on stderr each second; one JSON line per role and a summary on stdout.\n"
               "  UCX_TLS defaults to sm,self,tcp (tcp: tcp,self) and UCX_NET_DEVICES to lo\n"
               "  unless set; --transport overrides UCX_TLS.\n");
}

static int parse_u64(const char *name, const char *v, uint64_t lo, uint64_t hi, uint64_t *out)
{
    return perf_parse_u64("strata_demo", name, v, lo, hi, out);
}

static int parse_opts(int argc, char **argv, demo_opts_t *o)
{
    memset(o, 0, sizeof(*o));
    o->seconds = 20;
    o->servers = 2;
    o->dim = 64;
    o->keys = 2000000;
    o->batch = 4096;
    o->read_batch = 512;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            exit(0);
        }
        if (!strcmp(a, "--quick")) {
            o->seconds = 5;
            continue;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "strata_demo: unknown option or missing value: %s\n", a);
            usage(stderr);
            return -1;
        }
        const char *v = argv[++i];
        uint64_t u;
        if (!strcmp(a, "--seconds")) {
            char *end;
            double s = strtod(v, &end);
            if (end == v || *end || !(s > 0 && s <= 86400)) {
                fprintf(stderr, "strata_demo: --seconds %s: want a number in (0, 86400]\n", v);
                return -1;
            }
            o->seconds = s;
        } else if (!strcmp(a, "--servers")) {
            if (parse_u64(a, v, 1, CLUSTER_MAX, &u))
                return -1;
            o->servers = (uint32_t)u;
        } else if (!strcmp(a, "--dim")) {
            if (parse_u64(a, v, 1, 4096, &u))
                return -1;
            o->dim = (uint32_t)u;
        } else if (!strcmp(a, "--keys")) {
            if (parse_u64(a, v, 1, 1ull << 28, &u))
                return -1;
            o->keys = u;
        } else if (!strcmp(a, "--batch")) {
            if (parse_u64(a, v, 1, 65536, &u))
                return -1;
            o->batch = (uint32_t)u;
        } else if (!strcmp(a, "--read-batch")) {
            if (parse_u64(a, v, 1, 65536, &u))
                return -1;
            o->read_batch = (uint32_t)u;
        } else if (!strcmp(a, "--transport")) {
            if (strcmp(v, "sm") && strcmp(v, "tcp")) {
                fprintf(stderr, "strata_demo: --transport %s: want sm or tcp\n", v);
                return -1;
            }
            o->transport = v;
        } else {
            fprintf(stderr, "strata_demo: unknown option: %s\n", a);
            usage(stderr);
            return -1;
        }
    }
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Zipf keys (the clock, generator and sampler: perf_util.h)                */
/* ------------------------------------------------------------------------ */

/* The key of a Zipf-drawn rank (the table, built once in the parent
 * before the workers fork, is theirs to share), scattered over the u64
 * space (and so over shards) by a bijection. */
static uint64_t zipf_key(const perf_zipf_cdf_t *z, uint64_t *rng)
{
    return perf_mix64(perf_zipf_cdf_rank(z, perf_rand_u01(rng)) + 1);
}

/* ------------------------------------------------------------------------ */
/* Latency samples                                                          */
/* ------------------------------------------------------------------------ */

#define DEMO_LAT_MAX (64u << 20) /**< samples kept; later ones are dropped */

/* Percentiles (µs) p50, p90, p99, max of samples [from, l->n). Zeros when
 * there are none. */
static int lat_pct(perf_lat_t *l, size_t from, double out[4])
{
    size_t n = l->n - from;
    memset(out, 0, 4 * sizeof(double));
    if (n == 0)
        return 0;
    const uint64_t *s = perf_lat_sorted(l, from);
    if (!s)
        return -1;
    static const double q[3] = {0.50, 0.90, 0.99};
    for (int k = 0; k < 3; k++)
        out[k] = (double)perf_pct_sorted(s, n, q[k]) / 1000.0;
    out[3] = (double)s[n - 1] / 1000.0;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Worker -> parent records                                                 */
/* ------------------------------------------------------------------------ */

enum { ROLE_TRAINER = 0, ROLE_INFERENCE = 1, ROLE_COUNT = 2 };
static const char *const role_name[ROLE_COUNT] = {"trainer", "inference"};

enum { MSG_READY = 1, MSG_PROGRESS = 2, MSG_FINAL = 3 };

/* One record on a worker's pipe. PROGRESS records describe the window
 * since the previous one; FINAL records the whole run. */
typedef struct demo_msg {
    uint32_t type;               /**< MSG_* */
    int32_t status;              /**< FINAL: STRATA_OK or the failing call's status */
    double elapsed_s;            /**< since the start signal */
    double window_s;             /**< PROGRESS: window length */
    uint64_t batches;            /**< FINAL: total; PROGRESS: in window */
    uint64_t keys;               /**< FINAL: total; PROGRESS: in window */
    uint64_t rows_seen;          /**< keys answered CREATED (trainer) or FOUND
                                      (inference); a duplicate in a batch counts
                                      each time */
    double lat_us[2][4];         /**< [lookup, push][p50, p90, p99, max] */
    strata_client_stats_t stats; /**< FINAL: totals; PROGRESS: window deltas */
    char err[640];               /**< FINAL with an error: what failed */
} demo_msg_t;

_Static_assert(sizeof(demo_msg_t) <= PIPE_BUF, "records must be written atomically");

static int write_msg(int fd, const demo_msg_t *m)
{
    const char *p = (const char *)m;
    size_t left = sizeof(*m);
    while (left) {
        ssize_t w = write(fd, p, left);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        left -= (size_t)w;
    }
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Workers (child processes)                                                */
/* ------------------------------------------------------------------------ */

typedef struct demo_worker_args {
    int role; /**< ROLE_* */
    const demo_opts_t *opts;
    const cluster_t *cluster;
    const perf_zipf_cdf_t *zipf;
    int out_fd; /**< records to the parent */
    int go_fd;  /**< one byte from the parent starts the run */
} demo_worker_args_t;

/* Fill m as a FINAL error record for a failed call. */
static void fail_msg(demo_msg_t *m, strata_status_t st, const char *what)
{
    m->type = MSG_FINAL;
    m->status = st;
    snprintf(m->err, sizeof(m->err), "%s: %s: %s", what, strata_status_string(st),
             strata_last_error());
}

static strata_table_schema_t demo_schema(const demo_opts_t *o)
{
    strata_table_schema_t s;
    memset(&s, 0, sizeof(s));
    s.field_mask = STRATA_SCHEMA_FIELD_NAME | STRATA_SCHEMA_FIELD_DIM |
                   STRATA_SCHEMA_FIELD_CAPACITY | STRATA_SCHEMA_FIELD_OPTIMIZER |
                   STRATA_SCHEMA_FIELD_NSHARDS;
    s.name = DEMO_TABLE;
    s.dim = o->dim;
    s.capacity = o->keys * 2; /* every key fits twice over: no FULL */
    s.nshards = 2;            /* per server */
    s.optimizer.type = STRATA_OPT_ADAGRAD;
    s.optimizer.field_mask = STRATA_OPT_FIELD_LR;
    s.optimizer.lr = 0.05f;
    return s;
}

/* The body of a worker process; returns its exit status. */
static int worker_run(const demo_worker_args_t *w)
{
    const demo_opts_t *o = w->opts;
    const int trainer = w->role == ROLE_TRAINER;
    const uint32_t batch = trainer ? o->batch : o->read_batch;
    const size_t dim = o->dim;
    demo_msg_t m;
    memset(&m, 0, sizeof(m));
    strata_client_t *client = NULL;
    strata_rtable_t *table = NULL;
    perf_lat_t lat[2];
    memset(lat, 0, sizeof(lat));
    uint64_t *keys = malloc(batch * sizeof(uint64_t));
    float *rows = malloc(batch * dim * sizeof(float));
    float *grads = trainer ? malloc(batch * dim * sizeof(float)) : NULL;
    uint8_t *found = malloc(batch);
    strata_status_t st;
    if (!keys || !rows || !found || (trainer && !grads)) {
        m.type = MSG_FINAL;
        m.status = STRATA_ERR_NOMEM;
        snprintf(m.err, sizeof(m.err), "allocating batch buffers: out of memory");
        goto report;
    }

    st = cluster_client_connect(w->cluster, !trainer, DEMO_TIMEOUT_MS, &client);
    if (st != STRATA_OK) {
        fail_msg(&m, st, "strata_client_connect");
        goto report;
    }
    if (trainer) {
        strata_table_schema_t s = demo_schema(o);
        st = strata_client_create_table(client, &s);
        if (st != STRATA_OK) {
            fail_msg(&m, st, "strata_client_create_table");
            goto report;
        }
    }
    st = strata_client_open_table(client, DEMO_TABLE, &table);
    if (st != STRATA_OK) {
        fail_msg(&m, st, "strata_client_open_table");
        goto report;
    }
    m.type = MSG_READY;
    if (write_msg(w->out_fd, &m))
        goto out_quiet;
    char go;
    ssize_t r;
    do
        r = read(w->go_fd, &go, 1);
    while (r < 0 && errno == EINTR);
    if (r != 1)
        goto out_quiet; /* the parent gave up */

    uint64_t rng = 0x5eed0000u + (uint64_t)w->role * 0x1234567ull;
    const double t0 = perf_now_s();
    double t_win = t0, t_now = t0;
    uint64_t batches = 0, nkeys = 0, seen = 0, win_batches = 0, win_keys = 0;
    strata_client_stats_t s_win, s_now;
    strata_client_get_stats(client, &s_win);
    const uint32_t lookup_flags = trainer ? STRATA_LOOKUP_INIT_MISSING : 0;
    const uint8_t seen_code = trainer ? STRATA_ROW_CREATED : STRATA_ROW_FOUND;
    while (t_now - t0 < o->seconds) {
        for (uint32_t i = 0; i < batch; i++)
            keys[i] = zipf_key(w->zipf, &rng);
        uint64_t a = perf_now_ns();
        st = strata_rtable_lookup(table, keys, batch, rows, found, lookup_flags);
        uint64_t b = perf_now_ns();
        if (st != STRATA_OK) {
            fail_msg(&m, st, "strata_rtable_lookup");
            goto final;
        }
        for (uint32_t i = 0; i < batch; i++)
            seen += found[i] == seen_code;
        if (perf_lat_add(&lat[0], b - a, DEMO_LAT_MAX))
            goto nomem;
        if (trainer) {
            /* a synthetic gradient: finite, shrinks the row */
            for (size_t i = 0; i < (size_t)batch * dim; i++)
                grads[i] = 0.01f * rows[i];
            a = perf_now_ns();
            st = strata_rtable_push(table, keys, grads, batch);
            b = perf_now_ns();
            if (st != STRATA_OK) {
                fail_msg(&m, st, "strata_rtable_push");
                goto final;
            }
            if (perf_lat_add(&lat[1], b - a, DEMO_LAT_MAX))
                goto nomem;
        }
        batches++;
        nkeys += batch;
        win_batches++;
        win_keys += batch;
        t_now = perf_now_s();
        if (t_now - t_win >= 1.0) {
            demo_msg_t pm;
            memset(&pm, 0, sizeof(pm));
            pm.type = MSG_PROGRESS;
            pm.elapsed_s = t_now - t0;
            pm.window_s = t_now - t_win;
            pm.batches = win_batches;
            pm.keys = win_keys;
            pm.rows_seen = seen;
            for (int k = 0; k < 2; k++) {
                if (lat_pct(&lat[k], lat[k].mark, pm.lat_us[k]))
                    goto nomem;
                lat[k].mark = lat[k].n;
            }
            strata_client_get_stats(client, &s_now);
            perf_client_stats_delta(&s_now, &s_win, &pm.stats);
            s_win = s_now;
            if (write_msg(w->out_fd, &pm))
                goto out_quiet;
            t_win = t_now;
            win_batches = win_keys = 0;
        }
    }
    m.type = MSG_FINAL;
    m.status = STRATA_OK;
    goto final;
nomem:
    m.type = MSG_FINAL;
    m.status = STRATA_ERR_NOMEM;
    snprintf(m.err, sizeof(m.err), "recording latencies: out of memory");
final:
    m.elapsed_s = perf_now_s() - t0;
    m.batches = batches;
    m.keys = nkeys;
    m.rows_seen = seen;
    for (int k = 0; k < 2; k++)
        if (lat_pct(&lat[k], 0, m.lat_us[k]) && m.status == STRATA_OK) {
            m.status = STRATA_ERR_NOMEM;
            snprintf(m.err, sizeof(m.err), "sorting latencies: out of memory");
        }
    strata_client_get_stats(client, &m.stats);
report:
    write_msg(w->out_fd, &m);
out_quiet:
    if (client)
        strata_client_destroy(client);
    for (int k = 0; k < 2; k++)
        perf_lat_free(&lat[k]);
    free(keys);
    free(rows);
    free(grads);
    free(found);
    return m.type == MSG_FINAL && m.status == STRATA_OK ? 0 : 1;
}

/* ------------------------------------------------------------------------ */
/* Parent: workers, progress, report                                        */
/* ------------------------------------------------------------------------ */

typedef struct demo_child {
    pid_t pid;                    /**< 0 once reaped (or never started) */
    int out_fd;                   /**< read end of its record pipe; -1 after EOF */
    int go_fd;                    /**< write end of its start pipe; -1 when closed */
    int exit_status;              /**< waitpid status once reaped */
    int ready;                    /**< READY received */
    int final;                    /**< FINAL received */
    int eof;                      /**< pipe closed */
    demo_msg_t last;              /**< latest PROGRESS */
    int have_progress;            /**< last is valid */
    int fresh;                    /**< last not printed yet */
    double last_t;                /**< when last arrived (perf_now_s) */
    demo_msg_t result;            /**< the FINAL record */
    char buf[sizeof(demo_msg_t)]; /**< partial record */
    size_t have;                  /**< bytes in buf */
} demo_child_t;

static demo_child_t g_child[ROLE_COUNT];
static volatile sig_atomic_t g_signal;

static void on_signal(int sig)
{
    g_signal = sig;
}

/* Kill and reap every worker still running. Safe to call twice. */
static void children_kill(void)
{
    for (int k = 0; k < ROLE_COUNT; k++) {
        demo_child_t *c = &g_child[k];
        if (c->pid > 0) {
            kill(c->pid, SIGKILL);
            waitpid(c->pid, &c->exit_status, 0);
            c->pid = 0;
        }
        if (c->go_fd >= 0) {
            close(c->go_fd);
            c->go_fd = -1;
        }
        if (c->out_fd >= 0) {
            close(c->out_fd);
            c->out_fd = -1;
        }
    }
}

static int child_start(int role, const demo_opts_t *o, const cluster_t *cl,
                       const perf_zipf_cdf_t *z)
{
    demo_child_t *c = &g_child[role];
    int outp[2], gop[2];
    if (pipe(outp))
        goto fail;
    if (pipe(gop)) {
        close(outp[0]);
        close(outp[1]);
        goto fail;
    }
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        close(outp[0]);
        close(outp[1]);
        close(gop[0]);
        close(gop[1]);
        goto fail;
    }
    if (pid == 0) {
        /* die with the parent, whatever kills it */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() == 1)
            _exit(1);
        signal(SIGINT, SIG_DFL);
        signal(SIGTERM, SIG_DFL);
        signal(SIGHUP, SIG_DFL);
        for (int k = 0; k < ROLE_COUNT; k++) {
            if (g_child[k].out_fd >= 0)
                close(g_child[k].out_fd);
            if (g_child[k].go_fd >= 0)
                close(g_child[k].go_fd);
        }
        close(outp[0]);
        close(gop[1]);
        cluster_watchdog_forget();
        demo_worker_args_t w = {
            .role = role, .opts = o, .cluster = cl, .zipf = z, .out_fd = outp[1], .go_fd = gop[0]};
        _exit(worker_run(&w));
    }
    close(outp[1]);
    close(gop[0]);
    c->pid = pid;
    c->out_fd = outp[0];
    c->go_fd = gop[1];
    return 0;
fail:
    fprintf(stderr, "strata_demo: starting the %s: %s\n", role_name[role], strerror(errno));
    return -1;
}

/* Read what a worker has sent; returns -1 on a malformed stream. */
static int child_read(demo_child_t *c)
{
    for (;;) {
        ssize_t r = read(c->out_fd, c->buf + c->have, sizeof(c->buf) - c->have);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0 && errno == EAGAIN)
            return 0;
        if (r <= 0) {
            close(c->out_fd);
            c->out_fd = -1;
            c->eof = 1;
            return 0;
        }
        c->have += (size_t)r;
        if (c->have < sizeof(c->buf))
            return 0; /* rest of the record on the next poll */
        c->have = 0;
        demo_msg_t m;
        memcpy(&m, c->buf, sizeof(m));
        switch (m.type) {
        case MSG_READY:
            c->ready = 1;
            break;
        case MSG_PROGRESS:
            c->last = m;
            c->have_progress = 1;
            c->fresh = 1;
            c->last_t = perf_now_s();
            break;
        case MSG_FINAL:
            c->result = m;
            c->final = 1;
            break;
        default:
            return -1;
        }
        return 0; /* one record per poll wake-up is plenty */
    }
}

/* Poll the workers' pipes for up to timeout_ms. -1: interrupted or broken. */
static int children_poll(int timeout_ms)
{
    struct pollfd pfd[ROLE_COUNT];
    int idx[ROLE_COUNT], n = 0;
    for (int k = 0; k < ROLE_COUNT; k++)
        if (g_child[k].out_fd >= 0) {
            pfd[n].fd = g_child[k].out_fd;
            pfd[n].events = POLLIN;
            pfd[n].revents = 0;
            idx[n++] = k;
        }
    if (n == 0) {
        struct timespec ts = {timeout_ms / 1000, (long)(timeout_ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
        return g_signal ? -1 : 0;
    }
    int r = poll(pfd, (nfds_t)n, timeout_ms);
    if (g_signal)
        return -1;
    if (r < 0)
        return errno == EINTR ? 0 : -1;
    for (int i = 0; i < n; i++)
        if (pfd[i].revents & (POLLIN | POLLHUP | POLLERR))
            if (child_read(&g_child[idx[i]])) {
                fprintf(stderr, "strata_demo: garbled record from the %s\n", role_name[idx[i]]);
                return -1;
            }
    return 0;
}

/* A worker that closed its pipe without FINAL, or died: what it left. */
static void child_explain(int role)
{
    demo_child_t *c = &g_child[role];
    if (c->final && c->result.status != STRATA_OK)
        fprintf(stderr, "strata_demo: %s failed: %s\n", role_name[role], c->result.err);
    else if (!c->final)
        fprintf(stderr, "strata_demo: %s ended without a result%s\n", role_name[role],
                c->eof ? " (process exited)" : " (deadline passed; killed)");
}

/* Wait until every started worker has said READY (or failed). */
static int children_wait_ready(int nroles)
{
    double deadline = perf_now_s() + DEMO_READY_DEADLINE_S;
    for (;;) {
        int all = 1;
        for (int k = 0; k < nroles; k++) {
            demo_child_t *c = &g_child[k];
            if (c->final || c->eof) {
                child_explain(k);
                return -1;
            }
            all &= c->ready;
        }
        if (all)
            return 0;
        if (perf_now_s() > deadline) {
            fprintf(stderr, "strata_demo: workers not connected after %.0f s\n",
                    DEMO_READY_DEADLINE_S);
            return -1;
        }
        if (children_poll(200))
            return -1;
    }
}

static double ratio(uint64_t a, uint64_t b)
{
    return b ? (double)a / (double)b : 0.0;
}

/* One role's part of the progress line: its last window's figures, or
 * why there are none. */
static void progress_part(int role, double now, char *buf, size_t len)
{
    const demo_child_t *c = &g_child[role];
    const demo_msg_t *m = &c->last;
    char rate[32];
    int off = snprintf(buf, len, "%s ", role_name[role]);
    if (off < 0 || (size_t)off >= len)
        return;
    buf += off;
    len -= (size_t)off;
    if (c->final) {
        snprintf(buf, len, "done");
        return;
    }
    if (!c->have_progress) {
        snprintf(buf, len, "starting");
        return;
    }
    if (now - c->last_t > 2.0) {
        snprintf(buf, len, "(no report for %.0f s: in a slow call)", now - c->last_t);
        return;
    }
    perf_fmt_rate(rate, sizeof(rate), (double)m->keys / m->window_s);
    if (role == ROLE_TRAINER)
        snprintf(buf, len, "%s keys/s (lookup p50 %.0f us, push p50 %.0f us)", rate,
                 m->lat_us[0][0], m->lat_us[1][0]);
    else
        snprintf(buf, len,
                 "%s keys/s p50 %.0f us p99 %.0f us, one-sided hits %.1f%% (+ index %.1f%%)", rate,
                 m->lat_us[0][0], m->lat_us[0][2],
                 100.0 * ratio(m->stats.onesided_hits, m->stats.unique_keys),
                 100.0 * ratio(m->stats.onesided_index, m->stats.unique_keys));
}

static void print_progress(double elapsed, double now)
{
    char t[160], r[160];
    progress_part(ROLE_TRAINER, now, t, sizeof(t));
    progress_part(ROLE_INFERENCE, now, r, sizeof(r));
    fprintf(stderr, "[%5.1fs] %s | %s\n", elapsed, t, r);
}

static void print_lat_json(const char *name, const double v[4])
{
    printf("\"%s\":{\"p50\":%.1f,\"p90\":%.1f,\"p99\":%.1f,\"max\":%.1f}", name, v[0], v[1], v[2],
           v[3]);
}

static void print_config_json(const demo_opts_t *o)
{
    printf("\"servers\":%u,\"transport\":\"%s\",\"dim\":%u,\"keyspace\":%" PRIu64
           ",\"zipf\":%.2f,\"seconds\":%.1f",
           o->servers, o->ucx_tls, o->dim, o->keys, DEMO_ZIPF_S, o->seconds);
}

static void print_role_json(int role, const demo_opts_t *o)
{
    const demo_msg_t *m = &g_child[role].result;
    const int trainer = role == ROLE_TRAINER;
    const strata_client_stats_t *s = &m->stats;
    printf("{\"role\":\"%s\",", role_name[role]);
    print_config_json(o);
    printf(",\"batch\":%u,\"ok\":%s,\"elapsed_s\":%.2f,\"batches\":%" PRIu64 ",\"keys\":%" PRIu64
           ",\"keys_per_s\":%.0f,",
           trainer ? o->batch : o->read_batch, m->status == STRATA_OK ? "true" : "false",
           m->elapsed_s, m->batches, m->keys,
           (double)m->keys / (m->elapsed_s > 0 ? m->elapsed_s : 1));
    print_lat_json(trainer ? "lookup_init_us" : "lookup_us", m->lat_us[0]);
    if (trainer) {
        printf(",");
        print_lat_json("push_us", m->lat_us[1]);
        printf(",\"keys_created\":%" PRIu64, m->rows_seen);
    } else {
        printf(",\"found_ratio\":%.4f", ratio(m->rows_seen, m->keys));
    }
    printf(",\"client\":{\"lookups\":%" PRIu64 ",\"unique_keys\":%" PRIu64
           ",\"onesided_hits\":%" PRIu64 ",\"onesided_index\":%" PRIu64 ",\"rpc_keys\":%" PRIu64
           ",\"torn_retries\":%" PRIu64 ",\"stale_locations\":%" PRIu64 ",\"pushes\":%" PRIu64
           ",\"rpcs\":%" PRIu64 ",\"relayouts\":%" PRIu64 "}",
           s->lookups, s->unique_keys, s->onesided_hits, s->onesided_index, s->rpc_keys,
           s->torn_retries, s->stale_locations, s->pushes, s->rpcs, s->relayouts);
    if (m->status != STRATA_OK) {
        printf(",\"error\":\"");
        for (const char *c = m->err; *c; c++) /* JSON-escape the message */
            if (*c == '"' || *c == '\\')
                printf("\\%c", *c);
            else if ((unsigned char)*c < 0x20)
                printf("\\u%04x", (unsigned char)*c);
            else
                putchar(*c);
        printf("\"");
    }
    printf("}\n");
}

/* Set UCX_TLS / UCX_NET_DEVICES before any server or client starts. */
static void setup_env(demo_opts_t *o)
{
    if (o->transport)
        setenv("UCX_TLS", strcmp(o->transport, "tcp") ? "sm,self,tcp" : "tcp,self", 1);
    else
        setenv("UCX_TLS", "sm,self,tcp", 0);
    setenv("UCX_NET_DEVICES", "lo", 0);
    snprintf(o->ucx_tls, sizeof(o->ucx_tls), "%s", getenv("UCX_TLS"));
    for (char *c = o->ucx_tls; *c; c++) /* keep the JSON plain */
        if (*c == '"' || *c == '\\' || (unsigned char)*c < 0x20)
            *c = '?';
}

int main(int argc, char **argv)
{
    demo_opts_t o;
    if (parse_opts(argc, argv, &o))
        return 2;
    setup_env(&o);
    for (int k = 0; k < ROLE_COUNT; k++) {
        g_child[k].out_fd = -1;
        g_child[k].go_fd = -1;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    sigaction(SIGQUIT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    int rc = 1, cluster_up = 0, servers_ok = 0;
    perf_zipf_cdf_t zipf = {0};
    cluster_t cl;
    fprintf(stderr,
            "strata_demo: %u servers, UCX_TLS=%s, table dim %u, capacity %" PRIu64
            ", Adagrad lr 0.05; trainer batch %u, inference batch %u, Zipf(%.2f) over %" PRIu64
            " keys, %.0f s\n",
            o.servers, o.ucx_tls, o.dim, o.keys * 2, o.batch, o.read_batch, DEMO_ZIPF_S, o.keys,
            o.seconds);
    if (perf_zipf_cdf_init(&zipf, o.keys, DEMO_ZIPF_S)) {
        fprintf(stderr, "strata_demo: Zipf table of %" PRIu64 " keys: out of memory\n", o.keys);
        goto out;
    }
    if (cluster_watchdog_start(NULL, NULL)) {
        fprintf(stderr, "strata_demo: starting the watchdog: %s\n", strerror(errno));
        goto out;
    }
    if (cluster_start(&cl, o.servers, NULL) != 0) {
        fprintf(stderr,
                "strata_demo: could not start the cluster (server binary: "
                "STRATA_SERVER_BIN=%s)\n",
                getenv("STRATA_SERVER_BIN") ? getenv("STRATA_SERVER_BIN") : STRATA_SERVER_BIN);
        goto out;
    }
    cluster_up = 1;
    fprintf(stderr, "strata_demo: cluster up at %s (logs in %s)\n", cl.servers, cl.dir);

    /* the trainer creates the table; the reader opens it once it exists */
    if (child_start(ROLE_TRAINER, &o, &cl, &zipf) || children_wait_ready(ROLE_TRAINER + 1))
        goto out_children;
    if (child_start(ROLE_INFERENCE, &o, &cl, &zipf) || children_wait_ready(ROLE_COUNT))
        goto out_children;
    for (int k = 0; k < ROLE_COUNT; k++) {
        if (write(g_child[k].go_fd, "g", 1) != 1) {
            fprintf(stderr, "strata_demo: starting the %s: %s\n", role_name[k], strerror(errno));
            goto out_children;
        }
        close(g_child[k].go_fd);
        g_child[k].go_fd = -1;
    }

    const double t0 = perf_now_s();
    double last_line = t0;
    for (;;) {
        int done = 1;
        for (int k = 0; k < ROLE_COUNT; k++) {
            demo_child_t *c = &g_child[k];
            if (c->eof && !c->final) {
                child_explain(k);
                goto out_children;
            }
            if (c->final && c->result.status != STRATA_OK) {
                child_explain(k); /* one role failed: stop the other too */
                goto out_children;
            }
            done &= c->final;
        }
        if (done)
            break;
        double t = perf_now_s();
        if (t - t0 > o.seconds + DEMO_FINISH_GRACE_S) {
            for (int k = 0; k < ROLE_COUNT; k++)
                if (!g_child[k].final)
                    child_explain(k);
            goto out_children;
        }
        /* a line when both roles have reported their last second, or
         * (one of them in a slow call) every 1.5 s regardless */
        if ((g_child[ROLE_TRAINER].fresh && g_child[ROLE_INFERENCE].fresh) ||
            t - last_line >= 1.5) {
            print_progress(t - t0, t);
            last_line = t;
            for (int k = 0; k < ROLE_COUNT; k++)
                g_child[k].fresh = 0;
        }
        if (children_poll(100))
            goto out_children;
    }

    /* both FINAL: reap them (bounded) */
    double deadline = perf_now_s() + DEMO_EXIT_DEADLINE_S;
    int workers_ok = 1;
    for (int k = 0; k < ROLE_COUNT; k++) {
        demo_child_t *c = &g_child[k];
        while (c->pid > 0) {
            pid_t w = waitpid(c->pid, &c->exit_status, WNOHANG);
            if (w == c->pid) {
                c->pid = 0;
                break;
            }
            if (w < 0 && errno != EINTR) {
                c->pid = 0;
                c->exit_status = -1;
                break;
            }
            if (g_signal || perf_now_s() > deadline) {
                fprintf(stderr, "strata_demo: %s did not exit after its result; killing it\n",
                        role_name[k]);
                kill(c->pid, SIGKILL);
                waitpid(c->pid, &c->exit_status, 0);
                c->pid = 0;
                c->exit_status = -1;
                break;
            }
            struct timespec ts = {0, 20000000};
            nanosleep(&ts, NULL);
        }
        if (c->exit_status == -1 || !WIFEXITED(c->exit_status) ||
            WEXITSTATUS(c->exit_status) != 0) {
            fprintf(stderr, "strata_demo: %s exited abnormally (status 0x%x)\n", role_name[k],
                    (unsigned)c->exit_status);
            workers_ok = 0;
        }
    }
    children_kill(); /* closes the pipes */

    fprintf(stderr, "strata_demo: stopping the cluster\n");
    servers_ok = cluster_stop(&cl) == 0;
    cluster_watchdog_release();
    cluster_up = 0;
    if (!servers_ok)
        fprintf(stderr, "strata_demo: a server did not exit 0; logs kept in %s\n", cl.dir);

    for (int k = 0; k < ROLE_COUNT; k++)
        print_role_json(k, &o);
    const demo_msg_t *t = &g_child[ROLE_TRAINER].result, *r = &g_child[ROLE_INFERENCE].result;
    const strata_client_stats_t *rs = &r->stats;
    int ok = workers_ok && servers_ok && !g_signal;
    printf("{\"role\":\"summary\",");
    print_config_json(&o);
    printf(",\"ok\":%s,\"servers_exit_ok\":%s,\"trainer_keys_per_s\":%.0f,"
           "\"trainer_lookup_p99_us\":%.1f,\"trainer_push_p99_us\":%.1f,"
           "\"inference_keys_per_s\":%.0f,"
           "\"inference_p50_us\":%.1f,\"inference_p99_us\":%.1f,"
           "\"inference_onesided_ratio\":%.4f,\"inference_found_ratio\":%.4f,"
           "\"trainer_keys_created\":%" PRIu64 "}\n",
           ok ? "true" : "false", servers_ok ? "true" : "false",
           (double)t->keys / (t->elapsed_s > 0 ? t->elapsed_s : 1), t->lat_us[0][2],
           t->lat_us[1][2], (double)r->keys / (r->elapsed_s > 0 ? r->elapsed_s : 1),
           r->lat_us[0][0], r->lat_us[0][2],
           ratio(rs->onesided_hits + rs->onesided_index, rs->unique_keys),
           ratio(r->rows_seen, r->keys), t->rows_seen);
    fflush(stdout);
    rc = ok ? 0 : 1;
    goto out;

out_children:
    children_kill();
out:
    children_kill();
    if (cluster_up) {
        fprintf(stderr, "strata_demo: stopping the cluster\n");
        if (cluster_stop(&cl) != 0)
            fprintf(stderr, "strata_demo: a server did not exit 0; logs kept in %s\n", cl.dir);
    }
    cluster_watchdog_release();
    perf_zipf_cdf_free(&zipf);
    if (g_signal) {
        fprintf(stderr, "strata_demo: interrupted by signal %d\n", (int)g_signal);
        rc = 130;
    }
    return rc;
}
