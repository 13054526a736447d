/*
 * hierarchy/nvme.c — the NVMe tier's log-structured store on io_uring
 * (format and policies: hierarchy/nvme.h and docs/tiers.md).
 *
 * Invariants:
 *  - A data page is written exactly once, at a page offset of a segment
 *    file created for it (O_EXCL, fallocated, header fdatasync'ed); pages
 *    are never rewritten and a freed segment's file is unlinked (and the
 *    directory fsync'ed) before its slot is reused, so a page on disk is
 *    either unwritten (zeros), torn by a crash, or exactly what was sealed.
 *  - Every index entry points at the newest record of its key: in a page
 *    still in the write ring (read from memory) or on disk (read and
 *    checked before use). seg->live counts the entries pointing into seg.
 *  - Log order (segment sequence, then page, then slot) is version order
 *    for every key: GC copies only live records and only drops a
 *    tombstone when no older segment exists or the key is live later, so
 *    replaying the log in order rebuilds the index.
 *  - A segment is unlinked only after every page written before (its live
 *    records' copies and every record that superseded its dead ones) is
 *    durable (hier_nvme_sync), so an acknowledged version is never lost.
 *  - Ring pages: [w_tail, w_submit) submitted (in flight or done),
 *    [w_submit, w_fill) sealed, w_fill the page being filled when
 *    `filling`; w_fill - w_tail <= wring.
 *
 * Threading: one owner thread (see nvme.h); counters are relaxed atomics
 * so hier_nvme_get_stats may read them from anywhere.
 */
#define _GNU_SOURCE
#include "hierarchy/nvme.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <liburing.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "core/alloc.h"
#include "core/hash.h"
#include "core/status.h"

/* --- format constants (docs/tiers.md) ------------------------------------ */

#define NV_VERSION 1u
#define NV_BLOCK 4096u                 /* pages are whole multiples of this */
#define NV_PAGE_HDR 48u                /* data page header bytes */
#define NV_REC_HDR 32u                 /* record header bytes */
#define NV_PAGE_MAGIC 0x50564e53u      /* "SNVP" */
#define NV_SEG_MAGIC "STRNVSEG"        /* first 8 bytes of a segment header */
#define NV_STORE_MAGIC "STRNVSTO"      /* first 8 bytes of store.meta */
#define NV_SEG_HDR_SUM_OFF 64u         /* segment header checksum offset */
#define NV_STORE_META_BYTES 48u
#define NV_TOMBSTONE (1ull << 63)      /* version bit: the key was erased */
#define NV_META_NAME "store.meta"

/* --- tuning ------------------------------------------------------------- */

#define NV_BUCKET_KEYS 5               /* index entries per 64-byte bucket */
#define NV_LOAD_MAX 0.92               /* index grows past this load */
#define NV_GROW 1.25                   /* index growth factor */
#define NV_GET_CHUNK 4096u             /* keys grouped by page at a time */
#define NV_SUBMIT_GROUP 2u             /* page reads per io_uring_enter: io_uring
                                          plugs larger batches, and the device
                                          then idles until the whole batch is
                                          queued (measured: QD32 62K -> 79K IOPS) */
#define NV_SCAN_INFLIGHT 4u            /* sequential scan reads in flight */
#define NV_SCAN_CHUNK_PAGES 64u        /* pages per sequential scan read */
#define NV_GC_VICTIMS 2u               /* segments compacted per automatic pass */
#define NV_DEFAULT_SEGMENT (64ull << 20)
#define NV_DEFAULT_QD 64u
#define NV_DEFAULT_BATCH 16u
#define NV_DEFAULT_MAX_SEGS 4096u
#define NV_NONE UINT32_MAX

/* user_data tags of io_uring requests (top 4 bits) */
#define NV_TAG_WRITE 1ull  /* | count << 48 | first ring stream number */
#define NV_TAG_READ 2ull   /* | read slot */
#define NV_TAG_SCAN 3ull   /* | scan chunk */

#define ST_ADD(f, v) __atomic_fetch_add(&(f), (v), __ATOMIC_RELAXED)
#define ST_SET(f, v) __atomic_store_n(&(f), (v), __ATOMIC_RELAXED)
#define ST_GET(f) __atomic_load_n(&(f), __ATOMIC_RELAXED)

#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the NVMe store's on-disk structs assume a little-endian host"
#endif

/** Data page header (little-endian, at page offset 0). */
typedef struct nv_page_hdr {
    uint32_t magic;       /**< NV_PAGE_MAGIC */
    uint16_t nrec;        /**< records in the page, 0..records per page (0: a
                               filler written by recovery over a torn page) */
    uint16_t reserved0;   /**< 0 */
    uint64_t seg_seq;     /**< sequence number of the segment it was written to */
    uint32_t page;        /**< page index in the segment (>= 1) */
    uint32_t reserved1;   /**< 0 */
    uint64_t page_seq;    /**< store-wide page number: first_page_seq + page - 1 */
    uint64_t durable_seq; /**< every page numbered <= this was fdatasync'ed
                               before this page was sealed */
    uint64_t checksum;    /**< see nv_page_sum */
} nv_page_hdr_t;
_Static_assert(sizeof(nv_page_hdr_t) == NV_PAGE_HDR, "page header is 48 bytes");

/** Record header; the value follows. */
typedef struct nv_rec_hdr {
    uint64_t key;       /**< the key */
    uint64_t version;   /**< store-wide write number; bit 63: tombstone */
    uint64_t write_ns;  /**< last write time (TTL) */
    uint32_t freq;      /**< access count (LFU) */
    float score;        /**< user score */
} nv_rec_hdr_t;
_Static_assert(sizeof(nv_rec_hdr_t) == NV_REC_HDR, "record header is 32 bytes");

/** Segment header (page 0 of a segment file; the rest of the page is 0). */
typedef struct nv_seg_hdr {
    char magic[8];           /**< NV_SEG_MAGIC */
    uint32_t version;        /**< NV_VERSION */
    uint32_t page_bytes;     /**< bytes per page */
    uint64_t seq;            /**< segment sequence number (log order) */
    uint32_t slot;           /**< file number NNNNNN */
    uint32_t pages;          /**< pages per segment, header included */
    uint32_t value_bytes;    /**< bytes per value */
    uint32_t rec_bytes;      /**< bytes per record */
    uint64_t store_id;       /**< the store's random id (store.meta) */
    uint64_t created_ns;     /**< CLOCK_REALTIME at creation */
    uint64_t first_page_seq; /**< page_seq of its page 1 */
    uint64_t checksum;       /**< XXH3-64 of bytes [0, 64) */
} nv_seg_hdr_t;
_Static_assert(sizeof(nv_seg_hdr_t) == 72, "segment header is 72 bytes");
_Static_assert(__builtin_offsetof(nv_seg_hdr_t, checksum) == NV_SEG_HDR_SUM_OFF, "sum at 64");

/* --- in-memory structures ---------------------------------------------- */

/** Index bucket: one cache line, 5 keys. */
typedef struct nv_bucket {
    uint64_t key[NV_BUCKET_KEYS];  /**< keys of the used entries */
    uint32_t loc[NV_BUCKET_KEYS];  /**< record number + 1; 0: entry empty */
    uint32_t overflow;             /**< entries whose probe from an earlier
                                        (or this) home passed this bucket */
} nv_bucket_t;
_Static_assert(sizeof(nv_bucket_t) == 64, "index bucket is one cache line");

typedef struct nv_index {
    core_region_t region;  /**< the buckets' memory */
    nv_bucket_t *b;        /**< region.base */
    uint64_t nbuckets;     /**< any count >= 1 (fastrange homes) */
    uint64_t count;        /**< keys */
    uint64_t limit;        /**< grow when count would pass this */
} nv_index_t;

enum { NV_SEG_FREE = 0, NV_SEG_HEAD, NV_SEG_SEALED };

typedef struct nv_seg {
    int fd;               /**< -1 when the slot is free */
    uint8_t state;        /**< NV_SEG_* */
    uint8_t bad;          /**< holds a corrupt page: never compacted */
    uint8_t dirty;        /**< written since its last fdatasync */
    uint32_t next_page;   /**< head: next page to fill; sealed: pages to scan */
    uint32_t live;        /**< index entries pointing here */
    uint32_t records;     /**< records written (live, dead, tombstones) */
    uint32_t tombstones;  /**< tombstones written */
    uint64_t seq;         /**< sequence number (log order) */
    uint64_t first_page_seq; /**< page_seq of page 1; 0: unknown (header lost) */
    uint64_t stream_base; /**< ring stream number of page 1; UINT64_MAX: none */
} nv_seg_t;

enum { NV_WP_FREE = 0, NV_WP_FILLING, NV_WP_SEALED, NV_WP_INFLIGHT, NV_WP_DONE, NV_WP_FAILED };

typedef struct nv_wpage {
    uint64_t page_seq; /**< store-wide page number */
    uint32_t seg;      /**< segment the page belongs to */
    uint32_t page;     /**< page index in it */
    uint8_t state;     /**< NV_WP_* */
} nv_wpage_t;

typedef struct nv_rslot {
    uint32_t group;  /**< the get group being read */
    int32_t res;     /**< completion result */
} nv_rslot_t;

typedef struct nv_group {
    uint64_t page_id;  /**< seg << 32 | page */
    uint32_t first;    /**< first key (chunk position) waiting on it */
    uint32_t pad;
} nv_group_t;

enum { NV_CHUNK_IDLE = 0, NV_CHUNK_INFLIGHT, NV_CHUNK_DONE };

typedef struct nv_chunk {
    uint32_t first_page;  /**< first page read */
    uint32_t npages;      /**< pages read */
    int32_t res;          /**< completion result */
    uint8_t state;        /**< NV_CHUNK_* */
} nv_chunk_t;

struct hier_nvme {
    hier_nvme_config_t cfg;   /**< copy; cfg.dir points at dirpath */
    char dirpath[1024];       /**< the store's directory */
    int dirfd;                /**< open O_DIRECTORY */
    uint64_t store_id;        /**< random, from store.meta */
    int direct;               /**< files opened with O_DIRECT */

    /* geometry */
    uint32_t value_bytes;     /**< bytes per value */
    uint32_t rec_bytes;       /**< header + value, 8-aligned */
    uint32_t page_bytes;      /**< multiple of NV_BLOCK */
    uint32_t rpp;             /**< records per page */
    uint32_t ppseg;           /**< pages per segment, header page included */
    uint64_t segment_bytes;   /**< ppseg * page_bytes */
    uint32_t max_segs;        /**< segment slots */
    uint32_t budget_segs;     /**< from max_bytes; 0: none */

    /* io_uring */
    struct io_uring ring;     /**< the store's ring */
    int ring_ok;              /**< ring initialized */
    int fixed_files;          /**< segment fds registered (index = slot) */
    int fixed_bufs;           /**< region registered as buffer 0 */
    core_region_t region;     /**< ring pages, read pages, scan pages, header page */
    uint8_t *wbuf;            /**< wring pages */
    uint8_t *rbuf;            /**< nrslots pages */
    uint8_t *sbuf;            /**< NV_SCAN_INFLIGHT * scan_chunk pages */
    uint8_t *hbuf;            /**< one page for segment headers */
    uint32_t scan_chunk;      /**< pages per scan read */

    /* segments */
    nv_seg_t *segs;           /**< max_segs slots */
    uint32_t nsegs;           /**< slots in use */
    uint32_t head;            /**< segment being filled, NV_NONE */
    uint64_t next_seg_seq;    /**< next segment sequence number */
    uint64_t next_version;    /**< next record version */
    uint64_t next_page_seq;   /**< page_seq of the next page opened */
    uint64_t durable_seq;     /**< pages numbered <= this are fdatasync'ed */
    uint32_t *dirty_list;     /**< segments with dirty set */
    uint32_t ndirty;

    /* write ring */
    uint32_t wring;           /**< pages in the ring */
    uint32_t wbatch;          /**< sealed pages that trigger a submission */
    nv_wpage_t *wp;           /**< wring descriptors */
    uint64_t w_tail, w_submit, w_fill; /**< stream numbers (see invariants) */
    int filling;              /**< page w_fill is open */
    uint32_t cur_nrec;        /**< records in the open page */
    strata_status_t write_err;/**< sticky write failure */
    char write_err_msg[1400]; /**< its sentence */

    /* reads */
    uint32_t qd_max, qd;      /**< largest and current reads kept in flight */
    uint32_t nrslots;         /**< 2 * qd_max read slots: a burst of completions
                                   is replaced before it is checked */
    nv_rslot_t *rs;           /**< nrslots slots */
    uint32_t *rfree;          /**< free slot stack */
    uint32_t nrfree;
    uint32_t *rdone;          /**< completed slots not yet processed */
    uint32_t nrdone;
    uint32_t *g_next;         /**< per chunk key: next key of its group */
    uint32_t *g_slot;         /**< per chunk key: record slot in its page */
    uint32_t *g_hash;         /**< page -> group + 1 */
    nv_group_t *groups;       /**< pages to read */

