/*
 * perf/bench_tier_rocksdb.c — RocksDB (Debian's librocksdb, C API) as the
 * peer of the NVMe tier in perf/bench_tier: the same keys and value size,
 * loaded into a fresh database, flushed and compacted so every read goes
 * to SST files, then read by N threads of random single-key Gets with
 * direct reads (no page cache) and a small block cache (8 MiB), as an
 * engineer would run it for a table far larger than DRAM.
 *
 * Keys are the 8 big-endian bytes of the u64 key; a value is the key's 8
 * bytes (little-endian) then a filler derived from the key; every Get is
 * checked. Compression is off, bloom filters 10 bits/key, index and filter
 * blocks held by the table readers (no extra read per Get).
 *
 * Ownership: keys are the caller's, read during the call. The database
 * directory is created under dir and removed on every path out.
 *
 * Threading: the load runs on the calling thread (RocksDB adds background
 * threads); the reads on `threads` pthreads.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <rocksdb/c.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench_tier.h"

#define RDB_LOAD_BATCH 4096

static double rdb_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void rdb_key(char *b, uint64_t k)
{
    for (int i = 0; i < 8; i++)
        b[i] = (char)(k >> (56 - 8 * i));
}

static void rdb_value(char *v, uint32_t len, uint64_t k)
{
    memcpy(v, &k, 8);
    uint64_t x = k * 0x9e3779b97f4a7c15ULL + 1;
    for (uint32_t i = 8; i < len; i++) {
        x ^= x >> 29;
        x *= 0xbf58476d1ce4e5b9ULL;
        v[i] = (char)(x >> 56);
    }
}

static rocksdb_options_t *rdb_options(rocksdb_block_based_table_options_t *bb, int direct)
{
    rocksdb_options_t *o = rocksdb_options_create();
    rocksdb_options_set_create_if_missing(o, 1);
    rocksdb_options_set_compression(o, rocksdb_no_compression);
    rocksdb_options_set_max_open_files(o, -1);
    rocksdb_options_set_max_background_jobs(o, 2);
    rocksdb_options_set_write_buffer_size(o, 64u << 20);
    rocksdb_options_set_use_direct_reads(o, (unsigned char)direct);
    rocksdb_options_set_use_direct_io_for_flush_and_compaction(o, 1);
    rocksdb_options_set_block_based_table_factory(o, bb);
    return o;
}

static void rdb_rmdir(const char *dir)
{
    char cmd[1200];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "bench_tier: could not remove %s\n", dir);
}

typedef struct rdb_thread {
    rocksdb_t *db;               /**< shared handle */
    const rocksdb_readoptions_t *ro;
    const uint64_t *keys;        /**< the key set */
    uint64_t n;                  /**< its size */
    uint32_t value_bytes;
    uint64_t seed;               /**< this thread's RNG */
    volatile int *go, *stop;     /**< start / end of the window */
    uint64_t gets, bad;          /**< results */
} rdb_thread_t;

static void *rdb_reader(void *arg)
{
    rdb_thread_t *t = arg;
    char *expect = malloc(t->value_bytes);
    uint64_t x = t->seed;
    while (!__atomic_load_n(t->go, __ATOMIC_ACQUIRE))
        ;
    while (!__atomic_load_n(t->stop, __ATOMIC_RELAXED)) {
        x += 0x9e3779b97f4a7c15ULL;
        uint64_t z = x;
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
        z ^= z >> 31;
        uint64_t k = t->keys[(uint64_t)(((unsigned __int128)z * t->n) >> 64)];
        char kb[8];
        rdb_key(kb, k);
        size_t vlen = 0;
        char *err = NULL;
        char *v = rocksdb_get(t->db, t->ro, kb, 8, &vlen, &err);
        rdb_value(expect, t->value_bytes, k);
        if (err || !v || vlen != t->value_bytes || memcmp(v, expect, vlen) != 0)
            t->bad++;
        rocksdb_free(v);
        rocksdb_free(err);
        __atomic_store_n(&t->gets, t->gets + 1, __ATOMIC_RELAXED); /* read by the timer */
    }
    free(expect);
    return NULL;
}

