/*
 * MMIO console (docs/abi.md, "Console device"): text goes into the buffer page and a 32-bit
 * write of its length to console_mmio_gpa + FLUSH prints it. Single-threaded: only one vCPU
 * may print at a time.
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

void console_puts(const char *s)
{
    while (*s)
        console_putc(*s++);
}

static const char hex_digits[] = "0123456789abcdef";

void console_hex(u64 value)
{
    char buf[16];
    int n = 0;
    do {
        buf[n++] = hex_digits[value & 0xf];
        value >>= 4;
    } while (value != 0);
    console_putc('0');
    console_putc('x');
    while (n > 0)
        console_putc(buf[--n]);
}

void console_hex_bytes(const u8 *bytes, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        console_putc(hex_digits[bytes[i] >> 4]);
        console_putc(hex_digits[bytes[i] & 0xf]);
    }
}

void console_dec(u64 value)
{
    char buf[20];
    int n = 0;
    do {
        buf[n++] = (char)('0' + value % 10);
        value /= 10;
    } while (value != 0);
    while (n > 0)
        console_putc(buf[--n]);
}

void console_sdec(s64 value)
{
    if (value < 0) {
        console_putc('-');
        console_dec(0 - (u64)value);
    } else {
        console_dec((u64)value);
    }
}
