/*
 * core/shard.c — one DRAM shard: row arena, RDMA-readable index, optimizer
 * state, admission, eviction and TTL.
 *
 * Invariants (checked by core_shard_check):
 *  - every live slot (flags & LIVE) is referenced by exactly one index
 *    entry, in its key's first bucket, or in its second bucket when the
 *    first has the overflow bit set;
 *  - an entry's fingerprint is core_fingerprint(core_key_hash(row key));
 *  - slots in [0, hwm) are live or on the free stack; none beyond hwm is used;
 *  - rows == number of live slots <= capacity.
 *
 * Index growth: when an insert finds both buckets full, or the load passes
 * 3/4, the writer builds an index twice as large from the old one (which it
 * alone writes, so the copy is exact), publishes it with a release store and
 * a new epoch, waits one RCU grace period (readers hold urcu-bp read locks
 * for a batch) and frees the old region. Readers never stop: they finish on
 * the old index, which stays complete and valid until freed.
 *
 * Threading: see core/shard.h — one writer, lock-free readers.
 */
#include "core/shard.h"

#include <math.h>
#include <sched.h>
#include <string.h>
#include <urcu-bp.h>

#include "core/hash.h"
#include "core/init.h"
#include "core/optim.h"
#include "core/sketch.h"
#include "core/status.h"

/* Keys between the bucket prefetch and the row prefetch, and between the
 * row prefetch and the copy: enough misses in flight to cover DRAM latency
 * (~100 ns) at a few ns of work per key. */
#define PIPE_DIST 16
#define PIPE_RING (4 * PIPE_DIST) /* power of two > 2 * PIPE_DIST */

/* Eviction samples this many random live slots and evicts the lowest score. */
#define EVICT_SAMPLES 16

/* Lock-free reads spin this many times on a row a writer is inside before
 * yielding the CPU (the writer may have been preempted). */
#define READ_SPINS 64

/* Position of a batch writer's item i (see core/shard.h). */
#define ITEM(idx, i) ((idx) ? (size_t)(idx)[i] : (size_t)(i))

/* Relaxed atomic counter helpers: stats are read from any thread. */
#define STAT_ADD(field, v) __atomic_fetch_add(&(field), (v), __ATOMIC_RELAXED)
#define STAT_GET(field) __atomic_load_n(&(field), __ATOMIC_RELAXED)

typedef struct core_index {
    core_region_t region;    /**< the buckets' memory */
    core_bucket_t *buckets;  /**< region.base */
    uint64_t nbuckets;       /**< power of two */
    uint64_t epoch;          /**< 1 for the first index, +1 per replacement */
} core_index_t;

struct core_shard {
    core_shard_config_t cfg;      /**< copy of the creation config */
    const core_region_ops_t *ops; /**< provider of arena and index regions */
    uint64_t stride;              /**< bytes per row slot */
    uint32_t state_floats;        /**< optimizer state floats per row */
    uint32_t row_lines;           /**< cache lines a reader touches per row */
    bool track_meta;              /**< keep last-write time and frequency: only
                                       eviction and TTL read them, and writing
                                       them costs a cache line per update */
    core_region_t arena;          /**< capacity row slots (RDMA-readable) */
    core_region_t state;          /**< capacity * state_floats floats */
    core_region_t meta;           /**< capacity core_slot_meta_t */
    core_region_t freelist;       /**< capacity u64: stack of erased slots */
    core_index_t *index;          /**< current index; RCU-protected */
    uint64_t hwm;                 /**< slots [0, hwm) have been used */
    uint64_t nfree;               /**< entries on the free stack */
    uint64_t rows;                /**< live rows */
    core_sketch_t *sketch;        /**< admission sketch, NULL if threshold <= 1 */
    uint64_t rng;                 /**< eviction sampling state (splitmix64) */
    float *scratch;               /**< dim floats for the writer */

    /* counters: written by the writer (or atomically by readers), read by stats */
    uint64_t n_lookups, n_lookup_hits, n_inserts, n_updates, n_evictions;
    uint64_t n_expirations, n_not_admitted, n_torn_retries;
};

static inline core_row_t *slot_row(const core_shard_t *s, uint64_t slot)
{
    return (core_row_t *)((uint8_t *)s->arena.base + slot * s->stride);
}

/** Optimizer state of a slot; NULL for optimizers without state (SGD),
 *  whose state region is never mapped. */
static inline float *slot_state(const core_shard_t *s, uint64_t slot)
{
    if (!s->state_floats)
        return NULL;
    return (float *)s->state.base + slot * s->state_floats;
}

static inline core_slot_meta_t *slot_meta(const core_shard_t *s, uint64_t slot)
{
    return (core_slot_meta_t *)s->meta.base + slot;
}

static inline uint64_t *free_stack(const core_shard_t *s)
{
    return (uint64_t *)s->freelist.base;
}

static inline core_index_t *index_get(const core_shard_t *s)
{
    /* Pairs with the release store in index_publish (rcu_assign_pointer). */
    return __atomic_load_n(&s->index, __ATOMIC_ACQUIRE);
}

static inline uint64_t entry_load(const uint64_t *e)
{
    /* Pairs with entry_store: an entry is published after its row. */
    return __atomic_load_n(e, __ATOMIC_ACQUIRE);
}

static inline void entry_store(uint64_t *e, uint64_t v)
{
    __atomic_store_n(e, v, __ATOMIC_RELEASE);
}

static inline int row_expired(const core_shard_t *s, uint64_t slot, uint64_t now_ns)
{
    if (!s->cfg.ttl_ns || !now_ns)
        return 0;
    uint64_t t = __atomic_load_n(&slot_meta(s, slot)->last_write_ns, __ATOMIC_RELAXED);
    return now_ns > t && now_ns - t > s->cfg.ttl_ns;
}

/* ------------------------------------------------------------------------ */
/* index                                                                    */
/* ------------------------------------------------------------------------ */

