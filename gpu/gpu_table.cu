/*
 * gpu/gpu_table.cu — the HBM table's kernels and host API (gpu/gpu.h):
 * find, insert_or_assign, apply, export of dirty rows, size, clear, the
 * table arrays as memory descriptors and mirrors, and the bandwidth probe.
 *
 * Layout and per-key logic: gpu/gpu_logic.h (GPU_HD functions shared with
 * the host reference gpu_ref.c and the CPU tests).
 *
 * Kernels. find is one thread per key for the probe (a 4-byte digest word
 * covers 4 slots; a key is read only on a digest match) and then the warp
 * copies its 32 rows together: the rows of 32 consecutive keys are
 * contiguous in the output, so each warp store is one 128-byte line.
 * insert_or_assign and apply are one thread per key.
 *
 * Write protocol (within one writer kernel; kernels of a table are
 * stream-ordered, see gpu.h):
 *  - a slot's key is its lock: a thread owns slot s after atomicCAS
 *    (keys[s]: K -> LOCKED) for an assign/apply or (EMPTY -> LOCKED) for a
 *    claim, writes row, state, score, digest and dirty flag, then
 *    __threadfence() and atomicExch(keys[s], K) publish it (the fence
 *    pairs with the __threadfence() after the next owner's CAS);
 *  - an insert takes the first free slot in probe order only if the scan
 *    up to it met no locked slot (a locked slot may be its own key, being
 *    claimed by a duplicate in the batch): otherwise it retries;
 *  - a full bucket is changed under the bucket's lock word (atomicCAS
 *    0 -> 1): the holder rescans (any match, free or locked slot sends it
 *    back to the fast path), picks the victim with gpu_evict_choice,
 *    checks gpu_admit, and CASes the victim's key to LOCKED; so two
 *    threads never insert the same key into two slots;
 *  - nothing is waited for while a slot or bucket is held, and a thread
 *    that cannot proceed retries from the top (after __nanosleep), so the
 *    scheme is starvation-free under Volta's independent thread scheduling
 *    (sm_70+; the build targets sm_80 and sm_90).
 * L1 is not coherent between multiprocessors, and a row can be read by a
 * kernel after another multiprocessor wrote it in the same kernel (apply
 * of a duplicated key), so this file is compiled with -Xptxas -dlcm=cg
 * (global loads cached in L2 only). Row data is streamed once per key, so
 * L1 would not help anyway.
 *
 * Arithmetic: compiled with --fmad=false so the optimizer rows round as
 * the host's (x86-64 gcc emits no FMA), and sqrtf/division are IEEE
 * (nvcc's defaults); SGD and Adagrad rows are then bit-identical to the
 * DRAM tier's. Adam's bias correction calls pow() in double, whose CUDA
 * implementation may differ from glibc's in the last bit.
 *
 * Threading: the host functions follow gpu.h (one host thread per table).
 */
#include <cuda_runtime.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "gpu/gpu_logic.h"
#include "gpu/gpu_internal.h"

extern "C" {
#include "core/alloc.h"
#include "core/status.h"
}

#define WARP 32u
#define FULL_MASK 0xffffffffu
#define BLOCK 256u
#define RETRY_NS 32u  /* back-off before a retry */

/** The device arrays (gpu_logic.h's layout), passed by value to kernels. */
typedef struct gpu_view {
    uint64_t *keys;         /**< nslots keys */
    uint64_t *scores;       /**< nslots eviction scores */
    uint32_t *digests;      /**< nbuckets * GPU_DIGEST_WORDS digest words */
    float *values;          /**< nslots * dim */
    float *state;           /**< nslots * state_floats (>= 1 float allocated) */
    uint8_t *flags;         /**< nslots GPU_FLAG_* */
    uint32_t *locks;        /**< nbuckets eviction locks (0 free, 1 held) */
    uint64_t nbuckets;      /**< power of two */
    uint32_t dim;           /**< floats per row */
    uint32_t state_floats;  /**< optimizer state floats per row */
} gpu_view_t;

struct gpu_table {
    gpu_view_t v;                    /**< device arrays */
    uint64_t nslots;                 /**< nbuckets * GPU_BUCKET_SLOTS */
    strata_optimizer_params_t opt;   /**< resolved */
    strata_eviction_t policy;        /**< score policy */
    uint64_t step;                   /**< write step: one per writer call */
    unsigned long long *d_count;     /**< device scratch for size */
    uint64_t bytes;                  /**< device memory held */
};

