/*
 * strata.h — the one public header of Strata, an RDMA-native tiered
 * embedding store (u64 feature keys -> fixed-width float rows).
 *
 * Conventions that hold for every call in this header:
 *  - Every call returns a strata_status_t: STRATA_OK (0), STRATA_INPROGRESS
 *    (1) or a negative error.  strata_status_string() names each one and
 *    strata_last_error() gives a sentence about the most recent failure on
 *    the calling thread.
 *  - Output parameters are written only when the call returns STRATA_OK,
 *    except the per-item buffers of batch calls (out, found), whose
 *    contents are unspecified after an error.
 *  - Parameter structs open with a uint64_t field_mask; a field is read only
 *    when its bit is set, otherwise its documented default applies.  New
 *    fields are appended with new bits, so old callers keep working.
 *  - Pointers passed in are borrowed for the duration of the call unless the
 *    call's comment says otherwise; the library copies what it keeps.
 *  - Thread safety is stated per call.  "Any thread" means the call may run
 *    concurrently with any other call on the same handle except destroy.
 */
#ifndef STRATA_H
#define STRATA_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define STRATA_API __attribute__((visibility("default")))
#else
#define STRATA_API
#endif

/* ------------------------------------------------------------------------ */
/* Status                                                                   */
/* ------------------------------------------------------------------------ */

/** One status type for the whole library. Foreign errors (errno, UCX,
 *  CUDA, io_uring) are translated to these at the boundary where they
 *  arise. docs/errors.md explains what each means and what to do. */
typedef enum strata_status {
    STRATA_OK = 0,                  /**< success */
    STRATA_INPROGRESS = 1,          /**< accepted; completion reported later */

    STRATA_ERR_NOMEM = -1,          /**< an allocation failed; a batch call keeps
                                         the items done before it (see the call) */
    STRATA_ERR_INVALID_PARAM = -2,  /**< an argument or schema value is out of range */
    STRATA_ERR_NOT_FOUND = -3,      /**< no such key / table / file */
    STRATA_ERR_EXISTS = -4,         /**< object already exists */
    STRATA_ERR_FULL = -5,           /**< capacity reached and eviction is off */
    STRATA_ERR_IO = -6,             /**< an I/O call failed (see strata_last_error) */
    STRATA_ERR_CORRUPT = -7,        /**< stored data failed its checksum or structure check */
    STRATA_ERR_VERSION = -8,        /**< file or protocol version not understood */
    STRATA_ERR_UNSUPPORTED = -9,    /**< feature not built in or not implemented */
    STRATA_ERR_TIMEOUT = -10,       /**< the operation did not complete in time */
    STRATA_ERR_BUSY = -11,          /**< transient contention; retry */
    STRATA_ERR_BAD_VALUE = -12,     /**< NaN or Inf in a gradient or row */
    STRATA_ERR_DIM_MISMATCH = -13,  /**< buffer or row width differs from the table's dim */
    STRATA_ERR_UNKNOWN_TABLE = -14, /**< the named table does not exist */
    STRATA_ERR_PROTOCOL = -15,      /**< malformed message */
    STRATA_ERR_AUTH = -16,          /**< peer failed authentication */
    STRATA_ERR_CONNECTION = -17,    /**< peer unreachable or connection lost */
    STRATA_ERR_TOO_LARGE = -18,     /**< batch or message exceeds its limit */
    STRATA_ERR_TRUNCATED = -19,     /**< input ended before its declared length */
    STRATA_ERR_NO_SPACE = -20,      /**< the device is full (ENOSPC, EDQUOT) */
    STRATA_ERR_READ_ONLY = -21,     /**< the handle may not modify */
    STRATA_ERR_STALE = -22,         /**< a cached layout or epoch is out of date */
    STRATA_ERR_TORN = -23,          /**< a row read failed validation (concurrent write) */
    STRATA_ERR_INTERNAL = -24       /**< an invariant broke: a bug, please report */
} strata_status_t;

/** Static English name of a status, e.g. "STRATA_ERR_NOMEM: out of memory".
 *  Never NULL; unknown values give "unknown status". Any thread. */
STRATA_API const char *strata_status_string(strata_status_t status);

