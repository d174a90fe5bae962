/*
 * A stand-in for pKVM at EL2 under qemu-system-aarch64 (-M virt,virtualization=on), so
 * `pvm bench interp` can run the very firmware and bench image pvm runs, with both stages of
 * translation on, and compare speeds. Not a hypervisor: it identity-maps the first 4 GiB of
 * IPA space at stage 2, answers the bench guest's hypercalls (stub.c) and forwards PSCI to
 * QEMU. Parameters at STUB_PARAMS (written by the bench with QEMU's loader device):
 * the FDT address, the payload's address and size, as pKVM hands them to pvmfw.
 */
    .equ STUB_PARAMS, 0x40200000
    .equ FIRMWARE, 0x7fc00000

    .section .text.entry, "ax", %progbits
    .globl _start
_start:
    ldr x9, =stack_top
    mov sp, x9
    bl el2_setup
    mov x9, #0x3c5                 /* EL1h, DAIF masked */
    msr spsr_el2, x9
    ldr x9, =FIRMWARE
    msr elr_el2, x9
    ldr x9, =STUB_PARAMS
    ldp x0, x1, [x9]
    ldr x2, [x9, #16]
    mov x3, #0
    isb
    eret

/* A secondary started by QEMU's PSCI at EL2 with x0 = its index: to EL1 at the guest's entry. */
    .globl secondary_el2
secondary_el2:
    ldr x9, =stack_top
    lsl x10, x0, #12
    sub x9, x9, x10
    mov sp, x9
    mov x19, x0
    bl el2_setup
    ldr x9, =cpu_on_table
    add x9, x9, x19, lsl #4
    ldr x10, [x9]
    ldr x0, [x9, #8]
    msr elr_el2, x10
    mov x9, #0x3c5
    msr spsr_el2, x9
    mov x1, #0
    mov x2, #0
    mov x3, #0
    isb
    eret

el2_setup:
    mov x20, x30
    bl stage2_tables               /* fills s2_l1 (idempotent) */
    adr x9, el2_vectors
    msr vbar_el2, x9
    ldr x9, =s2_l1
    msr vttbr_el2, x9              /* VMID 0 */
    /* VTCR_EL2: T0SZ 24 (40-bit IPA), SL0 1 (start at level 1, two concatenated tables),
     * IRGN0 = ORGN0 = 1, SH0 = 3, TG0 = 4K, PS = 40-bit. */
    ldr x9, =(24 | 1 << 6 | 1 << 8 | 1 << 10 | 3 << 12 | 2 << 16 | 1 << 31)
    msr vtcr_el2, x9
    ldr x9, =(1 << 31 | 1)         /* HCR_EL2: RW (EL1 is AArch64), VM (stage 2 on) */
    msr hcr_el2, x9
    mov x9, #0x33ff                /* CPTR_EL2: RES1 bits, TFP = 0 */
    msr cptr_el2, x9
    mov x9, #3
    msr cnthctl_el2, x9
    msr cntvoff_el2, xzr
    ldr x9, =0x00C50078            /* SCTLR_EL1 as pKVM gives pvmfw: MMU and caches off */
    msr sctlr_el1, x9
    msr cpacr_el1, xzr
    msr vbar_el1, xzr
    tlbi alle1
    dsb sy
    isb
    mov x30, x20
    ret
    .ltorg

    .balign 2048
el2_vectors:
    .irp i, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15
    .balign 128
    sub sp, sp, #256
    stp x0, x1, [sp, #0]
    mov x0, #\i
    b common
    .endr
common:
    stp x2, x3, [sp, #16]
    stp x4, x5, [sp, #32]
    stp x6, x7, [sp, #48]
    stp x8, x9, [sp, #64]
    stp x10, x11, [sp, #80]
    stp x12, x13, [sp, #96]
    stp x14, x15, [sp, #112]
    stp x16, x17, [sp, #128]
    stp x18, x30, [sp, #144]
    mov x1, x0
    mov x0, sp
    bl stub_trap                   /* stub_trap(frame, vector) */
    ldp x2, x3, [sp, #16]
    ldp x4, x5, [sp, #32]
    ldp x6, x7, [sp, #48]
    ldp x8, x9, [sp, #64]
    ldp x10, x11, [sp, #80]
    ldp x12, x13, [sp, #96]
    ldp x14, x15, [sp, #112]
    ldp x16, x17, [sp, #128]
    ldp x18, x30, [sp, #144]
    ldp x0, x1, [sp, #0]
    add sp, sp, #256
    eret

    .section .bss
    .balign 8192
    .globl s2_l1
s2_l1:
    .skip 8192
    .balign 16
    .skip 65536
stack_top:
