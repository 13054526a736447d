/*
 * client/client.c — libstrata's cluster client: connections and the
 * handshake, table layouts and rkeys, batched lookups (one-sided through a
 * location cache and the index, RPC fallback) and batched gradient pushes.
 *
 * Every batch call is an operation (cl_op_t) that moves through phases;
 * sync calls start one and drive it to the end, async calls return it.
 *
 * Lookup of a batch:
 *   1. dedup the keys; route each unique key to its global shard and server;
 *   2. one-sided keys (server reads direct, table without TTL): a location
 *      cache hit reads the row (1 round trip); a miss reads the key's two
 *      candidate buckets, then the row its fingerprint points at (2);
 *      every row copy is validated (core_row_validate: even seq, checksum,
 *      key, incarnation) and a torn copy re-read up to CL_TORN_RETRIES
 *      times; a stale location, an absent key or too many torn reads fall
 *      back to RPC;
 *   3. RPC keys go to their servers in chunks under max_keys/max_msg, with
 *      at most `credits` messages in flight per server; replies carry
 *      locations (to fill the cache) and the table's layout generation (a
 *      change means an index grew: the layout is re-read before the next
 *      one-sided read);
 *   4. rows are copied to the duplicates' places.
 * Where UCX maps the server's memory into this process (shared memory:
 * ucp_rkey_ptr succeeds), the one-sided reads are plain loads from that
 * mapping; otherwise ucp_get_nbx batches completed by one worker flush.
 *
 * Failure: an endpoint error marks its server dead: calls touching it
 * fail with CONNECTION. A call not done by its deadline fails with TIMEOUT
 * and force-closes the servers it was waiting on, so no late reply or get
 * writes into the caller's buffers afterwards.
 *
 * Threading: a client and everything made from it belong to one thread at
 * a time (one UCX worker, UCS_THREAD_MODE_SINGLE).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stddef.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/client_internal.h"
#include "core/alloc.h"
#include "core/hash.h"
#include "core/init.h"
#include "core/layout.h"
#include "core/status.h"
#include "core/table.h"
#include "rdma/auth.h"
#include "rdma/ucx.h"
#include "rdma/wire.h"
#include "strata.h"
#include "strata_config.h"

#define CL_MAX_SERVERS 256
#define CL_MAX_TABLES 64
#define CL_TORN_RETRIES 8
#define CL_MAX_PENDING 4096  /**< RPC messages in flight per client */
#define CL_SPIN_NS 50000     /**< busy-poll this long for a reply, then sleep */

typedef struct cl_server {
    char host[64];
    uint16_t port;
    ucp_ep_h ep;
    int dead;                 /**< endpoint failed or timed out */
    strata_status_t dead_st;
    int direct;               /**< ucp gets are done by hardware (rma lane not on tcp) */
    int mapped;               /**< its regions are mapped here (shared memory,
                                   ucp_rkey_ptr): reads are plain loads */
    uint32_t credits;         /**< from the welcome */
    uint32_t inflight;        /**< messages awaiting a reply */
    uint32_t max_keys;
    uint32_t max_msg;
} cl_server_t;

typedef struct cl_shard {
    uint32_t server;          /**< g % nservers */
    int valid;                /**< layout known */
    uint64_t arena_addr, arena_len, index_addr, nbuckets, epoch, stride;
    ucp_rkey_h arena_rkey, index_rkey;
    const uint8_t *arena_local;   /**< mapped arena (shared memory) or NULL */
    const uint8_t *index_local;   /**< mapped index or NULL */
} cl_shard_t;

/** Location cache set: 8 entries in one cache line, each 0 (empty) or
 *  (slot + 1) << 24 | fp24, fp24 = 24 bits of core_key_hash(key) not used
 *  for the set index. A fingerprint collision only costs a read: the row
 *  read there carries its key, and a row of another key is rejected. */
typedef struct cl_loc_set {
    uint64_t e[8];
} __attribute__((aligned(64))) cl_loc_set_t;

#define CL_LOC_SLOT_MAX ((1ull << 40) - 2)

struct strata_rtable {
    strata_client_t *c;
    char name[STRATA_NAME_MAX + 1];
    strata_table_schema_t schema;      /**< name -> name[] */
    uint32_t dim;
    uint32_t total_shards;
    uint32_t table_id[CL_MAX_SERVERS]; /**< per server */
    uint32_t layout_gen[CL_MAX_SERVERS];
    int stale[CL_MAX_SERVERS];         /**< re-describe before one-sided reads */
    int onesided_ok;                   /**< table allows it (no TTL) */
    int tiered;                        /**< rows may live below DRAM: a key absent
                                            from the DRAM index is asked by RPC */
    cl_shard_t *shards;                /**< total_shards */
    cl_loc_set_t *loc;                 /**< location cache; NULL when none */
    uint64_t loc_mask;                 /**< sets - 1 */
};

/** One RPC in flight. */
typedef struct cl_pending {
    uint64_t req_id;          /**< 0: free */
    struct cl_op *op;         /**< NULL for blocking control calls */
    uint32_t server;
    uint32_t chunk;           /**< op's chunk index */
    int replied;
    int sent;
    strata_status_t st;
    void *reply;              /**< control calls: copy of the reply (core_malloc) */
    size_t reply_len;
    void *msg;                /**< the request message (freed when sent and replied) */
    rdma_send_slot_t slot;
} cl_pending_t;

struct strata_client {
    rdma_ctx_t *ctx;
    rdma_worker_t *w;
    uint32_t nservers;
    cl_server_t servers[CL_MAX_SERVERS];
    char secret[256];
    size_t secret_len;
    int read_only;
    uint32_t timeout_ms;
    strata_read_mode_t mode;
    uint32_t loc_entries;
    strata_rtable_t *tables[CL_MAX_TABLES];
    uint32_t ntables;
    cl_pending_t pending[CL_MAX_PENDING];
    uint64_t next_req;
    struct cl_op *ops;        /**< running operations (list) */
    struct cl_op *op_pool;    /**< finished operations with their buffers */
    uint32_t op_pool_n;       /**< entries in op_pool */
    uint64_t last_progress_ns; /**< when op_start last progressed the worker */
    strata_client_stats_t stats;
    client_gpu_t *gpu;        /**< device lookups' state (client_gpu.c), or NULL */
};

typedef enum op_kind { OP_LOOKUP, OP_PUSH } op_kind_t;

typedef struct cl_chunk {
    uint32_t server;
    uint32_t first;           /**< into op->rpc_pos */
    uint32_t count;
    int sent;                 /**< message posted */
    int done;
} cl_chunk_t;

typedef struct cl_op {
    struct strata_request *req;   /**< the public handle */
    strata_rtable_t *t;
    op_kind_t kind;
    uint32_t flags;
    int want_loc;
    size_t n;                 /**< keys asked */
    const uint64_t *keys;
    float *out;
    uint8_t *found;
    const float *grads;
    /* dedup */
    uint32_t nu;              /**< unique keys */
    uint64_t *ukeys;
    uint32_t *first;          /**< first position of each unique key */
    uint32_t *uidx;           /**< unique index of each key */
    float *ugrads;            /**< push: summed gradients, nu * dim */
    uint8_t *ufound;
    /* rpc */
    uint32_t *rpc_pos;        /**< unique indices to fetch/push by RPC, grouped by server */
    uint32_t nrpc;
    cl_chunk_t *chunks;
    uint32_t nchunks, chunks_done;
    strata_status_t st;       /**< first error */
    uint64_t deadline;
    int done;
    struct cl_op *next;       /**< running list, or the client's pool */
    /* buffers, kept with their capacities while the op sits in the pool, so
     * a steady stream of batches allocates nothing */
    size_t cap_keys;          /**< entries of ukeys, first, uidx, ufound, rpc_pos, sorted */
    size_t cap_grads;         /**< floats of ugrads */
    size_t cap_ht;            /**< entries of ht */
    uint32_t cap_chunks;      /**< entries of chunks */
    uint32_t *ht;             /**< dedup hash table */
    uint32_t *sorted;         /**< op_make_chunks scratch; op_onesided's list of
                                   keys for the RDMA-get path before that */
    uint8_t *gstage;          /**< RDMA-get path staging: rows, buckets, slots,
                                   per-key state (op_onesided) */
    size_t cap_gstage;        /**< bytes of gstage */
    rdma_get_t *gets;         /**< the get batch (op_onesided) */
    size_t cap_gets;          /**< entries of gets */
    uint32_t cnt[CL_MAX_SERVERS + 1]; /**< op_make_chunks: per-server starts */
} cl_op_t;

struct strata_request {
    strata_client_t *c;
    cl_op_t *op;
    strata_request_cb_t cb;
    void *arg;
    strata_status_t st;       /**< INPROGRESS until done */
    int freed;                /**< user released it before completion */
};

static uint64_t now_ns(void)
{
    return rdma_now_ns();
}

/* ------------------------------------------------------------------------ */
/* pending RPCs                                                             */
/* ------------------------------------------------------------------------ */

static cl_pending_t *pending_new(strata_client_t *c)
{
    for (uint32_t tries = 0; tries < CL_MAX_PENDING; tries++) {
        uint64_t id = ++c->next_req;
        cl_pending_t *p = &c->pending[id % CL_MAX_PENDING];
        if (p->req_id == 0) {
            memset(p, 0, sizeof(*p));
            p->req_id = id;
            return p;
        }
    }
    return NULL;
}

static void pending_release(cl_pending_t *p)
{
    if (p->sent && p->replied) {
        core_free(p->msg);
        p->msg = NULL;
        if (!p->op && p->reply)
            return; /* a control call still holds its reply; it frees it */
        p->req_id = 0;
    }
}

static void on_send_done(void *arg, strata_status_t st)
{
    cl_pending_t *p = arg;
    p->sent = 1;
    if (st != STRATA_OK && !p->replied) {
        p->replied = 1;
        p->st = st;
        if (p->op) {
            cl_op_t *op = p->op;
            if (op->st == STRATA_OK)
                op->st = core_fail(st, "send to server %u failed", p->server);
            op->chunks[p->chunk].done = 1;
            op->chunks_done++;
        }
    }
    pending_release(p);
}