/* ------------------------------------------------------------------------ */
/* device helpers                                                           */
/* ------------------------------------------------------------------------ */

static __device__ __forceinline__ uint64_t key_cas(uint64_t *p, uint64_t expect, uint64_t val)
{
    return (uint64_t)atomicCAS((unsigned long long *)p, (unsigned long long)expect,
                               (unsigned long long)val);
}

/** Publish a slot: its data before its key (pairs with acquire_fence). */
static __device__ __forceinline__ void slot_release(uint64_t *p, uint64_t key)
{
    __threadfence();
    atomicExch((unsigned long long *)p, (unsigned long long)key);
}

/** After a successful CAS on a key or lock: later loads see what the
 *  previous owner wrote before its slot_release / lock release. */
static __device__ __forceinline__ void acquire_fence(void)
{
    __threadfence();
}

static __device__ __forceinline__ void backoff(void)
{
    __nanosleep(RETRY_NS);
}

static __device__ __forceinline__ void row_copy(float *dst, const float *src, uint32_t dim,
                                                bool vec4)
{
    if (vec4) {
        float4 *d4 = (float4 *)dst;
        const float4 *s4 = (const float4 *)src;
        for (uint32_t i = 0; i < dim / 4; i++)
            d4[i] = s4[i];
    } else {
        for (uint32_t i = 0; i < dim; i++)
            dst[i] = src[i];
    }
}

static inline bool aligned16(const void *p)
{
    return ((uintptr_t)p & 15u) == 0;
}

/** Replace slot s's digest byte in its word (other bytes belong to other
 *  slots that other threads may be writing). */
static __device__ __forceinline__ void digest_store(uint32_t *words, uint32_t s, uint32_t dg)
{
    unsigned int *w = (unsigned int *)&words[s >> 2];
    unsigned int old = *(volatile unsigned int *)w, assumed;
    do {
        assumed = old;
        old = atomicCAS(w, assumed, gpu_digest_word_with(assumed, s, dg));
    } while (old != assumed);
}

/** Fill an owned slot: row, state (given or fresh), score, digest, dirty. */
static __device__ void slot_write(const gpu_view_t &v, const strata_optimizer_params_t &opt,
                                  uint64_t b, uint32_t s, uint32_t dg, const float *row,
                                  bool vec4, const float *state, uint64_t score)
{
    const uint64_t idx = b * GPU_BUCKET_SLOTS + s;
    row_copy(v.values + idx * v.dim, row, v.dim, vec4);
    float *st = v.state + idx * v.state_floats;
    if (state) {
        for (uint32_t j = 0; j < v.state_floats; j++)
            st[j] = state[j];
    } else {
        gpu_optim_init_state(&opt, v.dim, st);
    }
    v.scores[idx] = score;
    digest_store(v.digests + b * GPU_DIGEST_WORDS, s, dg);
    v.flags[idx] |= GPU_FLAG_DIRTY;
}

/* ------------------------------------------------------------------------ */
/* find                                                                     */
/* ------------------------------------------------------------------------ */

/** V: float4 when dim % 4 == 0 and out is 16-byte aligned, else float. */
template <typename V>
__global__ void k_find(gpu_view_t v, const uint64_t *__restrict__ keys, size_t n, float *out,
                       uint8_t *found)
{
    const size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    const uint32_t lane = threadIdx.x & (WARP - 1);
    long long slot = -1;
    if (i < n) {
        const uint64_t key = keys[i];
        if (gpu_key_storable(key)) {
            const uint64_t h = core_key_hash(key);
            const uint64_t b = gpu_bucket_of(h, v.nbuckets);
            const int32_t s = gpu_probe(v.digests + b * GPU_DIGEST_WORDS,
                                        v.keys + b * GPU_BUCKET_SLOTS, key, gpu_digest(h),
                                        gpu_start_slot(h));
            if (s >= 0)
                slot = (long long)(b * GPU_BUCKET_SLOTS + (uint64_t)s);
        }
        if (found)
            found[i] = slot >= 0;
    }
    /* The warp's rows are out[(i - lane) * dim ...], 32 * dim contiguous
     * floats: element e of that run is row e / vpr of the warp. Every lane
     * runs the same trip count, so the shuffles are converged. */
    const uint32_t vpr = v.dim * (uint32_t)sizeof(float) / (uint32_t)sizeof(V);
    const uint32_t total = WARP * vpr;
    const V *src = (const V *)v.values;
    V *dst = (V *)out + (i - lane) * vpr;
    for (uint32_t e0 = 0; e0 < total; e0 += WARP) {
        const uint32_t e = e0 + lane;
        const uint32_t r = e / vpr;
        const long long sl = __shfl_sync(FULL_MASK, slot, (int)(r & (WARP - 1)));
        if (e < total && sl >= 0)
            dst[e] = src[(size_t)sl * vpr + (e - r * vpr)];
    }
}

