/*
 * strata_trainer.h — data-parallel training on a Strata cluster: a group of
 * trainer ranks on an MPI communicator sharing one remote table.
 *
 * Each rank owns a strata_client_t (one per process) and a trainer made on
 * top of it. Per step a rank calls
 *
 *   strata_trainer_lookup(tr, keys, n, rows)      sparse forward
 *   ... model forward/backward on the rank's batch ...
 *   strata_trainer_push(tr, keys, grads, n)       sparse backward
 *   strata_trainer_allreduce_dense(tr, g, m, 1)   dense gradients
 *   strata_trainer_step_end(tr)                   clock
 *
 * Sparse modes (docs/training_trainer.md has the full story):
 *  - STRATA_SPARSE_OWNER (mode A): every key has an owner rank (a hash of
 *    the key over the ranks, independent of the store's shard hash). A
 *    lookup sends each rank's unique keys to their owners (MPI_Alltoallv);
 *    an owner reads its keys once for the whole group, through a local row
 *    cache, and returns the rows. A push sends gradients to the owners,
 *    which sum them per key and push one step per key. Store traffic is
 *    one read and one push per unique key of the global batch.
 *  - STRATA_SPARSE_DIRECT (mode B): each rank reads and pushes its own keys
 *    (duplicates summed) directly; no MPI on the sparse path.
 *
 * Consistency:
 *  - STRATA_SYNC_BSP: pushes are synchronous and followed by MPI_Barrier,
 *    so every rank's next lookup sees every update of the step. The owner
 *    cache serves rows only within the step that fetched them.
 *  - STRATA_SYNC_SSP: synchronous pushes, no barrier; a rank may finish at
 *    most `staleness` steps ahead of the slowest rank (strata_trainer_
 *    step_end blocks otherwise), and the owner cache serves rows fetched up
 *    to `staleness` steps ago.
 *  - STRATA_SYNC_ASYNC: pushes are asynchronous (completed at the next
 *    push, flush or destroy), no barrier, no clock. The owner cache serves
 *    rows up to `staleness` steps old (default unbounded) except rows the
 *    owner has pushed since fetching them.
 *
 * Collective calls: in mode A, lookup and push are collective over the
 * communicator (every rank calls them in the same order; n may be 0), and
 * so is push in BSP; step_end is collective in SSP; flush,
 * allreduce_dense, create and destroy are collective in every mode. Every
 * rank calls step_end the same number of times.
 *
 * Conventions are strata.h's: strata_status_t results, parameter structs
 * opening with a field_mask, output parameters written only on success,
 * pointers borrowed for the call unless stated otherwise.
 *
 * Threading: a trainer is used by one thread at a time, the thread that
 * owns its client; MPI must be initialized (MPI_THREAD_SINGLE is enough
 * when only that thread makes MPI calls, MPI_THREAD_SERIALIZED otherwise).
 */
#ifndef STRATA_TRAINER_H
#define STRATA_TRAINER_H

#include <mpi.h>
#include <stddef.h>
#include <stdint.h>

#include "strata.h"