/** A sentence about the last failure on the calling thread, e.g.
 *  "schema.dim = 0: must be between 1 and 16384". The string is owned by
 *  the library and valid until the next failing call on this thread.
 *  Empty string when no call has failed yet. Any thread. */
STRATA_API const char *strata_last_error(void);

/** Library version, "MAJOR.MINOR.PATCH". Any thread. */
STRATA_API const char *strata_version_string(void);

/* ------------------------------------------------------------------------ */
/* Table schema                                                             */
/* ------------------------------------------------------------------------ */

/** Element type of stored rows. Only FP32 is implemented; FP16 storage is
 *  planned and is rejected with STRATA_ERR_UNSUPPORTED today. */
typedef enum strata_elem_type {
    STRATA_ELEM_FP32 = 0,
    STRATA_ELEM_FP16 = 1
} strata_elem_type_t;

/** Server-side optimizers. The exact formulas are in docs/optimizers.md. */
typedef enum strata_optimizer_type {
    STRATA_OPT_SGD = 0,
    STRATA_OPT_ADAGRAD = 1,
    STRATA_OPT_ROWWISE_ADAGRAD = 2, /**< one accumulator per row (mean of g^2) */
    STRATA_OPT_ADAM = 3,
    STRATA_OPT_AMSGRAD = 4,
    STRATA_OPT_FTRL = 5             /**< FTRL-Proximal, lr_power -0.5 */
} strata_optimizer_type_t;

/** Optimizer hyperparameters. Fields that an optimizer does not use are
 *  ignored. Defaults (when the bit is not set) are given per field. */
enum {
    STRATA_OPT_FIELD_LR = 1u << 0,
    STRATA_OPT_FIELD_EPS = 1u << 1,
    STRATA_OPT_FIELD_BETA1 = 1u << 2,
    STRATA_OPT_FIELD_BETA2 = 1u << 3,
    STRATA_OPT_FIELD_WEIGHT_DECAY = 1u << 4,
    STRATA_OPT_FIELD_INITIAL_ACCUMULATOR = 1u << 5,
    STRATA_OPT_FIELD_L1 = 1u << 6,
    STRATA_OPT_FIELD_L2 = 1u << 7,
    STRATA_OPT_FIELD_FTRL_BETA = 1u << 8
};

typedef struct strata_optimizer_params {
    uint64_t field_mask;           /**< STRATA_OPT_FIELD_* bits */
    strata_optimizer_type_t type;  /**< always read */
    float lr;                      /**< learning rate (alpha for FTRL); default 0.01 */
    float eps;                     /**< Adagrad 1e-10, Adam/AMSGrad 1e-8 */
    float beta1;                   /**< Adam/AMSGrad; default 0.9 */
    float beta2;                   /**< Adam/AMSGrad; default 0.999 */
    float weight_decay;            /**< L2 added to the gradient (g += wd*w); default 0 */
    float initial_accumulator;     /**< Adagrad accumulators / FTRL n start; default 0 */
    float l1;                      /**< FTRL L1; default 0 */
    float l2;                      /**< FTRL L2; default 0 */
    float ftrl_beta;               /**< FTRL beta; default 1.0 */
} strata_optimizer_params_t;

/** How a new row's values are made. The values depend only on (seed, key,
 *  column), so every replica and every restart creates the same row. */
typedef enum strata_init_type {
    STRATA_INIT_ZEROS = 0,
    STRATA_INIT_CONSTANT = 1,     /**< every element = a */
    STRATA_INIT_UNIFORM = 2,      /**< U(a, b) */
    STRATA_INIT_NORMAL = 3,       /**< N(mean a, stddev b) */
    STRATA_INIT_TRUNC_NORMAL = 4  /**< N(a, b) redrawn outside a +- 2b */
} strata_init_type_t;

typedef struct strata_initializer {
    strata_init_type_t type;  /**< default UNIFORM(-0.05, 0.05) when unset */
    float a;                  /**< constant / low / mean */
    float b;                  /**< high / stddev */
    uint64_t seed;            /**< mixed with the key; default 0 */
} strata_initializer_t;

