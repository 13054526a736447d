/*
 * client/trainer.c — trainer ranks on an MPI communicator over one remote
 * table (include/strata_trainer.h): the sparse exchange of mode A, direct
 * access of mode B, BSP/SSP/ASYNC consistency, top-k gradient filtering
 * with residuals, and bucketed dense allreduce.
 *
 * Mode A, one lookup:
 *   1. dedup the rank's keys (ukeys, inv);
 *   2. route each unique key to its owner (tr_key_owner) and order them by
 *      owner (counting sort: spos[j] = key j's place in skeys);
 *   3. MPI_Alltoall of the counts (a negative count carries a rank's local
 *      error, so every rank leaves the collective sequence together), then
 *      grow the receive buffers and agree (MPI_Allreduce MIN of status);
 *   4. MPI_Alltoallv of the keys; the owner dedups them over all ranks
 *      (okeys, rmap), serves fresh rows from its cache, reads the rest
 *      from the store in one strata_rtable_lookup, and agrees on status;
 *   5. MPI_Alltoallv of the rows back (row_type = dim floats), and the
 *      requester copies them to the duplicates' places.
 * A push runs 1-3 on (key, summed gradient), sends keys and gradients,
 * and the owner sums per key (in rank order) and pushes one row per key.
 *
 * Invariants:
 *  - Every MPI call is on `comm`, a duplicate of the caller's, with
 *    MPI_ERRORS_RETURN; an MPI error becomes STRATA_ERR_INTERNAL.
 *  - In mode A every rank makes the same sequence of collective calls for
 *    a lookup or push whatever fails locally: errors travel in the count
 *    exchange or the status agreements, never by leaving early alone.
 *  - Scratch buffers only grow; a steady state makes no allocation.
 *  - Owner cache: entry e (map value) has row e of cache_rows and the
 *    step it was read at (fetched[e]); TR_STALE marks a row the owner
 *    pushed since (ASYNC). Fresh means fetched != TR_STALE and
 *    step - fetched <= the bound (BSP 0, SSP s, ASYNC staleness). BSP
 *    drops the whole cache at every push and step_end.
 *  - At most one asynchronous push is in flight; its keys and gradients
 *    live in pkeys/pgrads until it completes.
 *  - SSP clock: step_end number t starts an MPI_Ibarrier in slot
 *    t % (s + 1) of a ring and waits for the one of step t - s, so no rank
 *    ends step t before every rank has ended step t - s.
 *
 * Threading: one thread at a time per trainer (its client's thread).
 */
#define _GNU_SOURCE
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "client/trainer_internal.h"
#include "core/alloc.h"
#include "core/hash.h"
#include "core/status.h"
#include "strata.h"
#include "strata_trainer.h"

#define TR_STALE              UINT64_MAX
#define TR_UNBOUNDED          UINT32_MAX
#define TR_DEFAULT_BUCKET     (4u << 20)
#define TR_DEFAULT_CACHE_ROWS (1u << 20)
#define TR_ALLREDUCE_WINDOW   8                     /**< dense buckets in flight at once */
#define TR_OWNER_SALT         0x2545f4914f6cdd1dULL /**< owner hash != shard hash */
#define TR_MAP_SALT           0x6a09e667f3bcc909ULL /**< dedup maps' hash */

/** A grow-only buffer; contents are kept on growth. */
typedef struct tr_buf {
    void *p;    /**< core_malloc'ed or NULL */
    size_t cap; /**< bytes at p */
} tr_buf_t;

/** Open addressing (linear probing) u64 key -> u32 value. A slot is live
 *  when gens[i] == gen; clearing bumps gen, so it costs O(1). gen is never
 *  0, and 0 marks a slot emptied by a delete. */
typedef struct tr_map {
    uint64_t *keys; /**< cap slots */
    uint32_t *vals;
    uint32_t *gens;
    uint32_t gen; /**< current generation, >= 1 */
    size_t mask;  /**< cap - 1, cap a power of two; 0 before first use */
    size_t count; /**< live slots */
} tr_map_t;

struct strata_trainer {
    MPI_Comm comm;         /**< duplicate of params->comm */
    MPI_Datatype row_type; /**< dim contiguous floats */
    int rank, nranks;
    strata_client_t *client; /**< borrowed */
    strata_rtable_t *table;  /**< borrowed */
    uint32_t dim;
    strata_sparse_mode_t mode;
    strata_sync_mode_t sync;
    uint32_t bound;      /**< cache age bound: BSP 0, SSP s, ASYNC */
    uint32_t staleness;  /**< SSP clock bound s */
    float topk;          /**< 0 = off */
    size_t bucket_elems; /**< floats per dense bucket */
    uint32_t lookup_flags;
    uint64_t cache_max; /**< cache capacity in rows; 0 = none */
    uint64_t step;      /**< step_end calls so far */

    int *counts;                 /**< 5 * nranks: sc, sd, rc, rd, cursor */
    tr_map_t dedup;              /**< per call: key -> unique index */
    tr_buf_t ukeys, inv, ugrads; /**< rank's unique keys, key -> unique, sums */
    tr_buf_t spos;               /**< unique index -> place in send order */
    tr_buf_t skeys, srows;       /**< send side, in owner order */
    tr_buf_t rkeys, rrows;       /**< receive side, in rank order */
    tr_buf_t rmap;               /**< received key -> owner unique index */
    tr_buf_t okeys, orows;       /**< owner's unique keys and rows / sums */
    tr_buf_t mkeys, midx, mrows; /**< cache misses; flush staging */
    tr_buf_t norms;              /**< top-k: (norm, index) pairs */
    tr_buf_t sel;                /**< top-k: chosen flags */
    tr_buf_t reqs;               /**< dense allreduce requests (window) */

    tr_map_t cache;         /**< key -> cache entry */
    tr_buf_t cache_rows;    /**< entry rows */
    tr_buf_t cache_fetched; /**< entry -> step read, or TR_STALE */
    uint64_t cache_n;       /**< entries in use */

    tr_map_t resid; /**< key -> residual row */
    tr_buf_t resid_rows;
    tr_buf_t resid_free; /**< stack of free residual rows */
    uint32_t resid_n;    /**< residual rows allocated (live + free) */
    uint32_t resid_nfree;

    strata_request_t *preq; /**< the async push in flight, or NULL */
    tr_buf_t pkeys, pgrads; /**< its buffers */

    MPI_Request *clock; /**< SSP: staleness + 1 Ibarriers */

    strata_trainer_stats_t stats;
};

/* --- small helpers ------------------------------------------------------ */

/** Make b hold at least bytes; keeps contents. */
static void *buf_get(tr_buf_t *b, size_t bytes)
{
    if (bytes <= b->cap && b->p)
        return b->p;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < bytes)
        cap = cap + cap / 2 + 64;
    void *p = core_realloc(b->p, cap);
    if (!p)
        return NULL;
    b->p = p;
    b->cap = cap;
    return p;
}

