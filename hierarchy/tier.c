/*
 * hierarchy/tier.c — the tier manager: a DRAM core shard over the NVMe
 * store, with an optional level above (policies: hierarchy/tier.h,
 * docs/tiers.md).
 *
 * Invariants:
 *  - core_shard_rows(dram) <= capacity always: every call that may insert
 *    into DRAM first makes room for everything it could insert (ti_room),
 *    so the shard (created with eviction NONE) never drops a row by itself.
 *  - A DRAM row whose slot is not dirty has an identical copy on NVMe (it
 *    was promoted from there, or written back, and not changed since), so
 *    dropping it from DRAM loses nothing. Every path that changes a DRAM
 *    row (apply, assign, create, set_scores, accept) marks it dirty.
 *  - Rows of the batch being processed are pinned (slot pin == epoch), so
 *    a demotion pass run for that batch never moves them: a push never
 *    re-creates a row it just promoted or found.
 *  - A key is in at most one place that is newer than the others: a dirty
 *    DRAM row is newer than its NVMe copy; a clean one equals it.
 *
 * Slot bookkeeping (ti_slot_t, 16 bytes per DRAM slot) is reset whenever
 * the tier inserts a row; slots the shard frees by itself (TTL) are reset
 * on their next use.
 *
 * Threading: one writer (tier.h); counters are relaxed atomics.
 */
#define _GNU_SOURCE
#include "hierarchy/tier.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "core/alloc.h"
#include "core/hash.h"
#include "core/init.h"
#include "core/optim.h"
#include "core/sketch.h"
#include "core/status.h"

#define ITEM(idx, i) ((idx) ? (size_t)(idx)[i] : (size_t)(i))
#define TI_CHUNK 4096u     /* items handled per step (bounded by capacity / 2) */
#define TI_DIRTY 1u        /* slot flag: the DRAM row is newer than NVMe */

#define ST_ADD(f, v) __atomic_fetch_add(&(f), (v), __ATOMIC_RELAXED)
#define ST_SET(f, v) __atomic_store_n(&(f), (v), __ATOMIC_RELAXED)
#define ST_GET(f) __atomic_load_n(&(f), __ATOMIC_RELAXED)

/** Per DRAM slot: what the core shard's metadata does not keep. */
typedef struct ti_slot {
    uint64_t access_ns;  /**< last access through the tier */
    uint32_t freq;       /**< accesses (aged under LFU) */
    uint16_t flags;      /**< TI_DIRTY */
    uint16_t pin;        /**< == tier epoch: in the batch being processed */
} ti_slot_t;
_Static_assert(sizeof(ti_slot_t) == 16, "slot bookkeeping is 16 bytes");

struct hier_tier {
    hier_tier_config_t cfg;      /**< copy (nvme.dir points at nvme_dir) */
    char nvme_dir[1024];         /**< copy of cfg.nvme.dir */
    core_shard_t *dram;          /**< the DRAM shard */
    hier_nvme_t *nvme;           /**< NULL: no NVMe tier */
    uint32_t dim;                /**< embedding floats */
    uint32_t sf;                 /**< optimizer state floats */
    uint32_t vf;                 /**< dim + sf: an NVMe value */
    uint64_t cap;                /**< DRAM budget, rows */
    uint64_t chunk;              /**< items per step */
    const uint8_t *arena;        /**< the shard's row arena (slot numbers) */
    uint64_t stride;             /**< bytes per row slot */
    core_region_t slots_region;  /**< cap ti_slot_t */
    ti_slot_t *slots;
    core_region_t scores_region; /**< cap u64: demotion pass scratch */
    uint64_t *scores;
    uint16_t epoch;              /**< current batch's pin value (never 0) */
    uint64_t cutoff;             /**< score key of the last demotion threshold */
    uint64_t turnover;           /**< demotions since LFU counts were last halved */
    core_sketch_t *sketch;       /**< LFU: NVMe reads of not promoted rows */
    float *vbuf;                 /**< one NVMe value (write-back) */

    /* per-call scratch, grown on demand */
    size_t sc_n;                 /**< items the scratch holds */
    uint64_t *s_keys;            /**< gathered keys */
    uint32_t *s_pos;             /**< their positions in the caller's arrays */
    uint32_t *s_list;            /**< index lists */
    uint32_t *s_list2;
    uint8_t *s_u8;               /**< statuses */
    uint8_t *s_u8b;
    uint8_t *s_oc;               /**< per item: STRATA_ROW_* outcome */
    float *s_rows;               /**< m * dim */
    float *s_vals;               /**< m * vf */
    hier_nvme_meta_t *s_meta;    /**< m */
    hier_row_info_t *s_info;     /**< m */
    uint64_t *s_keys2;           /**< m */

    /* counters */
    uint64_t n_upper_hits, n_upper_misses, n_dram_hits, n_dram_misses, n_nvme_hits;
    uint64_t n_nvme_misses, n_promotions, n_served_nvme, n_demotions, n_writebacks;
    uint64_t n_clean_drops, n_created, n_passes, n_corrupt, n_dirty;
};

/* ------------------------------------------------------------------------ */
/* helpers                                                                  */
/* ------------------------------------------------------------------------ */

static strata_status_t ti_scratch(hier_tier_t *t, size_t m)
{
    if (m <= t->sc_n)
        return STRATA_OK;
    size_t n = m < 256 ? 256 : m;
#define TI_GROW(field, count)                                                              \
    do {                                                                                   \
        void *p_ = core_realloc(t->field, (count) * sizeof(*t->field));                   \
        if (!p_)                                                                           \
            return core_fail(STRATA_ERR_NOMEM, "tier scratch of %zu items: out of memory", \
                             n);                                                           \
        t->field = p_;                                                                     \
    } while (0)
    TI_GROW(s_keys, n);
    TI_GROW(s_keys2, n);
    TI_GROW(s_pos, n);
    TI_GROW(s_list, n);
    TI_GROW(s_list2, n);
    TI_GROW(s_u8, n);
    TI_GROW(s_u8b, n);
    TI_GROW(s_oc, n);
    TI_GROW(s_rows, n * t->dim);
    TI_GROW(s_vals, n * t->vf);
    TI_GROW(s_meta, n);
    TI_GROW(s_info, n);
#undef TI_GROW
    t->sc_n = n;
    return STRATA_OK;
}

