/*
 * core/layout.h — the RDMA-readable row slot and index bucket formats.
 *
 * These byte layouts are read by remote clients with one-sided reads, so
 * they are part of the wire contract (docs/layout.md, byte by byte). All
 * fields are little-endian; the static asserts pin every offset.
 *
 * Row slot (stride = round_up(32 + 4*dim, 64) bytes, 64-byte aligned):
 *   0  u64 seq          even: stable; odd: a writer is inside
 *   8  u64 key
 *  16  u32 incarnation  bumped whenever the slot changes owner or is erased
 *  20  u32 flags        CORE_ROW_LIVE when the slot holds a row
 *  24  u64 checksum     XXH3-64 of the embedding, seeded from the header
 *  32  f32 embedding[dim]
 *
 * Bucket (64 bytes): u64 meta (bit 0: overflow) + 7 u64 entries, each 0
 * (empty) or fingerprint16 << 48 | (slot + 1).
 *
 * Write protocol (one writer per shard): write_begin makes seq odd, the
 * writer changes the row, write_end computes the checksum for the final
 * (even) seq and then publishes that seq. Readers:
 *   - local (same address space): seqlock — read seq, copy, read seq again;
 *   - remote (RDMA, possibly torn in any order): accept only if seq is even,
 *     flags has LIVE, key and incarnation match, and the checksum holds.
 *     No assumption about the order in which a NIC reads cache lines.
 */
#ifndef STRATA_CORE_LAYOUT_H
#define STRATA_CORE_LAYOUT_H

#include <stdint.h>
#include <string.h>

#include "strata.h"

#define CORE_ROW_HEADER_BYTES 32u
#define CORE_ROW_ALIGN 64u
#define CORE_ROW_LIVE 1u

#define CORE_BUCKET_BYTES 64u
#define CORE_BUCKET_ENTRIES 7u
#define CORE_BUCKET_OVERFLOW 1ull
#define CORE_ENTRY_SLOT_MASK ((1ull << 48) - 1)
#define CORE_SLOT_MAX (CORE_ENTRY_SLOT_MASK - 1) /* slot + 1 must fit 48 bits */

/** Header of a row slot; the embedding follows at offset 32. */
typedef struct core_row {
    uint64_t seq;          /**< sequence word: odd while a writer is inside */
    uint64_t key;          /**< the feature key this slot holds */
    uint32_t incarnation;  /**< bumped on every change of owner and on erase */
    uint32_t flags;        /**< CORE_ROW_LIVE while the slot holds a row */
    uint64_t checksum;     /**< see core_row_checksum */
    float emb[];           /**< dim elements */
} core_row_t;

_Static_assert(sizeof(core_row_t) == CORE_ROW_HEADER_BYTES, "row header is 32 bytes");
_Static_assert(__builtin_offsetof(core_row_t, seq) == 0, "seq at 0");
_Static_assert(__builtin_offsetof(core_row_t, key) == 8, "key at 8");
_Static_assert(__builtin_offsetof(core_row_t, incarnation) == 16, "incarnation at 16");
_Static_assert(__builtin_offsetof(core_row_t, flags) == 20, "flags at 20");
_Static_assert(__builtin_offsetof(core_row_t, checksum) == 24, "checksum at 24");
_Static_assert(__builtin_offsetof(core_row_t, emb) == 32, "embedding at 32");

/** An index bucket: one cache line. */
typedef struct core_bucket {
    uint64_t meta;                          /**< bit 0: a key of this first
                                                 choice lives in its second */
    uint64_t entry[CORE_BUCKET_ENTRIES];    /**< 0 or fp16 << 48 | (slot + 1) */
} __attribute__((aligned(64))) core_bucket_t;

_Static_assert(sizeof(core_bucket_t) == CORE_BUCKET_BYTES, "bucket is one cache line");

/** The cache line after an index's last bucket (at index base + nbuckets *
 *  64). A remote reader that found a key absent in the buckets it read
 *  checks it afterwards: retired == 0 means the index was still the
 *  shard's current one, so every insert acknowledged before the check is
 *  in it and the key is truly absent; retired == 1 means a growth replaced
 *  it (refresh the layout and ask again). */
typedef struct core_index_trailer {
    uint64_t retired;      /**< 0 while current; 1 once replaced (release store) */
    uint64_t epoch;        /**< this index's epoch */
    uint64_t nbuckets;     /**< this index's bucket count */
    uint64_t reserved[5];  /**< 0 */
} __attribute__((aligned(64))) core_index_trailer_t;

_Static_assert(sizeof(core_index_trailer_t) == CORE_BUCKET_BYTES, "trailer is one cache line");

