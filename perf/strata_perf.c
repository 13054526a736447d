/*
 * perf/strata_perf.c — strata-perf, the benchmark harness for a Strata
 * cluster: many client processes, one workload at a time, every
 * combination of (dim, batch, clients) measured as one point and reported
 * as JSON lines, CSV and PNG plots (perf_report.h); docs/perf.md.
 *
 *   strata-perf [--cluster FILE | --local sm|tcp|netns] [--servers N]
 *               [--workload LIST] [--dist D] [--dims LIST] [--batches LIST]
 *               [--clients LIST] [--tables N] [--keys N] [--dram-budget ROWS]
 *               [--seconds S | --ops N] [--warmup S] [--out DIR]
 *               [--peers LIST] [--no-plots] [--secret-file F] [--quick] ...
 *
 * Roles (fork mode, the default):
 *   coordinator  this process. It starts the local cluster (--local), a
 *                watchdog, and an admin process; it never touches UCX, so it
 *                may fork at any time. For each point it forks `clients`
 *                client processes, releases them together, takes the
 *                servers' counters before and after the timed window
 *                (through the admin), merges the clients' part files and
 *                prints the point.
 *   admin        one process with its own client: drops and creates the
 *                tables, and snapshots the servers' table counters and CPU
 *                seconds on request (fixed-size records over two pipes).
 *   client       one per (point, rank): connects its own client, opens the
 *                tables, builds its key stream, reports READY in a shared
 *                page, waits for the common start instant, runs the warm-up
 *                and the timed window recording every request's latency in
 *                an hdr_hist_t, writes <out>/part.<point>.<rank> and leaves
 *                by _exit (never running the coordinator's atexit handlers,
 *                which stop the cluster).
 *   watchdog     forked before anything else: if the coordinator dies
 *                without saying goodbye (SIGKILL, a crash) it stops the
 *                servers and removes the network namespaces.
 * Progress: a MAP_SHARED anonymous page holds the common start instant and
 * one slot per client (state, keys done, errors, end of its last request,
 * error text); the coordinator reads it every 50 ms and prints a progress
 * line on stderr about once a second. A point's seconds run from the
 * window's start to the end of the last client's last request.
 *
 * MPI mode: run under mpirun (one rank per client) in a build with MPI,
 * against --cluster. Rank 0 coordinates (tables, server counters) and is
 * also a client (it snapshots the servers just before and after its own
 * window); a point with c clients uses ranks 0..c-1; all ranks meet at a
 * barrier before each window and after it, and each rank's part
 * (perf_part_write to a temporary file, read back) is gathered to rank 0
 * with MPI_Gatherv. No shared page across hosts: rank 0's progress line
 * shows its own rate.
 *
 * Workloads (per request, keys drawn from --dist over --keys; the key of
 * rank r is mix64(r + 1), a bijection that spreads ranks over shards):
 *   serve  read-only lookup (a read-only client: one-sided where UCX can)
 *   train  lookup with STRATA_LOOKUP_INIT_MISSING, then a push of the
 *          gradient 0.01 * row for the same keys; one request = both calls
 *          (its latency: the two calls, not the gradient arithmetic)
 *   mixed  with 2+ clients, even ranks serve and odd ranks train (readers
 *          beside writers, as inference beside training); a single client
 *          alternates one serve request and one train step
 *   load   bulk load: creating lookups over the whole keyspace of every
 *          table in batches; the clients split the batches
 * Tables: perf_d<dim>_t<i>, i < --tables, Adagrad lr 0.01, created by the
 * harness (dropped first), capacity --dram-budget (LRU eviction) or
 * keys * 1.25 (no eviction), each loaded with the whole keyspace; a
 * client's j-th request of a kind goes to table j % tables. Each client
 * pre-draws its key stream (stream_len) before it says READY, so drawing
 * keys costs nothing in the window.
 * Peers (--peers): one client, the serve workload, the key stream of
 * Strata's client 0, values of 4 * dim bytes; Redis and memcached through
 * peer_kv.h, RocksDB through peer_rocksdb.h.
 *
 * Exit status: 0 when every point ran; 1 when one failed (the points
 * measured before it are still written); 2 for a usage error; 77 when
 * --local netns cannot run here (not root, no ip); 130 when interrupted.
 *
 * Threading: every process is single-threaded.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cluster.h"
#include "hdr.h"
#include "peer_kv.h"
#include "peer_rocksdb.h"
#include "perf_mpi.h"
#include "perf_report.h"
#include "perf_util.h"
#include "strata.h"
#include "strata_config.h"

#ifndef STRATA_PERF_HAVE_PEER_KV
#define STRATA_PERF_HAVE_PEER_KV 0
#endif

#define PERF_LIST_MAX         32         /**< entries in --dims, --batches, --clients */
#define PERF_CLIENTS_MAX      256        /**< client processes in one point */
#define PERF_TABLES_MAX       64         /**< --tables */
#define PERF_BATCH_MAX        65536      /**< keys per request */
#define PERF_STREAM_MIN       (1u << 20) /**< pre-drawn keys per client, cycled: */
#define PERF_STREAM_MAX       (1u << 22) /**< 2 x the keyspace within these bounds */
#define PERF_TIMEOUT_MS       10000      /**< per client call */
#define PERF_READY_DEADLINE_S 60.0       /**< connect + open + key stream */
#define PERF_FINISH_GRACE_S   30.0       /**< past the window: a stuck call times out */
#define PERF_STALL_S          30.0       /**< --ops / load: no progress for this long fails */
#define PERF_NETNS_NET        "10.78.0"  /**< --local netns subnet, /24 */
#define PERF_NETNS_PORT       13337

/* ------------------------------------------------------------------------ */
/* Options                                                                  */
/* ------------------------------------------------------------------------ */

enum { WL_SERVE, WL_TRAIN, WL_MIXED, WL_LOAD, WL_COUNT };
static const char *const wl_name[WL_COUNT] = {"serve", "train", "mixed", "load"};

enum { PEER_REDIS = 1, PEER_MEMCACHED = 2, PEER_ROCKSDB = 4 };

enum { DIST_UNIFORM, DIST_ZIPF, DIST_HOT };

typedef struct perf_dist {
    int kind;        /**< DIST_* */
    double s;        /**< Zipf exponent */
    double hot_frac; /**< hot set: fraction of the keyspace */
    double hot_prob; /**< hot set: fraction of the requests' keys */
    char name[32];   /**< as given, for the report */
} perf_dist_t;

typedef struct perf_opts {
    const char *cluster_file; /**< --cluster (borrowed from argv, as every string here) */
    const char *local;        /**< --local sm|tcp|netns, or NULL */
    uint32_t servers;         /**< --servers (local) */
    int workloads[WL_COUNT];  /**< WL_* in the order given */
    uint32_t nworkloads;      /**< entries in workloads */
    perf_dist_t dist;         /**< --dist */
    uint32_t dims[PERF_LIST_MAX], ndims;       /**< --dims */
    uint32_t batches[PERF_LIST_MAX], nbatches; /**< --batches */
    uint32_t clients[PERF_LIST_MAX], nclients; /**< --clients */
    int clients_given;       /**< --clients on the command line (MPI default: world size) */
    uint32_t tables;         /**< --tables per dim */
    uint64_t keys;           /**< keyspace */
    uint64_t dram_budget;    /**< rows per table, LRU; 0: keys * 1.25, no eviction */
    double seconds;          /**< timed window; ignored when ops > 0 */
    uint64_t ops;            /**< requests per client in the window; 0: use seconds */
    double warmup;           /**< untimed seconds before the window */
    const char *out;         /**< output directory */
    int peers;               /**< PEER_* bits */
    int plots;               /**< 0: --no-plots */
    const char *secret_file; /**< --secret-file */
    int read_mode;           /**< strata_read_mode_t */
    uint64_t seed;           /**< key streams' seed */
    int hold;                /**< --hold: serve the local cluster until a signal */
    char transport[32];      /**< point label: sm, tcp, netns, cluster */
} perf_opts_t;

static void usage(FILE *f)
{
    fprintf(f,
            "usage: strata-perf (--cluster FILE | --local sm|tcp|netns) [options]\n"
            "  --cluster FILE        a running cluster (\"server HOST:PORT\" lines, secret_file)\n"
            "  --local sm|tcp|netns  start --servers N (default 2) strata-servers here: shared\n"
            "                        memory, TCP on lo, or TCP across network namespaces (root)\n"
            "  --workload LIST       serve,train,mixed,load (default serve,train)\n"
            "  --dist D              uniform | zipf:ALPHA | hot:FRAC:PROB (default zipf:0.99)\n"
            "  --dims LIST           row widths (default 64)\n"
            "  --batches LIST        keys per request (default 1,16,256,1024)\n"
            "  --clients LIST        client processes (default 1,2; under MPI: the world size)\n"
            "  --tables N            tables per dim, requests round-robin (default 1)\n"
            "  --keys N              keyspace (default 1000000)\n"
            "  --dram-budget ROWS    table capacity with LRU eviction (default keys*1.25, none)\n"
            "  --seconds S | --ops N timed window, or requests per client (default 10 s)\n"
            "  --warmup S            untimed seconds first (default 1)\n"
            "  --read-mode M         auto | onesided | rpc (default auto)\n"
            "  --out DIR             results.json, results.csv, PNGs (default ./strata-perf-out)\n"
            "  --peers LIST          redis,memcached,rocksdb on the serve workload (if installed)\n"
            "  --no-plots            no PNGs\n"
            "  --secret-file F       the cluster's secret (default: the cluster file's)\n"
            "  --seed N              key streams' seed (default 1)\n"
            "  --quick               serve,train; batches 16,1024; clients 1,2; 2 s windows,\n"
            "                        0.5 s warm-up, 100000 keys (later options override)\n"
            "  --hold                with --local: write DIR/cluster, keep the cluster up until\n"
            "                        SIGINT/SIGTERM (for mpirun ... --cluster DIR/cluster)\n"
            "mixed: with 2+ clients even ranks serve and odd ranks train; one client alternates.\n"
            "Under mpirun (a build with MPI) each rank is one client and rank 0 coordinates.\n");
}

static int parse_u64(const char *name, const char *v, uint64_t lo, uint64_t hi, uint64_t *out)
{
    return perf_parse_u64("strata-perf", name, v, lo, hi, out);
}

static int parse_double(const char *name, const char *v, double lo, double hi, double *out)
{
    return perf_parse_double("strata-perf", name, v, lo, hi, out);
}

static int parse_list(const char *name, const char *v, uint64_t lo, uint64_t hi, uint32_t *out,
                      uint32_t *n)
{
    char buf[512];
    snprintf(buf, sizeof(buf), "%s", v);
    *n = 0;
    char *save = NULL;
    for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        uint64_t x;
        if (*n == PERF_LIST_MAX) {
            fprintf(stderr, "strata-perf: %s: at most %d values\n", name, PERF_LIST_MAX);
            return -1;
        }
        if (parse_u64(name, t, lo, hi, &x))
            return -1;
        out[(*n)++] = (uint32_t)x;
    }
    if (*n == 0) {
        fprintf(stderr, "strata-perf: %s: empty list\n", name);
        return -1;
    }
    return 0;
}

static int parse_dist(const char *v, perf_dist_t *d)
{
    memset(d, 0, sizeof(*d));
    snprintf(d->name, sizeof(d->name), "%s", v);
    if (!strcmp(v, "uniform")) {
        d->kind = DIST_UNIFORM;
        return 0;
    }
    char *end;
    if (!strncmp(v, "zipf:", 5)) {
        d->kind = DIST_ZIPF;
        d->s = strtod(v + 5, &end);
        if (end != v + 5 && !*end && d->s > 0 && d->s <= 10)
            return 0;
    } else if (!strncmp(v, "hot:", 4)) {
        d->kind = DIST_HOT;
        d->hot_frac = strtod(v + 4, &end);
        if (*end == ':') {
            const char *p = end + 1;
            d->hot_prob = strtod(p, &end);
            if (end != p && !*end && d->hot_frac > 0 && d->hot_frac <= 1 && d->hot_prob >= 0 &&
                d->hot_prob <= 1)
                return 0;
        }
    }
    fprintf(stderr,
            "strata-perf: --dist %s: want uniform, zipf:ALPHA (0 < ALPHA <= 10) or "
            "hot:FRAC:PROB (0 < FRAC <= 1, 0 <= PROB <= 1)\n",
            v);
    return -1;
}

static int parse_workloads(const char *v, perf_opts_t *o)
{
    char buf[128];
    snprintf(buf, sizeof(buf), "%s", v);
    o->nworkloads = 0;
    char *save = NULL;
    for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        int w = -1;
        for (int k = 0; k < WL_COUNT; k++)
            if (!strcmp(t, wl_name[k]))
                w = k;
        if (w < 0) {
            fprintf(stderr, "strata-perf: --workload %s: want serve, train, mixed or load\n", t);
            return -1;
        }
        for (uint32_t k = 0; k < o->nworkloads; k++)
            if (o->workloads[k] == w)
                w = -1;
        if (w >= 0)
            o->workloads[o->nworkloads++] = w;
    }
    if (!o->nworkloads) {
        fprintf(stderr, "strata-perf: --workload: empty list\n");
        return -1;
    }
    return 0;
}