/** What to evict when a shard is at capacity. */
typedef enum strata_eviction {
    STRATA_EVICT_NONE = 0,   /**< inserts fail with STRATA_ERR_FULL at capacity */
    STRATA_EVICT_LRU = 1,    /**< least recently written/initialized */
    STRATA_EVICT_LFU = 2,    /**< least frequently written/initialized */
    STRATA_EVICT_SCORE = 3   /**< lowest user score (strata_table_set_scores) */
} strata_eviction_t;

enum {
    STRATA_SCHEMA_FIELD_NAME = 1u << 0,
    STRATA_SCHEMA_FIELD_DIM = 1u << 1,
    STRATA_SCHEMA_FIELD_ELEM_TYPE = 1u << 2,
    STRATA_SCHEMA_FIELD_OPTIMIZER = 1u << 3,
    STRATA_SCHEMA_FIELD_INITIALIZER = 1u << 4,
    STRATA_SCHEMA_FIELD_CAPACITY = 1u << 5,
    STRATA_SCHEMA_FIELD_ADMISSION = 1u << 6,
    STRATA_SCHEMA_FIELD_EVICTION = 1u << 7,
    STRATA_SCHEMA_FIELD_TTL = 1u << 8,
    STRATA_SCHEMA_FIELD_NSHARDS = 1u << 9
};

#define STRATA_NAME_MAX 63        /**< longest table name, bytes */
#define STRATA_DIM_MAX 16384      /**< widest row, elements */
#define STRATA_SHARDS_MAX 1024    /**< most writer shards in one local table */

/** A table's schema. NAME, DIM and CAPACITY are required; everything else
 *  has the default its comment gives. */
typedef struct strata_table_schema {
    uint64_t field_mask;                 /**< STRATA_SCHEMA_FIELD_* bits */
    const char *name;                    /**< [A-Za-z0-9_.-]{1,63}; copied */
    uint32_t dim;                        /**< elements per row, 1..STRATA_DIM_MAX */
    strata_elem_type_t elem_type;        /**< default FP32 */
    strata_optimizer_params_t optimizer; /**< default SGD lr 0.01 */
    strata_initializer_t initializer;    /**< default UNIFORM(-0.05, 0.05) seed 0 */
    uint64_t capacity;                   /**< most rows the table holds, >= 1 */
    uint32_t admission_threshold;        /**< sightings before a key is stored;
                                              0 or 1 = at once (default) */
    strata_eviction_t eviction;          /**< default NONE */
    uint64_t ttl_seconds;                /**< rows not written for longer than
                                              this expire; 0 = never (default) */
    uint32_t nshards;                    /**< writer shards (one writer each,
                                              routed by key hash); default 1 */
} strata_table_schema_t;

/** Check a schema without creating anything. Returns STRATA_OK or
 *  STRATA_ERR_INVALID_PARAM / STRATA_ERR_UNSUPPORTED with the field and the
 *  allowed range in strata_last_error(). Any thread. */
STRATA_API strata_status_t strata_schema_validate(const strata_table_schema_t *schema);

/* ------------------------------------------------------------------------ */
/* Local tables: the DRAM store, usable in-process                          */
/* ------------------------------------------------------------------------ */

/** An in-process table: the same shards a strata-server serves, reachable
 *  directly. Opaque. */
typedef struct strata_table strata_table_t;

/** Clock used for LRU order and TTL: nanoseconds since the Unix epoch.
 *  Tests and simulations may supply their own. Must be callable from any
 *  thread that mutates the table. */
typedef uint64_t (*strata_clock_cb_t)(void *arg);

enum {
    STRATA_TABLE_PARAM_FIELD_SCHEMA = 1u << 0,
    STRATA_TABLE_PARAM_FIELD_CLOCK = 1u << 1,
    STRATA_TABLE_PARAM_FIELD_HUGE_PAGES = 1u << 2
};

typedef struct strata_table_params {
    uint64_t field_mask;           /**< STRATA_TABLE_PARAM_FIELD_* bits */
    strata_table_schema_t schema;  /**< required */
    strata_clock_cb_t clock;       /**< default: CLOCK_REALTIME */
    void *clock_arg;               /**< passed to clock; borrowed for the table's life */
    int huge_pages;                /**< 1 = ask for 2 MiB pages (default), 0 = no */
} strata_table_params_t;