int bt_rocksdb_run(const char *parent, const uint64_t *keys, uint64_t n, uint32_t value_bytes,
                   unsigned threads, double seconds, bt_rocksdb_result_t *r)
{
    memset(r, 0, sizeof(*r));
    if (n == 0 || value_bytes < 8 || threads == 0) {
        snprintf(r->note, sizeof(r->note), "bad arguments");
        return 1;
    }
    char dir[600];
    snprintf(dir, sizeof(dir), "%s/rocksdb-XXXXXX", parent);
    if (!mkdtemp(dir)) {
        snprintf(r->note, sizeof(r->note), "mkdtemp %.180s: %s", dir, strerror(errno));
        return 1;
    }
    int rc = 1;
    char *err = NULL;
    char *val = malloc(value_bytes);
    rocksdb_cache_t *cache = rocksdb_cache_create_lru(8u << 20);
    rocksdb_block_based_table_options_t *bb = rocksdb_block_based_options_create();
    rocksdb_block_based_options_set_block_cache(bb, cache);
    rocksdb_block_based_options_set_block_size(bb, 4096);
    rocksdb_block_based_options_set_filter_policy(bb, rocksdb_filterpolicy_create_bloom(10));
    rocksdb_options_t *o = rdb_options(bb, 1);
    rocksdb_writeoptions_t *wo = rocksdb_writeoptions_create();
    rocksdb_writebatch_t *wb = rocksdb_writebatch_create();
    rocksdb_flushoptions_t *fo = rocksdb_flushoptions_create();
    rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
    rocksdb_t *db = NULL;
    pthread_t *tids = calloc(threads, sizeof(pthread_t));
    rdb_thread_t *ts = calloc(threads, sizeof(rdb_thread_t));
    if (!val || !tids || !ts) {
        snprintf(r->note, sizeof(r->note), "out of memory");
        goto out;
    }
    double t0 = rdb_now();
    db = rocksdb_open(o, dir, &err);
    if (err) {
        snprintf(r->note, sizeof(r->note), "open: %s", err);
        goto out;
    }
    r->direct_reads = 1;
    rocksdb_writeoptions_disable_WAL(wo, 1);
    for (uint64_t i = 0; i < n; i++) {
        char kb[8];
        rdb_key(kb, keys[i]);
        rdb_value(val, value_bytes, keys[i]);
        rocksdb_writebatch_put(wb, kb, 8, val, value_bytes);
        if (rocksdb_writebatch_count(wb) >= RDB_LOAD_BATCH || i + 1 == n) {
            rocksdb_write(db, wo, wb, &err);
            if (err) {
                snprintf(r->note, sizeof(r->note), "write: %s", err);
                goto out;
            }
            rocksdb_writebatch_clear(wb);
        }
    }
    rocksdb_flushoptions_set_wait(fo, 1);
    rocksdb_flush(db, fo, &err);
    if (err) {
        snprintf(r->note, sizeof(r->note), "flush: %s", err);
        goto out;
    }
    rocksdb_compact_range(db, NULL, 0, NULL, 0);
    char *live = rocksdb_property_value(db, "rocksdb.live-sst-files-size");
    if (live) {
        r->sst_bytes = strtoull(live, NULL, 10);
        rocksdb_free(live);
    }
    r->load_s = rdb_now() - t0;

    volatile int go = 0, stop = 0;
    unsigned started = 0;
    for (unsigned i = 0; i < threads; i++) {
        ts[i].db = db;
        ts[i].ro = ro;
        ts[i].keys = keys;
        ts[i].n = n;
        ts[i].value_bytes = value_bytes;
        ts[i].seed = 0x1234567ull * (i + 1);
        ts[i].go = &go;
        ts[i].stop = &stop;
        if (pthread_create(&tids[i], NULL, rdb_reader, &ts[i]) != 0)
            break;
        started++;
    }
    /* one second of warm-up, then the window */
    __atomic_store_n(&go, 1, __ATOMIC_RELEASE);
    struct timespec ws = {1, 0};
    nanosleep(&ws, NULL);
    uint64_t g0 = 0;
    for (unsigned i = 0; i < started; i++)
        g0 += __atomic_load_n(&ts[i].gets, __ATOMIC_RELAXED);
    double w0 = rdb_now();
    struct timespec ss = {(time_t)seconds, (long)((seconds - (double)(time_t)seconds) * 1e9)};
    nanosleep(&ss, NULL);
    uint64_t g1 = 0;
    for (unsigned i = 0; i < started; i++)
        g1 += __atomic_load_n(&ts[i].gets, __ATOMIC_RELAXED);
    double w1 = rdb_now();
    __atomic_store_n(&stop, 1, __ATOMIC_RELAXED);
    for (unsigned i = 0; i < started; i++) {
        pthread_join(tids[i], NULL);
        r->bad += ts[i].bad;
    }
    if (started != threads) {
        snprintf(r->note, sizeof(r->note), "started %u of %u threads", started, threads);
        goto out;
    }
    r->gets = g1 - g0;
    r->gets_per_s = (double)r->gets / (w1 - w0);
    r->ok = 1;
    rc = 0;
out:
    if (db)
        rocksdb_close(db);
    rocksdb_free(err);
    rocksdb_readoptions_destroy(ro);
    rocksdb_flushoptions_destroy(fo);
    rocksdb_writebatch_destroy(wb);
    rocksdb_writeoptions_destroy(wo);
    rocksdb_options_destroy(o);
    rocksdb_block_based_options_destroy(bb);
    rocksdb_cache_destroy(cache);
    free(ts);
    free(tids);
    free(val);
    rdb_rmdir(dir);
    return rc;
}
