/*
 * Small freestanding support library shared by the firmware (Firmware/) and the guest images
 * (GuestImages/): the hypercall conduit, PSCI helpers, the MMIO console and mem* routines.
 * ABI: docs/abi.md.
 */
#ifndef PVM_GUEST_H
#define PVM_GUEST_H

#include "pvm_abi.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef uint8_t u8;
typedef uint16_t u16;
typedef uint32_t u32;
typedef uint64_t u64;
typedef int64_t s64;

struct smccc_res {
    u64 a0, a1, a2, a3;
};

/* One hypercall: `out %eax, $0xf1` with x0..x3 in rax, rbx, rcx, rdx (in and out). */
static inline struct smccc_res smccc_call(u32 fid, u64 a1, u64 a2, u64 a3)
{
    u64 r0 = fid;
    __asm__ volatile("outl %%eax, $0xf1"
                     : "+a"(r0), "+b"(a1), "+c"(a2), "+d"(a3)
                     :
                     : "memory");
    return (struct smccc_res){ r0, a1, a2, a3 };
}

/* x0 of a call, as a signed SMCCC result. */
static inline s64 smccc_call0(u32 fid, u64 a1, u64 a2, u64 a3)
{
    return (s64)smccc_call(fid, a1, a2, a3).a0;
}

static inline void cpu_relax(void)
{
    __asm__ volatile("pause" ::: "memory");
}

static inline u64 rdtsc(void)
{
    u32 lo, hi;
    __asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
    return ((u64)hi << 32) | lo;
}

static inline void mmio_write32(u64 gpa, u32 value)
{
    __asm__ volatile("movl %1, (%0)" : : "r"(gpa), "r"(value) : "memory");
}

static inline void mmio_write64(u64 gpa, u64 value)
{
    __asm__ volatile("movq %1, (%0)" : : "r"(gpa), "r"(value) : "memory");
}

static inline u64 mmio_read64(u64 gpa)
{
    u64 value;
    __asm__ volatile("movq (%1), %0" : "=r"(value) : "r"(gpa) : "memory");
    return value;
}

/* ---- PSCI --------------------------------------------------------------------------------- */
__attribute__((noreturn)) void psci_system_off(void);
__attribute__((noreturn)) void psci_system_reset(void);
__attribute__((noreturn)) void psci_cpu_off(void);
/* Targets are MPIDR values (PVM_VCPU_MPIDR(index)), as PSCI names CPUs. */
s64 psci_cpu_on(u64 target_mpidr, u64 entry, u64 context);
s64 psci_affinity_info(u64 target_mpidr);  /* affinity level 0 */

/* ---- pKVM memory calls ----------------------------------------------------------------------- */
static inline s64 pvm_mem_share(u64 ipa) { return smccc_call0(KVM_MEM_SHARE_FID, ipa, 0, 0); }
static inline s64 pvm_mem_unshare(u64 ipa) { return smccc_call0(KVM_MEM_UNSHARE_FID, ipa, 0, 0); }
static inline s64 pvm_mem_relinquish(u64 ipa) { return smccc_call0(KVM_MEM_RELINQUISH_FID, ipa, 0, 0); }

/* ---- Console -------------------------------------------------------------------------------- */
/*
 * Bytes collect in the console buffer page and are flushed (one MMIO write of the length to
 * console_mmio_gpa + FLUSH) at each newline, when the page is full, or on console_flush().
 */
void console_init(u64 buffer_gpa, u64 mmio_gpa);
void console_putc(char c);
void console_puts(const char *s);
void console_hex(u64 value);        /* "0x" followed by lower-case hex digits, no padding */
void console_hex_bytes(const u8 *bytes, size_t n); /* two lower-case hex digits per byte */
void console_dec(u64 value);
void console_sdec(s64 value);
void console_flush(void);

/* ---- mem* (clang may emit calls to memset/memcpy) -------------------------------------------- */
void *memset(void *dst, int c, size_t n);
void *memcpy(void *restrict dst, const void *restrict src, size_t n);
void *memmove(void *dst, const void *src, size_t n);
int memcmp(const void *a, const void *b, size_t n);

#endif /* PVM_GUEST_H */
