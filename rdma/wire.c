/*
 * rdma/wire.c — encoders and decoders of the RPC wire format (rdma/wire.h,
 * docs/protocol.md).
 *
 * Every decoder takes untrusted bytes. Invariants kept throughout:
 *  - no byte is read before the length that covers it has been checked;
 *    sizes are computed in uint64_t from u32 fields, so no product or sum
 *    wraps (count * (8 + 4 * dim) < 2^49 once dim <= STRATA_DIM_MAX is
 *    checked; wire_lookup_reply_bytes bounds its product by division);
 *  - nothing is allocated; views point into the caller's buffer and live as
 *    long as it does;
 *  - output parameters are written only on STRATA_OK; every error leaves a
 *    sentence in strata_last_error() through core_fail;
 *  - statuses: TRUNCATED (shorter than declared), PROTOCOL (malformed: bad
 *    magic or type, trailing bytes, a non-zero reserved/padding byte, a bad
 *    name, a misaligned view), VERSION, TOO_LARGE (count over max_keys,
 *    message over WIRE_MSG_MAX), DIM_MISMATCH (PUSH sized for another dim),
 *    INVALID_PARAM (a caller's own argument is out of range).
 *
 * Alignment. The views returned are typed (const uint64_t *, const float *,
 * const wire_loc_t *, const wire_shard_desc_t *), and reading through a
 * misaligned typed pointer is undefined behaviour. UCX hands over a message
 * at whatever address it landed, in theory any; in practice the buffers
 * are 8-byte aligned. So: wire_check_hdr refuses a message that does not
 * start on an 8-byte boundary (the header is read through the pointer it
 * returns), and every decoder checks each view it returns against its
 * type's alignment and answers PROTOCOL when it is off — a caller that got
 * STRATA_OK never makes a misaligned access. A transport that can receive
 * misaligned data copies it into an aligned buffer first. Decoders read
 * the header itself with memcpy, so they are safe on any pointer.
 *
 * Decoders other than wire_check_hdr trust h->body_len: h must have passed
 * wire_check_hdr on the same bytes (that is where body_len is checked
 * against the bytes actually received).
 *
 * Threading: pure functions, except that errors write this thread's
 * strata_last_error buffer.
 */
#include "rdma/wire.h"

#include <string.h>

#include "core/init.h"
#include "core/optim.h"
#include "core/schema.h"
#include "core/status.h"

#define WIRE_HDR_BYTES ((uint64_t)sizeof(wire_hdr_t))

/* --- helpers --------------------------------------------------------------- */

/** p is a multiple of align (a power of two) — safe to read as a type of
 *  that alignment. */
static int wire_aligned(const void *p, size_t align)
{
    return ((uintptr_t)p & (align - 1)) == 0;
}

/** A copy of the header, read with memcpy so h may have any alignment. */
static wire_hdr_t wire_hdr_load(const wire_hdr_t *h)
{
    wire_hdr_t c;
    memcpy(&c, h, sizeof(c));
    return c;
}

static int wire_name_char_ok(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '.' || c == '-';
}

/** n bytes at p are all zero. */
static int wire_all_zero(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i])
            return 0;
    return 1;
}

static const char *wire_type_name(uint8_t type)
{
    static const char *const names[] = {"?",      "HELLO", "AUTH",   "LIST", "DESCRIBE",
                                        "LOOKUP", "PUSH",  "CREATE", "DROP", "STATS"};
    uint8_t t = type & (uint8_t)~WIRE_REPLY_BIT;
    return t >= 1 && t <= WIRE_TYPE_MAX ? names[t] : "?";
}

/* --- header ---------------------------------------------------------------- */

void wire_hdr_init(wire_hdr_t *h, uint8_t type, uint64_t req_id, uint32_t body_len)
{
    memset(h, 0, sizeof(*h));
    h->magic = WIRE_MAGIC;
    h->version = WIRE_VERSION;
    h->type = type;
    h->body_len = body_len;
    h->req_id = req_id;
}