/** Create an empty table. The row arena is reserved (not touched) for the
 *  full capacity, so memory grows with the rows actually stored.
 *  On success *table_p is owned by the caller until strata_table_destroy.
 *  Errors: INVALID_PARAM / UNSUPPORTED (bad schema, see strata_last_error),
 *  NOMEM. Any thread. */
STRATA_API strata_status_t strata_table_create(const strata_table_params_t *params,
                                               strata_table_t **table_p);

/** Free the table. No other call on it may be running or follow. */
STRATA_API void strata_table_destroy(strata_table_t *table);

/** The table's schema, with every default filled in and field_mask set to
 *  all fields. Borrowed; valid until destroy. Any thread. */
STRATA_API const strata_table_schema_t *strata_table_get_schema(const strata_table_t *table);

/** Per-key outcome of a lookup, written to found[i] when found is given. */
enum {
    STRATA_ROW_MISSING = 0,      /**< absent; out holds the initializer's values */
    STRATA_ROW_FOUND = 1,        /**< stored row copied to out */
    STRATA_ROW_CREATED = 2,      /**< created by this call (INIT_MISSING) */
    STRATA_ROW_NOT_ADMITTED = 3  /**< seen fewer times than the admission
                                      threshold: initializer values, not stored */
};

enum {
    /** Create rows for absent keys (subject to admission, eviction and
     *  capacity). Without it the lookup is read-only. */
    STRATA_LOOKUP_INIT_MISSING = 1u << 0
};

/** Batched lookup: for each keys[i], copy its row to out[i*dim .. +dim).
 *  Absent keys get the initializer's values, so a lookup never leaves a row
 *  of out unwritten. keys, out and found (optional, n bytes) are borrowed.
 *  Read-only lookups (flags 0) are lock-free and may run on any number of
 *  threads alongside writers; each returned row is a consistent snapshot.
 *  With STRATA_LOOKUP_INIT_MISSING the call is a writer (see below).
 *  Errors: INVALID_PARAM (NULL buffers with n > 0), FULL, NOMEM — on an
 *  error, rows created before it stay created. */
STRATA_API strata_status_t strata_table_lookup(strata_table_t *table, const uint64_t *keys,
                                               size_t n, float *out, uint8_t *found,
                                               uint32_t flags);

/** Apply one optimizer step per (keys[i], grads[i*dim .. +dim)). Absent
 *  keys are created first (subject to admission: a key below the threshold
 *  is skipped and counted in stats). Duplicate keys in one batch are applied
 *  as separate steps in order; sum them first for one step per key.
 *  The batch is checked before anything is applied: a NaN or Inf gradient
 *  rejects the whole batch with STRATA_ERR_BAD_VALUE and changes nothing.
 *  FULL (capacity reached, eviction off) or NOMEM (index growth failed)
 *  stop the batch part-way: steps before the failing key stay applied.
 *  TOO_LARGE: more than 2^32-1 keys in one call to a multi-shard table.
 *  Writer call: any thread; writers of the same shard are serialized by
 *  the shard's lock, writers of different shards run in parallel. */
STRATA_API strata_status_t strata_table_apply_gradients(strata_table_t *table,
                                                        const uint64_t *keys,
                                                        const float *grads, size_t n);

/** Overwrite (or create, bypassing admission) rows with the given values;
 *  optimizer state is reset. NaN/Inf rejects the batch (BAD_VALUE, nothing
 *  changed); FULL/NOMEM stop it part-way as for apply. Writer call. */
STRATA_API strata_status_t strata_table_assign(strata_table_t *table, const uint64_t *keys,
                                               const float *rows, size_t n);

/** Remove keys; *erased_p (optional) gets how many were present.
 *  Writer call. */
STRATA_API strata_status_t strata_table_erase(strata_table_t *table, const uint64_t *keys,
                                              size_t n, size_t *erased_p);

/** Set the eviction score of present keys (STRATA_EVICT_SCORE tables: the
 *  lowest score is evicted first). Absent keys are ignored. Writer call. */
