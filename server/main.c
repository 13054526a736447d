/*
 * server/main.c — the strata-server command line.
 *
 *   strata-server [--config FILE] [--KEY VALUE]... [--table SPEC]...
 *
 * Every config-file key is also a flag (--port 13337, --secret-file F,
 * --index 0 --nservers 2, ...); flags after --config override the file.
 * SIGTERM and SIGINT drain and stop (docs/operations.md).
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/server.h"

static srv_t *g_srv;

static void on_signal(int sig)
{
    (void)sig;
    if (g_srv)
        srv_stop(g_srv);
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: strata-server [--config FILE] [--KEY VALUE]... [--table SPEC]...\n"
            "  --listen HOST:PORT | --port N   where clients connect (default 0.0.0.0:13337)\n"
            "  --port-file F                   write the bound port to F (with --port 0)\n"
            "  --index I --nservers N          this server's place in the cluster\n"
            "  --secret-file F | --secret S    shared secret clients must prove\n"
            "  --snapshot-dir D                save tables on SIGTERM, restore at start\n"
            "  --max-keys N --credits N --idle-spin-us N --verbose 1\n"
            "  --table name=NAME,dim=D,capacity=C[,optimizer=adagrad,lr=0.01,...]\n"
            "See docs/operations.md for every key.\n");
}

int main(int argc, char **argv)
{
    srv_config_t cfg;
    srv_config_init(&cfg);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        }
        if (strncmp(a, "--", 2) != 0 || i + 1 >= argc) {
            fprintf(stderr, "strata-server: bad argument \"%s\"\n", a);
            usage(stderr);
            return 2;
        }
        const char *v = argv[++i];
        strata_status_t st;
        char key[64];
        snprintf(key, sizeof(key), "%s", a + 2);
        for (char *p = key; *p; p++)
            if (*p == '-')
                *p = '_';
        if (!strcmp(key, "config"))
            st = srv_config_load(&cfg, v);
        else if (!strcmp(key, "table"))
            st = srv_config_add_table_spec(&cfg, v);
        else
            st = srv_config_set(&cfg, NULL, key, v);
        if (st != STRATA_OK) {
            fprintf(stderr, "strata-server: %s: %s\n", strata_status_string(st),
                    strata_last_error());
            return 2;
        }
    }
    srv_t *s;
    strata_status_t st = srv_create(&cfg, &s);
    if (st != STRATA_OK) {
        fprintf(stderr, "strata-server: %s: %s\n", strata_status_string(st), strata_last_error());
        return 1;
    }
    g_srv = s;
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    st = srv_run(s);
    g_srv = NULL;
    srv_destroy(s);
    return st == STRATA_OK ? 0 : 1;
}
