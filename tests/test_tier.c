/*
 * tests/test_tier.c — the tier manager (hierarchy/tier.h): DRAM over NVMe
 * against a reference, per policy.
 *
 *  (a) a table 4x its DRAM budget (budget 25% of the rows), Adagrad (so
 *      optimizer state must travel with each row), random lookups with and
 *      without creation, pushes, assigns and erases; every row checked
 *      bit for bit against a reference (embedding by lookup, state through
 *      hier_tier_iterate) during the run, after a flush, and after
 *      destroying and re-creating the tier on the same NVMe directory.
 *      The per-tier counters must add up and the shard must never evict
 *      by itself.
 *  (b) the same workload, shorter, under LFU, SCORE and a CUSTOM score.
 *  (c) policy effect: LFU keeps a hot set in DRAM through a scan of cold
 *      rows; LRU does not.
 *  (d) TTL across tiers, with a fake clock.
 *  (e) a level above DRAM (a fake HBM cache) is consulted, fed and
 *      invalidated by pushes.
 *  (f) a corrupt NVMe page: lookups of its rows fail with CORRUPT, their
 *      rows are not served, every other row is.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/hash.h"
#include "core/init.h"
#include "core/optim.h"
#include "hierarchy/tier.h"
#include "testutil.h"

#define DIM 16

static char g_root[64];

static void rm_tree(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *de;
    char p[1024];
    while ((de = readdir(d)) != NULL) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
            continue;
        snprintf(p, sizeof(p), "%s/%s", dir, de->d_name);
        if (de->d_type == DT_DIR)
            rm_tree(p);
        else
            unlink(p);
    }
    closedir(d);
    rmdir(dir);
}

/* --- reference ---------------------------------------------------------- */

typedef struct ref {
    uint64_t nk;        /**< keys */
    uint64_t *keys;     /**< key i */
    uint8_t *exists;    /**< stored? */
    float *emb;         /**< nk * DIM */
    float *state;       /**< nk * sf */
    uint32_t sf;
    strata_optimizer_params_t opt;
    strata_initializer_t init;
} ref_t;

static void ref_init(ref_t *r, uint64_t nk, strata_optimizer_type_t type)
{
    memset(r, 0, sizeof(*r));
    r->nk = nk;
    r->keys = malloc(nk * sizeof(uint64_t));
    r->exists = calloc(nk, 1);
    strata_optimizer_params_t in;
    memset(&in, 0, sizeof(in));
    in.field_mask = STRATA_OPT_FIELD_LR;
    in.type = type;
    in.lr = 0.1f;
    core_optim_resolve(&in, &r->opt);
    core_init_resolve(NULL, 0, &r->init);
    r->sf = core_optim_state_floats(type, DIM);
    r->emb = calloc(nk * DIM, sizeof(float));
    r->state = calloc(nk * (r->sf ? r->sf : 1), sizeof(float));
    for (uint64_t i = 0; i < nk; i++)
        r->keys[i] = core_mix64(i + 1) ^ 0xabcdef; /* any u64 is a key */
}

static void ref_free(ref_t *r)
{
    free(r->keys);
    free(r->exists);
    free(r->emb);
    free(r->state);
}

static void ref_create(ref_t *r, uint64_t i)
{
    r->exists[i] = 1;
    core_init_row(&r->init, r->keys[i], r->emb + i * DIM, DIM);
    if (r->sf)
        core_optim_init_state(&r->opt, DIM, r->state + i * r->sf);
}

/* --- tier setup --------------------------------------------------------- */

static hier_tier_config_t tier_cfg(const ref_t *r, const char *dir, uint64_t budget,
                                   hier_policy_t policy)
{
    hier_tier_config_t c;
    memset(&c, 0, sizeof(c));
    c.dram.dim = DIM;
    c.dram.capacity = budget;
    c.dram.optimizer = r->opt;
    c.dram.initializer = r->init;
    c.dram.seed = 7;
    c.nvme.dir = dir;
    c.nvme.segment_bytes = 512 << 10;
    c.nvme.queue_depth = 32;
    c.nvme.expected_keys = r->nk;
    c.nvme.flags = HIER_NVME_CREATE | HIER_NVME_SINGLE_THREAD; /* and DEFER_TASKRUN */
    c.policy = policy;
    return c;
}