static inline uint64_t ti_slot_of(const hier_tier_t *t, const core_row_t *row)
{
    return (uint64_t)((const uint8_t *)row - t->arena) / t->stride;
}

static inline uint64_t ti_locate(hier_tier_t *t, uint64_t key)
{
    uint64_t slot;
    uint32_t inc;
    return core_shard_locate(t->dram, key, &slot, &inc) ? slot : UINT64_MAX;
}

static void ti_epoch_next(hier_tier_t *t)
{
    if (++t->epoch == 0)
        t->epoch = 1;
}

static inline void ti_touch(hier_tier_t *t, uint64_t slot, uint64_t now_ns, int write)
{
    ti_slot_t *s = &t->slots[slot];
    s->access_ns = now_ns;
    if (s->freq != UINT32_MAX)
        s->freq++;
    if (write)
        s->flags |= TI_DIRTY;
    s->pin = t->epoch;
}

static inline void ti_slot_reset(hier_tier_t *t, uint64_t slot, uint64_t now_ns, uint32_t freq,
                                 int dirty)
{
    ti_slot_t *s = &t->slots[slot];
    s->access_ns = now_ns;
    s->freq = freq;
    s->flags = dirty ? TI_DIRTY : 0;
    s->pin = t->epoch;
}

/** Order-preserving maps to unsigned integers. */
static inline uint32_t ti_fkey(float f)
{
    uint32_t b;
    memcpy(&b, &f, 4);
    return (b & 0x80000000u) ? ~b : (b | 0x80000000u);
}

static inline uint64_t ti_dkey(double d)
{
    uint64_t b;
    memcpy(&b, &d, 8);
    return (b >> 63) ? ~b : (b | (1ull << 63));
}

/** The row's place in the policy's order: lower leaves DRAM first. */
static uint64_t ti_score_key(const hier_tier_t *t, const hier_row_info_t *in)
{
    uint32_t coarse = (uint32_t)(in->last_access_ns >> 30); /* ~1 s ticks: tie breaker */
    switch (t->cfg.policy) {
    case HIER_POLICY_LFU:
        return (uint64_t)in->freq << 32 | coarse;
    case HIER_POLICY_SCORE:
        return (uint64_t)ti_fkey(in->score) << 32 | coarse;
    case HIER_POLICY_CUSTOM:
        return ti_dkey(t->cfg.score_cb(t->cfg.score_arg, in));
    case HIER_POLICY_LRU:
    default:
        return in->last_access_ns;
    }
}

static void ti_info_dram(const hier_tier_t *t, const core_row_t *row, const core_slot_meta_t *m,
                         uint64_t slot, hier_row_info_t *in)
{
    in->key = row->key;
    in->last_access_ns = t->slots[slot].access_ns;
    in->last_write_ns = m->last_write_ns;
    in->freq = t->slots[slot].freq;
    in->score = m->score;
}

/* ------------------------------------------------------------------------ */
/* demotion                                                                 */
/* ------------------------------------------------------------------------ */

typedef struct ti_pass {
    hier_tier_t *t;
    uint64_t n;           /**< pass 1: scores collected; pass 2: victims chosen */
    uint64_t want;        /**< pass 2: victims wanted */
    uint64_t thresh;      /**< pass 2: score key threshold */
    uint64_t eq_quota;    /**< pass 2: victims allowed at exactly thresh */
    uint64_t *victims;    /**< pass 2: keys to drop from DRAM */
    int age;              /**< pass 1: halve LFU counts */
    uint64_t dirty;       /**< pass 1: dirty rows seen */
    strata_status_t err;  /**< pass 2: write-back failure */
} ti_pass_t;

static int ti_pass1(void *arg, const core_row_t *row, const float *state,
                    const core_slot_meta_t *meta)
{
    (void)state;
    ti_pass_t *p = arg;
    hier_tier_t *t = p->t;
    uint64_t slot = ti_slot_of(t, row);
    ti_slot_t *s = &t->slots[slot];
    if (p->age)
        s->freq >>= 1;
    p->dirty += (s->flags & TI_DIRTY) != 0;
    if (s->pin == t->epoch)
        return 0;
    hier_row_info_t in;
    ti_info_dram(t, row, meta, slot, &in);
    t->scores[p->n++] = ti_score_key(t, &in);
    return 0;
}

/** Write one DRAM row to NVMe. */
static strata_status_t ti_writeback(hier_tier_t *t, const core_row_t *row, const float *state,
                                    const core_slot_meta_t *meta, const ti_slot_t *s)
{
    memcpy(t->vbuf, row->emb, 4ull * t->dim);
    if (t->sf)
        memcpy(t->vbuf + t->dim, state, 4ull * t->sf);
    hier_nvme_meta_t m;
    m.write_ns = meta->last_write_ns;
    m.freq = s->freq;
    m.score = meta->score;
    m.version = 0;
    strata_status_t st = hier_nvme_put(t->nvme, &row->key, 1, t->vbuf, &m, NULL);
    if (st == STRATA_OK)
        ST_ADD(t->n_writebacks, 1);
    return st;
}

static int ti_pass2(void *arg, const core_row_t *row, const float *state,
                    const core_slot_meta_t *meta)
{
    ti_pass_t *p = arg;
    hier_tier_t *t = p->t;
    if (p->n == p->want)
        return 1;
    uint64_t slot = ti_slot_of(t, row);
    ti_slot_t *s = &t->slots[slot];
    if (s->pin == t->epoch)
        return 0;
    hier_row_info_t in;
    ti_info_dram(t, row, meta, slot, &in);
    uint64_t k = ti_score_key(t, &in);
    if (k > p->thresh || (k == p->thresh && p->eq_quota == 0))
        return 0;
    if (k == p->thresh)
        p->eq_quota--;
    if (t->nvme) {
        if ((s->flags & TI_DIRTY) || !hier_nvme_contains(t->nvme, row->key)) {
            strata_status_t st = ti_writeback(t, row, state, meta, s);
            if (st != STRATA_OK) {
                p->err = st;
                return 1; /* this row and the rest stay in DRAM */
            }
        } else {
            ST_ADD(t->n_clean_drops, 1);
        }
    }
    p->victims[p->n++] = row->key;
    return 0;
}

