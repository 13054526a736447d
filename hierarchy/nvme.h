/*
 * hierarchy/nvme.h — the NVMe tier: a log-structured store of fixed-size
 * records (u64 key -> value_bytes of value + a little metadata) in segment
 * files on a file system, read and written with io_uring and O_DIRECT.
 *
 * On disk (docs/tiers.md, byte by byte): a directory holding "store.meta"
 * (geometry and a random store id) and segment files "seg-NNNNNN.dat" of
 * segment_bytes each. A segment's page 0 is its header (magic, segment
 * sequence number, geometry, checksum); pages 1.. are data pages, written
 * once, in order, never rewritten. A data page (page_bytes: 4 KiB, or the
 * next multiple of 4 KiB that holds one record) is a 32-byte header (magic,
 * record count, segment sequence number, page index, XXH3 checksum of the
 * whole page) followed by whole records. A record is a 32-byte header (key,
 * version with a tombstone bit, last write time, frequency, score) and the
 * value. The tier stores embedding and optimizer state together as the
 * value, so one page read serves a lookup and a push's read-modify-write.
 *
 * In DRAM: an index key -> record location (12 bytes per key in 64-byte
 * buckets of 5, at most 92% full: 13.9 to 16 bytes per key in steady
 * state, measured by hier_nvme_get_stats' index_bytes / keys), per-segment
 * live counts, a ring of write pages and a pool of read pages (one region
 * registered with io_uring as a fixed buffer; segment files are registered
 * fixed files).
 *
 * Writes (put, erase) append records to the open page; full pages are
 * sealed (checksummed) and submitted in batches of write_batch_pages.
 * A record is readable at once (from the ring while its page is in
 * memory) but durable only after hier_nvme_sync returns OK: that is the
 * acknowledgement point (all pages written, then fdatasync). Reads look
 * the key up in the index, group keys by page, and keep queue_depth page
 * reads in flight; every page read from disk is checked (magic, segment,
 * page index, checksum) before any record in it is returned.
 *
 * Garbage collection: each segment counts the index entries that point
 * into it (live). When a new segment is needed and dead records pass
 * gc_dead_ratio of the sealed segments, or the disk budget is nearly used,
 * the segments with the fewest live records are compacted: their live
 * records are copied forward to the head, the copies are synced, then the
 * victims are unlinked (and the directory fsync'ed).
 *
 * Recovery (hier_nvme_open of an existing directory): segments are
 * scanned in sequence order and the index is rebuilt from the valid pages
 * (the later record of a key wins; a tombstone deletes). A page that fails
 * its checks is never indexed: near the end of a segment's written pages
 * (within the write ring's reach) it is a torn write of a crash and is
 * dropped (torn_pages); elsewhere it is corruption and reported
 * (corrupt_pages, strata_last_error; open fails with CORRUPT under
 * HIER_NVME_STRICT). New writes always go to a fresh segment.
 *
 * Errors: NO_SPACE (the file system or the disk budget is full: the write
 * that needed space is refused, everything accepted before stays
 * readable), IO (a read or write failed; a failed write makes the store
 * refuse further writes, reads continue), CORRUPT (a page failed its
 * checks: its records are not returned), INVALID_PARAM (bad config, or a
 * store on disk whose geometry differs), VERSION, NOMEM, NOT_FOUND
 * (directory or store absent without HIER_NVME_CREATE), UNSUPPORTED
 * (built without liburing: every call).
 *
 * Threading: one thread owns a store (the tier's writer): every call
 * except hier_nvme_get_stats must come from it, or be serialized by the
 * caller. hier_nvme_get_stats may run on any thread.
 */
#ifndef STRATA_HIERARCHY_NVME_H
#define STRATA_HIERARCHY_NVME_H

#include <stddef.h>
#include <stdint.h>

#include "strata.h"

typedef struct hier_nvme hier_nvme_t;

enum {
    HIER_NVME_CREATE = 1u << 0, /**< create the directory and store if absent */
    HIER_NVME_STRICT = 1u << 1, /**< open fails (CORRUPT) if recovery finds a
                                     corrupt page; default: report and go on */
    HIER_NVME_SINGLE_THREAD = 1u << 2 /**< the thread that opens the store is the
                                     only one that ever calls it: the ring is set
                                     up SINGLE_ISSUER | DEFER_TASKRUN (completion
                                     work runs only when the store waits, as fio
                                     does); another thread's call would fail */
};