static void buf_free(tr_buf_t *b)
{
    core_free(b->p);
    b->p = NULL;
    b->cap = 0;
}

static void buf_swap(tr_buf_t *a, tr_buf_t *b)
{
    tr_buf_t t = *a;
    *a = *b;
    *b = t;
}

static strata_status_t tr_mpi(int rc, const char *what)
{
    if (rc == MPI_SUCCESS)
        return STRATA_OK;
    char msg[MPI_MAX_ERROR_STRING];
    int len = 0;
    if (MPI_Error_string(rc, msg, &len) != MPI_SUCCESS)
        len = 0;
    msg[len < 0 ? 0 : len] = '\0';
    return core_fail(STRATA_ERR_INTERNAL, "trainer: %s failed: %s", what, msg);
}

static uint32_t tr_key_owner(uint64_t key, uint32_t nranks)
{
    uint64_t h = core_mix64(key ^ TR_OWNER_SALT);
    return (uint32_t)(((h >> 32) * (uint64_t)nranks) >> 32);
}

int strata_trainer_key_owner(uint64_t key, int nranks)
{
    return nranks <= 1 ? 0 : (int)tr_key_owner(key, (uint32_t)nranks);
}

/** Every rank's status: the minimum (errors are negative). A rank that
 *  was fine learns a peer's error with a sentence saying so. Also a
 *  barrier: no rank returns before every rank has called it. */
static strata_status_t tr_agree(strata_trainer_t *tr, strata_status_t st)
{
    int mine = (int)st, all = 0;
    double t0 = MPI_Wtime();
    strata_status_t mst =
        tr_mpi(MPI_Allreduce(&mine, &all, 1, MPI_INT, MPI_MIN, tr->comm), "MPI_Allreduce");
    tr->stats.sync_s += MPI_Wtime() - t0;
    if (mst != STRATA_OK)
        return mst;
    if (all < 0 && mine >= 0)
        return core_fail((strata_status_t)all, "trainer: another rank failed: %s",
                         strata_status_string((strata_status_t)all));
    return all < 0 ? (strata_status_t)all : st;
}

/* --- map ---------------------------------------------------------------- */

static size_t map_home(const tr_map_t *m, uint64_t key)
{
    return (size_t)core_mix64(key ^ TR_MAP_SALT) & m->mask;
}

static void map_free(tr_map_t *m)
{
    core_free(m->keys);
    core_free(m->vals);
    core_free(m->gens);
    memset(m, 0, sizeof(*m));
}

static void map_clear(tr_map_t *m)
{
    m->count = 0;
    if (!m->mask)
        return;
    if (++m->gen == 0) {
        memset(m->gens, 0, (m->mask + 1) * sizeof(uint32_t));
        m->gen = 1;
    }
}

static uint32_t *map_find(const tr_map_t *m, uint64_t key)
{
    if (!m->mask)
        return NULL;
    for (size_t i = map_home(m, key);; i = (i + 1) & m->mask) {
        if (m->gens[i] != m->gen)
            return NULL;
        if (m->keys[i] == key)
            return &m->vals[i];
    }
}

/** Room for `more` inserts at load <= 1/2, rehashing live entries. */
static strata_status_t map_reserve(tr_map_t *m, size_t more)
{
    size_t need = (m->count + more) * 2;
    if (need < 16)
        need = 16;
    if (m->mask && need <= m->mask + 1)
        return STRATA_OK;
    size_t cap = 16;
    while (cap < need)
        cap <<= 1;
    uint64_t *keys = core_malloc(cap * sizeof(uint64_t));
    uint32_t *vals = core_malloc(cap * sizeof(uint32_t));
    uint32_t *gens = core_calloc(cap, sizeof(uint32_t));
    if (!keys || !vals || !gens) {
        core_free(keys);
        core_free(vals);
        core_free(gens);
        return core_fail(STRATA_ERR_NOMEM, "trainer: hash map of %zu slots: out of memory", cap);
    }
    tr_map_t n = {keys, vals, gens, 1, cap - 1, 0};
    for (size_t i = 0; m->mask && i <= m->mask; i++) {
        if (m->gens[i] != m->gen)
            continue;
        size_t j = map_home(&n, m->keys[i]);
        while (n.gens[j] == 1)
            j = (j + 1) & n.mask;
        n.keys[j] = m->keys[i];
        n.vals[j] = m->vals[i];
        n.gens[j] = 1;
        n.count++;
    }
    map_free(m);
    *m = n;
    return STRATA_OK;
}

/** The value slot of key; inserted with val when absent (*added = 1).
 *  Needs room (map_reserve). */
static uint32_t *map_upsert(tr_map_t *m, uint64_t key, uint32_t val, int *added)
{
    size_t i = map_home(m, key);
    for (; m->gens[i] == m->gen; i = (i + 1) & m->mask) {
        if (m->keys[i] == key) {
            *added = 0;
            return &m->vals[i];
        }
    }
    m->keys[i] = key;
    m->vals[i] = val;
    m->gens[i] = m->gen;
    m->count++;
    *added = 1;
    return &m->vals[i];
}

/** Dedup keys[n] through map m (cleared first): out_keys gets the unique
 *  keys in first-seen order, inv[i] the unique index of keys[i], and with
 *  rows (n * dim floats) out_rows gets each unique key's rows summed. */
static strata_status_t dedup_sum(tr_map_t *m, const uint64_t *keys, const float *rows, size_t n,
                                 size_t dim, uint64_t *out_keys, float *out_rows, uint32_t *inv,
                                 size_t *nu_p)
{
    map_clear(m);
    strata_status_t st = map_reserve(m, n);
    if (st != STRATA_OK)
        return st;
    size_t nu = 0;
    for (size_t i = 0; i < n; i++) {
        int added;
        uint32_t j = *map_upsert(m, keys[i], (uint32_t)nu, &added);
        inv[i] = j;
        if (added) {
            out_keys[nu++] = keys[i];
            if (rows)
                memcpy(out_rows + (size_t)j * dim, rows + i * dim, dim * sizeof(float));
        } else if (rows) {
            float *d = out_rows + (size_t)j * dim;
            const float *g = rows + i * dim;
            for (size_t c = 0; c < dim; c++)
                d[c] += g[c];
        }
    }
    *nu_p = nu;
    return STRATA_OK;
}