/** k-th smallest (0-based) of a[0..n): partial quickselect. */
static uint64_t ti_select(uint64_t *a, uint64_t n, uint64_t k)
{
    uint64_t lo = 0, hi = n - 1;
    while (lo < hi) {
        uint64_t mid = lo + (hi - lo) / 2;
        /* median of three as pivot */
        uint64_t x = a[lo], y = a[mid], z = a[hi];
        uint64_t piv = (x < y) ? ((y < z) ? y : (x < z ? z : x)) : ((x < z) ? x : (y < z ? z : y));
        uint64_t i = lo, j = hi;
        while (i <= j) {
            while (a[i] < piv)
                i++;
            while (a[j] > piv)
                j--;
            if (i <= j) {
                uint64_t tmp = a[i];
                a[i] = a[j];
                a[j] = tmp;
                i++;
                if (j == 0)
                    break;
                j--;
            }
        }
        if (k <= j)
            hi = j;
        else if (k >= i)
            lo = i;
        else
            return a[k];
    }
    return a[k];
}

/** Make DRAM room for need more rows: demote a batch of the lowest-scored
 *  unpinned rows (at least the excess, plus demote_fraction of the
 *  budget so passes stay rare). */
static strata_status_t ti_room(hier_tier_t *t, uint64_t need)
{
    uint64_t rows = core_shard_rows(t->dram);
    if (rows + need <= t->cap)
        return STRATA_OK;
    if (need > t->cap)
        return core_fail(STRATA_ERR_INTERNAL, "tier: %" PRIu64 " rows asked of a budget of %" PRIu64,
                         need, t->cap);
    uint64_t slack = (uint64_t)((double)t->cap * t->cfg.demote_fraction);
    if (slack < 1)
        slack = 1;
    uint64_t excess = rows + need - t->cap;
    uint64_t want = excess + slack;
    if (want > rows)
        want = rows;
    ti_pass_t p;
    memset(&p, 0, sizeof(p));
    p.t = t;
    /* LFU counts halve once DRAM has turned over ten times (TinyLFU's
     * reset period), so old popularity fades but a scan does not erase it */
    p.age = t->cfg.policy == HIER_POLICY_LFU && t->turnover >= 10 * t->cap;
    if (p.age)
        t->turnover = 0;
    core_shard_iterate(t->dram, ti_pass1, &p);
    ST_SET(t->n_dirty, p.dirty);
    if (p.n < excess)
        return core_fail(STRATA_ERR_FULL,
                         "tier: the batch pins %" PRIu64 " of %" PRIu64 " DRAM rows; no room "
                         "for %" PRIu64 " more",
                         rows - p.n, t->cap, need);
    if (want > p.n)
        want = p.n;
    uint64_t thresh = ti_select(t->scores, p.n, want - 1);
    uint64_t below = 0;
    for (uint64_t i = 0; i < p.n; i++)
        below += t->scores[i] < thresh;
    /* pass 2: victims (keys go to the scores array, no longer needed) */
    p.want = want;
    p.thresh = thresh;
    p.eq_quota = want - below;
    p.victims = t->scores;
    p.n = 0;
    p.err = STRATA_OK;
    core_shard_iterate(t->dram, ti_pass2, &p);
    size_t erased = core_shard_erase(t->dram, p.victims, NULL, p.n);
    (void)erased;
    ST_ADD(t->n_demotions, p.n);
    ST_ADD(t->n_passes, 1);
    t->turnover += p.n;
    t->cutoff = thresh;
    if (p.err != STRATA_OK && core_shard_rows(t->dram) + need > t->cap)
        return p.err;
    if (core_shard_rows(t->dram) + need > t->cap)
        return core_fail(STRATA_ERR_INTERNAL, "tier: demotion freed %" PRIu64 " of %" PRIu64
                         " rows needed", p.n, excess);
    return STRATA_OK;
}

/* ------------------------------------------------------------------------ */
/* create / destroy                                                         */
/* ------------------------------------------------------------------------ */

