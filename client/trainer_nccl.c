/*
 * client/trainer_nccl.c — the trainer's dense allreduce over NCCL, for
 * gradients in GPU memory (strata_trainer_allreduce_dense_nccl in
 * include/strata_trainer.h). Compiled only with CUDA and NCCL present
 * (client/CMakeLists.txt).
 *
 * Buckets of dense_bucket_bytes are enqueued as ncclAllReduce calls in one
 * NCCL group (one launch, NCCL fuses them); the call returns once they are
 * enqueued on the stream, so allreduce_s counts the enqueue only.
 *
 * Threading: the trainer's thread, which must own nccl_comm's device
 * context.
 */
#include <cuda_runtime.h>
#include <nccl.h>
#include <stdint.h>

#include "client/trainer_internal.h"
#include "core/status.h"
#include "strata_trainer.h"

static strata_status_t nccl_status(ncclResult_t r, const char *what)
{
    if (r == ncclSuccess)
        return STRATA_OK;
    return core_fail(STRATA_ERR_INTERNAL, "trainer: %s: %s", what, ncclGetErrorString(r));
}

strata_status_t strata_trainer_allreduce_dense_nccl(strata_trainer_t *tr, ncclComm_t nccl_comm,
                                                    void *dev_ptr, size_t n, cudaStream_t stream,
                                                    int average)
{
    if (!tr || !nccl_comm || (n > 0 && !dev_ptr))
        return core_fail(STRATA_ERR_INVALID_PARAM,
                         "trainer: tr, nccl_comm and dev_ptr must not be NULL");
    int nccl_ranks = 0;
    strata_status_t st = nccl_status(ncclCommCount(nccl_comm, &nccl_ranks), "ncclCommCount");
    if (st != STRATA_OK)
        return st;
    if (nccl_ranks != strata_trainer_nranks(tr))
        return core_fail(STRATA_ERR_INVALID_PARAM,
                         "trainer: NCCL communicator has %d ranks, the trainer %d", nccl_ranks,
                         strata_trainer_nranks(tr));
    if (n == 0)
        return STRATA_OK;
    double t0 = MPI_Wtime();
    size_t per = trainer_bucket_elems(tr);
    float *p = dev_ptr;
    ncclRedOp_t op = average ? ncclAvg : ncclSum;
    st = nccl_status(ncclGroupStart(), "ncclGroupStart");
    if (st != STRATA_OK)
        return st;
    for (size_t off = 0; off < n && st == STRATA_OK; off += per) {
        size_t cnt = n - off < per ? n - off : per;
        st = nccl_status(ncclAllReduce(p + off, p + off, cnt, ncclFloat32, op, nccl_comm, stream),
                         "ncclAllReduce");
    }
    /* the group is closed even after an error, so NCCL's state is whole */
    strata_status_t gst = nccl_status(ncclGroupEnd(), "ncclGroupEnd");
    if (st == STRATA_OK)
        st = gst;
    trainer_note_allreduce(tr, n * sizeof(float), MPI_Wtime() - t0);
    return st;
}