/* ------------------------------------------------------------------------ */
/* insert_or_assign                                                         */
/* ------------------------------------------------------------------------ */

typedef struct insert_args {
    const uint64_t *keys;            /**< n */
    const float *values;             /**< n * dim */
    size_t n;
    const uint64_t *scores;          /**< n or NULL */
    const float *states;             /**< n * state_floats or NULL */
    uint8_t *result;                 /**< n or NULL */
    uint64_t *ev_keys;               /**< ev_max or NULL */
    float *ev_values;                /**< ev_max * dim or NULL */
    unsigned long long *ev_count;    /**< NULL: evictions not reported */
    uint64_t ev_max;
    uint64_t step;                   /**< this call's write step */
    bool vec4;                       /**< rows copy as float4 */
} insert_args_t;

static __device__ uint8_t insert_one(const gpu_view_t &v, const insert_args_t &a,
                                     const strata_optimizer_params_t &opt,
                                     strata_eviction_t policy, size_t i, uint64_t key)
{
    const uint64_t h = core_key_hash(key);
    const uint64_t b = gpu_bucket_of(h, v.nbuckets);
    const uint32_t start = gpu_start_slot(h), dg = gpu_digest(h);
    uint64_t *keys = v.keys + b * GPU_BUCKET_SLOTS;
    uint64_t *scores = v.scores + b * GPU_BUCKET_SLOTS;
    const uint32_t *words = v.digests + b * GPU_DIGEST_WORDS;
    const float *row = a.values + i * v.dim;
    const float *state = a.states ? a.states + i * v.state_floats : nullptr;
    const int has_score = a.scores != nullptr;
    const uint64_t custom = has_score ? a.scores[i] : 0;
    const uint64_t new_score = gpu_score_new(policy, a.step, has_score, custom);

    for (;; backoff()) {
        /* 1. present: digest probe, else the authoritative key scan */
        int32_t s = gpu_probe(words, keys, key, dg, start);
        gpu_scan_t sc;
        sc.locked = 0;
        sc.empty = -1;
        if (s < 0) {
            sc = gpu_scan_keys(keys, key, start);
            s = sc.match;
        }
        if (s >= 0) {
            if (key_cas(&keys[s], key, GPU_KEY_LOCKED) != key)
                continue; /* evicted or being written meanwhile */
            acquire_fence();
            const uint64_t sco = gpu_score_touch(policy, scores[s], a.step, has_score, custom);
            slot_write(v, opt, b, (uint32_t)s, dg, row, a.vec4, state, sco);
            slot_release(&keys[s], key);
            return GPU_INSERT_ASSIGNED;
        }
        if (sc.locked)
            continue; /* a locked slot before the free one may be this key */
        /* 2. the first free slot in probe order */
        if (sc.empty >= 0) {
            if (key_cas(&keys[sc.empty], GPU_KEY_EMPTY, GPU_KEY_LOCKED) != GPU_KEY_EMPTY)
                continue;
            acquire_fence();
            slot_write(v, opt, b, (uint32_t)sc.empty, dg, row, a.vec4, state, new_score);
            slot_release(&keys[sc.empty], key);
            return GPU_INSERT_INSERTED;
        }
        /* 3. full bucket: evict under the bucket lock */
        if (policy == STRATA_EVICT_NONE)
            return GPU_INSERT_REJECTED;
        if (atomicCAS(&v.locks[b], 0u, 1u) != 0u)
            continue;
        acquire_fence();
        sc = gpu_scan_keys(keys, key, start);
        if (sc.match >= 0 || sc.empty >= 0 || sc.locked) {
            __threadfence();
            atomicExch(&v.locks[b], 0u);
            continue;
        }
        uint64_t min = 0;
        const uint32_t victim = gpu_evict_choice(scores, start, &min);
        if (!gpu_admit(policy, new_score, min)) {
            __threadfence();
            atomicExch(&v.locks[b], 0u);
            return GPU_INSERT_REJECTED;
        }
        const uint64_t old = GPU_LOAD_KEY(&keys[victim]);
        if (!gpu_key_storable(old) || key_cas(&keys[victim], old, GPU_KEY_LOCKED) != old) {
            __threadfence();
            atomicExch(&v.locks[b], 0u);
            continue;
        }
        acquire_fence();
        if (a.ev_count) {
            const unsigned long long pos = atomicAdd(a.ev_count, 1ull);
            if (pos < a.ev_max) {
                a.ev_keys[pos] = old;
                if (a.ev_values)
                    row_copy(a.ev_values + pos * v.dim,
                             v.values + (b * GPU_BUCKET_SLOTS + victim) * v.dim, v.dim, false);
            }
        }
        slot_write(v, opt, b, victim, dg, row, a.vec4, state, new_score);
        slot_release(&keys[victim], key);
        __threadfence();
        atomicExch(&v.locks[b], 0u);
        return GPU_INSERT_EVICTED;
    }
}

