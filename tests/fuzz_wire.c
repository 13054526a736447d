/*
 * tests/fuzz_wire.c — fuzz target for the RPC wire decoders (rdma/wire.c,
 * docs/protocol.md).
 *
 * Input: 3 parameter bytes, then one message.
 *   byte 0  bits 0-1  0: check as a request, 1: as a reply, 2: raw (name
 *                     and schema decoders on the bare bytes), 3: the
 *                     direction the message's own type byte says
 *           bits 2-4  misalignment of the copy (only when bit 7 is set)
 *           bit 5     LOOKUP reply: expect one key more than the header says
 *           bit 6     error text: decode into an 8-byte buffer, not 256
 *   byte 1  dim: 0 and 0xff are out of range (1..STRATA_DIM_MAX), 0xfe is
 *           STRATA_DIM_MAX, any other value is itself
 *   byte 2  bit 0: want_loc; bits 1-7: max_keys (127 = UINT32_MAX)
 * The message is copied into a buffer of its exact length (so ASan sees a
 * read past it) that starts on an 8-byte boundary plus the misalignment.
 *
 * LLVMFuzzerTestOneInput runs wire_check_hdr and then every decoder on the
 * message, whatever its type (a decoder must refuse another type), and
 * abort()s when:
 *  - a decoder returns a status outside its documented set (wire.c's
 *    header comment; INVALID_PARAM only for an out-of-range dim);
 *  - a decoder accepts something its contract forbids (a count over
 *    max_keys, a body length other than the exact one, a found[] value
 *    that is not a STRATA_ROW_*, a name with a bad byte, ...);
 *  - a view it returns points outside the message or is misaligned;
 *  - an output parameter is written on an error;
 *  - decode(schema) does not re-encode to the same 160 bytes.
 *
 * Without libFuzzer (no STRATA_LIBFUZZER: the ctest build) main() below is
 * a deterministic driver: it generates valid messages of every type, checks
 * that each is accepted, then feeds ~200000 mutants (bit flips, bytes set
 * to edge values, header fields set to edge values, truncation, extension,
 * body_len repaired or not, parameter bytes changed) and requires that
 * every refusal status was seen at least once, so a generator that stops
 * reaching the decoders fails the test. STRATA_TEST_SEED replays a run,
 * STRATA_TEST_SCALE scales it; `fuzz_wire FILE...` replays inputs (e.g. a
 * libFuzzer crash-* file) and `fuzz_wire --write-corpus DIR` writes 200
 * valid inputs as a seed corpus for fuzz_wire_libfuzzer.
 *
 * Threading: single-threaded.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/status.h"
#include "rdma/wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/** The status of the decoder that matches the message's type (or of
 *  wire_check_hdr when it refused), for the driver's counts. */
static strata_status_t g_primary;

static const uint8_t *g_lo, *g_hi; /* the message being decoded */

static void fuzz_fail(const char *what, strata_status_t st)
{
    fprintf(stderr, "fuzz_wire: %s: %s (%s)\n", what, strata_status_string(st),
            strata_last_error());
    abort();
}

/** [p, p + n) lies inside the message. */
static int inside(const void *p, uint64_t n)
{
    uintptr_t a = (uintptr_t)p, lo = (uintptr_t)g_lo, hi = (uintptr_t)g_hi;
    return a >= lo && a <= hi && n <= hi - a;
}

static int aligned(const void *p, size_t a)
{
    return ((uintptr_t)p & (a - 1)) == 0;
}

static void need(int cond, const char *what, strata_status_t st)
{
    if (!cond)
        fuzz_fail(what, st);
}

static int one_of(strata_status_t st, const strata_status_t *set, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (st == set[i])
            return 1;
    return 0;
}
#define ONE_OF(st, ...)                                                                            \
    one_of((st), (const strata_status_t[]){__VA_ARGS__},                                           \
           sizeof((const strata_status_t[]){__VA_ARGS__}) / sizeof(strata_status_t))

static int name_ok(const char *n)
{
    size_t len = strnlen(n, WIRE_NAME_BYTES);
    if (len < 1 || len > STRATA_NAME_MAX)
        return 0;
    for (size_t i = 0; i < len; i++) {
        char c = n[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '.' || c == '-'))
            return 0;
    }
    for (size_t i = len; i < WIRE_NAME_BYTES; i++)
        if (n[i])
            return 0;
    return 1;
}

/* --- one decoder each ------------------------------------------------------ */

static strata_status_t fuzz_name(const uint8_t *p, size_t len)
{
    if (len < WIRE_NAME_BYTES)
        return STRATA_ERR_TRUNCATED; /* not a decoder call: the caller's check */
    char out[WIRE_NAME_BYTES];
    memset(out, 0x5a, sizeof(out));
    strata_status_t st = wire_decode_name((const char *)p, out);
    need(ONE_OF(st, STRATA_OK, STRATA_ERR_PROTOCOL), "wire_decode_name status", st);
    if (st == STRATA_OK)
        need(name_ok(out) && memcmp(out, p, WIRE_NAME_BYTES) == 0, "decoded name", st);
    else
        need((uint8_t)out[0] == 0x5a, "wire_decode_name wrote out on error", st);
    return st;
}