static void mark_dead(strata_client_t *c, uint32_t i, strata_status_t st)
{
    cl_server_t *s = &c->servers[i];
    if (s->dead)
        return;
    s->dead = 1;
    s->dead_st = st;
    /* fail every RPC waiting on it */
    for (uint32_t k = 0; k < CL_MAX_PENDING; k++) {
        cl_pending_t *p = &c->pending[k];
        if (p->req_id && p->server == i && !p->replied) {
            p->replied = 1;
            p->st = st;
            s->inflight--;
            if (p->op) {
                if (p->op->st == STRATA_OK)
                    p->op->st = core_fail(st, "server %u (%s:%u): %s", i, s->host, s->port,
                                          st == STRATA_ERR_TIMEOUT ? "no answer in time"
                                                                   : "connection lost");
                p->op->chunks[p->chunk].done = 1;
                p->op->chunks_done++;
            }
            pending_release(p);
        }
    }
}

static void on_ep_error(void *arg, ucp_ep_h ep, ucs_status_t status)
{
    strata_client_t *c = arg;
    /* whatever UCX calls it (reset, endpoint timeout), the peer is gone */
    (void)status;
    for (uint32_t i = 0; i < c->nservers; i++)
        if (c->servers[i].ep == ep)
            mark_dead(c, i, STRATA_ERR_CONNECTION);
}

/** Send a message to server i; it is owned by the pending slot from now. */
static strata_status_t rpc_post(strata_client_t *c, uint32_t i, cl_pending_t *p, void *msg,
                                size_t len)
{
    cl_server_t *s = &c->servers[i];
    p->server = i;
    p->msg = msg;
    p->slot.cb = on_send_done;
    p->slot.arg = p;
    ((wire_hdr_t *)msg)->req_id = p->req_id;
    s->inflight++;
    c->stats.rpcs++;
    c->stats.bytes_sent += len;
    strata_status_t st = rdma_am_send(s->ep, WIRE_AM_REQUEST, msg, len, &p->slot);
    if (st == STRATA_OK) {
        p->sent = 1;
    } else if (st != STRATA_INPROGRESS) {
        s->inflight--;
        p->msg = NULL;
        p->req_id = 0;
        return st;
    }
    return STRATA_OK;
}

static void op_on_reply(cl_op_t *op, cl_pending_t *p, const wire_hdr_t *h);

static ucs_status_t on_reply(void *arg, const void *header, size_t header_length, void *data,
                             size_t length, const ucp_am_recv_param_t *param)
{
    strata_client_t *c = arg;
    (void)header;
    (void)header_length;
    (void)param;
    if (param->recv_attr & UCP_AM_RECV_ATTR_FLAG_RNDV)
        return UCS_OK; /* servers send eager only */
    const wire_hdr_t *h;
    uint64_t aligned[512];
    void *buf = data;
    void *heap = NULL;
    if ((uintptr_t)data & 7) {
        /* views need 8-byte alignment: copy */
        if (length <= sizeof(aligned)) {
            buf = aligned;
        } else {
            heap = core_malloc(length);
            if (!heap)
                return UCS_OK;
            buf = heap;
        }
        memcpy(buf, data, length);
    }
    c->stats.bytes_received += length;
    if (wire_check_hdr(buf, length, 1, &h) != STRATA_OK)
        goto out;
    cl_pending_t *p = &c->pending[h->req_id % CL_MAX_PENDING];
    if (p->req_id != h->req_id || p->replied)
        goto out; /* late reply of a call that timed out */
    p->replied = 1;
    c->servers[p->server].inflight--;
    p->st = h->status;
    if (p->op) {
        op_on_reply(p->op, p, h);
    } else {
        p->reply = core_malloc(length);
        if (p->reply) {
            memcpy(p->reply, buf, length);
            p->reply_len = length;
        } else {
            p->st = STRATA_ERR_NOMEM;
        }
    }
    pending_release(p);
out:
    core_free(heap);
    return UCS_OK;
}

/** Blocking control call: send body as type to server i, wait for the
 *  reply; on OK *reply_p (core_malloc, caller frees) is the whole reply
 *  message. A server error is returned with its text in last_error. */
static strata_status_t rpc_call(strata_client_t *c, uint32_t i, uint8_t type, uint32_t table_id,
                                const void *body, uint32_t body_len, wire_hdr_t **reply_p)
{
    cl_server_t *s = &c->servers[i];
    if (s->dead)
        return core_fail(s->dead_st, "server %u (%s:%u) is gone", i, s->host, s->port);
    cl_pending_t *p = pending_new(c);
    if (!p)
        return core_fail(STRATA_ERR_BUSY, "too many requests in flight");
    wire_hdr_t *msg = core_malloc(sizeof(wire_hdr_t) + body_len);
    if (!msg) {
        p->req_id = 0;
        return core_fail(STRATA_ERR_NOMEM, "request: out of memory");
    }
    wire_hdr_init(msg, type, 0, body_len);
    msg->table_id = table_id;
    if (body_len)
        memcpy(msg + 1, body, body_len);
    uint64_t id = p->req_id;
    strata_status_t st = rpc_post(c, i, p, msg, sizeof(*msg) + body_len);
    if (st != STRATA_OK) {
        core_free(msg);
        return core_fail(st, "send to %s:%u: %s", s->host, s->port, strata_last_error());
    }
    uint64_t deadline = now_ns() + (uint64_t)c->timeout_ms * 1000000ull;
    while (!p->replied) {
        rdma_worker_progress(c->w);
        if (now_ns() > deadline) {
            mark_dead(c, i, STRATA_ERR_TIMEOUT);
            rdma_ep_close(c->w, s->ep, 1, now_ns() + 1000000000ull);
            s->ep = NULL;
            break;
        }
    }
    (void)id;
    st = p->st;
    wire_hdr_t *reply = p->reply;
    p->reply = NULL;
    p->op = NULL;
    pending_release(p);
    if (p->sent && p->replied)
        p->req_id = 0;
    if (st < 0) {
        char text[WIRE_ERRMSG_MAX + 1] = "";
        if (reply)
            wire_decode_errmsg(reply, text, sizeof(text));
        core_free(reply);
        if (st == STRATA_ERR_TIMEOUT && !text[0])
            return core_fail(st, "server %u (%s:%u) did not answer within %u ms", i, s->host,
                             s->port, c->timeout_ms);
        return core_fail((strata_status_t)st, "server %u (%s:%u): %s", i, s->host, s->port,
                         text[0] ? text : strata_status_string((strata_status_t)st));
    }
    *reply_p = reply;
    return STRATA_OK;
}

/* ------------------------------------------------------------------------ */
/* connect                                                                  */
/* ------------------------------------------------------------------------ */

static strata_status_t add_server(strata_client_t *c, const char *hp)
{
    if (c->nservers == CL_MAX_SERVERS)
        return core_fail(STRATA_ERR_INVALID_PARAM, "at most %u servers", CL_MAX_SERVERS);
    const char *colon = strrchr(hp, ':');
    char *end;
    unsigned long port = colon ? strtoul(colon + 1, &end, 10) : 0;
    if (!colon || colon == hp || (size_t)(colon - hp) >= sizeof(c->servers[0].host) ||
        !*(colon + 1) || *end || port == 0 || port > 65535)
        return core_fail(STRATA_ERR_INVALID_PARAM, "server \"%s\": expected HOST:PORT", hp);
    cl_server_t *s = &c->servers[c->nservers++];
    memcpy(s->host, hp, (size_t)(colon - hp));
    s->host[colon - hp] = '\0';
    s->port = (uint16_t)port;
    return STRATA_OK;
}

static strata_status_t parse_servers(strata_client_t *c, const char *list)
{
    char buf[4096];
    if (strlen(list) >= sizeof(buf))
        return core_fail(STRATA_ERR_INVALID_PARAM, "server list too long");
    strcpy(buf, list);
    char *save;
    for (char *tok = strtok_r(buf, ", \t\n", &save); tok; tok = strtok_r(NULL, ", \t\n", &save)) {
        strata_status_t st = add_server(c, tok);
        if (st != STRATA_OK)
            return st;
    }
    return STRATA_OK;
}

static strata_status_t parse_cluster_file(strata_client_t *c, const char *path, int want_secret)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return core_fail_errno(errno, "cluster file %s", path);
    char line[512];
    unsigned ln = 0;
    strata_status_t st = STRATA_OK;
    while (st == STRATA_OK && fgets(line, sizeof(line), f)) {
        ln++;
        char *hash = strchr(line, '#');
        if (hash)
            *hash = '\0';
        char key[64], val[400];
        int k = sscanf(line, "%63s %399s", key, val);
        if (k <= 0)
            continue;
        if (k == 2 && !strcmp(key, "server"))
            st = add_server(c, val);
        else if (k == 2 && !strcmp(key, "secret_file")) {
            if (want_secret)
                st = auth_read_secret(val, c->secret, sizeof(c->secret), &c->secret_len);
        } else
            st = core_fail(STRATA_ERR_INVALID_PARAM,
                           "%s:%u: expected \"server HOST:PORT\" or \"secret_file PATH\"", path,
                           ln);
        if (st != STRATA_OK && ln) {
            char msg[400];
            snprintf(msg, sizeof(msg), "%s", strata_last_error());
            st = core_fail(st, "%s:%u: %s", path, ln, msg);
        }
    }
    fclose(f);
    return st;
}

