/*
 * perf/peer_kv.c — Redis and memcached benchmark peers (see peer_kv.h).
 *
 * A run: find the binary, make a temporary directory, pick a free port,
 * start the server (its stdout and stderr go to <dir>/server.log; pinned
 * when asked; PR_SET_PDEATHSIG), wait until it accepts connections, load
 * the keys, read the key stream for warmup + window from one thread, stop
 * the server, remove the directory. Each step that can fail leaves through
 * the cleanup labels, which undo in reverse order.
 *
 * Invariants: a started server's pid is in the registry (g_servers) from
 * fork until waitpid reaped it, so the atexit and signal paths can stop it;
 * only 127.0.0.1 is ever connected to; the hot loops do not allocate (the
 * hiredis reader is given counting reply functions instead of building
 * reply objects; each memcached connection reuses one result).
 *
 * Timing: CLOCK_MONOTONIC. A batch's latency runs from when its request is
 * queued for sending to when the read that completed its reply returned.
 * Batches completing inside the window count; their keys are the
 * throughput. Server CPU is utime+stime from /proc/<pid>/stat over the
 * window, client CPU is the calling thread's CLOCK_THREAD_CPUTIME_ID.
 *
 * Threading: one run at a time per process; everything runs on the
 * calling thread.
 */
#define _GNU_SOURCE
#include "peer_kv.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>

#include <hiredis/hiredis.h>
#include <libmemcached/memcached.h>

#define LOOPBACK "127.0.0.1"
#define START_TRIES 3           /* ports tried when a server exits at start */
#define READY_TIMEOUT_S 10.0    /* wait for a server to accept connections */
#define STOP_GRACE_S 5.0        /* SIGTERM to SIGKILL */
#define MAX_SERVERS 4           /* registry slots (one run uses one) */
#define MAX_BATCH (1u << 20)    /* keys per request, sanity bound */
#define MAX_INFLIGHT 16384      /* batches in flight, sanity bound */
#define LOAD_CHUNK_BYTES (1u << 20) /* bytes per MSET while loading */
#define LOAD_DEPTH 8            /* MSETs in flight while loading */

/* ------------------------------------------------------------------ */
/* Small helpers                                                       */
/* ------------------------------------------------------------------ */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static double thread_cpu_s(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) != 0)
        return -1.0;
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void sleep_s(double s)
{
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

__attribute__((format(printf, 2, 3))) static void set_note(peer_kv_result_t *r, const char *fmt,
                                                           ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->note, sizeof(r->note), fmt, ap);
    va_end(ap);
}

/** Decimal digits of v into dst (no NUL). Returns the length. */
static size_t fmt_u64(char *dst, uint64_t v)
{
    char tmp[20];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (size_t i = 0; i < n; i++)
        dst[i] = tmp[n - 1 - i];
    return n;
}

size_t peer_kv_key_format(char *dst, uint64_t k)
{
    dst[0] = 'k';
    dst[1] = ':';
    return 2 + fmt_u64(dst + 2, k);
}

/** Make val (value_bytes of filler) the value of key k: its first 8
 *  bytes become k, little-endian; the filler after them is kept. */
static void value_stamp(char *val, uint32_t value_bytes, uint64_t k)
{
    for (uint32_t i = 0; i < 8 && i < value_bytes; i++)
        val[i] = (char)(k >> (8 * i));
}

/* ------------------------------------------------------------------ */
/* Latency histogram: log-linear, 64 sub-buckets per power of two      */
/* (relative error below 1/64), exact below 128 ns.                    */
/* ------------------------------------------------------------------ */

#define HIST_SUB_BITS 6
#define HIST_SLOTS ((64 - HIST_SUB_BITS) * (1u << HIST_SUB_BITS) + 2 * (1u << HIST_SUB_BITS))

typedef struct hist {
    uint64_t count[HIST_SLOTS]; /* samples per bucket */
    uint64_t total;             /* samples in all buckets */
} hist_t;

static unsigned hist_index(uint64_t v)
{
    if (v < (2u << HIST_SUB_BITS))
        return (unsigned)v;
    unsigned msb = 63u - (unsigned)__builtin_clzll(v);
    unsigned e = msb - HIST_SUB_BITS;
    return e * (1u << HIST_SUB_BITS) + (unsigned)(v >> e);
}

static double hist_value(unsigned idx)
{
    if (idx < (2u << HIST_SUB_BITS))
        return (double)idx;
    unsigned e = idx / (1u << HIST_SUB_BITS) - 1;
    uint64_t m = idx - e * (1u << HIST_SUB_BITS);
    return (double)(m << e) + (double)(1ull << e) / 2.0; /* bucket middle */
}

static void hist_add(hist_t *h, uint64_t v)
{
    h->count[hist_index(v)]++;
    h->total++;
}

/** The q-quantile (0..1), or -1 when empty. */
static double hist_quantile(const hist_t *h, double q)
{
    if (h->total == 0)
        return -1.0;
    uint64_t want = (uint64_t)(q * (double)h->total);
    if (want < 1)
        want = 1;
    uint64_t seen = 0;
    for (unsigned i = 0; i < HIST_SLOTS; i++) {
        seen += h->count[i];
        if (seen >= want)
            return hist_value(i);
    }
    return hist_value(HIST_SLOTS - 1);
}

/* ------------------------------------------------------------------ */
/* Server registry, atexit and signal cleanup                          */
/* ------------------------------------------------------------------ */

/* Started, not yet reaped servers; pid 0 = free slot. Read by the signal
 * handler: a slot's paths are written before its pid is published. */
typedef struct server_slot {
    volatile pid_t pid;  /* the server, 0 when the slot is free */
    char dir[256];       /* its temporary directory */
    char log[288];       /* the one file in it */
} server_slot_t;

static server_slot_t g_servers[MAX_SERVERS];
static pthread_once_t g_atexit_once = PTHREAD_ONCE_INIT;

static const int g_catch[] = {SIGINT, SIGTERM, SIGHUP};
#define NCATCH (sizeof(g_catch) / sizeof(g_catch[0]))
static struct sigaction g_old_action[NCATCH]; /* dispositions replaced during a run */
static int g_caught[NCATCH];                  /* g_old_action[i] is to be restored */

static void registry_add(pid_t pid, const char *dir, const char *log)
{
    for (int i = 0; i < MAX_SERVERS; i++)
        if (g_servers[i].pid == 0) {
            snprintf(g_servers[i].dir, sizeof(g_servers[i].dir), "%s", dir);
            snprintf(g_servers[i].log, sizeof(g_servers[i].log), "%s", log);
            __atomic_store_n(&g_servers[i].pid, pid, __ATOMIC_RELEASE); /* pairs with the
                                                       handler's acquire load */
            return;
        }
}

