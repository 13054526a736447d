/*
 * perf/bench_tier.h — the pieces of perf/bench_tier that are built only
 * when a peer is available: RocksDB (bench_tier_rocksdb.c, C API, or
 * bench_tier_rocksdb_stub.c when CMake finds no librocksdb).
 *
 * Threading: bt_rocksdb_run starts its own reader threads and joins them.
 */
#ifndef STRATA_PERF_BENCH_TIER_H
#define STRATA_PERF_BENCH_TIER_H

#include <stdint.h>

typedef struct bt_rocksdb_result {
    int ok;               /**< 1: measured; 0: skipped or failed (note says why) */
    double load_s;        /**< load + flush + compaction, seconds */
    double gets_per_s;    /**< random Gets per second, all threads */
    uint64_t gets;        /**< Gets in the timed window */
    uint64_t bad;         /**< Gets that returned a missing or wrong value */
    uint64_t sst_bytes;   /**< live SST bytes after compaction */
    int direct_reads;     /**< use_direct_reads was accepted */
    char note[256];       /**< skip or failure reason */
} bt_rocksdb_result_t;

/** Load keys[0..n) (8 bytes big-endian each) with value_bytes values
 *  (the key's 8 bytes, then a filler derived from it) into a fresh
 *  database under dir (created and removed here), flush and compact it,
 *  then run `threads` threads of random single-key Gets (direct reads,
 *  8 MiB block cache) for `seconds`, checking every value. Returns 0 when
 *  it ran (r->ok), nonzero with r->note otherwise. */
int bt_rocksdb_run(const char *dir, const uint64_t *keys, uint64_t n, uint32_t value_bytes,
                   unsigned threads, double seconds, bt_rocksdb_result_t *r);

#endif
