/*
 * tests/test_perf_report.c — perf/perf_report.c: JSON lines round trip of
 * every field (and the parser's rejections), CSV shape, part files (round
 * trip; truncated or corrupted files rejected), merging, and a full
 * perf_report_write into a temporary directory, PNGs included when
 * gnuplot is on PATH. STRATA_TEST_KEEP=1 keeps the directory (its path is
 * printed) to look at the plots.
 */
#include "perf_report.h"

#include <dirent.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "testutil.h"

#define NCOLS 34   /* 24 fields + 10 derived figures */

static void set_str(char *dst, size_t size, const char *s)
{
    memset(dst, 0, size);
    strncpy(dst, s, size - 1);
}

/* Latencies around base_ns, log-normal-ish spread. */
static void fill_hist(hdr_hist_t *h, test_rng_t *r, double base_ns, int n)
{
    for (int i = 0; i < n; i++) {
        double u = test_rng_float(r, 0, 1), w = test_rng_float(r, 0, 1);
        double v = base_ns * exp(0.35 * (u + w - 1) * 3) * (1 + (u > 0.995 ? 10 * w : 0));
        hdr_record(h, (uint64_t)v);
    }
}

static void make_point(perf_point_t *pt, test_rng_t *r, const char *system, const char *transport,
                       uint32_t dim, uint32_t batch, uint32_t clients)
{
    memset(pt, 0, sizeof(*pt));
    set_str(pt->system, sizeof(pt->system), system);
    set_str(pt->workload, sizeof(pt->workload), "train");
    set_str(pt->dist, sizeof(pt->dist), "zipf:0.99");
    set_str(pt->transport, sizeof(pt->transport), transport);
    pt->dim = dim;
    pt->batch = batch;
    pt->clients = clients;
    pt->tables = 2;
    pt->seconds = 2.0 + 1.0 / 3;
    double lat_ns = 4000.0 * sqrt((double)batch) * (strcmp(system, "strata") ? 3 : 1) *
                    (strcmp(transport, "tcp") ? 1 : 2.5);
    pt->batches = (uint64_t)(pt->seconds * 1e9 / lat_ns) * clients;
    pt->keys = pt->batches * batch;
    pt->errors = test_rng_below(r, 3);
    pt->keys_per_s = (double)pt->keys / pt->seconds;
    hdr_init(&pt->lat);
    fill_hist(&pt->lat, r, lat_ns, 20000);
    pt->onesided_hits = test_rng_next(r) >> 20;
    pt->onesided_index = test_rng_next(r) >> 30;
    pt->onesided_absent = test_rng_next(r) >> 40;
    pt->rpc_keys = test_rng_next(r) >> 25;
    pt->torn_retries = test_rng_below(r, 100);
    pt->bytes_sent = test_rng_next(r) >> 10;
    pt->bytes_received = test_rng_next(r) >> 10;
    pt->bytes_onesided = test_rng_next(r);   /* full 64-bit range */
    pt->server_cpu_s = test_rng_float(r, 0, 10) / 7.0;
    pt->server_lookups = test_rng_next(r) >> 30;
    pt->server_lookup_hits = pt->server_lookups / 3;
}

/* Every field but lat (checked by the callers that keep it). */
static void check_fields(const perf_point_t *a, const perf_point_t *b)
{
    CHECK(strcmp(a->system, b->system) == 0, "system '%s' != '%s'", a->system, b->system);
    CHECK(strcmp(a->workload, b->workload) == 0, "workload");
    CHECK(strcmp(a->dist, b->dist) == 0, "dist '%s' != '%s'", a->dist, b->dist);
    CHECK(strcmp(a->transport, b->transport) == 0, "transport");
    CHECK(a->dim == b->dim && a->batch == b->batch && a->clients == b->clients &&
          a->tables == b->tables, "u32 fields");
    CHECK(memcmp(&a->seconds, &b->seconds, 8) == 0, "seconds %.17g != %.17g", a->seconds, b->seconds);
    CHECK(memcmp(&a->keys_per_s, &b->keys_per_s, 8) == 0, "keys_per_s");
    CHECK(memcmp(&a->server_cpu_s, &b->server_cpu_s, 8) == 0, "server_cpu_s %.17g != %.17g",
          a->server_cpu_s, b->server_cpu_s);
    CHECK(a->batches == b->batches && a->keys == b->keys && a->errors == b->errors, "counters");
    CHECK(a->onesided_hits == b->onesided_hits && a->onesided_index == b->onesided_index &&
          a->onesided_absent == b->onesided_absent && a->rpc_keys == b->rpc_keys &&
          a->torn_retries == b->torn_retries, "client counters");
    CHECK(a->bytes_sent == b->bytes_sent && a->bytes_received == b->bytes_received &&
          a->bytes_onesided == b->bytes_onesided, "bytes");
    CHECK(a->server_lookups == b->server_lookups && a->server_lookup_hits == b->server_lookup_hits,
          "server counters");
}

