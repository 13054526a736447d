/*
 * perf/bench_peers.c — Redis and memcached read throughput on a Strata
 * workload, standalone (perf/peer_kv.c does the work).
 *
 *   bench_peers [--value-bytes 256] [--batch 16] [--pipeline 16]
 *               [--connections 50] [--keys 1000000] [--seconds 5]
 *               [--warmup 1] [--zipf 0] [--stream 4194304]
 *               [--server-cpu 1] [--client-cpu 0] [--peers redis,memcached]
 *
 * Keys 0..keys-1 are loaded; the read stream (--stream entries, cycled) is
 * drawn before any server starts, uniformly or from Zipf(s) over ranks
 * (rejection-inversion, W. Hörmann and G. Derflinger 1996, the sampler
 * perf/bench_core uses); a rank becomes a key by the bijection
 * rank * a + b mod keys, so hot keys are not the first ones loaded. Both
 * peers read the same stream from its start.
 *
 * Output: one JSON line per peer on stdout with the configuration and the
 * figures ("status": ok / skipped / failed, "note" says why). The server
 * runs on --server-cpu and the client thread on --client-cpu (defaults 1
 * and 0 when the machine has two CPUs or more, else unpinned; -1 = none).
 * Exit status: 0 when every peer ran or was skipped and at least one ran,
 * 77 when all were skipped, 1 on a failure.
 *
 * Threading: one thread.
 */
#define _GNU_SOURCE
#include <getopt.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "peer_kv.h"
#include "perf_util.h"

typedef struct options {
    uint32_t value_bytes;   /* bytes per value */
    uint32_t batch;         /* keys per request */
    uint32_t pipeline;      /* requests in flight per connection */
    uint32_t connections;   /* client connections */
    uint64_t keys;          /* keys loaded */
    size_t stream;          /* entries in the read stream */
    double seconds;         /* timed window */
    double warmup;          /* untimed reading first */
    double zipf_s;          /* Zipf exponent, 0 = uniform */
    int server_cpu;         /* server's CPU, -1 none */
    int client_cpu;         /* client thread's CPU, -1 none */
    char peers[128];        /* comma-separated peer names */
} options_t;

static void usage(const char *argv0)
{
    fprintf(stderr,
            "usage: %s [--value-bytes B] [--batch K] [--pipeline P] [--connections C]\n"
            "          [--keys N] [--seconds S] [--warmup S] [--zipf S] [--stream N]\n"
            "          [--server-cpu CPU] [--client-cpu CPU] [--peers redis,memcached]\n",
            argv0);
}

/** The read stream: len keys in [0, n). Returns NULL when out of memory;
 *  *top1 gets the share of the most frequent rank. */
static uint64_t *stream_make(size_t len, uint64_t n, double zipf_s, double *top1)
{
    uint64_t *keys = malloc(len * sizeof(uint64_t));
    if (!keys)
        return NULL;
    uint64_t rng = 0x853c49e6748fea9bull ^ n;
    uint64_t a = n > 1 ? 0x9e3779b97f4a7c15ull % n : 1, b = n > 1 ? 0x2545f4914f6cdd1dull % n : 0;
    if (a == 0)
        a = 1;
    while (perf_gcd_u64(a, n) != 1)
        a++;
    perf_zipf_t z;
    memset(&z, 0, sizeof(z));
    if (zipf_s > 0)
        perf_zipf_init(&z, n, zipf_s);
    size_t top = 0;
    for (size_t i = 0; i < len; i++) {
        uint64_t rank = zipf_s > 0 ? perf_zipf_draw(&z, &rng) : perf_rand_below(&rng, n);
        top += rank == 0;
        keys[i] = (uint64_t)(((unsigned __int128)rank * a + b) % n);
    }
    *top1 = (double)top / (double)len;
    return keys;
}

static void json_num(const char *k, double v)
{
    if (!isfinite(v) || v < 0)
        printf(",\"%s\":null", k);
    else
        printf(",\"%s\":%.6g", k, v);
}

