/*
 * pvmfw entry on x86-64: vCPU 0 arrives here in 64-bit long mode (docs/abi.md, "CPU state at
 * entry") with rdi = boot configuration GPA and rsp = 0x90000.
 */
#include "pvm_abi.h"

    .section .text.entry, "ax", @progbits
    .globl _start
    .type _start, @function
_start:
    cld
    movq $PVM_FIRMWARE_STACK_TOP, %rsp
    xorl %ebp, %ebp
    /* fw_main(config = rdi, handoff = rdi): the payload gets the same configuration page */
    movq %rdi, %rsi
    call fw_main
1:  ud2
    jmp 1b
    .size _start, . - _start

/*
 * void enter_payload(u64 entry, u64 config) __attribute__((noreturn));
 * Jumps to the payload entry with rdi = config. rsp stays on the firmware stack (the payload
 * sets its own).
 */
    .section .text.enter_payload, "ax", @progbits
    .globl enter_payload
    .type enter_payload, @function
enter_payload:
    movq %rdi, %rax
    movq %rsi, %rdi
    xorl %esi, %esi
    xorl %edx, %edx
    xorl %ecx, %ecx
    xorl %ebx, %ebx
    xorl %ebp, %ebp
    xorl %r8d, %r8d
    xorl %r9d, %r9d
    xorl %r10d, %r10d
    xorl %r11d, %r11d
    xorl %r12d, %r12d
    xorl %r13d, %r13d
    xorl %r14d, %r14d
    xorl %r15d, %r15d
    jmp *%rax
    .size enter_payload, . - enter_payload

    .section .note.GNU-stack, "", @progbits
