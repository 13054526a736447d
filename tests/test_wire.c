/*
 * tests/test_wire.c — the RPC wire format (rdma/wire.h, docs/protocol.md).
 *
 * Every encoder/decoder pair round-trips, and every way a decoder can
 * refuse its input is hit with the exact status it must return:
 * truncation at every length, bad magic, other versions, reply/request
 * confusion, trailing bytes, non-zero reserved fields and padding, counts
 * over the session limit, misaligned views, PUSH bodies sized for another
 * dim, bad names, rkey lengths, nlocal limits and over-long error texts.
 * Every refusal must also leave a sentence in strata_last_error() and
 * leave the output parameters untouched.
 *
 * Messages are built in heap buffers that end exactly at the end of their
 * allocation, so the sanitizer build catches any read past a message.
 */
#include <math.h>
#include <string.h>

#include "core/schema.h"
#include "core/status.h"
#include "rdma/wire.h"
#include "testutil.h"

/** expr must return exactly want; an error must explain itself. */
#define CHECK_ST(expr, want)                                                                       \
    do {                                                                                           \
        (void)core_fail(STRATA_OK, "%s", "");                                                      \
        strata_status_t st_ = (expr);                                                              \
        strata_status_t want_ = (want);                                                            \
        CHECK(st_ == want_, "%s -> %s, expected %s (%s)", #expr, strata_status_string(st_),        \
              strata_status_string(want_), strata_last_error());                                   \
        CHECK(want_ == STRATA_OK || strata_last_error()[0] != '\0', "%s failed without a message", \
              #expr);                                                                              \
    } while (0)

/* --- message buffers --------------------------------------------------------- */

/** A message whose first byte sits `misalign` bytes past a 16-byte
 *  boundary and whose last byte is the last of its allocation. */
typedef struct msg {
    uint8_t *base; /**< malloc'ed; owned */
    uint8_t *p;    /**< the message */
    size_t len;    /**< its bytes */
} msg_t;

static msg_t msg_make(const wire_hdr_t *h, const void *body, size_t body_bytes, size_t misalign)
{
    msg_t m;
    m.len = sizeof(*h) + body_bytes;
    m.base = malloc(m.len + misalign);
    CHECK(m.base, "out of memory");
    m.p = m.base + misalign;
    memcpy(m.p, h, sizeof(*h));
    if (body_bytes)
        memcpy(m.p + sizeof(*h), body, body_bytes);
    return m;
}

static void msg_free(msg_t *m)
{
    free(m->base);
    m->base = m->p = NULL;
}

/** The header in place (tests only read it through decoders, which copy
 *  it, or after wire_check_hdr accepted its alignment). */
static const wire_hdr_t *msg_hdr(const msg_t *m)
{
    return (const wire_hdr_t *)(const void *)m->p;
}

/** Patch a header field in place (memcpy: the message may be misaligned). */
#define MSG_SET(m, field, value)                                                                   \
    do {                                                                                           \
        wire_hdr_t h_;                                                                             \
        memcpy(&h_, (m)->p, sizeof(h_));                                                           \
        h_.field = (value);                                                                        \
        memcpy((m)->p, &h_, sizeof(h_));                                                           \
    } while (0)

static wire_hdr_t hdr_of(uint8_t type, uint32_t body_len, uint32_t count)
{
    wire_hdr_t h;
    wire_hdr_init(&h, type, 0x1122334455667788ULL, body_len);
    h.count = count;
    return h;
}

/** wire_check_hdr must accept m; returns the header. */
static const wire_hdr_t *checked(const msg_t *m, int is_reply)
{
    const wire_hdr_t *h = NULL;
    CHECK_ST(wire_check_hdr(m->p, m->len, is_reply, &h), STRATA_OK);
    CHECK(h == msg_hdr(m), "hdr_p does not point at the message");
    return h;
}

/* --- builders ---------------------------------------------------------------- */

static msg_t make_lookup(const uint64_t *keys, uint32_t n, uint32_t body_keys, size_t mis)
{
    wire_hdr_t h = hdr_of(WIRE_LOOKUP, 8 * body_keys, n);
    h.table_id = 7;
    return msg_make(&h, keys, 8 * (size_t)body_keys, mis);
}

/** PUSH of n keys whose body holds n rows of body_dim floats. */
static msg_t make_push(uint32_t n, uint32_t body_dim, size_t mis)
{
    size_t bytes = (size_t)n * (8 + 4 * (size_t)body_dim);
    uint8_t *body = calloc(1, bytes + 1);
    CHECK(body, "out of memory");
    for (uint32_t i = 0; i < n; i++) {
        uint64_t k = 1000 + i;
        memcpy(body + 8 * i, &k, 8);
    }
    for (size_t j = 0; j < (size_t)n * body_dim; j++) {
        float g = (float)j * 0.25f - 1.0f;
        memcpy(body + 8 * (size_t)n + 4 * j, &g, 4);
    }
    wire_hdr_t h = hdr_of(WIRE_PUSH, (uint32_t)bytes, n);
    h.table_id = 3;
    msg_t m = msg_make(&h, body, bytes, mis);
    free(body);
    return m;
}

/** LOOKUP reply body of n rows: found[i] = i % 4, loc[i] = {10 i, i + 1,
 *  i % 5} when loc, rows[j] = j / 2. */
static msg_t make_lookup_reply(uint32_t n, uint32_t dim, int loc, size_t mis)
{
    size_t bytes = wire_lookup_reply_bytes(n, dim, loc);
    uint8_t *body = calloc(1, bytes + 1);
    CHECK(body, "out of memory");
    for (uint32_t i = 0; i < n; i++)
        body[i] = (uint8_t)(i % 4);
    size_t off = wire_pad8(n);
    if (loc) {
        for (uint32_t i = 0; i < n; i++) {
            wire_loc_t l = {10ull * i, i + 1, i % 5};
            memcpy(body + off + 16 * (size_t)i, &l, 16);
        }
        off += 16 * (size_t)n;
    }
    for (size_t j = 0; j < (size_t)n * dim; j++) {
        float r = (float)j * 0.5f;
        memcpy(body + off + 4 * j, &r, 4);
    }
    wire_hdr_t h = hdr_of(WIRE_LOOKUP | WIRE_REPLY_BIT, (uint32_t)bytes, n);
    h.flags = 0xdeadbeef; /* layout_gen: any value */
    msg_t m = msg_make(&h, body, bytes, mis);
    free(body);
    return m;
}

#define DESC_MAX_LOCAL 8

/** A DESCRIBE reply: nlocal shards with the given rkey lengths. Records
 *  each shard descriptor's and rkey's offset in the body. */
typedef struct desc_spec {
    uint32_t nlocal, total;
    uint32_t alen[DESC_MAX_LOCAL], ilen[DESC_MAX_LOCAL];
    size_t shard_off[DESC_MAX_LOCAL], arena_off[DESC_MAX_LOCAL], index_off[DESC_MAX_LOCAL];
    size_t body_len;
} desc_spec_t;

static uint8_t rkey_byte(uint32_t shard, int which, size_t j)
{
    return (uint8_t)(0x40 + shard * 13 + (unsigned)which * 5 + j * 7) | 1; /* never 0 */
}

static uint8_t *describe_body(desc_spec_t *sp)
{
    size_t off = sizeof(wire_table_desc_t);
    for (uint32_t i = 0; i < sp->nlocal; i++) {
        sp->shard_off[i] = off;
        off += sizeof(wire_shard_desc_t);
        sp->arena_off[i] = off;
        off += wire_pad8(sp->alen[i]);
        sp->index_off[i] = off;
        off += wire_pad8(sp->ilen[i]);
    }
    sp->body_len = off;
    uint8_t *b = calloc(1, off);
    CHECK(b, "out of memory");
    wire_table_desc_t d;
    memset(&d, 0, sizeof(d));
    d.table_id = 42;
    d.total_shards = sp->total;
    d.nlocal = sp->nlocal;
    d.layout_gen = 0x123456789ULL;
    strata_table_schema_t s;
    memset(&s, 0, sizeof(s));
    s.field_mask = CORE_SCHEMA_ALL_FIELDS;
    s.name = "emb.user-ids_2";
    s.dim = 16;
    s.capacity = 1 << 20;
    wire_encode_schema(&s, 2, &d.schema);
    memcpy(b, &d, sizeof(d));
    for (uint32_t i = 0; i < sp->nlocal; i++) {
        wire_shard_desc_t sd;
        memset(&sd, 0, sizeof(sd));
        sd.shard = (i * 2) % sp->total; /* 0, 2, 4 */
        sd.arena_rkey_len = sp->alen[i];
        sd.index_rkey_len = sp->ilen[i];
        sd.arena_addr = 0x7f0000000000ULL + i * 0x100000ULL;
        sd.stride = 128;
        sd.arena_len = 128ull * 1000 * (i + 1);
        sd.index_addr = 0x7e0000000000ULL + i * 0x10000ULL;
        sd.nbuckets = 1ull << (i + 1);
        sd.epoch = i + 1;
        memcpy(b + sp->shard_off[i], &sd, sizeof(sd));
        for (size_t j = 0; j < sp->alen[i]; j++)
            b[sp->arena_off[i] + j] = rkey_byte(i, 0, j);
        for (size_t j = 0; j < sp->ilen[i]; j++)
            b[sp->index_off[i] + j] = rkey_byte(i, 1, j);
    }
    return b;
}

static msg_t make_describe(desc_spec_t *sp, size_t mis)
{
    uint8_t *b = describe_body(sp);
    wire_hdr_t h = hdr_of(WIRE_DESCRIBE | WIRE_REPLY_BIT, (uint32_t)sp->body_len, 0);
    msg_t m = msg_make(&h, b, sp->body_len, mis);
    free(b);
    return m;
}

/** A DESCRIBE reply with its body bytes edited by fn, body_len set to len. */
static msg_t describe_with(const uint8_t *body, size_t len)
{
    wire_hdr_t h = hdr_of(WIRE_DESCRIBE | WIRE_REPLY_BIT, (uint32_t)len, 0);
    return msg_make(&h, body, len, 0);
}

/* --- header ------------------------------------------------------------------ */

static void test_hdr(void)
{
    wire_hdr_t h;
    memset(&h, 0xa5, sizeof(h));
    wire_hdr_init(&h, WIRE_STATS, 99, 0);
    CHECK(h.magic == WIRE_MAGIC && h.version == 1 && h.type == WIRE_STATS && h.body_len == 0 &&
              h.req_id == 99 && h.status == 0 && h.table_id == 0 && h.count == 0 && h.flags == 0,
          "wire_hdr_init");
    /* Bytes on the wire: "ST", 1, type, body_len LE, req_id LE. */
    uint8_t raw[32];
    wire_hdr_init(&h, WIRE_LOOKUP, 0x0102030405060708ULL, 0x11223344);
    memcpy(raw, &h, 32);
    CHECK(raw[0] == 'S' && raw[1] == 'T' && raw[2] == 1 && raw[3] == WIRE_LOOKUP &&
              raw[4] == 0x44 && raw[7] == 0x11 && raw[8] == 0x08 && raw[15] == 0x01,
          "header bytes");

    /* Every type is accepted in its own direction and refused in the other. */
    for (uint8_t t = 1; t <= WIRE_TYPE_MAX; t++) {
        for (int rep = 0; rep < 2; rep++) {
            wire_hdr_t x = hdr_of((uint8_t)(t | (rep ? WIRE_REPLY_BIT : 0)), 0, 0);
            msg_t m = msg_make(&x, NULL, 0, 0);
            const wire_hdr_t *hp = (const wire_hdr_t *)(uintptr_t)1;
            CHECK_ST(wire_check_hdr(m.p, m.len, rep, &hp), STRATA_OK);
            CHECK(hp == msg_hdr(&m), "hdr_p");
            hp = NULL;
            CHECK_ST(wire_check_hdr(m.p, m.len, !rep, &hp), STRATA_ERR_PROTOCOL);
            CHECK(hp == NULL, "hdr_p written on error");
            msg_free(&m);
        }
    }
    /* Types outside 1..9, with and without the reply bit. */
    const uint8_t bad_types[] = {0, 10, 0x7f, 0x80, 0x8a, 0xff, 0x40};
    for (size_t i = 0; i < sizeof(bad_types); i++) {
        wire_hdr_t x = hdr_of(bad_types[i], 0, 0);
        msg_t m = msg_make(&x, NULL, 0, 0);
        const wire_hdr_t *hp;
        CHECK_ST(wire_check_hdr(m.p, m.len, 0, &hp), STRATA_ERR_PROTOCOL);
        CHECK_ST(wire_check_hdr(m.p, m.len, 1, &hp), STRATA_ERR_PROTOCOL);
        msg_free(&m);
    }

    /* Truncation at every length of a valid message. */
    uint64_t keys[5] = {1, 2, 3, UINT64_MAX, 0};
    msg_t m = make_lookup(keys, 5, 5, 0);
    const wire_hdr_t *hp = NULL;
    for (size_t len = 0; len < m.len; len++)
        CHECK_ST(wire_check_hdr(m.p, len, 0, &hp), STRATA_ERR_TRUNCATED);
    CHECK(hp == NULL, "hdr_p written on error");
    checked(&m, 0);
    /* A trailing byte (the buffer is one longer than the message). */
    {
        uint8_t *big = calloc(1, m.len + 1);
        CHECK(big, "oom");
        memcpy(big, m.p, m.len);
        CHECK_ST(wire_check_hdr(big, m.len + 1, 0, &hp), STRATA_ERR_PROTOCOL);
        free(big);
    }
    /* body_len one more / one less than what arrived. */
    MSG_SET(&m, body_len, 41);
    CHECK_ST(wire_check_hdr(m.p, m.len, 0, &hp), STRATA_ERR_TRUNCATED);
    MSG_SET(&m, body_len, 39);
    CHECK_ST(wire_check_hdr(m.p, m.len, 0, &hp), STRATA_ERR_PROTOCOL);
    MSG_SET(&m, body_len, 40);
    /* Magic and version. */
    MSG_SET(&m, magic, 0x5354);
    CHECK_ST(wire_check_hdr(m.p, m.len, 0, &hp), STRATA_ERR_PROTOCOL);
    MSG_SET(&m, magic, 0);
    CHECK_ST(wire_check_hdr(m.p, m.len, 0, &hp), STRATA_ERR_PROTOCOL);
    MSG_SET(&m, magic, WIRE_MAGIC);
    const uint8_t versions[] = {0, 2, 255};
    for (size_t i = 0; i < sizeof(versions); i++) {
        MSG_SET(&m, version, versions[i]);
        CHECK_ST(wire_check_hdr(m.p, m.len, 0, &hp), STRATA_ERR_VERSION);
    }
    MSG_SET(&m, version, WIRE_VERSION);
    /* Magic is checked before version, version before everything else. */
    MSG_SET(&m, version, 2);
    MSG_SET(&m, type, 0);
    CHECK_ST(wire_check_hdr(m.p, m.len, 0, &hp), STRATA_ERR_VERSION);
    MSG_SET(&m, magic, 1);
    CHECK_ST(wire_check_hdr(m.p, m.len, 0, &hp), STRATA_ERR_PROTOCOL);
    MSG_SET(&m, magic, WIRE_MAGIC);
    MSG_SET(&m, version, WIRE_VERSION);
    MSG_SET(&m, type, WIRE_LOOKUP);
    checked(&m, 0);

    /* Request fields that must be 0. */
    MSG_SET(&m, status, -3);
    CHECK_ST(wire_check_hdr(m.p, m.len, 0, &hp), STRATA_ERR_PROTOCOL);
    MSG_SET(&m, status, 1);
    CHECK_ST(wire_check_hdr(m.p, m.len, 0, &hp), STRATA_ERR_PROTOCOL);
    MSG_SET(&m, status, 0);
    MSG_SET(&m, flags, WIRE_LOOKUP_INIT_MISSING | WIRE_LOOKUP_WANT_LOC);
    checked(&m, 0);
    MSG_SET(&m, flags, 1u << 2);
    CHECK_ST(wire_check_hdr(m.p, m.len, 0, &hp), STRATA_ERR_PROTOCOL);
    MSG_SET(&m, flags, 1u << 31);
    CHECK_ST(wire_check_hdr(m.p, m.len, 0, &hp), STRATA_ERR_PROTOCOL);
    msg_free(&m);

    struct field_case {
        uint8_t type;
        uint32_t table_id, count, flags;
        strata_status_t want;
    } cases[] = {
        {WIRE_LIST, 1, 0, 0, STRATA_ERR_PROTOCOL},
        {WIRE_DESCRIBE, 0, 1, 0, STRATA_ERR_PROTOCOL},
        {WIRE_STATS, 5, 0, 0, STRATA_OK},
        {WIRE_STATS, 0, 1, 0, STRATA_ERR_PROTOCOL},
        {WIRE_PUSH, 5, 0, 1, STRATA_ERR_PROTOCOL},
        {WIRE_HELLO, 0, 0, 1, STRATA_ERR_PROTOCOL},
        {WIRE_LIST | WIRE_REPLY_BIT, 0, 3, 0, STRATA_ERR_PROTOCOL},
        {WIRE_PUSH | WIRE_REPLY_BIT, 9, 3, 0, STRATA_OK},
        {WIRE_PUSH | WIRE_REPLY_BIT, 9, 3, 2, STRATA_ERR_PROTOCOL},
        {WIRE_LOOKUP | WIRE_REPLY_BIT, 9, 0, 0xffffffffu, STRATA_OK},
        {WIRE_DESCRIBE | WIRE_REPLY_BIT, 1, 0, 0, STRATA_ERR_PROTOCOL},
        {WIRE_STATS | WIRE_REPLY_BIT, 1, 0, 1, STRATA_ERR_PROTOCOL},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        wire_hdr_t x = hdr_of(cases[i].type, 0, cases[i].count);
        x.table_id = cases[i].table_id;
        x.flags = cases[i].flags;
        msg_t c = msg_make(&x, NULL, 0, 0);
        CHECK_ST(wire_check_hdr(c.p, c.len, (cases[i].type & WIRE_REPLY_BIT) != 0, &hp),
                 cases[i].want);
        msg_free(&c);
    }

    /* Error replies: any status < 0, at most WIRE_ERRMSG_MAX bytes. */
    char text[WIRE_ERRMSG_MAX + 8];
    memset(text, 'e', sizeof(text));
    for (uint32_t n = WIRE_ERRMSG_MAX - 1; n <= WIRE_ERRMSG_MAX + 1; n++) {
        wire_hdr_t x = hdr_of(WIRE_DESCRIBE | WIRE_REPLY_BIT, n, 0);
        x.status = STRATA_ERR_UNKNOWN_TABLE;
        msg_t c = msg_make(&x, text, n, 0);
        CHECK_ST(wire_check_hdr(c.p, c.len, 1, &hp),
                 n <= WIRE_ERRMSG_MAX ? STRATA_OK : STRATA_ERR_PROTOCOL);
        /* The same length is fine in a successful reply. */
        MSG_SET(&c, status, 0);
        CHECK_ST(wire_check_hdr(c.p, c.len, 1, &hp), STRATA_OK);
        msg_free(&c);
    }

    /* Size limits: exactly WIRE_MSG_MAX passes; one more byte, declared or
     * received, is TOO_LARGE (even before the bytes arrive). */
    {
        size_t body = WIRE_MSG_MAX - 32;
        uint8_t *zeros = calloc(1, body + 1);
        CHECK(zeros, "oom");
        wire_hdr_t x = hdr_of(WIRE_LIST | WIRE_REPLY_BIT, (uint32_t)body, 0);
        msg_t c = msg_make(&x, zeros, body, 0);
        checked(&c, 1);
        msg_free(&c);
        x.body_len = (uint32_t)body + 1;
        c = msg_make(&x, zeros, body + 1, 0);
        CHECK_ST(wire_check_hdr(c.p, c.len, 1, &hp), STRATA_ERR_TOO_LARGE);
        CHECK_ST(wire_check_hdr(c.p, 40, 1, &hp), STRATA_ERR_TOO_LARGE);
        msg_free(&c);
        x.body_len = UINT32_MAX;
        c = msg_make(&x, NULL, 0, 0);
        CHECK_ST(wire_check_hdr(c.p, c.len, 1, &hp), STRATA_ERR_TOO_LARGE);
        msg_free(&c);
        free(zeros);
    }

    /* A message that does not start on an 8-byte boundary. */
    for (size_t mis = 1; mis < 8; mis++) {
        wire_hdr_t x = hdr_of(WIRE_LIST, 0, 0);
        msg_t c = msg_make(&x, NULL, 0, mis);
        CHECK_ST(wire_check_hdr(c.p, c.len, 0, &hp), STRATA_ERR_PROTOCOL);
        msg_free(&c);
    }
    {
        wire_hdr_t x = hdr_of(WIRE_LIST, 0, 0);
        msg_t c = msg_make(&x, NULL, 0, 0);
        CHECK_ST(wire_check_hdr(c.p, c.len, 0, NULL), STRATA_ERR_INVALID_PARAM);
        msg_free(&c);
    }
}

/* --- LOOKUP / PUSH ----------------------------------------------------------- */

static void test_lookup(void)
{
    uint64_t keys[9] = {0, 1, 2, 3, 0xfeedULL, UINT64_MAX, 7, 8, 9};
    const uint64_t *sentinel = (const uint64_t *)(uintptr_t)0x10;
    for (uint32_t n = 0; n <= 9; n++) {
        msg_t m = make_lookup(keys, n, n, 0);
        const wire_hdr_t *h = checked(&m, 0);
        const uint64_t *k = sentinel;
        CHECK_ST(wire_decode_lookup(h, 9, &k), STRATA_OK);
        CHECK(k == (const uint64_t *)wire_body(h), "keys view");
        CHECK(n == 0 || memcmp(k, keys, 8 * n) == 0, "keys round trip");
        CHECK(h->table_id == 7 && h->count == n, "header round trip");
        /* count == max_keys passes, one over is TOO_LARGE */
        if (n > 0) {
            CHECK_ST(wire_decode_lookup(h, n, &k), STRATA_OK);
            k = sentinel;
            CHECK_ST(wire_decode_lookup(h, n - 1, &k), STRATA_ERR_TOO_LARGE);
            CHECK(k == sentinel, "keys_p written on error");
        }
        msg_free(&m);
    }
    /* count 3 with a body of 2 keys: truncated; of 4 keys: trailing. */
    msg_t m = make_lookup(keys, 3, 2, 0);
    const uint64_t *k = sentinel;
    CHECK_ST(wire_decode_lookup(checked(&m, 0), 100, &k), STRATA_ERR_TRUNCATED);
    msg_free(&m);
    m = make_lookup(keys, 3, 4, 0);
    CHECK_ST(wire_decode_lookup(checked(&m, 0), 100, &k), STRATA_ERR_PROTOCOL);
    msg_free(&m);
    /* body not a multiple of 8 */
    {
        wire_hdr_t x = hdr_of(WIRE_LOOKUP, 13, 1);
        uint8_t body[13] = {0};
        m = msg_make(&x, body, 13, 0);
        CHECK_ST(wire_decode_lookup(checked(&m, 0), 100, &k), STRATA_ERR_PROTOCOL);
        MSG_SET(&m, count, 2);
        CHECK_ST(wire_decode_lookup(checked(&m, 0), 100, &k), STRATA_ERR_TRUNCATED);
        msg_free(&m);
    }
    /* count over max_keys wins over the length check */
    m = make_lookup(keys, 3, 2, 0);
    CHECK_ST(wire_decode_lookup(checked(&m, 0), 2, &k), STRATA_ERR_TOO_LARGE);
    msg_free(&m);
    m = make_lookup(keys, UINT32_MAX, 0, 0);
    CHECK_ST(wire_decode_lookup(checked(&m, 0), UINT32_MAX - 1, &k), STRATA_ERR_TOO_LARGE);
    CHECK_ST(wire_decode_lookup(checked(&m, 0), UINT32_MAX, &k), STRATA_ERR_TRUNCATED);
    msg_free(&m);
    CHECK(k == sentinel, "keys_p written on error");
    /* another type, also one whose sizes would fit a LOOKUP */
    m = make_push(2, 4, 0);
    CHECK_ST(wire_decode_lookup(checked(&m, 0), 100, &k), STRATA_ERR_PROTOCOL);
    msg_free(&m);
    m = make_push(0, 4, 0);
    CHECK_ST(wire_decode_lookup(checked(&m, 0), 100, &k), STRATA_ERR_PROTOCOL);
    msg_free(&m);
    {
        wire_hdr_t x = hdr_of(WIRE_LOOKUP | WIRE_REPLY_BIT, 16, 2);
        m = msg_make(&x, keys, 16, 0);
        CHECK_ST(wire_decode_lookup(checked(&m, 1), 100, &k), STRATA_ERR_PROTOCOL);
        msg_free(&m);
    }
    /* misaligned view: the keys would start 4 bytes off an 8-byte boundary */
    m = make_lookup(keys, 3, 3, 4);
    CHECK_ST(wire_decode_lookup(msg_hdr(&m), 100, &k), STRATA_ERR_PROTOCOL);
    CHECK(k == sentinel, "keys_p written on error");
    msg_free(&m);
}

static void test_push(void)
{
    const uint64_t *ks = (const uint64_t *)(uintptr_t)0x10;
    const float *gs = (const float *)(uintptr_t)0x20;
    const uint32_t dims[] = {1, 3, 16, 129};
    for (size_t di = 0; di < 4; di++) {
        uint32_t dim = dims[di];
        for (uint32_t n = 0; n <= 5; n++) {
            msg_t m = make_push(n, dim, 0);
            const wire_hdr_t *h = checked(&m, 0);
            const uint64_t *k = ks;
            const float *g = gs;
            CHECK_ST(wire_decode_push(h, dim, 5, &k, &g), STRATA_OK);
            CHECK(k == (const uint64_t *)wire_body(h) && (const void *)g == (const void *)(k + n),
                  "push views");
            for (uint32_t i = 0; i < n; i++)
                CHECK(k[i] == 1000 + i, "push key %u", i);
            for (size_t j = 0; j < (size_t)n * dim; j++)
                CHECK(g[j] == (float)j * 0.25f - 1.0f, "push grad %zu", j);
            CHECK(h->table_id == 3, "table id");
            if (n > 0) {
                k = ks;
                CHECK_ST(wire_decode_push(h, dim, n - 1, &k, &g), STRATA_ERR_TOO_LARGE);
                CHECK(k == ks, "keys_p written on error");
            }
            msg_free(&m);
        }
    }

    /* Bodies of 2 keys read as dim 4 (48 bytes): every length from 0 to
     * 64 gets OK, DIM_MISMATCH (sized for another dim d >= 1: 16 + 8 d),
     * TRUNCATED (shorter) or PROTOCOL (longer). */
    uint8_t body[64];
    memset(body, 0, sizeof(body));
    for (uint32_t len = 0; len <= 64; len++) {
        wire_hdr_t x = hdr_of(WIRE_PUSH, len, 2);
        msg_t m = msg_make(&x, body, len, 0);
        strata_status_t want;
        if (len == 48)
            want = STRATA_OK;
        else if (len > 16 && (len - 16) % 8 == 0)
            want = STRATA_ERR_DIM_MISMATCH;
        else if (len < 48)
            want = STRATA_ERR_TRUNCATED;
        else
            want = STRATA_ERR_PROTOCOL;
        const uint64_t *k = ks;
        const float *g = gs;
        CHECK_ST(wire_decode_push(checked(&m, 0), 4, 100, &k, &g), want);
        CHECK(want == STRATA_OK || (k == ks && g == gs), "outputs written on error");
        msg_free(&m);
    }
    /* Sized for dim 8 and for dim 2, read as dim 4. */
    msg_t m = make_push(3, 8, 0);
    CHECK_ST(wire_decode_push(checked(&m, 0), 4, 100, &ks, &gs), STRATA_ERR_DIM_MISMATCH);
    CHECK(strstr(strata_last_error(), "dim 8") != NULL, "message names the dim: %s",
          strata_last_error());
    msg_free(&m);
    m = make_push(3, 2, 0);
    CHECK_ST(wire_decode_push(checked(&m, 0), 4, 100, &ks, &gs), STRATA_ERR_DIM_MISMATCH);
    msg_free(&m);
    /* Keys only (no gradients): truncated, not "dim 0". */
    m = make_push(3, 0, 0);
    CHECK_ST(wire_decode_push(checked(&m, 0), 4, 100, &ks, &gs), STRATA_ERR_TRUNCATED);
    msg_free(&m);
    /* count 0 with a body: trailing bytes */
    {
        wire_hdr_t x = hdr_of(WIRE_PUSH, 12, 0);
        m = msg_make(&x, body, 12, 0);
        CHECK_ST(wire_decode_push(checked(&m, 0), 1, 100, &ks, &gs), STRATA_ERR_PROTOCOL);
        msg_free(&m);
    }
    /* huge count against a small body: no overflow, TRUNCATED */
    {
        wire_hdr_t x = hdr_of(WIRE_PUSH, 64, UINT32_MAX);
        m = msg_make(&x, body, 64, 0);
        CHECK_ST(wire_decode_push(checked(&m, 0), STRATA_DIM_MAX, UINT32_MAX, &ks, &gs),
                 STRATA_ERR_TRUNCATED);
        msg_free(&m);
    }
    /* the caller's dim out of range; another type; misaligned views */
    m = make_push(2, 4, 0);
    CHECK_ST(wire_decode_push(checked(&m, 0), 0, 100, &ks, &gs), STRATA_ERR_INVALID_PARAM);
    CHECK_ST(wire_decode_push(checked(&m, 0), STRATA_DIM_MAX + 1, 100, &ks, &gs),
             STRATA_ERR_INVALID_PARAM);
    msg_free(&m);
    uint64_t keys[2] = {1, 2};
    m = make_lookup(keys, 2, 2, 0);
    CHECK_ST(wire_decode_push(checked(&m, 0), 1, 100, &ks, &gs), STRATA_ERR_PROTOCOL);
    msg_free(&m);
    m = make_lookup(keys, 0, 0, 0); /* sizes that would fit a PUSH */
    CHECK_ST(wire_decode_push(checked(&m, 0), 1, 100, &ks, &gs), STRATA_ERR_PROTOCOL);
    msg_free(&m);
    for (size_t mis = 1; mis < 8; mis++) {
        m = make_push(2, 4, mis);
        const uint64_t *k = ks;
        CHECK_ST(wire_decode_push(msg_hdr(&m), 4, 100, &k, &gs), STRATA_ERR_PROTOCOL);
        CHECK(k == ks, "keys_p written on error");
        msg_free(&m);
    }
}

static void test_lookup_reply(void)
{
    CHECK(wire_lookup_reply_bytes(0, 1, 0) == 0 && wire_lookup_reply_bytes(0, 7, 1) == 0,
          "empty reply");
    CHECK(wire_lookup_reply_bytes(1, 1, 0) == 12, "1 x dim 1");
    CHECK(wire_lookup_reply_bytes(3, 2, 1) == 8 + 48 + 24, "3 x dim 2 with loc");
    CHECK(wire_lookup_reply_bytes(8, 4, 0) == 8 + 128, "8 x dim 4");
    CHECK(wire_lookup_reply_bytes(9, 4, 0) == 16 + 144, "9 x dim 4");
    CHECK(wire_lookup_reply_bytes(UINT32_MAX, STRATA_DIM_MAX, 1) ==
              (size_t)(1ull << 32) + (4ull * STRATA_DIM_MAX + 16) * UINT32_MAX,
          "largest valid product");
    CHECK(wire_lookup_reply_bytes(UINT32_MAX, UINT32_MAX, 1) == SIZE_MAX, "saturates");

    wire_lookup_reply_view_t sentinel = {(const uint8_t *)1, (const wire_loc_t *)8,
                                         (const float *)4};
    const uint32_t dims[] = {1, 5, 32};
    for (size_t di = 0; di < 3; di++)
        for (int loc = 0; loc < 2; loc++)
            for (uint32_t n = 0; n <= 17; n++) {
                uint32_t dim = dims[di];
                msg_t m = make_lookup_reply(n, dim, loc, 0);
                const wire_hdr_t *h = checked(&m, 1);
                wire_lookup_reply_view_t v = sentinel;
                CHECK_ST(wire_decode_lookup_reply(h, n, dim, loc, &v), STRATA_OK);
                CHECK(v.found == (const uint8_t *)wire_body(h), "found view");
                for (uint32_t i = 0; i < n; i++)
                    CHECK(v.found[i] == i % 4, "found[%u]", i);
                CHECK(loc ? v.loc != NULL : v.loc == NULL, "loc view");
                for (uint32_t i = 0; loc && i < n; i++)
                    CHECK(v.loc[i].slot == 10ull * i && v.loc[i].incarnation == i + 1 &&
                              v.loc[i].shard == i % 5,
                          "loc[%u]", i);
                for (size_t j = 0; j < (size_t)n * dim; j++)
                    CHECK(v.rows[j] == (float)j * 0.5f, "rows[%zu]", j);
                CHECK((const uint8_t *)(v.rows + (size_t)n * dim) == m.p + m.len,
                      "rows end at the message end");
                if (n == 0) {
                    msg_free(&m);
                    continue;
                }
                /* count other than asked; the other want_loc; another dim */
                v = sentinel;
                CHECK_ST(wire_decode_lookup_reply(h, n + 1, dim, loc, &v), STRATA_ERR_PROTOCOL);
                CHECK_ST(wire_decode_lookup_reply(h, n, dim, !loc, &v),
                         loc ? STRATA_ERR_PROTOCOL : STRATA_ERR_TRUNCATED);
                CHECK_ST(wire_decode_lookup_reply(h, n, dim + 1, loc, &v), STRATA_ERR_TRUNCATED);
                CHECK(memcmp(&v, &sentinel, sizeof(v)) == 0, "view written on error");
                msg_free(&m);
            }

    /* Truncated body, trailing byte (header body_len adjusted). */
    for (int delta = -1; delta <= 1; delta += 2) {
        msg_t m = make_lookup_reply(5, 3, 1, 0);
        size_t blen = m.len - 32 + (size_t)(ptrdiff_t)delta;
        uint8_t *body = calloc(1, blen + 1);
        CHECK(body, "oom");
        memcpy(body, m.p + 32, delta < 0 ? blen : m.len - 32);
        wire_hdr_t x;
        memcpy(&x, m.p, 32);
        x.body_len = (uint32_t)blen;
        msg_t c = msg_make(&x, body, blen, 0);
        wire_lookup_reply_view_t v;
        CHECK_ST(wire_decode_lookup_reply(checked(&c, 1), 5, 3, 1, &v),
                 delta < 0 ? STRATA_ERR_TRUNCATED : STRATA_ERR_PROTOCOL);
        msg_free(&c);
        msg_free(&m);
        free(body);
    }
    /* found values and padding */
    msg_t m = make_lookup_reply(5, 3, 0, 0);
    wire_lookup_reply_view_t v = sentinel;
    m.p[32 + 2] = STRATA_ROW_NOT_ADMITTED;
    CHECK_ST(wire_decode_lookup_reply(checked(&m, 1), 5, 3, 0, &v), STRATA_OK);
    m.p[32 + 2] = STRATA_ROW_NOT_ADMITTED + 1;
    CHECK_ST(wire_decode_lookup_reply(checked(&m, 1), 5, 3, 0, &v), STRATA_ERR_PROTOCOL);
    m.p[32 + 2] = 0xff;
    CHECK_ST(wire_decode_lookup_reply(checked(&m, 1), 5, 3, 0, &v), STRATA_ERR_PROTOCOL);
    m.p[32 + 2] = 0;
    for (int pad = 5; pad < 8; pad++) {
        m.p[32 + pad] = 1;
        v = sentinel;
        CHECK_ST(wire_decode_lookup_reply(checked(&m, 1), 5, 3, 0, &v), STRATA_ERR_PROTOCOL);
        CHECK(memcmp(&v, &sentinel, sizeof(v)) == 0, "view written on error");
        m.p[32 + pad] = 0;
    }
    CHECK_ST(wire_decode_lookup_reply(checked(&m, 1), 5, 3, 0, &v), STRATA_OK);
    /* an error reply, a request, the caller's dim */
    MSG_SET(&m, status, STRATA_ERR_BUSY);
    CHECK_ST(wire_decode_lookup_reply(msg_hdr(&m), 5, 3, 0, &v), STRATA_ERR_PROTOCOL);
    MSG_SET(&m, status, STRATA_INPROGRESS);
    CHECK_ST(wire_decode_lookup_reply(msg_hdr(&m), 5, 3, 0, &v), STRATA_OK);
    MSG_SET(&m, status, 0);
    MSG_SET(&m, type, WIRE_LOOKUP);
    CHECK_ST(wire_decode_lookup_reply(msg_hdr(&m), 5, 3, 0, &v), STRATA_ERR_PROTOCOL);
    MSG_SET(&m, type, WIRE_PUSH | WIRE_REPLY_BIT);
    CHECK_ST(wire_decode_lookup_reply(msg_hdr(&m), 5, 3, 0, &v), STRATA_ERR_PROTOCOL);
    MSG_SET(&m, type, WIRE_LOOKUP | WIRE_REPLY_BIT);
    CHECK_ST(wire_decode_lookup_reply(msg_hdr(&m), 5, 0, 0, &v), STRATA_ERR_INVALID_PARAM);
    msg_free(&m);

    /* Misaligned views: rows need 4, locations 8. */
    for (size_t mis = 1; mis < 8; mis++) {
        m = make_lookup_reply(3, 2, 0, mis);
        v = sentinel;
        CHECK_ST(wire_decode_lookup_reply(msg_hdr(&m), 3, 2, 0, &v),
                 mis % 4 == 0 ? STRATA_OK : STRATA_ERR_PROTOCOL);
        msg_free(&m);
        m = make_lookup_reply(3, 2, 1, mis);
        v = sentinel;
        CHECK_ST(wire_decode_lookup_reply(msg_hdr(&m), 3, 2, 1, &v), STRATA_ERR_PROTOCOL);
        CHECK(memcmp(&v, &sentinel, sizeof(v)) == 0, "view written on error");
        msg_free(&m);
    }
}

/* --- names and schemas --------------------------------------------------------- */

static void name_field(char out[WIRE_NAME_BYTES], const char *s)
{
    memset(out, 0, WIRE_NAME_BYTES);
    memcpy(out, s, strnlen(s, WIRE_NAME_BYTES));
}

static void test_name(void)
{
    char in[WIRE_NAME_BYTES], out[WIRE_NAME_BYTES];
    char long63[64], long64[65];
    memset(long63, 'x', 63);
    long63[63] = 0;
    memset(long64, 'y', 64);
    long64[64] = 0;
    const char *good[] = {"a", "Z", "0", "emb.user-ids_2", "A-z_0.9", "...", "-", long63};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        name_field(in, good[i]);
        memset(out, 0x55, sizeof(out));
        CHECK_ST(wire_decode_name(in, out), STRATA_OK);
        CHECK(strcmp(out, good[i]) == 0, "name %s", good[i]);
        for (size_t j = strlen(good[i]); j < WIRE_NAME_BYTES; j++)
            CHECK(out[j] == 0, "out not zero-padded");
    }
    const char *bad[] = {"",     "a b",         "a/b",   "a:b",   "tab\tx", "nl\n",
                         "\x80", "caf\xc3\xa9", "x\x7f", "semi;", long64};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        name_field(in, bad[i]);
        memset(out, 0x55, sizeof(out));
        CHECK_ST(wire_decode_name(in, out), STRATA_ERR_PROTOCOL);
        CHECK((unsigned char)out[0] == 0x55, "out written on error");
    }
    /* bytes after the NUL must be zero, wherever they are */
    for (size_t j = 4; j < WIRE_NAME_BYTES; j++) {
        name_field(in, "abc");
        in[j] = 'q';
        CHECK_ST(wire_decode_name(in, out), STRATA_ERR_PROTOCOL);
    }
}

