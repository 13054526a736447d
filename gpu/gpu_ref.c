/*
 * gpu/gpu_ref.c — the host model of the HBM table (gpu_ref.h).
 *
 * Each function follows, for one key, the steps the corresponding kernel
 * of gpu_table.cu takes (probe by digest, then scan keys, then claim a
 * free slot or evict under the bucket lock); the atomics and retries of
 * the kernels collapse to plain stores because nothing runs concurrently
 * here. Keep the two in step when either changes.
 *
 * Invariants: those of gpu_logic.h (gpu_ref_check verifies them).
 *
 * Threading: one thread per model.
 */
#include "gpu/gpu_ref.h"

#include <stdlib.h>
#include <string.h>

#include "core/status.h"
#include "gpu/gpu_logic.h"

strata_status_t gpu_ref_create(const gpu_table_config_t *config, gpu_ref_t **ref_p)
{
    const uint64_t fm = config->field_mask;
    if (!(fm & GPU_TABLE_FIELD_DIM) || config->dim == 0 || config->dim > STRATA_DIM_MAX)
        return core_fail(STRATA_ERR_INVALID_PARAM, "dim must be 1..%u", STRATA_DIM_MAX);
    if (!(fm & GPU_TABLE_FIELD_CAPACITY) || config->capacity == 0)
        return core_fail(STRATA_ERR_INVALID_PARAM, "capacity must be >= 1");
    strata_optimizer_params_t opt;
    memset(&opt, 0, sizeof(opt));
    if (fm & GPU_TABLE_FIELD_OPTIMIZER)
        opt = config->optimizer;
    core_optim_resolve(&opt, &opt);
    strata_status_t st = core_optim_validate(&opt);
    if (st != STRATA_OK)
        return st;
    gpu_ref_t *r = calloc(1, sizeof(*r));
    if (!r)
        return core_fail(STRATA_ERR_NOMEM, "gpu_ref: out of memory");
    r->nbuckets = gpu_nbuckets_for(config->capacity);
    r->nslots = r->nbuckets * GPU_BUCKET_SLOTS;
    r->dim = config->dim;
    r->opt = opt;
    r->state_floats = core_optim_state_floats(opt.type, config->dim);
    r->policy = (fm & GPU_TABLE_FIELD_EVICTION) ? config->eviction : STRATA_EVICT_LRU;
    r->step = 1;
    r->keys = malloc(r->nslots * sizeof(uint64_t));
    r->scores = calloc(r->nslots, sizeof(uint64_t));
    r->digests = calloc(r->nbuckets * GPU_DIGEST_WORDS, sizeof(uint32_t));
    r->values = calloc(r->nslots * r->dim, sizeof(float));
    r->state = calloc(r->nslots * (r->state_floats ? r->state_floats : 1), sizeof(float));
    r->flags = calloc(r->nslots, 1);
    if (!r->keys || !r->scores || !r->digests || !r->values || !r->state || !r->flags) {
        gpu_ref_destroy(r);
        return core_fail(STRATA_ERR_NOMEM, "gpu_ref: out of memory");
    }
    for (uint64_t i = 0; i < r->nslots; i++)
        r->keys[i] = GPU_KEY_EMPTY;
    *ref_p = r;
    return STRATA_OK;
}

void gpu_ref_destroy(gpu_ref_t *r)
{
    if (!r)
        return;
    free(r->keys);
    free(r->scores);
    free(r->digests);
    free(r->values);
    free(r->state);
    free(r->flags);
    free(r);
}

void gpu_ref_next_step(gpu_ref_t *r)
{
    r->step++;
}

int64_t gpu_ref_slot(const gpu_ref_t *r, uint64_t key)
{
    if (!gpu_key_storable(key))
        return -1;
    const uint64_t h = core_key_hash(key);
    const uint64_t b = gpu_bucket_of(h, r->nbuckets);
    int32_t s = gpu_probe(r->digests + b * GPU_DIGEST_WORDS, r->keys + b * GPU_BUCKET_SLOTS, key,
                          gpu_digest(h), gpu_start_slot(h));
    return s >= 0 ? (int64_t)(b * GPU_BUCKET_SLOTS + (uint64_t)s) : -1;
}

int gpu_ref_find(const gpu_ref_t *r, uint64_t key, float *out)
{
    int64_t slot = gpu_ref_slot(r, key);
    if (slot < 0)
        return 0;
    if (out)
        memcpy(out, r->values + (uint64_t)slot * r->dim, 4ull * r->dim);
    return 1;
}

/** Write a claimed slot (the kernel's write_slot): row, state, score,
 *  digest, dirty bit. */
static void write_slot(gpu_ref_t *r, uint64_t b, uint32_t s, uint64_t key, uint32_t dg,
                       const float *row, const float *state, uint64_t score)
{
    const uint64_t idx = b * GPU_BUCKET_SLOTS + s;
    memcpy(r->values + idx * r->dim, row, 4ull * r->dim);
    float *st = r->state + idx * r->state_floats;
    if (state)
        memcpy(st, state, 4ull * r->state_floats);
    else
        gpu_optim_init_state(&r->opt, r->dim, st);
    r->scores[idx] = score;
    uint32_t *w = &r->digests[b * GPU_DIGEST_WORDS + (s >> 2)];
    *w = gpu_digest_word_with(*w, s, dg);
    r->flags[idx] |= GPU_FLAG_DIRTY;
    r->keys[idx] = key;
}

