/*
 * perf/perf_report.h — strata-perf's results: one perf_point_t per measured
 * configuration, written as JSON lines, CSV and PNG plots (gnuplot), and
 * the per-process result files that a multi-process run merges.
 *
 * Threading: single-threaded.
 */
#ifndef STRATA_PERF_REPORT_H
#define STRATA_PERF_REPORT_H

#include <stddef.h>
#include <stdint.h>

#include "hdr.h"

/** One measured configuration, merged over every client process. */
typedef struct perf_point {
    char system[32];          /**< "strata", "redis", "memcached", "rocksdb" */
    char workload[16];        /**< "train", "serve", "mixed", "load" */
    char dist[32];            /**< "uniform", "zipf:0.99", "hot:0.01:0.9" */
    char transport[32];       /**< "sm", "tcp", "netns", "cluster" (external) */
    uint32_t dim;
    uint32_t batch;           /**< keys per request */
    uint32_t clients;         /**< client processes (ranks) */
    uint32_t tables;          /**< tables the keys are spread over */
    double seconds;           /**< timed window (wall, coordinator's) */
    uint64_t batches;         /**< requests completed in the window, all clients */
    uint64_t keys;            /**< keys in them */
    uint64_t errors;          /**< failed requests */
    double keys_per_s;        /**< keys / seconds */
    hdr_hist_t lat;           /**< per-request latency, ns, merged */
    /* client-side counters, summed over clients (0 for peers) */
    uint64_t onesided_hits, onesided_index, onesided_absent, rpc_keys, torn_retries;
    uint64_t bytes_sent, bytes_received, bytes_onesided;
    /* server-side, over the window (0 when unknown) */
    double server_cpu_s;          /**< servers' CPU seconds in the window */
    uint64_t server_lookups;      /**< keys looked up by RPC on the servers */
    uint64_t server_lookup_hits;  /**< of which found in the DRAM tier */
} perf_point_t;

/** Derived figures used by every writer (0 when the denominator is 0). */
double perf_point_p(const perf_point_t *pt, double percentile);     /**< latency at percentile (0..100), us */
double perf_point_dram_hit_rate(const perf_point_t *pt);           /**< rows found in DRAM (server hits
                                                                        + one-sided hits and index reads)
                                                                        / keys looked up */
double perf_point_onesided_ratio(const perf_point_t *pt);          /**< (hits+index+absent) / (hits+index+absent+rpc_keys) */
double perf_point_server_cpu_per_mkeys(const perf_point_t *pt);    /**< server_cpu_s / (keys / 1e6) */

/** One JSON object (one line, no newline) for pt into buf (cap bytes);
 *  returns the length it needed. Fields: every field above except lat,
 *  plus p50_us, p90_us, p99_us, p999_us, max_us, mean_us, dram_hit_rate,
 *  onesided_ratio, server_cpu_s_per_mkeys, wire_bytes_per_key (bytes
 *  sent + received + one-sided, per key). seconds, keys_per_s and
 *  server_cpu_s are written with %.17g (they read back exactly), derived
 *  figures with %.6g; a non-finite double is written as null. buf may be
 *  NULL with cap 0 to size it (snprintf semantics). */
size_t perf_point_json(const perf_point_t *pt, char *buf, size_t cap);

/** Parse a line written by perf_point_json back (lat is left empty).
 *  Required: the text fields, dim, batch, clients, tables, seconds,
 *  batches, keys, errors, keys_per_s; the other counters default to 0;
 *  unknown keys and the derived figures are ignored; null reads as 0.
 *  Returns 0, or -1 when a required field is missing or any known field
 *  is malformed (wrong type, out of range, text too long for its array);
 *  *pt is written only on success. */
int perf_point_parse_json(const char *line, perf_point_t *pt);

/** Write outdir/results.json (JSON lines), outdir/results.csv (header +
 *  one row per point, same fields), outdir/cdf_<i>.dat per point, and, when
 *  gnuplot is on PATH and plots is nonzero: outdir/throughput_vs_batch.png
 *  (keys/s against batch, one line per system/workload/transport/dim),
 *  outdir/latency_cdf.png (all points' CDFs, log x), and
 *  outdir/scaling_clients.png (keys/s against clients) when the points
 *  have more than one client count. outdir is created if missing. The
 *  gnuplot script (outdir/plots.gp) and its data files are kept, also when
 *  gnuplot is absent. A plot's series are split further by whichever of
 *  dist, clients (batch for the scaling plot), tables vary over the points,
 *  so each line is one sweep. Returns 0, or -1 with a message on
 *  stderr; a missing gnuplot is not an error (a note is printed). */
int perf_report_write(const perf_point_t *pts, size_t n, const char *outdir, int plots);

/* --- per-process result files --------------------------------------------- */

/** A client process's share of one point: counters and its histogram.
 *  Written by each client to <dir>/part.<point>.<rank> and merged by the
 *  coordinator. Binary, little-endian, versioned ("SPR1"): magic, u32
 *  version, the numeric fields, the text fields in their fixed sizes,
 *  u32 length + hdr_serialize bytes, CRC-32 of all before it. The write
 *  goes to a temporary file renamed over path (a reader never sees half a
 *  part); the read rejects any malformed, truncated or corrupted file and
 *  writes *pt only on success. Both return 0 or -1 (errno for I/O). */
int perf_part_write(const char *path, const perf_point_t *pt);
int perf_part_read(const char *path, perf_point_t *pt);

/** dst += src: counters add (server_cpu_s too), histograms merge,
 *  keys_per_s recomputed from keys and dst->seconds (the coordinator's
 *  window). dst's text fields, dim, batch, clients, tables and seconds are
 *  kept (set them from the first part, then clients and seconds by the
 *  coordinator). */
void perf_point_merge(perf_point_t *dst, const perf_point_t *src);

#endif
