/*
 * server/server.c — the strata-server service loop and request handlers.
 *
 * One service thread owns everything: it progresses the UCX worker (which
 * also serves emulated gets over TCP), accepts connections, and handles
 * requests in arrival order. The AM callback only queues a request (UCX
 * keeps the data, UCP_AM_FLAG_PERSISTENT_DATA); handlers run after
 * progress returns, so they may send. Because the thread is the only
 * writer of every local shard, the core writer rule holds without locks.
 *
 * Invariants:
 *  - a session answers LIST/DESCRIBE/LOOKUP/PUSH/CREATE/DROP/STATS only
 *    after AUTH succeeded; rkeys leave the server only in DESCRIBE replies;
 *  - every request with a readable header gets exactly one reply, an
 *    error reply when it is bad, and the server keeps serving;
 *  - a reply buffer lives until its send completes (send_done frees it).
 *
 * Threading: see server.h.
 */
#define _GNU_SOURCE
#include "server/server.h"

#include <dirent.h>
#include <ftw.h>
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/hash.h"
#include "core/schema.h"
#include "core/shard.h"
#include "core/snapshot.h"
#include "core/status.h"
#include "core/table.h"
#include "hierarchy/tier.h"
#include "rdma/auth.h"
#include "rdma/ucx.h"
#include "rdma/wire.h"

#define SRV_MAX_SESSIONS 1024

typedef enum sess_state {
    SESS_NEW = 0,       /**< connected, no HELLO yet */
    SESS_CHALLENGED,    /**< HELLO answered, AUTH expected */
    SESS_AUTHED,        /**< may use tables */
    SESS_REFUSED,       /**< AUTH failed: every later call fails, reconnect */
    SESS_DEAD           /**< endpoint failed; closed by the loop */
} sess_state_t;

typedef struct srv_session {
    ucp_ep_h ep;                               /**< accepted endpoint */
    sess_state_t state;
    uint32_t role;                             /**< WIRE_ROLE_* from HELLO */
    uint8_t client_nonce[WIRE_NONCE_BYTES];
    uint8_t server_nonce[WIRE_NONCE_BYTES];
    uint64_t requests;                         /**< handled, for logs */
} srv_session_t;

typedef struct srv_table {
    uint32_t id;                  /**< never reused within this process */
    core_schema_t schema;         /**< resolved; nshards = shards_per_server */
    uint32_t shards_per_server;
    uint32_t total_shards;        /**< shards_per_server * nservers */
    uint32_t nlocal;              /**< == shards_per_server */
    core_shard_t **shards;        /**< local shard i = global shard i*nservers + index;
                                       for a tiered table, its tier's DRAM shard */
    hier_tier_t **tiers;          /**< NULL, or per local shard its tier manager (DRAM
                                       over NVMe) which owns shards[i] */
} srv_table_t;

/** A received request waiting for the loop. */
typedef struct srv_req {
    void *data;         /**< UCX-owned (persistent) or our copy */
    size_t len;
    ucp_ep_h ep;        /**< reply endpoint, may be NULL */
    int ucx_owned;      /**< release with ucp_am_data_release */
} srv_req_t;

/** A reply in flight; the message follows. */
typedef struct srv_reply {
    rdma_send_slot_t slot;   /**< completion: frees this */
    struct srv *srv;
    size_t len;
    uint64_t msg[];          /**< 8-aligned wire message */
} srv_reply_t;

struct srv {
    srv_config_t cfg;
    rdma_ctx_t *ctx;
    rdma_worker_t *w;
    ucp_listener_h listener;
    uint16_t port;
    volatile sig_atomic_t stop;

    srv_session_t *sessions[SRV_MAX_SESSIONS];
    uint32_t nsessions;
    ucp_conn_request_h pending_conn[64];   /**< accepted by the loop */
    uint32_t npending_conn;

    srv_table_t *tables[SRV_MAX_TABLES];
    uint32_t ntables;
    uint32_t next_table_id;

    srv_req_t *queue;          /**< FIFO of received requests */
    size_t qhead, qtail, qcap;

    uint64_t replies_in_flight;
    /* scratch for routing a batch over local shards (grown, never shrunk) */
    uint32_t *pos;             /**< item positions grouped by local shard */
    uint64_t *skeys;           /**< keys of one shard, contiguous */
    uint8_t *sfound;
    size_t scap;
    float *srows;              /**< rows of one shard's keys (multi-shard reads) */
    size_t srows_cap;          /**< floats srows holds */
    uint32_t start[STRATA_SHARDS_MAX + 1];
    /* counters */
    uint64_t n_requests, n_errors, n_dropped;
};

static void srv_log(const srv_t *s, const char *fmt, ...) CORE_PRINTF(2, 3);
static void srv_log(const srv_t *s, const char *fmt, ...)
{
    if (!s->cfg.verbose)
        return;
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "strata-server[%u]: ", s->cfg.server_index);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

static uint64_t wall_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ------------------------------------------------------------------------ */
/* tables                                                                   */
/* ------------------------------------------------------------------------ */

static void table_destroy(srv_table_t *t)
{
    if (!t)
        return;
    /* Clients on shared memory keep their mapping of a freed region: tell
     * them first that it is no longer current, so they re-describe (and
     * learn the table is gone) instead of reading it. */
    for (uint32_t i = 0; i < t->nlocal; i++)
        if (t->shards[i])
            core_shard_retire(t->shards[i]);
    for (uint32_t i = 0; i < t->nlocal; i++) {
        if (t->tiers)
            hier_tier_destroy(t->tiers[i]); /* and its DRAM shard */
        else
            core_shard_destroy(t->shards[i]);
    }
    core_free(t->tiers);
    core_free(t->shards);
    core_free(t);
}

static srv_table_t *table_by_name(srv_t *s, const char *name)
{
    for (uint32_t i = 0; i < s->ntables; i++)
        if (strcmp(s->tables[i]->schema.name, name) == 0)
            return s->tables[i];
    return NULL;
}

static srv_table_t *table_by_id(srv_t *s, uint32_t id)
{
    for (uint32_t i = 0; i < s->ntables; i++)
        if (s->tables[i]->id == id)
            return s->tables[i];
    return NULL;
}