static void check_hist_equal(const hdr_hist_t *a, const hdr_hist_t *b)
{
    CHECK(a->count == b->count && a->min == b->min && a->max == b->max &&
          memcmp(&a->sum, &b->sum, 8) == 0, "histogram header");
    CHECK(memcmp(a->counts, b->counts, sizeof(a->counts)) == 0, "histogram buckets");
}

static void test_derived(void)
{
    perf_point_t *pt = calloc(1, sizeof(*pt));
    CHECK(pt, "calloc");
    hdr_init(&pt->lat);
    CHECK(perf_point_p(pt, 99) == 0 && perf_point_dram_hit_rate(pt) == 0 &&
          perf_point_onesided_ratio(pt) == 0 && perf_point_server_cpu_per_mkeys(pt) == 0,
          "zero denominators give 0");
    hdr_record(&pt->lat, 200);
    pt->server_lookups = 4;
    pt->server_lookup_hits = 3;
    pt->onesided_hits = 1;
    pt->onesided_index = 1;
    pt->onesided_absent = 1;
    pt->rpc_keys = 1;
    pt->keys = 2000000;
    pt->server_cpu_s = 3;
    CHECK(perf_point_p(pt, 50) == 0.2, "p50 in us");
    /* (3 server hits + 1 cache + 1 index) / (4 server + 1 + 1 + 1 absent) */
    CHECK(perf_point_dram_hit_rate(pt) == 5.0 / 7.0, "dram hit rate");
    CHECK(perf_point_onesided_ratio(pt) == 0.75, "onesided ratio");
    CHECK(perf_point_server_cpu_per_mkeys(pt) == 1.5, "cpu per Mkeys");
    free(pt);
}