STRATA_API strata_status_t strata_table_set_scores(strata_table_t *table, const uint64_t *keys,
                                                   const float *scores, size_t n);

/** Remove rows not written for longer than the schema's TTL. Writer call.
 *  *expired_p (optional) gets the count. Lookups already treat such rows
 *  as absent; this reclaims their space. */
STRATA_API strata_status_t strata_table_expire(strata_table_t *table, size_t *expired_p);

/** Called once per stored row by strata_table_iterate. row is borrowed for
 *  the call. Return nonzero to stop early. */
typedef int (*strata_iter_cb_t)(void *arg, uint64_t key, const float *row, uint32_t dim);

/** Visit every stored row, shard by shard. Each shard's writer lock is held
 *  while that shard is visited: the callback must not call writer calls on
 *  the same table. Lock-free lookups may run meanwhile. */
STRATA_API strata_status_t strata_table_iterate(strata_table_t *table, strata_iter_cb_t cb,
                                                void *arg);

typedef struct strata_table_stats {
    uint64_t rows;               /**< rows stored now */
    uint64_t capacity;           /**< rows the table may hold */
    uint64_t index_buckets;      /**< index buckets, all shards */
    uint64_t index_epoch;        /**< sum of shard index epochs (grows on resize) */
    uint64_t lookups;            /**< keys looked up */
    uint64_t lookup_hits;        /**< of which found stored */
    uint64_t inserts;            /**< rows created */
    uint64_t updates;            /**< optimizer steps applied */
    uint64_t evictions;          /**< rows evicted at capacity */
    uint64_t expirations;        /**< rows removed by TTL */
    uint64_t not_admitted;       /**< keys refused by the admission sketch */
    uint64_t torn_retries;       /**< lock-free reads retried after a concurrent write */
    uint64_t bytes_rows;         /**< bytes of row arena in use */
    uint64_t bytes_state;        /**< bytes of optimizer state in use */
    uint64_t bytes_index;        /**< bytes of index */
} strata_table_stats_t;

/** Snapshot of counters (each read atomically; the set is not one
 *  instant). Any thread. */
STRATA_API strata_status_t strata_table_get_stats(strata_table_t *table,
                                                  strata_table_stats_t *stats);

/** Write every row (embedding and optimizer state) and the schema to path,
 *  atomically: a temporary file is written, fsync'ed and renamed, so path
 *  holds either the old file or the complete new one. Each shard is copied
 *  under its writer lock. Errors (the file at path is unchanged): IO,
 *  NO_SPACE, NOMEM, NOT_FOUND (the directory does not exist), EXISTS (a
 *  stale temporary file of this process), INVALID_PARAM. An IO error from
 *  the final directory fsync is reported after the rename: the new file is
 *  in place but its directory entry may not be durable. Any thread. */
STRATA_API strata_status_t strata_table_save(strata_table_t *table, const char *path);

/** Load a snapshot into a new table. params may be NULL (the file's schema
 *  is used) or give a clock / huge-pages choice; its schema is ignored.
 *  The whole file is verified (magic, version, per-block checksums, row
 *  count); on any error nothing is returned: CORRUPT (checksum, structure,
 *  a duplicate key, more rows than the capacity), TRUNCATED (file shorter
 *  than declared), VERSION (newer format), NOT_FOUND (no such file), IO,
 *  NOMEM. On success *table_p is the caller's. Any thread. */
STRATA_API strata_status_t strata_table_load(const char *path, const strata_table_params_t *params,
                                             strata_table_t **table_p);

/* ------------------------------------------------------------------------ */
/* Client: tables served by a cluster of strata-servers                     */
/* ------------------------------------------------------------------------ */

/** A connection to every server of a cluster. Opaque. One UCX worker per
 *  client: a client handle (and the tables and requests made from it) is
 *  used by one thread at a time; threads that look up in parallel each
 *  make their own client. */
typedef struct strata_client strata_client_t;

/** A table of a cluster, opened by strata_client_open_table. Opaque;
 *  owned by its client and freed with it. */
typedef struct strata_rtable strata_rtable_t;

