/*
 * perf/perf_mpi.c — perf_mpi.h over MPI (compiled only when CMake finds
 * MPI: STRATA_HAVE_MPI 1). Errors are returned, not raised: the world
 * communicator's error handler is set to MPI_ERRORS_RETURN. The barrier
 * polls a non-blocking one with 200 us sleeps, so waiting ranks leave the
 * CPU to the ranks that still measure (skew at the start: <= 200 us).
 *
 * Threading: MPI_THREAD_SINGLE; the main thread only.
 */
#include "perf_mpi.h"

#include <limits.h>
#include <mpi.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int perf_mpi_init(int *argc, char ***argv, int *rank, int *size)
{
    /* Open MPI: keep MPI's own traffic (a few barriers and gathers) off
     * UCX, so that its transport does not meet the client's UCX context in
     * the same process; the user's settings (-mca, env) win */
    setenv("OMPI_MCA_pml", "ob1", 0);
    setenv("OMPI_MCA_btl", "self,vader,tcp", 0);
    if (MPI_Init(argc, argv) != MPI_SUCCESS)
        return -1;
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    if (MPI_Comm_rank(MPI_COMM_WORLD, rank) != MPI_SUCCESS ||
        MPI_Comm_size(MPI_COMM_WORLD, size) != MPI_SUCCESS)
        return -1;
    return 0;
}

void perf_mpi_finalize(void)
{
    MPI_Finalize();
}

void perf_mpi_abort(int code)
{
    MPI_Abort(MPI_COMM_WORLD, code);
}

int perf_mpi_barrier(void)
{
    /* MPI_Barrier busy-polls; a rank that waits here (done, or not in this
     * point) would take a core from the ranks still measuring */
    MPI_Request req;
    if (MPI_Ibarrier(MPI_COMM_WORLD, &req) != MPI_SUCCESS)
        return -1;
    for (;;) {
        int done = 0;
        if (MPI_Test(&req, &done, MPI_STATUS_IGNORE) != MPI_SUCCESS)
            return -1;
        if (done)
            return 0;
        struct timespec ts = {0, 200000};
        nanosleep(&ts, NULL);
    }
}

int perf_mpi_bcast(void *buf, size_t len)
{
    if (len > INT_MAX)
        return -1;
    return MPI_Bcast(buf, (int)len, MPI_BYTE, 0, MPI_COMM_WORLD) == MPI_SUCCESS ? 0 : -1;
}

int perf_mpi_gather(const void *buf, size_t len, void **all_p, size_t *lens)
{
    int rank, size;
    *all_p = NULL;
    if (len > INT_MAX || MPI_Comm_rank(MPI_COMM_WORLD, &rank) != MPI_SUCCESS ||
        MPI_Comm_size(MPI_COMM_WORLD, &size) != MPI_SUCCESS)
        return -1;
    int mine = (int)len, *counts = NULL, *displs = NULL, rc = -1;
    char *all = NULL;
    if (rank == 0) {
        counts = malloc((size_t)size * sizeof(int));
        displs = malloc((size_t)size * sizeof(int));
    }
    /* every rank takes part in both collectives, even after a local
     * allocation failure, so that no rank is left waiting */
    int ok = rank != 0 || (counts && displs);
    if (MPI_Gather(&mine, 1, MPI_INT, counts, 1, MPI_INT, 0, MPI_COMM_WORLD) != MPI_SUCCESS)
        goto out;
    size_t total = 0;
    if (rank == 0 && ok) {
        for (int r = 0; r < size; r++) {
            displs[r] = (int)total;
            total += (size_t)counts[r];
            lens[r] = (size_t)counts[r];
        }
        ok = total <= INT_MAX && (all = malloc(total ? total : 1)) != NULL;
    }
    if (MPI_Gatherv(buf, mine, MPI_BYTE, ok ? all : NULL, counts, displs, MPI_BYTE, 0,
                    MPI_COMM_WORLD) != MPI_SUCCESS)
        goto out;
    if (ok) {
        *all_p = all;
        all = NULL;
        rc = 0;
    }
out:
    free(all);
    free(counts);
    free(displs);
    return rc;
}