static strata_status_t index_create(core_shard_t *s, uint64_t nbuckets, uint64_t epoch,
                                    core_index_t **ix_p)
{
    core_index_t *ix = core_calloc(1, sizeof(*ix));
    if (!ix)
        return core_fail(STRATA_ERR_NOMEM, "index header: out of memory");
    /* + one line: the trailer (core_index_trailer_t) after the buckets */
    strata_status_t st = core_region_alloc(s->ops, (nbuckets + 1) * sizeof(core_bucket_t),
                                           s->cfg.huge_pages, &ix->region);
    if (st != STRATA_OK) {
        core_free(ix);
        return st == STRATA_ERR_NOMEM ? st
                                      : core_fail(st, "index of %llu buckets: %s",
                                                  (unsigned long long)nbuckets,
                                                  strata_last_error());
    }
    ix->buckets = ix->region.base;
    ix->nbuckets = nbuckets;
    ix->epoch = epoch;
    core_index_trailer_t *tr = (core_index_trailer_t *)&ix->buckets[nbuckets];
    tr->epoch = epoch;
    tr->nbuckets = nbuckets;
    *ix_p = ix;
    return STRATA_OK;
}

static void index_destroy(core_shard_t *s, core_index_t *ix)
{
    if (!ix)
        return;
    core_region_free(s->ops, &ix->region);
    core_free(ix);
}

/** Find key's entry: returns a pointer to the entry word, or NULL. Writer
 *  only (reads rows without the seqlock: the writer is the only one who
 *  changes them). */
static uint64_t *index_find_entry(const core_shard_t *s, const core_index_t *ix, uint64_t key,
                                  uint64_t h)
{
    uint16_t fp = core_fingerprint(h);
    core_bucket_t *b = &ix->buckets[core_bucket1(h, ix->nbuckets)];
    for (int pass = 0; pass < 2; pass++) {
        for (unsigned i = 0; i < CORE_BUCKET_ENTRIES; i++) {
            uint64_t e = b->entry[i];
            if (e && core_entry_fp(e) == fp && slot_row(s, core_entry_slot(e))->key == key)
                return &b->entry[i];
        }
        if (pass == 0) {
            if (!(b->meta & CORE_BUCKET_OVERFLOW))
                return NULL;
            b = &ix->buckets[core_bucket2(h, ix->nbuckets)];
        }
    }
    return NULL;
}

static int bucket_free_entry(const core_bucket_t *b)
{
    for (unsigned i = 0; i < CORE_BUCKET_ENTRIES; i++)
        if (!b->entry[i])
            return (int)i;
    return -1;
}

/** Free an entry of full bucket bidx by moving one entry whose FIRST choice
 *  is bidx to its second bucket; returns the freed position, or -1. With
 *  dry_run nothing moves (the answer says whether a move is possible).
 *  Only first-to-second moves are made: the copy lands in the second
 *  bucket (with the first's overflow bit set) before the original is
 *  cleared, so a lock-free reader, who scans first then second, always
 *  sees the entry in one of them. Second-to-first moves could be missed. */
static int index_displace(const core_shard_t *s, core_index_t *ix, uint64_t bidx, int dry_run)
{
    core_bucket_t *b = &ix->buckets[bidx];
    for (unsigned i = 0; i < CORE_BUCKET_ENTRIES; i++) {
        uint64_t e = b->entry[i];
        uint64_t hk = core_key_hash(slot_row(s, core_entry_slot(e))->key);
        if (core_bucket1(hk, ix->nbuckets) != bidx)
            continue;
        core_bucket_t *alt = &ix->buckets[core_bucket2(hk, ix->nbuckets)];
        int j = bucket_free_entry(alt);
        if (j < 0)
            continue;
        if (!dry_run) {
            __atomic_store_n(&b->meta, b->meta | CORE_BUCKET_OVERFLOW, __ATOMIC_RELEASE);
            entry_store(&alt->entry[j], e);
            entry_store(&b->entry[i], 0);
        }
        return (int)i;
    }
    return -1;
}

/** Place an entry for (h, slot) in ix: first bucket, second bucket, or a
 *  freed position after one displacement. With dry_run nothing changes.
 *  Returns 0 when there is no room (the index must grow). */
static int index_place(const core_shard_t *s, core_index_t *ix, uint64_t h, uint64_t slot,
                       int dry_run)
{
    uint64_t e = core_entry_make(core_fingerprint(h), slot);
    uint64_t i1 = core_bucket1(h, ix->nbuckets), i2 = core_bucket2(h, ix->nbuckets);
    core_bucket_t *b1 = &ix->buckets[i1], *b2 = &ix->buckets[i2];
    int j = bucket_free_entry(b1);
    if (j < 0)
        j = index_displace(s, ix, i1, dry_run);
    if (j >= 0) {
        if (!dry_run)
            entry_store(&b1->entry[j], e);
        return 1;
    }
    j = bucket_free_entry(b2);
    if (j < 0)
        j = index_displace(s, ix, i2, dry_run);
    if (j >= 0 && !dry_run) {
        /* The overflow bit must be visible no later than the entry, so a
         * reader who finds b1 without a match knows to look in b2. */
        __atomic_store_n(&b1->meta, b1->meta | CORE_BUCKET_OVERFLOW, __ATOMIC_RELEASE);
        entry_store(&b2->entry[j], e);
    }
    return j >= 0;
}

/** Replace the index with one of at least 2x the buckets holding every
 *  entry of the current one. Readers keep using the old index until the
 *  new one is published; the old one is freed after a grace period. */
static strata_status_t index_grow(core_shard_t *s)
{
    core_index_t *old = s->index;
    uint64_t nb = old->nbuckets * 2;
    for (;;) {
        core_index_t *ix;
        strata_status_t st = index_create(s, nb, old->epoch + 1, &ix);
        if (st != STRATA_OK)
            return st;
        int ok = 1;
        for (uint64_t b = 0; b < old->nbuckets && ok; b++) {
            for (unsigned i = 0; i < CORE_BUCKET_ENTRIES; i++) {
                uint64_t e = old->buckets[b].entry[i];
                if (!e)
                    continue;
                uint64_t slot = core_entry_slot(e);
                if (!index_place(s, ix, core_key_hash(slot_row(s, slot)->key), slot, 0)) {
                    ok = 0;
                    break;
                }
            }
        }
        if (!ok) { /* pathological clustering: try a bigger index */
            index_destroy(s, ix);
            nb *= 2;
            continue;
        }
        /* Publish (pairs with index_get's acquire load), then wait until no
         * reader can still hold the old pointer. */
        __atomic_store_n(&s->index, ix, __ATOMIC_RELEASE);
        /* Tell remote readers of the old index it is stale, before any
         * insert goes to the new one (the writer continues only after
         * this). Pairs with the reader's acquire load of the trailer after
         * its bucket reads. */
        core_index_trailer_t *tr = (core_index_trailer_t *)&old->buckets[old->nbuckets];
        __atomic_store_n(&tr->retired, 1, __ATOMIC_RELEASE);
        urcu_bp_synchronize_rcu();
        index_destroy(s, old);
        return STRATA_OK;
    }
}