static strata_status_t handshake(strata_client_t *c, uint32_t i)
{
    cl_server_t *s = &c->servers[i];
    wire_hello_t hello;
    memset(&hello, 0, sizeof(hello));
    hello.role = c->read_only ? WIRE_ROLE_READ_ONLY : 0;
    strata_status_t st = auth_random(hello.client_nonce, WIRE_NONCE_BYTES);
    if (st != STRATA_OK)
        return st;
    wire_hdr_t *r;
    st = rpc_call(c, i, WIRE_HELLO, 0, &hello, sizeof(hello), &r);
    if (st != STRATA_OK)
        return st;
    if (r->body_len != sizeof(wire_challenge_t)) {
        core_free(r);
        return core_fail(STRATA_ERR_PROTOCOL, "server %u: bad HELLO reply", i);
    }
    wire_challenge_t ch;
    memcpy(&ch, wire_body(r), sizeof(ch));
    core_free(r);
    if (ch.server_index != i || ch.nservers != c->nservers)
        return core_fail(STRATA_ERR_INVALID_PARAM,
                         "server %s:%u says it is server %u of %u, but the client's list has "
                         "it as %u of %u: fix the server list or the servers' --index/--nservers",
                         s->host, s->port, ch.server_index, ch.nservers, i, c->nservers);
    wire_auth_t a;
    auth_mac(c->secret, c->secret_len, hello.client_nonce, ch.server_nonce, hello.role, a.mac);
    st = rpc_call(c, i, WIRE_AUTH, 0, &a, sizeof(a), &r);
    if (st != STRATA_OK)
        return st;
    if (r->body_len != sizeof(wire_welcome_t)) {
        core_free(r);
        return core_fail(STRATA_ERR_PROTOCOL, "server %u: bad AUTH reply", i);
    }
    wire_welcome_t wl;
    memcpy(&wl, wire_body(r), sizeof(wl));
    core_free(r);
    s->credits = wl.credits ? wl.credits : 1;
    s->max_keys = wl.max_keys ? wl.max_keys : 1;
    s->max_msg = wl.max_msg < 4096 ? 4096 : wl.max_msg;
    if (s->max_msg > WIRE_MSG_MAX)
        s->max_msg = WIRE_MSG_MAX;
    /* the handshake's round trips finished wire-up: lanes are final */
    /* Endpoints use UCP_ERR_HANDLING_MODE_PEER (a dead server must become
     * an error, not a hang), and UCX 1.13 then leaves shared-memory
     * transports out: between processes of one host the lanes are TCP.
     * Shared memory is reached through ucp_rkey_ptr instead (s->mapped,
     * set when a table's rkeys are unpacked). */
    s->direct = rdma_ep_gets_direct(s->ep);
    return STRATA_OK;
}

strata_status_t strata_client_connect(const strata_client_params_t *params,
                                      strata_client_t **client_p)
{
    if (!params || !client_p)
        return core_fail(STRATA_ERR_INVALID_PARAM, "params and client_p must not be NULL");
    if (!STRATA_HAVE_UCX)
        return core_fail(STRATA_ERR_UNSUPPORTED, "built without UCX");
    strata_client_t *c = core_calloc(1, sizeof(*c));
    if (!c)
        return core_fail(STRATA_ERR_NOMEM, "client: out of memory");
    c->timeout_ms = 10000;
    c->loc_entries = 1u << 20;
    uint64_t m = params->field_mask;
    strata_status_t st = STRATA_OK;
    if (m & STRATA_CLIENT_FIELD_SECRET) {
        if (params->secret_len >= sizeof(c->secret)) {
            st = core_fail(STRATA_ERR_INVALID_PARAM, "secret: at most %zu bytes",
                           sizeof(c->secret) - 1);
            goto err;
        }
        memcpy(c->secret, params->secret, params->secret_len);
        c->secret_len = params->secret_len;
    } else if (getenv("STRATA_SECRET")) {
        snprintf(c->secret, sizeof(c->secret), "%s", getenv("STRATA_SECRET"));
        c->secret_len = strlen(c->secret);
    }
    if ((m & STRATA_CLIENT_FIELD_SERVERS) && params->servers)
        st = parse_servers(c, params->servers);
    else if ((m & STRATA_CLIENT_FIELD_CLUSTER_FILE) && params->cluster_file)
        st = parse_cluster_file(c, params->cluster_file, !(m & STRATA_CLIENT_FIELD_SECRET));
    else
        st = core_fail(STRATA_ERR_INVALID_PARAM,
                       "no servers: set params.servers or params.cluster_file");
    if (st != STRATA_OK)
        goto err;
    if (c->nservers == 0) {
        st = core_fail(STRATA_ERR_INVALID_PARAM, "the server list is empty");
        goto err;
    }
    if (m & STRATA_CLIENT_FIELD_READ_ONLY)
        c->read_only = params->read_only != 0;
    if (m & STRATA_CLIENT_FIELD_TIMEOUT_MS)
        c->timeout_ms = params->timeout_ms ? params->timeout_ms : 1;
    if (m & STRATA_CLIENT_FIELD_READ_MODE) {
        if ((unsigned)params->read_mode > STRATA_READ_RPC) {
            st = core_fail(STRATA_ERR_INVALID_PARAM, "read_mode %d: 0..2", params->read_mode);
            goto err;
        }
        c->mode = params->read_mode;
    }
    if (m & STRATA_CLIENT_FIELD_LOC_CACHE) {
        uint32_t e = params->loc_cache_entries;
        if (e > (1u << 28)) {
            st = core_fail(STRATA_ERR_INVALID_PARAM, "loc_cache_entries: at most 2^28");
            goto err;
        }
        uint32_t p2 = 1;
        while (p2 < e)
            p2 <<= 1;
        c->loc_entries = e ? p2 : 0;
    }
    st = rdma_ctx_create(&c->ctx);
    if (st == STRATA_OK)
        st = rdma_worker_create(c->ctx, &c->w);
    if (st == STRATA_OK)
        st = rdma_worker_set_am(c->w, WIRE_AM_REPLY, on_reply, c);
    for (uint32_t i = 0; st == STRATA_OK && i < c->nservers; i++)
        st = rdma_ep_connect(c->w, c->servers[i].host, c->servers[i].port, on_ep_error, c,
                             &c->servers[i].ep);
    for (uint32_t i = 0; st == STRATA_OK && i < c->nservers; i++)
        st = handshake(c, i);
    if (st != STRATA_OK)
        goto err;
    *client_p = c;
    return STRATA_OK;
err: {
    char msg[512];
    snprintf(msg, sizeof(msg), "%s", strata_last_error());
    strata_client_destroy(c);
    return core_fail(st, "%s", msg);
}
}

static void table_free(strata_rtable_t *t)
{
    if (!t)
        return;
    for (uint32_t g = 0; t->shards && g < t->total_shards; g++) {
        if (t->shards[g].arena_rkey)
            ucp_rkey_destroy(t->shards[g].arena_rkey);
        if (t->shards[g].index_rkey)
            ucp_rkey_destroy(t->shards[g].index_rkey);
    }
    core_free(t->shards);
    core_free(t->loc);
    core_free(t);
}

static void op_destroy(struct cl_op *op);

void strata_client_destroy(strata_client_t *c)
{
    if (!c)
        return;
    while (c->ops) {
        /* running ops are abandoned (their servers are closed below), and
         * freed with their requests */
        cl_op_t *op = c->ops;
        c->ops = op->next;
        core_free(op->req);
        op_destroy(op);
    }
    while (c->op_pool) {
        cl_op_t *op = c->op_pool;
        c->op_pool = op->next;
        op_destroy(op);
    }
    for (uint32_t i = 0; i < c->ntables; i++)
        table_free(c->tables[i]);
    if (c->w) {
        for (uint32_t i = 0; i < c->nservers; i++)
            if (c->servers[i].ep)
                rdma_ep_close(c->w, c->servers[i].ep, c->servers[i].dead,
                              now_ns() + 500000000ull);
        for (uint32_t k = 0; k < CL_MAX_PENDING; k++) {
            core_free(c->pending[k].msg);
            core_free(c->pending[k].reply);
        }
    }
    rdma_worker_destroy(c->w);
    rdma_ctx_destroy(c->ctx);
    client_gpu_free(c->gpu);
    core_free(c);
}

client_gpu_t **client_gpu_slot(strata_rtable_t *t)
{
    return &t->c->gpu;
}

/** Sum every server's STATS reply for t into *sum (wire form). */
static strata_status_t stats_sum(strata_rtable_t *t, wire_stats_t *sum)
{
    strata_client_t *c = t->c;
    memset(sum, 0, sizeof(*sum));
    for (uint32_t i = 0; i < c->nservers; i++) {
        wire_hdr_t *r;
        strata_status_t st = rpc_call(c, i, WIRE_STATS, t->table_id[i], NULL, 0, &r);
        if (st != STRATA_OK)
            return st;
        if (r->body_len != sizeof(wire_stats_t)) {
            uint32_t got = r->body_len;
            core_free(r);
            return core_fail(STRATA_ERR_PROTOCOL, "server %u: STATS reply of %u bytes", i, got);
        }
        wire_stats_t ws;
        memcpy(&ws, wire_body(r), sizeof(ws));
        core_free(r);
        for (int k = 0; k < 15; k++)
            sum->v[k] += ws.v[k];
        sum->server_cpu_ns += ws.server_cpu_ns;
        for (int k = 0; k < 8; k++)
            sum->tier[k] += ws.tier[k];
    }
    return STRATA_OK;
}

strata_status_t strata_rtable_get_tier_stats(strata_rtable_t *t, strata_tier_stats_t *stats)
{
    if (!t || !stats)
        return core_fail(STRATA_ERR_INVALID_PARAM, "table and stats must not be NULL");
    wire_stats_t sum;
    strata_status_t st = stats_sum(t, &sum);
    if (st != STRATA_OK)
        return st;
    _Static_assert(sizeof(strata_tier_stats_t) == sizeof(sum.tier), "8 tier counters");
    memcpy(stats, sum.tier, sizeof(*stats));
    return STRATA_OK;
}

strata_status_t strata_rtable_get_stats(strata_rtable_t *t, strata_table_stats_t *stats,
                                       double *server_cpu_s_p)
{
    if (!t || !stats)
        return core_fail(STRATA_ERR_INVALID_PARAM, "table and stats must not be NULL");
    wire_stats_t ws;
    strata_status_t st = stats_sum(t, &ws);
    if (st != STRATA_OK)
        return st;
    _Static_assert(sizeof(strata_table_stats_t) == 15 * sizeof(uint64_t),
                   "table stats are the 15 u64 of wire_stats_t");
    memcpy(stats, ws.v, sizeof(*stats));
    if (server_cpu_s_p)
        *server_cpu_s_p = (double)ws.server_cpu_ns / 1e9;
    return STRATA_OK;
}


/** Whether reads of server i's rows go one-sided under the read mode. */
static int server_onesided(const strata_client_t *c, uint32_t i)
{
    const cl_server_t *s = &c->servers[i];
    if (c->mode == STRATA_READ_RPC)
        return 0;
    if (c->mode == STRATA_READ_ONESIDED)
        return 1;
    return s->direct || s->mapped;
}

