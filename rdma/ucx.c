/*
 * rdma/ucx.c — UCX context, workers, regions, endpoints, AM sends and the
 * batched get engine (see ucx.h for the choices and threading rules).
 *
 * Invariant: every ucs_status_t is translated by rdma_status() before it
 * leaves this file.
 */
#define _GNU_SOURCE
#include "rdma/ucx.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "core/status.h"

struct rdma_ctx {
    ucp_context_h ucp;              /**< the process's context */
    core_region_ops_t region_ops;   /**< ucp_mem_map provider, arg = this */
};

struct rdma_worker {
    rdma_ctx_t *ctx;    /**< borrowed */
    ucp_worker_h ucp;   /**< single-thread worker */
    int efd;            /**< the worker's event fd, -1 if none */
};

strata_status_t rdma_status(ucs_status_t s)
{
    switch (s) {
    case UCS_OK:
        return STRATA_OK;
    case UCS_INPROGRESS:
        return STRATA_INPROGRESS;
    case UCS_ERR_NO_MEMORY:
        return STRATA_ERR_NOMEM;
    case UCS_ERR_INVALID_PARAM:
    case UCS_ERR_INVALID_ADDR:
        return STRATA_ERR_INVALID_PARAM;
    case UCS_ERR_TIMED_OUT:
    case UCS_ERR_ENDPOINT_TIMEOUT:
        return STRATA_ERR_TIMEOUT;
    case UCS_ERR_UNSUPPORTED:
    case UCS_ERR_NO_DEVICE:
        return STRATA_ERR_UNSUPPORTED;
    case UCS_ERR_BUSY:
    case UCS_ERR_NO_RESOURCE:
        return STRATA_ERR_BUSY;
    case UCS_ERR_MESSAGE_TRUNCATED:
        return STRATA_ERR_TRUNCATED;
    case UCS_ERR_EXCEEDS_LIMIT:
        return STRATA_ERR_TOO_LARGE;
    case UCS_ERR_CANCELED:
    case UCS_ERR_UNREACHABLE:
    case UCS_ERR_CONNECTION_RESET:
    case UCS_ERR_REJECTED:
    case UCS_ERR_NOT_CONNECTED:
    case UCS_ERR_IO_ERROR:
    default:
        return STRATA_ERR_CONNECTION;
    }
}

uint64_t rdma_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static strata_status_t fail_ucs(ucs_status_t s, const char *what)
{
    return core_fail(rdma_status(s), "%s: %s", what, ucs_status_string(s));
}

/* ------------------------------------------------------------------------ */
/* regions                                                                  */
/* ------------------------------------------------------------------------ */

static strata_status_t region_alloc(void *arg, size_t len, int huge_pages, core_region_t *region)
{
    rdma_ctx_t *ctx = arg;
    (void)huge_pages; /* UCX's allocators choose the page size */
    rdma_region_t *rr = core_calloc(1, sizeof(*rr));
    if (!rr)
        return core_fail(STRATA_ERR_NOMEM, "region handle: out of memory");
    ucp_mem_map_params_t mp = {
        .field_mask = UCP_MEM_MAP_PARAM_FIELD_LENGTH | UCP_MEM_MAP_PARAM_FIELD_FLAGS |
                      UCP_MEM_MAP_PARAM_FIELD_PROT,
        .length = len ? len : 64,
        .flags = UCP_MEM_MAP_ALLOCATE,
        .prot = UCP_MEM_MAP_PROT_LOCAL_READ | UCP_MEM_MAP_PROT_LOCAL_WRITE |
                UCP_MEM_MAP_PROT_REMOTE_READ,
    };
    ucs_status_t s = ucp_mem_map(ctx->ucp, &mp, &rr->memh);
    if (s != UCS_OK) {
        core_free(rr);
        return s == UCS_ERR_NO_MEMORY ? core_fail(STRATA_ERR_NOMEM, "ucp_mem_map of %zu bytes", len)
                                      : fail_ucs(s, "ucp_mem_map");
    }
    ucp_mem_attr_t attr = {.field_mask = UCP_MEM_ATTR_FIELD_ADDRESS | UCP_MEM_ATTR_FIELD_LENGTH};
    s = ucp_mem_query(rr->memh, &attr);
    if (s == UCS_OK)
        s = ucp_rkey_pack(ctx->ucp, rr->memh, &rr->rkey_buf, &rr->rkey_len);
    if (s != UCS_OK) {
        ucp_mem_unmap(ctx->ucp, rr->memh);
        core_free(rr);
        return fail_ucs(s, "ucp_rkey_pack");
    }
    /* UCX hands out fresh (zero) pages from its allocators, but a recycled
     * heap or registration-cache block is not guaranteed zero: core needs
     * zeroed regions. Clearing also pre-faults the pages on this side. */
    memset(attr.address, 0, len);
    region->base = attr.address;
    region->len = len;
    region->handle = rr;
    return STRATA_OK;
}