/* ------------------------------------------------------------------------ */
/* create / destroy                                                         */
/* ------------------------------------------------------------------------ */

static uint64_t next_pow2(uint64_t v)
{
    uint64_t p = 1;
    while (p < v)
        p <<= 1;
    return p;
}

strata_status_t core_shard_create(const core_shard_config_t *config, core_shard_t **shard_p)
{
    strata_status_t st;
    if (!config || !shard_p)
        return core_fail(STRATA_ERR_INVALID_PARAM, "core_shard_create: NULL argument");
    if (config->dim < 1 || config->dim > STRATA_DIM_MAX)
        return core_fail(STRATA_ERR_INVALID_PARAM, "shard dim = %u: must be 1..%d", config->dim,
                         STRATA_DIM_MAX);
    if (config->capacity < 1 || config->capacity > CORE_SLOT_MAX ||
        config->capacity > ((uint64_t)1 << 62) / core_row_stride(config->dim))
        return core_fail(STRATA_ERR_INVALID_PARAM,
                         "shard capacity = %llu: must be 1..%llu rows at dim %u",
                         (unsigned long long)config->capacity,
                         (unsigned long long)(((uint64_t)1 << 62) / core_row_stride(config->dim)),
                         config->dim);

    core_shard_t *s = core_calloc(1, sizeof(*s));
    if (!s)
        return core_fail(STRATA_ERR_NOMEM, "shard: out of memory");
    s->cfg = *config;
    s->ops = config->arena_ops ? config->arena_ops : &core_region_ops_default;
    s->stride = core_row_stride(config->dim);
    s->row_lines = (uint32_t)((core_row_bytes(config->dim) + 63) / 64);
    s->state_floats = core_optim_state_floats(config->optimizer.type, config->dim);
    s->rng = config->seed ^ 0x2545f4914f6cdd1dULL;
    s->track_meta = config->eviction != STRATA_EVICT_NONE || config->ttl_ns != 0;

    s->scratch = core_malloc(4ull * config->dim);
    if (!s->scratch) {
        st = core_fail(STRATA_ERR_NOMEM, "shard scratch: out of memory");
        goto err_shard;
    }
    st = core_region_alloc(s->ops, config->capacity * s->stride, config->huge_pages, &s->arena);
    if (st != STRATA_OK)
        goto err_scratch;
    if (s->state_floats) {
        st = core_region_alloc(&core_region_ops_default,
                               config->capacity * s->state_floats * sizeof(float),
                               config->huge_pages, &s->state);
        if (st != STRATA_OK)
            goto err_arena;
    }
    st = core_region_alloc(&core_region_ops_default, config->capacity * sizeof(core_slot_meta_t),
                           config->huge_pages, &s->meta);
    if (st != STRATA_OK)
        goto err_state;
    st = core_region_alloc(&core_region_ops_default, config->capacity * sizeof(uint64_t), 0,
                           &s->freelist);
    if (st != STRATA_OK)
        goto err_meta;

    uint64_t nb = config->initial_buckets;
    if (!nb) {
        uint64_t rows = config->capacity < 65536 ? config->capacity : 65536;
        nb = (rows * 4 / 3 + CORE_BUCKET_ENTRIES - 1) / CORE_BUCKET_ENTRIES;
    }
    nb = next_pow2(nb < 2 ? 2 : nb);
    st = index_create(s, nb, 1, &s->index);
    if (st != STRATA_OK)
        goto err_freelist;

    if (config->admission_threshold > 1) {
        uint64_t w = config->capacity < ((uint64_t)1 << 22) ? config->capacity : ((uint64_t)1 << 22);
        st = core_sketch_create(w, &s->sketch);
        if (st != STRATA_OK)
            goto err_index;
    }
    *shard_p = s;
    return STRATA_OK;

err_index:
    index_destroy(s, s->index);
err_freelist:
    core_region_free(&core_region_ops_default, &s->freelist);
err_meta:
    core_region_free(&core_region_ops_default, &s->meta);
err_state:
    core_region_free(&core_region_ops_default, &s->state);
err_arena:
    core_region_free(s->ops, &s->arena);
err_scratch:
    core_free(s->scratch);
err_shard:
    core_free(s);
    return st;
}

void core_shard_retire(core_shard_t *s)
{
    core_index_t *ix = s->index;
    core_index_trailer_t *tr = (core_index_trailer_t *)&ix->buckets[ix->nbuckets];
    __atomic_store_n(&tr->retired, 1, __ATOMIC_RELEASE);
}

void core_shard_destroy(core_shard_t *s)
{
    if (!s)
        return;
    core_sketch_destroy(s->sketch);
    index_destroy(s, s->index);
    core_region_free(&core_region_ops_default, &s->freelist);
    core_region_free(&core_region_ops_default, &s->meta);
    core_region_free(&core_region_ops_default, &s->state);
    core_region_free(s->ops, &s->arena);
    core_free(s->scratch);
    core_free(s);
}

uint32_t core_shard_dim(const core_shard_t *s)
{
    return s->cfg.dim;
}

const core_shard_config_t *core_shard_config(const core_shard_t *s)
{
    return &s->cfg;
}

uint64_t core_shard_rows(const core_shard_t *s)
{
    return __atomic_load_n(&s->rows, __ATOMIC_RELAXED);
}

/* ------------------------------------------------------------------------ */
/* lock-free readers                                                        */
/* ------------------------------------------------------------------------ */