static int parse_peers(const char *v, int *mask)
{
    char buf[128];
    snprintf(buf, sizeof(buf), "%s", v);
    *mask = 0;
    char *save = NULL;
    for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        if (!strcmp(t, "redis"))
            *mask |= PEER_REDIS;
        else if (!strcmp(t, "memcached"))
            *mask |= PEER_MEMCACHED;
        else if (!strcmp(t, "rocksdb"))
            *mask |= PEER_ROCKSDB;
        else {
            fprintf(stderr, "strata-perf: --peers %s: want redis, memcached, rocksdb\n", t);
            return -1;
        }
    }
    return 0;
}

static void opts_defaults(perf_opts_t *o, int quick)
{
    memset(o, 0, sizeof(*o));
    o->servers = 2;
    o->workloads[0] = WL_SERVE;
    o->workloads[1] = WL_TRAIN;
    o->nworkloads = 2;
    parse_dist("zipf:0.99", &o->dist);
    o->dims[0] = 64;
    o->ndims = 1;
    static const uint32_t batches[4] = {1, 16, 256, 1024};
    memcpy(o->batches, batches, sizeof(batches));
    o->nbatches = 4;
    o->clients[0] = 1;
    o->clients[1] = 2;
    o->nclients = 2;
    o->tables = 1;
    o->keys = 1000000;
    o->seconds = 10;
    o->warmup = 1;
    o->out = "strata-perf-out";
    o->plots = 1;
    o->read_mode = STRATA_READ_AUTO;
    o->seed = 1;
    if (quick) {
        o->batches[0] = 16;
        o->batches[1] = 1024;
        o->nbatches = 2;
        o->seconds = 2;
        o->warmup = 0.5;
        o->keys = 100000;
    }
}

static int parse_opts(int argc, char **argv, perf_opts_t *o)
{
    int quick = 0;
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--quick"))
            quick = 1;
    opts_defaults(o, quick);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        uint64_t u;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            exit(0);
        }
        if (!strcmp(a, "--quick"))
            continue;
        if (!strcmp(a, "--no-plots")) {
            o->plots = 0;
            continue;
        }
        if (!strcmp(a, "--hold")) {
            o->hold = 1;
            continue;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "strata-perf: unknown option or missing value: %s\n", a);
            usage(stderr);
            return -1;
        }
        const char *v = argv[++i];
        if (!strcmp(a, "--cluster")) {
            o->cluster_file = v;
        } else if (!strcmp(a, "--local")) {
            if (strcmp(v, "sm") && strcmp(v, "tcp") && strcmp(v, "netns")) {
                fprintf(stderr, "strata-perf: --local %s: want sm, tcp or netns\n", v);
                return -1;
            }
            o->local = v;
        } else if (!strcmp(a, "--servers")) {
            if (parse_u64(a, v, 1, CLUSTER_MAX, &u))
                return -1;
            o->servers = (uint32_t)u;
        } else if (!strcmp(a, "--workload")) {
            if (parse_workloads(v, o))
                return -1;
        } else if (!strcmp(a, "--dist")) {
            if (parse_dist(v, &o->dist))
                return -1;
        } else if (!strcmp(a, "--dims")) {
            if (parse_list(a, v, 1, STRATA_DIM_MAX, o->dims, &o->ndims))
                return -1;
        } else if (!strcmp(a, "--batches")) {
            if (parse_list(a, v, 1, PERF_BATCH_MAX, o->batches, &o->nbatches))
                return -1;
        } else if (!strcmp(a, "--clients")) {
            if (parse_list(a, v, 1, PERF_CLIENTS_MAX, o->clients, &o->nclients))
                return -1;
            o->clients_given = 1;
        } else if (!strcmp(a, "--tables")) {
            if (parse_u64(a, v, 1, PERF_TABLES_MAX, &u))
                return -1;
            o->tables = (uint32_t)u;
        } else if (!strcmp(a, "--keys")) {
            if (parse_u64(a, v, 1, 1ull << 40, &o->keys))
                return -1;
        } else if (!strcmp(a, "--dram-budget")) {
            if (parse_u64(a, v, 1, 1ull << 40, &o->dram_budget))
                return -1;
        } else if (!strcmp(a, "--seconds")) {
            if (parse_double(a, v, 0.01, 86400, &o->seconds))
                return -1;
            o->ops = 0;
        } else if (!strcmp(a, "--ops")) {
            if (parse_u64(a, v, 1, 1ull << 40, &o->ops))
                return -1;
        } else if (!strcmp(a, "--warmup")) {
            if (parse_double(a, v, 0, 3600, &o->warmup))
                return -1;
        } else if (!strcmp(a, "--read-mode")) {
            if (!strcmp(v, "auto"))
                o->read_mode = STRATA_READ_AUTO;
            else if (!strcmp(v, "onesided"))
                o->read_mode = STRATA_READ_ONESIDED;
            else if (!strcmp(v, "rpc"))
                o->read_mode = STRATA_READ_RPC;
            else {
                fprintf(stderr, "strata-perf: --read-mode %s: want auto, onesided or rpc\n", v);
                return -1;
            }
        } else if (!strcmp(a, "--out")) {
            o->out = v;
        } else if (!strcmp(a, "--peers")) {
            if (parse_peers(v, &o->peers))
                return -1;
        } else if (!strcmp(a, "--secret-file")) {
            o->secret_file = v;
        } else if (!strcmp(a, "--seed")) {
            if (parse_u64(a, v, 0, UINT64_MAX, &o->seed))
                return -1;
        } else {
            fprintf(stderr, "strata-perf: unknown option: %s\n", a);
            usage(stderr);
            return -1;
        }
    }
    if (!!o->cluster_file == !!o->local) {
        fprintf(stderr,
                "strata-perf: give exactly one of --cluster FILE and --local sm|tcp|netns\n");
        usage(stderr);
        return -1;
    }
    if (o->hold && !o->local) {
        fprintf(stderr, "strata-perf: --hold needs --local\n");
        return -1;
    }
    snprintf(o->transport, sizeof(o->transport), "%s", o->local ? o->local : "cluster");
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Time, random numbers, key distributions                                  */
/* ------------------------------------------------------------------------ */

static void sleep_ns(uint64_t ns)
{
    struct timespec ts = {(time_t)(ns / 1000000000ull), (long)(ns % 1000000000ull)};
    nanosleep(&ts, NULL);
}

/* The key Strata stores for keyspace rank r (the peers store r itself). */
static uint64_t rank_key(uint64_t r)
{
    return perf_mix64(r + 1);
}

/* Fill ranks[0..n) from the distribution over keyspace ranks 0..keys-1. */
static void dist_fill(const perf_dist_t *d, uint64_t keys, uint64_t seed, uint64_t *ranks, size_t n)
{
    uint64_t r = seed;
    perf_zipf_t z;
    if (d->kind == DIST_ZIPF)
        perf_zipf_init(&z, keys, d->s);
    uint64_t hot = (uint64_t)(d->hot_frac * (double)keys);
    if (hot < 1)
        hot = 1;
    if (hot > keys)
        hot = keys;
    for (size_t i = 0; i < n; i++) {
        switch (d->kind) {
        case DIST_ZIPF:
            ranks[i] = perf_zipf_draw(&z, &r);
            break;
        case DIST_HOT:
            if (hot == keys || perf_rand_u01(&r) < d->hot_prob)
                ranks[i] = perf_rand_below(&r, hot);
            else
                ranks[i] = hot + perf_rand_below(&r, keys - hot);
            break;
        default:
            ranks[i] = perf_rand_below(&r, keys);
        }
    }
}

/* Keys pre-drawn per client: twice the keyspace (a uniform stream then
 * touches 86% of it before it repeats), within [1M, 4M] (8-32 MiB). */
static size_t stream_len(const perf_opts_t *o)
{
    uint64_t n = 2 * o->keys;
    return n < PERF_STREAM_MIN ? PERF_STREAM_MIN : n > PERF_STREAM_MAX ? PERF_STREAM_MAX : n;
}

/* The key stream seed of a client rank: the same for every point, so the
 * peers (which read rank 0's stream) see what Strata's client 0 saw. */
static uint64_t stream_seed(const perf_opts_t *o, uint32_t rank)
{
    return perf_mix64(o->seed * 0x100000001b3ull + rank + 1);
}

/* ------------------------------------------------------------------------ */
/* Connection, tables                                                       */
/* ------------------------------------------------------------------------ */

/* How every process connects; filled by the coordinator before any fork. */
typedef struct perf_conn {
    char servers[CLUSTER_MAX * 32 + 64]; /**< "h:p,..." (local), or empty */
    const char *cluster_file;            /**< --cluster */
    char secret[256];                    /**< from --secret-file or the local cluster */
    size_t secret_len;                   /**< bytes of secret */
    int have_secret;                     /**< 0: the cluster file's (or $STRATA_SECRET) */
} perf_conn_t;

static perf_conn_t g_conn;

static int read_secret_file(const char *path, perf_conn_t *c)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "strata-perf: --secret-file %s: %s\n", path, strerror(errno));
        return -1;
    }
    size_t n = fread(c->secret, 1, sizeof(c->secret), f);
    int more = fgetc(f) != EOF;
    fclose(f);
    if (more || n == sizeof(c->secret)) {
        fprintf(stderr, "strata-perf: --secret-file %s: longer than %zu bytes\n", path,
                sizeof(c->secret) - 1);
        return -1;
    }
    while (n > 0 && (c->secret[n - 1] == '\n' || c->secret[n - 1] == '\r'))
        n--;
    c->secret[n] = '\0';
    c->secret_len = n;
    c->have_secret = 1;
    return 0;
}

static strata_status_t conn_connect(const perf_opts_t *o, int read_only, strata_client_t **cl)
{
    strata_client_params_t p;
    memset(&p, 0, sizeof(p));
    p.field_mask = STRATA_CLIENT_FIELD_READ_ONLY | STRATA_CLIENT_FIELD_TIMEOUT_MS |
                   STRATA_CLIENT_FIELD_READ_MODE;
    if (g_conn.cluster_file) {
        p.field_mask |= STRATA_CLIENT_FIELD_CLUSTER_FILE;
        p.cluster_file = g_conn.cluster_file;
    } else {
        p.field_mask |= STRATA_CLIENT_FIELD_SERVERS;
        p.servers = g_conn.servers;
    }
    if (g_conn.have_secret) {
        p.field_mask |= STRATA_CLIENT_FIELD_SECRET;
        p.secret = g_conn.secret;
        p.secret_len = g_conn.secret_len;
    }
    p.read_only = read_only;
    p.timeout_ms = PERF_TIMEOUT_MS;
    p.read_mode = (strata_read_mode_t)o->read_mode;
    return strata_client_connect(&p, cl);
}

static void table_name(char *buf, size_t len, uint32_t dim, uint32_t t)
{
    snprintf(buf, len, "perf_d%u_t%u", dim, t);
}

static uint64_t table_capacity(const perf_opts_t *o)
{
    return o->dram_budget ? o->dram_budget : o->keys + o->keys / 4 + 64;
}

/* Server counters summed over one dim's tables. */
typedef struct srv_snap {
    uint64_t lookups;   /**< keys looked up on the servers */
    uint64_t hits;      /**< of which found stored */
    uint64_t rows;      /**< rows stored now */
    uint64_t evictions; /**< rows evicted */
    double cpu_s;       /**< servers' process CPU seconds since they started */
} srv_snap_t;

/* The admin's client and what went wrong last. */
typedef struct perf_admin {
    strata_client_t *client; /**< NULL until connected */
    char err[400];           /**< the last failure, for the coordinator */
} perf_admin_t;

