/*
 * perf/perf_report.c — strata-perf's result writers and readers
 * (perf_report.h): JSON lines, CSV, CDF .dat files, gnuplot PNGs, and the
 * binary per-process part files a multi-process run merges.
 *
 * One field table (k_fields) drives every format, so JSON, CSV, the JSON
 * parser and the part files list the same fields in the same order.
 * Doubles that are measurements (seconds, keys_per_s, server_cpu_s) are
 * printed with %.17g so they read back bit for bit; derived figures use
 * %.6g. JSON has no NaN/inf: a non-finite double is written as null (and
 * an empty CSV cell), and null reads back as 0.
 *
 * Plots: a gnuplot script (plots.gp) and its data files are written into
 * outdir and gnuplot runs there (fork + chdir + exec, so no shell sees the
 * directory name). The script picks pngcairo when that terminal exists
 * and libgd's png otherwise (gnuplot-nox may lack cairo).
 *
 * Threading: single-threaded; no global state.
 */
#include "perf_report.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

/* --- the field table -------------------------------------------------------- */

typedef enum { PF_STR, PF_U32, PF_U64, PF_F64 } pf_kind_t;

#define PF_REQUIRED 1u   /* perf_point_parse_json fails without it */
#define PF_EXACT 2u      /* double printed with %.17g (round trips) */

typedef struct pf_field {
    const char *name;    /* JSON key and CSV column */
    pf_kind_t kind;      /* storage type in perf_point_t */
    size_t off;          /* offsetof(perf_point_t, field) */
    size_t size;         /* sizeof the field (the char array's for PF_STR) */
    unsigned flags;      /* PF_REQUIRED | PF_EXACT */
} pf_field_t;

#define PF(name, kind, flags) \
    { #name, kind, offsetof(perf_point_t, name), sizeof(((perf_point_t *)0)->name), flags }

static const pf_field_t k_fields[] = {
    PF(system, PF_STR, PF_REQUIRED),
    PF(workload, PF_STR, PF_REQUIRED),
    PF(dist, PF_STR, PF_REQUIRED),
    PF(transport, PF_STR, PF_REQUIRED),
    PF(dim, PF_U32, PF_REQUIRED),
    PF(batch, PF_U32, PF_REQUIRED),
    PF(clients, PF_U32, PF_REQUIRED),
    PF(tables, PF_U32, PF_REQUIRED),
    PF(seconds, PF_F64, PF_REQUIRED | PF_EXACT),
    PF(batches, PF_U64, PF_REQUIRED),
    PF(keys, PF_U64, PF_REQUIRED),
    PF(errors, PF_U64, PF_REQUIRED),
    PF(keys_per_s, PF_F64, PF_REQUIRED | PF_EXACT),
    PF(onesided_hits, PF_U64, 0),
    PF(onesided_index, PF_U64, 0),
    PF(onesided_absent, PF_U64, 0),
    PF(rpc_keys, PF_U64, 0),
    PF(torn_retries, PF_U64, 0),
    PF(bytes_sent, PF_U64, 0),
    PF(bytes_received, PF_U64, 0),
    PF(bytes_onesided, PF_U64, 0),
    PF(server_cpu_s, PF_F64, PF_EXACT),
    PF(server_lookups, PF_U64, 0),
    PF(server_lookup_hits, PF_U64, 0),
};
#define NFIELDS (sizeof(k_fields) / sizeof(k_fields[0]))

/* Derived figures, after the fields, in JSON and CSV. */
#define NDERIVED 10
static const char *const k_derived[NDERIVED] = {
    "p50_us", "p90_us", "p99_us", "p999_us", "max_us", "mean_us",
    "dram_hit_rate", "onesided_ratio", "server_cpu_s_per_mkeys", "wire_bytes_per_key",
};

static double ratio(double num, double den)
{
    return den != 0 ? num / den : 0.0;
}

double perf_point_p(const perf_point_t *pt, double percentile)
{
    return (double)hdr_percentile(&pt->lat, percentile) / 1e3;
}

double perf_point_dram_hit_rate(const perf_point_t *pt)
{
    /* keys found in DRAM, however they were read: by the server (RPC) or
     * one-sided (cache or index); one-sided absent keys are misses */
    double found = (double)pt->server_lookup_hits + (double)pt->onesided_hits +
                   (double)pt->onesided_index;
    double asked = (double)pt->server_lookups + (double)pt->onesided_hits +
                   (double)pt->onesided_index + (double)pt->onesided_absent;
    return ratio(found, asked);
}

double perf_point_onesided_ratio(const perf_point_t *pt)
{
    double os = (double)pt->onesided_hits + (double)pt->onesided_index + (double)pt->onesided_absent;
    return ratio(os, os + (double)pt->rpc_keys);
}

double perf_point_server_cpu_per_mkeys(const perf_point_t *pt)
{
    return ratio(pt->server_cpu_s, (double)pt->keys / 1e6);
}

static double perf_point_wire_bytes_per_key(const perf_point_t *pt)
{
    double b = (double)pt->bytes_sent + (double)pt->bytes_received + (double)pt->bytes_onesided;
    return ratio(b, (double)pt->keys);
}

static void derived_values(const perf_point_t *pt, double v[NDERIVED])
{
    v[0] = perf_point_p(pt, 50);
    v[1] = perf_point_p(pt, 90);
    v[2] = perf_point_p(pt, 99);
    v[3] = perf_point_p(pt, 99.9);
    v[4] = pt->lat.count ? (double)pt->lat.max / 1e3 : 0.0;
    v[5] = hdr_mean(&pt->lat) / 1e3;
    v[6] = perf_point_dram_hit_rate(pt);
    v[7] = perf_point_onesided_ratio(pt);
    v[8] = perf_point_server_cpu_per_mkeys(pt);
    v[9] = perf_point_wire_bytes_per_key(pt);
}

/* --- a bounded string builder (snprintf semantics) ------------------------- */

typedef struct sbuf {
    char *buf;    /* destination, may be NULL when cap == 0 */
    size_t cap;   /* bytes available in buf, NUL included */
    size_t len;   /* bytes needed so far, NUL excluded */
} sbuf_t;

__attribute__((format(printf, 2, 3)))
static void sb_printf(sbuf_t *sb, const char *fmt, ...)
{
    char tmp[64];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    /* every format used here is a single number: it fits in tmp */
    for (int i = 0; i < n && i < (int)sizeof(tmp) - 1; i++) {
        if (sb->len + 1 < sb->cap)
            sb->buf[sb->len] = tmp[i];
        sb->len++;
    }
}

static void sb_putc(sbuf_t *sb, char c)
{
    if (sb->len + 1 < sb->cap)
        sb->buf[sb->len] = c;
    sb->len++;
}

static void sb_puts(sbuf_t *sb, const char *s)
{
    while (*s)
        sb_putc(sb, *s++);
}

static void sb_finish(sbuf_t *sb)
{
    if (sb->cap)
        sb->buf[sb->len < sb->cap ? sb->len : sb->cap - 1] = '\0';
}

/* A string field: at most size - 1 bytes, stopping at the first NUL. */
static size_t field_strlen(const char *s, size_t size)
{
    size_t n = 0;
    while (n + 1 < size && s[n])
        n++;
    return n;
}

static void sb_json_string(sbuf_t *sb, const char *s, size_t n)
{
    sb_putc(sb, '"');
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        switch (c) {
        case '"': sb_puts(sb, "\\\""); break;
        case '\\': sb_puts(sb, "\\\\"); break;
        case '\n': sb_puts(sb, "\\n"); break;
        case '\r': sb_puts(sb, "\\r"); break;
        case '\t': sb_puts(sb, "\\t"); break;
        case '\b': sb_puts(sb, "\\b"); break;
        case '\f': sb_puts(sb, "\\f"); break;
        default:
            if (c < 0x20 || c == 0x7f)
                sb_printf(sb, "\\u%04x", c);
            else
                sb_putc(sb, (char)c);
        }
    }
    sb_putc(sb, '"');
}

