/*
 * x86-64 part of pvm_guest.h (docs/abi.md): the hypercall conduit is a port write, the
 * counter is the TSC, MMIO is plain mov. Included by pvm_guest.h only.
 */
#ifndef PVM_ARCH_H
#define PVM_ARCH_H

/* The devices of the x86-64 layout (docs/abi.md, "Guest-physical layout"). */
#define PVM_ARCH_BLOCK_MMIO_GPA PVM_BLOCK_MMIO_GPA
#define PVM_ARCH_DMA_MMIO_GPA   PVM_DMA_MMIO_GPA

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

static inline void cpu_relax(void)
{
    __asm__ volatile("pause" ::: "memory");
}

/* The TSC (rdtsc is allowed at CPL 3: the VMM leaves CR4.TSD clear). */
static inline u64 counter_read(void)
{
    u32 lo, hi;
    __asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
    return ((u64)hi << 32) | lo;
}

/*
 * The TSC's rate is the host's and a ring-3 guest cannot ask for it: 2^32 Hz (about 4.3 GHz)
 * is the nominal rate timeouts are computed with, so they only ever last longer than asked.
 */
static inline u64 counter_frequency(void)
{
    return 1ULL << 32;
}

static inline void mmio_write32(u64 gpa, u32 value)
{
    __asm__ volatile("movl %1, (%0)" : : "r"(gpa), "r"(value) : "memory");
}

static inline void mmio_write64(u64 gpa, u64 value)
{
    __asm__ volatile("movq %1, (%0)" : : "r"(gpa), "r"(value) : "memory");
}

static inline u32 mmio_read32(u64 gpa)
{
    u32 value;
    __asm__ volatile("movl (%1), %0" : "=r"(value) : "r"(gpa) : "memory");
    return value;
}

static inline u64 mmio_read64(u64 gpa)
{
    u64 value;
    __asm__ volatile("movq (%1), %0" : "=r"(value) : "r"(gpa) : "memory");
    return value;
}

/* Unreachable ends (after SYSTEM_OFF, CPU_OFF, a returning main): #UD, and with no IDT a
 * triple fault that stops the VM with a report. */
static inline __attribute__((noreturn)) void cpu_stop(void)
{
    for (;;)
        __asm__ volatile("ud2" ::: "memory");
}

#endif /* PVM_ARCH_H */
