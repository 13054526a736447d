/*
 * gpu/gpu_runtime.c — the CUDA runtime side of gpu/ that needs no kernel:
 * error translation, devices, streams, memory, pointer classification and
 * the pinned host bounce buffers. Plain C against cuda_runtime_api.h
 * (compiled by the C compiler, not nvcc).
 *
 * Invariant: every cudaError_t is translated by gpu_cuda_status before it
 * leaves gpu/.
 *
 * Threading: all functions are thread-safe as the CUDA runtime is; a bounce
 * buffer is used by one thread at a time.
 */
#include <cuda_runtime_api.h>
#include <stdio.h>
#include <string.h>

#include "core/alloc.h"
#include "core/status.h"
#include "gpu/gpu.h"
#include "gpu/gpu_cuda_status.h"
#include "gpu/gpu_internal.h"
#include "gpu/gpu_logic.h"

strata_status_t gpu_cuda_status(int err, const char *what)
{
    const cudaError_t e = (cudaError_t)err;
    strata_status_t st = gpu_cuda_status_code(e);
    if (st == STRATA_OK)
        return STRATA_OK;
    return core_fail(st, "%s: %s (%s)", what, cudaGetErrorString(e), cudaGetErrorName(e));
}

strata_status_t gpu_device_count(int *count)
{
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess) {
        strata_status_t st = gpu_cuda_status(e, "cudaGetDeviceCount");
        (void)cudaGetLastError(); /* clear the sticky-free error */
        return st == STRATA_ERR_INTERNAL ? STRATA_ERR_UNSUPPORTED : st;
    }
    if (n == 0)
        return core_fail(STRATA_ERR_UNSUPPORTED, "no CUDA device");
    *count = n;
    return STRATA_OK;
}

strata_status_t gpu_device_describe(char *name, size_t name_len, uint64_t *mem_bytes,
                                    int *cc_major, int *cc_minor, int *sm_count)
{
    int dev = 0;
    cudaError_t e = cudaGetDevice(&dev);
    if (e != cudaSuccess)
        return gpu_cuda_status(e, "cudaGetDevice");
    struct cudaDeviceProp p;
    e = cudaGetDeviceProperties(&p, dev);
    if (e != cudaSuccess)
        return gpu_cuda_status(e, "cudaGetDeviceProperties");
    if (name && name_len)
        snprintf(name, name_len, "%s", p.name);
    if (mem_bytes)
        *mem_bytes = p.totalGlobalMem;
    if (cc_major)
        *cc_major = p.major;
    if (cc_minor)
        *cc_minor = p.minor;
    if (sm_count)
        *sm_count = p.multiProcessorCount;
    return STRATA_OK;
}

strata_status_t gpu_stream_create(void **stream_p)
{
    cudaStream_t s;
    cudaError_t e = cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking);
    if (e != cudaSuccess)
        return gpu_cuda_status(e, "cudaStreamCreateWithFlags");
    *stream_p = s;
    return STRATA_OK;
}

void gpu_stream_destroy(void *stream)
{
    if (stream)
        (void)cudaStreamDestroy((cudaStream_t)stream);
}

strata_status_t gpu_stream_sync(void *stream)
{
    return gpu_cuda_status(cudaStreamSynchronize((cudaStream_t)stream), "cudaStreamSynchronize");
}

strata_status_t gpu_malloc(void **ptr_p, size_t bytes)
{
    void *p = NULL;
    cudaError_t e = cudaMalloc(&p, bytes ? bytes : 1);
    if (e != cudaSuccess)
        return gpu_cuda_status(e, "cudaMalloc");
    *ptr_p = p;
    return STRATA_OK;
}

void gpu_free(void *ptr)
{
    if (ptr)
        (void)cudaFree(ptr);
}

strata_status_t gpu_host_alloc(void **ptr_p, size_t bytes)
{
    void *p = NULL;
    cudaError_t e = cudaHostAlloc(&p, bytes ? bytes : 1, cudaHostAllocPortable);
    if (e != cudaSuccess)
        return gpu_cuda_status(e, "cudaHostAlloc");
    *ptr_p = p;
    return STRATA_OK;
}

void gpu_host_free(void *ptr)
{
    if (ptr)
        (void)cudaFreeHost(ptr);
}