/** Read key's row into out under the seqlock, searching every candidate
 *  entry of both buckets. Returns 1 (found), 0 (absent). The caller holds
 *  the RCU read lock. torn counts retries. */
static int read_slow(core_shard_t *s, const core_index_t *ix, uint64_t key, uint64_t h,
                     float *out, uint64_t now_ns, uint64_t *torn)
{
    uint16_t fp = core_fingerprint(h);
    const core_bucket_t *b = &ix->buckets[core_bucket1(h, ix->nbuckets)];
    for (int pass = 0; pass < 2; pass++) {
        for (unsigned i = 0; i < CORE_BUCKET_ENTRIES; i++) {
            uint64_t e = entry_load(&b->entry[i]);
            if (!e || core_entry_fp(e) != fp)
                continue;
            uint64_t slot = core_entry_slot(e);
            if (slot >= s->cfg.capacity)
                continue; /* cannot happen with a sane index; never read out of bounds */
            const core_row_t *row = slot_row(s, slot);
            for (unsigned spin = 0;; spin++) {
                int r = core_row_read_local(row, key, out, s->cfg.dim, NULL);
                if (r == 1) {
                    if (row_expired(s, slot, now_ns))
                        return 0;
                    return 1;
                }
                if (r == 0)
                    break;
                (*torn)++;
                if (spin >= READ_SPINS)
                    sched_yield();
            }
        }
        if (pass == 0) {
            if (!(__atomic_load_n(&b->meta, __ATOMIC_ACQUIRE) & CORE_BUCKET_OVERFLOW))
                return 0;
            b = &ix->buckets[core_bucket2(h, ix->nbuckets)];
        }
    }
    return 0;
}

/** First candidate slot for key in b1 (or b2 on overflow) by fingerprint;
 *  UINT64_MAX if none. Cheap probe for the pipeline; read_slow settles
 *  anything it gets wrong. */
static inline uint64_t probe_first(const core_shard_t *s, const core_index_t *ix, uint64_t h)
{
    uint16_t fp = core_fingerprint(h);
    const core_bucket_t *b = &ix->buckets[core_bucket1(h, ix->nbuckets)];
    for (unsigned i = 0; i < CORE_BUCKET_ENTRIES; i++) {
        uint64_t e = entry_load(&b->entry[i]);
        if (e && core_entry_fp(e) == fp) {
            uint64_t slot = core_entry_slot(e);
            return slot < s->cfg.capacity ? slot : UINT64_MAX;
        }
    }
    return UINT64_MAX;
}

static inline void prefetch_row(const core_shard_t *s, uint64_t slot)
{
    const char *p = (const char *)slot_row(s, slot);
    for (uint32_t l = 0; l < s->row_lines; l++)
        __builtin_prefetch(p + 64 * l, 0, 3);
}

size_t core_lookup_batch(core_shard_t *const *shards, uint32_t nshards, const uint64_t *keys,
                         size_t n, float *out, uint8_t *found, uint64_t now_ns)
{
    if (n == 0)
        return 0;
    const uint32_t dim = shards[0]->cfg.dim;
    const strata_initializer_t *init = &shards[0]->cfg.initializer;
    uint64_t hash[PIPE_RING];         /* key hash, by position mod ring */
    uint32_t sh[PIPE_RING];           /* shard index */
    const core_index_t *ixs[PIPE_RING]; /* index the probe used */
    uint64_t cand[PIPE_RING];         /* candidate slot or UINT64_MAX */
    size_t hits = 0;
    uint64_t torn = 0;

    urcu_bp_read_lock();
    /* Stage A at i + 2D: hash, prefetch first bucket.
     * Stage B at i + D:  probe the bucket, prefetch the candidate row.
     * Stage C at i:      copy the row under its seqlock; fall back to the
     *                    full probe on a miss or fingerprint collision. */
    size_t total = n + 2 * PIPE_DIST;
    for (size_t t = 0; t < total; t++) {
        if (t < n) { /* stage A for key t */
            size_t r = t & (PIPE_RING - 1);
            uint32_t si = nshards > 1 ? core_key_shard(keys[t], nshards) : 0;
            uint64_t h = core_key_hash(keys[t]);
            const core_index_t *ix = index_get(shards[si]);
            hash[r] = h;
            sh[r] = si;
            ixs[r] = ix;
            __builtin_prefetch(&ix->buckets[core_bucket1(h, ix->nbuckets)], 0, 3);
        }
        if (t >= PIPE_DIST && t - PIPE_DIST < n) { /* stage B */
            size_t i = t - PIPE_DIST;
            size_t r = i & (PIPE_RING - 1);
            const core_shard_t *s = shards[sh[r]];
            uint64_t slot = probe_first(s, ixs[r], hash[r]);
            cand[r] = slot;
            if (slot != UINT64_MAX)
                prefetch_row(s, slot);
        }
        if (t >= 2 * PIPE_DIST) { /* stage C */
            size_t i = t - 2 * PIPE_DIST;
            size_t r = i & (PIPE_RING - 1);
            core_shard_t *s = shards[sh[r]];
            float *dst = out + i * (size_t)dim;
            int ok = 0;
            if (cand[r] != UINT64_MAX) {
                int rr = core_row_read_local(slot_row(s, cand[r]), keys[i], dst, dim, NULL);
                if (rr == 1)
                    ok = !row_expired(s, cand[r], now_ns);
                else
                    ok = read_slow(s, ixs[r], keys[i], hash[r], dst, now_ns, &torn);
            } else if (__atomic_load_n(&ixs[r]->buckets[core_bucket1(hash[r], ixs[r]->nbuckets)].meta,
                                       __ATOMIC_ACQUIRE) & CORE_BUCKET_OVERFLOW) {
                ok = read_slow(s, ixs[r], keys[i], hash[r], dst, now_ns, &torn);
            }
            if (!ok)
                core_init_row(init, keys[i], dst, dim);
            if (found)
                found[i] = ok ? STRATA_ROW_FOUND : STRATA_ROW_MISSING;
            hits += (size_t)ok;
        }
    }
    urcu_bp_read_unlock();

    /* One atomic add per batch, charged to the first shard: table stats sum
     * over shards, and a per-shard split is not worth a pass over the keys. */
    STAT_ADD(shards[0]->n_lookups, n);
    STAT_ADD(shards[0]->n_lookup_hits, hits);
    if (torn)
        STAT_ADD(shards[0]->n_torn_retries, torn);
    return hits;
}