/* Field rules of docs/protocol.md "Header": which types may carry a
 * non-zero table_id, count and flags. Replies follow the same rules as
 * their requests, except that a LOOKUP reply's flags carry layout_gen. */
static strata_status_t wire_check_fields(const wire_hdr_t *h, int is_reply)
{
    uint8_t t = h->type & (uint8_t)~WIRE_REPLY_BIT;
    const char *side = is_reply ? "reply" : "request";

    if (!is_reply && h->status != 0)
        return core_fail(STRATA_ERR_PROTOCOL, "wire: %s request has status %d; requests carry 0",
                         wire_type_name(t), h->status);
    if (h->table_id != 0 && t != WIRE_LOOKUP && t != WIRE_PUSH && t != WIRE_STATS)
        return core_fail(STRATA_ERR_PROTOCOL,
                         "wire: %s %s has table_id %u; only LOOKUP, PUSH and STATS carry one",
                         wire_type_name(t), side, h->table_id);
    if (h->count != 0 && t != WIRE_LOOKUP && t != WIRE_PUSH)
        return core_fail(STRATA_ERR_PROTOCOL,
                         "wire: %s %s has count %u; only LOOKUP and PUSH carry one",
                         wire_type_name(t), side, h->count);
    if (t == WIRE_LOOKUP) {
        uint32_t known = WIRE_LOOKUP_INIT_MISSING | WIRE_LOOKUP_WANT_LOC;
        if (!is_reply && (h->flags & ~known))
            return core_fail(STRATA_ERR_PROTOCOL, "wire: LOOKUP request has unknown flag bits 0x%x",
                             h->flags & ~known);
    } else if (h->flags != 0) {
        return core_fail(STRATA_ERR_PROTOCOL, "wire: %s %s has flags 0x%x; must be 0",
                         wire_type_name(t), side, h->flags);
    }
    if (is_reply && h->status < 0 && h->body_len > WIRE_ERRMSG_MAX)
        return core_fail(STRATA_ERR_PROTOCOL,
                         "wire: %s error reply carries a %u-byte message; at most %u allowed",
                         wire_type_name(t), h->body_len, WIRE_ERRMSG_MAX);
    return STRATA_OK;
}

strata_status_t wire_check_hdr(const void *msg, size_t len, int is_reply, const wire_hdr_t **hdr_p)
{
    if (len < sizeof(wire_hdr_t))
        return core_fail(STRATA_ERR_TRUNCATED,
                         "wire: message of %zu bytes is shorter than its 32-byte header", len);
    if (!msg || !hdr_p)
        return core_fail(STRATA_ERR_INVALID_PARAM, "wire_check_hdr: NULL %s",
                         msg ? "hdr_p" : "msg");
    if (!wire_aligned(msg, _Alignof(wire_hdr_t)))
        return core_fail(STRATA_ERR_PROTOCOL,
                         "wire: message at %p is not 8-byte aligned; copy it to an aligned "
                         "buffer first",
                         msg);
    const wire_hdr_t *h = msg;
    if (h->magic != WIRE_MAGIC)
        return core_fail(STRATA_ERR_PROTOCOL, "wire: bad magic 0x%04x (expected 0x%04x \"ST\")",
                         h->magic, WIRE_MAGIC);
    if (h->version != WIRE_VERSION)
        return core_fail(STRATA_ERR_VERSION,
                         "wire: protocol version %u; this build speaks version %u", h->version,
                         WIRE_VERSION);

    uint8_t t = h->type & (uint8_t)~WIRE_REPLY_BIT;
    int has_reply_bit = (h->type & WIRE_REPLY_BIT) != 0;
    if (t < 1 || t > WIRE_TYPE_MAX)
        return core_fail(STRATA_ERR_PROTOCOL, "wire: unknown message type 0x%02x", h->type);
    if (has_reply_bit != (is_reply != 0))
        return core_fail(STRATA_ERR_PROTOCOL, "wire: got a %s %s where a %s was expected",
                         wire_type_name(t), has_reply_bit ? "reply" : "request",
                         is_reply ? "reply" : "request");

    uint64_t declared = WIRE_HDR_BYTES + h->body_len;
    if (declared > WIRE_MSG_MAX || len > WIRE_MSG_MAX)
        return core_fail(STRATA_ERR_TOO_LARGE,
                         "wire: %s message of %llu bytes (%zu received) exceeds WIRE_MSG_MAX = %u",
                         wire_type_name(t), (unsigned long long)declared, len, WIRE_MSG_MAX);
    if (len < declared)
        return core_fail(STRATA_ERR_TRUNCATED,
                         "wire: %s message has %zu bytes; its header declares %llu",
                         wire_type_name(t), len, (unsigned long long)declared);
    if (len > declared)
        return core_fail(
            STRATA_ERR_PROTOCOL, "wire: %s message has %llu trailing bytes after its declared %llu",
            wire_type_name(t), (unsigned long long)(len - declared), (unsigned long long)declared);

    strata_status_t st = wire_check_fields(h, is_reply);
    if (st != STRATA_OK)
        return st;
    *hdr_p = h;
    return STRATA_OK;
}

