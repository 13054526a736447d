/*
 * client/client_gpu.c — strata_rtable_lookup_device: a client lookup whose
 * rows land in CUDA device memory (built when STRATA_HAVE_CUDA; without
 * CUDA, client_gpu_stub.c answers STRATA_ERR_UNSUPPORTED).
 *
 * Path (a UCX without CUDA support, such as Debian's: rdma_ctx_memtypes
 * reports host memory only): the lookup runs as strata_rtable_lookup into
 * a pinned host bounce buffer of the client (cudaHostAlloc, portable,
 * grown as batches need and freed with the client), then one
 * cudaMemcpyAsync moves the n rows to d_out on the caller's stream, and the
 * call synchronizes that stream before it returns. The buffer is reused by
 * the next call, which is why the call cannot return before the copy ends.
 *
 * Straight into device memory (not implemented): where rdma_ctx_memtypes
 * has CORE_MEMTYPE_BIT(CORE_MEMTYPE_CUDA) (a UCX built --with-cuda), a
 * device staging area could be registered once per client with
 * rdma_mem_register (memtype CUDA) and op_onesided's ucp_get_nbx calls
 * pointed into it instead of its host `rows` buffer. It is not a small
 * change: every one-sided row copy is validated before use (even sequence,
 * xxhash checksum, key; core_row_validate) and re-read when torn, and that
 * check runs on the CPU over the copy; reading into HBM needs the check as
 * a device kernel (or a second copy back), and the RPC path's rows arrive
 * in host memory anyway (UCX active-message replies). docs/gpu.md,
 * "Client lookups into device buffers", has the plan.
 *
 * The CUDA runtime is loaded lazily (dlopen of libcudart.so.<major> of the
 * toolkit the headers come from, on the first device lookup), so
 * libstrata.so has no hard dependency on libcudart: on a machine without
 * it the call answers UNSUPPORTED. The handle is kept for the process's
 * life. In a process that already holds the runtime (PyTorch) the same
 * library is returned; a process with a second runtime instance (a
 * statically linked cudart) shares the device's primary context with it,
 * so device pointers and streams from either are valid in both.
 *
 * Threading: the runtime is loaded once (pthread_once) for all threads; a
 * client's bounce buffer belongs to the client's thread, like the client.
 */
#define _GNU_SOURCE
#include <cuda_runtime_api.h>
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "client/client_internal.h"
#include "core/alloc.h"
#include "core/status.h"
#include "gpu/gpu_cuda_status.h"
#include "strata.h"

/* ---- the runtime, loaded on first use ----------------------------------- */

/** The runtime's entry points this file calls (types from the header the
 *  library's major version matches). */
typedef struct cudart_api {
    __typeof__(cudaHostAlloc) *host_alloc;
    __typeof__(cudaFreeHost) *free_host;
    __typeof__(cudaMemcpyAsync) *memcpy_async;
    __typeof__(cudaStreamSynchronize) *stream_sync;
    __typeof__(cudaPointerGetAttributes) *ptr_attrs;
    __typeof__(cudaGetLastError) *get_last_error;
    __typeof__(cudaGetErrorString) *error_string;
    __typeof__(cudaGetErrorName) *error_name;
} cudart_api_t;

static pthread_once_t g_cudart_once = PTHREAD_ONCE_INIT;
static cudart_api_t g_cudart;  /**< valid when g_cudart_ok */
static int g_cudart_ok;        /**< set once, before pthread_once returns */
static char g_cudart_why[256]; /**< why loading failed */

static void cudart_load(void)
{
    char soname[32];
    snprintf(soname, sizeof(soname), "libcudart.so.%d", CUDART_VERSION / 1000);
    void *h = dlopen(soname, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        /* the toolkit this was built with (CMake's CLIENT_CUDART_DIR), when
         * the loader's path lacks the runtime */
        char path[512];
        snprintf(path, sizeof(path), "%s/%s", CLIENT_CUDART_DIR, soname);
        h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    }
    if (!h) {
        snprintf(g_cudart_why, sizeof(g_cudart_why), "%s", dlerror());
        return;
    }
    struct {
        const char *name;
        void **slot;
    } syms[] = {
        {"cudaHostAlloc", (void **)&g_cudart.host_alloc},
        {"cudaFreeHost", (void **)&g_cudart.free_host},
        {"cudaMemcpyAsync", (void **)&g_cudart.memcpy_async},
        {"cudaStreamSynchronize", (void **)&g_cudart.stream_sync},
        {"cudaPointerGetAttributes", (void **)&g_cudart.ptr_attrs},
        {"cudaGetLastError", (void **)&g_cudart.get_last_error},
        {"cudaGetErrorString", (void **)&g_cudart.error_string},
        {"cudaGetErrorName", (void **)&g_cudart.error_name},
    };
    for (size_t i = 0; i < sizeof(syms) / sizeof(syms[0]); i++) {
        *syms[i].slot = dlsym(h, syms[i].name);
        if (!*syms[i].slot) {
            snprintf(g_cudart_why, sizeof(g_cudart_why), "%s: no symbol %s", soname, syms[i].name);
            dlclose(h);
            return;
        }
    }
    g_cudart_ok = 1;
}

/** The loaded runtime, or NULL with UNSUPPORTED set as the last error. */
static const cudart_api_t *cudart(void)
{
    pthread_once(&g_cudart_once, cudart_load);
    if (!g_cudart_ok) {
        core_fail(STRATA_ERR_UNSUPPORTED, "device lookup: CUDA runtime not available (%s)",
                  g_cudart_why);
        return NULL;
    }
    return &g_cudart;
}

