/*
 * SHA-256 as specified in FIPS 180-4, sections 4.1.2, 4.2.2, 5.1.1, 5.3.3 and 6.2.
 * Freestanding (no libc besides what the caller links); also builds for the host so the
 * known-answer tests can run there.
 */
#include "sha256.h"

#include <stdbool.h>

/* Section 4.2.2: the first 32 bits of the fractional parts of the cube roots of the first
 * 64 primes. */
static const uint32_t K[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

/* Section 5.3.3: the first 32 bits of the fractional parts of the square roots of the first
 * eight primes. */
static const uint32_t H0[8] = {
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
};

static inline uint32_t rotr(uint32_t x, unsigned n) { return (x >> n) | (x << (32 - n)); }
static inline uint32_t ch(uint32_t x, uint32_t y, uint32_t z) { return (x & y) ^ (~x & z); }
static inline uint32_t maj(uint32_t x, uint32_t y, uint32_t z) { return (x & y) ^ (x & z) ^ (y & z); }
static inline uint32_t bsig0(uint32_t x) { return rotr(x, 2) ^ rotr(x, 13) ^ rotr(x, 22); }
static inline uint32_t bsig1(uint32_t x) { return rotr(x, 6) ^ rotr(x, 11) ^ rotr(x, 25); }
static inline uint32_t ssig0(uint32_t x) { return rotr(x, 7) ^ rotr(x, 18) ^ (x >> 3); }
static inline uint32_t ssig1(uint32_t x) { return rotr(x, 17) ^ rotr(x, 19) ^ (x >> 10); }

static inline uint32_t load_be32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static inline void store_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* Section 6.2.2: process one 512-bit block. */
static void compress(uint32_t state[8], const uint8_t block[SHA256_BLOCK_SIZE])
{
    uint32_t w[64];
    for (int t = 0; t < 16; t++)
        w[t] = load_be32(block + 4 * t);
    for (int t = 16; t < 64; t++)
        w[t] = ssig1(w[t - 2]) + w[t - 7] + ssig0(w[t - 15]) + w[t - 16];

    uint32_t a = state[0], b = state[1], c = state[2], d = state[3];
    uint32_t e = state[4], f = state[5], g = state[6], h = state[7];
    for (int t = 0; t < 64; t++) {
        uint32_t t1 = h + bsig1(e) + ch(e, f, g) + K[t] + w[t];
        uint32_t t2 = bsig0(a) + maj(a, b, c);
        h = g;
        g = f;
        f = e;
        e = d + t1;
        d = c;
        c = b;
        b = a;
        a = t1 + t2;
    }
    state[0] += a;
    state[1] += b;
    state[2] += c;
    state[3] += d;
    state[4] += e;
    state[5] += f;
    state[6] += g;
    state[7] += h;
}

#if defined(__aarch64__)
/* arch/aarch64/sha256_ce.S: the same compression with the SHA-256 instructions. */
bool sha256_arch_available(void);
void sha256_arch_blocks(uint32_t state[8], const uint8_t *data, size_t blocks);
#else
static inline bool sha256_arch_available(void) { return false; }
static inline void sha256_arch_blocks(uint32_t state[8], const uint8_t *data, size_t blocks)
{
    (void)state, (void)data, (void)blocks;
}
#endif

void sha256_init(struct sha256_ctx *ctx)
{
    for (int i = 0; i < 8; i++)
        ctx->state[i] = H0[i];
    ctx->length = 0;
    ctx->used = 0;
}

void sha256_update(struct sha256_ctx *ctx, const void *data, size_t len)
{
    const uint8_t *p = data;
    ctx->length += len;
    if (ctx->used != 0) {
        while (len > 0 && ctx->used < SHA256_BLOCK_SIZE) {
            ctx->block[ctx->used++] = *p++;
            len--;
        }
        if (ctx->used < SHA256_BLOCK_SIZE)
            return;
        compress(ctx->state, ctx->block);
        ctx->used = 0;
    }
    if (len >= SHA256_BLOCK_SIZE && sha256_arch_available()) {
        size_t blocks = len / SHA256_BLOCK_SIZE;
        sha256_arch_blocks(ctx->state, p, blocks);
        p += blocks * SHA256_BLOCK_SIZE;
        len -= blocks * SHA256_BLOCK_SIZE;
    }
    while (len >= SHA256_BLOCK_SIZE) {
        compress(ctx->state, p);
        p += SHA256_BLOCK_SIZE;
        len -= SHA256_BLOCK_SIZE;
    }
    while (len > 0) {
        ctx->block[ctx->used++] = *p++;
        len--;
    }
}

/* Section 5.1.1: append 0x80, zeros, and the message length in bits as a 64-bit big-endian
 * number, so that the padded message is a multiple of 512 bits. */
void sha256_final(struct sha256_ctx *ctx, uint8_t digest[SHA256_DIGEST_SIZE])
{
    uint64_t bits = ctx->length * 8;
    ctx->block[ctx->used++] = 0x80;
    if (ctx->used > SHA256_BLOCK_SIZE - 8) {
        while (ctx->used < SHA256_BLOCK_SIZE)
            ctx->block[ctx->used++] = 0;
        compress(ctx->state, ctx->block);
        ctx->used = 0;
    }
    while (ctx->used < SHA256_BLOCK_SIZE - 8)
        ctx->block[ctx->used++] = 0;
    for (int i = 0; i < 8; i++)
        ctx->block[SHA256_BLOCK_SIZE - 1 - i] = (uint8_t)(bits >> (8 * i));
    compress(ctx->state, ctx->block);
    ctx->used = 0;
    for (int i = 0; i < 8; i++)
        store_be32(digest + 4 * i, ctx->state[i]);
}

void sha256(const void *data, size_t len, uint8_t digest[SHA256_DIGEST_SIZE])
{
    struct sha256_ctx ctx;
    sha256_init(&ctx);
    sha256_update(&ctx, data, len);
    sha256_final(&ctx, digest);
}
