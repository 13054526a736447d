/*
 * core/shard.h — one shard of a table in DRAM: the row arena, the index,
 * optimizer state, per-slot metadata, admission sketch, eviction and TTL.
 *
 * Memory (each a core_region_t; arena and index are RDMA-readable):
 *   arena  capacity row slots of core_row_stride(dim) bytes (layout.h);
 *          reserved once for the capacity, never moves
 *   index  nbuckets core_bucket_t; replaced by one twice as large when it
 *          fills (growth), published with a new epoch
 *   state  capacity * state_floats floats (optimizer state), never read
 *          by clients
 *   meta   capacity core_slot_meta_t (last write time, frequency, score)
 *
 * Writer rule: exactly one thread at a time calls the writer functions
 * (marked "writer") on a shard — the server's shard thread, or the holder of
 * the table's per-shard lock. Readers (core_shard_lookup, core_lookup_batch)
 * are lock-free and may run on any number of threads at any time: rows are
 * read under the row seqlock, and retired indexes are freed only after an
 * RCU grace period (liburcu-bp), so a reader never touches freed memory.
 *
 * Scores (LRU time, LFU count) are updated by writer calls only — creating,
 * assigning or applying a gradient to a row — never by lock-free reads, so
 * reads never write shared cache lines. A shard with no eviction policy
 * and no TTL sets them when a row is created and then leaves them alone:
 * nothing reads them, and each update would cost a cache line.
 */
#ifndef STRATA_CORE_SHARD_H
#define STRATA_CORE_SHARD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/alloc.h"
#include "core/layout.h"
#include "strata.h"

/** Writer-side bookkeeping for a slot (not RDMA-readable). */
typedef struct core_slot_meta {
    uint64_t last_write_ns; /**< last create/assign/apply, clock ns (LRU, TTL) */
    uint32_t freq;          /**< writes, saturating (LFU) */
    float score;            /**< user score (STRATA_EVICT_SCORE) */
} core_slot_meta_t;

_Static_assert(sizeof(core_slot_meta_t) == 16, "slot meta is 16 bytes");

typedef struct core_shard_config {
    uint32_t dim;                         /**< elements per row */
    uint64_t capacity;                    /**< most rows, >= 1 */
    strata_optimizer_params_t optimizer;  /**< resolved (core_optim_resolve) */
    strata_initializer_t initializer;     /**< resolved (core_init_resolve) */
    uint32_t admission_threshold;         /**< 0/1: admit at once */
    strata_eviction_t eviction;
    uint64_t ttl_ns;                      /**< 0: no TTL */
    int huge_pages;                       /**< ask for 2 MiB pages */
    uint64_t initial_buckets;             /**< 0: sized for min(capacity, 64K) rows */
    const core_region_ops_t *arena_ops;   /**< NULL: core_region_ops_default;
                                               used for arena and index */
    uint64_t seed;                        /**< eviction sampling seed */
} core_shard_config_t;

/** What a remote reader needs to read this shard one-sided. */
typedef struct core_shard_layout {
    const core_region_t *arena;  /**< row slots */
    const core_region_t *index;  /**< buckets */
    uint64_t stride;             /**< bytes per row slot */
    uint64_t nbuckets;           /**< power of two */
    uint64_t epoch;              /**< bumped on every index replacement */
    uint64_t capacity;           /**< row slots in the arena */
} core_shard_layout_t;

typedef struct core_shard_stats {
    uint64_t rows, capacity, nbuckets, epoch;
    uint64_t lookups, lookup_hits, inserts, updates, evictions, expirations;
    uint64_t not_admitted, torn_retries;
    uint64_t bytes_rows, bytes_state, bytes_index;
} core_shard_stats_t;

typedef struct core_shard core_shard_t;

/** Create an empty shard. Errors: INVALID_PARAM (capacity 0 or beyond
 *  CORE_SLOT_MAX, dim out of range), NOMEM. */
strata_status_t core_shard_create(const core_shard_config_t *config, core_shard_t **shard_p);
void core_shard_destroy(core_shard_t *shard);

uint32_t core_shard_dim(const core_shard_t *shard);
const core_shard_config_t *core_shard_config(const core_shard_t *shard);

/* --- lock-free readers (any thread) ------------------------------------- */

/** Batched read of keys routed over shards[nshards] by strata_key_shard
 *  (nshards 1: every key is in shards[0]). Found rows are copied to
 *  out[i*dim]; absent or expired keys get the initializer's values and
 *  found[i] = STRATA_ROW_MISSING (found may be NULL). The batch is
 *  software-pipelined: bucket and row cache lines are prefetched several
 *  keys ahead. now_ns is used for TTL (0: ignore TTL). Returns the number
 *  of keys found. All shards must share dim and initializer. */