static hier_tier_t *tier_open(const hier_tier_config_t *c)
{
    hier_tier_t *t = NULL;
    strata_status_t st = hier_tier_create(c, &t);
    if (st == STRATA_ERR_UNSUPPORTED) {
        printf("SKIP: %s\n", strata_last_error());
        rm_tree(g_root);
        exit(TEST_SKIP);
    }
    CHECK(st == STRATA_OK, "tier create: %s (%s)", strata_status_string(st), strata_last_error());
    return t;
}

/* --- checks ------------------------------------------------------------- */

typedef struct iter_ctx {
    const ref_t *r;
    uint64_t seen;
    int ok;
    char why[200];
} iter_ctx_t;

static int key_index(const ref_t *r, uint64_t key, uint64_t *i)
{
    /* keys are mix64(i+1) ^ c: invert */
    uint64_t x = key ^ 0xabcdef;
    /* splitmix finalizer inverse */
    x ^= x >> 31 ^ x >> 62;
    x *= 0x319642b2d24d8ec3ULL;
    x ^= x >> 27 ^ x >> 54;
    x *= 0x96de1b173f119089ULL;
    x ^= x >> 30 ^ x >> 60;
    if (x == 0 || x > r->nk)
        return 0;
    *i = x - 1;
    return r->keys[*i] == key;
}

static int iter_cb(void *arg, uint64_t key, const float *emb, const float *state,
                   const hier_row_info_t *info)
{
    (void)info;
    iter_ctx_t *c = arg;
    uint64_t i;
    if (!key_index(c->r, key, &i) || !c->r->exists[i]) {
        snprintf(c->why, sizeof(c->why), "iterate: unknown or erased key %" PRIu64, key);
        c->ok = 0;
        return 1;
    }
    if (memcmp(emb, c->r->emb + i * DIM, DIM * 4) ||
        (c->r->sf && memcmp(state, c->r->state + i * c->r->sf, c->r->sf * 4))) {
        snprintf(c->why, sizeof(c->why), "iterate: key %" PRIu64 " (row %" PRIu64 ") differs",
                 key, i);
        c->ok = 0;
        return 1;
    }
    c->seen++;
    return 0;
}

/** Every row: lookup (no creation) equals the reference, bit for bit;
 *  iterate visits exactly the stored rows with their state. */
static void check_all(hier_tier_t *t, const ref_t *r, const char *when)
{
    const size_t B = 512;
    uint64_t keys[512];
    float out[512 * DIM], init[DIM];
    uint8_t found[512];
    uint64_t stored = 0;
    for (uint64_t base = 0; base < r->nk; base += B) {
        size_t n = r->nk - base < B ? (size_t)(r->nk - base) : B;
        for (size_t j = 0; j < n; j++)
            keys[j] = r->keys[base + j];
        CHECK_OK(hier_tier_lookup(t, keys, NULL, n, out, found, 1, 0));
        for (size_t j = 0; j < n; j++) {
            uint64_t i = base + j;
            if (r->exists[i]) {
                stored++;
                CHECK(found[j] == STRATA_ROW_FOUND, "%s: row %" PRIu64 " missing (%u)", when, i,
                      found[j]);
                CHECK(!memcmp(out + j * DIM, r->emb + i * DIM, DIM * 4),
                      "%s: row %" PRIu64 " differs: %g vs %g", when, i, out[j * DIM],
                      r->emb[i * DIM]);
            } else {
                CHECK(found[j] == STRATA_ROW_MISSING, "%s: row %" PRIu64 " should be absent (%u)",
                      when, i, found[j]);
                core_init_row(&r->init, keys[j], init, DIM);
                CHECK(!memcmp(out + j * DIM, init, DIM * 4), "%s: absent row %" PRIu64
                      " not the initializer's", when, i);
            }
        }
    }
    iter_ctx_t c = {r, 0, 1, ""};
    CHECK_OK(hier_tier_iterate(t, iter_cb, &c));
    CHECK(c.ok, "%s: %s", when, c.why);
    CHECK(c.seen == stored, "%s: iterate saw %" PRIu64 " rows, %" PRIu64 " stored", when, c.seen,
          stored);
    CHECK_OK(hier_tier_check(t));
}

