/*
 * rdma/auth.c — HMAC proof for the session handshake (see auth.h).
 */
#define _GNU_SOURCE
#include "rdma/auth.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>

#include "core/status.h"

void auth_mac(const void *secret, size_t secret_len, const uint8_t client_nonce[WIRE_NONCE_BYTES],
              const uint8_t server_nonce[WIRE_NONCE_BYTES], uint32_t role,
              uint8_t mac[WIRE_MAC_BYTES])
{
    static const char label[] = "strata-auth-v1";
    uint8_t msg[sizeof(label) - 1 + 2 * WIRE_NONCE_BYTES + 4];
    size_t off = 0;
    memcpy(msg, label, sizeof(label) - 1);
    off += sizeof(label) - 1;
    memcpy(msg + off, client_nonce, WIRE_NONCE_BYTES);
    off += WIRE_NONCE_BYTES;
    memcpy(msg + off, server_nonce, WIRE_NONCE_BYTES);
    off += WIRE_NONCE_BYTES;
    memcpy(msg + off, &role, 4); /* little-endian host (core/layout.h) */
    off += 4;
    unsigned int len = WIRE_MAC_BYTES;
    static const uint8_t empty = 0;
    HMAC(EVP_sha256(), secret_len ? secret : &empty, (int)secret_len, msg, off, mac, &len);
}

int auth_mac_equal(const uint8_t a[WIRE_MAC_BYTES], const uint8_t b[WIRE_MAC_BYTES])
{
    return CRYPTO_memcmp(a, b, WIRE_MAC_BYTES) == 0;
}

strata_status_t auth_random(void *buf, size_t len)
{
    uint8_t *p = buf;
    while (len > 0) {
        ssize_t r = getrandom(p, len, 0);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return core_fail_errno(errno, "getrandom");
        }
        p += r;
        len -= (size_t)r;
    }
    return STRATA_OK;
}

strata_status_t auth_read_secret(const char *path, char *out, size_t cap, size_t *len_p)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return core_fail_errno(errno, "secret file %s", path);
    size_t n = fread(out, 1, cap, f);
    int err = ferror(f);
    int more = fgetc(f) != EOF;
    fclose(f);
    if (err)
        return core_fail(STRATA_ERR_IO, "secret file %s: read error", path);
    if (more || n == cap)
        return core_fail(STRATA_ERR_TOO_LARGE, "secret file %s: longer than %zu bytes", path,
                         cap - 1);
    while (n > 0 && (out[n - 1] == '\n' || out[n - 1] == '\r'))
        n--;
    out[n] = '\0';
    *len_p = n;
    return STRATA_OK;
}