strata_status_t gpu_memcpy(void *dst, const void *src, size_t bytes, void *stream)
{
    return gpu_cuda_status(
        cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDefault, (cudaStream_t)stream),
        "cudaMemcpyAsync");
}

strata_status_t gpu_memset(void *dst, int byte, size_t bytes, void *stream)
{
    return gpu_cuda_status(cudaMemsetAsync(dst, byte, bytes, (cudaStream_t)stream),
                           "cudaMemsetAsync");
}

strata_status_t gpu_ptr_memtype(const void *ptr, core_memtype_t *type_p)
{
    struct cudaPointerAttributes a;
    memset(&a, 0, sizeof(a));
    cudaError_t e = cudaPointerGetAttributes(&a, ptr);
    if (e != cudaSuccess)
        return gpu_cuda_status(e, "cudaPointerGetAttributes");
    switch (a.type) {
    case cudaMemoryTypeDevice:
        *type_p = CORE_MEMTYPE_CUDA;
        break;
    case cudaMemoryTypeManaged:
        *type_p = CORE_MEMTYPE_CUDA_MANAGED;
        break;
    default: /* unregistered or pinned host memory */
        *type_p = CORE_MEMTYPE_HOST;
        break;
    }
    return STRATA_OK;
}

uint64_t gpu_score_from_float(float f, uint32_t step)
{
    return gpu_score_of_float(f, step);
}

/* ------------------------------------------------------------------------ */
/* bounce buffers                                                           */
/* ------------------------------------------------------------------------ */

struct gpu_bounce {
    void *host;   /**< cudaHostAlloc'ed, portable */
    size_t size;  /**< bytes */
};

strata_status_t gpu_bounce_create(size_t bytes, gpu_bounce_t **bounce_p)
{
    if (bytes == 0)
        return core_fail(STRATA_ERR_INVALID_PARAM, "bounce buffer of 0 bytes");
    gpu_bounce_t *b = core_calloc(1, sizeof(*b));
    if (!b)
        return core_fail(STRATA_ERR_NOMEM, "bounce buffer: out of memory");
    strata_status_t st = gpu_host_alloc(&b->host, bytes);
    if (st != STRATA_OK) {
        core_free(b);
        return st;
    }
    b->size = bytes;
    *bounce_p = b;
    return STRATA_OK;
}

void gpu_bounce_destroy(gpu_bounce_t *b)
{
    if (!b)
        return;
    gpu_host_free(b->host);
    core_free(b);
}

void *gpu_bounce_host(const gpu_bounce_t *b)
{
    return b->host;
}

size_t gpu_bounce_size(const gpu_bounce_t *b)
{
    return b->size;
}

void gpu_bounce_memdesc(const gpu_bounce_t *b, core_memdesc_t *desc)
{
    desc->addr = b->host;
    desc->len = b->size;
    desc->memtype = CORE_MEMTYPE_HOST;
    desc->device = -1;
}

static strata_status_t bounce_range(const gpu_bounce_t *b, size_t offset, size_t bytes)
{
    if (offset > b->size || bytes > b->size - offset)
        return core_fail(STRATA_ERR_INVALID_PARAM,
                         "bounce range %zu + %zu passes the buffer's %zu bytes", offset, bytes,
                         b->size);
    return STRATA_OK;
}

strata_status_t gpu_bounce_to_device(gpu_bounce_t *b, size_t offset, void *d_dst, size_t bytes,
                                     void *stream)
{
    strata_status_t st = bounce_range(b, offset, bytes);
    if (st != STRATA_OK)
        return st;
    return gpu_cuda_status(cudaMemcpyAsync(d_dst, (char *)b->host + offset, bytes,
                                           cudaMemcpyHostToDevice, (cudaStream_t)stream),
                           "bounce to device");
}

strata_status_t gpu_bounce_from_device(gpu_bounce_t *b, size_t offset, const void *d_src,
                                       size_t bytes, void *stream)
{
    strata_status_t st = bounce_range(b, offset, bytes);
    if (st != STRATA_OK)
        return st;
    return gpu_cuda_status(cudaMemcpyAsync((char *)b->host + offset, d_src, bytes,
                                           cudaMemcpyDeviceToHost, (cudaStream_t)stream),
                           "bounce from device");
}