/* RFC 4180: quoted when it holds a comma, quote, CR or LF; quotes doubled. */
static void sb_csv_string(sbuf_t *sb, const char *s, size_t n)
{
    int quote = 0;
    for (size_t i = 0; i < n; i++)
        if (s[i] == ',' || s[i] == '"' || s[i] == '\n' || s[i] == '\r')
            quote = 1;
    if (quote)
        sb_putc(sb, '"');
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '"')
            sb_putc(sb, '"');
        sb_putc(sb, s[i]);
    }
    if (quote)
        sb_putc(sb, '"');
}

static void sb_double(sbuf_t *sb, double v, int exact, int csv)
{
    if (!isfinite(v)) {
        if (!csv)
            sb_puts(sb, "null");
        return;
    }
    sb_printf(sb, exact ? "%.17g" : "%.6g", v);
}

/* One point as a JSON object (csv == 0) or a CSV row (csv == 1). */
static void sb_point(sbuf_t *sb, const perf_point_t *pt, int csv)
{
    const char *base = (const char *)pt;
    if (!csv)
        sb_putc(sb, '{');
    for (size_t i = 0; i < NFIELDS; i++) {
        const pf_field_t *f = &k_fields[i];
        const void *p = base + f->off;
        if (i)
            sb_putc(sb, ',');
        if (!csv) {
            sb_json_string(sb, f->name, strlen(f->name));
            sb_putc(sb, ':');
        }
        switch (f->kind) {
        case PF_STR: {
            size_t n = field_strlen(p, f->size);
            if (csv)
                sb_csv_string(sb, p, n);
            else
                sb_json_string(sb, p, n);
            break;
        }
        case PF_U32: {
            uint32_t v;
            memcpy(&v, p, sizeof(v));
            sb_printf(sb, "%u", (unsigned)v);
            break;
        }
        case PF_U64: {
            uint64_t v;
            memcpy(&v, p, sizeof(v));
            sb_printf(sb, "%llu", (unsigned long long)v);
            break;
        }
        case PF_F64: {
            double v;
            memcpy(&v, p, sizeof(v));
            sb_double(sb, v, (f->flags & PF_EXACT) != 0, csv);
            break;
        }
        }
    }
    double d[NDERIVED];
    derived_values(pt, d);
    for (size_t i = 0; i < NDERIVED; i++) {
        sb_putc(sb, ',');
        if (!csv) {
            sb_json_string(sb, k_derived[i], strlen(k_derived[i]));
            sb_putc(sb, ':');
        }
        sb_double(sb, d[i], 0, csv);
    }
    if (!csv)
        sb_putc(sb, '}');
}

