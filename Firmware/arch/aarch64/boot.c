/*
 * pvmfw on AArch64: from entry.S's registers to the common flow. The boot configuration comes
 * from the FDT (GuestImages/lib/arch/aarch64/boot_config.c, which checks the whole blob), and
 * its /config kernel-address and kernel-size must be what the VMM put in x1 and x2. Anything
 * wrong resets silently: there is no console before the configuration names it.
 */
#include "pvmfw.h"

__attribute__((noreturn)) void fw_entry(u64 fdt, u64 payload, u64 size);

void fw_entry(u64 fdt, u64 payload, u64 size)
{
    static struct pvm_boot_config config;
    if (pvm_boot_config_from_fdt(fdt, PVM_A64_FDT_MAX_SIZE, &config) != NULL)
        psci_system_reset();
    if (config.payload_gpa != payload || config.payload_size != size)
        psci_system_reset();
    fw_main(&config, fdt);
}
