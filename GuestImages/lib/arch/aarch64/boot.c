/*
 * AArch64 images: from the FDT to main. start.S calls pvm_boot(fdt) with the MMU on; it builds
 * the boot configuration from the FDT (boot_config.c) as pvmfw did, so main gets the same
 * struct pvm_boot_config as on x86-64.
 */
#include "payload.h"

/* Where start.S's Normal identity map ends. */
extern u64 pvm_identity_map_end;

__attribute__((noreturn)) void pvm_boot(u64 fdt);

void pvm_boot(u64 fdt)
{
    static struct pvm_boot_config config;
    /* pvmfw checked this FDT before it started us: a refusal here means it changed, and there
     * is no console to say so. */
    if (pvm_boot_config_from_fdt(fdt, PVM_A64_FDT_MAX_SIZE, &config) != NULL)
        psci_system_reset();
    if (config.ram_size > pvm_identity_map_end ||
        config.ram_base > pvm_identity_map_end - config.ram_size) {
        console_init(0, config.console_mmio_gpa);
        console_puts("pvm: RAM ends past the identity map (the FDT is not at the end of RAM)\n");
        psci_system_reset();
    }
    main(&config);
    cpu_stop();
}