strata_status_t hier_tier_create(const hier_tier_config_t *cfg, hier_tier_t **tier_p)
{
    strata_status_t st;
    if (!cfg || !tier_p)
        return core_fail(STRATA_ERR_INVALID_PARAM, "hier_tier_create: NULL argument");
    if (cfg->dram.capacity < 2)
        return core_fail(STRATA_ERR_INVALID_PARAM, "tier DRAM budget = %" PRIu64 " rows: need >= 2",
                         cfg->dram.capacity);
    if (cfg->policy == HIER_POLICY_CUSTOM && !cfg->score_cb)
        return core_fail(STRATA_ERR_INVALID_PARAM, "tier policy CUSTOM needs score_cb");
    if ((unsigned)cfg->policy > HIER_POLICY_CUSTOM)
        return core_fail(STRATA_ERR_INVALID_PARAM, "tier policy %d unknown", (int)cfg->policy);
    hier_tier_t *t = core_calloc(1, sizeof(*t));
    if (!t)
        return core_fail(STRATA_ERR_NOMEM, "tier: out of memory");
    t->cfg = *cfg;
    if (t->cfg.demote_fraction <= 0 || t->cfg.demote_fraction > 0.5)
        t->cfg.demote_fraction = 1.0 / 32;
    t->cfg.dram.eviction = STRATA_EVICT_NONE; /* the tier moves rows, the shard never drops one */
    t->dim = cfg->dram.dim;
    t->sf = core_optim_state_floats(cfg->dram.optimizer.type, cfg->dram.dim);
    t->vf = t->dim + t->sf;
    t->cap = cfg->dram.capacity;
    t->chunk = t->cap / 2 < TI_CHUNK ? t->cap / 2 : TI_CHUNK;
    t->epoch = 1;
    st = core_shard_create(&t->cfg.dram, &t->dram);
    if (st != STRATA_OK)
        goto err_tier;
    core_shard_layout_t lay;
    core_shard_get_layout(t->dram, &lay);
    t->arena = lay.arena->base;
    t->stride = lay.stride;
    st = core_region_alloc(&core_region_ops_default, t->cap * sizeof(ti_slot_t), 0,
                           &t->slots_region);
    if (st != STRATA_OK)
        goto err_shard;
    t->slots = t->slots_region.base;
    st = core_region_alloc(&core_region_ops_default, t->cap * sizeof(uint64_t), 0,
                           &t->scores_region);
    if (st != STRATA_OK)
        goto err_slots;
    t->scores = t->scores_region.base;
    t->vbuf = core_malloc(4ull * t->vf);
    if (!t->vbuf) {
        st = core_fail(STRATA_ERR_NOMEM, "tier: out of memory");
        goto err_scores;
    }
    if (t->cfg.policy == HIER_POLICY_LFU) {
        st = core_sketch_create(t->cap, &t->sketch);
        if (st != STRATA_OK)
            goto err_vbuf;
    }
    if (cfg->nvme.dir) {
        snprintf(t->nvme_dir, sizeof(t->nvme_dir), "%s", cfg->nvme.dir);
        hier_nvme_config_t nc = cfg->nvme;
        nc.dir = t->nvme_dir;
        nc.value_bytes = 4u * t->vf;
        nc.ttl_ns = cfg->dram.ttl_ns;
        t->cfg.nvme = nc;
        st = hier_nvme_open(&nc, &t->nvme);
        if (st != STRATA_OK)
            goto err_sketch;
    }
    *tier_p = t;
    return STRATA_OK;

err_sketch:
    core_sketch_destroy(t->sketch);
err_vbuf:
    core_free(t->vbuf);
err_scores:
    core_region_free(&core_region_ops_default, &t->scores_region);
err_slots:
    core_region_free(&core_region_ops_default, &t->slots_region);
err_shard:
    core_shard_destroy(t->dram);
err_tier:
    core_free(t);
    return st;
}

void hier_tier_destroy(hier_tier_t *t)
{
    if (!t)
        return;
    hier_nvme_close(t->nvme);
    core_sketch_destroy(t->sketch);
    core_free(t->vbuf);
    core_region_free(&core_region_ops_default, &t->scores_region);
    core_region_free(&core_region_ops_default, &t->slots_region);
    core_shard_destroy(t->dram);
    core_free(t->s_keys);
    core_free(t->s_keys2);
    core_free(t->s_pos);
    core_free(t->s_list);
    core_free(t->s_list2);
    core_free(t->s_u8);
    core_free(t->s_u8b);
    core_free(t->s_oc);
    core_free(t->s_rows);
    core_free(t->s_vals);
    core_free(t->s_meta);
    core_free(t->s_info);
    core_free(t);
}

core_shard_t *hier_tier_dram(hier_tier_t *t)
{
    return t->dram;
}

int hier_tier_has_nvme(const hier_tier_t *t)
{
    return t->nvme != NULL;
}

hier_nvme_t *hier_tier_nvme(hier_tier_t *t)
{
    return t->nvme;
}

/* ------------------------------------------------------------------------ */
/* lookup                                                                   */
/* ------------------------------------------------------------------------ */

/** Promote an NVMe row (value v: embedding then state) into DRAM, clean. */
static strata_status_t ti_promote(hier_tier_t *t, uint64_t key, const float *v,
                                  const hier_nvme_meta_t *m, uint32_t freq, uint64_t now_ns)
{
    core_slot_meta_t cm;
    cm.last_write_ns = m->write_ns;
    cm.freq = freq;
    cm.score = m->score;
    strata_status_t st = core_shard_restore_row(t->dram, key, v, t->sf ? v + t->dim : NULL, &cm);
    if (st == STRATA_ERR_EXISTS)
        return STRATA_OK; /* a duplicate in the batch: promoted already */
    if (st != STRATA_OK)
        return st;
    uint64_t slot = ti_locate(t, key);
    if (slot != UINT64_MAX)
        ti_slot_reset(t, slot, now_ns, freq, 0);
    ST_ADD(t->n_promotions, 1);
    return STRATA_OK;
}

/** Promotion rule for a lookup's NVMe hit (tier.h): *freq gets its count. */
static int ti_should_promote(hier_tier_t *t, uint64_t key, const hier_nvme_meta_t *m,
                             uint64_t now_ns, uint64_t pending, uint32_t *freq)
{
    uint32_t f = m->freq;
    if (t->sketch) {
        uint32_t e = core_sketch_add(t->sketch, key);
        if (e > f)
            f = e;
    }
    if (f != UINT32_MAX)
        f++;
    *freq = f;
    if (t->cfg.policy == HIER_POLICY_LRU || t->cutoff == 0)
        return 1;
    if (core_shard_rows(t->dram) + pending < t->cap)
        return 1; /* free room costs no demotion */
    hier_row_info_t in = {key, now_ns, m->write_ns, f, m->score};
    return ti_score_key(t, &in) >= t->cutoff;
}