__global__ void k_insert(gpu_view_t v, insert_args_t a, strata_optimizer_params_t opt,
                         strata_eviction_t policy)
{
    const size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= a.n)
        return;
    const uint64_t key = a.keys[i];
    const uint8_t res =
        gpu_key_storable(key) ? insert_one(v, a, opt, policy, i, key) : GPU_INSERT_REJECTED;
    if (a.result)
        a.result[i] = res;
}

/* ------------------------------------------------------------------------ */
/* apply                                                                    */
/* ------------------------------------------------------------------------ */

__global__ void k_apply(gpu_view_t v, const uint64_t *__restrict__ keys_in,
                        const float *__restrict__ grads, size_t n, uint8_t *found,
                        strata_optimizer_params_t opt, strata_eviction_t policy, uint64_t step)
{
    const size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n)
        return;
    const uint64_t key = keys_in[i];
    uint8_t f = 0;
    if (gpu_key_storable(key)) {
        const uint64_t h = core_key_hash(key);
        const uint64_t b = gpu_bucket_of(h, v.nbuckets);
        const uint32_t start = gpu_start_slot(h), dg = gpu_digest(h);
        uint64_t *keys = v.keys + b * GPU_BUCKET_SLOTS;
        const uint32_t *words = v.digests + b * GPU_DIGEST_WORDS;
        for (;; backoff()) {
            const int32_t s = gpu_probe(words, keys, key, dg, start);
            if (s == GPU_PROBE_MISS)
                break;
            if (s == GPU_PROBE_BUSY || key_cas(&keys[s], key, GPU_KEY_LOCKED) != key)
                continue; /* a duplicate of this key holds it */
            acquire_fence();
            const uint64_t idx = b * GPU_BUCKET_SLOTS + (uint32_t)s;
            gpu_optim_apply_row(&opt, v.dim, v.values + idx * v.dim,
                                v.state + idx * v.state_floats, grads + i * v.dim);
            v.scores[idx] = gpu_score_touch(policy, v.scores[idx], step, 0, 0);
            v.flags[idx] |= GPU_FLAG_DIRTY;
            slot_release(&keys[s], key);
            f = 1;
            break;
        }
    }
    if (found)
        found[i] = f;
}

/* ------------------------------------------------------------------------ */
/* export, count                                                            */
/* ------------------------------------------------------------------------ */

__global__ void k_export(gpu_view_t v, uint64_t nslots, uint64_t *out_keys, float *out_values,
                         float *out_state, uint64_t max_rows, unsigned long long *count)
{
    const uint32_t lane = threadIdx.x & (WARP - 1);
    for (size_t base = (size_t)blockIdx.x * blockDim.x; base < nslots;
         base += (size_t)gridDim.x * blockDim.x) {
        const size_t idx = base + threadIdx.x;
        bool dirty = false;
        uint64_t key = GPU_KEY_EMPTY;
        if (idx < nslots) {
            key = v.keys[idx];
            dirty = gpu_key_storable(key) && (v.flags[idx] & GPU_FLAG_DIRTY);
        }
        const unsigned mask = __ballot_sync(FULL_MASK, dirty);
        unsigned long long wbase = 0;
        if (lane == 0 && mask)
            wbase = atomicAdd(count, (unsigned long long)__popc(mask));
        wbase = __shfl_sync(FULL_MASK, wbase, 0);
        if (dirty) {
            const unsigned long long pos = wbase + (unsigned)__popc(mask & ((1u << lane) - 1u));
            if (pos < max_rows) {
                out_keys[pos] = key;
                row_copy(out_values + pos * v.dim, v.values + idx * v.dim, v.dim, false);
                if (out_state)
                    for (uint32_t j = 0; j < v.state_floats; j++)
                        out_state[pos * v.state_floats + j] = v.state[idx * v.state_floats + j];
                v.flags[idx] &= (uint8_t)~GPU_FLAG_DIRTY;
            }
        }
    }
}