static void region_free(void *arg, core_region_t *region)
{
    rdma_ctx_t *ctx = arg;
    rdma_region_t *rr = region->handle;
    if (!rr)
        return;
    ucp_rkey_buffer_release(rr->rkey_buf);
    ucp_mem_unmap(ctx->ucp, rr->memh);
    core_free(rr);
    region->handle = NULL;
    region->base = NULL;
    region->len = 0;
}

/* ------------------------------------------------------------------------ */
/* context and workers                                                      */
/* ------------------------------------------------------------------------ */

strata_status_t rdma_ctx_create(rdma_ctx_t **ctx_p)
{
    rdma_ctx_t *ctx = core_calloc(1, sizeof(*ctx));
    if (!ctx)
        return core_fail(STRATA_ERR_NOMEM, "rdma context: out of memory");
    ucp_config_t *cfg;
    ucs_status_t s = ucp_config_read(NULL, NULL, &cfg);
    if (s != UCS_OK) {
        core_free(ctx);
        return fail_ucs(s, "ucp_config_read");
    }
    ucp_params_t p = {
        .field_mask = UCP_PARAM_FIELD_FEATURES | UCP_PARAM_FIELD_MT_WORKERS_SHARED |
                      UCP_PARAM_FIELD_NAME,
        .features = UCP_FEATURE_RMA | UCP_FEATURE_AM | UCP_FEATURE_WAKEUP,
        .mt_workers_shared = 1,
        .name = "strata",
    };
    s = ucp_init(&p, cfg, &ctx->ucp);
    ucp_config_release(cfg);
    if (s != UCS_OK) {
        core_free(ctx);
        return fail_ucs(s, "ucp_init");
    }
    ctx->region_ops.alloc = region_alloc;
    ctx->region_ops.free = region_free;
    ctx->region_ops.arg = ctx;
    *ctx_p = ctx;
    return STRATA_OK;
}

void rdma_ctx_destroy(rdma_ctx_t *ctx)
{
    if (!ctx)
        return;
    ucp_cleanup(ctx->ucp);
    core_free(ctx);
}

ucp_context_h rdma_ctx_ucp(const rdma_ctx_t *ctx)
{
    return ctx->ucp;
}

const core_region_ops_t *rdma_ctx_region_ops(rdma_ctx_t *ctx)
{
    return &ctx->region_ops;
}

strata_status_t rdma_worker_create(rdma_ctx_t *ctx, rdma_worker_t **w_p)
{
    rdma_worker_t *w = core_calloc(1, sizeof(*w));
    if (!w)
        return core_fail(STRATA_ERR_NOMEM, "rdma worker: out of memory");
    ucp_worker_params_t wp = {
        .field_mask = UCP_WORKER_PARAM_FIELD_THREAD_MODE,
        .thread_mode = UCS_THREAD_MODE_SINGLE,
    };
    ucs_status_t s = ucp_worker_create(ctx->ucp, &wp, &w->ucp);
    if (s != UCS_OK) {
        core_free(w);
        return fail_ucs(s, "ucp_worker_create");
    }
    w->ctx = ctx;
    w->efd = -1;
    if (ucp_worker_get_efd(w->ucp, &w->efd) != UCS_OK)
        w->efd = -1;
    *w_p = w;
    return STRATA_OK;
}

void rdma_worker_destroy(rdma_worker_t *w)
{
    if (!w)
        return;
    ucp_worker_destroy(w->ucp);
    core_free(w);
}

ucp_worker_h rdma_worker_ucp(const rdma_worker_t *w)
{
    return w->ucp;
}

unsigned rdma_worker_progress(rdma_worker_t *w)
{
    return ucp_worker_progress(w->ucp);
}