static strata_status_t ti_lookup_chunk(hier_tier_t *t, const uint64_t *keys, const uint32_t *idx,
                                       size_t base, size_t m, float *out, uint8_t *found,
                                       uint64_t now_ns, uint32_t flags)
{
    const uint32_t dim = t->dim;
    const size_t rb = 4ull * dim;
    strata_status_t ret = STRATA_OK;
    ti_epoch_next(t);
    uint64_t *K = t->s_keys;
    uint32_t *P = t->s_pos;
    uint8_t *oc = t->s_oc;
    for (size_t j = 0; j < m; j++) {
        P[j] = (uint32_t)ITEM(idx, base + j);
        K[j] = keys[P[j]];
    }
    /* L: items still to find (indexes into K/P) */
    uint32_t *L = t->s_list, nl = 0;
    if (t->cfg.upper) {
        uint8_t *hit = t->s_u8;
        memset(hit, 0, m);
        t->cfg.upper->lookup(t->cfg.upper_arg, K, m, t->s_rows, hit);
        uint64_t hits = 0;
        for (size_t j = 0; j < m; j++) {
            if (hit[j]) {
                memcpy(out + (size_t)P[j] * dim, t->s_rows + j * dim, rb);
                oc[j] = STRATA_ROW_FOUND;
                hits++;
            } else {
                L[nl++] = (uint32_t)j;
            }
        }
        ST_ADD(t->n_upper_hits, hits);
        ST_ADD(t->n_upper_misses, m - hits);
    } else {
        for (size_t j = 0; j < m; j++)
            L[nl++] = (uint32_t)j;
    }
    if (nl == 0)
        goto done;

    /* DRAM (the lock-free batch read; this thread is also the writer) */
    uint64_t *K2 = t->s_keys2;
    for (uint32_t x = 0; x < nl; x++)
        K2[x] = K[L[x]];
    uint8_t *f2 = t->s_u8b;
    core_shard_t *sh = t->dram;
    size_t dh = core_lookup_batch(&sh, 1, K2, nl, t->s_rows, f2, now_ns);
    uint32_t *M = t->s_list2, nm = 0;
    for (uint32_t x = 0; x < nl; x++) {
        uint32_t j = L[x];
        if (f2[x] == STRATA_ROW_FOUND) {
            memcpy(out + (size_t)P[j] * dim, t->s_rows + (size_t)x * dim, rb);
            oc[j] = STRATA_ROW_FOUND;
            uint64_t slot = ti_locate(t, K[j]);
            if (slot != UINT64_MAX)
                ti_touch(t, slot, now_ns, 0);
        } else {
            M[nm++] = j;
        }
    }
    ST_ADD(t->n_dram_hits, dh);
    ST_ADD(t->n_dram_misses, nl - dh);

    /* NVMe: one batched read for every DRAM miss */
    uint32_t *A = L, na = 0;     /* absent everywhere (reuses L) */
    uint32_t npromote = 0;
    uint8_t *nst = t->s_u8;
    if (t->nvme && nm) {
        for (uint32_t x = 0; x < nm; x++)
            K2[x] = K[M[x]];
        strata_status_t gs = hier_nvme_get(t->nvme, K2, nm, t->s_vals, t->s_meta, nst, now_ns);
        if (gs != STRATA_OK && gs != STRATA_ERR_CORRUPT && gs != STRATA_ERR_IO)
            return gs; /* the ring broke */
        uint64_t hits = 0, corrupt = 0;
        for (uint32_t x = 0; x < nm; x++) {
            uint32_t j = M[x];
            if (nst[x] == HIER_NVME_FOUND) {
                hits++;
                memcpy(out + (size_t)P[j] * dim, t->s_vals + (size_t)x * t->vf, rb);
                oc[j] = STRATA_ROW_FOUND;
                uint32_t freq;
                if (ti_should_promote(t, K[j], &t->s_meta[x], now_ns, npromote, &freq)) {
                    t->s_meta[x].freq = freq;
                    t->s_meta[x].version = 1; /* marks "promote" below */
                    npromote++;
                } else {
                    t->s_meta[x].version = 0;
                    ST_ADD(t->n_served_nvme, 1);
                }
            } else if (nst[x] == HIER_NVME_ABSENT) {
                A[na++] = j;
            } else {
                corrupt++;
                core_init_row(&t->cfg.dram.initializer, K[j], out + (size_t)P[j] * dim, dim);
                oc[j] = STRATA_ROW_MISSING;
                if (ret == STRATA_OK)
                    ret = gs;
            }
        }
        ST_ADD(t->n_nvme_hits, hits);
        ST_ADD(t->n_corrupt, corrupt);
    } else {
        for (uint32_t x = 0; x < nm; x++)
            A[na++] = M[x];
    }
    ST_ADD(t->n_nvme_misses, na);

    /* room for promotions and creations, then do them */
    int create = (flags & HIER_LOOKUP_CREATE) != 0;
    uint64_t need = npromote + (create ? na : 0);
    if (need) {
        strata_status_t st = ti_room(t, need);
        if (st != STRATA_OK)
            return st;
    }
    if (npromote) {
        for (uint32_t x = 0; x < nm; x++) {
            if (nst[x] != HIER_NVME_FOUND || t->s_meta[x].version != 1)
                continue;
            strata_status_t st = ti_promote(t, K2[x], t->s_vals + (size_t)x * t->vf,
                                            &t->s_meta[x], t->s_meta[x].freq, now_ns);
            if (st != STRATA_OK)
                return st;
        }
    }
    if (na) {
        for (uint32_t x = 0; x < na; x++)
            K2[x] = K[A[x]];
        if (create) {
            uint8_t *fc = t->s_u8b;
            strata_status_t st =
                core_shard_find_or_insert(t->dram, K2, NULL, na, t->s_rows, fc, now_ns, true);
            if (st != STRATA_OK)
                return st;
            uint64_t created = 0;
            for (uint32_t x = 0; x < na; x++) {
                uint32_t j = A[x];
                memcpy(out + (size_t)P[j] * dim, t->s_rows + (size_t)x * dim, rb);
                oc[j] = fc[x];
                if (fc[x] == STRATA_ROW_CREATED) {
                    created++;
                    uint64_t slot = ti_locate(t, K2[x]);
                    if (slot != UINT64_MAX)
                        ti_slot_reset(t, slot, now_ns, 1, 1);
                }
            }
            ST_ADD(t->n_created, created);
        } else {
            for (uint32_t x = 0; x < na; x++) {
                uint32_t j = A[x];
                core_init_row(&t->cfg.dram.initializer, K2[x], out + (size_t)P[j] * dim, dim);
                oc[j] = STRATA_ROW_MISSING;
            }
        }
    }
    /* offer what was read below to the level above */
    if (t->cfg.upper && t->cfg.upper->offer) {
        uint32_t no = 0;
        for (size_t j = 0; j < m; j++) {
            if (oc[j] != STRATA_ROW_FOUND && oc[j] != STRATA_ROW_CREATED)
                continue;
            K2[no] = K[j];
            memcpy(t->s_rows + (size_t)no * dim, out + (size_t)P[j] * dim, rb);
            hier_row_info_t *in = &t->s_info[no];
            memset(in, 0, sizeof(*in));
            in->key = K[j];
            in->last_access_ns = now_ns;
            no++;
        }
        if (no)
            t->cfg.upper->offer(t->cfg.upper_arg, K2, no, t->s_rows, t->s_info);
    }
done:
    if (found)
        for (size_t j = 0; j < m; j++)
            found[P[j]] = oc[j];
    return ret;
}