    /* sequential scans */
    nv_chunk_t chunks[NV_SCAN_INFLIGHT];

    nv_index_t ix;            /**< key -> record */
    int in_gc;                /**< compaction running (no nested GC) */

    /* counters (relaxed atomics) */
    uint64_t n_gets, n_get_found, n_page_reads, n_ring_hits, n_puts, n_erases;
    uint64_t n_pages_written, n_write_submits, n_syncs, n_gc_runs, n_gc_freed;
    uint64_t n_gc_copied, n_expired, n_corrupt_reads, n_no_space;
    uint64_t n_recovered, n_torn, n_corrupt_pages, recovery_ns;
    uint64_t n_dead;          /**< dead records + tombstones in segments in use */
};

/* ------------------------------------------------------------------------ */
/* small helpers                                                            */
/* ------------------------------------------------------------------------ */

static uint64_t nv_now_ns(clockid_t c)
{
    struct timespec ts;
    clock_gettime(c, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t nv_pow2(uint64_t v)
{
    uint64_t p = 1;
    while (p < v)
        p <<= 1;
    return p;
}

static void nv_seg_name(uint32_t slot, char *buf, size_t cap)
{
    snprintf(buf, cap, "seg-%06u.dat", slot);
}

/** Record number of (seg, page, slot), stored + 1 in the index. */
static inline uint32_t nv_loc(const hier_nvme_t *s, uint32_t seg, uint32_t page, uint32_t slot)
{
    return (uint32_t)(((uint64_t)seg * s->ppseg + page) * s->rpp + slot);
}

static inline void nv_loc_split(const hier_nvme_t *s, uint32_t loc, uint32_t *seg, uint32_t *page,
                                uint32_t *slot)
{
    uint32_t pg = loc / s->rpp;
    *slot = loc % s->rpp;
    *seg = pg / s->ppseg;
    *page = pg % s->ppseg;
}

static inline uint32_t nv_loc_seg(const hier_nvme_t *s, uint32_t loc)
{
    return loc / s->rpp / s->ppseg;
}

static uint64_t nv_page_sum(const uint8_t *page, uint32_t page_bytes)
{
    uint64_t seed = XXH3_64bits(page, 40);
    return XXH3_64bits_withSeed(page + NV_PAGE_HDR, page_bytes - NV_PAGE_HDR, seed);
}

/** 0 if page is a valid data page of segment seq at index pidx; else a
 *  static reason. */
static const char *nv_page_check(const hier_nvme_t *s, const uint8_t *page, uint64_t seq,
                                 uint32_t pidx)
{
    const nv_page_hdr_t *h = (const nv_page_hdr_t *)page;
    if (h->magic != NV_PAGE_MAGIC)
        return "bad magic";
    if (h->seg_seq != seq)
        return "written by another segment";
    if (h->page != pidx)
        return "page index mismatch";
    if (h->nrec > s->rpp)
        return "bad record count";
    if (h->checksum != nv_page_sum(page, s->page_bytes))
        return "checksum mismatch";
    return NULL;
}

static int nv_all_zero(const uint8_t *p, size_t n)
{
    const uint64_t *q = (const uint64_t *)p;
    for (size_t i = 0; i < n / 8; i++)
        if (q[i])
            return 0;
    return 1;
}

static strata_status_t nv_sticky(hier_nvme_t *s)
{
    return core_fail(s->write_err, "%s", s->write_err_msg);
}

static void nv_set_write_err(hier_nvme_t *s, strata_status_t st, const char *msg)
{
    if (s->write_err)
        return;
    s->write_err = st;
    snprintf(s->write_err_msg, sizeof(s->write_err_msg),
             "NVMe store %s refuses writes after a failed write: %s", s->dirpath, msg);
}

/* ------------------------------------------------------------------------ */
/* index                                                                    */
/* ------------------------------------------------------------------------ */

static inline uint64_t ix_hash(uint64_t key)
{
    return core_mix64(key ^ 0x3c6ef372fe94f82bULL);
}

static inline uint64_t ix_home(const nv_index_t *ix, uint64_t key)
{
    return (uint64_t)(((unsigned __int128)ix_hash(key) * ix->nbuckets) >> 64);
}

static strata_status_t ix_alloc(nv_index_t *ix, uint64_t nbuckets)
{
    if (nbuckets < 1)
        nbuckets = 1;
    strata_status_t st = core_region_alloc(&core_region_ops_default,
                                           nbuckets * sizeof(nv_bucket_t), 0, &ix->region);
    if (st != STRATA_OK)
        return core_fail(st, "NVMe index of %" PRIu64 " buckets: out of memory", nbuckets);
    ix->b = ix->region.base;
    ix->nbuckets = nbuckets;
    ix->count = 0;
    ix->limit = (uint64_t)((double)nbuckets * NV_BUCKET_KEYS * NV_LOAD_MAX);
    if (ix->limit < 1)
        ix->limit = 1;
    return STRATA_OK;
}

static void ix_free(nv_index_t *ix)
{
    if (ix->b)
        core_region_free(&core_region_ops_default, &ix->region);
    memset(ix, 0, sizeof(*ix));
}

static uint32_t *ix_find(nv_index_t *ix, uint64_t key)
{
    uint64_t b = ix_home(ix, key);
    for (;;) {
        nv_bucket_t *bk = &ix->b[b];
        for (unsigned i = 0; i < NV_BUCKET_KEYS; i++)
            if (bk->loc[i] && bk->key[i] == key)
                return &bk->loc[i];
        if (!bk->overflow)
            return NULL;
        if (++b == ix->nbuckets)
            b = 0;
    }
}

/** Insert a key known to be absent; the caller made room. */
static void ix_insert_absent(nv_index_t *ix, uint64_t key, uint32_t loc1)
{
    uint64_t b = ix_home(ix, key);
    for (;;) {
        nv_bucket_t *bk = &ix->b[b];
        for (unsigned i = 0; i < NV_BUCKET_KEYS; i++) {
            if (!bk->loc[i]) {
                bk->key[i] = key;
                bk->loc[i] = loc1;
                ix->count++;
                return;
            }
        }
        bk->overflow++;
        if (++b == ix->nbuckets)
            b = 0;
    }
}

/** Remove key; returns its loc + 1, or 0 if absent. */
static uint32_t ix_delete(nv_index_t *ix, uint64_t key)
{
    uint64_t home = ix_home(ix, key), b = home;
    for (;;) {
        nv_bucket_t *bk = &ix->b[b];
        for (unsigned i = 0; i < NV_BUCKET_KEYS; i++) {
            if (bk->loc[i] && bk->key[i] == key) {
                uint32_t old = bk->loc[i];
                bk->loc[i] = 0;
                bk->key[i] = 0;
                for (uint64_t c = home; c != b; c = (c + 1 == ix->nbuckets) ? 0 : c + 1)
                    ix->b[c].overflow--;
                ix->count--;
                return old;
            }
        }
        if (!bk->overflow)
            return 0;
        if (++b == ix->nbuckets)
            b = 0;
    }
}

/** Room for one more key: grow (rebuild) when the load limit is reached. */
static strata_status_t ix_reserve(nv_index_t *ix)
{
    if (ix->count + 1 <= ix->limit)
        return STRATA_OK;
    nv_index_t nx;
    memset(&nx, 0, sizeof(nx));
    uint64_t nb = (uint64_t)((double)ix->nbuckets * NV_GROW) + 1;
    strata_status_t st = ix_alloc(&nx, nb);
    if (st != STRATA_OK)
        return st;
    for (uint64_t b = 0; b < ix->nbuckets; b++)
        for (unsigned i = 0; i < NV_BUCKET_KEYS; i++)
            if (ix->b[b].loc[i])
                ix_insert_absent(&nx, ix->b[b].key[i], ix->b[b].loc[i]);
    ix_free(ix);
    *ix = nx;
    return STRATA_OK;
}

/* ------------------------------------------------------------------------ */
/* io_uring plumbing                                                        */
/* ------------------------------------------------------------------------ */

static struct io_uring_sqe *nv_sqe(hier_nvme_t *s)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&s->ring);
    while (!sqe) {
        io_uring_submit(&s->ring);
        sqe = io_uring_get_sqe(&s->ring);
    }
    return sqe;
}

/** Prepare a read or write of len bytes at off of segment seg from/to buf
 *  (inside the registered region). */
static void nv_prep(hier_nvme_t *s, struct io_uring_sqe *sqe, int write, uint32_t seg, void *buf,
                    uint32_t len, uint64_t off, uint64_t user_data)
{
    int fd = s->fixed_files ? (int)seg : s->segs[seg].fd;
    if (s->fixed_bufs) {
        if (write)
            io_uring_prep_write_fixed(sqe, fd, buf, len, off, 0);
        else
            io_uring_prep_read_fixed(sqe, fd, buf, len, off, 0);
    } else {
        if (write)
            io_uring_prep_write(sqe, fd, buf, len, off);
        else
            io_uring_prep_read(sqe, fd, buf, len, off);
    }
    if (s->fixed_files)
        sqe->flags |= IOSQE_FIXED_FILE;
    io_uring_sqe_set_data64(sqe, user_data);
}

static void nv_write_done(hier_nvme_t *s, uint64_t start, uint32_t count, int res);

static void nv_on_cqe(hier_nvme_t *s, uint64_t ud, int res)
{
    switch (ud >> 60) {
    case NV_TAG_WRITE:
        nv_write_done(s, ud & ((1ull << 48) - 1), (uint32_t)((ud >> 48) & 0xfff), res);
        break;
    case NV_TAG_READ: {
        uint32_t slot = (uint32_t)ud;
        s->rs[slot].res = res;
        s->rdone[s->nrdone++] = slot;
        break;
    }
    case NV_TAG_SCAN: {
        uint32_t c = (uint32_t)ud;
        s->chunks[c].res = res;
        s->chunks[c].state = NV_CHUNK_DONE;
        break;
    }
    default:
        break;
    }
}

/** Submit what is queued and handle completions, waiting for at least
 *  wait_nr of them. */
static strata_status_t nv_reap(hier_nvme_t *s, unsigned wait_nr)
{
    for (;;) {
        int r = wait_nr ? io_uring_submit_and_wait(&s->ring, wait_nr) : io_uring_submit(&s->ring);
        if (r >= 0 || r == -ETIME)
            break;
        if (r == -EINTR || r == -EAGAIN || r == -EBUSY) {
            if (r != -EINTR && io_uring_cq_ready(&s->ring))
                break; /* completions to reap first */
            continue;
        }
        return core_fail_errno(-r, "io_uring_submit_and_wait on %s", s->dirpath);
    }
    struct io_uring_cqe *cqe;
    unsigned head, n = 0;
    io_uring_for_each_cqe(&s->ring, head, cqe)
    {
        nv_on_cqe(s, cqe->user_data, cqe->res);
        n++;
    }
    io_uring_cq_advance(&s->ring, n);
    return STRATA_OK;
}

/* ------------------------------------------------------------------------ */
/* segments                                                                 */
/* ------------------------------------------------------------------------ */

static strata_status_t nv_fsync_dir(hier_nvme_t *s)
{
    if (fsync(s->dirfd) != 0)
        return core_fail_errno(errno, "fsync of directory %s", s->dirpath);
    return STRATA_OK;
}

static int nv_open_file(hier_nvme_t *s, const char *name, int flags)
{
    int fd = openat(s->dirfd, name, flags | O_CLOEXEC | (s->direct ? O_DIRECT : 0), 0644);
    if (fd < 0 && errno == EINVAL && s->direct) { /* file system without O_DIRECT */
        s->direct = 0;
        fd = openat(s->dirfd, name, flags | O_CLOEXEC, 0644);
    }
    return fd;
}

static strata_status_t nv_register_fd(hier_nvme_t *s, uint32_t slot, int fd)
{
    if (!s->fixed_files)
        return STRATA_OK;
    int r = io_uring_register_files_update(&s->ring, slot, &fd, 1);
    if (r < 0)
        return core_fail_errno(-r, "io_uring_register_files_update (segment %u)", slot);
    return STRATA_OK;
}

static void nv_mark_dirty(hier_nvme_t *s, uint32_t seg)
{
    if (!s->segs[seg].dirty) {
        s->segs[seg].dirty = 1;
        s->dirty_list[s->ndirty++] = seg;
    }
}

