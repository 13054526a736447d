/*
 * tests/test_gpu_logic.c — the HBM table's per-key logic (gpu/gpu_logic.h,
 * the GPU_HD functions the kernels compile) on the CPU, against the DRAM
 * tier and against brute force. No device needed; runs under ASan.
 *
 *  (a) placement: digests are never 0, start slots and buckets in range,
 *      bucket counts; digest words round-trip.
 *  (b) probe and scan on hand-built buckets: stop at the first free slot,
 *      digest false positives skipped, BUSY on a locked digest match,
 *      locked slots counted by the scan.
 *  (c) eviction choice against brute force (random scores with ties);
 *      score policies: LFU order = (writes, step) lexicographic, the DRAM
 *      tier's LFU order; float scores keep their order; admission.
 *  (d) optimizer rows: gpu_optim_init_state and gpu_optim_apply_row give
 *      the same bits as core_optim_init_state and core_optim_apply for all
 *      six optimizers.
 *  (e) the host model of the table (gpu/gpu_ref.c, the kernels' per-key
 *      steps on the same arrays) against a DRAM table (strata_table_t):
 *      100k random assign / apply / find operations per optimizer (SGD,
 *      Adagrad, Adam; 20k for the others) on a model large enough not to
 *      evict: every row equal, bit for bit, and the dirty-row export
 *      equal to the set of keys written.
 *  (f) eviction: on a 2-bucket model, for LRU, LFU, SCORE and NONE, each
 *      insert's outcome is predicted by brute force (present: assign;
 *      free slot: insert; full: the minimum score of the bucket, first in
 *      probe order among ties, is evicted when the new score is at least
 *      it, else rejected) and compared; invariants after every step.
 *  (g) memory descriptors: the direct/bounce decision; the stub library
 *      answers UNSUPPORTED; with UCX, rdma_mem_register registers host
 *      memory and refuses CUDA memory unless the UCX reports CUDA support.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/init.h"
#include "core/optim.h"
#include "gpu/gpu.h"
#include "gpu/gpu_logic.h"
#include "gpu/gpu_ref.h"
#include "testutil.h"

#if STRATA_TEST_GPU_RDMA
#include "rdma/ucx.h"
#endif

static test_rng_t rng;

/* ------------------------------------------------------------------------ */
/* (a) placement                                                            */
/* ------------------------------------------------------------------------ */

static void test_placement(void)
{
    CHECK(gpu_nbuckets_for(1) == 1, "1 row");
    CHECK(gpu_nbuckets_for(128) == 1, "128 rows");
    CHECK(gpu_nbuckets_for(129) == 2, "129 rows");
    CHECK(gpu_nbuckets_for(1000) == 8, "1000 rows");
    CHECK(gpu_nbuckets_for(64ull << 20) == (512u << 10), "64Mi rows");
    uint64_t hist[GPU_BUCKET_SLOTS] = {0};
    for (int i = 0; i < 200000; i++) {
        uint64_t key = test_rng_next(&rng);
        uint64_t h = core_key_hash(key);
        uint32_t dg = gpu_digest(h);
        CHECK(dg >= 1 && dg <= 255, "digest %u of key %llu", dg, (unsigned long long)key);
        uint32_t s = gpu_start_slot(h);
        CHECK(s < GPU_BUCKET_SLOTS, "start slot %u", s);
        hist[s]++;
        CHECK(gpu_bucket_of(h, 1024) < 1024, "bucket range");
    }
    for (uint32_t s = 0; s < GPU_BUCKET_SLOTS; s++) /* 1562 expected per slot */
        CHECK(hist[s] > 1200 && hist[s] < 1950, "start slot %u drawn %llu times", s,
              (unsigned long long)hist[s]);
    CHECK(gpu_key_storable(0) && gpu_key_storable(UINT64_MAX - 2), "ordinary keys");
    CHECK(!gpu_key_storable(GPU_KEY_EMPTY) && !gpu_key_storable(GPU_KEY_LOCKED), "markers");

    uint32_t words[GPU_DIGEST_WORDS] = {0};
    uint8_t want[GPU_BUCKET_SLOTS] = {0};
    for (int i = 0; i < 2000; i++) {
        uint32_t s = (uint32_t)test_rng_below(&rng, GPU_BUCKET_SLOTS);
        uint32_t dg = (uint32_t)test_rng_below(&rng, 256);
        words[s >> 2] = gpu_digest_word_with(words[s >> 2], s, dg);
        want[s] = (uint8_t)dg;
        for (uint32_t t = 0; t < GPU_BUCKET_SLOTS; t++)
            CHECK(gpu_digest_get(words, t) == want[t], "digest of slot %u", t);
    }
    printf("(a) placement ok\n");
}

/* ------------------------------------------------------------------------ */
/* (b) probe and scan                                                       */
/* ------------------------------------------------------------------------ */