static strata_status_t fuzz_schema(const uint8_t *p, size_t len)
{
    strata_table_schema_t s;
    char name[WIRE_NAME_BYTES];
    uint32_t sps = 0xdeadbeef;
    memset(&s, 0x5a, sizeof(s));
    memset(name, 0x5a, sizeof(name));
    strata_status_t st = wire_decode_schema(p, len, &s, name, &sps);
    need(ONE_OF(st, STRATA_OK, STRATA_ERR_PROTOCOL, STRATA_ERR_TRUNCATED, STRATA_ERR_INVALID_PARAM),
         "wire_decode_schema status", st);
    if (st != STRATA_OK) {
        need(sps == 0xdeadbeef && (uint8_t)name[0] == 0x5a && s.dim == 0x5a5a5a5au,
             "wire_decode_schema wrote outputs on error", st);
        need(st != STRATA_ERR_TRUNCATED || len < sizeof(wire_schema_t), "schema TRUNCATED", st);
        return st;
    }
    need(len == sizeof(wire_schema_t), "schema accepted at another length", st);
    need(s.name == name && name_ok(name), "schema name", st);
    need(sps >= 1 && sps <= STRATA_SHARDS_MAX && s.nshards == sps, "shards_per_server", st);
    wire_schema_t w;
    wire_encode_schema(&s, sps, &w);
    need(memcmp(&w, p, sizeof(w)) == 0, "decoded schema does not re-encode to its bytes", st);
    /* Validation may refuse it, but only with its own statuses. */
    strata_status_t vs = strata_schema_validate(&s);
    need(ONE_OF(vs, STRATA_OK, STRATA_ERR_INVALID_PARAM, STRATA_ERR_UNSUPPORTED),
         "strata_schema_validate status", vs);
    return st;
}

static strata_status_t fuzz_lookup(const wire_hdr_t *h, uint32_t max_keys)
{
    const uint64_t *keys = (const uint64_t *)(uintptr_t)8;
    strata_status_t st = wire_decode_lookup(h, max_keys, &keys);
    need(ONE_OF(st, STRATA_OK, STRATA_ERR_PROTOCOL, STRATA_ERR_TRUNCATED, STRATA_ERR_TOO_LARGE),
         "wire_decode_lookup status", st);
    if (h->type != WIRE_LOOKUP)
        need(st == STRATA_ERR_PROTOCOL, "lookup decoded another type", st);
    if (st != STRATA_OK) {
        need(keys == (const uint64_t *)(uintptr_t)8, "lookup wrote keys_p on error", st);
        return st;
    }
    need(h->count <= max_keys && h->body_len == 8ull * h->count, "lookup accepted bad sizes", st);
    need(keys == wire_body(h) && inside(keys, 8ull * h->count) && aligned(keys, 8),
         "lookup keys view", st);
    return st;
}

static strata_status_t fuzz_push(const wire_hdr_t *h, uint32_t dim, uint32_t max_keys)
{
    const uint64_t *keys = (const uint64_t *)(uintptr_t)8;
    const float *grads = (const float *)(uintptr_t)8;
    strata_status_t st = wire_decode_push(h, dim, max_keys, &keys, &grads);
    if (dim < 1 || dim > STRATA_DIM_MAX) {
        need(st == STRATA_ERR_INVALID_PARAM, "push with a bad dim", st);
        return st;
    }
    need(ONE_OF(st, STRATA_OK, STRATA_ERR_PROTOCOL, STRATA_ERR_TRUNCATED, STRATA_ERR_TOO_LARGE,
                STRATA_ERR_DIM_MISMATCH),
         "wire_decode_push status", st);
    if (h->type != WIRE_PUSH)
        need(st == STRATA_ERR_PROTOCOL, "push decoded another type", st);
    if (st != STRATA_OK) {
        need(keys == (const uint64_t *)(uintptr_t)8 && grads == (const float *)(uintptr_t)8,
             "push wrote outputs on error", st);
        return st;
    }
    uint64_t n = h->count;
    need(n <= max_keys && h->body_len == n * (8 + 4ull * dim), "push accepted bad sizes", st);
    need(keys == wire_body(h) && inside(keys, 8 * n) && aligned(keys, 8), "push keys view", st);
    need((const void *)grads == (const void *)(keys + n) && inside(grads, 4 * n * dim) &&
             aligned(grads, 4),
         "push grads view", st);
    return st;
}