static void test_json(test_rng_t *r)
{
    perf_point_t *pt = malloc(sizeof(*pt)), *back = malloc(sizeof(*back));
    CHECK(pt && back, "malloc");
    make_point(pt, r, "strata", "sm", 64, 256, 4);
    /* text that needs escaping, at the fields' full lengths */
    set_str(pt->system, sizeof(pt->system), "a\"b\\c\n\t\x01,d\x7f\xc3\xa9-0123456789abcdefghij");
    set_str(pt->workload, sizeof(pt->workload), "workload-15char");
    set_str(pt->dist, sizeof(pt->dist), "hot:0.01:0.9");
    pt->batches = UINT64_MAX;
    pt->dim = UINT32_MAX;

    char buf[4096];
    size_t len = perf_point_json(pt, buf, sizeof(buf));
    CHECK(len == strlen(buf) && len < sizeof(buf), "json length %zu", len);
    CHECK(strchr(buf, '\n') == NULL, "one line");
    printf("json: %s\n", buf);
    const char *derived[] = { "\"p50_us\":", "\"p90_us\":", "\"p99_us\":", "\"p999_us\":",
                              "\"max_us\":", "\"mean_us\":", "\"dram_hit_rate\":",
                              "\"onesided_ratio\":", "\"server_cpu_s_per_mkeys\":",
                              "\"wire_bytes_per_key\":" };
    for (size_t i = 0; i < sizeof(derived) / sizeof(derived[0]); i++)
        CHECK(strstr(buf, derived[i]) != NULL, "json lacks %s", derived[i]);
    CHECK(strstr(buf, "\"lat\"") == NULL, "lat is not a JSON field");

    /* snprintf semantics: the needed length, a NUL-terminated prefix */
    char small[40];
    memset(small, 'x', sizeof(small));
    CHECK(perf_point_json(pt, small, sizeof(small)) == len, "needed length with small cap");
    CHECK(small[sizeof(small) - 1] == '\0' && strncmp(small, buf, sizeof(small) - 1) == 0,
          "truncated prefix");
    CHECK(perf_point_json(pt, NULL, 0) == len, "size query");

    memset(back, 0x5a, sizeof(*back));
    CHECK(perf_point_parse_json(buf, back) == 0, "parse own line");
    check_fields(pt, back);
    CHECK(back->lat.count == 0 && back->lat.min == UINT64_MAX, "lat left empty");

    /* tolerated: whitespace, a newline, unknown keys with nested values */
    char line[8192];
    snprintf(line, sizeof(line), "  { \"zz\" : {\"a\":[1,\"}]\",{}]}, \"t\":true,\"n\":null,%s \n",
             buf + 1);
    CHECK(perf_point_parse_json(line, back) == 0, "tolerant parse: %s", line);
    check_fields(pt, back);

    /* output untouched on failure */
    memset(back, 0x5a, sizeof(*back));
    perf_point_t *sentinel = malloc(sizeof(*sentinel));
    CHECK(sentinel, "malloc");
    memcpy(sentinel, back, sizeof(*back));

    /* every proper prefix is rejected */
    for (size_t n = 0; n < len; n++) {
        memcpy(line, buf, n);
        line[n] = '\0';
        CHECK(perf_point_parse_json(line, back) == -1, "prefix of %zu accepted", n);
    }
    CHECK(memcmp(back, sentinel, sizeof(*back)) == 0, "output written on failure");

    /* malformed or missing fields */
    struct {
        const char *from, *to;
    } subs[] = {
        { "\"keys\":", "\"keyz\":" },              /* required field missing */
        { "\"dim\":4294967295", "\"dim\":4294967296" },
        { "\"dim\":4294967295", "\"dim\":-1" },
        { "\"dim\":4294967295", "\"dim\":\"7\"" },
        { "\"dim\":4294967295", "\"dim\":1.5" },
        { "\"batches\":18446744073709551615", "\"batches\":18446744073709551616" },
        { "\"seconds\":", "\"seconds\":x" },
        { "\"workload\":\"workload-15char\"", "\"workload\":\"workload-16chars\"" },  /* too long */
        { "\"workload\":\"workload-15char\"", "\"workload\":7" },
        { "\"workload\":\"workload-15char\"", "\"workload\":\"bad\\q\"" },
        { "\"workload\":\"workload-15char\"", "\"workload\":\"nul\\u0000\"" },
        { "\"workload\":\"workload-15char\"", "\"workload\":\"\\ud800\"" },
        { ",\"batch\":", ",,\"batch\":" },
        { "\"tables\":2,", "\"tables\":2 \"x\":1," },
    };
    for (size_t i = 0; i < sizeof(subs) / sizeof(subs[0]); i++) {
        const char *at = strstr(buf, subs[i].from);
        CHECK(at != NULL, "substitution %zu: '%s' not in line", i, subs[i].from);
        snprintf(line, sizeof(line), "%.*s%s%s", (int)(at - buf), buf, subs[i].to,
                 at + strlen(subs[i].from));
        CHECK(perf_point_parse_json(line, back) == -1, "accepted: %s", line);
    }
    snprintf(line, sizeof(line), "%s}", buf);
    CHECK(perf_point_parse_json(line, back) == -1, "trailing garbage accepted");
    CHECK(memcmp(back, sentinel, sizeof(*back)) == 0, "output written on failure");

    /* \u escapes decode to UTF-8 */
    const char *at = strstr(buf, "\"dist\":\"hot:0.01:0.9\"");
    CHECK(at, "dist in line");
    snprintf(line, sizeof(line), "%.*s\"dist\":\"\\u00e9\\ud83d\\ude00\\/\"%s", (int)(at - buf), buf,
             at + strlen("\"dist\":\"hot:0.01:0.9\""));
    CHECK(perf_point_parse_json(line, back) == 0, "unicode escapes: %s", line);
    CHECK(strcmp(back->dist, "\xc3\xa9\xf0\x9f\x98\x80/") == 0, "decoded '%s'", back->dist);

    free(sentinel);
    free(back);
    free(pt);
}

static char *read_file(const char *path, size_t *len_p)
{
    FILE *f = fopen(path, "rb");
    CHECK(f, "open %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = malloc((size_t)n + 1);
    CHECK(s && fread(s, 1, (size_t)n, f) == (size_t)n, "read %s", path);
    s[n] = '\0';
    fclose(f);
    if (len_p)
        *len_p = (size_t)n;
    return s;
}

static void write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    CHECK(f && fwrite(data, 1, len, f) == len && fclose(f) == 0, "write %s", path);
}