/** Remove key (backward-shift deletion keeps probe chains intact). */
static void map_delete(tr_map_t *m, uint64_t key)
{
    if (!m->mask)
        return;
    size_t i = map_home(m, key);
    for (;; i = (i + 1) & m->mask) {
        if (m->gens[i] != m->gen)
            return;
        if (m->keys[i] == key)
            break;
    }
    for (size_t j = i;;) {
        j = (j + 1) & m->mask;
        if (m->gens[j] != m->gen)
            break;
        size_t k = map_home(m, m->keys[j]);
        /* j's entry may move to i when its home is not in (i, j] */
        int in_range = i <= j ? (k > i && k <= j) : (k > i || k <= j);
        if (!in_range) {
            m->keys[i] = m->keys[j];
            m->vals[i] = m->vals[j];
            i = j;
        }
    }
    m->gens[i] = 0;
    m->count--;
}

/* --- create / destroy --------------------------------------------------- */

static strata_status_t params_check(const strata_trainer_params_t *p, strata_trainer_t *tr)
{
    uint64_t need = STRATA_TRAINER_FIELD_CLIENT | STRATA_TRAINER_FIELD_TABLE;
    if ((p->field_mask & need) != need || !p->client || !p->table)
        return core_fail(STRATA_ERR_INVALID_PARAM, "trainer: client and table are required");
    tr->client = p->client;
    tr->table = p->table;
    const strata_table_schema_t *s = strata_rtable_schema(p->table);
    if (!s || s->dim == 0)
        return core_fail(STRATA_ERR_INVALID_PARAM, "trainer: table has no schema");
    tr->dim = s->dim;
    uint64_t m = p->field_mask;
    tr->mode = (m & STRATA_TRAINER_FIELD_MODE) ? p->mode : STRATA_SPARSE_OWNER;
    if (tr->mode != STRATA_SPARSE_OWNER && tr->mode != STRATA_SPARSE_DIRECT)
        return core_fail(STRATA_ERR_INVALID_PARAM, "trainer: mode = %d: must be OWNER or DIRECT",
                         (int)tr->mode);
    tr->sync = (m & STRATA_TRAINER_FIELD_CONSISTENCY) ? p->consistency : STRATA_SYNC_BSP;
    if (tr->sync != STRATA_SYNC_BSP && tr->sync != STRATA_SYNC_SSP && tr->sync != STRATA_SYNC_ASYNC)
        return core_fail(STRATA_ERR_INVALID_PARAM,
                         "trainer: consistency = %d: must be BSP, SSP or ASYNC", (int)tr->sync);
    int has_s = (m & STRATA_TRAINER_FIELD_STALENESS) != 0;
    tr->staleness = 0;
    tr->bound = 0;
    if (tr->sync == STRATA_SYNC_SSP) {
        tr->staleness = has_s ? p->staleness : 1;
        if (tr->staleness < 1 || tr->staleness > STRATA_TRAINER_STALENESS_MAX)
            return core_fail(STRATA_ERR_INVALID_PARAM,
                             "trainer: staleness = %u: must be between 1 and %u", tr->staleness,
                             STRATA_TRAINER_STALENESS_MAX);
        tr->bound = tr->staleness;
    } else if (tr->sync == STRATA_SYNC_ASYNC) {
        tr->bound = has_s ? p->staleness : TR_UNBOUNDED;
    }
    tr->topk = (m & STRATA_TRAINER_FIELD_TOPK_FRACTION) ? p->topk_fraction : 0.0f;
    if (!(tr->topk >= 0.0f && tr->topk <= 1.0f))
        return core_fail(STRATA_ERR_INVALID_PARAM, "trainer: topk_fraction = %g: must be in [0, 1]",
                         (double)tr->topk);
    if (tr->topk == 1.0f)
        tr->topk = 0.0f; /* every row: no filtering */
    size_t bb =
        (m & STRATA_TRAINER_FIELD_DENSE_BUCKET_BYTES) ? p->dense_bucket_bytes : TR_DEFAULT_BUCKET;
    if (bb < sizeof(float))
        return core_fail(STRATA_ERR_INVALID_PARAM,
                         "trainer: dense_bucket_bytes = %zu: must be >= 4", bb);
    tr->bucket_elems = bb / sizeof(float);
    if (tr->bucket_elems > INT_MAX)
        tr->bucket_elems = INT_MAX;
    tr->lookup_flags =
        (m & STRATA_TRAINER_FIELD_LOOKUP_FLAGS) ? p->lookup_flags : STRATA_LOOKUP_INIT_MISSING;
    tr->cache_max = (m & STRATA_TRAINER_FIELD_CACHE_ROWS) ? p->cache_rows : TR_DEFAULT_CACHE_ROWS;
    if (tr->cache_max > UINT32_MAX / 2)
        return core_fail(STRATA_ERR_INVALID_PARAM, "trainer: cache_rows = %llu: at most %u",
                         (unsigned long long)tr->cache_max, UINT32_MAX / 2);
    return STRATA_OK;
}

strata_status_t strata_trainer_create(const strata_trainer_params_t *params,
                                      strata_trainer_t **tr_p)
{
    if (!params || !tr_p || !(params->field_mask & STRATA_TRAINER_FIELD_COMM) ||
        params->comm == MPI_COMM_NULL)
        return core_fail(STRATA_ERR_INVALID_PARAM, "trainer: params, tr_p and comm are required");
    strata_status_t st = STRATA_OK;
    strata_trainer_t *tr = core_calloc(1, sizeof(*tr));
    if (!tr)
        st = core_fail(STRATA_ERR_NOMEM, "trainer: out of memory");
    else
        st = params_check(params, tr);

    /* Collective from here on, on every rank whatever happened above. */
    MPI_Comm comm = MPI_COMM_NULL;
    strata_status_t mst = tr_mpi(MPI_Comm_dup(params->comm, &comm), "MPI_Comm_dup");
    if (mst != STRATA_OK) {
        core_free(tr);
        return mst;
    }
    MPI_Comm_set_errhandler(comm, MPI_ERRORS_RETURN);
    /* status, then the settings that must agree: min and max of each */
    int64_t v[8] = {0}, vmin[8], vmax[8];
    v[0] = st;
    if (tr && st == STRATA_OK) {
        float tk = tr->topk;
        uint32_t tkb;
        memcpy(&tkb, &tk, sizeof(tkb));
        v[1] = tr->mode;
        v[2] = tr->sync;
        v[3] = tr->bound;
        v[4] = tkb;
        v[5] = (int64_t)tr->bucket_elems;
        v[6] = tr->dim;
        v[7] = tr->staleness;
    }
    int bad = st != STRATA_OK;
    mst = tr_mpi(MPI_Allreduce(v, vmin, 8, MPI_INT64_T, MPI_MIN, comm), "MPI_Allreduce");
    if (mst == STRATA_OK)
        mst = tr_mpi(MPI_Allreduce(v, vmax, 8, MPI_INT64_T, MPI_MAX, comm), "MPI_Allreduce");
    if (mst != STRATA_OK) {
        st = mst;
        goto free_comm;
    }
    if (bad)
        goto free_comm;
    if (vmin[0] < 0) {
        st = core_fail((strata_status_t)vmin[0], "trainer: create failed on another rank: %s",
                       strata_status_string((strata_status_t)vmin[0]));
        goto free_comm;
    }
    if (memcmp(vmin + 1, vmax + 1, 7 * sizeof(int64_t)) != 0) {
        st = core_fail(STRATA_ERR_INVALID_PARAM,
                       "trainer: ranks disagree on mode, consistency, staleness, topk_fraction, "
                       "dense_bucket_bytes or the table's dim");
        goto free_comm;
    }

    tr->comm = comm;
    MPI_Comm_rank(comm, &tr->rank);
    MPI_Comm_size(comm, &tr->nranks);
    /* Local from here: allocation failures are agreed on at the end. */
    tr->row_type = MPI_DATATYPE_NULL;
    if (MPI_Type_contiguous((int)tr->dim, MPI_FLOAT, &tr->row_type) != MPI_SUCCESS ||
        MPI_Type_commit(&tr->row_type) != MPI_SUCCESS)
        st = core_fail(STRATA_ERR_INTERNAL, "trainer: MPI row datatype");
    tr->counts = core_calloc(5 * (size_t)tr->nranks, sizeof(int));
    if ((!tr->counts || !buf_get(&tr->reqs, TR_ALLREDUCE_WINDOW * sizeof(MPI_Request))) &&
        st == STRATA_OK)
        st = core_fail(STRATA_ERR_NOMEM, "trainer: out of memory");
    if (st == STRATA_OK && tr->sync == STRATA_SYNC_SSP) {
        tr->clock = core_malloc((tr->staleness + 1) * sizeof(MPI_Request));
        if (!tr->clock)
            st = core_fail(STRATA_ERR_NOMEM, "trainer: out of memory");
        for (uint32_t i = 0; tr->clock && i <= tr->staleness; i++)
            tr->clock[i] = MPI_REQUEST_NULL;
    }
    st = tr_agree(tr, st);
    if (st != STRATA_OK) {
        strata_trainer_destroy(tr); /* collective: every rank is here */
        return st;
    }
    *tr_p = tr;
    return STRATA_OK;

free_comm:
    MPI_Comm_free(&comm);
    core_free(tr);
    return st;
}