/** How lookups read rows. */
typedef enum strata_read_mode {
    /** One-sided where UCX reads server memory directly (shared memory,
     *  RDMA verbs), batched RPC where gets would be emulated (TCP). */
    STRATA_READ_AUTO = 0,
    STRATA_READ_ONESIDED = 1, /**< always one-sided reads (location cache, index) */
    STRATA_READ_RPC = 2       /**< always batched RPC */
} strata_read_mode_t;

enum {
    STRATA_CLIENT_FIELD_SERVERS = 1u << 0,
    STRATA_CLIENT_FIELD_CLUSTER_FILE = 1u << 1,
    STRATA_CLIENT_FIELD_SECRET = 1u << 2,
    STRATA_CLIENT_FIELD_READ_ONLY = 1u << 3,
    STRATA_CLIENT_FIELD_TIMEOUT_MS = 1u << 4,
    STRATA_CLIENT_FIELD_READ_MODE = 1u << 5,
    STRATA_CLIENT_FIELD_LOC_CACHE = 1u << 6
};

typedef struct strata_client_params {
    uint64_t field_mask;          /**< STRATA_CLIENT_FIELD_* bits */
    const char *servers;          /**< "host:port,host:port,..." in server-index
                                       order; or use cluster_file */
    const char *cluster_file;     /**< file: "server HOST:PORT" lines in index order,
                                       optional "secret_file PATH"; docs/operations.md */
    const void *secret;           /**< shared secret (copied); default: the cluster
                                       file's, else $STRATA_SECRET, else empty */
    size_t secret_len;
    int read_only;                /**< 1: this client never modifies (inference) */
    uint32_t timeout_ms;          /**< per call; default 10000 */
    strata_read_mode_t read_mode; /**< default AUTO */
    uint32_t loc_cache_entries;   /**< location cache per table (rounded up to a
                                       power of two); default 1M, 0 = none */
} strata_client_params_t;

/** Connect to every server and authenticate. On success *client_p is the
 *  caller's until strata_client_destroy. Errors: INVALID_PARAM (no or bad
 *  server list), NOT_FOUND/IO (cluster file), CONNECTION (a server is
 *  unreachable), AUTH (secret refused), VERSION, TIMEOUT, UNSUPPORTED
 *  (built without UCX). Any thread; the client then belongs to it. */
STRATA_API strata_status_t strata_client_connect(const strata_client_params_t *params,
                                                 strata_client_t **client_p);

/** Close every connection and free the client, its tables and the
 *  requests still running (completed requests are freed by
 *  strata_request_free). */
STRATA_API void strata_client_destroy(strata_client_t *client);

/** Create a table on every server. schema->capacity is the cluster's;
 *  schema->nshards is the number of shards per server (default 1).
 *  Errors: as strata_schema_validate, EXISTS, READ_ONLY, CONNECTION,
 *  TIMEOUT; a failure part-way leaves the table on the servers that made
 *  it (drop it to retry). */
STRATA_API strata_status_t strata_client_create_table(strata_client_t *client,
                                                      const strata_table_schema_t *schema);

/** Drop a table on every server. UNKNOWN_TABLE if no server had it. */
STRATA_API strata_status_t strata_client_drop_table(strata_client_t *client, const char *name);

/** Open a table: its schema, shard map, layouts and rkeys from every
 *  server. *table_p is borrowed from the client (valid until destroy);
 *  opening the same name again returns the same handle. Errors:
 *  UNKNOWN_TABLE, CONNECTION, TIMEOUT, PROTOCOL, NOMEM. */
STRATA_API strata_status_t strata_client_open_table(strata_client_t *client, const char *name,
                                                    strata_rtable_t **table_p);

/** The table's resolved schema (nshards = shards in the whole cluster).
 *  Borrowed; valid until the client is destroyed. */
STRATA_API const strata_table_schema_t *strata_rtable_schema(const strata_rtable_t *table);

/** An asynchronous call in flight. Opaque; owned by the client until
 *  strata_request_free. */
typedef struct strata_request strata_request_t;

/** Completion callback of an async call: runs inside strata_client_progress
 *  (or a wait) on the client's thread, once. It may start new calls. */
typedef void (*strata_request_cb_t)(strata_request_t *req, strata_status_t status, void *arg);