/** A schema with every field set to a distinct value. */
static strata_table_schema_t full_schema(const char *name)
{
    strata_table_schema_t s;
    memset(&s, 0, sizeof(s));
    s.field_mask = CORE_SCHEMA_ALL_FIELDS;
    s.name = name;
    s.dim = 77;
    s.elem_type = STRATA_ELEM_FP32;
    s.optimizer.field_mask = 0x1ff;
    s.optimizer.type = STRATA_OPT_FTRL;
    s.optimizer.lr = 0.125f;
    s.optimizer.eps = 1e-7f;
    s.optimizer.beta1 = 0.5f;
    s.optimizer.beta2 = 0.75f;
    s.optimizer.weight_decay = 0.0625f;
    s.optimizer.initial_accumulator = 0.1f;
    s.optimizer.l1 = 0.01f;
    s.optimizer.l2 = 0.02f;
    s.optimizer.ftrl_beta = 1.5f;
    s.initializer.type = STRATA_INIT_TRUNC_NORMAL;
    s.initializer.a = -0.25f;
    s.initializer.b = 0.3f;
    s.initializer.seed = 0xabcdef0123456789ULL;
    s.capacity = 123456789012ULL;
    s.admission_threshold = 3;
    s.eviction = STRATA_EVICT_LFU;
    s.ttl_seconds = 86400 * 7;
    s.nshards = 999; /* not on the wire: shards_per_server is */
    return s;
}