typedef struct bucket {
    uint64_t keys[GPU_BUCKET_SLOTS];
    uint32_t words[GPU_DIGEST_WORDS];
} bucket_t;

static void bucket_clear(bucket_t *b)
{
    for (uint32_t s = 0; s < GPU_BUCKET_SLOTS; s++)
        b->keys[s] = GPU_KEY_EMPTY;
    memset(b->words, 0, sizeof(b->words));
}

static void bucket_put(bucket_t *b, uint32_t s, uint64_t key, uint32_t dg)
{
    b->keys[s] = key;
    b->words[s >> 2] = gpu_digest_word_with(b->words[s >> 2], s, dg);
}

static void test_probe(void)
{
    bucket_t b;
    for (uint32_t start = 0; start < GPU_BUCKET_SLOTS; start += 7) {
        bucket_clear(&b);
        /* keys 1000+i at start+i for i < 10, all with digest 5; key 42 (digest
         * 9) placed past a free slot must not be found */
        for (uint32_t i = 0; i < 10; i++)
            bucket_put(&b, (start + i) & GPU_SLOT_MASK, 1000 + i, 5);
        bucket_put(&b, (start + 12) & GPU_SLOT_MASK, 42, 9);
        for (uint32_t i = 0; i < 10; i++) {
            int32_t s = gpu_probe(b.words, b.keys, 1000 + i, 5, start);
            CHECK(s == (int32_t)((start + i) & GPU_SLOT_MASK), "probe of key %u: %d", i, s);
            gpu_scan_t sc = gpu_scan_keys(b.keys, 1000 + i, start);
            CHECK(sc.match == s && sc.locked == 0, "scan agrees");
        }
        CHECK(gpu_probe(b.words, b.keys, 42, 9, start) == GPU_PROBE_MISS, "stops at free slot");
        CHECK(gpu_probe(b.words, b.keys, 77, 5, start) == GPU_PROBE_MISS, "digest collision");
        gpu_scan_t sc = gpu_scan_keys(b.keys, 77, start);
        CHECK(sc.match == -1 && sc.empty == (int32_t)((start + 10) & GPU_SLOT_MASK),
              "first free slot %d", sc.empty);
        /* a locked slot with a matching digest: busy; the scan counts it */
        b.keys[(start + 3) & GPU_SLOT_MASK] = GPU_KEY_LOCKED;
        CHECK(gpu_probe(b.words, b.keys, 77, 5, start) == GPU_PROBE_BUSY, "busy");
        CHECK(gpu_probe(b.words, b.keys, 77, 6, start) == GPU_PROBE_MISS, "other digest");
        CHECK(gpu_probe(b.words, b.keys, 1005, 5, start) ==
                  (int32_t)((start + 5) & GPU_SLOT_MASK),
              "found past a locked slot");
        sc = gpu_scan_keys(b.keys, 77, start);
        CHECK(sc.locked == 1 && sc.empty == (int32_t)((start + 10) & GPU_SLOT_MASK), "locked 1");
        /* full bucket: probe runs the whole bucket, scan reports no slot */
        for (uint32_t s = 0; s < GPU_BUCKET_SLOTS; s++)
            bucket_put(&b, s, 5000 + s, 200);
        CHECK(gpu_probe(b.words, b.keys, 5000 + ((start + 127) & GPU_SLOT_MASK), 200, start) ==
                  (int32_t)((start + 127) & GPU_SLOT_MASK),
              "last slot of the probe order");
        sc = gpu_scan_keys(b.keys, 1, start);
        CHECK(sc.match == -1 && sc.empty == -1 && sc.locked == 0, "full");
    }
    /* random buckets against a byte-at-a-time reference of the probe and
     * the scan (gpu_probe loads digest words in fours, gpu_scan_keys keys
     * in eights: the grouping must not change an answer) */
    for (int round = 0; round < 20000; round++) {
        bucket_clear(&b);
        const uint32_t fill = (uint32_t)test_rng_below(&rng, GPU_BUCKET_SLOTS + 1);
        for (uint32_t s = 0; s < GPU_BUCKET_SLOTS; s++) {
            if (test_rng_below(&rng, GPU_BUCKET_SLOTS) >= fill)
                continue;
            uint64_t k = test_rng_below(&rng, 40) == 0 ? GPU_KEY_LOCKED : test_rng_below(&rng, 64);
            bucket_put(&b, s, k, 1 + (uint32_t)test_rng_below(&rng, 4));
        }
        const uint32_t start = (uint32_t)test_rng_below(&rng, GPU_BUCKET_SLOTS);
        const uint64_t key = test_rng_below(&rng, 64);
        const uint32_t dg = 1 + (uint32_t)test_rng_below(&rng, 4);
        int32_t want = GPU_PROBE_MISS;
        int busy = 0;
        gpu_scan_t ws = {-1, -1, 0};
        int scan_done = 0;
        for (uint32_t i = 0; i < GPU_BUCKET_SLOTS; i++) {
            const uint32_t s = (start + i) & GPU_SLOT_MASK;
            const uint32_t d = (b.words[s / 4] >> (8 * (s % 4))) & 0xff;
            if (!scan_done) {
                if (b.keys[s] == key) {
                    ws.match = (int32_t)s;
                    scan_done = 1;
                } else if (b.keys[s] == GPU_KEY_EMPTY) {
                    ws.empty = (int32_t)s;
                    scan_done = 1;
                } else if (b.keys[s] == GPU_KEY_LOCKED) {
                    ws.locked++;
                }
            }
            if (want != GPU_PROBE_MISS || d == 0)
                continue;
            if (d == dg && b.keys[s] == key)
                want = (int32_t)s;
            else if (d == dg && b.keys[s] == GPU_KEY_LOCKED)
                busy = 1;
        }
        /* the reference probe stops at the first free digest */
        int32_t ref = GPU_PROBE_MISS;
        busy = 0;
        for (uint32_t i = 0; i < GPU_BUCKET_SLOTS; i++) {
            const uint32_t s = (start + i) & GPU_SLOT_MASK;
            const uint32_t d = (b.words[s / 4] >> (8 * (s % 4))) & 0xff;
            if (d == 0)
                break;
            if (d == dg && b.keys[s] == key) {
                ref = (int32_t)s;
                break;
            }
            if (d == dg && b.keys[s] == GPU_KEY_LOCKED)
                busy = 1;
        }
        if (ref == GPU_PROBE_MISS && busy)
            ref = GPU_PROBE_BUSY;
        (void)want;
        CHECK(gpu_probe(b.words, b.keys, key, dg, start) == ref, "round %d: probe %d, want %d",
              round, gpu_probe(b.words, b.keys, key, dg, start), ref);
        gpu_scan_t sc = gpu_scan_keys(b.keys, key, start);
        CHECK(sc.match == ws.match && sc.empty == ws.empty && sc.locked == ws.locked,
              "round %d: scan (%d,%d,%u), want (%d,%d,%u)", round, sc.match, sc.empty, sc.locked,
              ws.match, ws.empty, ws.locked);
    }
    printf("(b) probe and scan ok\n");
}