int core_shard_find(core_shard_t *s, uint64_t key, float *out, uint64_t now_ns)
{
    uint64_t torn = 0;
    urcu_bp_read_lock();
    int r = read_slow(s, index_get(s), key, core_key_hash(key), out, now_ns, &torn);
    urcu_bp_read_unlock();
    if (torn)
        STAT_ADD(s->n_torn_retries, torn);
    return r;
}

int core_shard_locate(core_shard_t *s, uint64_t key, uint64_t *slot_out, uint32_t *inc_out)
{
    uint64_t h = core_key_hash(key);
    uint16_t fp = core_fingerprint(h);
    int found = 0;
    urcu_bp_read_lock();
    const core_index_t *ix = index_get(s);
    const core_bucket_t *b = &ix->buckets[core_bucket1(h, ix->nbuckets)];
    for (int pass = 0; pass < 2 && !found; pass++) {
        for (unsigned i = 0; i < CORE_BUCKET_ENTRIES && !found; i++) {
            uint64_t e = entry_load(&b->entry[i]);
            if (!e || core_entry_fp(e) != fp || core_entry_slot(e) >= s->cfg.capacity)
                continue;
            const core_row_t *row = slot_row(s, core_entry_slot(e));
            uint64_t s1 = __atomic_load_n(&row->seq, __ATOMIC_ACQUIRE);
            uint64_t k = row->key;
            uint32_t inc = row->incarnation, fl = row->flags;
            __atomic_thread_fence(__ATOMIC_ACQUIRE);
            if (!(s1 & 1) && s1 == __atomic_load_n(&row->seq, __ATOMIC_RELAXED) && k == key &&
                (fl & CORE_ROW_LIVE)) {
                *slot_out = core_entry_slot(e);
                *inc_out = inc;
                found = 1;
            }
        }
        if (pass == 0 && !(__atomic_load_n(&b->meta, __ATOMIC_ACQUIRE) & CORE_BUCKET_OVERFLOW))
            break;
        b = &ix->buckets[core_bucket2(h, ix->nbuckets)];
    }
    urcu_bp_read_unlock();
    return found;
}

/* ------------------------------------------------------------------------ */
/* writer                                                                   */
/* ------------------------------------------------------------------------ */

static inline uint64_t rng_next(core_shard_t *s)
{
    s->rng += 0x9e3779b97f4a7c15ULL;
    return core_mix64(s->rng);
}

static inline void meta_touch(core_shard_t *s, uint64_t slot, uint64_t now_ns)
{
    if (!s->track_meta)
        return;
    core_slot_meta_t *m = slot_meta(s, slot);
    __atomic_store_n(&m->last_write_ns, now_ns, __ATOMIC_RELAXED);
    if (m->freq != UINT32_MAX)
        m->freq++;
}

/** Unlink a live row: clear its index entry, retire the slot (incarnation
 *  bumped so cached locations go stale) and push it on the free stack. */
static void erase_slot(core_shard_t *s, uint64_t *entry, uint64_t slot)
{
    core_row_t *row = slot_row(s, slot);
    entry_store(entry, 0);
    core_row_write_begin(row);
    row->flags = 0;
    row->incarnation++;
    core_row_write_end(row, s->cfg.dim);
    free_stack(s)[s->nfree++] = slot;
    __atomic_store_n(&s->rows, s->rows - 1, __ATOMIC_RELAXED);
}

static int score_less(const core_shard_t *s, const core_slot_meta_t *a, const core_slot_meta_t *b)
{
    switch (s->cfg.eviction) {
    case STRATA_EVICT_LFU:
        if (a->freq != b->freq)
            return a->freq < b->freq;
        return a->last_write_ns < b->last_write_ns;
    case STRATA_EVICT_SCORE:
        if (a->score != b->score)
            return a->score < b->score;
        return a->last_write_ns < b->last_write_ns;
    default:
        return a->last_write_ns < b->last_write_ns;
    }
}

/** Evict the lowest-scored of EVICT_SAMPLES random live rows; 1 on success
 *  (a slot is now on the free stack). protect: a slot not to evict. */
static int evict_one(core_shard_t *s, uint64_t protect)
{
    uint64_t best = UINT64_MAX;
    unsigned got = 0;
    for (unsigned tries = 0; tries < 8 * EVICT_SAMPLES && got < EVICT_SAMPLES; tries++) {
        uint64_t slot = (uint64_t)(((unsigned __int128)rng_next(s) * s->hwm) >> 64);
        if (slot == protect || !(slot_row(s, slot)->flags & CORE_ROW_LIVE))
            continue;
        got++;
        if (best == UINT64_MAX || score_less(s, slot_meta(s, slot), slot_meta(s, best)))
            best = slot;
    }
    if (best == UINT64_MAX) { /* sparse arena: scan for any live row */
        for (uint64_t slot = 0; slot < s->hwm; slot++)
            if (slot != protect && (slot_row(s, slot)->flags & CORE_ROW_LIVE)) {
                best = slot;
                break;
            }
        if (best == UINT64_MAX)
            return 0;
    }
    uint64_t key = slot_row(s, best)->key;
    uint64_t *entry = index_find_entry(s, s->index, key, core_key_hash(key));
    if (!entry)
        return 0; /* invariant broken; core_shard_check reports it */
    erase_slot(s, entry, best);
    STAT_ADD(s->n_evictions, 1);
    return 1;
}

/** A free slot: from the free stack, the untouched tail, or by eviction. */
static strata_status_t slot_alloc(core_shard_t *s, uint64_t protect, uint64_t *slot_out)
{
    if (s->nfree == 0 && s->hwm == s->cfg.capacity) {
        if (s->cfg.eviction == STRATA_EVICT_NONE)
            return core_fail(STRATA_ERR_FULL,
                             "shard is full: %llu rows (capacity) and eviction is off",
                             (unsigned long long)s->cfg.capacity);
        if (!evict_one(s, protect))
            return core_fail(STRATA_ERR_INTERNAL,
                             "shard is full (%llu rows) and no row could be evicted",
                             (unsigned long long)s->cfg.capacity);
    }
    if (s->nfree) {
        *slot_out = free_stack(s)[--s->nfree];
    } else {
        *slot_out = s->hwm;
        __atomic_store_n(&s->hwm, s->hwm + 1, __ATOMIC_RELAXED); /* stats read it */
    }
    return STRATA_OK;
}