static void registry_del(pid_t pid)
{
    for (int i = 0; i < MAX_SERVERS; i++)
        if (g_servers[i].pid == pid)
            g_servers[i].pid = 0;
}

/** Stop pid: SIGTERM, up to STOP_GRACE_S for it to exit, then SIGKILL.
 *  Reaps it and removes it from the registry. */
static void pid_stop(pid_t pid)
{
    if (pid <= 0)
        return;
    kill(pid, SIGTERM);
    double deadline = now_s() + STOP_GRACE_S;
    for (;;) {
        pid_t w = waitpid(pid, NULL, WNOHANG);
        if (w == pid || (w < 0 && errno != EINTR))
            break; /* reaped, or not our child to reap (ECHILD) */
        if (now_s() > deadline) {
            kill(pid, SIGKILL);
            while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {
            }
            break;
        }
        sleep_s(0.005);
    }
    registry_del(pid);
}

static void atexit_stop_all(void)
{
    for (int i = 0; i < MAX_SERVERS; i++)
        if (g_servers[i].pid > 0) {
            pid_stop(g_servers[i].pid);
            unlink(g_servers[i].log);
            rmdir(g_servers[i].dir);
        }
}

static void register_atexit(void)
{
    atexit(atexit_stop_all);
}

/** SIGINT/SIGTERM/SIGHUP during a run: SIGKILL the servers and remove
 *  their directories (kill, unlink, rmdir are async-signal-safe; the
 *  servers hold no state worth a graceful stop), put back the previous
 *  disposition and raise the signal again; it is delivered under that
 *  disposition when this handler returns. */
static void on_fatal_signal(int sig)
{
    int saved = errno;
    for (int i = 0; i < MAX_SERVERS; i++) {
        pid_t pid = __atomic_load_n(&g_servers[i].pid, __ATOMIC_ACQUIRE); /* pairs with
                                                         registry_add's release store */
        if (pid > 0) {
            kill(pid, SIGKILL);
            unlink(g_servers[i].log);
            rmdir(g_servers[i].dir);
        }
    }
    for (size_t i = 0; i < NCATCH; i++)
        if (g_catch[i] == sig)
            sigaction(sig, &g_old_action[i], NULL);
    raise(sig);
    errno = saved;
}

static void signals_install(void)
{
    pthread_once(&g_atexit_once, register_atexit);
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_fatal_signal;
    sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < NCATCH; i++) {
        /* A signal the process ignores stays ignored. */
        g_caught[i] = sigaction(g_catch[i], NULL, &g_old_action[i]) == 0 &&
                      g_old_action[i].sa_handler != SIG_IGN &&
                      sigaction(g_catch[i], &sa, NULL) == 0;
    }
}

static void signals_restore(void)
{
    for (size_t i = 0; i < NCATCH; i++)
        if (g_caught[i])
            sigaction(g_catch[i], &g_old_action[i], NULL);
    memset(g_caught, 0, sizeof(g_caught));
}

/* ------------------------------------------------------------------ */
/* Server processes                                                    */
/* ------------------------------------------------------------------ */

typedef struct server {
    pid_t pid;           /* running server, 0 when none */
    int port;            /* its TCP port on 127.0.0.1 */
    char dir[256];       /* temporary directory, "" when none */
    char log[288];       /* dir/server.log: the server's stdout and stderr */
} server_t;

/** Path of an executable: the first "name" on PATH, else /usr/bin/name,
 *  /usr/local/bin/name. Returns 0 or -1 when absent. */
static int find_binary(const char *name, char *out, size_t outlen)
{
    const char *path = getenv("PATH");
    char buf[PATH_MAX];
    if (path) {
        const char *p = path;
        while (*p) {
            const char *end = strchr(p, ':');
            size_t len = end ? (size_t)(end - p) : strlen(p);
            if (len > 0 && len + strlen(name) + 2 < sizeof(buf)) {
                snprintf(buf, sizeof(buf), "%.*s/%s", (int)len, p, name);
                if (access(buf, X_OK) == 0) {
                    snprintf(out, outlen, "%s", buf);
                    return 0;
                }
            }
            if (!end)
                break;
            p = end + 1;
        }
    }
    const char *fallback[] = {"/usr/bin", "/usr/local/bin", "/usr/sbin"};
    for (size_t i = 0; i < sizeof(fallback) / sizeof(fallback[0]); i++) {
        snprintf(buf, sizeof(buf), "%s/%s", fallback[i], name);
        if (access(buf, X_OK) == 0) {
            snprintf(out, outlen, "%s", buf);
            return 0;
        }
    }
    return -1;
}

/** A TCP port on 127.0.0.1 free right now (the kernel's pick for port 0),
 *  or -1. Another process may take it before the server binds: callers
 *  retry when the server exits at start. */
static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in a;
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = 0;
    socklen_t alen = sizeof(a);
    int port = -1;
    if (bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &alen) == 0)
        port = ntohs(a.sin_port);
    close(fd);
    return port;
}

/** 1 when something accepts a TCP connection on 127.0.0.1:port. */
static int port_accepts(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return 0;
    struct sockaddr_in a;
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons((uint16_t)port);
    int ok = connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
    close(fd);
    return ok;
}

static int server_mkdir(server_t *s, const char *tag)
{
    const char *tmp = getenv("TMPDIR");
    if (!tmp || !*tmp || strlen(tmp) > 200)
        tmp = "/tmp";
    snprintf(s->dir, sizeof(s->dir), "%s/strata-peer-%s-XXXXXX", tmp, tag);
    if (!mkdtemp(s->dir)) {
        s->dir[0] = '\0';
        return -1;
    }
    snprintf(s->log, sizeof(s->log), "%s/server.log", s->dir);
    return 0;
}

/** Remove the temporary directory and the files in it (one level). */
static void server_rmdir(server_t *s)
{
    if (!s->dir[0])
        return;
    DIR *d = opendir(s->dir);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d)) != NULL)
            if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
                unlinkat(dirfd(d), e->d_name, 0);
        closedir(d);
    }
    rmdir(s->dir);
    s->dir[0] = '\0';
}

