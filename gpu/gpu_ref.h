/*
 * gpu/gpu_ref.h — a host-side, single-threaded model of the HBM table:
 * the same arrays as the device table (gpu_logic.h's layout) driven by the
 * same GPU_HD functions, one key at a time, in the order the kernels
 * follow for one key (gpu_table.cu). Tests compare it with the DRAM tier
 * (no device needed) and the device table with it (tests/test_gpu.c).
 *
 * It is a reference, not a tier: plain libc allocation, no concurrency.
 *
 * Threading: one thread per model.
 */
#ifndef STRATA_GPU_REF_H
#define STRATA_GPU_REF_H

#include <stddef.h>
#include <stdint.h>

#include "gpu/gpu.h"

typedef struct gpu_ref {
    uint64_t nbuckets;                    /**< power of two */
    uint64_t nslots;                      /**< nbuckets * GPU_BUCKET_SLOTS */
    uint32_t dim;                         /**< floats per row */
    uint32_t state_floats;                /**< optimizer state per row */
    strata_optimizer_params_t opt;        /**< resolved */
    strata_eviction_t policy;             /**< score policy */
    uint64_t step;                        /**< write step (one per batch) */
    uint64_t *keys;                       /**< nslots */
    uint64_t *scores;                     /**< nslots */
    uint32_t *digests;                    /**< nbuckets * GPU_DIGEST_WORDS */
    float *values;                        /**< nslots * dim */
    float *state;                         /**< nslots * state_floats */
    uint8_t *flags;                       /**< nslots, GPU_FLAG_DIRTY */
} gpu_ref_t;

/** Create an empty model shaped as gpu_table_create would shape config.
 *  INVALID_PARAM / NOMEM. */
strata_status_t gpu_ref_create(const gpu_table_config_t *config, gpu_ref_t **ref_p);
void gpu_ref_destroy(gpu_ref_t *ref);

/** Start a new write call: the device table counts one step per
 *  insert_or_assign or apply call; call this once per modelled call. */
void gpu_ref_next_step(gpu_ref_t *ref);

/** Slot index of key, or -1. */
int64_t gpu_ref_slot(const gpu_ref_t *ref, uint64_t key);

/** 1 and the row in out (may be NULL) when present, else 0. */
int gpu_ref_find(const gpu_ref_t *ref, uint64_t key, float *out);

/** One key of insert_or_assign: a GPU_INSERT_* code. state may be NULL
 *  (fresh state); has_score/score as gpu_insert_opts_t's d_scores. When a
 *  key is evicted, *evicted_p (may be NULL) gets it, else GPU_KEY_EMPTY. */
int gpu_ref_insert(gpu_ref_t *ref, uint64_t key, const float *row, const float *state,
                   int has_score, uint64_t score, uint64_t *evicted_p);

/** One key of apply: 1 if present (the step was applied), else 0. */
int gpu_ref_apply(gpu_ref_t *ref, uint64_t key, const float *grad);

/** Export dirty rows (keys, values, both up to max) and clear their dirty
 *  bits; returns how many were dirty (slot order). */
uint64_t gpu_ref_export_dirty(gpu_ref_t *ref, uint64_t *keys, float *values, uint64_t max);

/** Stored keys. */
uint64_t gpu_ref_size(const gpu_ref_t *ref);

/** Check the invariants of gpu_logic.h (each key once, in its bucket,
 *  digest right, no free slot before it in its probe order).
 *  STRATA_ERR_INTERNAL with a description on the first violation. */
strata_status_t gpu_ref_check(const gpu_ref_t *ref);

#endif
