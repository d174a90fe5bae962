/*
 * pvmfw entry on AArch64. vCPU 0 arrives as pKVM and crosvm start pvmfw: x0 = FDT, x1 = payload
 * staging GPA, x2 = payload size, EL1h with DAIF masked, MMU and caches off (every data access
 * is Device memory, hence -mstrict-align), FP/SIMD trapped (CPACR_EL1 = 0), VBAR_EL1 = 0.
 */
#include "pvm_abi.h"

    .section .text.entry, "ax", %progbits
    .globl _start
    .type _start, %function
_start:
    mov x9, #PVM_A64_FIRMWARE_STACK_TOP    /* grows down into the 2 MiB above the image */
    mov sp, x9
    mov x29, #0
    bl pvm_cpu_init             /* FP/SIMD, VBAR_EL1 (GuestImages/lib/arch/aarch64/vectors.S) */
    bl fw_entry                 /* fw_entry(fdt, payload, size), boot.c: x0..x2 as we got them */
1:  udf #0
    b 1b
    .size _start, . - _start

/*
 * void enter_payload(u64 entry, u64 fdt) __attribute__((noreturn));
 * The payload starts as Linux's boot protocol says (Documentation/arch/arm64/booting.rst):
 * x0 = FDT, MMU still off, EL1h with DAIF masked; here x1..x30 are 0 too. pvmfw wrote the
 * payload's code with data stores, so the instruction cache is invalidated first (IC IALLU;
 * DSB ISH; ISB). The jump is an ERET to EL1h, so that no register has to hold the entry.
 * SP stays on the firmware stack (the payload sets its own), VBAR_EL1 on pvmfw's vectors until
 * the payload installs its own.
 */
    .section .text.enter_payload, "ax", %progbits
    .globl enter_payload
    .type enter_payload, %function
enter_payload:
    msr elr_el1, x0
    mov x9, #0x3c5              /* SPSR_EL1: M = EL1h, D, A, I, F masked */
    msr spsr_el1, x9
    mov x0, x1
    ic iallu
    dsb ish
    isb
    mov x1, #0
    mov x2, #0
    mov x3, #0
    mov x4, #0
    mov x5, #0
    mov x6, #0
    mov x7, #0
    mov x8, #0
    mov x9, #0
    mov x10, #0
    mov x11, #0
    mov x12, #0
    mov x13, #0
    mov x14, #0
    mov x15, #0
    mov x16, #0
    mov x17, #0
    mov x18, #0
    mov x19, #0
    mov x20, #0
    mov x21, #0
    mov x22, #0
    mov x23, #0
    mov x24, #0
    mov x25, #0
    mov x26, #0
    mov x27, #0
    mov x28, #0
    mov x29, #0
    mov x30, #0
    eret
    .size enter_payload, . - enter_payload

    .section .note.GNU-stack, "", %progbits