strata_status_t hier_tier_lookup(hier_tier_t *t, const uint64_t *keys, const uint32_t *idx,
                                 size_t n, float *out, uint8_t *found, uint64_t now_ns,
                                 uint32_t flags)
{
    if (n && (!keys || !out))
        return core_fail(STRATA_ERR_INVALID_PARAM, "hier_tier_lookup: NULL keys or out");
    strata_status_t st = ti_scratch(t, n < t->chunk ? n : t->chunk);
    if (st != STRATA_OK)
        return st;
    strata_status_t ret = STRATA_OK;
    char msg[512] = "";
    for (size_t base = 0; base < n; base += t->chunk) {
        size_t m = n - base < t->chunk ? n - base : t->chunk;
        st = ti_lookup_chunk(t, keys, idx, base, m, out, found, now_ns, flags);
        if (st == STRATA_ERR_CORRUPT || st == STRATA_ERR_IO) {
            if (ret == STRATA_OK) {
                ret = st;
                snprintf(msg, sizeof(msg), "%s", strata_last_error());
            }
            continue; /* the other rows are served */
        }
        if (st != STRATA_OK)
            return st;
    }
    if (ret != STRATA_OK)
        return core_fail(ret, "%s", msg);
    return STRATA_OK;
}

/* ------------------------------------------------------------------------ */
/* writers                                                                  */
/* ------------------------------------------------------------------------ */

/** Pin the DRAM rows of items [base, base+m), promote the NVMe-resident
 *  ones and make room for those to be created. *absent gets how many are
 *  in no tier. Nothing is changed when an error is returned, except
 *  demotions and promotions (which change no value). */
static strata_status_t ti_prepare_write(hier_tier_t *t, const uint64_t *keys, const uint32_t *idx,
                                        size_t base, size_t m, uint64_t now_ns, int promote)
{
    ti_epoch_next(t);
    uint64_t *K = t->s_keys2;
    uint32_t np = 0;
    uint64_t absent = 0;
    for (size_t j = 0; j < m; j++) {
        uint64_t key = keys[ITEM(idx, base + j)];
        uint64_t slot = ti_locate(t, key);
        if (slot != UINT64_MAX) {
            t->slots[slot].pin = t->epoch;
            continue;
        }
        if (promote && t->nvme && hier_nvme_contains(t->nvme, key))
            K[np++] = key;
        else
            absent++;
    }
    uint8_t *nst = t->s_u8;
    uint32_t nfound = 0;
    if (np) {
        strata_status_t gs = hier_nvme_get(t->nvme, K, np, t->s_vals, t->s_meta, nst, now_ns);
        if (gs != STRATA_OK) {
            uint64_t bad = 0;
            for (uint32_t x = 0; x < np; x++)
                bad += nst[x] == HIER_NVME_CORRUPT || nst[x] == HIER_NVME_IOERR;
            ST_ADD(t->n_corrupt, bad);
            return gs; /* nothing applied: the caller reports it */
        }
        for (uint32_t x = 0; x < np; x++) {
            if (nst[x] == HIER_NVME_FOUND)
                nfound++;
            else
                absent++; /* expired meanwhile */
        }
    }
    strata_status_t st = ti_room(t, nfound + absent);
    if (st != STRATA_OK)
        return st;
    for (uint32_t x = 0; x < np; x++) {
        if (nst[x] != HIER_NVME_FOUND)
            continue;
        uint32_t f = t->s_meta[x].freq;
        st = ti_promote(t, K[x], t->s_vals + (size_t)x * t->vf, &t->s_meta[x],
                        f != UINT32_MAX ? f + 1 : f, now_ns);
        if (st != STRATA_OK)
            return st;
    }
    ST_ADD(t->n_nvme_hits, nfound);
    return STRATA_OK;
}

/** After a write of items [base, base+m): mark their DRAM rows dirty and
 *  touched; tell the level above. */
static void ti_finish_write(hier_tier_t *t, const uint64_t *keys, const uint32_t *idx,
                            size_t base, size_t m, uint64_t now_ns)
{
    uint64_t *K = t->s_keys;
    for (size_t j = 0; j < m; j++) {
        uint64_t key = keys[ITEM(idx, base + j)];
        K[j] = key;
        uint64_t slot = ti_locate(t, key);
        if (slot == UINT64_MAX)
            continue; /* not admitted */
        if (t->slots[slot].pin != t->epoch)
            ti_slot_reset(t, slot, now_ns, 0, 1); /* created by this write */
        ti_touch(t, slot, now_ns, 1);
    }
    if (t->cfg.upper && t->cfg.upper->invalidate)
        t->cfg.upper->invalidate(t->cfg.upper_arg, K, m);
}

