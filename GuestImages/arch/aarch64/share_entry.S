/*
 * Entry of the share image's secondary vCPUs on AArch64 (PSCI CPU_ON: MMU off, EL1, x0 =
 * context): a struct share_cpu whose first field is the top of the vCPU's stack. The vCPU runs
 * the same per-CPU setup as _start (lib/arch/aarch64/start.S) on the same page table.
 */
    .section .text.secondary_entry, "ax", %progbits
    .globl secondary_entry
    .type secondary_entry, %function
secondary_entry:
    ldr x9, [x0]                /* share_cpu.stack_top */
    mov sp, x9
    mov x29, #0
    mov x19, x0
    bl pvm_cpu_init             /* FP/SIMD on, VBAR_EL1 */
    bl pvm_mmu_enable           /* the table vCPU 0 built */
    mov x0, x19
    bl secondary_main
1:  udf #0
    b 1b
    .size secondary_entry, . - secondary_entry

    .section .note.GNU-stack, "", %progbits