#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "Strata's RDMA-readable layouts assume a little-endian host"
#endif

/** Bytes between consecutive row slots for a dim. */
static inline uint64_t core_row_stride(uint32_t dim)
{
    uint64_t raw = CORE_ROW_HEADER_BYTES + 4ull * dim;
    return (raw + CORE_ROW_ALIGN - 1) & ~(uint64_t)(CORE_ROW_ALIGN - 1);
}

/** Bytes a reader must fetch to validate a row (header + embedding). */
static inline uint64_t core_row_bytes(uint32_t dim)
{
    return CORE_ROW_HEADER_BYTES + 4ull * dim;
}

static inline uint64_t core_entry_make(uint16_t fp, uint64_t slot)
{
    return ((uint64_t)fp << 48) | (slot + 1);
}

static inline uint16_t core_entry_fp(uint64_t e)
{
    return (uint16_t)(e >> 48);
}

static inline uint64_t core_entry_slot(uint64_t e)
{
    return (e & CORE_ENTRY_SLOT_MASK) - 1;
}

/** Checksum of a row as it would be with the given header words:
 *  XXH3_64bits_withSeed(emb, 4*dim, seed) where
 *  seed = mix64(seq ^ mix64(key ^ mix64((u64)incarnation << 32 | flags))).
 *  Defined in layout.c; part of the wire contract. */
uint64_t core_row_checksum(uint64_t seq, uint64_t key, uint32_t incarnation, uint32_t flags,
                           const float *emb, uint32_t dim);

/* --- writer side --------------------------------------------------------- */

/** Enter the row: seq becomes odd. The release fence orders the odd seq
 *  before every later store to the row; it pairs with the acquire fence in
 *  core_row_read_local between the copy and the second seq load. */
static inline void core_row_write_begin(core_row_t *row)
{
    uint64_t s = __atomic_load_n(&row->seq, __ATOMIC_RELAXED);
    __atomic_store_n(&row->seq, s + 1, __ATOMIC_RELAXED);
    __atomic_thread_fence(__ATOMIC_RELEASE);
}

/** Leave the row: store the checksum for the final even seq, then publish
 *  that seq with release semantics (pairs with the acquire load of seq in
 *  core_row_read_local and with the remote reader's checksum test). */
static inline void core_row_write_end(core_row_t *row, uint32_t dim)
{
    uint64_t s = __atomic_load_n(&row->seq, __ATOMIC_RELAXED) + 1;
    row->checksum = core_row_checksum(s, row->key, row->incarnation, row->flags, row->emb, dim);
    __atomic_store_n(&row->seq, s, __ATOMIC_RELEASE);
}

/* --- reader side --------------------------------------------------------- */

/** Local seqlock read: copy the embedding of a row that holds key to dst.
 *  Returns 1 if the copy is a consistent snapshot of a live row for key,
 *  0 if the row holds another key or is not live, -1 if a writer raced
 *  (caller retries). The acquire load of seq pairs with write_end's
 *  release store; the acquire fence pairs with write_begin's release fence. */
static inline int core_row_read_local(const core_row_t *row, uint64_t key, float *dst,
                                      uint32_t dim, uint32_t *incarnation_out)
{
    uint64_t s1 = __atomic_load_n(&row->seq, __ATOMIC_ACQUIRE);
    if (s1 & 1)
        return -1;
    uint64_t k = row->key;
    uint32_t inc = row->incarnation;
    uint32_t fl = row->flags;
    memcpy(dst, row->emb, 4ull * dim);
    __atomic_thread_fence(__ATOMIC_ACQUIRE);
    uint64_t s2 = __atomic_load_n(&row->seq, __ATOMIC_RELAXED);
    if (s1 != s2)
        return -1;
    if (k != key || !(fl & CORE_ROW_LIVE))
        return 0;
    if (incarnation_out)
        *incarnation_out = inc;
    return 1;
}

/** Outcome of validating a row copied by a remote (one-sided) read. */
typedef enum core_row_check {
    CORE_ROW_OK = 0,        /**< consistent, live, the expected key */
    CORE_ROW_TORN = 1,      /**< odd seq or checksum mismatch: retry */
    CORE_ROW_MISMATCH = 2   /**< consistent but another key/incarnation or
                                 not live: the location is stale */
} core_row_check_t;

/** Validate a copy of a row slot (core_row_bytes(dim) bytes) taken without
 *  any synchronization. expect_incarnation UINT32_MAX accepts any. */
core_row_check_t core_row_validate(const void *copy, uint32_t dim, uint64_t expect_key,
                                   uint32_t expect_incarnation);

#endif