/** Fill hbuf with the header of a new segment. */
static void nv_seg_hdr_fill(hier_nvme_t *s, uint32_t slot, uint64_t seq)
{
    memset(s->hbuf, 0, s->page_bytes);
    nv_seg_hdr_t *h = (nv_seg_hdr_t *)s->hbuf;
    memcpy(h->magic, NV_SEG_MAGIC, 8);
    h->version = NV_VERSION;
    h->page_bytes = s->page_bytes;
    h->seq = seq;
    h->slot = slot;
    h->pages = s->ppseg;
    h->value_bytes = s->value_bytes;
    h->rec_bytes = s->rec_bytes;
    h->store_id = s->store_id;
    h->created_ns = nv_now_ns(CLOCK_REALTIME);
    h->first_page_seq = s->next_page_seq;
    h->checksum = XXH3_64bits(s->hbuf, NV_SEG_HDR_SUM_OFF);
}

/** Create a segment file in a free slot: O_EXCL, fallocated to its full
 *  size (so running out of space shows here, not in a later write), its
 *  header written and fdatasync'ed, the directory fsync'ed. */
static strata_status_t nv_seg_create(hier_nvme_t *s, uint32_t *slot_out)
{
    if (s->budget_segs && s->nsegs + (s->in_gc ? 0u : 1u) >= s->budget_segs) {
        ST_ADD(s->n_no_space, 1);
        return core_fail(STRATA_ERR_NO_SPACE,
                         "NVMe store %s: disk budget max_bytes = %" PRIu64
                         " is used (%u segments of %" PRIu64 " bytes%s)",
                         s->dirpath, s->cfg.max_bytes, s->nsegs, s->segment_bytes,
                         s->in_gc ? "" : ", one kept for compaction");
    }
    uint32_t slot = NV_NONE;
    for (uint32_t i = 0; i < s->max_segs; i++)
        if (s->segs[i].state == NV_SEG_FREE) {
            slot = i;
            break;
        }
    if (slot == NV_NONE) {
        ST_ADD(s->n_no_space, 1);
        return core_fail(STRATA_ERR_NO_SPACE, "NVMe store %s: all %u segment slots are in use",
                         s->dirpath, s->max_segs);
    }
    char name[32];
    nv_seg_name(slot, name, sizeof(name));
    int fd = nv_open_file(s, name, O_RDWR | O_CREAT | O_EXCL);
    if (fd < 0 && errno == EEXIST) { /* a leftover nobody indexes: replace it */
        unlinkat(s->dirfd, name, 0);
        fd = nv_open_file(s, name, O_RDWR | O_CREAT | O_EXCL);
    }
    if (fd < 0)
        return core_fail_errno(errno, "creating segment %s/%s", s->dirpath, name);
    strata_status_t st;
    int r = fallocate(fd, 0, 0, (off_t)s->segment_bytes);
    if (r != 0 && (errno == EOPNOTSUPP || errno == ENOSYS))
        r = ftruncate(fd, (off_t)s->segment_bytes); /* no preallocation here */
    if (r != 0) {
        int e = errno;
        st = core_fail_errno(e, "allocating %" PRIu64 " bytes for segment %s/%s",
                             s->segment_bytes, s->dirpath, name);
        if (st == STRATA_ERR_NO_SPACE)
            ST_ADD(s->n_no_space, 1);
        goto err_unlink;
    }
    uint64_t seq = s->next_seg_seq;
    nv_seg_hdr_fill(s, slot, seq);
    ssize_t w = pwrite(fd, s->hbuf, s->page_bytes, 0);
    if (w != (ssize_t)s->page_bytes) {
        st = w < 0 ? core_fail_errno(errno, "writing the header of %s/%s", s->dirpath, name)
                   : core_fail(STRATA_ERR_IO, "short write of the header of %s/%s", s->dirpath,
                               name);
        goto err_unlink;
    }
    if (fdatasync(fd) != 0) {
        st = core_fail_errno(errno, "fdatasync of %s/%s", s->dirpath, name);
        goto err_unlink;
    }
    st = nv_fsync_dir(s);
    if (st != STRATA_OK)
        goto err_unlink;
    st = nv_register_fd(s, slot, fd);
    if (st != STRATA_OK)
        goto err_unlink;
    s->next_seg_seq++;
    nv_seg_t *g = &s->segs[slot];
    memset(g, 0, sizeof(*g));
    g->fd = fd;
    g->state = NV_SEG_HEAD;
    g->next_page = 1;
    g->seq = seq;
    g->first_page_seq = s->next_page_seq;
    g->stream_base = UINT64_MAX;
    s->nsegs++;
    *slot_out = slot;
    return STRATA_OK;

err_unlink:
    close(fd);
    unlinkat(s->dirfd, name, 0);
    return st;
}

/** Forget a segment and unlink its file (the caller fsyncs the directory
 *  afterwards). Its pages must all be done and no index entry may point
 *  into it. */
static strata_status_t nv_seg_unlink(hier_nvme_t *s, uint32_t slot)
{
    nv_seg_t *g = &s->segs[slot];
    char name[32];
    nv_seg_name(slot, name, sizeof(name));
    nv_register_fd(s, slot, -1);
    close(g->fd);
    strata_status_t st = STRATA_OK;
    if (unlinkat(s->dirfd, name, 0) != 0)
        st = core_fail_errno(errno, "unlinking segment %s/%s", s->dirpath, name);
    uint64_t dead = (uint64_t)g->records - g->live;
    ST_SET(s->n_dead, s->n_dead >= dead ? s->n_dead - dead : 0);
    memset(g, 0, sizeof(*g));
    g->fd = -1;
    g->state = NV_SEG_FREE;
    s->nsegs--;
    return st;
}

/* ------------------------------------------------------------------------ */
/* write ring                                                               */
/* ------------------------------------------------------------------------ */

static void nv_write_done(hier_nvme_t *s, uint64_t start, uint32_t count, int res)
{
    if (res != (int)(count * s->page_bytes)) {
        char msg[200];
        nv_wpage_t *w = &s->wp[start % s->wring];
        if (res < 0)
            snprintf(msg, sizeof(msg), "write of %u pages at segment %u page %u: %s", count,
                     w->seg, w->page, strerror(-res));
        else
            snprintf(msg, sizeof(msg), "short write of %u pages at segment %u page %u (%d bytes)",
                     count, w->seg, w->page, res);
        nv_set_write_err(s, res < 0 ? core_status_from_errno(-res) : STRATA_ERR_IO, msg);
        for (uint32_t i = 0; i < count; i++)
            s->wp[(start + i) % s->wring].state = NV_WP_FAILED;
        return;
    }
    for (uint32_t i = 0; i < count; i++)
        s->wp[(start + i) % s->wring].state = NV_WP_DONE;
    ST_ADD(s->n_pages_written, count);
    while (s->w_tail < s->w_submit && s->wp[s->w_tail % s->wring].state == NV_WP_DONE) {
        s->wp[s->w_tail % s->wring].state = NV_WP_FREE;
        s->w_tail++;
    }
}

/** Submit every sealed page: one write per run of pages adjacent both in
 *  the ring and in one segment. */
static void nv_submit_writes(hier_nvme_t *s)
{
    uint64_t i = s->w_submit;
    while (i < s->w_fill) {
        uint64_t start = i;
        uint32_t pos = (uint32_t)(start % s->wring);
        nv_wpage_t *a = &s->wp[pos];
        uint32_t n = 1;
        while (start + n < s->w_fill && (start + n) % s->wring != 0 && n < 0xfff) {
            nv_wpage_t *b = &s->wp[(start + n) % s->wring];
            if (b->seg != a->seg || b->page != a->page + n)
                break;
            n++;
        }
        struct io_uring_sqe *sqe = nv_sqe(s);
        nv_prep(s, sqe, 1, a->seg, s->wbuf + (size_t)pos * s->page_bytes, n * s->page_bytes,
                (uint64_t)a->page * s->page_bytes, NV_TAG_WRITE << 60 | (uint64_t)n << 48 | start);
        for (uint32_t j = 0; j < n; j++)
            s->wp[(start + j) % s->wring].state = NV_WP_INFLIGHT;
        ST_ADD(s->n_write_submits, 1);
        i += n;
    }
    s->w_submit = s->w_fill;
    io_uring_submit(&s->ring);
}

static void nv_page_seal(hier_nvme_t *s)
{
    uint32_t pos = (uint32_t)(s->w_fill % s->wring);
    nv_wpage_t *w = &s->wp[pos];
    uint8_t *p = s->wbuf + (size_t)pos * s->page_bytes;
    nv_page_hdr_t *h = (nv_page_hdr_t *)p;
    h->magic = NV_PAGE_MAGIC;
    h->nrec = (uint16_t)s->cur_nrec;
    h->reserved0 = 0;
    h->seg_seq = s->segs[w->seg].seq;
    h->page = w->page;
    h->reserved1 = 0;
    h->page_seq = w->page_seq;
    h->durable_seq = s->durable_seq;
    h->checksum = nv_page_sum(p, s->page_bytes);
    w->state = NV_WP_SEALED;
    nv_mark_dirty(s, w->seg);
    s->filling = 0;
    s->cur_nrec = 0;
    s->w_fill++;
    if (s->w_fill - s->w_submit >= s->wbatch)
        nv_submit_writes(s);
}

static strata_status_t nv_gc_run(hier_nvme_t *s, uint32_t max_victims, int only_free,
                                 uint32_t *freed);

static int nv_should_gc(const hier_nvme_t *s)
{
    if (s->cfg.gc_dead_ratio >= 1.0)
        return 0;
    if (s->budget_segs && s->nsegs + 2 >= s->budget_segs)
        return 1;
    uint64_t recs = 0, live = 0;
    for (uint32_t i = 0; i < s->max_segs; i++) {
        const nv_seg_t *g = &s->segs[i];
        if (g->state != NV_SEG_SEALED)
            continue;
        recs += g->records;
        live += g->live;
    }
    return recs && (double)(recs - live) > s->cfg.gc_dead_ratio * (double)recs;
}

/** Make a fresh head segment: compact first when garbage calls for it;
 *  when the disk is full, free segments without live records. */
static strata_status_t nv_head_switch(hier_nvme_t *s)
{
    if (!s->in_gc && nv_should_gc(s))
        nv_gc_run(s, NV_GC_VICTIMS, 0, NULL); /* failure here is not the caller's */
    if (s->write_err)
        return nv_sticky(s);
    if (s->head != NV_NONE && s->segs[s->head].next_page < s->ppseg)
        return STRATA_OK; /* compaction opened one */
    uint32_t slot;
    strata_status_t st = nv_seg_create(s, &slot);
    if (st == STRATA_ERR_NO_SPACE && !s->in_gc) {
        char why[256];
        snprintf(why, sizeof(why), "%s", strata_last_error());
        uint32_t freed = 0;
        nv_gc_run(s, s->max_segs, 1, &freed);
        if (s->head != NV_NONE && s->segs[s->head].next_page < s->ppseg)
            return STRATA_OK;
        st = freed ? nv_seg_create(s, &slot) : core_fail(STRATA_ERR_NO_SPACE, "%s", why);
    }
    if (st != STRATA_OK)
        return st;
    if (s->head != NV_NONE)
        s->segs[s->head].state = NV_SEG_SEALED;
    s->head = slot;
    return STRATA_OK;
}

/** Open the next ring page (waiting for ring space, switching segments). */
static strata_status_t nv_page_open(hier_nvme_t *s)
{
    if (s->write_err)
        return nv_sticky(s);
    while (s->w_fill - s->w_tail >= s->wring) {
        if (s->w_submit < s->w_fill)
            nv_submit_writes(s);
        strata_status_t st = nv_reap(s, 1);
        if (st != STRATA_OK)
            return st;
        if (s->write_err)
            return nv_sticky(s);
    }
    if (s->head == NV_NONE || s->segs[s->head].next_page >= s->ppseg) {
        strata_status_t st = nv_head_switch(s);
        if (st != STRATA_OK)
            return st;
        if (s->filling)
            return STRATA_OK; /* compaction left a page open */
        if (s->w_fill - s->w_tail >= s->wring)
            return nv_page_open(s); /* compaction filled the ring */
    }
    nv_seg_t *g = &s->segs[s->head];
    if (g->next_page == 1)
        g->stream_base = s->w_fill;
    uint32_t pos = (uint32_t)(s->w_fill % s->wring);
    nv_wpage_t *w = &s->wp[pos];
    w->seg = s->head;
    w->page = g->next_page++;
    w->page_seq = s->next_page_seq++;
    w->state = NV_WP_FILLING;
    memset(s->wbuf + (size_t)pos * s->page_bytes, 0, s->page_bytes);
    s->filling = 1;
    s->cur_nrec = 0;
    return STRATA_OK;
}

/** Append one record (header + value, or zeros when value is NULL);
 *  *loc_out gets its record number. */
