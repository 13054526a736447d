/*
 * perf/peer_kv.h — Redis and memcached as benchmark peers, measured on the
 * workload a Strata benchmark runs: the same key stream, value size and
 * keys per request.
 *
 * Each run starts its own server on 127.0.0.1 (a free port found by binding
 * port 0, a fresh temporary directory, no persistence), loads keys
 * 0..nkeys_loaded-1 with values of value_bytes bytes, reads the key stream
 * in batches of `batch` keys for warmup_s + seconds, verifies the size of
 * every value returned, and stops the server (SIGTERM, then SIGKILL after
 * 5 s; waitpid) on every path out of the call. A key is the decimal u64
 * behind the prefix "k:" ("k:42"); the value of key k holds k's 8 bytes
 * (little-endian) followed by a filler, so every peer stores the same bytes.
 *
 * Servers that outlive a run by accident are prevented three ways: an
 * atexit handler stops any server still registered; while a run is in
 * progress SIGINT, SIGTERM and SIGHUP (unless the process ignores them)
 * SIGKILL the server and remove its directory, then the previous
 * disposition runs; the server is started with PR_SET_PDEATHSIG (SIGKILL
 * when the calling thread exits or the benchmark is killed, SIGKILL
 * included; only then may the temporary directory stay behind).
 *
 * Ownership: the config and its key array are the caller's, read during
 * the call only. The result is the caller's; it is cleared and written on
 * every return, so its note explains a skip or a failure.
 *
 * Threading: one run at a time per process (the signal handlers and the
 * server registry are process-wide); the run uses only the calling thread,
 * which it pins to client_cpu for the duration when asked (the previous
 * affinity is restored).
 *
 * Built (perf/CMakeLists.txt) only when pkg-config finds hiredis and
 * libmemcached: CMake code tests `if(TARGET strata_peer_kv)`.
 */
#ifndef STRATA_PERF_PEER_KV_H
#define STRATA_PERF_PEER_KV_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Return value of a run whose server binary is missing (r->ok = 0). */
#define PEER_KV_SKIPPED 77

/** What one run measured. Figures cover the timed window only (after the
 *  warmup); a figure that could not be measured is negative. */
typedef struct peer_kv_result {
    double keys_per_s;              /**< keys read per second of the window */
    double p50_us;                  /**< median batch latency, request to full reply */
    double p99_us;                  /**< 99th percentile batch latency */
    double server_cpu_s_per_mkeys;  /**< server utime+stime per million keys */
    double server_cpu_util;         /**< server CPU seconds / window seconds */
    double client_cpu_s_per_mkeys;  /**< calling thread's CPU per million keys */
    double client_cpu_util;         /**< calling thread's CPU / window seconds
                                         (near 1.0: the client, not the server,
                                         bounds the rate) */
    double seconds;                 /**< length of the timed window */
    uint64_t keys;                  /**< keys requested in batches completed in the window */
    uint64_t batches;               /**< batches completed in the window */
    uint64_t errors;                /**< keys missing or of the wrong size, all phases */
    uint32_t sockets;               /**< TCP connections used for reading */
    uint32_t in_flight;             /**< batches outstanding at once */
    int ok;                         /**< 1 when the figures are valid */
    char note[160];                 /**< why not ok, or a remark on how it ran */
} peer_kv_result_t;

/** What to run. Zero-initialize, then set the fields; zeros take the
 *  defaults named below, except server_cpu and client_cpu, where 0 is a
 *  CPU number and -1 means "do not pin". */
typedef struct peer_kv_config {
    const uint64_t *keys;   /**< key stream read in order and cycled; NULL:
                                 0, 1, ..., nkeys_loaded-1 cycled */
    size_t nkeys_stream;    /**< entries in keys */
    uint64_t nkeys_loaded;  /**< keys 0..n-1 loaded before reading (required) */
    uint32_t value_bytes;   /**< bytes per value (required, >= 1) */
    uint32_t batch;         /**< keys per MGET / multi-get (default 16) */
    uint32_t pipeline;      /**< batches in flight per connection (default 1);
                                 memcached (libmemcached allows one multi-get
                                 per connection) gets pipeline connections
                                 instead of each one, so both peers have
                                 connections * pipeline batches in flight */
    uint32_t connections;   /**< connections (default 1) */
    double seconds;         /**< timed window (default 5) */
    double warmup_s;        /**< untimed reading before the window (0: none) */
    int server_cpu;         /**< pin the server to this CPU, -1 none */
    int client_cpu;         /**< pin the calling thread to this CPU during
                                 the run, -1 none */
} peer_kv_config_t;

/** Start redis-server (PATH, else /usr/bin, /usr/local/bin) with --save ""
 *  --appendonly no, load with pipelined MSET, read with MGET of batch keys,
 *  pipeline deep on each of connections connections (hiredis, one thread,
 *  epoll), stop it. Returns 0 with r->ok = 1; PEER_KV_SKIPPED when
 *  redis-server is missing; -1 on failure (r->note says why). */
int peer_redis_run(const peer_kv_config_t *c, peer_kv_result_t *r);

/** Start memcached -t 1 -U 0 -l 127.0.0.1 with memory for the keys, load
 *  with buffered noreply sets (libmemcached, text protocol), read with
 *  memcached_mget of batch keys + memcached_fetch_result over
 *  connections * pipeline connections, one multi-get in flight on each,
 *  served round-robin by one thread; stop it. Returns as peer_redis_run. */
int peer_memcached_run(const peer_kv_config_t *c, peer_kv_result_t *r);

/** Format key k as the peers store it ("k:<decimal>", no NUL) into dst,
 *  which holds at least PEER_KV_KEY_MAX bytes. Returns the length. */
#define PEER_KV_KEY_MAX 24
size_t peer_kv_key_format(char *dst, uint64_t k);

#ifdef __cplusplus
}
#endif

#endif /* STRATA_PERF_PEER_KV_H */
