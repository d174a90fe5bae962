/*
 * SHA-256 block compression with the Armv8 SHA-256 instructions (FEAT_SHA256: SHA256H,
 * SHA256H2, SHA256SU0, SHA256SU1), for pvmfw's digest of a payload. Four rounds an
 * instruction pair, the message schedule four words at a time: about 1.1 instructions a byte
 * against about 14 for the C compression in sha256.c, which matters on pvm's interpreter when
 * the payload is a 35 MiB Linux kernel. Only used when ID_AA64ISAR0_EL1.SHA2 says the CPU has
 * them (sha256_arch_available).
 *
 * Registers: v0 = (a, b, c, d), v1 = (e, f, g, h), v2/v3 their values before the block,
 * v4-v7 the schedule W[t..t+3] (rotating), v16 W + K, v17 (a, b, c, d) before a round group.
 */
#include "pvm_abi.h"

    .arch armv8-a+sha2

/* bool sha256_arch_available(void) */
    .section .text.sha256_arch_available, "ax", %progbits
    .globl sha256_arch_available
    .type sha256_arch_available, %function
sha256_arch_available:
    mrs x0, id_aa64isar0_el1
    ubfx x0, x0, #12, #4        /* SHA2 */
    cmp x0, #0
    cset x0, ne
    ret
    .size sha256_arch_available, . - sha256_arch_available

/* One group of four rounds: W = v\w, the next three schedule vectors \a \b \c; \more = 1 while
 * the schedule still needs extending (the first 12 groups). */
    .macro rounds w, a, b, c, more
    ld1 {v16.4s}, [x3], #16
    add v16.4s, v16.4s, \w\().4s
    .if \more
    sha256su0 \w\().4s, \a\().4s
    .endif
    mov v17.16b, v0.16b
    sha256h q0, q1, v16.4s
    sha256h2 q1, q17, v16.4s
    .if \more
    sha256su1 \w\().4s, \b\().4s, \c\().4s
    .endif
    .endm

/* void sha256_arch_blocks(uint32_t state[8], const uint8_t *data, size_t blocks) */
    .section .text.sha256_arch_blocks, "ax", %progbits
    .globl sha256_arch_blocks
    .type sha256_arch_blocks, %function
sha256_arch_blocks:
    cbz x2, 2f
    ld1 {v0.4s, v1.4s}, [x0]
1:  adrp x3, sha256_k
    add x3, x3, :lo12:sha256_k
    ld1 {v4.16b, v5.16b, v6.16b, v7.16b}, [x1], #64
    rev32 v4.16b, v4.16b
    rev32 v5.16b, v5.16b
    rev32 v6.16b, v6.16b
    rev32 v7.16b, v7.16b
    mov v2.16b, v0.16b
    mov v3.16b, v1.16b
    rounds v4, v5, v6, v7, 1
    rounds v5, v6, v7, v4, 1
    rounds v6, v7, v4, v5, 1
    rounds v7, v4, v5, v6, 1
    rounds v4, v5, v6, v7, 1
    rounds v5, v6, v7, v4, 1
    rounds v6, v7, v4, v5, 1
    rounds v7, v4, v5, v6, 1
    rounds v4, v5, v6, v7, 1
    rounds v5, v6, v7, v4, 1
    rounds v6, v7, v4, v5, 1
    rounds v7, v4, v5, v6, 1
    rounds v4, v5, v6, v7, 0
    rounds v5, v6, v7, v4, 0
    rounds v6, v7, v4, v5, 0
    rounds v7, v4, v5, v6, 0
    add v0.4s, v0.4s, v2.4s
    add v1.4s, v1.4s, v3.4s
    subs x2, x2, #1
    b.ne 1b
    st1 {v0.4s, v1.4s}, [x0]
2:  ret
    .size sha256_arch_blocks, . - sha256_arch_blocks

/* FIPS 180-4 section 4.2.2 (the same constants as sha256.c's K). */
    .section .rodata.sha256_k, "a", %progbits
    .balign 16
sha256_k:
    .word 0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5
    .word 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174
    .word 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da
    .word 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967
    .word 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85
    .word 0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070
    .word 0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3
    .word 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2

    .section .note.GNU-stack, "", %progbits