/** Wait for the async push in flight, if any; its status. */
static strata_status_t async_complete(strata_trainer_t *tr)
{
    if (!tr->preq)
        return STRATA_OK;
    double t0 = MPI_Wtime();
    strata_status_t st = strata_request_wait(tr->preq);
    strata_request_free(tr->preq);
    tr->preq = NULL;
    tr->stats.store_push_s += MPI_Wtime() - t0;
    return st;
}

void strata_trainer_destroy(strata_trainer_t *tr)
{
    if (!tr)
        return;
    (void)async_complete(tr);
    if (tr->clock) {
        MPI_Waitall((int)tr->staleness + 1, tr->clock, MPI_STATUSES_IGNORE);
        core_free(tr->clock);
    }
    if (tr->row_type != MPI_DATATYPE_NULL)
        MPI_Type_free(&tr->row_type);
    MPI_Comm_free(&tr->comm);
    core_free(tr->counts);
    map_free(&tr->dedup);
    map_free(&tr->cache);
    map_free(&tr->resid);
    tr_buf_t *bufs[] = {&tr->ukeys,      &tr->inv,        &tr->ugrads,        &tr->spos,
                        &tr->skeys,      &tr->srows,      &tr->rkeys,         &tr->rrows,
                        &tr->rmap,       &tr->okeys,      &tr->orows,         &tr->mkeys,
                        &tr->midx,       &tr->mrows,      &tr->norms,         &tr->sel,
                        &tr->reqs,       &tr->cache_rows, &tr->cache_fetched, &tr->resid_rows,
                        &tr->resid_free, &tr->pkeys,      &tr->pgrads};
    for (size_t i = 0; i < sizeof(bufs) / sizeof(bufs[0]); i++)
        buf_free(bufs[i]);
    core_free(tr);
}

int strata_trainer_rank(const strata_trainer_t *tr)
{
    return tr->rank;
}

int strata_trainer_nranks(const strata_trainer_t *tr)
{
    return tr->nranks;
}

size_t trainer_bucket_elems(const strata_trainer_t *tr)
{
    return tr->bucket_elems;
}

void trainer_note_allreduce(strata_trainer_t *tr, size_t bytes, double seconds)
{
    tr->stats.dense_bytes += bytes;
    tr->stats.allreduce_s += seconds;
}

void strata_trainer_get_stats(const strata_trainer_t *tr, strata_trainer_stats_t *stats)
{
    *stats = tr->stats;
    stats->residual_rows = tr->resid.count;
}

/* --- local dedup and routing -------------------------------------------- */

/** ukeys[0..*nu) = keys' distinct values in first-seen order, inv[i] =
 *  index of keys[i] there; with grads, ugrads = per-key sums. */
static strata_status_t dedup(strata_trainer_t *tr, const uint64_t *keys, const float *grads,
                             size_t n, size_t *nu_p)
{
    size_t dim = tr->dim;
    if (n > UINT32_MAX)
        return core_fail(STRATA_ERR_TOO_LARGE, "trainer: %zu keys in one call: at most %u", n,
                         UINT32_MAX);
    uint64_t *uk = buf_get(&tr->ukeys, n * sizeof(uint64_t) + 8);
    uint32_t *inv = buf_get(&tr->inv, n * sizeof(uint32_t) + 4);
    float *ug = grads ? buf_get(&tr->ugrads, n * dim * sizeof(float) + 4) : NULL;
    if (!uk || !inv || (grads && !ug))
        return core_fail(STRATA_ERR_NOMEM, "trainer: scratch for %zu keys: out of memory", n);
    return dedup_sum(&tr->dedup, keys, grads, n, dim, uk, ug, inv, nu_p);
}

/** Order ukeys[0..nu) (and ugrads rows when rows) by owner into skeys
 *  (srows); spos[j] = place of ukeys[j]; counts[0..nranks) = per owner,
 *  counts[nranks..) = displacements. srows gets room for nu rows either
 *  way (a lookup receives its rows there). */