void strata_client_get_stats(const strata_client_t *c, strata_client_stats_t *stats)
{
    *stats = c->stats;
}

int strata_client_server_onesided(const strata_client_t *c, uint32_t i)
{
    if (i >= c->nservers)
        return -1;
    return server_onesided(c, i);
}

/* ------------------------------------------------------------------------ */
/* tables                                                                   */
/* ------------------------------------------------------------------------ */

strata_status_t strata_client_create_table(strata_client_t *c, const strata_table_schema_t *schema)
{
    if (!c || !schema)
        return core_fail(STRATA_ERR_INVALID_PARAM, "client and schema must not be NULL");
    if (c->read_only)
        return core_fail(STRATA_ERR_READ_ONLY, "create_table on a read-only client");
    strata_status_t st = strata_schema_validate(schema);
    if (st != STRATA_OK)
        return st;
    uint32_t sps = (schema->field_mask & STRATA_SCHEMA_FIELD_NSHARDS) ? schema->nshards : 1;
    wire_schema_t w;
    wire_encode_schema(schema, sps, &w);
    for (uint32_t i = 0; i < c->nservers; i++) {
        wire_hdr_t *r;
        st = rpc_call(c, i, WIRE_CREATE, 0, &w, sizeof(w), &r);
        if (st != STRATA_OK)
            return st;
        core_free(r);
    }
    return STRATA_OK;
}

strata_status_t strata_client_drop_table(strata_client_t *c, const char *name)
{
    if (!c || !name)
        return core_fail(STRATA_ERR_INVALID_PARAM, "client and name must not be NULL");
    if (c->read_only)
        return core_fail(STRATA_ERR_READ_ONLY, "drop_table on a read-only client");
    char wname[WIRE_NAME_BYTES] = {0};
    if (strlen(name) >= WIRE_NAME_BYTES)
        return core_fail(STRATA_ERR_INVALID_PARAM, "table name too long");
    memcpy(wname, name, strlen(name));
    uint32_t dropped = 0;
    strata_status_t first = STRATA_OK;
    for (uint32_t i = 0; i < c->nservers; i++) {
        wire_hdr_t *r;
        strata_status_t st = rpc_call(c, i, WIRE_DROP, 0, wname, sizeof(wname), &r);
        if (st == STRATA_OK) {
            dropped++;
            core_free(r);
        } else if (st != STRATA_ERR_UNKNOWN_TABLE && first == STRATA_OK) {
            first = st;
        }
    }
    for (uint32_t k = 0; k < c->ntables; k++) {
        if (!strcmp(c->tables[k]->name, name)) {
            table_free(c->tables[k]);
            c->tables[k] = c->tables[--c->ntables];
            break;
        }
    }
    if (first != STRATA_OK)
        return first;
    return dropped ? STRATA_OK
                   : core_fail(STRATA_ERR_UNKNOWN_TABLE, "no server has a table named %s", name);
}

/** (Re)read the table's description from server i. */
static strata_status_t describe(strata_rtable_t *t, uint32_t i)
{
    strata_client_t *c = t->c;
    char wname[WIRE_NAME_BYTES] = {0};
    memcpy(wname, t->name, strlen(t->name));
    wire_hdr_t *r;
    strata_status_t st = rpc_call(c, i, WIRE_DESCRIBE, 0, wname, sizeof(wname), &r);
    if (st != STRATA_OK)
        return st;
    wire_describe_view_t *v = core_malloc(sizeof(*v));
    if (!v) {
        core_free(r);
        return core_fail(STRATA_ERR_NOMEM, "describe: out of memory");
    }
    st = wire_decode_describe_reply(r, v);
    if (st != STRATA_OK)
        goto out;
    const wire_table_desc_t *d = v->desc;
    if (t->total_shards == 0) {
        char name[WIRE_NAME_BYTES];
        uint32_t sps;
        st = wire_decode_schema(&d->schema, sizeof(d->schema), &t->schema, name, &sps);
        if (st != STRATA_OK)
            goto out;
        t->schema.name = t->name;
        t->dim = t->schema.dim;
        t->total_shards = d->total_shards;
        t->schema.nshards = d->total_shards;
        t->onesided_ok = t->schema.ttl_seconds == 0;
        if (d->total_shards == 0 || d->total_shards > STRATA_SHARDS_MAX ||
            d->total_shards % c->nservers) {
            st = core_fail(STRATA_ERR_PROTOCOL, "table %s: %u shards over %u servers", t->name,
                           d->total_shards, c->nservers);
            goto out;
        }
        t->shards = core_calloc(t->total_shards, sizeof(*t->shards));
        if (!t->shards) {
            st = core_fail(STRATA_ERR_NOMEM, "shard map: out of memory");
            goto out;
        }
    } else if (d->total_shards != t->total_shards || d->schema.dim != t->dim) {
        st = core_fail(STRATA_ERR_STALE, "table %s changed shape on server %u (recreated?)",
                       t->name, i);
        goto out;
    }
    t->table_id[i] = d->table_id;
    t->layout_gen[i] = (uint32_t)d->layout_gen;
    if (d->flags & WIRE_TABLE_TIERED)
        t->tiered = 1;
    for (uint32_t k = 0; k < v->nlocal; k++) {
        const wire_shard_desc_t *sd = v->shard[k];
        if (sd->shard >= t->total_shards || sd->shard % c->nservers != i ||
            (sd->nbuckets & (sd->nbuckets - 1)) || sd->nbuckets < 2 ||
            sd->stride != core_row_stride(t->dim)) {
            st = core_fail(STRATA_ERR_PROTOCOL, "table %s: bad shard description from server %u",
                           t->name, i);
            goto out;
        }
        cl_shard_t *sh = &t->shards[sd->shard];
        if (sh->arena_rkey)
            ucp_rkey_destroy(sh->arena_rkey);
        if (sh->index_rkey)
            ucp_rkey_destroy(sh->index_rkey);
        sh->arena_rkey = sh->index_rkey = NULL;
        sh->valid = 0;
        sh->server = i;
        sh->arena_addr = sd->arena_addr;
        sh->arena_len = sd->arena_len;
        sh->index_addr = sd->index_addr;
        sh->nbuckets = sd->nbuckets;
        sh->epoch = sd->epoch;
        sh->stride = sd->stride;
        void *al, *il;
        st = rdma_rkey_unpack(c->servers[i].ep, v->arena_rkey[k], sd->arena_rkey_len,
                              sd->arena_addr, &sh->arena_rkey, &al);
        if (st == STRATA_OK)
            st = rdma_rkey_unpack(c->servers[i].ep, v->index_rkey[k], sd->index_rkey_len,
                                  sd->index_addr, &sh->index_rkey, &il);
        if (st != STRATA_OK)
            goto out;
        sh->arena_local = getenv("STRATA_NO_RKEY_PTR") ? NULL : al;
        sh->index_local = getenv("STRATA_NO_RKEY_PTR") ? NULL : il;
        if (sh->arena_local && sh->index_local)
            c->servers[i].mapped = 1;
        sh->valid = 1;
    }
    t->stale[i] = 0;
out:
    core_free(v);
    core_free(r);
    return st;
}

strata_status_t strata_client_open_table(strata_client_t *c, const char *name,
                                         strata_rtable_t **table_p)
{
    if (!c || !name || !table_p)
        return core_fail(STRATA_ERR_INVALID_PARAM, "client, name and table_p must not be NULL");
    if (strlen(name) == 0 || strlen(name) > STRATA_NAME_MAX)
        return core_fail(STRATA_ERR_INVALID_PARAM, "table name \"%s\": 1..%u characters", name,
                         STRATA_NAME_MAX);
    for (uint32_t k = 0; k < c->ntables; k++) {
        if (!strcmp(c->tables[k]->name, name)) {
            *table_p = c->tables[k];
            return STRATA_OK;
        }
    }
    if (c->ntables == CL_MAX_TABLES)
        return core_fail(STRATA_ERR_FULL, "at most %u open tables per client", CL_MAX_TABLES);
    strata_rtable_t *t = core_calloc(1, sizeof(*t));
    if (!t)
        return core_fail(STRATA_ERR_NOMEM, "table: out of memory");
    t->c = c;
    snprintf(t->name, sizeof(t->name), "%s", name);
    strata_status_t st = STRATA_OK;
    for (uint32_t i = 0; st == STRATA_OK && i < c->nservers; i++)
        st = describe(t, i);
    if (st == STRATA_OK && c->loc_entries) {
        uint64_t sets = c->loc_entries / 8 ? c->loc_entries / 8 : 1;
        t->loc = core_aligned_alloc(64, sets * sizeof(cl_loc_set_t));
        if (!t->loc)
            st = core_fail(STRATA_ERR_NOMEM, "location cache: out of memory");
        else {
            memset(t->loc, 0, sets * sizeof(cl_loc_set_t));
            t->loc_mask = sets - 1;
        }
    }
    if (st != STRATA_OK) {
        table_free(t);
        return st;
    }
    c->tables[c->ntables++] = t;
    *table_p = t;
    return STRATA_OK;
}

const strata_table_schema_t *strata_rtable_schema(const strata_rtable_t *t)
{
    return &t->schema;
}

/* ------------------------------------------------------------------------ */
/* operations                                                               */
/* ------------------------------------------------------------------------ */

#define CL_OP_POOL 16

static void op_destroy(cl_op_t *op)
{
    core_free(op->ukeys);
    core_free(op->first);
    core_free(op->uidx);
    core_free(op->ugrads);
    core_free(op->ufound);
    core_free(op->rpc_pos);
    core_free(op->chunks);
    core_free(op->ht);
    core_free(op->sorted);
    core_free(op->gstage);
    core_free(op->gets);
    core_free(op);
}

/** Return a finished op to the client's pool (its buffers stay). */
static void op_free(cl_op_t *op)
{
    strata_client_t *c = op->t->c;
    if (c->op_pool_n >= CL_OP_POOL) {
        op_destroy(op);
        return;
    }
    op->next = c->op_pool;
    c->op_pool = op;
    c->op_pool_n++;
}