static void test_parts(test_rng_t *r, const char *dir)
{
    perf_point_t *pt = malloc(sizeof(*pt)), *back = malloc(sizeof(*back));
    perf_point_t *sentinel = malloc(sizeof(*sentinel));
    CHECK(pt && back && sentinel, "malloc");
    make_point(pt, r, "redis", "tcp", 128, 32, 1);
    set_str(pt->system, sizeof(pt->system), "0123456789abcdef0123456789abcde");  /* 31 chars */
    hdr_record(&pt->lat, UINT64_MAX);   /* clamped, in the last bucket */

    char path[PATH_MAX], bad[PATH_MAX];
    snprintf(path, sizeof(path), "%s/part.0.0", dir);
    snprintf(bad, sizeof(bad), "%s/part.bad", dir);
    CHECK(perf_part_write(path, pt) == 0, "part write");
    memset(back, 0x5a, sizeof(*back));
    CHECK(perf_part_read(path, back) == 0, "part read");
    check_fields(pt, back);
    check_hist_equal(&pt->lat, &back->lat);

    size_t len;
    unsigned char *ok = (unsigned char *)read_file(path, &len);
    CHECK(memcmp(ok, "SPR1", 4) == 0, "magic");
    memset(back, 0x5a, sizeof(*back));
    memcpy(sentinel, back, sizeof(*back));
    /* every truncation, and a trailing byte */
    for (size_t n = 0; n < len; n++) {
        write_file(bad, ok, n);
        CHECK(perf_part_read(bad, back) == -1, "part truncated to %zu accepted", n);
    }
    unsigned char *big = malloc(len + 1);
    CHECK(big, "malloc");
    memcpy(big, ok, len);
    big[len] = 0;
    write_file(bad, big, len + 1);
    CHECK(perf_part_read(bad, back) == -1, "part with a trailing byte accepted");
    /* every single-bit corruption (one bit per byte, varying) */
    for (size_t i = 0; i < len; i++) {
        memcpy(big, ok, len);
        big[i] ^= (unsigned char)(1u << (i % 8));
        write_file(bad, big, len);
        CHECK(perf_part_read(bad, back) == -1, "part with byte %zu corrupted accepted", i);
    }
    CHECK(memcmp(back, sentinel, sizeof(*back)) == 0, "output written on failure");
    CHECK(perf_part_read("/nonexistent-dir/part", back) == -1, "missing file");
    CHECK(perf_part_write("/nonexistent-dir/part", pt) == -1, "unwritable path");
    unlink(bad);
    unlink(path);
    free(big);
    free(ok);

    /* merge: four client parts through files, into the coordinator's point */
    perf_point_t *dst = malloc(sizeof(*dst)), *part = malloc(sizeof(*part));
    hdr_hist_t *all = malloc(sizeof(*all));
    CHECK(dst && part && all, "malloc");
    hdr_init(all);
    perf_point_t sum;
    memset(&sum, 0, sizeof(sum));
    for (int rank = 0; rank < 4; rank++) {
        make_point(pt, r, "strata", "sm", 64, 128, 1);
        pt->server_cpu_s = rank == 0 ? 1.25 : 0;   /* one part carries the servers' figures */
        pt->server_lookups = rank == 0 ? 1000 : 0;
        pt->server_lookup_hits = rank == 0 ? 900 : 0;
        hdr_init(&pt->lat);
        fill_hist(&pt->lat, r, 1000.0 * (rank + 1), 5000 + rank * 1000);
        hdr_merge(all, &pt->lat);
        snprintf(path, sizeof(path), "%s/part.0.%d", dir, rank);
        CHECK(perf_part_write(path, pt) == 0, "write part %d", rank);
        sum.batches += pt->batches;
        sum.keys += pt->keys;
        sum.errors += pt->errors;
        sum.onesided_hits += pt->onesided_hits;
        sum.onesided_index += pt->onesided_index;
        sum.onesided_absent += pt->onesided_absent;
        sum.rpc_keys += pt->rpc_keys;
        sum.torn_retries += pt->torn_retries;
        sum.bytes_sent += pt->bytes_sent;
        sum.bytes_received += pt->bytes_received;
        sum.bytes_onesided += pt->bytes_onesided;
        sum.server_cpu_s += pt->server_cpu_s;
        sum.server_lookups += pt->server_lookups;
        sum.server_lookup_hits += pt->server_lookup_hits;
    }
    for (int rank = 0; rank < 4; rank++) {
        snprintf(path, sizeof(path), "%s/part.0.%d", dir, rank);
        CHECK(perf_part_read(path, part) == 0, "read part %d", rank);
        unlink(path);
        if (rank == 0) {
            memcpy(dst, part, sizeof(*dst));
            dst->seconds = 2.5;           /* the coordinator's window */
            dst->clients = 4;
        } else {
            perf_point_merge(dst, part);
        }
    }
    CHECK(dst->batches == sum.batches && dst->keys == sum.keys && dst->errors == sum.errors,
          "merged counters");
    CHECK(dst->onesided_hits == sum.onesided_hits && dst->onesided_index == sum.onesided_index &&
          dst->onesided_absent == sum.onesided_absent && dst->rpc_keys == sum.rpc_keys &&
          dst->torn_retries == sum.torn_retries, "merged client counters");
    CHECK(dst->bytes_sent == sum.bytes_sent && dst->bytes_received == sum.bytes_received &&
          dst->bytes_onesided == sum.bytes_onesided, "merged bytes");
    CHECK(dst->server_cpu_s == 1.25 && dst->server_lookups == 1000 &&
          dst->server_lookup_hits == 900, "merged server figures");
    CHECK(dst->keys_per_s == (double)dst->keys / 2.5, "keys_per_s from keys and dst's window");
    CHECK(dst->seconds == 2.5 && dst->clients == 4 && strcmp(dst->system, "strata") == 0,
          "dst's own fields kept");
    CHECK(dst->lat.count == all->count && dst->lat.min == all->min && dst->lat.max == all->max,
          "merged histogram extremes");
    CHECK(memcmp(dst->lat.counts, all->counts, sizeof(all->counts)) == 0, "merged buckets");
    CHECK(hdr_percentile(&dst->lat, 99) == hdr_percentile(all, 99) &&
          perf_point_p(dst, 99) == (double)hdr_percentile(all, 99) / 1e3, "p99 of the union");

    free(all);
    free(part);
    free(dst);
    free(sentinel);
    free(back);
    free(pt);
}

