/* x86-64 part of pvmfw (docs/abi.md, "Guest-physical layout" and "Firmware flow"). */
#ifndef PVMFW_ARCH_H
#define PVMFW_ARCH_H

#include "pvm_guest.h"
#include "elf64.h"

/* The payload staging area and the lowest load window start pvmfw accepts. */
#define FW_STAGING_START        PVM_PAYLOAD_STAGING_GPA
#define FW_STAGING_END          PVM_PAYLOAD_STAGING_END
#define FW_STAGING_TEXT         "0x100000..0x1000000"
#define FW_LOAD_WINDOW_START    PVM_LOAD_WINDOW_START

/* Payloads must be ELF64 for this machine. */
#define FW_ELF_MACHINE          EM_X86_64
#define FW_ELF_MACHINE_TEXT     "not an x86-64 ELF (e_machine)"

/*
 * The layout part of the boot configuration check (step 1): RAM at 0, the console buffer one
 * page of RAM below the firmware (not one of the VMM's pages), the console device one page
 * outside RAM and below 4 GiB (identity-mapped).
 */
static inline bool fw_arch_layout_ok(const struct pvm_boot_config *c)
{
    if (c->ram_base != PVM_RAM_BASE || c->ram_size < PVM_MIN_RAM || c->ram_size > PVM_MAX_RAM)
        return false;
    if ((c->console_page_gpa & (PVM_PAGE_SIZE - 1)) != 0 ||
        c->console_page_gpa < PVM_CONSOLE_PAGE_GPA ||
        c->console_page_gpa + PVM_PAGE_SIZE > PVM_FIRMWARE_BASE)
        return false;
    if ((c->console_mmio_gpa & (PVM_PAGE_SIZE - 1)) != 0 || c->console_mmio_gpa < c->ram_size ||
        c->console_mmio_gpa > (4ULL << 30) - PVM_PAGE_SIZE)
        return false;
    return true;
}

#endif /* PVMFW_ARCH_H */