void rdma_worker_sleep(rdma_worker_t *w, int timeout_ms)
{
    if (w->efd < 0) {
        struct timespec ts = {0, 50000};
        nanosleep(&ts, NULL);
        return;
    }
    /* Arm returns BUSY when events are already pending: then return and
     * let the caller progress. */
    if (ucp_worker_arm(w->ucp) != UCS_OK)
        return;
    struct pollfd pfd = {.fd = w->efd, .events = POLLIN};
    (void)poll(&pfd, 1, timeout_ms);
}

strata_status_t rdma_worker_set_am(rdma_worker_t *w, unsigned am_id, ucp_am_recv_callback_t cb,
                                   void *arg)
{
    ucp_am_handler_param_t hp = {
        .field_mask = UCP_AM_HANDLER_PARAM_FIELD_ID | UCP_AM_HANDLER_PARAM_FIELD_CB |
                      UCP_AM_HANDLER_PARAM_FIELD_ARG | UCP_AM_HANDLER_PARAM_FIELD_FLAGS,
        .id = am_id,
        .cb = cb,
        .arg = arg,
        .flags = UCP_AM_FLAG_PERSISTENT_DATA,
    };
    ucs_status_t s = ucp_worker_set_am_recv_handler(w->ucp, &hp);
    return s == UCS_OK ? STRATA_OK : fail_ucs(s, "ucp_worker_set_am_recv_handler");
}

/* ------------------------------------------------------------------------ */
/* endpoints and listener                                                   */
/* ------------------------------------------------------------------------ */

static strata_status_t resolve(const char *host, uint16_t port, struct sockaddr_storage *ss,
                               socklen_t *len)
{
    struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM};
    struct addrinfo *res = NULL;
    char portstr[8];
    snprintf(portstr, sizeof(portstr), "%u", port);
    int rc = getaddrinfo(host && *host ? host : NULL, portstr, &hints, &res);
    if (rc != 0 || !res)
        return core_fail(STRATA_ERR_INVALID_PARAM, "address %s:%u: %s", host ? host : "*", port,
                         gai_strerror(rc));
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    *len = res->ai_addrlen;
    freeaddrinfo(res);
    return STRATA_OK;
}

strata_status_t rdma_ep_connect(rdma_worker_t *w, const char *host, uint16_t port,
                                rdma_ep_err_cb_t err_cb, void *err_arg, ucp_ep_h *ep_p)
{
    struct sockaddr_storage ss;
    socklen_t slen;
    strata_status_t st = resolve(host, port, &ss, &slen);
    if (st != STRATA_OK)
        return st;
    ucp_ep_params_t ep = {
        .field_mask = UCP_EP_PARAM_FIELD_FLAGS | UCP_EP_PARAM_FIELD_SOCK_ADDR |
                      UCP_EP_PARAM_FIELD_ERR_HANDLING_MODE | UCP_EP_PARAM_FIELD_ERR_HANDLER,
        .flags = UCP_EP_PARAMS_FLAGS_CLIENT_SERVER,
        .sockaddr = {.addr = (struct sockaddr *)&ss, .addrlen = slen},
        .err_mode = UCP_ERR_HANDLING_MODE_PEER,
        .err_handler = {.cb = err_cb, .arg = err_arg},
    };
    if (!err_cb)
        ep.field_mask &= ~(uint64_t)UCP_EP_PARAM_FIELD_ERR_HANDLER;
    ucs_status_t s = ucp_ep_create(w->ucp, &ep, ep_p);
    return s == UCS_OK ? STRATA_OK : fail_ucs(s, "connect");
}

strata_status_t rdma_worker_address(rdma_worker_t *w, void **addr_p, size_t *len_p)
{
    ucp_address_t *a;
    size_t len;
    ucs_status_t s = ucp_worker_get_address(w->ucp, &a, &len);
    if (s != UCS_OK)
        return fail_ucs(s, "worker address");
    *addr_p = a;
    *len_p = len;
    return STRATA_OK;
}

void rdma_worker_address_free(rdma_worker_t *w, void *addr)
{
    ucp_worker_release_address(w->ucp, addr);
}

