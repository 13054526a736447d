/*
 * hierarchy/tier.h — the tier manager of one shard: a DRAM core shard over
 * the NVMe store, an optional level above (HBM), and one score that decides
 * what lives where.
 *
 * Placement:
 *  - DRAM holds at most dram.capacity rows (the DRAM budget); the NVMe
 *    store holds every row that was ever demoted, and a copy of rows
 *    promoted from it (inclusive: a clean row leaves DRAM without a write).
 *  - Each DRAM row has a score (hier_policy_t): LRU = last access (reads
 *    through the tier and writes), LFU = access count (halved each time
 *    DRAM has turned over ten times, so old popularity fades), SCORE = the user's
 *    score, CUSTOM = a callback over the row's access information.
 *  - When DRAM is over budget, a demotion pass finds the lowest-scored rows
 *    (exactly, over the shard) and moves a batch of them (demote_fraction
 *    of the budget, so passes are rare): dirty rows are written back to
 *    NVMe first, clean rows are just dropped from DRAM.
 *  - A lookup that misses DRAM reads the NVMe tier (batched, io_uring at
 *    the store's queue depth). Under LRU the row is always promoted; under
 *    LFU/SCORE/CUSTOM only when its score reaches the cutoff of the last
 *    demotion pass (LFU counts repeated NVMe reads in a sketch), so one-off
 *    reads of cold rows do not flush the DRAM.
 *  - A push (hier_tier_apply) to an NVMe-resident row always promotes it
 *    (one page read brings embedding and optimizer state together), then
 *    the optimizer runs in DRAM and the row is dirty. Rows being written
 *    are hot by definition; a read-modify-write on NVMe would cost a page
 *    write per update.
 *  - TTL (dram.ttl_ns) applies in both tiers: an expired row reads absent
 *    anywhere; hier_tier_expire reclaims it in both.
 *  - Durability: hier_tier_flush writes back every dirty row and syncs the
 *    NVMe store; after it returns OK every row reads back after a crash
 *    (kill -9) and restart. Rows changed after the last flush live in DRAM
 *    only (replication covers them, docs/tiers.md).
 *
 * The DRAM shard is created with eviction NONE: the tier makes room before
 * every insert, so the shard never drops a row by itself (it would fail
 * with FULL instead). Its metadata (core_slot_meta_t) carries write time
 * (TTL) and user score; the tier keeps access time, count and a dirty bit
 * per slot beside it.
 *
 * Threading: the shard's writer rule. Every call except hier_tier_get_stats
 * and hier_tier_dram (and lock-free core reads of that shard) comes from
 * the one writer thread (the server's service thread).
 */
#ifndef STRATA_HIERARCHY_TIER_H
#define STRATA_HIERARCHY_TIER_H

#include <stddef.h>
#include <stdint.h>

#include "core/shard.h"
#include "hierarchy/nvme.h"
#include "strata.h"

typedef struct hier_tier hier_tier_t;

typedef enum hier_policy {
    HIER_POLICY_LRU = 0,    /**< last access, read or write */
    HIER_POLICY_LFU = 1,    /**< access count, aged */
    HIER_POLICY_SCORE = 2,  /**< user score (hier_tier_set_scores) */
    HIER_POLICY_CUSTOM = 3  /**< score_cb */
} hier_policy_t;

/** What the tier knows about a row; given to score callbacks and to the
 *  level above. */
typedef struct hier_row_info {
    uint64_t key;             /**< the row's key */
    uint64_t last_access_ns;  /**< last read through the tier or write */
    uint64_t last_write_ns;   /**< last write (TTL clock) */
    uint32_t freq;            /**< access count (aged under LFU) */
    float score;              /**< user score */
} hier_row_info_t;

/** Custom score: higher keeps the row in the faster tier. Pure; called on
 *  the writer thread during demotion passes and promotion decisions. */
typedef double (*hier_score_cb_t)(void *arg, const hier_row_info_t *info);