/** Make room in the index for one more entry of hash h: grows when the
 *  load would pass 3/4 or h's entry cannot be placed even after one
 *  displacement. */
static strata_status_t index_reserve(core_shard_t *s, uint64_t h)
{
    for (;;) {
        core_index_t *ix = s->index;
        uint64_t limit = ix->nbuckets * CORE_BUCKET_ENTRIES / 4 * 3;
        if (s->rows + 1 <= limit && index_place(s, ix, h, 0, 1))
            return STRATA_OK;
        strata_status_t st = index_grow(s);
        if (st != STRATA_OK)
            return st;
    }
}

/** Create key's row with emb (or the initializer's values when emb is
 *  NULL), fresh optimizer state and metadata. The key must be absent. */
static strata_status_t insert_row(core_shard_t *s, uint64_t key, uint64_t h, const float *emb,
                                  const float *state, const core_slot_meta_t *meta,
                                  uint64_t now_ns, uint64_t *slot_out)
{
    /* Reserve index room first: growth can fail with NOMEM, and must not
     * leave an allocated slot behind. */
    strata_status_t st = index_reserve(s, h);
    if (st != STRATA_OK)
        return st;
    uint64_t slot = 0;
    st = slot_alloc(s, UINT64_MAX, &slot);
    if (st != STRATA_OK)
        return st;
    /* Eviction may have freed space in the index too; it never takes it. */
    core_row_t *row = slot_row(s, slot);
    core_row_write_begin(row);
    row->key = key;
    row->incarnation++;
    row->flags = CORE_ROW_LIVE;
    if (emb)
        memcpy(row->emb, emb, 4ull * s->cfg.dim);
    else
        core_init_row(&s->cfg.initializer, key, row->emb, s->cfg.dim);
    core_row_write_end(row, s->cfg.dim);
    if (s->state_floats) {
        if (state)
            memcpy(slot_state(s, slot), state, 4ull * s->state_floats);
        else
            core_optim_init_state(&s->cfg.optimizer, s->cfg.dim, slot_state(s, slot));
    }
    core_slot_meta_t *m = slot_meta(s, slot);
    if (meta) {
        *m = *meta;
    } else {
        m->last_write_ns = now_ns;
        m->freq = 1;
        m->score = 0.0f;
    }
    /* Publish: the row is complete before its entry becomes visible. */
    if (!index_place(s, s->index, h, slot, 0))
        return core_fail(STRATA_ERR_INTERNAL, "index_place failed after index_reserve");
    __atomic_store_n(&s->rows, s->rows + 1, __ATOMIC_RELAXED);
    *slot_out = slot;
    return STRATA_OK;
}

/** Writer-side find: live slot of key or UINT64_MAX; expired rows are
 *  erased on sight (TTL) and reported absent. */
static uint64_t writer_find(core_shard_t *s, uint64_t key, uint64_t h, uint64_t now_ns)
{
    uint64_t *e = index_find_entry(s, s->index, key, h);
    if (!e)
        return UINT64_MAX;
    uint64_t slot = core_entry_slot(*e);
    if (row_expired(s, slot, now_ns)) {
        erase_slot(s, e, slot);
        STAT_ADD(s->n_expirations, 1);
        return UINT64_MAX;
    }
    return slot;
}

/** Admission decision for an absent key. */
static int admit(core_shard_t *s, uint64_t key, bool count_sighting)
{
    if (!s->sketch)
        return 1;
    uint32_t est = count_sighting ? core_sketch_add(s->sketch, key)
                                  : core_sketch_estimate(s->sketch, key);
    return est >= s->cfg.admission_threshold;
}

strata_status_t core_shard_find_or_insert(core_shard_t *s, const uint64_t *keys,
                                          const uint32_t *idx, size_t n, float *out,
                                          uint8_t *found, uint64_t now_ns, bool count_sighting)
{
    const uint32_t dim = s->cfg.dim;
    size_t hits = 0;
    for (size_t ii = 0; ii < n; ii++) {
        if (ii + PIPE_DIST < n) {
            uint64_t hp = core_key_hash(keys[ITEM(idx, ii + PIPE_DIST)]);
            __builtin_prefetch(&s->index->buckets[core_bucket1(hp, s->index->nbuckets)], 0, 3);
        }
        size_t i = ITEM(idx, ii);
        uint64_t h = core_key_hash(keys[i]);
        uint64_t slot = writer_find(s, keys[i], h, now_ns);
        uint8_t what = STRATA_ROW_FOUND;
        if (slot == UINT64_MAX) {
            if (admit(s, keys[i], count_sighting)) {
                strata_status_t st = insert_row(s, keys[i], h, NULL, NULL, NULL, now_ns, &slot);
                if (st != STRATA_OK) {
                    STAT_ADD(s->n_lookups, ii);
                    STAT_ADD(s->n_lookup_hits, hits);
                    return st;
                }
                STAT_ADD(s->n_inserts, 1);
                what = STRATA_ROW_CREATED;
            } else {
                what = STRATA_ROW_NOT_ADMITTED;
                STAT_ADD(s->n_not_admitted, 1);
                if (out)
                    core_init_row(&s->cfg.initializer, keys[i], out + i * (size_t)dim, dim);
            }
        } else {
            hits++;
        }
        if (slot != UINT64_MAX && out)
            memcpy(out + i * (size_t)dim, slot_row(s, slot)->emb, 4ull * dim);
        if (found)
            found[i] = what;
    }
    STAT_ADD(s->n_lookups, n);
    STAT_ADD(s->n_lookup_hits, hits);
    return STRATA_OK;
}