static void check_schema_eq(const strata_table_schema_t *a, const strata_table_schema_t *b,
                            uint32_t nshards)
{
    CHECK(a->field_mask == CORE_SCHEMA_ALL_FIELDS, "field_mask 0x%llx",
          (unsigned long long)a->field_mask);
    CHECK(a->optimizer.field_mask == 0x1ff, "optimizer.field_mask");
    CHECK(strcmp(a->name, b->name) == 0, "name %s vs %s", a->name, b->name);
    CHECK(a->dim == b->dim && a->elem_type == b->elem_type, "dim/elem_type");
    CHECK(a->optimizer.type == b->optimizer.type, "opt type");
#define SAME_FLOAT(f)                                                                              \
    CHECK(memcmp(&a->f, &b->f, sizeof(float)) == 0, #f ": %g vs %g", (double)a->f, (double)b->f)
    SAME_FLOAT(optimizer.lr);
    SAME_FLOAT(optimizer.eps);
    SAME_FLOAT(optimizer.beta1);
    SAME_FLOAT(optimizer.beta2);
    SAME_FLOAT(optimizer.weight_decay);
    SAME_FLOAT(optimizer.initial_accumulator);
    SAME_FLOAT(optimizer.l1);
    SAME_FLOAT(optimizer.l2);
    SAME_FLOAT(optimizer.ftrl_beta);
    SAME_FLOAT(initializer.a);
    SAME_FLOAT(initializer.b);
#undef SAME_FLOAT
    CHECK(a->initializer.type == b->initializer.type && a->initializer.seed == b->initializer.seed,
          "initializer");
    CHECK(a->capacity == b->capacity && a->admission_threshold == b->admission_threshold &&
              a->eviction == b->eviction && a->ttl_seconds == b->ttl_seconds,
          "capacity/admission/eviction/ttl");
    CHECK(a->nshards == nshards, "nshards %u, want %u", a->nshards, nshards);
}

static void test_schema(void)
{
    strata_table_schema_t s = full_schema("emb.user-ids_2"), d;
    wire_schema_t w;
    memset(&w, 0xee, sizeof(w));
    wire_encode_schema(&s, 12, &w);

    /* Bytes pinned at their offsets (docs/protocol.md). */
    const uint8_t *b = (const uint8_t *)&w;
    uint32_t u32;
    uint64_t u64;
    float f;
    CHECK(memcmp(b, "emb.user-ids_2", 15) == 0, "name bytes");
    for (size_t j = 15; j < 64; j++)
        CHECK(b[j] == 0, "name padding");
    memcpy(&u32, b + 64, 4);
    CHECK(u32 == 77, "dim at 64");
    memcpy(&u32, b + 72, 4);
    CHECK(u32 == STRATA_OPT_FTRL, "opt_type at 72");
    memcpy(&f, b + 76, 4);
    CHECK(f == 0.125f, "lr at 76");
    memcpy(&f, b + 108, 4);
    CHECK(f == 1.5f, "ftrl_beta at 108");
    memcpy(&u32, b + 112, 4);
    CHECK(u32 == STRATA_INIT_TRUNC_NORMAL, "init_type at 112");
    memcpy(&u32, b + 132, 4);
    CHECK(u32 == 12, "shards_per_server at 132");
    memcpy(&u64, b + 136, 8);
    CHECK(u64 == 0xabcdef0123456789ULL, "init_seed at 136");
    memcpy(&u64, b + 144, 8);
    CHECK(u64 == 123456789012ULL, "capacity at 144");
    memcpy(&u64, b + 152, 8);
    CHECK(u64 == 86400 * 7, "ttl at 152");

    char name[WIRE_NAME_BYTES];
    uint32_t sps = 0;
    CHECK_ST(wire_decode_schema(&w, sizeof(w), &d, name, &sps), STRATA_OK);
    CHECK(d.name == name && sps == 12, "name_out / shards_per_server");
    check_schema_eq(&d, &s, 12);
    /* decode . encode is the identity on the bytes */
    wire_schema_t w2;
    wire_encode_schema(&d, sps, &w2);
    CHECK(memcmp(&w, &w2, sizeof(w)) == 0, "re-encoding differs");

    /* Unset fields travel as their defaults: the decoded schema equals
     * what core_schema_resolve makes of the original. */
    const uint64_t masks[] = {
        STRATA_SCHEMA_FIELD_NAME | STRATA_SCHEMA_FIELD_DIM | STRATA_SCHEMA_FIELD_CAPACITY,
        STRATA_SCHEMA_FIELD_NAME | STRATA_SCHEMA_FIELD_DIM | STRATA_SCHEMA_FIELD_CAPACITY |
            STRATA_SCHEMA_FIELD_OPTIMIZER,
        STRATA_SCHEMA_FIELD_NAME | STRATA_SCHEMA_FIELD_DIM | STRATA_SCHEMA_FIELD_CAPACITY |
            STRATA_SCHEMA_FIELD_INITIALIZER | STRATA_SCHEMA_FIELD_TTL,
    };
    for (size_t i = 0; i < 3; i++) {
        strata_table_schema_t p = full_schema("partial");
        p.field_mask = masks[i];
        p.optimizer.type = STRATA_OPT_ADAGRAD;
        p.optimizer.field_mask = STRATA_OPT_FIELD_LR; /* eps: Adagrad's default */
        p.nshards = 1;
        core_schema_t r;
        CHECK_OK(core_schema_resolve(&p, &r));
        wire_encode_schema(&p, 1, &w);
        CHECK_ST(wire_decode_schema(&w, sizeof(w), &d, name, &sps), STRATA_OK);
        check_schema_eq(&d, &r.s, 1);
        CHECK_OK(strata_schema_validate(&d));
    }
    /* Defaults spelled out once. */
    {
        strata_table_schema_t p = full_schema("defaults");
        p.field_mask = masks[0];
        wire_encode_schema(&p, 1, &w);
        CHECK(w.opt_type == STRATA_OPT_SGD && w.lr == 0.01f && w.init_type == STRATA_INIT_UNIFORM &&
                  w.init_a == -0.05f && w.init_b == 0.05f && w.init_seed == 0 &&
                  w.admission_threshold == 0 && w.eviction == STRATA_EVICT_NONE &&
                  w.ttl_seconds == 0 && w.elem_type == STRATA_ELEM_FP32,
              "defaults on the wire");
        /* required fields unset: sent as empty/0, so the receiver refuses */
        p.field_mask = 0;
        wire_encode_schema(&p, 1, &w);
        CHECK(w.name[0] == 0 && w.dim == 0 && w.capacity == 0, "unset required fields");
        CHECK_ST(wire_decode_schema(&w, sizeof(w), &d, name, &sps), STRATA_ERR_PROTOCOL);
    }

    /* Every shorter length is TRUNCATED, a longer one PROTOCOL. */
    s = full_schema("t");
    wire_encode_schema(&s, 1, &w);
    uint8_t big[sizeof(wire_schema_t) + 8];
    memset(big, 0, sizeof(big));
    memcpy(big, &w, sizeof(w));
    memset(&d, 0x77, sizeof(d));
    memset(name, 0x77, sizeof(name));
    sps = 0x77;
    for (size_t len = 0; len < sizeof(w); len++)
        CHECK_ST(wire_decode_schema(big, len, &d, name, &sps), STRATA_ERR_TRUNCATED);
    CHECK_ST(wire_decode_schema(big, sizeof(w) + 1, &d, name, &sps), STRATA_ERR_PROTOCOL);
    CHECK_ST(wire_decode_schema(big, sizeof(w) + 8, &d, name, &sps), STRATA_ERR_PROTOCOL);
    /* bad names */
    char long64[65];
    memset(long64, 'n', 64);
    long64[64] = 0;
    s.name = long64; /* too long: encoded without a NUL */
    wire_encode_schema(&s, 1, &w);
    CHECK_ST(wire_decode_schema(&w, sizeof(w), &d, name, &sps), STRATA_ERR_PROTOCOL);
    s.name = "bad name";
    wire_encode_schema(&s, 1, &w);
    CHECK_ST(wire_decode_schema(&w, sizeof(w), &d, name, &sps), STRATA_ERR_PROTOCOL);
    s.name = "ok";
    wire_encode_schema(&s, 1, &w);
    w.name[10] = 'z';
    CHECK_ST(wire_decode_schema(&w, sizeof(w), &d, name, &sps), STRATA_ERR_PROTOCOL);
    /* shards_per_server range */
    const uint32_t spss[] = {0, 1, STRATA_SHARDS_MAX, STRATA_SHARDS_MAX + 1, UINT32_MAX};
    for (size_t i = 0; i < 5; i++) {
        wire_encode_schema(&s, spss[i], &w);
        int ok = spss[i] >= 1 && spss[i] <= STRATA_SHARDS_MAX;
        CHECK_ST(wire_decode_schema(&w, sizeof(w), &d, name, &sps),
                 ok ? STRATA_OK : STRATA_ERR_INVALID_PARAM);
        if (!ok)
            continue;
        CHECK(sps == spss[i] && d.nshards == spss[i], "shards_per_server");
        memset(&d, 0x77, sizeof(d));
        memset(name, 0x77, sizeof(name));
        sps = 0x77;
    }
    CHECK(sps == 0x77 && (uint8_t)name[0] == 0x77 && d.dim == 0x77777777u,
          "outputs written on error");
    /* Range checks are strata_schema_validate's: the decoder passes an
     * unknown optimizer through and validation refuses it. */
    s = full_schema("range");
    wire_encode_schema(&s, 1, &w);
    w.opt_type = 99;
    CHECK_ST(wire_decode_schema(&w, sizeof(w), &d, name, &sps), STRATA_OK);
    CHECK(d.optimizer.type == 99, "opt type passed through");
    CHECK_ST(strata_schema_validate(&d), STRATA_ERR_INVALID_PARAM);
    /* any alignment of the body */
    wire_encode_schema(&s, 1, &w);
    memcpy(big + 1, &w, sizeof(w));
    CHECK_ST(wire_decode_schema(big + 1, sizeof(w), &d, name, &sps), STRATA_OK);
    CHECK(strcmp(d.name, "range") == 0, "misaligned body");
}

/* --- DESCRIBE ------------------------------------------------------------------ */

static desc_spec_t desc_spec3(void)
{
    desc_spec_t sp;
    memset(&sp, 0, sizeof(sp));
    sp.nlocal = 3;
    sp.total = 6;
    sp.alen[0] = 1, sp.ilen[0] = 8;
    sp.alen[1] = 13, sp.ilen[1] = WIRE_RKEY_MAX;
    sp.alen[2] = 40, sp.ilen[2] = 7;
    return sp;
}

static void check_describe_view(const desc_spec_t *sp, const wire_describe_view_t *v,
                                const wire_hdr_t *h)
{
    CHECK(v->desc == (const wire_table_desc_t *)wire_body(h), "desc view");
    CHECK(v->nlocal == sp->nlocal && v->desc->nlocal == sp->nlocal, "nlocal");
    CHECK(v->desc->table_id == 42 && v->desc->total_shards == sp->total &&
              v->desc->layout_gen == 0x123456789ULL,
          "desc fields");
    const uint8_t *body = wire_body(h);
    for (uint32_t i = 0; i < sp->nlocal; i++) {
        CHECK((const uint8_t *)v->shard[i] == body + sp->shard_off[i], "shard %u view", i);
        CHECK(v->shard[i]->shard == (i * 2) % sp->total &&
                  v->shard[i]->nbuckets == 1ull << (i + 1) && v->shard[i]->stride == 128 &&
                  v->shard[i]->epoch == i + 1,
              "shard %u fields", i);
        CHECK((const uint8_t *)v->arena_rkey[i] == body + sp->arena_off[i] &&
                  (const uint8_t *)v->index_rkey[i] == body + sp->index_off[i],
              "rkey %u views", i);
        for (size_t j = 0; j < sp->alen[i]; j++)
            CHECK(((const uint8_t *)v->arena_rkey[i])[j] == rkey_byte(i, 0, j), "arena rkey");
        for (size_t j = 0; j < sp->ilen[i]; j++)
            CHECK(((const uint8_t *)v->index_rkey[i])[j] == rkey_byte(i, 1, j), "index rkey");
    }
    /* The schema inside decodes. */
    strata_table_schema_t s;
    char name[WIRE_NAME_BYTES];
    uint32_t sps;
    CHECK_ST(wire_decode_schema(&v->desc->schema, sizeof(v->desc->schema), &s, name, &sps),
             STRATA_OK);
    CHECK(strcmp(name, "emb.user-ids_2") == 0 && s.dim == 16 && sps == 2, "desc schema");
}

/** Patch a u32/u64 at off in a copy of body, decode, expect want. */
static void describe_patch(const uint8_t *body, size_t len, size_t off, uint64_t value, int width,
                           strata_status_t want)
{
    uint8_t *b = malloc(len);
    CHECK(b, "oom");
    memcpy(b, body, len);
    if (width == 4) {
        uint32_t v32 = (uint32_t)value;
        memcpy(b + off, &v32, 4);
    } else if (width == 8) {
        memcpy(b + off, &value, 8);
    } else {
        b[off] = (uint8_t)value;
    }
    msg_t m = describe_with(b, len);
    static wire_describe_view_t v; /* 24 KiB: keep it off the stack */
    v.nlocal = 0xabcd;
    CHECK_ST(wire_decode_describe_reply(checked(&m, 1), &v), want);
    CHECK(want == STRATA_OK || v.nlocal == 0xabcd, "view written on error");
    msg_free(&m);
    free(b);
}

static void test_describe(void)
{
    static wire_describe_view_t v;
    desc_spec_t sp = desc_spec3();
    msg_t m = make_describe(&sp, 0);
    const wire_hdr_t *h = checked(&m, 1);
    CHECK_ST(wire_decode_describe_reply(h, &v), STRATA_OK);
    check_describe_view(&sp, &v, h);
    msg_free(&m);

    /* total_shards 0 is refused even with no local shard */
    {
        desc_spec_t s0 = desc_spec3();
        s0.nlocal = 0;
        uint8_t *b0 = describe_body(&s0);
        describe_patch(b0, s0.body_len, offsetof(wire_table_desc_t, total_shards), 1, 4, STRATA_OK);
        describe_patch(b0, s0.body_len, offsetof(wire_table_desc_t, total_shards), 0, 4,
                       STRATA_ERR_PROTOCOL);
        free(b0);
    }

    /* nlocal 0 and 1 */
    for (uint32_t n = 0; n <= 1; n++) {
        desc_spec_t s2 = desc_spec3();
        s2.nlocal = n;
        m = make_describe(&s2, 0);
        h = checked(&m, 1);
        CHECK_ST(wire_decode_describe_reply(h, &v), STRATA_OK);
        check_describe_view(&s2, &v, h);
        msg_free(&m);
    }

    /* Every shorter body (body_len consistent with the bytes) is TRUNCATED. */
    uint8_t *body = describe_body(&sp);
    size_t len = sp.body_len;
    for (size_t l = 0; l < len; l++) {
        msg_t c = describe_with(body, l);
        v.nlocal = 0xabcd;
        CHECK_ST(wire_decode_describe_reply(checked(&c, 1), &v), STRATA_ERR_TRUNCATED);
        CHECK(v.nlocal == 0xabcd, "view written on error");
        msg_free(&c);
    }
    /* Trailing bytes: one, or a whole extra padded rkey's worth. */
    {
        uint8_t *b2 = calloc(1, len + 8);
        CHECK(b2, "oom");
        memcpy(b2, body, len);
        for (size_t extra = 1; extra <= 8; extra++) {
            msg_t c = describe_with(b2, len + extra);
            CHECK_ST(wire_decode_describe_reply(checked(&c, 1), &v), STRATA_ERR_PROTOCOL);
            msg_free(&c);
        }
        free(b2);
    }

    const size_t o_total = offsetof(wire_table_desc_t, total_shards);
    const size_t o_nlocal = offsetof(wire_table_desc_t, nlocal);
    const size_t o_res = offsetof(wire_table_desc_t, flags);
    describe_patch(body, len, o_res, 1, 4, STRATA_OK); /* WIRE_TABLE_TIERED */
    describe_patch(body, len, o_res, 2, 4, STRATA_ERR_PROTOCOL);
    describe_patch(body, len, o_total, 0, 4, STRATA_ERR_PROTOCOL);
    describe_patch(body, len, o_total, 2, 4, STRATA_ERR_PROTOCOL);  /* nlocal 3 > total 2 */
    describe_patch(body, len, o_total, 4, 4, STRATA_ERR_PROTOCOL);  /* shard id 4 >= total 4 */
    describe_patch(body, len, o_total, 5, 4, STRATA_OK);            /* shard ids 0, 2, 4 < 5 */
    describe_patch(body, len, o_nlocal, 2, 4, STRATA_ERR_PROTOCOL); /* trailing shard */
    describe_patch(body, len, o_nlocal, 4, 4, STRATA_ERR_TRUNCATED);
    describe_patch(body, len, o_nlocal, STRATA_SHARDS_MAX + 1, 4, STRATA_ERR_PROTOCOL);
    describe_patch(body, len, o_nlocal, UINT32_MAX, 4, STRATA_ERR_PROTOCOL);

    for (uint32_t i = 0; i < sp.nlocal; i++) {
        size_t so = sp.shard_off[i];
        describe_patch(body, len, so + offsetof(wire_shard_desc_t, reserved), 5, 4,
                       STRATA_ERR_PROTOCOL);
        describe_patch(body, len, so + offsetof(wire_shard_desc_t, shard), sp.total, 4,
                       STRATA_ERR_PROTOCOL);
        describe_patch(body, len, so + offsetof(wire_shard_desc_t, shard), sp.total - 1, 4,
                       STRATA_OK);
        const size_t o_alen = so + offsetof(wire_shard_desc_t, arena_rkey_len);
        const size_t o_ilen = so + offsetof(wire_shard_desc_t, index_rkey_len);
        describe_patch(body, len, o_alen, 0, 4, STRATA_ERR_PROTOCOL);
        describe_patch(body, len, o_ilen, 0, 4, STRATA_ERR_PROTOCOL);
        describe_patch(body, len, o_alen, WIRE_RKEY_MAX + 1, 4, STRATA_ERR_PROTOCOL);
        describe_patch(body, len, o_ilen, WIRE_RKEY_MAX + 1, 4, STRATA_ERR_PROTOCOL);
        describe_patch(body, len, o_alen, UINT32_MAX, 4, STRATA_ERR_PROTOCOL);
        const size_t o_nb = so + offsetof(wire_shard_desc_t, nbuckets);
        describe_patch(body, len, o_nb, 0, 8, STRATA_ERR_PROTOCOL);
        describe_patch(body, len, o_nb, 1, 8, STRATA_ERR_PROTOCOL);
        describe_patch(body, len, o_nb, 6, 8, STRATA_ERR_PROTOCOL);
        describe_patch(body, len, o_nb, 1ull << 40, 8, STRATA_OK);
        const size_t o_st = so + offsetof(wire_shard_desc_t, stride);
        describe_patch(body, len, o_st, 0, 8, STRATA_ERR_PROTOCOL);
        describe_patch(body, len, o_st, 96, 8, STRATA_ERR_PROTOCOL);
        describe_patch(body, len, o_st, 64, 8, STRATA_OK);
        describe_patch(body, len, so + offsetof(wire_shard_desc_t, arena_len), 128 * 5 + 64, 8,
                       STRATA_ERR_PROTOCOL);
        /* rkey padding must be zero (every pad byte of every short rkey) */
        uint32_t lens[2] = {sp.alen[i], sp.ilen[i]};
        size_t offs[2] = {sp.arena_off[i], sp.index_off[i]};
        for (int k = 0; k < 2; k++)
            for (size_t j = lens[k]; j < wire_pad8(lens[k]); j++)
                describe_patch(body, len, offs[k] + j, 0x01, 1, STRATA_ERR_PROTOCOL);
    }
    /* Shrinking an rkey length leaves unexplained bytes; growing one
     * reads past the body or the next descriptor's alignment. */
    describe_patch(body, len, sp.shard_off[2] + offsetof(wire_shard_desc_t, index_rkey_len), 8, 4,
                   STRATA_OK); /* 7 -> 8: same padded size, byte 8 was padding */
    describe_patch(body, len, sp.shard_off[2] + offsetof(wire_shard_desc_t, index_rkey_len), 9, 4,
                   STRATA_ERR_TRUNCATED);
    describe_patch(body, len, sp.shard_off[0] + offsetof(wire_shard_desc_t, arena_rkey_len), 9, 4,
                   STRATA_ERR_PROTOCOL); /* the index rkey's bytes become padding */
    free(body);

    /* error reply, request type, another reply type */
    m = make_describe(&sp, 0);
    MSG_SET(&m, status, STRATA_ERR_UNKNOWN_TABLE);
    CHECK_ST(wire_decode_describe_reply(msg_hdr(&m), &v), STRATA_ERR_PROTOCOL);
    MSG_SET(&m, status, 0);
    MSG_SET(&m, type, WIRE_DESCRIBE);
    CHECK_ST(wire_decode_describe_reply(msg_hdr(&m), &v), STRATA_ERR_PROTOCOL);
    MSG_SET(&m, type, WIRE_LIST | WIRE_REPLY_BIT);
    CHECK_ST(wire_decode_describe_reply(msg_hdr(&m), &v), STRATA_ERR_PROTOCOL);
    msg_free(&m);
    /* misaligned */
    for (size_t mis = 1; mis < 8; mis++) {
        m = make_describe(&sp, mis);
        v.nlocal = 0xabcd;
        CHECK_ST(wire_decode_describe_reply(msg_hdr(&m), &v), STRATA_ERR_PROTOCOL);
        CHECK(v.nlocal == 0xabcd, "view written on error");
        msg_free(&m);
    }

    /* The most local shards the views hold. */
    {
        desc_spec_t big;
        memset(&big, 0, sizeof(big));
        big.nlocal = 0;
        big.total = 2 * STRATA_SHARDS_MAX + 2; /* shard 1025's id 2048 is valid */
        uint8_t *head = describe_body(&big);
        size_t per = sizeof(wire_shard_desc_t) + 16;
        size_t blen = sizeof(wire_table_desc_t) + (size_t)STRATA_SHARDS_MAX * per;
        uint8_t *b = calloc(1, blen + per);
        CHECK(b, "oom");
        memcpy(b, head, sizeof(wire_table_desc_t));
        for (uint32_t i = 0; i <= STRATA_SHARDS_MAX; i++) {
            wire_shard_desc_t sd;
            memset(&sd, 0, sizeof(sd));
            sd.shard = 2 * i;
            sd.arena_rkey_len = 1;
            sd.index_rkey_len = 2;
            sd.nbuckets = 2;
            sd.stride = 64;
            uint8_t *p = b + sizeof(wire_table_desc_t) + i * per;
            memcpy(p, &sd, sizeof(sd));
            p[64] = (uint8_t)i | 1;
            p[72] = 0xaa;
            p[73] = 0xbb;
        }
        uint32_t n = STRATA_SHARDS_MAX;
        memcpy(b + o_nlocal, &n, 4);
        msg_t c = describe_with(b, blen);
        h = checked(&c, 1);
        CHECK_ST(wire_decode_describe_reply(h, &v), STRATA_OK);
        CHECK(v.nlocal == STRATA_SHARDS_MAX, "nlocal max");
        for (uint32_t i = 0; i < n; i++)
            CHECK(v.shard[i]->shard == 2 * i &&
                      ((const uint8_t *)v.arena_rkey[i])[0] == ((uint8_t)i | 1) &&
                      ((const uint8_t *)v.index_rkey[i])[1] == 0xbb,
                  "shard %u of max", i);
        msg_free(&c);
        n = STRATA_SHARDS_MAX + 1;
        memcpy(b + o_nlocal, &n, 4);
        c = describe_with(b, blen + per);
        CHECK_ST(wire_decode_describe_reply(checked(&c, 1), &v), STRATA_ERR_PROTOCOL);
        msg_free(&c);
        free(b);
        free(head);
    }
}

/* --- error text -------------------------------------------------------------- */

static void test_errmsg(void)
{
    const char text[] = "no table \"x\"\n\tbad\xff\x01"
                        "end";
    size_t tlen = sizeof(text) - 1;
    wire_hdr_t x = hdr_of(WIRE_DESCRIBE | WIRE_REPLY_BIT, (uint32_t)tlen, 0);
    x.status = STRATA_ERR_UNKNOWN_TABLE;
    msg_t m = msg_make(&x, text, tlen, 0);
    const wire_hdr_t *h = checked(&m, 1);
    char out[64];
    memset(out, 'Z', sizeof(out));
    wire_decode_errmsg(h, out, sizeof(out));
    CHECK(strcmp(out, "no table \"x\"??bad??end") == 0, "errmsg: %s", out);
    memset(out, 'Z', sizeof(out));
    wire_decode_errmsg(h, out, 5);
    CHECK(strcmp(out, "no t") == 0 && out[5] == 'Z', "errmsg cap 5: %s", out);
    wire_decode_errmsg(h, out, 1);
    CHECK(out[0] == 0 && out[1] == 'o', "errmsg cap 1");
    out[0] = 'Q';
    wire_decode_errmsg(h, out, 0);
    CHECK(out[0] == 'Q', "cap 0 writes nothing");
    wire_decode_errmsg(h, NULL, 10); /* no crash */
    msg_free(&m);

    /* empty text; UTF-8 becomes '?' per byte; exactly cap - 1 bytes */
    x.body_len = 0;
    m = msg_make(&x, NULL, 0, 0);
    memset(out, 'Z', sizeof(out));
    wire_decode_errmsg(checked(&m, 1), out, sizeof(out));
    CHECK(out[0] == 0, "empty errmsg");
    msg_free(&m);
    const char utf[] = "caf\xc3\xa9";
    x.body_len = 5;
    m = msg_make(&x, utf, 5, 0);
    wire_decode_errmsg(checked(&m, 1), out, 6);
    CHECK(strcmp(out, "caf??") == 0, "utf-8: %s", out);
    wire_decode_errmsg(msg_hdr(&m), out, 5);
    CHECK(strcmp(out, "caf?") == 0, "utf-8 cap: %s", out);
    msg_free(&m);
    /* the longest text allowed, into a buffer that holds it */
    char longtext[WIRE_ERRMSG_MAX];
    memset(longtext, 'L', sizeof(longtext));
    x.body_len = WIRE_ERRMSG_MAX;
    m = msg_make(&x, longtext, WIRE_ERRMSG_MAX, 0);
    char big[WIRE_ERRMSG_MAX + 1];
    wire_decode_errmsg(checked(&m, 1), big, sizeof(big));
    CHECK(strlen(big) == WIRE_ERRMSG_MAX && big[0] == 'L', "longest errmsg");
    msg_free(&m);
}

int main(void)
{
    test_hdr();
    test_lookup();
    test_push();
    test_lookup_reply();
    test_name();
    test_schema();
    test_describe();
    test_errmsg();
    printf("test_wire: ok\n");
    return 0;
}