/** Create a table from a schema whose capacity is the cluster's. */
static strata_status_t table_create(srv_t *s, const strata_table_schema_t *in,
                                    uint32_t shards_per_server, uint64_t dram_budget,
                                    srv_table_t **t_p)
{
    if (shards_per_server == 0 || shards_per_server > STRATA_SHARDS_MAX ||
        (uint64_t)shards_per_server * s->cfg.nservers > STRATA_SHARDS_MAX)
        return core_fail(STRATA_ERR_INVALID_PARAM,
                         "shards_per_server = %u with %u servers: the table may have 1..%u "
                         "shards in all",
                         shards_per_server, s->cfg.nservers, STRATA_SHARDS_MAX);
    strata_table_schema_t sch = *in;
    sch.field_mask |= STRATA_SCHEMA_FIELD_NSHARDS;
    sch.nshards = shards_per_server;
    core_schema_t resolved;
    strata_status_t st = core_schema_resolve(&sch, &resolved);
    if (st != STRATA_OK)
        return st;
    if (table_by_name(s, resolved.name))
        return core_fail(STRATA_ERR_EXISTS, "table %s already exists", resolved.name);
    if (s->ntables == SRV_MAX_TABLES)
        return core_fail(STRATA_ERR_FULL, "at most %u tables per server", SRV_MAX_TABLES);
    uint32_t total = shards_per_server * s->cfg.nservers;
    if (dram_budget && !s->cfg.nvme_dir[0])
        return core_fail(STRATA_ERR_INVALID_PARAM,
                         "table %s: dram_budget needs the server's nvme_dir (the tier below)",
                         resolved.name);
    if (dram_budget && dram_budget < 2ull * total)
        return core_fail(STRATA_ERR_INVALID_PARAM,
                         "table %s: dram_budget %" PRIu64 " is below 2 rows per shard (%u shards)",
                         resolved.name, dram_budget, total);
    if (resolved.s.capacity < total)
        return core_fail(STRATA_ERR_INVALID_PARAM,
                         "capacity %" PRIu64 " is below the table's %u shards",
                         resolved.s.capacity, total);
    srv_table_t *t = core_calloc(1, sizeof(*t));
    if (!t)
        return core_fail(STRATA_ERR_NOMEM, "table: out of memory");
    core_schema_copy(&t->schema, &resolved);
    t->shards_per_server = shards_per_server;
    t->total_shards = total;
    t->nlocal = shards_per_server;
    t->shards = core_calloc(t->nlocal, sizeof(*t->shards));
    if (!t->shards) {
        core_free(t);
        return core_fail(STRATA_ERR_NOMEM, "table: out of memory");
    }
    core_shard_config_t cfg;
    memset(&cfg, 0, sizeof(cfg));
    cfg.dim = resolved.s.dim;
    cfg.optimizer = resolved.s.optimizer;
    cfg.initializer = resolved.s.initializer;
    cfg.admission_threshold = resolved.s.admission_threshold;
    cfg.eviction = resolved.s.eviction;
    cfg.ttl_ns = resolved.s.ttl_seconds * 1000000000ull;
    cfg.huge_pages = 1;
    cfg.arena_ops = rdma_ctx_region_ops(s->ctx);
    cfg.initial_buckets = s->cfg.initial_buckets;
    if (dram_budget && !(t->tiers = core_calloc(t->nlocal, sizeof(*t->tiers)))) {
        core_free(t->shards);
        core_free(t);
        return core_fail(STRATA_ERR_NOMEM, "table: out of memory");
    }
    for (uint32_t i = 0; i < t->nlocal; i++) {
        uint32_t g = i * s->cfg.nservers + s->cfg.server_index;
        /* the cluster's capacity split exactly over the global shards */
        cfg.capacity = resolved.s.capacity / total + (g < resolved.s.capacity % total ? 1 : 0);
        cfg.seed = g;
        if (t->tiers) {
            /* DRAM holds this shard's share of the budget; the rest lives
             * in <nvme_dir>/<table>.<g>/ (docs/tiers.md) */
            char dir[512];
            snprintf(dir, sizeof(dir), "%s/%s.%u", s->cfg.nvme_dir, resolved.name, g);
            if (mkdir(s->cfg.nvme_dir, 0755) != 0 && errno != EEXIST)
                st = core_fail_errno(errno, "nvme_dir %s", s->cfg.nvme_dir);
            else if (mkdir(dir, 0755) != 0 && errno != EEXIST)
                st = core_fail_errno(errno, "nvme dir %s", dir);
            hier_tier_config_t tc;
            memset(&tc, 0, sizeof(tc));
            tc.dram = cfg;
            tc.dram.capacity = dram_budget / total + (g < dram_budget % total ? 1 : 0);
            tc.nvme.dir = dir;
            tc.nvme.expected_keys = cfg.capacity;
            tc.nvme.flags = HIER_NVME_CREATE;
            tc.policy = resolved.s.eviction == STRATA_EVICT_LFU     ? HIER_POLICY_LFU
                        : resolved.s.eviction == STRATA_EVICT_SCORE ? HIER_POLICY_SCORE
                                                                    : HIER_POLICY_LRU;
            if (st == STRATA_OK)
                st = hier_tier_create(&tc, &t->tiers[i]);
            if (st == STRATA_OK)
                t->shards[i] = hier_tier_dram(t->tiers[i]);
        } else {
            st = core_shard_create(&cfg, &t->shards[i]);
        }
        if (st != STRATA_OK) {
            t->nlocal = i;
            table_destroy(t);
            return st;
        }
    }
    t->id = ++s->next_table_id;
    s->tables[s->ntables++] = t;
    *t_p = t;
    return STRATA_OK;
}

static void table_drop(srv_t *s, srv_table_t *t)
{
    for (uint32_t i = 0; i < s->ntables; i++) {
        if (s->tables[i] == t) {
            s->tables[i] = s->tables[--s->ntables];
            break;
        }
    }
    table_destroy(t);
}

static uint64_t table_layout_gen(srv_table_t *t)
{
    uint64_t gen = 0;
    for (uint32_t i = 0; i < t->nlocal; i++) {
        core_shard_layout_t l;
        core_shard_get_layout(t->shards[i], &l);
        gen += l.epoch;
    }
    return gen;
}

/* --- snapshots: <dir>/<table>.<index>-of-<nservers>.snap ------------------ */

static void snapshot_path(const srv_t *s, const char *name, char *out, size_t cap)
{
    snprintf(out, cap, "%s/%s.%u-of-%u.snap", s->cfg.snapshot_dir, name, s->cfg.server_index,
             s->cfg.nservers);
}

static strata_status_t table_save(srv_t *s, srv_table_t *t)
{
    char path[512];
    snapshot_path(s, t->schema.name, path, sizeof(path));
    core_snapshot_writer_t *wr;
    strata_status_t st = core_snapshot_begin(path, &t->schema, &wr);
    if (st != STRATA_OK)
        return st;
    for (uint32_t i = 0; i < t->nlocal; i++) {
        st = core_snapshot_add_shard(wr, t->shards[i]);
        if (st != STRATA_OK) {
            core_snapshot_abort(wr);
            return st;
        }
    }
    return core_snapshot_commit(wr);
}

typedef struct restore_ctx {
    srv_t *s;
    srv_table_t *t;
    uint64_t rows;
} restore_ctx_t;

static strata_status_t restore_on_schema(void *arg, const core_schema_t *schema)
{
    restore_ctx_t *rc = arg;
    if (!rc->t) /* a table created at run time: the snapshot is its only record */
        return table_create(rc->s, &schema->s, schema->s.nshards, 0, &rc->t);
    if (schema->s.dim != rc->t->schema.s.dim)
        return core_fail(STRATA_ERR_DIM_MISMATCH, "snapshot of %s has dim %u, config %u",
                         schema->name, schema->s.dim, rc->t->schema.s.dim);
    return STRATA_OK;
}