/** Per-key outcome of hier_nvme_get. */
enum {
    HIER_NVME_ABSENT = 0,   /**< no record (never written, erased, or expired) */
    HIER_NVME_FOUND = 1,    /**< value (and meta) copied out */
    HIER_NVME_CORRUPT = 2,  /**< its page failed its checks: nothing copied */
    HIER_NVME_IOERR = 3     /**< the page read failed: nothing copied */
};

typedef struct hier_nvme_config {
    const char *dir;             /**< directory of the store (required); borrowed */
    uint32_t value_bytes;        /**< bytes per value, 4..1 MiB, multiple of 4 (required) */
    uint64_t segment_bytes;      /**< 0: 64 MiB, or the store's on reopen; rounded
                                      down to whole pages, at least 4 pages */
    uint32_t queue_depth;        /**< page reads in flight, 1..1024; 0: 64 */
    uint32_t write_batch_pages;  /**< pages per write submission; 0: 16 */
    uint32_t write_ring_pages;   /**< pages staged in memory; 0: 4 * batch */
    uint64_t max_bytes;          /**< disk budget for segment files; 0: none
                                      (until the file system is full) */
    uint32_t max_segments;       /**< segment slots; 0: 4096 (also bounded by
                                      the open-file limit and 32-bit locations) */
    uint64_t expected_keys;      /**< index sized for this many keys; 0: 64K */
    double gc_dead_ratio;        /**< compact when dead records pass this share
                                      of sealed segments; 0: 0.5; >= 1: never */
    uint64_t ttl_ns;             /**< records whose write time is older expire; 0: never */
    uint32_t flags;              /**< HIER_NVME_* */
} hier_nvme_config_t;

/** Metadata carried with each record (the DRAM tier's core_slot_meta_t
 *  plus the store's version). */
typedef struct hier_nvme_meta {
    uint64_t write_ns;  /**< last write time (TTL) */
    uint32_t freq;      /**< access/write count (LFU) */
    float score;        /**< user score */
    uint64_t version;   /**< store-assigned, increasing per write; ignored by put */
} hier_nvme_meta_t;

typedef struct hier_nvme_stats {
    uint64_t keys;             /**< keys in the index */
    uint64_t index_bytes;      /**< bytes of the DRAM index */
    uint64_t index_buckets;    /**< 64-byte buckets */
    uint64_t segments;         /**< segment files in use */
    uint64_t disk_bytes;       /**< segment_bytes * segments */
    uint64_t live_records;     /**< records the index points at */
    uint64_t dead_records;     /**< superseded records and tombstones on disk */
    uint32_t page_bytes;       /**< bytes per page */
    uint32_t records_per_page; /**< records in a full page */
    uint64_t gets;             /**< keys asked by hier_nvme_get */
    uint64_t get_found;        /**< of which found */
    uint64_t page_reads;       /**< pages read from disk by gets */
    uint64_t ring_hits;        /**< keys served from pages still in memory */
    uint64_t puts;             /**< records appended by put (not GC) */
    uint64_t erases;           /**< tombstones appended */
    uint64_t pages_written;    /**< data pages written */
    uint64_t write_submits;    /**< write SQEs submitted (batches) */
    uint64_t syncs;            /**< hier_nvme_sync calls that wrote or synced */
    uint64_t gc_runs;          /**< compaction passes */
    uint64_t gc_segments_freed;/**< segments unlinked by GC */
    uint64_t gc_records_copied;/**< live records copied forward */
    uint64_t expired;          /**< records dropped by TTL */
    uint64_t corrupt_reads;    /**< page reads that failed their checks */
    uint64_t no_space;         /**< writes refused with NO_SPACE */
    uint64_t recovered_records;/**< records indexed by the last open */
    uint64_t torn_pages;       /**< pages dropped at open as torn writes */
    uint64_t corrupt_pages;    /**< pages reported at open as corrupt */
    uint64_t recovery_ns;      /**< time the last open spent rebuilding */
} hier_nvme_stats_t;

/** Open (recover) or create the store in cfg->dir. On success *store_p is
 *  the caller's until hier_nvme_close. Errors: see the file comment. */
