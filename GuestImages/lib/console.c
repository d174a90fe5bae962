/* Console formatting over the architecture's console_putc (lib/arch/<arch>/console.c). */
#include "pvm_guest.h"

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