static strata_status_t nv_append(hier_nvme_t *s, const nv_rec_hdr_t *hdr, const void *value,
                                 uint32_t *loc_out)
{
    if (!s->filling) {
        strata_status_t st = nv_page_open(s);
        if (st != STRATA_OK)
            return st;
    }
    uint32_t pos = (uint32_t)(s->w_fill % s->wring);
    nv_wpage_t *w = &s->wp[pos];
    uint8_t *p = s->wbuf + (size_t)pos * s->page_bytes + NV_PAGE_HDR +
                 (size_t)s->cur_nrec * s->rec_bytes;
    memcpy(p, hdr, NV_REC_HDR);
    if (value)
        memcpy(p + NV_REC_HDR, value, s->value_bytes);
    *loc_out = nv_loc(s, w->seg, w->page, s->cur_nrec);
    s->segs[w->seg].records++;
    if (++s->cur_nrec == s->rpp)
        nv_page_seal(s);
    return STRATA_OK;
}

/** A record still in the ring (memory), or NULL if its page is on disk. */
static const uint8_t *nv_ring_record(const hier_nvme_t *s, uint32_t seg, uint32_t page,
                                     uint32_t slot)
{
    const nv_seg_t *g = &s->segs[seg];
    if (g->stream_base == UINT64_MAX || page == 0)
        return NULL;
    uint64_t st = g->stream_base + page - 1;
    if (st < s->w_tail || st > s->w_fill || (st == s->w_fill && !s->filling))
        return NULL;
    uint32_t pos = (uint32_t)(st % s->wring);
    const nv_wpage_t *w = &s->wp[pos];
    if (w->seg != seg || w->page != page || w->state == NV_WP_FREE)
        return NULL;
    return s->wbuf + (size_t)pos * s->page_bytes + NV_PAGE_HDR + (size_t)slot * s->rec_bytes;
}

/** Write out every sealed page and wait for them (no fdatasync). */
static strata_status_t nv_flush_sealed(hier_nvme_t *s)
{
    if (s->w_submit < s->w_fill)
        nv_submit_writes(s);
    while (s->w_tail < s->w_fill && !s->write_err) {
        strata_status_t st = nv_reap(s, 1);
        if (st != STRATA_OK)
            return st;
    }
    return s->write_err ? nv_sticky(s) : STRATA_OK;
}

strata_status_t hier_nvme_sync(hier_nvme_t *s)
{
    if (s->write_err)
        return nv_sticky(s);
    if (s->filling && s->cur_nrec)
        nv_page_seal(s);
    strata_status_t st = nv_flush_sealed(s);
    if (st != STRATA_OK)
        return st;
    if (s->ndirty)
        ST_ADD(s->n_syncs, 1);
    while (s->ndirty) {
        uint32_t seg = s->dirty_list[s->ndirty - 1];
        if (fdatasync(s->segs[seg].fd) != 0) {
            char msg[200];
            snprintf(msg, sizeof(msg), "fdatasync of segment %u: %s", seg, strerror(errno));
            nv_set_write_err(s, core_status_from_errno(errno), msg);
            return nv_sticky(s);
        }
        s->segs[seg].dirty = 0;
        s->ndirty--;
    }
    /* every page opened so far is sealed, written and synced; later pages
     * carry this point, which is how recovery tells corruption from a torn
     * write (docs/tiers.md) */
    s->durable_seq = s->next_page_seq - 1;
    return STRATA_OK;
}

/* ------------------------------------------------------------------------ */
/* put / erase                                                              */
/* ------------------------------------------------------------------------ */

/** Point key at new_loc in the index, keeping live counts. */
static void nv_index_set(hier_nvme_t *s, uint64_t key, uint32_t new_loc)
{
    uint32_t *lp = ix_find(&s->ix, key);
    if (lp) {
        s->segs[nv_loc_seg(s, *lp - 1)].live--;
        ST_ADD(s->n_dead, 1);
        *lp = new_loc + 1;
    } else {
        ix_insert_absent(&s->ix, key, new_loc + 1);
    }
    s->segs[nv_loc_seg(s, new_loc)].live++;
}

strata_status_t hier_nvme_put(hier_nvme_t *s, const uint64_t *keys, size_t n, const void *values,
                              const hier_nvme_meta_t *metas, size_t *done)
{
    strata_status_t st = STRATA_OK;
    size_t i;
    for (i = 0; i < n; i++) {
        /* Room in the index first: growth can fail, and must not leave a
         * record on disk that the index does not know. */
        if (!ix_find(&s->ix, keys[i])) {
            st = ix_reserve(&s->ix);
            if (st != STRATA_OK)
                break;
        }
        nv_rec_hdr_t h;
        h.key = keys[i];
        h.version = s->next_version++;
        h.write_ns = metas ? metas[i].write_ns : 0;
        h.freq = metas ? metas[i].freq : 0;
        h.score = metas ? metas[i].score : 0.0f;
        uint32_t loc;
        st = nv_append(s, &h, (const uint8_t *)values + i * (size_t)s->value_bytes, &loc);
        if (st != STRATA_OK)
            break;
        nv_index_set(s, keys[i], loc);
    }
    ST_ADD(s->n_puts, i);
    if (done)
        *done = i;
    return st;
}

strata_status_t hier_nvme_erase(hier_nvme_t *s, const uint64_t *keys, size_t n, size_t *erased)
{
    strata_status_t st = STRATA_OK;
    size_t count = 0;
    for (size_t i = 0; i < n; i++) {
        if (!ix_find(&s->ix, keys[i]))
            continue;
        nv_rec_hdr_t h;
        memset(&h, 0, sizeof(h));
        h.key = keys[i];
        h.version = (s->next_version++) | NV_TOMBSTONE;
        uint32_t loc;
        st = nv_append(s, &h, NULL, &loc);
        if (st != STRATA_OK)
            break;
        uint32_t old = ix_delete(&s->ix, keys[i]); /* after the append: GC may have moved it */
        if (old)
            s->segs[nv_loc_seg(s, old - 1)].live--;
        s->segs[nv_loc_seg(s, loc)].tombstones++;
        ST_ADD(s->n_dead, 2); /* the old record and the tombstone */
        count++;
    }
    ST_ADD(s->n_erases, count);
    if (erased)
        *erased = count;
    return st;
}

int hier_nvme_contains(hier_nvme_t *s, uint64_t key)
{
    return ix_find(&s->ix, key) != NULL;
}

/* ------------------------------------------------------------------------ */
/* get                                                                      */
/* ------------------------------------------------------------------------ */

typedef struct nv_get_ctx {
    const uint64_t *keys;     /**< the chunk's keys */
    uint8_t *values;          /**< the chunk's value rows */
    hier_nvme_meta_t *metas;  /**< the chunk's metas, or NULL */
    uint8_t *status;          /**< the chunk's status bytes */
    uint64_t now_ns;          /**< TTL clock */
    strata_status_t err;      /**< first error */
} nv_get_ctx_t;

static int nv_expired(const hier_nvme_t *s, uint64_t write_ns, uint64_t now_ns)
{
    return s->cfg.ttl_ns && now_ns && now_ns > write_ns && now_ns - write_ns > s->cfg.ttl_ns;
}

/** Drop an expired key from the index (no tombstone: every older version
 *  of it is older still, so expired too). */
static void nv_expire_key(hier_nvme_t *s, uint64_t key)
{
    uint32_t old = ix_delete(&s->ix, key);
    if (old) {
        s->segs[nv_loc_seg(s, old - 1)].live--;
        ST_ADD(s->n_dead, 1);
        ST_ADD(s->n_expired, 1);
    }
}

/** Hand record rec to chunk key i. */
static void nv_deliver(hier_nvme_t *s, nv_get_ctx_t *c, uint32_t i, const uint8_t *rec)
{
    nv_rec_hdr_t h;
    memcpy(&h, rec, sizeof(h));
    if (h.key != c->keys[i] || (h.version & NV_TOMBSTONE)) {
        c->status[i] = HIER_NVME_CORRUPT;
        if (c->err == STRATA_OK)
            c->err = core_fail(STRATA_ERR_CORRUPT,
                               "NVMe store %s: the index entry of key %" PRIu64
                               " points at a record of key %" PRIu64 "%s",
                               s->dirpath, c->keys[i], h.key,
                               (h.version & NV_TOMBSTONE) ? " (tombstone)" : "");
        return;
    }
    if (nv_expired(s, h.write_ns, c->now_ns)) {
        nv_expire_key(s, h.key);
        c->status[i] = HIER_NVME_ABSENT;
        return;
    }
    memcpy(c->values + (size_t)i * s->value_bytes, rec + NV_REC_HDR, s->value_bytes);
    if (c->metas) {
        c->metas[i].write_ns = h.write_ns;
        c->metas[i].freq = h.freq;
        c->metas[i].score = h.score;
        c->metas[i].version = h.version;
    }
    c->status[i] = HIER_NVME_FOUND;
}

static void nv_group_done(hier_nvme_t *s, nv_get_ctx_t *c, uint32_t slot)
{
    nv_rslot_t *r = &s->rs[slot];
    nv_group_t *g = &s->groups[r->group];
    uint32_t seg = (uint32_t)(g->page_id >> 32), page = (uint32_t)g->page_id;
    const uint8_t *p = s->rbuf + (size_t)slot * s->page_bytes;
    const char *why = NULL;
    uint8_t fail = HIER_NVME_CORRUPT;
    if (r->res != (int32_t)s->page_bytes) {
        fail = HIER_NVME_IOERR;
        why = r->res < 0 ? strerror(-r->res) : "short read";
    } else {
        why = nv_page_check(s, p, s->segs[seg].seq, page);
    }
    if (why) {
        if (fail == HIER_NVME_CORRUPT)
            ST_ADD(s->n_corrupt_reads, 1);
        if (c->err == STRATA_OK) {
            char name[32];
            nv_seg_name(seg, name, sizeof(name));
            c->err = core_fail(fail == HIER_NVME_CORRUPT ? STRATA_ERR_CORRUPT : STRATA_ERR_IO,
                               "NVMe store %s: page %u of %s (offset %" PRIu64 "): %s; its rows "
                               "are not served",
                               s->dirpath, page, name, (uint64_t)page * s->page_bytes, why);
        }
        for (uint32_t i = g->first; i != NV_NONE; i = s->g_next[i])
            c->status[i] = fail;
    } else {
        uint32_t nrec = ((const nv_page_hdr_t *)p)->nrec;
        for (uint32_t i = g->first; i != NV_NONE; i = s->g_next[i]) {
            if (s->g_slot[i] >= nrec) {
                c->status[i] = HIER_NVME_CORRUPT;
                if (c->err == STRATA_OK)
                    c->err = core_fail(STRATA_ERR_CORRUPT,
                                       "NVMe store %s: key %" PRIu64 " indexed past the end of "
                                       "its page",
                                       s->dirpath, c->keys[i]);
                continue;
            }
            nv_deliver(s, c, i, p + NV_PAGE_HDR + (size_t)s->g_slot[i] * s->rec_bytes);
        }
    }
    s->rfree[s->nrfree++] = slot;
}

/** Issue reads of groups [*next, ngroups) while fewer than qd are in
 *  flight and a read slot is free, submitting every NV_SUBMIT_GROUP;
 *  returns how many were prepared. */
static uint32_t nv_get_issue(hier_nvme_t *s, uint32_t *next, uint32_t ngroups, uint32_t *inflight)
{
    uint32_t issued = 0;
    while (*inflight < s->qd && *next < ngroups && s->nrfree) {
        uint32_t slot = s->rfree[--s->nrfree];
        nv_group_t *g = &s->groups[*next];
        s->rs[slot].group = *next;
        nv_prep(s, nv_sqe(s), 0, (uint32_t)(g->page_id >> 32),
                s->rbuf + (size_t)slot * s->page_bytes, s->page_bytes,
                (uint64_t)(uint32_t)g->page_id * s->page_bytes, NV_TAG_READ << 60 | slot);
        (*next)++;
        (*inflight)++;
        if (++issued % NV_SUBMIT_GROUP == 0)
            io_uring_submit(&s->ring);
    }
    return issued;
}