__global__ void k_count(const uint64_t *keys, uint64_t nslots, unsigned long long *count)
{
    unsigned c = 0;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < nslots;
         i += (size_t)gridDim.x * blockDim.x)
        c += gpu_key_storable(keys[i]);
    c = __reduce_add_sync(FULL_MASK, c);
    if ((threadIdx.x & (WARP - 1)) == 0 && c)
        atomicAdd(count, (unsigned long long)c);
}

__global__ void k_copy(const float4 *__restrict__ src, float4 *__restrict__ dst, size_t n4)
{
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n4;
         i += (size_t)gridDim.x * blockDim.x)
        dst[i] = src[i];
}

/* ------------------------------------------------------------------------ */
/* host API                                                                 */
/* ------------------------------------------------------------------------ */

static strata_status_t launched(const char *what)
{
    return gpu_cuda_status(cudaGetLastError(), what);
}

static unsigned grid_for(size_t n)
{
    return (unsigned)((n + BLOCK - 1) / BLOCK);
}

/** Grid of a grid-stride kernel: enough blocks to fill the device. */
static unsigned grid_stride_blocks(size_t n)
{
    int dev = 0, sms = 108;
    if (cudaGetDevice(&dev) == cudaSuccess)
        (void)cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev);
    size_t want = (n + BLOCK - 1) / BLOCK, cap = (size_t)sms * 8;
    return (unsigned)(want < cap ? (want ? want : 1) : cap);
}

static strata_status_t check_batch(const gpu_table_t *t, const void *a, const void *b, size_t n)
{
    if (!t)
        return core_fail(STRATA_ERR_INVALID_PARAM, "table is NULL");
    if (n > UINT32_MAX)
        return core_fail(STRATA_ERR_TOO_LARGE, "batch of %zu keys: at most %u per call", n,
                         UINT32_MAX);
    if (n && (!a || !b))
        return core_fail(STRATA_ERR_INVALID_PARAM, "NULL buffer with n = %zu", n);
    return STRATA_OK;
}