/* --- data path --------------------------------------------------------------- */

strata_status_t wire_decode_lookup(const wire_hdr_t *h, uint32_t max_keys, const uint64_t **keys_p)
{
    wire_hdr_t hd = wire_hdr_load(h);
    if (hd.type != WIRE_LOOKUP)
        return core_fail(STRATA_ERR_PROTOCOL, "wire: type 0x%02x is not a LOOKUP request", hd.type);
    if (hd.count > max_keys)
        return core_fail(STRATA_ERR_TOO_LARGE, "wire: LOOKUP of %u keys; the session allows %u",
                         hd.count, max_keys);
    uint64_t want = 8ull * hd.count;
    if (hd.body_len != want)
        return core_fail(hd.body_len < want ? STRATA_ERR_TRUNCATED : STRATA_ERR_PROTOCOL,
                         "wire: LOOKUP body of %u bytes; %u keys need %llu", hd.body_len, hd.count,
                         (unsigned long long)want);
    const uint64_t *keys = wire_body(h);
    if (!wire_aligned(keys, _Alignof(uint64_t)))
        return core_fail(STRATA_ERR_PROTOCOL, "wire: LOOKUP keys at %p are not 8-byte aligned",
                         (const void *)keys);
    *keys_p = keys;
    return STRATA_OK;
}

strata_status_t wire_decode_push(const wire_hdr_t *h, uint32_t dim, uint32_t max_keys,
                                 const uint64_t **keys_p, const float **grads_p)
{
    wire_hdr_t hd = wire_hdr_load(h);
    if (dim < 1 || dim > STRATA_DIM_MAX)
        return core_fail(STRATA_ERR_INVALID_PARAM, "wire_decode_push: dim %u not in 1..%d", dim,
                         STRATA_DIM_MAX);
    if (hd.type != WIRE_PUSH)
        return core_fail(STRATA_ERR_PROTOCOL, "wire: type 0x%02x is not a PUSH request", hd.type);
    if (hd.count > max_keys)
        return core_fail(STRATA_ERR_TOO_LARGE, "wire: PUSH of %u keys; the session allows %u",
                         hd.count, max_keys);

    /* count < 2^32 and 8 + 4 * dim < 2^17: no overflow in 64 bits. */
    uint64_t n = hd.count, body = hd.body_len;
    uint64_t want = n * (8 + 4ull * dim);
    if (body != want) {
        /* A body that is exactly count keys and count rows of some other
         * width d >= 1 was sent for a table of another dim. */
        if (n > 0 && body > 8 * n && (body - 8 * n) % (4 * n) == 0)
            return core_fail(STRATA_ERR_DIM_MISMATCH,
                             "wire: PUSH body of %llu bytes holds %llu gradients of dim %llu; "
                             "the table's dim is %u",
                             (unsigned long long)body, (unsigned long long)n,
                             (unsigned long long)((body - 8 * n) / (4 * n)), dim);
        return core_fail(body < want ? STRATA_ERR_TRUNCATED : STRATA_ERR_PROTOCOL,
                         "wire: PUSH body of %llu bytes; %llu keys of dim %u need %llu",
                         (unsigned long long)body, (unsigned long long)n, dim,
                         (unsigned long long)want);
    }
    const uint64_t *keys = wire_body(h);
    const float *grads = (const float *)(const void *)((const uint8_t *)keys + 8 * n);
    if (!wire_aligned(keys, _Alignof(uint64_t)) || !wire_aligned(grads, _Alignof(float)))
        return core_fail(STRATA_ERR_PROTOCOL,
                         "wire: PUSH keys at %p / gradients at %p are misaligned",
                         (const void *)keys, (const void *)grads);
    *keys_p = keys;
    *grads_p = grads;
    return STRATA_OK;
}