strata_status_t rdma_ep_connect_address(rdma_worker_t *w, const void *addr,
                                        rdma_ep_err_cb_t err_cb, void *err_arg, ucp_ep_h *ep_p)
{
    ucp_ep_params_t ep = {
        .field_mask = UCP_EP_PARAM_FIELD_REMOTE_ADDRESS | UCP_EP_PARAM_FIELD_ERR_HANDLING_MODE |
                      UCP_EP_PARAM_FIELD_ERR_HANDLER,
        .address = addr,
        .err_mode = UCP_ERR_HANDLING_MODE_PEER,
        .err_handler = {.cb = err_cb, .arg = err_arg},
    };
    if (!err_cb) {
        /* no failure callback wanted: no error handling mode either, which
         * lets UCX 1.13 use shared-memory transports (it excludes them
         * under UCP_ERR_HANDLING_MODE_PEER) */
        ep.field_mask &= ~(uint64_t)UCP_EP_PARAM_FIELD_ERR_HANDLER;
        ep.err_mode = UCP_ERR_HANDLING_MODE_NONE;
    }
    ucs_status_t s = ucp_ep_create(w->ucp, &ep, ep_p);
    return s == UCS_OK ? STRATA_OK : fail_ucs(s, "connect by address");
}

strata_status_t rdma_ep_accept(rdma_worker_t *w, ucp_conn_request_h req, rdma_ep_err_cb_t err_cb,
                               void *err_arg, ucp_ep_h *ep_p)
{
    ucp_ep_params_t ep = {
        .field_mask = UCP_EP_PARAM_FIELD_CONN_REQUEST | UCP_EP_PARAM_FIELD_ERR_HANDLING_MODE |
                      UCP_EP_PARAM_FIELD_ERR_HANDLER,
        .conn_request = req,
        .err_mode = UCP_ERR_HANDLING_MODE_PEER,
        .err_handler = {.cb = err_cb, .arg = err_arg},
    };
    ucs_status_t s = ucp_ep_create(w->ucp, &ep, ep_p);
    return s == UCS_OK ? STRATA_OK : fail_ucs(s, "accept");
}

void rdma_ep_close(rdma_worker_t *w, ucp_ep_h ep, int force, uint64_t deadline_ns)
{
    if (!ep)
        return;
    ucp_request_param_t p = {.op_attr_mask = UCP_OP_ATTR_FIELD_FLAGS,
                             .flags = force ? UCP_EP_CLOSE_FLAG_FORCE : 0};
    void *req = ucp_ep_close_nbx(ep, &p);
    if (rdma_wait(w, req, deadline_ns) == STRATA_ERR_TIMEOUT && !force) {
        /* the peer did not answer the flush: the graceful close goes on in
         * the background; nothing else to do without a second handle */
    }
}

strata_status_t rdma_listen(rdma_worker_t *w, const char *addr, uint16_t port, rdma_conn_cb_t cb,
                            void *arg, ucp_listener_h *listener_p, uint16_t *port_p)
{
    struct sockaddr_storage ss;
    socklen_t slen;
    strata_status_t st = resolve(addr && *addr ? addr : "0.0.0.0", port, &ss, &slen);
    if (st != STRATA_OK)
        return st;
    ucp_listener_params_t lp = {
        .field_mask = UCP_LISTENER_PARAM_FIELD_SOCK_ADDR | UCP_LISTENER_PARAM_FIELD_CONN_HANDLER,
        .sockaddr = {.addr = (struct sockaddr *)&ss, .addrlen = slen},
        .conn_handler = {.cb = cb, .arg = arg},
    };
    ucs_status_t s = ucp_listener_create(w->ucp, &lp, listener_p);
    if (s != UCS_OK)
        return fail_ucs(s, "listen");
    ucp_listener_attr_t la = {.field_mask = UCP_LISTENER_ATTR_FIELD_SOCKADDR};
    if (port_p && ucp_listener_query(*listener_p, &la) == UCS_OK) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)&la.sockaddr;
        *port_p = ntohs(sin->sin_port);
    }
    return STRATA_OK;
}

/* ------------------------------------------------------------------------ */
/* sends, waits, gets                                                       */
/* ------------------------------------------------------------------------ */

static void send_done(void *request, ucs_status_t status, void *user_data)
{
    rdma_send_slot_t *slot = user_data;
    /* a request freed before completion gets no callback (ucp.h), so it
     * is freed here, after the callback */
    ucp_request_free(request);
    slot->cb(slot->arg, rdma_status(status));
}

