/*
 * core/table.c — the public in-process table (strata_table_*): a resolved
 * schema, nshards shards routed by strata_key_shard, one writer lock per
 * shard, and the clock.
 *
 * Invariants: every key lives in shard strata_key_shard(key, nshards); each
 * shard's writer functions run only under that shard's lock; read-only
 * lookups take no lock.
 *
 * Batches that span shards are routed without copying: a counting sort of
 * item positions by shard into a per-thread scratch array (allocated once
 * per thread and grown, never per call in steady state), and each shard's
 * writer gets its list of positions (core/shard.h "idx").
 *
 * Threading: as documented per call in strata.h.
 */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "core/alloc.h"
#include "core/hash.h"
#include "core/schema.h"
#include "core/shard.h"
#include "core/snapshot.h"
#include "core/table.h"
#include "core/status.h"

struct strata_table {
    core_schema_t schema;       /**< resolved schema; schema.s.name -> schema.name */
    uint32_t nshards;           /**< == schema.s.nshards */
    core_shard_t **shards;      /**< nshards shards */
    pthread_mutex_t *locks;     /**< one writer lock per shard */
    strata_clock_cb_t clock;    /**< NULL: CLOCK_REALTIME */
    void *clock_arg;            /**< for clock */
    int huge_pages;             /**< regions ask for 2 MiB pages */
};

/* ------------------------------------------------------------------------ */
/* per-thread routing scratch                                               */
/* ------------------------------------------------------------------------ */

typedef struct route_scratch {
    uint32_t *pos;     /**< item positions grouped by shard */
    size_t cap;        /**< entries pos can hold */
    uint32_t *start;   /**< nshards + 1 group starts */
    uint32_t start_cap;/**< entries start can hold */
} route_scratch_t;

static pthread_key_t route_key;
static pthread_once_t route_once = PTHREAD_ONCE_INIT;

static void route_scratch_free(void *p)
{
    route_scratch_t *r = p;
    core_free(r->pos);
    core_free(r->start);
    core_free(r);
}

static void route_key_init(void)
{
    (void)pthread_key_create(&route_key, route_scratch_free);
}

/** Group item positions 0..n-1 by shard: on success *r holds pos[] and
 *  start[] with shard s's items at pos[start[s] .. start[s+1]). */
static strata_status_t route(const strata_table_t *t, const uint64_t *keys, size_t n,
                             route_scratch_t **r_p)
{
    if (n > UINT32_MAX)
        return core_fail(STRATA_ERR_TOO_LARGE, "batch of %zu keys: at most %u per call", n,
                         UINT32_MAX);
    pthread_once(&route_once, route_key_init);
    route_scratch_t *r = pthread_getspecific(route_key);
    if (!r) {
        r = core_calloc(1, sizeof(*r));
        if (!r)
            return core_fail(STRATA_ERR_NOMEM, "routing scratch: out of memory");
        if (pthread_setspecific(route_key, r) != 0) {
            core_free(r);
            return core_fail(STRATA_ERR_NOMEM, "routing scratch: pthread_setspecific failed");
        }
    }
    if (r->cap < n) {
        size_t cap = n < 1024 ? 1024 : n;
        uint32_t *p = core_realloc(r->pos, cap * sizeof(uint32_t));
        if (!p)
            return core_fail(STRATA_ERR_NOMEM, "routing scratch for %zu keys: out of memory", n);
        r->pos = p;
        r->cap = cap;
    }
    if (r->start_cap < t->nshards + 1) {
        uint32_t *p = core_realloc(r->start, (t->nshards + 1) * sizeof(uint32_t));
        if (!p)
            return core_fail(STRATA_ERR_NOMEM, "routing scratch: out of memory");
        r->start = p;
        r->start_cap = t->nshards + 1;
    }
    uint32_t *start = r->start;
    memset(start, 0, (t->nshards + 1) * sizeof(uint32_t));
    for (size_t i = 0; i < n; i++)
        start[core_key_shard(keys[i], t->nshards) + 1]++;
    for (uint32_t s = 0; s < t->nshards; s++)
        start[s + 1] += start[s];
    /* Fill using start[s] as a cursor, then restore the starts. */
    for (size_t i = 0; i < n; i++)
        r->pos[start[core_key_shard(keys[i], t->nshards)]++] = (uint32_t)i;
    for (uint32_t s = t->nshards; s > 0; s--)
        start[s] = start[s - 1];
    start[0] = 0;
    *r_p = r;
    return STRATA_OK;
}