int gpu_ref_insert(gpu_ref_t *r, uint64_t key, const float *row, const float *state,
                   int has_score, uint64_t score, uint64_t *evicted_p)
{
    if (evicted_p)
        *evicted_p = GPU_KEY_EMPTY;
    if (!gpu_key_storable(key))
        return GPU_INSERT_REJECTED;
    const uint64_t h = core_key_hash(key);
    const uint64_t b = gpu_bucket_of(h, r->nbuckets);
    const uint32_t start = gpu_start_slot(h), dg = gpu_digest(h);
    uint64_t *keys = r->keys + b * GPU_BUCKET_SLOTS;
    uint64_t *scores = r->scores + b * GPU_BUCKET_SLOTS;

    /* 1. present (digest probe, then the authoritative key scan) */
    int32_t s = gpu_probe(r->digests + b * GPU_DIGEST_WORDS, keys, key, dg, start);
    gpu_scan_t sc = gpu_scan_keys(keys, key, start);
    if (s < 0)
        s = sc.match;
    if (s >= 0) {
        uint64_t sco = gpu_score_touch(r->policy, scores[s], r->step, has_score, score);
        write_slot(r, b, (uint32_t)s, key, dg, row, state, sco);
        return GPU_INSERT_ASSIGNED;
    }
    const uint64_t sco = gpu_score_new(r->policy, r->step, has_score, score);
    /* 2. the first free slot in probe order */
    if (sc.empty >= 0) {
        write_slot(r, b, (uint32_t)sc.empty, key, dg, row, state, sco);
        return GPU_INSERT_INSERTED;
    }
    /* 3. full bucket: the lowest score, if the new key is admitted */
    uint64_t min = 0;
    uint32_t victim = gpu_evict_choice(scores, start, &min);
    if (!gpu_admit(r->policy, sco, min))
        return GPU_INSERT_REJECTED;
    if (evicted_p)
        *evicted_p = keys[victim];
    write_slot(r, b, victim, key, dg, row, state, sco);
    return GPU_INSERT_EVICTED;
}

int gpu_ref_apply(gpu_ref_t *r, uint64_t key, const float *grad)
{
    int64_t slot = gpu_ref_slot(r, key);
    if (slot < 0)
        return 0;
    const uint64_t idx = (uint64_t)slot;
    gpu_optim_apply_row(&r->opt, r->dim, r->values + idx * r->dim,
                        r->state + idx * r->state_floats, grad);
    r->scores[idx] = gpu_score_touch(r->policy, r->scores[idx], r->step, 0, 0);
    r->flags[idx] |= GPU_FLAG_DIRTY;
    return 1;
}

uint64_t gpu_ref_export_dirty(gpu_ref_t *r, uint64_t *keys, float *values, uint64_t max)
{
    uint64_t n = 0;
    for (uint64_t i = 0; i < r->nslots; i++) {
        if (!gpu_key_storable(r->keys[i]) || !(r->flags[i] & GPU_FLAG_DIRTY))
            continue;
        if (n < max) {
            keys[n] = r->keys[i];
            memcpy(values + n * r->dim, r->values + i * r->dim, 4ull * r->dim);
            r->flags[i] &= (uint8_t)~GPU_FLAG_DIRTY;
        }
        n++;
    }
    return n;
}

uint64_t gpu_ref_size(const gpu_ref_t *r)
{
    uint64_t n = 0;
    for (uint64_t i = 0; i < r->nslots; i++)
        n += gpu_key_storable(r->keys[i]);
    return n;
}

strata_status_t gpu_ref_check(const gpu_ref_t *r)
{
    for (uint64_t b = 0; b < r->nbuckets; b++) {
        const uint64_t *keys = r->keys + b * GPU_BUCKET_SLOTS;
        const uint32_t *words = r->digests + b * GPU_DIGEST_WORDS;
        for (uint32_t s = 0; s < GPU_BUCKET_SLOTS; s++) {
            const uint64_t key = keys[s];
            if (key == GPU_KEY_EMPTY) {
                if (gpu_digest_get(words, s) != 0)
                    return core_fail(STRATA_ERR_INTERNAL, "bucket %llu slot %u: free with digest",
                                     (unsigned long long)b, s);
                continue;
            }
            if (!gpu_key_storable(key))
                return core_fail(STRATA_ERR_INTERNAL, "bucket %llu slot %u: left locked",
                                 (unsigned long long)b, s);
            const uint64_t h = core_key_hash(key);
            if (gpu_bucket_of(h, r->nbuckets) != b)
                return core_fail(STRATA_ERR_INTERNAL, "key %llu in bucket %llu, not its own",
                                 (unsigned long long)key, (unsigned long long)b);
            if (gpu_digest_get(words, s) != gpu_digest(h))
                return core_fail(STRATA_ERR_INTERNAL, "key %llu: wrong digest",
                                 (unsigned long long)key);
            const uint32_t start = gpu_start_slot(h);
            for (uint32_t i = 0; ((start + i) & GPU_SLOT_MASK) != s; i++) {
                const uint32_t p = (start + i) & GPU_SLOT_MASK;
                if (keys[p] == GPU_KEY_EMPTY)
                    return core_fail(STRATA_ERR_INTERNAL,
                                     "key %llu at slot %u behind free slot %u",
                                     (unsigned long long)key, s, p);
                if (keys[p] == key)
                    return core_fail(STRATA_ERR_INTERNAL, "key %llu stored twice",
                                     (unsigned long long)key);
            }
        }
    }
    return STRATA_OK;
}