static void json_str(const char *k, const char *v)
{
    printf(",\"%s\":\"", k);
    for (const char *c = v; *c; c++) {
        if (*c == '"' || *c == '\\')
            printf("\\%c", *c);
        else if ((unsigned char)*c < 0x20)
            printf("\\u%04x", (unsigned)(unsigned char)*c);
        else
            putchar(*c);
    }
    putchar('"');
}

static void print_line(const char *peer, const options_t *o, double top1, int ret,
                       const peer_kv_result_t *r)
{
    const char *status = ret == 0 ? "ok" : ret == PEER_KV_SKIPPED ? "skipped" : "failed";
    printf("{\"bench\":\"peers\",\"peer\":\"%s\",\"value_bytes\":%u,\"batch\":%u,"
           "\"pipeline\":%u,\"connections\":%u,\"keys_loaded\":%llu,\"stream\":%zu",
           peer, o->value_bytes, o->batch, o->pipeline, o->connections,
           (unsigned long long)o->keys, o->stream);
    if (o->zipf_s > 0) {
        json_num("zipf_s", o->zipf_s);
        json_num("top1_share", top1);
    } else {
        printf(",\"zipf_s\":null");
    }
    printf(",\"server_cpu\":%d,\"client_cpu\":%d,\"sockets\":%u,\"in_flight\":%u", o->server_cpu,
           o->client_cpu, r->sockets, r->in_flight);
    json_num("seconds", r->seconds);
    json_num("keys_per_s", r->keys_per_s);
    json_num("p50_us", r->p50_us);
    json_num("p99_us", r->p99_us);
    json_num("server_cpu_s_per_mkeys", r->server_cpu_s_per_mkeys);
    json_num("server_cpu_util", r->server_cpu_util);
    json_num("client_cpu_s_per_mkeys", r->client_cpu_s_per_mkeys);
    json_num("client_cpu_util", r->client_cpu_util);
    printf(",\"keys\":%llu,\"errors\":%llu,\"ok\":%s", (unsigned long long)r->keys,
           (unsigned long long)r->errors, r->ok ? "true" : "false");
    json_str("status", status);
    json_str("note", r->note);
    printf("}\n");
    fflush(stdout);
}

static int parse_u64(const char *s, uint64_t *out)
{
    char *end;
    unsigned long long v = strtoull(s, &end, 0);
    if (end == s || *end)
        return -1;
    *out = v;
    return 0;
}