/** A clean op from the pool (or a new one); NULL on NOMEM. */
static cl_op_t *op_get(strata_client_t *c)
{
    cl_op_t *op = c->op_pool;
    if (!op)
        return core_calloc(1, sizeof(cl_op_t));
    c->op_pool = op->next;
    c->op_pool_n--;
    /* clear the per-call fields; the buffers and capacities stay */
    uint64_t *ukeys = op->ukeys;
    uint32_t *first = op->first, *uidx = op->uidx, *rpc_pos = op->rpc_pos;
    float *ugrads = op->ugrads;
    uint8_t *ufound = op->ufound;
    cl_chunk_t *chunks = op->chunks;
    memset(op, 0, offsetof(cl_op_t, cap_keys));
    op->ukeys = ukeys;
    op->first = first;
    op->uidx = uidx;
    op->rpc_pos = rpc_pos;
    op->ugrads = ugrads;
    op->ufound = ufound;
    op->chunks = chunks;
    return op;
}

/** Grow *p to hold need elements of size sz (capacity in *cap). */
static int ensure(void *pp, size_t *cap, size_t need, size_t sz)
{
    if (need <= *cap)
        return 0;
    size_t ncap = *cap ? *cap : 64;
    while (ncap < need)
        ncap *= 2;
    void **p = pp;
    void *np = core_realloc(*p, ncap * sz);
    if (!np)
        return -1;
    *p = np;
    *cap = ncap;
    return 0;
}

/** Size every per-key buffer of op for n keys (pushes: and n*dim floats). */
static strata_status_t op_reserve(cl_op_t *op, size_t n, uint32_t dim)
{
    size_t need = n ? n : 1;
    if (need > op->cap_keys) {
        size_t cap = op->cap_keys, c2 = cap, c3 = cap, c4 = cap, c5 = cap, c6 = cap;
        if (ensure(&op->ukeys, &cap, need, sizeof(uint64_t)) ||
            ensure(&op->first, &c2, need, sizeof(uint32_t)) ||
            ensure(&op->uidx, &c3, need, sizeof(uint32_t)) ||
            ensure(&op->ufound, &c4, need, 1) ||
            ensure(&op->rpc_pos, &c5, need, sizeof(uint32_t)) ||
            ensure(&op->sorted, &c6, need, sizeof(uint32_t)))
            return core_fail(STRATA_ERR_NOMEM, "batch of %zu keys: out of memory", n);
        op->cap_keys = cap; /* all six grew to the same capacity */
    }
    if (op->kind == OP_PUSH && ensure(&op->ugrads, &op->cap_grads, need * dim, sizeof(float)))
        return core_fail(STRATA_ERR_NOMEM, "batch of %zu gradients: out of memory", n);
    size_t hcap = 16;
    while (hcap < 2 * n)
        hcap <<= 1;
    if (ensure(&op->ht, &op->cap_ht, hcap, sizeof(uint32_t)))
        return core_fail(STRATA_ERR_NOMEM, "dedup table: out of memory");
    return STRATA_OK;
}

/** Dedup op->keys into ukeys/first/uidx (and sum grads for pushes). */
static strata_status_t op_dedup(cl_op_t *op)
{
    size_t n = op->n;
    uint32_t dim = op->t->dim;
    strata_status_t st = op_reserve(op, n, dim);
    if (st != STRATA_OK)
        return st;
    size_t cap = 16;
    while (cap < 2 * n)
        cap <<= 1;
    uint32_t *ht = op->ht;
    memset(ht, 0xff, cap * sizeof(uint32_t));
    uint32_t nu = 0;
    for (size_t i = 0; i < n; i++) {
        uint64_t k = op->keys[i];
        size_t h = core_key_hash(k) & (cap - 1);
        while (ht[h] != UINT32_MAX && op->ukeys[ht[h]] != k)
            h = (h + 1) & (cap - 1);
        if (ht[h] == UINT32_MAX) {
            ht[h] = nu;
            op->ukeys[nu] = k;
            op->first[nu] = (uint32_t)i;
            if (op->kind == OP_PUSH)
                memcpy(op->ugrads + (size_t)nu * dim, op->grads + i * dim, dim * sizeof(float));
            nu++;
        } else if (op->kind == OP_PUSH) {
            float *dst = op->ugrads + (size_t)ht[h] * dim;
            const float *src = op->grads + i * dim;
            for (uint32_t d = 0; d < dim; d++)
                dst[d] += src[d];
        }
        op->uidx[i] = ht[h];
    }
    op->nu = nu;
    return STRATA_OK;
}

static inline cl_loc_set_t *loc_set(const strata_rtable_t *t, uint64_t h)
{
    return &t->loc[(h >> 24) & t->loc_mask];
}

static inline uint64_t loc_fp(uint64_t h)
{
    return h >> 40;
}

/** Cached slot of the key with hash h, or UINT64_MAX. */
static inline uint64_t loc_get(const strata_rtable_t *t, uint64_t h)
{
    if (!t->loc)
        return UINT64_MAX;
    const cl_loc_set_t *set = loc_set(t, h);
    uint64_t fp = loc_fp(h);
    for (int i = 0; i < 8; i++)
        if (set->e[i] && (set->e[i] & 0xffffff) == fp)
            return (set->e[i] >> 24) - 1;
    return UINT64_MAX;
}

/** Remember (or, with slot UINT64_MAX, forget) the key's slot. */
static inline void loc_put(strata_rtable_t *t, uint64_t h, uint64_t slot)
{
    if (!t->loc || (slot != UINT64_MAX && slot > CL_LOC_SLOT_MAX))
        return;
    cl_loc_set_t *set = loc_set(t, h);
    uint64_t fp = loc_fp(h);
    uint64_t ent = slot == UINT64_MAX ? 0 : ((slot + 1) << 24) | fp;
    int victim = -1;
    for (int i = 0; i < 8; i++) {
        if (set->e[i] && (set->e[i] & 0xffffff) == fp) {
            set->e[i] = ent;
            return;
        }
        if (!set->e[i] && victim < 0)
            victim = i;
    }
    if (slot == UINT64_MAX)
        return;
    if (victim < 0)
        victim = (int)((h >> 16) & 7); /* a full set: a pseudo-random way */
    set->e[victim] = ent;
}

static inline uint32_t key_server(const strata_rtable_t *t, uint64_t key, uint32_t *g_p)
{
    uint32_t g = strata_key_shard(key, t->total_shards);
    *g_p = g;
    return g % t->c->nservers;
}

/** Read len bytes at raddr of a shard region: a load from the mapping when
 *  there is one, else a queued get. */
typedef struct get_batch {
    rdma_get_t *g;
    size_t n, cap;
} get_batch_t;

static strata_status_t gb_add(get_batch_t *b, ucp_ep_h ep, ucp_rkey_h rkey, uint64_t raddr,
                              void *dst, uint32_t len, uint32_t tag)
{
    if (b->n == b->cap) {
        size_t ncap = b->cap ? b->cap * 2 : 256;
        rdma_get_t *ng = core_realloc(b->g, ncap * sizeof(*ng));
        if (!ng)
            return core_fail(STRATA_ERR_NOMEM, "get batch: out of memory");
        b->g = ng;
        b->cap = ncap;
    }
    b->g[b->n++] = (rdma_get_t){.ep = ep, .rkey = rkey, .raddr = raddr, .dst = dst, .len = len,
                                .tag = tag};
    return STRATA_OK;
}

/** Validate a row whose header was copied to hdr and embedding to emb
 *  (the rules of core_row_validate; any incarnation: the key decides). */
static inline core_row_check_t row_check(const core_row_t *hdr, const float *emb, uint32_t dim,
                                         uint64_t key)
{
    if (hdr->seq & 1)
        return CORE_ROW_TORN;
    if (core_row_checksum(hdr->seq, hdr->key, hdr->incarnation, hdr->flags, emb, dim) !=
        hdr->checksum)
        return CORE_ROW_TORN;
    if (!(hdr->flags & CORE_ROW_LIVE) || hdr->key != key)
        return CORE_ROW_MISMATCH;
    return CORE_ROW_OK;
}

/** Read a row out of a mapped arena straight into out and validate it,
 *  re-reading a torn copy up to CL_TORN_RETRIES times. */
static core_row_check_t mapped_read(strata_client_t *c, const cl_shard_t *sh, uint64_t slot,
                                    uint64_t key, uint32_t dim, float *out)
{
    const uint8_t *src = sh->arena_local + slot * sh->stride;
    for (int tries = 1;; tries++) {
        c->stats.bytes_onesided += CORE_ROW_HEADER_BYTES + 4ull * dim;
        core_row_t hdr;
        memcpy(&hdr, src, sizeof(hdr));
        memcpy(out, src + sizeof(hdr), 4ull * dim);
        core_row_check_t chk = row_check(&hdr, out, dim, key);
        if (chk != CORE_ROW_TORN || tries >= CL_TORN_RETRIES)
            return chk;
        c->stats.torn_retries++;
    }
}

static inline void prefetch_lines(const void *p, size_t bytes)
{
    const char *q = p;
    for (size_t off = 0; off < bytes; off += 64)
        __builtin_prefetch(q + off, 0, 3);
}

/** Look key up in a mapped shard: location cache, then the index.
 *  Returns 1 with the row in out; 2 when the key is absent for certain
 *  (not in the index, and the index's trailer, read after the buckets,
 *  says it is still the shard's current one); 0 to ask the server. */
