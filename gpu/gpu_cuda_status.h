/*
 * gpu/gpu_cuda_status.h — the one translation of a cudaError_t to a
 * strata_status_t, shared by gpu/gpu_runtime.c (linked against cudart)
 * and client/client_gpu.c (cudart loaded with dlopen): header-only, so
 * neither has to link the other. Include <cuda_runtime_api.h> first.
 *
 * Threading: pure function.
 */
#ifndef STRATA_GPU_CUDA_STATUS_H
#define STRATA_GPU_CUDA_STATUS_H

#include "strata.h"

/** STRATA_OK for cudaSuccess; NOMEM, UNSUPPORTED (no usable device or
 *  driver, an unsupported operation or binary), INVALID_PARAM, or
 *  INTERNAL for the rest. */
static inline strata_status_t gpu_cuda_status_code(cudaError_t e)
{
    switch (e) {
    case cudaSuccess:
        return STRATA_OK;
    case cudaErrorMemoryAllocation:
        return STRATA_ERR_NOMEM;
    case cudaErrorNoDevice:
    case cudaErrorInsufficientDriver:
    case cudaErrorInitializationError:
    case cudaErrorInvalidDevice:
    case cudaErrorNotSupported:
    case cudaErrorSystemDriverMismatch:
    case cudaErrorCompatNotSupportedOnDevice:
    case cudaErrorNoKernelImageForDevice:
    case cudaErrorUnsupportedPtxVersion:
        return STRATA_ERR_UNSUPPORTED;
    case cudaErrorInvalidValue:
    case cudaErrorInvalidResourceHandle:
        return STRATA_ERR_INVALID_PARAM;
    default:
        return STRATA_ERR_INTERNAL;
    }
}

#endif
