/*
 * tests/test_remote_errors.c — bad requests, authentication and killed
 * servers.
 *
 * 1. Raw wire messages (rdma/ucx.h + rdma/wire.h, no libstrata client):
 *    before AUTH every table call gets STRATA_ERR_AUTH and no DESCRIBE
 *    reply (no rkey) is ever sent; a wrong MAC gets AUTH and the session
 *    stays refused; then, on an authenticated session, the bad-request
 *    matrix — unknown table, wrong dim, oversized batch, NaN/Inf
 *    gradient, truncated message, wrong protocol version, bad magic,
 *    trailing bytes, unknown type, read-only violations — each gets its
 *    own status, and after every one a good LOOKUP still succeeds (the
 *    server keeps serving). A NaN push changes nothing.
 * 2. Through the client: a wrong secret fails with AUTH.
 * 3. A server killed (SIGKILL) mid-run: lookups and pushes that need it
 *    return an error (CONNECTION or TIMEOUT) within the client's timeout,
 *    never hang; keys of the surviving server keep working over RPC.
 */
#define _GNU_SOURCE
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cluster.h"
#include "core/hash.h"
#include "rdma/auth.h"
#include "rdma/ucx.h"
#include "rdma/wire.h"
#include "testutil.h"

#define DIM 8

/* --- a raw session ----------------------------------------------------- */

typedef struct raw {
    rdma_ctx_t *ctx;
    rdma_worker_t *w;
    ucp_ep_h ep;
    int got;
    wire_hdr_t reply;         /**< last reply header */
    uint8_t body[1 << 16];    /**< its body (truncated copy) */
    uint64_t next_id;
    rdma_send_slot_t slot;
    int sent;
} raw_t;

static ucs_status_t raw_on_reply(void *arg, const void *header, size_t hl, void *data, size_t len,
                                 const ucp_am_recv_param_t *param)
{
    raw_t *r = arg;
    if (getenv("DBG")) fprintf(stderr, "reply %zu bytes\n", len);
    (void)header;
    (void)hl;
    (void)param;
    CHECK(len >= sizeof(wire_hdr_t), "reply of %zu bytes", len);
    memcpy(&r->reply, data, sizeof(wire_hdr_t));
    size_t b = len - sizeof(wire_hdr_t);
    memcpy(r->body, (uint8_t *)data + sizeof(wire_hdr_t), b < sizeof(r->body) ? b : sizeof(r->body));
    r->got = 1;
    return UCS_OK;
}

static void raw_sent(void *arg, strata_status_t st)
{
    raw_t *r = arg;
    (void)st;
    r->sent = 1;
}

static void raw_connect(raw_t *r, uint16_t port)
{
    memset(r, 0, sizeof(*r));
    CHECK_OK(rdma_ctx_create(&r->ctx));
    CHECK_OK(rdma_worker_create(r->ctx, &r->w));
    CHECK_OK(rdma_worker_set_am(r->w, WIRE_AM_REPLY, raw_on_reply, r));
    CHECK_OK(rdma_ep_connect(r->w, "127.0.0.1", port, NULL, NULL, &r->ep));
}

static void raw_close(raw_t *r)
{
    rdma_ep_close(r->w, r->ep, 1, rdma_now_ns() + 1000000000ull);
    rdma_worker_destroy(r->w);
    rdma_ctx_destroy(r->ctx);
}

/** Send len bytes of msg (header first; req_id filled in); wait for the
 *  reply; returns its status. */
static int32_t raw_call(raw_t *r, void *msg, size_t len)
{
    wire_hdr_t *h = msg;
    if (len >= sizeof(*h))
        h->req_id = ++r->next_id;
    r->got = 0;
    r->sent = 0;
    r->slot.cb = raw_sent;
    r->slot.arg = r;
    strata_status_t st = rdma_am_send(r->ep, WIRE_AM_REQUEST, msg, len, &r->slot);
    CHECK(st == STRATA_OK || st == STRATA_INPROGRESS, "send: %s", strata_status_string(st));
    uint64_t deadline = rdma_now_ns() + 10000000000ull;
    while (!r->got || (st == STRATA_INPROGRESS && !r->sent)) {
        rdma_worker_progress(r->w);
        CHECK(rdma_now_ns() < deadline, "no reply within 10 s (type %u)",
              len >= sizeof(*h) ? h->type : 0);
    }
    if (len >= sizeof(*h))
        CHECK(r->reply.req_id == h->req_id, "reply id");
    return r->reply.status;
}

