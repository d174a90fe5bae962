/*
 * Entry of every AArch64 guest image. pvmfw jumps here as Linux's boot protocol says
 * (Documentation/arch/arm64/booting.rst: x0 = FDT, MMU off, EL1, interrupts masked).
 * _start: own stack, FP/SIMD and vectors (pvm_cpu_init), an identity map with the MMU on,
 * then pvm_boot(fdt) (boot.c), which builds the boot configuration and calls main.
 */
#include "pvm_abi.h"

/* MAIR_EL1 (Arm ARM, "MAIR_EL1"): Attr0 = Device-nGnRnE, Attr1 = Normal, write-back
 * read/write-allocate, inner and outer. */
#define MAIR_VALUE      0xff00

/* TCR_EL1 (Arm ARM, "TCR_EL1"): TTBR0 covers a 39-bit VA (T0SZ = 25, the walk starts at level
 * 1), 4 KiB granule, walks write-back cacheable inner shareable; TTBR1 walks disabled (EPD1;
 * T1SZ and TG1 = 4 KiB only to avoid reserved values); 40-bit PA; no top-byte ignore. */
#define TCR_T0SZ        25
#define TCR_IRGN0_WBWA  (1 << 8)
#define TCR_ORGN0_WBWA  (1 << 10)
#define TCR_SH0_INNER   (3 << 12)
#define TCR_TG0_4K      (0 << 14)
#define TCR_T1SZ        (25 << 16)
#define TCR_EPD1        (1 << 23)
#define TCR_TG1_4K      (2 << 30)
#define TCR_IPS_40BIT   (2 << 32)
#define TCR_VALUE       (TCR_T0SZ | TCR_IRGN0_WBWA | TCR_ORGN0_WBWA | TCR_SH0_INNER | TCR_TG0_4K | \
                         TCR_T1SZ | TCR_EPD1 | TCR_TG1_4K | TCR_IPS_40BIT)

/* Level-1 block descriptors, 1 GiB each (Arm ARM, "VMSAv8-64 translation table format
 * descriptors"): bits [1:0] = 0b01 block, AttrIndx [4:2], AP [7:6] = 00 (EL1 read/write),
 * SH [9:8], AF [10], PXN [53], UXN [54]. */
#define DESC_BLOCK      0x1
#define DESC_ATTR_NORMAL (1 << 2)
#define DESC_SH_INNER   (3 << 8)
#define DESC_AF         (1 << 10)
#define DESC_PXN        (1 << 53)
#define DESC_UXN        (1 << 54)
#define DESC_DEVICE     (DESC_BLOCK | DESC_AF | DESC_PXN | DESC_UXN)
#define DESC_NORMAL     (DESC_BLOCK | DESC_ATTR_NORMAL | DESC_SH_INNER | DESC_AF)

/* SCTLR_EL1 (Arm ARM, "SCTLR_EL1"): M (MMU), A (alignment check), C (data cache), I (icache). */
#define SCTLR_M         (1 << 0)
#define SCTLR_A         (1 << 1)
#define SCTLR_C         (1 << 2)
#define SCTLR_I         (1 << 12)

    .section .text.entry, "ax", %progbits
    .globl _start
    .type _start, %function
_start:
    adrp x9, __payload_stack_top
    add x9, x9, :lo12:__payload_stack_top
    mov sp, x9
    mov x29, #0
    mov x19, x0                 /* the FDT, for pvm_boot */
    bl pvm_cpu_init             /* FP/SIMD on, VBAR_EL1 (vectors.S) */
    mov x0, x19
    bl pvm_identity_map_build
    bl pvm_mmu_enable
    mov x0, x19
    bl pvm_boot
1:  udf #0
    b 1b
    .size _start, . - _start

/*
 * void pvm_identity_map_build(u64 fdt): fills pvm_l1_table. Entry 0 (0-1 GiB, the devices) is a
 * Device block, never executable. Entries 1 up to the one holding the last byte the FDT may use
 * (fdt + PVM_A64_FDT_MAX_SIZE - 1: the FDT sits in the last 2 MiB of RAM) are Normal blocks; the
 * rest are invalid. pvm_identity_map_end is where the Normal map ends: boot.c checks that RAM
 * ends below it. Runs with the MMU off: every store is an aligned 64-bit one.
 */
    .section .text.pvm_identity_map_build, "ax", %progbits
    .type pvm_identity_map_build, %function
pvm_identity_map_build:
    ldr x10, =(PVM_A64_FDT_MAX_SIZE - 1)
    adds x10, x0, x10
    b.cs 1f                     /* wraps: clamp to the last entry */
    lsr x10, x10, #30
    cmp x10, #511
    b.ls 2f
1:  mov x10, #511
2:  /* x10 = last Normal entry (0: none) */
    adrp x9, pvm_l1_table
    add x9, x9, :lo12:pvm_l1_table
    ldr x11, =DESC_DEVICE
    str x11, [x9]
    mov x12, #1
    mov x13, #DESC_NORMAL
3:  cmp x12, x10
    b.hi 4f
    orr x11, x13, x12, lsl #30
    b 5f
4:  mov x11, #0
5:  str x11, [x9, x12, lsl #3]
    add x12, x12, #1
    cmp x12, #512
    b.lo 3b
    add x10, x10, #1
    lsl x10, x10, #30
    adrp x11, pvm_identity_map_end
    str x10, [x11, :lo12:pvm_identity_map_end]
    dsb ish                     /* the table is written before any walk reads it */
    ret
    .size pvm_identity_map_build, . - pvm_identity_map_build

/*
 * void pvm_mmu_enable(void): this CPU's MMU on with pvm_l1_table (also share's secondary vCPUs,
 * share_entry.S). Uses only x9: x0..x8 survive.
 */
    .section .text.pvm_mmu_enable, "ax", %progbits
    .globl pvm_mmu_enable
    .type pvm_mmu_enable, %function
pvm_mmu_enable:
    ldr x9, =MAIR_VALUE
    msr mair_el1, x9
    ldr x9, =TCR_VALUE
    msr tcr_el1, x9
    tlbi vmalle1
    dsb ish
    adrp x9, pvm_l1_table
    add x9, x9, :lo12:pvm_l1_table
    msr ttbr0_el1, x9
    isb
    mrs x9, sctlr_el1
    orr x9, x9, #SCTLR_M
    orr x9, x9, #SCTLR_C
    orr x9, x9, #SCTLR_I
    bic x9, x9, #SCTLR_A
    msr sctlr_el1, x9
    isb
    ret
    .size pvm_mmu_enable, . - pvm_mmu_enable

    .ltorg

    .section .bss.pvm_l1_table, "aw", %nobits
    .balign 4096
    .globl pvm_l1_table
pvm_l1_table:
    .skip 4096

    .section .bss.pvm_identity_map_end, "aw", %nobits
    .balign 8
    .globl pvm_identity_map_end
pvm_identity_map_end:
    .skip 8

    .section .bss.payload_stack, "aw", %nobits
    .balign 16
__payload_stack_bottom:
    .skip 16384
__payload_stack_top:

    .section .note.GNU-stack, "", %progbits