strata_status_t rdma_am_send(ucp_ep_h ep, unsigned am_id, const void *buf, size_t len,
                             rdma_send_slot_t *slot)
{
    ucp_request_param_t p = {
        .op_attr_mask = UCP_OP_ATTR_FIELD_FLAGS | UCP_OP_ATTR_FIELD_CALLBACK |
                        UCP_OP_ATTR_FIELD_USER_DATA,
        .flags = UCP_AM_SEND_FLAG_EAGER | UCP_AM_SEND_FLAG_REPLY,
        .cb = {.send = send_done},
        .user_data = slot,
    };
    void *req = ucp_am_send_nbx(ep, am_id, NULL, 0, buf, len, &p);
    if (req == NULL)
        return STRATA_OK;
    if (UCS_PTR_IS_ERR(req))
        return fail_ucs(UCS_PTR_STATUS(req), "am send");
    return STRATA_INPROGRESS; /* send_done frees req */
}

strata_status_t rdma_wait(rdma_worker_t *w, void *req, uint64_t deadline_ns)
{
    if (req == NULL)
        return STRATA_OK;
    if (UCS_PTR_IS_ERR(req))
        return fail_ucs(UCS_PTR_STATUS(req), "request");
    ucs_status_t s;
    unsigned spins = 0;
    while ((s = ucp_request_check_status(req)) == UCS_INPROGRESS) {
        ucp_worker_progress(w->ucp);
        if (deadline_ns && (++spins & 255) == 0 && rdma_now_ns() > deadline_ns) {
            ucp_request_free(req);
            return core_fail(STRATA_ERR_TIMEOUT, "request did not complete in time");
        }
    }
    ucp_request_free(req);
    return s == UCS_OK ? STRATA_OK : fail_ucs(s, "request");
}

strata_status_t rdma_worker_flush(rdma_worker_t *w, uint64_t deadline_ns)
{
    ucp_request_param_t p = {.op_attr_mask = 0};
    return rdma_wait(w, ucp_worker_flush_nbx(w->ucp, &p), deadline_ns);
}

strata_status_t rdma_get_batch(rdma_worker_t *w, const rdma_get_t *g, size_t n, uint32_t window,
                               uint64_t deadline_ns)
{
    if (window == 0)
        window = 256;
    ucp_request_param_t p = {.op_attr_mask = UCP_OP_ATTR_FLAG_MULTI_SEND};
    size_t i = 0;
    while (i < n) {
        size_t end = n - i > window ? i + window : n;
        for (; i < end; i++) {
            void *req = ucp_get_nbx(g[i].ep, g[i].dst, g[i].len, g[i].raddr, g[i].rkey, &p);
            if (UCS_PTR_IS_ERR(req))
                return fail_ucs(UCS_PTR_STATUS(req), "get");
            if (req)
                ucp_request_free(req); /* the flush below completes it */
        }
        strata_status_t st = rdma_worker_flush(w, deadline_ns);
        if (st != STRATA_OK)
            return st;
    }
    return STRATA_OK;
}

strata_status_t rdma_rkey_unpack(ucp_ep_h ep, const void *buf, size_t len, uint64_t raddr,
                                 ucp_rkey_h *rkey_p, void **local_p)
{
    (void)len; /* the packed format carries its own length; wire.c bounds it */
    ucs_status_t s = ucp_ep_rkey_unpack(ep, buf, rkey_p);
    if (s != UCS_OK)
        return fail_ucs(s, "rkey unpack");
    if (local_p) {
        *local_p = NULL;
        void *ptr;
        if (ucp_rkey_ptr(*rkey_p, raddr, &ptr) == UCS_OK)
            *local_p = ptr;
    }
    return STRATA_OK;
}

int rdma_ep_gets_direct(ucp_ep_h ep)
{
    char *text = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&text, &size);
    if (!f)
        return 0;
    ucp_ep_print_info(ep, f);
    fclose(f);
    if (getenv("STRATA_DEBUG_EP"))
        fputs(text, stderr);
    int direct = 0;
    /* lines look like "#  lane[2]:  3:posix/memory.0 md[2]  -> ... rma_bw#0" */
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        if (!strstr(line, "lane[") || (!strstr(line, "rma_bw") && !strstr(line, " rma#")))
            continue;
        if (!strstr(line, "tcp/"))
            direct = 1;
    }
    free(text);
    return direct;
}

