/*
 * Small freestanding support library shared by the firmware (Firmware/) and the guest images
 * (GuestImages/): the hypercall conduit, PSCI helpers, the console and mem* routines.
 * ABI: docs/abi.md (x86-64) and the AArch64 guest contract (GuestImages/README.md).
 *
 * The architecture's part (hypercall instruction, counter, MMIO accessors) is pvm_arch.h, found
 * through -IGuestImages/include/arch/<arch> (x86_64 or aarch64).
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

/*
 * The architecture provides, as static inline functions:
 *   struct smccc_res smccc_call(u32 fid, u64 a1, u64 a2, u64 a3);   one hypercall
 *   void cpu_relax(void);                                           spin-wait hint
 *   u64 counter_read(void);  u64 counter_frequency(void);           a free-running counter
 *   void mmio_write32/64(u64 gpa, value);  u32 mmio_read32(u64);  u64 mmio_read64(u64);
 *   void cpu_stop(void) (noreturn);                                 trap, never return
 * and the device addresses PVM_ARCH_BLOCK_MMIO_GPA, PVM_ARCH_DMA_MMIO_GPA.
 */
#include "pvm_arch.h"

/* x0 of a call, as a signed SMCCC result. */
static inline s64 smccc_call0(u32 fid, u64 a1, u64 a2, u64 a3)
{
    return (s64)smccc_call(fid, a1, a2, a3).a0;
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
 * The device is the architecture's (lib/arch/<arch>/console.c). x86-64: bytes collect in the
 * console buffer page and are flushed (one MMIO write of the length to console_mmio_gpa +
 * FLUSH) at each newline, when the page is full, or on console_flush(). AArch64: a PL011 at
 * mmio_gpa (buffer_gpa is unused, 0); console_flush() waits until it has sent everything.
 * Before console_init, output is dropped.
 */
void console_init(u64 buffer_gpa, u64 mmio_gpa);
void console_putc(char c);
void console_flush(void);
/* Formatting over console_putc (lib/console.c). */
void console_puts(const char *s);
void console_hex(u64 value);        /* "0x" followed by lower-case hex digits, no padding */
void console_hex_bytes(const u8 *bytes, size_t n); /* two lower-case hex digits per byte */
void console_dec(u64 value);
void console_sdec(s64 value);

/* ---- mem* (clang may emit calls to memset/memcpy) -------------------------------------------- */
void *memset(void *dst, int c, size_t n);
void *memcpy(void *restrict dst, const void *restrict src, size_t n);
void *memmove(void *dst, const void *src, size_t n);
int memcmp(const void *a, const void *b, size_t n);

#endif /* PVM_GUEST_H */