/** A level above DRAM (the HBM tier, gpu/): an inclusive cache the manager
 *  consults first and feeds. The level owns its memory and policy. Every
 *  callback runs on the tier's writer thread. */
typedef struct hier_level_ops {
    const char *name;  /**< for stats and logs, e.g. "hbm" */
    /** Copy the rows the level holds to out[i*dim ..], hit[i] = 1, else 0;
     *  returns the hits. */
    size_t (*lookup)(void *level, const uint64_t *keys, size_t n, float *out, uint8_t *hit);
    /** Rows just read from DRAM or NVMe (rows[i*dim ..]); the level may keep
     *  any of them (it must copy). */
    void (*offer)(void *level, const uint64_t *keys, size_t n, const float *rows,
                  const hier_row_info_t *info);
    /** These keys changed or left below: drop (or refresh) the level's copies. */
    void (*invalidate)(void *level, const uint64_t *keys, size_t n);
} hier_level_ops_t;

enum {
    HIER_LOOKUP_CREATE = 1u << 0  /**< create absent rows (STRATA_LOOKUP_INIT_MISSING) */
};

typedef struct hier_tier_config {
    core_shard_config_t dram;      /**< the DRAM shard: capacity is the DRAM budget in
                                        rows (>= 2); eviction is ignored (the tier
                                        moves rows); ttl_ns applies to both tiers */
    hier_nvme_config_t nvme;       /**< the NVMe store: dir required (NULL: no NVMe
                                        tier, demotion drops rows); value_bytes is set
                                        by the tier (embedding + optimizer state) */
    hier_policy_t policy;          /**< default LRU */
    hier_score_cb_t score_cb;      /**< CUSTOM only */
    void *score_arg;               /**< passed to score_cb; borrowed */
    double demote_fraction;        /**< share of the budget freed per pass; 0: 1/32 */
    const hier_level_ops_t *upper; /**< level above DRAM or NULL; borrowed */
    void *upper_arg;               /**< its handle; borrowed */
} hier_tier_config_t;

typedef struct hier_tier_stats {
    uint64_t upper_hits, upper_misses;  /**< keys served / not by the level above */
    uint64_t dram_hits, dram_misses;    /**< keys found / not in DRAM (lookups) */
    uint64_t nvme_hits, nvme_misses;    /**< DRAM misses found / absent on NVMe */
    uint64_t promotions;                /**< rows moved NVMe -> DRAM */
    uint64_t served_from_nvme;          /**< NVMe hits not promoted (below the cutoff) */
    uint64_t demotions;                 /**< rows moved out of DRAM */
    uint64_t writebacks;                /**< dirty rows written to NVMe (demotion, flush) */
    uint64_t clean_drops;               /**< clean rows dropped from DRAM (copy on NVMe) */
    uint64_t created;                   /**< rows created */
    uint64_t demote_passes;             /**< demotion passes */
    uint64_t corrupt_rows;              /**< NVMe rows refused (CORRUPT / IO) */
    uint64_t dram_rows, dram_capacity;  /**< rows in DRAM now, its budget */
    uint64_t dirty_rows;                /**< DRAM rows not yet on NVMe (at the last flush
                                             or pass; approximate) */
    core_shard_stats_t dram;            /**< the shard's own counters */
    hier_nvme_stats_t nvme;             /**< the store's (zeros without NVMe) */
} hier_tier_stats_t;

/** Create the DRAM shard and open (recover) the NVMe store. Rows already
 *  on NVMe are served from there. On success *tier_p is the caller's.
 *  Errors: those of core_shard_create and hier_nvme_open. */
strata_status_t hier_tier_create(const hier_tier_config_t *cfg, hier_tier_t **tier_p);

/** Free everything. Does not flush: call hier_tier_flush first to keep
 *  dirty rows. NULL is a no-op. */
void hier_tier_destroy(hier_tier_t *tier);