/** The last line of the server's log, for a note ("" when none). */
static void server_log_tail(const server_t *s, char *out, size_t outlen)
{
    out[0] = '\0';
    int fd = open(s->log, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    char buf[512];
    off_t size = lseek(fd, 0, SEEK_END);
    off_t from = size > (off_t)sizeof(buf) - 1 ? size - (off_t)sizeof(buf) + 1 : 0;
    ssize_t n = pread(fd, buf, sizeof(buf) - 1, from);
    close(fd);
    if (n <= 0)
        return;
    buf[n] = '\0';
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
        buf[--n] = '\0';
    const char *line = strrchr(buf, '\n');
    line = line ? line + 1 : buf;
    size_t len = strlen(line) < outlen - 1 ? strlen(line) : outlen - 1;
    memcpy(out, line, len);
    out[len] = '\0';
}

/** Fork and exec argv[0] with argv, stdout/stderr to s->log, pinned to
 *  cpu (>= 0), killed when the calling thread dies. Only async-signal-safe
 *  calls run between fork and exec. Returns 0 (s->pid set) or -1. */
static int server_spawn(server_t *s, char *const argv[], int cpu)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    if (cpu >= 0)
        CPU_SET(cpu, &set);
    int logfd = open(s->log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (logfd < 0)
        return -1;
    int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
    pid_t parent = getpid();
    long maxfd = sysconf(_SC_OPEN_MAX);
    if (maxfd < 0 || maxfd > 65536)
        maxfd = 65536;
    pid_t pid = fork();
    if (pid < 0) {
        close(logfd);
        if (devnull >= 0)
            close(devnull);
        return -1;
    }
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(126);
        if (devnull >= 0)
            dup2(devnull, 0);
        dup2(logfd, 1);
        dup2(logfd, 2);
        /* Do not hold the caller's sockets and files open in the server. */
#ifdef SYS_close_range
        if (syscall(SYS_close_range, 3u, ~0u, 0u) != 0)
#endif
            for (long fd = 3; fd < maxfd; fd++)
                close((int)fd);
        if (cpu >= 0)
            sched_setaffinity(0, sizeof(set), &set);
        /* Default signal dispositions and mask for the server. */
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        signal(SIGINT, SIG_DFL);
        signal(SIGTERM, SIG_DFL);
        signal(SIGHUP, SIG_DFL);
        signal(SIGPIPE, SIG_DFL);
        execv(argv[0], argv);
        _exit(127);
    }
    close(logfd);
    if (devnull >= 0)
        close(devnull);
    s->pid = pid;
    registry_add(pid, s->dir, s->log);
    return 0;
}

/** Wait until the server accepts on its port. Returns 0; 1 when it
 *  exited (reaped, s->pid = 0: try another port); -1 on timeout. */
static int server_wait_ready(server_t *s)
{
    double deadline = now_s() + READY_TIMEOUT_S;
    for (;;) {
        int status;
        pid_t w = waitpid(s->pid, &status, WNOHANG);
        if (w == s->pid || (w < 0 && errno == ECHILD)) {
            registry_del(s->pid);
            s->pid = 0;
            return 1;
        }
        if (port_accepts(s->port))
            return 0;
        if (now_s() > deadline)
            return -1;
        sleep_s(0.005);
    }
}

static void server_stop(server_t *s)
{
    if (s->pid > 0)
        pid_stop(s->pid);
    s->pid = 0;
}