size_t wire_lookup_reply_bytes(uint32_t count, uint32_t dim, int want_loc)
{
    /* per_key < 2^35 and count < 2^32: the product can pass 2^64, so it is
     * bounded by division first and saturates at SIZE_MAX (never a valid
     * body_len, so a comparison with it fails as it should). */
    uint64_t found = wire_pad8(count);
    uint64_t per_key = 4ull * dim + (want_loc ? sizeof(wire_loc_t) : 0);
    if (count != 0 && per_key > (UINT64_MAX - found) / count)
        return SIZE_MAX;
    uint64_t total = found + per_key * count;
    return total > SIZE_MAX ? SIZE_MAX : (size_t)total;
}

strata_status_t wire_decode_lookup_reply(const wire_hdr_t *h, uint32_t expect_count, uint32_t dim,
                                         int want_loc, wire_lookup_reply_view_t *v)
{
    wire_hdr_t hd = wire_hdr_load(h);
    if (dim < 1 || dim > STRATA_DIM_MAX)
        return core_fail(STRATA_ERR_INVALID_PARAM, "wire_decode_lookup_reply: dim %u not in 1..%d",
                         dim, STRATA_DIM_MAX);
    if (hd.type != (WIRE_LOOKUP | WIRE_REPLY_BIT))
        return core_fail(STRATA_ERR_PROTOCOL, "wire: type 0x%02x is not a LOOKUP reply", hd.type);
    if (hd.status < 0)
        return core_fail(STRATA_ERR_PROTOCOL,
                         "wire: LOOKUP reply is an error reply (status %d); read its message "
                         "with wire_decode_errmsg",
                         hd.status);
    if (hd.count != expect_count)
        return core_fail(STRATA_ERR_PROTOCOL, "wire: LOOKUP reply for %u keys; %u were asked",
                         hd.count, expect_count);
    uint64_t want = wire_lookup_reply_bytes(hd.count, dim, want_loc);
    if (hd.body_len != want)
        return core_fail(hd.body_len < want ? STRATA_ERR_TRUNCATED : STRATA_ERR_PROTOCOL,
                         "wire: LOOKUP reply body of %u bytes; %u rows of dim %u%s need %llu",
                         hd.body_len, hd.count, dim, want_loc ? " with locations" : "",
                         (unsigned long long)want);

    const uint8_t *found = wire_body(h);
    size_t found_bytes = wire_pad8(hd.count);
    for (uint32_t i = 0; i < hd.count; i++)
        if (found[i] > STRATA_ROW_NOT_ADMITTED)
            return core_fail(STRATA_ERR_PROTOCOL,
                             "wire: LOOKUP reply found[%u] = %u is not a STRATA_ROW_* value", i,
                             found[i]);
    if (!wire_all_zero(found + hd.count, found_bytes - hd.count))
        return core_fail(STRATA_ERR_PROTOCOL, "wire: LOOKUP reply found[] padding is not zero");
    const uint8_t *p = found + found_bytes;
    const wire_loc_t *loc = NULL;
    if (want_loc) {
        loc = (const wire_loc_t *)(const void *)p;
        if (!wire_aligned(loc, _Alignof(wire_loc_t)))
            return core_fail(STRATA_ERR_PROTOCOL,
                             "wire: LOOKUP reply locations at %p are not 8-byte aligned",
                             (const void *)loc);
        p += sizeof(wire_loc_t) * (size_t)hd.count;
    }
    const float *rows = (const float *)(const void *)p;
    if (!wire_aligned(rows, _Alignof(float)))
        return core_fail(STRATA_ERR_PROTOCOL,
                         "wire: LOOKUP reply rows at %p are not 4-byte aligned",
                         (const void *)rows);
    v->found = found;
    v->loc = loc;
    v->rows = rows;
    return STRATA_OK;
}

