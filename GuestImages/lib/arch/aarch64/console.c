/*
 * AArch64 console: the PL011 UART at console_mmio_gpa (Arm PrimeCell UART (PL011) Technical
 * Reference Manual: UARTDR at 0x000, UARTFR at 0x018). The VMM's PL011 needs no setup, so
 * there is no baud rate or line control to program. Bytes go out as they are, no CR is added.
 * Single-threaded: only one vCPU may print at a time.
 */
#include "pvm_guest.h"

static u64 uart;
static bool uart_ready;

void console_init(u64 buffer_gpa, u64 mmio_gpa)
{
    (void)buffer_gpa;  /* no buffer page on AArch64 (console_page_gpa is 0) */
    uart = mmio_gpa;
    uart_ready = true;
}

void console_putc(char c)
{
    if (!uart_ready)
        return;
    while (mmio_read32(uart + PVM_PL011_FR) & PVM_PL011_FR_TXFF)
        cpu_relax();
    mmio_write32(uart + PVM_PL011_DR, (u8)c);
}

/* Waits until the UART has sent everything (FR.BUSY clear), e.g. before a SYSTEM_OFF. */
void console_flush(void)
{
    if (!uart_ready)
        return;
    while (mmio_read32(uart + PVM_PL011_FR) & PVM_PL011_FR_BUSY)
        cpu_relax();
}