static strata_status_t route(strata_trainer_t *tr, size_t nu, int rows)
{
    size_t dim = tr->dim;
    int np = tr->nranks;
    int *sc = tr->counts, *sd = sc + np, *cur = sc + 4 * np;
    if (nu > INT_MAX)
        return core_fail(STRATA_ERR_TOO_LARGE, "trainer: %zu unique keys in one exchange", nu);
    uint32_t *spos = buf_get(&tr->spos, nu * sizeof(uint32_t) + 4);
    uint64_t *sk = buf_get(&tr->skeys, nu * sizeof(uint64_t) + 8);
    float *sr = buf_get(&tr->srows, nu * dim * sizeof(float) + 4);
    if (!spos || !sk || !sr)
        return core_fail(STRATA_ERR_NOMEM, "trainer: send buffers: out of memory");
    const uint64_t *uk = tr->ukeys.p;
    const float *ug = tr->ugrads.p;
    memset(sc, 0, (size_t)np * sizeof(int));
    for (size_t j = 0; j < nu; j++) {
        spos[j] = tr_key_owner(uk[j], (uint32_t)np);
        sc[spos[j]]++;
    }
    int off = 0;
    for (int r = 0; r < np; r++) {
        sd[r] = cur[r] = off;
        off += sc[r];
    }
    for (size_t j = 0; j < nu; j++) {
        uint32_t p = (uint32_t)cur[spos[j]]++;
        spos[j] = p;
        sk[p] = uk[j];
        if (rows)
            memcpy(sr + (size_t)p * dim, ug + j * dim, dim * sizeof(float));
    }
    for (int r = 0; r < np; r++)
        if (r != tr->rank)
            tr->stats.keys_sent += (uint64_t)sc[r];
    return STRATA_OK;
}

/** The count exchange and the receive side: MPI_Alltoall of the counts
 *  (a rank with local error st sends st as every count), then receive
 *  buffers (keys, rows, owner side), agreed on. Returns the group's
 *  status; on OK *nrecv_p keys will arrive. */
static strata_status_t exchange_counts(strata_trainer_t *tr, strata_status_t st, size_t *nrecv_p)
{
    int np = tr->nranks;
    int *sc = tr->counts, *rc = sc + 2 * np, *rd = sc + 3 * np;
    if (st != STRATA_OK)
        for (int r = 0; r < np; r++)
            sc[r] = (int)st;
    double t0 = MPI_Wtime();
    strata_status_t mst =
        tr_mpi(MPI_Alltoall(sc, 1, MPI_INT, rc, 1, MPI_INT, tr->comm), "MPI_Alltoall");
    tr->stats.exchange_s += MPI_Wtime() - t0;
    if (mst != STRATA_OK)
        return mst; /* every rank's MPI failed alike or the job is gone */
    int worst = 0;
    size_t total = 0;
    for (int r = 0; r < np; r++) {
        if (rc[r] < worst)
            worst = rc[r];
        rd[r] = (int)total;
        if (rc[r] > 0)
            total += (size_t)rc[r];
    }
    if (st != STRATA_OK)
        return st;
    if (worst < 0)
        return core_fail((strata_status_t)worst, "trainer: another rank failed: %s",
                         strata_status_string((strata_status_t)worst));
    strata_status_t lst = STRATA_OK;
    if (total > INT_MAX)
        lst = core_fail(STRATA_ERR_TOO_LARGE, "trainer: %zu keys to one owner", total);
    else if (!buf_get(&tr->rkeys, total * sizeof(uint64_t) + 8) ||
             !buf_get(&tr->rmap, total * sizeof(uint32_t) + 4) ||
             !buf_get(&tr->rrows, total * tr->dim * sizeof(float) + 4) ||
             !buf_get(&tr->okeys, total * sizeof(uint64_t) + 8) ||
             !buf_get(&tr->orows, total * tr->dim * sizeof(float) + 4))
        lst = core_fail(STRATA_ERR_NOMEM, "trainer: receive buffers: out of memory");
    lst = tr_agree(tr, lst);
    if (lst == STRATA_OK)
        *nrecv_p = total;
    return lst;
}

/** Alltoallv of keys (send side skeys/sc/sd, receive rkeys/rc/rd). */
static strata_status_t send_keys(strata_trainer_t *tr, size_t nsend, size_t nrecv)
{
    int np = tr->nranks;
    int *sc = tr->counts, *sd = sc + np, *rc = sc + 2 * np, *rd = sc + 3 * np;
    double t0 = MPI_Wtime();
    strata_status_t st = tr_mpi(MPI_Alltoallv(tr->skeys.p, sc, sd, MPI_UINT64_T, tr->rkeys.p, rc,
                                              rd, MPI_UINT64_T, tr->comm),
                                "MPI_Alltoallv (keys)");
    tr->stats.exchange_s += MPI_Wtime() - t0;
    tr->stats.keys_received += nrecv - (size_t)rc[tr->rank];
    tr->stats.bytes_sent += (nsend - (size_t)sc[tr->rank]) * sizeof(uint64_t);
    tr->stats.bytes_received += (nrecv - (size_t)rc[tr->rank]) * sizeof(uint64_t);
    return st;
}

/** Owner side: dedup rkeys[0..nrecv) over the ranks into okeys; rmap[i]
 *  = index of rkeys[i] there. With sum, orows = sums of rrows per key
 *  (in rank order). */
static strata_status_t owner_dedup(strata_trainer_t *tr, size_t nrecv, int sum, size_t *nou_p)
{
    size_t dim = tr->dim;
    const uint64_t *rk = tr->rkeys.p;
    const float *rr = tr->rrows.p;
    uint64_t *ok = tr->okeys.p;
    float *orw = tr->orows.p;
    uint32_t *rmap = tr->rmap.p;
    size_t nou = 0;
    strata_status_t st = dedup_sum(&tr->dedup, rk, sum ? rr : NULL, nrecv, dim, ok,
                                   sum ? orw : NULL, rmap, &nou);
    if (st != STRATA_OK)
        return st;
    tr->stats.owner_unique += nou;
    *nou_p = nou;
    return STRATA_OK;
}

/* --- owner cache -------------------------------------------------------- */

static int cache_fresh(const strata_trainer_t *tr, uint64_t fetched)
{
    return fetched != TR_STALE && tr->step - fetched <= (uint64_t)tr->bound;
}

static void cache_drop(strata_trainer_t *tr)
{
    map_clear(&tr->cache);
    tr->cache_n = 0;
}

/** Remember rows of keys[0..n) read at this step (as many as fit; the
 *  cache is dropped first when full). A failed allocation only means the
 *  rows are not cached. */
static void cache_store(strata_trainer_t *tr, const uint64_t *keys, const float *rows, size_t n)
{
    size_t dim = tr->dim;
    if (tr->cache_max == 0 || n == 0)
        return;
    size_t fresh_needed = 0;
    for (size_t i = 0; i < n; i++)
        if (!map_find(&tr->cache, keys[i]))
            fresh_needed++;
    if (tr->cache_n + fresh_needed > tr->cache_max)
        cache_drop(tr);
    if (map_reserve(&tr->cache, n < tr->cache_max ? n : tr->cache_max) != STRATA_OK)
        return;
    for (size_t i = 0; i < n; i++) {
        uint32_t *e = map_find(&tr->cache, keys[i]);
        if (!e) {
            if (tr->cache_n >= tr->cache_max)
                return;
            size_t idx = tr->cache_n;
            float *cr = buf_get(&tr->cache_rows, (idx + 1) * dim * sizeof(float));
            uint64_t *cf = buf_get(&tr->cache_fetched, (idx + 1) * sizeof(uint64_t));
            if (!cr || !cf)
                return;
            int added;
            e = map_upsert(&tr->cache, keys[i], (uint32_t)idx, &added);
            tr->cache_n++;
        }
        memcpy((float *)tr->cache_rows.p + (size_t)*e * dim, rows + i * dim, dim * sizeof(float));
        ((uint64_t *)tr->cache_fetched.p)[*e] = tr->step;
    }
}