/* --- tables -------------------------------------------------------------- */

strata_status_t wire_decode_name(const char name[WIRE_NAME_BYTES], char out[WIRE_NAME_BYTES])
{
    const void *nul = memchr(name, 0, WIRE_NAME_BYTES);
    if (!nul)
        return core_fail(STRATA_ERR_PROTOCOL,
                         "wire: table name fills all %u bytes; at most %d characters and a NUL",
                         WIRE_NAME_BYTES, STRATA_NAME_MAX);
    size_t len = (size_t)((const char *)nul - name);
    if (len == 0)
        return core_fail(STRATA_ERR_PROTOCOL, "wire: table name is empty");
    for (size_t i = 0; i < len; i++)
        if (!wire_name_char_ok(name[i]))
            return core_fail(STRATA_ERR_PROTOCOL,
                             "wire: table name byte %zu is 0x%02x, not one of [A-Za-z0-9_.-]", i,
                             (unsigned)(uint8_t)name[i]);
    if (!wire_all_zero((const uint8_t *)name + len, WIRE_NAME_BYTES - len))
        return core_fail(STRATA_ERR_PROTOCOL,
                         "wire: table name has non-zero bytes after its NUL terminator");
    memcpy(out, name, WIRE_NAME_BYTES); /* the name, then zeros */
    return STRATA_OK;
}

strata_status_t wire_decode_schema(const void *body, size_t len, strata_table_schema_t *s,
                                   char name_out[WIRE_NAME_BYTES], uint32_t *shards_per_server)
{
    if (len != sizeof(wire_schema_t))
        return core_fail(len < sizeof(wire_schema_t) ? STRATA_ERR_TRUNCATED : STRATA_ERR_PROTOCOL,
                         "wire: schema of %zu bytes; it is exactly %zu", len,
                         sizeof(wire_schema_t));
    wire_schema_t w; /* copied: body may have any alignment */
    memcpy(&w, body, sizeof(w));

    char name[WIRE_NAME_BYTES];
    strata_status_t st = wire_decode_name(w.name, name);
    if (st != STRATA_OK)
        return st;
    if (w.shards_per_server < 1 || w.shards_per_server > STRATA_SHARDS_MAX)
        return core_fail(STRATA_ERR_INVALID_PARAM,
                         "wire: schema.shards_per_server = %u: must be between 1 and %d",
                         w.shards_per_server, STRATA_SHARDS_MAX);

    strata_table_schema_t r;
    memset(&r, 0, sizeof(r));
    r.field_mask = CORE_SCHEMA_ALL_FIELDS;
    r.name = name_out;
    r.dim = w.dim;
    r.elem_type = (strata_elem_type_t)w.elem_type;
    r.optimizer.field_mask = CORE_OPT_ALL_FIELDS;
    r.optimizer.type = (strata_optimizer_type_t)w.opt_type;
    r.optimizer.lr = w.lr;
    r.optimizer.eps = w.eps;
    r.optimizer.beta1 = w.beta1;
    r.optimizer.beta2 = w.beta2;
    r.optimizer.weight_decay = w.weight_decay;
    r.optimizer.initial_accumulator = w.initial_accumulator;
    r.optimizer.l1 = w.l1;
    r.optimizer.l2 = w.l2;
    r.optimizer.ftrl_beta = w.ftrl_beta;
    r.initializer.type = (strata_init_type_t)w.init_type;
    r.initializer.a = w.init_a;
    r.initializer.b = w.init_b;
    r.initializer.seed = w.init_seed;
    r.capacity = w.capacity;
    r.admission_threshold = w.admission_threshold;
    r.eviction = (strata_eviction_t)w.eviction;
    r.ttl_seconds = w.ttl_seconds;
    r.nshards = w.shards_per_server; /* the caller turns it into the local count */

    memcpy(name_out, name, WIRE_NAME_BYTES);
    *s = r;
    *shards_per_server = w.shards_per_server;
    return STRATA_OK;
}

