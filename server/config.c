/*
 * server/config.c — strata-server configuration: defaults, the config file
 * ("key = value", "# comment", "[table NAME]" sections) and the same keys
 * given as flags. docs/operations.md lists every key.
 *
 * Threading: not thread-safe (called once at start).
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/status.h"
#include "rdma/auth.h"
#include "server/server.h"

void srv_config_init(srv_config_t *c)
{
    memset(c, 0, sizeof(*c));
    c->port = 13337;
    c->nservers = 1;
    c->max_keys = 65536;
    c->credits = 32;
    c->idle_spin_us = 200;
}

static strata_status_t parse_u64(const char *key, const char *v, uint64_t max, uint64_t *out)
{
    char *end;
    errno = 0;
    if (!*v || *v == '-')
        return core_fail(STRATA_ERR_INVALID_PARAM, "%s = \"%s\": expected a number", key, v);
    unsigned long long x = strtoull(v, &end, 0);
    uint64_t mul = 1;
    if (*end == 'K' || *end == 'k')
        mul = 1000, end++;
    else if (*end == 'M' || *end == 'm')
        mul = 1000000, end++;
    else if (*end == 'G' || *end == 'g')
        mul = 1000000000, end++;
    if (errno || *end || x > max / mul)
        return core_fail(STRATA_ERR_INVALID_PARAM, "%s = \"%s\": expected a number up to %" PRIu64,
                         key, v, max);
    *out = x * mul;
    return STRATA_OK;
}

static strata_status_t parse_f(const char *key, const char *v, float *out)
{
    char *end;
    errno = 0;
    float x = strtof(v, &end);
    if (errno || !*v || *end)
        return core_fail(STRATA_ERR_INVALID_PARAM, "%s = \"%s\": expected a number", key, v);
    *out = x;
    return STRATA_OK;
}

static int parse_enum(const char *v, const char *const *names, int n)
{
    for (int i = 0; i < n; i++)
        if (strcasecmp(v, names[i]) == 0)
            return i;
    return -1;
}

static strata_status_t table_set(srv_table_config_t *t, const char *key, const char *v)
{
    strata_table_schema_t *s = &t->schema;
    strata_optimizer_params_t *o = &s->optimizer;
    uint64_t u;
    strata_status_t st = STRATA_OK;
    static const char *const opts[] = {"sgd", "adagrad", "rowwise_adagrad", "adam", "amsgrad",
                                       "ftrl"};
    static const char *const inits[] = {"zeros", "constant", "uniform", "normal", "trunc_normal"};
    static const char *const evs[] = {"none", "lru", "lfu", "score"};
#define U(field, max, bit)                                  \
    do {                                                    \
        st = parse_u64(key, v, max, &u);                    \
        if (st == STRATA_OK) {                              \
            field = u;                                      \
            s->field_mask |= bit;                           \
        }                                                   \
    } while (0)
#define OF(field, bit)                                      \
    do {                                                    \
        st = parse_f(key, v, &o->field);                    \
        o->field_mask |= bit;                               \
        s->field_mask |= STRATA_SCHEMA_FIELD_OPTIMIZER;     \
    } while (0)
    if (!strcmp(key, "name")) {
        if (strlen(v) > STRATA_NAME_MAX)
            return core_fail(STRATA_ERR_INVALID_PARAM, "name \"%s\": at most %u characters", v,
                             STRATA_NAME_MAX);
        snprintf(t->name, sizeof(t->name), "%s", v);
        s->name = t->name;
        s->field_mask |= STRATA_SCHEMA_FIELD_NAME;
    } else if (!strcmp(key, "dim")) {
        U(s->dim, UINT32_MAX, STRATA_SCHEMA_FIELD_DIM);
    } else if (!strcmp(key, "capacity")) {
        U(s->capacity, UINT64_MAX, STRATA_SCHEMA_FIELD_CAPACITY);
    } else if (!strcmp(key, "dram_budget")) {
        st = parse_u64(key, v, UINT64_MAX, &u);
        if (st == STRATA_OK)
            t->dram_budget = u;
    } else if (!strcmp(key, "shards_per_server")) {
        st = parse_u64(key, v, STRATA_SHARDS_MAX, &u);
        if (st == STRATA_OK)
            t->shards_per_server = (uint32_t)u;
    } else if (!strcmp(key, "admission")) {
        U(s->admission_threshold, UINT32_MAX, STRATA_SCHEMA_FIELD_ADMISSION);
    } else if (!strcmp(key, "ttl")) {
        U(s->ttl_seconds, UINT64_MAX / 1000000000ull, STRATA_SCHEMA_FIELD_TTL);
    } else if (!strcmp(key, "optimizer")) {
        int e = parse_enum(v, opts, 6);
        if (e < 0)
            return core_fail(STRATA_ERR_INVALID_PARAM,
                             "optimizer = \"%s\": one of sgd, adagrad, rowwise_adagrad, adam, "
                             "amsgrad, ftrl",
                             v);
        o->type = (strata_optimizer_type_t)e;
        s->field_mask |= STRATA_SCHEMA_FIELD_OPTIMIZER;
    } else if (!strcmp(key, "lr")) {
        OF(lr, STRATA_OPT_FIELD_LR);
    } else if (!strcmp(key, "eps")) {
        OF(eps, STRATA_OPT_FIELD_EPS);
    } else if (!strcmp(key, "beta1")) {
        OF(beta1, STRATA_OPT_FIELD_BETA1);
    } else if (!strcmp(key, "beta2")) {
        OF(beta2, STRATA_OPT_FIELD_BETA2);
    } else if (!strcmp(key, "weight_decay")) {
        OF(weight_decay, STRATA_OPT_FIELD_WEIGHT_DECAY);
    } else if (!strcmp(key, "initial_accumulator")) {
        OF(initial_accumulator, STRATA_OPT_FIELD_INITIAL_ACCUMULATOR);
    } else if (!strcmp(key, "l1")) {
        OF(l1, STRATA_OPT_FIELD_L1);
    } else if (!strcmp(key, "l2")) {
        OF(l2, STRATA_OPT_FIELD_L2);
    } else if (!strcmp(key, "ftrl_beta")) {
        OF(ftrl_beta, STRATA_OPT_FIELD_FTRL_BETA);
    } else if (!strcmp(key, "init")) {
        int e = parse_enum(v, inits, 5);
        if (e < 0)
            return core_fail(STRATA_ERR_INVALID_PARAM,
                             "init = \"%s\": one of zeros, constant, uniform, normal, "
                             "trunc_normal",
                             v);
        s->initializer.type = (strata_init_type_t)e;
        s->field_mask |= STRATA_SCHEMA_FIELD_INITIALIZER;
    } else if (!strcmp(key, "init_a")) {
        st = parse_f(key, v, &s->initializer.a);
        s->field_mask |= STRATA_SCHEMA_FIELD_INITIALIZER;
    } else if (!strcmp(key, "init_b")) {
        st = parse_f(key, v, &s->initializer.b);
        s->field_mask |= STRATA_SCHEMA_FIELD_INITIALIZER;
    } else if (!strcmp(key, "seed")) {
        st = parse_u64(key, v, UINT64_MAX, &s->initializer.seed);
        s->field_mask |= STRATA_SCHEMA_FIELD_INITIALIZER;
    } else if (!strcmp(key, "eviction")) {
        int e = parse_enum(v, evs, 4);
        if (e < 0)
            return core_fail(STRATA_ERR_INVALID_PARAM,
                             "eviction = \"%s\": one of none, lru, lfu, score", v);
        s->eviction = (strata_eviction_t)e;
        s->field_mask |= STRATA_SCHEMA_FIELD_EVICTION;
    } else {
        return core_fail(STRATA_ERR_INVALID_PARAM, "unknown table setting \"%s\"", key);
    }
#undef U
#undef OF
    return st;
}

static srv_table_config_t *table_new(srv_config_t *c)
{
    if (c->ntables == SRV_MAX_TABLES) {
        core_fail(STRATA_ERR_INVALID_PARAM, "at most %u tables", SRV_MAX_TABLES);
        return NULL;
    }
    srv_table_config_t *t = &c->tables[c->ntables++];
    memset(t, 0, sizeof(*t));
    t->shards_per_server = 1;
    /* defaults for a table that only names itself: a usable dim-64 table */
    t->schema.field_mask = STRATA_SCHEMA_FIELD_DIM | STRATA_SCHEMA_FIELD_CAPACITY;
    t->schema.dim = 64;
    t->schema.capacity = 1000000;
    return t;
}

