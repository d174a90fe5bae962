#ifndef CAARCH64_H
#define CAARCH64_H

/*
 * The host atomics behind the guest's exclusives and LSE atomics (AArch64 interpreter). Guest
 * memory is shared between vCPU threads, so a guest atomic must be one host atomic on the same
 * bytes: sequentially consistent, which is at least as strong as any A64 ordering
 * (acquire, release, or both). Each takes a host pointer the caller has translated and checked
 * for alignment to the access size.
 */

#include <stdbool.h>
#include <stdint.h>

/* Compare and swap: stores `desired` if the bytes hold `*expected`; either way `*expected`
 * receives what they held. Returns whether it stored. */
static inline bool pvm_cas8(void *p, uint8_t *expected, uint8_t desired) {
    return __atomic_compare_exchange_n((uint8_t *)p, expected, desired, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
}
static inline bool pvm_cas16(void *p, uint16_t *expected, uint16_t desired) {
    return __atomic_compare_exchange_n((uint16_t *)p, expected, desired, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
}
static inline bool pvm_cas32(void *p, uint32_t *expected, uint32_t desired) {
    return __atomic_compare_exchange_n((uint32_t *)p, expected, desired, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
}
static inline bool pvm_cas64(void *p, uint64_t *expected, uint64_t desired) {
    return __atomic_compare_exchange_n((uint64_t *)p, expected, desired, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
}

/* 128-bit compare and swap (CASP, STXP of two doublewords): x86-64 CMPXCHG16B, arm64 CASP or
 * LDXP/STXP, through the compiler's 16-byte builtin. */
static inline bool pvm_cas128(void *p, uint64_t *expected_lo, uint64_t *expected_hi, uint64_t desired_lo,
                              uint64_t desired_hi) {
    unsigned __int128 e = ((unsigned __int128)*expected_hi << 64) | *expected_lo;
    unsigned __int128 d = ((unsigned __int128)desired_hi << 64) | desired_lo;
    bool ok = __sync_bool_compare_and_swap((unsigned __int128 *)p, e, d);
    if (!ok) {
        unsigned __int128 now = __sync_val_compare_and_swap((unsigned __int128 *)p, d, d);
        /* `now` is a snapshot of the 16 bytes; writing d over d changes nothing. */
        *expected_lo = (uint64_t)now;
        *expected_hi = (uint64_t)(now >> 64);
    }
    return ok;
}

/* Atomic loads and stores (LDAR/STLR, and the single-copy atomicity of aligned accesses). */
static inline uint64_t pvm_load_acquire64(const void *p) { return __atomic_load_n((const uint64_t *)p, __ATOMIC_ACQUIRE); }
static inline uint32_t pvm_load_acquire32(const void *p) { return __atomic_load_n((const uint32_t *)p, __ATOMIC_ACQUIRE); }
static inline uint16_t pvm_load_acquire16(const void *p) { return __atomic_load_n((const uint16_t *)p, __ATOMIC_ACQUIRE); }
static inline uint8_t pvm_load_acquire8(const void *p) { return __atomic_load_n((const uint8_t *)p, __ATOMIC_ACQUIRE); }
static inline void pvm_store_release64(void *p, uint64_t v) { __atomic_store_n((uint64_t *)p, v, __ATOMIC_RELEASE); }
static inline void pvm_store_release32(void *p, uint32_t v) { __atomic_store_n((uint32_t *)p, v, __ATOMIC_RELEASE); }
static inline void pvm_store_release16(void *p, uint16_t v) { __atomic_store_n((uint16_t *)p, v, __ATOMIC_RELEASE); }
static inline void pvm_store_release8(void *p, uint8_t v) { __atomic_store_n((uint8_t *)p, v, __ATOMIC_RELEASE); }

/* DMB / DSB of loads and stores: a full fence (MFENCE on x86-64, where TSO still lets a store
 * pass a later load, which the barrier forbids; DMB ISH on arm64). The LD and ST forms order
 * less: an acquire or release fence, which costs x86-64 nothing but the compiler's ordering. */
static inline void pvm_fence(void) { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
static inline void pvm_fence_acquire(void) { __atomic_thread_fence(__ATOMIC_ACQUIRE); }
static inline void pvm_fence_release(void) { __atomic_thread_fence(__ATOMIC_RELEASE); }

/* CRC32 (polynomial 0x04C11DB7) and CRC32C (0x1EDC6F41) over the low `bytes` (1, 2, 4, 8) of
 * `data`, bit-reflected with no inversion: the A64 CRC32* / CRC32C* instructions (Arm ARM
 * C6.2.80). Slicing-by-8 tables (crc.c), so a doubleword costs one pass, not 64 shifts. */
uint32_t pvm_crc32(uint32_t crc, uint64_t data, int bytes, int castagnoli);

#endif
