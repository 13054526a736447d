/*
 * examples/inference/infer.c — an inference service's read path: a
 * read-only Strata client serving "requests", one batched lookup each.
 *
 *   infer --servers H:P,H:P --secret S --table NAME [options]
 *   infer --local [--local-servers N] [options]
 *
 * A request is one user's feature ids: --fields fields (default 26) of
 * --ids ids each (default 4), every id drawn from a Zipf(--zipf) law over
 * --vocab ids (defaults 1.1 and 20000), the Strata key of id i of field f
 * being f << 56 | i (as examples/dlrm/dlrm.py writes them). For each
 * request the service
 *   1. looks the 104 keys up with ONE strata_rtable_lookup (flags 0: a
 *      read-only lookup; absent keys read as the initializer's values),
 *   2. pools each field's rows (mean) and scores the request with a toy
 *      model, sigmoid(sum_f dot(pool_f, w_f)) for a fixed vector w,
 * and times 1+2 from the moment its keys are ready. At the end it prints
 * requests/s, latency percentiles (p50/p90/p99/p99.9/max), the share of
 * keys found, and the client's counters (one-sided reads through the
 * location cache, through the index, keys found absent one-sided, keys
 * read by RPC), as text and as one JSON line on stdout.
 *
 * The client is read-only (read_only = 1) in read mode --read-mode
 * (default auto: one-sided wherever UCX can read server memory — shared
 * memory on one host, RDMA verbs — and batched RPC over TCP).
 *
 * --local starts a cluster of --local-servers strata-servers (default 2) on
 * 127.0.0.1 (tests/cluster.c; UCX_TLS=sm,self,tcp and UCX_NET_DEVICES=lo
 * unless set), then, through a read-write client, creates the table
 * (dim --dim, Adagrad) and loads the rows of the --load-frac (default 0.9)
 * most popular ids of every field (lookups with INIT_MISSING), so the
 * rarest ids stay absent, as ids never seen in training are. That client
 * is closed before the read-only one connects. In this mode every answer
 * is checked: a loaded key must come back FOUND and an unloaded one
 * MISSING; any other code fails the run.
 *
 * The first --warmup requests (default 1000) are served before the clock
 * starts: they fill the client's location cache. The run then lasts
 * --seconds (default 5) or --requests requests, whichever ends first.
 *
 * Exit status: 0 when every lookup succeeded (and, --local, every found
 * code was right and every server exited 0 on SIGTERM); 1 otherwise; 2
 * for bad options; 77 when the library was built without UCX; 130 when
 * interrupted.
 *
 * Process rules (as perf/strata_demo.c): a watchdog process forked before
 * the servers SIGTERMs them if this process dies without stopping them
 * (SIGKILL, a crash); SIGINT/SIGTERM/SIGHUP end the run at the next
 * request and the cluster is stopped; every client call is bounded by
 * the client's 10-s timeout. Nothing is forked once a client exists.
 *
 * Threading: single-threaded.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cluster.h"
#include "perf_util.h"
#include "strata.h"

#define INF_TIMEOUT_MS  10000
#define INF_LOAD_BATCH  4096
#define INF_MAX_FIELDS  128 /**< the field is the key's top byte: f << 56 */
#define INF_LAT_MAX     (64u << 20)

/* ------------------------------------------------------------------------ */
/* Options                                                                  */
/* ------------------------------------------------------------------------ */

typedef struct inf_opts {
    const char *servers;
    const char *secret;
    const char *table;
    int local;
    uint32_t local_servers;
    double seconds;     /**< 0: no time limit */
    uint64_t requests;  /**< 0: no count limit */
    uint64_t warmup;
    uint32_t fields;
    uint32_t ids;       /**< per field per request */
    uint64_t vocab;     /**< ids per field */
    double zipf;
    double load_frac;   /**< --local: share of each field's ids loaded */
    uint32_t dim;       /**< --local: the table's dim */
    strata_read_mode_t read_mode;
    uint64_t seed;
} inf_opts_t;