size_t perf_point_json(const perf_point_t *pt, char *buf, size_t cap)
{
    sbuf_t sb = { buf, buf ? cap : 0, 0 };
    sb_point(&sb, pt, 0);
    sb_finish(&sb);
    return sb.len;
}

/* --- a small JSON reader for flat objects ----------------------------------- */

typedef struct jr {
    const char *p;   /* next unread byte (NUL-terminated input) */
} jr_t;

static void jr_ws(jr_t *r)
{
    while (*r->p == ' ' || *r->p == '\t' || *r->p == '\n' || *r->p == '\r')
        r->p++;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static int jr_hex4(const char *s, uint32_t *out)
{
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) {
        int h = hexval(s[i]);
        if (h < 0)
            return -1;
        v = v << 4 | (uint32_t)h;
    }
    *out = v;
    return 0;
}

/* Appends byte c to dst (cap bytes, NUL kept); *n counts every byte. */
static void put_byte(char *dst, size_t cap, size_t *n, char c)
{
    if (*n + 1 < cap)
        dst[*n] = c;
    (*n)++;
}

/* Reads a JSON string at r->p (at the opening quote) into dst (cap bytes,
 * NUL-terminated, truncated); *len_p gets the decoded length, which is
 * >= cap when it did not fit. Returns 0 or -1 when malformed. */
static int jr_string(jr_t *r, char *dst, size_t cap, size_t *len_p)
{
    const char *s = r->p;
    size_t n = 0;
    if (*s++ != '"')
        return -1;
    for (;;) {
        unsigned char c = (unsigned char)*s++;
        if (c == '"')
            break;
        if (c < 0x20)                          /* NUL (end of input) or control */
            return -1;
        if (c != '\\') {
            put_byte(dst, cap, &n, (char)c);
            continue;
        }
        char e = *s++;
        switch (e) {
        case '"': case '\\': case '/': put_byte(dst, cap, &n, e); break;
        case 'b': put_byte(dst, cap, &n, '\b'); break;
        case 'f': put_byte(dst, cap, &n, '\f'); break;
        case 'n': put_byte(dst, cap, &n, '\n'); break;
        case 'r': put_byte(dst, cap, &n, '\r'); break;
        case 't': put_byte(dst, cap, &n, '\t'); break;
        case 'u': {
            uint32_t cp, lo;
            if (jr_hex4(s, &cp) != 0)
                return -1;
            s += 4;
            if (cp >= 0xd800 && cp < 0xdc00) {     /* high surrogate: a low one follows */
                if (s[0] != '\\' || s[1] != 'u' || jr_hex4(s + 2, &lo) != 0 ||
                    lo < 0xdc00 || lo >= 0xe000)
                    return -1;
                s += 6;
                cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
            } else if (cp >= 0xdc00 && cp < 0xe000) {
                return -1;
            }
            if (cp == 0)                           /* would cut the C string */
                return -1;
            if (cp < 0x80) {
                put_byte(dst, cap, &n, (char)cp);
            } else if (cp < 0x800) {
                put_byte(dst, cap, &n, (char)(0xc0 | cp >> 6));
                put_byte(dst, cap, &n, (char)(0x80 | (cp & 0x3f)));
            } else if (cp < 0x10000) {
                put_byte(dst, cap, &n, (char)(0xe0 | cp >> 12));
                put_byte(dst, cap, &n, (char)(0x80 | ((cp >> 6) & 0x3f)));
                put_byte(dst, cap, &n, (char)(0x80 | (cp & 0x3f)));
            } else {
                put_byte(dst, cap, &n, (char)(0xf0 | cp >> 18));
                put_byte(dst, cap, &n, (char)(0x80 | ((cp >> 12) & 0x3f)));
                put_byte(dst, cap, &n, (char)(0x80 | ((cp >> 6) & 0x3f)));
                put_byte(dst, cap, &n, (char)(0x80 | (cp & 0x3f)));
            }
            break;
        }
        default:
            return -1;
        }
    }
    if (cap)
        dst[n < cap ? n : cap - 1] = '\0';
    *len_p = n;
    r->p = s;
    return 0;
}

/* A scalar token (number or literal) at r->p into tok; -1 when empty or
 * longer than tok. */
static int jr_token(jr_t *r, char *tok, size_t cap)
{
    size_t n = 0;
    while ((*r->p >= '0' && *r->p <= '9') || (*r->p >= 'a' && *r->p <= 'z') ||
           *r->p == '-' || *r->p == '+' || *r->p == '.' || *r->p == 'E') {
        if (n + 1 >= cap)
            return -1;
        tok[n++] = *r->p++;
    }
    tok[n] = '\0';
    return n ? 0 : -1;
}

/* Skips any JSON value (for unknown keys), nested ones included. */
static int jr_skip_value(jr_t *r)
{
    char tmp[2];
    size_t len;
    if (*r->p == '"')
        return jr_string(r, tmp, sizeof(tmp), &len);
    if (*r->p != '{' && *r->p != '[') {
        char tok[64];
        return jr_token(r, tok, sizeof(tok));
    }
    unsigned depth = 0;
    do {
        char c = *r->p;
        if (c == '\0')
            return -1;
        if (c == '"') {
            if (jr_string(r, tmp, sizeof(tmp), &len) != 0)
                return -1;
            continue;
        }
        if (c == '{' || c == '[')
            depth++;
        else if (c == '}' || c == ']')
            depth--;
        r->p++;
    } while (depth > 0);
    return 0;
}

