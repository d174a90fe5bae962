/*
 * pvmfw on x86-64 boots ELF payloads only: pvm's x86-64 machine has no Linux boot protocol
 * (the arm64 Image path is arch/aarch64/linux.c).
 */
#include "pvmfw.h"

bool fw_arch_is_linux_image(const struct pvm_boot_config *config)
{
    (void)config;
    return false;
}

const char *fw_arch_boot_linux(const struct pvm_boot_config *config, u64 handoff)
{
    (void)config;
    (void)handoff;
    return "a Linux Image needs the AArch64 machine";
}