/* Columns of one CSV row (RFC 4180 quoting); NULL-safe on the row end. */
static int csv_columns(const char *s)
{
    int cols = 1, quoted = 0;
    for (; *s; s++) {
        if (*s == '"')
            quoted = !quoted;   /* "" inside quotes toggles twice */
        else if (*s == ',' && !quoted)
            cols++;
    }
    return cols;
}

static int have_gnuplot(void)
{
    const char *path = getenv("PATH");
    char buf[PATH_MAX];
    while (path && *path) {
        const char *colon = strchr(path, ':');
        size_t len = colon ? (size_t)(colon - path) : strlen(path);
        snprintf(buf, sizeof(buf), "%.*s/gnuplot", (int)len, path);
        if (len && access(buf, X_OK) == 0)
            return 1;
        path += len + (colon != NULL);
    }
    return 0;
}

static int is_png(const char *path)
{
    unsigned char magic[8] = { 0 };
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return 0;
    size_t n = fread(magic, 1, 8, f);
    fclose(f);
    return n == 8 && memcmp(magic, "\x89PNG\r\n\x1a\n", 8) == 0;
}

static void test_report(test_rng_t *r, const char *dir)
{
    /* a batch sweep for two systems over two transports, and a client
     * sweep for strata/sm at batch 64 */
    static const uint32_t batches[] = { 1, 4, 16, 64, 256, 1024 };
    static const uint32_t clients[] = { 2, 4, 8 };
    size_t cap = 2 * 2 * 6 + 3 + 1, n = 0;
    perf_point_t *pts = malloc(cap * sizeof(*pts));
    CHECK(pts, "malloc");
    const char *systems[] = { "strata", "redis" }, *transports[] = { "sm", "tcp" };
    for (int s = 0; s < 2; s++)
        for (int t = 0; t < 2; t++)
            for (size_t b = 0; b < 6; b++)
                make_point(&pts[n++], r, systems[s], transports[t], 64, batches[b], 1);
    for (size_t c = 0; c < 3; c++)
        make_point(&pts[n++], r, "strata", "sm", 64, 64, clients[c]);
    make_point(&pts[n], r, "memcached", "tcp", 64, 64, 2);
    set_str(pts[n].dist, sizeof(pts[n].dist), "zipf:0.99,\"q\"");   /* CSV quoting */
    n++;

    char out[1024];
    snprintf(out, sizeof(out), "%s/report", dir);   /* perf_report_write creates it */
    CHECK(perf_report_write(pts, n, out, 1) == 0, "perf_report_write");

    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/results.json", out);
    char *json = read_file(path, NULL), *save = NULL;
    perf_point_t *back = malloc(sizeof(*back));
    CHECK(back, "malloc");
    size_t lines = 0;
    for (char *line = strtok_r(json, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        CHECK(lines < n, "too many json lines");
        CHECK(perf_point_parse_json(line, back) == 0, "results.json line %zu", lines);
        check_fields(&pts[lines], back);
        lines++;
    }
    CHECK(lines == n, "results.json: %zu lines for %zu points", lines, n);
    free(json);

    snprintf(path, sizeof(path), "%s/results.csv", out);
    char *csv = read_file(path, NULL);
    CHECK(strstr(csv, "\nmemcached,train,\"zipf:0.99,\"\"q\"\"\",tcp,") != NULL, "csv quoting");
    lines = 0;
    save = NULL;
    for (char *line = strtok_r(csv, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        int cols = csv_columns(line);
        CHECK(cols == NCOLS, "results.csv line %zu: %d columns", lines, cols);
        if (lines == 0)
            CHECK(strncmp(line, "system,workload,dist,transport,dim,batch,", 41) == 0 &&
                  strstr(line, ",p99_us,") != NULL, "csv header: %s", line);
        lines++;
    }
    CHECK(lines == n + 1, "results.csv: %zu lines for %zu points", lines, n);
    free(csv);

    for (size_t i = 0; i < n; i++) {
        snprintf(path, sizeof(path), "%s/cdf_%zu.dat", out, i);
        CHECK(access(path, R_OK) == 0, "missing %s", path);
    }

    static const char *const pngs[] = { "throughput_vs_batch.png", "latency_cdf.png",
                                        "scaling_clients.png" };
    if (have_gnuplot()) {
        for (int i = 0; i < 3; i++) {
            snprintf(path, sizeof(path), "%s/%s", out, pngs[i]);
            CHECK(access(path, R_OK) == 0 && is_png(path), "missing or not a PNG: %s", path);
        }
        printf("plots: %s/{throughput_vs_batch,latency_cdf,scaling_clients}.png\n", out);

        /* one client count: no scaling plot; plots = 0: no plots at all */
        char out2[1024];
        snprintf(out2, sizeof(out2), "%s/report2", dir);
        CHECK(perf_report_write(pts, 6, out2, 1) == 0, "second report");
        snprintf(path, sizeof(path), "%s/scaling_clients.png", out2);
        CHECK(access(path, F_OK) != 0, "scaling plot with one client count");
        snprintf(path, sizeof(path), "%s/throughput_vs_batch.png", out2);
        CHECK(is_png(path), "second report's throughput plot");
        snprintf(out2, sizeof(out2), "%s/report3", dir);
        CHECK(perf_report_write(pts, 6, out2, 0) == 0, "report without plots");
        snprintf(path, sizeof(path), "%s/latency_cdf.png", out2);
        CHECK(access(path, F_OK) != 0, "plots with plots = 0");
    } else {
        printf("note: gnuplot not on PATH; PNG checks skipped\n");
    }

    /* no points: header only */
    snprintf(out, sizeof(out), "%s/empty", dir);
    CHECK(perf_report_write(pts, 0, out, 1) == 0, "empty report");
    snprintf(path, sizeof(path), "%s/results.csv", out);
    csv = read_file(path, NULL);
    CHECK(strchr(csv, '\n') == csv + strlen(csv) - 1, "empty csv: header only");
    free(csv);
    CHECK(perf_report_write(pts, 1, "/nonexistent-dir/x", 0) == -1, "unwritable outdir");

    free(back);
    free(pts);
}

/* rm -r of dir (files and one level of subdirectories, as made here). */
static void remove_tree(const char *dir)
{
    DIR *d = opendir(dir);
    if (d == NULL)
        return;
    struct dirent *e;
    char path[PATH_MAX];
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        struct stat st;
        if (lstat(path, &st) == 0 && S_ISDIR(st.st_mode))
            remove_tree(path);
        else
            unlink(path);
    }
    closedir(d);
    rmdir(dir);
}

int main(void)
{
    test_rng_t r;
    test_rng_seed(&r, test_seed(7));
    char dir[] = "/tmp/test_perf_report.XXXXXX";
    CHECK(mkdtemp(dir) != NULL, "mkdtemp");

    test_derived();
    test_json(&r);
    test_parts(&r, dir);
    test_report(&r, dir);

    const char *keep = getenv("STRATA_TEST_KEEP");
    if (keep && *keep && strcmp(keep, "0") != 0)
        printf("kept %s\n", dir);
    else
        remove_tree(dir);
    printf("test_perf_report: ok\n");
    return 0;
}
