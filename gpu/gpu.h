/*
 * gpu/gpu.h — the HBM tier: a GPU-resident hash table of hot rows, its
 * kernels (find, insert_or_assign, optimizer apply, dirty-row export), key
 * dedup with the inverse index, pinned host bounce buffers and small
 * stream-ordered runtime helpers. docs/gpu.md describes the design.
 *
 * This header is plain C and never includes a CUDA header: streams are
 * `void *` (a cudaStream_t; NULL is the legacy default stream) and every
 * pointer named d_* is device memory (or managed memory) of the table's
 * device. Without CUDA (STRATA_HAVE_CUDA 0) the library is a stub whose
 * calls return STRATA_ERR_UNSUPPORTED.
 *
 * Stream ordering: every call that takes a stream only enqueues work on
 * it and returns; its outputs are valid once the stream reaches that point
 * (gpu_stream_sync or an event). Inputs must stay valid and unchanged until
 * then too. Calls that return host values (gpu_table_size) synchronize
 * the stream themselves and say so.
 *
 * Threading and concurrency: a table is used from one host thread at a
 * time. Kernels of one table must be ordered on one stream (or by
 * events): find kernels may overlap each other, but a writer
 * (insert_or_assign, apply, export_dirty, clear) must not overlap any
 * other kernel on the same table. Calls are made with the table's device
 * current (cudaSetDevice); the table does not switch devices.
 *
 * Errors: argument errors (INVALID_PARAM, DIM_MISMATCH) are found before
 * anything is enqueued; a CUDA error at launch is translated once
 * (gpu_runtime.c) and named in strata_last_error(). Asynchronous kernel
 * faults surface at the next synchronizing call, as in CUDA.
 */
#ifndef STRATA_GPU_H
#define STRATA_GPU_H

#include <stddef.h>
#include <stdint.h>

#include "core/memdesc.h"
#include "strata.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------ */
/* Devices, streams and memory                                              */
/* ------------------------------------------------------------------------ */

/** Number of CUDA devices in *count. UNSUPPORTED when built without CUDA or
 *  when the CUDA driver/runtime reports no device (cudaGetDeviceCount
 *  failed or returned 0; the reason is in strata_last_error). Any thread. */
strata_status_t gpu_device_count(int *count);

/** A non-blocking stream (cudaStreamNonBlocking) on the current device;
 *  *stream_p is owned by the caller until gpu_stream_destroy. */
strata_status_t gpu_stream_create(void **stream_p);
void gpu_stream_destroy(void *stream);
/** Wait until everything enqueued on stream has finished; reports a
 *  kernel fault raised meanwhile. */
strata_status_t gpu_stream_sync(void *stream);

/** Device memory (cudaMalloc) of bytes; *ptr_p is the caller's until
 *  gpu_free. NOMEM when the device is out of memory. */
strata_status_t gpu_malloc(void **ptr_p, size_t bytes);
void gpu_free(void *ptr);
/** Pinned host memory (cudaHostAlloc, portable); freed by gpu_host_free. */
strata_status_t gpu_host_alloc(void **ptr_p, size_t bytes);
void gpu_host_free(void *ptr);
/** Stream-ordered copy in any direction (cudaMemcpyDefault: the runtime
 *  infers it from unified addressing). */
strata_status_t gpu_memcpy(void *dst, const void *src, size_t bytes, void *stream);
/** Stream-ordered byte fill. */
strata_status_t gpu_memset(void *dst, int byte, size_t bytes, void *stream);

/** Where ptr points (cudaPointerGetAttributes): CUDA for device memory,
 *  CUDA_MANAGED for managed memory, HOST for anything else (pageable or
 *  pinned). Lets a caller build the core_memdesc_t of a buffer it was
 *  handed, e.g. a lookup destination that may be on the device. Without
 *  CUDA every pointer is HOST. */
strata_status_t gpu_ptr_memtype(const void *ptr, core_memtype_t *type_p);

/* ------------------------------------------------------------------------ */
/* The HBM table                                                            */
/* ------------------------------------------------------------------------ */

/** Keys the table cannot store: the empty and locked slot markers. Inserts
 *  of them are answered GPU_INSERT_REJECTED and finds report them missing;
 *  the tier manager keeps such keys in DRAM. */
#define GPU_KEY_EMPTY UINT64_MAX
#define GPU_KEY_LOCKED (UINT64_MAX - 1)