/** One chunk of at most NV_GET_CHUNK keys. */
static strata_status_t nv_get_chunk(hier_nvme_t *s, nv_get_ctx_t *c, uint32_t m)
{
    uint32_t hsize = (uint32_t)nv_pow2(2ull * m);
    memset(s->g_hash, 0, hsize * sizeof(uint32_t));
    uint32_t ngroups = 0;
    uint64_t ring_hits = 0;
    for (uint32_t i = 0; i < m; i++) {
        uint32_t *lp = ix_find(&s->ix, c->keys[i]);
        if (!lp) {
            c->status[i] = HIER_NVME_ABSENT;
            continue;
        }
        uint32_t seg, page, slot;
        nv_loc_split(s, *lp - 1, &seg, &page, &slot);
        const uint8_t *rec = nv_ring_record(s, seg, page, slot);
        if (rec) {
            ring_hits++;
            nv_deliver(s, c, i, rec);
            continue;
        }
        uint64_t pid = (uint64_t)seg << 32 | page;
        uint32_t h = (uint32_t)(core_mix64(pid) & (hsize - 1));
        while (s->g_hash[h] && s->groups[s->g_hash[h] - 1].page_id != pid)
            h = (h + 1) & (hsize - 1);
        if (!s->g_hash[h]) {
            s->groups[ngroups].page_id = pid;
            s->groups[ngroups].first = NV_NONE;
            s->g_hash[h] = ++ngroups;
        }
        nv_group_t *g = &s->groups[s->g_hash[h] - 1];
        s->g_slot[i] = slot;
        s->g_next[i] = g->first;
        g->first = i;
    }
    ST_ADD(s->n_ring_hits, ring_hits);
    ST_ADD(s->n_page_reads, ngroups);
    uint32_t next = 0, inflight = 0;
    strata_status_t st = STRATA_OK;
    while (next < ngroups || inflight) {
        nv_get_issue(s, &next, ngroups, &inflight);
        st = nv_reap(s, 1);
        if (st != STRATA_OK) {
            /* the ring is broken: nothing more completes */
            for (uint32_t i = 0; i < m; i++)
                if (c->status[i] > HIER_NVME_CORRUPT)
                    c->status[i] = HIER_NVME_IOERR;
            return st;
        }
        /* The device completes in bursts: replace the burst first (from
         * the spare slots), so it works while this thread checks pages. */
        inflight -= s->nrdone;
        if (nv_get_issue(s, &next, ngroups, &inflight))
            io_uring_submit(&s->ring);
        while (s->nrdone)
            nv_group_done(s, c, s->rdone[--s->nrdone]);
    }
    return STRATA_OK;
}

strata_status_t hier_nvme_get(hier_nvme_t *s, const uint64_t *keys, size_t n, void *values,
                              hier_nvme_meta_t *metas, uint8_t *status, uint64_t now_ns)
{
    nv_get_ctx_t c;
    c.err = STRATA_OK;
    c.now_ns = now_ns;
    for (size_t base = 0; base < n; base += NV_GET_CHUNK) {
        uint32_t m = (uint32_t)((n - base) < NV_GET_CHUNK ? (n - base) : NV_GET_CHUNK);
        c.keys = keys + base;
        c.values = (uint8_t *)values + base * s->value_bytes;
        c.metas = metas ? metas + base : NULL;
        c.status = status + base;
        /* mark "pending" so a broken ring reports every unread key */
        memset(c.status, 0xff, m);
        strata_status_t st = nv_get_chunk(s, &c, m);
        if (st != STRATA_OK)
            return st;
    }
    uint64_t found = 0;
    for (size_t i = 0; i < n; i++)
        found += status[i] == HIER_NVME_FOUND;
    ST_ADD(s->n_gets, n);
    ST_ADD(s->n_get_found, found);
    return c.err; /* its sentence was set where it was found */
}

/* ------------------------------------------------------------------------ */
/* sequential scans: recovery, compaction, expiry, iteration                */
/* ------------------------------------------------------------------------ */

/** Called per page in order; returns STRATA_OK to go on. */
typedef strata_status_t (*nv_page_cb_t)(hier_nvme_t *s, void *arg, uint32_t seg, uint32_t page,
                                        const uint8_t *p);

/** Read pages [first, end) of seg in order, NV_SCAN_INFLIGHT reads ahead;
 *  pages past the end of the file read as zeros. */
static strata_status_t nv_scan(hier_nvme_t *s, uint32_t seg, uint32_t first, uint32_t end,
                               nv_page_cb_t cb, void *arg)
{
    if (end <= first)
        return STRATA_OK;
    const uint32_t cp = s->scan_chunk;
    const uint32_t nchunks = (end - first + cp - 1) / cp;
    uint32_t issued = 0, done = 0;
    strata_status_t st = STRATA_OK;
    while (done < nchunks) {
        while (issued < nchunks && issued - done < NV_SCAN_INFLIGHT) {
            uint32_t c = issued % NV_SCAN_INFLIGHT;
            uint32_t pg = first + issued * cp;
            uint32_t np = end - pg < cp ? end - pg : cp;
            s->chunks[c].first_page = pg;
            s->chunks[c].npages = np;
            s->chunks[c].state = NV_CHUNK_INFLIGHT;
            nv_prep(s, nv_sqe(s), 0, seg, s->sbuf + (size_t)c * cp * s->page_bytes,
                    np * s->page_bytes, (uint64_t)pg * s->page_bytes, NV_TAG_SCAN << 60 | c);
            issued++;
        }
        uint32_t c = done % NV_SCAN_INFLIGHT;
        while (s->chunks[c].state != NV_CHUNK_DONE) {
            st = nv_reap(s, 1);
            if (st != STRATA_OK)
                return st; /* ring broken: nothing completes, buffers unused */
        }
        nv_chunk_t *k = &s->chunks[c];
        uint8_t *buf = s->sbuf + (size_t)c * cp * s->page_bytes;
        if (k->res < 0) {
            char name[32];
            nv_seg_name(seg, name, sizeof(name));
            st = core_fail_errno(-k->res, "reading pages %u..%u of %s/%s", k->first_page,
                                 k->first_page + k->npages - 1, s->dirpath, name);
            goto drain;
        }
        if ((uint32_t)k->res < k->npages * s->page_bytes) /* short file: the rest is unwritten */
            memset(buf + k->res, 0, (size_t)k->npages * s->page_bytes - (size_t)k->res);
        for (uint32_t j = 0; j < k->npages; j++) {
            st = cb(s, arg, seg, k->first_page + j, buf + (size_t)j * s->page_bytes);
            if (st != STRATA_OK)
                goto drain;
        }
        k->state = NV_CHUNK_IDLE;
        done++;
    }
    return STRATA_OK;
drain:
    for (uint32_t d = done; d < issued; d++) {
        nv_chunk_t *k = &s->chunks[d % NV_SCAN_INFLIGHT];
        while (k->state == NV_CHUNK_INFLIGHT)
            if (nv_reap(s, 1) != STRATA_OK)
                break;
        k->state = NV_CHUNK_IDLE;
    }
    return st;
}

/** Segment slots in use, sorted by sequence number (caller frees). */
static uint32_t *nv_segs_in_order(hier_nvme_t *s, uint32_t *n_out)
{
    uint32_t *order = core_malloc((size_t)(s->nsegs ? s->nsegs : 1) * sizeof(uint32_t));
    if (!order)
        return NULL;
    uint32_t n = 0;
    for (uint32_t i = 0; i < s->max_segs; i++)
        if (s->segs[i].state != NV_SEG_FREE)
            order[n++] = i;
    for (uint32_t i = 1; i < n; i++) { /* insertion sort: segments arrive nearly sorted */
        uint32_t v = order[i], j = i;
        while (j > 0 && s->segs[order[j - 1]].seq > s->segs[v].seq) {
            order[j] = order[j - 1];
            j--;
        }
        order[j] = v;
    }
    *n_out = n;
    return order;
}

/* --- compaction ---------------------------------------------------------- */

typedef struct nv_gc_ctx {
    uint32_t victim;       /**< segment being compacted */
    int keep_tombstones;   /**< an older segment exists */
    uint64_t copied;       /**< records copied forward */
    int corrupt;           /**< a page failed its checks */
} nv_gc_ctx_t;

static strata_status_t nv_gc_page(hier_nvme_t *s, void *arg, uint32_t seg, uint32_t page,
                                  const uint8_t *p)
{
    nv_gc_ctx_t *g = arg;
    const char *why = nv_page_check(s, p, s->segs[seg].seq, page);
    if (why) {
        /* Its records may be what some index entries point at: keep the
         * segment (and report); reads of those rows report CORRUPT. */
        char name[32];
        nv_seg_name(seg, name, sizeof(name));
        if (!g->corrupt)
            core_fail(STRATA_ERR_CORRUPT, "NVMe store %s: compaction found page %u of %s %s",
                      s->dirpath, page, name, why);
        g->corrupt = 1;
        ST_ADD(s->n_corrupt_reads, 1);
        return STRATA_OK;
    }
    uint32_t nrec = ((const nv_page_hdr_t *)p)->nrec;
    for (uint32_t r = 0; r < nrec; r++) {
        const uint8_t *rec = p + NV_PAGE_HDR + (size_t)r * s->rec_bytes;
        nv_rec_hdr_t h;
        memcpy(&h, rec, sizeof(h));
        uint32_t here = nv_loc(s, seg, page, r);
        uint32_t *lp = ix_find(&s->ix, h.key);
        if (h.version & NV_TOMBSTONE) {
            /* Needed only while an older segment may hold the key and no
             * later record of the key exists. */
            if (lp || !g->keep_tombstones)
                continue;
            uint32_t loc;
            strata_status_t st = nv_append(s, &h, rec + NV_REC_HDR, &loc);
            if (st != STRATA_OK)
                return st;
            s->segs[nv_loc_seg(s, loc)].tombstones++;
            s->segs[g->victim].tombstones--;
            g->copied++;
            continue;
        }
        if (!lp || *lp - 1 != here)
            continue; /* superseded or erased */
        uint32_t loc;
        strata_status_t st = nv_append(s, &h, rec + NV_REC_HDR, &loc);
        if (st != STRATA_OK)
            return st;
        lp = ix_find(&s->ix, h.key); /* the append may have moved nothing, but be exact */
        *lp = loc + 1;
        s->segs[g->victim].live--;
        s->segs[nv_loc_seg(s, loc)].live++;
        g->copied++;
    }
    return STRATA_OK;
}

/** Compact up to max_victims sealed segments, fewest live records first
 *  (only_free: just those without live records or needed tombstones,
 *  which need no space). */
static strata_status_t nv_gc_run(hier_nvme_t *s, uint32_t max_victims, int only_free,
                                 uint32_t *freed_out)
{
    if (s->in_gc)
        return STRATA_OK;
    if (s->write_err)
        return nv_sticky(s);
    s->in_gc = 1;
    ST_ADD(s->n_gc_runs, 1);
    strata_status_t st = STRATA_OK;
    uint32_t *victims = core_malloc((size_t)(max_victims ? max_victims : 1) * sizeof(uint32_t));
    uint32_t nv = 0, freed = 0;
    if (!victims) {
        st = core_fail(STRATA_ERR_NOMEM, "compaction: out of memory");
        goto out;
    }
    uint64_t min_seq = UINT64_MAX;
    for (uint32_t i = 0; i < s->max_segs; i++)
        if (s->segs[i].state != NV_SEG_FREE && s->segs[i].seq < min_seq)
            min_seq = s->segs[i].seq;
    uint64_t seg_cap = (uint64_t)(s->ppseg - 1) * s->rpp;
    /* pick victims: repeated minimum, skipping chosen ones */
    while (nv < max_victims) {
        uint32_t best = NV_NONE;
        for (uint32_t i = 0; i < s->max_segs; i++) {
            const nv_seg_t *g = &s->segs[i];
            if (g->state != NV_SEG_SEALED || g->bad || g->records == g->live)
                continue;
            int chosen = 0;
            for (uint32_t j = 0; j < nv; j++)
                chosen |= victims[j] == i;
            if (chosen)
                continue;
            if (only_free && (g->live || (g->tombstones && g->seq != min_seq)))
                continue;
            /* copying more than 90% of a segment to free one is no gain */
            if (!only_free && g->live > seg_cap * 9 / 10)
                continue;
            if (best == NV_NONE || g->live < s->segs[best].live)
                best = i;
        }
        if (best == NV_NONE)
            break;
        victims[nv++] = best;
    }
    if (nv == 0)
        goto out;
    /* Sealed segments' pages must be on disk before they are read. */
    st = nv_flush_sealed(s);
    if (st != STRATA_OK)
        goto out;
    for (uint32_t v = 0; v < nv; v++) {
        nv_seg_t *g = &s->segs[victims[v]];
        if (g->live == 0 && (g->tombstones == 0 || g->seq == min_seq))
            continue; /* nothing to copy */
        nv_gc_ctx_t ctx = {victims[v], g->seq != min_seq, 0, 0};
        st = nv_scan(s, victims[v], 1, g->next_page, nv_gc_page, &ctx);
        ST_ADD(s->n_gc_copied, ctx.copied);
        if (ctx.corrupt)
            g->bad = 1;
        if (st != STRATA_OK)
            goto out; /* e.g. NO_SPACE: victims stay, the copies are harmless */
    }
    /* The copies, and every record that superseded a victim's dead ones,
     * must be durable before a victim disappears. */
    st = hier_nvme_sync(s);
    if (st != STRATA_OK)
        goto out;
    for (uint32_t v = 0; v < nv; v++) {
        nv_seg_t *g = &s->segs[victims[v]];
        if (g->bad || g->live)
            continue;
        strata_status_t us = nv_seg_unlink(s, victims[v]);
        if (us != STRATA_OK && st == STRATA_OK)
            st = us;
        freed++;
    }
    if (freed) {
        strata_status_t ds = nv_fsync_dir(s);
        if (ds != STRATA_OK && st == STRATA_OK)
            st = ds;
    }
    ST_ADD(s->n_gc_freed, freed);
out:
    core_free(victims);
    s->in_gc = 0;
    if (freed_out)
        *freed_out = freed;
    return st;
}