static strata_status_t fuzz_lookup_reply(const wire_hdr_t *h, uint32_t expect, uint32_t dim,
                                         int want_loc)
{
    wire_lookup_reply_view_t v = {(const uint8_t *)8, (const wire_loc_t *)8, (const float *)8};
    strata_status_t st = wire_decode_lookup_reply(h, expect, dim, want_loc, &v);
    if (dim < 1 || dim > STRATA_DIM_MAX) {
        need(st == STRATA_ERR_INVALID_PARAM, "lookup reply with a bad dim", st);
        return st;
    }
    need(ONE_OF(st, STRATA_OK, STRATA_ERR_PROTOCOL, STRATA_ERR_TRUNCATED),
         "wire_decode_lookup_reply status", st);
    if (h->type != (WIRE_LOOKUP | WIRE_REPLY_BIT) || h->status < 0 || h->count != expect)
        need(st == STRATA_ERR_PROTOCOL, "lookup reply accepted a bad header", st);
    if (st != STRATA_OK) {
        need(v.found == (const uint8_t *)8 && v.loc == (const wire_loc_t *)8 &&
                 v.rows == (const float *)8,
             "lookup reply wrote the view on error", st);
        return st;
    }
    uint64_t n = h->count;
    need(h->body_len == wire_lookup_reply_bytes(h->count, dim, want_loc),
         "lookup reply accepted a bad length", st);
    need(v.found == wire_body(h) && inside(v.found, wire_pad8(n)), "found view", st);
    for (uint64_t i = 0; i < n; i++)
        need(v.found[i] <= STRATA_ROW_NOT_ADMITTED, "found value", st);
    for (uint64_t i = n; i < wire_pad8(n); i++)
        need(v.found[i] == 0, "found padding", st);
    if (want_loc)
        need(v.loc && (const uint8_t *)v.loc == v.found + wire_pad8(n) && inside(v.loc, 16 * n) &&
                 aligned(v.loc, 8),
             "loc view", st);
    else
        need(v.loc == NULL, "loc without WANT_LOC", st);
    need(inside(v.rows, 4 * n * dim) && aligned(v.rows, 4) &&
             (const uint8_t *)v.rows + 4 * n * dim == g_hi,
         "rows view", st);
    return st;
}

static strata_status_t fuzz_describe(const wire_hdr_t *h)
{
    static wire_describe_view_t v; /* 24 KiB */
    v.nlocal = 0xabcdef;
    v.desc = NULL;
    strata_status_t st = wire_decode_describe_reply(h, &v);
    need(ONE_OF(st, STRATA_OK, STRATA_ERR_PROTOCOL, STRATA_ERR_TRUNCATED),
         "wire_decode_describe_reply status", st);
    if (h->type != (WIRE_DESCRIBE | WIRE_REPLY_BIT) || h->status < 0)
        need(st == STRATA_ERR_PROTOCOL, "describe accepted a bad header", st);
    if (st != STRATA_OK) {
        need(v.nlocal == 0xabcdef && v.desc == NULL, "describe wrote the view on error", st);
        return st;
    }
    need(v.desc == wire_body(h) && inside(v.desc, sizeof(*v.desc)) && aligned(v.desc, 8),
         "desc view", st);
    need(v.nlocal == v.desc->nlocal && v.nlocal <= STRATA_SHARDS_MAX &&
             v.nlocal <= v.desc->total_shards && (v.desc->flags & ~(uint32_t)WIRE_TABLE_TIERED) == 0,
         "desc fields", st);
    const uint8_t *end = (const uint8_t *)wire_body(h) + sizeof(wire_table_desc_t);
    for (uint32_t i = 0; i < v.nlocal; i++) {
        const wire_shard_desc_t *sd = v.shard[i];
        need((const uint8_t *)sd == end && inside(sd, sizeof(*sd)) && aligned(sd, 8), "shard view",
             st);
        need(sd->reserved == 0 && sd->shard < v.desc->total_shards && sd->arena_rkey_len >= 1 &&
                 sd->arena_rkey_len <= WIRE_RKEY_MAX && sd->index_rkey_len >= 1 &&
                 sd->index_rkey_len <= WIRE_RKEY_MAX && sd->nbuckets >= 2 &&
                 (sd->nbuckets & (sd->nbuckets - 1)) == 0 && sd->stride >= 64 &&
                 sd->stride % 64 == 0 && sd->arena_len % sd->stride == 0,
             "shard fields", st);
        need(v.arena_rkey[i] == (const void *)(sd + 1) &&
                 inside(v.arena_rkey[i], wire_pad8(sd->arena_rkey_len)),
             "arena rkey view", st);
        const uint8_t *ir = (const uint8_t *)v.arena_rkey[i] + wire_pad8(sd->arena_rkey_len);
        need(v.index_rkey[i] == (const void *)ir && inside(ir, wire_pad8(sd->index_rkey_len)),
             "index rkey view", st);
        end = ir + wire_pad8(sd->index_rkey_len);
    }
    need(end == g_hi, "describe accepted trailing bytes", st);
    /* The schema inside, through its own decoder. */
    fuzz_schema((const uint8_t *)&v.desc->schema, sizeof(v.desc->schema));
    return st;
}

static void fuzz_errmsg(const wire_hdr_t *h, size_t cap)
{
    char out[257];
    memset(out, 0x5a, sizeof(out));
    wire_decode_errmsg(h, out, cap);
    size_t want = h->body_len < cap - 1 ? h->body_len : cap - 1;
    need(strnlen(out, cap) == want, "errmsg length", STRATA_OK);
    for (size_t i = 0; i < want; i++)
        need(out[i] >= 0x20 && out[i] < 0x7f, "errmsg not printable", STRATA_OK);
    need((uint8_t)out[cap] == 0x5a, "errmsg wrote past cap", STRATA_OK);
}

/* --- the target ------------------------------------------------------------------ */

