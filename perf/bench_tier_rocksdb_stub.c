/*
 * perf/bench_tier_rocksdb_stub.c — bench_tier without librocksdb: the
 * RocksDB comparison is reported as skipped.
 *
 * Threading: pure.
 */
#include "bench_tier.h"

#include <stdio.h>
#include <string.h>

int bt_rocksdb_run(const char *dir, const uint64_t *keys, uint64_t n, uint32_t value_bytes,
                   unsigned threads, double seconds, bt_rocksdb_result_t *r)
{
    (void)dir, (void)keys, (void)n, (void)value_bytes, (void)threads, (void)seconds;
    memset(r, 0, sizeof(*r));
    snprintf(r->note, sizeof(r->note), "built without librocksdb (scripts/install-deps.sh)");
    return 1;
}
