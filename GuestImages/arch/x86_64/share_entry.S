/*
 * Entry of the share image's secondary vCPUs on x86-64 (PSCI CPU_ON). They start with rsp = 0 and
 * rdi = context: a struct share_cpu whose first field is the top of the vCPU's stack.
 */
    .section .text.secondary_entry, "ax", @progbits
    .globl secondary_entry
    .type secondary_entry, @function
secondary_entry:
    cld
    movq (%rdi), %rsp
    xorl %ebp, %ebp
    call secondary_main
1:  ud2
    jmp 1b
    .size secondary_entry, . - secondary_entry

    .section .note.GNU-stack, "", @progbits