static strata_status_t fuzz_message(const uint8_t *msg, size_t len, uint8_t sel, uint32_t dim,
                                    uint32_t max_keys, int want_loc)
{
    int mode = sel & 3;
    if (mode == 2) {
        fuzz_name(msg, len);
        return fuzz_schema(msg, len);
    }
    int is_reply = mode == 1 || (mode == 3 && len >= 4 && (msg[3] & WIRE_REPLY_BIT));

    const wire_hdr_t *h = (const wire_hdr_t *)(uintptr_t)8;
    strata_status_t st = wire_check_hdr(msg, len, is_reply, &h);
    need(ONE_OF(st, STRATA_OK, STRATA_ERR_TRUNCATED, STRATA_ERR_PROTOCOL, STRATA_ERR_VERSION,
                STRATA_ERR_TOO_LARGE),
         "wire_check_hdr status", st);
    if (st != STRATA_OK) {
        need(h == (const wire_hdr_t *)(uintptr_t)8, "wire_check_hdr wrote hdr_p on error", st);
        return st;
    }
    need((const uint8_t *)h == msg && aligned(h, 8) && len == sizeof(*h) + h->body_len &&
             len <= WIRE_MSG_MAX && h->magic == WIRE_MAGIC && h->version == WIRE_VERSION &&
             ((h->type & WIRE_REPLY_BIT) != 0) == is_reply && (h->type & 0x7f) >= 1 &&
             (h->type & 0x7f) <= WIRE_TYPE_MAX,
         "wire_check_hdr accepted a bad header", st);
    need(is_reply || h->status == 0, "request with a status", st);
    need(!is_reply || h->status >= 0 || h->body_len <= WIRE_ERRMSG_MAX, "long error text", st);

    uint32_t expect = h->count + ((sel >> 5) & 1);
    strata_status_t s_lookup = fuzz_lookup(h, max_keys);
    strata_status_t s_push = fuzz_push(h, dim, max_keys);
    strata_status_t s_reply = fuzz_lookup_reply(h, expect, dim, want_loc);
    strata_status_t s_desc = fuzz_describe(h);
    const uint8_t *body = wire_body(h);
    strata_status_t s_schema = fuzz_schema(body, h->body_len);
    strata_status_t s_name = fuzz_name(body, h->body_len);
    fuzz_errmsg(h, (sel & 0x40) ? 8 : 256);

    if (h->status < 0)
        return STRATA_OK;
    switch (h->type) {
    case WIRE_LOOKUP:
        return s_lookup;
    case WIRE_PUSH:
        return s_push;
    case WIRE_CREATE:
        return s_schema;
    case WIRE_DESCRIBE:
    case WIRE_DROP:
        return s_name;
    case WIRE_LOOKUP | WIRE_REPLY_BIT:
        return s_reply;
    case WIRE_DESCRIBE | WIRE_REPLY_BIT:
        return s_desc;
    default:
        return STRATA_OK;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t sel = size > 0 ? data[0] : 0;
    uint8_t dimb = size > 1 ? data[1] : 1;
    uint8_t mk = size > 2 ? data[2] : 0xff;
    size_t skip = size < 3 ? size : 3;
    uint32_t dim = dimb == 0      ? 0
                   : dimb == 0xff ? STRATA_DIM_MAX + 1
                   : dimb == 0xfe ? STRATA_DIM_MAX
                                  : dimb;
    uint32_t max_keys = (mk >> 1) == 127 ? UINT32_MAX : (uint32_t)(mk >> 1);
    int want_loc = mk & 1;
    size_t mis = (sel & 0x80) ? (size_t)((sel >> 2) & 7) : 0;

    size_t len = size - skip;
    /* malloc returns 16-aligned memory, so msg % 8 == mis, and the message
     * ends exactly where the allocation does (ASan sees any read past it). */
    uint8_t *base = malloc(len + 8 + mis);
    if (!base)
        fuzz_fail("out of memory", STRATA_ERR_NOMEM);
    uint8_t *msg = base + 8 + mis;
    if (len)
        memcpy(msg, data + skip, len);
    g_lo = msg;
    g_hi = msg + len;
    g_primary = fuzz_message(msg, len, sel, dim, max_keys, want_loc);
    free(base);
    return 0;
}

#ifndef STRATA_LIBFUZZER
/* --- deterministic driver (ctest) ------------------------------------------ */

#include <time.h>

#include "testutil.h"

#define PARAM_BYTES  3u
#define STATUS_SLOTS 32 /* counts indexed by -status (0 = OK) */

/** A growable input: 3 parameter bytes, then the message. */
typedef struct fbuf {
    uint8_t *p; /**< bytes; owned */
    size_t len; /**< bytes used */
    size_t cap; /**< bytes allocated */
} fbuf_t;

static void fb_reserve(fbuf_t *b, size_t n)
{
    if (b->len + n <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + n)
        cap *= 2;
    b->p = realloc(b->p, cap);
    CHECK(b->p, "out of memory");
    b->cap = cap;
}

static void fb_put(fbuf_t *b, const void *p, size_t n)
{
    fb_reserve(b, n);
    if (n)
        memcpy(b->p + b->len, p, n);
    b->len += n;
}

static void fb_zero(fbuf_t *b, size_t n)
{
    fb_reserve(b, n);
    memset(b->p + b->len, 0, n);
    b->len += n;
}

static void fb_rand(fbuf_t *b, test_rng_t *r, size_t n)
{
    fb_reserve(b, n);
    for (size_t i = 0; i < n; i++)
        b->p[b->len + i] = (uint8_t)test_rng_next(r);
    b->len += n;
}

/** Start an input: parameters and a header whose body_len is fixed up by
 *  fb_finish. */
static void fb_begin(fbuf_t *b, uint8_t sel, uint8_t dimb, uint8_t mk, uint8_t type, uint32_t count,
                     uint32_t table_id, uint32_t flags, int32_t status)
{
    b->len = 0;
    uint8_t params[PARAM_BYTES] = {sel, dimb, mk};
    fb_put(b, params, PARAM_BYTES);
    wire_hdr_t h;
    wire_hdr_init(&h, type, 0x0123456789abcdefULL, 0);
    h.count = count;
    h.table_id = table_id;
    h.flags = flags;
    h.status = status;
    fb_put(b, &h, sizeof(h));
}

static void fb_finish(fbuf_t *b)
{
    uint32_t body = (uint32_t)(b->len - PARAM_BYTES - sizeof(wire_hdr_t));
    memcpy(b->p + PARAM_BYTES + offsetof(wire_hdr_t, body_len), &body, 4);
}

static void rand_name(test_rng_t *r, char out[WIRE_NAME_BYTES])
{
    static const char chars[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-";
    memset(out, 0, WIRE_NAME_BYTES);
    size_t n = 1 + test_rng_below(r, test_rng_below(r, 8) == 0 ? STRATA_NAME_MAX : 16);
    for (size_t i = 0; i < n; i++)
        out[i] = chars[test_rng_below(r, sizeof(chars) - 1)];
}

static void rand_schema(test_rng_t *r, wire_schema_t *w)
{
    char name[WIRE_NAME_BYTES];
    rand_name(r, name);
    strata_table_schema_t s;
    memset(&s, 0, sizeof(s));
    s.field_mask = test_rng_below(r, 2) ? (uint64_t)((STRATA_SCHEMA_FIELD_NSHARDS << 1) - 1)
                                        : (uint64_t)test_rng_next(r) | 0x23; /* name dim cap */
    s.name = name;
    s.dim = 1 + (uint32_t)test_rng_below(r, 300);
    s.optimizer.field_mask = test_rng_next(r) & 0x1ff;
    s.optimizer.type = (strata_optimizer_type_t)test_rng_below(r, 6);
    s.optimizer.lr = test_rng_float(r, 0.001f, 1.0f);
    s.optimizer.eps = 1e-8f;
    s.optimizer.beta1 = 0.9f;
    s.optimizer.beta2 = 0.99f;
    s.initializer.type = (strata_init_type_t)test_rng_below(r, 5);
    s.initializer.a = -0.1f;
    s.initializer.b = 0.1f;
    s.initializer.seed = test_rng_next(r);
    s.capacity = 1 + test_rng_below(r, 1u << 30);
    s.admission_threshold = (uint32_t)test_rng_below(r, 4);
    s.eviction = (strata_eviction_t)test_rng_below(r, 4);
    s.ttl_seconds = test_rng_below(r, 2) ? 0 : test_rng_below(r, 1u << 20);
    uint32_t sps = 1 + (uint32_t)test_rng_below(r, test_rng_below(r, 4) ? 16 : STRATA_SHARDS_MAX);
    wire_encode_schema(&s, sps, w);
}

/** max_keys parameter byte for at least `count` keys (count <= 126). */
static uint8_t mk_byte(test_rng_t *r, uint32_t count, int want_loc)
{
    uint32_t mk =
        test_rng_below(r, 8) == 0 ? 127 : count + (uint32_t)test_rng_below(r, 127 - count);
    return (uint8_t)(mk << 1 | (want_loc ? 1 : 0));
}

/** A valid input of a random kind; every one must be accepted. */
static void gen_valid(test_rng_t *r, fbuf_t *b)
{
    const uint8_t R = WIRE_REPLY_BIT;
    uint8_t dimb = (uint8_t)(1 + test_rng_below(r, 24));
    uint32_t dim = dimb;
    switch (test_rng_below(r, 22)) {
    case 0: { /* HELLO */
        fb_begin(b, 0, dimb, 0xff, WIRE_HELLO, 0, 0, 0, 0);
        wire_hello_t x;
        memset(&x, 0, sizeof(x));
        x.role = (uint32_t)test_rng_below(r, 2);
        fb_put(b, &x, 8);
        fb_rand(b, r, WIRE_NONCE_BYTES);
        break;
    }
    case 1: /* AUTH */
        fb_begin(b, 0, dimb, 0xff, WIRE_AUTH, 0, 0, 0, 0);
        fb_rand(b, r, WIRE_MAC_BYTES);
        break;
    case 2: /* LIST */
        fb_begin(b, 0, dimb, 0xff, WIRE_LIST, 0, 0, 0, 0);
        break;
    case 3:
    case 4: { /* DESCRIBE, DROP: a name */
        char name[WIRE_NAME_BYTES];
        rand_name(r, name);
        fb_begin(b, 0, dimb, 0xff, test_rng_below(r, 2) ? WIRE_DESCRIBE : WIRE_DROP, 0, 0, 0, 0);
        fb_put(b, name, sizeof(name));
        break;
    }
    case 5:
    case 6: { /* LOOKUP */
        uint32_t n = (uint32_t)test_rng_below(r, 24);
        fb_begin(b, 0, dimb, mk_byte(r, n, 0), WIRE_LOOKUP, n, (uint32_t)test_rng_below(r, 9),
                 (uint32_t)test_rng_below(r, 4), 0);
        fb_rand(b, r, 8 * (size_t)n);
        break;
    }
    case 7:
    case 8: { /* PUSH */
        uint32_t n = (uint32_t)test_rng_below(r, 12);
        fb_begin(b, 0, dimb, mk_byte(r, n, 0), WIRE_PUSH, n, (uint32_t)test_rng_below(r, 9), 0, 0);
        fb_rand(b, r, 8 * (size_t)n);
        for (size_t j = 0; j < (size_t)n * dim; j++) {
            float g = test_rng_float(r, -1, 1);
            fb_put(b, &g, 4);
        }
        break;
    }
    case 9: { /* CREATE */
        wire_schema_t w;
        rand_schema(r, &w);
        fb_begin(b, 0, dimb, 0xff, WIRE_CREATE, 0, 0, 0, 0);
        fb_put(b, &w, sizeof(w));
        break;
    }
    case 10: /* STATS */
        fb_begin(b, 0, dimb, 0xff, WIRE_STATS, 0, (uint32_t)test_rng_next(r), 0, 0);
        break;
    case 11: { /* HELLO reply */
        fb_begin(b, 1, dimb, 0xff, WIRE_HELLO | R, 0, 0, 0, 0);
        wire_challenge_t c;
        memset(&c, 0, sizeof(c));
        c.nservers = 1 + (uint32_t)test_rng_below(r, 8);
        c.server_index = (uint32_t)test_rng_below(r, c.nservers);
        fb_put(b, &c, sizeof(c));
        break;
    }
    case 12: { /* AUTH reply */
        fb_begin(b, 1, dimb, 0xff, WIRE_AUTH | R, 0, 0, 0, 0);
        wire_welcome_t w = {WIRE_MSG_MAX, 4096, 64, 0};
        fb_put(b, &w, sizeof(w));
        break;
    }
    case 13: { /* LIST reply */
        uint32_t n = (uint32_t)test_rng_below(r, 5), zero = 0;
        fb_begin(b, 1, dimb, 0xff, WIRE_LIST | R, 0, 0, 0, 0);
        fb_put(b, &n, 4);
        fb_put(b, &zero, 4);
        for (uint32_t i = 0; i < n; i++) {
            wire_list_entry_t e;
            memset(&e, 0, sizeof(e));
            e.table_id = i;
            e.dim = 1 + i;
            rand_name(r, e.name);
            fb_put(b, &e, sizeof(e));
        }
        break;
    }
    case 14:
    case 15: { /* DESCRIBE reply */
        uint32_t nlocal = (uint32_t)test_rng_below(r, 5);
        uint32_t total = (nlocal ? nlocal : 1) * (1 + (uint32_t)test_rng_below(r, 4));
        fb_begin(b, 1, dimb, 0xff, WIRE_DESCRIBE | R, 0, 0, 0, 0);
        wire_table_desc_t d;
        memset(&d, 0, sizeof(d));
        d.table_id = (uint32_t)test_rng_below(r, 100);
        d.total_shards = total;
        d.nlocal = nlocal;
        d.layout_gen = test_rng_next(r);
        rand_schema(r, &d.schema);
        fb_put(b, &d, sizeof(d));
        for (uint32_t i = 0; i < nlocal; i++) {
            wire_shard_desc_t sd;
            memset(&sd, 0, sizeof(sd));
            sd.shard = (uint32_t)test_rng_below(r, total);
            sd.arena_rkey_len = 1 + (uint32_t)(test_rng_below(r, 16) == 0 ? WIRE_RKEY_MAX - 1
                                                                          : test_rng_below(r, 100));
            sd.index_rkey_len = 1 + (uint32_t)test_rng_below(r, 100);
            sd.stride = 64 * (1 + test_rng_below(r, 8));
            sd.arena_len = sd.stride * test_rng_below(r, 1000);
            sd.nbuckets = 2ull << test_rng_below(r, 30);
            sd.arena_addr = test_rng_next(r);
            sd.index_addr = test_rng_next(r);
            sd.epoch = 1 + test_rng_below(r, 10);
            fb_put(b, &sd, sizeof(sd));
            fb_rand(b, r, sd.arena_rkey_len);
            fb_zero(b, wire_pad8(sd.arena_rkey_len) - sd.arena_rkey_len);
            fb_rand(b, r, sd.index_rkey_len);
            fb_zero(b, wire_pad8(sd.index_rkey_len) - sd.index_rkey_len);
        }
        break;
    }
    case 16:
    case 17: { /* LOOKUP reply */
        uint32_t n = (uint32_t)test_rng_below(r, 20);
        int loc = (int)test_rng_below(r, 2);
        fb_begin(b, 1, dimb, mk_byte(r, 0, loc), WIRE_LOOKUP | R, n, 0, (uint32_t)test_rng_next(r),
                 0);
        for (uint32_t i = 0; i < n; i++) {
            uint8_t f = (uint8_t)test_rng_below(r, 4);
            fb_put(b, &f, 1);
        }
        fb_zero(b, wire_pad8(n) - n);
        for (uint32_t i = 0; loc && i < n; i++) {
            wire_loc_t l = {test_rng_below(r, 2) ? UINT64_MAX : test_rng_below(r, 1000),
                            (uint32_t)test_rng_next(r), (uint32_t)test_rng_below(r, 8)};
            fb_put(b, &l, sizeof(l));
        }
        for (size_t j = 0; j < (size_t)n * dim; j++) {
            float v = test_rng_float(r, -1, 1);
            fb_put(b, &v, 4);
        }
        break;
    }
    case 18: { /* PUSH, CREATE, DROP replies: empty */
        static const uint8_t types[] = {WIRE_PUSH, WIRE_CREATE, WIRE_DROP};
        uint8_t t = types[test_rng_below(r, 3)];
        fb_begin(b, 1, dimb, 0xff, (uint8_t)(t | R), t == WIRE_PUSH ? 5 : 0, 0, 0, 0);
        break;
    }
    case 19: { /* STATS reply */
        fb_begin(b, 1, dimb, 0xff, WIRE_STATS | R, 0, 7, 0, 0);
        fb_rand(b, r, sizeof(wire_stats_t));
        break;
    }
    case 20: { /* error reply of any type */
        uint8_t t = (uint8_t)(1 + test_rng_below(r, WIRE_TYPE_MAX));
        int32_t st = -1 - (int32_t)test_rng_below(r, 24);
        fb_begin(b, 1, dimb, 0xff, (uint8_t)(t | R), 0, 0, t == WIRE_LOOKUP ? 77 : 0, st);
        size_t n = test_rng_below(r, WIRE_ERRMSG_MAX + 1);
        for (size_t i = 0; i < n; i++) {
            uint8_t c = test_rng_below(r, 16) ? (uint8_t)(0x20 + test_rng_below(r, 95))
                                              : (uint8_t)test_rng_next(r);
            fb_put(b, &c, 1);
        }
        break;
    }
    default: { /* raw schema */
        wire_schema_t w;
        rand_schema(r, &w);
        b->len = 0;
        uint8_t params[PARAM_BYTES] = {2, dimb, 0xff};
        fb_put(b, params, PARAM_BYTES);
        fb_put(b, &w, sizeof(w));
        return;
    }
    }
    fb_finish(b);
    /* Mode 3 reads the direction from the type byte: the same answer. */
    if (test_rng_below(r, 4) == 0)
        b->p[0] = 3;
}

static uint32_t edge_u32(test_rng_t *r, uint32_t orig)
{
    static const uint32_t edges[] = {0,
                                     1,
                                     2,
                                     3,
                                     7,
                                     8,
                                     63,
                                     64,
                                     65,
                                     126,
                                     127,
                                     128,
                                     240,
                                     241,
                                     1023,
                                     1024,
                                     1025,
                                     4095,
                                     4096,
                                     4097,
                                     0x7fffffff,
                                     0x80000000,
                                     0xfffffffe,
                                     0xffffffff,
                                     WIRE_MSG_MAX - 32,
                                     WIRE_MSG_MAX - 31,
                                     WIRE_MSG_MAX};
    size_t n = sizeof(edges) / sizeof(edges[0]);
    uint64_t k = test_rng_below(r, n + 4);
    if (k < n)
        return edges[k];
    if (k == n)
        return orig + 1;
    if (k == n + 1)
        return orig - 1;
    if (k == n + 2)
        return orig + 8;
    return (uint32_t)test_rng_next(r);
}

static void mutate(test_rng_t *r, fbuf_t *b)
{
    uint8_t *msg;
    size_t mlen;
    int edits = 1 + (int)test_rng_below(r, 4);
    for (int e = 0; e < edits; e++) {
        msg = b->p + PARAM_BYTES;
        mlen = b->len - PARAM_BYTES;
        switch (test_rng_below(r, 9)) {
        case 0: /* flip a bit */
            if (b->len) {
                size_t i = test_rng_below(r, b->len);
                b->p[i] ^= (uint8_t)(1u << test_rng_below(r, 8));
            }
            break;
        case 1: { /* a byte to an edge value */
            static const uint8_t vals[] = {0, 0xff, 0x80, 0x7f, 1};
            if (mlen) {
                size_t i = test_rng_below(r, mlen);
                msg[i] = test_rng_below(r, 6) < 5 ? vals[test_rng_below(r, 5)]
                                                  : (uint8_t)test_rng_next(r);
            }
            break;
        }
        case 2:
        case 3: { /* a header field to an edge value */
            if (mlen < sizeof(wire_hdr_t))
                break;
            wire_hdr_t h;
            memcpy(&h, msg, sizeof(h));
            switch (test_rng_below(r, 8)) {
            case 0:
                h.magic = (uint16_t)edge_u32(r, h.magic);
                break;
            case 1:
                h.version = (uint8_t)test_rng_below(r, 4);
                break;
            case 2:
                h.type = test_rng_below(r, 2) ? (uint8_t)(h.type ^ WIRE_REPLY_BIT)
                                              : (uint8_t)test_rng_below(r, 256);
                break;
            case 3:
                h.body_len = edge_u32(r, h.body_len);
                break;
            case 4:
                h.status = (int32_t)edge_u32(r, (uint32_t)h.status);
                break;
            case 5:
                h.table_id = edge_u32(r, h.table_id);
                break;
            case 6:
                h.count = edge_u32(r, h.count);
                break;
            default:
                h.flags = edge_u32(r, h.flags);
                break;
            }
            memcpy(msg, &h, sizeof(h));
            break;
        }
        case 4: /* truncate */
            if (mlen)
                b->len = PARAM_BYTES + test_rng_below(r, mlen);
            break;
        case 5: { /* extend */
            size_t n = 1 + test_rng_below(r, 16);
            if (test_rng_below(r, 2))
                fb_zero(b, n);
            else
                fb_rand(b, r, n);
            break;
        }
        case 6: { /* delete a range of the body */
            if (mlen <= sizeof(wire_hdr_t))
                break;
            size_t at = sizeof(wire_hdr_t) + test_rng_below(r, mlen - sizeof(wire_hdr_t));
            size_t n = 1 + test_rng_below(r, mlen - at);
            memmove(msg + at, msg + at + n, mlen - at - n);
            b->len -= n;
            break;
        }
        case 7: { /* a 4-aligned u32 of the body to an edge value */
            if (mlen < sizeof(wire_hdr_t) + 4)
                break;
            size_t at = sizeof(wire_hdr_t) + 4 * test_rng_below(r, (mlen - sizeof(wire_hdr_t)) / 4);
            uint32_t v;
            memcpy(&v, msg + at, 4);
            v = edge_u32(r, v);
            memcpy(msg + at, &v, 4);
            break;
        }
        default: /* a parameter byte */
            b->p[test_rng_below(r, PARAM_BYTES)] = (uint8_t)test_rng_next(r);
            break;
        }
    }
    /* Half the time, repair body_len so the edit reaches the decoders. */
    mlen = b->len - PARAM_BYTES;
    if (mlen >= sizeof(wire_hdr_t) && test_rng_below(r, 2))
        fb_finish(b);
}

static int replay(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        FILE *f = fopen(argv[i], "rb");
        CHECK(f, "open %s", argv[i]);
        fbuf_t b = {NULL, 0, 0};
        uint8_t chunk[4096];
        size_t n;
        while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
            fb_put(&b, chunk, n);
        fclose(f);
        LLVMFuzzerTestOneInput(b.p, b.len);
        printf("%s: %s\n", argv[i], strata_status_string(g_primary));
        free(b.p);
    }
    return 0;
}

/** Write n valid inputs (a libFuzzer seed corpus) to dir. */
static int write_corpus(const char *dir, int n)
{
    test_rng_t rng;
    test_rng_seed(&rng, 1);
    fbuf_t b = {NULL, 0, 0};
    for (int i = 0; i < n; i++) {
        gen_valid(&rng, &b);
        char path[512];
        snprintf(path, sizeof(path), "%s/seed-%04d", dir, i);
        FILE *f = fopen(path, "wb");
        CHECK(f, "open %s", path);
        CHECK(fwrite(b.p, 1, b.len, f) == b.len, "write %s", path);
        fclose(f);
    }
    free(b.p);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "--write-corpus") == 0)
        return write_corpus(argv[2], 200);
    if (argc > 1)
        return replay(argc, argv);
    test_rng_t rng;
    test_rng_seed(&rng, test_seed(0x77697265ULL)); /* "wire" */
    uint64_t iters = test_scaled(200000);
    uint64_t counts[STATUS_SLOTS] = {0};
    fbuf_t b = {NULL, 0, 0};
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);

    for (uint64_t i = 0; i < iters; i++) {
        gen_valid(&rng, &b);
        if (i % 4 == 0) {
            LLVMFuzzerTestOneInput(b.p, b.len);
            CHECK(g_primary == STRATA_OK,
                  "iteration %llu: a valid message (type 0x%02x, %zu bytes) was refused: %s (%s)",
                  (unsigned long long)i, b.len > 6 ? b.p[PARAM_BYTES + 3] : 0, b.len,
                  strata_status_string(g_primary), strata_last_error());
        }
        mutate(&rng, &b);
        LLVMFuzzerTestOneInput(b.p, b.len);
        int slot = -(int)g_primary;
        CHECK(slot >= 0 && slot < STATUS_SLOTS, "status %d", (int)g_primary);
        counts[slot]++;
    }
    /* Plain garbage, short and long. */
    for (int i = 0; i < 1000; i++) {
        b.len = 0;
        fb_rand(&b, &rng, test_rng_below(&rng, 300));
        LLVMFuzzerTestOneInput(b.p, b.len);
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    free(b.p);

    printf("fuzz_wire: %llu mutants in %.2f s; outcome of the type's own decoder:\n",
           (unsigned long long)iters,
           (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec));
    for (int s = 0; s < STATUS_SLOTS; s++)
        if (counts[s])
            printf("  %-60s %llu\n", strata_status_string((strata_status_t)-s),
                   (unsigned long long)counts[s]);
    /* A mutator that no longer reaches a refusal is a broken test. */
    const strata_status_t must[] = {STRATA_OK,
                                    STRATA_ERR_TRUNCATED,
                                    STRATA_ERR_PROTOCOL,
                                    STRATA_ERR_VERSION,
                                    STRATA_ERR_TOO_LARGE,
                                    STRATA_ERR_DIM_MISMATCH,
                                    STRATA_ERR_INVALID_PARAM};
    if (iters >= 20000)
        for (size_t i = 0; i < sizeof(must) / sizeof(must[0]); i++)
            CHECK(counts[-(int)must[i]] > 0, "no mutant ended in %s",
                  strata_status_string(must[i]));
    return 0;
}
#endif /* STRATA_LIBFUZZER */