static strata_status_t restore_on_row(void *arg, uint64_t key, const float *emb, const float *state,
                                      const core_slot_meta_t *meta)
{
    restore_ctx_t *rc = arg;
    uint32_t g = strata_key_shard(key, rc->t->total_shards);
    if (g % rc->s->cfg.nservers != rc->s->cfg.server_index)
        return core_fail(STRATA_ERR_STALE,
                         "snapshot row %" PRIu64 " belongs to server %u: the cluster's shape "
                         "changed since the snapshot",
                         key, g % rc->s->cfg.nservers);
    rc->rows++;
    return core_shard_restore_row(rc->t->shards[g / rc->s->cfg.nservers], key, emb, state, meta);
}

/** Load a snapshot file into t, or (t NULL) into a table made from the
 *  file's schema. On any error a table made here is dropped again, so
 *  nothing half-loaded is served. */
static strata_status_t table_restore_path(srv_t *s, srv_table_t *t, const char *path)
{
    restore_ctx_t rc = {.s = s, .t = t};
    core_snapshot_load_ops_t ops = {0};
    ops.arg = &rc;
    ops.on_schema = restore_on_schema;
    ops.on_row = restore_on_row;
    strata_status_t st = core_snapshot_load(path, &ops);
    if (st == STRATA_OK) {
        fprintf(stderr, "strata-server[%u]: restored %" PRIu64 " rows of %s from %s\n",
                s->cfg.server_index, rc.rows, rc.t->schema.name, path);
    } else if (!t && rc.t) {
        char msg[400];
        snprintf(msg, sizeof(msg), "%s", strata_last_error());
        table_drop(s, rc.t);
        st = core_fail(st, "%s", msg);
    }
    return st;
}

static strata_status_t table_restore(srv_t *s, srv_table_t *t)
{
    char path[512];
    snapshot_path(s, t->schema.name, path, sizeof(path));
    if (access(path, F_OK) != 0)
        return STRATA_OK;
    return table_restore_path(s, t, path);
}

/** Restore the tables of snapshot_dir that the configuration does not
 *  name (created by clients at run time): "<name>.<index>-of-<n>.snap". */
static strata_status_t restore_dir(srv_t *s)
{
    DIR *d = opendir(s->cfg.snapshot_dir);
    if (!d)
        return errno == ENOENT ? STRATA_OK
                               : core_fail_errno(errno, "snapshot_dir %s", s->cfg.snapshot_dir);
    char suffix[64];
    snprintf(suffix, sizeof(suffix), ".%u-of-%u.snap", s->cfg.server_index, s->cfg.nservers);
    size_t sl = strlen(suffix);
    strata_status_t st = STRATA_OK;
    struct dirent *e;
    while (st == STRATA_OK && (e = readdir(d)) != NULL) {
        size_t nl = strlen(e->d_name);
        if (nl <= sl || strcmp(e->d_name + nl - sl, suffix) != 0 || nl - sl > STRATA_NAME_MAX)
            continue;
        char name[STRATA_NAME_MAX + 1];
        memcpy(name, e->d_name, nl - sl);
        name[nl - sl] = '\0';
        if (table_by_name(s, name))
            continue; /* a configured table, restored already */
        char path[600];
        snprintf(path, sizeof(path), "%s/%s", s->cfg.snapshot_dir, e->d_name);
        st = table_restore_path(s, NULL, path);
    }
    closedir(d);
    return st;
}

/* ------------------------------------------------------------------------ */
/* replies                                                                  */
/* ------------------------------------------------------------------------ */

static void reply_done(void *arg, strata_status_t st)
{
    srv_reply_t *r = arg;
    (void)st; /* a failed reply means the client is gone; its session dies */
    r->srv->replies_in_flight--;
    core_free(r);
}

/** A reply of body_len bytes for request h; NULL on NOMEM. */
static srv_reply_t *reply_new(srv_t *s, const wire_hdr_t *req, uint8_t type, size_t body_len)
{
    srv_reply_t *r = core_malloc(sizeof(*r) + sizeof(wire_hdr_t) + body_len);
    if (!r)
        return NULL;
    r->srv = s;
    r->slot.cb = reply_done;
    r->slot.arg = r;
    r->len = sizeof(wire_hdr_t) + body_len;
    wire_hdr_t *h = (wire_hdr_t *)r->msg;
    wire_hdr_init(h, (uint8_t)(type | WIRE_REPLY_BIT), req ? req->req_id : 0, (uint32_t)body_len);
    return r;
}

static void *reply_body(srv_reply_t *r)
{
    return (uint8_t *)r->msg + sizeof(wire_hdr_t);
}

static wire_hdr_t *reply_hdr(srv_reply_t *r)
{
    return (wire_hdr_t *)r->msg;
}

static void reply_send(srv_t *s, ucp_ep_h ep, srv_reply_t *r)
{
    if (!ep) {
        core_free(r);
        return;
    }
    s->replies_in_flight++;
    strata_status_t st = rdma_am_send(ep, WIRE_AM_REPLY, r->msg, r->len, &r->slot);
    if (st != STRATA_INPROGRESS) {
        s->replies_in_flight--;
        core_free(r);
    }
}

/** Error reply: status and the message of strata_last_error() (or fmt). */
static void reply_error(srv_t *s, ucp_ep_h ep, uint8_t type, uint64_t req_id, strata_status_t st,
                        const char *text)
{
    size_t n = strlen(text);
    if (n > WIRE_ERRMSG_MAX)
        n = WIRE_ERRMSG_MAX;
    wire_hdr_t fake = {.req_id = req_id};
    srv_reply_t *r = reply_new(s, &fake, type, n);
    s->n_errors++;
    if (!r)
        return;
    reply_hdr(r)->status = st;
    memcpy(reply_body(r), text, n);
    srv_log(s, "request type %u: %s: %s", type, strata_status_string(st), text);
    reply_send(s, ep, r);
}

static void reply_fail(srv_t *s, ucp_ep_h ep, const wire_hdr_t *h, strata_status_t st)
{
    reply_error(s, ep, h->type, h->req_id, st, strata_last_error());
}

/* ------------------------------------------------------------------------ */
/* sessions                                                                 */
/* ------------------------------------------------------------------------ */

static srv_session_t *session_by_ep(srv_t *s, ucp_ep_h ep)
{
    for (uint32_t i = 0; i < s->nsessions; i++)
        if (s->sessions[i]->ep == ep)
            return s->sessions[i];
    return NULL;
}

static void on_ep_error(void *arg, ucp_ep_h ep, ucs_status_t status)
{
    srv_t *s = arg;
    srv_session_t *se = session_by_ep(s, ep);
    if (se)
        se->state = SESS_DEAD;
    srv_log(s, "session ended: %s", ucs_status_string(status));
}

