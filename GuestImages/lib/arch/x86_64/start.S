/*
 * Entry of every x86-64 guest image: pvmfw jumps here with rdi = boot configuration (docs/abi.md).
 * Switch to the image's own stack and call main(config); main never returns.
 */
    .section .text.entry, "ax", @progbits
    .globl _start
    .type _start, @function
_start:
    cld
    leaq __payload_stack_top(%rip), %rsp
    xorl %ebp, %ebp
    call main
1:  ud2
    jmp 1b
    .size _start, . - _start

    .section .bss.payload_stack, "aw", @nobits
    .balign 16
__payload_stack_bottom:
    .skip 16384
__payload_stack_top:

    .section .note.GNU-stack, "", @progbits
