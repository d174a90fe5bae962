/*
 * x86-64 MMIO console (docs/abi.md, "Console device"): text goes into the buffer page and a
 * 32-bit write of its length to console_mmio_gpa + FLUSH prints it. Single-threaded: only one
 * vCPU may print at a time.
 */
#include "pvm_guest.h"

static volatile u8 *console_buffer;
static u64 console_mmio;
static u32 console_pos;

void console_init(u64 buffer_gpa, u64 mmio_gpa)
{
    console_buffer = (volatile u8 *)(uintptr_t)buffer_gpa;
    console_mmio = mmio_gpa;
    console_pos = 0;
}

void console_flush(void)
{
    if (console_buffer == NULL || console_pos == 0)
        return;
    mmio_write32(console_mmio + PVM_CONSOLE_REG_FLUSH, console_pos);
    console_pos = 0;
}

void console_putc(char c)
{
    if (console_buffer == NULL)
        return;
    console_buffer[console_pos++] = (u8)c;
    if (c == '\n' || console_pos == PVM_CONSOLE_BUFFER_SIZE)
        console_flush();
}
