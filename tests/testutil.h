/*
 * tests/testutil.h — the few helpers every test program shares.
 *
 * CHECK(cond, fmt, ...) prints file:line and the message and exits 1 when
 * cond is false. Tests exit 0 on success, 77 to skip.
 */
#ifndef STRATA_TESTUTIL_H
#define STRATA_TESTUTIL_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "strata.h"

#define TEST_SKIP 77

#define CHECK(cond, ...)                                                          \
    do {                                                                          \
        if (!(cond)) {                                                            \
            fprintf(stderr, "%s:%d: CHECK(%s) failed: ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                                         \
            fprintf(stderr, "\n");                                                \
            exit(1);                                                              \
        }                                                                         \
    } while (0)

/** CHECK that a status is STRATA_OK, printing its name and last error. */
#define CHECK_OK(expr)                                                            \
    do {                                                                          \
        strata_status_t st_ = (expr);                                             \
        CHECK(st_ == STRATA_OK, "%s -> %s (%s)", #expr, strata_status_string(st_), \
              strata_last_error());                                               \
    } while (0)

/** Deterministic PRNG (xoshiro256**) for reproducible tests. */
typedef struct test_rng {
    uint64_t s[4];
} test_rng_t;

void test_rng_seed(test_rng_t *r, uint64_t seed);
uint64_t test_rng_next(test_rng_t *r);
/** Uniform in [0, n). */
uint64_t test_rng_below(test_rng_t *r, uint64_t n);
/** Uniform float in [lo, hi). */
float test_rng_float(test_rng_t *r, float lo, float hi);

/** Seed from STRATA_TEST_SEED, else the given default; prints it so a
 *  failure can be replayed. */
uint64_t test_seed(uint64_t dflt);

/** Iteration count scaled by STRATA_TEST_SCALE (default 1; soak runs set
 *  it higher). */
uint64_t test_scaled(uint64_t n);

/** A minimal table schema (dim, capacity, optimizer) for tests. */
strata_table_params_t test_params(const char *name, uint32_t dim, uint64_t capacity,
                                  strata_optimizer_type_t opt);

/** A local one-shard table with schema s (borrowed), to check a remote
 *  table against; CHECKs that it was made. Destroy with
 *  strata_table_destroy. */
strata_table_t *test_reference_table(const strata_table_schema_t *s);

/** The schema the cluster tests share: name, dim, capacity, shards (per
 *  server), an optimizer with lr, and UNIFORM(-0.1, 0.1) rows seeded with
 *  seed. name is borrowed. */
strata_table_schema_t test_cluster_schema(const char *name, uint32_t dim, uint64_t capacity,
                                          uint32_t shards, strata_optimizer_type_t opt, float lr,
                                          uint64_t seed);

#endif