__attribute__((format(printf, 3, 4))) static strata_status_t
admin_fail(perf_admin_t *a, strata_status_t st, const char *fmt, ...)
{
    char what[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    snprintf(a->err, sizeof(a->err), "%s: %s: %s", what, strata_status_string(st),
             strata_last_error());
    return st;
}

/* Drop and create dim's tables on a fresh connection (a handle opened
 * before a drop would describe the old table). */
static strata_status_t admin_setup(perf_admin_t *a, const perf_opts_t *o, uint32_t dim)
{
    if (a->client)
        strata_client_destroy(a->client);
    a->client = NULL;
    strata_status_t st = conn_connect(o, 0, &a->client);
    if (st != STRATA_OK)
        return admin_fail(a, st, "admin: strata_client_connect");
    for (uint32_t t = 0; t < o->tables; t++) {
        char name[STRATA_NAME_MAX + 1];
        table_name(name, sizeof(name), dim, t);
        st = strata_client_drop_table(a->client, name);
        if (st != STRATA_OK && st != STRATA_ERR_UNKNOWN_TABLE)
            return admin_fail(a, st, "admin: dropping %s", name);
        strata_table_schema_t s;
        memset(&s, 0, sizeof(s));
        s.field_mask = STRATA_SCHEMA_FIELD_NAME | STRATA_SCHEMA_FIELD_DIM |
                       STRATA_SCHEMA_FIELD_CAPACITY | STRATA_SCHEMA_FIELD_OPTIMIZER |
                       STRATA_SCHEMA_FIELD_EVICTION;
        s.name = name;
        s.dim = dim;
        s.capacity = table_capacity(o);
        s.eviction = o->dram_budget ? STRATA_EVICT_LRU : STRATA_EVICT_NONE;
        s.optimizer.type = STRATA_OPT_ADAGRAD;
        s.optimizer.field_mask = STRATA_OPT_FIELD_LR;
        s.optimizer.lr = 0.01f;
        st = strata_client_create_table(a->client, &s);
        if (st != STRATA_OK)
            return admin_fail(a, st, "admin: creating %s (capacity %" PRIu64 ")", name, s.capacity);
    }
    return STRATA_OK;
}

static strata_status_t admin_snap(perf_admin_t *a, const perf_opts_t *o, uint32_t dim,
                                  srv_snap_t *snap)
{
    memset(snap, 0, sizeof(*snap));
    if (!a->client)
        return admin_fail(a, STRATA_ERR_INVALID_PARAM, "admin: no tables set up");
    for (uint32_t t = 0; t < o->tables; t++) {
        char name[STRATA_NAME_MAX + 1];
        table_name(name, sizeof(name), dim, t);
        strata_rtable_t *tb;
        strata_status_t st = strata_client_open_table(a->client, name, &tb);
        if (st != STRATA_OK)
            return admin_fail(a, st, "admin: opening %s", name);
        strata_table_stats_t ts;
        double cpu = 0;
        st = strata_rtable_get_stats(tb, &ts, t == 0 ? &cpu : NULL);
        if (st != STRATA_OK)
            return admin_fail(a, st, "admin: strata_rtable_get_stats(%s)", name);
        snap->lookups += ts.lookups;
        snap->hits += ts.lookup_hits;
        snap->rows += ts.rows;
        snap->evictions += ts.evictions;
        if (t == 0)
            snap->cpu_s = cpu;
    }
    return STRATA_OK;
}

static strata_status_t admin_drop(perf_admin_t *a, const perf_opts_t *o, uint32_t dim)
{
    if (!a->client)
        return STRATA_OK;
    for (uint32_t t = 0; t < o->tables; t++) {
        char name[STRATA_NAME_MAX + 1];
        table_name(name, sizeof(name), dim, t);
        strata_status_t st = strata_client_drop_table(a->client, name);
        if (st != STRATA_OK && st != STRATA_ERR_UNKNOWN_TABLE)
            return admin_fail(a, st, "admin: dropping %s", name);
    }
    strata_client_destroy(a->client);
    a->client = NULL;
    return STRATA_OK;
}

/* ------------------------------------------------------------------------ */
/* The shared progress page                                                 */
/* ------------------------------------------------------------------------ */

enum { SLOT_IDLE, SLOT_STARTING, SLOT_READY, SLOT_WARMUP, SLOT_TIMED, SLOT_DONE, SLOT_FAILED };

/* One client's slot. The client writes everything but nothing in it is
 * read by the client; the coordinator only reads. Counters are relaxed
 * atomics (progress only); the final fields are written before state
 * becomes DONE or FAILED with release order, read after an acquire load. */
typedef struct perf_slot {
    _Atomic uint32_t state;    /**< SLOT_* */
    _Atomic uint64_t keys_all; /**< keys in completed requests, all phases */
    _Atomic uint64_t errors;   /**< failed requests */
    uint64_t end_ns;           /**< DONE: when its last request completed */
    char err[320];             /**< FAILED: what failed */
} perf_slot_t;

typedef struct perf_shm {
    _Atomic uint64_t start_ns;          /**< 0 until released: the common start (CLOCK_MONOTONIC) */
    _Atomic uint32_t abort;             /**< 1: clients stop at once */
    perf_slot_t slot[PERF_CLIENTS_MAX]; /**< one per client rank */
} perf_shm_t;

static perf_shm_t *g_shm;

/* Progress lines (stderr): one line per second, rewritten in place on a
 * terminal. */
static int g_tty;

static void progress_line(const char *title, const char *phase, double t, double total, double rate,
                          uint64_t errors)
{
    char r[32];
    perf_fmt_rate(r, sizeof(r), rate);
    char tt[48];
    if (total > 0)
        snprintf(tt, sizeof(tt), "%.1f/%.1f s", t, total);
    else
        snprintf(tt, sizeof(tt), "%.1f s", t);
    fprintf(stderr, "%sstrata-perf %s: %s %s, %s keys/s, %" PRIu64 " errors%s", g_tty ? "\r" : "",
            title, phase, tt, r, errors, g_tty ? "\033[K" : "\n");
}

/* ------------------------------------------------------------------------ */
/* A client's run of one point                                              */
/* ------------------------------------------------------------------------ */

/* What one client process runs. */
typedef struct perf_job {
    const perf_opts_t *o; /**< the run's options (borrowed) */
    int workload;         /**< WL_* */
    uint32_t dim, batch;  /**< the point's row width and keys per request */
    uint32_t clients;     /**< client processes (ranks) in the point */
    uint32_t rank;        /**< this one, 0..clients-1 */
    perf_slot_t *slot;    /**< its progress slot (fork: shared; MPI: private) */
    int mpi;              /**< 1: start at a barrier, not at shm->start_ns */
    /* MPI rank 0: server counters around its window */
    perf_admin_t *admin; /**< non-NULL on MPI rank 0 */
    srv_snap_t snap[2];  /**< before, after */
    int snap_ok;         /**< the snapshots so far succeeded */
    int pre_snapped;     /**< snap[0] taken before the start barrier (load) */
} perf_job_t;

/* Client-side state of a run. */
typedef struct job_state {
    strata_client_t *client;                  /**< this process's own client */
    strata_rtable_t *tables[PERF_TABLES_MAX]; /**< borrowed from client */
    uint64_t *stream;                         /**< pre-drawn keys (serve/train/mixed) */
    size_t stream_n;                          /**< keys in stream */
    size_t cursor;                            /**< next key of stream */
    uint64_t *keys;                           /**< one request's keys */
    float *rows;                              /**< one request's rows, batch * dim */
    float *grads;                             /**< one push's gradients, batch * dim */
    uint64_t rr[WL_COUNT]; /**< requests so far per kind: the next table of each */
    uint64_t load_next;    /**< load: next global batch index of this client */
    uint64_t load_total;   /**< load: batches over all tables and clients */
} job_state_t;

__attribute__((format(printf, 2, 3))) static void slot_fail(perf_slot_t *s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->err, sizeof(s->err), fmt, ap);
    va_end(ap);
    atomic_store_explicit(&s->state, SLOT_FAILED, memory_order_release);
}

static void job_free(job_state_t *js)
{
    if (js->client)
        strata_client_destroy(js->client);
    free(js->stream);
    free(js->keys);
    free(js->rows);
    free(js->grads);
    memset(js, 0, sizeof(*js));
}

/* Connect, open the tables, draw the key stream. 0, or -1 with the slot
 * FAILED. */
static int job_prepare(perf_job_t *j, job_state_t *js)
{
    const perf_opts_t *o = j->o;
    memset(js, 0, sizeof(*js));
    atomic_store_explicit(&j->slot->state, SLOT_STARTING, memory_order_relaxed);
    js->keys = malloc((size_t)j->batch * sizeof(uint64_t));
    js->rows = malloc((size_t)j->batch * j->dim * sizeof(float));
    js->grads = malloc((size_t)j->batch * j->dim * sizeof(float));
    if (!js->keys || !js->rows || !js->grads) {
        slot_fail(j->slot, "rank %u: batch buffers: out of memory", j->rank);
        return -1;
    }
    if (j->workload != WL_LOAD) {
        js->stream_n = stream_len(o);
        js->stream = malloc(js->stream_n * sizeof(uint64_t));
        if (!js->stream) {
            slot_fail(j->slot, "rank %u: key stream: out of memory", j->rank);
            return -1;
        }
        dist_fill(&o->dist, o->keys, stream_seed(o, j->rank), js->stream, js->stream_n);
        for (size_t i = 0; i < js->stream_n; i++)
            js->stream[i] = rank_key(js->stream[i]);
    } else {
        uint64_t per_table = (o->keys + j->batch - 1) / j->batch;
        js->load_total = per_table * o->tables;
        js->load_next = j->rank;
    }
    /* serving clients are read-only ones, as inference would be */
    const int read_only =
        j->workload == WL_SERVE || (j->workload == WL_MIXED && j->clients >= 2 && j->rank % 2 == 0);
    strata_status_t st = conn_connect(o, read_only, &js->client);
    if (st != STRATA_OK) {
        slot_fail(j->slot, "rank %u: strata_client_connect: %s: %s", j->rank,
                  strata_status_string(st), strata_last_error());
        return -1;
    }
    for (uint32_t t = 0; t < o->tables; t++) {
        char name[STRATA_NAME_MAX + 1];
        table_name(name, sizeof(name), j->dim, t);
        st = strata_client_open_table(js->client, name, &js->tables[t]);
        if (st != STRATA_OK) {
            slot_fail(j->slot, "rank %u: opening %s: %s: %s", j->rank, name,
                      strata_status_string(st), strata_last_error());
            return -1;
        }
    }
    atomic_store_explicit(&j->slot->state, SLOT_READY, memory_order_release);
    return 0;
}

/* Is status st worth stopping the run for (rather than counting it)? */
static int fatal_status(strata_status_t st)
{
    return st == STRATA_ERR_CONNECTION || st == STRATA_ERR_AUTH || st == STRATA_ERR_UNKNOWN_TABLE ||
           st == STRATA_ERR_READ_ONLY || st == STRATA_ERR_INVALID_PARAM ||
           st == STRATA_ERR_DIM_MISMATCH || st == STRATA_ERR_INTERNAL;
}

/* The kind of request number `req` of this client: WL_SERVE or WL_TRAIN
 * (or WL_LOAD). */
static int request_kind(const perf_job_t *j, uint64_t req)
{
    if (j->workload != WL_MIXED)
        return j->workload;
    if (j->clients >= 2)
        return j->rank % 2 ? WL_TRAIN : WL_SERVE;
    return req % 2 ? WL_TRAIN : WL_SERVE;
}

/* One request. Returns its keys (0 when load is finished), *lat_ns its
 * latency, *st its status. */
static uint32_t job_request(perf_job_t *j, job_state_t *js, uint64_t req, uint64_t *lat_ns,
                            strata_status_t *st)
{
    const perf_opts_t *o = j->o;
    const int kind = request_kind(j, req);
    uint32_t n = j->batch;
    strata_rtable_t *tb;
    if (kind == WL_LOAD) {
        if (js->load_next >= js->load_total)
            return 0;
        uint64_t b = js->load_next;
        js->load_next += j->clients;
        tb = js->tables[b % o->tables];
        uint64_t first = (b / o->tables) * j->batch;
        if (first + n > o->keys)
            n = (uint32_t)(o->keys - first);
        for (uint32_t i = 0; i < n; i++)
            js->keys[i] = rank_key(first + i);
        uint64_t a = perf_now_ns();
        *st = strata_rtable_lookup(tb, js->keys, n, js->rows, NULL, STRATA_LOOKUP_INIT_MISSING);
        *lat_ns = perf_now_ns() - a;
        return n;
    }
    tb = js->tables[js->rr[kind]++ % o->tables];
    for (uint32_t i = 0; i < n; i++) {
        js->keys[i] = js->stream[js->cursor];
        if (++js->cursor == js->stream_n)
            js->cursor = 0;
    }
    if (kind == WL_SERVE) {
        uint64_t a = perf_now_ns();
        *st = strata_rtable_lookup(tb, js->keys, n, js->rows, NULL, 0);
        *lat_ns = perf_now_ns() - a;
        return n;
    }
    /* train: creating lookup, gradient 0.01 * row (finite, not timed), push */
    uint64_t a = perf_now_ns();
    *st = strata_rtable_lookup(tb, js->keys, n, js->rows, NULL, STRATA_LOOKUP_INIT_MISSING);
    uint64_t b = perf_now_ns();
    if (*st != STRATA_OK) {
        *lat_ns = b - a;
        return n;
    }
    const size_t m = (size_t)n * j->dim;
    for (size_t i = 0; i < m; i++)
        js->grads[i] = 0.01f * js->rows[i];
    uint64_t c = perf_now_ns();
    *st = strata_rtable_push(tb, js->keys, js->grads, n);
    *lat_ns = (b - a) + (perf_now_ns() - c);
    return n;
}

/* Wait for the common start (fork mode): the instant the coordinator
 * writes into the shared page. -1 when told to abort or orphaned. */
static int job_wait_start(uint64_t *start)
{
    pid_t parent = getppid();
    for (;;) {
        uint64_t s = atomic_load_explicit(&g_shm->start_ns, memory_order_acquire);
        if (atomic_load_explicit(&g_shm->abort, memory_order_relaxed) || getppid() != parent)
            return -1;
        if (s) {
            *start = s;
            break;
        }
        sleep_ns(200000);
    }
    uint64_t t;
    while ((t = perf_now_ns()) < *start) {
        uint64_t d = *start - t;
        if (d > 2000000)
            sleep_ns(d - 1000000);
    }
    return 0;
}