/** Slots per bucket. Capacity is rounded up to a power-of-two number of
 *  buckets of this many slots. */
#define GPU_BUCKET_SLOTS 128u

/** Per-key outcome of gpu_table_insert_or_assign (d_result). */
enum {
    GPU_INSERT_ASSIGNED = 1,  /**< the key was present; its row was overwritten */
    GPU_INSERT_INSERTED = 2,  /**< stored in a free slot */
    GPU_INSERT_EVICTED = 3,   /**< stored in the place of the bucket's
                                   lowest-scored key, which was evicted */
    GPU_INSERT_REJECTED = 4   /**< not stored: its bucket is full and its score
                                   is below every score there (or eviction is
                                   NONE), or the key is reserved */
};

enum {
    GPU_TABLE_FIELD_DIM = 1u << 0,
    GPU_TABLE_FIELD_CAPACITY = 1u << 1,
    GPU_TABLE_FIELD_OPTIMIZER = 1u << 2,
    GPU_TABLE_FIELD_EVICTION = 1u << 3
};

/** A table's shape. DIM and CAPACITY are required. */
typedef struct gpu_table_config {
    uint64_t field_mask;                  /**< GPU_TABLE_FIELD_* bits */
    uint32_t dim;                         /**< floats per row, 1..STRATA_DIM_MAX */
    uint64_t capacity;                    /**< rows; rounded up to a power-of-two
                                               number of 128-slot buckets */
    strata_optimizer_params_t optimizer;  /**< default SGD lr 0.01 (as strata.h);
                                               resolved and validated by core */
    strata_eviction_t eviction;           /**< the tier policy; default LRU.
                                               LRU: score = write step; LFU:
                                               (writes << 32 | step); SCORE: the
                                               caller's scores; NONE: a full
                                               bucket rejects new keys */
} gpu_table_config_t;

typedef struct gpu_table gpu_table_t;

/** Sizes of a created table. */
typedef struct gpu_table_info {
    uint64_t nbuckets;      /**< power of two */
    uint64_t capacity;      /**< slots = nbuckets * GPU_BUCKET_SLOTS */
    uint32_t dim;           /**< floats per row */
    uint32_t state_floats;  /**< optimizer state floats per row */
    uint64_t bytes;         /**< device memory the table holds */
    strata_eviction_t eviction;
    strata_optimizer_params_t optimizer;  /**< resolved */
} gpu_table_info_t;

/** Create an empty table on the current device (its memory is allocated
 *  and cleared at once; the call synchronizes the device). *table_p is the
 *  caller's until gpu_table_destroy. Errors: INVALID_PARAM (shape,
 *  optimizer), UNSUPPORTED (no CUDA or no device), NOMEM (device memory).
 *  Any thread. */
strata_status_t gpu_table_create(const gpu_table_config_t *config, gpu_table_t **table_p);

/** Free the table after every kernel on it has finished (the call
 *  synchronizes the device). */
void gpu_table_destroy(gpu_table_t *table);

void gpu_table_get_info(const gpu_table_t *table, gpu_table_info_t *info);

/** Gather rows: for each d_keys[i] (i < n) present, copy its row to
 *  d_out[i*dim .. +dim) and set d_found[i] = 1; for an absent key set
 *  d_found[i] = 0 and leave its row of d_out unwritten (the caller fills
 *  it from a lower tier or the initializer). d_found may be NULL. Scores
 *  are not changed by reads (as in the DRAM tier). Stream-ordered. */
strata_status_t gpu_table_find(gpu_table_t *table, const uint64_t *d_keys, size_t n, float *d_out,
                               uint8_t *d_found, void *stream);

enum {
    GPU_INSERT_FIELD_SCORES = 1u << 0,
    GPU_INSERT_FIELD_STATES = 1u << 1,
    GPU_INSERT_FIELD_RESULT = 1u << 2,
    GPU_INSERT_FIELD_EVICTED = 1u << 3
};