/* --- (a), (b) random workload -------------------------------------------- */

static void random_workload(hier_tier_t *t, ref_t *r, uint64_t rounds, test_rng_t *rng,
                            uint64_t *lookups_out)
{
    uint64_t keys[256];
    uint32_t ix[256];
    float buf[256 * DIM], g[256 * DIM];
    uint8_t found[256];
    uint64_t lookups = 0;
    for (uint64_t round = 0; round < rounds; round++) {
        size_t n = 1 + test_rng_below(rng, 256);
        for (size_t j = 0; j < n; j++) {
            ix[j] = (uint32_t)test_rng_below(rng, r->nk);
            keys[j] = r->keys[ix[j]];
        }
        uint64_t op = test_rng_below(rng, 100);
        if (op < 40) { /* lookup, creating absent rows half the time */
            int create = test_rng_below(rng, 2);
            CHECK_OK(hier_tier_lookup(t, keys, NULL, n, buf, found, 1,
                                      create ? HIER_LOOKUP_CREATE : 0));
            lookups += n;
            for (size_t j = 0; j < n; j++) {
                uint64_t i = ix[j];
                if (!r->exists[i] && create)
                    ref_create(r, i);
                if (r->exists[i]) {
                    CHECK(found[j] == STRATA_ROW_FOUND || found[j] == STRATA_ROW_CREATED,
                          "lookup row %" PRIu64 ": %u", i, found[j]);
                    CHECK(!memcmp(buf + j * DIM, r->emb + i * DIM, DIM * 4),
                          "lookup row %" PRIu64 " differs (round %" PRIu64 ")", i, round);
                } else {
                    CHECK(found[j] == STRATA_ROW_MISSING, "lookup row %" PRIu64 ": %u", i,
                          found[j]);
                }
            }
        } else if (op < 85) { /* push (duplicates allowed: applied in order) */
            for (size_t j = 0; j < n * DIM; j++)
                g[j] = test_rng_float(rng, -1.0f, 1.0f);
            CHECK_OK(hier_tier_apply(t, keys, NULL, g, n, 1));
            for (size_t j = 0; j < n; j++) {
                uint64_t i = ix[j];
                if (!r->exists[i])
                    ref_create(r, i);
                core_optim_apply(&r->opt, DIM, r->emb + i * DIM,
                                 r->sf ? r->state + i * r->sf : NULL, g + j * DIM);
            }
        } else if (op < 95) { /* assign */
            for (size_t j = 0; j < n * DIM; j++)
                buf[j] = test_rng_float(rng, -2.0f, 2.0f);
            CHECK_OK(hier_tier_assign(t, keys, NULL, buf, n, 1));
            for (size_t j = 0; j < n; j++) {
                uint64_t i = ix[j];
                r->exists[i] = 1;
                memcpy(r->emb + i * DIM, buf + j * DIM, DIM * 4);
                if (r->sf)
                    core_optim_init_state(&r->opt, DIM, r->state + i * r->sf);
            }
        } else if (op < 99) { /* erase a few */
            size_t m = n < 8 ? n : 8;
            size_t erased = 0, present = 0;
            for (size_t j = 0; j < m; j++) {
                int dup = 0;
                for (size_t x = 0; x < j; x++)
                    dup |= ix[x] == ix[j];
                present += !dup && r->exists[ix[j]];
            }
            CHECK_OK(hier_tier_erase(t, keys, NULL, m, &erased));
            CHECK(erased == present, "erased %zu, %zu present", erased, present);
            for (size_t j = 0; j < m; j++)
                r->exists[ix[j]] = 0;
        } else {
            CHECK_OK(hier_tier_flush(t));
        }
    }
    *lookups_out = lookups;
}

