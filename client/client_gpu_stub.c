/*
 * client/client_gpu_stub.c — strata_rtable_lookup_device without CUDA
 * (STRATA_HAVE_CUDA 0; CMake builds this file instead of client_gpu.c):
 * every device lookup answers STRATA_ERR_UNSUPPORTED, and a client has no
 * GPU state to free.
 *
 * Threading: stateless.
 */
#include "client/client_internal.h"
#include "core/status.h"
#include "strata.h"

void client_gpu_free(client_gpu_t *g)
{
    (void)g; /* never allocated here */
}

strata_status_t strata_rtable_lookup_device(strata_rtable_t *t, const uint64_t *keys, size_t n,
                                            void *d_out, uint8_t *found, uint32_t flags,
                                            void *cuda_stream)
{
    (void)t;
    (void)keys;
    (void)n;
    (void)d_out;
    (void)found;
    (void)flags;
    (void)cuda_stream;
    return core_fail(STRATA_ERR_UNSUPPORTED, "device lookup: built without CUDA");
}