/** Rows of okeys[0..nou) into orows: fresh cache entries, the rest read
 *  from the store in one call. */
static strata_status_t owner_read(strata_trainer_t *tr, size_t nou)
{
    size_t dim = tr->dim;
    const uint64_t *ok = tr->okeys.p;
    float *orw = tr->orows.p;
    uint64_t *mk = buf_get(&tr->mkeys, nou * sizeof(uint64_t) + 8);
    uint32_t *mi = buf_get(&tr->midx, nou * sizeof(uint32_t) + 4);
    float *mr = buf_get(&tr->mrows, nou * dim * sizeof(float) + 4);
    if (!mk || !mi || !mr)
        return core_fail(STRATA_ERR_NOMEM, "trainer: owner buffers: out of memory");
    size_t nm = 0;
    for (size_t j = 0; j < nou; j++) {
        uint32_t *e = tr->cache_max ? map_find(&tr->cache, ok[j]) : NULL;
        if (e && cache_fresh(tr, ((const uint64_t *)tr->cache_fetched.p)[*e])) {
            memcpy(orw + j * dim, (const float *)tr->cache_rows.p + (size_t)*e * dim,
                   dim * sizeof(float));
            continue;
        }
        mk[nm] = ok[j];
        mi[nm++] = (uint32_t)j;
    }
    tr->stats.cache_hits += nou - nm;
    tr->stats.cache_misses += nm;
    if (nm == 0)
        return STRATA_OK;
    double t0 = MPI_Wtime();
    strata_status_t st = strata_rtable_lookup(tr->table, mk, nm, mr, NULL, tr->lookup_flags);
    tr->stats.store_lookup_s += MPI_Wtime() - t0;
    if (st != STRATA_OK)
        return st;
    tr->stats.store_reads += nm;
    for (size_t m = 0; m < nm; m++)
        memcpy(orw + (size_t)mi[m] * dim, mr + m * dim, dim * sizeof(float));
    cache_store(tr, mk, mr, nm);
    return STRATA_OK;
}

/* --- lookup ------------------------------------------------------------- */

static strata_status_t lookup_owner(strata_trainer_t *tr, const uint64_t *keys, size_t n,
                                    float *out)
{
    size_t dim = tr->dim, nu = 0, nrecv = 0, nou = 0;
    int np = tr->nranks;
    strata_status_t st = dedup(tr, keys, NULL, n, &nu);
    if (st == STRATA_OK)
        st = route(tr, nu, 0);
    if (st == STRATA_OK)
        tr->stats.lookup_unique += nu;
    st = exchange_counts(tr, st, &nrecv);
    if (st != STRATA_OK)
        return st;
    st = send_keys(tr, nu, nrecv);
    if (st != STRATA_OK)
        return st;
    /* owner: read, agree, then reply in the order the keys came */
    st = owner_dedup(tr, nrecv, 0, &nou);
    if (st == STRATA_OK)
        st = owner_read(tr, nou);
    st = tr_agree(tr, st);
    if (st != STRATA_OK)
        return st;
    float *rr = tr->rrows.p;
    const float *orw = tr->orows.p;
    const uint32_t *rmap = tr->rmap.p;
    for (size_t i = 0; i < nrecv; i++)
        memcpy(rr + i * dim, orw + (size_t)rmap[i] * dim, dim * sizeof(float));
    /* rows back: the reply counts are the request counts swapped; the
     * rows land in srows, in send order */
    int *sc = tr->counts, *sd = sc + np, *rc = sc + 2 * np, *rd = sc + 3 * np;
    float *sr = tr->srows.p;
    double t0 = MPI_Wtime();
    st = tr_mpi(MPI_Alltoallv(rr, rc, rd, tr->row_type, sr, sc, sd, tr->row_type, tr->comm),
                "MPI_Alltoallv (rows)");
    tr->stats.exchange_s += MPI_Wtime() - t0;
    if (st != STRATA_OK)
        return st;
    tr->stats.bytes_sent += (nrecv - (size_t)rc[tr->rank]) * dim * sizeof(float);
    tr->stats.bytes_received += (nu - (size_t)sc[tr->rank]) * dim * sizeof(float);
    const uint32_t *inv = tr->inv.p, *spos = tr->spos.p;
    for (size_t i = 0; i < n; i++)
        memcpy(out + i * dim, sr + (size_t)spos[inv[i]] * dim, dim * sizeof(float));
    return STRATA_OK;
}

static strata_status_t lookup_direct(strata_trainer_t *tr, const uint64_t *keys, size_t n,
                                     float *out)
{
    strata_client_stats_t a, b;
    strata_client_get_stats(tr->client, &a);
    double t0 = MPI_Wtime();
    strata_status_t st = strata_rtable_lookup(tr->table, keys, n, out, NULL, tr->lookup_flags);
    tr->stats.store_lookup_s += MPI_Wtime() - t0;
    strata_client_get_stats(tr->client, &b);
    tr->stats.lookup_unique += b.unique_keys - a.unique_keys;
    tr->stats.store_reads += b.unique_keys - a.unique_keys;
    return st;
}

strata_status_t strata_trainer_lookup(strata_trainer_t *tr, const uint64_t *keys, size_t n,
                                      float *out)
{
    if (!tr)
        return core_fail(STRATA_ERR_INVALID_PARAM, "trainer is NULL");
    double t0 = MPI_Wtime();
    strata_status_t st = STRATA_OK;
    if (n > 0 && (!keys || !out))
        st = core_fail(STRATA_ERR_INVALID_PARAM, "trainer: keys and out must not be NULL");
    if (tr->preq)
        strata_client_progress(tr->client);
    tr->stats.lookup_keys += n;
    if (tr->mode == STRATA_SPARSE_OWNER)
        st = st == STRATA_OK ? lookup_owner(tr, keys, n, out)
                             : exchange_counts(tr, st, &(size_t){0});
    else if (st == STRATA_OK && n > 0)
        st = lookup_direct(tr, keys, n, out);
    tr->stats.lookup_s += MPI_Wtime() - t0;
    return st;
}

/* --- push --------------------------------------------------------------- */

typedef struct tr_norm {
    float norm2;  /**< squared L2 norm of the row's gradient */
    uint32_t idx; /**< unique index */
} tr_norm_t;