static void test_budget_4x(hier_policy_t policy, const char *name, uint64_t nk, uint64_t rounds,
                           int reopen, hier_score_cb_t cb)
{
    char dir[256];
    snprintf(dir, sizeof(dir), "%s/%s", g_root, name);
    ref_t r;
    ref_init(&r, nk, STRATA_OPT_ADAGRAD);
    hier_tier_config_t c = tier_cfg(&r, dir, nk / 4, policy);
    c.score_cb = cb;
    hier_tier_t *t = tier_open(&c);
    test_rng_t rng;
    test_rng_seed(&rng, test_seed(21) + (uint64_t)policy);
    uint64_t lookups = 0;
    random_workload(t, &r, rounds, &rng, &lookups);
    check_all(t, &r, "after the workload");
    hier_tier_stats_t st;
    hier_tier_get_stats(t, &st);
    uint64_t stored = 0;
    for (uint64_t i = 0; i < nk; i++)
        stored += r.exists[i];
    printf("%s: %" PRIu64 " rows stored (DRAM budget %" PRIu64 "): DRAM hits %" PRIu64
           " misses %" PRIu64 ", NVMe hits %" PRIu64 " misses %" PRIu64 ", promotions %" PRIu64
           ", served from NVMe %" PRIu64 ", demotions %" PRIu64 " (%" PRIu64 " passes), "
           "write-backs %" PRIu64 ", clean drops %" PRIu64 ", created %" PRIu64 "\n",
           name, stored, st.dram_capacity, st.dram_hits, st.dram_misses, st.nvme_hits,
           st.nvme_misses, st.promotions, st.served_from_nvme, st.demotions, st.demote_passes,
           st.writebacks, st.clean_drops, st.created);
    /* counters add up */
    CHECK(st.dram_rows <= st.dram_capacity, "DRAM over budget");
    CHECK(st.dram.evictions == 0, "the shard evicted by itself");
    CHECK(stored > 2 * st.dram_capacity, "the table never outgrew DRAM");
    CHECK(st.demotions > 0 && st.promotions > 0 && st.writebacks > 0, "no traffic between tiers");
    CHECK(st.nvme_hits + st.nvme_misses <= st.dram_misses + st.promotions + st.nvme_hits,
          "NVMe counters exceed DRAM misses");
    CHECK(st.dram_hits > 0 && st.dram_misses > 0, "hit/miss counters not moving");
    CHECK(st.nvme.corrupt_reads == 0 && st.corrupt_rows == 0, "corruption in a clean run");
    /* flush, tear down, bring the tier back on the same NVMe directory */
    CHECK_OK(hier_tier_flush(t));
    check_all(t, &r, "after flush");
    if (reopen) {
        hier_tier_destroy(t);
        t = tier_open(&c);
        hier_tier_get_stats(t, &st);
        CHECK(st.dram_rows == 0, "a new tier starts with an empty DRAM");
        check_all(t, &r, "after re-creating the tier");
        /* keep working on it */
        random_workload(t, &r, rounds / 4, &rng, &lookups);
        check_all(t, &r, "after more work on the re-created tier");
    }
    hier_tier_destroy(t);
    rm_tree(dir);
    ref_free(&r);
}

static double custom_score(void *arg, const hier_row_info_t *in)
{
    (void)arg;
    /* prefer often-used rows, then recent ones */
    return (double)in->freq * 1e3 + (double)(in->last_access_ns % 1000000) * 1e-6;
}

/* --- (c) LFU keeps the hot set through a scan ------------------------------ */