/** Send a message that gets no reply (too short to carry a header); then
 *  make sure the session still answers. */
static void raw_send_only(raw_t *r, void *msg, size_t len)
{
    r->sent = 0;
    r->slot.cb = raw_sent;
    r->slot.arg = r;
    strata_status_t st = rdma_am_send(r->ep, WIRE_AM_REQUEST, msg, len, &r->slot);
    CHECK(st == STRATA_OK || st == STRATA_INPROGRESS, "send");
    while (st == STRATA_INPROGRESS && !r->sent)
        rdma_worker_progress(r->w);
}

static uint8_t g_msg[1 << 20] __attribute__((aligned(8)));

static wire_hdr_t *msg_new(uint8_t type, uint32_t body_len)
{
    memset(g_msg, 0, sizeof(wire_hdr_t) + body_len);
    wire_hdr_t *h = (wire_hdr_t *)g_msg;
    wire_hdr_init(h, type, 0, body_len);
    return h;
}

static uint32_t g_table_id;
static uint32_t g_total_shards;

/** A LOOKUP of keys owned by server idx (of nservers). */
static size_t make_lookup(uint32_t count, uint32_t flags, uint32_t idx, uint32_t nservers)
{
    wire_hdr_t *h = msg_new(WIRE_LOOKUP, count * 8);
    h->table_id = g_table_id;
    h->count = count;
    h->flags = flags;
    uint64_t *k = (uint64_t *)(h + 1);
    uint64_t key = 1;
    for (uint32_t i = 0; i < count; key++)
        if (strata_key_shard(key, g_total_shards) % nservers == idx)
            k[i++] = key;
    return sizeof(*h) + count * 8;
}

static size_t make_push(uint32_t count, uint32_t dim, float value, uint32_t idx, uint32_t nservers)
{
    size_t ln = make_lookup(count, 0, idx, nservers);
    (void)ln;
    wire_hdr_t *h = (wire_hdr_t *)g_msg;
    h->type = WIRE_PUSH;
    h->flags = 0;
    h->body_len = count * (8 + 4 * dim);
    float *g = (float *)((uint64_t *)(h + 1) + count);
    for (uint32_t i = 0; i < count * dim; i++)
        g[i] = value;
    return sizeof(*h) + h->body_len;
}

static void expect_serving(raw_t *r)
{
    size_t len = make_lookup(4, 0, 0, 2);
    CHECK(raw_call(r, g_msg, len) == STRATA_OK, "server stopped serving a good LOOKUP: %s",
          (char *)r->body);
}

static void handshake(raw_t *r, const char *secret, uint32_t role, int expect_ok)
{
    wire_hdr_t *h = msg_new(WIRE_HELLO, sizeof(wire_hello_t));
    wire_hello_t *hello = (wire_hello_t *)(h + 1);
    hello->role = role;
    CHECK_OK(auth_random(hello->client_nonce, WIRE_NONCE_BYTES));
    uint8_t cn[WIRE_NONCE_BYTES];
    memcpy(cn, hello->client_nonce, sizeof(cn));
    CHECK(raw_call(r, g_msg, sizeof(*h) + sizeof(*hello)) == STRATA_OK, "HELLO");
    wire_challenge_t ch;
    memcpy(&ch, r->body, sizeof(ch));
    h = msg_new(WIRE_AUTH, sizeof(wire_auth_t));
    auth_mac(secret, strlen(secret), cn, ch.server_nonce, role, ((wire_auth_t *)(h + 1))->mac);
    int32_t st = raw_call(r, g_msg, sizeof(*h) + sizeof(wire_auth_t));
    CHECK(expect_ok ? st == STRATA_OK : st == STRATA_ERR_AUTH, "AUTH -> %d", st);
}

