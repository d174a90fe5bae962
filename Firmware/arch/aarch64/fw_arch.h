/*
 * AArch64 part of pvmfw: crosvm's protected-VM layout (ABI/guest-abi.table group a64layout,
 * the AArch64 guest contract in GuestImages/README.md).
 */
#ifndef PVMFW_ARCH_H
#define PVMFW_ARCH_H

#include "pvm_guest.h"
#include "elf64.h"

/* The payload staging area and the lowest load window start pvmfw accepts. */
#define FW_STAGING_START        PVM_A64_PAYLOAD_STAGING_GPA
#define FW_STAGING_END          PVM_A64_PAYLOAD_STAGING_END
#define FW_STAGING_TEXT         "0x80100000..0x81000000"
#define FW_LOAD_WINDOW_START    PVM_A64_LOAD_WINDOW_START

/* Payloads must be ELF64 for this machine. */
#define FW_ELF_MACHINE          EM_AARCH64
#define FW_ELF_MACHINE_TEXT     "not an AArch64 ELF (e_machine)"

/*
 * The layout part of the boot configuration check (step 1): RAM at 0x80000000, no console
 * buffer page (a PL011), the UART one page in the first GiB (below the firmware and RAM; the
 * payloads map that GiB as Device memory).
 */
static inline bool fw_arch_layout_ok(const struct pvm_boot_config *c)
{
    if (c->ram_base != PVM_A64_RAM_BASE || c->ram_size < PVM_MIN_RAM || c->ram_size > PVM_MAX_RAM)
        return false;
    if (c->console_page_gpa != 0)
        return false;
    if ((c->console_mmio_gpa & (PVM_PAGE_SIZE - 1)) != 0 ||
        c->console_mmio_gpa > (1ULL << 30) - PVM_PAGE_SIZE)
        return false;
    return true;
}

#endif /* PVMFW_ARCH_H */
