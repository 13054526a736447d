/*
 * client/client_internal.h — what client.c shares with the client files
 * beside it that implement parts of the client API in translation units of
 * their own: client_gpu.c (lookups into device buffers, built with CUDA)
 * or client_gpu_stub.c (its stand-in without CUDA). CMake picks one of the
 * two; both define everything declared here.
 *
 * Threading: as the client's (a client and what it owns belong to one
 * thread at a time).
 */
#ifndef STRATA_CLIENT_INTERNAL_H
#define STRATA_CLIENT_INTERNAL_H

#include "strata.h"

/** Per-client GPU state (client_gpu.c: the pinned host bounce buffer of
 *  strata_rtable_lookup_device). NULL until the first device lookup. */
typedef struct client_gpu client_gpu_t;

/** The slot of t's client where its client_gpu_t lives (client.c). The
 *  slot belongs to the client; whoever fills it frees the state with
 *  client_gpu_free, which strata_client_destroy calls. */
client_gpu_t **client_gpu_slot(strata_rtable_t *t);

/** Free a client's GPU state (NULL: nothing). Called once, by
 *  strata_client_destroy. */
void client_gpu_free(client_gpu_t *g);

#endif
