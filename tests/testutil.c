/* tests/testutil.c — shared test helpers (see testutil.h). */
#include "testutil.h"

#include <string.h>

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

void test_rng_seed(test_rng_t *r, uint64_t seed)
{
    for (int i = 0; i < 4; i++) {
        seed += 0x9e3779b97f4a7c15ULL;
        uint64_t z = seed;
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
        r->s[i] = z ^ (z >> 31);
    }
}

uint64_t test_rng_next(test_rng_t *r)
{
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

uint64_t test_rng_below(test_rng_t *r, uint64_t n)
{
    return (uint64_t)(((unsigned __int128)test_rng_next(r) * n) >> 64);
}

float test_rng_float(test_rng_t *r, float lo, float hi)
{
    double u = (double)(test_rng_next(r) >> 11) * 0x1.0p-53;
    return (float)(lo + (hi - lo) * u);
}

uint64_t test_seed(uint64_t dflt)
{
    const char *s = getenv("STRATA_TEST_SEED");
    uint64_t seed = s ? strtoull(s, NULL, 0) : dflt;
    printf("seed %llu (STRATA_TEST_SEED to replay)\n", (unsigned long long)seed);
    return seed;
}

uint64_t test_scaled(uint64_t n)
{
    const char *s = getenv("STRATA_TEST_SCALE");
    double f = s ? strtod(s, NULL) : 1.0;
    if (f <= 0)
        f = 1.0;
    return (uint64_t)((double)n * f);
}

strata_table_params_t test_params(const char *name, uint32_t dim, uint64_t capacity,
                                  strata_optimizer_type_t opt)
{
    strata_table_params_t p;
    memset(&p, 0, sizeof(p));
    p.field_mask = STRATA_TABLE_PARAM_FIELD_SCHEMA | STRATA_TABLE_PARAM_FIELD_HUGE_PAGES;
    p.huge_pages = 0;
    p.schema.field_mask = STRATA_SCHEMA_FIELD_NAME | STRATA_SCHEMA_FIELD_DIM |
                          STRATA_SCHEMA_FIELD_CAPACITY | STRATA_SCHEMA_FIELD_OPTIMIZER;
    p.schema.name = name;
    p.schema.dim = dim;
    p.schema.capacity = capacity;
    p.schema.optimizer.type = opt;
    return p;
}

strata_table_t *test_reference_table(const strata_table_schema_t *s)
{
    strata_table_params_t p;
    memset(&p, 0, sizeof(p));
    p.field_mask = STRATA_TABLE_PARAM_FIELD_SCHEMA;
    p.schema = *s;
    p.schema.nshards = 1;
    strata_table_t *t = NULL;
    CHECK_OK(strata_table_create(&p, &t));
    return t;
}

strata_table_schema_t test_cluster_schema(const char *name, uint32_t dim, uint64_t capacity,
                                          uint32_t shards, strata_optimizer_type_t opt, float lr,
                                          uint64_t seed)
{
    strata_table_schema_t s;
    memset(&s, 0, sizeof(s));
    s.field_mask = STRATA_SCHEMA_FIELD_NAME | STRATA_SCHEMA_FIELD_DIM |
                   STRATA_SCHEMA_FIELD_CAPACITY | STRATA_SCHEMA_FIELD_OPTIMIZER |
                   STRATA_SCHEMA_FIELD_INITIALIZER | STRATA_SCHEMA_FIELD_NSHARDS;
    s.name = name;
    s.dim = dim;
    s.capacity = capacity;
    s.nshards = shards;
    s.optimizer.type = opt;
    s.optimizer.field_mask = STRATA_OPT_FIELD_LR;
    s.optimizer.lr = lr;
    s.initializer.type = STRATA_INIT_UNIFORM;
    s.initializer.a = -0.1f;
    s.initializer.b = 0.1f;
    s.initializer.seed = seed;
    return s;
}