strata_status_t core_shard_apply(core_shard_t *s, const uint64_t *keys, const uint32_t *idx,
                                 const float *grads, size_t n, uint64_t now_ns)
{
    const uint32_t dim = s->cfg.dim;
    uint64_t hash[PIPE_RING];
    uint64_t cand[PIPE_RING];
    size_t total = n + 2 * PIPE_DIST;
    uint64_t updates = 0;
    for (size_t t = 0; t < total; t++) {
        if (t < n) { /* stage A: hash, prefetch first bucket */
            size_t r = t & (PIPE_RING - 1);
            hash[r] = core_key_hash(keys[ITEM(idx, t)]);
            __builtin_prefetch(&s->index->buckets[core_bucket1(hash[r], s->index->nbuckets)], 0, 3);
        }
        if (t >= PIPE_DIST && t - PIPE_DIST < n) { /* stage B: probe, prefetch row + state */
            size_t r = (t - PIPE_DIST) & (PIPE_RING - 1);
            uint64_t slot = probe_first(s, s->index, hash[r]);
            cand[r] = slot;
            if (slot != UINT64_MAX) {
                const char *rp = (const char *)slot_row(s, slot);
                for (uint32_t l = 0; l < s->row_lines; l++)
                    __builtin_prefetch(rp + 64 * l, 1, 3);
                const char *sp = (const char *)slot_state(s, slot);
                for (uint64_t b = 0; b < 4ull * s->state_floats; b += 64)
                    __builtin_prefetch(sp + b, 1, 3);
                if (s->track_meta)
                    __builtin_prefetch(slot_meta(s, slot), 1, 3);
            }
        }
        if (t < 2 * PIPE_DIST)
            continue;
        /* stage C: apply */
        size_t ii = t - 2 * PIPE_DIST;
        size_t r = ii & (PIPE_RING - 1);
        size_t i = ITEM(idx, ii);
        uint64_t key = keys[i];
        uint64_t slot = cand[r];
        /* The probe ran before earlier keys of this batch were inserted,
         * evicted or expired: trust it only if the slot still holds key. */
        if (slot == UINT64_MAX || slot_row(s, slot)->key != key ||
            !(slot_row(s, slot)->flags & CORE_ROW_LIVE) || row_expired(s, slot, now_ns))
            slot = writer_find(s, key, hash[r], now_ns);
        if (slot == UINT64_MAX) {
            if (!admit(s, key, false)) {
                STAT_ADD(s->n_not_admitted, 1);
                continue;
            }
            strata_status_t st = insert_row(s, key, hash[r], NULL, NULL, NULL, now_ns, &slot);
            if (st != STRATA_OK) {
                STAT_ADD(s->n_updates, updates);
                return st;
            }
            STAT_ADD(s->n_inserts, 1);
        }
        core_row_t *row = slot_row(s, slot);
        core_row_write_begin(row);
        core_optim_apply(&s->cfg.optimizer, dim, row->emb, slot_state(s, slot),
                         grads + i * (size_t)dim);
        core_row_write_end(row, dim);
        meta_touch(s, slot, now_ns);
        updates++;
    }
    STAT_ADD(s->n_updates, updates);
    return STRATA_OK;
}

strata_status_t core_shard_assign(core_shard_t *s, const uint64_t *keys, const uint32_t *idx,
                                  const float *rows, size_t n, uint64_t now_ns)
{
    const uint32_t dim = s->cfg.dim;
    for (size_t ii = 0; ii < n; ii++) {
        size_t i = ITEM(idx, ii);
        uint64_t h = core_key_hash(keys[i]);
        const float *src = rows + i * (size_t)dim;
        uint64_t slot = writer_find(s, keys[i], h, now_ns);
        if (slot == UINT64_MAX) {
            strata_status_t st = insert_row(s, keys[i], h, src, NULL, NULL, now_ns, &slot);
            if (st != STRATA_OK)
                return st;
            STAT_ADD(s->n_inserts, 1);
            continue;
        }
        core_row_t *row = slot_row(s, slot);
        core_row_write_begin(row);
        memcpy(row->emb, src, 4ull * dim);
        core_row_write_end(row, dim);
        if (s->state_floats)
            core_optim_init_state(&s->cfg.optimizer, dim, slot_state(s, slot));
        meta_touch(s, slot, now_ns);
    }
    return STRATA_OK;
}

size_t core_shard_erase(core_shard_t *s, const uint64_t *keys, const uint32_t *idx, size_t n)
{
    size_t erased = 0;
    for (size_t ii = 0; ii < n; ii++) {
        size_t i = ITEM(idx, ii);
        uint64_t *e = index_find_entry(s, s->index, keys[i], core_key_hash(keys[i]));
        if (!e)
            continue;
        erase_slot(s, e, core_entry_slot(*e));
        erased++;
    }
    return erased;
}

void core_shard_set_scores(core_shard_t *s, const uint64_t *keys, const uint32_t *idx,
                           const float *scores, size_t n)
{
    for (size_t ii = 0; ii < n; ii++) {
        size_t i = ITEM(idx, ii);
        uint64_t *e = index_find_entry(s, s->index, keys[i], core_key_hash(keys[i]));
        if (e)
            slot_meta(s, core_entry_slot(*e))->score = scores[i];
    }
}

size_t core_shard_expire(core_shard_t *s, uint64_t now_ns)
{
    if (!s->cfg.ttl_ns)
        return 0;
    size_t expired = 0;
    for (uint64_t slot = 0; slot < s->hwm; slot++) {
        core_row_t *row = slot_row(s, slot);
        if (!(row->flags & CORE_ROW_LIVE) || !row_expired(s, slot, now_ns))
            continue;
        uint64_t *e = index_find_entry(s, s->index, row->key, core_key_hash(row->key));
        if (!e)
            continue;
        erase_slot(s, e, slot);
        expired++;
    }
    STAT_ADD(s->n_expirations, expired);
    return expired;
}

int core_shard_iterate(core_shard_t *s, core_shard_iter_cb_t cb, void *arg)
{
    for (uint64_t slot = 0; slot < s->hwm; slot++) {
        const core_row_t *row = slot_row(s, slot);
        if (!(row->flags & CORE_ROW_LIVE))
            continue;
        if (cb(arg, row, slot_state(s, slot), slot_meta(s, slot)))
            return 1;
    }
    return 0;
}