static int parse_u64(const char *tok, uint64_t max, uint64_t *out)
{
    if (*tok < '0' || *tok > '9')
        return -1;
    for (const char *s = tok; *s; s++)
        if (*s < '0' || *s > '9')
            return -1;
    errno = 0;
    unsigned long long v = strtoull(tok, NULL, 10);
    if (errno == ERANGE || v > max)
        return -1;
    *out = v;
    return 0;
}

static int parse_f64(const char *tok, double *out)
{
    if (strcmp(tok, "null") == 0) {
        *out = 0;
        return 0;
    }
    if (!((*tok >= '0' && *tok <= '9') || *tok == '-'))   /* no "inf", "nan", "+1" */
        return -1;
    char *end;
    errno = 0;
    double v = strtod(tok, &end);
    if (*end != '\0' || !isfinite(v))
        return -1;
    *out = v;
    return 0;
}

/* One "key": value pair of the object: stores known fields into pt and
 * marks them in seen[]; unknown keys and derived figures are skipped. */
static int jr_member(jr_t *r, perf_point_t *pt, unsigned char *seen)
{
    char key[64];
    size_t klen;
    if (jr_string(r, key, sizeof(key), &klen) != 0)
        return -1;
    jr_ws(r);
    if (*r->p++ != ':')
        return -1;
    jr_ws(r);

    const pf_field_t *f = NULL;
    size_t fi = 0;
    for (; klen < sizeof(key) && fi < NFIELDS; fi++) {
        if (strcmp(k_fields[fi].name, key) == 0) {
            f = &k_fields[fi];
            break;
        }
    }
    if (f == NULL)
        return jr_skip_value(r);

    char *p = (char *)pt + f->off;
    if (f->kind == PF_STR) {
        size_t len;
        if (*r->p != '"' || jr_string(r, p, f->size, &len) != 0 || len >= f->size ||
            strlen(p) != len)
            return -1;
        memset(p + len, 0, f->size - len);
    } else {
        char tok[64];
        if (jr_token(r, tok, sizeof(tok)) != 0)
            return -1;
        uint64_t u;
        double d;
        if (f->kind == PF_U32) {
            if (parse_u64(tok, UINT32_MAX, &u) != 0)
                return -1;
            uint32_t v = (uint32_t)u;
            memcpy(p, &v, sizeof(v));
        } else if (f->kind == PF_U64) {
            if (parse_u64(tok, UINT64_MAX, &u) != 0)
                return -1;
            memcpy(p, &u, sizeof(u));
        } else {
            if (parse_f64(tok, &d) != 0)
                return -1;
            memcpy(p, &d, sizeof(d));
        }
    }
    seen[fi] = 1;
    return 0;
}

int perf_point_parse_json(const char *line, perf_point_t *pt)
{
    if (line == NULL)
        return -1;
    perf_point_t *tmp = calloc(1, sizeof(*tmp));
    if (tmp == NULL)
        return -1;
    hdr_init(&tmp->lat);
    unsigned char seen[NFIELDS] = { 0 };
    jr_t r = { line };
    int rc = -1;

    jr_ws(&r);
    if (*r.p++ != '{')
        goto out_free;
    jr_ws(&r);
    if (*r.p == '}') {
        r.p++;
    } else {
        for (;;) {
            jr_ws(&r);
            if (*r.p != '"' || jr_member(&r, tmp, seen) != 0)
                goto out_free;
            jr_ws(&r);
            char c = *r.p++;
            if (c == '}')
                break;
            if (c != ',')
                goto out_free;
        }
    }
    jr_ws(&r);
    if (*r.p != '\0')
        goto out_free;
    for (size_t i = 0; i < NFIELDS; i++)
        if ((k_fields[i].flags & PF_REQUIRED) && !seen[i])
            goto out_free;
    memcpy(pt, tmp, sizeof(*pt));
    rc = 0;
out_free:
    free(tmp);
    return rc;
}

/* --- merging ----------------------------------------------------------------- */

void perf_point_merge(perf_point_t *dst, const perf_point_t *src)
{
    dst->batches += src->batches;
    dst->keys += src->keys;
    dst->errors += src->errors;
    dst->onesided_hits += src->onesided_hits;
    dst->onesided_index += src->onesided_index;
    dst->onesided_absent += src->onesided_absent;
    dst->rpc_keys += src->rpc_keys;
    dst->torn_retries += src->torn_retries;
    dst->bytes_sent += src->bytes_sent;
    dst->bytes_received += src->bytes_received;
    dst->bytes_onesided += src->bytes_onesided;
    dst->server_cpu_s += src->server_cpu_s;
    dst->server_lookups += src->server_lookups;
    dst->server_lookup_hits += src->server_lookup_hits;
    hdr_merge(&dst->lat, &src->lat);
    dst->keys_per_s = ratio((double)dst->keys, dst->seconds);
}