/** Batched lookup, as strata_table_lookup: out[i*dim..] gets keys[i]'s
 *  row (the initializer's values when absent), found[i] (optional) a
 *  STRATA_ROW_* code. Duplicates are read once. flags may have
 *  STRATA_LOOKUP_INIT_MISSING (not on read-only clients). Errors:
 *  INVALID_PARAM, READ_ONLY, CONNECTION (a server died; its keys'
 *  rows are unspecified), TIMEOUT, NOMEM, and any server error
 *  (strata_last_error has its text). */
STRATA_API strata_status_t strata_rtable_lookup(strata_rtable_t *table, const uint64_t *keys,
                                                size_t n, float *out, uint8_t *found,
                                                uint32_t flags);

/** strata_rtable_lookup with the rows landing in CUDA memory: d_out is a
 *  device (cudaMalloc) or managed pointer to n * dim floats; keys and
 *  found (optional) are host memory, flags as strata_rtable_lookup.
 *  cuda_stream is a cudaStream_t of d_out's device, or NULL for the
 *  legacy default stream. The rows are copied to d_out on that stream,
 *  and the call returns once they are there: it synchronizes the stream,
 *  so it also waits for work queued on it before the call. With a UCX
 *  lacking CUDA support the rows pass through a pinned host buffer that
 *  the client keeps (grown to the largest batch, freed by
 *  strata_client_destroy); docs/gpu.md, "Client lookups into device
 *  buffers". All pointers are borrowed for the call. On an error d_out is
 *  unspecified (the rows are copied only after the lookup succeeded).
 *  Errors: UNSUPPORTED (built without CUDA, CUDA runtime or device not
 *  available, or d_out is not device or managed memory), INVALID_PARAM,
 *  NOMEM (host or pinned memory), TOO_LARGE, INTERNAL (a CUDA error on
 *  the copy; strata_last_error names it), and the errors of
 *  strata_rtable_lookup. The client's thread, as every call on a client;
 *  the CUDA runtime is loaded on the first call. */
STRATA_API strata_status_t strata_rtable_lookup_device(strata_rtable_t *table,
                                                       const uint64_t *keys, size_t n,
                                                       void *d_out, uint8_t *found,
                                                       uint32_t flags, void *cuda_stream);

/** Push sparse gradients: duplicates are summed into one step per key,
 *  keys are split by shard and each server applies its optimizer. The
 *  batch is checked for NaN/Inf first (BAD_VALUE, nothing sent). On an
 *  error from one server, other servers' parts may already be applied.
 *  Errors: BAD_VALUE, READ_ONLY, CONNECTION, TIMEOUT, NOMEM, FULL and any
 *  server error. */
STRATA_API strata_status_t strata_rtable_push(strata_rtable_t *table, const uint64_t *keys,
                                              const float *grads, size_t n);

/** Asynchronous forms: start the call and return INPROGRESS with *req_p
 *  set, or an error (no request, no callback). Buffers stay borrowed
 *  until completion. cb (optional) fires once on completion; without a
 *  callback poll with strata_request_test or block in strata_request_wait.
 *  Any number may be in flight on one client. */
STRATA_API strata_status_t strata_rtable_lookup_async(strata_rtable_t *table, const uint64_t *keys,
                                                      size_t n, float *out, uint8_t *found,
                                                      uint32_t flags, strata_request_cb_t cb,
                                                      void *arg, strata_request_t **req_p);
STRATA_API strata_status_t strata_rtable_push_async(strata_rtable_t *table, const uint64_t *keys,
                                                    const float *grads, size_t n,
                                                    strata_request_cb_t cb, void *arg,
                                                    strata_request_t **req_p);

/** Drive the client's network: completes requests and fires callbacks.
 *  Returns how many requests completed. */
STRATA_API unsigned strata_client_progress(strata_client_t *client);

/** INPROGRESS while running, else the request's final status. Progresses. */
STRATA_API strata_status_t strata_request_test(strata_request_t *req);

/** Block (progressing) until done; returns the final status. */
STRATA_API strata_status_t strata_request_wait(strata_request_t *req);

/** Release a completed request (or cancel interest in a running one: it
 *  is freed when it completes, and its callback still fires). */