strata_status_t hier_nvme_open(const hier_nvme_config_t *cfg, hier_nvme_t **store_p);

/** Sync (best effort: a failure is lost, call hier_nvme_sync first to see
 *  it) and free. NULL is a no-op. */
void hier_nvme_close(hier_nvme_t *store);

/** Append n records: keys[i] gets values[i*value_bytes ..] and metas[i]
 *  (NULL: write_ns 0, freq 0, score 0). Readable at once, durable after
 *  hier_nvme_sync. On error, records [0, *done) are in (done optional,
 *  written always). Errors: NO_SPACE, IO (sticky write failure), NOMEM
 *  (index growth). */
strata_status_t hier_nvme_put(hier_nvme_t *store, const uint64_t *keys, size_t n,
                              const void *values, const hier_nvme_meta_t *metas, size_t *done);

/** Remove keys (a tombstone each, for those present). *erased (optional)
 *  gets how many were present. Errors: as put. */
strata_status_t hier_nvme_erase(hier_nvme_t *store, const uint64_t *keys, size_t n,
                                size_t *erased);

/** Batched read. status[i] (required) gets HIER_NVME_*; for FOUND keys
 *  values[i*value_bytes ..] and metas[i] (optional) are written, other
 *  rows of values are left alone. now_ns is checked against the TTL (0:
 *  ignore). The per-key outputs are written even when an error is
 *  returned: CORRUPT if any key's page failed its checks, IO if a read
 *  failed (strata_last_error names the first segment and page). */
strata_status_t hier_nvme_get(hier_nvme_t *store, const uint64_t *keys, size_t n, void *values,
                              hier_nvme_meta_t *metas, uint8_t *status, uint64_t now_ns);

/** 1 if key is in the index (no I/O, no TTL check), else 0. */
int hier_nvme_contains(hier_nvme_t *store, uint64_t key);

/** Make every accepted write durable: seal the open page, write all
 *  pages, fdatasync the segments written. Errors: IO, NO_SPACE. */
strata_status_t hier_nvme_sync(hier_nvme_t *store);

/** Compact up to max_victims segments now (those with the fewest live
 *  records, if they hold dead ones). *freed (optional) gets the segments
 *  unlinked. Errors: NO_SPACE (no room to copy), IO. */
strata_status_t hier_nvme_gc(hier_nvme_t *store, uint32_t max_victims, uint32_t *freed);

/** Drop every record whose write time is older than the TTL at now_ns
 *  (a sequential scan of all segments). *expired (optional) gets the
 *  count. No-op without a TTL. */
strata_status_t hier_nvme_expire(hier_nvme_t *store, uint64_t now_ns, size_t *expired);

/** Called by hier_nvme_iterate for each live record; nonzero stops. */
typedef int (*hier_nvme_iter_cb_t)(void *arg, uint64_t key, const void *value,
                                   const hier_nvme_meta_t *meta);

/** Visit every live record (sequential scan, segment order). The store
 *  must not be changed from the callback. Errors: CORRUPT (a page failed
 *  its checks; the records before were visited), IO. */
strata_status_t hier_nvme_iterate(hier_nvme_t *store, hier_nvme_iter_cb_t cb, void *arg);

/** Page reads kept in flight by hier_nvme_get, 1..the queue_depth the
 *  store was opened with. */
strata_status_t hier_nvme_set_queue_depth(hier_nvme_t *store, uint32_t qd);

uint32_t hier_nvme_value_bytes(const hier_nvme_t *store);

/** Counters; any thread (each field read atomically). */
void hier_nvme_get_stats(hier_nvme_t *store, hier_nvme_stats_t *stats);

/** Paths of the segment files in use, for benchmarks that read the same
 *  files with another tool: writes up to cap NUL-terminated paths of at
 *  most path_cap bytes into paths (cap * path_cap bytes); returns the
 *  number of segments in use. */
uint32_t hier_nvme_segment_paths(hier_nvme_t *store, char *paths, uint32_t cap, size_t path_cap);

/** For tests: the file and byte offset of the page holding key's record
 *  on disk (after hier_nvme_sync). NOT_FOUND if the key is absent. */
strata_status_t hier_nvme_locate_page(hier_nvme_t *store, uint64_t key, char *path,
                                      size_t path_cap, uint64_t *offset);

#endif