static int32_t describe(raw_t *r, const char *name)
{
    wire_hdr_t *h = msg_new(WIRE_DESCRIBE, WIRE_NAME_BYTES);
    memcpy(h + 1, name, strlen(name));
    int32_t st = raw_call(r, g_msg, sizeof(*h) + WIRE_NAME_BYTES);
    if (st == STRATA_OK) {
        CHECK(r->reply.type == (WIRE_DESCRIBE | WIRE_REPLY_BIT), "describe reply type");
        wire_table_desc_t d;
        memcpy(&d, r->body, sizeof(d));
        g_table_id = d.table_id;
        g_total_shards = d.total_shards;
    } else {
        /* an error reply carries only text: no rkey */
        CHECK(r->reply.body_len <= WIRE_ERRMSG_MAX, "error reply of %u bytes", r->reply.body_len);
    }
    return st;
}

#define EXPECT(call, want)                                                                  \
    do {                                                                                    \
        int32_t got_ = (call);                                                              \
        CHECK(got_ == (want), "%s: got %s, want %s (%.*s)", #call,                          \
              strata_status_string((strata_status_t)got_), strata_status_string(want),      \
              (int)r.reply.body_len, (char *)r.body);                                       \
        fprintf(stderr, "  ok: %-34s -> %s: %.*s\n", #want, strata_status_string(want),      \
                (int)(r.reply.body_len > 90 ? 90 : r.reply.body_len), (char *)r.body);       \
        expect_serving(&r);                                                                 \
    } while (0)