static void on_conn(ucp_conn_request_h req, void *arg)
{
    srv_t *s = arg;
    if (s->npending_conn == sizeof(s->pending_conn) / sizeof(s->pending_conn[0]) || s->stop) {
        ucp_listener_reject(s->listener, req);
        return;
    }
    s->pending_conn[s->npending_conn++] = req;
}

static void accept_pending(srv_t *s)
{
    for (uint32_t i = 0; i < s->npending_conn; i++) {
        if (s->nsessions == SRV_MAX_SESSIONS) {
            ucp_listener_reject(s->listener, s->pending_conn[i]);
            continue;
        }
        srv_session_t *se = core_calloc(1, sizeof(*se));
        if (!se) {
            ucp_listener_reject(s->listener, s->pending_conn[i]);
            continue;
        }
        if (rdma_ep_accept(s->w, s->pending_conn[i], on_ep_error, s, &se->ep) != STRATA_OK) {
            srv_log(s, "accept failed: %s", strata_last_error());
            core_free(se);
            continue;
        }
        s->sessions[s->nsessions++] = se;
        srv_log(s, "session opened (%u now)", s->nsessions);
    }
    s->npending_conn = 0;
}

static void reap_sessions(srv_t *s)
{
    for (uint32_t i = 0; i < s->nsessions;) {
        srv_session_t *se = s->sessions[i];
        if (se->state != SESS_DEAD) {
            i++;
            continue;
        }
        /* requests of this session still queued must not reply to it */
        for (size_t q = s->qhead; q != s->qtail; q = (q + 1) % s->qcap)
            if (s->queue[q].ep == se->ep)
                s->queue[q].ep = NULL;
        rdma_ep_close(s->w, se->ep, 1, rdma_now_ns() + 1000000000ull);
        core_free(se);
        s->sessions[i] = s->sessions[--s->nsessions];
    }
}

/* ------------------------------------------------------------------------ */
/* handlers                                                                 */
/* ------------------------------------------------------------------------ */

static void handle_hello(srv_t *s, srv_session_t *se, const wire_hdr_t *h)
{
    if (h->body_len != sizeof(wire_hello_t)) {
        reply_error(s, se->ep, h->type, h->req_id,
                    h->body_len < sizeof(wire_hello_t) ? STRATA_ERR_TRUNCATED : STRATA_ERR_PROTOCOL,
                    "HELLO body must be 40 bytes");
        return;
    }
    if (se->state != SESS_NEW) {
        reply_error(s, se->ep, h->type, h->req_id, STRATA_ERR_PROTOCOL,
                    "HELLO sent twice on one session");
        return;
    }
    wire_hello_t hello;
    memcpy(&hello, wire_body(h), sizeof(hello));
    if (hello.role & ~(uint32_t)WIRE_ROLE_READ_ONLY || hello.reserved) {
        reply_error(s, se->ep, h->type, h->req_id, STRATA_ERR_PROTOCOL,
                    "HELLO role has unknown bits");
        return;
    }
    srv_reply_t *r = reply_new(s, h, WIRE_HELLO, sizeof(wire_challenge_t));
    if (!r)
        return;
    wire_challenge_t *c = reply_body(r);
    memset(c, 0, sizeof(*c));
    if (auth_random(se->server_nonce, WIRE_NONCE_BYTES) != STRATA_OK) {
        core_free(r);
        reply_fail(s, se->ep, h, STRATA_ERR_IO);
        return;
    }
    memcpy(se->client_nonce, hello.client_nonce, WIRE_NONCE_BYTES);
    memcpy(c->server_nonce, se->server_nonce, WIRE_NONCE_BYTES);
    c->server_index = s->cfg.server_index;
    c->nservers = s->cfg.nservers;
    se->role = hello.role;
    se->state = SESS_CHALLENGED;
    reply_send(s, se->ep, r);
}

static void handle_auth(srv_t *s, srv_session_t *se, const wire_hdr_t *h)
{
    if (se->state != SESS_CHALLENGED) {
        reply_error(s, se->ep, h->type, h->req_id, STRATA_ERR_PROTOCOL,
                    "AUTH before HELLO (or twice)");
        return;
    }
    if (h->body_len != sizeof(wire_auth_t)) {
        reply_error(s, se->ep, h->type, h->req_id,
                    h->body_len < sizeof(wire_auth_t) ? STRATA_ERR_TRUNCATED : STRATA_ERR_PROTOCOL,
                    "AUTH body must be 32 bytes");
        return;
    }
    uint8_t expect[WIRE_MAC_BYTES];
    auth_mac(s->cfg.secret, s->cfg.secret_len, se->client_nonce, se->server_nonce, se->role,
             expect);
    if (!auth_mac_equal(expect, ((const wire_auth_t *)wire_body(h))->mac)) {
        /* one try per session: the client must reconnect */
        se->state = SESS_REFUSED;
        reply_error(s, se->ep, h->type, h->req_id, STRATA_ERR_AUTH,
                    "authentication failed: the client's secret differs from the server's");
        return;
    }
    se->state = SESS_AUTHED;
    srv_reply_t *r = reply_new(s, h, WIRE_AUTH, sizeof(wire_welcome_t));
    if (!r)
        return;
    wire_welcome_t *wl = reply_body(r);
    memset(wl, 0, sizeof(*wl));
    wl->max_msg = WIRE_MSG_MAX;
    wl->max_keys = s->cfg.max_keys;
    wl->credits = s->cfg.credits;
    srv_log(s, "session authenticated (%s)",
            se->role & WIRE_ROLE_READ_ONLY ? "read-only" : "read-write");
    reply_send(s, se->ep, r);
}

static void handle_list(srv_t *s, srv_session_t *se, const wire_hdr_t *h)
{
    srv_reply_t *r = reply_new(s, h, WIRE_LIST, 8 + s->ntables * sizeof(wire_list_entry_t));
    if (!r)
        return;
    uint8_t *b = reply_body(r);
    uint32_t head[2] = {s->ntables, 0};
    memcpy(b, head, 8);
    for (uint32_t i = 0; i < s->ntables; i++) {
        wire_list_entry_t e;
        memset(&e, 0, sizeof(e));
        e.table_id = s->tables[i]->id;
        e.dim = s->tables[i]->schema.s.dim;
        memcpy(e.name, s->tables[i]->schema.name, strlen(s->tables[i]->schema.name));
        memcpy(b + 8 + i * sizeof(e), &e, sizeof(e));
    }
    reply_send(s, se->ep, r);
}

