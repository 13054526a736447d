/*
 * tests/test_nvme_crash.c — kill -9 during heavy writes, reopen, check.
 *
 * A forked child opens the store and writes as fast as it can: batches
 * of puts and a few erases over a small key range (so compaction runs all
 * the time), and after one batch in three hier_nvme_sync. Before a batch
 * the child reports every operation it is about to do through a pipe (its
 * intent), and after a sync returns OK it reports every batch so far as
 * acknowledged. The parent kills the child with SIGKILL at a random
 * moment, reopens the store and checks every key:
 *  - every row served is valid (a self-checking value of that key);
 *  - a key whose last acknowledged operation was put(v) holds v, or a
 *    version from a later (unacknowledged) operation on it; after an
 *    acknowledged erase, absent or a later version; a key without an
 *    acknowledged operation in this round holds what the previous round
 *    recovered, or a version of an unacknowledged operation.
 * The cycle repeats, each child continuing on the recovered store, and
 * each reopen must find no corrupt page (torn writes of the crash are
 * expected and counted).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/hash.h"
#include "hierarchy/nvme.h"
#include "testutil.h"

#define VWORDS 64
#define VBYTES (VWORDS * 4)
#define NK 4096u
#define CYCLES 4

enum { MSG_PUT = 1, MSG_ERASE = 2, MSG_ACK = 3 };

typedef struct msg {
    uint32_t type;   /**< MSG_* */
    uint32_t batch;  /**< the batch of the operation / the batch acknowledged */
    uint64_t key;    /**< key of PUT/ERASE */
    uint64_t ver;    /**< version of a PUT (erases get one too, unused) */
} msg_t;

static void value_make(uint64_t key, uint64_t ver, uint32_t *v)
{
    v[0] = (uint32_t)key;
    v[1] = (uint32_t)ver;
    v[2] = (uint32_t)(ver >> 32);
    for (uint32_t j = 3; j < VWORDS; j++)
        v[j] = (uint32_t)core_mix64(key * 0x9e3779b97f4a7c15ULL + ver * 131ull + j);
}

static int value_valid(uint64_t key, const uint32_t *v, uint64_t *ver)
{
    uint32_t w[VWORDS];
    uint64_t x = v[1] | (uint64_t)v[2] << 32;
    value_make(key, x, w);
    if (memcmp(w, v, VBYTES) != 0)
        return 0;
    *ver = x;
    return 1;
}

static hier_nvme_config_t cfg_for(const char *dir)
{
    hier_nvme_config_t c;
    memset(&c, 0, sizeof(c));
    c.dir = dir;
    c.value_bytes = VBYTES;
    c.segment_bytes = 256 << 10;
    c.queue_depth = 32;
    c.write_batch_pages = 4;
    c.write_ring_pages = 32;
    c.expected_keys = NK;
    c.flags = HIER_NVME_CREATE;
    return c;
}

static void write_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len) {
        ssize_t w = write(fd, p, len);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            _exit(3);
        p += w;
        len -= (size_t)w;
    }
}

/** The child: write until killed. */
static void child_run(const char *dir, int fd, uint64_t ver0, uint64_t seed)
{
    hier_nvme_config_t c = cfg_for(dir);
    hier_nvme_t *s = NULL;
    if (hier_nvme_open(&c, &s) != STRATA_OK) {
        fprintf(stderr, "child: open: %s\n", strata_last_error());
        _exit(2);
    }
    test_rng_t rng;
    test_rng_seed(&rng, seed);
    uint64_t ver = ver0;
    uint64_t keys[128];
    uint32_t vals[128 * VWORDS];
    msg_t msgs[129];
    for (uint32_t batch = 1;; batch++) {
        size_t n = 1 + test_rng_below(&rng, 128), m = 0;
        int erase = test_rng_below(&rng, 8) == 0;
        for (size_t i = 0; i < n; i++) {
            uint64_t k = test_rng_below(&rng, NK);
            int dup = 0;
            for (size_t j = 0; j < m; j++)
                dup |= keys[j] == k;
            if (dup)
                continue;
            keys[m] = k;
            msgs[m].type = erase ? MSG_ERASE : MSG_PUT;
            msgs[m].batch = batch;
            msgs[m].key = k;
            msgs[m].ver = ++ver;
            value_make(k, ver, vals + m * VWORDS);
            m++;
        }
        write_all(fd, msgs, m * sizeof(msg_t)); /* intent, before any byte can reach disk */
        strata_status_t st = erase ? hier_nvme_erase(s, keys, m, NULL)
                                   : hier_nvme_put(s, keys, m, vals, NULL, NULL);
        /* sync (and acknowledge every batch so far) after one batch in
         * three, so a kill often lands with unsynced pages in flight */
        int sync = test_rng_below(&rng, 3) == 0;
        if (st == STRATA_OK && sync)
            st = hier_nvme_sync(s);
        if (st != STRATA_OK) {
            fprintf(stderr, "child: %s\n", strata_last_error());
            _exit(4);
        }
        if (sync) {
            msg_t ack = {MSG_ACK, batch, 0, 0};
            write_all(fd, &ack, sizeof(ack));
        }
    }
}

