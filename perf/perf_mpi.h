/*
 * perf/perf_mpi.h — the few MPI calls strata-perf makes when it runs under
 * mpirun (one client per rank, rank 0 coordinating): init, barrier,
 * broadcast from rank 0, and a gather of variable-sized byte strings to
 * rank 0. Kept apart so that strata_perf.c compiles without mpi.h.
 *
 * In a build without MPI (STRATA_HAVE_MPI 0, perf_mpi.c not compiled) the
 * inline stubs below fail every call, and perf_mpi_launched() still tells
 * whether the process was started by an MPI launcher, so the program can
 * say that it cannot take part.
 *
 * Threading: the calling (main) thread only, as MPI_THREAD_SINGLE.
 */
#ifndef STRATA_PERF_MPI_H
#define STRATA_PERF_MPI_H

#include <stddef.h>
#include <stdlib.h>

#include "strata_config.h"

/** Nonzero when an MPI launcher started this process (Open MPI, MPICH/PMI,
 *  PMIx environment variables). Any build. */
static inline int perf_mpi_launched(void)
{
    return getenv("OMPI_COMM_WORLD_SIZE") || getenv("PMI_SIZE") || getenv("PMIX_RANK");
}

#if STRATA_HAVE_MPI

/** MPI_Init; *rank and *size of MPI_COMM_WORLD. Returns 0 or -1. */
int perf_mpi_init(int *argc, char ***argv, int *rank, int *size);

/** MPI_Finalize. */
void perf_mpi_finalize(void);

/** MPI_Abort(MPI_COMM_WORLD, code): ends every rank. */
void perf_mpi_abort(int code);

/** A barrier that sleeps while it waits (MPI_Ibarrier + MPI_Test every
 *  200 us). Returns 0 or -1. */
int perf_mpi_barrier(void);

/** Broadcast len bytes of buf from rank 0. Returns 0 or -1. */
int perf_mpi_bcast(void *buf, size_t len);

/** Gather every rank's len bytes of buf to rank 0. On rank 0, *all_p gets
 *  a malloc'ed buffer (the caller frees it) holding the ranks' bytes in
 *  rank order and lens[r] (size entries, the caller's) each rank's length;
 *  other ranks get *all_p = NULL. Returns 0 or -1 (on every rank). */
int perf_mpi_gather(const void *buf, size_t len, void **all_p, size_t *lens);

#else

static inline int perf_mpi_init(int *argc, char ***argv, int *rank, int *size)
{
    (void)argc;
    (void)argv;
    *rank = 0;
    *size = 1;
    return -1;
}
static inline void perf_mpi_finalize(void)
{
}
static inline void perf_mpi_abort(int code)
{
    exit(code);
}
static inline int perf_mpi_barrier(void)
{
    return -1;
}
static inline int perf_mpi_bcast(void *buf, size_t len)
{
    (void)buf;
    (void)len;
    return -1;
}
static inline int perf_mpi_gather(const void *buf, size_t len, void **all_p, size_t *lens)
{
    (void)buf;
    (void)len;
    (void)lens;
    *all_p = NULL;
    return -1;
}

#endif

#endif /* STRATA_PERF_MPI_H */