/** utime + stime of pid in seconds, or -1. */
static double proc_cpu_s(pid_t pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1.0;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return -1.0;
    buf[n] = '\0';
    char *p = strrchr(buf, ')'); /* comm may hold spaces */
    if (!p)
        return -1.0;
    unsigned long long ut = 0, st = 0;
    /* After ')': field 3 (state) ... field 14 utime, 15 stime. */
    if (sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
        return -1.0;
    long hz = sysconf(_SC_CLK_TCK);
    return (double)(ut + st) / (double)(hz > 0 ? hz : 100);
}

/** MemAvailable from /proc/meminfo in bytes, or 0 when unknown. */
static uint64_t mem_available(void)
{
    FILE *f = fopen("/proc/meminfo", "re");
    if (!f)
        return 0;
    char line[128];
    unsigned long long kb = 0;
    while (fgets(line, sizeof(line), f))
        if (sscanf(line, "MemAvailable: %llu kB", &kb) == 1)
            break;
    fclose(f);
    return (uint64_t)kb * 1024;
}

/* ------------------------------------------------------------------ */
/* Run scaffolding shared by both peers                                */
/* ------------------------------------------------------------------ */

typedef struct run {
    peer_kv_config_t c;    /* the config with defaults filled in */
    peer_kv_result_t *r;   /* where results go */
    server_t srv;          /* the server of this run */
    size_t cursor;         /* next position in the key stream */
    hist_t *hist;          /* batch latencies in the window */
    char *value;           /* one value, filler bytes, for loading */
    cpu_set_t old_affinity; /* caller's affinity, restored at the end */
    int pinned;            /* old_affinity is to be restored */
    /* Window bookkeeping. */
    int phase;             /* 0 warmup, 1 timed, 2 done */
    uint64_t t_timed_ns;   /* window start */
    uint64_t t_end_ns;     /* window end (planned until done) */
    uint64_t batches;      /* batches completed in the window */
    uint64_t errors;       /* missing or wrong-size keys, all phases */
    double srv_cpu0;       /* server CPU at window start */
    double cli_cpu0;       /* client thread CPU at window start */
    double srv_cpu1, cli_cpu1; /* the same at window end */
} run_t;

static uint64_t next_key(run_t *run)
{
    const peer_kv_config_t *c = &run->c;
    uint64_t k;
    if (c->keys) {
        k = c->keys[run->cursor];
        if (++run->cursor == c->nkeys_stream)
            run->cursor = 0;
    } else {
        k = run->cursor;
        if (++run->cursor == c->nkeys_loaded)
            run->cursor = 0;
    }
    return k;
}

/** Check and default the config. Returns 0 or -1 with a note. */
static int run_begin(run_t *run, const peer_kv_config_t *cin, peer_kv_result_t *r)
{
    memset(r, 0, sizeof(*r));
    r->keys_per_s = r->p50_us = r->p99_us = -1.0;
    r->server_cpu_s_per_mkeys = r->server_cpu_util = -1.0;
    r->client_cpu_s_per_mkeys = r->client_cpu_util = -1.0;
    memset(run, 0, sizeof(*run));
    run->r = r;
    if (!cin) {
        set_note(r, "no config");
        return -1;
    }
    run->c = *cin;
    peer_kv_config_t *c = &run->c;
    if (c->batch == 0)
        c->batch = 16;
    if (c->pipeline == 0)
        c->pipeline = 1;
    if (c->connections == 0)
        c->connections = 1;
    if (!(c->seconds > 0))
        c->seconds = 5.0;
    if (!(c->warmup_s > 0))
        c->warmup_s = 0.0;
    if (c->nkeys_loaded == 0 || c->value_bytes == 0) {
        set_note(r, "nkeys_loaded and value_bytes must be >= 1");
        return -1;
    }
    if (c->keys && c->nkeys_stream == 0) {
        set_note(r, "keys given with nkeys_stream 0");
        return -1;
    }
    if (c->batch > MAX_BATCH ||
        (uint64_t)c->connections * c->pipeline > MAX_INFLIGHT) {
        set_note(r, "batch > %u or connections*pipeline > %u", MAX_BATCH, MAX_INFLIGHT);
        return -1;
    }
    if (c->server_cpu >= CPU_SETSIZE || c->client_cpu >= CPU_SETSIZE) {
        set_note(r, "server_cpu and client_cpu must be < %d", CPU_SETSIZE);
        return -1;
    }
    /* The server's copy: values, keys and ~100 B of overhead per key,
     * with half again for allocator slack; refuse what would not fit. */
    double mem_need = (double)c->nkeys_loaded * ((double)c->value_bytes + 100.0) * 1.5;
    uint64_t avail = mem_available();
    if (avail && mem_need > (double)avail) {
        set_note(r, "needs ~%.1f GiB for %llu keys, MemAvailable %.1f GiB", mem_need / 1073741824.0,
                 (unsigned long long)c->nkeys_loaded, (double)avail / 1073741824.0);
        return -1;
    }
    run->hist = calloc(1, sizeof(hist_t));
    run->value = malloc(c->value_bytes);
    if (!run->hist || !run->value) {
        set_note(r, "out of memory");
        return -1;
    }
    for (uint32_t i = 0; i < c->value_bytes; i++)
        run->value[i] = (char)('a' + i % 26);
    /* Enough descriptors for the sockets. */
    struct rlimit rl;
    rlim_t need = (rlim_t)c->connections * c->pipeline + 64;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < need) {
        rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > need ? need : rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    if (c->client_cpu >= 0 && sched_getaffinity(0, sizeof(run->old_affinity),
                                                &run->old_affinity) == 0) {
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(c->client_cpu, &set);
        if (sched_setaffinity(0, sizeof(set), &set) == 0)
            run->pinned = 1;
    }
    signals_install();
    return 0;
}

/** Start the server: argv_fn fills argv for a port (argv[0] = binary).
 *  Returns 0 or -1 with a note. */
typedef int (*argv_fn_t)(run_t *run, char *argv[], size_t max, char *store, size_t storelen);

static int run_start_server(run_t *run, const char *tag, argv_fn_t make_argv)
{
    peer_kv_result_t *r = run->r;
    if (server_mkdir(&run->srv, tag) != 0) {
        set_note(r, "mkdtemp: %s", strerror(errno));
        return -1;
    }
    for (int attempt = 0; attempt < START_TRIES; attempt++) {
        char *argv[48];
        char store[PATH_MAX + 1024];
        run->srv.port = free_port();
        if (run->srv.port <= 0) {
            set_note(r, "no free port on 127.0.0.1");
            return -1;
        }
        if (make_argv(run, argv, sizeof(argv) / sizeof(argv[0]), store, sizeof(store)) != 0) {
            set_note(r, "argument list too long");
            return -1;
        }
        if (server_spawn(&run->srv, argv, run->c.server_cpu) != 0) {
            set_note(r, "fork: %s", strerror(errno));
            return -1;
        }
        int w = server_wait_ready(&run->srv);
        if (w == 0)
            return 0;
        char tail[120];
        server_log_tail(&run->srv, tail, sizeof(tail));
        if (w < 0) {
            set_note(r, "%s did not listen within %.0f s: %s", tag, READY_TIMEOUT_S, tail);
            return -1;
        }
        set_note(r, "%s exited at start: %s", tag, tail);
    }
    return -1;
}

/** Advance the phase at time t (ns). Returns 1 once the window is over. */
static int run_clock(run_t *run, uint64_t t)
{
    if (run->phase == 0 && t >= run->t_timed_ns) {
        run->phase = 1;
        run->t_timed_ns = t;
        run->t_end_ns = t + (uint64_t)(run->c.seconds * 1e9);
        run->srv_cpu0 = proc_cpu_s(run->srv.pid);
        run->cli_cpu0 = thread_cpu_s();
    }
    if (run->phase == 1 && t >= run->t_end_ns) {
        /* t_end_ns stays the planned end: batches are counted up to it. */
        run->phase = 2;
        run->srv_cpu1 = proc_cpu_s(run->srv.pid);
        run->cli_cpu1 = thread_cpu_s();
        return 1;
    }
    return 0;
}

/** Account one completed batch sent at t_sent, completed at t_done with
 *  `good` values of the right size. */
static inline void run_batch_done(run_t *run, uint64_t t_sent, uint64_t t_done, uint32_t good)
{
    run->errors += run->c.batch - good;
    if (run->phase == 1 && t_done < run->t_end_ns) {
        run->batches++;
        hist_add(run->hist, t_done - t_sent);
    }
}

/** Fill the result from the window. Returns 0, or -1 when keys were
 *  missing or of the wrong size. */
static int run_finish_figures(run_t *run)
{
    peer_kv_result_t *r = run->r;
    const peer_kv_config_t *c = &run->c;
    double secs = (double)(run->t_end_ns - run->t_timed_ns) * 1e-9;
    r->seconds = secs;
    r->batches = run->batches;
    r->keys = run->batches * c->batch;
    r->errors = run->errors;
    double mkeys = (double)r->keys * 1e-6;
    if (secs > 0)
        r->keys_per_s = (double)r->keys / secs;
    r->p50_us = hist_quantile(run->hist, 0.50) * 1e-3;
    r->p99_us = hist_quantile(run->hist, 0.99) * 1e-3;
    if (r->p50_us < 0)
        r->p50_us = r->p99_us = -1.0;
    if (run->srv_cpu0 >= 0 && run->srv_cpu1 >= 0 && mkeys > 0) {
        r->server_cpu_s_per_mkeys = (run->srv_cpu1 - run->srv_cpu0) / mkeys;
        r->server_cpu_util = (run->srv_cpu1 - run->srv_cpu0) / secs;
    }
    if (run->cli_cpu0 >= 0 && run->cli_cpu1 >= 0 && mkeys > 0) {
        r->client_cpu_s_per_mkeys = (run->cli_cpu1 - run->cli_cpu0) / mkeys;
        r->client_cpu_util = (run->cli_cpu1 - run->cli_cpu0) / secs;
    }
    if (r->keys == 0) {
        set_note(r, "no batch completed in the window");
        return -1;
    }
    if (run->errors) {
        set_note(r, "%llu keys missing or of the wrong size",
                 (unsigned long long)run->errors);
        return -1;
    }
    r->ok = 1;
    return 0;
}

/** Undo run_begin and run_start_server: stop the server, remove the
 *  directory, restore signals and affinity, free. */
static void run_end(run_t *run)
{
    server_stop(&run->srv);
    server_rmdir(&run->srv);
    signals_restore();
    if (run->pinned)
        sched_setaffinity(0, sizeof(run->old_affinity), &run->old_affinity);
    free(run->hist);
    free(run->value);
    run->hist = NULL;
    run->value = NULL;
}

/** Pack strings into argv from store. Returns 0 or -1 when out of room. */
typedef struct argv_builder {
    char **argv;   /* output vector */
    size_t n, max; /* used / capacity of argv (one kept for NULL) */
    char *store;   /* string storage */
    size_t used, storelen; /* used / capacity of store */
    int err;       /* ran out of room */
} argv_builder_t;

__attribute__((format(printf, 2, 3))) static void argv_add(argv_builder_t *b, const char *fmt,
                                                           ...)
{
    if (b->err || b->n + 1 >= b->max) {
        b->err = 1;
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    int len = vsnprintf(b->store + b->used, b->storelen - b->used, fmt, ap);
    va_end(ap);
    if (len < 0 || (size_t)len >= b->storelen - b->used) {
        b->err = 1;
        return;
    }
    b->argv[b->n++] = b->store + b->used;
    b->argv[b->n] = NULL;
    b->used += (size_t)len + 1;
}

/* ------------------------------------------------------------------ */
/* Redis                                                               */
/* ------------------------------------------------------------------ */

static char g_redis_bin[PATH_MAX]; /* set by peer_redis_run before spawning */

static int redis_argv(run_t *run, char *argv[], size_t max, char *store, size_t storelen)
{
    argv_builder_t b = {argv, 0, max, store, 0, storelen, 0};
    argv_add(&b, "%s", g_redis_bin);
    argv_add(&b, "--port");
    argv_add(&b, "%d", run->srv.port);
    argv_add(&b, "--bind");
    argv_add(&b, LOOPBACK);
    argv_add(&b, "--save");
    argv_add(&b, "%s", "");
    argv_add(&b, "--appendonly");
    argv_add(&b, "no");
    argv_add(&b, "--dir");
    argv_add(&b, "%s", run->srv.dir);
    argv_add(&b, "--daemonize");
    argv_add(&b, "no");
    argv_add(&b, "--protected-mode");
    argv_add(&b, "yes");
    argv_add(&b, "--maxclients");
    argv_add(&b, "%u", run->c.connections + 64);
    return b.err ? -1 : 0;
}

/** One measuring connection: a ring of send times for its pipeline. */
typedef struct rconn {
    redisContext *ctx;   /* hiredis context, non-blocking after connect */
    uint64_t *sent_ns;   /* send time of each in-flight batch, a ring */
    uint32_t head;       /* oldest in-flight batch in sent_ns */
    uint32_t count;      /* batches in flight */
    uint32_t good;       /* values of the right size in the reply being read */
    int error;           /* the reply being read was an error */
    int out_armed;       /* EPOLLOUT is armed (obuf not drained) */
    uint32_t value_bytes; /* expected value size */
    char errmsg[96];     /* first error reply's text */
} rconn_t;

/* Counting reply functions: no reply objects are built; the reader only
 * needs a non-NULL pointer back, the connection itself. */
static void *rc_string(const redisReadTask *t, char *s, size_t len)
{
    rconn_t *rc = t->privdata;
    if (t->type == REDIS_REPLY_ERROR) {
        if (!rc->error)
            snprintf(rc->errmsg, sizeof(rc->errmsg), "%.*s", (int)(len < 90 ? len : 90), s);
        rc->error = 1;
    } else if (t->type == REDIS_REPLY_STRING && t->parent && len == rc->value_bytes) {
        rc->good++;
    }
    return rc;
}

#if defined(HIREDIS_MAJOR) && HIREDIS_MAJOR >= 1
typedef size_t rc_nelem_t; /* hiredis 1.x: array sizes are size_t */
#else
typedef int rc_nelem_t;
#endif

static void *rc_array(const redisReadTask *t, rc_nelem_t n)
{
    (void)n;
    return t->privdata;
}

static void *rc_integer(const redisReadTask *t, long long v)
{
    (void)v;
    return t->privdata;
}

static void *rc_nil(const redisReadTask *t)
{
    return t->privdata; /* a missing key: not counted as good */
}

static void rc_free(void *p)
{
    (void)p;
}

static redisReplyObjectFunctions g_rc_fns = {
    .createString = rc_string,
    .createArray = rc_array,
    .createInteger = rc_integer,
    .createNil = rc_nil,
    .freeObject = rc_free,
};

/** Append one MGET of the next `batch` keys to rc's output buffer. */
static int redis_issue(run_t *run, rconn_t *rc, char *cmd, uint64_t t)
{
    uint32_t batch = run->c.batch;
    size_t n = 0;
    cmd[n++] = '*';
    n += fmt_u64(cmd + n, (uint64_t)batch + 1);
    memcpy(cmd + n, "\r\n$4\r\nMGET\r\n", 12);
    n += 12;
    for (uint32_t i = 0; i < batch; i++) {
        char key[PEER_KV_KEY_MAX];
        size_t kl = peer_kv_key_format(key, next_key(run));
        cmd[n++] = '$';
        n += fmt_u64(cmd + n, kl);
        cmd[n++] = '\r';
        cmd[n++] = '\n';
        memcpy(cmd + n, key, kl);
        n += kl;
        cmd[n++] = '\r';
        cmd[n++] = '\n';
    }
    if (redisAppendFormattedCommand(rc->ctx, cmd, n) != REDIS_OK)
        return -1;
    uint32_t pipe = run->c.pipeline;
    rc->sent_ns[(rc->head + rc->count) % pipe] = t;
    rc->count++;
    return 0;
}

/** Write what rc's buffer holds; arm or disarm EPOLLOUT. */
static int redis_flush(int ep, rconn_t *rc)
{
    int done = 0;
    if (redisBufferWrite(rc->ctx, &done) != REDIS_OK)
        return -1;
    if (done == rc->out_armed) { /* armed but drained, or not armed and pending */
        struct epoll_event ev = {.events = EPOLLIN | (done ? 0 : EPOLLOUT), .data.ptr = rc};
        if (epoll_ctl(ep, EPOLL_CTL_MOD, rc->ctx->fd, &ev) != 0)
            return -1;
        rc->out_armed = !done;
    }
    return 0;
}

/** Load keys 0..n-1 with pipelined MSETs over one blocking connection,
 *  then check DBSIZE. Returns 0 or -1 with a note. */
static int redis_load(run_t *run)
{
    peer_kv_result_t *r = run->r;
    const peer_kv_config_t *c = &run->c;
    struct timeval tv = {10, 0};
    int rc = -1;
    char *cmd = NULL;
    redisContext *ctx = redisConnectWithTimeout(LOOPBACK, run->srv.port, tv);
    if (!ctx || ctx->err) {
        set_note(r, "redis connect: %s", ctx ? ctx->errstr : "out of memory");
        goto out_free_buffers;
    }
    redisSetTimeout(ctx, (struct timeval){60, 0});
    uint64_t per = LOAD_CHUNK_BYTES / ((uint64_t)c->value_bytes + 48);
    if (per < 1)
        per = 1;
    size_t cap = 32 + per * ((size_t)c->value_bytes + 2 * PEER_KV_KEY_MAX + 32);
    cmd = malloc(cap);
    if (!cmd) {
        set_note(r, "out of memory");
        goto out_free_buffers;
    }
    uint64_t inflight = 0;
    for (uint64_t k0 = 0; k0 < c->nkeys_loaded || inflight;) {
        if (k0 < c->nkeys_loaded && inflight < LOAD_DEPTH) {
            uint64_t nk = c->nkeys_loaded - k0 < per ? c->nkeys_loaded - k0 : per;
            size_t n = 0;
            cmd[n++] = '*';
            n += fmt_u64(cmd + n, 1 + 2 * nk);
            memcpy(cmd + n, "\r\n$4\r\nMSET\r\n", 12);
            n += 12;
            for (uint64_t k = k0; k < k0 + nk; k++) {
                char key[PEER_KV_KEY_MAX];
                size_t kl = peer_kv_key_format(key, k);
                n += (size_t)sprintf(cmd + n, "$%zu\r\n", kl);
                memcpy(cmd + n, key, kl);
                n += kl;
                n += (size_t)sprintf(cmd + n, "\r\n$%u\r\n", c->value_bytes);
                memcpy(cmd + n, run->value, c->value_bytes);
                value_stamp(cmd + n, c->value_bytes, k);
                n += c->value_bytes;
                cmd[n++] = '\r';
                cmd[n++] = '\n';
            }
            if (redisAppendFormattedCommand(ctx, cmd, n) != REDIS_OK) {
                set_note(r, "redis MSET: %s", ctx->errstr);
                goto out_free_buffers;
            }
            k0 += nk;
            inflight++;
            continue;
        }
        redisReply *rep = NULL;
        if (redisGetReply(ctx, (void **)&rep) != REDIS_OK || !rep) {
            set_note(r, "redis MSET reply: %s", ctx->errstr);
            goto out_free_buffers;
        }
        int bad = rep->type != REDIS_REPLY_STATUS;
        if (bad)
            set_note(r, "redis MSET: %.100s", rep->type == REDIS_REPLY_ERROR ? rep->str : "?");
        freeReplyObject(rep);
        if (bad)
            goto out_free_buffers;
        inflight--;
    }
    redisReply *rep = redisCommand(ctx, "DBSIZE");
    if (!rep || rep->type != REDIS_REPLY_INTEGER ||
        (uint64_t)rep->integer != c->nkeys_loaded) {
        set_note(r, "redis DBSIZE %lld after loading %llu keys",
                 rep && rep->type == REDIS_REPLY_INTEGER ? rep->integer : -1ll,
                 (unsigned long long)c->nkeys_loaded);
        if (rep)
            freeReplyObject(rep);
        goto out_free_buffers;
    }
    freeReplyObject(rep);
    rc = 0;
out_free_buffers:
    free(cmd);
    if (ctx)
        redisFree(ctx);
    return rc;
}

/** The timed read: connections x pipeline MGETs in flight, one epoll loop.
 *  Returns 0 or -1 with a note. */
static int redis_measure(run_t *run)
{
    peer_kv_result_t *r = run->r;
    const peer_kv_config_t *c = &run->c;
    uint32_t nconn = c->connections, pipe = c->pipeline;
    int ret = -1;
    size_t cmdcap = 32 + (size_t)c->batch * (PEER_KV_KEY_MAX + 16);
    char *cmd = malloc(cmdcap);
    rconn_t *conns = calloc(nconn, sizeof(*conns));
    uint64_t *ring = calloc((size_t)nconn * pipe, sizeof(uint64_t));
    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (!cmd || !conns || !ring || ep < 0) {
        set_note(r, "out of memory or epoll: %s", strerror(errno));
        goto out_free;
    }
    struct timeval tv = {10, 0};
    for (uint32_t i = 0; i < nconn; i++) {
        rconn_t *rc = &conns[i];
        rc->sent_ns = ring + (size_t)i * pipe;
        rc->value_bytes = c->value_bytes;
        rc->ctx = redisConnectWithTimeout(LOOPBACK, run->srv.port, tv);
        if (!rc->ctx || rc->ctx->err) {
            set_note(r, "redis connect %u: %s", i, rc->ctx ? rc->ctx->errstr : "out of memory");
            goto out_close;
        }
        /* Non-blocking from here: hiredis then reads and writes only what
         * the socket has room for. */
        int fl = fcntl(rc->ctx->fd, F_GETFL);
        if (fl < 0 || fcntl(rc->ctx->fd, F_SETFL, fl | O_NONBLOCK) != 0) {
            set_note(r, "fcntl: %s", strerror(errno));
            goto out_close;
        }
        rc->ctx->flags &= ~REDIS_BLOCK;
        rc->ctx->reader->fn = &g_rc_fns;
        rc->ctx->reader->privdata = rc;
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = rc};
        if (epoll_ctl(ep, EPOLL_CTL_ADD, rc->ctx->fd, &ev) != 0) {
            set_note(r, "epoll_ctl: %s", strerror(errno));
            goto out_close;
        }
    }
    uint64_t t = now_ns();
    run->t_timed_ns = t + (uint64_t)(c->warmup_s * 1e9);
    for (uint32_t i = 0; i < nconn; i++) {
        for (uint32_t p = 0; p < pipe; p++)
            if (redis_issue(run, &conns[i], cmd, t) != 0) {
                set_note(r, "redis append: out of memory");
                goto out_close;
            }
        if (redis_flush(ep, &conns[i]) != 0) {
            set_note(r, "redis write: %s", conns[i].ctx->errstr);
            goto out_close;
        }
    }
    struct epoll_event evs[64];
    for (;;) {
        int n = epoll_wait(ep, evs, 64, 100);
        if (n < 0 && errno != EINTR) {
            set_note(r, "epoll_wait: %s", strerror(errno));
            goto out_close;
        }
        t = now_ns();
        if (run_clock(run, t))
            break;
        for (int e = 0; e < n; e++) {
            rconn_t *rc = evs[e].data.ptr;
            if (evs[e].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
                if (redisBufferRead(rc->ctx) != REDIS_OK) {
                    set_note(r, "redis read: %s", rc->ctx->errstr);
                    goto out_close;
                }
                uint64_t t_read = now_ns();
                for (;;) {
                    void *rep = NULL;
                    if (redisGetReply(rc->ctx, &rep) != REDIS_OK) {
                        set_note(r, "redis reply: %s", rc->ctx->errstr);
                        goto out_close;
                    }
                    if (!rep)
                        break;
                    if (rc->error || rc->count == 0) {
                        set_note(r, "redis MGET: %s", rc->error ? rc->errmsg : "unexpected reply");
                        goto out_close;
                    }
                    run_batch_done(run, rc->sent_ns[rc->head], t_read, rc->good);
                    rc->head = (rc->head + 1) % pipe;
                    rc->count--;
                    rc->good = 0;
                    if (redis_issue(run, rc, cmd, t_read) != 0) {
                        set_note(r, "redis append: out of memory");
                        goto out_close;
                    }
                }
            }
            if (redis_flush(ep, rc) != 0) {
                set_note(r, "redis write: %s", rc->ctx->errstr);
                goto out_close;
            }
        }
    }
    ret = 0;
out_close:
    for (uint32_t i = 0; i < nconn && conns; i++)
        if (conns[i].ctx) {
            /* The reader keeps g_rc_fns: freeing a partial reply is a no-op. */
            redisFree(conns[i].ctx);
        }
out_free:
    if (ep >= 0)
        close(ep);
    free(ring);
    free(conns);
    free(cmd);
    return ret;
}

int peer_redis_run(const peer_kv_config_t *cin, peer_kv_result_t *r)
{
    run_t run;
    int ret = -1;
    if (run_begin(&run, cin, r) != 0)
        goto out_end;
    if (find_binary("redis-server", g_redis_bin, sizeof(g_redis_bin)) != 0) {
        set_note(r, "redis-server not found on PATH or in /usr/bin");
        ret = PEER_KV_SKIPPED;
        goto out_end;
    }
    if (run_start_server(&run, "redis", redis_argv) != 0)
        goto out_end;
    if (redis_load(&run) != 0)
        goto out_end;
    if (redis_measure(&run) != 0)
        goto out_end;
    r->sockets = run.c.connections;
    r->in_flight = run.c.connections * run.c.pipeline;
    ret = run_finish_figures(&run);
out_end:
    run_end(&run);
    return ret;
}

/* ------------------------------------------------------------------ */
/* memcached                                                           */
/* ------------------------------------------------------------------ */

static char g_mc_bin[PATH_MAX]; /* set by peer_memcached_run before spawning */

static int mc_argv(run_t *run, char *argv[], size_t max, char *store, size_t storelen)
{
    const peer_kv_config_t *c = &run->c;
    /* Item: ~56 B header with CAS, key, "\r\n", value; slab classes grow by
     * 1.25, so up to 25% of a chunk is waste; one 1 MB page per class. */
    double item = 56.0 + PEER_KV_KEY_MAX + 2.0 + (double)c->value_bytes;
    uint64_t mb = (uint64_t)((double)c->nkeys_loaded * item * 1.3 / 1048576.0) + 128;
    uint64_t item_max_mb = ((uint64_t)c->value_bytes + 4096) / 1048576 + 1;
    if (mb < 2 * item_max_mb + 64) /* memcached wants -I <= -m / 2 */
        mb = 2 * item_max_mb + 64;
    argv_builder_t b = {argv, 0, max, store, 0, storelen, 0};
    argv_add(&b, "%s", g_mc_bin);
    argv_add(&b, "-t");
    argv_add(&b, "1");
    argv_add(&b, "-l");
    argv_add(&b, LOOPBACK);
    argv_add(&b, "-p");
    argv_add(&b, "%d", run->srv.port);
    argv_add(&b, "-U");
    argv_add(&b, "0");
    argv_add(&b, "-m");
    argv_add(&b, "%llu", (unsigned long long)mb);
    argv_add(&b, "-c");
    argv_add(&b, "%u", c->connections * c->pipeline + 64 > 1024
                           ? c->connections * c->pipeline + 64 : 1024);
    if (item_max_mb > 1) {
        argv_add(&b, "-I");
        argv_add(&b, "%llum", (unsigned long long)item_max_mb);
    }
    if (geteuid() == 0) { /* memcached refuses root without -u */
        argv_add(&b, "-u");
        argv_add(&b, "root");
    }
    return b.err ? -1 : 0;
}

/** A client of the run's server with TCP_NODELAY and a 10 s poll
 *  timeout, or NULL. */
static memcached_st *mc_client(run_t *run)
{
    memcached_st *m = memcached_create(NULL);
    if (!m)
        return NULL;
    if (memcached_server_add(m, LOOPBACK, (in_port_t)run->srv.port) != MEMCACHED_SUCCESS) {
        memcached_free(m);
        return NULL;
    }
    memcached_behavior_set(m, MEMCACHED_BEHAVIOR_TCP_NODELAY, 1);
    memcached_behavior_set(m, MEMCACHED_BEHAVIOR_POLL_TIMEOUT, 10000);
    memcached_behavior_set(m, MEMCACHED_BEHAVIOR_CONNECT_TIMEOUT, 10000);
    return m;
}

/** Load with buffered noreply sets on one connection, then wait for the
 *  server to have applied them and check curr_items. Returns 0 or -1 with a note. */
static int mc_load(run_t *run)
{
    peer_kv_result_t *r = run->r;
    const peer_kv_config_t *c = &run->c;
    int ret = -1;
    memcached_return_t rc;
    memcached_stat_st *st = NULL;
    memcached_st *m = mc_client(run);
    if (!m) {
        set_note(r, "memcached client: out of memory");
        goto out;
    }
    memcached_behavior_set(m, MEMCACHED_BEHAVIOR_BUFFER_REQUESTS, 1);
    memcached_behavior_set(m, MEMCACHED_BEHAVIOR_NOREPLY, 1);
    for (uint64_t k = 0; k < c->nkeys_loaded; k++) {
        char key[PEER_KV_KEY_MAX];
        size_t kl = peer_kv_key_format(key, k);
        value_stamp(run->value, c->value_bytes, k);
        rc = memcached_set(m, key, kl, run->value, c->value_bytes, 0, 0);
        if (rc != MEMCACHED_SUCCESS && rc != MEMCACHED_BUFFERED) {
            set_note(r, "memcached set: %s", memcached_last_error_message(m));
            goto out;
        }
    }
    rc = memcached_flush_buffers(m);
    if (rc != MEMCACHED_SUCCESS) {
        set_note(r, "memcached flush: %s", memcached_strerror(m, rc));
        goto out;
    }
    /* Noreply sets have no acknowledgement and memcached_stat opens its
     * own connection: wait until the server counted every set (cmd_set),
     * giving up when the count stalls for 5 s. */
    unsigned long long sets = 0, items = 0, last = 0;
    double stalled_since = now_s();
    for (;;) {
        st = memcached_stat(m, NULL, &rc);
        if (!st || rc != MEMCACHED_SUCCESS) {
            set_note(r, "memcached stats: %s", memcached_strerror(m, rc));
            goto out;
        }
        char *v = memcached_stat_get_value(m, st, "cmd_set", &rc);
        sets = v ? strtoull(v, NULL, 10) : 0;
        free(v);
        v = memcached_stat_get_value(m, st, "curr_items", &rc);
        items = v ? strtoull(v, NULL, 10) : 0;
        free(v);
        memcached_stat_free(m, st);
        st = NULL;
        if (sets >= c->nkeys_loaded)
            break;
        if (sets != last) {
            last = sets;
            stalled_since = now_s();
        } else if (now_s() - stalled_since > 5.0) {
            break;
        }
        sleep_s(0.01);
    }
    if (sets != c->nkeys_loaded || items != c->nkeys_loaded) {
        set_note(r, "memcached: %llu sets seen, %llu items after loading %llu (memory?)", sets,
                 items, (unsigned long long)c->nkeys_loaded);
        goto out;
    }
    ret = 0;
out:
    if (st)
        memcached_stat_free(m, st);
    if (m)
        memcached_free(m);
    return ret;
}

/** One measuring connection: one multi-get in flight. */
typedef struct mconn {
    memcached_st *m;          /* its own client, one TCP connection */
    memcached_result_st res;  /* reused for every fetched value */
    int res_init;             /* res is initialized */
    uint64_t sent_ns;         /* when the multi-get in flight was sent */
    char (*keys)[PEER_KV_KEY_MAX]; /* the keys of the multi-get */
    const char **kp;          /* pointers into keys */
    size_t *kl;               /* key lengths */
} mconn_t;

static int mc_issue(run_t *run, mconn_t *mc, uint64_t t)
{
    for (uint32_t i = 0; i < run->c.batch; i++)
        mc->kl[i] = peer_kv_key_format(mc->keys[i], next_key(run));
    mc->sent_ns = t;
    memcached_return_t rc = memcached_mget(mc->m, mc->kp, mc->kl, run->c.batch);
    if (rc != MEMCACHED_SUCCESS) {
        set_note(run->r, "memcached mget: %s", memcached_last_error_message(mc->m));
        return -1;
    }
    return 0;
}

/** The timed read: connections x pipeline clients, one multi-get in
 *  flight on each, fetched round-robin (the server answers them in about
 *  that order). Returns 0 or -1 with a note. */
static int mc_measure(run_t *run)
{
    peer_kv_result_t *r = run->r;
    const peer_kv_config_t *c = &run->c;
    uint32_t n = c->connections * c->pipeline, batch = c->batch;
    int ret = -1;
    mconn_t *mcs = calloc(n, sizeof(*mcs));
    char (*keys)[PEER_KV_KEY_MAX] = calloc((size_t)n * batch, PEER_KV_KEY_MAX);
    const char **kp = calloc((size_t)n * batch, sizeof(char *));
    size_t *kl = calloc((size_t)n * batch, sizeof(size_t));
    if (!mcs || !keys || !kp || !kl) {
        set_note(r, "out of memory");
        goto out_free;
    }
    for (uint32_t i = 0; i < n; i++) {
        mconn_t *mc = &mcs[i];
        mc->keys = keys + (size_t)i * batch;
        mc->kp = kp + (size_t)i * batch;
        mc->kl = kl + (size_t)i * batch;
        for (uint32_t j = 0; j < batch; j++)
            mc->kp[j] = mc->keys[j];
        mc->m = mc_client(run);
        if (!mc->m || !memcached_result_create(mc->m, &mc->res)) {
            set_note(r, "memcached client: out of memory");
            goto out_close;
        }
        mc->res_init = 1;
    }
    uint64_t t = now_ns();
    run->t_timed_ns = t + (uint64_t)(c->warmup_s * 1e9);
    for (uint32_t i = 0; i < n; i++)
        if (mc_issue(run, &mcs[i], now_ns()) != 0)
            goto out_close;
    for (uint32_t i = 0;; i = i + 1 == n ? 0 : i + 1) {
        mconn_t *mc = &mcs[i];
        memcached_return_t rc = MEMCACHED_SUCCESS;
        uint32_t good = 0;
        while (memcached_fetch_result(mc->m, &mc->res, &rc) != NULL)
            good += memcached_result_length(&mc->res) == c->value_bytes;
        if (rc != MEMCACHED_END && rc != MEMCACHED_NOTFOUND) {
            set_note(r, "memcached fetch: %s", memcached_last_error_message(mc->m));
            goto out_close;
        }
        t = now_ns();
        if (good > batch)
            good = batch; /* never credit more than was asked */
        run_batch_done(run, mc->sent_ns, t, good);
        if (run_clock(run, t))
            break;
        if (mc_issue(run, mc, t) != 0)
            goto out_close;
    }
    ret = 0;
out_close:
    for (uint32_t i = 0; i < n && mcs; i++) {
        if (mcs[i].res_init)
            memcached_result_free(&mcs[i].res);
        if (mcs[i].m)
            memcached_free(mcs[i].m);
    }
out_free:
    free(kl);
    free(kp);
    free(keys);
    free(mcs);
    return ret;
}

int peer_memcached_run(const peer_kv_config_t *cin, peer_kv_result_t *r)
{
    run_t run;
    int ret = -1;
    if (run_begin(&run, cin, r) != 0)
        goto out_end;
    if (find_binary("memcached", g_mc_bin, sizeof(g_mc_bin)) != 0) {
        set_note(r, "memcached not found on PATH or in /usr/bin");
        ret = PEER_KV_SKIPPED;
        goto out_end;
    }
    if (run_start_server(&run, "memcached", mc_argv) != 0)
        goto out_end;
    if (mc_load(&run) != 0)
        goto out_end;
    if (mc_measure(&run) != 0)
        goto out_end;
    r->sockets = run.c.connections * run.c.pipeline;
    r->in_flight = r->sockets;
    ret = run_finish_figures(&run);
    if (ret == 0)
        set_note(r, "libmemcached: one multi-get per connection, %u connections",
                 r->sockets);
out_end:
    run_end(&run);
    return ret;
}