/* ------------------------------------------------------------------------ */
/* (c) eviction choice, scores                                              */
/* ------------------------------------------------------------------------ */

static void test_scores(void)
{
    uint64_t scores[GPU_BUCKET_SLOTS];
    for (int round = 0; round < 3000; round++) {
        const uint64_t range = round % 3 == 0 ? 4 : round % 3 == 1 ? 1000 : UINT64_MAX;
        for (uint32_t s = 0; s < GPU_BUCKET_SLOTS; s++)
            scores[s] = range == UINT64_MAX ? test_rng_next(&rng) : test_rng_below(&rng, range);
        const uint32_t start = (uint32_t)test_rng_below(&rng, GPU_BUCKET_SLOTS);
        uint64_t min = 0;
        uint32_t got = gpu_evict_choice(scores, start, &min);
        /* brute force: the lowest score; among equals the earliest in
         * probe order */
        uint32_t best = 0, best_pos = UINT32_MAX;
        for (uint32_t s = 0; s < GPU_BUCKET_SLOTS; s++) {
            uint32_t pos = (s - start) & GPU_SLOT_MASK;
            if (best_pos == UINT32_MAX || scores[s] < scores[best] ||
                (scores[s] == scores[best] && pos < best_pos)) {
                best = s;
                best_pos = pos;
            }
        }
        CHECK(got == best && min == scores[best], "round %d: chose %u, want %u", round, got,
              best);
    }

    /* LFU: (writes, step) in lexicographic order, as the DRAM tier's
     * score_less (fewer writes first, then older) */
    for (int i = 0; i < 100000; i++) {
        uint64_t fa = 1 + test_rng_below(&rng, 5), fb = 1 + test_rng_below(&rng, 5);
        uint32_t sa = (uint32_t)test_rng_below(&rng, 50), sb = (uint32_t)test_rng_below(&rng, 50);
        uint64_t a = gpu_score_new(STRATA_EVICT_LFU, sa, 0, 0);
        for (uint64_t k = 1; k < fa; k++)
            a = gpu_score_touch(STRATA_EVICT_LFU, a, sa, 0, 0);
        uint64_t b = gpu_score_new(STRATA_EVICT_LFU, sb, 0, 0);
        for (uint64_t k = 1; k < fb; k++)
            b = gpu_score_touch(STRATA_EVICT_LFU, b, sb, 0, 0);
        int lex = fa != fb ? fa < fb : sa < sb;
        CHECK((a < b) == lex, "LFU order (%llu,%u) vs (%llu,%u)", (unsigned long long)fa, sa,
              (unsigned long long)fb, sb);
    }
    uint64_t sat = (0xffffffffull << 32) | 7;
    CHECK(gpu_score_touch(STRATA_EVICT_LFU, sat, 9, 0, 0) == ((0xffffffffull << 32) | 9),
          "LFU count saturates");
    CHECK(gpu_score_new(STRATA_EVICT_LRU, 77, 1, 5) == 77, "LRU = step");
    CHECK(gpu_score_touch(STRATA_EVICT_LRU, 3, 78, 1, 5) == 78, "LRU touch = step");
    CHECK(gpu_score_new(STRATA_EVICT_SCORE, 77, 1, 5) == 5, "SCORE = caller's");
    CHECK(gpu_score_new(STRATA_EVICT_SCORE, 77, 0, 5) == 0, "SCORE default 0");
    CHECK(gpu_score_touch(STRATA_EVICT_SCORE, 9, 78, 0, 5) == 9, "SCORE kept");
    CHECK(gpu_score_touch(STRATA_EVICT_SCORE, 9, 78, 1, 5) == 5, "SCORE replaced");

    /* float scores keep their order (ties by step) */
    const float specials[] = {-INFINITY, -1e30f, -1.0f, -1e-40f, 0.0f,
                              1e-40f,    0.5f,   1.0f,  3e38f,   INFINITY};
    for (int i = 0; i < 200000; i++) {
        float a, b;
        if (i % 4 == 0) {
            a = specials[test_rng_below(&rng, 10)];
            b = specials[test_rng_below(&rng, 10)];
        } else {
            uint32_t ua = (uint32_t)test_rng_next(&rng), ub = (uint32_t)test_rng_next(&rng);
            memcpy(&a, &ua, 4);
            memcpy(&b, &ub, 4);
            if (isnan(a) || isnan(b))
                continue;
        }
        uint32_t sa = (uint32_t)test_rng_below(&rng, 3), sb = (uint32_t)test_rng_below(&rng, 3);
        if (a == 0.0f && b == 0.0f)
            continue; /* -0 < +0 here, documented */
        uint64_t ga = gpu_score_of_float(a, sa), gb = gpu_score_of_float(b, sb);
        int lex = a != b ? a < b : sa < sb;
        CHECK((ga < gb) == lex, "float order %g/%u vs %g/%u", (double)a, sa, (double)b, sb);
    }
    CHECK(gpu_score_from_float(1.5f, 3) == gpu_score_of_float(1.5f, 3), "exported form");

    CHECK(gpu_admit(STRATA_EVICT_LRU, 5, 5) && !gpu_admit(STRATA_EVICT_LRU, 4, 5), "admit");
    CHECK(!gpu_admit(STRATA_EVICT_NONE, 100, 0), "NONE never evicts");
    printf("(c) eviction choice and scores ok\n");
}

