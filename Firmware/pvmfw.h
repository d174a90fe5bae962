/* What the architecture's entry (arch/<arch>/) and the common flow (main.c) call each other by. */
#ifndef PVMFW_H
#define PVMFW_H

#include "pvm_guest.h"

/*
 * The firmware flow (main.c), with the boot configuration (not yet checked) and `handoff`, what the
 * payload gets as its first argument: on x86-64 the configuration page itself, on AArch64 the
 * FDT the configuration was built from.
 */
__attribute__((noreturn)) void fw_main(const struct pvm_boot_config *config, u64 handoff);

/*
 * arch/<arch>/: whether the payload is a Linux kernel Image (checked before its digest, from
 * its header, only where the configuration puts it inside RAM), and booting one after its
 * digest matched: returns only with the reason it cannot (x86-64 boots no Linux Image).
 */
bool fw_arch_is_linux_image(const struct pvm_boot_config *config);
const char *fw_arch_boot_linux(const struct pvm_boot_config *config, u64 handoff);

/* arch/<arch>/entry.S: jumps to the payload's entry with handoff in the first argument register. */
__attribute__((noreturn)) void enter_payload(u64 entry, u64 handoff);

#endif
