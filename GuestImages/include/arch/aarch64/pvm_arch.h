/*
 * AArch64 part of pvm_guest.h (the AArch64 guest contract, GuestImages/README.md): the
 * hypercall conduit is HVC #0 (SMC Calling Convention, DEN0028), the counter is the generic
 * timer's virtual count, MMIO is single plain ldr/str. Included by pvm_guest.h only.
 */
#ifndef PVM_ARCH_H
#define PVM_ARCH_H

/* The devices of the AArch64 layout (crosvm's; ABI/guest-abi.table group a64layout). */
#define PVM_ARCH_BLOCK_MMIO_GPA PVM_A64_BLOCK_MMIO_GPA
#define PVM_ARCH_DMA_MMIO_GPA   PVM_A64_DMA_MMIO_GPA

/*
 * One hypercall: `hvc #0` with the function ID in w0 and arguments in x1..x3; results in
 * x0..x3. SMCCC v1.2 lets a callee return results in x4..x17 too, so they are clobbered.
 */
static inline struct smccc_res smccc_call(u32 fid, u64 a1, u64 a2, u64 a3)
{
    register u64 x0 __asm__("x0") = fid;
    register u64 x1 __asm__("x1") = a1;
    register u64 x2 __asm__("x2") = a2;
    register u64 x3 __asm__("x3") = a3;
    __asm__ volatile("hvc #0"
                     : "+r"(x0), "+r"(x1), "+r"(x2), "+r"(x3)
                     :
                     : "x4", "x5", "x6", "x7", "x8", "x9", "x10", "x11", "x12", "x13", "x14",
                       "x15", "x16", "x17", "memory");
    return (struct smccc_res){ x0, x1, x2, x3 };
}

static inline void cpu_relax(void)
{
    __asm__ volatile("yield" ::: "memory");
}

/* CNTVCT_EL0 (Arm ARM, "The Generic Timer in AArch64 state"): reads may be taken out of order,
 * so the ISB keeps the read from happening before the instructions it is meant to follow. */
static inline u64 counter_read(void)
{
    u64 value;
    __asm__ volatile("isb\n\tmrs %0, cntvct_el0" : "=r"(value) : : "memory");
    return value;
}

/* CNTFRQ_EL0: what the VMM set (PVM_A64_COUNTER_FREQUENCY), that value if it reads 0. */
static inline u64 counter_frequency(void)
{
    u64 value;
    __asm__ volatile("mrs %0, cntfrq_el0" : "=r"(value));
    return value != 0 ? value : PVM_A64_COUNTER_FREQUENCY;
}

/*
 * Device accesses: one ldr/str with a plain base register (no writeback, no pair), so a
 * stage-2 abort has a valid instruction syndrome (Arm ARM, ESR_EL2 ISS encoding for a Data
 * Abort: ISV = 1 only for single general-register loads and stores without writeback), which the
 * host needs to emulate the access.
 */
static inline void mmio_write32(u64 gpa, u32 value)
{
    __asm__ volatile("str %w1, [%0]" : : "r"(gpa), "r"(value) : "memory");
}

static inline void mmio_write64(u64 gpa, u64 value)
{
    __asm__ volatile("str %x1, [%0]" : : "r"(gpa), "r"(value) : "memory");
}

static inline u32 mmio_read32(u64 gpa)
{
    u32 value;
    __asm__ volatile("ldr %w0, [%1]" : "=r"(value) : "r"(gpa) : "memory");
    return value;
}

static inline u64 mmio_read64(u64 gpa)
{
    u64 value;
    __asm__ volatile("ldr %x0, [%1]" : "=r"(value) : "r"(gpa) : "memory");
    return value;
}

/* Unreachable ends (after SYSTEM_OFF, CPU_OFF, a returning main): an undefined instruction,
 * which the vector table (lib/arch/aarch64/vectors.S) reports before it resets. */
static inline __attribute__((noreturn)) void cpu_stop(void)
{
    for (;;)
        __asm__ volatile("udf #0" ::: "memory");
}

/* ---- Boot configuration (lib/arch/aarch64/boot_config.c) ------------------------------------ */
struct pvm_boot_config;
/*
 * Builds *config from the FDT at fdt_gpa, of which at most `avail` bytes may be read, checking
 * the whole blob first (the host is not trusted). Returns NULL, or why the FDT was refused.
 */
const char *pvm_boot_config_from_fdt(u64 fdt_gpa, u64 avail, struct pvm_boot_config *config);

#endif /* PVM_ARCH_H */