static void raw_matrix(const cluster_t *cl)
{
    raw_t r;
    raw_connect(&r, cl->port[0]);
    /* 1. unauthenticated: no table call, no rkey */
    CHECK(describe(&r, "emb") == STRATA_ERR_AUTH, "DESCRIBE before HELLO must be refused");
    wire_hdr_t *h = msg_new(WIRE_LIST, 0);
    CHECK(raw_call(&r, g_msg, sizeof(*h)) == STRATA_ERR_AUTH, "LIST before AUTH");
    handshake(&r, "wrong secret", 0, 0);
    CHECK(describe(&r, "emb") == STRATA_ERR_AUTH, "DESCRIBE after a failed AUTH");
    raw_close(&r);

    /* 2. authenticated read-write session: the bad-request matrix */
    raw_connect(&r, cl->port[0]);
    handshake(&r, cl->secret, 0, 1);
    CHECK(describe(&r, "emb") == STRATA_OK, "DESCRIBE after AUTH");
    fprintf(stderr, "bad-request matrix:\n");
    EXPECT(describe(&r, "nope"), STRATA_ERR_UNKNOWN_TABLE);
    {
        size_t len = make_lookup(4, 0, 0, 2);
        ((wire_hdr_t *)g_msg)->table_id = 999;
        EXPECT(raw_call(&r, g_msg, len), STRATA_ERR_UNKNOWN_TABLE);
    }
    EXPECT(raw_call(&r, g_msg, make_push(4, DIM + 1, 0.5f, 0, 2)), STRATA_ERR_DIM_MISMATCH);
    EXPECT(raw_call(&r, g_msg, make_lookup(5000, 0, 0, 2)), STRATA_ERR_TOO_LARGE);
    {
        /* NaN and Inf gradients: rejected, nothing applied */
        size_t len = make_lookup(4, 0, 0, 2);
        CHECK(raw_call(&r, g_msg, len) == STRATA_OK, "lookup");
        float before[4 * DIM];
        memcpy(before, r.body + 8, sizeof(before));
        len = make_push(4, DIM, 0.25f, 0, 2);
        float *g = (float *)((uint64_t *)((wire_hdr_t *)g_msg + 1) + 4);
        g[5] = NAN;
        EXPECT(raw_call(&r, g_msg, len), STRATA_ERR_BAD_VALUE);
        len = make_push(4, DIM, 0.25f, 0, 2);
        g[3 * DIM] = INFINITY;
        EXPECT(raw_call(&r, g_msg, len), STRATA_ERR_BAD_VALUE);
        len = make_lookup(4, 0, 0, 2);
        CHECK(raw_call(&r, g_msg, len) == STRATA_OK, "lookup");
        CHECK(memcmp(before, r.body + 8, sizeof(before)) == 0, "a rejected push changed rows");
    }
    {
        size_t len = make_lookup(8, 0, 0, 2);
        ((wire_hdr_t *)g_msg)->body_len += 8; /* declares more than it sends */
        EXPECT(raw_call(&r, g_msg, len), STRATA_ERR_TRUNCATED);
        len = make_lookup(8, 0, 0, 2);
        EXPECT(raw_call(&r, g_msg, len - 4), STRATA_ERR_TRUNCATED);
        len = make_lookup(8, 0, 0, 2);
        ((wire_hdr_t *)g_msg)->version = 2;
        EXPECT(raw_call(&r, g_msg, len), STRATA_ERR_VERSION);
        len = make_lookup(8, 0, 0, 2);
        ((wire_hdr_t *)g_msg)->magic = 0x1234;
        EXPECT(raw_call(&r, g_msg, len), STRATA_ERR_PROTOCOL);
        len = make_lookup(8, 0, 0, 2);
        ((wire_hdr_t *)g_msg)->count = 7; /* body has 8 keys */
        EXPECT(raw_call(&r, g_msg, len), STRATA_ERR_PROTOCOL);
        len = make_lookup(8, 0, 0, 2);
        ((wire_hdr_t *)g_msg)->type = 0x55;
        EXPECT(raw_call(&r, g_msg, len), STRATA_ERR_PROTOCOL);
        len = make_lookup(8, 0, 1, 2); /* keys of the other server */
        EXPECT(raw_call(&r, g_msg, len), STRATA_ERR_STALE);
    }
    {
        /* shorter than a header: no reply possible, server keeps serving */
        uint8_t junk[7] = {1, 2, 3, 4, 5, 6, 7};
        raw_send_only(&r, junk, sizeof(junk));
        expect_serving(&r);
    }
    {
        wire_hdr_t *hh = msg_new(WIRE_CREATE, 10);
        EXPECT(raw_call(&r, g_msg, sizeof(*hh) + 10), STRATA_ERR_TRUNCATED);
        hh = msg_new(WIRE_CREATE, sizeof(wire_schema_t));
        wire_schema_t *ws = (wire_schema_t *)(hh + 1);
        memcpy(ws->name, "bad", 3);
        ws->dim = 0; /* out of range */
        ws->capacity = 100;
        ws->shards_per_server = 1;
        EXPECT(raw_call(&r, g_msg, sizeof(*hh) + sizeof(*ws)), STRATA_ERR_INVALID_PARAM);
    }
    raw_close(&r);

    /* 3. read-only session: reads yes, writes no */
    raw_connect(&r, cl->port[0]);
    handshake(&r, cl->secret, WIRE_ROLE_READ_ONLY, 1);
    CHECK(describe(&r, "emb") == STRATA_OK, "read-only DESCRIBE");
    EXPECT(raw_call(&r, g_msg, make_push(4, DIM, 0.5f, 0, 2)), STRATA_ERR_READ_ONLY);
    EXPECT(raw_call(&r, g_msg, make_lookup(4, WIRE_LOOKUP_INIT_MISSING, 0, 2)),
           STRATA_ERR_READ_ONLY);
    raw_close(&r);
}

static strata_client_t *client(const cluster_t *cl, const char *secret, uint32_t timeout_ms,
                               strata_status_t *st_p)
{
    strata_client_params_t p = cluster_client_params(cl, 0, timeout_ms);
    p.secret = secret;
    p.secret_len = strlen(secret);
    strata_client_t *c = NULL;
    *st_p = strata_client_connect(&p, &c);
    return c;
}