static int mapped_lookup(strata_client_t *c, strata_rtable_t *t, const cl_shard_t *sh,
                         uint64_t key, uint64_t h, uint64_t cslot, float *out)
{
    uint32_t dim = t->dim;
    uint64_t nslots = sh->arena_len / sh->stride;
    if (cslot != UINT64_MAX && cslot < nslots) {
        core_row_check_t chk = mapped_read(c, sh, cslot, key, dim, out);
        if (chk == CORE_ROW_OK) {
            c->stats.onesided_hits++;
            return 1;
        }
        if (chk == CORE_ROW_TORN)
            return 0;
        c->stats.stale_locations++;
        loc_put(t, h, UINT64_MAX);
    }
    /* the index: both candidate buckets, every entry with the fingerprint */
    int torn = 0;
    uint16_t fp = core_fingerprint(h);
    uint64_t b[2] = {core_bucket1(h, sh->nbuckets), core_bucket2(h, sh->nbuckets)};
    c->stats.bytes_onesided += 2 * CORE_BUCKET_BYTES;
    for (int k = 0; k < 2; k++) {
        const core_bucket_t *bk = (const core_bucket_t *)(sh->index_local + b[k] * CORE_BUCKET_BYTES);
        for (unsigned e = 0; e < CORE_BUCKET_ENTRIES; e++) {
            uint64_t ent = __atomic_load_n(&bk->entry[e], __ATOMIC_RELAXED);
            if (!ent || core_entry_fp(ent) != fp)
                continue;
            uint64_t slot = core_entry_slot(ent);
            if (slot >= nslots)
                continue;
            core_row_check_t chk = mapped_read(c, sh, slot, key, dim, out);
            if (chk == CORE_ROW_OK) {
                loc_put(t, h, slot);
                c->stats.onesided_index++;
                return 1;
            }
            torn |= chk == CORE_ROW_TORN;
        }
    }
    if (torn)
        return 0; /* a candidate kept changing: the server decides */
    /* Not in the buckets. The acquire load pairs with the writer's release
     * store of retired after publishing a grown index: if the index is
     * still current now, it held every acknowledged insert when read. */
    const core_index_trailer_t *tr =
        (const core_index_trailer_t *)(sh->index_local + sh->nbuckets * CORE_BUCKET_BYTES);
    c->stats.bytes_onesided += CORE_BUCKET_BYTES;
    if (__atomic_load_n(&tr->retired, __ATOMIC_ACQUIRE) == 0)
        return t->tiered ? 0 : 2; /* tiered: it may be on NVMe, the server knows */
    t->stale[sh->server] = 1; /* grown: re-read the layout before the next batch */
    return 0;
}

/** One-sided phase of a lookup. Keys it resolves get their rows in out
 *  and STRATA_ROW_FOUND; the rest are appended to rpc_pos.
 *
 *  Mapped shards (shared memory) are read with loads, software-pipelined:
 *  a key's cache set is prefetched 2*CL_DIST keys ahead, its row (or its
 *  buckets) CL_DIST keys ahead, so misses overlap with the copying and
 *  checksumming of earlier keys. Other one-sided shards (RDMA) go in rounds of
 *  gets: cached rows and bucket pairs, then rows found in buckets, then
 *  re-reads of torn copies; one flush per round. */
#define CL_DIST 6   /* keys between pipeline stages */
#define CL_RING 16  /* ring entries: a power of two > 2 * CL_DIST */
static strata_status_t op_onesided(cl_op_t *op)
{
    strata_rtable_t *t = op->t;
    strata_client_t *c = t->c;
    uint32_t dim = t->dim;
    size_t rowb = core_row_bytes(dim);
    size_t rowb_al = (rowb + 63) & ~(size_t)63;
    uint32_t nu = op->nu;
    strata_status_t st = STRATA_OK;
    /* A mapped index whose trailer says retired was replaced (growth) or
     * its table dropped: every row or bucket read through its layout may be
     * stale. One line per shard per batch; the acquire loads pair with the
     * writer's release stores of retired. */
    for (uint32_t g = 0; g < t->total_shards; g++) {
        const cl_shard_t *sh = &t->shards[g];
        if (!sh->valid || !sh->index_local || t->stale[sh->server])
            continue;
        const core_index_trailer_t *tr =
            (const core_index_trailer_t *)(sh->index_local + sh->nbuckets * CORE_BUCKET_BYTES);
        if (__atomic_load_n(&tr->retired, __ATOMIC_ACQUIRE))
            t->stale[sh->server] = 1;
    }
    /* refresh stale layouts first */
    for (uint32_t i = 0; i < c->nservers; i++) {
        if (t->stale[i] && server_onesided(c, i) && !c->servers[i].dead) {
            st = describe(t, i);
            if (st != STRATA_OK)
                return st;
            c->stats.relayouts++;
        }
    }
    uint32_t *gets_pos = op->sorted; /* unique keys for the RDMA-get path (op_make_chunks
                                        uses this scratch only later) */
    uint32_t ngets = 0;
    /* software pipeline over the unique keys, rings of CL_RING entries:
     * stage A (key u + 2*CL_DIST): hash, route, prefetch its cache set;
     * stage B (key u + CL_DIST): read the cache set, prefetch the row (or
     * the two buckets); stage C (key u): copy and validate. */
    uint64_t hs[CL_RING], cs[CL_RING];
    uint32_t gs[CL_RING];
    uint8_t kind[CL_RING]; /* 0 rpc, 1 mapped, 2 gets */
    for (uint64_t i = 0; i < (uint64_t)nu + 2 * CL_DIST; i++) {
        if (i < nu) { /* stage A on key i */
            uint32_t r = (uint32_t)i & (CL_RING - 1);
            uint64_t key = op->ukeys[i];
            uint32_t sv = key_server(t, key, &gs[r]);
            const cl_shard_t *sh = &t->shards[gs[r]];
            hs[r] = core_key_hash(key);
            if (!server_onesided(c, sv) || !sh->valid || !t->onesided_ok)
                kind[r] = 0;
            else
                kind[r] = sh->arena_local && sh->index_local ? 1 : 2;
            if (kind[r] == 1 && t->loc)
                __builtin_prefetch(loc_set(t, hs[r]), 0, 3);
        }
        if (i >= CL_DIST && i - CL_DIST < nu) { /* stage B on key i - D */
            uint32_t r = (uint32_t)(i - CL_DIST) & (CL_RING - 1);
            if (kind[r] == 1) {
                const cl_shard_t *sh = &t->shards[gs[r]];
                cs[r] = loc_get(t, hs[r]);
                if (cs[r] != UINT64_MAX && cs[r] < sh->arena_len / sh->stride) {
                    prefetch_lines(sh->arena_local + cs[r] * sh->stride, rowb);
                } else {
                    __builtin_prefetch(sh->index_local +
                                           core_bucket1(hs[r], sh->nbuckets) * CORE_BUCKET_BYTES,
                                       0, 3);
                    __builtin_prefetch(sh->index_local +
                                           core_bucket2(hs[r], sh->nbuckets) * CORE_BUCKET_BYTES,
                                       0, 3);
                }
            }
        }
        if (i >= 2 * CL_DIST) { /* stage C on key u = i - 2D */
            uint32_t u = (uint32_t)(i - 2 * CL_DIST);
            uint32_t r = u & (CL_RING - 1);
            int got = kind[r] == 1 ? mapped_lookup(c, t, &t->shards[gs[r]], op->ukeys[u], hs[r],
                                                   cs[r], op->out + (size_t)op->first[u] * dim)
                                   : 0;
            if (got == 1) {
                op->ufound[u] = STRATA_ROW_FOUND;
            } else if (got == 2 && !(op->flags & WIRE_LOOKUP_INIT_MISSING)) {
                /* absent for certain: the initializer's values, as the
                 * server would answer (core_init_row is deterministic) */
                core_init_row(&t->schema.initializer, op->ukeys[u],
                              op->out + (size_t)op->first[u] * dim, dim);
                op->ufound[u] = STRATA_ROW_MISSING;
                c->stats.onesided_absent++;
            } else if (kind[r] == 2) {
                gets_pos[ngets++] = u;
            } else {
                op->rpc_pos[op->nrpc++] = u;
            }
        }
    }
    if (ngets == 0)
        return STRATA_OK;

    /* --- RDMA gets, in rounds ---------------------------------------------- */
    /* one staging block from the op's pooled buffers: [rows][bucket pairs]
     * [slots][state][mode][tries], 64-byte aligned */
    size_t stage = 64 + (size_t)ngets * (rowb_al + 2 * sizeof(core_bucket_t) + sizeof(uint64_t) + 3);
    if (ensure(&op->gstage, &op->cap_gstage, stage, 1))
        return core_fail(STRATA_ERR_NOMEM, "lookup staging: out of memory");
    uint8_t *rows = (uint8_t *)(((uintptr_t)op->gstage + 63) & ~(uintptr_t)63);
    core_bucket_t *bks = (core_bucket_t *)(rows + (size_t)ngets * rowb_al);
    uint64_t *slot = (uint64_t *)(bks + 2 * (size_t)ngets);
    uint8_t *state = (uint8_t *)(slot + ngets); /* 0 todo, 1 done, 2 rpc */
    uint8_t *mode = state + ngets;              /* 0 row by cache, 1 buckets, 2 row by index */
    uint8_t *tries = mode + ngets;
    memset(state, 0, 3 * (size_t)ngets);
    get_batch_t gb = {.g = op->gets, .n = 0, .cap = op->cap_gets};
    for (uint32_t k = 0; k < ngets; k++) {
        slot[k] = loc_get(t, core_key_hash(op->ukeys[gets_pos[k]]));
        mode[k] = slot[k] == UINT64_MAX ? 1 : 0;
    }
    for (int round = 0; round < CL_TORN_RETRIES + 2; round++) {
        gb.n = 0;
        int any = 0;
        for (uint32_t k = 0; k < ngets; k++) {
            if (state[k] != 0)
                continue;
            any = 1;
            uint64_t key = op->ukeys[gets_pos[k]];
            uint32_t g;
            uint32_t sv = key_server(t, key, &g);
            cl_shard_t *sh = &t->shards[g];
            ucp_ep_h ep = c->servers[sv].ep;
            if (mode[k] == 1) {
                uint64_t h = core_key_hash(key);
                uint64_t b1 = core_bucket1(h, sh->nbuckets), b2 = core_bucket2(h, sh->nbuckets);
                st = gb_add(&gb, ep, sh->index_rkey, sh->index_addr + b1 * CORE_BUCKET_BYTES,
                            &bks[2 * (size_t)k], CORE_BUCKET_BYTES, k);
                if (st == STRATA_OK)
                    st = gb_add(&gb, ep, sh->index_rkey, sh->index_addr + b2 * CORE_BUCKET_BYTES,
                                &bks[2 * (size_t)k + 1], CORE_BUCKET_BYTES, k);
            } else if (slot[k] * sh->stride + rowb > sh->arena_len) {
                state[k] = 2;
            } else {
                st = gb_add(&gb, ep, sh->arena_rkey, sh->arena_addr + slot[k] * sh->stride,
                            rows + (size_t)k * rowb_al, (uint32_t)rowb, k);
            }
            if (st != STRATA_OK)
                goto out;
        }
        if (!any)
            break;
        for (size_t q = 0; q < gb.n; q++)
            c->stats.bytes_onesided += gb.g[q].len;
        if (gb.n && rdma_get_batch(c->w, gb.g, gb.n, 256, op->deadline) != STRATA_OK) {
            /* reads failed (server gone, region unmapped): ask by RPC */
            for (uint32_t k = 0; k < ngets; k++)
                if (state[k] == 0)
                    state[k] = 2;
            break;
        }
        for (uint32_t k = 0; k < ngets; k++) {
            if (state[k] != 0)
                continue;
            uint32_t u = gets_pos[k];
            uint64_t key = op->ukeys[u];
            uint64_t h = core_key_hash(key);
            if (mode[k] == 1) {
                uint16_t fp = core_fingerprint(h);
                uint64_t cand = UINT64_MAX;
                for (int b = 0; b < 2 && cand == UINT64_MAX; b++)
                    for (unsigned e = 0; e < CORE_BUCKET_ENTRIES; e++) {
                        uint64_t ent = bks[2 * (size_t)k + b].entry[e];
                        if (ent && core_entry_fp(ent) == fp) {
                            cand = core_entry_slot(ent);
                            break;
                        }
                    }
                if (cand == UINT64_MAX) {
                    state[k] = 2;
                } else {
                    mode[k] = 2;
                    slot[k] = cand;
                }
                continue;
            }
            const uint8_t *copy = rows + (size_t)k * rowb_al;
            core_row_check_t chk = core_row_validate(copy, dim, key, UINT32_MAX);
            if (chk == CORE_ROW_OK) {
                memcpy(op->out + (size_t)op->first[u] * dim, ((const core_row_t *)copy)->emb,
                       dim * sizeof(float));
                op->ufound[u] = STRATA_ROW_FOUND;
                state[k] = 1;
                if (mode[k] == 2) {
                    loc_put(t, h, slot[k]);
                    c->stats.onesided_index++;
                } else {
                    c->stats.onesided_hits++;
                }
            } else if (chk == CORE_ROW_TORN && ++tries[k] < CL_TORN_RETRIES) {
                c->stats.torn_retries++;
            } else {
                if (chk == CORE_ROW_MISMATCH && mode[k] == 0) {
                    c->stats.stale_locations++;
                    loc_put(t, h, UINT64_MAX);
                }
                state[k] = 2;
            }
        }
    }
    for (uint32_t k = 0; k < ngets; k++)
        if (state[k] != 1)
            op->rpc_pos[op->nrpc++] = gets_pos[k];
out:
    op->gets = gb.g; /* gb_add may have grown it */
    op->cap_gets = gb.cap;
    return st;
}

