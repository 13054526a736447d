/*
 * rdma/ucx.h — the transport on UCX (ucp): context, workers, registered
 * regions and their rkeys, endpoints, active-message sends and the
 * one-sided get engine. The server and the client sit on top of this; no
 * other layer includes ucp.h.
 *
 * Choices (../shared/NOTES.md has the UCX 1.13 facts behind them):
 *  - one context per process with RMA + AM; one worker per thread in
 *    UCS_THREAD_MODE_SINGLE. The context is created with
 *    mt_workers_shared so regions may be mapped and unmapped from any
 *    thread (the shard writer frees an old index after growth).
 *  - rows and index buckets live in regions UCX allocates itself
 *    (ucp_mem_map with UCP_MEM_MAP_ALLOCATE), so shared-memory transports
 *    read them directly; each region's rkey is packed once, at map time.
 *  - active messages are always sent eager (UCP_AM_SEND_FLAG_EAGER): UCX
 *    reassembles multi-fragment eager messages itself, and 1.13 leaks
 *    descriptors on the AM rendezvous path. Callers keep messages under
 *    WIRE_MSG_MAX. The send buffer must stay valid until completion.
 *  - a batch of gets is posted with UCP_OP_ATTR_FLAG_MULTI_SEND, at most
 *    `window` at a time, each window completed by one worker flush.
 *
 * Threading: a rdma_ctx_t is shared by all threads; a rdma_worker_t and
 * the endpoints made on it belong to one thread at a time.
 */
#ifndef STRATA_RDMA_UCX_H
#define STRATA_RDMA_UCX_H

#include <stddef.h>
#include <stdint.h>
#include <ucp/api/ucp.h>

#include "core/alloc.h"
#include "core/memdesc.h"
#include "strata.h"

/** Translate a UCX status (the one place that does). */
strata_status_t rdma_status(ucs_status_t s);

/** Monotonic clock, ns. */
uint64_t rdma_now_ns(void);

typedef struct rdma_ctx rdma_ctx_t;

/** Create the process's UCX context (reads UCX_* environment variables as
 *  UCX does). Errors: UNSUPPORTED (no usable transport), NOMEM, CONNECTION. */
strata_status_t rdma_ctx_create(rdma_ctx_t **ctx_p);
void rdma_ctx_destroy(rdma_ctx_t *ctx);
ucp_context_h rdma_ctx_ucp(const rdma_ctx_t *ctx);

/** Region provider for core shards: ucp_mem_map(ALLOCATE) with remote-read
 *  access, the rkey packed once. Borrowed; valid for the context's life. */
const core_region_ops_t *rdma_ctx_region_ops(rdma_ctx_t *ctx);

/** What rdma_ctx_region_ops keeps in core_region_t.handle. */
typedef struct rdma_region {
    ucp_mem_h memh;     /**< the mapping */
    void *rkey_buf;     /**< packed rkey (ucp_rkey_pack), sent to clients */
    size_t rkey_len;    /**< bytes of rkey_buf */
} rdma_region_t;

static inline const rdma_region_t *rdma_region_of(const core_region_t *r)
{
    return (const rdma_region_t *)r->handle;
}

typedef struct rdma_worker rdma_worker_t;

/** A worker for the calling thread. Errors: NOMEM, CONNECTION. */
strata_status_t rdma_worker_create(rdma_ctx_t *ctx, rdma_worker_t **w_p);
void rdma_worker_destroy(rdma_worker_t *w);
ucp_worker_h rdma_worker_ucp(const rdma_worker_t *w);

/** Run UCX progress once; returns nonzero if anything happened. */
unsigned rdma_worker_progress(rdma_worker_t *w);

/** Sleep until the worker has events or timeout_ms passes (arms the
 *  worker's event fd; returns at once when events are pending). */
void rdma_worker_sleep(rdma_worker_t *w, int timeout_ms);

/** Register an AM handler (cb runs inside progress and must not call
 *  progress). */
strata_status_t rdma_worker_set_am(rdma_worker_t *w, unsigned am_id, ucp_am_recv_callback_t cb,
                                   void *arg);

/** Called once when an endpoint fails (peer gone, connection reset),
 *  from progress; translate st with rdma_status(). */
typedef ucp_err_handler_cb_t rdma_ep_err_cb_t;

/** Connect to host:port (a server's listener). The endpoint is usable at
 *  once; UCX finishes wire-up in the background. Errors: CONNECTION,
 *  INVALID_PARAM (bad address). */
strata_status_t rdma_ep_connect(rdma_worker_t *w, const char *host, uint16_t port,
                                rdma_ep_err_cb_t err_cb, void *err_arg, ucp_ep_h *ep_p);

/** The worker's address (ucp_worker_get_address), for peers that connect
 *  by address instead of through a listener; free with
 *  rdma_worker_address_free. */
strata_status_t rdma_worker_address(rdma_worker_t *w, void **addr_p, size_t *len_p);
void rdma_worker_address_free(rdma_worker_t *w, void *addr);

/** Connect to a worker by its address (no listener). With err_cb NULL the
 *  endpoint has no error handling mode, which lets UCX 1.13 use
 *  shared-memory transports (it leaves them out under
 *  UCP_ERR_HANDLING_MODE_PEER, which rdma_ep_connect and rdma_ep_accept
 *  always use); with err_cb, PEER mode as elsewhere. */
strata_status_t rdma_ep_connect_address(rdma_worker_t *w, const void *addr,
                                        rdma_ep_err_cb_t err_cb, void *err_arg, ucp_ep_h *ep_p);