extern "C" strata_status_t gpu_table_create(const gpu_table_config_t *config,
                                            gpu_table_t **table_p)
{
    if (!config || !table_p)
        return core_fail(STRATA_ERR_INVALID_PARAM, "config and table_p are required");
    const uint64_t fm = config->field_mask;
    if (!(fm & GPU_TABLE_FIELD_DIM) || config->dim == 0 || config->dim > STRATA_DIM_MAX)
        return core_fail(STRATA_ERR_INVALID_PARAM, "gpu table dim = %u: must be 1..%u",
                         (fm & GPU_TABLE_FIELD_DIM) ? config->dim : 0, STRATA_DIM_MAX);
    if (!(fm & GPU_TABLE_FIELD_CAPACITY) || config->capacity == 0 ||
        config->capacity > (1ull << 40))
        return core_fail(STRATA_ERR_INVALID_PARAM, "gpu table capacity must be 1..2^40");
    strata_eviction_t policy = STRATA_EVICT_LRU;
    if (fm & GPU_TABLE_FIELD_EVICTION) {
        if ((unsigned)config->eviction > STRATA_EVICT_SCORE)
            return core_fail(STRATA_ERR_INVALID_PARAM, "gpu table eviction = %d: unknown",
                             (int)config->eviction);
        policy = config->eviction;
    }
    strata_optimizer_params_t opt;
    memset(&opt, 0, sizeof(opt));
    if (fm & GPU_TABLE_FIELD_OPTIMIZER)
        opt = config->optimizer;
    core_optim_resolve(&opt, &opt);
    strata_status_t st = core_optim_validate(&opt);
    if (st != STRATA_OK)
        return st;
    int ndev = 0;
    st = gpu_device_count(&ndev);
    if (st != STRATA_OK)
        return st;

    gpu_table_t *t = (gpu_table_t *)core_calloc(1, sizeof(*t));
    if (!t)
        return core_fail(STRATA_ERR_NOMEM, "gpu table: out of memory");
    t->opt = opt;
    t->policy = policy;
    t->step = 1;
    t->v.nbuckets = gpu_nbuckets_for(config->capacity);
    t->v.dim = config->dim;
    t->v.state_floats = core_optim_state_floats(opt.type, config->dim);
    t->nslots = t->v.nbuckets * GPU_BUCKET_SLOTS;
    const uint64_t ns = t->nslots, nb = t->v.nbuckets;
    const uint64_t sf = t->v.state_floats ? t->v.state_floats : 1;
    struct {
        void **p;
        uint64_t bytes;
    } arrays[] = {
        {(void **)&t->v.keys, ns * 8},
        {(void **)&t->v.scores, ns * 8},
        {(void **)&t->v.digests, nb * GPU_DIGEST_WORDS * 4},
        {(void **)&t->v.values, ns * t->v.dim * 4},
        {(void **)&t->v.state, ns * sf * 4},
        {(void **)&t->v.flags, ns},
        {(void **)&t->v.locks, nb * 4},
        {(void **)&t->d_count, 8},
    };
    for (size_t k = 0; k < sizeof(arrays) / sizeof(arrays[0]); k++) {
        cudaError_t e = cudaMalloc(arrays[k].p, arrays[k].bytes);
        if (e != cudaSuccess) {
            st = gpu_cuda_status(e, "gpu table: cudaMalloc");
            goto free_arrays;
        }
        t->bytes += arrays[k].bytes;
    }
    st = gpu_table_clear(t, NULL);
    if (st == STRATA_OK)
        st = gpu_cuda_status(cudaDeviceSynchronize(), "gpu table: clear");
    if (st != STRATA_OK)
        goto free_arrays;
    *table_p = t;
    return STRATA_OK;

free_arrays:
    for (size_t k = 0; k < sizeof(arrays) / sizeof(arrays[0]); k++)
        if (*arrays[k].p)
            (void)cudaFree(*arrays[k].p);
    core_free(t);
    return st;
}

extern "C" void gpu_table_destroy(gpu_table_t *t)
{
    if (!t)
        return;
    (void)cudaDeviceSynchronize();
    void *ptrs[] = {t->v.keys, t->v.scores, t->v.digests, t->v.values,
                    t->v.state, t->v.flags, t->v.locks, t->d_count};
    for (size_t k = 0; k < sizeof(ptrs) / sizeof(ptrs[0]); k++)
        (void)cudaFree(ptrs[k]);
    core_free(t);
}

extern "C" void gpu_table_get_info(const gpu_table_t *t, gpu_table_info_t *info)
{
    info->nbuckets = t->v.nbuckets;
    info->capacity = t->nslots;
    info->dim = t->v.dim;
    info->state_floats = t->v.state_floats;
    info->bytes = t->bytes;
    info->eviction = t->policy;
    info->optimizer = t->opt;
}

extern "C" strata_status_t gpu_table_clear(gpu_table_t *t, void *stream)
{
    if (!t)
        return core_fail(STRATA_ERR_INVALID_PARAM, "table is NULL");
    cudaStream_t s = (cudaStream_t)stream;
    cudaError_t e = cudaMemsetAsync(t->v.keys, 0xff, t->nslots * 8, s);
    if (e == cudaSuccess)
        e = cudaMemsetAsync(t->v.scores, 0, t->nslots * 8, s);
    if (e == cudaSuccess)
        e = cudaMemsetAsync(t->v.digests, 0, t->v.nbuckets * GPU_DIGEST_WORDS * 4, s);
    if (e == cudaSuccess)
        e = cudaMemsetAsync(t->v.flags, 0, t->nslots, s);
    if (e == cudaSuccess)
        e = cudaMemsetAsync(t->v.locks, 0, t->v.nbuckets * 4, s);
    return gpu_cuda_status(e, "gpu_table_clear");
}

extern "C" strata_status_t gpu_table_find(gpu_table_t *t, const uint64_t *d_keys, size_t n,
                                          float *d_out, uint8_t *d_found, void *stream)
{
    strata_status_t st = check_batch(t, d_keys, d_out, n);
    if (st != STRATA_OK || n == 0)
        return st;
    cudaStream_t s = (cudaStream_t)stream;
    if (t->v.dim % 4 == 0 && aligned16(d_out))
        k_find<float4><<<grid_for(n), BLOCK, 0, s>>>(t->v, d_keys, n, d_out, d_found);
    else
        k_find<float><<<grid_for(n), BLOCK, 0, s>>>(t->v, d_keys, n, d_out, d_found);
    return launched("gpu_table_find");
}