typedef struct keystate {
    uint64_t base;       /**< version recovered last round (0: absent) */
    uint64_t acked;      /**< outcome of the last acknowledged op this round:
                              version, or 0 for an erase */
    int has_acked;       /**< an op on this key was acknowledged this round */
    uint32_t nlater;     /**< unacknowledged ops after it */
    uint64_t later[64];  /**< their outcomes (version, or 0 for erase) */
    int later_overflow;  /**< too many to list: accept any newer version */
} keystate_t;

static void rm_tree(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *de;
    char p[1024];
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        snprintf(p, sizeof(p), "%s/%s", dir, de->d_name);
        unlink(p);
    }
    closedir(d);
    rmdir(dir);
}

int main(void)
{
    char dir[] = "/tmp/strata_test_nvme_crash.XXXXXX";
    CHECK(mkdtemp(dir) != NULL, "mkdtemp: %s", strerror(errno));
    {
        hier_nvme_config_t c = cfg_for(dir);
        hier_nvme_t *s = NULL;
        strata_status_t st = hier_nvme_open(&c, &s);
        if (st == STRATA_ERR_UNSUPPORTED) {
            printf("SKIP: %s\n", strata_last_error());
            rm_tree(dir);
            return TEST_SKIP;
        }
        CHECK_OK(st);
        hier_nvme_close(s);
    }
    uint64_t seed = test_seed(5);
    test_rng_t rng;
    test_rng_seed(&rng, seed);
    keystate_t *ks = calloc(NK, sizeof(*ks));
    size_t cap = 1 << 16, nm = 0;
    msg_t *ms = malloc(cap * sizeof(msg_t));
    uint64_t total_acked = 0;
    for (int cycle = 0; cycle < CYCLES; cycle++) {
        int pfd[2];
        CHECK(pipe(pfd) == 0, "pipe");
        uint64_t ver0 = (uint64_t)(cycle + 1) << 40;
        pid_t pid = fork();
        CHECK(pid >= 0, "fork");
        if (pid == 0) {
            close(pfd[0]);
            child_run(dir, pfd[1], ver0, seed + (uint64_t)cycle);
            _exit(0);
        }
        close(pfd[1]);
        /* read the child's reports for a while, then kill it mid-stream */
        nm = 0;
        uint64_t run_ms = 300 + test_rng_below(&rng, 900);
        struct timespec t0, t;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        int killed = 0;
        uint32_t nacks = 0;
        for (;;) {
            if (nm == cap) {
                cap *= 2;
                ms = realloc(ms, cap * sizeof(msg_t));
                CHECK(ms, "out of memory");
            }
            clock_gettime(CLOCK_MONOTONIC, &t);
            /* signed: tv_nsec may be below t0's (the old unsigned form
             * wrapped to a huge value and killed the child at once) */
            int64_t el_s = (int64_t)(t.tv_sec - t0.tv_sec) * 1000 +
                           ((int64_t)t.tv_nsec - (int64_t)t0.tv_nsec) / 1000000;
            uint64_t el = el_s > 0 ? (uint64_t)el_s : 0;
            /* kill once the window has passed and the child has had two
             * batches acknowledged (a loaded machine, or a sanitizer build,
             * may need longer than the window for that); give up waiting
             * after 60 s, which the check below then reports */
            if (!killed && ((el >= run_ms && nacks >= 2) || el >= 60000)) {
                kill(pid, SIGKILL);
                killed = 1;
            }
            ssize_t r = read(pfd[0], (char *)&ms[nm], sizeof(msg_t)); /* 24 B: atomic in a pipe */
            if (r == 0)
                break;
            if (r < 0 && errno == EINTR)
                continue;
            CHECK(r == (ssize_t)sizeof(msg_t), "short pipe read %zd", r);
            if (ms[nm].type == MSG_ACK)
                nacks++;
            nm++;
        }
        close(pfd[0]);
        int wst;
        waitpid(pid, &wst, 0);
        CHECK(WIFSIGNALED(wst) && WTERMSIG(wst) == SIGKILL,
              "child ended by itself (status 0x%x) before the kill", wst);

        /* expectations: last acknowledged batch, then every op by key */
        uint32_t last_ack = 0;
        uint64_t nacked_ops = 0;
        for (size_t i = 0; i < nm; i++)
            if (ms[i].type == MSG_ACK)
                last_ack = ms[i].batch;
        for (uint32_t k = 0; k < NK; k++) {
            ks[k].has_acked = 0;
            ks[k].nlater = 0;
            ks[k].later_overflow = 0;
        }
        for (size_t i = 0; i < nm; i++) {
            if (ms[i].type == MSG_ACK)
                continue;
            keystate_t *e = &ks[ms[i].key];
            uint64_t out = ms[i].type == MSG_PUT ? ms[i].ver : 0;
            if (ms[i].batch <= last_ack) {
                e->has_acked = 1;
                e->acked = out;
                e->nlater = 0;
                nacked_ops++;
            } else if (e->nlater < 64) {
                e->later[e->nlater++] = out;
            } else {
                e->later_overflow = 1;
            }
        }
        total_acked += nacked_ops;

        /* reopen and check every key */
        hier_nvme_config_t c = cfg_for(dir);
        hier_nvme_t *s = NULL;
        CHECK_OK(hier_nvme_open(&c, &s));
        hier_nvme_stats_t st;
        hier_nvme_get_stats(s, &st);
        printf("cycle %d: killed after %" PRIu64 " ms, %u batches acknowledged (%" PRIu64
               " ops); reopen replayed %" PRIu64 " records in %.1f ms: %" PRIu64
               " keys, %" PRIu64 " torn pages, %" PRIu64 " corrupt\n",
               cycle, run_ms, last_ack, nacked_ops, st.recovered_records, st.recovery_ns / 1e6,
               st.keys, st.torn_pages, st.corrupt_pages);
        CHECK(st.corrupt_pages == 0, "a crash made corrupt pages");
        CHECK(last_ack > 0, "the child acknowledged nothing in %" PRIu64 " ms", run_ms);
        uint64_t keys[256];
        uint32_t vals[256 * VWORDS];
        uint8_t sts[256];
        for (uint32_t base = 0; base < NK; base += 256) {
            for (int i = 0; i < 256; i++)
                keys[i] = base + (uint32_t)i;
            CHECK_OK(hier_nvme_get(s, keys, 256, vals, NULL, sts, 0));
            for (int i = 0; i < 256; i++) {
                uint64_t k = keys[i], got = 0;
                if (sts[i] == HIER_NVME_FOUND)
                    CHECK(value_valid(k, vals + i * VWORDS, &got) && got != 0,
                          "cycle %d: key %" PRIu64 ": an invalid row was served", cycle, k);
                else
                    CHECK(sts[i] == HIER_NVME_ABSENT, "key %" PRIu64 " status %u", k, sts[i]);
                keystate_t *e = &ks[k];
                uint64_t expect = e->has_acked ? e->acked : e->base;
                int ok = got == expect;
                for (uint32_t j = 0; j < e->nlater && !ok; j++)
                    ok = got == e->later[j];
                if (!ok && e->later_overflow && got > expect)
                    ok = 1;
                CHECK(ok,
                      "cycle %d: key %" PRIu64 " holds version %" PRIu64 ", expected %" PRIu64
                      " (%s) or one of %u later unacknowledged ops",
                      cycle, k, got, expect, e->has_acked ? "acknowledged" : "previous round",
                      e->nlater);
                e->base = got;
            }
        }
        hier_nvme_close(s);
    }
    printf("test_nvme_crash: OK (%d kills, %" PRIu64 " acknowledged operations checked)\n", CYCLES,
           total_acked);
    free(ms);
    free(ks);
    rm_tree(dir);
    return 0;
}
