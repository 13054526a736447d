/*
 * gpu/gpu_logic.h — the per-key logic of the HBM table: hash to bucket,
 * start slot and digest, the probe, the slot choice of an insert, the
 * eviction choice, the score policies and the optimizer dispatch. Every
 * function is GPU_HD (__host__ __device__ under nvcc, static inline in C),
 * so the kernels (gpu_table.cu), the host reference (gpu_ref.c) and the CPU
 * tests (tests/test_gpu_logic.c) run the same code.
 *
 * Table layout (structure of arrays, HierarchicalKV style), nslots =
 * nbuckets * GPU_BUCKET_SLOTS, slot index = bucket * 128 + s:
 *   keys[nslots]      u64; GPU_KEY_EMPTY when free, GPU_KEY_LOCKED while a
 *                     kernel thread owns the slot (see gpu_table.cu)
 *   scores[nslots]    u64 eviction scores (lowest is evicted)
 *   digests[nbuckets*32] u32 words, 4 digest bytes each: byte s & 3 of word
 *                     s >> 2 (bits 8*(s&3) ..) is slot s's digest, 0 = empty
 *   values[nslots*dim], state[nslots*state_floats] floats
 *   flags[nslots]     u8, GPU_FLAG_DIRTY when written since the last export
 *
 * Placement (one bucket per key, linear probing inside it):
 *   h = core_key_hash(key); bucket = core_bucket1(h, nbuckets) (low bits);
 *   start = bits 32..38 of h; digest = 1 + core_fingerprint(h) % 255.
 *   A key is stored in the first free slot of its bucket in probe order
 *   start, start+1, ... (mod 128), or, when the bucket is full, in place of
 *   the lowest-scored key. Slots never become free again except by
 *   gpu_table_clear, so a probe may stop at the first free slot: a key
 *   beyond it would have been placed there.
 *
 * Invariants: a stored key occurs in exactly one slot of its bucket; its
 * digest byte is its digest; every slot before it in its probe order is
 * occupied.
 *
 * Threading: pure functions of their arguments (the kernels add the
 * atomics around them; the CPU callers are single-threaded).
 */
#ifndef STRATA_GPU_LOGIC_H
#define STRATA_GPU_LOGIC_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#ifdef __cplusplus
extern "C" {
#endif
#include "core/hash.h"
#include "core/optim.h"
#ifdef __cplusplus
}
#endif

#include "gpu/gpu.h"

#define GPU_HD CORE_HD

#define GPU_DIGEST_WORDS (GPU_BUCKET_SLOTS / 4u)  /* u32 digest words per bucket */
#define GPU_SLOT_MASK (GPU_BUCKET_SLOTS - 1u)
#define GPU_FLAG_DIRTY 1u

/** gpu_probe's answers besides a slot number. */
#define GPU_PROBE_MISS (-1)  /* the key is not in the bucket */
#define GPU_PROBE_BUSY (-2)  /* a slot with the key's digest is locked: retry */

/** Key loads of the probes. On the device they are volatile so a spinning
 *  thread sees other threads' atomics (keys are written only by atomics);
 *  on the host (single-threaded reference) they are plain loads. */
#if defined(__CUDA_ARCH__)
#define GPU_LOAD_KEY(p) (*(const volatile uint64_t *)(p))
#else
#define GPU_LOAD_KEY(p) (*(p))
#endif

/** Keys the table can hold (not a slot marker). */
GPU_HD int gpu_key_storable(uint64_t key)
{
    return key < GPU_KEY_LOCKED;
}

/** Buckets for a capacity: the power of two >= ceil(capacity / 128). */
GPU_HD uint64_t gpu_nbuckets_for(uint64_t capacity)
{
    uint64_t need = capacity / GPU_BUCKET_SLOTS + (capacity % GPU_BUCKET_SLOTS != 0);
    uint64_t nb = 1;
    while (nb < need)
        nb <<= 1;
    return nb;
}

GPU_HD uint64_t gpu_bucket_of(uint64_t h, uint64_t nbuckets)
{
    return core_bucket1(h, nbuckets);
}

/** First slot of the probe inside the bucket: hash bits 32..38, which the
 *  bucket choice (low bits) does not use. */
GPU_HD uint32_t gpu_start_slot(uint64_t h)
{
    return (uint32_t)(h >> 32) & GPU_SLOT_MASK;
}

/** Digest byte, never 0 (0 marks a free slot). */
GPU_HD uint32_t gpu_digest(uint64_t h)
{
    return 1u + (uint32_t)core_fingerprint(h) % 255u;
}

GPU_HD uint32_t gpu_digest_shift(uint32_t s)
{
    return (s & 3u) * 8u;
}

/** Slot s's digest from a bucket's digest words. */
GPU_HD uint32_t gpu_digest_get(const uint32_t *words, uint32_t s)
{
    return (words[s >> 2] >> gpu_digest_shift(s)) & 0xffu;
}