static void handle_describe(srv_t *s, srv_session_t *se, const wire_hdr_t *h)
{
    char name[WIRE_NAME_BYTES];
    if (h->body_len != WIRE_NAME_BYTES) {
        reply_error(s, se->ep, h->type, h->req_id,
                    h->body_len < WIRE_NAME_BYTES ? STRATA_ERR_TRUNCATED : STRATA_ERR_PROTOCOL,
                    "DESCRIBE body must be a 64-byte name");
        return;
    }
    strata_status_t st = wire_decode_name(wire_body(h), name);
    if (st != STRATA_OK) {
        reply_fail(s, se->ep, h, st);
        return;
    }
    srv_table_t *t = table_by_name(s, name);
    if (!t) {
        char msg[128];
        snprintf(msg, sizeof(msg), "no table named %s on this server", name);
        reply_error(s, se->ep, h->type, h->req_id, STRATA_ERR_UNKNOWN_TABLE, msg);
        return;
    }
    size_t body = sizeof(wire_table_desc_t);
    core_shard_layout_t lay[STRATA_SHARDS_MAX];
    for (uint32_t i = 0; i < t->nlocal; i++) {
        core_shard_get_layout(t->shards[i], &lay[i]);
        body += sizeof(wire_shard_desc_t) + wire_pad8(rdma_region_of(lay[i].arena)->rkey_len) +
                wire_pad8(rdma_region_of(lay[i].index)->rkey_len);
    }
    srv_reply_t *r = reply_new(s, h, WIRE_DESCRIBE, body);
    if (!r)
        return;
    uint8_t *b = reply_body(r);
    memset(b, 0, body);
    wire_table_desc_t *d = (wire_table_desc_t *)b;
    d->table_id = t->id;
    d->total_shards = t->total_shards;
    d->nlocal = t->nlocal;
    d->flags = t->tiers ? WIRE_TABLE_TIERED : 0;
    wire_encode_schema(&t->schema.s, t->shards_per_server, &d->schema);
    size_t off = sizeof(*d);
    uint64_t gen = 0;
    for (uint32_t i = 0; i < t->nlocal; i++) {
        const rdma_region_t *ar = rdma_region_of(lay[i].arena);
        const rdma_region_t *ir = rdma_region_of(lay[i].index);
        wire_shard_desc_t *sd = (wire_shard_desc_t *)(b + off);
        sd->shard = i * s->cfg.nservers + s->cfg.server_index;
        sd->arena_rkey_len = (uint32_t)ar->rkey_len;
        sd->index_rkey_len = (uint32_t)ir->rkey_len;
        sd->arena_addr = (uint64_t)(uintptr_t)lay[i].arena->base;
        sd->arena_len = lay[i].capacity * lay[i].stride;
        sd->index_addr = (uint64_t)(uintptr_t)lay[i].index->base;
        sd->nbuckets = lay[i].nbuckets;
        sd->epoch = lay[i].epoch;
        sd->stride = lay[i].stride;
        gen += lay[i].epoch;
        off += sizeof(*sd);
        memcpy(b + off, ar->rkey_buf, ar->rkey_len);
        off += wire_pad8(ar->rkey_len);
        memcpy(b + off, ir->rkey_buf, ir->rkey_len);
        off += wire_pad8(ir->rkey_len);
    }
    d->layout_gen = gen;
    reply_send(s, se->ep, r);
}

/** Route keys over t's local shards: s->pos/s->start. STALE if a key
 *  belongs to another server. */
static strata_status_t route_local(srv_t *s, srv_table_t *t, const uint64_t *keys, uint32_t n)
{
    if (n > s->scap) {
        size_t cap = n < 1024 ? 1024 : n;
        uint32_t *pos = core_realloc(s->pos, cap * sizeof(*pos));
        if (pos)
            s->pos = pos;
        uint64_t *sk = core_realloc(s->skeys, cap * sizeof(*sk));
        if (sk)
            s->skeys = sk;
        uint8_t *sf = core_realloc(s->sfound, cap);
        if (sf)
            s->sfound = sf;
        if (!pos || !sk || !sf)
            return core_fail(STRATA_ERR_NOMEM, "routing scratch: out of memory");
        s->scap = cap;
    }
    uint32_t nl = t->nlocal, ns = s->cfg.nservers;
    memset(s->start, 0, (nl + 1) * sizeof(uint32_t));
    for (uint32_t i = 0; i < n; i++) {
        uint32_t g = strata_key_shard(keys[i], t->total_shards);
        if (g % ns != s->cfg.server_index)
            return core_fail(STRATA_ERR_STALE,
                             "key %" PRIu64 " belongs to shard %u on server %u, not this one "
                             "(%u): the client's shard map is stale",
                             keys[i], g, g % ns, s->cfg.server_index);
        s->start[g / ns + 1]++;
    }
    for (uint32_t i = 0; i < nl; i++)
        s->start[i + 1] += s->start[i];
    uint32_t fill[STRATA_SHARDS_MAX];
    memcpy(fill, s->start, nl * sizeof(uint32_t));
    for (uint32_t i = 0; i < n; i++) {
        uint32_t g = strata_key_shard(keys[i], t->total_shards);
        s->pos[fill[g / ns]++] = i;
    }
    return STRATA_OK;
}

static strata_status_t check_table_call(srv_t *s, srv_session_t *se, const wire_hdr_t *h,
                                        srv_table_t **t_p)
{
    (void)se;
    srv_table_t *t = table_by_id(s, h->table_id);
    if (!t)
        return core_fail(STRATA_ERR_UNKNOWN_TABLE,
                         "table id %u is not served here (dropped, or never described)",
                         h->table_id);
    *t_p = t;
    return STRATA_OK;
}