/* ------------------------------------------------------------------------ */
/* (d) optimizer rows                                                       */
/* ------------------------------------------------------------------------ */

static strata_optimizer_params_t opt_params(strata_optimizer_type_t type)
{
    strata_optimizer_params_t p;
    memset(&p, 0, sizeof(p));
    p.type = type;
    p.field_mask = STRATA_OPT_FIELD_LR | STRATA_OPT_FIELD_WEIGHT_DECAY |
                   STRATA_OPT_FIELD_INITIAL_ACCUMULATOR | STRATA_OPT_FIELD_L1;
    p.lr = 0.05f;
    p.weight_decay = 0.01f;
    p.initial_accumulator = 0.1f;
    p.l1 = 0.001f;
    core_optim_resolve(&p, &p);
    CHECK_OK(core_optim_validate(&p));
    return p;
}

static void test_optim_rows(void)
{
    const uint32_t dims[] = {1, 3, 8, 17, 64};
    for (int type = STRATA_OPT_SGD; type <= STRATA_OPT_FTRL; type++) {
        strata_optimizer_params_t p = opt_params((strata_optimizer_type_t)type);
        for (size_t di = 0; di < sizeof(dims) / sizeof(dims[0]); di++) {
            const uint32_t dim = dims[di];
            const uint32_t nf = core_optim_state_floats(p.type, dim);
            float w1[64], w2[64], s1[3 * 64 + 1], s2[3 * 64 + 1], g[64];
            memset(s1, 0x55, sizeof(s1));
            memset(s2, 0x55, sizeof(s2));
            core_optim_init_state(&p, dim, s1);
            gpu_optim_init_state(&p, dim, s2);
            CHECK(memcmp(s1, s2, sizeof(s1)) == 0, "init state, optimizer %d dim %u", type, dim);
            for (uint32_t j = 0; j < dim; j++)
                w1[j] = w2[j] = test_rng_float(&rng, -1, 1);
            for (int step = 0; step < 50; step++) {
                for (uint32_t j = 0; j < dim; j++)
                    g[j] = step % 7 == 3 ? 0.0f : test_rng_float(&rng, -2, 2);
                core_optim_apply(&p, dim, w1, s1, g);
                gpu_optim_apply_row(&p, dim, w2, s2, g);
                CHECK(memcmp(w1, w2, 4ull * dim) == 0 && memcmp(s1, s2, 4ull * nf) == 0,
                      "optimizer %d dim %u step %d: rows differ", type, dim, step);
            }
        }
    }
    printf("(d) optimizer rows ok (bit-identical to core_optim_apply)\n");
}

