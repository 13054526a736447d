/*
 * rdma/wire.h — Strata's RPC wire format (protocol version 1).
 *
 * Every message is one UCX active message: a 32-byte wire_hdr_t followed by
 * hdr.body_len bytes of body. All integers and floats are little-endian
 * (the build refuses big-endian hosts, core/layout.h); every struct below
 * has fixed-width fields, explicit padding and a _Static_assert on its
 * size, so the bytes on the wire are exactly these structs.
 *
 * Requests go on WIRE_AM_REQUEST, replies on WIRE_AM_REPLY. A reply has
 * type = request type | WIRE_REPLY_BIT, echoes req_id, and carries a
 * strata_status_t in status; when status < 0 its body is a UTF-8 message
 * (no NUL, at most WIRE_ERRMSG_MAX bytes) and nothing else.
 *
 * Decoders (wire.c) take untrusted bytes and a length, check every size
 * before reading, and return views that point into the caller's buffer.
 * They never allocate. tests/fuzz_wire.c feeds them arbitrary bytes.
 *
 * docs/protocol.md describes every message, its fields and its errors.
 *
 * Threading: pure functions.
 */
#ifndef STRATA_RDMA_WIRE_H
#define STRATA_RDMA_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include "strata.h"

#define WIRE_MAGIC 0x5453u          /**< "ST" little-endian */
#define WIRE_VERSION 1u
#define WIRE_AM_REQUEST 11u         /**< UCX AM id of requests */
#define WIRE_AM_REPLY 12u           /**< UCX AM id of replies */
#define WIRE_REPLY_BIT 0x80u
#define WIRE_ERRMSG_MAX 240u        /**< longest error text in a reply */
#define WIRE_NONCE_BYTES 32u
#define WIRE_MAC_BYTES 32u          /**< HMAC-SHA256 */
#define WIRE_NAME_BYTES 64u         /**< NUL-padded table name */
#define WIRE_RKEY_MAX 4096u         /**< largest packed rkey accepted */
#define WIRE_MSG_MAX (1u << 20)     /**< largest message either side sends */

/** Message types (requests; a reply is type | WIRE_REPLY_BIT). */
typedef enum wire_type {
    WIRE_HELLO = 1,     /**< open a session: version, role, client nonce */
    WIRE_AUTH = 2,      /**< prove the shared secret */
    WIRE_LIST = 3,      /**< names of the tables served */
    WIRE_DESCRIBE = 4,  /**< a table's schema, shards, layouts and rkeys */
    WIRE_LOOKUP = 5,    /**< rows of a batch of keys (optionally creating) */
    WIRE_PUSH = 6,      /**< sparse gradients: one optimizer step per key */
    WIRE_CREATE = 7,    /**< create a table */
    WIRE_DROP = 8,      /**< drop a table */
    WIRE_STATS = 9,     /**< a table's counters */
    WIRE_TYPE_MAX = 9
} wire_type_t;

/** Header of every message. */
typedef struct wire_hdr {
    uint16_t magic;     /**< WIRE_MAGIC */
    uint8_t version;    /**< WIRE_VERSION */
    uint8_t type;       /**< wire_type_t, | WIRE_REPLY_BIT on replies */
    uint32_t body_len;  /**< bytes after this header */
    uint64_t req_id;    /**< chosen by the client, echoed in the reply */
    int32_t status;     /**< replies: strata_status_t; requests: 0 */
    uint32_t table_id;  /**< LOOKUP/PUSH/STATS: the id DESCRIBE gave; else 0 */
    uint32_t count;     /**< LOOKUP/PUSH: number of keys; else 0 */
    uint32_t flags;     /**< per type (WIRE_LOOKUP_*); else 0 */
} wire_hdr_t;
_Static_assert(sizeof(wire_hdr_t) == 32, "wire header is 32 bytes");

/* --- session --------------------------------------------------------------- */

enum {
    WIRE_ROLE_READ_ONLY = 1u << 0  /**< HELLO: this session never modifies */
};

/** HELLO body. The server answers with wire_challenge_t. */
typedef struct wire_hello {
    uint32_t role;                          /**< WIRE_ROLE_* */
    uint32_t reserved;                      /**< 0 */
    uint8_t client_nonce[WIRE_NONCE_BYTES]; /**< random */
} wire_hello_t;
_Static_assert(sizeof(wire_hello_t) == 40, "hello is 40 bytes");

/** HELLO reply body. */
typedef struct wire_challenge {
    uint8_t server_nonce[WIRE_NONCE_BYTES]; /**< random, fresh per session */
    uint32_t server_index;                  /**< this server's place in the cluster */
    uint32_t nservers;                      /**< servers in the cluster */
} wire_challenge_t;
_Static_assert(sizeof(wire_challenge_t) == 40, "challenge is 40 bytes");