/* --- part files ----------------------------------------------------------------
 * Layout (little-endian): "SPR1", u32 version, every numeric field of
 * k_fields in table order (u32, u64, or f64 as its bits), every text field
 * in its fixed size (NUL-padded: 32, 16, 32, 32 bytes), u32 histogram
 * length, the hdr_serialize bytes, and a CRC-32 (IEEE) of all before it. */

#define PART_MAGIC "SPR1"
#define PART_VERSION 1u
#define PART_MAX_BYTES (1u << 20)   /* far above any valid part (~53 KiB) */

static uint32_t crc32_ieee(const unsigned char *p, size_t n)
{
    uint32_t c = 0xffffffffu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++)
            c = (c >> 1) ^ (0xedb88320u & (0u - (c & 1u)));
    }
    return ~c;
}

static void le_put(unsigned char *p, uint64_t v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static uint64_t le_get(const unsigned char *p, size_t n)
{
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

static size_t part_fixed_bytes(void)
{
    size_t n = 8;   /* magic, version */
    for (size_t i = 0; i < NFIELDS; i++)
        n += k_fields[i].kind == PF_U32 ? 4 : k_fields[i].size;
    return n + 4;   /* histogram length */
}

int perf_part_write(const char *path, const perf_point_t *pt)
{
    size_t hlen = hdr_serialize(&pt->lat, NULL, 0);
    size_t fixed = part_fixed_bytes();
    size_t total = fixed + hlen + 4;
    unsigned char *buf = calloc(1, total);
    if (buf == NULL)
        return -1;

    unsigned char *q = buf;
    memcpy(q, PART_MAGIC, 4);
    le_put(q + 4, PART_VERSION, 4);
    q += 8;
    const char *base = (const char *)pt;
    for (size_t i = 0; i < NFIELDS; i++) {          /* numbers first */
        const pf_field_t *f = &k_fields[i];
        uint64_t v = 0;
        if (f->kind == PF_STR)
            continue;
        if (f->kind == PF_U32) {
            uint32_t u;
            memcpy(&u, base + f->off, 4);
            le_put(q, u, 4);
            q += 4;
            continue;
        }
        memcpy(&v, base + f->off, 8);               /* u64, or f64's bits */
        le_put(q, v, 8);
        q += 8;
    }
    for (size_t i = 0; i < NFIELDS; i++) {          /* then text, NUL-padded */
        const pf_field_t *f = &k_fields[i];
        if (f->kind != PF_STR)
            continue;
        memcpy(q, base + f->off, field_strlen(base + f->off, f->size));
        q += f->size;
    }
    le_put(q, hlen, 4);
    q += 4;
    hdr_serialize(&pt->lat, q, hlen);
    q += hlen;
    le_put(q, crc32_ieee(buf, (size_t)(q - buf)), 4);

    /* Write a temporary file and rename it, so a reader never sees half a
     * part. */
    int rc = -1, err = 0;
    size_t plen = strlen(path);
    char *tmp = malloc(plen + 32);
    if (tmp == NULL) {
        err = ENOMEM;
        goto out_buf;
    }
    snprintf(tmp, plen + 32, "%s.tmp.%ld", path, (long)getpid());
    FILE *f = fopen(tmp, "wb");
    if (f == NULL) {
        err = errno;
        goto out_tmp;
    }
    if (fwrite(buf, 1, total, f) != total)
        err = errno ? errno : EIO;
    if (fclose(f) != 0 && err == 0)
        err = errno ? errno : EIO;
    if (err == 0 && rename(tmp, path) != 0)
        err = errno;
    if (err)
        unlink(tmp);
    else
        rc = 0;
out_tmp:
    free(tmp);
out_buf:
    free(buf);
    if (err)
        errno = err;
    return rc;
}

int perf_part_read(const char *path, perf_point_t *pt)
{
    int rc = -1;
    unsigned char *buf = malloc(PART_MAX_BYTES + 1);
    perf_point_t *tmp = calloc(1, sizeof(*tmp));
    FILE *f = fopen(path, "rb");
    if (buf == NULL || tmp == NULL || f == NULL)
        goto out;
    size_t len = fread(buf, 1, PART_MAX_BYTES + 1, f);
    if (ferror(f) || len > PART_MAX_BYTES)
        goto out;

    size_t fixed = part_fixed_bytes();
    if (len < fixed + 4 || memcmp(buf, PART_MAGIC, 4) != 0 ||
        le_get(buf + 4, 4) != PART_VERSION)
        goto out;
    if (crc32_ieee(buf, len - 4) != (uint32_t)le_get(buf + len - 4, 4))
        goto out;
    uint64_t hlen = le_get(buf + fixed - 4, 4);
    if (hlen != len - 4 - fixed)
        goto out;

    const unsigned char *q = buf + 8;
    char *base = (char *)tmp;
    for (size_t i = 0; i < NFIELDS; i++) {
        const pf_field_t *fl = &k_fields[i];
        if (fl->kind == PF_STR)
            continue;
        if (fl->kind == PF_U32) {
            uint32_t u = (uint32_t)le_get(q, 4);
            memcpy(base + fl->off, &u, 4);
            q += 4;
            continue;
        }
        uint64_t v = le_get(q, 8);
        memcpy(base + fl->off, &v, 8);
        if (fl->kind == PF_F64) {
            double d;
            memcpy(&d, &v, 8);
            if (!isfinite(d) || d < 0)
                goto out;
        }
        q += 8;
    }
    for (size_t i = 0; i < NFIELDS; i++) {
        const pf_field_t *fl = &k_fields[i];
        if (fl->kind != PF_STR)
            continue;
        /* NUL-terminated inside the field, zero padding after it */
        size_t n = field_strlen((const char *)q, fl->size);
        for (size_t k = n; k < fl->size; k++)
            if (q[k] != 0)
                goto out;
        memcpy(base + fl->off, q, fl->size);
        q += fl->size;
    }
    q += 4;
    if (hdr_deserialize(&tmp->lat, q, (size_t)hlen) != 0)
        goto out;
    memcpy(pt, tmp, sizeof(*pt));
    rc = 0;
out:
    if (f)
        fclose(f);
    free(tmp);
    free(buf);
    return rc;
}

/* --- report files -------------------------------------------------------------- */

static int join_path(char *out, size_t cap, const char *dir, const char *name)
{
    int n = snprintf(out, cap, "%s/%s", dir, name);
    if (n < 0 || (size_t)n >= cap) {
        fprintf(stderr, "perf_report: path too long: %s/%s\n", dir, name);
        return -1;
    }
    return 0;
}

/* Opens dir/name for writing, printing why on failure. */
static FILE *open_out(const char *dir, const char *name, char *path, size_t cap)
{
    if (join_path(path, cap, dir, name) != 0)
        return NULL;
    FILE *f = fopen(path, "w");
    if (f == NULL)
        fprintf(stderr, "perf_report: %s: %s\n", path, strerror(errno));
    return f;
}

/* Closes f, printing why on a failed write; 0 or -1. */
static int close_out(FILE *f, const char *path)
{
    int bad = ferror(f);
    int err = errno;
    if (fclose(f) != 0 && !bad) {
        bad = 1;
        err = errno;
    }
    if (bad) {
        fprintf(stderr, "perf_report: writing %s: %s\n", path, strerror(err ? err : EIO));
        return -1;
    }
    return 0;
}

/* A point rendered by sb_point into a heap buffer of the right size. */
static char *point_text(const perf_point_t *pt, int csv)
{
    sbuf_t sb = { NULL, 0, 0 };
    sb_point(&sb, pt, csv);
    size_t cap = sb.len + 1;
    char *s = malloc(cap);
    if (s == NULL)
        return NULL;
    sb = (sbuf_t){ s, cap, 0 };
    sb_point(&sb, pt, csv);
    sb_finish(&sb);
    return s;
}

static int write_lines(const perf_point_t *pts, size_t n, const char *outdir, int csv)
{
    char path[PATH_MAX];
    FILE *f = open_out(outdir, csv ? "results.csv" : "results.json", path, sizeof(path));
    if (f == NULL)
        return -1;
    if (csv) {
        for (size_t i = 0; i < NFIELDS; i++)
            fprintf(f, "%s%s", i ? "," : "", k_fields[i].name);
        for (size_t i = 0; i < NDERIVED; i++)
            fprintf(f, ",%s", k_derived[i]);
        fputc('\n', f);
    }
    for (size_t i = 0; i < n; i++) {
        char *s = point_text(&pts[i], csv);
        if (s == NULL) {
            fprintf(stderr, "perf_report: out of memory\n");
            fclose(f);
            return -1;
        }
        fputs(s, f);
        fputc('\n', f);
        free(s);
    }
    return close_out(f, path);
}

/* --- plots --------------------------------------------------------------------- */

/* gnuplot's full path from PATH into out; 0, or -1 when absent. */
static int find_gnuplot(char *out, size_t cap)
{
    const char *path = getenv("PATH");
    if (path == NULL || *path == '\0')
        path = "/usr/local/bin:/usr/bin:/bin";
    while (*path) {
        const char *colon = strchr(path, ':');
        size_t len = colon ? (size_t)(colon - path) : strlen(path);
        int n = len ? snprintf(out, cap, "%.*s/gnuplot", (int)len, path)
                    : snprintf(out, cap, "./gnuplot");
        if (n > 0 && (size_t)n < cap && access(out, X_OK) == 0)
            return 0;
        path += len + (colon != NULL);
    }
    return -1;
}

/* Which configuration fields take more than one value over the points: a
 * series (and a label) names the fields that vary, besides the fixed
 * system/workload/transport/dim. */
typedef struct vary {
    int dist, batch, clients, tables;   /* 1 when the field varies */
} vary_t;

static vary_t points_vary(const perf_point_t *pts, size_t n)
{
    vary_t v = { 0, 0, 0, 0 };
    for (size_t i = 1; i < n; i++) {
        v.dist |= strncmp(pts[i].dist, pts[0].dist, sizeof(pts[0].dist)) != 0;
        v.batch |= pts[i].batch != pts[0].batch;
        v.clients |= pts[i].clients != pts[0].clients;
        v.tables |= pts[i].tables != pts[0].tables;
    }
    return v;
}

/* Appends s (a text field) to a gnuplot title, keeping only characters
 * that are safe inside a double-quoted gnuplot string. */
static void title_field(sbuf_t *sb, const char *s, size_t size)
{
    if (sb->len)
        sb_putc(sb, ' ');
    size_t n = field_strlen(s, size);
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                 strchr(".:_+-=/", c) != NULL;
        sb_putc(sb, ok ? c : '_');
    }
}

/* The series title of pt: system workload transport d<dim> and whichever
 * of dist, b<batch>, c<clients>, t<tables> are set in show. */
static void series_title(char *out, size_t cap, const perf_point_t *pt, vary_t show)
{
    sbuf_t sb = { out, cap, 0 };
    title_field(&sb, pt->system, sizeof(pt->system));
    title_field(&sb, pt->workload, sizeof(pt->workload));
    title_field(&sb, pt->transport, sizeof(pt->transport));
    sb_printf(&sb, " d%u", (unsigned)pt->dim);
    if (show.dist)
        title_field(&sb, pt->dist, sizeof(pt->dist));
    if (show.batch)
        sb_printf(&sb, " b%u", (unsigned)pt->batch);
    if (show.clients)
        sb_printf(&sb, " c%u", (unsigned)pt->clients);
    if (show.tables)
        sb_printf(&sb, " t%u", (unsigned)pt->tables);
    sb_finish(&sb);
}

#define TITLE_CAP 192

static uint32_t point_x(const perf_point_t *pt, int by_clients)
{
    return by_clients ? pt->clients : pt->batch;
}

/* Writes data file `name` with one gnuplot data block (x keys_per_s) per
 * series, in order of first appearance, and appends to the script the
 * preamble (settings) and the plot command for them, when there is at
 * least one series; returns the number of series, or -1 on error. Points
 * are grouped by series title; x is batch or clients. Points that the
 * log axes cannot show (x or y <= 0) are left out when logxy, and series
 * with fewer than min_points points are left out. */
static int write_series(FILE *gp, const char *preamble, const perf_point_t *pts, size_t n,
                        vary_t show, int by_clients, int logxy, size_t min_points,
                        const char *outdir, const char *name)
{
    char path[PATH_MAX];
    char (*titles)[TITLE_CAP] = calloc(n ? n : 1, TITLE_CAP);
    size_t *order = calloc(n ? n : 1, sizeof(*order));
    unsigned char *done = calloc(n ? n : 1, 1);
    FILE *f = NULL;
    int nseries = -1;
    if (titles == NULL || order == NULL || done == NULL) {
        fprintf(stderr, "perf_report: out of memory\n");
        goto out;
    }
    f = open_out(outdir, name, path, sizeof(path));
    if (f == NULL)
        goto out;
    for (size_t i = 0; i < n; i++)
        series_title(titles[i], TITLE_CAP, &pts[i], show);

    nseries = 0;
    for (size_t i = 0; i < n; i++) {
        if (done[i])
            continue;
        /* gather the series of point i, ordered by x (insertion sort) */
        size_t m = 0;
        for (size_t j = i; j < n; j++) {
            if (done[j] || strcmp(titles[i], titles[j]) != 0)
                continue;
            done[j] = 1;
            int ok = !logxy || (pts[j].keys_per_s > 0 && point_x(&pts[j], by_clients) > 0);
            if (!ok || !isfinite(pts[j].keys_per_s))
                continue;
            size_t k = m++;
            while (k > 0 && point_x(&pts[order[k - 1]], by_clients) > point_x(&pts[j], by_clients)) {
                order[k] = order[k - 1];
                k--;
            }
            order[k] = j;
        }
        if (m == 0 || m < min_points)
            continue;
        if (nseries)
            fputs("\n\n", f);   /* two blank lines: the next gnuplot index */
        else
            fputs(preamble, gp);
        for (size_t k = 0; k < m; k++)
            fprintf(f, "%u %.17g\n", (unsigned)point_x(&pts[order[k]], by_clients),
                    pts[order[k]].keys_per_s);
        fprintf(gp, "%s'%s' index %d using 1:2 with linespoints title \"%s\"",
                nseries ? ", \\\n     " : "plot ", name, nseries, titles[i]);
        nseries++;
    }
    if (nseries)
        fputc('\n', gp);
    if (close_out(f, path) != 0)
        nseries = -1;
    f = NULL;
out:
    if (f)
        fclose(f);
    free(done);
    free(order);
    free(titles);
    return nseries;
}

/* Writes plots.gp and its data files into outdir; *expect gets the PNGs
 * the script will make (bit 0 throughput, 1 cdf, 2 scaling). */
static int write_plot_script(const perf_point_t *pts, size_t n, const char *outdir,
                             unsigned *expect)
{
    char path[PATH_MAX];
    FILE *gp = open_out(outdir, "plots.gp", path, sizeof(path));
    if (gp == NULL)
        return -1;
    *expect = 0;
    vary_t v = points_vary(pts, n);
    fputs("# strata-perf plots (perf/perf_report.c); run in this directory: gnuplot plots.gp\n"
          "if (strstrt(GPVAL_TERMINALS, ' pngcairo ') > 0) {\n"
          "    set terminal pngcairo size 900,600 noenhanced font ',9'\n"
          "} else {\n"
          "    set terminal png size 900,600\n"
          "}\n"
          "set termoption noenhanced\n",
          gp);

    /* keys/s against batch: a series per system/workload/transport/dim and
     * whichever of dist, clients, tables vary, so that each line is a
     * batch sweep */
    vary_t tv = v;
    tv.batch = 0;
    int ns = write_series(gp, "\nreset\nset output 'throughput_vs_batch.png'\n"
          "set title 'Throughput against batch size'\n"
          "set xlabel 'batch (keys per request)'\nset ylabel 'keys/s'\n"
          "set logscale x 2\nset logscale y 10\nset format y '%.0s%c'\nset grid\n"
          "set key inside left top Left reverse box opaque font ',8'\n",
          pts, n, tv, 0, 1, 1, outdir, "throughput.dat");
    if (ns < 0)
        goto out_err;
    if (ns > 0)
        *expect |= 1;

    /* latency CDFs, one per point */
    int any = 0;
    vary_t cv = v;
    cv.batch = 1;
    for (size_t i = 0; i < n; i++) {
        if (pts[i].lat.count == 0)
            continue;
        if (!any)
            fputs("\nreset\nset output 'latency_cdf.png'\n"
                  "set title 'Request latency CDF'\n"
                  "set xlabel 'latency (us)'\nset ylabel 'cumulative fraction'\n"
                  "set logscale x 10\nset yrange [0:1.02]\nset grid\n"
                  "set key inside right bottom Left reverse box opaque font ',8'\n",
                  gp);
        char title[TITLE_CAP];
        series_title(title, sizeof(title), &pts[i], cv);
        fprintf(gp, "%s'cdf_%zu.dat' using ($1 > 0 ? $1 : 1/0):2 with steps title \"%s\"",
                any ? ", \\\n     " : "plot ", i, title);
        any = 1;
    }
    if (any) {
        fputc('\n', gp);
        *expect |= 2;
    }

    /* keys/s against clients, when the clients vary: the series that
     * have two client counts or more */
    if (v.clients) {
        vary_t sv = v;
        sv.clients = 0;
        ns = write_series(gp, "\nreset\nset output 'scaling_clients.png'\n"
              "set title 'Throughput against client processes'\n"
              "set xlabel 'clients'\nset ylabel 'keys/s'\n"
              "set xrange [0:*]\nset yrange [0:*]\nset format y '%.1s%c'\nset grid\n"
              "set key inside left top Left reverse box opaque font ',8'\n",
              pts, n, sv, 1, 0, 2, outdir, "scaling.dat");
        if (ns < 0)
            goto out_err;
        if (ns > 0)
            *expect |= 4;
    }
    fputs("\nunset output\n", gp);
    return close_out(gp, path);

out_err:
    fclose(gp);
    return -1;
}

/* Runs gnuplot (full path) on plots.gp with outdir as its working
 * directory; 0 when it exits 0. */
static int run_gnuplot(const char *gnuplot, const char *outdir)
{
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        fprintf(stderr, "perf_report: fork: %s\n", strerror(errno));
        return -1;
    }
    if (pid == 0) {
        if (chdir(outdir) != 0)
            _exit(126);
        execl(gnuplot, "gnuplot", "plots.gp", (char *)NULL);
        _exit(127);
    }
    int status;
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) {
            fprintf(stderr, "perf_report: waitpid: %s\n", strerror(errno));
            return -1;
        }
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "perf_report: gnuplot failed (status %d) on %s/plots.gp\n", status,
                outdir);
        return -1;
    }
    return 0;
}