/* ------------------------------------------------------------------------ */
/* (e) the model against the DRAM tier                                      */
/* ------------------------------------------------------------------------ */

static void compare_model_dram(strata_optimizer_type_t type, uint64_t nops)
{
    const uint32_t dim = type == STRATA_OPT_ADAM ? 3 : 8; /* one width off float4 */
    const uint64_t npool = 4000, cap = 8192;
    strata_table_params_t tp = test_params("gpu_logic", dim, cap, type);
    tp.schema.optimizer = opt_params(type);
    strata_table_t *dram = NULL;
    CHECK_OK(strata_table_create(&tp, &dram));
    const strata_table_schema_t *sch = strata_table_get_schema(dram);

    gpu_table_config_t cfg;
    memset(&cfg, 0, sizeof(cfg));
    cfg.field_mask = GPU_TABLE_FIELD_DIM | GPU_TABLE_FIELD_CAPACITY | GPU_TABLE_FIELD_OPTIMIZER |
                     GPU_TABLE_FIELD_EVICTION;
    cfg.dim = dim;
    cfg.capacity = cap;
    cfg.optimizer = sch->optimizer;
    cfg.eviction = STRATA_EVICT_LRU;
    gpu_ref_t *m = NULL;
    CHECK_OK(gpu_ref_create(&cfg, &m));

    uint64_t *pool = malloc(npool * sizeof(uint64_t));
    uint8_t *written = calloc(npool, 1);
    CHECK(pool && written, "alloc");
    for (uint64_t i = 0; i < npool; i++)
        pool[i] = i % 2 ? test_rng_next(&rng) % (UINT64_MAX - 2) : i; /* dense and sparse keys */

    float row[16], a[16], b[16];
    uint64_t n_assign = 0, n_apply = 0, n_find = 0, n_created = 0;
    for (uint64_t op = 0; op < nops; op++) {
        const uint64_t ki = test_rng_below(&rng, npool), key = pool[ki];
        const uint64_t r = test_rng_below(&rng, 100);
        gpu_ref_next_step(m);
        if (r < 35) { /* insert_or_assign = strata_table_assign */
            for (uint32_t j = 0; j < dim; j++)
                row[j] = test_rng_float(&rng, -1, 1);
            CHECK_OK(strata_table_assign(dram, &key, row, 1));
            int res = gpu_ref_insert(m, key, row, NULL, 0, 0, NULL);
            CHECK(res == GPU_INSERT_ASSIGNED || res == GPU_INSERT_INSERTED,
                  "op %llu: insert gave %d (the model must not evict here)",
                  (unsigned long long)op, res);
            written[ki] = 1;
            n_assign++;
        } else if (r < 85) { /* apply; an absent key is first created from
                                the initializer, as the DRAM tier does (on
                                the GPU the tier manager does it) */
            for (uint32_t j = 0; j < dim; j++)
                row[j] = test_rng_float(&rng, -3, 3);
            CHECK_OK(strata_table_apply_gradients(dram, &key, row, 1));
            if (!gpu_ref_apply(m, key, row)) {
                core_init_row(&sch->initializer, key, a, dim);
                CHECK(gpu_ref_insert(m, key, a, NULL, 0, 0, NULL) == GPU_INSERT_INSERTED,
                      "create");
                CHECK(gpu_ref_apply(m, key, row) == 1, "apply after create");
                n_created++;
            }
            written[ki] = 1;
            n_apply++;
        } else { /* find */
            uint8_t found = 0;
            CHECK_OK(strata_table_lookup(dram, &key, 1, a, &found, 0));
            int got = gpu_ref_find(m, key, b);
            CHECK(got == (found == STRATA_ROW_FOUND), "op %llu: found %d vs DRAM %u",
                  (unsigned long long)op, got, found);
            CHECK(!got || memcmp(a, b, 4ull * dim) == 0, "op %llu: row of key %llu differs",
                  (unsigned long long)op, (unsigned long long)key);
            n_find++;
        }
    }
    /* every row, bit for bit */
    uint64_t present = 0;
    for (uint64_t i = 0; i < npool; i++) {
        uint8_t found = 0;
        CHECK_OK(strata_table_lookup(dram, &pool[i], 1, a, &found, 0));
        int got = gpu_ref_find(m, pool[i], b);
        CHECK(got == (found == STRATA_ROW_FOUND) && got == written[i], "key %llu presence",
              (unsigned long long)pool[i]);
        if (got) {
            present++;
            for (uint32_t j = 0; j < dim; j++)
                CHECK(memcmp(&a[j], &b[j], 4) == 0, "key %llu [%u]: DRAM %.9g model %.9g",
                      (unsigned long long)pool[i], j, (double)a[j], (double)b[j]);
        }
    }
    CHECK_OK(gpu_ref_check(m));
    CHECK(gpu_ref_size(m) == present, "size");
    /* dirty export: exactly the keys written, once; then nothing */
    uint64_t *ek = malloc(npool * sizeof(uint64_t));
    float *ev = malloc(npool * dim * sizeof(float));
    CHECK(ek && ev, "alloc");
    uint64_t ne = gpu_ref_export_dirty(m, ek, ev, npool);
    CHECK(ne == present, "export %llu of %llu", (unsigned long long)ne,
          (unsigned long long)present);
    for (uint64_t i = 0; i < ne; i++) {
        uint8_t found = 0;
        CHECK_OK(strata_table_lookup(dram, &ek[i], 1, a, &found, 0));
        CHECK(found == STRATA_ROW_FOUND && memcmp(a, ev + i * dim, 4ull * dim) == 0,
              "exported row of %llu", (unsigned long long)ek[i]);
    }
    CHECK(gpu_ref_export_dirty(m, ek, ev, npool) == 0, "second export is empty");
    gpu_ref_next_step(m);
    CHECK(gpu_ref_apply(m, ek[0], row) == 1, "apply");
    CHECK(gpu_ref_export_dirty(m, ek + 1, ev, npool) == 1 && ek[1] == ek[0], "one dirty row");
    printf("(e) optimizer %d dim %u: %llu ops (%llu assign, %llu apply of which %llu created, "
           "%llu find), %llu rows equal to the DRAM tier\n",
           (int)type, dim, (unsigned long long)nops, (unsigned long long)n_assign,
           (unsigned long long)n_apply, (unsigned long long)n_created,
           (unsigned long long)n_find, (unsigned long long)present);
    free(ek);
    free(ev);
    free(pool);
    free(written);
    gpu_ref_destroy(m);
    strata_table_destroy(dram);
}

