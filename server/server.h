/*
 * server/server.h — strata-server: serves the local shards of one or more
 * tables to libstrata clients over UCX.
 *
 * A cluster of nservers servers; a table has total_shards =
 * shards_per_server * nservers global shards; key k lives in global shard
 * g = strata_key_shard(k, total_shards), which server g % nservers holds
 * as its local shard g / nservers. Rows and index buckets are mapped with
 * UCX so clients read them one-sided; everything else is an RPC (active
 * message) handled by the service thread.
 *
 * Threading: one service thread (srv_run) owns the UCX worker, every
 * session and every shard — it is each shard's one writer. srv_stop may
 * be called from any thread or a signal handler.
 */
#ifndef STRATA_SERVER_SERVER_H
#define STRATA_SERVER_SERVER_H

#include <stdint.h>

#include "strata.h"

#define SRV_MAX_TABLES 64

/** One table to create at start. */
typedef struct srv_table_config {
    strata_table_schema_t schema;        /**< capacity = the whole cluster's */
    char name[STRATA_NAME_MAX + 1];      /**< schema.name points here */
    uint32_t shards_per_server;          /**< >= 1 */
    uint64_t dram_budget;                /**< rows in DRAM, whole cluster; 0 = all of
                                              capacity (no tier below). With
                                              nvme_dir, rows beyond it live on NVMe */
} srv_table_config_t;

typedef struct srv_config {
    char listen_addr[64];        /**< "" = all interfaces */
    uint16_t port;               /**< 0 = any (see port_file) */
    char port_file[256];         /**< write the bound port here once listening */
    uint32_t server_index;       /**< 0..nservers-1 */
    uint32_t nservers;           /**< >= 1 */
    char secret[256];            /**< shared secret (may be empty) */
    size_t secret_len;
    uint32_t max_keys;           /**< per LOOKUP/PUSH; default 65536 */
    uint32_t credits;            /**< requests in flight per session; default 32 */
    uint32_t idle_spin_us;       /**< busy-poll this long after activity, then sleep on
                                      the worker's event fd; default 200 */
    char snapshot_dir[256];      /**< "" = none: on SIGTERM save, at start restore */
    char nvme_dir[256];          /**< "" = none; tables with a dram_budget keep their
                                      colder rows in <nvme_dir>/<table>.<shard>/ */
    uint64_t initial_buckets;    /**< index buckets per new shard; 0 = core's default */
    int verbose;                 /**< log sessions and errors to stderr */
    uint32_t ntables;
    srv_table_config_t tables[SRV_MAX_TABLES];
} srv_config_t;

/** Defaults for every field. */
void srv_config_init(srv_config_t *c);

/** Parse a config file (docs/operations.md): "key = value" lines, "#"
 *  comments, and "[table NAME]" sections with the table keys. Errors:
 *  NOT_FOUND, IO, INVALID_PARAM (with file:line in strata_last_error). */
strata_status_t srv_config_load(srv_config_t *c, const char *path);

/** Apply one "key=value" setting (a flag or a config line); table keys go
 *  to the table t (NULL: a server key). */
strata_status_t srv_config_set(srv_config_t *c, srv_table_config_t *t, const char *key,
                               const char *value);

/** Parse "name=emb,dim=64,capacity=1000000,optimizer=adagrad,..." into a new
 *  table of c. */
strata_status_t srv_config_add_table_spec(srv_config_t *c, const char *spec);

typedef struct srv srv_t;

/** Create the server: UCX context, worker, listener, tables (restored from
 *  snapshot_dir when a snapshot exists). */
strata_status_t srv_create(const srv_config_t *c, srv_t **s_p);

/** Serve until srv_stop; then drain: finish every request already
 *  received, wait (up to 5 s) for replies to leave, save snapshots when
 *  snapshot_dir is set, close sessions. */
strata_status_t srv_run(srv_t *s);

/** Ask srv_run to drain and return. Async-signal-safe. */
void srv_stop(srv_t *s);

void srv_destroy(srv_t *s);

#endif