size_t core_lookup_batch(core_shard_t *const *shards, uint32_t nshards, const uint64_t *keys,
                         size_t n, float *out, uint8_t *found, uint64_t now_ns);

/** Single-key read: 1 and the row in out if present, else 0. */
int core_shard_find(core_shard_t *shard, uint64_t key, float *out, uint64_t now_ns);

/** Location of key (slot and incarnation) for a client's location cache;
 *  0 if absent. */
int core_shard_locate(core_shard_t *shard, uint64_t key, uint64_t *slot, uint32_t *incarnation);

/* --- writer ------------------------------------------------------------- */

/* The batch writers take an optional idx[n]: when given, item i of the call
 * is keys[idx[i]] with its data at position idx[i] of every array (so a
 * table routes one user batch over shards without copying); NULL means
 * idx[i] = i. */

/** Lookup that creates absent keys. When count_sighting, each absent key
 *  counts as a sighting in the admission sketch; a key whose estimate is
 *  below the threshold gets initializer values and STRATA_ROW_NOT_ADMITTED.
 *  found (optional) gets FOUND / CREATED / NOT_ADMITTED per key; out
 *  (optional) gets the rows. On error (FULL, NOMEM) keys before the failing
 *  one are done; found/out for the rest are unspecified. */
strata_status_t core_shard_find_or_insert(core_shard_t *shard, const uint64_t *keys,
                                          const uint32_t *idx, size_t n, float *out,
                                          uint8_t *found, uint64_t now_ns, bool count_sighting);

/** One optimizer step per key (grads: n*dim). Absent keys are created if
 *  the sketch admits them (not counting a sighting), else skipped and
 *  counted as not admitted. Gradients must already be checked finite. */
strata_status_t core_shard_apply(core_shard_t *shard, const uint64_t *keys, const uint32_t *idx,
                                 const float *grads, size_t n, uint64_t now_ns);

/** Overwrite or create rows; state reset to the optimizer's initial. */
strata_status_t core_shard_assign(core_shard_t *shard, const uint64_t *keys, const uint32_t *idx,
                                  const float *rows, size_t n, uint64_t now_ns);

/** Remove keys; returns how many were present. */
size_t core_shard_erase(core_shard_t *shard, const uint64_t *keys, const uint32_t *idx, size_t n);

/** Set user scores of present keys. */
void core_shard_set_scores(core_shard_t *shard, const uint64_t *keys, const uint32_t *idx,
                           const float *scores, size_t n);

/** Remove rows whose last write is older than the TTL; returns the count. */
size_t core_shard_expire(core_shard_t *shard, uint64_t now_ns);

/** Called for each live row by core_shard_iterate; nonzero stops. state
 *  has core_optim_state_floats floats. */
typedef int (*core_shard_iter_cb_t)(void *arg, const core_row_t *row, const float *state,
                                    const core_slot_meta_t *meta);

/** Visit every live row in slot order. Writer. Returns 1 if cb stopped. */
int core_shard_iterate(core_shard_t *shard, core_shard_iter_cb_t cb, void *arg);

/** Insert a row with given embedding, state and metadata (snapshot load).
 *  Bypasses admission; EXISTS if the key is present, FULL at capacity. */
strata_status_t core_shard_restore_row(core_shard_t *shard, uint64_t key, const float *emb,
                                       const float *state, const core_slot_meta_t *meta);

/** Check every invariant: each live row is indexed exactly once under its
 *  key's buckets, every index entry points at a live row with a matching
 *  fingerprint, checksums hold, counts agree. INTERNAL with a description
 *  on the first violation. Writer (or no concurrent writer). */
strata_status_t core_shard_check(core_shard_t *shard);

/* --- any thread ---------------------------------------------------------- */

void core_shard_get_stats(core_shard_t *shard, core_shard_stats_t *stats);
uint64_t core_shard_rows(const core_shard_t *shard);

/** Mark the shard's current index retired (its trailer's retired word),
 *  so remote readers holding its layout stop trusting it: call before
 *  destroying a shard that remote clients may have mapped. Writer. */
void core_shard_retire(core_shard_t *shard);

/** The layout a remote reader needs. Writer only: the index it describes
 *  is replaced (and the old one freed) by the writer's next growth. */
void core_shard_get_layout(core_shard_t *shard, core_shard_layout_t *layout);

#endif
