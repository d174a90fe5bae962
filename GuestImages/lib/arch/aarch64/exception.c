/*
 * The report of an exception nobody expects (vectors.S): which vector, ESR_EL1 (the syndrome),
 * ELR_EL1 (where) and FAR_EL1 (the faulting address, for aborts), then PSCI SYSTEM_RESET.
 * Register meanings: Arm ARM, "ESR_EL1", "ELR_EL1", "FAR_EL1"; the vector layout: Arm ARM,
 * "Exception vectors" (offsets from VBAR_EL1).
 */
#include "pvm_guest.h"

__attribute__((noreturn)) void pvm_exception(u64 vector);

static const char *const kinds[4] = { "synchronous", "IRQ", "FIQ", "SError" };
static const char *const sources[4] = { "EL1 with SP_EL0", "EL1 with SP_EL1", "AArch64 EL0",
                                        "AArch32 EL0" };

void pvm_exception(u64 vector)
{
    static bool reporting;
    u64 esr, elr, far;
    __asm__ volatile("mrs %0, esr_el1" : "=r"(esr));
    __asm__ volatile("mrs %0, elr_el1" : "=r"(elr));
    __asm__ volatile("mrs %0, far_el1" : "=r"(far));

    if (reporting) {
        /* The report itself faulted (e.g. the console): reset without it. */
        smccc_call(PSCI_SYSTEM_RESET_FID, 0, 0, 0);
        for (;;)
            __asm__ volatile("wfi" ::: "memory");
    }
    reporting = true;
    console_puts("unexpected exception: ");
    console_puts(kinds[vector & 3]);
    console_puts(" from ");
    console_puts(sources[(vector >> 2) & 3]);
    console_puts(", ESR_EL1 ");
    console_hex(esr);
    console_puts(", ELR_EL1 ");
    console_hex(elr);
    console_puts(", FAR_EL1 ");
    console_hex(far);
    console_putc('\n');
    psci_system_reset();
}