/** Keys per RPC chunk for this op on server sv. */
static uint32_t chunk_keys(const cl_op_t *op, const cl_server_t *s)
{
    uint32_t dim = op->t->dim;
    size_t per = op->kind == OP_PUSH ? 8 + 4ull * dim
                                     : 8 + 1 + (op->want_loc ? 16 : 0) + 4ull * dim;
    size_t room = s->max_msg - sizeof(wire_hdr_t) - 8;
    size_t k = room / per;
    if (k > s->max_keys)
        k = s->max_keys;
    return k ? (uint32_t)k : 1;
}

/** Group op->rpc_pos by server and cut chunks. */
static strata_status_t op_make_chunks(cl_op_t *op)
{
    strata_rtable_t *t = op->t;
    strata_client_t *c = t->c;
    uint32_t ns = c->nservers;
    uint32_t *cnt = op->cnt;
    uint32_t *sorted = op->sorted;
    memset(cnt, 0, (ns + 1) * sizeof(uint32_t));
    for (uint32_t k = 0; k < op->nrpc; k++) {
        uint32_t g;
        cnt[key_server(t, op->ukeys[op->rpc_pos[k]], &g) + 1]++;
    }
    for (uint32_t i = 0; i < ns; i++)
        cnt[i + 1] += cnt[i];
    uint32_t nchunks = 0;
    for (uint32_t i = 0; i < ns; i++) {
        uint32_t m = cnt[i + 1] - cnt[i];
        uint32_t per = chunk_keys(op, &c->servers[i]);
        nchunks += (m + per - 1) / per;
    }
    size_t ccap = op->cap_chunks;
    if (ensure(&op->chunks, &ccap, nchunks ? nchunks : 1, sizeof(cl_chunk_t)))
        return core_fail(STRATA_ERR_NOMEM, "rpc chunks: out of memory");
    op->cap_chunks = (uint32_t)ccap;
    memset(op->chunks, 0, (nchunks ? nchunks : 1) * sizeof(cl_chunk_t));
    uint32_t fill[CL_MAX_SERVERS];
    memcpy(fill, cnt, ns * sizeof(uint32_t));
    for (uint32_t k = 0; k < op->nrpc; k++) {
        uint32_t g;
        uint32_t sv = key_server(t, op->ukeys[op->rpc_pos[k]], &g);
        sorted[fill[sv]++] = op->rpc_pos[k];
    }
    memcpy(op->rpc_pos, sorted, op->nrpc * sizeof(uint32_t));
    uint32_t ci = 0;
    for (uint32_t i = 0; i < ns; i++) {
        uint32_t per = chunk_keys(op, &c->servers[i]);
        for (uint32_t f = cnt[i]; f < cnt[i + 1]; f += per) {
            op->chunks[ci].server = i;
            op->chunks[ci].first = f;
            op->chunks[ci].count = cnt[i + 1] - f < per ? cnt[i + 1] - f : per;
            ci++;
        }
    }
    op->nchunks = ci;
    return STRATA_OK;
}

/** Post every chunk whose server has a credit free. */
static void op_send_chunks(cl_op_t *op)
{
    strata_rtable_t *t = op->t;
    strata_client_t *c = t->c;
    uint32_t dim = t->dim;
    for (uint32_t k = 0; k < op->nchunks; k++) {
        cl_chunk_t *ch = &op->chunks[k];
        if (ch->sent)
            continue;
        cl_server_t *s = &c->servers[ch->server];
        if (s->dead) {
            ch->sent = ch->done = 1;
            op->chunks_done++;
            if (op->st == STRATA_OK)
                op->st = core_fail(s->dead_st, "server %u (%s:%u) is gone", ch->server, s->host,
                                   s->port);
            continue;
        }
        if (s->inflight >= s->credits)
            continue;
        cl_pending_t *p = pending_new(c);
        if (!p)
            return;
        size_t body = op->kind == OP_PUSH ? (size_t)ch->count * (8 + 4ull * dim)
                                          : (size_t)ch->count * 8;
        wire_hdr_t *msg = core_malloc(sizeof(wire_hdr_t) + body);
        if (!msg) {
            p->req_id = 0;
            ch->sent = ch->done = 1;
            op->chunks_done++;
            if (op->st == STRATA_OK)
                op->st = core_fail(STRATA_ERR_NOMEM, "request: out of memory");
            continue;
        }
        wire_hdr_init(msg, op->kind == OP_PUSH ? WIRE_PUSH : WIRE_LOOKUP, 0, (uint32_t)body);
        msg->table_id = t->table_id[ch->server];
        msg->count = ch->count;
        msg->flags = op->kind == OP_LOOKUP ? op->flags : 0;
        uint64_t *keys = (uint64_t *)(msg + 1);
        float *grads = (float *)(keys + ch->count);
        for (uint32_t j = 0; j < ch->count; j++) {
            uint32_t u = op->rpc_pos[ch->first + j];
            keys[j] = op->ukeys[u];
            if (op->kind == OP_PUSH)
                memcpy(grads + (size_t)j * dim, op->ugrads + (size_t)u * dim, dim * sizeof(float));
        }
        p->op = op;
        p->chunk = k;
        strata_status_t st = rpc_post(c, ch->server, p, msg, sizeof(*msg) + body);
        ch->sent = 1;
        if (st != STRATA_OK) {
            core_free(msg);
            ch->done = 1;
            op->chunks_done++;
            if (op->st == STRATA_OK)
                op->st = core_fail(st, "send to server %u: %s", ch->server, strata_last_error());
        }
    }
}

static void op_on_reply(cl_op_t *op, cl_pending_t *p, const wire_hdr_t *h)
{
    cl_chunk_t *ch = &op->chunks[p->chunk];
    strata_rtable_t *t = op->t;
    uint32_t dim = t->dim;
    ch->done = 1;
    op->chunks_done++;
    if (h->status < 0) {
        if (op->st == STRATA_OK) {
            char text[WIRE_ERRMSG_MAX + 1];
            wire_decode_errmsg(h, text, sizeof(text));
            op->st = core_fail((strata_status_t)h->status, "server %u: %s", p->server, text);
        }
        return;
    }
    if (op->kind == OP_PUSH)
        return;
    wire_lookup_reply_view_t v;
    strata_status_t st = wire_decode_lookup_reply(h, ch->count, dim, op->want_loc, &v);
    if (st != STRATA_OK) {
        if (op->st == STRATA_OK)
            op->st = st;
        return;
    }
    if (h->flags != t->layout_gen[p->server])
        t->stale[p->server] = 1; /* an index grew: re-describe before one-sided reads */
    for (uint32_t j = 0; j < ch->count; j++) {
        uint32_t u = op->rpc_pos[ch->first + j];
        memcpy(op->out + (size_t)op->first[u] * dim, v.rows + (size_t)j * dim, dim * sizeof(float));
        op->ufound[u] = v.found[j];
        if (v.loc && v.loc[j].slot != UINT64_MAX)
            loc_put(t, core_key_hash(op->ukeys[u]), v.loc[j].slot);
    }
}

static void op_finish(cl_op_t *op)
{
    strata_rtable_t *t = op->t;
    uint32_t dim = t->dim;
    if (op->kind == OP_LOOKUP && op->st == STRATA_OK) {
        for (size_t i = 0; i < op->n; i++) {
            uint32_t u = op->uidx[i];
            if (op->first[u] != i)
                memcpy(op->out + i * dim, op->out + (size_t)op->first[u] * dim,
                       dim * sizeof(float));
            if (op->found)
                op->found[i] = op->ufound[u];
        }
    }
    op->done = 1;
}