strata_status_t hier_nvme_gc(hier_nvme_t *s, uint32_t max_victims, uint32_t *freed)
{
    if (freed)
        *freed = 0;
    return nv_gc_run(s, max_victims ? max_victims : 1, 0, freed);
}

/* --- expiry and iteration ------------------------------------------------ */

typedef struct nv_walk_ctx {
    hier_nvme_iter_cb_t cb;  /**< iterate: the caller's callback */
    void *arg;               /**< its argument */
    uint64_t now_ns;         /**< expire: the clock */
    uint64_t count;          /**< records visited / expired */
    int stopped;             /**< the callback asked to stop */
} nv_walk_ctx_t;

/** For each live record of a valid page, call fn. */
static strata_status_t nv_walk_page(hier_nvme_t *s, uint32_t seg, uint32_t page, const uint8_t *p,
                                    nv_walk_ctx_t *w, int expire)
{
    const char *why = nv_page_check(s, p, s->segs[seg].seq, page);
    if (why) {
        if (s->segs[seg].bad)
            return STRATA_OK; /* known, reported */
        char name[32];
        nv_seg_name(seg, name, sizeof(name));
        ST_ADD(s->n_corrupt_reads, 1);
        s->segs[seg].bad = 1;
        return core_fail(STRATA_ERR_CORRUPT, "NVMe store %s: page %u of %s: %s", s->dirpath,
                         page, name, why);
    }
    uint32_t nrec = ((const nv_page_hdr_t *)p)->nrec;
    for (uint32_t r = 0; r < nrec; r++) {
        const uint8_t *rec = p + NV_PAGE_HDR + (size_t)r * s->rec_bytes;
        nv_rec_hdr_t h;
        memcpy(&h, rec, sizeof(h));
        if (h.version & NV_TOMBSTONE)
            continue;
        uint32_t *lp = ix_find(&s->ix, h.key);
        if (!lp || *lp - 1 != nv_loc(s, seg, page, r))
            continue;
        if (expire) {
            if (nv_expired(s, h.write_ns, w->now_ns)) {
                nv_expire_key(s, h.key);
                w->count++;
            }
            continue;
        }
        hier_nvme_meta_t m = {h.write_ns, h.freq, h.score, h.version};
        w->count++;
        if (w->cb(w->arg, h.key, rec + NV_REC_HDR, &m)) {
            w->stopped = 1;
            return STRATA_ERR_BUSY; /* internal: stop the scan */
        }
    }
    return STRATA_OK;
}

static strata_status_t nv_iter_page(hier_nvme_t *s, void *arg, uint32_t seg, uint32_t page,
                                    const uint8_t *p)
{
    return nv_walk_page(s, seg, page, p, arg, 0);
}

static strata_status_t nv_expire_page(hier_nvme_t *s, void *arg, uint32_t seg, uint32_t page,
                                      const uint8_t *p)
{
    return nv_walk_page(s, seg, page, p, arg, 1);
}

static strata_status_t nv_walk(hier_nvme_t *s, nv_page_cb_t cb, nv_walk_ctx_t *w)
{
    /* Everything on disk first (the open page included), so one scan sees
     * every record. */
    if (s->filling && s->cur_nrec)
        nv_page_seal(s);
    strata_status_t st = nv_flush_sealed(s);
    if (st != STRATA_OK)
        return st;
    uint32_t n;
    uint32_t *order = nv_segs_in_order(s, &n);
    if (!order)
        return core_fail(STRATA_ERR_NOMEM, "scan: out of memory");
    for (uint32_t i = 0; i < n && st == STRATA_OK; i++)
        st = nv_scan(s, order[i], 1, s->segs[order[i]].next_page, cb, w);
    core_free(order);
    if (w->stopped)
        return STRATA_OK;
    return st;
}

strata_status_t hier_nvme_iterate(hier_nvme_t *s, hier_nvme_iter_cb_t cb, void *arg)
{
    nv_walk_ctx_t w = {cb, arg, 0, 0, 0};
    return nv_walk(s, nv_iter_page, &w);
}

strata_status_t hier_nvme_expire(hier_nvme_t *s, uint64_t now_ns, size_t *expired)
{
    if (expired)
        *expired = 0;
    if (!s->cfg.ttl_ns)
        return STRATA_OK;
    nv_walk_ctx_t w = {NULL, NULL, now_ns, 0, 0};
    strata_status_t st = nv_walk(s, nv_expire_page, &w);
    if (expired)
        *expired = w.count;
    return st;
}

/* --- recovery ------------------------------------------------------------ */

typedef struct nv_badpage {
    uint32_t seg;   /**< segment slot */
    uint32_t page;  /**< page index */
} nv_badpage_t;

typedef struct nv_rec_ctx {
    uint64_t seq;            /**< the segment being scanned: its sequence number */
    uint32_t last_nonzero;   /**< its last page that is not all zeros */
    nv_badpage_t *bad;       /**< pages failing their checks, holes included */
    uint32_t nbad, capbad;
    uint64_t durable;        /**< highest durable_seq of any valid page */
    uint64_t max_version;    /**< highest record version */
} nv_rec_ctx_t;

static strata_status_t nv_rec_bad(nv_rec_ctx_t *c, uint32_t seg, uint32_t page)
{
    if (c->nbad == c->capbad) {
        uint32_t cap = c->capbad ? 2 * c->capbad : 64;
        nv_badpage_t *nb = core_realloc(c->bad, cap * sizeof(*nb));
        if (!nb)
            return core_fail(STRATA_ERR_NOMEM, "recovery: out of memory");
        c->bad = nb;
        c->capbad = cap;
    }
    c->bad[c->nbad].seg = seg;
    c->bad[c->nbad].page = page;
    c->nbad++;
    return STRATA_OK;
}

/** Index the records of a valid page; remember the others. A zero page
 *  is unwritten; it is a hole when a later page of the segment is not. */
static strata_status_t nv_recover_page(hier_nvme_t *s, void *arg, uint32_t seg, uint32_t page,
                                       const uint8_t *p)
{
    nv_rec_ctx_t *c = arg;
    if (nv_all_zero(p, s->page_bytes))
        return STRATA_OK;
    strata_status_t st;
    for (uint32_t z = c->last_nonzero + 1; z < page; z++)
        if ((st = nv_rec_bad(c, seg, z)) != STRATA_OK)
            return st;
    c->last_nonzero = page;
    if (nv_page_check(s, p, c->seq, page))
        return nv_rec_bad(c, seg, page);
    const nv_page_hdr_t *ph = (const nv_page_hdr_t *)p;
    if (ph->durable_seq > c->durable)
        c->durable = ph->durable_seq;
    nv_seg_t *g = &s->segs[seg];
    for (uint32_t r = 0; r < ph->nrec; r++) {
        nv_rec_hdr_t h;
        memcpy(&h, p + NV_PAGE_HDR + (size_t)r * s->rec_bytes, sizeof(h));
        uint64_t ver = h.version & ~NV_TOMBSTONE;
        if (ver > c->max_version)
            c->max_version = ver;
        g->records++;
        ST_ADD(s->n_recovered, 1);
        if (h.version & NV_TOMBSTONE) {
            uint32_t old = ix_delete(&s->ix, h.key);
            if (old)
                s->segs[nv_loc_seg(s, old - 1)].live--;
            g->tombstones++;
            continue;
        }
        if (!ix_find(&s->ix, h.key) && (st = ix_reserve(&s->ix)) != STRATA_OK)
            return st;
        nv_index_set(s, h.key, nv_loc(s, seg, page, r));
    }
    return STRATA_OK;
}

/** Read and check a segment header with pread. *seq and *first get its
 *  numbers, 0 when the header is not valid; *empty is set when the header
 *  page is zeros or missing (a creation that never finished). */
static strata_status_t nv_read_seg_hdr(hier_nvme_t *s, uint32_t slot, int fd, uint64_t *seq,
                                       uint64_t *first, int *empty)
{
    *seq = 0;
    *first = 0;
    *empty = 0;
    ssize_t r = pread(fd, s->hbuf, s->page_bytes, 0);
    if (r < 0)
        return core_fail_errno(errno, "reading the header of segment %u in %s", slot, s->dirpath);
    if (r < (ssize_t)s->page_bytes || nv_all_zero(s->hbuf, s->page_bytes)) {
        *empty = 1;
        return STRATA_OK;
    }
    const nv_seg_hdr_t *h = (const nv_seg_hdr_t *)s->hbuf;
    if (memcmp(h->magic, NV_SEG_MAGIC, 8) != 0 ||
        h->checksum != XXH3_64bits(s->hbuf, NV_SEG_HDR_SUM_OFF))
        return STRATA_OK;
    if (h->version != NV_VERSION)
        return core_fail(STRATA_ERR_VERSION, "segment %u in %s has format version %u, not %u",
                         slot, s->dirpath, h->version, NV_VERSION);
    if (h->store_id != s->store_id || h->page_bytes != s->page_bytes || h->pages != s->ppseg ||
        h->rec_bytes != s->rec_bytes || h->value_bytes != s->value_bytes || h->slot != slot)
        return core_fail(STRATA_ERR_CORRUPT,
                         "segment %u in %s belongs to another store or has another geometry "
                         "(store id %016" PRIx64 " vs %016" PRIx64 ")",
                         slot, s->dirpath, h->store_id, s->store_id);
    *seq = h->seq;
    *first = h->first_page_seq;
    return STRATA_OK;
}

/** Open every segment file of the directory (removing those whose
 *  creation never finished). */
static strata_status_t nv_recover_list(hier_nvme_t *s)
{
    strata_status_t st = STRATA_OK;
    int fdd = dup(s->dirfd);
    DIR *d = fdd >= 0 ? fdopendir(fdd) : NULL;
    if (!d) {
        if (fdd >= 0)
            close(fdd);
        return core_fail_errno(errno, "listing %s", s->dirpath);
    }
    struct dirent *de;
    int removed = 0;
    while ((de = readdir(d)) != NULL) {
        unsigned slot;
        char tail[8];
        if (sscanf(de->d_name, "seg-%6u.%3s", &slot, tail) != 2 || strcmp(tail, "dat") != 0)
            continue;
        if (slot >= s->max_segs) {
            st = core_fail(STRATA_ERR_INVALID_PARAM,
                           "%s/%s: segment number beyond max_segments = %u (open with more)",
                           s->dirpath, de->d_name, s->max_segs);
            break;
        }
        int fd = nv_open_file(s, de->d_name, O_RDWR);
        if (fd < 0) {
            st = core_fail_errno(errno, "opening %s/%s", s->dirpath, de->d_name);
            break;
        }
        uint64_t seq, first;
        int empty;
        st = nv_read_seg_hdr(s, slot, fd, &seq, &first, &empty);
        if (st != STRATA_OK) {
            close(fd);
            break;
        }
        if (empty) { /* a crash during creation: nothing was ever written to it */
            close(fd);
            unlinkat(s->dirfd, de->d_name, 0);
            removed = 1;
            continue;
        }
        st = nv_register_fd(s, slot, fd);
        if (st != STRATA_OK) {
            close(fd);
            break;
        }
        nv_seg_t *g = &s->segs[slot];
        memset(g, 0, sizeof(*g));
        g->fd = fd;
        g->state = NV_SEG_SEALED;
        g->seq = seq; /* 0: header corrupt, adopted from its pages */
        g->first_page_seq = first;
        g->next_page = s->ppseg;
        g->stream_base = UINT64_MAX;
        s->nsegs++;
    }
    closedir(d);
    if (st == STRATA_OK && removed)
        st = nv_fsync_dir(s);
    return st;
}

/** A segment whose header is lost takes its numbers from its first valid
 *  page; with none it is unusable (bad). */
static void nv_recover_adopt(hier_nvme_t *s, uint32_t slot, char *first_corrupt, size_t cap)
{
    nv_seg_t *g = &s->segs[slot];
    for (uint32_t pg = 1; pg < s->ppseg && !g->seq; pg++) {
        ssize_t r = pread(g->fd, s->hbuf, s->page_bytes, (off_t)pg * s->page_bytes);
        if (r != (ssize_t)s->page_bytes)
            break;
        const nv_page_hdr_t *h = (const nv_page_hdr_t *)s->hbuf;
        if (!nv_page_check(s, s->hbuf, h->seg_seq, pg) && h->page_seq >= pg) {
            g->seq = h->seg_seq;
            g->first_page_seq = h->page_seq - (pg - 1);
        }
    }
    ST_ADD(s->n_corrupt_pages, 1); /* the header page itself */
    if (!first_corrupt[0])
        snprintf(first_corrupt, cap, "the header page of seg-%06u.dat%s", slot,
                 g->seq ? " (its numbers taken from its pages)" : ", and no valid page in it");
    if (!g->seq)
        g->bad = 1;
}