static int norm_cmp(const void *a, const void *b)
{
    const tr_norm_t *x = a, *y = b;
    if (x->norm2 != y->norm2)
        return x->norm2 > y->norm2 ? -1 : 1;
    return x->idx < y->idx ? -1 : x->idx > y->idx;
}

/** Top-k: add residuals to ukeys/ugrads[0..*nu), keep the rows of largest
 *  norm (in their order) and move the rest into residuals. */
static strata_status_t topk_filter(strata_trainer_t *tr, size_t *nu_p)
{
    size_t dim = tr->dim, nu = *nu_p;
    uint64_t *uk = tr->ukeys.p;
    float *ug = tr->ugrads.p;
    if (nu == 0)
        return STRATA_OK;
    size_t k = (size_t)ceil((double)tr->topk * (double)nu);
    if (k < 1)
        k = 1;
    tr_norm_t *nm = buf_get(&tr->norms, nu * sizeof(tr_norm_t));
    uint8_t *sel = buf_get(&tr->sel, nu);
    if (!nm || !sel)
        return core_fail(STRATA_ERR_NOMEM, "trainer: top-k scratch: out of memory");
    /* room for every held-back row before anything changes */
    strata_status_t st = map_reserve(&tr->resid, nu);
    if (st != STRATA_OK)
        return st;
    if (nu - k > tr->resid_nfree) {
        size_t rows = (size_t)tr->resid_n + (nu - k - tr->resid_nfree);
        if (rows > UINT32_MAX || !buf_get(&tr->resid_rows, rows * dim * sizeof(float)) ||
            !buf_get(&tr->resid_free, rows * sizeof(uint32_t)))
            return core_fail(STRATA_ERR_NOMEM, "trainer: residuals: out of memory");
    }
    float *rrows = tr->resid_rows.p;
    uint32_t *rfree = tr->resid_free.p;
    for (size_t j = 0; j < nu; j++) {
        float *g = ug + j * dim;
        uint32_t *e = map_find(&tr->resid, uk[j]);
        if (e) {
            const float *r = rrows + (size_t)*e * dim;
            for (size_t c = 0; c < dim; c++)
                g[c] += r[c];
            rfree[tr->resid_nfree++] = *e;
            map_delete(&tr->resid, uk[j]);
        }
        double s = 0;
        for (size_t c = 0; c < dim; c++)
            s += (double)g[c] * g[c];
        nm[j].norm2 = (float)s;
        nm[j].idx = (uint32_t)j;
    }
    if (k >= nu)
        return STRATA_OK;
    qsort(nm, nu, sizeof(*nm), norm_cmp);
    memset(sel, 0, nu);
    for (size_t i = 0; i < k; i++)
        sel[nm[i].idx] = 1;
    size_t w = 0;
    for (size_t j = 0; j < nu; j++) {
        if (sel[j]) {
            if (w != j) {
                uk[w] = uk[j];
                memcpy(ug + w * dim, ug + j * dim, dim * sizeof(float));
            }
            w++;
            continue;
        }
        uint32_t slot = tr->resid_nfree ? rfree[--tr->resid_nfree] : tr->resid_n++;
        int added;
        (void)map_upsert(&tr->resid, uk[j], slot, &added);
        memcpy(rrows + (size_t)slot * dim, ug + j * dim, dim * sizeof(float));
    }
    tr->stats.filtered_rows += nu - k;
    *nu_p = k;
    return STRATA_OK;
}

/** Push keys/grads[0..n) to the store, synchronously or as the one async
 *  push in flight (swapping the buffers into pkeys/pgrads). src_keys and
 *  src_rows are the trainer buffers holding them. */
static strata_status_t store_push(strata_trainer_t *tr, tr_buf_t *src_keys, tr_buf_t *src_rows,
                                  size_t n, int async)
{
    strata_status_t prev = async_complete(tr);
    strata_status_t st = STRATA_OK;
    double t0 = MPI_Wtime();
    if (n > 0 && async) {
        buf_swap(src_keys, &tr->pkeys);
        buf_swap(src_rows, &tr->pgrads);
        st = strata_rtable_push_async(tr->table, tr->pkeys.p, tr->pgrads.p, n, NULL, NULL,
                                      &tr->preq);
        if (st == STRATA_INPROGRESS)
            st = STRATA_OK;
        else
            tr->preq = NULL;
    } else if (n > 0) {
        st = strata_rtable_push(tr->table, src_keys->p, src_rows->p, n);
    }
    tr->stats.store_push_s += MPI_Wtime() - t0;
    if (st == STRATA_OK)
        tr->stats.store_pushes += n;
    return prev != STRATA_OK ? prev : st;
}

static strata_status_t check_finite(const float *g, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isfinite(g[i]))
            return core_fail(STRATA_ERR_BAD_VALUE, "trainer: gradient element %zu is %g", i,
                             (double)g[i]);
    return STRATA_OK;
}

/** One push, filter: apply top-k; async: ASYNC mode's store push. st is
 *  the caller's local status: when it is an error nothing is pushed, but
 *  the collective steps still run so every rank learns it. */
static strata_status_t push_impl(strata_trainer_t *tr, strata_status_t st, const uint64_t *keys,
                                 const float *grads, size_t n, int filter, int async)
{
    size_t dim = tr->dim, nu = 0;
    if (st == STRATA_OK && n > 0 && (!keys || !grads))
        st = core_fail(STRATA_ERR_INVALID_PARAM, "trainer: keys and grads must not be NULL");
    if (st == STRATA_OK)
        st = check_finite(grads, n * dim);
    if (st == STRATA_OK)
        st = dedup(tr, keys, grads, n, &nu);
    if (st == STRATA_OK) {
        tr->stats.push_unique += nu;
        if (filter && tr->topk > 0.0f)
            st = topk_filter(tr, &nu);
    }
    if (tr->mode == STRATA_SPARSE_DIRECT) {
        /* BSP: no rank pushes while another still reads this step's rows
         * (mode A needs no such barrier: every owner read of a step ends
         * before the row exchange that every push's exchange follows) */
        if (tr->sync == STRATA_SYNC_BSP)
            st = tr_agree(tr, st);
        return st == STRATA_OK ? store_push(tr, &tr->ukeys, &tr->ugrads, nu, async) : st;
    }

    size_t nrecv = 0, nou = 0;
    if (st == STRATA_OK)
        st = route(tr, nu, 1);
    st = exchange_counts(tr, st, &nrecv);
    if (st != STRATA_OK)
        return st;
    st = send_keys(tr, nu, nrecv);
    if (st != STRATA_OK)
        return st;
    int np = tr->nranks;
    int *sc = tr->counts, *sd = sc + np, *rc = sc + 2 * np, *rd = sc + 3 * np;
    double t0 = MPI_Wtime();
    st = tr_mpi(MPI_Alltoallv(tr->srows.p, sc, sd, tr->row_type, tr->rrows.p, rc, rd, tr->row_type,
                              tr->comm),
                "MPI_Alltoallv (gradients)");
    tr->stats.exchange_s += MPI_Wtime() - t0;
    if (st != STRATA_OK)
        return st;
    tr->stats.bytes_sent += (nu - (size_t)sc[tr->rank]) * dim * sizeof(float);
    tr->stats.bytes_received += (nrecv - (size_t)rc[tr->rank]) * dim * sizeof(float);
    st = owner_dedup(tr, nrecv, 1, &nou);
    if (st != STRATA_OK)
        return st;
    if (tr->sync == STRATA_SYNC_BSP) {
        cache_drop(tr);
    } else if (tr->sync == STRATA_SYNC_ASYNC && tr->cache_n) {
        const uint64_t *ok = tr->okeys.p;
        for (size_t j = 0; j < nou; j++) {
            uint32_t *e = map_find(&tr->cache, ok[j]);
            if (e)
                ((uint64_t *)tr->cache_fetched.p)[*e] = TR_STALE;
        }
    }
    return store_push(tr, &tr->okeys, &tr->orows, nou, async);
}

