/*
 * The EL2 stand-in's C half (stub.S): stage-2 tables and the hypercalls pvm's firmware and
 * bench image make, answered as pvm's mainline profile answers them. PSCI goes to QEMU's
 * own PSCI (SMC conduit). Anything else, or any other trap, powers the machine off.
 */
#include <stdint.h>
typedef uint64_t u64;
typedef uint32_t u32;

extern u64 s2_l1[1024];
u64 cpu_on_table[16][2];

/* Stage 2: 1 GiB blocks identity-mapping IPA 0-4 GiB; the first GiB (the devices) as Device
 * memory, the rest Normal write-back. S2AP = RW, AF = 1. */
void stage2_tables(void);
void stage2_tables(void)
{
    for (u64 i = 0; i < 4; i++) {
        u64 attr = i == 0 ? (1ull << 2) : (0xFull << 2 | 3ull << 8);
        s2_l1[i] = (i << 30) | attr | 3ull << 6 | 1ull << 10 | 1;
    }
}

static void smc(u64 *r)
{
    register u64 x0 __asm__("x0") = r[0], x1 __asm__("x1") = r[1], x2 __asm__("x2") = r[2], x3 __asm__("x3") = r[3];
    __asm__ volatile("smc #0" : "+r"(x0), "+r"(x1), "+r"(x2), "+r"(x3) : : "memory");
    r[0] = x0;
    r[1] = x1;
    r[2] = x2;
    r[3] = x3;
}

static void power_off(void)
{
    u64 r[4] = { 0x84000008, 0, 0, 0 };
    smc(r);
    for (;;) {}
}

void stub_trap(u64 *f, u64 vector);
void stub_trap(u64 *f, u64 vector)
{
    u64 esr;
    __asm__ volatile("mrs %0, esr_el2" : "=r"(esr));
    if (vector != 8 || (esr >> 26) != 0x16)  /* only HVC from EL1 (lower EL, synchronous) */
        power_off();
    u32 fid = (u32)f[0];
    switch (fid) {
    case 0x80000000: f[0] = 0x10001; return;                            /* SMCCC_VERSION 1.1 */
    case 0x8600ff01: f[0] = 0xb66fb428; f[1] = 0xe911c52e; f[2] = 0x564bcaa9; f[3] = 0x743a004d; return;
    case 0x86000000: f[0] = 0x1d; f[1] = f[2] = f[3] = 0; return;      /* FEATURES */
    case 0xc6000002: f[0] = 4096; f[1] = 0; return;                     /* HYP_MEMINFO */
    case 0xc6000003: case 0xc6000004: f[0] = 0; return;                 /* MEM_SHARE / UNSHARE */
    default: break;
    }
    if (fid == 0xc4000003 && (f[1] & ~0xfull) == 0) {  /* CPU_ON: through the EL2 trampoline */
        extern char secondary_el2[];
        u64 index = f[1] & 0xf;
        cpu_on_table[index][0] = f[2];
        cpu_on_table[index][1] = f[3];
        f[2] = (u64)secondary_el2;
        f[3] = index;
    }
    if ((fid & 0xbfffffe0) == 0x84000000) {  /* PSCI: QEMU's */
        smc(f);
        return;
    }
    f[0] = (u64)-1;
}