static uint64_t table_now(const strata_table_t *t)
{
    if (t->clock)
        return t->clock(t->clock_arg);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ------------------------------------------------------------------------ */
/* create / destroy                                                         */
/* ------------------------------------------------------------------------ */

static strata_status_t table_create_resolved(const core_schema_t *schema,
                                             const strata_table_params_t *params,
                                             strata_table_t **table_p)
{
    strata_status_t st;
    strata_table_t *t = core_calloc(1, sizeof(*t));
    if (!t)
        return core_fail(STRATA_ERR_NOMEM, "table: out of memory");
    core_schema_copy(&t->schema, schema);
    t->nshards = schema->s.nshards;
    t->huge_pages = 1;
    if (params && (params->field_mask & STRATA_TABLE_PARAM_FIELD_HUGE_PAGES))
        t->huge_pages = params->huge_pages ? 1 : 0;
    if (params && (params->field_mask & STRATA_TABLE_PARAM_FIELD_CLOCK)) {
        t->clock = params->clock;
        t->clock_arg = params->clock_arg;
    }
    t->shards = core_calloc(t->nshards, sizeof(*t->shards));
    t->locks = core_calloc(t->nshards, sizeof(*t->locks));
    if (!t->shards || !t->locks) {
        st = core_fail(STRATA_ERR_NOMEM, "table: out of memory");
        goto err_table;
    }
    core_shard_config_t cfg;
    memset(&cfg, 0, sizeof(cfg));
    cfg.dim = schema->s.dim;
    cfg.optimizer = schema->s.optimizer;
    cfg.initializer = schema->s.initializer;
    cfg.admission_threshold = schema->s.admission_threshold;
    cfg.eviction = schema->s.eviction;
    cfg.ttl_ns = schema->s.ttl_seconds * 1000000000ull;
    cfg.huge_pages = t->huge_pages;
    uint32_t made = 0;
    for (; made < t->nshards; made++) {
        /* Split the capacity exactly: the shards' sum is the table's. */
        cfg.capacity = schema->s.capacity / t->nshards +
                       (made < schema->s.capacity % t->nshards ? 1 : 0);
        cfg.seed = made;
        st = core_shard_create(&cfg, &t->shards[made]);
        if (st != STRATA_OK)
            goto err_shards;
        pthread_mutex_init(&t->locks[made], NULL);
    }
    *table_p = t;
    return STRATA_OK;

err_shards:
    while (made > 0) {
        made--;
        pthread_mutex_destroy(&t->locks[made]);
        core_shard_destroy(t->shards[made]);
    }
err_table:
    core_free(t->locks);
    core_free(t->shards);
    core_free(t);
    return st;
}

strata_status_t strata_table_create(const strata_table_params_t *params,
                                    strata_table_t **table_p)
{
    if (!params || !table_p)
        return core_fail(STRATA_ERR_INVALID_PARAM, "strata_table_create: params and table_p "
                                                   "must not be NULL");
    if (!(params->field_mask & STRATA_TABLE_PARAM_FIELD_SCHEMA))
        return core_fail(STRATA_ERR_INVALID_PARAM,
                         "params.field_mask lacks STRATA_TABLE_PARAM_FIELD_SCHEMA: a table "
                         "needs a schema");
    if ((params->field_mask & STRATA_TABLE_PARAM_FIELD_CLOCK) && !params->clock)
        return core_fail(STRATA_ERR_INVALID_PARAM, "params.clock is NULL but its bit is set");
    core_schema_t schema;
    strata_status_t st = core_schema_resolve(&params->schema, &schema);
    if (st != STRATA_OK)
        return st;
    return table_create_resolved(&schema, params, table_p);
}

void strata_table_destroy(strata_table_t *t)
{
    if (!t)
        return;
    for (uint32_t s = 0; s < t->nshards; s++) {
        pthread_mutex_destroy(&t->locks[s]);
        core_shard_destroy(t->shards[s]);
    }
    core_free(t->locks);
    core_free(t->shards);
    core_free(t);
}

const strata_table_schema_t *strata_table_get_schema(const strata_table_t *t)
{
    return &t->schema.s;
}

/* ------------------------------------------------------------------------ */
/* data path                                                                */
/* ------------------------------------------------------------------------ */

/* A u32 view of float buffers that may alias them (the float bits are
 * inspected, never changed). */
typedef uint32_t __attribute__((may_alias)) alias_u32_t;

static inline int float_bad(float f)
{
    uint32_t bits;
    memcpy(&bits, &f, sizeof(bits));
    return (bits & 0x7f800000u) == 0x7f800000u; /* exponent all ones: NaN or Inf */
}

/** Reject a batch holding NaN or Inf before anything is applied. The scan
 *  is an OR-reduction the compiler vectorizes: adding 1 to an all-ones
 *  exponent carries into bit 31, any other exponent does not. */
strata_status_t core_check_finite(const float *v, size_t count, uint32_t dim, const char *what)
{
    const alias_u32_t *bits = (const alias_u32_t *)v;
    uint32_t acc = 0;
    for (size_t i = 0; i < count; i++)
        acc |= (bits[i] & 0x7f800000u) + 0x00800000u;
    if (!(acc & 0x80000000u))
        return STRATA_OK;
    for (size_t i = 0; i < count; i++)
        if (float_bad(v[i]))
            return core_fail(STRATA_ERR_BAD_VALUE,
                             "%s[%zu] (row %zu, element %zu) is %s: the batch was rejected, "
                             "nothing changed",
                             what, i, i / dim, i % dim, isnan(v[i]) ? "NaN" : "Inf");
    return STRATA_OK;
}

/* Run a writer call on each shard's group of items under its lock. */
#define FOR_EACH_SHARD_GROUP(t, keys, n, CALL)                                     \
    do {                                                                           \
        if ((t)->nshards == 1) {                                                   \
            uint32_t s_ = 0;                                                       \
            const uint32_t *idx_ = NULL;                                           \
            size_t m_ = (n);                                                       \
            core_shard_t *sh_ = (t)->shards[0];                                    \
            pthread_mutex_lock(&(t)->locks[0]);                                    \
            CALL;                                                                  \
            pthread_mutex_unlock(&(t)->locks[0]);                                  \
            (void)s_;                                                              \
        } else {                                                                   \
            route_scratch_t *r_;                                                   \
            strata_status_t rst_ = route((t), (keys), (n), &r_);                   \
            if (rst_ != STRATA_OK)                                                 \
                return rst_;                                                       \
            for (uint32_t s_ = 0; s_ < (t)->nshards; s_++) {                       \
                size_t m_ = r_->start[s_ + 1] - r_->start[s_];                     \
                if (m_ == 0)                                                       \
                    continue;                                                      \
                const uint32_t *idx_ = r_->pos + r_->start[s_];                    \
                core_shard_t *sh_ = (t)->shards[s_];                               \
                pthread_mutex_lock(&(t)->locks[s_]);                               \
                CALL;                                                              \
                pthread_mutex_unlock(&(t)->locks[s_]);                             \
            }                                                                      \
        }                                                                          \
    } while (0)

#define CHECK_BATCH(t, keys, n, buf)                                                \
    do {                                                                           \
        if (!(t))                                                                  \
            return core_fail(STRATA_ERR_INVALID_PARAM, "table is NULL");           \
        if ((n) > 0 && (!(keys) || !(buf)))                                        \
            return core_fail(STRATA_ERR_INVALID_PARAM,                             \
                             "%s: keys and data buffers must not be NULL when n = %zu", \
                             __func__, (size_t)(n));                               \
    } while (0)

strata_status_t strata_table_lookup(strata_table_t *t, const uint64_t *keys, size_t n,
                                    float *out, uint8_t *found, uint32_t flags)
{
    CHECK_BATCH(t, keys, n, out);
    if (flags & ~(uint32_t)STRATA_LOOKUP_INIT_MISSING)
        return core_fail(STRATA_ERR_INVALID_PARAM, "lookup flags 0x%x: unknown bits", flags);
    if (n == 0)
        return STRATA_OK;
    uint64_t now = t->schema.s.ttl_seconds ? table_now(t) : 0;
    if (!(flags & STRATA_LOOKUP_INIT_MISSING)) {
        core_lookup_batch(t->shards, t->nshards, keys, n, out, found, now);
        return STRATA_OK;
    }
    if (!now)
        now = table_now(t);
    strata_status_t st = STRATA_OK;
    FOR_EACH_SHARD_GROUP(t, keys, n, {
        st = core_shard_find_or_insert(sh_, keys, idx_, m_, out, found, now, true);
        if (st != STRATA_OK) {
            pthread_mutex_unlock(&t->locks[s_]);
            return st;
        }
    });
    return st;
}

strata_status_t strata_table_apply_gradients(strata_table_t *t, const uint64_t *keys,
                                             const float *grads, size_t n)
{
    CHECK_BATCH(t, keys, n, grads);
    if (n == 0)
        return STRATA_OK;
    strata_status_t st = core_check_finite(grads, n * (size_t)t->schema.s.dim, t->schema.s.dim, "grads");
    if (st != STRATA_OK)
        return st;
    uint64_t now = table_now(t);
    FOR_EACH_SHARD_GROUP(t, keys, n, {
        st = core_shard_apply(sh_, keys, idx_, grads, m_, now);
        if (st != STRATA_OK) {
            pthread_mutex_unlock(&t->locks[s_]);
            return st;
        }
    });
    return STRATA_OK;
}

strata_status_t strata_table_assign(strata_table_t *t, const uint64_t *keys, const float *rows,
                                    size_t n)
{
    CHECK_BATCH(t, keys, n, rows);
    if (n == 0)
        return STRATA_OK;
    strata_status_t st = core_check_finite(rows, n * (size_t)t->schema.s.dim, t->schema.s.dim, "rows");
    if (st != STRATA_OK)
        return st;
    uint64_t now = table_now(t);
    FOR_EACH_SHARD_GROUP(t, keys, n, {
        st = core_shard_assign(sh_, keys, idx_, rows, m_, now);
        if (st != STRATA_OK) {
            pthread_mutex_unlock(&t->locks[s_]);
            return st;
        }
    });
    return STRATA_OK;
}

strata_status_t strata_table_erase(strata_table_t *t, const uint64_t *keys, size_t n,
                                   size_t *erased_p)
{
    CHECK_BATCH(t, keys, n, keys);
    size_t erased = 0;
    if (n > 0)
        FOR_EACH_SHARD_GROUP(t, keys, n, { erased += core_shard_erase(sh_, keys, idx_, m_); });
    if (erased_p)
        *erased_p = erased;
    return STRATA_OK;
}

strata_status_t strata_table_set_scores(strata_table_t *t, const uint64_t *keys,
                                        const float *scores, size_t n)
{
    CHECK_BATCH(t, keys, n, scores);
    if (n == 0)
        return STRATA_OK;
    for (size_t i = 0; i < n; i++)
        if (!isfinite(scores[i]))
            return core_fail(STRATA_ERR_BAD_VALUE, "scores[%zu] is not finite", i);
    FOR_EACH_SHARD_GROUP(t, keys, n, { core_shard_set_scores(sh_, keys, idx_, scores, m_); });
    return STRATA_OK;
}

strata_status_t strata_table_expire(strata_table_t *t, size_t *expired_p)
{
    if (!t)
        return core_fail(STRATA_ERR_INVALID_PARAM, "table is NULL");
    uint64_t now = table_now(t);
    size_t expired = 0;
    for (uint32_t s = 0; s < t->nshards; s++) {
        pthread_mutex_lock(&t->locks[s]);
        expired += core_shard_expire(t->shards[s], now);
        pthread_mutex_unlock(&t->locks[s]);
    }
    if (expired_p)
        *expired_p = expired;
    return STRATA_OK;
}

typedef struct iter_adapter {
    strata_iter_cb_t cb;  /**< the user's callback */
    void *arg;            /**< its argument */
    uint32_t dim;         /**< row width */
} iter_adapter_t;

static int iter_adapt(void *arg, const core_row_t *row, const float *state,
                      const core_slot_meta_t *meta)
{
    (void)state;
    (void)meta;
    iter_adapter_t *a = arg;
    return a->cb(a->arg, row->key, row->emb, a->dim);
}

strata_status_t strata_table_iterate(strata_table_t *t, strata_iter_cb_t cb, void *arg)
{
    if (!t || !cb)
        return core_fail(STRATA_ERR_INVALID_PARAM, "strata_table_iterate: NULL argument");
    iter_adapter_t a = {cb, arg, t->schema.s.dim};
    for (uint32_t s = 0; s < t->nshards; s++) {
        pthread_mutex_lock(&t->locks[s]);
        int stop = core_shard_iterate(t->shards[s], iter_adapt, &a);
        pthread_mutex_unlock(&t->locks[s]);
        if (stop)
            break;
    }
    return STRATA_OK;
}

strata_status_t strata_table_get_stats(strata_table_t *t, strata_table_stats_t *stats)
{
    if (!t || !stats)
        return core_fail(STRATA_ERR_INVALID_PARAM, "strata_table_get_stats: NULL argument");
    strata_table_stats_t sum;
    memset(&sum, 0, sizeof(sum));
    for (uint32_t s = 0; s < t->nshards; s++) {
        core_shard_stats_t c;
        core_shard_get_stats(t->shards[s], &c);
        sum.rows += c.rows;
        sum.capacity += c.capacity;
        sum.index_buckets += c.nbuckets;
        sum.index_epoch += c.epoch;
        sum.lookups += c.lookups;
        sum.lookup_hits += c.lookup_hits;
        sum.inserts += c.inserts;
        sum.updates += c.updates;
        sum.evictions += c.evictions;
        sum.expirations += c.expirations;
        sum.not_admitted += c.not_admitted;
        sum.torn_retries += c.torn_retries;
        sum.bytes_rows += c.bytes_rows;
        sum.bytes_state += c.bytes_state;
        sum.bytes_index += c.bytes_index;
    }
    sum.capacity = t->schema.s.capacity < sum.capacity ? t->schema.s.capacity : sum.capacity;
    *stats = sum;
    return STRATA_OK;
}

uint32_t strata_key_shard(uint64_t key, uint32_t nshards)
{
    return nshards <= 1 ? 0 : core_key_shard(key, nshards);
}

/* ------------------------------------------------------------------------ */
/* snapshots                                                                */
/* ------------------------------------------------------------------------ */

strata_status_t strata_table_save(strata_table_t *t, const char *path)
{
    if (!t || !path || !path[0])
        return core_fail(STRATA_ERR_INVALID_PARAM, "strata_table_save: table and path needed");
    core_snapshot_writer_t *w;
    strata_status_t st = core_snapshot_begin(path, &t->schema, &w);
    if (st != STRATA_OK)
        return st;
    for (uint32_t s = 0; s < t->nshards; s++) {
        pthread_mutex_lock(&t->locks[s]);
        st = core_snapshot_add_shard(w, t->shards[s]);
        pthread_mutex_unlock(&t->locks[s]);
        if (st != STRATA_OK) {
            core_snapshot_abort(w);
            return st;
        }
    }
    return core_snapshot_commit(w);
}

typedef struct load_ctx {
    const strata_table_params_t *params; /**< caller's clock / huge pages */
    strata_table_t *table;               /**< built from the file's schema */
} load_ctx_t;

static strata_status_t load_on_schema(void *arg, const core_schema_t *schema)
{
    load_ctx_t *c = arg;
    if (c->table)
        return core_fail(STRATA_ERR_CORRUPT, "snapshot has two schemas");
    return table_create_resolved(schema, c->params, &c->table);
}

static strata_status_t load_on_row(void *arg, uint64_t key, const float *emb, const float *state,
                                   const core_slot_meta_t *meta)
{
    load_ctx_t *c = arg;
    if (!c->table)
        return core_fail(STRATA_ERR_CORRUPT, "snapshot row before its schema");
    strata_table_t *t = c->table;
    strata_status_t st = core_shard_restore_row(t->shards[strata_key_shard(key, t->nshards)], key,
                                                emb, state, meta);
    /* A duplicate key or more rows than the capacity: the file lies. */
    if (st == STRATA_ERR_EXISTS || st == STRATA_ERR_FULL) {
        char why[256]; /* strata_last_error() is the buffer core_fail writes */
        snprintf(why, sizeof(why), "%s", strata_last_error());
        return core_fail(STRATA_ERR_CORRUPT, "snapshot is inconsistent: %s", why);
    }
    return st;
}

strata_status_t strata_table_load(const char *path, const strata_table_params_t *params,
                                  strata_table_t **table_p)
{
    if (!path || !table_p)
        return core_fail(STRATA_ERR_INVALID_PARAM, "strata_table_load: path and table_p needed");
    load_ctx_t c = {params, NULL};
    core_snapshot_load_ops_t ops = {load_on_schema, load_on_row, &c};
    strata_status_t st = core_snapshot_load(path, &ops);
    if (st != STRATA_OK) {
        strata_table_destroy(c.table); /* nothing half-loaded escapes */
        return st;
    }
    if (!c.table)
        return core_fail(STRATA_ERR_CORRUPT, "%s: snapshot without a schema", path);
    *table_p = c.table;
    return STRATA_OK;
}

/* ------------------------------------------------------------------------ */
/* internal (core/table.h)                                                  */
/* ------------------------------------------------------------------------ */

core_shard_t *core_table_shard(strata_table_t *t, uint32_t i)
{
    return i < t->nshards ? t->shards[i] : NULL;
}

strata_status_t core_table_check(strata_table_t *t)
{
    for (uint32_t s = 0; s < t->nshards; s++) {
        pthread_mutex_lock(&t->locks[s]);
        strata_status_t st = core_shard_check(t->shards[s]);
        pthread_mutex_unlock(&t->locks[s]);
        if (st != STRATA_OK)
            return st;
    }
    return STRATA_OK;
}