/** Optional inputs and outputs of gpu_table_insert_or_assign. */
typedef struct gpu_insert_opts {
    uint64_t field_mask;        /**< GPU_INSERT_FIELD_* bits */
    const uint64_t *d_scores;   /**< SCORES: n scores for eviction SCORE tables
                                     (see gpu_score_from_float); ignored by the
                                     other policies. Default score 0 */
    const float *d_states;      /**< STATES: n * state_floats optimizer state to
                                     store with the rows (a row promoted from
                                     DRAM keeps its state); default: fresh
                                     state, as strata_table_assign */
    uint8_t *d_result;          /**< RESULT: n GPU_INSERT_* codes */
    uint64_t *d_evicted_keys;   /**< EVICTED: up to max_evicted keys evicted */
    float *d_evicted_values;    /**< EVICTED: their rows (max_evicted * dim), or
                                     NULL */
    uint64_t *d_evicted_count;  /**< EVICTED: set to the number evicted, which
                                     may exceed max_evicted (the rest are lost
                                     to the caller) */
    uint64_t max_evicted;       /**< EVICTED: capacity of the arrays above */
} gpu_insert_opts_t;

/** Store rows: for each (d_keys[i], d_values[i*dim ..]) assign the row if
 *  the key is present, else store it in a free slot of its bucket, else
 *  evict the bucket's lowest-scored key when the new key's score is at
 *  least that score (the tier policy, see gpu_table_config_t), else reject
 *  it. Optimizer state is reset (or taken from opts->d_states); every
 *  written slot is marked dirty. Duplicate keys in one call: one of their
 *  rows wins, unspecified which; the key is stored once. opts may be NULL.
 *  Counts as one write step (LRU/LFU scores). Stream-ordered. */
strata_status_t gpu_table_insert_or_assign(gpu_table_t *table, const uint64_t *d_keys,
                                           const float *d_values, size_t n,
                                           const gpu_insert_opts_t *opts, void *stream);

/** One optimizer step (the table's optimizer, core/optim.h's row math) per
 *  (d_keys[i], d_grads[i*dim ..]) for present keys; absent keys get
 *  d_found[i] = 0 and are skipped (the tier manager promotes or creates
 *  them first). Duplicate keys are applied as separate steps in an
 *  unspecified order: dedup first (gpu_dedup_run + gpu_dedup_sum_rows) for
 *  one step per key. Gradients are not checked for NaN/Inf here (the
 *  server checks a batch before it reaches a tier). Updates scores (LRU:
 *  step, LFU: count) and dirty bits. Counts as one write step.
 *  Stream-ordered. */
strata_status_t gpu_table_apply(gpu_table_t *table, const uint64_t *d_keys, const float *d_grads,
                                size_t n, uint8_t *d_found, void *stream);

/** Export rows written since the last export: for each dirty slot write
 *  its key, row and (when d_states is not NULL) optimizer state at the
 *  next free position < max_rows of the outputs and clear its dirty bit;
 *  *d_count gets the number of dirty rows found. When that exceeds
 *  max_rows, the rows beyond stay dirty for the next export. Order is
 *  unspecified. Stream-ordered; a writer. */
strata_status_t gpu_table_export_dirty(gpu_table_t *table, uint64_t *d_keys, float *d_values,
                                       float *d_states, uint64_t max_rows, uint64_t *d_count,
                                       void *stream);

/** Number of stored keys in *size. Synchronizes the stream. */
strata_status_t gpu_table_size(gpu_table_t *table, uint64_t *size, void *stream);

/** Remove every key (stream-ordered). */
strata_status_t gpu_table_clear(gpu_table_t *table, void *stream);

/** The table's device arrays, as memory descriptors for registration. */
typedef enum gpu_region {
    GPU_REGION_KEYS = 0,    /**< capacity u64 keys, slot order */
    GPU_REGION_VALUES = 1   /**< capacity * dim floats, slot order */
} gpu_region_t;

/** Describe one of the table's arrays (memtype CUDA). Borrowed: valid until
 *  gpu_table_destroy. */
strata_status_t gpu_table_memdesc(const gpu_table_t *table, gpu_region_t which,
                                  core_memdesc_t *desc);

/** An order-preserving u64 score from a float score (the DRAM tier's
 *  STRATA_EVICT_SCORE scores) and a tie-breaking step: scores compare as
 *  (f, step) do, for every non-NaN f (-0 = +0 is not kept: -0 < +0). */
uint64_t gpu_score_from_float(float f, uint32_t step);

/* ------------------------------------------------------------------------ */
/* Dedup with the inverse index                                             */
/* ------------------------------------------------------------------------ */

typedef struct gpu_dedup gpu_dedup_t;