/** Translate a cudaError_t (gpu/gpu_cuda_status.h) with the runtime's text. */
static strata_status_t cuda_status(const cudart_api_t *rt, cudaError_t e, const char *what)
{
    strata_status_t st = gpu_cuda_status_code(e);
    if (st == STRATA_OK)
        return STRATA_OK;
    return core_fail(st, "%s: %s (%s)", what, rt->error_string(e), rt->error_name(e));
}

/* ---- the per-client bounce buffer --------------------------------------- */

struct client_gpu {
    void *host; /**< pinned host memory (cudaHostAlloc, portable), or NULL */
    size_t cap; /**< its bytes */
};

void client_gpu_free(client_gpu_t *g)
{
    if (!g)
        return;
    if (g->host) /* only allocated once the runtime was loaded */
        (void)g_cudart.free_host(g->host);
    core_free(g);
}

/** Make the client's bounce buffer hold at least bytes; on success *host_p
 *  is it (borrowed from the client). */
static strata_status_t bounce_reserve(const cudart_api_t *rt, strata_rtable_t *t, size_t bytes,
                                      void **host_p)
{
    client_gpu_t **slot = client_gpu_slot(t);
    if (!*slot) {
        *slot = core_calloc(1, sizeof(client_gpu_t));
        if (!*slot)
            return core_fail(STRATA_ERR_NOMEM, "device lookup: out of memory");
    }
    client_gpu_t *g = *slot;
    if (g->cap < bytes) {
        /* grow geometrically so a rising batch size pins memory a few
         * times, not once per call; at least 1 MiB */
        size_t cap = g->cap * 2 > bytes ? g->cap * 2 : bytes;
        if (cap < ((size_t)1 << 20))
            cap = (size_t)1 << 20;
        if (g->host)
            (void)rt->free_host(g->host);
        g->host = NULL;
        g->cap = 0;
        void *p = NULL;
        cudaError_t e = rt->host_alloc(&p, cap, cudaHostAllocPortable);
        if (e != cudaSuccess && cap > bytes) { /* the doubling was too greedy */
            (void)rt->get_last_error();
            cap = bytes;
            e = rt->host_alloc(&p, cap, cudaHostAllocPortable);
        }
        if (e != cudaSuccess) {
            strata_status_t st = cuda_status(rt, e, "device lookup: cudaHostAlloc");
            (void)rt->get_last_error();
            return st;
        }
        g->host = p;
        g->cap = cap;
    }
    *host_p = g->host;
    return STRATA_OK;
}

/* ---- the call ----------------------------------------------------------- */

strata_status_t strata_rtable_lookup_device(strata_rtable_t *t, const uint64_t *keys, size_t n,
                                            void *d_out, uint8_t *found, uint32_t flags,
                                            void *cuda_stream)
{
    if (!t)
        return core_fail(STRATA_ERR_INVALID_PARAM, "table is NULL");
    const cudart_api_t *rt = cudart();
    if (!rt)
        return STRATA_ERR_UNSUPPORTED;
    if (n == 0) /* nothing to copy; flags and the client's mode still checked */
        return strata_rtable_lookup(t, keys, 0, NULL, found, flags);
    if (!keys || !d_out)
        return core_fail(STRATA_ERR_INVALID_PARAM, "keys and d_out must not be NULL when n = %zu",
                         n);

    /* d_out must be device (or managed) memory: host memory has
     * strata_rtable_lookup, and a copy to it would be a wasted round. */
    struct cudaPointerAttributes a;
    memset(&a, 0, sizeof(a));
    cudaError_t e = rt->ptr_attrs(&a, d_out);
    if (e != cudaSuccess) {
        strata_status_t st = cuda_status(rt, e, "device lookup: cudaPointerGetAttributes(d_out)");
        (void)rt->get_last_error(); /* not sticky; leave no error behind */
        if (st == STRATA_ERR_INVALID_PARAM || st == STRATA_ERR_INTERNAL)
            return core_fail(STRATA_ERR_UNSUPPORTED,
                             "device lookup: d_out %p is not CUDA memory (%s)", d_out,
                             rt->error_name(e));
        return st;
    }
    if (a.type != cudaMemoryTypeDevice && a.type != cudaMemoryTypeManaged)
        return core_fail(STRATA_ERR_UNSUPPORTED,
                         "device lookup: d_out %p is host memory (use strata_rtable_lookup)",
                         d_out);

    uint32_t dim = strata_rtable_schema(t)->dim;
    size_t row_bytes = (size_t)dim * sizeof(float);
    if (n > SIZE_MAX / row_bytes)
        return core_fail(STRATA_ERR_TOO_LARGE, "device lookup: %zu rows of %u floats", n, dim);
    size_t bytes = n * row_bytes;
    void *host = NULL;
    strata_status_t st = bounce_reserve(rt, t, bytes, &host);
    if (st != STRATA_OK)
        return st;
    st = strata_rtable_lookup(t, keys, n, host, found, flags);
    if (st != STRATA_OK)
        return st; /* d_out untouched */
    cudaStream_t s = (cudaStream_t)cuda_stream;
    e = rt->memcpy_async(d_out, host, bytes, cudaMemcpyHostToDevice, s);
    if (e != cudaSuccess) {
        st = cuda_status(rt, e, "device lookup: cudaMemcpyAsync");
        (void)rt->get_last_error();
        return st;
    }
    /* the bounce buffer is reused by the next call: wait for the copy */
    e = rt->stream_sync(s);
    if (e != cudaSuccess)
        return cuda_status(rt, e, "device lookup: cudaStreamSynchronize");
    return STRATA_OK;
}