/** Write a valid empty page over a torn one, so the next recovery, which
 *  will know a later durable point, does not take it for corruption. */
static strata_status_t nv_recover_fill(hier_nvme_t *s, uint32_t slot, uint32_t page,
                                       uint64_t page_seq, uint64_t durable)
{
    nv_seg_t *g = &s->segs[slot];
    memset(s->hbuf, 0, s->page_bytes);
    nv_page_hdr_t *h = (nv_page_hdr_t *)s->hbuf;
    h->magic = NV_PAGE_MAGIC;
    h->nrec = 0;
    h->seg_seq = g->seq;
    h->page = page;
    h->page_seq = page_seq;
    h->durable_seq = durable;
    h->checksum = nv_page_sum(s->hbuf, s->page_bytes);
    ssize_t w = pwrite(g->fd, s->hbuf, s->page_bytes, (off_t)page * s->page_bytes);
    if (w != (ssize_t)s->page_bytes)
        return w < 0 ? core_fail_errno(errno, "recovery: rewriting torn page %u of seg-%06u.dat",
                                       page, slot)
                     : core_fail(STRATA_ERR_IO, "recovery: short write of page %u of seg-%06u.dat",
                                 page, slot);
    g->dirty = 1;
    return STRATA_OK;
}

/* Recovery: open the segments, replay them in log order into the index,
 * then judge every page that failed its checks (or is a hole before a
 * written page) by its page number: at or below the durable point D (the
 * highest durable_seq any valid page carries) it was synced before, so it
 * is corruption (reported; its segment is never compacted); above D it is
 * a write the crash cut short (nothing acknowledged was in it), rewritten
 * as a valid empty page. Finally every page above D is fdatasync'ed, so
 * the new session starts with everything it serves durable. */
static strata_status_t nv_recover(hier_nvme_t *s)
{
    uint64_t t0 = nv_now_ns(CLOCK_MONOTONIC);
    strata_status_t st = nv_recover_list(s);
    if (st != STRATA_OK)
        return st;
    char first_corrupt[256] = "";
    for (uint32_t i = 0; i < s->max_segs; i++)
        if (s->segs[i].state != NV_SEG_FREE && s->segs[i].seq == 0)
            nv_recover_adopt(s, i, first_corrupt, sizeof(first_corrupt));

    uint32_t n;
    uint32_t *order = nv_segs_in_order(s, &n);
    if (!order)
        return core_fail(STRATA_ERR_NOMEM, "recovery: out of memory");
    nv_rec_ctx_t c;
    memset(&c, 0, sizeof(c));
    uint64_t max_seq = 0, max_ps = 0;
    for (uint32_t i = 0; i < n && st == STRATA_OK; i++) {
        nv_seg_t *g = &s->segs[order[i]];
        if (g->bad)
            continue; /* nothing readable */
        c.seq = g->seq;
        c.last_nonzero = 0;
        st = nv_scan(s, order[i], 1, s->ppseg, nv_recover_page, &c);
        g->next_page = c.last_nonzero + 1;
        if (g->seq > max_seq)
            max_seq = g->seq;
        if (c.last_nonzero && g->first_page_seq + c.last_nonzero - 1 > max_ps)
            max_ps = g->first_page_seq + c.last_nonzero - 1;
    }
    core_free(order);
    const uint64_t D = c.durable;
    for (uint32_t b = 0; b < c.nbad && st == STRATA_OK; b++) {
        uint32_t slot = c.bad[b].seg, page = c.bad[b].page;
        nv_seg_t *g = &s->segs[slot];
        uint64_t ps = g->first_page_seq + page - 1;
        if (ps > D) {
            ST_ADD(s->n_torn, 1);
            st = nv_recover_fill(s, slot, page, ps, D);
            continue;
        }
        ST_ADD(s->n_corrupt_pages, 1);
        g->bad = 1;
        if (!first_corrupt[0])
            snprintf(first_corrupt, sizeof(first_corrupt),
                     "page %u of seg-%06u.dat (page %" PRIu64 ", synced at %" PRIu64 ") %s", page,
                     slot, ps, D, "fails its checks");
    }
    core_free(c.bad);
    /* make everything above the durable point durable */
    for (uint32_t i = 0; i < s->max_segs && st == STRATA_OK; i++) {
        nv_seg_t *g = &s->segs[i];
        if (g->state == NV_SEG_FREE || !g->seq)
            continue;
        if (g->dirty || (g->next_page > 1 && g->first_page_seq + g->next_page - 2 > D)) {
            if (fdatasync(g->fd) != 0)
                st = core_fail_errno(errno, "recovery: fdatasync of seg-%06u.dat", i);
            g->dirty = 0;
        }
    }
    if (st != STRATA_OK)
        return st;
    uint64_t recs = 0, live = 0;
    for (uint32_t i = 0; i < s->max_segs; i++)
        if (s->segs[i].state != NV_SEG_FREE) {
            recs += s->segs[i].records;
            live += s->segs[i].live;
        }
    ST_SET(s->n_dead, recs - live);
    s->next_seg_seq = max_seq + 1;
    s->next_version = c.max_version + 1;
    s->next_page_seq = max_ps + 1;
    s->durable_seq = max_ps;
    ST_SET(s->recovery_ns, nv_now_ns(CLOCK_MONOTONIC) - t0);
    if (first_corrupt[0]) {
        st = core_fail(STRATA_ERR_CORRUPT,
                       "NVMe store %s: %" PRIu64 " corrupt page(s) at open, their rows are not "
                       "served; first: %s",
                       s->dirpath, ST_GET(s->n_corrupt_pages), first_corrupt);
        if (s->cfg.flags & HIER_NVME_STRICT)
            return st;
    }
    return STRATA_OK;
}

/* ------------------------------------------------------------------------ */
/* open / close                                                             */
/* ------------------------------------------------------------------------ */

static void nv_meta_encode(const hier_nvme_t *s, uint8_t *b)
{
    memset(b, 0, NV_STORE_META_BYTES);
    memcpy(b, NV_STORE_MAGIC, 8);
    uint32_t v32[3] = {NV_VERSION, s->value_bytes, s->page_bytes};
    memcpy(b + 8, v32, 12);
    memcpy(b + 20, &s->rec_bytes, 4);
    memcpy(b + 24, &s->segment_bytes, 8);
    memcpy(b + 32, &s->store_id, 8);
    uint64_t sum = XXH3_64bits(b, 40);
    memcpy(b + 40, &sum, 8);
}