/** Workspace for batches of up to max_n keys (device memory, allocated
 *  once; no allocation per batch). Owned by the caller. */
strata_status_t gpu_dedup_create(size_t max_n, gpu_dedup_t **dedup_p);
void gpu_dedup_destroy(gpu_dedup_t *dedup);

/** d_unique[0 .. u) gets the distinct keys of d_keys[0 .. n) in ascending
 *  order, *d_n_unique = u (a device u32), and d_inverse[i] the position of
 *  d_keys[i] in d_unique. n <= max_n. Stream-ordered; the workspace keeps
 *  the sorted order for gpu_dedup_sum_rows until the next run. */
strata_status_t gpu_dedup_run(gpu_dedup_t *dedup, const uint64_t *d_keys, size_t n,
                              uint64_t *d_unique, uint32_t *d_inverse, uint32_t *d_n_unique,
                              void *stream);

/** After gpu_dedup_run on the same stream: d_out[u*dim ..] = the sum of
 *  d_rows[i*dim ..] over the i with d_inverse[i] = u, added in increasing
 *  i from 0.0f (so the result is the same, bit for bit, as a sequential
 *  sum in batch order). d_out holds n rows (only the first u are written). */
strata_status_t gpu_dedup_sum_rows(gpu_dedup_t *dedup, const float *d_rows, uint32_t dim,
                                   float *d_out, void *stream);

/* ------------------------------------------------------------------------ */
/* Pinned host bounce buffers (GPUDirect fallback)                          */
/* ------------------------------------------------------------------------ */

/** A pinned host buffer (cudaHostAlloc) that stands in for device memory
 *  when the transport cannot register CUDA memory (core_memdesc_path says
 *  BOUNCE): the server mirrors HBM rows into it for remote readers, and a
 *  client lands rows in it before copying them to a device destination. */
typedef struct gpu_bounce gpu_bounce_t;

strata_status_t gpu_bounce_create(size_t bytes, gpu_bounce_t **bounce_p);
void gpu_bounce_destroy(gpu_bounce_t *bounce);
/** The host address and size (borrowed for the buffer's life). */
void *gpu_bounce_host(const gpu_bounce_t *bounce);
size_t gpu_bounce_size(const gpu_bounce_t *bounce);
/** The buffer as a descriptor (memtype HOST) for rdma_mem_register. */
void gpu_bounce_memdesc(const gpu_bounce_t *bounce, core_memdesc_t *desc);
/** Stream-ordered copies between the buffer (at offset) and device memory.
 *  INVALID_PARAM when offset + bytes passes the end. */
strata_status_t gpu_bounce_to_device(gpu_bounce_t *bounce, size_t offset, void *d_dst,
                                     size_t bytes, void *stream);
strata_status_t gpu_bounce_from_device(gpu_bounce_t *bounce, size_t offset, const void *d_src,
                                       size_t bytes, void *stream);
/** Mirror a whole table array into the buffer at offset 0 (the server side
 *  of the bounce path: remote readers see the same byte layout as in HBM).
 *  INVALID_PARAM when the buffer is too small. Stream-ordered. */
strata_status_t gpu_table_mirror(const gpu_table_t *table, gpu_region_t which,
                                 gpu_bounce_t *bounce, void *stream);

/* ------------------------------------------------------------------------ */
/* Device limits (for perf/)                                                */
/* ------------------------------------------------------------------------ */

/** Measured device-memory bandwidth: the best of iters runs of a float4
 *  copy kernel over two buffers of bytes each (bytes read + bytes written
 *  per run), and of cudaMemcpy device to device. GB/s = 1e9 bytes/s.
 *  Synchronizes the device. */
typedef struct gpu_bandwidth {
    double copy_kernel_gbps;   /**< (read + write) / time, copy kernel */
    double memcpy_d2d_gbps;    /**< (read + write) / time, cudaMemcpyAsync */
    double bytes;              /**< buffer size used */
} gpu_bandwidth_t;

strata_status_t gpu_measure_bandwidth(size_t bytes, int iters, gpu_bandwidth_t *bw);

/** The device's name and memory (for benchmark output). */
strata_status_t gpu_device_describe(char *name, size_t name_len, uint64_t *mem_bytes,
                                    int *cc_major, int *cc_minor, int *sm_count);

#ifdef __cplusplus
}
#endif

#endif