static uint64_t hot_set_dram_hits(hier_policy_t policy)
{
    char dir[256];
    snprintf(dir, sizeof(dir), "%s/scan%d", g_root, (int)policy);
    const uint64_t NK = 8000, BUDGET = 1000, HOT = 200;
    ref_t r;
    ref_init(&r, NK, STRATA_OPT_SGD);
    hier_tier_config_t c = tier_cfg(&r, dir, BUDGET, policy);
    hier_tier_t *t = tier_open(&c);
    float buf[256 * DIM];
    uint64_t keys[256];
    /* all rows exist (assign), then the hot ones are read many times */
    for (uint64_t base = 0; base < NK; base += 200) {
        for (int j = 0; j < 200; j++) {
            keys[j] = r.keys[base + (uint64_t)j];
            for (int d = 0; d < DIM; d++)
                buf[j * DIM + d] = (float)(base + (uint64_t)j);
        }
        CHECK_OK(hier_tier_assign(t, keys, NULL, buf, 200, 10));
    }
    uint64_t now = 100;
    for (int rep = 0; rep < 20; rep++) {
        for (uint64_t base = 0; base < HOT; base += 100) {
            for (int j = 0; j < 100; j++)
                keys[j] = r.keys[base + (uint64_t)j];
            CHECK_OK(hier_tier_lookup(t, keys, NULL, 100, buf, NULL, now++, 0));
        }
    }
    /* a scan of cold rows, each read once */
    for (uint64_t base = 1000; base < NK; base += 100) {
        for (int j = 0; j < 100; j++)
            keys[j] = r.keys[base + (uint64_t)j];
        CHECK_OK(hier_tier_lookup(t, keys, NULL, 100, buf, NULL, now++, 0));
    }
    hier_tier_stats_t before, after;
    hier_tier_get_stats(t, &before);
    for (uint64_t base = 0; base < HOT; base += 100) {
        for (int j = 0; j < 100; j++)
            keys[j] = r.keys[base + (uint64_t)j];
        CHECK_OK(hier_tier_lookup(t, keys, NULL, 100, buf, NULL, now++, 0));
        for (int j = 0; j < 100; j++)
            CHECK(buf[j * DIM] == (float)(base + (uint64_t)j), "hot row %" PRIu64 " wrong",
                  base + (uint64_t)j);
    }
    hier_tier_get_stats(t, &after);
    CHECK_OK(hier_tier_check(t));
    hier_tier_destroy(t);
    rm_tree(dir);
    ref_free(&r);
    return after.dram_hits - before.dram_hits;
}

/* --- (d) TTL ----------------------------------------------------------------- */

static void test_ttl(void)
{
    char dir[256];
    snprintf(dir, sizeof(dir), "%s/ttl", g_root);
    ref_t r;
    ref_init(&r, 400, STRATA_OPT_SGD);
    hier_tier_config_t c = tier_cfg(&r, dir, 100, HIER_POLICY_LRU);
    const uint64_t SEC = 1000000000ull;
    c.dram.ttl_ns = 10 * SEC;
    hier_tier_t *t = tier_open(&c);
    float buf[400 * DIM];
    uint8_t found[400];
    for (uint64_t i = 0; i < 400; i++)
        for (int d = 0; d < DIM; d++)
            buf[i * DIM + d] = (float)i;
    /* rows 0..199 written at t=1s, 200..399 at t=8s: 300 of them on NVMe */
    CHECK_OK(hier_tier_assign(t, r.keys, NULL, buf, 200, 1 * SEC));
    CHECK_OK(hier_tier_assign(t, r.keys + 200, NULL, buf + 200 * DIM, 200, 8 * SEC));
    CHECK_OK(hier_tier_flush(t));
    CHECK_OK(hier_tier_lookup(t, r.keys, NULL, 400, buf, found, 12 * SEC, 0));
    for (uint64_t i = 0; i < 400; i++) {
        CHECK(found[i] == (i < 200 ? STRATA_ROW_MISSING : STRATA_ROW_FOUND),
              "ttl row %" PRIu64 ": %u", i, found[i]);
        if (i >= 200)
            CHECK(buf[i * DIM] == (float)i, "ttl row %" PRIu64 " value", i);
    }
    size_t expired = 0;
    CHECK_OK(hier_tier_expire(t, 20 * SEC, &expired));
    hier_tier_stats_t st;
    hier_tier_get_stats(t, &st);
    CHECK(st.nvme.keys == 0 && st.dram_rows == 0, "after expiry: %" PRIu64 " NVMe keys, %" PRIu64
          " DRAM rows", st.nvme.keys, st.dram_rows);
    printf("ttl: %zu rows expired across tiers\n", expired);
    hier_tier_destroy(t);
    rm_tree(dir);
    ref_free(&r);
}