/** Batched lookup over the tiers (the server's LOOKUP). As
 *  core_shard_find_or_insert: item i is keys[idx[i]] (idx NULL: i), its
 *  row goes to out[pos*dim ..] and found[pos] (optional) gets a
 *  STRATA_ROW_* code. Without HIER_LOOKUP_CREATE absent keys get the
 *  initializer's values and MISSING. Errors: CORRUPT / IO (a row's NVMe
 *  page failed: its out row holds the initializer's values and found
 *  MISSING; every other row is served), NO_SPACE (a demotion could not
 *  write back: nothing was dropped), NOMEM. */
strata_status_t hier_tier_lookup(hier_tier_t *tier, const uint64_t *keys, const uint32_t *idx,
                                 size_t n, float *out, uint8_t *found, uint64_t now_ns,
                                 uint32_t flags);

/** One optimizer step per key (the server's PUSH); NVMe-resident rows are
 *  promoted first. Errors: as lookup; on CORRUPT/IO/NO_SPACE nothing of
 *  the batch (chunk) is applied. */
strata_status_t hier_tier_apply(hier_tier_t *tier, const uint64_t *keys, const uint32_t *idx,
                                const float *grads, size_t n, uint64_t now_ns);

/** Overwrite or create rows (state reset), as core_shard_assign. */
strata_status_t hier_tier_assign(hier_tier_t *tier, const uint64_t *keys, const uint32_t *idx,
                                 const float *rows, size_t n, uint64_t now_ns);

/** Remove keys from every tier. *erased (optional) gets how many existed. */
strata_status_t hier_tier_erase(hier_tier_t *tier, const uint64_t *keys, const uint32_t *idx,
                                size_t n, size_t *erased);

/** Set user scores (STRATA_EVICT_SCORE / HIER_POLICY_SCORE); NVMe-resident
 *  rows are rewritten with the new score. */
strata_status_t hier_tier_set_scores(hier_tier_t *tier, const uint64_t *keys,
                                     const uint32_t *idx, const float *scores, size_t n,
                                     uint64_t now_ns);

/** Remove expired rows from DRAM and NVMe. *expired (optional): count. */
strata_status_t hier_tier_expire(hier_tier_t *tier, uint64_t now_ns, size_t *expired);

/** Write back every dirty DRAM row and sync the NVMe store: afterwards
 *  every row survives a crash. Errors: NO_SPACE, IO. */
strata_status_t hier_tier_flush(hier_tier_t *tier);

/** Rows demoted from the level above (rows it owned and changed): stored
 *  in DRAM as dirty rows (making room as needed). state may be NULL
 *  (fresh optimizer state), info may be NULL. */
strata_status_t hier_tier_accept(hier_tier_t *tier, const uint64_t *keys, size_t n,
                                 const float *emb, const float *state,
                                 const hier_row_info_t *info, uint64_t now_ns);

/** Called by hier_tier_iterate once per row; nonzero stops. */
typedef int (*hier_tier_iter_cb_t)(void *arg, uint64_t key, const float *emb,
                                   const float *state, const hier_row_info_t *info);

/** Visit every row of every tier once (DRAM first, then NVMe rows not in
 *  DRAM): a snapshot of the whole table. Errors: CORRUPT, IO. */
strata_status_t hier_tier_iterate(hier_tier_t *tier, hier_tier_iter_cb_t cb, void *arg);

/** The DRAM shard (layout for DESCRIBE, lock-free reads of DRAM rows).
 *  Borrowed; lives as long as the tier. Any thread. */
core_shard_t *hier_tier_dram(hier_tier_t *tier);

/** 1 if the tier has an NVMe store. */
int hier_tier_has_nvme(const hier_tier_t *tier);

/** The NVMe store (NULL without one), for its counters and for tests.
 *  Borrowed; the tier's writer rule applies to it. */
hier_nvme_t *hier_tier_nvme(hier_tier_t *tier);

/** Counters; any thread. */
void hier_tier_get_stats(hier_tier_t *tier, hier_tier_stats_t *stats);

/** Check the tier's invariants (the shard's, DRAM within budget, slot
 *  bookkeeping). INTERNAL with a sentence on the first violation. */
strata_status_t hier_tier_check(hier_tier_t *tier);

#endif