static void handle_lookup(srv_t *s, srv_session_t *se, const wire_hdr_t *h)
{
    srv_table_t *t = NULL;
    strata_status_t st = check_table_call(s, se, h, &t);
    if (st != STRATA_OK)
        goto fail;
    const uint64_t *keys;
    st = wire_decode_lookup(h, s->cfg.max_keys, &keys);
    if (st != STRATA_OK)
        goto fail;
    uint32_t n = h->count, dim = t->schema.s.dim;
    int init = (h->flags & WIRE_LOOKUP_INIT_MISSING) != 0;
    int want_loc = (h->flags & WIRE_LOOKUP_WANT_LOC) != 0;
    if (h->flags & ~(uint32_t)(WIRE_LOOKUP_INIT_MISSING | WIRE_LOOKUP_WANT_LOC)) {
        st = core_fail(STRATA_ERR_PROTOCOL, "LOOKUP flags 0x%x has unknown bits", h->flags);
        goto fail;
    }
    if (init && (se->role & WIRE_ROLE_READ_ONLY)) {
        st = core_fail(STRATA_ERR_READ_ONLY,
                       "LOOKUP with INIT_MISSING creates rows: not allowed on a read-only "
                       "session");
        goto fail;
    }
    st = route_local(s, t, keys, n);
    if (st != STRATA_OK)
        goto fail;
    srv_reply_t *r = reply_new(s, h, WIRE_LOOKUP, wire_lookup_reply_bytes(n, dim, want_loc));
    if (!r) {
        st = core_fail(STRATA_ERR_NOMEM, "lookup reply of %u keys: out of memory", n);
        goto fail;
    }
    uint8_t *found = reply_body(r);
    memset(found + n, 0, wire_pad8(n) - n);
    wire_loc_t *loc = want_loc ? (wire_loc_t *)(found + wire_pad8(n)) : NULL;
    float *rows = (float *)(found + wire_pad8(n) + (want_loc ? sizeof(wire_loc_t) * n : 0));
    uint64_t now = wall_ns();
    for (uint32_t sh = 0; sh < t->nlocal; sh++) {
        uint32_t m = s->start[sh + 1] - s->start[sh];
        if (m == 0)
            continue;
        const uint32_t *idx = s->pos + s->start[sh];
        core_shard_t *shard = t->shards[sh];
        if (t->tiers) {
            /* DRAM, then NVMe (batched io_uring reads), promoting as the
             * table's policy says; creates absent rows when asked */
            st = hier_tier_lookup(t->tiers[sh], keys, idx, m, rows, found, now,
                                  init ? HIER_LOOKUP_CREATE : 0);
            if (st != STRATA_OK) {
                core_free(r);
                goto fail;
            }
        } else if (init) {
            st = core_shard_find_or_insert(shard, keys, idx, m, rows, found, now, true);
            if (st != STRATA_OK) {
                core_free(r);
                goto fail;
            }
        } else if (t->nlocal == 1) {
            core_lookup_batch(&shard, 1, keys, n, rows, found, now);
        } else {
            for (uint32_t j = 0; j < m; j++)
                s->skeys[j] = keys[idx[j]];
            /* rows land in place: gather into a scratch (kept and grown,
             * like the routing scratch) then scatter */
            size_t need = (size_t)m * dim;
            if (need > s->srows_cap) {
                float *nr = core_realloc(s->srows, need * sizeof(float));
                if (!nr) {
                    core_free(r);
                    st = core_fail(STRATA_ERR_NOMEM, "lookup scratch: out of memory");
                    goto fail;
                }
                s->srows = nr;
                s->srows_cap = need;
            }
            float *tmp = s->srows;
            core_lookup_batch(&shard, 1, s->skeys, m, tmp, s->sfound, now);
            for (uint32_t j = 0; j < m; j++) {
                memcpy(rows + (size_t)idx[j] * dim, tmp + (size_t)j * dim, dim * sizeof(float));
                found[idx[j]] = s->sfound[j];
            }
        }
        if (want_loc) {
            uint32_t g = sh * s->cfg.nservers + s->cfg.server_index;
            for (uint32_t j = 0; j < m; j++) {
                uint32_t i = idx[j];
                uint64_t slot;
                uint32_t inc;
                loc[i].shard = g;
                if (core_shard_locate(shard, keys[i], &slot, &inc)) {
                    loc[i].slot = slot;
                    loc[i].incarnation = inc;
                } else {
                    loc[i].slot = UINT64_MAX;
                    loc[i].incarnation = 0;
                }
            }
        }
    }
    reply_hdr(r)->count = n;
    reply_hdr(r)->flags = (uint32_t)table_layout_gen(t);
    reply_send(s, se->ep, r);
    return;
fail:
    reply_fail(s, se->ep, h, st);
}

static void handle_push(srv_t *s, srv_session_t *se, const wire_hdr_t *h)
{
    srv_table_t *t = NULL;
    strata_status_t st = check_table_call(s, se, h, &t);
    if (st != STRATA_OK)
        goto fail;
    if (se->role & WIRE_ROLE_READ_ONLY) {
        st = core_fail(STRATA_ERR_READ_ONLY, "PUSH on a read-only session");
        goto fail;
    }
    const uint64_t *keys;
    const float *grads;
    uint32_t dim = t->schema.s.dim;
    st = wire_decode_push(h, dim, s->cfg.max_keys, &keys, &grads);
    if (st != STRATA_OK)
        goto fail;
    uint32_t n = h->count;
    st = core_check_finite(grads, (size_t)n * dim, dim, "grads");
    if (st != STRATA_OK)
        goto fail;
    st = route_local(s, t, keys, n);
    if (st != STRATA_OK)
        goto fail;
    uint64_t now = wall_ns();
    for (uint32_t sh = 0; sh < t->nlocal; sh++) {
        uint32_t m = s->start[sh + 1] - s->start[sh];
        if (m == 0)
            continue;
        st = t->tiers ? hier_tier_apply(t->tiers[sh], keys, s->pos + s->start[sh], grads, m, now)
                      : core_shard_apply(t->shards[sh], keys, s->pos + s->start[sh], grads, m, now);
        if (st != STRATA_OK)
            goto fail;
    }
    srv_reply_t *r = reply_new(s, h, WIRE_PUSH, 0);
    if (!r)
        return;
    reply_hdr(r)->count = n;
    reply_send(s, se->ep, r);
    return;
fail:
    reply_fail(s, se->ep, h, st);
}

static void handle_create(srv_t *s, srv_session_t *se, const wire_hdr_t *h)
{
    if (se->role & WIRE_ROLE_READ_ONLY) {
        reply_error(s, se->ep, h->type, h->req_id, STRATA_ERR_READ_ONLY,
                    "CREATE on a read-only session");
        return;
    }
    strata_table_schema_t schema;
    char name[WIRE_NAME_BYTES];
    uint32_t sps;
    strata_status_t st = wire_decode_schema(wire_body(h), h->body_len, &schema, name, &sps);
    srv_table_t *t = NULL;
    if (st == STRATA_OK)
        st = table_create(s, &schema, sps, 0, &t);
    if (st != STRATA_OK) {
        reply_fail(s, se->ep, h, st);
        return;
    }
    srv_log(s, "created table %s (dim %u, %u local shards)", t->schema.name, t->schema.s.dim,
            t->nlocal);
    srv_reply_t *r = reply_new(s, h, WIRE_CREATE, 0);
    if (r)
        reply_send(s, se->ep, r);
}

static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path) == 0 ? 0 : 0; /* best effort: go on */
}