/* ------------------------------------------------------------------------ */
/* GPUDirect: caller-owned memory by descriptor                             */
/* ------------------------------------------------------------------------ */

uint64_t rdma_ctx_memtypes(rdma_ctx_t *ctx)
{
    uint64_t mask = CORE_MEMTYPE_BIT(CORE_MEMTYPE_HOST);
    ucp_context_attr_t attr = {.field_mask = UCP_ATTR_FIELD_MEMORY_TYPES};
    if (ucp_context_query(ctx->ucp, &attr) != UCS_OK)
        return mask;
    if (attr.memory_types & UCS_BIT(UCS_MEMORY_TYPE_CUDA))
        mask |= CORE_MEMTYPE_BIT(CORE_MEMTYPE_CUDA);
    if (attr.memory_types & UCS_BIT(UCS_MEMORY_TYPE_CUDA_MANAGED))
        mask |= CORE_MEMTYPE_BIT(CORE_MEMTYPE_CUDA_MANAGED);
    return mask;
}

/** UCX's name for a core memory type. */
static ucs_memory_type_t ucs_memtype_of(core_memtype_t t)
{
    switch (t) {
    case CORE_MEMTYPE_CUDA:
        return UCS_MEMORY_TYPE_CUDA;
    case CORE_MEMTYPE_CUDA_MANAGED:
        return UCS_MEMORY_TYPE_CUDA_MANAGED;
    default:
        return UCS_MEMORY_TYPE_HOST;
    }
}

strata_status_t rdma_mem_register(rdma_ctx_t *ctx, const core_memdesc_t *desc,
                                  core_region_t *region)
{
    if (!desc || !desc->addr || desc->len == 0)
        return core_fail(STRATA_ERR_INVALID_PARAM, "rdma_mem_register: empty memory descriptor");
    if (core_memdesc_path(desc, rdma_ctx_memtypes(ctx)) != CORE_MEM_PATH_DIRECT)
        return core_fail(STRATA_ERR_UNSUPPORTED,
                         "rdma_mem_register: this UCX cannot register %s memory (no CUDA "
                         "support; serve it through a bounce buffer, docs/gpu.md)",
                         core_memtype_name(desc->memtype));
    rdma_region_t *rr = core_calloc(1, sizeof(*rr));
    if (!rr)
        return core_fail(STRATA_ERR_NOMEM, "region handle: out of memory");
    ucp_mem_map_params_t mp = {
        .field_mask = UCP_MEM_MAP_PARAM_FIELD_ADDRESS | UCP_MEM_MAP_PARAM_FIELD_LENGTH |
                      UCP_MEM_MAP_PARAM_FIELD_PROT | UCP_MEM_MAP_PARAM_FIELD_MEMORY_TYPE,
        .address = desc->addr,
        .length = desc->len,
        .prot = UCP_MEM_MAP_PROT_LOCAL_READ | UCP_MEM_MAP_PROT_LOCAL_WRITE |
                UCP_MEM_MAP_PROT_REMOTE_READ,
        .memory_type = ucs_memtype_of(desc->memtype),
    };
    ucs_status_t s = ucp_mem_map(ctx->ucp, &mp, &rr->memh);
    if (s != UCS_OK) {
        core_free(rr);
        return fail_ucs(s, "ucp_mem_map (register)");
    }
    s = ucp_rkey_pack(ctx->ucp, rr->memh, &rr->rkey_buf, &rr->rkey_len);
    if (s != UCS_OK) {
        ucp_mem_unmap(ctx->ucp, rr->memh);
        core_free(rr);
        return fail_ucs(s, "ucp_rkey_pack");
    }
    region->base = desc->addr;
    region->len = desc->len;
    region->handle = rr;
    return STRATA_OK;
}

void rdma_mem_deregister(rdma_ctx_t *ctx, core_region_t *region)
{
    rdma_region_t *rr = region->handle;
    if (!rr)
        return;
    ucp_rkey_buffer_release(rr->rkey_buf);
    ucp_mem_unmap(ctx->ucp, rr->memh);
    core_free(rr);
    region->handle = NULL;
    region->base = NULL;
    region->len = 0;
}