#ifdef __cplusplus
extern "C" {
#endif

/** A trainer rank. Opaque. */
typedef struct strata_trainer strata_trainer_t;

/** Sparse path: where a key's rows are read and its gradients summed. */
typedef enum strata_sparse_mode {
    STRATA_SPARSE_OWNER = 0, /**< mode A: owner ranks, Alltoallv exchanges */
    STRATA_SPARSE_DIRECT = 1 /**< mode B: each rank talks to the store */
} strata_sparse_mode_t;

/** How much one rank may run ahead of the others. */
typedef enum strata_sync_mode {
    STRATA_SYNC_BSP = 0,  /**< bulk synchronous: barrier after every push */
    STRATA_SYNC_SSP = 1,  /**< stale synchronous, bound `staleness` steps */
    STRATA_SYNC_ASYNC = 2 /**< asynchronous pushes, no bound */
} strata_sync_mode_t;

enum {
    STRATA_TRAINER_FIELD_COMM = 1u << 0,
    STRATA_TRAINER_FIELD_CLIENT = 1u << 1,
    STRATA_TRAINER_FIELD_TABLE = 1u << 2,
    STRATA_TRAINER_FIELD_MODE = 1u << 3,
    STRATA_TRAINER_FIELD_CONSISTENCY = 1u << 4,
    STRATA_TRAINER_FIELD_STALENESS = 1u << 5,
    STRATA_TRAINER_FIELD_TOPK_FRACTION = 1u << 6,
    STRATA_TRAINER_FIELD_DENSE_BUCKET_BYTES = 1u << 7,
    STRATA_TRAINER_FIELD_LOOKUP_FLAGS = 1u << 8,
    STRATA_TRAINER_FIELD_CACHE_ROWS = 1u << 9
};

/** Largest staleness bound SSP accepts (one MPI request per step of it). */
#define STRATA_TRAINER_STALENESS_MAX 4096u

typedef struct strata_trainer_params {
    uint64_t field_mask;            /**< STRATA_TRAINER_FIELD_* bits */
    MPI_Comm comm;                  /**< required: the trainer ranks. Duplicated
                                         (MPI_Comm_dup), so the trainer's
                                         traffic never matches the caller's */
    strata_client_t *client;        /**< required: this rank's own client;
                                         borrowed until destroy, and used only
                                         from the trainer's thread */
    strata_rtable_t *table;         /**< required: a table of that client;
                                         borrowed until destroy. Every rank
                                         opens the same table */
    strata_sparse_mode_t mode;      /**< default STRATA_SPARSE_OWNER */
    strata_sync_mode_t consistency; /**< default STRATA_SYNC_BSP */
    uint32_t staleness;             /**< SSP bound s (1..STRATA_TRAINER_STALENESS_MAX,
                                         default 1); ASYNC: cache age bound
                                         (default unbounded); ignored by BSP */
    float topk_fraction;            /**< 0 (default) = off; in (0, 1]: push only
                                         this fraction of each rank's unique
                                         gradient rows, largest L2 norm first,
                                         and carry the rest (see push) */
    size_t dense_bucket_bytes;      /**< allreduce bucket; default 4 MiB, >= 4 */
    uint32_t lookup_flags;          /**< strata_rtable_lookup flags; default
                                         STRATA_LOOKUP_INIT_MISSING */
    uint64_t cache_rows;            /**< mode A owner cache, rows; default 1M;
                                         0 = no cache (every lookup reads) */
} strata_trainer_params_t;

/** Make this rank's trainer. Collective over comm: every rank calls it
 *  with the same mode, consistency, staleness, topk_fraction and
 *  dense_bucket_bytes (checked; a mismatch fails on every rank with
 *  INVALID_PARAM). On success *tr_p is the caller's until
 *  strata_trainer_destroy. Errors: INVALID_PARAM (a required field
 *  missing, a value out of range, see strata_last_error), NOMEM,
 *  INTERNAL (an MPI call failed). Without comm the call returns
 *  INVALID_PARAM at once, without any collective. */
STRATA_API strata_status_t strata_trainer_create(const strata_trainer_params_t *params,
                                                 strata_trainer_t **tr_p);

/** Complete outstanding pushes (errors are dropped: call flush first to
 *  see them) and free the trainer; the client and table stay the
 *  caller's. Collective (it frees the duplicated communicator). Residual
 *  gradients not flushed are discarded. */
STRATA_API void strata_trainer_destroy(strata_trainer_t *tr);

/** Sparse forward: out[i*dim .. +dim) gets keys[i]'s row, for this rank's
 *  n keys (duplicates allowed). keys and out are borrowed for the call.
 *  Mode A: collective; rows come from their owners (cache or store).
 *  Mode B: strata_rtable_lookup on this rank's client.
 *  Errors: INVALID_PARAM (NULL buffers with n > 0), TOO_LARGE (more than
 *  INT_MAX unique keys in one exchange), the store's errors (mode A: an
 *  error on any rank is returned on every rank; the rows are then
 *  unspecified), NOMEM. */
STRATA_API strata_status_t strata_trainer_lookup(strata_trainer_t *tr, const uint64_t *keys,
                                                 size_t n, float *out);

/** Sparse backward: grads[i*dim .. +dim) is the gradient of keys[i]'s row
 *  from this rank's batch; duplicates are summed. One optimizer step per
 *  key is applied with the group's summed gradient (mode A: by the key's
 *  owner; mode B: each rank steps with its own sum, so a key in several
 *  ranks' batches takes several steps).
 *  With topk_fraction > 0, only the ceil(fraction * unique) rows of
 *  largest L2 norm are sent; the others are added to a per-key residual
 *  that joins the key's gradient when the key next appears, or is sent by
 *  strata_trainer_flush.
 *  BSP: returns after every rank's push has been applied (barrier).
 *  SSP: returns after this rank's store push is applied. ASYNC: returns
 *  once the store push is started; its status is returned by the next
 *  push or flush.
 *  Errors: INVALID_PARAM, BAD_VALUE (a NaN/Inf gradient: nothing is
 *  pushed by this call; in mode A by no rank), TOO_LARGE, NOMEM — in mode
 *  A returned on every rank — and the store's errors (BSP: returned on
 *  every rank; SSP/ASYNC: on the rank whose store push failed). */
STRATA_API strata_status_t strata_trainer_push(strata_trainer_t *tr, const uint64_t *keys,
                                               const float *grads, size_t n);

/** Sum grads[0..n) over the ranks in place (divide by the number of ranks
 *  when average is nonzero), as one MPI_Iallreduce (MPI_IN_PLACE) per
 *  dense_bucket_bytes bucket, up to 8 in flight, all completed before
 *  return. Collective, same n on every rank. Errors: INVALID_PARAM (NULL
 *  grads with n > 0: returned before any communication, so a caller that
 *  passes it on one rank only leaves the others waiting), INTERNAL (an
 *  MPI error). */
STRATA_API strata_status_t strata_trainer_allreduce_dense(strata_trainer_t *tr, float *grads,
                                                          size_t n, int average);

/** End of a training step: advances the step counter (the cache's clock).
 *  BSP: the owner cache is dropped. SSP: collective; blocks while the
 *  slowest rank is more than `staleness` steps behind. ASYNC: progresses
 *  outstanding pushes. Every rank calls it once per step. */
STRATA_API strata_status_t strata_trainer_step_end(strata_trainer_t *tr);

/** Send every residual gradient (topk filtering), complete every
 *  outstanding push, drop the owner cache and wait for every rank
 *  (barrier), so that on return the store holds every gradient any rank
 *  pushed before its flush. Collective in every mode. Returns the first
 *  error of this rank's outstanding pushes or of the residual push, or
 *  a peer's error. */
STRATA_API strata_status_t strata_trainer_flush(strata_trainer_t *tr);

/** Counters of this rank since create; times in seconds of wall clock.
 *  lookup_s / push_s are the whole calls; exchange_s, store_lookup_s,
 *  store_push_s and sync_s are the parts of them spent in MPI exchanges,
 *  store reads, store pushes and barriers / clock waits. */
typedef struct strata_trainer_stats {
    uint64_t steps;          /**< step_end calls */
    uint64_t lookup_keys;    /**< keys asked by lookup (with duplicates) */
    uint64_t lookup_unique;  /**< after this rank's dedup */
    uint64_t push_keys;      /**< keys given to push (with duplicates) */
    uint64_t push_unique;    /**< after this rank's dedup */
    uint64_t keys_sent;      /**< mode A: keys this rank sent to owners */
    uint64_t keys_received;  /**< mode A: keys this rank received as owner */
    uint64_t bytes_sent;     /**< mode A: exchange bytes sent (keys, rows, grads) */
    uint64_t bytes_received; /**< mode A: exchange bytes received */
    uint64_t owner_unique;   /**< mode A: keys after the owner's dedup */
    uint64_t cache_hits;     /**< mode A: rows served from the owner cache */
    uint64_t cache_misses;   /**< mode A: rows read from the store */
    uint64_t store_reads;    /**< rows read from the store (both modes) */
    uint64_t store_pushes;   /**< gradient rows pushed to the store */
    uint64_t filtered_rows;  /**< rows held back by top-k filtering */
    uint64_t residual_rows;  /**< rows with a residual gradient now */
    uint64_t dense_bytes;    /**< bytes allreduced by allreduce_dense */
    double lookup_s;         /**< in strata_trainer_lookup */
    double push_s;           /**< in strata_trainer_push and flush */
    double exchange_s;       /**< MPI key/row/gradient exchanges */
    double store_lookup_s;   /**< strata_rtable_lookup */
    double store_push_s;     /**< strata_rtable_push and waits for async pushes */
    double sync_s;           /**< barriers and SSP clock waits */
    double allreduce_s;      /**< in strata_trainer_allreduce_dense (and _nccl:
                                  enqueue time only) */
} strata_trainer_stats_t;

/** Copy this rank's counters to *stats. Trainer's thread. */
STRATA_API void strata_trainer_get_stats(const strata_trainer_t *tr, strata_trainer_stats_t *stats);

/** The trainer's rank and number of ranks (in its communicator). */
STRATA_API int strata_trainer_rank(const strata_trainer_t *tr);
STRATA_API int strata_trainer_nranks(const strata_trainer_t *tr);

/** The owner rank of key among nranks in mode A (the exchange's routing;
 *  independent of strata_key_shard). Any thread. */
STRATA_API int strata_trainer_key_owner(uint64_t key, int nranks);

/* NCCL dense allreduce: declared when <nccl.h> is included before this
 * header, defined in libraries built with CUDA (STRATA_HAVE_CUDA). */
#if defined(NCCL_H_)
/** Enqueue the sum (average when nonzero: ncclAvg) of n floats at dev_ptr
 *  (device memory) over nccl_comm on stream, in place, one ncclAllReduce
 *  per dense_bucket_bytes bucket. Returns once enqueued: the result is
 *  ready when the stream reaches it. nccl_comm must span the same ranks as
 *  the trainer's communicator. Errors: INVALID_PARAM, INTERNAL (an NCCL
 *  error; strata_last_error names it). Trainer's thread. */
STRATA_API strata_status_t strata_trainer_allreduce_dense_nccl(strata_trainer_t *tr,
                                                               ncclComm_t nccl_comm, void *dev_ptr,
                                                               size_t n, cudaStream_t stream,
                                                               int average);
#endif

#ifdef __cplusplus
}
#endif

#endif /* STRATA_TRAINER_H */
