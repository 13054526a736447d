/*
 * perf/peer_rocksdb.c — RocksDB as a benchmark peer (peer_rocksdb.h).
 *
 * One run: mkdtemp, open with create_if_missing and buffered I/O, load in
 * write batches without a WAL, flush, compact everything, close; reopen
 * with direct reads and a small block cache (cold), read the key stream
 * with batched MultiGet (PinnableSlices, no copies) for the warmup and the
 * timed window; close, DestroyDB, rmdir. Every path out of
 * peer_rocksdb_run goes through the cleanup labels at its end.
 *
 * Threading: the calling thread only (plus RocksDB's own).
 */
#define _GNU_SOURCE
#include "peer_rocksdb.h"

#include <errno.h>
#include <ftw.h>
#include <rocksdb/c.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define RDB_LOAD_BATCH 4096 /**< puts per write batch */

static int rdb_rm_one(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    remove(p);
    return 0;
}

static double rdb_now(clockid_t clk)
{
    struct timespec ts;
    clock_gettime(clk, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static uint64_t rdb_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

__attribute__((format(printf, 2, 3))) static void rdb_note(peer_rocksdb_result_t *r,
                                                           const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->note, sizeof(r->note), fmt, ap);
    va_end(ap);
}

/* Key id -> its 8 big-endian bytes (so SST order is numeric order). */
static void rdb_key(char dst[8], uint64_t k)
{
    for (int i = 0; i < 8; i++)
        dst[i] = (char)(k >> (56 - 8 * i));
}

/* The value of key k: k's 8 bytes little-endian, then a filler. */
static void rdb_value(char *dst, uint32_t len, uint64_t k)
{
    for (int i = 0; i < 8; i++)
        dst[i] = (char)(k >> (8 * i));
    for (uint32_t i = 8; i < len; i++)
        dst[i] = (char)('a' + (char)((k + i) % 26));
}

static int rdb_value_ok(const char *v, size_t len, uint32_t want, uint64_t k)
{
    if (!v || len != want)
        return 0;
    uint64_t got = 0;
    for (int i = 0; i < 8; i++)
        got |= (uint64_t)(unsigned char)v[i] << (8 * i);
    return got == k;
}

/* Options of both opens; the caller destroys them and the cache. */
static rocksdb_options_t *rdb_options(rocksdb_cache_t *cache,
                                      rocksdb_block_based_table_options_t *bb, int direct)
{
    rocksdb_options_t *o = rocksdb_options_create();
    rocksdb_options_set_create_if_missing(o, 1);
    rocksdb_options_set_compression(o, rocksdb_no_compression);
    rocksdb_options_set_max_open_files(o, -1);
    rocksdb_options_set_max_background_jobs(o, 2);
    rocksdb_options_set_use_direct_reads(o, (unsigned char)direct);
    rocksdb_block_based_options_set_block_cache(bb, cache);
    rocksdb_block_based_options_set_filter_policy(bb, rocksdb_filterpolicy_create_bloom(10));
    rocksdb_options_set_block_based_table_factory(o, bb);
    return o;
}

static rocksdb_t *rdb_open(const rocksdb_options_t *o, const char *path,
                           rocksdb_column_family_handle_t **cf, char **err)
{
    const char *names[1] = {"default"};
    const rocksdb_options_t *cfo[1] = {o};
    return rocksdb_open_column_families(o, path, 1, names, cfo, cf, err);
}

/* Load keys 0..n-1, flush and compact. Returns 0 or -1 with a note. */
static int rdb_load(rocksdb_t *db, const peer_rocksdb_config_t *c, peer_rocksdb_result_t *r)
{
    int rc = -1;
    char *err = NULL;
    char *val = malloc(c->value_bytes);
    rocksdb_writeoptions_t *wo = rocksdb_writeoptions_create();
    rocksdb_writebatch_t *wb = rocksdb_writebatch_create();
    rocksdb_flushoptions_t *fo = rocksdb_flushoptions_create();
    if (!val) {
        rdb_note(r, "out of memory");
        goto out;
    }
    rocksdb_writeoptions_disable_WAL(wo, 1);
    for (uint64_t k = 0; k < c->nkeys_loaded; k++) {
        char key[8];
        rdb_key(key, k);
        rdb_value(val, c->value_bytes, k);
        rocksdb_writebatch_put(wb, key, sizeof(key), val, c->value_bytes);
        if (rocksdb_writebatch_count(wb) >= RDB_LOAD_BATCH || k + 1 == c->nkeys_loaded) {
            rocksdb_write(db, wo, wb, &err);
            if (err) {
                rdb_note(r, "write: %s", err);
                goto out;
            }
            rocksdb_writebatch_clear(wb);
        }
        if (c->stop && *c->stop) {
            rdb_note(r, "stopped");
            goto out;
        }
    }
    rocksdb_flushoptions_set_wait(fo, 1);
    rocksdb_flush(db, fo, &err);
    if (err) {
        rdb_note(r, "flush: %s", err);
        goto out;
    }
    rocksdb_compact_range(db, NULL, 0, NULL, 0);
    char *live = rocksdb_property_value(db, "rocksdb.live-sst-files-size");
    if (live) {
        r->db_bytes = strtoull(live, NULL, 10);
        rocksdb_free(live);
    }
    rc = 0;
out:
    rocksdb_free(err);
    rocksdb_flushoptions_destroy(fo);
    rocksdb_writebatch_destroy(wb);
    rocksdb_writeoptions_destroy(wo);
    free(val);
    return rc;
}

int peer_rocksdb_run(const peer_rocksdb_config_t *cin, peer_rocksdb_result_t *r, hdr_hist_t *lat)
{
    memset(r, 0, sizeof(*r));
    r->keys_per_s = r->p50_us = r->p99_us = -1;
    if (!cin || cin->nkeys_loaded == 0 || cin->value_bytes < 8 ||
        (cin->keys && cin->nkeys_stream == 0)) {
        rdb_note(r, "bad config (nkeys_loaded, value_bytes >= 8, keys/nkeys_stream)");
        return -1;
    }
    peer_rocksdb_config_t c = *cin;
    if (!c.batch)
        c.batch = 16;
    if (!(c.seconds > 0))
        c.seconds = 5;
    if (!c.block_cache_bytes)
        c.block_cache_bytes = 8u << 20;

    int rc = -1;
    char dir[512], *err = NULL;
    const char *parent = c.dir ? c.dir : getenv("TMPDIR");
    if (!parent || !*parent)
        parent = "/tmp";
    snprintf(dir, sizeof(dir), "%s/strata-perf-rocksdb-XXXXXX", parent);
    if (!mkdtemp(dir)) {
        rdb_note(r, "mkdtemp %s: %s", dir, strerror(errno));
        return -1;
    }
    char path[560];
    snprintf(path, sizeof(path), "%s/db", dir);

    hdr_hist_t *h = malloc(sizeof(*h));
    char(*kbuf)[8] = malloc((size_t)c.batch * 8);
    const char **kptr = malloc((size_t)c.batch * sizeof(char *));
    size_t *klen = malloc((size_t)c.batch * sizeof(size_t));
    uint64_t *kid = malloc((size_t)c.batch * sizeof(uint64_t));
    rocksdb_pinnableslice_t **vals = calloc(c.batch, sizeof(*vals));
    char **errs = calloc(c.batch, sizeof(char *));
    rocksdb_cache_t *cache = rocksdb_cache_create_lru(c.block_cache_bytes);
    rocksdb_block_based_table_options_t *bb = rocksdb_block_based_options_create();
    rocksdb_options_t *o = NULL;
    rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
    rocksdb_column_family_handle_t *cf = NULL;
    rocksdb_t *db = NULL;
    if (!h || !kbuf || !kptr || !klen || !kid || !vals || !errs) {
        rdb_note(r, "out of memory");
        goto out_free;
    }
    hdr_init(h);

    /* load with buffered I/O */
    o = rdb_options(cache, bb, 0);
    double t_load = rdb_now(CLOCK_MONOTONIC);
    db = rdb_open(o, path, &cf, &err);
    if (err) {
        rdb_note(r, "open %s: %s", path, err);
        goto out_db;
    }
    if (rdb_load(db, &c, r))
        goto out_db;
    r->load_s = rdb_now(CLOCK_MONOTONIC) - t_load;
    rocksdb_column_family_handle_destroy(cf);
    cf = NULL;
    rocksdb_close(db);
    db = NULL;
    rocksdb_options_destroy(o);

    /* reopen for reading: direct reads, a cold block cache */
    rocksdb_cache_destroy(cache);
    rocksdb_block_based_options_destroy(bb);
    cache = rocksdb_cache_create_lru(c.block_cache_bytes);
    bb = rocksdb_block_based_options_create();
    r->direct_reads = !c.buffered_reads;
    o = rdb_options(cache, bb, r->direct_reads);
    db = rdb_open(o, path, &cf, &err);
    if (err && r->direct_reads) {
        rdb_note(r, "direct reads refused (%s): buffered reads", err);
        rocksdb_free(err);
        err = NULL;
        rocksdb_options_destroy(o);
        r->direct_reads = 0;
        o = rdb_options(cache, bb, 0);
        db = rdb_open(o, path, &cf, &err);
    }
    if (err) {
        rdb_note(r, "reopen %s: %s", path, err);
        goto out_db;
    }

    size_t cursor = 0;
    const double t0 = rdb_now(CLOCK_MONOTONIC);
    const double t_win = t0 + c.warmup_s, t_end = t_win + c.seconds;
    double cpu0 = 0, win_start = 0, now = t0;
    int timed = c.warmup_s <= 0;
    if (timed) {
        win_start = t0;
        cpu0 = rdb_now(CLOCK_PROCESS_CPUTIME_ID);
    }
    while (now < t_end) {
        if (c.stop && *c.stop) {
            rdb_note(r, "stopped");
            goto out_db;
        }
        for (uint32_t i = 0; i < c.batch; i++) {
            uint64_t k;
            if (c.keys) {
                k = c.keys[cursor];
                if (++cursor == c.nkeys_stream)
                    cursor = 0;
            } else {
                k = cursor;
                if (++cursor == c.nkeys_loaded)
                    cursor = 0;
            }
            kid[i] = k;
            rdb_key(kbuf[i], k);
            kptr[i] = kbuf[i];
            klen[i] = 8;
        }
        uint64_t a = rdb_now_ns();
        rocksdb_batched_multi_get_cf(db, ro, cf, c.batch, kptr, klen, vals, errs, false);
        uint64_t b = rdb_now_ns();
        for (uint32_t i = 0; i < c.batch; i++) {
            size_t vl = 0;
            const char *v = vals[i] ? rocksdb_pinnableslice_value(vals[i], &vl) : NULL;
            if (errs[i] || !rdb_value_ok(v, vl, c.value_bytes, kid[i]))
                r->errors++;
            if (errs[i]) {
                rocksdb_free(errs[i]);
                errs[i] = NULL;
            }
            if (vals[i]) {
                rocksdb_pinnableslice_destroy(vals[i]);
                vals[i] = NULL;
            }
        }
        now = rdb_now(CLOCK_MONOTONIC);
        if (!timed && now >= t_win) {
            timed = 1; /* this batch ended the warmup; the next one is timed */
            win_start = now;
            cpu0 = rdb_now(CLOCK_PROCESS_CPUTIME_ID);
            continue;
        }
        if (timed) {
            hdr_record(h, b - a);
            r->batches++;
            r->keys += c.batch;
        }
    }
    r->cpu_s = rdb_now(CLOCK_PROCESS_CPUTIME_ID) - cpu0;
    r->seconds = now - win_start;
    r->keys_per_s = r->seconds > 0 ? (double)r->keys / r->seconds : 0;
    r->p50_us = (double)hdr_percentile(h, 50) / 1e3;
    r->p99_us = (double)hdr_percentile(h, 99) / 1e3;
    if (lat)
        hdr_merge(lat, h);
    if (r->errors)
        rdb_note(r, "%llu keys missing or with a wrong value", (unsigned long long)r->errors);
    else if (!r->note[0])
        rdb_note(r, "%s reads, %zu MiB block cache, %.1f MiB of SST",
                 r->direct_reads ? "direct" : "buffered", c.block_cache_bytes >> 20,
                 (double)r->db_bytes / (1 << 20));
    r->ok = r->errors == 0 && r->batches > 0;
    rc = r->ok ? 0 : -1;

out_db:
    rocksdb_free(err);
    err = NULL;
    if (cf)
        rocksdb_column_family_handle_destroy(cf);
    if (db)
        rocksdb_close(db);
    if (o) {
        rocksdb_destroy_db(o, path, &err);
        rocksdb_free(err);
        rocksdb_options_destroy(o);
    }
out_free:
    rocksdb_readoptions_destroy(ro);
    rocksdb_block_based_options_destroy(bb);
    rocksdb_cache_destroy(cache);
    free(errs);
    free(vals);
    free(kid);
    free(klen);
    free(kptr);
    free(kbuf);
    free(h);
    /* DestroyDB leaves the directory (and LOG.old files) behind */
    nftw(dir, rdb_rm_one, 8, FTW_DEPTH | FTW_PHYS);
    return rc;
}
