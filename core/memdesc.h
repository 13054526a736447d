/*
 * core/memdesc.h — a memory descriptor: where a buffer lives (address,
 * length, memory type), the only form in which GPU memory reaches rdma/.
 *
 * rdma/ and gpu/ never include each other (docs/architecture.md): gpu/
 * describes its HBM arenas and bounce buffers with a core_memdesc_t, and
 * rdma/ registers whatever a descriptor names (rdma_mem_register). Which
 * path a descriptor takes — registered as it is (GPUDirect: the NIC reads
 * HBM) or copied through a pinned host bounce buffer — is decided by
 * core_memdesc_path from the memory types the transport reports, so the
 * decision is one pure function that tests call directly.
 *
 * Threading: plain data and pure functions.
 */
#ifndef STRATA_CORE_MEMDESC_H
#define STRATA_CORE_MEMDESC_H

#include <stddef.h>
#include <stdint.h>

/** Where a buffer lives. Values are stable (they index bit masks). */
typedef enum core_memtype {
    CORE_MEMTYPE_HOST = 0,         /**< host memory, pageable or pinned
                                        (cudaHostAlloc memory is HOST) */
    CORE_MEMTYPE_CUDA = 1,         /**< CUDA device memory (cudaMalloc) */
    CORE_MEMTYPE_CUDA_MANAGED = 2  /**< CUDA managed memory (cudaMallocManaged) */
} core_memtype_t;

#define CORE_MEMTYPE_COUNT 3

/** Bit of a memory type in a transport's mask of supported types. */
#define CORE_MEMTYPE_BIT(t) (1ull << (unsigned)(t))

/** A buffer described for registration. Borrowed: whoever made it owns the
 *  memory and keeps it valid while it is registered. */
typedef struct core_memdesc {
    void *addr;              /**< first byte */
    size_t len;              /**< bytes */
    core_memtype_t memtype;  /**< where addr points */
    int device;              /**< CUDA device ordinal for CUDA memory, else -1 */
} core_memdesc_t;

/** How a described buffer is served to remote readers. */
typedef enum core_mem_path {
    CORE_MEM_PATH_DIRECT = 0,  /**< register the buffer itself (for CUDA
                                    memory: GPUDirect RDMA) */
    CORE_MEM_PATH_BOUNCE = 1   /**< register a pinned host staging buffer and
                                    copy the rows through it */
} core_mem_path_t;

/** The path for desc given the transport's supported memory types
 *  (CORE_MEMTYPE_BIT mask, e.g. rdma_ctx_memtypes). Host memory is always
 *  direct; device memory is direct only when the transport can register
 *  it (a UCX built with CUDA support), otherwise it goes through a bounce
 *  buffer. An unknown type takes the bounce path (safe: a copy always
 *  works where a registration might not). */
static inline core_mem_path_t core_memdesc_path(const core_memdesc_t *desc,
                                                uint64_t transport_memtypes)
{
    if (desc->memtype == CORE_MEMTYPE_HOST)
        return CORE_MEM_PATH_DIRECT;
    if ((unsigned)desc->memtype < CORE_MEMTYPE_COUNT &&
        (transport_memtypes & CORE_MEMTYPE_BIT(desc->memtype)))
        return CORE_MEM_PATH_DIRECT;
    return CORE_MEM_PATH_BOUNCE;
}

/** Static name of a memory type ("host", "cuda", "cuda-managed", "?"). */
static inline const char *core_memtype_name(core_memtype_t t)
{
    switch (t) {
    case CORE_MEMTYPE_HOST:
        return "host";
    case CORE_MEMTYPE_CUDA:
        return "cuda";
    case CORE_MEMTYPE_CUDA_MANAGED:
        return "cuda-managed";
    }
    return "?";
}

#endif
