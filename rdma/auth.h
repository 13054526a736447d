/*
 * rdma/auth.h — the session handshake's proof of the shared secret.
 *
 * mac = HMAC-SHA256(secret, "strata-auth-v1" || client_nonce ||
 *                   server_nonce || role as u32 LE)
 * (OpenSSL's HMAC). Nonces are 32 bytes from getrandom(2), fresh per
 * session on both sides, so a recorded AUTH cannot be replayed.
 *
 * Threading: pure functions (auth_random reads the kernel's CSPRNG).
 */
#ifndef STRATA_RDMA_AUTH_H
#define STRATA_RDMA_AUTH_H

#include <stddef.h>
#include <stdint.h>

#include "rdma/wire.h"
#include "strata.h"

void auth_mac(const void *secret, size_t secret_len, const uint8_t client_nonce[WIRE_NONCE_BYTES],
              const uint8_t server_nonce[WIRE_NONCE_BYTES], uint32_t role,
              uint8_t mac[WIRE_MAC_BYTES]);

/** Constant-time comparison: 1 if equal. */
int auth_mac_equal(const uint8_t a[WIRE_MAC_BYTES], const uint8_t b[WIRE_MAC_BYTES]);

/** Fill buf with random bytes. IO on failure. */
strata_status_t auth_random(void *buf, size_t len);

/** Read a secret file (trailing newline stripped) into out (cap bytes);
 *  *len_p gets its length. NOT_FOUND, IO, TOO_LARGE. */
strata_status_t auth_read_secret(const char *path, char *out, size_t cap, size_t *len_p);

#endif