extern "C" strata_status_t gpu_table_insert_or_assign(gpu_table_t *t, const uint64_t *d_keys,
                                                      const float *d_values, size_t n,
                                                      const gpu_insert_opts_t *opts,
                                                      void *stream)
{
    strata_status_t st = check_batch(t, d_keys, d_values, n);
    if (st != STRATA_OK)
        return st;
    insert_args_t a;
    memset(&a, 0, sizeof(a));
    a.keys = d_keys;
    a.values = d_values;
    a.n = n;
    a.vec4 = t->v.dim % 4 == 0 && aligned16(d_values);
    const uint64_t fm = opts ? opts->field_mask : 0;
    if ((fm & GPU_INSERT_FIELD_SCORES) && t->policy == STRATA_EVICT_SCORE)
        a.scores = opts->d_scores;
    if (fm & GPU_INSERT_FIELD_STATES)
        a.states = opts->d_states;
    if (fm & GPU_INSERT_FIELD_RESULT)
        a.result = opts->d_result;
    cudaStream_t s = (cudaStream_t)stream;
    if (fm & GPU_INSERT_FIELD_EVICTED) {
        if (!opts->d_evicted_count || (opts->max_evicted && !opts->d_evicted_keys))
            return core_fail(STRATA_ERR_INVALID_PARAM,
                             "EVICTED needs d_evicted_count and d_evicted_keys");
        a.ev_keys = opts->d_evicted_keys;
        a.ev_values = opts->d_evicted_values;
        a.ev_count = (unsigned long long *)opts->d_evicted_count;
        a.ev_max = opts->max_evicted;
        st = gpu_cuda_status(cudaMemsetAsync(a.ev_count, 0, 8, s), "evicted count");
        if (st != STRATA_OK)
            return st;
    }
    a.step = t->step++;
    if (n == 0)
        return STRATA_OK;
    k_insert<<<grid_for(n), BLOCK, 0, s>>>(t->v, a, t->opt, t->policy);
    return launched("gpu_table_insert_or_assign");
}

extern "C" strata_status_t gpu_table_apply(gpu_table_t *t, const uint64_t *d_keys,
                                           const float *d_grads, size_t n, uint8_t *d_found,
                                           void *stream)
{
    strata_status_t st = check_batch(t, d_keys, d_grads, n);
    if (st != STRATA_OK)
        return st;
    const uint64_t step = t->step++;
    if (n == 0)
        return STRATA_OK;
    k_apply<<<grid_for(n), BLOCK, 0, (cudaStream_t)stream>>>(t->v, d_keys, d_grads, n, d_found,
                                                             t->opt, t->policy, step);
    return launched("gpu_table_apply");
}

extern "C" strata_status_t gpu_table_export_dirty(gpu_table_t *t, uint64_t *d_keys,
                                                  float *d_values, float *d_states,
                                                  uint64_t max_rows, uint64_t *d_count,
                                                  void *stream)
{
    if (!t || !d_count || (max_rows && (!d_keys || !d_values)))
        return core_fail(STRATA_ERR_INVALID_PARAM,
                         "export needs the table, d_count, d_keys and d_values");
    cudaStream_t s = (cudaStream_t)stream;
    strata_status_t st =
        gpu_cuda_status(cudaMemsetAsync(d_count, 0, 8, s), "gpu_table_export_dirty");
    if (st != STRATA_OK)
        return st;
    k_export<<<grid_stride_blocks(t->nslots), BLOCK, 0, s>>>(
        t->v, t->nslots, d_keys, d_values, d_states, max_rows, (unsigned long long *)d_count);
    return launched("gpu_table_export_dirty");
}

extern "C" strata_status_t gpu_table_size(gpu_table_t *t, uint64_t *size, void *stream)
{
    if (!t || !size)
        return core_fail(STRATA_ERR_INVALID_PARAM, "table and size are required");
    cudaStream_t s = (cudaStream_t)stream;
    unsigned long long host = 0;
    cudaError_t e = cudaMemsetAsync(t->d_count, 0, 8, s);
    if (e == cudaSuccess) {
        k_count<<<grid_stride_blocks(t->nslots), BLOCK, 0, s>>>(t->v.keys, t->nslots,
                                                                 t->d_count);
        e = cudaGetLastError();
    }
    if (e == cudaSuccess)
        e = cudaMemcpyAsync(&host, t->d_count, 8, cudaMemcpyDeviceToHost, s);
    if (e == cudaSuccess)
        e = cudaStreamSynchronize(s);
    if (e != cudaSuccess)
        return gpu_cuda_status(e, "gpu_table_size");
    *size = host;
    return STRATA_OK;
}