strata_status_t strata_trainer_push(strata_trainer_t *tr, const uint64_t *keys, const float *grads,
                                    size_t n)
{
    if (!tr)
        return core_fail(STRATA_ERR_INVALID_PARAM, "trainer is NULL");
    double t0 = MPI_Wtime();
    tr->stats.push_keys += n;
    strata_status_t st = push_impl(tr, STRATA_OK, keys, grads, n, 1, tr->sync == STRATA_SYNC_ASYNC);
    /* BSP: the barrier that makes every rank's push visible to every
     * rank's next lookup, and carries store errors to every rank */
    if (tr->sync == STRATA_SYNC_BSP)
        st = tr_agree(tr, st);
    tr->stats.push_s += MPI_Wtime() - t0;
    return st;
}

strata_status_t strata_trainer_flush(strata_trainer_t *tr)
{
    if (!tr)
        return core_fail(STRATA_ERR_INVALID_PARAM, "trainer is NULL");
    double t0 = MPI_Wtime();
    size_t dim = tr->dim, nr = tr->resid.count;
    strata_status_t st = async_complete(tr);
    /* stage the residuals (the map is scanned, not the pool: free rows
     * are not in it) */
    uint64_t *rk = buf_get(&tr->mkeys, nr * sizeof(uint64_t) + 8);
    float *rr = buf_get(&tr->mrows, nr * dim * sizeof(float) + 4);
    strata_status_t pst = STRATA_OK;
    if (!rk || !rr) {
        pst = core_fail(STRATA_ERR_NOMEM, "trainer: flush buffers: out of memory");
        nr = 0;
    } else {
        size_t w = 0;
        for (size_t i = 0; tr->resid.mask && i <= tr->resid.mask; i++) {
            if (tr->resid.gens[i] != tr->resid.gen)
                continue;
            rk[w] = tr->resid.keys[i];
            memcpy(rr + w * dim, (const float *)tr->resid_rows.p + (size_t)tr->resid.vals[i] * dim,
                   dim * sizeof(float));
            w++;
        }
    }
    pst = push_impl(tr, pst, rk, rr, nr, 0, 0);
    if (pst == STRATA_OK) {
        map_clear(&tr->resid);
        tr->resid_n = tr->resid_nfree = 0;
    }
    if (st == STRATA_OK)
        st = pst;
    cache_drop(tr);
    st = tr_agree(tr, st);
    tr->stats.push_s += MPI_Wtime() - t0;
    return st;
}

/* --- clock and dense ---------------------------------------------------- */

strata_status_t strata_trainer_step_end(strata_trainer_t *tr)
{
    if (!tr)
        return core_fail(STRATA_ERR_INVALID_PARAM, "trainer is NULL");
    uint64_t t = ++tr->step;
    tr->stats.steps++;
    if (tr->sync == STRATA_SYNC_BSP) {
        cache_drop(tr);
        return STRATA_OK;
    }
    if (tr->sync == STRATA_SYNC_ASYNC) {
        if (tr->preq)
            strata_client_progress(tr->client);
        return STRATA_OK;
    }
    /* SSP: announce step t, wait until every rank has announced t - s */
    uint32_t ring = tr->staleness + 1;
    double t0 = MPI_Wtime();
    strata_status_t st = tr_mpi(MPI_Ibarrier(tr->comm, &tr->clock[t % ring]), "MPI_Ibarrier");
    if (st == STRATA_OK && t > tr->staleness)
        st = tr_mpi(MPI_Wait(&tr->clock[(t - tr->staleness) % ring], MPI_STATUS_IGNORE),
                    "MPI_Wait (clock)");
    tr->stats.sync_s += MPI_Wtime() - t0;
    return st;
}

strata_status_t strata_trainer_allreduce_dense(strata_trainer_t *tr, float *grads, size_t n,
                                               int average)
{
    if (!tr)
        return core_fail(STRATA_ERR_INVALID_PARAM, "trainer is NULL");
    if (n > 0 && !grads)
        return core_fail(STRATA_ERR_INVALID_PARAM, "trainer: grads must not be NULL");
    double t0 = MPI_Wtime();
    MPI_Request *rq = tr->reqs.p; /* TR_ALLREDUCE_WINDOW, allocated by create */
    for (int i = 0; i < TR_ALLREDUCE_WINDOW; i++)
        rq[i] = MPI_REQUEST_NULL;
    strata_status_t st = STRATA_OK;
    size_t b = 0;
    for (size_t off = 0; off < n && st == STRATA_OK; off += tr->bucket_elems, b++) {
        size_t cnt = n - off < tr->bucket_elems ? n - off : tr->bucket_elems;
        MPI_Request *slot = &rq[b % TR_ALLREDUCE_WINDOW];
        if (*slot != MPI_REQUEST_NULL)
            st = tr_mpi(MPI_Wait(slot, MPI_STATUS_IGNORE), "MPI_Wait (allreduce)");
        if (st == STRATA_OK)
            st = tr_mpi(MPI_Iallreduce(MPI_IN_PLACE, grads + off, (int)cnt, MPI_FLOAT, MPI_SUM,
                                       tr->comm, slot),
                        "MPI_Iallreduce");
    }
    strata_status_t wst =
        tr_mpi(MPI_Waitall(TR_ALLREDUCE_WINDOW, rq, MPI_STATUSES_IGNORE), "MPI_Waitall");
    if (st == STRATA_OK)
        st = wst;
    if (st == STRATA_OK && average && tr->nranks > 1) {
        float np = (float)tr->nranks;
        for (size_t i = 0; i < n; i++)
            grads[i] /= np;
    }
    tr->stats.dense_bytes += n * sizeof(float);
    tr->stats.allreduce_s += MPI_Wtime() - t0;
    return st;
}