strata_status_t hier_tier_apply(hier_tier_t *t, const uint64_t *keys, const uint32_t *idx,
                                const float *grads, size_t n, uint64_t now_ns)
{
    strata_status_t st = ti_scratch(t, n < t->chunk ? n : t->chunk);
    if (st != STRATA_OK)
        return st;
    for (size_t base = 0; base < n; base += t->chunk) {
        size_t m = n - base < t->chunk ? n - base : t->chunk;
        st = ti_prepare_write(t, keys, idx, base, m, now_ns, 1);
        if (st != STRATA_OK)
            return st;
        core_shard_stats_t before;
        core_shard_get_stats(t->dram, &before);
        if (idx)
            st = core_shard_apply(t->dram, keys, idx + base, grads, m, now_ns);
        else
            st = core_shard_apply(t->dram, keys + base, NULL, grads + base * t->dim, m, now_ns);
        core_shard_stats_t after;
        core_shard_get_stats(t->dram, &after);
        ST_ADD(t->n_created, after.inserts - before.inserts);
        ti_finish_write(t, keys, idx, base, m, now_ns);
        if (st != STRATA_OK)
            return st;
    }
    return STRATA_OK;
}

strata_status_t hier_tier_assign(hier_tier_t *t, const uint64_t *keys, const uint32_t *idx,
                                 const float *rows, size_t n, uint64_t now_ns)
{
    strata_status_t st = ti_scratch(t, n < t->chunk ? n : t->chunk);
    if (st != STRATA_OK)
        return st;
    for (size_t base = 0; base < n; base += t->chunk) {
        size_t m = n - base < t->chunk ? n - base : t->chunk;
        st = ti_prepare_write(t, keys, idx, base, m, now_ns, 0);
        if (st != STRATA_OK)
            return st;
        if (idx)
            st = core_shard_assign(t->dram, keys, idx + base, rows, m, now_ns);
        else
            st = core_shard_assign(t->dram, keys + base, NULL, rows + base * t->dim, m, now_ns);
        ti_finish_write(t, keys, idx, base, m, now_ns);
        if (st != STRATA_OK)
            return st;
    }
    return STRATA_OK;
}

strata_status_t hier_tier_erase(hier_tier_t *t, const uint64_t *keys, const uint32_t *idx,
                                size_t n, size_t *erased)
{
    strata_status_t st = ti_scratch(t, n < 4096 ? n : 4096);
    if (st != STRATA_OK)
        return st;
    size_t count = 0;
    for (size_t base = 0; base < n; base += 4096) {
        size_t m = n - base < 4096 ? n - base : 4096;
        uint64_t *K = t->s_keys;
        for (size_t j = 0; j < m; j++) {
            K[j] = keys[ITEM(idx, base + j)];
            int present = ti_locate(t, K[j]) != UINT64_MAX ||
                          (t->nvme && hier_nvme_contains(t->nvme, K[j]));
            /* duplicates count once */
            for (size_t x = 0; x < j && present; x++)
                present = K[x] != K[j];
            count += (size_t)present;
        }
        if (t->nvme) {
            st = hier_nvme_erase(t->nvme, K, m, NULL);
            if (st != STRATA_OK)
                return st; /* DRAM untouched: the erase can be retried */
        }
        core_shard_erase(t->dram, K, NULL, m);
        if (t->cfg.upper && t->cfg.upper->invalidate)
            t->cfg.upper->invalidate(t->cfg.upper_arg, K, m);
    }
    if (erased)
        *erased = count;
    return STRATA_OK;
}

strata_status_t hier_tier_set_scores(hier_tier_t *t, const uint64_t *keys, const uint32_t *idx,
                                     const float *scores, size_t n, uint64_t now_ns)
{
    strata_status_t st = ti_scratch(t, 1);
    if (st != STRATA_OK)
        return st;
    for (size_t i = 0; i < n; i++) {
        size_t p = ITEM(idx, i);
        uint64_t key = keys[p];
        uint64_t slot = ti_locate(t, key);
        if (slot != UINT64_MAX) {
            core_shard_set_scores(t->dram, &key, NULL, &scores[p], 1);
            t->slots[slot].flags |= TI_DIRTY;
            continue;
        }
        if (!t->nvme || !hier_nvme_contains(t->nvme, key))
            continue;
        /* NVMe-resident: rewrite the record with the new score */
        uint8_t s8;
        hier_nvme_meta_t m;
        st = hier_nvme_get(t->nvme, &key, 1, t->s_vals, &m, &s8, now_ns);
        if (st != STRATA_OK)
            return st;
        if (s8 != HIER_NVME_FOUND)
            continue;
        m.score = scores[p];
        st = hier_nvme_put(t->nvme, &key, 1, t->s_vals, &m, NULL);
        if (st != STRATA_OK)
            return st;
    }
    return STRATA_OK;
}

strata_status_t hier_tier_expire(hier_tier_t *t, uint64_t now_ns, size_t *expired)
{
    size_t e = core_shard_expire(t->dram, now_ns), en = 0;
    strata_status_t st = STRATA_OK;
    if (t->nvme)
        st = hier_nvme_expire(t->nvme, now_ns, &en);
    if (expired)
        *expired = e + en;
    return st;
}

/* ------------------------------------------------------------------------ */
/* flush, accept, iterate                                                   */
/* ------------------------------------------------------------------------ */

typedef struct ti_flush {
    hier_tier_t *t;
    strata_status_t err;
    uint64_t written;
} ti_flush_t;

static int ti_flush_row(void *arg, const core_row_t *row, const float *state,
                        const core_slot_meta_t *meta)
{
    ti_flush_t *f = arg;
    hier_tier_t *t = f->t;
    ti_slot_t *s = &t->slots[ti_slot_of(t, row)];
    if (!(s->flags & TI_DIRTY))
        return 0;
    strata_status_t st = ti_writeback(t, row, state, meta, s);
    if (st != STRATA_OK) {
        f->err = st;
        return 1;
    }
    s->flags &= (uint16_t)~TI_DIRTY;
    f->written++;
    return 0;
}

strata_status_t hier_tier_flush(hier_tier_t *t)
{
    if (!t->nvme)
        return STRATA_OK;
    ti_flush_t f = {t, STRATA_OK, 0};
    core_shard_iterate(t->dram, ti_flush_row, &f);
    if (f.err != STRATA_OK)
        return f.err;
    strata_status_t st = hier_nvme_sync(t->nvme);
    if (st == STRATA_OK)
        ST_SET(t->n_dirty, 0);
    return st;
}

