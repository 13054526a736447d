/*
 * gpu/gpu_internal.h — what the files of gpu/ share and nothing above
 * sees: the one translation of CUDA errors to strata_status_t.
 *
 * Threading: thread-safe (the message goes to the caller's last-error
 * buffer).
 */
#ifndef STRATA_GPU_INTERNAL_H
#define STRATA_GPU_INTERNAL_H

#include "strata.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Translate a cudaError_t (passed as int so this header needs no CUDA
 *  header) and record "<what>: <cudaGetErrorString>" as the last error:
 *  memory allocation -> NOMEM, no device / driver -> UNSUPPORTED, invalid
 *  value -> INVALID_PARAM, anything else (a kernel fault included) ->
 *  INTERNAL. Returns STRATA_OK for cudaSuccess. */
strata_status_t gpu_cuda_status(int err, const char *what);

#ifdef __cplusplus
}
#endif

#endif