int main(void)
{
    setenv("UCX_TLS", "sm,self,tcp", 0);
    setenv("UCX_NET_DEVICES", "lo", 0);
    static const char *const extra[] = {"--max-keys", "4096", "--verbose", "1", NULL};
    cluster_t cl;
    CHECK(cluster_start(&cl, 2, extra) == 0, "cluster start");
    strata_status_t st;
    strata_client_t *c = client(&cl, cl.secret, 3000, &st);
    CHECK_OK(st);
    strata_table_schema_t s;
    memset(&s, 0, sizeof(s));
    s.field_mask = STRATA_SCHEMA_FIELD_NAME | STRATA_SCHEMA_FIELD_DIM | STRATA_SCHEMA_FIELD_CAPACITY;
    s.name = "emb";
    s.dim = DIM;
    s.capacity = 100000;
    CHECK_OK(strata_client_create_table(c, &s));

    raw_matrix(&cl);

    /* wrong secret through the client */
    strata_client_t *bad = client(&cl, "not the secret", 3000, &st);
    CHECK(st == STRATA_ERR_AUTH && bad == NULL, "wrong secret: %s", strata_status_string(st));
    fprintf(stderr, "wrong secret: %s\n", strata_last_error());

    /* killed server */
    strata_rtable_t *t;
    CHECK_OK(strata_client_open_table(c, "emb", &t));
    uint64_t keys[256];
    float rows[256 * DIM], grads[256 * DIM];
    for (int i = 0; i < 256; i++)
        keys[i] = (uint64_t)i * 7919;
    for (int i = 0; i < 256 * DIM; i++)
        grads[i] = 0.01f;
    CHECK_OK(strata_rtable_lookup(t, keys, 256, rows, NULL, STRATA_LOOKUP_INIT_MISSING));
    CHECK_OK(strata_rtable_push(t, keys, grads, 256));
    /* a read-only one-sided reader with every key in its location cache:
     * it needs no server CPU, but must still notice the death */
    strata_client_t *reader;
    CHECK_OK(cluster_client_connect(&cl, 1, 3000, &reader));
    strata_rtable_t *rt;
    CHECK_OK(strata_client_open_table(reader, "emb", &rt));
    CHECK_OK(strata_rtable_lookup(rt, keys, 256, rows, NULL, 0));
    CHECK_OK(strata_rtable_lookup(rt, keys, 256, rows, NULL, 0));
    cluster_kill(&cl, 1);
    {
        uint64_t r0 = rdma_now_ns();
        strata_status_t rst = STRATA_OK;
        /* the death reaches the client within its timeout; until then a
         * mapped read may still succeed */
        while (rst == STRATA_OK && rdma_now_ns() - r0 < 4000000000ull)
            rst = strata_rtable_lookup(rt, keys, 256, rows, NULL, 0);
        double rs = (double)(rdma_now_ns() - r0) / 1e9;
        CHECK(rst == STRATA_ERR_CONNECTION || rst == STRATA_ERR_TIMEOUT,
              "one-sided reader after a kill: %s after %.2f s", strata_status_string(rst), rs);
        fprintf(stderr, "one-sided reader after kill: %s in %.3f s\n", strata_status_string(rst),
                rs);
    }
    strata_client_destroy(reader);
    uint64_t t0 = rdma_now_ns();
    st = strata_rtable_push(t, keys, grads, 256);
    double secs = (double)(rdma_now_ns() - t0) / 1e9;
    CHECK(st == STRATA_ERR_CONNECTION || st == STRATA_ERR_TIMEOUT,
          "push to a killed server: %s", strata_status_string(st));
    CHECK(secs < 3.0 + 1.0, "push took %.2f s (timeout 3 s)", secs);
    fprintf(stderr, "push after kill: %s in %.3f s: %s\n", strata_status_string(st), secs,
            strata_last_error());
    t0 = rdma_now_ns();
    st = strata_rtable_lookup(t, keys, 256, rows, NULL, STRATA_LOOKUP_INIT_MISSING);
    secs = (double)(rdma_now_ns() - t0) / 1e9;
    CHECK(st == STRATA_ERR_CONNECTION || st == STRATA_ERR_TIMEOUT, "lookup: %s",
          strata_status_string(st));
    CHECK(secs < 4.0, "lookup took %.2f s", secs);
    /* keys of the surviving server still work */
    uint64_t k0[16];
    int n0 = 0;
    for (uint64_t k = 1; n0 < 16; k++)
        if (strata_key_shard(k, strata_rtable_schema(t)->nshards) % 2 == 0)
            k0[n0++] = k;
    CHECK_OK(strata_rtable_lookup(t, k0, 16, rows, NULL, STRATA_LOOKUP_INIT_MISSING));
    CHECK_OK(strata_rtable_push(t, k0, grads, 16));
    strata_client_destroy(c);
    cluster_stop(&cl);
    return 0;
}