strata_status_t hier_tier_accept(hier_tier_t *t, const uint64_t *keys, size_t n,
                                 const float *emb, const float *state,
                                 const hier_row_info_t *info, uint64_t now_ns)
{
    for (size_t i = 0; i < n; i++) {
        ti_epoch_next(t);
        uint64_t slot = ti_locate(t, keys[i]);
        if (slot != UINT64_MAX)
            core_shard_erase(t->dram, &keys[i], NULL, 1); /* replaced by the newer row */
        strata_status_t st = ti_room(t, 1);
        if (st != STRATA_OK)
            return st;
        core_slot_meta_t cm;
        cm.last_write_ns = info ? info[i].last_write_ns : now_ns;
        cm.freq = info ? info[i].freq : 1;
        cm.score = info ? info[i].score : 0.0f;
        st = core_shard_restore_row(t->dram, keys[i], emb + i * (size_t)t->dim,
                                    state && t->sf ? state + i * (size_t)t->sf : NULL, &cm);
        if (st != STRATA_OK)
            return st;
        slot = ti_locate(t, keys[i]);
        if (slot != UINT64_MAX)
            ti_slot_reset(t, slot, info ? info[i].last_access_ns : now_ns, cm.freq, 1);
    }
    return STRATA_OK;
}

typedef struct ti_iter {
    hier_tier_t *t;
    hier_tier_iter_cb_t cb;
    void *arg;
    int stopped;
} ti_iter_t;

static int ti_iter_dram(void *arg, const core_row_t *row, const float *state,
                        const core_slot_meta_t *meta)
{
    ti_iter_t *it = arg;
    hier_row_info_t in;
    ti_info_dram(it->t, row, meta, ti_slot_of(it->t, row), &in);
    if (it->cb(it->arg, row->key, row->emb, state, &in)) {
        it->stopped = 1;
        return 1;
    }
    return 0;
}

static int ti_iter_nvme(void *arg, uint64_t key, const void *value, const hier_nvme_meta_t *m)
{
    ti_iter_t *it = arg;
    if (ti_locate(it->t, key) != UINT64_MAX)
        return 0; /* visited in DRAM (the newer or equal copy) */
    const float *v = value;
    hier_row_info_t in = {key, m->write_ns, m->write_ns, m->freq, m->score};
    if (it->cb(it->arg, key, v, it->t->sf ? v + it->t->dim : NULL, &in)) {
        it->stopped = 1;
        return 1;
    }
    return 0;
}

strata_status_t hier_tier_iterate(hier_tier_t *t, hier_tier_iter_cb_t cb, void *arg)
{
    ti_iter_t it = {t, cb, arg, 0};
    core_shard_iterate(t->dram, ti_iter_dram, &it);
    if (it.stopped || !t->nvme)
        return STRATA_OK;
    return hier_nvme_iterate(t->nvme, ti_iter_nvme, &it);
}

/* ------------------------------------------------------------------------ */
/* stats, check                                                             */
/* ------------------------------------------------------------------------ */

void hier_tier_get_stats(hier_tier_t *t, hier_tier_stats_t *o)
{
    memset(o, 0, sizeof(*o));
    o->upper_hits = ST_GET(t->n_upper_hits);
    o->upper_misses = ST_GET(t->n_upper_misses);
    o->dram_hits = ST_GET(t->n_dram_hits);
    o->dram_misses = ST_GET(t->n_dram_misses);
    o->nvme_hits = ST_GET(t->n_nvme_hits);
    o->nvme_misses = ST_GET(t->n_nvme_misses);
    o->promotions = ST_GET(t->n_promotions);
    o->served_from_nvme = ST_GET(t->n_served_nvme);
    o->demotions = ST_GET(t->n_demotions);
    o->writebacks = ST_GET(t->n_writebacks);
    o->clean_drops = ST_GET(t->n_clean_drops);
    o->created = ST_GET(t->n_created);
    o->demote_passes = ST_GET(t->n_passes);
    o->corrupt_rows = ST_GET(t->n_corrupt);
    o->dirty_rows = ST_GET(t->n_dirty);
    o->dram_rows = core_shard_rows(t->dram);
    o->dram_capacity = t->cap;
    core_shard_get_stats(t->dram, &o->dram);
    if (t->nvme)
        hier_nvme_get_stats(t->nvme, &o->nvme);
}

typedef struct ti_check {
    hier_tier_t *t;
    strata_status_t st;
} ti_check_t;

static int ti_check_row(void *arg, const core_row_t *row, const float *state,
                        const core_slot_meta_t *meta)
{
    (void)state;
    (void)meta;
    ti_check_t *c = arg;
    hier_tier_t *t = c->t;
    const ti_slot_t *s = &t->slots[ti_slot_of(t, row)];
    if (t->nvme && !(s->flags & TI_DIRTY) && !t->cfg.dram.ttl_ns &&
        !hier_nvme_contains(t->nvme, row->key)) {
        c->st = core_fail(STRATA_ERR_INTERNAL,
                          "tier: key %" PRIu64 " is clean in DRAM but has no NVMe copy",
                          row->key);
        return 1;
    }
    return 0;
}

strata_status_t hier_tier_check(hier_tier_t *t)
{
    strata_status_t st = core_shard_check(t->dram);
    if (st != STRATA_OK)
        return st;
    if (core_shard_rows(t->dram) > t->cap)
        return core_fail(STRATA_ERR_INTERNAL, "tier: %" PRIu64 " DRAM rows over a budget of %" PRIu64,
                         core_shard_rows(t->dram), t->cap);
    core_shard_stats_t cs;
    core_shard_get_stats(t->dram, &cs);
    if (cs.evictions)
        return core_fail(STRATA_ERR_INTERNAL, "tier: the DRAM shard evicted %" PRIu64 " rows itself",
                         cs.evictions);
    ti_check_t c = {t, STRATA_OK};
    core_shard_iterate(t->dram, ti_check_row, &c);
    return c.st;
}