/** A digest word with slot s's byte replaced by dg. */
GPU_HD uint32_t gpu_digest_word_with(uint32_t word, uint32_t s, uint32_t dg)
{
    const uint32_t sh = gpu_digest_shift(s);
    return (word & ~(0xffu << sh)) | (dg << sh);
}

/** Find key in a bucket (words: its digest words, keys: its 128 keys) by
 *  digest: the slot, GPU_PROBE_MISS when a free slot or the end of the
 *  probe comes first, or GPU_PROBE_BUSY when a digest-matching slot is
 *  locked (the key may be inside a writer; the caller retries). Digest
 *  words are loaded four at a time (16 slots) so the loads of a long probe
 *  overlap; a key is read only on a digest match (1/255 false positives). */
GPU_HD int32_t gpu_probe(const uint32_t *words, const uint64_t *keys, uint64_t key, uint32_t dg,
                         uint32_t start)
{
    uint32_t c0 = 0, c1 = 0, c2 = 0, c3 = 0; /* words cw .. cw+3 (mod 32) */
    uint32_t cw = 0;
    int32_t busy = 0;
    for (uint32_t i = 0; i < GPU_BUCKET_SLOTS; i++) {
        const uint32_t s = (start + i) & GPU_SLOT_MASK;
        const uint32_t wi = s >> 2;
        uint32_t off = (wi - cw) & (GPU_DIGEST_WORDS - 1u);
        if (i == 0 || off >= 4u) {
            cw = wi;
            off = 0;
            c0 = words[wi];
            c1 = words[(wi + 1u) & (GPU_DIGEST_WORDS - 1u)];
            c2 = words[(wi + 2u) & (GPU_DIGEST_WORDS - 1u)];
            c3 = words[(wi + 3u) & (GPU_DIGEST_WORDS - 1u)];
        }
        const uint32_t word = off == 0 ? c0 : off == 1 ? c1 : off == 2 ? c2 : c3;
        const uint32_t d = (word >> gpu_digest_shift(s)) & 0xffu;
        if (d == 0)
            break;
        if (d == dg) {
            const uint64_t k = GPU_LOAD_KEY(&keys[s]);
            if (k == key)
                return (int32_t)s;
            if (k == GPU_KEY_LOCKED)
                busy = 1;
        }
    }
    return busy ? GPU_PROBE_BUSY : GPU_PROBE_MISS;
}

/** What a scan of a bucket's keys found (the insert's slot choice). */
typedef struct gpu_scan {
    int32_t match;    /**< slot holding the key, or -1 */
    int32_t empty;    /**< when no match: first free slot in probe order, or -1
                           (bucket full) */
    uint32_t locked;  /**< locked slots seen before the scan stopped */
} gpu_scan_t;

#define GPU_SCAN_GROUP 8u /* keys loaded together by gpu_scan_keys */

/** Scan the keys of a bucket from start until the key or a free slot.
 *  Authoritative where gpu_probe is a shortcut: keys are the truth while
 *  inserts run (a digest is written after its slot is claimed). Keys are
 *  loaded GPU_SCAN_GROUP at a time (each load is an independent snapshot
 *  of its slot, so reading a few past the stopping slot changes nothing)
 *  and then examined in probe order. */
GPU_HD gpu_scan_t gpu_scan_keys(const uint64_t *keys, uint64_t key, uint32_t start)
{
    gpu_scan_t r;
    r.match = -1;
    r.empty = -1;
    r.locked = 0;
    for (uint32_t i = 0; i < GPU_BUCKET_SLOTS; i += GPU_SCAN_GROUP) {
        uint64_t k[GPU_SCAN_GROUP];
        for (uint32_t j = 0; j < GPU_SCAN_GROUP; j++)
            k[j] = GPU_LOAD_KEY(&keys[(start + i + j) & GPU_SLOT_MASK]);
        for (uint32_t j = 0; j < GPU_SCAN_GROUP; j++) {
            const uint32_t s = (start + i + j) & GPU_SLOT_MASK;
            if (k[j] == key) {
                r.match = (int32_t)s;
                return r;
            }
            if (k[j] == GPU_KEY_EMPTY) {
                r.empty = (int32_t)s;
                return r;
            }
            if (k[j] == GPU_KEY_LOCKED)
                r.locked++;
        }
    }
    return r;
}

/** The eviction choice in a full bucket: the slot with the lowest score,
 *  the first in probe order from start among equals; *min_p gets that
 *  score. */
GPU_HD uint32_t gpu_evict_choice(const uint64_t *scores, uint32_t start, uint64_t *min_p)
{
    uint32_t best = start & GPU_SLOT_MASK;
    uint64_t min = scores[best];
    for (uint32_t i = 1; i < GPU_BUCKET_SLOTS; i++) {
        const uint32_t s = (start + i) & GPU_SLOT_MASK;
        const uint64_t sc = scores[s];
        if (sc < min) {
            min = sc;
            best = s;
        }
    }
    *min_p = min;
    return best;
}