extern "C" strata_status_t gpu_table_memdesc(const gpu_table_t *t, gpu_region_t which,
                                             core_memdesc_t *desc)
{
    if (!t || !desc)
        return core_fail(STRATA_ERR_INVALID_PARAM, "table and desc are required");
    int dev = -1;
    (void)cudaGetDevice(&dev);
    switch (which) {
    case GPU_REGION_KEYS:
        desc->addr = t->v.keys;
        desc->len = t->nslots * 8;
        break;
    case GPU_REGION_VALUES:
        desc->addr = t->v.values;
        desc->len = t->nslots * t->v.dim * 4;
        break;
    default:
        return core_fail(STRATA_ERR_INVALID_PARAM, "gpu region %d: unknown", (int)which);
    }
    desc->memtype = CORE_MEMTYPE_CUDA;
    desc->device = dev;
    return STRATA_OK;
}

extern "C" strata_status_t gpu_table_mirror(const gpu_table_t *t, gpu_region_t which,
                                            gpu_bounce_t *bounce, void *stream)
{
    core_memdesc_t d;
    strata_status_t st = gpu_table_memdesc(t, which, &d);
    if (st != STRATA_OK)
        return st;
    return gpu_bounce_from_device(bounce, 0, d.addr, d.len, stream);
}

extern "C" strata_status_t gpu_measure_bandwidth(size_t bytes, int iters, gpu_bandwidth_t *bw)
{
    if (!bw || bytes < 16 || iters < 1)
        return core_fail(STRATA_ERR_INVALID_PARAM, "bandwidth probe: bytes >= 16, iters >= 1");
    bytes &= ~(size_t)15;
    float4 *a = nullptr, *b = nullptr;
    cudaEvent_t e0 = nullptr, e1 = nullptr;
    strata_status_t st = STRATA_OK;
    float best_k = 1e30f, best_m = 1e30f;
    cudaError_t e = cudaMalloc(&a, bytes);
    if (e == cudaSuccess)
        e = cudaMalloc(&b, bytes);
    if (e == cudaSuccess)
        e = cudaMemset(a, 1, bytes);
    if (e == cudaSuccess)
        e = cudaEventCreate(&e0);
    if (e == cudaSuccess)
        e = cudaEventCreate(&e1);
    const size_t n4 = bytes / 16;
    int dev = 0, sms = 108;
    (void)cudaGetDevice(&dev);
    (void)cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev);
    for (int it = -1; it < iters && e == cudaSuccess; it++) { /* -1: warm-up */
        float ms = 0;
        cudaEventRecord(e0);
        k_copy<<<(unsigned)sms * 8, BLOCK>>>(a, b, n4);
        cudaEventRecord(e1);
        e = cudaEventSynchronize(e1);
        if (e == cudaSuccess)
            e = cudaEventElapsedTime(&ms, e0, e1);
        if (it >= 0 && ms < best_k)
            best_k = ms;
        if (e != cudaSuccess)
            break;
        cudaEventRecord(e0);
        e = cudaMemcpyAsync(b, a, bytes, cudaMemcpyDeviceToDevice);
        cudaEventRecord(e1);
        if (e == cudaSuccess)
            e = cudaEventSynchronize(e1);
        if (e == cudaSuccess)
            e = cudaEventElapsedTime(&ms, e0, e1);
        if (it >= 0 && ms < best_m)
            best_m = ms;
    }
    if (e == cudaSuccess)
        e = cudaGetLastError();
    if (e != cudaSuccess) {
        st = gpu_cuda_status(e, "bandwidth probe");
    } else {
        bw->bytes = (double)bytes;
        bw->copy_kernel_gbps = 2.0 * (double)bytes / (best_k * 1e-3) / 1e9;
        bw->memcpy_d2d_gbps = 2.0 * (double)bytes / (best_m * 1e-3) / 1e9;
    }
    if (e0)
        cudaEventDestroy(e0);
    if (e1)
        cudaEventDestroy(e1);
    cudaFree(a);
    cudaFree(b);
    return st;
}
