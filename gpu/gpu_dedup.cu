/*
 * gpu/gpu_dedup.cu — unique keys with the inverse index, and the sum of
 * the rows of duplicate keys (gpu/gpu.h "Dedup").
 *
 * Method: a stable LSD radix sort of (key, position) pairs over all 64 key
 * bits (cub::DeviceRadixSort::SortPairs), head flags where the sorted key
 * changes, an inclusive scan of the flags (cub::DeviceScan::InclusiveSum)
 * giving each sorted item its unique index, and a scatter: inverse[pos] =
 * index, unique[index] = key, run_start[index] = sorted position. The sort
 * is stable, so within a run the positions ascend; gpu_dedup_sum_rows adds
 * a run's rows in that order, which is the batch order.
 *
 * Invariant: the workspace holds the last run's sorted positions and run
 * starts; the run count stays on the device (no host round trip).
 *
 * Threading: a workspace is used by one stream at a time.
 */
#include <cub/device/device_radix_sort.cuh>
#include <cub/device/device_scan.cuh>
#include <cuda_runtime.h>
#include <stdint.h>
#include <string.h>

#include "gpu/gpu.h"
#include "gpu/gpu_internal.h"

extern "C" {
#include "core/alloc.h"
#include "core/status.h"
}

#define BLOCK 256u

struct gpu_dedup {
    size_t max_n;          /**< largest batch */
    size_t n;              /**< the last run's batch size */
    uint32_t *pos_in;      /**< 0 .. max_n-1 */
    uint64_t *keys_sorted; /**< max_n */
    uint32_t *pos_sorted;  /**< max_n: batch positions in key order */
    uint32_t *ids;         /**< max_n: head flags, then inclusive scan */
    uint32_t *run_start;   /**< max_n + 1 */
    uint32_t *n_unique;    /**< device copy of the last run's count */
    void *temp;            /**< cub temporary storage */
    size_t temp_bytes;     /**< its size */
};

__global__ void k_iota(uint32_t *p, size_t n)
{
    const size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n)
        p[i] = (uint32_t)i;
}

__global__ void k_heads(const uint64_t *ks, size_t n, uint32_t *flags)
{
    const size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n)
        flags[i] = i == 0 || ks[i] != ks[i - 1];
}

__global__ void k_scatter(const uint64_t *ks, const uint32_t *pos, const uint32_t *ids, size_t n,
                          uint64_t *unique, uint32_t *inverse, uint32_t *run_start,
                          uint32_t *n_unique_ws, uint32_t *n_unique_out)
{
    const size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n)
        return;
    const uint32_t u = ids[i] - 1;
    inverse[pos[i]] = u;
    if (i == 0 || ks[i] != ks[i - 1]) {
        unique[u] = ks[i];
        run_start[u] = (uint32_t)i;
    }
    if (i == n - 1) {
        run_start[u + 1] = (uint32_t)n;
        *n_unique_ws = u + 1;
        if (n_unique_out)
            *n_unique_out = u + 1;
    }
}

/** out[u*dim + c] = sum of rows[pos*dim + c] over the run of u, in
 *  ascending pos, from 0.0f. One thread per (u, c). */
__global__ void k_sum_rows(const float *rows, uint32_t dim, const uint32_t *pos_sorted,
                           const uint32_t *run_start, const uint32_t *n_unique, size_t n,
                           float *out)
{
    const size_t t = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (t >= n * dim)
        return;
    const size_t u = t / dim, c = t - u * dim;
    if (u >= *n_unique)
        return;
    float acc = 0.0f;
    for (uint32_t j = run_start[u]; j < run_start[u + 1]; j++)
        acc += rows[(size_t)pos_sorted[j] * dim + c];
    out[t] = acc;
}