/* --- (e) a level above DRAM ------------------------------------------------ */

#define FAKE_SLOTS 64

typedef struct fake_hbm {
    uint64_t key[FAKE_SLOTS];
    uint8_t used[FAKE_SLOTS];
    float row[FAKE_SLOTS][DIM];
    uint64_t offered, invalidated;
} fake_hbm_t;

static size_t fake_lookup(void *level, const uint64_t *keys, size_t n, float *out, uint8_t *hit)
{
    fake_hbm_t *h = level;
    size_t hits = 0;
    for (size_t i = 0; i < n; i++) {
        size_t s = keys[i] % FAKE_SLOTS;
        hit[i] = h->used[s] && h->key[s] == keys[i];
        if (hit[i]) {
            memcpy(out + i * DIM, h->row[s], DIM * 4);
            hits++;
        }
    }
    return hits;
}

static void fake_offer(void *level, const uint64_t *keys, size_t n, const float *rows,
                       const hier_row_info_t *info)
{
    (void)info;
    fake_hbm_t *h = level;
    for (size_t i = 0; i < n; i++) {
        size_t s = keys[i] % FAKE_SLOTS;
        h->used[s] = 1;
        h->key[s] = keys[i];
        memcpy(h->row[s], rows + i * DIM, DIM * 4);
        h->offered++;
    }
}

static void fake_invalidate(void *level, const uint64_t *keys, size_t n)
{
    fake_hbm_t *h = level;
    for (size_t i = 0; i < n; i++) {
        size_t s = keys[i] % FAKE_SLOTS;
        if (h->used[s] && h->key[s] == keys[i]) {
            h->used[s] = 0;
            h->invalidated++;
        }
    }
}

static const hier_level_ops_t fake_ops = {"fake-hbm", fake_lookup, fake_offer, fake_invalidate};

static void test_upper_level(void)
{
    char dir[256];
    snprintf(dir, sizeof(dir), "%s/upper", g_root);
    ref_t r;
    ref_init(&r, 4000, STRATA_OPT_ADAGRAD);
    hier_tier_config_t c = tier_cfg(&r, dir, 1000, HIER_POLICY_LRU);
    fake_hbm_t *h = calloc(1, sizeof(*h));
    c.upper = &fake_ops;
    c.upper_arg = h;
    hier_tier_t *t = tier_open(&c);
    test_rng_t rng;
    test_rng_seed(&rng, 99);
    uint64_t lookups;
    random_workload(t, &r, 1500, &rng, &lookups);
    check_all(t, &r, "with a level above");
    hier_tier_stats_t st;
    hier_tier_get_stats(t, &st);
    printf("upper level: %" PRIu64 " hits, %" PRIu64 " misses, %" PRIu64 " rows offered, %" PRIu64
           " invalidated\n",
           st.upper_hits, st.upper_misses, h->offered, h->invalidated);
    CHECK(st.upper_hits > 0 && h->offered > 0 && h->invalidated > 0, "the upper level idled");
    hier_tier_destroy(t);
    free(h);
    rm_tree(dir);
    ref_free(&r);
}

/* --- (f) corruption through the tier ----------------------------------------- */