strata_status_t srv_config_set(srv_config_t *c, srv_table_config_t *t, const char *key,
                               const char *v)
{
    uint64_t u;
    strata_status_t st = STRATA_OK;
    if (t)
        return table_set(t, key, v);
    if (!strcmp(key, "listen")) {
        const char *colon = strrchr(v, ':');
        if (!colon)
            return core_fail(STRATA_ERR_INVALID_PARAM, "listen = \"%s\": expected HOST:PORT", v);
        size_t hl = (size_t)(colon - v);
        if (hl >= sizeof(c->listen_addr))
            return core_fail(STRATA_ERR_INVALID_PARAM, "listen = \"%s\": host too long", v);
        memcpy(c->listen_addr, v, hl);
        c->listen_addr[hl] = '\0';
        st = parse_u64(key, colon + 1, 65535, &u);
        if (st == STRATA_OK)
            c->port = (uint16_t)u;
    } else if (!strcmp(key, "port")) {
        st = parse_u64(key, v, 65535, &u);
        if (st == STRATA_OK)
            c->port = (uint16_t)u;
    } else if (!strcmp(key, "port_file")) {
        snprintf(c->port_file, sizeof(c->port_file), "%s", v);
    } else if (!strcmp(key, "server_index") || !strcmp(key, "index")) {
        st = parse_u64(key, v, 65535, &u);
        if (st == STRATA_OK)
            c->server_index = (uint32_t)u;
    } else if (!strcmp(key, "nservers")) {
        st = parse_u64(key, v, 65535, &u);
        if (st == STRATA_OK)
            c->nservers = (uint32_t)u;
    } else if (!strcmp(key, "secret")) {
        size_t n = strlen(v);
        if (n >= sizeof(c->secret))
            return core_fail(STRATA_ERR_INVALID_PARAM, "secret: at most %zu bytes",
                             sizeof(c->secret) - 1);
        memcpy(c->secret, v, n + 1);
        c->secret_len = n;
    } else if (!strcmp(key, "secret_file")) {
        st = auth_read_secret(v, c->secret, sizeof(c->secret), &c->secret_len);
    } else if (!strcmp(key, "max_keys")) {
        st = parse_u64(key, v, 1u << 24, &u);
        if (st == STRATA_OK && u == 0)
            st = core_fail(STRATA_ERR_INVALID_PARAM, "max_keys must be >= 1");
        if (st == STRATA_OK)
            c->max_keys = (uint32_t)u;
    } else if (!strcmp(key, "credits")) {
        st = parse_u64(key, v, 4096, &u);
        if (st == STRATA_OK && u == 0)
            st = core_fail(STRATA_ERR_INVALID_PARAM, "credits must be >= 1");
        if (st == STRATA_OK)
            c->credits = (uint32_t)u;
    } else if (!strcmp(key, "idle_spin_us")) {
        st = parse_u64(key, v, 10000000, &u);
        if (st == STRATA_OK)
            c->idle_spin_us = (uint32_t)u;
    } else if (!strcmp(key, "initial_buckets")) {
        st = parse_u64(key, v, 1ull << 40, &u);
        if (st == STRATA_OK)
            c->initial_buckets = u;
    } else if (!strcmp(key, "nvme_dir")) {
        snprintf(c->nvme_dir, sizeof(c->nvme_dir), "%s", v);
    } else if (!strcmp(key, "snapshot_dir")) {
        snprintf(c->snapshot_dir, sizeof(c->snapshot_dir), "%s", v);
    } else if (!strcmp(key, "verbose")) {
        st = parse_u64(key, v, 9, &u);
        if (st == STRATA_OK)
            c->verbose = (int)u;
    } else {
        return core_fail(STRATA_ERR_INVALID_PARAM, "unknown setting \"%s\"", key);
    }
    return st;
}