/** Force-close the servers an overdue op waits on. */
static void op_timeout(cl_op_t *op)
{
    strata_client_t *c = op->t->c;
    for (uint32_t k = 0; k < op->nchunks; k++) {
        cl_chunk_t *ch = &op->chunks[k];
        if (ch->done)
            continue;
        cl_server_t *s = &c->servers[ch->server];
        if (!s->dead) {
            mark_dead(c, ch->server, STRATA_ERR_TIMEOUT);
            rdma_ep_close(c->w, s->ep, 1, now_ns() + 1000000000ull);
            s->ep = NULL;
        }
        if (!ch->done) {
            ch->done = 1;
            op->chunks_done++;
        }
    }
    op->st = core_fail(STRATA_ERR_TIMEOUT,
                       "no answer within %u ms: the servers it waited on are closed",
                       c->timeout_ms);
}

/** Advance op; returns 1 when it is complete. */
static int op_step(cl_op_t *op)
{
    if (op->done)
        return 1;
    op_send_chunks(op);
    if (op->chunks_done == op->nchunks) {
        op_finish(op);
        return 1;
    }
    if (now_ns() > op->deadline) {
        op_timeout(op);
        op_finish(op);
        return 1;
    }
    return 0;
}

static strata_status_t op_start(strata_rtable_t *t, op_kind_t kind, const uint64_t *keys, size_t n,
                                float *out, uint8_t *found, const float *grads, uint32_t flags,
                                cl_op_t **op_p)
{
    strata_client_t *c = t->c;
    if (n > 0 && (!keys || (kind == OP_LOOKUP && !out) || (kind == OP_PUSH && !grads)))
        return core_fail(STRATA_ERR_INVALID_PARAM, "keys and data buffers must not be NULL when "
                                                   "n = %zu", n);
    if (n > UINT32_MAX)
        return core_fail(STRATA_ERR_TOO_LARGE, "batch of %zu keys: at most 2^32-1", n);
    if (kind == OP_LOOKUP && (flags & ~(uint32_t)STRATA_LOOKUP_INIT_MISSING))
        return core_fail(STRATA_ERR_INVALID_PARAM, "lookup flags 0x%x: unknown bits", flags);
    if (c->read_only && (kind == OP_PUSH || (flags & STRATA_LOOKUP_INIT_MISSING)))
        return core_fail(STRATA_ERR_READ_ONLY, "%s on a read-only client",
                         kind == OP_PUSH ? "push" : "lookup with INIT_MISSING");
    if (kind == OP_PUSH) {
        strata_status_t st = core_check_finite(grads, n * (size_t)t->dim, t->dim, "grads");
        if (st != STRATA_OK)
            return st;
    }
    cl_op_t *op = op_get(c);
    if (!op)
        return core_fail(STRATA_ERR_NOMEM, "operation: out of memory");
    op->t = t;
    op->kind = kind;
    op->keys = keys;
    op->n = n;
    op->out = out;
    op->found = found;
    op->grads = grads;
    op->deadline = now_ns() + (uint64_t)c->timeout_ms * 1000000ull;
    strata_status_t st = op_dedup(op);
    if (st != STRATA_OK)
        goto err;
    /* A batch served entirely from mapped memory never waits on the
     * network: progress once anyway, so a server's death (an endpoint
     * error, delivered from progress) is seen, and its stale memory is not
     * read on. At most every 20 us: a progress call costs a system call
     * per TCP interface, which small batches would feel. */
    uint64_t now = now_ns();
    if (now - c->last_progress_ns > 20000) {
        rdma_worker_progress(c->w);
        c->last_progress_ns = now;
    }
    if (kind == OP_LOOKUP) {
        c->stats.lookups += n;
        c->stats.unique_keys += op->nu;
        uint32_t g;
        for (uint32_t u = 0; u < op->nu; u++) {
            cl_server_t *s = &c->servers[key_server(t, op->ukeys[u], &g)];
            if (s->dead) {
                st = core_fail(s->dead_st, "server %s:%u is gone (%s)", s->host, s->port,
                               s->dead_st == STRATA_ERR_TIMEOUT ? "timed out"
                                                                : "connection lost");
                goto err;
            }
        }
        int init = (flags & STRATA_LOOKUP_INIT_MISSING) != 0;
        op->want_loc = t->loc != NULL && t->onesided_ok;
        op->flags = (init ? WIRE_LOOKUP_INIT_MISSING : 0) | (op->want_loc ? WIRE_LOOKUP_WANT_LOC : 0);
        st = op_onesided(op);
        if (st != STRATA_OK)
            goto err;
        /* with want_loc only where the server reads direct */
        c->stats.rpc_keys += op->nrpc;
    } else {
        c->stats.pushes += op->nu;
        for (uint32_t u = 0; u < op->nu; u++)
            op->rpc_pos[op->nrpc++] = u;
    }
    st = op_make_chunks(op);
    if (st != STRATA_OK)
        goto err;
    op->next = c->ops;
    c->ops = op;
    *op_p = op;
    return STRATA_OK;
err:
    op_free(op);
    return st;
}

static void op_unlink(strata_client_t *c, cl_op_t *op)
{
    for (cl_op_t **pp = &c->ops; *pp; pp = &(*pp)->next) {
        if (*pp == op) {
            *pp = op->next;
            return;
        }
    }
}

/** Run op to completion (sync calls). */
static strata_status_t op_run(strata_client_t *c, cl_op_t *op)
{
    /* Busy-poll while replies are coming; after CL_SPIN_NS without any
     * event, sleep on the worker's event fd (1 ms at most, to re-check the
     * deadline). A waiting client then leaves the CPU to the servers it
     * waits on, which matters whenever clients and servers share cores. */
    uint64_t last = now_ns();
    while (!op_step(op)) {
        if (rdma_worker_progress(c->w)) {
            last = now_ns();
        } else if (now_ns() - last > CL_SPIN_NS) {
            rdma_worker_sleep(c->w, 1);
            last = now_ns() - CL_SPIN_NS / 2;
        }
    }
    strata_status_t st = op->st;
    op_unlink(c, op);
    op_free(op);
    return st;
}

strata_status_t strata_rtable_lookup(strata_rtable_t *t, const uint64_t *keys, size_t n,
                                     float *out, uint8_t *found, uint32_t flags)
{
    if (!t)
        return core_fail(STRATA_ERR_INVALID_PARAM, "table is NULL");
    cl_op_t *op;
    strata_status_t st = op_start(t, OP_LOOKUP, keys, n, out, found, NULL, flags, &op);
    return st == STRATA_OK ? op_run(t->c, op) : st;
}

strata_status_t strata_rtable_push(strata_rtable_t *t, const uint64_t *keys, const float *grads,
                                   size_t n)
{
    if (!t)
        return core_fail(STRATA_ERR_INVALID_PARAM, "table is NULL");
    cl_op_t *op;
    strata_status_t st = op_start(t, OP_PUSH, keys, n, NULL, NULL, grads, 0, &op);
    return st == STRATA_OK ? op_run(t->c, op) : st;
}

/* --- async ----------------------------------------------------------------- */

static strata_status_t req_start(strata_rtable_t *t, cl_op_t *op, strata_request_cb_t cb, void *arg,
                                 strata_request_t **req_p)
{
    strata_request_t *r = core_calloc(1, sizeof(*r));
    if (!r) {
        op_unlink(t->c, op);
        op_free(op);
        return core_fail(STRATA_ERR_NOMEM, "request: out of memory");
    }
    r->c = t->c;
    r->op = op;
    r->cb = cb;
    r->arg = arg;
    r->st = STRATA_INPROGRESS;
    op->req = r;
    *req_p = r;
    strata_client_progress(t->c);
    return STRATA_INPROGRESS;
}

strata_status_t strata_rtable_lookup_async(strata_rtable_t *t, const uint64_t *keys, size_t n,
                                           float *out, uint8_t *found, uint32_t flags,
                                           strata_request_cb_t cb, void *arg,
                                           strata_request_t **req_p)
{
    if (!t || !req_p)
        return core_fail(STRATA_ERR_INVALID_PARAM, "table and req_p must not be NULL");
    cl_op_t *op;
    strata_status_t st = op_start(t, OP_LOOKUP, keys, n, out, found, NULL, flags, &op);
    return st == STRATA_OK ? req_start(t, op, cb, arg, req_p) : st;
}

strata_status_t strata_rtable_push_async(strata_rtable_t *t, const uint64_t *keys,
                                         const float *grads, size_t n, strata_request_cb_t cb,
                                         void *arg, strata_request_t **req_p)
{
    if (!t || !req_p)
        return core_fail(STRATA_ERR_INVALID_PARAM, "table and req_p must not be NULL");
    cl_op_t *op;
    strata_status_t st = op_start(t, OP_PUSH, keys, n, NULL, NULL, grads, 0, &op);
    return st == STRATA_OK ? req_start(t, op, cb, arg, req_p) : st;
}

unsigned strata_client_progress(strata_client_t *c)
{
    rdma_worker_progress(c->w);
    unsigned done = 0;
    cl_op_t *op = c->ops;
    while (op) {
        cl_op_t *next = op->next;
        if (op->req && op_step(op)) {
            strata_request_t *r = op->req;
            r->st = op->st;
            r->op = NULL;
            op_unlink(c, op);
            op_free(op);
            done++;
            if (r->cb)
                r->cb(r, r->st, r->arg);
            if (r->freed)
                core_free(r);
            next = c->ops; /* the callback may have started or freed ops */
        }
        op = next;
    }
    return done;
}

strata_status_t strata_request_test(strata_request_t *r)
{
    if (r->st == STRATA_INPROGRESS)
        strata_client_progress(r->c);
    return r->st;
}

strata_status_t strata_request_wait(strata_request_t *r)
{
    while (r->st == STRATA_INPROGRESS)
        strata_client_progress(r->c);
    return r->st;
}

void strata_request_free(strata_request_t *r)
{
    if (!r)
        return;
    if (r->st == STRATA_INPROGRESS)
        r->freed = 1;
    else
        core_free(r);
}