static void usage(FILE *f)
{
    fprintf(f,
            "usage: infer (--servers H:P,... --secret S --table NAME | --local [--local-servers N])\n"
            "             [--seconds S] [--requests N] [--warmup N] [--fields F] [--ids K]\n"
            "             [--vocab V] [--zipf A] [--read-mode auto|onesided|rpc] [--seed N]\n"
            "             [--dim D] [--load-frac X]\n"
            "  Serves requests of F fields x K ids (default 26 x 4; key = field << 56 | id,\n"
            "  ids Zipf(A = 1.1) over V = 20000 per field) with a read-only client: one\n"
            "  strata_rtable_lookup per request, a toy score, latency percentiles,\n"
            "  requests/s and the client's counters. Runs --seconds (default 5) or\n"
            "  --requests, whichever ends first, after --warmup requests (default 1000).\n"
            "  --local: start N (default 2) strata-servers on 127.0.0.1, create the table\n"
            "  (default name infer_emb, dim D = 16) and load the --load-frac (0.9) most\n"
            "  popular ids of each field through a read-write client first; check every\n"
            "  found code.\n");
}

static int parse_u64(const char *name, const char *v, uint64_t lo, uint64_t hi, uint64_t *out)
{
    return perf_parse_u64("infer", name, v, lo, hi, out);
}

static int parse_double(const char *name, const char *v, double lo, double hi, double *out)
{
    return perf_parse_double("infer", name, v, lo, hi, out);
}

static int parse_opts(int argc, char **argv, inf_opts_t *o)
{
    memset(o, 0, sizeof(*o));
    o->local_servers = 2;
    o->warmup = 1000;
    o->fields = 26;
    o->ids = 4;
    o->vocab = 20000;
    o->zipf = 1.1;
    o->load_frac = 0.9;
    o->dim = 16;
    o->read_mode = STRATA_READ_AUTO;
    o->seed = 42;
    int have_seconds = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            exit(0);
        }
        if (!strcmp(a, "--local")) {
            o->local = 1;
            continue;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "infer: unknown option or missing value: %s\n", a);
            usage(stderr);
            return -1;
        }
        const char *v = argv[++i];
        uint64_t u;
        if (!strcmp(a, "--servers")) {
            o->servers = v;
        } else if (!strcmp(a, "--secret")) {
            o->secret = v;
        } else if (!strcmp(a, "--table")) {
            o->table = v;
        } else if (!strcmp(a, "--local-servers")) {
            if (parse_u64(a, v, 1, CLUSTER_MAX, &u))
                return -1;
            o->local_servers = (uint32_t)u;
        } else if (!strcmp(a, "--seconds")) {
            if (parse_double(a, v, 0.001, 86400, &o->seconds))
                return -1;
            have_seconds = 1;
        } else if (!strcmp(a, "--requests")) {
            if (parse_u64(a, v, 1, UINT64_MAX / 2, &o->requests))
                return -1;
        } else if (!strcmp(a, "--warmup")) {
            if (parse_u64(a, v, 0, UINT64_MAX / 2, &o->warmup))
                return -1;
        } else if (!strcmp(a, "--fields")) {
            if (parse_u64(a, v, 1, INF_MAX_FIELDS, &u))
                return -1;
            o->fields = (uint32_t)u;
        } else if (!strcmp(a, "--ids")) {
            if (parse_u64(a, v, 1, 4096, &u))
                return -1;
            o->ids = (uint32_t)u;
        } else if (!strcmp(a, "--vocab")) {
            if (parse_u64(a, v, 1, 1ull << 28, &o->vocab))
                return -1;
        } else if (!strcmp(a, "--zipf")) {
            if (parse_double(a, v, 0.0, 10.0, &o->zipf))
                return -1;
        } else if (!strcmp(a, "--load-frac")) {
            if (parse_double(a, v, 0.0, 1.0, &o->load_frac))
                return -1;
        } else if (!strcmp(a, "--dim")) {
            if (parse_u64(a, v, 1, 4096, &u))
                return -1;
            o->dim = (uint32_t)u;
        } else if (!strcmp(a, "--seed")) {
            if (parse_u64(a, v, 0, UINT64_MAX, &o->seed))
                return -1;
        } else if (!strcmp(a, "--read-mode")) {
            if (!strcmp(v, "auto"))
                o->read_mode = STRATA_READ_AUTO;
            else if (!strcmp(v, "onesided"))
                o->read_mode = STRATA_READ_ONESIDED;
            else if (!strcmp(v, "rpc"))
                o->read_mode = STRATA_READ_RPC;
            else {
                fprintf(stderr, "infer: --read-mode %s: want auto, onesided or rpc\n", v);
                return -1;
            }
        } else {
            fprintf(stderr, "infer: unknown option: %s\n", a);
            usage(stderr);
            return -1;
        }
    }
    if (o->local && o->servers) {
        fprintf(stderr, "infer: --local and --servers exclude each other\n");
        return -1;
    }
    if (!o->local && (!o->servers || !o->table)) {
        fprintf(stderr, "infer: give --servers and --table (and --secret), or --local\n");
        usage(stderr);
        return -1;
    }
    if (!o->local && !o->secret)
        o->secret = getenv("STRATA_SECRET");
    if (!o->table)
        o->table = "infer_emb";
    if (!have_seconds && !o->requests)
        o->seconds = 5;
    return 0;
}