/* The wire schema has no field_mask: the decoder marks every field as set.
 * So the encoder writes each field the caller left unset as its documented
 * default (strata.h; the same resolution core_schema_resolve applies), not
 * as 0 — a CREATE from a schema with only NAME|DIM|CAPACITY means what it
 * means locally. The required fields (name, dim, capacity) are written as
 * empty / 0 when unset, and a name longer than 63 bytes fills all 64 bytes
 * with no NUL, so the receiver refuses them instead of creating something
 * else. Nothing is validated here (the function cannot fail): callers run
 * strata_schema_validate first. */
void wire_encode_schema(const strata_table_schema_t *s, uint32_t shards_per_server,
                        wire_schema_t *w)
{
    const uint64_t fm = s->field_mask;
    memset(w, 0, sizeof(*w));
    if ((fm & STRATA_SCHEMA_FIELD_NAME) && s->name)
        memcpy(w->name, s->name, strnlen(s->name, WIRE_NAME_BYTES));
    w->dim = (fm & STRATA_SCHEMA_FIELD_DIM) ? s->dim : 0;
    w->elem_type =
        (fm & STRATA_SCHEMA_FIELD_ELEM_TYPE) ? (uint32_t)s->elem_type : (uint32_t)STRATA_ELEM_FP32;

    strata_optimizer_params_t opt_in, opt;
    memset(&opt_in, 0, sizeof(opt_in));
    if (fm & STRATA_SCHEMA_FIELD_OPTIMIZER)
        opt_in = s->optimizer;
    else
        opt_in.type = STRATA_OPT_SGD;
    core_optim_resolve(&opt_in, &opt);
    w->opt_type = (uint32_t)opt.type;
    w->lr = opt.lr;
    w->eps = opt.eps;
    w->beta1 = opt.beta1;
    w->beta2 = opt.beta2;
    w->weight_decay = opt.weight_decay;
    w->initial_accumulator = opt.initial_accumulator;
    w->l1 = opt.l1;
    w->l2 = opt.l2;
    w->ftrl_beta = opt.ftrl_beta;

    strata_initializer_t init;
    core_init_resolve(&s->initializer, (fm & STRATA_SCHEMA_FIELD_INITIALIZER) != 0, &init);
    w->init_type = (uint32_t)init.type;
    w->init_a = init.a;
    w->init_b = init.b;
    w->init_seed = init.seed;

    w->admission_threshold = (fm & STRATA_SCHEMA_FIELD_ADMISSION) ? s->admission_threshold : 0;
    w->eviction =
        (fm & STRATA_SCHEMA_FIELD_EVICTION) ? (uint32_t)s->eviction : (uint32_t)STRATA_EVICT_NONE;
    w->shards_per_server = shards_per_server;
    w->capacity = (fm & STRATA_SCHEMA_FIELD_CAPACITY) ? s->capacity : 0;
    w->ttl_seconds = (fm & STRATA_SCHEMA_FIELD_TTL) ? s->ttl_seconds : 0;
}

/** Check one shard descriptor at sd (aligned, inside the body) and its two
 *  rkeys; *off is its offset in the body and advances past the rkeys. */
static strata_status_t wire_check_shard_desc(const uint8_t *body, uint64_t body_len, uint32_t i,
                                             uint32_t total_shards, uint64_t *off)
{
    const wire_shard_desc_t *sd = (const wire_shard_desc_t *)(const void *)(body + *off);
    if (sd->reserved != 0)
        return core_fail(STRATA_ERR_PROTOCOL, "wire: DESCRIBE shard %u: reserved = %u, must be 0",
                         i, sd->reserved);
    if (sd->shard >= total_shards)
        return core_fail(STRATA_ERR_PROTOCOL,
                         "wire: DESCRIBE shard %u: global id %u is not below total_shards %u", i,
                         sd->shard, total_shards);
    if (sd->arena_rkey_len < 1 || sd->arena_rkey_len > WIRE_RKEY_MAX || sd->index_rkey_len < 1 ||
        sd->index_rkey_len > WIRE_RKEY_MAX)
        return core_fail(STRATA_ERR_PROTOCOL,
                         "wire: DESCRIBE shard %u: rkey lengths %u / %u not in 1..%u", i,
                         sd->arena_rkey_len, sd->index_rkey_len, WIRE_RKEY_MAX);
    /* A client masks bucket numbers with nbuckets - 1 and addresses slots
     * by stride (docs/layout.md); refuse values that make that arithmetic
     * meaningless. */
    if (sd->nbuckets < 2 || (sd->nbuckets & (sd->nbuckets - 1)) != 0)
        return core_fail(STRATA_ERR_PROTOCOL,
                         "wire: DESCRIBE shard %u: nbuckets %llu is not a power of two >= 2", i,
                         (unsigned long long)sd->nbuckets);
    if (sd->stride == 0 || sd->stride % 64 != 0 || sd->arena_len % sd->stride != 0)
        return core_fail(STRATA_ERR_PROTOCOL,
                         "wire: DESCRIBE shard %u: stride %llu / arena_len %llu: stride must be "
                         "a non-zero multiple of 64 that divides arena_len",
                         i, (unsigned long long)sd->stride, (unsigned long long)sd->arena_len);

    uint64_t o = *off + sizeof(wire_shard_desc_t);
    uint64_t lens[2] = {sd->arena_rkey_len, sd->index_rkey_len};
    for (int k = 0; k < 2; k++) {
        uint64_t padded = wire_pad8(lens[k]);
        if (body_len - o < padded)
            return core_fail(STRATA_ERR_TRUNCATED,
                             "wire: DESCRIBE reply ends inside shard %u's %s rkey", i,
                             k ? "index" : "arena");
        if (!wire_all_zero(body + o + lens[k], padded - lens[k]))
            return core_fail(STRATA_ERR_PROTOCOL,
                             "wire: DESCRIBE shard %u: %s rkey padding is not zero", i,
                             k ? "index" : "arena");
        o += padded;
    }
    *off = o;
    return STRATA_OK;
}