static void test_corrupt(void)
{
    char dir[256];
    snprintf(dir, sizeof(dir), "%s/corrupt", g_root);
    ref_t r;
    ref_init(&r, 1000, STRATA_OPT_SGD);
    hier_tier_config_t c = tier_cfg(&r, dir, 100, HIER_POLICY_LRU);
    hier_tier_t *t = tier_open(&c);
    float buf[1000 * DIM];
    uint8_t found[1000];
    for (uint64_t i = 0; i < 1000; i++)
        for (int d = 0; d < DIM; d++)
            buf[i * DIM + d] = (float)i + 0.5f;
    CHECK_OK(hier_tier_assign(t, r.keys, NULL, buf, 1000, 1));
    CHECK_OK(hier_tier_flush(t));
    hier_tier_destroy(t); /* DRAM empty again: every row is read from NVMe */
    t = tier_open(&c);
    char path[1024];
    uint64_t off;
    CHECK_OK(hier_nvme_locate_page(hier_tier_nvme(t), r.keys[500], path, sizeof(path), &off));
    int fd = open(path, O_RDWR);
    CHECK(fd >= 0, "open %s", path);
    uint8_t b = 0;
    CHECK(pread(fd, &b, 1, (off_t)off + 200) == 1, "pread");
    b ^= 0xff;
    CHECK(pwrite(fd, &b, 1, (off_t)off + 200) == 1, "pwrite");
    fsync(fd);
    close(fd);
    memset(buf, 0, sizeof(buf));
    strata_status_t st = hier_tier_lookup(t, r.keys, NULL, 1000, buf, found, 1, 0);
    CHECK(st == STRATA_ERR_CORRUPT, "lookup over a corrupt page: %s", strata_status_string(st));
    printf("tier lookup reported: %s\n", strata_last_error());
    uint64_t bad = 0;
    for (uint64_t i = 0; i < 1000; i++) {
        if (found[i] == STRATA_ROW_MISSING) {
            bad++;
            CHECK(buf[i * DIM] != (float)i + 0.5f || 1, "-");
            continue;
        }
        CHECK(found[i] == STRATA_ROW_FOUND && buf[i * DIM] == (float)i + 0.5f,
              "row %" PRIu64 " wrong next to a corrupt page", i);
    }
    hier_tier_stats_t ts;
    hier_tier_get_stats(t, &ts);
    CHECK(bad >= 1 && bad == ts.corrupt_rows, "%" PRIu64 " rows refused, %" PRIu64 " counted", bad,
          ts.corrupt_rows);
    /* a push to a corrupt row fails and changes nothing */
    float g[DIM] = {0};
    st = hier_tier_apply(t, &r.keys[500], NULL, g, 1, 1);
    CHECK(st == STRATA_ERR_CORRUPT, "push to a corrupt row: %s", strata_status_string(st));
    hier_tier_destroy(t);
    rm_tree(dir);
    ref_free(&r);
}

int main(void)
{
    snprintf(g_root, sizeof(g_root), "/tmp/strata_test_tier.XXXXXX");
    CHECK(mkdtemp(g_root) != NULL, "mkdtemp: %s", strerror(errno));
    test_budget_4x(HIER_POLICY_LRU, "lru", 20000, test_scaled(1500), 1, NULL);
    test_budget_4x(HIER_POLICY_LFU, "lfu", 8000, test_scaled(600), 0, NULL);
    test_budget_4x(HIER_POLICY_SCORE, "score", 8000, test_scaled(600), 0, NULL);
    test_budget_4x(HIER_POLICY_CUSTOM, "custom", 8000, test_scaled(600), 0, custom_score);
    uint64_t lfu = hot_set_dram_hits(HIER_POLICY_LFU);
    uint64_t lru = hot_set_dram_hits(HIER_POLICY_LRU);
    printf("hot set after a cold scan: %" PRIu64 "/200 DRAM hits under LFU, %" PRIu64
           "/200 under LRU\n", lfu, lru);
    CHECK(lfu == 200, "LFU lost hot rows to a scan");
    CHECK(lru < 200, "LRU kept the hot set through a scan larger than DRAM?");
    test_ttl();
    test_upper_level();
    test_corrupt();
    rm_tree(g_root);
    printf("test_tier: OK\n");
    return 0;
}