static void client_delta(const strata_client_stats_t *a, const strata_client_stats_t *b,
                         perf_point_t *pt)
{
    pt->onesided_hits = b->onesided_hits - a->onesided_hits;
    pt->onesided_index = b->onesided_index - a->onesided_index;
    pt->onesided_absent = b->onesided_absent - a->onesided_absent;
    pt->rpc_keys = b->rpc_keys - a->rpc_keys;
    pt->torn_retries = b->torn_retries - a->torn_retries;
    pt->bytes_sent = b->bytes_sent - a->bytes_sent;
    pt->bytes_received = b->bytes_received - a->bytes_received;
    pt->bytes_onesided = b->bytes_onesided - a->bytes_onesided;
}

static void point_labels(perf_point_t *pt, const perf_opts_t *o, const char *system,
                         const char *workload, const char *transport, uint32_t dim, uint32_t batch,
                         uint32_t clients)
{
    snprintf(pt->system, sizeof(pt->system), "%s", system);
    snprintf(pt->workload, sizeof(pt->workload), "%s", workload);
    snprintf(pt->dist, sizeof(pt->dist), "%s", o->dist.name);
    snprintf(pt->transport, sizeof(pt->transport), "%s", transport);
    pt->dim = dim;
    pt->batch = batch;
    pt->clients = clients;
    pt->tables = o->tables;
    hdr_init(&pt->lat);
}

/* Warm-up and timed window, after job_prepare. Fills pt (its seconds: from
 * the window's start to the last request's end). 0, or -1 with the slot
 * FAILED. */
static int job_measure(perf_job_t *j, job_state_t *js, perf_point_t *pt)
{
    const perf_opts_t *o = j->o;
    perf_slot_t *slot = j->slot;
    uint64_t start;
    if (j->mpi) {
        start = perf_now_ns();
    } else if (job_wait_start(&start)) {
        slot_fail(slot, "rank %u: aborted before the start", j->rank);
        return -1;
    }
    const int load = j->workload == WL_LOAD;
    const uint64_t win = start + (load ? 0 : (uint64_t)(o->warmup * 1e9));
    const uint64_t win_end = win + (uint64_t)(o->seconds * 1e9);
    const int by_ops = !load && o->ops > 0;
    memset(pt, 0, sizeof(*pt));
    point_labels(pt, o, "strata", wl_name[j->workload], o->transport, j->dim, j->batch, j->clients);
    strata_client_stats_t s0, s1;
    uint64_t req = 0, consecutive = 0, t = perf_now_ns(), end = t;
    uint64_t last_line = t, last_keys = 0; /* MPI rank 0's progress */
    int timed = 0;
    atomic_store_explicit(&slot->state, load ? SLOT_TIMED : SLOT_WARMUP, memory_order_relaxed);
    for (;;) {
        if (!timed && t >= win) {
            timed = 1;
            if (j->admin && !j->pre_snapped) {
                strata_status_t st = admin_snap(j->admin, o, j->dim, &j->snap[0]);
                j->snap_ok = st == STRATA_OK;
                if (!j->snap_ok)
                    fprintf(stderr, "strata-perf: %s\n", j->admin->err);
            }
            strata_client_get_stats(js->client, &s0);
            atomic_store_explicit(&slot->state, SLOT_TIMED, memory_order_relaxed);
            t = perf_now_ns();
        }
        if (timed && (by_ops ? pt->batches >= o->ops : (!load && t >= win_end)))
            break;
        if (!j->mpi && atomic_load_explicit(&g_shm->abort, memory_order_relaxed)) {
            slot_fail(slot, "rank %u: aborted", j->rank);
            return -1;
        }
        uint64_t lat = 0;
        strata_status_t st = STRATA_OK;
        uint32_t n = job_request(j, js, req++, &lat, &st);
        if (n == 0)
            break; /* load: this client's share is done */
        t = perf_now_ns();
        if (st != STRATA_OK) {
            atomic_fetch_add_explicit(&slot->errors, 1, memory_order_relaxed);
            if (timed)
                pt->errors++;
            if (fatal_status(st) || ++consecutive >= 100) {
                slot_fail(slot, "rank %u: request %" PRIu64 " (%s, %u keys): %s: %s", j->rank,
                          req - 1, wl_name[request_kind(j, req - 1)], n, strata_status_string(st),
                          strata_last_error());
                return -1;
            }
            continue;
        }
        consecutive = 0;
        atomic_fetch_add_explicit(&slot->keys_all, n, memory_order_relaxed);
        if (j->mpi && j->rank == 0 && t - last_line >= 1000000000ull) {
            /* no shared page across hosts: rank 0 shows its own rate */
            uint64_t k = atomic_load_explicit(&slot->keys_all, memory_order_relaxed);
            char title[96];
            snprintf(title, sizeof(title), "%s dim %u batch %u clients %u, rank 0",
                     wl_name[j->workload], j->dim, j->batch, j->clients);
            progress_line(title, timed ? "timed" : "warm-up",
                          (double)(t - (timed ? win : start)) * 1e-9,
                          timed ? (by_ops || load ? 0 : o->seconds) : o->warmup,
                          (double)(k - last_keys) / ((double)(t - last_line) * 1e-9), pt->errors);
            last_line = t;
            last_keys = k;
        }
        if (timed) {
            hdr_record(&pt->lat, lat);
            pt->batches++;
            pt->keys += n;
            end = t;
        }
    }
    if (!timed) { /* a load with nothing to do */
        strata_client_get_stats(js->client, &s0);
        end = win;
    }
    strata_client_get_stats(js->client, &s1);
    if (j->admin && j->snap_ok) {
        strata_status_t st = admin_snap(j->admin, o, j->dim, &j->snap[1]);
        j->snap_ok = st == STRATA_OK;
        if (!j->snap_ok)
            fprintf(stderr, "strata-perf: %s\n", j->admin->err);
    }
    client_delta(&s0, &s1, pt);
    pt->seconds = (double)(end > win ? end - win : 0) * 1e-9;
    pt->keys_per_s = pt->seconds > 0 ? (double)pt->keys / pt->seconds : 0;
    slot->end_ns = end;
    atomic_store_explicit(&slot->state, SLOT_DONE, memory_order_release);
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Coordinator: processes                                                   */
/* ------------------------------------------------------------------------ */

static volatile sig_atomic_t g_signal;
static volatile int g_stop; /**< g_signal as a plain int, for the RocksDB peer */

static void on_signal(int sig)
{
    g_signal = sig;
    g_stop = 1;
}

static pid_t g_coord_pid;

/* --- network namespaces (--local netns) --- */

typedef struct perf_netns {
    int up;                 /**< namespaces exist */
    uint32_t n;             /**< server namespaces */
    char prefix[16];        /**< "sp<pid>" */
    char root_if[24];       /**< the root namespace's veth */
    pid_t pid[CLUSTER_MAX]; /**< servers */
    char dir[128];          /**< port files, logs */
    char secret[64];        /**< the servers' (and so the clients') secret */
} perf_netns_t;

static perf_netns_t g_netns;

/* Run a command line of ip(8) built from our own names (no user text);
 * quiet unless loud. Returns its exit status, -1 when it did not run. */
__attribute__((format(printf, 2, 3))) static int sh(int loud, const char *fmt, ...)
{
    char cmd[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof(cmd), fmt, ap);
    va_end(ap);
    char full[600];
    snprintf(full, sizeof(full), "%s%s", cmd, loud ? "" : " >/dev/null 2>&1");
    int st = system(full);
    if (st == -1 || !WIFEXITED(st))
        return -1;
    if (WEXITSTATUS(st) && loud)
        fprintf(stderr, "strata-perf: failed: %s\n", cmd);
    return WEXITSTATUS(st);
}

/* Remove every namespace and link of prefix; safe to repeat. */
static void netns_remove(const char *prefix, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++)
        sh(0, "ip netns del %ss%u", prefix, i);
    sh(0, "ip netns del %sh", prefix);
    sh(0, "ip link del %sr", prefix); /* gone with the hub already, normally */
}

static void netns_stop_servers(perf_netns_t *ns)
{
    for (uint32_t i = 0; i < ns->n; i++)
        if (ns->pid[i] > 0)
            kill(ns->pid[i], SIGTERM);
    for (uint32_t i = 0; i < ns->n; i++) {
        if (ns->pid[i] <= 0)
            continue;
        int reaped = 0;
        for (int t = 0; t < 500 && !reaped; t++) {
            if (waitpid(ns->pid[i], NULL, WNOHANG) == ns->pid[i])
                reaped = 1;
            else
                sleep_ns(10000000);
        }
        if (!reaped) {
            kill(ns->pid[i], SIGKILL);
            waitpid(ns->pid[i], NULL, 0);
        }
        ns->pid[i] = 0;
    }
}

static void netns_teardown(void)
{
    if (getpid() != g_coord_pid || !g_netns.prefix[0])
        return;
    netns_stop_servers(&g_netns);
    if (g_netns.up)
        netns_remove(g_netns.prefix, g_netns.n);
    if (g_netns.dir[0])
        sh(0, "rm -rf '%s'", g_netns.dir);
    g_netns.up = 0;
    g_netns.prefix[0] = '\0';
}

static const char *server_bin(void)
{
    const char *b = getenv("STRATA_SERVER_BIN");
    return b && *b ? b : STRATA_SERVER_BIN;
}

/* Can --local netns run here? Names the namespaces and makes the temp
 * directory (before the watchdog forks, so that it knows both). Returns
 * 0, 77 (not root, no ip, the subnet in use) or -1. */
static int netns_prepare(perf_netns_t *ns, uint32_t n)
{
    memset(ns, 0, sizeof(*ns));
    if (geteuid() != 0) {
        fprintf(stderr, "strata-perf: --local netns needs root (network namespaces); skipped\n");
        return 77;
    }
    if (sh(0, "command -v ip") != 0 || sh(0, "ip netns list") != 0) {
        fprintf(stderr, "strata-perf: --local netns needs iproute2 (ip netns); skipped\n");
        return 77;
    }
    FILE *p = popen("ip -4 -o addr show to " PERF_NETNS_NET ".0/24 2>/dev/null; "
                    "ip -4 route show " PERF_NETNS_NET ".0/24 2>/dev/null",
                    "r");
    char line[256];
    int busy = 0;
    while (p && fgets(line, sizeof(line), p))
        busy = 1;
    if (p)
        pclose(p);
    if (busy) {
        fprintf(stderr,
                "strata-perf: " PERF_NETNS_NET ".0/24 is already in use here (an address or "
                "route); --local netns skipped so as not to disturb it\n");
        return 77;
    }
    ns->n = n;
    snprintf(ns->prefix, sizeof(ns->prefix), "sp%d", (int)getpid());
    snprintf(ns->root_if, sizeof(ns->root_if), "%sr", ns->prefix);
    snprintf(ns->secret, sizeof(ns->secret), "perf-secret-%d", (int)getpid());
    snprintf(ns->dir, sizeof(ns->dir), "/tmp/strata-perf-netns-XXXXXX");
    if (!mkdtemp(ns->dir)) {
        fprintf(stderr, "strata-perf: mkdtemp: %s\n", strerror(errno));
        return -1;
    }
    return 0;
}

/* After netns_prepare: a hub namespace with a bridge, n server namespaces
 * on PERF_NETNS_NET.i+1, the root namespace on .254 through a veth into
 * the hub, and a server in each. Returns 0 or -1 (netns_teardown undoes
 * whatever was made). */
