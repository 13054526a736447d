/* tests/cluster.c — local strata-server clusters for tests and benchmarks,
 * client parameters for them, and the watchdog that stops their servers
 * when the process that started them dies (cluster.h). */
#define _GNU_SOURCE
#include "cluster.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef STRATA_SERVER_BIN
#define STRATA_SERVER_BIN "strata-server"
#endif

static cluster_t *g_clusters[8];
static int g_registered;

static void cleanup_all(void)
{
    for (int k = 0; k < 8; k++) {
        cluster_t *c = g_clusters[k];
        if (!c)
            continue;
        for (uint32_t i = 0; i < c->n; i++)
            if (c->pid[i] > 0) {
                kill(c->pid[i], SIGKILL);
                waitpid(c->pid[i], NULL, 0);
                c->pid[i] = 0;
            }
    }
}

static const char *server_bin(void)
{
    const char *b = getenv("STRATA_SERVER_BIN");
    return b && *b ? b : STRATA_SERVER_BIN;
}

static char g_log[CLUSTER_MAX][256];

const char *cluster_log(const cluster_t *c, uint32_t i)
{
    (void)c;
    return g_log[i];
}

static int spawn(cluster_t *c, uint32_t i, const char *const *extra)
{
    char portfile[256], idx[16], ns[16];
    snprintf(portfile, sizeof(portfile), "%s/port.%u", c->dir, i);
    unlink(portfile);
    snprintf(idx, sizeof(idx), "%u", i);
    snprintf(ns, sizeof(ns), "%u", c->n);
    snprintf(g_log[i], sizeof(g_log[i]), "%s/server.%u.log", c->dir, i);
    uint16_t port = c->port[i];
    char portstr[16];
    snprintf(portstr, sizeof(portstr), "%u", port);
    const char *argv[64];
    int a = 0;
    argv[a++] = server_bin();
    argv[a++] = "--listen";
    char listen[64];
    snprintf(listen, sizeof(listen), "127.0.0.1:%s", portstr);
    argv[a++] = listen;
    argv[a++] = "--port-file";
    argv[a++] = portfile;
    argv[a++] = "--index";
    argv[a++] = idx;
    argv[a++] = "--nservers";
    argv[a++] = ns;
    argv[a++] = "--secret";
    argv[a++] = c->secret;
    for (int k = 0; extra && extra[k] && a < 62; k++)
        argv[a++] = extra[k];
    argv[a] = NULL;
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        int fd = open(g_log[i], O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        execv(argv[0], (char *const *)argv);
        fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    c->pid[i] = pid;
    cluster_watchdog_watch(pid);
    /* wait for the port file (the server writes it once listening) */
    for (int t = 0; t < 3000; t++) {
        FILE *f = fopen(portfile, "r");
        if (f) {
            unsigned p = 0;
            int ok = fscanf(f, "%u", &p) == 1;
            fclose(f);
            if (ok && p) {
                c->port[i] = (uint16_t)p;
                return 0;
            }
        }
        int stt;
        if (waitpid(pid, &stt, WNOHANG) == pid) {
            c->pid[i] = 0;
            fprintf(stderr, "cluster: server %u exited during start; log %s:\n", i, g_log[i]);
            char cmd[400];
            snprintf(cmd, sizeof(cmd), "tail -5 %s >&2", g_log[i]);
            if (system(cmd)) {
            }
            return -1;
        }
        struct timespec ts = {0, 10000000};
        nanosleep(&ts, NULL);
    }
    fprintf(stderr, "cluster: server %u did not start in 30 s\n", i);
    return -1;
}

int cluster_start(cluster_t *c, uint32_t n, const char *const *extra_args)
{
    memset(c, 0, sizeof(*c));
    if (n == 0 || n > CLUSTER_MAX)
        return -1;
    c->n = n;
    c->extra = extra_args;
    snprintf(c->secret, sizeof(c->secret), "test-secret");
    snprintf(c->dir, sizeof(c->dir), "/tmp/strata-cluster-XXXXXX");
    if (!mkdtemp(c->dir))
        return -1;
    int slot = -1;
    for (int k = 0; k < 8; k++)
        if (!g_clusters[k]) {
            g_clusters[k] = c;
            slot = k;
            break;
        }
    if (slot < 0)
        return -1;
    if (!g_registered) {
        atexit(cleanup_all);
        g_registered = 1;
    }
    size_t off = 0;
    for (uint32_t i = 0; i < n; i++) {
        if (spawn(c, i, extra_args) != 0) {
            cleanup_all();
            return -1;
        }
        off += (size_t)snprintf(c->servers + off, sizeof(c->servers) - off, "%s127.0.0.1:%u",
                                i ? "," : "", c->port[i]);
    }
    return 0;
}

int cluster_restart_one(cluster_t *c, uint32_t i)
{
    int known = 0;
    for (int k = 0; k < 8; k++)
        known |= g_clusters[k] == c;
    for (int k = 0; k < 8 && !known; k++)
        if (!g_clusters[k]) { /* stopped before: register for cleanup again */
            g_clusters[k] = c;
            known = 1;
        }
    return known ? spawn(c, i, c->extra) : -1;
}

void cluster_kill(cluster_t *c, uint32_t i)
{
    if (c->pid[i] > 0) {
        kill(c->pid[i], SIGKILL);
        waitpid(c->pid[i], NULL, 0);
        c->pid[i] = 0;
    }
}

int cluster_stop(cluster_t *c)
{
    int rc = 0;
    for (uint32_t i = 0; i < c->n; i++)
        if (c->pid[i] > 0)
            kill(c->pid[i], SIGTERM);
    for (uint32_t i = 0; i < c->n; i++) {
        if (c->pid[i] <= 0)
            continue;
        int st = 0;
        for (int t = 0; t < 500; t++) {
            if (waitpid(c->pid[i], &st, WNOHANG) == c->pid[i])
                goto reaped;
            struct timespec ts = {0, 10000000};
            nanosleep(&ts, NULL);
        }
        kill(c->pid[i], SIGKILL);
        waitpid(c->pid[i], &st, 0);
        rc = -1;
    reaped:
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
            rc = -1;
        c->pid[i] = 0;
    }
    for (int k = 0; k < 8; k++)
        if (g_clusters[k] == c)
            g_clusters[k] = NULL;
    if (rc == 0 && c->dir[0] && !c->keep) {
        char cmd[200];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", c->dir);
        if (system(cmd)) {
        }
    }
    return rc;
}

strata_client_params_t cluster_client_params(const cluster_t *c, int read_only, uint32_t timeout_ms)
{
    strata_client_params_t p;
    memset(&p, 0, sizeof(p));
    p.field_mask = STRATA_CLIENT_FIELD_SERVERS | STRATA_CLIENT_FIELD_SECRET |
                   STRATA_CLIENT_FIELD_READ_ONLY | STRATA_CLIENT_FIELD_TIMEOUT_MS;
    p.servers = c->servers;
    p.secret = c->secret;
    p.secret_len = strlen(c->secret);
    p.read_only = read_only;
    p.timeout_ms = timeout_ms;
    return p;
}

strata_status_t cluster_client_connect(const cluster_t *c, int read_only, uint32_t timeout_ms,
                                       strata_client_t **client_p)
{
    strata_client_params_t p = cluster_client_params(c, read_only, timeout_ms);
    return strata_client_connect(&p, client_p);
}

/* ---- the watchdog (cluster.h) ------------------------------------------ */

#define WATCHDOG_MAX (CLUSTER_MAX * 8) /**< pids it keeps (restarts add more) */

static pid_t g_watchdog_pid;   /**< the watchdog process, 0 when none */
static int g_watchdog_fd = -1; /**< write end of its pipe, parent only */

/* The watchdog process: reads pids from fd until the pipe ends; a 0 means
 * stand down. Never returns. */
static void watchdog_main(int fd, cluster_watchdog_cleanup_cb_t cleanup, void *arg)
{
    pid_t pids[WATCHDOG_MAX];
    int n = 0, disarmed = 0;
    signal(SIGINT, SIG_IGN);
    signal(SIGTERM, SIG_IGN);
    signal(SIGHUP, SIG_IGN);
    signal(SIGQUIT, SIG_IGN);
    for (;;) {
        pid_t p;
        ssize_t r = read(fd, &p, sizeof(p));
        if (r < 0 && errno == EINTR)
            continue;
        if (r != (ssize_t)sizeof(p))
            break;
        if (p == 0)
            disarmed = 1;
        else if (n < WATCHDOG_MAX)
            pids[n++] = p;
    }
    if (disarmed)
        _exit(0);
    for (int i = 0; i < n; i++)
        kill(pids[i], SIGTERM);
    int alive = 0;
    for (int t = 0; t < 500; t++) {
        alive = 0;
        for (int i = 0; i < n; i++)
            alive |= kill(pids[i], 0) == 0;
        if (!alive)
            break;
        struct timespec ts = {0, 10000000};
        nanosleep(&ts, NULL);
    }
    if (alive)
        for (int i = 0; i < n; i++)
            kill(pids[i], SIGKILL);
    if (cleanup)
        cleanup(arg);
    _exit(0);
}

int cluster_watchdog_start(cluster_watchdog_cleanup_cb_t cleanup, void *arg)
{
    int fds[2];
    if (g_watchdog_fd >= 0) {
        errno = EBUSY;
        return -1;
    }
    if (pipe2(fds, O_CLOEXEC))
        return -1;
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        int e = errno;
        close(fds[0]);
        close(fds[1]);
        errno = e;
        return -1;
    }
    if (pid == 0) {
        close(fds[1]);
        watchdog_main(fds[0], cleanup, arg);
    }
    close(fds[0]);
    g_watchdog_pid = pid;
    g_watchdog_fd = fds[1];
    return 0;
}

void cluster_watchdog_watch(pid_t pid)
{
    if (g_watchdog_fd >= 0 && write(g_watchdog_fd, &pid, sizeof(pid)) != (ssize_t)sizeof(pid)) {
        /* the watchdog is gone: nothing more it can do for us */
    }
}

void cluster_watchdog_release(void)
{
    if (g_watchdog_fd < 0)
        return;
    cluster_watchdog_watch(0);
    close(g_watchdog_fd);
    g_watchdog_fd = -1;
    waitpid(g_watchdog_pid, NULL, 0);
    g_watchdog_pid = 0;
}

void cluster_watchdog_forget(void)
{
    if (g_watchdog_fd >= 0)
        close(g_watchdog_fd);
    g_watchdog_fd = -1;
    g_watchdog_pid = 0;
}