/* ------------------------------------------------------------------------ */
/* (f) eviction                                                             */
/* ------------------------------------------------------------------------ */

static void test_eviction(strata_eviction_t policy)
{
    const uint32_t dim = 4;
    gpu_table_config_t cfg;
    memset(&cfg, 0, sizeof(cfg));
    cfg.field_mask = GPU_TABLE_FIELD_DIM | GPU_TABLE_FIELD_CAPACITY | GPU_TABLE_FIELD_EVICTION;
    cfg.dim = dim;
    cfg.capacity = 2 * GPU_BUCKET_SLOTS;
    cfg.eviction = policy;
    gpu_ref_t *m = NULL;
    CHECK_OK(gpu_ref_create(&cfg, &m));
    CHECK(m->nbuckets == 2, "2 buckets");
    uint64_t counts[5] = {0};
    uint64_t recent[64];
    uint32_t nrecent = 0;
    for (int i = 0; i < 6000; i++) {
        gpu_ref_next_step(m);
        /* new keys mostly; LFU/SCORE re-write recent keys to vary scores */
        uint64_t key = (nrecent && test_rng_below(&rng, 4) == 0)
                           ? recent[test_rng_below(&rng, nrecent)]
                           : test_rng_next(&rng) % 1000000;
        const int has_score = policy == STRATA_EVICT_SCORE;
        const uint64_t score =
            gpu_score_of_float(test_rng_float(&rng, -10, 10), (uint32_t)m->step);
        float row[4] = {(float)i, 1, 2, 3};

        /* predict, independently of the model */
        const uint64_t h = core_key_hash(key);
        const uint64_t b = core_bucket1(h, m->nbuckets);
        const uint32_t start = (uint32_t)(h >> 32) & 127u;
        const uint64_t *keys = m->keys + b * GPU_BUCKET_SLOTS;
        const uint64_t *sc = m->scores + b * GPU_BUCKET_SLOTS;
        int present = 0, has_free = 0;
        uint32_t min_slot = 0, min_pos = UINT32_MAX;
        for (uint32_t s = 0; s < GPU_BUCKET_SLOTS; s++) {
            present |= keys[s] == key;
            has_free |= keys[s] == GPU_KEY_EMPTY;
            uint32_t pos = (s - start) & 127u;
            if (min_pos == UINT32_MAX || sc[s] < sc[min_slot] ||
                (sc[s] == sc[min_slot] && pos < min_pos)) {
                min_slot = s;
                min_pos = pos;
            }
        }
        uint64_t new_score = policy == STRATA_EVICT_LFU   ? (1ull << 32) | (uint32_t)m->step
                             : policy == STRATA_EVICT_SCORE ? score
                                                          : m->step;
        int want;
        uint64_t want_evicted = GPU_KEY_EMPTY;
        if (present)
            want = GPU_INSERT_ASSIGNED;
        else if (has_free)
            want = GPU_INSERT_INSERTED;
        else if (policy != STRATA_EVICT_NONE && new_score >= sc[min_slot]) {
            want = GPU_INSERT_EVICTED;
            want_evicted = keys[min_slot];
        } else {
            want = GPU_INSERT_REJECTED;
        }

        uint64_t evicted = 0;
        int got = gpu_ref_insert(m, key, row, NULL, has_score, score, &evicted);
        CHECK(got == want, "policy %d insert %d: got %d want %d", (int)policy, i, got, want);
        CHECK(evicted == want_evicted, "policy %d insert %d: evicted %llu, want %llu",
              (int)policy, i, (unsigned long long)evicted, (unsigned long long)want_evicted);
        if (got == GPU_INSERT_EVICTED)
            CHECK(gpu_ref_slot(m, evicted) < 0, "evicted key gone");
        if (got != GPU_INSERT_REJECTED) {
            float out[4];
            CHECK(gpu_ref_find(m, key, out) && out[0] == (float)i, "new row readable");
            recent[nrecent < 64 ? nrecent++ : (uint32_t)test_rng_below(&rng, 64)] = key;
        } else {
            CHECK(!present && gpu_ref_slot(m, key) < 0, "rejected key absent");
        }
        counts[got]++;
        if (i % 500 == 0)
            CHECK_OK(gpu_ref_check(m));
    }
    CHECK_OK(gpu_ref_check(m));
    CHECK(gpu_ref_size(m) == 2 * GPU_BUCKET_SLOTS, "full");
    if (policy == STRATA_EVICT_NONE)
        CHECK(counts[GPU_INSERT_EVICTED] == 0 && counts[GPU_INSERT_REJECTED] > 0, "NONE");
    else
        CHECK(counts[GPU_INSERT_EVICTED] > 0, "evictions happened");
    if (policy == STRATA_EVICT_LRU)
        CHECK(counts[GPU_INSERT_REJECTED] == 0, "LRU admits every new write");
    CHECK(gpu_ref_insert(m, GPU_KEY_EMPTY, (float[4]){0}, NULL, 0, 0, NULL) ==
              GPU_INSERT_REJECTED,
          "reserved key");
    CHECK(gpu_ref_insert(m, GPU_KEY_LOCKED, (float[4]){0}, NULL, 0, 0, NULL) ==
              GPU_INSERT_REJECTED,
          "reserved key");
    CHECK(!gpu_ref_find(m, GPU_KEY_EMPTY, NULL), "reserved key missing");
    printf("(f) eviction policy %d: assigned %llu inserted %llu evicted %llu rejected %llu, "
           "each as predicted\n",
           (int)policy, (unsigned long long)counts[1], (unsigned long long)counts[2],
           (unsigned long long)counts[3], (unsigned long long)counts[4]);
    gpu_ref_destroy(m);
}

