/*
 * perf/peer_rocksdb.h — RocksDB as a benchmark peer: the SSD-tier store an
 * engineer would reach for without Strata, measured on the workload a
 * Strata benchmark runs (the same key stream, value size and keys per
 * request), embedded in the calling process through RocksDB's C API.
 *
 * A run creates a fresh database in a temporary directory (under cfg->dir,
 * else $TMPDIR, else /tmp), loads keys 0..nkeys_loaded-1 with values of
 * value_bytes bytes (write batches, no WAL), flushes and compacts it so
 * every read goes to SST files, then reads the key stream in batches of
 * `batch` keys with MultiGet for warmup_s + seconds, verifies every value
 * (size and the key's bytes at its front), and destroys the database and
 * removes the directory on every path out of the call.
 *
 * Reads bypass the page cache (use_direct_reads) and the block cache is
 * small (block_cache_bytes, default 8 MiB), so most reads reach the
 * device: what a table far larger than DRAM costs. When the file system
 * refuses O_DIRECT (tmpfs) the run falls back to buffered reads and says
 * so in the note. Keys are the 8 big-endian bytes of the key id; the value
 * of key k holds k's 8 bytes (little-endian) then a filler, as the
 * Redis/memcached peers (peer_kv.h) store it. Compression is off.
 *
 * Ownership: the config and its key array are the caller's, read during
 * the call only; lat (optional) is the caller's and gets one value (ns)
 * per batch of the timed window. The result is cleared and written on
 * every return, so its note explains a skip or a failure.
 *
 * Threading: the run uses the calling thread (RocksDB adds its own
 * background threads for the flush and compaction).
 *
 * Built (perf/CMakeLists.txt) when CMake finds librocksdb and rocksdb/c.h;
 * the target then defines STRATA_PERF_HAVE_ROCKSDB=1. Otherwise the inline
 * stub below reports the peer as skipped.
 */
#ifndef STRATA_PERF_PEER_ROCKSDB_H
#define STRATA_PERF_PEER_ROCKSDB_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "hdr.h"

#ifndef STRATA_PERF_HAVE_ROCKSDB
#define STRATA_PERF_HAVE_ROCKSDB 0
#endif

/** Return value of a run in a build without RocksDB (r->ok = 0). */
#define PEER_ROCKSDB_SKIPPED 77

typedef struct peer_rocksdb_config {
    const uint64_t *keys;     /**< key ids read in order and cycled, each
                                   < nkeys_loaded; NULL: 0..nkeys_loaded-1 */
    size_t nkeys_stream;      /**< entries in keys */
    uint64_t nkeys_loaded;    /**< keys 0..n-1 loaded before reading (required) */
    uint32_t value_bytes;     /**< bytes per value (required, >= 8) */
    uint32_t batch;           /**< keys per MultiGet (default 16) */
    double seconds;           /**< timed window (default 5) */
    double warmup_s;          /**< untimed reading before the window (0: none) */
    const char *dir;          /**< parent of the temporary database directory;
                                   NULL: $TMPDIR, else /tmp */
    size_t block_cache_bytes; /**< LRU block cache (default 8 MiB) */
    int buffered_reads;       /**< 1: read through the page cache instead of
                                   O_DIRECT (default 0: direct reads) */
    const volatile int *stop; /**< optional: when *stop becomes nonzero (a
                                   signal handler) the run ends, not ok */
} peer_rocksdb_config_t;

/** What one run measured; figures cover the timed window only. */
typedef struct peer_rocksdb_result {
    double keys_per_s;     /**< keys read per second of the window */
    double p50_us, p99_us; /**< batch latency percentiles */
    double seconds;        /**< length of the timed window */
    double load_s;         /**< load + flush + compaction */
    double cpu_s;          /**< process CPU seconds in the window (caller's
                                thread plus RocksDB's threads) */
    uint64_t keys;         /**< keys requested in batches of the window */
    uint64_t batches;      /**< MultiGet calls completed in the window */
    uint64_t errors;       /**< keys missing, failed or with a wrong value, all phases */
    uint64_t db_bytes;     /**< live SST bytes after compaction */
    int direct_reads;      /**< 1 when reads bypassed the page cache */
    int ok;                /**< 1 when the figures are valid */
    char note[200];        /**< why not ok, or a remark on how it ran */
} peer_rocksdb_result_t;

#if STRATA_PERF_HAVE_ROCKSDB

/** Create, load, read and destroy a database as described above. Returns
 *  0 with r->ok = 1, or -1 on failure (r->note says why). */
int peer_rocksdb_run(const peer_rocksdb_config_t *c, peer_rocksdb_result_t *r, hdr_hist_t *lat);

#else

static inline int peer_rocksdb_run(const peer_rocksdb_config_t *c, peer_rocksdb_result_t *r,
                                   hdr_hist_t *lat)
{
    (void)c;
    (void)lat;
    *r = (peer_rocksdb_result_t){0};
    snprintf(r->note, sizeof(r->note), "built without RocksDB (librocksdb-dev)");
    return PEER_ROCKSDB_SKIPPED;
}

#endif

#endif /* STRATA_PERF_PEER_ROCKSDB_H */
