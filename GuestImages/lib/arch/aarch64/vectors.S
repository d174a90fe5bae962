/*
 * The exception vector table of pvmfw and of every AArch64 guest image, and pvm_cpu_init, which
 * installs it. Nothing is expected to trap (interrupts stay masked, no instruction is meant to
 * fault), so every one of the 16 vectors (Arm ARM, "Exception vectors": 4 sources x
 * synchronous, IRQ, FIQ, SError, 128 bytes each, the table 2 KiB-aligned) passes its index to
 * pvm_exception (exception.c), which prints ESR_EL1, ELR_EL1 and FAR_EL1 and resets. The
 * handler runs on its own stack, as SP may be what failed.
 */

    .section .text.vectors, "ax", %progbits
    .balign 2048
    .globl pvm_vectors
pvm_vectors:
    .irp index, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15
    .balign 128
    mov x0, #\index
    b pvm_exception_entry
    .endr
    .size pvm_vectors, . - pvm_vectors

pvm_exception_entry:
    adrp x1, pvm_exception_stack_top
    add x1, x1, :lo12:pvm_exception_stack_top
    mov sp, x1
    mov x29, #0
    bl pvm_exception
1:  b 1b
    .size pvm_exception_entry, . - pvm_exception_entry

/*
 * void pvm_cpu_init(void): this CPU's EL1 setup before any C code runs: FP/SIMD on (CPACR_EL1
 * FPEN = 0b11, Arm ARM "CPACR_EL1": without it every FP/SIMD instruction traps, and clang uses
 * SIMD registers for copies) and VBAR_EL1 = pvm_vectors. Uses only x9: x0..x8 survive.
 */
    .section .text.pvm_cpu_init, "ax", %progbits
    .globl pvm_cpu_init
    .type pvm_cpu_init, %function
pvm_cpu_init:
    mov x9, #(3 << 20)
    msr cpacr_el1, x9
    isb
    adrp x9, pvm_vectors
    add x9, x9, :lo12:pvm_vectors
    msr vbar_el1, x9
    isb
    ret
    .size pvm_cpu_init, . - pvm_cpu_init

    .section .bss.pvm_exception_stack, "aw", %nobits
    .balign 16
pvm_exception_stack:
    .skip 4096
pvm_exception_stack_top:

    .section .note.GNU-stack, "", %progbits