strata_status_t wire_decode_describe_reply(const wire_hdr_t *h, wire_describe_view_t *v)
{
    wire_hdr_t hd = wire_hdr_load(h);
    if (hd.type != (WIRE_DESCRIBE | WIRE_REPLY_BIT))
        return core_fail(STRATA_ERR_PROTOCOL, "wire: type 0x%02x is not a DESCRIBE reply", hd.type);
    if (hd.status < 0)
        return core_fail(STRATA_ERR_PROTOCOL,
                         "wire: DESCRIBE reply is an error reply (status %d); read its message "
                         "with wire_decode_errmsg",
                         hd.status);
    const uint8_t *body = wire_body(h);
    uint64_t body_len = hd.body_len;
    if (body_len < sizeof(wire_table_desc_t))
        return core_fail(STRATA_ERR_TRUNCATED,
                         "wire: DESCRIBE reply body of %llu bytes; its head alone is %zu",
                         (unsigned long long)body_len, sizeof(wire_table_desc_t));
    /* Every part of the body starts at a multiple of 8 from it (64-byte
     * descriptors, rkeys padded to 8), so the descriptors are aligned
     * exactly when the body is; each view is checked anyway. */
    if (!wire_aligned(body, _Alignof(wire_table_desc_t)))
        return core_fail(STRATA_ERR_PROTOCOL,
                         "wire: DESCRIBE reply body at %p is not 8-byte "
                         "aligned",
                         (const void *)body);
    const wire_table_desc_t *desc = (const wire_table_desc_t *)(const void *)body;
    if (desc->flags & ~(uint32_t)WIRE_TABLE_TIERED)
        return core_fail(STRATA_ERR_PROTOCOL, "wire: DESCRIBE reply flags 0x%x has unknown bits",
                         desc->flags);
    if (desc->total_shards < 1)
        return core_fail(STRATA_ERR_PROTOCOL, "wire: DESCRIBE reply has total_shards 0");
    if (desc->nlocal > STRATA_SHARDS_MAX || desc->nlocal > desc->total_shards)
        return core_fail(STRATA_ERR_PROTOCOL,
                         "wire: DESCRIBE reply has %u local shards; at most %d and at most "
                         "total_shards %u",
                         desc->nlocal, STRATA_SHARDS_MAX, desc->total_shards);

    /* First pass: check everything, so v is written only on success. */
    uint64_t off = sizeof(wire_table_desc_t);
    for (uint32_t i = 0; i < desc->nlocal; i++) {
        if (body_len - off < sizeof(wire_shard_desc_t))
            return core_fail(STRATA_ERR_TRUNCATED,
                             "wire: DESCRIBE reply ends inside shard descriptor %u of %u", i,
                             desc->nlocal);
        if (!wire_aligned(body + off, _Alignof(wire_shard_desc_t)))
            return core_fail(STRATA_ERR_PROTOCOL, "wire: DESCRIBE shard %u is misaligned", i);
        strata_status_t st = wire_check_shard_desc(body, body_len, i, desc->total_shards, &off);
        if (st != STRATA_OK)
            return st;
    }
    if (off != body_len)
        return core_fail(STRATA_ERR_PROTOCOL,
                         "wire: DESCRIBE reply has %llu trailing bytes after %u shards",
                         (unsigned long long)(body_len - off), desc->nlocal);

    /* Second pass: the views. */
    v->desc = desc;
    v->nlocal = desc->nlocal;
    off = sizeof(wire_table_desc_t);
    for (uint32_t i = 0; i < desc->nlocal; i++) {
        const wire_shard_desc_t *sd = (const wire_shard_desc_t *)(const void *)(body + off);
        v->shard[i] = sd;
        off += sizeof(*sd);
        v->arena_rkey[i] = body + off;
        off += wire_pad8(sd->arena_rkey_len);
        v->index_rkey[i] = body + off;
        off += wire_pad8(sd->index_rkey_len);
    }
    return STRATA_OK;
}

void wire_decode_errmsg(const wire_hdr_t *h, char *out, size_t cap)
{
    if (!out || cap == 0)
        return;
    wire_hdr_t hd = wire_hdr_load(h);
    size_t n = hd.body_len < cap - 1 ? hd.body_len : cap - 1;
    const uint8_t *b = wire_body(h);
    for (size_t i = 0; i < n; i++)
        out[i] = (b[i] >= 0x20 && b[i] < 0x7f) ? (char)b[i] : '?';
    out[n] = '\0';
}