int main(int argc, char **argv)
{
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    options_t o = {
        .value_bytes = 256,
        .batch = 16,
        .pipeline = 16,
        .connections = 50,
        .keys = 1000000,
        .stream = 1u << 22,
        .seconds = 5.0,
        .warmup = 1.0,
        .zipf_s = 0.0,
        .server_cpu = ncpu >= 2 ? 1 : -1,
        .client_cpu = ncpu >= 2 ? 0 : -1,
    };
    snprintf(o.peers, sizeof(o.peers), "redis,memcached");
    enum { O_VB = 1, O_BATCH, O_PIPE, O_CONN, O_KEYS, O_SECS, O_WARM, O_ZIPF, O_STREAM, O_SCPU,
           O_CCPU, O_PEERS, O_HELP };
    static const struct option longopts[] = {
        {"value-bytes", required_argument, NULL, O_VB},
        {"batch", required_argument, NULL, O_BATCH},
        {"pipeline", required_argument, NULL, O_PIPE},
        {"connections", required_argument, NULL, O_CONN},
        {"keys", required_argument, NULL, O_KEYS},
        {"seconds", required_argument, NULL, O_SECS},
        {"warmup", required_argument, NULL, O_WARM},
        {"zipf", required_argument, NULL, O_ZIPF},
        {"stream", required_argument, NULL, O_STREAM},
        {"server-cpu", required_argument, NULL, O_SCPU},
        {"client-cpu", required_argument, NULL, O_CCPU},
        {"peers", required_argument, NULL, O_PEERS},
        {"help", no_argument, NULL, O_HELP},
        {NULL, 0, NULL, 0},
    };
    int opt;
    while ((opt = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        uint64_t v = 0;
        int bad = 0;
        switch (opt) {
        case O_VB:
            bad = parse_u64(optarg, &v) || v == 0 || v > (1u << 30);
            o.value_bytes = (uint32_t)v;
            break;
        case O_BATCH:
            bad = parse_u64(optarg, &v) || v == 0 || v > (1u << 20);
            o.batch = (uint32_t)v;
            break;
        case O_PIPE:
            bad = parse_u64(optarg, &v) || v == 0 || v > 4096;
            o.pipeline = (uint32_t)v;
            break;
        case O_CONN:
            bad = parse_u64(optarg, &v) || v == 0 || v > 4096;
            o.connections = (uint32_t)v;
            break;
        case O_KEYS:
            bad = parse_u64(optarg, &v) || v == 0;
            o.keys = v;
            break;
        case O_STREAM:
            bad = parse_u64(optarg, &v) || v == 0;
            o.stream = (size_t)v;
            break;
        case O_SECS:
            o.seconds = atof(optarg);
            bad = !(o.seconds > 0);
            break;
        case O_WARM:
            o.warmup = atof(optarg);
            bad = !(o.warmup >= 0);
            break;
        case O_ZIPF:
            o.zipf_s = atof(optarg);
            bad = !(o.zipf_s >= 0);
            break;
        case O_SCPU:
            o.server_cpu = atoi(optarg);
            break;
        case O_CCPU:
            o.client_cpu = atoi(optarg);
            break;
        case O_PEERS:
            snprintf(o.peers, sizeof(o.peers), "%s", optarg);
            break;
        case O_HELP:
            usage(argv[0]);
            return 0;
        default:
            usage(argv[0]);
            return 2;
        }
        if (bad) {
            fprintf(stderr, "bad value for --%s: %s\n", longopts[opt - 1].name, optarg);
            return 2;
        }
    }
    if (optind < argc) {
        usage(argv[0]);
        return 2;
    }

    double top1 = 0;
    uint64_t *keys = stream_make(o.stream, o.keys, o.zipf_s, &top1);
    if (!keys) {
        fprintf(stderr, "out of memory for a %zu-key stream\n", o.stream);
        return 1;
    }
    peer_kv_config_t c;
    memset(&c, 0, sizeof(c));
    c.keys = keys;
    c.nkeys_stream = o.stream;
    c.nkeys_loaded = o.keys;
    c.value_bytes = o.value_bytes;
    c.batch = o.batch;
    c.pipeline = o.pipeline;
    c.connections = o.connections;
    c.seconds = o.seconds;
    c.warmup_s = o.warmup;
    c.server_cpu = o.server_cpu;
    c.client_cpu = o.client_cpu;

    int ran = 0, failed = 0, skipped = 0;
    char list[128];
    snprintf(list, sizeof(list), "%s", o.peers);
    char *save = NULL;
    for (char *p = strtok_r(list, ",", &save); p; p = strtok_r(NULL, ",", &save)) {
        peer_kv_result_t r;
        int ret;
        if (strcmp(p, "redis") == 0) {
            fprintf(stderr, "bench_peers: redis (loading %llu keys)\n",
                    (unsigned long long)o.keys);
            ret = peer_redis_run(&c, &r);
        } else if (strcmp(p, "memcached") == 0) {
            fprintf(stderr, "bench_peers: memcached (loading %llu keys)\n",
                    (unsigned long long)o.keys);
            ret = peer_memcached_run(&c, &r);
        } else {
            fprintf(stderr, "unknown peer '%s' (redis, memcached)\n", p);
            failed++;
            continue;
        }
        print_line(p, &o, top1, ret, &r);
        if (ret == 0)
            ran++;
        else if (ret == PEER_KV_SKIPPED)
            skipped++;
        else
            failed++;
    }
    free(keys);
    if (failed)
        return 1;
    return ran ? 0 : skipped ? 77 : 1;
}