/** AUTH body: mac = HMAC-SHA256(secret, "strata-auth-v1" || client_nonce ||
 *  server_nonce || role as u32 LE). */
typedef struct wire_auth {
    uint8_t mac[WIRE_MAC_BYTES];
} wire_auth_t;
_Static_assert(sizeof(wire_auth_t) == 32, "auth is 32 bytes");

/** AUTH reply body: the session's limits. */
typedef struct wire_welcome {
    uint32_t max_msg;     /**< largest message the server accepts, bytes */
    uint32_t max_keys;    /**< most keys in one LOOKUP or PUSH */
    uint32_t credits;     /**< most requests in flight per session */
    uint32_t reserved;    /**< 0 */
} wire_welcome_t;
_Static_assert(sizeof(wire_welcome_t) == 16, "welcome is 16 bytes");

/* --- tables ---------------------------------------------------------------- */

/** A table's schema on the wire (CREATE body; part of DESCRIBE's reply). */
typedef struct wire_schema {
    char name[WIRE_NAME_BYTES];  /**< NUL-padded, [A-Za-z0-9_.-]{1,63} */
    uint32_t dim;
    uint32_t elem_type;          /**< strata_elem_type_t */
    uint32_t opt_type;           /**< strata_optimizer_type_t */
    float lr, eps, beta1, beta2, weight_decay, initial_accumulator, l1, l2, ftrl_beta;
    uint32_t init_type;          /**< strata_init_type_t */
    float init_a, init_b;
    uint32_t admission_threshold;
    uint32_t eviction;           /**< strata_eviction_t */
    uint32_t shards_per_server;  /**< writer shards on each server, >= 1 */
    uint64_t init_seed;
    uint64_t capacity;           /**< rows in the whole cluster */
    uint64_t ttl_seconds;
} wire_schema_t;
_Static_assert(sizeof(wire_schema_t) == 160, "schema is 160 bytes");

/** One shard's one-sided layout (DESCRIBE reply, after wire_table_desc_t;
 *  the packed rkeys follow each, arena then index, each padded to 8). */
typedef struct wire_shard_desc {
    uint32_t shard;          /**< global shard id: key k lives in shard
                                  strata_key_shard(k, total_shards) */
    uint32_t arena_rkey_len; /**< bytes of the packed arena rkey */
    uint32_t index_rkey_len; /**< bytes of the packed index rkey */
    uint32_t reserved;       /**< 0 */
    uint64_t arena_addr;     /**< server virtual address of slot 0 */
    uint64_t arena_len;      /**< bytes: capacity * stride */
    uint64_t index_addr;     /**< server virtual address of bucket 0 */
    uint64_t nbuckets;       /**< power of two */
    uint64_t epoch;          /**< index epoch: bumped by each growth */
    uint64_t stride;         /**< bytes per row slot */
} wire_shard_desc_t;
_Static_assert(sizeof(wire_shard_desc_t) == 64, "shard desc is 64 bytes");

enum {
    /** The table has a tier below DRAM (NVMe): a key absent from the DRAM
     *  index may still exist, so a one-sided reader asks the server. */
    WIRE_TABLE_TIERED = 1u << 0
};

/** DESCRIBE reply body head. */
typedef struct wire_table_desc {
    uint32_t table_id;      /**< use in LOOKUP/PUSH/STATS headers */
    uint32_t total_shards;  /**< shards of the table in the whole cluster */
    uint32_t nlocal;        /**< wire_shard_desc_t entries that follow */
    uint32_t flags;         /**< WIRE_TABLE_* */
    uint64_t layout_gen;    /**< sum of the local shards' epochs */
    wire_schema_t schema;   /**< resolved schema */
} wire_table_desc_t;
_Static_assert(sizeof(wire_table_desc_t) == 184, "table desc is 184 bytes");

/** LIST reply: u32 count, u32 0, then count wire_list_entry_t. */
typedef struct wire_list_entry {
    uint32_t table_id;
    uint32_t dim;
    char name[WIRE_NAME_BYTES];
} wire_list_entry_t;
_Static_assert(sizeof(wire_list_entry_t) == 72, "list entry is 72 bytes");

/* --- data path ------------------------------------------------------------- */

enum {
    WIRE_LOOKUP_INIT_MISSING = 1u << 0, /**< create absent keys (not read-only) */
    WIRE_LOOKUP_WANT_LOC = 1u << 1      /**< reply carries locations */
};

/** Location of a row for a client's cache (LOOKUP reply with WANT_LOC). */
typedef struct wire_loc {
    uint64_t slot;         /**< row slot in its shard's arena; UINT64_MAX: none */
    uint32_t incarnation;  /**< the slot's incarnation when read */
    uint32_t shard;        /**< global shard id */
} wire_loc_t;
_Static_assert(sizeof(wire_loc_t) == 16, "loc is 16 bytes");