static int netns_start(perf_netns_t *ns)
{
    const uint32_t n = ns->n;
    ns->up = 1;
    const char *P = ns->prefix;
    if (sh(1, "ip netns add %sh", P) || sh(1, "ip -n %sh link add br0 type bridge", P) ||
        sh(1, "ip -n %sh link set br0 up", P) || sh(1, "ip -n %sh link set lo up", P))
        return -1;
    for (uint32_t i = 0; i < n; i++) {
        if (sh(1, "ip netns add %ss%u", P, i) ||
            sh(1, "ip link add %ss%u type veth peer name eth0 netns %ss%u", P, i, P, i) ||
            sh(1, "ip link set %ss%u netns %sh", P, i, P) ||
            sh(1, "ip -n %sh link set %ss%u master br0 up", P, P, i) ||
            sh(1, "ip -n %ss%u addr add " PERF_NETNS_NET ".%u/24 dev eth0", P, i, i + 1) ||
            sh(1, "ip -n %ss%u link set eth0 up", P, i) ||
            sh(1, "ip -n %ss%u link set lo up", P, i))
            return -1;
    }
    if (sh(1, "ip link add %s type veth peer name %srh netns %sh", ns->root_if, P, P) ||
        sh(1, "ip -n %sh link set %srh master br0 up", P, P) ||
        sh(1, "ip addr add " PERF_NETNS_NET ".254/24 dev %s", ns->root_if) ||
        sh(1, "ip link set %s up", ns->root_if))
        return -1;

    /* servers: ip netns exec replaces itself with the server (same pid) */
    for (uint32_t i = 0; i < n; i++) {
        char nsname[32], listen[48], idx[16], nsv[16], pf[200], logf[200];
        snprintf(nsname, sizeof(nsname), "%ss%u", P, i);
        snprintf(listen, sizeof(listen), PERF_NETNS_NET ".%u:%u", i + 1, PERF_NETNS_PORT);
        snprintf(idx, sizeof(idx), "%u", i);
        snprintf(nsv, sizeof(nsv), "%u", n);
        snprintf(pf, sizeof(pf), "%s/port.%u", ns->dir, i);
        snprintf(logf, sizeof(logf), "%s/server.%u.log", ns->dir, i);
        const char *argv[] = {"ip",         "netns",    "exec",     nsname,
                              server_bin(), "--listen", listen,     "--port-file",
                              pf,           "--index",  idx,        "--nservers",
                              nsv,          "--secret", ns->secret, NULL};
        fflush(NULL);
        pid_t pid = fork();
        if (pid < 0)
            return -1;
        if (pid == 0) {
            prctl(PR_SET_PDEATHSIG, SIGKILL);
            int fd = open(logf, O_WRONLY | O_CREAT | O_APPEND, 0644);
            if (fd >= 0) {
                dup2(fd, 1);
                dup2(fd, 2);
            }
            setenv("UCX_TLS", "tcp,self", 1);
            setenv("UCX_NET_DEVICES", "eth0", 1);
            setenv("UCX_WARN_UNUSED_ENV_VARS", "n", 1);
            execvp(argv[0], (char *const *)argv);
            _exit(127);
        }
        ns->pid[i] = pid;
    }
    for (uint32_t i = 0; i < n; i++) {
        char pf[200];
        snprintf(pf, sizeof(pf), "%s/port.%u", ns->dir, i);
        int ok = 0;
        for (int t = 0; t < 3000 && !ok && !g_signal; t++) {
            struct stat st;
            if (stat(pf, &st) == 0 && st.st_size > 0)
                ok = 1;
            else if (waitpid(ns->pid[i], NULL, WNOHANG) == ns->pid[i]) {
                ns->pid[i] = 0;
                break;
            } else
                sleep_ns(10000000);
        }
        if (!ok) {
            fprintf(stderr, "strata-perf: netns server %u did not start; its log:\n", i);
            sh(1, "tail -5 %s/server.%u.log >&2", ns->dir, i);
            return -1;
        }
    }
    return 0;
}

/* The watchdog's cleanup (cluster_watchdog_start, tests/cluster.h): after
 * it has stopped the servers of a coordinator that died, remove the
 * namespaces and their directory, as they were when it forked. */
static void netns_watchdog_cleanup(void *arg)
{
    const perf_netns_t *ns = arg;
    if (ns->prefix[0]) {
        netns_remove(ns->prefix, ns->n);
        sh(0, "rm -rf '%s'", ns->dir);
    }
}

/* --- the admin process --- */

enum { ADM_HELLO = 1, ADM_SETUP, ADM_SNAP, ADM_DROP, ADM_QUIT };

/* A request (coordinator -> admin) or its reply; PIPE_BUF-atomic. */
typedef struct admin_msg {
    uint32_t op;     /**< ADM_* */
    uint32_t dim;    /**< the tables' dim */
    int32_t status;  /**< reply: STRATA_OK or the failure */
    srv_snap_t snap; /**< ADM_SNAP reply */
    char err[400];   /**< reply: what failed */
} admin_msg_t;

_Static_assert(sizeof(admin_msg_t) <= PIPE_BUF, "admin records are written atomically");

static pid_t g_admin_pid;
static int g_admin_req = -1, g_admin_rep = -1; /**< coordinator's ends */

static int write_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len) {
        ssize_t w = write(fd, p, len);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        len -= (size_t)w;
    }
    return 0;
}

/* Read exactly len bytes within timeout_ms (-1: forever). -1 on EOF,
 * error, timeout or a signal to the coordinator. */