/** Accept a connection request (server side, from the listener). */
strata_status_t rdma_ep_accept(rdma_worker_t *w, ucp_conn_request_h req, rdma_ep_err_cb_t err_cb,
                               void *err_arg, ucp_ep_h *ep_p);

/** Close an endpoint: flush, or force (cancel outstanding operations)
 *  when force or when the flush does not finish by the deadline. */
void rdma_ep_close(rdma_worker_t *w, ucp_ep_h ep, int force, uint64_t deadline_ns);

/** A connection request arrived (from progress); accept or reject it. */
typedef void (*rdma_conn_cb_t)(ucp_conn_request_h req, void *arg);

/** Listen on addr:port (addr NULL or "" = all interfaces; port 0 = any;
 *  *port_p gets the bound port). */
strata_status_t rdma_listen(rdma_worker_t *w, const char *addr, uint16_t port, rdma_conn_cb_t cb,
                            void *arg, ucp_listener_h *listener_p, uint16_t *port_p);

/** Completion of an AM send: st is OK or the error. */
typedef void (*rdma_send_cb_t)(void *arg, strata_status_t st);

/** Where a send's completion goes; owned by the caller and kept valid,
 *  like the buffer, until the completion (usually part of the message
 *  record). */
typedef struct rdma_send_slot {
    rdma_send_cb_t cb;  /**< called once from progress */
    void *arg;          /**< for cb */
} rdma_send_slot_t;

/** Send buf (len bytes) as active message am_id, eager, with a reply
 *  endpoint. Returns OK when the send completed at once (slot->cb is not
 *  called; buf may be reused), INPROGRESS when slot->cb will be called
 *  later (buf and slot stay the caller's until then), or an error (cb
 *  never called). */
strata_status_t rdma_am_send(ucp_ep_h ep, unsigned am_id, const void *buf, size_t len,
                             rdma_send_slot_t *slot);

/** Wait for a request from a ucp_*_nbx call (NULL or error pointer
 *  allowed), progressing the worker, until it completes or deadline_ns
 *  (0: no deadline). Frees the request. TIMEOUT leaves it running: the
 *  caller must close the endpoint (force) before reusing its buffers. */
strata_status_t rdma_wait(rdma_worker_t *w, void *req, uint64_t deadline_ns);

/** Flush every endpoint of the worker and wait (as rdma_wait). */
strata_status_t rdma_worker_flush(rdma_worker_t *w, uint64_t deadline_ns);

/** One get of a batch. */
typedef struct rdma_get {
    ucp_ep_h ep;        /**< the server's endpoint */
    ucp_rkey_h rkey;    /**< unpacked on that endpoint */
    uint64_t raddr;     /**< remote address */
    void *dst;          /**< local destination, len bytes */
    uint32_t len;       /**< bytes */
    uint32_t tag;       /**< caller's; untouched */
} rdma_get_t;

/** Perform n gets, at most window posted before each flush. OK when all
 *  landed; an error (CONNECTION, TIMEOUT) means some destinations may be
 *  stale — and after TIMEOUT still written later unless the endpoints are
 *  force-closed. */
strata_status_t rdma_get_batch(rdma_worker_t *w, const rdma_get_t *g, size_t n, uint32_t window,
                               uint64_t deadline_ns);

/** Unpack a packed rkey for an endpoint. When the memory is directly
 *  mapped into this process (shared memory), *local_p gets the local
 *  address of raddr, else NULL. */
strata_status_t rdma_rkey_unpack(ucp_ep_h ep, const void *buf, size_t len, uint64_t raddr,
                                 ucp_rkey_h *rkey_p, void **local_p);

/** Whether gets on this endpoint are done by hardware or shared memory
 *  (1) or emulated with messages through the peer's CPU (0): read from the
 *  endpoint's lane configuration (rma_bw lane on a transport other than
 *  tcp). Call after the first round trip (wire-up done). */
int rdma_ep_gets_direct(ucp_ep_h ep);

/* ------------------------------------------------------------------------ */
/* GPUDirect: registering caller-owned memory described by core_memdesc_t    */
/* ------------------------------------------------------------------------ */

/** The memory types this context's transports can register and move, as a
 *  CORE_MEMTYPE_BIT mask (ucp_context_query, UCP_ATTR_FIELD_MEMORY_TYPES):
 *  HOST always; CUDA (and CUDA_MANAGED) only with a UCX built with CUDA
 *  support (Debian's UCX 1.13 has none). Feed it to core_memdesc_path to
 *  choose between registering HBM directly and a bounce buffer. Any
 *  thread. */
uint64_t rdma_ctx_memtypes(rdma_ctx_t *ctx);

/** Register caller-owned memory for remote reads (ucp_mem_map without
 *  ALLOCATE, UCP_MEM_MAP_PARAM_FIELD_MEMORY_TYPE = the descriptor's type)
 *  and pack its rkey once. On success region->base/len are the
 *  descriptor's and region->handle is an rdma_region_t (rdma_region_of), as
 *  for regions from rdma_ctx_region_ops; the memory stays the caller's and
 *  must outlive the registration. UNSUPPORTED when the descriptor's memory
 *  type is not in rdma_ctx_memtypes (serve it through a bounce buffer,
 *  core_memdesc_path); INVALID_PARAM for an empty or NULL range; NOMEM.
 *  Any thread (the context is mt_workers_shared). */
strata_status_t rdma_mem_register(rdma_ctx_t *ctx, const core_memdesc_t *desc,
                                  core_region_t *region);

/** Undo rdma_mem_register (the memory itself is untouched). */
void rdma_mem_deregister(rdma_ctx_t *ctx, core_region_t *region);

#endif