static const char *mode_name(strata_read_mode_t m)
{
    return m == STRATA_READ_ONESIDED ? "onesided" : m == STRATA_READ_RPC ? "rpc" : "auto";
}

/* ------------------------------------------------------------------------ */
/* Zipf ids (the clock, generator and sampler: perf/perf_util.h)            */
/* ------------------------------------------------------------------------ */

/* Ids of a field: Zipf rank r (0 = most popular) -> id (r * mul + add_f)
 * mod vocab, a bijection (gcd(mul, vocab) = 1) that scatters the popular
 * ids over the id space, differently for each field. */
typedef struct inf_ids {
    perf_zipf_cdf_t zipf; /**< Zipf(--zipf) over ranks 0..vocab-1 */
    uint64_t vocab;
    uint64_t mul;
    uint64_t add[INF_MAX_FIELDS];
    uint64_t loaded; /**< --local: ranks below this were loaded */
} inf_ids_t;

static int ids_init(inf_ids_t *z, const inf_opts_t *o)
{
    memset(z, 0, sizeof(*z));
    z->vocab = o->vocab;
    if (perf_zipf_cdf_init(&z->zipf, o->vocab, o->zipf))
        return -1;
    z->mul = (0x9e3779b97f4a7c15ull % o->vocab) | 1;
    while (o->vocab > 1 && perf_gcd_u64(z->mul, o->vocab) != 1)
        z->mul = (z->mul + 2) % o->vocab;
    if (o->vocab == 1)
        z->mul = 0;
    for (uint32_t f = 0; f < INF_MAX_FIELDS; f++)
        z->add[f] = perf_mix64(o->seed ^ (0x1000u + f)) % o->vocab;
    z->loaded = (uint64_t)floor(o->load_frac * (double)o->vocab + 0.5);
    return 0;
}

static uint64_t key_of(const inf_ids_t *z, uint32_t field, uint64_t rank)
{
    uint64_t id = (uint64_t)(((unsigned __int128)rank * z->mul + z->add[field]) % z->vocab);
    return (uint64_t)field << 56 | id;
}

/* ------------------------------------------------------------------------ */
/* Latency samples                                                          */
/* ------------------------------------------------------------------------ */