/* ------------------------------------------------------------------------ */
/* (g) memory descriptors, stub, registration                               */
/* ------------------------------------------------------------------------ */

static void test_memdesc(void)
{
    core_memdesc_t d = {.addr = (void *)0x1000, .len = 64, .memtype = CORE_MEMTYPE_HOST};
    const uint64_t host = CORE_MEMTYPE_BIT(CORE_MEMTYPE_HOST);
    const uint64_t cuda = host | CORE_MEMTYPE_BIT(CORE_MEMTYPE_CUDA);
    CHECK(core_memdesc_path(&d, host) == CORE_MEM_PATH_DIRECT, "host direct");
    CHECK(core_memdesc_path(&d, 0) == CORE_MEM_PATH_DIRECT, "host always direct");
    d.memtype = CORE_MEMTYPE_CUDA;
    CHECK(core_memdesc_path(&d, host) == CORE_MEM_PATH_BOUNCE, "cuda without support: bounce");
    CHECK(core_memdesc_path(&d, cuda) == CORE_MEM_PATH_DIRECT, "cuda with support: direct");
    d.memtype = CORE_MEMTYPE_CUDA_MANAGED;
    CHECK(core_memdesc_path(&d, cuda) == CORE_MEM_PATH_BOUNCE, "managed needs its own bit");
    d.memtype = (core_memtype_t)9;
    CHECK(core_memdesc_path(&d, ~0ull) == CORE_MEM_PATH_BOUNCE, "unknown: bounce");

    /* the stub (what strata_gpu is without CUDA) */
    gpu_table_config_t cfg = {.field_mask = GPU_TABLE_FIELD_DIM | GPU_TABLE_FIELD_CAPACITY,
                              .dim = 8,
                              .capacity = 128};
    gpu_table_t *t = NULL;
    CHECK(gpu_table_create(&cfg, &t) == STRATA_ERR_UNSUPPORTED && t == NULL, "stub create");
    CHECK(strstr(strata_last_error(), "without CUDA") != NULL, "stub says why: %s",
          strata_last_error());
    int n = 0;
    CHECK(gpu_device_count(&n) == STRATA_ERR_UNSUPPORTED, "stub device count");
    gpu_dedup_t *dd = NULL;
    CHECK(gpu_dedup_create(16, &dd) == STRATA_ERR_UNSUPPORTED, "stub dedup");
    gpu_bounce_t *bb = NULL;
    CHECK(gpu_bounce_create(16, &bb) == STRATA_ERR_UNSUPPORTED, "stub bounce");
    core_memtype_t mt = CORE_MEMTYPE_CUDA;
    CHECK_OK(gpu_ptr_memtype(&n, &mt));
    CHECK(mt == CORE_MEMTYPE_HOST, "stub: host memory");

#if STRATA_TEST_GPU_RDMA
    rdma_ctx_t *ctx = NULL;
    strata_status_t st = rdma_ctx_create(&ctx);
    if (st != STRATA_OK) {
        printf("(g) rdma: no UCX context here (%s); registration not checked\n",
               strata_last_error());
    } else {
        const uint64_t types = rdma_ctx_memtypes(ctx);
        CHECK(types & CORE_MEMTYPE_BIT(CORE_MEMTYPE_HOST), "host always");
        void *buf = calloc(1, 8192);
        CHECK(buf, "alloc");
        core_memdesc_t hd = {.addr = buf, .len = 8192, .memtype = CORE_MEMTYPE_HOST,
                             .device = -1};
        core_region_t reg;
        memset(&reg, 0, sizeof(reg));
        CHECK_OK(rdma_mem_register(ctx, &hd, &reg));
        CHECK(reg.base == buf && reg.len == 8192 && rdma_region_of(&reg)->rkey_len > 0,
              "registered with a packed rkey");
        rdma_mem_deregister(ctx, &reg);
        CHECK(reg.handle == NULL, "deregistered");
        core_memdesc_t cd = {.addr = buf, .len = 8192, .memtype = CORE_MEMTYPE_CUDA,
                             .device = 0};
        const int has_cuda = (types & CORE_MEMTYPE_BIT(CORE_MEMTYPE_CUDA)) != 0;
        if (!has_cuda) {
            CHECK(rdma_mem_register(ctx, &cd, &reg) == STRATA_ERR_UNSUPPORTED,
                  "CUDA memory refused without CUDA support");
            CHECK(core_memdesc_path(&cd, types) == CORE_MEM_PATH_BOUNCE, "bounce path");
        }
        core_memdesc_t empty = {.addr = NULL, .len = 0, .memtype = CORE_MEMTYPE_HOST};
        CHECK(rdma_mem_register(ctx, &empty, &reg) == STRATA_ERR_INVALID_PARAM, "empty desc");
        printf("(g) rdma: UCX memory types 0x%llx, CUDA %s -> HBM served %s\n",
               (unsigned long long)types, has_cuda ? "yes" : "no",
               has_cuda ? "directly (GPUDirect)" : "through a bounce buffer");
        free(buf);
        rdma_ctx_destroy(ctx);
    }
#else
    printf("(g) rdma: built without UCX; registration not checked\n");
#endif
    printf("(g) memory descriptors and stub ok\n");
}

int main(void)
{
    test_rng_seed(&rng, test_seed(20240611));
    test_placement();
    test_probe();
    test_scores();
    test_optim_rows();
    const uint64_t full = test_scaled(100000), part = test_scaled(20000);
    compare_model_dram(STRATA_OPT_SGD, full);
    compare_model_dram(STRATA_OPT_ADAGRAD, full);
    compare_model_dram(STRATA_OPT_ADAM, full);
    compare_model_dram(STRATA_OPT_ROWWISE_ADAGRAD, part);
    compare_model_dram(STRATA_OPT_AMSGRAD, part);
    compare_model_dram(STRATA_OPT_FTRL, part);
    test_eviction(STRATA_EVICT_LRU);
    test_eviction(STRATA_EVICT_LFU);
    test_eviction(STRATA_EVICT_SCORE);
    test_eviction(STRATA_EVICT_NONE);
    test_memdesc();
    printf("test_gpu_logic: ok\n");
    return 0;
}