/** rm -rf path (best effort; logs nothing). */
static void remove_tree(const char *path)
{
    nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static void handle_drop(srv_t *s, srv_session_t *se, const wire_hdr_t *h)
{
    if (se->role & WIRE_ROLE_READ_ONLY) {
        reply_error(s, se->ep, h->type, h->req_id, STRATA_ERR_READ_ONLY,
                    "DROP on a read-only session");
        return;
    }
    char name[WIRE_NAME_BYTES];
    strata_status_t st = h->body_len == WIRE_NAME_BYTES
                             ? wire_decode_name(wire_body(h), name)
                             : core_fail(h->body_len < WIRE_NAME_BYTES ? STRATA_ERR_TRUNCATED
                                                                       : STRATA_ERR_PROTOCOL,
                                         "DROP body must be a 64-byte name");
    if (st != STRATA_OK) {
        reply_fail(s, se->ep, h, st);
        return;
    }
    srv_table_t *t = table_by_name(s, name);
    if (!t) {
        reply_error(s, se->ep, h->type, h->req_id, STRATA_ERR_UNKNOWN_TABLE,
                    "DROP: no such table");
        return;
    }
    /* One-sided readers may still hold its rkeys: with shared memory they
     * keep reading the (unlinked) pages, which no longer change; over
     * verbs their reads fail. Either way they fall back to RPC and get
     * UNKNOWN_TABLE. */
    /* a dropped tiered table's NVMe directories go too (a shutdown keeps
     * them: that is where the rows survive) */
    uint32_t ntiers = t->tiers ? t->nlocal : 0;
    char tname[STRATA_NAME_MAX + 1];
    snprintf(tname, sizeof(tname), "%s", t->schema.name);
    table_drop(s, t);
    for (uint32_t i = 0; i < ntiers; i++) {
        char dir[512];
        snprintf(dir, sizeof(dir), "%s/%s.%u", s->cfg.nvme_dir, tname,
                 i * s->cfg.nservers + s->cfg.server_index);
        remove_tree(dir);
    }
    srv_reply_t *r = reply_new(s, h, WIRE_DROP, 0);
    if (r)
        reply_send(s, se->ep, r);
}

static void handle_stats(srv_t *s, srv_session_t *se, const wire_hdr_t *h)
{
    srv_table_t *t = NULL;
    strata_status_t st = check_table_call(s, se, h, &t);
    if (st != STRATA_OK) {
        reply_fail(s, se->ep, h, st);
        return;
    }
    srv_reply_t *r = reply_new(s, h, WIRE_STATS, sizeof(wire_stats_t));
    if (!r)
        return;
    wire_stats_t *ws = reply_body(r);
    memset(ws, 0, sizeof(*ws));
    for (uint32_t i = 0; i < t->nlocal; i++) {
        core_shard_stats_t cs;
        core_shard_get_stats(t->shards[i], &cs);
        uint64_t v[15] = {cs.rows,      cs.capacity,     cs.nbuckets,   cs.epoch,
                          cs.lookups,   cs.lookup_hits,  cs.inserts,    cs.updates,
                          cs.evictions, cs.expirations,  cs.not_admitted, cs.torn_retries,
                          cs.bytes_rows, cs.bytes_state, cs.bytes_index};
        for (int k = 0; k < 15; k++)
            ws->v[k] += v[k];
    }
    for (uint32_t i = 0; t->tiers && i < t->nlocal; i++) {
        hier_tier_stats_t ts;
        hier_tier_get_stats(t->tiers[i], &ts);
        uint64_t v[8] = {ts.dram_hits,  ts.dram_misses, ts.nvme_hits,  ts.nvme_misses,
                         ts.promotions, ts.demotions,   ts.writebacks, ts.nvme.keys};
        for (int k = 0; k < 8; k++)
            ws->tier[k] += v[k];
    }
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) == 0)
        ws->server_cpu_ns = (uint64_t)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000000ull +
                            (uint64_t)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1000ull;
    reply_send(s, se->ep, r);
}

static void handle(srv_t *s, srv_req_t *q)
{
    s->n_requests++;
    srv_session_t *se = q->ep ? session_by_ep(s, q->ep) : NULL;
    const wire_hdr_t *h;
    /* copy into 8-aligned storage when UCX's buffer is not */
    strata_status_t st = wire_check_hdr(q->data, q->len, 0, &h);
    if (st != STRATA_OK) {
        if (q->len >= sizeof(wire_hdr_t) && se) {
            wire_hdr_t raw;
            memcpy(&raw, q->data, sizeof(raw));
            uint8_t type = raw.type & 0x7f;
            reply_error(s, se->ep, type, raw.req_id, st, strata_last_error());
        } else {
            s->n_dropped++;
        }
        return;
    }
    if (!se || se->state == SESS_DEAD) {
        s->n_dropped++; /* no session to answer (it was reaped) */
        return;
    }
    se->requests++;
    if (h->type == WIRE_HELLO) {
        handle_hello(s, se, h);
        return;
    }
    if (h->type == WIRE_AUTH) {
        handle_auth(s, se, h);
        return;
    }
    if (se->state != SESS_AUTHED) {
        reply_error(s, se->ep, h->type, h->req_id, STRATA_ERR_AUTH,
                    "not authenticated: send HELLO and AUTH first");
        return;
    }
    if (s->stop) {
        reply_error(s, se->ep, h->type, h->req_id, STRATA_ERR_BUSY,
                    "server is shutting down");
        return;
    }
    switch (h->type) {
    case WIRE_LIST:
        handle_list(s, se, h);
        break;
    case WIRE_DESCRIBE:
        handle_describe(s, se, h);
        break;
    case WIRE_LOOKUP:
        handle_lookup(s, se, h);
        break;
    case WIRE_PUSH:
        handle_push(s, se, h);
        break;
    case WIRE_CREATE:
        handle_create(s, se, h);
        break;
    case WIRE_DROP:
        handle_drop(s, se, h);
        break;
    case WIRE_STATS:
        handle_stats(s, se, h);
        break;
    default:
        reply_error(s, se->ep, h->type, h->req_id, STRATA_ERR_PROTOCOL, "unknown request type");
    }
}

/* ------------------------------------------------------------------------ */
/* receive queue                                                            */
/* ------------------------------------------------------------------------ */

static int queue_push(srv_t *s, const srv_req_t *r)
{
    if ((s->qtail + 1) % s->qcap == s->qhead) {
        size_t ncap = s->qcap * 2;
        srv_req_t *nq = core_malloc(ncap * sizeof(*nq));
        if (!nq)
            return -1;
        size_t n = 0;
        for (size_t i = s->qhead; i != s->qtail; i = (i + 1) % s->qcap)
            nq[n++] = s->queue[i];
        core_free(s->queue);
        s->queue = nq;
        s->qcap = ncap;
        s->qhead = 0;
        s->qtail = n;
    }
    s->queue[s->qtail] = *r;
    s->qtail = (s->qtail + 1) % s->qcap;
    return 0;
}

static ucs_status_t on_request(void *arg, const void *header, size_t header_length, void *data,
                               size_t length, const ucp_am_recv_param_t *param)
{
    srv_t *s = arg;
    (void)header;
    (void)header_length;
    if (param->recv_attr & UCP_AM_RECV_ATTR_FLAG_RNDV) {
        /* clients send eager only; a rendezvous message is not ours */
        s->n_dropped++;
        return UCS_OK;
    }
    srv_req_t r = {.len = length,
                   .ep = (param->recv_attr & UCP_AM_RECV_ATTR_FIELD_REPLY_EP) ? param->reply_ep
                                                                              : NULL};
    int keep = (param->recv_attr & UCP_AM_RECV_ATTR_FLAG_DATA) && ((uintptr_t)data & 7) == 0;
    if (keep) {
        r.data = data;
        r.ucx_owned = 1;
    } else {
        r.data = core_malloc(length ? length : 1);
        if (!r.data) {
            s->n_dropped++;
            return UCS_OK;
        }
        memcpy(r.data, data, length);
    }
    if (queue_push(s, &r) != 0) {
        s->n_dropped++;
        if (!keep)
            core_free(r.data);
        return UCS_OK;
    }
    return keep ? UCS_INPROGRESS : UCS_OK;
}