strata_status_t core_shard_restore_row(core_shard_t *s, uint64_t key, const float *emb,
                                       const float *state, const core_slot_meta_t *meta)
{
    uint64_t h = core_key_hash(key);
    if (index_find_entry(s, s->index, key, h))
        return core_fail(STRATA_ERR_EXISTS, "key %llu appears twice", (unsigned long long)key);
    if (s->nfree == 0 && s->hwm == s->cfg.capacity)
        return core_fail(STRATA_ERR_FULL, "more rows than the capacity (%llu)",
                         (unsigned long long)s->cfg.capacity);
    uint64_t slot;
    return insert_row(s, key, h, emb, state, meta, 0, &slot);
}

/* ------------------------------------------------------------------------ */
/* checks, stats, layout                                                    */
/* ------------------------------------------------------------------------ */

strata_status_t core_shard_check(core_shard_t *s)
{
    const core_index_t *ix = s->index;
    uint8_t *seen = core_calloc(s->hwm ? s->hwm : 1, 1);
    if (!seen)
        return core_fail(STRATA_ERR_NOMEM, "check: out of memory");
    strata_status_t st = STRATA_OK;
    uint64_t entries = 0;
    for (uint64_t b = 0; b < ix->nbuckets && st == STRATA_OK; b++) {
        for (unsigned i = 0; i < CORE_BUCKET_ENTRIES; i++) {
            uint64_t e = ix->buckets[b].entry[i];
            if (!e)
                continue;
            entries++;
            uint64_t slot = core_entry_slot(e);
            if (slot >= s->hwm) {
                st = core_fail(STRATA_ERR_INTERNAL, "bucket %llu entry %u: slot %llu >= hwm %llu",
                               (unsigned long long)b, i, (unsigned long long)slot,
                               (unsigned long long)s->hwm);
                break;
            }
            const core_row_t *row = slot_row(s, slot);
            uint64_t h = core_key_hash(row->key);
            if (!(row->flags & CORE_ROW_LIVE) || seen[slot] ||
                core_entry_fp(e) != core_fingerprint(h)) {
                st = core_fail(STRATA_ERR_INTERNAL,
                               "slot %llu: dead, indexed twice, or fingerprint mismatch",
                               (unsigned long long)slot);
                break;
            }
            seen[slot] = 1;
            uint64_t b1 = core_bucket1(h, ix->nbuckets), b2 = core_bucket2(h, ix->nbuckets);
            if (b != b1 && !(b == b2 && (ix->buckets[b1].meta & CORE_BUCKET_OVERFLOW))) {
                st = core_fail(STRATA_ERR_INTERNAL, "key %llu in bucket %llu, not its own",
                               (unsigned long long)row->key, (unsigned long long)b);
                break;
            }
            if (core_row_validate(row, s->cfg.dim, row->key, UINT32_MAX) != CORE_ROW_OK) {
                st = core_fail(STRATA_ERR_INTERNAL, "slot %llu: checksum or seq invalid",
                               (unsigned long long)slot);
                break;
            }
        }
    }
    uint64_t live = 0;
    for (uint64_t slot = 0; slot < s->hwm && st == STRATA_OK; slot++) {
        if (slot_row(s, slot)->flags & CORE_ROW_LIVE) {
            live++;
            if (!seen[slot])
                st = core_fail(STRATA_ERR_INTERNAL, "live slot %llu is not indexed",
                               (unsigned long long)slot);
        }
    }
    if (st == STRATA_OK && (live != s->rows || entries != s->rows))
        st = core_fail(STRATA_ERR_INTERNAL, "rows %llu, live slots %llu, index entries %llu",
                       (unsigned long long)s->rows, (unsigned long long)live,
                       (unsigned long long)entries);
    if (st == STRATA_OK && s->rows + s->nfree != s->hwm)
        st = core_fail(STRATA_ERR_INTERNAL, "rows %llu + free %llu != hwm %llu",
                       (unsigned long long)s->rows, (unsigned long long)s->nfree,
                       (unsigned long long)s->hwm);
    for (uint64_t i = 0; i < s->nfree && st == STRATA_OK; i++) {
        uint64_t slot = free_stack(s)[i];
        if (slot >= s->hwm || (slot_row(s, slot)->flags & CORE_ROW_LIVE))
            st = core_fail(STRATA_ERR_INTERNAL, "free stack holds live or bad slot %llu",
                           (unsigned long long)slot);
    }
    core_free(seen);
    return st;
}

void core_shard_get_stats(core_shard_t *s, core_shard_stats_t *st)
{
    memset(st, 0, sizeof(*st));
    urcu_bp_read_lock(); /* the writer may replace and free the index */
    const core_index_t *ix = index_get(s);
    st->nbuckets = ix->nbuckets;
    st->epoch = ix->epoch;
    urcu_bp_read_unlock();
    st->rows = core_shard_rows(s);
    st->capacity = s->cfg.capacity;
    st->lookups = STAT_GET(s->n_lookups);
    st->lookup_hits = STAT_GET(s->n_lookup_hits);
    st->inserts = STAT_GET(s->n_inserts);
    st->updates = STAT_GET(s->n_updates);
    st->evictions = STAT_GET(s->n_evictions);
    st->expirations = STAT_GET(s->n_expirations);
    st->not_admitted = STAT_GET(s->n_not_admitted);
    st->torn_retries = STAT_GET(s->n_torn_retries);
    uint64_t hwm = __atomic_load_n(&s->hwm, __ATOMIC_RELAXED);
    st->bytes_rows = hwm * s->stride;
    st->bytes_state = hwm * s->state_floats * sizeof(float);
    st->bytes_index = (st->nbuckets + 1) * sizeof(core_bucket_t);
}

void core_shard_get_layout(core_shard_t *s, core_shard_layout_t *layout)
{
    const core_index_t *ix = index_get(s);
    layout->arena = &s->arena;
    layout->index = &ix->region;
    layout->stride = s->stride;
    layout->nbuckets = ix->nbuckets;
    layout->epoch = ix->epoch;
    layout->capacity = s->cfg.capacity;
}