static int read_all(int fd, void *buf, size_t len, int timeout_ms)
{
    char *p = buf;
    double deadline = perf_now_s() + timeout_ms / 1000.0;
    while (len) {
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        int left = timeout_ms < 0 ? 1000 : (int)((deadline - perf_now_s()) * 1000);
        if (timeout_ms >= 0 && left <= 0)
            return -1;
        int r = poll(&pfd, 1, left > 1000 ? 1000 : left);
        if (g_signal && getpid() == g_coord_pid)
            return -1;
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -1;
        if (r == 0)
            continue;
        ssize_t n = read(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

static void admin_main(const perf_opts_t *o, int req, int rep)
{
    perf_admin_t a;
    memset(&a, 0, sizeof(a));
    for (;;) {
        admin_msg_t m;
        if (read_all(req, &m, sizeof(m), -1))
            break;
        admin_msg_t r;
        memset(&r, 0, sizeof(r));
        r.op = m.op;
        strata_status_t st = STRATA_OK;
        a.err[0] = '\0';
        switch (m.op) {
        case ADM_HELLO: { /* can we reach the cluster at all? */
            strata_client_t *c = NULL;
            st = conn_connect(o, 1, &c);
            if (st != STRATA_OK)
                admin_fail(&a, st, "connecting to the cluster");
            else
                strata_client_destroy(c);
            break;
        }
        case ADM_SETUP:
            st = admin_setup(&a, o, m.dim);
            break;
        case ADM_SNAP:
            st = admin_snap(&a, o, m.dim, &r.snap);
            break;
        case ADM_DROP:
            st = admin_drop(&a, o, m.dim);
            break;
        default:
            if (a.client)
                strata_client_destroy(a.client);
            _exit(0);
        }
        r.status = st;
        snprintf(r.err, sizeof(r.err), "%s", a.err);
        if (write_all(rep, &r, sizeof(r)))
            break;
    }
    if (a.client)
        strata_client_destroy(a.client);
    _exit(0);
}

static int admin_start(const perf_opts_t *o)
{
    int req[2], rep[2];
    if (pipe2(req, O_CLOEXEC))
        return -1;
    if (pipe2(rep, O_CLOEXEC)) {
        close(req[0]);
        close(req[1]);
        return -1;
    }
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != g_coord_pid)
            _exit(1);
        signal(SIGINT, SIG_IGN); /* the coordinator decides when we go */
        signal(SIGTERM, SIG_DFL);
        close(req[1]);
        close(rep[0]);
        cluster_watchdog_forget();
        admin_main(o, req[0], rep[1]);
    }
    close(req[0]);
    close(rep[1]);
    g_admin_pid = pid;
    g_admin_req = req[1];
    g_admin_rep = rep[0];
    return 0;
}

/* One admin round trip. STRATA_OK, or the admin's status with err set. */
static strata_status_t admin_call(uint32_t op, uint32_t dim, srv_snap_t *snap, char *err,
                                  size_t errlen)
{
    admin_msg_t m;
    memset(&m, 0, sizeof(m));
    m.op = op;
    m.dim = dim;
    if (write_all(g_admin_req, &m, sizeof(m)) ||
        read_all(g_admin_rep, &m, sizeof(m), 4 * PERF_TIMEOUT_MS + 60000)) {
        snprintf(err, errlen, "%s", g_signal ? "interrupted" : "the admin process did not answer");
        return STRATA_ERR_TIMEOUT;
    }
    if (m.status != STRATA_OK)
        snprintf(err, errlen, "%s", m.err);
    else if (snap)
        *snap = m.snap;
    return (strata_status_t)m.status;
}

static void admin_stop(void)
{
    if (g_admin_pid <= 0)
        return;
    admin_msg_t m;
    memset(&m, 0, sizeof(m));
    m.op = ADM_QUIT;
    write_all(g_admin_req, &m, sizeof(m));
    close(g_admin_req);
    close(g_admin_rep);
    g_admin_req = g_admin_rep = -1;
    for (int t = 0; t < 300; t++) {
        if (waitpid(g_admin_pid, NULL, WNOHANG) == g_admin_pid) {
            g_admin_pid = 0;
            return;
        }
        sleep_ns(10000000);
    }
    kill(g_admin_pid, SIGKILL);
    waitpid(g_admin_pid, NULL, 0);
    g_admin_pid = 0;
}

/* --- client processes --- */

static pid_t g_child[PERF_CLIENTS_MAX];
static uint32_t g_nchild;

static void children_kill(void)
{
    if (g_shm)
        atomic_store(&g_shm->abort, 1);
    for (uint32_t i = 0; i < g_nchild; i++)
        if (g_child[i] > 0) {
            kill(g_child[i], SIGKILL);
            waitpid(g_child[i], NULL, 0);
            g_child[i] = 0;
        }
    g_nchild = 0;
}

static void part_path(char *buf, size_t len, const perf_opts_t *o, uint32_t point, uint32_t rank)
{
    snprintf(buf, len, "%s/part.%u.%u", o->out, point, rank);
}

/* The body of a client process. Returns its exit status. */
static int child_main(perf_job_t *j, uint32_t point)
{
    job_state_t js;
    perf_point_t *pt = malloc(sizeof(*pt));
    int rc = 1;
    if (!pt) {
        slot_fail(j->slot, "rank %u: out of memory", j->rank);
        return 1;
    }
    if (job_prepare(j, &js) == 0 && job_measure(j, &js, pt) == 0) {
        char path[600];
        part_path(path, sizeof(path), j->o, point, j->rank);
        /* DONE was published by job_measure; the coordinator waits for the
         * process to exit before it reads the file */
        if (perf_part_write(path, pt) == 0)
            rc = 0;
        else
            slot_fail(j->slot, "rank %u: writing %s failed", j->rank, path);
    }
    job_free(&js);
    free(pt);
    return rc;
}

/* --- one point --- */

typedef struct point_spec {
    int workload;                 /**< WL_* */
    uint32_t dim, batch, clients; /**< the point's coordinates */
    uint32_t index;               /**< 1-based, for progress */
    uint32_t total;               /**< points in the run */
    int report;                   /**< 0: the unreported preload */
} point_spec_t;

static void point_title(char *buf, size_t len, const point_spec_t *ps)
{
    if (ps->report)
        snprintf(buf, len, "[%u/%u] %s dim %u batch %u clients %u", ps->index, ps->total,
                 wl_name[ps->workload], ps->dim, ps->batch, ps->clients);
    else
        snprintf(buf, len, "[preload] dim %u batch %u clients %u", ps->dim, ps->batch, ps->clients);
}

static void point_summary(const char *title, const perf_point_t *pt)
{
    char r[32];
    perf_fmt_rate(r, sizeof(r), pt->keys_per_s);
    if (strcmp(pt->system, "strata")) {
        fprintf(stderr,
                "strata-perf %s: %s keys/s, p50 %.1f us, p99 %.1f us, %s cpu %.2f s, %" PRIu64
                " errors\n",
                title, r, perf_point_p(pt, 50), perf_point_p(pt, 99),
                strcmp(pt->system, "rocksdb") ? "server" : "process", pt->server_cpu_s, pt->errors);
        return;
    }
    fprintf(stderr,
            "%sstrata-perf %s: %s keys/s, p50 %.1f us, p99 %.1f us, one-sided %.0f%%, "
            "server hits %.0f%%, server cpu %.2f s, %" PRIu64 " errors%s\n",
            g_tty ? "\r" : "", title, r, perf_point_p(pt, 50), perf_point_p(pt, 99),
            100 * perf_point_onesided_ratio(pt), 100 * perf_point_dram_hit_rate(pt),
            pt->server_cpu_s, pt->errors, g_tty ? "\033[K" : "");
}

/* Run one point in fork mode; *out gets the merged point. 0 or -1. */
static int run_point_fork(const perf_opts_t *o, const point_spec_t *ps, perf_point_t *out)
{
    char title[128], err[400];
    point_title(title, sizeof(title), ps);
    memset(g_shm, 0, sizeof(*g_shm));
    int rc = -1;
    const int load = ps->workload == WL_LOAD;

    /* fork the clients; each builds its stream and connects */
    g_nchild = 0;
    for (uint32_t r = 0; r < ps->clients; r++) {
        fflush(NULL);
        pid_t pid = fork();
        if (pid < 0) {
            fprintf(stderr, "strata-perf %s: fork: %s\n", title, strerror(errno));
            goto out;
        }
        if (pid == 0) {
            prctl(PR_SET_PDEATHSIG, SIGKILL);
            if (getppid() != g_coord_pid)
                _exit(1);
            signal(SIGINT, SIG_IGN); /* the coordinator aborts us via the page */
            signal(SIGTERM, SIG_DFL);
            signal(SIGHUP, SIG_DFL);
            cluster_watchdog_forget();
            if (g_admin_req >= 0)
                close(g_admin_req);
            if (g_admin_rep >= 0)
                close(g_admin_rep);
            perf_job_t j;
            memset(&j, 0, sizeof(j));
            j.o = o;
            j.workload = ps->workload;
            j.dim = ps->dim;
            j.batch = ps->batch;
            j.clients = ps->clients;
            j.rank = r;
            j.slot = &g_shm->slot[r];
            _exit(child_main(&j, ps->index));
        }
        g_child[g_nchild++] = pid;
    }

    /* wait until every client is READY */
    double deadline = perf_now_s() + PERF_READY_DEADLINE_S;
    for (;;) {
        uint32_t ready = 0;
        for (uint32_t r = 0; r < ps->clients; r++) {
            uint32_t s = atomic_load_explicit(&g_shm->slot[r].state, memory_order_acquire);
            if (s == SLOT_FAILED) {
                fprintf(stderr, "%sstrata-perf %s: %s\n", g_tty ? "\n" : "", title,
                        g_shm->slot[r].err);
                goto out;
            }
            ready += s == SLOT_READY;
        }
        for (uint32_t r = 0; r < g_nchild; r++) {
            int st;
            if (g_child[r] > 0 && waitpid(g_child[r], &st, WNOHANG) == g_child[r]) {
                g_child[r] = 0;
                if (atomic_load(&g_shm->slot[r].state) != SLOT_FAILED) {
                    fprintf(stderr,
                            "strata-perf %s: client %u exited before it was ready "
                            "(status 0x%x)\n",
                            title, r, (unsigned)st);
                    goto out;
                }
            }
        }
        if (ready == ps->clients)
            break;
        if (g_signal || perf_now_s() > deadline) {
            if (!g_signal)
                fprintf(stderr, "strata-perf %s: clients not ready after %.0f s\n", title,
                        PERF_READY_DEADLINE_S);
            goto out;
        }
        sleep_ns(2000000);
    }

    /* release them together; the window opens after the warm-up */
    const uint64_t start = perf_now_ns() + 20000000ull;
    const uint64_t win = start + (load ? 0 : (uint64_t)(o->warmup * 1e9));
    const uint64_t win_end = win + (uint64_t)(o->seconds * 1e9);
    const int by_time = !load && !o->ops;
    srv_snap_t snap[2];
    int have[2] = {0, 0};
    if (load) { /* the window opens at the start: count every request */
        if (admin_call(ADM_SNAP, ps->dim, &snap[0], err, sizeof(err)) != STRATA_OK) {
            fprintf(stderr, "strata-perf %s: %s\n", title, err);
            goto out;
        }
        have[0] = 1;
    }
    atomic_store_explicit(&g_shm->start_ns, start, memory_order_release);
    double last_line = perf_now_s(), last_keys_t = last_line;
    uint64_t last_keys = 0, stall_keys = 0;
    double stall_t = perf_now_s();
    for (;;) {
        uint64_t t = perf_now_ns();
        if (!have[0] && t >= win) {
            if (admin_call(ADM_SNAP, ps->dim, &snap[0], err, sizeof(err)) != STRATA_OK) {
                fprintf(stderr, "strata-perf %s: %s\n", title, err);
                goto out;
            }
            have[0] = 1;
        }
        uint32_t done = 0;
        uint64_t keys = 0, errors = 0;
        for (uint32_t r = 0; r < ps->clients; r++) {
            perf_slot_t *s = &g_shm->slot[r];
            uint32_t state = atomic_load_explicit(&s->state, memory_order_acquire);
            if (state == SLOT_FAILED) {
                fprintf(stderr, "%sstrata-perf %s: %s\n", g_tty ? "\n" : "", title, s->err);
                goto out;
            }
            done += state == SLOT_DONE;
            keys += atomic_load_explicit(&s->keys_all, memory_order_relaxed);
            errors += atomic_load_explicit(&s->errors, memory_order_relaxed);
        }
        for (uint32_t r = 0; r < g_nchild; r++) {
            int st;
            if (g_child[r] > 0 && waitpid(g_child[r], &st, WNOHANG) == g_child[r]) {
                g_child[r] = 0;
                uint32_t state = atomic_load(&g_shm->slot[r].state);
                if (state != SLOT_DONE && state != SLOT_FAILED) {
                    fprintf(stderr, "%sstrata-perf %s: client %u died (status 0x%x)\n",
                            g_tty ? "\n" : "", title, r, (unsigned)st);
                    goto out;
                }
                if (state == SLOT_DONE && !(WIFEXITED(st) && WEXITSTATUS(st) == 0)) {
                    fprintf(stderr, "%sstrata-perf %s: client %u: %s\n", g_tty ? "\n" : "", title,
                            r, g_shm->slot[r].err[0] ? g_shm->slot[r].err : "exit != 0");
                    goto out;
                }
            }
        }
        if (by_time && !have[1] && have[0] && t >= win_end) {
            if (admin_call(ADM_SNAP, ps->dim, &snap[1], err, sizeof(err)) != STRATA_OK) {
                fprintf(stderr, "strata-perf %s: %s\n", title, err);
                goto out;
            }
            have[1] = 1;
        }
        if (done == ps->clients && have[0])
            break;
        double ts = perf_now_s();
        if (g_signal)
            goto out;
        if (by_time && t > win_end + (uint64_t)(PERF_FINISH_GRACE_S * 1e9)) {
            fprintf(stderr, "strata-perf %s: clients still running %.0f s after the window\n",
                    title, PERF_FINISH_GRACE_S);
            goto out;
        }
        if (keys != stall_keys) {
            stall_keys = keys;
            stall_t = ts;
        } else if (ts - stall_t > PERF_STALL_S) {
            fprintf(stderr, "strata-perf %s: no progress for %.0f s\n", title, PERF_STALL_S);
            goto out;
        }
        if (ts - last_line >= 1.0) {
            double rate = (double)(keys - last_keys) / (ts - last_keys_t);
            const char *phase = t < start ? "starting" : t < win ? "warm-up" : "timed";
            double el = t >= win ? (double)(t - win) * 1e-9 : (double)(t - start) * 1e-9;
            double total = t >= win ? (by_time ? o->seconds : 0) : o->warmup;
            progress_line(title, phase, el, total, rate, errors);
            last_line = ts;
            last_keys = keys;
            last_keys_t = ts;
        }
        /* wake for the next snapshot on time, else every 50 ms */
        uint64_t nap = 50000000ull, t2 = perf_now_ns();
        if (!have[0] && win > t2 && win - t2 < nap)
            nap = win - t2;
        else if (by_time && have[0] && !have[1] && win_end > t2 && win_end - t2 < nap)
            nap = win_end - t2;
        sleep_ns(nap);
    }
    if (!have[1]) {
        if (admin_call(ADM_SNAP, ps->dim, &snap[1], err, sizeof(err)) != STRATA_OK) {
            fprintf(stderr, "strata-perf %s: %s\n", title, err);
            goto out;
        }
        have[1] = 1;
    }

    /* reap, then merge the parts */
    for (uint32_t r = 0; r < g_nchild; r++) {
        if (g_child[r] <= 0)
            continue;
        int st = 0, reaped = 0;
        for (int t = 0; t < 1500 && !reaped; t++) {
            if (waitpid(g_child[r], &st, WNOHANG) == g_child[r])
                reaped = 1;
            else
                sleep_ns(10000000);
        }
        if (!reaped) {
            fprintf(stderr, "strata-perf %s: client %u did not exit after its window\n", title, r);
            goto out;
        }
        g_child[r] = 0;
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
            fprintf(stderr, "strata-perf %s: client %u: %s\n", title, r,
                    g_shm->slot[r].err[0] ? g_shm->slot[r].err : "exited abnormally");
            goto out;
        }
    }
    memset(out, 0, sizeof(*out));
    point_labels(out, o, "strata", wl_name[ps->workload], o->transport, ps->dim, ps->batch,
                 ps->clients);
    perf_point_t *part = malloc(sizeof(*part));
    if (!part)
        goto out;
    double seconds = 0;
    for (uint32_t r = 0; r < ps->clients; r++) {
        char path[600];
        part_path(path, sizeof(path), o, ps->index, r);
        if (perf_part_read(path, part)) {
            fprintf(stderr, "strata-perf %s: reading %s failed\n", title, path);
            free(part);
            goto out;
        }
        unlink(path);
        uint64_t end = g_shm->slot[r].end_ns;
        double s = end > win ? (double)(end - win) * 1e-9 : 0;
        if (s > seconds)
            seconds = s;
        perf_point_merge(out, part);
    }
    free(part);
    out->seconds = seconds;
    out->keys_per_s = seconds > 0 ? (double)out->keys / seconds : 0;
    out->server_cpu_s = snap[1].cpu_s - snap[0].cpu_s;
    out->server_lookups = snap[1].lookups - snap[0].lookups;
    out->server_lookup_hits = snap[1].hits - snap[0].hits;
    rc = 0;
out:
    children_kill();
    for (uint32_t r = 0; rc != 0 && r < ps->clients; r++) {
        char path[600];
        part_path(path, sizeof(path), o, ps->index, r);
        unlink(path);
    }
    if (g_tty && rc != 0)
        fputc('\n', stderr);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* MPI mode                                                                 */
/* ------------------------------------------------------------------------ */

/* What rank 0 broadcasts before each point. */
typedef struct mpi_go {
    int32_t ok;    /**< 0: stop the run */
    char err[400]; /**< why not */
} mpi_go_t;

static int g_rank, g_size;

/* Serialize pt through a part file (perf_part_write writes files only). */
static void *part_bytes(const perf_point_t *pt, size_t *len)
{
    char path[] = "/tmp/strata-perf-part-XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0)
        return NULL;
    close(fd);
    void *buf = NULL;
    if (perf_part_write(path, pt) == 0) {
        FILE *f = fopen(path, "rb");
        if (f && fseek(f, 0, SEEK_END) == 0) {
            long n = ftell(f);
            if (n > 0 && fseek(f, 0, SEEK_SET) == 0 && (buf = malloc((size_t)n + 1))) {
                ((char *)buf)[0] = 'P';
                if (fread((char *)buf + 1, 1, (size_t)n, f) == (size_t)n)
                    *len = (size_t)n + 1;
                else {
                    free(buf);
                    buf = NULL;
                }
            }
        }
        if (f)
            fclose(f);
    }
    unlink(path);
    return buf;
}

static int part_from_bytes(const void *buf, size_t len, perf_point_t *pt)
{
    char path[] = "/tmp/strata-perf-part-XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0)
        return -1;
    int rc = write_all(fd, buf, len);
    close(fd);
    if (rc == 0)
        rc = perf_part_read(path, pt);
    unlink(path);
    return rc;
}

/* One point under MPI. Every rank calls it; rank 0 gets *out. 0 or -1
 * (on every rank). */
static int run_point_mpi(const perf_opts_t *o, const point_spec_t *ps, perf_admin_t *admin,
                         perf_point_t *out)
{
    char title[128];
    point_title(title, sizeof(title), ps);
    const int part = (uint32_t)g_rank < ps->clients;
    perf_slot_t slot;
    memset(&slot, 0, sizeof(slot));
    perf_job_t j;
    memset(&j, 0, sizeof(j));
    j.o = o;
    j.workload = ps->workload;
    j.dim = ps->dim;
    j.batch = ps->batch;
    j.clients = ps->clients;
    j.rank = (uint32_t)g_rank;
    j.slot = &slot;
    j.mpi = 1;
    j.admin = g_rank == 0 ? admin : NULL;
    job_state_t js;
    memset(&js, 0, sizeof(js));
    perf_point_t *pt = calloc(1, sizeof(*pt));
    int ok = pt != NULL;
    if (ok && part)
        ok = job_prepare(&j, &js) == 0;
    if (ok && j.admin && ps->workload == WL_LOAD) {
        /* the window opens at the barrier: count every request */
        j.snap_ok = admin_snap(admin, o, ps->dim, &j.snap[0]) == STRATA_OK;
        j.pre_snapped = 1;
        if (!j.snap_ok)
            fprintf(stderr, "strata-perf: %s\n", admin->err);
    }
    /* everyone ready? (a rank that failed says so in its part) */
    if (perf_mpi_barrier())
        ok = 0;
    if (g_rank == 0)
        fprintf(stderr, "strata-perf %s: started on %u ranks\n", title, ps->clients);
    if (ok && part)
        ok = job_measure(&j, &js, pt) == 0;
    job_free(&js);
    /* wait for the slowest rank sleeping, not spinning in the gather */
    if (perf_mpi_barrier())
        ok = 0;
    void *buf = NULL;
    size_t len = 0;
    char ebuf[400];
    if (part && ok) {
        buf = part_bytes(pt, &len);
        if (!buf)
            snprintf(slot.err, sizeof(slot.err), "rank %d: serializing the part failed", g_rank);
    }
    if (part && !buf) {
        snprintf(ebuf, sizeof(ebuf), "E%s", slot.err[0] ? slot.err : "failed");
        buf = strdup(ebuf);
        len = buf ? strlen(ebuf) : 0;
    }
    size_t *lens = calloc((size_t)g_size, sizeof(size_t));
    void *all = NULL;
    int rc = perf_mpi_gather(buf, len, &all, lens);
    free(buf);
    if (g_rank == 0 && rc == 0) {
        memset(out, 0, sizeof(*out));
        point_labels(out, o, "strata", wl_name[ps->workload], o->transport, ps->dim, ps->batch,
                     ps->clients);
        size_t off = 0;
        double seconds = 0;
        for (int r = 0; r < g_size; r++) {
            const char *b = (const char *)all + off;
            off += lens[r];
            if ((uint32_t)r >= ps->clients)
                continue;
            if (lens[r] == 0 || b[0] != 'P') {
                fprintf(stderr, "strata-perf %s: rank %d: %.*s\n", title, r,
                        lens[r] > 1 ? (int)lens[r] - 1 : 6, lens[r] > 1 ? b + 1 : "failed");
                rc = -1;
                continue;
            }
            if (part_from_bytes(b + 1, lens[r] - 1, pt)) {
                fprintf(stderr, "strata-perf %s: rank %d: a malformed part\n", title, r);
                rc = -1;
                continue;
            }
            if (pt->seconds > seconds)
                seconds = pt->seconds;
            perf_point_merge(out, pt);
        }
        out->seconds = seconds;
        out->keys_per_s = seconds > 0 ? (double)out->keys / seconds : 0;
        if (j.snap_ok) {
            out->server_cpu_s = j.snap[1].cpu_s - j.snap[0].cpu_s;
            out->server_lookups = j.snap[1].lookups - j.snap[0].lookups;
            out->server_lookup_hits = j.snap[1].hits - j.snap[0].hits;
        }
    }
    free(all);
    free(lens);
    free(pt);
    int32_t verdict = rc;
    if (perf_mpi_bcast(&verdict, sizeof(verdict)))
        verdict = -1;
    return verdict ? -1 : 0;
}

/* Rank 0 runs op on its admin; every rank learns the outcome. */
static int mpi_admin(perf_admin_t *admin, const perf_opts_t *o, int op, uint32_t dim)
{
    mpi_go_t go;
    memset(&go, 0, sizeof(go));
    if (g_rank == 0) {
        strata_status_t st =
            op == ADM_SETUP ? admin_setup(admin, o, dim) : admin_drop(admin, o, dim);
        go.ok = st == STRATA_OK;
        snprintf(go.err, sizeof(go.err), "%s", admin->err);
    }
    if (perf_mpi_bcast(&go, sizeof(go)))
        return -1;
    if (!go.ok && g_rank == 0)
        fprintf(stderr, "strata-perf: %s\n", go.err);
    return go.ok ? 0 : -1;
}

/* ------------------------------------------------------------------------ */
/* Peers                                                                    */
/* ------------------------------------------------------------------------ */

static int peer_kv_dispatch(int memcached, const peer_kv_config_t *c, peer_kv_result_t *r)
{
#if STRATA_PERF_HAVE_PEER_KV
    return memcached ? peer_memcached_run(c, r) : peer_redis_run(c, r);
#else
    (void)c;
    memset(r, 0, sizeof(*r));
    snprintf(r->note, sizeof(r->note), "built without hiredis/libmemcached (strata_peer_kv)");
    (void)memcached;
    return PEER_KV_SKIPPED;
#endif
}

/* peer_kv reports p50 and p99 only: the point's histogram is rebuilt from
 * them (the larger half of the batches at p50, the rest at p99), so its
 * p50 and p99 are the measured ones; p90 reads as p99 and p999/max as p99:
 * bounds, not measurements (mean too). */
static void peer_kv_point(const peer_kv_result_t *r, perf_point_t *pt)
{
    pt->seconds = r->seconds;
    pt->batches = r->batches;
    pt->keys = r->keys;
    pt->errors = r->errors;
    pt->keys_per_s = r->keys_per_s;
    uint64_t upper = r->batches / 2;
    if (r->p50_us > 0)
        hdr_record_n(&pt->lat, (uint64_t)(r->p50_us * 1e3), r->batches - upper);
    if (r->p99_us > 0)
        hdr_record_n(&pt->lat, (uint64_t)(r->p99_us * 1e3), upper);
    if (r->server_cpu_s_per_mkeys >= 0)
        pt->server_cpu_s = r->server_cpu_s_per_mkeys * (double)r->keys / 1e6;
}

/* Run the asked peers for every (dim, batch) on the serve workload, one
 * client, the key stream of Strata's client 0. Appends to pts. */
static int run_peers(const perf_opts_t *o, perf_point_t *pts, size_t *n, size_t cap)
{
    const size_t nstream = stream_len(o);
    uint64_t *ranks = malloc(nstream * sizeof(uint64_t));
    if (!ranks)
        return -1;
    dist_fill(&o->dist, o->keys, stream_seed(o, 0), ranks, nstream);
    static const struct {
        int bit;
        const char *name;
    } peers[3] = {{PEER_REDIS, "redis"}, {PEER_MEMCACHED, "memcached"}, {PEER_ROCKSDB, "rocksdb"}};
    int skipped[3] = {0, 0, 0};
    for (uint32_t di = 0; di < o->ndims && !g_signal; di++)
        for (uint32_t bi = 0; bi < o->nbatches && !g_signal; bi++)
            for (int p = 0; p < 3 && !g_signal; p++) {
                if (!(o->peers & peers[p].bit) || skipped[p] || *n >= cap)
                    continue;
                const uint32_t dim = o->dims[di], batch = o->batches[bi];
                perf_point_t *pt = &pts[*n];
                memset(pt, 0, sizeof(*pt));
                point_labels(pt, o, peers[p].name, "serve",
                             peers[p].bit == PEER_ROCKSDB ? "embedded" : "tcp", dim, batch, 1);
                pt->tables = 1;
                char title[96];
                snprintf(title, sizeof(title), "[peer %s] dim %u batch %u", peers[p].name, dim,
                         batch);
                fprintf(stderr, "strata-perf %s: loading %" PRIu64 " keys of %u bytes, %.1f s\n",
                        title, o->keys, 4 * dim, o->warmup + o->seconds);
                int rc;
                char note[200];
                if (peers[p].bit == PEER_ROCKSDB) {
                    peer_rocksdb_config_t c;
                    memset(&c, 0, sizeof(c));
                    c.keys = ranks;
                    c.nkeys_stream = nstream;
                    c.nkeys_loaded = o->keys;
                    c.value_bytes = 4 * dim;
                    c.batch = batch;
                    c.seconds = o->seconds;
                    c.warmup_s = o->warmup;
                    c.stop = &g_stop;
                    peer_rocksdb_result_t r;
                    rc = peer_rocksdb_run(&c, &r, &pt->lat);
                    snprintf(note, sizeof(note), "%s", r.note);
                    if (rc == 0) {
                        pt->seconds = r.seconds;
                        pt->batches = r.batches;
                        pt->keys = r.keys;
                        pt->errors = r.errors;
                        pt->keys_per_s = r.keys_per_s;
                        pt->server_cpu_s = r.cpu_s; /* embedded: the whole process */
                    }
                } else {
                    peer_kv_config_t c;
                    memset(&c, 0, sizeof(c));
                    c.keys = ranks;
                    c.nkeys_stream = nstream;
                    c.nkeys_loaded = o->keys;
                    c.value_bytes = 4 * dim;
                    c.batch = batch;
                    c.pipeline = 1;
                    c.connections = 1;
                    c.seconds = o->seconds;
                    c.warmup_s = o->warmup;
                    c.server_cpu = -1;
                    c.client_cpu = -1;
                    peer_kv_result_t r;
                    rc = peer_kv_dispatch(peers[p].bit == PEER_MEMCACHED, &c, &r);
                    snprintf(note, sizeof(note), "%s", r.note);
                    if (rc == 0 && r.ok)
                        peer_kv_point(&r, pt);
                    else if (rc == 0)
                        rc = -1;
                }
                if (rc == PEER_KV_SKIPPED || rc == PEER_ROCKSDB_SKIPPED) {
                    fprintf(stderr, "strata-perf: peer %s skipped: %s\n", peers[p].name, note);
                    skipped[p] = 1;
                    continue;
                }
                if (rc != 0) {
                    fprintf(stderr, "strata-perf %s: failed: %s\n", title, note);
                    continue;
                }
                point_summary(title, pt);
                if (note[0])
                    fprintf(stderr, "strata-perf %s: %s\n", title, note);
                char line[2048];
                perf_point_json(pt, line, sizeof(line));
                printf("%s\n", line);
                fflush(stdout);
                (*n)++;
            }
    free(ranks);
    return 0;
}

/* ------------------------------------------------------------------------ */
/* The run                                                                  */
/* ------------------------------------------------------------------------ */

static int has_workload(const perf_opts_t *o, int w)
{
    for (uint32_t k = 0; k < o->nworkloads; k++)
        if (o->workloads[k] == w)
            return 1;
    return 0;
}

static uint32_t max_u32(const uint32_t *v, uint32_t n)
{
    uint32_t m = 0;
    for (uint32_t i = 0; i < n; i++)
        if (v[i] > m)
            m = v[i];
    return m;
}

/* The client counts of a run (MPI: those <= the world size; default it). */
static uint32_t run_clients(const perf_opts_t *o, uint32_t *out)
{
    uint32_t n = 0;
    if (g_size > 0 && !o->clients_given) {
        out[0] = (uint32_t)g_size;
        return 1;
    }
    for (uint32_t i = 0; i < o->nclients; i++)
        if (g_size <= 0 || o->clients[i] <= (uint32_t)g_size)
            out[n++] = o->clients[i];
    return n;
}

static void write_run_json(const perf_opts_t *o, int argc, char **argv)
{
    char path[600];
    snprintf(path, sizeof(path), "%s/run.json", o->out);
    FILE *f = fopen(path, "w");
    if (!f)
        return;
    fprintf(f, "{\"strata_version\":\"%s\",\"argv\":\"", strata_version_string());
    for (int i = 0; i < argc; i++)
        for (const char *c = argv[i];; c++) {
            if (!*c) {
                if (i + 1 < argc)
                    fputc(' ', f);
                break;
            }
            if (*c == '"' || *c == '\\')
                fprintf(f, "\\%c", *c);
            else if ((unsigned char)*c >= 0x20)
                fputc(*c, f);
        }
    const char *tls = getenv("UCX_TLS"), *dev = getenv("UCX_NET_DEVICES");
    fprintf(f,
            "\",\"transport\":\"%s\",\"servers\":%u,\"keys\":%" PRIu64 ",\"tables\":%u,"
            "\"capacity\":%" PRIu64 ",\"eviction\":\"%s\",\"dist\":\"%s\",\"seconds\":%g,"
            "\"ops\":%" PRIu64 ",\"warmup\":%g,\"seed\":%" PRIu64 ",\"mpi_ranks\":%d,"
            "\"ucx_tls\":\"%s\",\"ucx_net_devices\":\"%s\","
            "\"mixed\":\"2+ clients: even ranks serve, odd ranks train; 1 client alternates\","
            "\"train_latency\":\"lookup (INIT_MISSING) + push, gradient computation excluded\"}\n",
            o->transport, o->local ? o->servers : 0, o->keys, o->tables, table_capacity(o),
            o->dram_budget ? "lru" : "none", o->dist.name, o->seconds, o->ops, o->warmup, o->seed,
            g_size, tls ? tls : "", dev ? dev : "");
    fclose(f);
}

/* Fork mode or MPI mode, for the point loop. */
typedef struct run_ctx {
    int mpi;            /**< 1: every rank runs the loop in step */
    perf_admin_t admin; /**< MPI rank 0's admin client */
} run_ctx_t;

static int ctx_admin(run_ctx_t *ctx, const perf_opts_t *o, int op, uint32_t dim)
{
    if (ctx->mpi)
        return mpi_admin(&ctx->admin, o, op, dim);
    char err[400];
    if (admin_call((uint32_t)op, dim, NULL, err, sizeof(err)) != STRATA_OK) {
        fprintf(stderr, "strata-perf: %s\n", err);
        return -1;
    }
    return 0;
}

static int ctx_point(run_ctx_t *ctx, const perf_opts_t *o, const point_spec_t *ps,
                     perf_point_t *out)
{
    return ctx->mpi ? run_point_mpi(o, ps, &ctx->admin, out) : run_point_fork(o, ps, out);
}

/* Print a measured point (stderr summary, stdout JSON) and keep it. */
static void emit_point(const point_spec_t *ps, perf_point_t *pts, size_t *np)
{
    if (g_rank != 0)
        return;
    char title[128], line[2048];
    point_title(title, sizeof(title), ps);
    point_summary(title, &pts[*np]);
    perf_point_json(&pts[*np], line, sizeof(line));
    printf("%s\n", line);
    fflush(stdout);
    (*np)++;
}

/* Every Strata point, per dim: the load points (each on freshly created
 * tables), else an unreported preload of the keyspace, then the other
 * workloads on the loaded tables; the tables are dropped after the dim.
 * Returns 1 when a point failed (or the run was interrupted), else 0. */
static int run_strata(run_ctx_t *ctx, const perf_opts_t *o, perf_point_t *pts, size_t *np)
{
    uint32_t cl[PERF_LIST_MAX];
    const uint32_t ncl = run_clients(o, cl);
    uint32_t others = 0;
    for (uint32_t k = 0; k < o->nworkloads; k++)
        others += o->workloads[k] != WL_LOAD;
    const uint32_t total =
        (others + (uint32_t)has_workload(o, WL_LOAD)) * o->ndims * o->nbatches * ncl;
    uint32_t idx = 0;
    for (uint32_t di = 0; di < o->ndims; di++) {
        const uint32_t dim = o->dims[di];
        if (g_signal || ctx_admin(ctx, o, ADM_SETUP, dim))
            return 1;
        int fresh = 1; /* the tables are empty */
        if (has_workload(o, WL_LOAD))
            for (uint32_t bi = 0; bi < o->nbatches; bi++)
                for (uint32_t ci = 0; ci < ncl; ci++) {
                    if (g_signal || (!fresh && ctx_admin(ctx, o, ADM_SETUP, dim)))
                        return 1;
                    point_spec_t ps = {WL_LOAD, dim, o->batches[bi], cl[ci], ++idx, total, 1};
                    if (ctx_point(ctx, o, &ps, &pts[*np]))
                        return 1;
                    fresh = 0;
                    emit_point(&ps, pts, np);
                }
        if (fresh && others) {
            point_spec_t ps = {WL_LOAD, dim, 1024, max_u32(cl, ncl), 0, total, 0};
            perf_point_t *tmp = calloc(1, sizeof(*tmp));
            int bad = !tmp || g_signal || ctx_point(ctx, o, &ps, tmp);
            if (!bad && g_rank == 0)
                fprintf(stderr,
                        "strata-perf [preload] dim %u: %" PRIu64 " keys x %u tables in %.2f s\n",
                        dim, tmp->keys / o->tables, o->tables, tmp->seconds);
            free(tmp);
            if (bad)
                return 1;
        }
        for (uint32_t k = 0; k < o->nworkloads; k++) {
            if (o->workloads[k] == WL_LOAD)
                continue;
            for (uint32_t bi = 0; bi < o->nbatches; bi++)
                for (uint32_t ci = 0; ci < ncl; ci++) {
                    point_spec_t ps = {o->workloads[k], dim, o->batches[bi], cl[ci], ++idx,
                                       total,           1};
                    if (g_signal || ctx_point(ctx, o, &ps, &pts[*np]))
                        return 1;
                    emit_point(&ps, pts, np);
                }
        }
        if (ctx_admin(ctx, o, ADM_DROP, dim))
            return 1;
    }
    return 0;
}

/* The local cluster (sm, tcp) and its lifetime. */
static cluster_t g_cluster;
static int g_cluster_up;

static void local_env(const perf_opts_t *o)
{
    const char *want = !strcmp(o->local, "sm") ? "sm,self,tcp" : "tcp,self";
    const char *had = getenv("UCX_TLS");
    if (had && strcmp(had, want))
        fprintf(stderr, "strata-perf: --local %s: UCX_TLS=%s replaces UCX_TLS=%s\n", o->local, want,
                had);
    setenv("UCX_TLS", want, 1);
    setenv("UCX_NET_DEVICES", "lo", 0);
    setenv("UCX_WARN_UNUSED_ENV_VARS", "n", 0);
}

/* Start --local's cluster and fill g_conn. 0, 77 or -1. */
static int local_start(const perf_opts_t *o)
{
    if (!strcmp(o->local, "netns")) {
        /* the watchdog must know the namespaces and directory before it forks */
        int rc = netns_prepare(&g_netns, o->servers);
        if (rc != 0)
            return rc;
        if (cluster_watchdog_start(netns_watchdog_cleanup, &g_netns))
            return -1;
        rc = netns_start(&g_netns);
        for (uint32_t i = 0; i < g_netns.n; i++)
            if (g_netns.pid[i] > 0)
                cluster_watchdog_watch(g_netns.pid[i]);
        if (rc != 0)
            return rc;
        size_t off = 0;
        for (uint32_t i = 0; i < o->servers; i++)
            off += (size_t)snprintf(g_conn.servers + off, sizeof(g_conn.servers) - off,
                                    "%s" PERF_NETNS_NET ".%u:%u", i ? "," : "", i + 1,
                                    PERF_NETNS_PORT);
        snprintf(g_conn.secret, sizeof(g_conn.secret), "%s", g_netns.secret);
        g_conn.secret_len = strlen(g_conn.secret);
        g_conn.have_secret = 1;
        setenv("UCX_TLS", "tcp,self", 1);
        setenv("UCX_NET_DEVICES", g_netns.root_if, 1);
        setenv("UCX_WARN_UNUSED_ENV_VARS", "n", 0);
        fprintf(stderr,
                "strata-perf: %u servers in network namespaces %ss0.. on " PERF_NETNS_NET
                ".1-%u, clients on %s (" PERF_NETNS_NET ".254); logs in %s\n",
                o->servers, g_netns.prefix, o->servers, g_netns.root_if, g_netns.dir);
        return 0;
    }
    local_env(o);
    if (cluster_watchdog_start(NULL, NULL))
        return -1;
    if (cluster_start(&g_cluster, o->servers, NULL) != 0) {
        fprintf(stderr, "strata-perf: could not start the local cluster (STRATA_SERVER_BIN=%s)\n",
                server_bin());
        return -1;
    }
    g_cluster_up = 1;
    snprintf(g_conn.servers, sizeof(g_conn.servers), "%s", g_cluster.servers);
    snprintf(g_conn.secret, sizeof(g_conn.secret), "%s", g_cluster.secret);
    g_conn.secret_len = strlen(g_conn.secret);
    g_conn.have_secret = 1;
    fprintf(stderr, "strata-perf: %u local servers at %s, UCX_TLS=%s (logs in %s)\n", o->servers,
            g_cluster.servers, getenv("UCX_TLS"), g_cluster.dir);
    return 0;
}

static void local_stop(void)
{
    if (g_cluster_up) {
        if (cluster_stop(&g_cluster) != 0)
            fprintf(stderr, "strata-perf: a server did not exit 0; logs kept in %s\n",
                    g_cluster.dir);
        g_cluster_up = 0;
    }
    netns_teardown();
    cluster_watchdog_release();
}

/* --hold: write <out>/cluster and <out>/secret, wait for a signal. */
static int hold_cluster(const perf_opts_t *o)
{
    char path[600], spath[600];
    snprintf(spath, sizeof(spath), "%s/secret", o->out);
    snprintf(path, sizeof(path), "%s/cluster", o->out);
    FILE *s = fopen(spath, "w");
    FILE *f = fopen(path, "w");
    if (!s || !f) {
        fprintf(stderr, "strata-perf: writing %s: %s\n", path, strerror(errno));
        if (s)
            fclose(s);
        if (f)
            fclose(f);
        return -1;
    }
    fprintf(s, "%s\n", g_conn.secret);
    fclose(s);
    char abs[PATH_MAX];
    if (!realpath(spath, abs))
        snprintf(abs, sizeof(abs), "%s", spath);
    fprintf(f, "# strata-perf --hold: %s\n", o->transport);
    char list[sizeof(g_conn.servers)];
    snprintf(list, sizeof(list), "%s", g_conn.servers);
    char *save = NULL;
    for (char *t = strtok_r(list, ",", &save); t; t = strtok_r(NULL, ",", &save))
        fprintf(f, "server %s\n", t);
    fprintf(f, "secret_file %s\n", abs);
    fclose(f);
    printf("cluster file: %s\nclient environment: UCX_TLS=%s UCX_NET_DEVICES=%s\n", path,
           getenv("UCX_TLS"), getenv("UCX_NET_DEVICES") ? getenv("UCX_NET_DEVICES") : "");
    printf("holding the cluster until SIGINT/SIGTERM\n");
    fflush(stdout);
    while (!g_signal)
        pause();
    return 0;
}

static int run_mpi(const perf_opts_t *o, perf_point_t *pts, size_t *np);

int main(int argc, char **argv)
{
    perf_opts_t o;
    int mpi = perf_mpi_launched();
    if (mpi && !STRATA_HAVE_MPI) {
        fprintf(stderr, "strata-perf: started by an MPI launcher, but built without MPI "
                        "(install libopenmpi-dev and reconfigure)\n");
        return 2;
    }
    if (mpi) {
        if (perf_mpi_init(&argc, &argv, &g_rank, &g_size)) {
            fprintf(stderr, "strata-perf: MPI_Init failed\n");
            return 1;
        }
    }
    if (parse_opts(argc, argv, &o)) {
        if (mpi)
            perf_mpi_finalize();
        return 2;
    }
    if (mpi && o.local) {
        if (g_rank == 0)
            fprintf(stderr, "strata-perf: under MPI use --cluster FILE; start a local cluster "
                            "with `strata-perf --local sm --hold --out DIR` and pass "
                            "--cluster DIR/cluster\n");
        perf_mpi_finalize();
        return 2;
    }
    g_coord_pid = getpid();
    g_tty = isatty(2);
    if (!mpi || g_rank == 0) {
        if (mkdir(o.out, 0755) && errno != EEXIST) {
            fprintf(stderr, "strata-perf: --out %s: %s\n", o.out, strerror(errno));
            if (mpi)
                perf_mpi_abort(1);
            return 1;
        }
    }
    g_conn.cluster_file = o.cluster_file;
    if (o.secret_file && read_secret_file(o.secret_file, &g_conn)) {
        if (mpi)
            perf_mpi_abort(2);
        return 2;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    /* the points: strata's, then the peers' */
    uint32_t cl[PERF_LIST_MAX];
    uint32_t ncl = run_clients(&o, cl);
    size_t cap = (size_t)(o.nworkloads * ncl + 3u) * o.ndims * o.nbatches;
    perf_point_t *pts = calloc(cap ? cap : 1, sizeof(perf_point_t));
    if (!pts) {
        fprintf(stderr, "strata-perf: out of memory\n");
        return 1;
    }
    size_t np = 0;
    int rc = 1;

    if (mpi) {
        rc = run_mpi(&o, pts, &np);
        if (g_rank == 0 && np > 0) {
            write_run_json(&o, argc, argv);
            if (perf_report_write(pts, np, o.out, o.plots))
                rc = 1;
            else
                fprintf(stderr, "strata-perf: %zu points in %s/results.json, results.csv%s\n", np,
                        o.out, o.plots ? " and PNG plots" : "");
        }
        free(pts);
        perf_mpi_finalize();
        return rc;
    }

    g_shm =
        mmap(NULL, sizeof(perf_shm_t), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (g_shm == MAP_FAILED) {
        fprintf(stderr, "strata-perf: mmap: %s\n", strerror(errno));
        return 1;
    }
    atexit(netns_teardown);
    if (o.local) {
        int lr = local_start(&o);
        if (lr != 0) {
            local_stop();
            free(pts);
            return lr == 77 ? 77 : 1;
        }
        if (o.hold) {
            rc = hold_cluster(&o) ? 1 : 0;
            local_stop();
            free(pts);
            return g_signal && rc == 0 ? 0 : rc;
        }
    }
    char err[400];
    if (admin_start(&o) || admin_call(ADM_HELLO, 0, NULL, err, sizeof(err)) != STRATA_OK) {
        fprintf(stderr, "strata-perf: %s\n",
                g_admin_pid ? err : "starting the admin process failed");
        goto out;
    }

    run_ctx_t ctx = {.mpi = 0};
    int failed = run_strata(&ctx, &o, pts, &np);
    admin_stop();
    if (o.peers && !failed && !g_signal)
        run_peers(&o, pts, &np, cap);
    rc = failed || g_signal ? 1 : 0;
    if (np > 0) {
        write_run_json(&o, argc, argv);
        if (perf_report_write(pts, np, o.out, o.plots))
            rc = 1;
        else
            fprintf(stderr, "strata-perf: %zu points in %s/results.json, results.csv%s\n", np,
                    o.out, o.plots ? " and PNG plots" : "");
    }
out:
    children_kill();
    admin_stop();
    local_stop();
    munmap(g_shm, sizeof(perf_shm_t));
    g_shm = NULL;
    free(pts);
    if (g_signal) {
        fprintf(stderr, "strata-perf: interrupted by signal %d\n", (int)g_signal);
        rc = 130;
    }
    return rc;
}

/* The MPI run: run_strata with every rank in step. */
static int run_mpi(const perf_opts_t *o, perf_point_t *pts, size_t *np)
{
    uint32_t cl[PERF_LIST_MAX];
    if (run_clients(o, cl) == 0) {
        if (g_rank == 0)
            fprintf(stderr, "strata-perf: no --clients value fits %d ranks\n", g_size);
        return 2;
    }
    if (g_rank == 0) {
        fprintf(stderr, "strata-perf: MPI mode, %d ranks, cluster %s\n", g_size, o->cluster_file);
        if (o->peers)
            fprintf(stderr, "strata-perf: --peers is ignored under MPI\n");
    }
    run_ctx_t ctx;
    memset(&ctx, 0, sizeof(ctx));
    ctx.mpi = 1;
    int failed = run_strata(&ctx, o, pts, np);
    if (ctx.admin.client)
        strata_client_destroy(ctx.admin.client);
    return failed ? 1 : 0;
}