static unsigned drain_queue(srv_t *s)
{
    unsigned n = 0;
    while (s->qhead != s->qtail) {
        srv_req_t r = s->queue[s->qhead];
        s->qhead = (s->qhead + 1) % s->qcap;
        handle(s, &r);
        if (r.ucx_owned)
            ucp_am_data_release(rdma_worker_ucp(s->w), r.data);
        else
            core_free(r.data);
        n++;
    }
    return n;
}

/* ------------------------------------------------------------------------ */
/* lifecycle                                                                */
/* ------------------------------------------------------------------------ */

strata_status_t srv_create(const srv_config_t *c, srv_t **s_p)
{
    if (c->nservers == 0 || c->server_index >= c->nservers)
        return core_fail(STRATA_ERR_INVALID_PARAM, "server_index %u must be below nservers %u",
                         c->server_index, c->nservers);
    srv_t *s = core_calloc(1, sizeof(*s));
    if (!s)
        return core_fail(STRATA_ERR_NOMEM, "server: out of memory");
    s->cfg = *c;
    s->qcap = 256;
    s->queue = core_malloc(s->qcap * sizeof(*s->queue));
    strata_status_t st = s->queue ? STRATA_OK : core_fail(STRATA_ERR_NOMEM, "queue");
    if (st == STRATA_OK)
        st = rdma_ctx_create(&s->ctx);
    if (st == STRATA_OK)
        st = rdma_worker_create(s->ctx, &s->w);
    if (st == STRATA_OK)
        st = rdma_worker_set_am(s->w, WIRE_AM_REQUEST, on_request, s);
    for (uint32_t i = 0; st == STRATA_OK && i < c->ntables; i++) {
        srv_table_t *t;
        srv_table_config_t tc = c->tables[i];
        tc.schema.name = tc.name;
        st = table_create(s, &tc.schema, tc.shards_per_server, tc.dram_budget, &t);
        /* a tiered table's rows survive on its NVMe tier, not in snapshots */
        if (st == STRATA_OK && c->snapshot_dir[0] && !t->tiers)
            st = table_restore(s, t);
    }
    if (st == STRATA_OK && c->snapshot_dir[0])
        st = restore_dir(s);
    if (st == STRATA_OK)
        st = rdma_listen(s->w, c->listen_addr, c->port, on_conn, s, &s->listener, &s->port);
    if (st != STRATA_OK) {
        char msg[512];
        snprintf(msg, sizeof(msg), "%s", strata_last_error());
        srv_destroy(s);
        return core_fail(st, "%s", msg);
    }
    if (c->port_file[0]) {
        char tmp[300];
        snprintf(tmp, sizeof(tmp), "%s.tmp", c->port_file);
        FILE *f = fopen(tmp, "w");
        if (f) {
            fprintf(f, "%u\n", s->port);
            fclose(f);
            rename(tmp, c->port_file);
        }
    }
    fprintf(stderr, "strata-server[%u/%u]: listening on %s:%u, %u table(s)\n", c->server_index,
            c->nservers, c->listen_addr[0] ? c->listen_addr : "0.0.0.0", s->port, s->ntables);
    *s_p = s;
    return STRATA_OK;
}

void srv_stop(srv_t *s)
{
    s->stop = 1;
}

strata_status_t srv_run(srv_t *s)
{
    uint64_t spin_ns = (uint64_t)s->cfg.idle_spin_us * 1000;
    uint64_t last = rdma_now_ns();
    while (!s->stop) {
        unsigned ev = rdma_worker_progress(s->w);
        if (s->npending_conn)
            accept_pending(s);
        ev += drain_queue(s);
        reap_sessions(s);
        if (ev) {
            last = rdma_now_ns();
        } else if (rdma_now_ns() - last > spin_ns) {
            rdma_worker_sleep(s->w, 100);
            last = rdma_now_ns() - spin_ns + 20000; /* spin briefly after a wake */
        }
    }
    /* drain: what already arrived is answered, then replies leave */
    fprintf(stderr, "strata-server[%u]: draining\n", s->cfg.server_index);
    uint64_t deadline = rdma_now_ns() + 5000000000ull;
    do {
        rdma_worker_progress(s->w);
        drain_queue(s);
    } while ((s->replies_in_flight > 0 || s->qhead != s->qtail) && rdma_now_ns() < deadline);
    strata_status_t result = STRATA_OK;
    for (uint32_t i = 0; i < s->ntables; i++) {
        srv_table_t *t = s->tables[i];
        for (uint32_t k = 0; t->tiers && k < t->nlocal; k++) {
            /* dirty DRAM rows to NVMe, synced: the tier reopens with them */
            strata_status_t st = hier_tier_flush(t->tiers[k]);
            if (st != STRATA_OK) {
                fprintf(stderr, "strata-server[%u]: flushing %s to NVMe failed: %s\n",
                        s->cfg.server_index, t->schema.name, strata_last_error());
                result = st;
            }
        }
    }
    if (s->cfg.snapshot_dir[0]) {
        for (uint32_t i = 0; i < s->ntables; i++) {
            if (s->tables[i]->tiers)
                continue; /* on NVMe already */
            strata_status_t st = table_save(s, s->tables[i]);
            if (st != STRATA_OK) {
                fprintf(stderr, "strata-server[%u]: snapshot of %s failed: %s\n",
                        s->cfg.server_index, s->tables[i]->schema.name, strata_last_error());
                result = st;
            } else {
                fprintf(stderr, "strata-server[%u]: saved %s\n", s->cfg.server_index,
                        s->tables[i]->schema.name);
            }
        }
    }
    fprintf(stderr,
            "strata-server[%u]: stopped after %" PRIu64 " requests (%" PRIu64 " errors, %" PRIu64
            " dropped)\n",
            s->cfg.server_index, s->n_requests, s->n_errors, s->n_dropped);
    return result;
}

void srv_destroy(srv_t *s)
{
    if (!s)
        return;
    for (uint32_t i = 0; i < s->nsessions; i++) {
        rdma_ep_close(s->w, s->sessions[i]->ep, 1, rdma_now_ns() + 1000000000ull);
        core_free(s->sessions[i]);
    }
    if (s->listener)
        ucp_listener_destroy(s->listener);
    if (s->w) {
        while (s->qhead != s->qtail) {
            srv_req_t *r = &s->queue[s->qhead];
            if (r->ucx_owned)
                ucp_am_data_release(rdma_worker_ucp(s->w), r->data);
            else
                core_free(r->data);
            s->qhead = (s->qhead + 1) % s->qcap;
        }
    }
    for (uint32_t i = 0; i < s->ntables; i++)
        table_destroy(s->tables[i]);
    rdma_worker_destroy(s->w);
    rdma_ctx_destroy(s->ctx);
    core_free(s->queue);
    core_free(s->pos);
    core_free(s->skeys);
    core_free(s->sfound);
    core_free(s->srows);
    core_free(s);
}