/* ------------------------------------------------------------------------ */
/* Scores: the tier policy (strata_eviction_t), lowest evicted first        */
/* ------------------------------------------------------------------------ */

/** Whether a new key with score new_score replaces the bucket's minimum:
 *  never without eviction, else when it scores at least as high (so a
 *  recent LRU write always gets in, and a cold LFU key does not push out a
 *  hotter one). */
GPU_HD int gpu_admit(strata_eviction_t policy, uint64_t new_score, uint64_t min_score)
{
    return policy != STRATA_EVICT_NONE && new_score >= min_score;
}

/** Score of a key stored by write step `step` for the first time. LRU:
 *  the step; LFU: one write, ties by step (the DRAM tier's order: fewer
 *  writes first, then older); SCORE: the caller's (0 when none given). */
GPU_HD uint64_t gpu_score_new(strata_eviction_t policy, uint64_t step, int has_custom,
                              uint64_t custom)
{
    switch (policy) {
    case STRATA_EVICT_LFU:
        return (1ull << 32) | (uint32_t)step;
    case STRATA_EVICT_SCORE:
        return has_custom ? custom : 0;
    default:
        return step;
    }
}

/** Score of a present key written again at step `step`. LFU counts the
 *  write (saturating at 2^32-1); SCORE keeps the old score unless a new one
 *  is given. */
GPU_HD uint64_t gpu_score_touch(strata_eviction_t policy, uint64_t old, uint64_t step,
                                int has_custom, uint64_t custom)
{
    switch (policy) {
    case STRATA_EVICT_LFU: {
        uint64_t freq = old >> 32;
        freq += freq != 0xffffffffull;
        return (freq << 32) | (uint32_t)step;
    }
    case STRATA_EVICT_SCORE:
        return has_custom ? custom : old;
    default:
        return step;
    }
}

/** Order-preserving map of a float score and a step to u64 (gpu.h). */
GPU_HD uint64_t gpu_score_of_float(float f, uint32_t step)
{
    uint32_t u;
    memcpy(&u, &f, sizeof(u));
    u = (u & 0x80000000u) ? ~u : (u | 0x80000000u);
    return ((uint64_t)u << 32) | step;
}

/* ------------------------------------------------------------------------ */
/* Optimizer rows: exactly core/optim.h's functions                         */
/* ------------------------------------------------------------------------ */

/** Fresh optimizer state of a row: the same values as
 *  core_optim_init_state (core/optim.c, not device code), which
 *  tests/test_gpu_logic.c checks it against. */
GPU_HD void gpu_optim_init_state(const strata_optimizer_params_t *p, uint32_t dim, float *state)
{
    const float a0 = p->initial_accumulator;
    const uint32_t nf = core_optim_state_floats(p->type, dim);
    switch (p->type) {
    case STRATA_OPT_ADAGRAD:
    case STRATA_OPT_ROWWISE_ADAGRAD:
        for (uint32_t i = 0; i < nf; i++)
            state[i] = a0;
        return;
    case STRATA_OPT_FTRL:
        for (uint32_t i = 0; i < dim; i++) {
            state[i] = 0.0f;     /* z */
            state[dim + i] = a0; /* n */
        }
        return;
    default: /* SGD: none; Adam/AMSGrad: moments 0, step 0 (all-zero bits) */
        for (uint32_t i = 0; i < nf; i++)
            state[i] = 0.0f;
        return;
    }
}

/** One optimizer step on a row: the dispatch of core_optim_apply
 *  (core/optim.c) onto the CORE_HD row functions of core/optim.h. p must
 *  be resolved. */
GPU_HD void gpu_optim_apply_row(const strata_optimizer_params_t *p, uint32_t dim, float *w,
                                float *state, const float *g)
{
    const float lr = p->lr, wd = p->weight_decay;
    const size_t d = dim;
    switch (p->type) {
    case STRATA_OPT_SGD:
        core_optim_sgd_row(dim, w, g, lr, wd);
        return;
    case STRATA_OPT_ADAGRAD:
        core_optim_adagrad_row(dim, w, state, g, lr, p->eps, wd);
        return;
    case STRATA_OPT_ROWWISE_ADAGRAD:
        core_optim_rowwise_adagrad_row(dim, w, state, g, lr, p->eps, wd);
        return;
    case STRATA_OPT_ADAM:
        core_optim_adam_row(dim, w, state, state + d, state + 2 * d, g, lr, p->beta1, p->beta2,
                            p->eps, wd);
        return;
    case STRATA_OPT_AMSGRAD:
        core_optim_amsgrad_row(dim, w, state, state + d, state + 2 * d, state + 3 * d, g, lr,
                               p->beta1, p->beta2, p->eps, wd);
        return;
    case STRATA_OPT_FTRL:
        core_optim_ftrl_row(dim, w, state, state + d, g, lr, p->l1, p->l2, p->ftrl_beta, wd);
        return;
    }
}

#endif
