/* sha256.h — SHA-256 (FIPS 180-4), our own implementation: the model file records the
 * hash of the program it was compiled from, and training provenance the parent file's. */
#ifndef TRACC_SHA256_H
#define TRACC_SHA256_H

#include <stddef.h>
#include <stdint.h>

#include "common/util.h"

typedef struct {
    uint32_t h[8];
    uint64_t nbytes;        /* total bytes absorbed so far */
    uint8_t buf[64];        /* pending partial block */
    size_t nbuf;
} Sha256;

void sha256_init(Sha256 *c);
void sha256_update(Sha256 *c, const void *data, size_t len);
void sha256_final(Sha256 *c, uint8_t digest[32]);

/* One-shot helpers. hex receives 64 lowercase hex digits and a NUL. */
void sha256(const void *data, size_t len, uint8_t digest[32]);
void sha256_hex(const void *data, size_t len, char hex[65]);

/* The hex digest of a file's bytes. 0, or -1 with "<path>: cannot read: <why>" in err. */
int sha256_file(const char *path, char hex[65], StrBuf *err);

#endif