/* Percentiles over the samples from `from` on (a copy is sorted). */
static int lat_summary(perf_lat_t *l, size_t from, double out[6])
{
    size_t n = l->n - from;
    memset(out, 0, 6 * sizeof(double));
    if (n == 0)
        return 0;
    const uint64_t *s = perf_lat_sorted(l, from);
    if (!s)
        return -1;
    double sum = 0;
    for (size_t i = 0; i < n; i++)
        sum += (double)s[i];
    static const double q[4] = {0.50, 0.90, 0.99, 0.999};
    for (int k = 0; k < 4; k++)
        out[k] = (double)perf_pct_sorted(s, n, q[k]) / 1000.0;
    out[4] = (double)s[n - 1] / 1000.0;
    out[5] = sum / (double)n / 1000.0;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Process hygiene: signals (the watchdog: tests/cluster.h)                 */
/* ------------------------------------------------------------------------ */

static volatile sig_atomic_t g_signal;

static void on_signal(int sig)
{
    g_signal = sig;
}

/* ------------------------------------------------------------------------ */
/* Clients                                                                  */
/* ------------------------------------------------------------------------ */

static strata_status_t connect_client(const char *servers, const char *secret, int read_only,
                                      strata_read_mode_t mode, strata_client_t **c)
{
    strata_client_params_t p;
    memset(&p, 0, sizeof(p));
    p.field_mask = STRATA_CLIENT_FIELD_SERVERS | STRATA_CLIENT_FIELD_READ_ONLY |
                   STRATA_CLIENT_FIELD_TIMEOUT_MS | STRATA_CLIENT_FIELD_READ_MODE;
    p.servers = servers;
    if (secret) {
        p.field_mask |= STRATA_CLIENT_FIELD_SECRET;
        p.secret = secret;
        p.secret_len = strlen(secret);
    }
    p.read_only = read_only;
    p.timeout_ms = INF_TIMEOUT_MS;
    p.read_mode = mode;
    return strata_client_connect(&p, c);
}

static void report_error(const char *what, strata_status_t st)
{
    fprintf(stderr, "infer: %s: %s: %s\n", what, strata_status_string(st), strata_last_error());
}

/* --local: create the table and load the rows of the ranks below
 * ids->loaded in every field, through a read-write client (closed after). */
static int load_table(const inf_opts_t *o, const cluster_t *cl, const inf_ids_t *ids)
{
    strata_client_t *c = NULL;
    strata_rtable_t *t = NULL;
    uint64_t *keys = malloc(INF_LOAD_BATCH * sizeof(uint64_t));
    float *rows = malloc((size_t)INF_LOAD_BATCH * o->dim * sizeof(float));
    uint8_t *found = malloc(INF_LOAD_BATCH);
    int rc = -1;
    if (!keys || !rows || !found) {
        fprintf(stderr, "infer: loading: out of memory\n");
        goto out;
    }
    strata_status_t st = connect_client(cl->servers, cl->secret, 0, STRATA_READ_AUTO, &c);
    if (st != STRATA_OK) {
        report_error("connecting the loader (read-write) client", st);
        rc = st == STRATA_ERR_UNSUPPORTED ? 77 : -1;
        goto out;
    }
    strata_table_schema_t s;
    memset(&s, 0, sizeof(s));
    s.field_mask = STRATA_SCHEMA_FIELD_NAME | STRATA_SCHEMA_FIELD_DIM |
                   STRATA_SCHEMA_FIELD_CAPACITY | STRATA_SCHEMA_FIELD_OPTIMIZER |
                   STRATA_SCHEMA_FIELD_NSHARDS;
    s.name = o->table;
    s.dim = o->dim;
    s.capacity = 2 * (uint64_t)o->fields * o->vocab; /* every key fits twice over */
    s.nshards = 2;                                    /* per server */
    s.optimizer.type = STRATA_OPT_ADAGRAD;
    s.optimizer.field_mask = STRATA_OPT_FIELD_LR;
    s.optimizer.lr = 0.05f;
    st = strata_client_create_table(c, &s);
    if (st == STRATA_OK)
        st = strata_client_open_table(c, o->table, &t);
    if (st != STRATA_OK) {
        report_error("creating the table", st);
        goto out;
    }
    double t0 = perf_now_s();
    uint64_t created = 0, total = 0;
    size_t n = 0;
    for (uint32_t f = 0; f < o->fields; f++) {
        for (uint64_t r = 0; r < ids->loaded; r++) {
            keys[n++] = key_of(ids, f, r);
            int last = f + 1 == o->fields && r + 1 == ids->loaded;
            if (n < INF_LOAD_BATCH && !last)
                continue;
            st = strata_rtable_lookup(t, keys, n, rows, found, STRATA_LOOKUP_INIT_MISSING);
            if (st != STRATA_OK) {
                report_error("loading (lookup with INIT_MISSING)", st);
                goto out;
            }
            for (size_t i = 0; i < n; i++)
                created += found[i] == STRATA_ROW_CREATED;
            total += n;
            n = 0;
        }
    }
    if (created != total) {
        fprintf(stderr, "infer: loading: %" PRIu64 " of %" PRIu64 " keys created (want all)\n",
                created, total);
        goto out;
    }
    fprintf(stderr,
            "infer: table %s (dim %u, Adagrad) loaded: %" PRIu64 " rows (%" PRIu64 " of %" PRIu64
            " ids x %u fields) in %.2f s\n",
            o->table, o->dim, created, ids->loaded, o->vocab, o->fields, perf_now_s() - t0);
    rc = 0;
out:
    if (c)
        strata_client_destroy(c);
    free(keys);
    free(rows);
    free(found);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* The service                                                              */
/* ------------------------------------------------------------------------ */

typedef struct inf_result {
    uint64_t requests;   /**< measured (after warm-up) */
    uint64_t keys;
    uint64_t found;      /**< keys answered FOUND */
    uint64_t wrong;      /**< --local: found codes that contradict the load */
    double elapsed_s;
    double lat_us[6];    /**< p50, p90, p99, p99.9, max, mean */
    double score_mean;
    strata_client_stats_t stats; /**< measured phase only */
    uint32_t onesided_servers;
    uint32_t nservers;
    strata_status_t status;
} inf_result_t;

static double ratio(uint64_t a, uint64_t b)
{
    return b ? (double)a / (double)b : 0.0;
}

static int serve(const inf_opts_t *o, const char *servers, const char *secret,
                 const inf_ids_t *ids, inf_result_t *res)
{
    memset(res, 0, sizeof(*res));
    res->status = STRATA_OK;
    strata_client_t *c = NULL;
    strata_rtable_t *t = NULL;
    perf_lat_t lat = {0};
    const size_t per = (size_t)o->fields * o->ids;
    uint64_t *keys = malloc(per * sizeof(uint64_t));
    uint64_t *ranks = malloc(per * sizeof(uint64_t));
    uint8_t *found = malloc(per);
    float *rows = NULL, *w = NULL, *pool = NULL;
    int rc = 1;
    if (!keys || !ranks || !found)
        goto nomem;

    strata_status_t st = connect_client(servers, secret, 1, o->read_mode, &c);
    if (st != STRATA_OK) {
        report_error("connecting the read-only client", st);
        res->status = st;
        rc = st == STRATA_ERR_UNSUPPORTED ? 77 : 1;
        goto out;
    }
    st = strata_client_open_table(c, o->table, &t);
    if (st != STRATA_OK) {
        report_error("opening the table", st);
        res->status = st;
        goto out;
    }
    const uint32_t dim = strata_rtable_schema(t)->dim;
    for (uint32_t i = 0;; i++) {
        int m = strata_client_server_onesided(c, i);
        if (m < 0)
            break;
        res->nservers++;
        res->onesided_servers += m == 1;
    }
    rows = malloc(per * dim * sizeof(float));
    w = malloc((size_t)o->fields * dim * sizeof(float));
    pool = malloc(dim * sizeof(float));
    if (!rows || !w || !pool)
        goto nomem;
    for (size_t j = 0; j < (size_t)o->fields * dim; j++) /* the toy model */
        w[j] = (float)(0.5 * sin(0.37 * (double)j + 1.0));
    fprintf(stderr,
            "infer: read-only client, read mode %s: %u of %u servers one-sided; table %s dim %u; "
            "requests of %u fields x %u ids = %zu keys\n",
            mode_name(o->read_mode), res->onesided_servers, res->nservers, o->table, dim,
            o->fields, o->ids, per);

    uint64_t rng = o->seed * 0x2545f4914f6cdd1dull + 1;
    strata_client_stats_t s0, s1;
    memset(&s0, 0, sizeof(s0));
    double score_sum = 0;
    double t0 = 0, t_line = 0, t_now = 0;
    uint64_t line_req = 0;
    for (uint64_t q = 0;; q++) {
        const int measuring = q >= o->warmup;
        if (q == o->warmup) {
            strata_client_get_stats(c, &s0);
            t0 = t_line = t_now = perf_now_s();
            if (o->warmup)
                fprintf(stderr, "infer: %" PRIu64 " warm-up requests served; measuring\n",
                        o->warmup);
        }
        if (measuring) {
            if (g_signal)
                break;
            if (o->requests && res->requests >= o->requests)
                break;
            if (o->seconds > 0 && t_now - t0 >= o->seconds)
                break;
        } else if (g_signal) {
            break;
        }
        /* a request arrives: one user's ids */
        for (uint32_t f = 0; f < o->fields; f++)
            for (uint32_t k = 0; k < o->ids; k++) {
                size_t i = (size_t)f * o->ids + k;
                ranks[i] = perf_zipf_cdf_rank(&ids->zipf, perf_rand_u01(&rng));
                keys[i] = key_of(ids, f, ranks[i]);
            }
        const uint64_t a = perf_now_ns();
        st = strata_rtable_lookup(t, keys, per, rows, found, 0);
        if (st != STRATA_OK) {
            report_error("strata_rtable_lookup", st);
            res->status = st;
            break;
        }
        double logit = 0;
        for (uint32_t f = 0; f < o->fields; f++) {
            for (uint32_t d = 0; d < dim; d++)
                pool[d] = 0;
            for (uint32_t k = 0; k < o->ids; k++) {
                const float *r = rows + ((size_t)f * o->ids + k) * dim;
                for (uint32_t d = 0; d < dim; d++)
                    pool[d] += r[d];
            }
            const float *wf = w + (size_t)f * dim;
            float dot = 0;
            for (uint32_t d = 0; d < dim; d++)
                dot += pool[d] * wf[d];
            logit += dot / (float)o->ids;
        }
        const double score = 1.0 / (1.0 + exp(-logit));
        const uint64_t b = perf_now_ns();
        if (!measuring)
            continue;
        score_sum += score;
        if (perf_lat_add(&lat, b - a, INF_LAT_MAX))
            goto nomem;
        res->requests++;
        res->keys += per;
        for (size_t i = 0; i < per; i++) {
            res->found += found[i] == STRATA_ROW_FOUND;
            if (o->local) {
                uint8_t want = ranks[i] < ids->loaded ? STRATA_ROW_FOUND : STRATA_ROW_MISSING;
                if (found[i] != want && res->wrong++ < 5)
                    fprintf(stderr,
                            "infer: key %#" PRIx64 " (rank %" PRIu64 "): found code %u, want %u\n",
                            keys[i], ranks[i], found[i], want);
            }
        }
        if ((res->requests & 63) == 0) {
            t_now = perf_now_s();
            if (t_now - t_line >= 1.0) {
                double p[6];
                if (lat_summary(&lat, lat.mark, p))
                    goto nomem;
                fprintf(stderr, "[%5.1fs] %.0f requests/s, p50 %.1f us, p99 %.1f us\n",
                        t_now - t0, (double)(res->requests - line_req) / (t_now - t_line), p[0],
                        p[2]);
                lat.mark = lat.n;
                line_req = res->requests;
                t_line = t_now;
            }
        }
    }
    res->elapsed_s = perf_now_s() - t0;
    strata_client_get_stats(c, &s1);
    perf_client_stats_delta(&s1, &s0, &res->stats);
    if (lat_summary(&lat, 0, res->lat_us))
        goto nomem;
    res->score_mean = res->requests ? score_sum / (double)res->requests : 0;
    rc = res->status == STRATA_OK && res->wrong == 0 && !g_signal ? 0 : 1;
    goto out;
nomem:
    fprintf(stderr, "infer: out of memory\n");
    res->status = STRATA_ERR_NOMEM;
    rc = 1;
out:
    if (c)
        strata_client_destroy(c);
    perf_lat_free(&lat);
    free(keys);
    free(ranks);
    free(found);
    free(rows);
    free(w);
    free(pool);
    return rc;
}

static void print_result(const inf_opts_t *o, const char *servers, const inf_result_t *r,
                         int ok, int servers_exit_ok)
{
    const strata_client_stats_t *s = &r->stats;
    const double rps = r->elapsed_s > 0 ? (double)r->requests / r->elapsed_s : 0;
    printf("infer: %" PRIu64 " requests in %.2f s: %.0f requests/s, %.2f M keys/s "
           "(%u fields x %u ids per request)\n",
           r->requests, r->elapsed_s, rps, rps * o->fields * o->ids / 1e6, o->fields, o->ids);
    printf("infer: latency per request (lookup + score): p50 %.1f us, p90 %.1f us, p99 %.1f us, "
           "p99.9 %.1f us, max %.1f us, mean %.1f us\n",
           r->lat_us[0], r->lat_us[1], r->lat_us[2], r->lat_us[3], r->lat_us[4], r->lat_us[5]);
    printf("infer: keys found %.2f%%; unique keys %" PRIu64 ": one-sided via location cache %.1f%%, "
           "via index %.1f%%, absent (one-sided) %.1f%%, by RPC %.1f%%; torn retries %" PRIu64
           ", RPCs %" PRIu64 "\n",
           100.0 * ratio(r->found, r->keys), s->unique_keys,
           100.0 * ratio(s->onesided_hits, s->unique_keys),
           100.0 * ratio(s->onesided_index, s->unique_keys),
           100.0 * ratio(s->onesided_absent, s->unique_keys),
           100.0 * ratio(s->rpc_keys, s->unique_keys), s->torn_retries, s->rpcs);
    printf("{\"example\":\"inference\",\"ok\":%s,\"local\":%s,\"servers\":%u,"
           "\"onesided_servers\":%u,\"read_mode\":\"%s\",\"table\":\"%s\",",
           ok ? "true" : "false", o->local ? "true" : "false", r->nservers, r->onesided_servers,
           mode_name(o->read_mode), o->table);
    printf("\"fields\":%u,\"ids_per_field\":%u,\"keys_per_request\":%u,\"vocab\":%" PRIu64
           ",\"zipf\":%.2f,\"warmup\":%" PRIu64 ",\"requests\":%" PRIu64
           ",\"elapsed_s\":%.3f,\"requests_per_s\":%.1f,\"keys_per_s\":%.0f,",
           o->fields, o->ids, o->fields * o->ids, o->vocab, o->zipf, o->warmup, r->requests,
           r->elapsed_s, rps, rps * o->fields * o->ids);
    printf("\"latency_us\":{\"p50\":%.2f,\"p90\":%.2f,\"p99\":%.2f,\"p999\":%.2f,\"max\":%.2f,"
           "\"mean\":%.2f},",
           r->lat_us[0], r->lat_us[1], r->lat_us[2], r->lat_us[3], r->lat_us[4], r->lat_us[5]);
    printf("\"found_ratio\":%.4f,\"wrong_found_codes\":%" PRIu64 ",\"score_mean\":%.4f,",
           ratio(r->found, r->keys), r->wrong, r->score_mean);
    printf("\"client\":{\"lookups\":%" PRIu64 ",\"unique_keys\":%" PRIu64
           ",\"onesided_hits\":%" PRIu64 ",\"onesided_index\":%" PRIu64
           ",\"onesided_absent\":%" PRIu64 ",\"rpc_keys\":%" PRIu64 ",\"torn_retries\":%" PRIu64
           ",\"stale_locations\":%" PRIu64 ",\"rpcs\":%" PRIu64 ",\"relayouts\":%" PRIu64
           ",\"bytes_sent\":%" PRIu64 ",\"bytes_received\":%" PRIu64
           ",\"bytes_onesided\":%" PRIu64 "}",
           s->lookups, s->unique_keys, s->onesided_hits, s->onesided_index, s->onesided_absent,
           s->rpc_keys, s->torn_retries, s->stale_locations, s->rpcs, s->relayouts,
           s->bytes_sent, s->bytes_received, s->bytes_onesided);
    if (o->local)
        printf(",\"servers_exit_ok\":%s", servers_exit_ok ? "true" : "false");
    printf(",\"servers_list\":\"");
    for (const char *p = servers; *p; p++) /* JSON-plain */
        putchar(*p == '"' || *p == '\\' || (unsigned char)*p < 0x20 ? '?' : *p);
    printf("\"}\n");
    fflush(stdout);
}

int main(int argc, char **argv)
{
    inf_opts_t o;
    if (parse_opts(argc, argv, &o))
        return 2;
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    int rc = 1, cluster_up = 0, servers_ok = 1;
    static cluster_t cl; /* static: cluster.c's atexit handler may see it after main */
    inf_ids_t ids;
    inf_result_t res;
    memset(&res, 0, sizeof(res));
    if (ids_init(&ids, &o)) {
        fprintf(stderr, "infer: Zipf table of %" PRIu64 " ids: out of memory\n", o.vocab);
        return 1;
    }
    const char *servers = o.servers, *secret = o.secret;
    if (o.local) {
        setenv("UCX_TLS", "sm,self,tcp", 0);
        setenv("UCX_NET_DEVICES", "lo", 0);
        if (cluster_watchdog_start(NULL, NULL)) {
            fprintf(stderr, "infer: starting the watchdog: %s\n", strerror(errno));
            goto out;
        }
        if (cluster_start(&cl, o.local_servers, NULL) != 0) {
            fprintf(stderr, "infer: could not start the local cluster (STRATA_SERVER_BIN=%s)\n",
                    getenv("STRATA_SERVER_BIN") ? getenv("STRATA_SERVER_BIN")
                                                : STRATA_SERVER_BIN);
            goto out;
        }
        cluster_up = 1;
        fprintf(stderr, "infer: %u strata-servers at %s (UCX_TLS=%s; logs in %s)\n", cl.n,
                cl.servers, getenv("UCX_TLS"), cl.dir);
        servers = cl.servers;
        secret = cl.secret;
        int lr = load_table(&o, &cl, &ids);
        if (lr) {
            rc = lr == 77 ? 77 : 1;
            goto out;
        }
        if (g_signal)
            goto out;
    }
    rc = serve(&o, servers, secret, &ids, &res);
    if (cluster_up) {
        servers_ok = cluster_stop(&cl) == 0;
        cluster_up = 0;
        cluster_watchdog_release();
        if (!servers_ok) {
            fprintf(stderr, "infer: a strata-server did not exit 0; logs kept in %s\n", cl.dir);
            if (rc == 0)
                rc = 1;
        }
    }
    if (rc != 77 && (res.requests || res.status == STRATA_OK))
        print_result(&o, servers, &res, rc == 0, servers_ok);
out:
    if (cluster_up) {
        if (cluster_stop(&cl) != 0)
            fprintf(stderr, "infer: a strata-server did not exit 0; logs kept in %s\n", cl.dir);
    }
    cluster_watchdog_release();
    perf_zipf_cdf_free(&ids.zipf);
    if (g_signal) {
        fprintf(stderr, "infer: interrupted by signal %d\n", (int)g_signal);
        rc = 130;
    }
    return rc;
}
