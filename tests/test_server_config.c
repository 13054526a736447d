/*
 * tests/test_server_config.c — strata-server's configuration: a full file
 * and the same keys as flags parse to the expected values; every kind of
 * bad input is refused with INVALID_PARAM (or NOT_FOUND for a missing
 * file) and a message naming the file, the line and the key.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "server/server.h"
#include "testutil.h"

static char g_path[64];

static strata_status_t load_text(srv_config_t *c, const char *text)
{
    FILE *f = fopen(g_path, "w");
    CHECK(f, "temp file");
    fputs(text, f);
    fclose(f);
    srv_config_init(c);
    return srv_config_load(c, g_path);
}

static void expect_bad_st(const char *text, const char *needle, strata_status_t want)
{
    srv_config_t c;
    strata_status_t st = load_text(&c, text);
    CHECK(st == want, "config \"%s\" gave %s", text, strata_status_string(st));
    CHECK(strstr(strata_last_error(), needle) && strstr(strata_last_error(), g_path),
          "message \"%s\" lacks \"%s\" or the path", strata_last_error(), needle);
}

static void expect_bad(const char *text, const char *needle)
{
    expect_bad_st(text, needle, STRATA_ERR_INVALID_PARAM);
}

int main(void)
{
    snprintf(g_path, sizeof(g_path), "/tmp/strata-cfg-%d.conf", (int)getpid());
    srv_config_t c;
    CHECK_OK(load_text(&c,
                       "# a full file\n"
                       "listen = 127.0.0.1:4242\n"
                       "index = 1   # second server\n"
                       "nservers = 3\n"
                       "secret = s3cret\n"
                       "max_keys = 8K\n"
                       "credits = 8\n"
                       "idle_spin_us = 50\n"
                       "\n"
                       "[table ads]\n"
                       "dim = 32\n"
                       "capacity = 2M\n"
                       "shards_per_server = 4\n"
                       "optimizer = ftrl\n"
                       "lr = 0.5\n"
                       "l1 = 0.01\n"
                       "init = normal\n"
                       "init_b = 0.02\n"
                       "eviction = lfu\n"
                       "ttl = 3600\n"
                       "[table small]\n"));
    CHECK(strcmp(c.listen_addr, "127.0.0.1") == 0 && c.port == 4242, "listen");
    CHECK(c.server_index == 1 && c.nservers == 3, "index");
    CHECK(c.secret_len == 6 && memcmp(c.secret, "s3cret", 6) == 0, "secret");
    CHECK(c.max_keys == 8000 && c.credits == 8 && c.idle_spin_us == 50, "limits");
    CHECK(c.ntables == 2, "%u tables", c.ntables);
    const srv_table_config_t *t = &c.tables[0];
    CHECK(strcmp(t->name, "ads") == 0 && t->schema.dim == 32 && t->schema.capacity == 2000000 &&
              t->shards_per_server == 4,
          "table ads");
    CHECK(t->schema.optimizer.type == STRATA_OPT_FTRL && t->schema.optimizer.lr == 0.5f &&
              t->schema.optimizer.l1 == 0.01f,
          "optimizer");
    CHECK(t->schema.initializer.type == STRATA_INIT_NORMAL && t->schema.eviction == STRATA_EVICT_LFU &&
              t->schema.ttl_seconds == 3600,
          "init/eviction/ttl");
    CHECK(strcmp(c.tables[1].name, "small") == 0 && c.tables[1].schema.dim == 64,
          "a table with defaults");

    /* flags: the same keys */
    srv_config_init(&c);
    CHECK_OK(srv_config_set(&c, NULL, "port", "0"));
    CHECK_OK(srv_config_add_table_spec(&c, "name=emb,dim=8,capacity=100,optimizer=adam,lr=0.001"));
    CHECK(c.port == 0 && c.ntables == 1 && c.tables[0].schema.dim == 8 &&
              c.tables[0].schema.optimizer.type == STRATA_OPT_ADAM,
          "flags");
    CHECK(srv_config_add_table_spec(&c, "dim=8") == STRATA_ERR_INVALID_PARAM, "spec without name");
    CHECK(srv_config_add_table_spec(&c, "name=x,dim") == STRATA_ERR_INVALID_PARAM, "no '='");
    CHECK(srv_config_set(&c, NULL, "nonsense", "1") == STRATA_ERR_INVALID_PARAM, "unknown key");

    /* bad files: each refused, naming what is wrong */
    expect_bad("listen = 127.0.0.1\n", "HOST:PORT");
    expect_bad("port = 70000\n", "port");
    expect_bad("port = -1\n", "port");
    expect_bad("max_keys = 0\n", "max_keys");
    expect_bad("credits = lots\n", "credits");
    expect_bad("frobnicate = 1\n", "frobnicate");
    expect_bad("just some words\n", "key = value");
    expect_bad("[tabel x]\n", "[table NAME]");
    expect_bad("[table t]\ndim = 12x\n", "dim");
    expect_bad("[table t]\noptimizer = lamb\n", "optimizer");
    expect_bad("[table t]\ninit = xavier\n", "init");
    expect_bad("[table t]\neviction = random\n", "eviction");
    expect_bad("[table t]\nlr = fast\n", "lr");
    expect_bad("[table t]\ncolour = blue\n", "colour");
    expect_bad_st("secret_file = /nonexistent/secret\n", "secret", STRATA_ERR_NOT_FOUND);
    /* line numbers */
    expect_bad("port = 1\n\n# c\nnservers = x\n", ":4:");

    srv_config_init(&c);
    CHECK(srv_config_load(&c, "/nonexistent/strata.conf") == STRATA_ERR_NOT_FOUND,
          "missing file: %s", strata_last_error());
    unlink(g_path);
    return 0;
}