STRATA_API void strata_request_free(strata_request_t *req);

/** Client counters. */
typedef struct strata_client_stats {
    uint64_t lookups;          /**< keys asked (with duplicates) */
    uint64_t unique_keys;      /**< after dedup */
    uint64_t onesided_hits;    /**< rows read one-sided via the location cache */
    uint64_t onesided_index;   /**< rows found one-sided via the index (2 round trips) */
    uint64_t onesided_absent;  /**< keys found absent one-sided (index current):
                                    initializer values, no server involved */
    uint64_t rpc_keys;         /**< keys read by RPC (mode, misses, fallbacks) */
    uint64_t torn_retries;     /**< one-sided rows re-read after failing validation */
    uint64_t stale_locations;  /**< cached locations that held another row */
    uint64_t pushes;           /**< gradient rows sent (after summing duplicates) */
    uint64_t rpcs;             /**< RPC messages sent */
    uint64_t relayouts;        /**< table layouts refreshed after an index growth */
    uint64_t bytes_sent;       /**< RPC message bytes sent */
    uint64_t bytes_received;   /**< RPC reply bytes received */
    uint64_t bytes_onesided;   /**< bytes read one-sided (rows, buckets, trailers) */
} strata_client_stats_t;

STRATA_API void strata_client_get_stats(const strata_client_t *client,
                                        strata_client_stats_t *stats);

/** The table's counters summed over every server (as strata_table_stats_t
 *  describes them; index_epoch is the sum of the shards' epochs), and
 *  *server_cpu_s_p (optional) the servers' process CPU seconds (user +
 *  system, since each started), summed. Errors: CONNECTION, TIMEOUT,
 *  UNKNOWN_TABLE. Blocking; the client's thread. */
STRATA_API strata_status_t strata_rtable_get_stats(strata_rtable_t *table,
                                                   strata_table_stats_t *stats,
                                                   double *server_cpu_s_p);

/** Per-tier counters of a table, summed over every server (zeros for a
 *  table without tiers below DRAM). */
typedef struct strata_tier_stats {
    uint64_t dram_hits;    /**< keys looked up by the servers and found in DRAM */
    uint64_t dram_misses;  /**< ... not in DRAM */
    uint64_t nvme_hits;    /**< DRAM misses found on NVMe */
    uint64_t nvme_misses;  /**< ... absent there too */
    uint64_t promotions;   /**< rows moved NVMe -> DRAM */
    uint64_t demotions;    /**< rows moved out of DRAM */
    uint64_t writebacks;   /**< dirty rows written to NVMe */
    uint64_t nvme_rows;    /**< keys on NVMe now */
} strata_tier_stats_t;

/** The servers' per-tier counters for the table. Blocking; the client's
 *  thread. Errors: as strata_rtable_get_stats. */
STRATA_API strata_status_t strata_rtable_get_tier_stats(strata_rtable_t *table,
                                                        strata_tier_stats_t *stats);

/** Whether lookups to server i go one-sided (1) or by RPC (0) under the
 *  client's read mode. -1 for a bad index. */
STRATA_API int strata_client_server_onesided(const strata_client_t *client, uint32_t i);

/* ------------------------------------------------------------------------ */
/* Hashing and routing, shared by every client and server                   */
/* ------------------------------------------------------------------------ */

/** Shard that owns key among nshards (>= 1). The function is part of the
 *  wire contract (docs/layout.md) and never changes within a format
 *  version. Any thread. */
STRATA_API uint32_t strata_key_shard(uint64_t key, uint32_t nshards);

/* ------------------------------------------------------------------------ */
/* Testing hooks                                                            */
/* ------------------------------------------------------------------------ */

/** Make the nth allocation from now fail (n >= 1), and every one after it
 *  when persistent is nonzero; n = 0 turns failures off. Counts every
 *  allocation the library makes through its allocator, on all threads.
 *  For tests only. */
STRATA_API void strata_test_fail_alloc(uint64_t n, int persistent);

/** Allocations failed on purpose since the hook was last set. */
STRATA_API uint64_t strata_test_failed_allocs(void);

#ifdef __cplusplus
}
#endif

#endif /* STRATA_H */