extern "C" strata_status_t gpu_dedup_create(size_t max_n, gpu_dedup_t **dedup_p)
{
    if (!dedup_p || max_n == 0 || max_n > UINT32_MAX - 1)
        return core_fail(STRATA_ERR_INVALID_PARAM, "dedup max_n must be 1..2^32-2");
    int ndev = 0;
    strata_status_t st = gpu_device_count(&ndev);
    if (st != STRATA_OK)
        return st;
    gpu_dedup_t *d = (gpu_dedup_t *)core_calloc(1, sizeof(*d));
    if (!d)
        return core_fail(STRATA_ERR_NOMEM, "dedup: out of memory");
    d->max_n = max_n;
    size_t sort_bytes = 0, scan_bytes = 0;
    cudaError_t e = cub::DeviceRadixSort::SortPairs(nullptr, sort_bytes, (const uint64_t *)nullptr,
                                                    (uint64_t *)nullptr, (const uint32_t *)nullptr,
                                                    (uint32_t *)nullptr, (int64_t)max_n);
    if (e == cudaSuccess)
        e = cub::DeviceScan::InclusiveSum(nullptr, scan_bytes, (const uint32_t *)nullptr,
                                          (uint32_t *)nullptr, (int64_t)max_n);
    d->temp_bytes = sort_bytes > scan_bytes ? sort_bytes : scan_bytes;
    if (e == cudaSuccess)
        e = cudaMalloc(&d->pos_in, max_n * 4);
    if (e == cudaSuccess)
        e = cudaMalloc(&d->keys_sorted, max_n * 8);
    if (e == cudaSuccess)
        e = cudaMalloc(&d->pos_sorted, max_n * 4);
    if (e == cudaSuccess)
        e = cudaMalloc(&d->ids, max_n * 4);
    if (e == cudaSuccess)
        e = cudaMalloc(&d->run_start, (max_n + 1) * 4);
    if (e == cudaSuccess)
        e = cudaMalloc(&d->n_unique, 4);
    if (e == cudaSuccess)
        e = cudaMalloc(&d->temp, d->temp_bytes ? d->temp_bytes : 1);
    if (e == cudaSuccess) {
        k_iota<<<(unsigned)((max_n + BLOCK - 1) / BLOCK), BLOCK>>>(d->pos_in, max_n);
        e = cudaGetLastError();
    }
    if (e == cudaSuccess)
        e = cudaMemset(d->n_unique, 0, 4);
    if (e == cudaSuccess)
        e = cudaDeviceSynchronize();
    if (e != cudaSuccess) {
        st = gpu_cuda_status(e, "gpu_dedup_create");
        gpu_dedup_destroy(d);
        return st;
    }
    *dedup_p = d;
    return STRATA_OK;
}

extern "C" void gpu_dedup_destroy(gpu_dedup_t *d)
{
    if (!d)
        return;
    (void)cudaDeviceSynchronize();
    void *ptrs[] = {d->pos_in, d->keys_sorted, d->pos_sorted, d->ids,
                    d->run_start, d->n_unique, d->temp};
    for (size_t k = 0; k < sizeof(ptrs) / sizeof(ptrs[0]); k++)
        if (ptrs[k])
            (void)cudaFree(ptrs[k]);
    core_free(d);
}

extern "C" strata_status_t gpu_dedup_run(gpu_dedup_t *d, const uint64_t *d_keys, size_t n,
                                         uint64_t *d_unique, uint32_t *d_inverse,
                                         uint32_t *d_n_unique, void *stream)
{
    if (!d || (n && (!d_keys || !d_unique || !d_inverse)))
        return core_fail(STRATA_ERR_INVALID_PARAM, "dedup: NULL argument");
    if (n > d->max_n)
        return core_fail(STRATA_ERR_TOO_LARGE, "dedup of %zu keys: workspace holds %zu", n,
                         d->max_n);
    cudaStream_t s = (cudaStream_t)stream;
    d->n = n;
    cudaError_t e;
    if (n == 0) {
        e = cudaMemsetAsync(d->n_unique, 0, 4, s);
        if (e == cudaSuccess && d_n_unique)
            e = cudaMemsetAsync(d_n_unique, 0, 4, s);
        return gpu_cuda_status(e, "gpu_dedup_run");
    }
    size_t bytes = d->temp_bytes;
    e = cub::DeviceRadixSort::SortPairs(d->temp, bytes, d_keys, d->keys_sorted, d->pos_in,
                                        d->pos_sorted, (int64_t)n, 0, 64, s);
    const unsigned grid = (unsigned)((n + BLOCK - 1) / BLOCK);
    if (e == cudaSuccess) {
        k_heads<<<grid, BLOCK, 0, s>>>(d->keys_sorted, n, d->ids);
        e = cudaGetLastError();
    }
    bytes = d->temp_bytes;
    if (e == cudaSuccess)
        e = cub::DeviceScan::InclusiveSum(d->temp, bytes, d->ids, d->ids, (int64_t)n, s);
    if (e == cudaSuccess) {
        k_scatter<<<grid, BLOCK, 0, s>>>(d->keys_sorted, d->pos_sorted, d->ids, n, d_unique,
                                         d_inverse, d->run_start, d->n_unique, d_n_unique);
        e = cudaGetLastError();
    }
    return gpu_cuda_status(e, "gpu_dedup_run");
}

extern "C" strata_status_t gpu_dedup_sum_rows(gpu_dedup_t *d, const float *d_rows, uint32_t dim,
                                              float *d_out, void *stream)
{
    if (!d || dim == 0 || (d->n && (!d_rows || !d_out)))
        return core_fail(STRATA_ERR_INVALID_PARAM, "dedup sum: NULL argument or dim 0");
    const size_t total = d->n * (size_t)dim;
    if (total == 0)
        return STRATA_OK;
    k_sum_rows<<<(unsigned)((total + BLOCK - 1) / BLOCK), BLOCK, 0, (cudaStream_t)stream>>>(
        d_rows, dim, d->pos_sorted, d->run_start, d->n_unique, d->n, d_out);
    return gpu_cuda_status(cudaGetLastError(), "gpu_dedup_sum_rows");
}