/* LOOKUP request body: u64 keys[count].
 * LOOKUP reply body (status >= 0, count echoed):
 *   u8 found[count] (STRATA_ROW_*), zero-padded to a multiple of 8;
 *   wire_loc_t loc[count] when the request had WANT_LOC;
 *   f32 rows[count * dim].
 *   hdr.flags of the reply = low 32 bits of the table's layout_gen.
 * PUSH request body: u64 keys[count], f32 grads[count * dim].
 * PUSH reply: count = keys applied, empty body.
 * STATS reply body: wire_stats_t. */

typedef struct wire_stats {
    uint64_t v[15];         /**< strata_table_stats_t fields in declaration order */
    uint64_t server_cpu_ns; /**< the server process's CPU time (user + system) */
    uint64_t tier[8];       /**< strata_tier_stats_t fields in declaration order
                                 (zeros for a table without tiers) */
} wire_stats_t;
_Static_assert(sizeof(wire_stats_t) == 192, "stats is 192 bytes");

/* --- encoders and decoders (wire.c) ---------------------------------------- */

static inline size_t wire_pad8(size_t n)
{
    return (n + 7) & ~(size_t)7;
}

/** Fill a header. */
void wire_hdr_init(wire_hdr_t *h, uint8_t type, uint64_t req_id, uint32_t body_len);

/** Check a received message's header: magic, version, type, body_len ==
 *  len - 32, and len <= WIRE_MSG_MAX. is_reply selects which types are
 *  allowed. Returns OK, TRUNCATED (shorter than a header or than its
 *  body_len), PROTOCOL (bad magic or type, trailing bytes), VERSION,
 *  TOO_LARGE. On success *hdr_p points into msg. */
strata_status_t wire_check_hdr(const void *msg, size_t len, int is_reply,
                               const wire_hdr_t **hdr_p);

/** A LOOKUP request's keys. PROTOCOL/TRUNCATED unless body_len == 8*count.
 *  TOO_LARGE when count > max_keys. */
strata_status_t wire_decode_lookup(const wire_hdr_t *h, uint32_t max_keys, const uint64_t **keys_p);

/** A PUSH request: keys and grads. body_len must be count*(8 + 4*dim). */
strata_status_t wire_decode_push(const wire_hdr_t *h, uint32_t dim, uint32_t max_keys,
                                 const uint64_t **keys_p, const float **grads_p);

/** Bytes of a LOOKUP reply body for count keys. */
size_t wire_lookup_reply_bytes(uint32_t count, uint32_t dim, int want_loc);

/** Views into a LOOKUP reply; body_len must equal wire_lookup_reply_bytes. */
typedef struct wire_lookup_reply_view {
    const uint8_t *found;
    const wire_loc_t *loc;  /**< NULL without WANT_LOC */
    const float *rows;
} wire_lookup_reply_view_t;
strata_status_t wire_decode_lookup_reply(const wire_hdr_t *h, uint32_t expect_count,
                                         uint32_t dim, int want_loc,
                                         wire_lookup_reply_view_t *v);

/** A table name: NUL-padded in WIRE_NAME_BYTES, 1..63 allowed characters,
 *  zeros after the first NUL. Copies it (NUL-terminated) to out[64]. */
strata_status_t wire_decode_name(const char name[WIRE_NAME_BYTES], char out[WIRE_NAME_BYTES]);

/** CREATE body (exactly one wire_schema_t) to a schema whose name points
 *  at name_out. Range checks are left to strata_schema_validate. */
strata_status_t wire_decode_schema(const void *body, size_t len, strata_table_schema_t *s,
                                   char name_out[WIRE_NAME_BYTES], uint32_t *shards_per_server);
void wire_encode_schema(const strata_table_schema_t *s, uint32_t shards_per_server,
                        wire_schema_t *w);

/** Views into a DESCRIBE reply. Shard i's rkeys are at arena_rkey[i] and
 *  index_rkey[i]; every length is checked against the body and
 *  WIRE_RKEY_MAX, and nlocal against max_shards (the views' capacity). */
typedef struct wire_describe_view {
    const wire_table_desc_t *desc;
    uint32_t nlocal;
    const wire_shard_desc_t *shard[STRATA_SHARDS_MAX];
    const void *arena_rkey[STRATA_SHARDS_MAX];
    const void *index_rkey[STRATA_SHARDS_MAX];
} wire_describe_view_t;
strata_status_t wire_decode_describe_reply(const wire_hdr_t *h, wire_describe_view_t *v);

/** An error reply's text, copied NUL-terminated into out (cap bytes). */
void wire_decode_errmsg(const wire_hdr_t *h, char *out, size_t cap);

/** The body of a message (just after its header). */
static inline const void *wire_body(const wire_hdr_t *h)
{
    return (const uint8_t *)h + sizeof(*h);
}

#endif