static char *trim(char *p)
{
    while (isspace((unsigned char)*p))
        p++;
    char *e = p + strlen(p);
    while (e > p && isspace((unsigned char)e[-1]))
        *--e = '\0';
    return p;
}

strata_status_t srv_config_load(srv_config_t *c, const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return core_fail_errno(errno, "config file %s", path);
    char line[1024];
    unsigned lineno = 0;
    srv_table_config_t *t = NULL;
    strata_status_t st = STRATA_OK;
    while (st == STRATA_OK && fgets(line, sizeof(line), f)) {
        lineno++;
        char *hash = strchr(line, '#');
        if (hash)
            *hash = '\0';
        char *p = trim(line);
        if (!*p)
            continue;
        if (*p == '[') {
            char name[STRATA_NAME_MAX + 2];
            if (sscanf(p, "[table %64[^] ]]", name) != 1) {
                st = core_fail(STRATA_ERR_INVALID_PARAM,
                               "%s:%u: expected \"[table NAME]\"", path, lineno);
                break;
            }
            t = table_new(c);
            if (!t) {
                st = STRATA_ERR_INVALID_PARAM;
                break;
            }
            st = table_set(t, "name", name);
        } else {
            char *eq = strchr(p, '=');
            if (!eq) {
                st = core_fail(STRATA_ERR_INVALID_PARAM, "%s:%u: expected \"key = value\"", path,
                               lineno);
                break;
            }
            *eq = '\0';
            st = srv_config_set(c, t, trim(p), trim(eq + 1));
        }
        if (st != STRATA_OK) {
            char msg[400];
            snprintf(msg, sizeof(msg), "%s", strata_last_error());
            st = core_fail(st, "%s:%u: %s", path, lineno, msg);
        }
    }
    fclose(f);
    return st;
}

strata_status_t srv_config_add_table_spec(srv_config_t *c, const char *spec)
{
    srv_table_config_t *t = table_new(c);
    if (!t)
        return STRATA_ERR_INVALID_PARAM;
    char buf[1024];
    snprintf(buf, sizeof(buf), "%s", spec);
    char *save = NULL;
    for (char *kv = strtok_r(buf, ",", &save); kv; kv = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(kv, '=');
        if (!eq)
            return core_fail(STRATA_ERR_INVALID_PARAM, "table spec \"%s\": expected key=value",
                             kv);
        *eq = '\0';
        strata_status_t st = table_set(t, trim(kv), trim(eq + 1));
        if (st != STRATA_OK)
            return st;
    }
    if (!t->name[0])
        return core_fail(STRATA_ERR_INVALID_PARAM, "table spec \"%s\": needs name=", spec);
    return STRATA_OK;
}