/** Read store.meta (adopting its geometry) or create it. */
static strata_status_t nv_store_meta(hier_nvme_t *s)
{
    uint8_t b[NV_STORE_META_BYTES];
    int fd = openat(s->dirfd, NV_META_NAME, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        ssize_t r = read(fd, b, sizeof(b));
        close(fd);
        if (r != (ssize_t)sizeof(b) || memcmp(b, NV_STORE_MAGIC, 8) != 0)
            return core_fail(STRATA_ERR_CORRUPT, "%s/%s: not a store description", s->dirpath,
                             NV_META_NAME);
        uint64_t sum;
        memcpy(&sum, b + 40, 8);
        if (sum != XXH3_64bits(b, 40))
            return core_fail(STRATA_ERR_CORRUPT, "%s/%s: checksum mismatch", s->dirpath,
                             NV_META_NAME);
        uint32_t ver, vb, pb, rb;
        uint64_t sb;
        memcpy(&ver, b + 8, 4);
        memcpy(&vb, b + 12, 4);
        memcpy(&pb, b + 16, 4);
        memcpy(&rb, b + 20, 4);
        memcpy(&sb, b + 24, 8);
        memcpy(&s->store_id, b + 32, 8);
        if (ver != NV_VERSION)
            return core_fail(STRATA_ERR_VERSION, "%s/%s: format version %u, this build reads %u",
                             s->dirpath, NV_META_NAME, ver, NV_VERSION);
        if (vb != s->value_bytes || pb != s->page_bytes || rb != s->rec_bytes)
            return core_fail(STRATA_ERR_INVALID_PARAM,
                             "%s holds values of %u bytes (pages of %u), asked for %u", s->dirpath,
                             vb, pb, s->value_bytes);
        if (s->cfg.segment_bytes && s->cfg.segment_bytes / s->page_bytes * s->page_bytes != sb)
            return core_fail(STRATA_ERR_INVALID_PARAM,
                             "%s has segments of %" PRIu64 " bytes, asked for %" PRIu64,
                             s->dirpath, sb, s->cfg.segment_bytes);
        s->segment_bytes = sb;
        return STRATA_OK;
    }
    if (errno != ENOENT)
        return core_fail_errno(errno, "opening %s/%s", s->dirpath, NV_META_NAME);
    if (!(s->cfg.flags & HIER_NVME_CREATE))
        return core_fail(STRATA_ERR_NOT_FOUND, "%s holds no NVMe store (and CREATE not asked)",
                         s->dirpath);
    if (getrandom(&s->store_id, sizeof(s->store_id), 0) != (ssize_t)sizeof(s->store_id))
        s->store_id = core_mix64(nv_now_ns(CLOCK_REALTIME) ^ (uint64_t)getpid());
    nv_meta_encode(s, b);
    char tmp[64];
    snprintf(tmp, sizeof(tmp), "%s.tmp.%d", NV_META_NAME, (int)getpid());
    fd = openat(s->dirfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return core_fail_errno(errno, "creating %s/%s", s->dirpath, tmp);
    strata_status_t st = STRATA_OK;
    if (write(fd, b, sizeof(b)) != (ssize_t)sizeof(b))
        st = core_fail_errno(errno ? errno : EIO, "writing %s/%s", s->dirpath, tmp);
    else if (fsync(fd) != 0)
        st = core_fail_errno(errno, "fsync of %s/%s", s->dirpath, tmp);
    close(fd);
    if (st == STRATA_OK && renameat(s->dirfd, tmp, s->dirfd, NV_META_NAME) != 0)
        st = core_fail_errno(errno, "renaming %s/%s", s->dirpath, tmp);
    if (st != STRATA_OK) {
        unlinkat(s->dirfd, tmp, 0);
        return st;
    }
    return nv_fsync_dir(s);
}

static strata_status_t nv_ring_init(hier_nvme_t *s)
{
    unsigned entries = (unsigned)nv_pow2(s->qd_max + s->wring + NV_SCAN_INFLIGHT + 8);
    struct io_uring_params p;
    memset(&p, 0, sizeof(p));
    p.flags = IORING_SETUP_COOP_TASKRUN;
    if (s->cfg.flags & HIER_NVME_SINGLE_THREAD)
        p.flags |= IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN;
    int r = io_uring_queue_init_params(entries, &s->ring, &p);
    if (r == -EINVAL && (p.flags & IORING_SETUP_DEFER_TASKRUN)) { /* kernel < 6.1 */
        memset(&p, 0, sizeof(p));
        p.flags = IORING_SETUP_COOP_TASKRUN;
        r = io_uring_queue_init_params(entries, &s->ring, &p);
    }
    if (r == -EINVAL) {
        memset(&p, 0, sizeof(p));
        r = io_uring_queue_init_params(entries, &s->ring, &p);
    }
    if (r < 0) {
        strata_status_t st = core_fail_errno(-r, "io_uring_queue_init (%u entries)", entries);
        if (r == -ENOSYS || r == -EPERM)
            st = core_fail(STRATA_ERR_UNSUPPORTED, "io_uring is not available: %s",
                           strerror(-r));
        return st;
    }
    s->ring_ok = 1;
    struct iovec iov = {s->region.base, s->region.len};
    s->fixed_bufs = io_uring_register_buffers(&s->ring, &iov, 1) == 0;
    s->fixed_files = io_uring_register_files_sparse(&s->ring, s->max_segs) == 0;
    return STRATA_OK;
}

strata_status_t hier_nvme_open(const hier_nvme_config_t *cfg, hier_nvme_t **store_p)
{
    strata_status_t st;
    if (!cfg || !store_p || !cfg->dir || !cfg->dir[0])
        return core_fail(STRATA_ERR_INVALID_PARAM, "hier_nvme_open: NULL config, dir or store_p");
    if (cfg->value_bytes < 4 || cfg->value_bytes > (1u << 20) || cfg->value_bytes % 4)
        return core_fail(STRATA_ERR_INVALID_PARAM,
                         "value_bytes = %u: must be a multiple of 4 in 4..1048576",
                         cfg->value_bytes);
    if (cfg->queue_depth > 1024)
        return core_fail(STRATA_ERR_INVALID_PARAM, "queue_depth = %u: must be 1..1024",
                         cfg->queue_depth);
    if (strlen(cfg->dir) >= sizeof(((hier_nvme_t *)0)->dirpath))
        return core_fail(STRATA_ERR_INVALID_PARAM, "dir is longer than %zu bytes",
                         sizeof(((hier_nvme_t *)0)->dirpath) - 1);

    hier_nvme_t *s = core_calloc(1, sizeof(*s));
    if (!s)
        return core_fail(STRATA_ERR_NOMEM, "NVMe store: out of memory");
    s->cfg = *cfg;
    snprintf(s->dirpath, sizeof(s->dirpath), "%s", cfg->dir);
    s->cfg.dir = s->dirpath;
    if (s->cfg.gc_dead_ratio <= 0)
        s->cfg.gc_dead_ratio = 0.5;
    s->dirfd = -1;
    s->direct = 1;
    s->head = NV_NONE;

    s->value_bytes = cfg->value_bytes;
    s->rec_bytes = (NV_REC_HDR + cfg->value_bytes + 7u) & ~7u;
    s->page_bytes = (NV_PAGE_HDR + s->rec_bytes + NV_BLOCK - 1) / NV_BLOCK * NV_BLOCK;
    s->rpp = (s->page_bytes - NV_PAGE_HDR) / s->rec_bytes;
    s->qd_max = cfg->queue_depth ? cfg->queue_depth : NV_DEFAULT_QD;
    s->qd = s->qd_max;
    s->wbatch = cfg->write_batch_pages ? cfg->write_batch_pages : NV_DEFAULT_BATCH;
    if (s->wbatch > 1024)
        s->wbatch = 1024;
    s->wring = cfg->write_ring_pages ? cfg->write_ring_pages : 4 * s->wbatch;
    if (s->wring < s->wbatch)
        s->wring = s->wbatch;
    if (s->wring > 4095)
        s->wring = 4095;

    if ((cfg->flags & HIER_NVME_CREATE) && mkdir(s->dirpath, 0755) != 0 && errno != EEXIST) {
        st = core_fail_errno(errno, "creating directory %s", s->dirpath);
        goto err_store;
    }
    s->dirfd = open(s->dirpath, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (s->dirfd < 0) {
        st = core_fail_errno(errno, "opening directory %s", s->dirpath);
        goto err_store;
    }
    s->segment_bytes = cfg->segment_bytes ? cfg->segment_bytes : NV_DEFAULT_SEGMENT;
    s->segment_bytes = s->segment_bytes / s->page_bytes * s->page_bytes;
    st = nv_store_meta(s);
    if (st != STRATA_OK)
        goto err_dir;
    s->ppseg = (uint32_t)(s->segment_bytes / s->page_bytes);
    if (s->ppseg < 4 || s->segment_bytes / s->page_bytes > (1u << 24)) {
        st = core_fail(STRATA_ERR_INVALID_PARAM,
                       "segment_bytes = %" PRIu64 ": must hold 4..16M pages of %u bytes",
                       s->segment_bytes, s->page_bytes);
        goto err_dir;
    }
    /* segment slots: configured, within 32-bit record numbers and the
     * open-file limit */
    uint64_t ms = cfg->max_segments ? cfg->max_segments : NV_DEFAULT_MAX_SEGS;
    uint64_t by_loc = (UINT32_MAX - 1ull) / ((uint64_t)s->ppseg * s->rpp);
    if (ms > by_loc)
        ms = by_loc;
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
        ms > rl.rlim_cur / 2)
        ms = rl.rlim_cur / 2;
    if (ms < 2) {
        st = core_fail(STRATA_ERR_INVALID_PARAM,
                       "segments of %" PRIu64 " bytes leave room for fewer than 2 segments",
                       s->segment_bytes);
        goto err_dir;
    }
    s->max_segs = (uint32_t)ms;
    if (cfg->max_bytes) {
        uint64_t b = cfg->max_bytes / s->segment_bytes;
        if (b < 2) {
            st = core_fail(STRATA_ERR_INVALID_PARAM,
                           "max_bytes = %" PRIu64 " holds fewer than 2 segments of %" PRIu64,
                           cfg->max_bytes, s->segment_bytes);
            goto err_dir;
        }
        s->budget_segs = (uint32_t)(b < s->max_segs ? b : s->max_segs);
    }
    s->scan_chunk = s->ppseg - 1 < NV_SCAN_CHUNK_PAGES ? s->ppseg - 1 : NV_SCAN_CHUNK_PAGES;

    /* memory */
    s->nrslots = 2 * s->qd_max;
    size_t pages = (size_t)s->wring + s->nrslots + (size_t)NV_SCAN_INFLIGHT * s->scan_chunk + 1;
    st = core_region_alloc(&core_region_ops_default, pages * s->page_bytes, 0, &s->region);
    if (st != STRATA_OK) {
        st = core_fail(STRATA_ERR_NOMEM, "NVMe store buffers: out of memory");
        goto err_dir;
    }
    s->wbuf = s->region.base;
    s->rbuf = s->wbuf + (size_t)s->wring * s->page_bytes;
    s->sbuf = s->rbuf + (size_t)s->nrslots * s->page_bytes;
    s->hbuf = s->sbuf + (size_t)NV_SCAN_INFLIGHT * s->scan_chunk * s->page_bytes;
    s->segs = core_calloc(s->max_segs, sizeof(nv_seg_t));
    s->dirty_list = core_calloc(s->max_segs, sizeof(uint32_t));
    s->wp = core_calloc(s->wring, sizeof(nv_wpage_t));
    s->rs = core_calloc(s->nrslots, sizeof(nv_rslot_t));
    s->rfree = core_calloc(s->nrslots, sizeof(uint32_t));
    s->rdone = core_calloc(s->nrslots, sizeof(uint32_t));
    s->g_next = core_calloc(NV_GET_CHUNK, sizeof(uint32_t));
    s->g_slot = core_calloc(NV_GET_CHUNK, sizeof(uint32_t));
    s->g_hash = core_calloc(2 * NV_GET_CHUNK, sizeof(uint32_t));
    s->groups = core_calloc(NV_GET_CHUNK, sizeof(nv_group_t));
    if (!s->segs || !s->dirty_list || !s->wp || !s->rs || !s->rfree || !s->rdone || !s->g_next ||
        !s->g_slot || !s->g_hash || !s->groups) {
        st = core_fail(STRATA_ERR_NOMEM, "NVMe store tables: out of memory");
        goto err_mem;
    }
    for (uint32_t i = 0; i < s->max_segs; i++)
        s->segs[i].fd = -1;
    for (uint32_t i = 0; i < s->nrslots; i++)
        s->rfree[s->nrfree++] = s->nrslots - 1 - i;
    uint64_t ek = cfg->expected_keys ? cfg->expected_keys : 65536;
    st = ix_alloc(&s->ix, (uint64_t)((double)ek / (NV_BUCKET_KEYS * NV_LOAD_MAX)) + 1);
    if (st != STRATA_OK)
        goto err_mem;
    st = nv_ring_init(s);
    if (st != STRATA_OK)
        goto err_index;
    s->next_seg_seq = 1;
    s->next_version = 1;
    s->next_page_seq = 1;
    st = nv_recover(s);
    if (st != STRATA_OK)
        goto err_segs;
    *store_p = s;
    return STRATA_OK;

err_segs:
    for (uint32_t i = 0; i < s->max_segs; i++)
        if (s->segs[i].fd >= 0)
            close(s->segs[i].fd);
    io_uring_queue_exit(&s->ring);
err_index:
    ix_free(&s->ix);
err_mem:
    core_free(s->groups);
    core_free(s->g_hash);
    core_free(s->g_slot);
    core_free(s->g_next);
    core_free(s->rdone);
    core_free(s->rfree);
    core_free(s->rs);
    core_free(s->wp);
    core_free(s->dirty_list);
    core_free(s->segs);
    core_region_free(&core_region_ops_default, &s->region);
err_dir:
    close(s->dirfd);
err_store:
    core_free(s);
    return st;
}

void hier_nvme_close(hier_nvme_t *s)
{
    if (!s)
        return;
    if (!s->write_err)
        hier_nvme_sync(s);
    /* nothing may be in flight when the buffers go */
    for (;;) {
        int busy = 0;
        for (uint32_t i = 0; i < s->wring; i++)
            busy |= s->wp[i].state == NV_WP_INFLIGHT;
        if (!busy || nv_reap(s, 1) != STRATA_OK)
            break;
    }
    /* Release the registered files and buffers now: the ring's teardown
     * is asynchronous, and until it ends the files stay referenced (a
     * file system holding the store could not be unmounted). */
    if (s->fixed_files)
        io_uring_unregister_files(&s->ring);
    if (s->fixed_bufs)
        io_uring_unregister_buffers(&s->ring);
    io_uring_queue_exit(&s->ring);
    for (uint32_t i = 0; i < s->max_segs; i++)
        if (s->segs[i].fd >= 0)
            close(s->segs[i].fd);
    ix_free(&s->ix);
    core_free(s->groups);
    core_free(s->g_hash);
    core_free(s->g_slot);
    core_free(s->g_next);
    core_free(s->rdone);
    core_free(s->rfree);
    core_free(s->rs);
    core_free(s->wp);
    core_free(s->dirty_list);
    core_free(s->segs);
    core_region_free(&core_region_ops_default, &s->region);
    close(s->dirfd);
    core_free(s);
}

/* ------------------------------------------------------------------------ */
/* small calls                                                              */
/* ------------------------------------------------------------------------ */

strata_status_t hier_nvme_set_queue_depth(hier_nvme_t *s, uint32_t qd)
{
    if (qd < 1 || qd > s->qd_max)
        return core_fail(STRATA_ERR_INVALID_PARAM, "queue depth %u: must be 1..%u", qd,
                         s->qd_max);
    s->qd = qd;
    return STRATA_OK;
}

uint32_t hier_nvme_value_bytes(const hier_nvme_t *s)
{
    return s->value_bytes;
}

void hier_nvme_get_stats(hier_nvme_t *s, hier_nvme_stats_t *o)
{
    memset(o, 0, sizeof(*o));
    o->keys = __atomic_load_n(&s->ix.count, __ATOMIC_RELAXED);
    o->index_buckets = __atomic_load_n(&s->ix.nbuckets, __ATOMIC_RELAXED);
    o->index_bytes = o->index_buckets * sizeof(nv_bucket_t);
    o->segments = __atomic_load_n(&s->nsegs, __ATOMIC_RELAXED);
    o->disk_bytes = o->segments * s->segment_bytes;
    o->live_records = o->keys;
    o->dead_records = ST_GET(s->n_dead);
    o->page_bytes = s->page_bytes;
    o->records_per_page = s->rpp;
    o->gets = ST_GET(s->n_gets);
    o->get_found = ST_GET(s->n_get_found);
    o->page_reads = ST_GET(s->n_page_reads);
    o->ring_hits = ST_GET(s->n_ring_hits);
    o->puts = ST_GET(s->n_puts);
    o->erases = ST_GET(s->n_erases);
    o->pages_written = ST_GET(s->n_pages_written);
    o->write_submits = ST_GET(s->n_write_submits);
    o->syncs = ST_GET(s->n_syncs);
    o->gc_runs = ST_GET(s->n_gc_runs);
    o->gc_segments_freed = ST_GET(s->n_gc_freed);
    o->gc_records_copied = ST_GET(s->n_gc_copied);
    o->expired = ST_GET(s->n_expired);
    o->corrupt_reads = ST_GET(s->n_corrupt_reads);
    o->no_space = ST_GET(s->n_no_space);
    o->recovered_records = ST_GET(s->n_recovered);
    o->torn_pages = ST_GET(s->n_torn);
    o->corrupt_pages = ST_GET(s->n_corrupt_pages);
    o->recovery_ns = ST_GET(s->recovery_ns);
}

uint32_t hier_nvme_segment_paths(hier_nvme_t *s, char *paths, uint32_t cap, size_t path_cap)
{
    uint32_t n = 0;
    for (uint32_t i = 0; i < s->max_segs; i++) {
        if (s->segs[i].state == NV_SEG_FREE)
            continue;
        if (n < cap) {
            char name[32];
            nv_seg_name(i, name, sizeof(name));
            snprintf(paths + (size_t)n * path_cap, path_cap, "%s/%s", s->dirpath, name);
        }
        n++;
    }
    return n;
}

strata_status_t hier_nvme_locate_page(hier_nvme_t *s, uint64_t key, char *path, size_t path_cap,
                                      uint64_t *offset)
{
    uint32_t *lp = ix_find(&s->ix, key);
    if (!lp)
        return core_fail(STRATA_ERR_NOT_FOUND, "key %" PRIu64 " is not in the store", key);
    uint32_t seg, page, slot;
    nv_loc_split(s, *lp - 1, &seg, &page, &slot);
    char name[32];
    nv_seg_name(seg, name, sizeof(name));
    snprintf(path, path_cap, "%s/%s", s->dirpath, name);
    *offset = (uint64_t)page * s->page_bytes;
    return STRATA_OK;
}