int perf_report_write(const perf_point_t *pts, size_t n, const char *outdir, int plots)
{
    if (mkdir(outdir, 0755) != 0 && errno != EEXIST) {
        fprintf(stderr, "perf_report: mkdir %s: %s\n", outdir, strerror(errno));
        return -1;
    }
    if (write_lines(pts, n, outdir, 0) != 0 || write_lines(pts, n, outdir, 1) != 0)
        return -1;
    char path[PATH_MAX];
    for (size_t i = 0; i < n; i++) {
        char name[48];
        snprintf(name, sizeof(name), "cdf_%zu.dat", i);
        if (join_path(path, sizeof(path), outdir, name) != 0)
            return -1;
        if (hdr_write_cdf(&pts[i].lat, path) != 0) {
            fprintf(stderr, "perf_report: %s: %s\n", path, strerror(errno));
            return -1;
        }
    }
    if (!plots || n == 0)
        return 0;

    /* the script and its data are written even without gnuplot, to be
     * plotted elsewhere */
    unsigned expect = 0;
    if (write_plot_script(pts, n, outdir, &expect) != 0)
        return -1;
    char gnuplot[PATH_MAX];
    if (find_gnuplot(gnuplot, sizeof(gnuplot)) != 0) {
        fprintf(stderr, "perf_report: note: gnuplot not on PATH, no plots "
                        "(%s/plots.gp and its data are written)\n", outdir);
        return 0;
    }
    if (expect == 0)
        return 0;
    if (run_gnuplot(gnuplot, outdir) != 0)
        return -1;
    static const char *const pngs[] = {
        "throughput_vs_batch.png", "latency_cdf.png", "scaling_clients.png",
    };
    for (unsigned i = 0; i < 3; i++) {
        if (!(expect & (1u << i)))
            continue;
        if (join_path(path, sizeof(path), outdir, pngs[i]) != 0)
            return -1;
        if (access(path, R_OK) != 0) {
            fprintf(stderr, "perf_report: gnuplot made no %s\n", path);
            return -1;
        }
    }
    return 0;
}
