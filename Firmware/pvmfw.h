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

/* arch/<arch>/entry.S: jumps to the payload's entry with handoff in the first argument register. */
__attribute__((noreturn)) void enter_payload(u64 entry, u64 handoff);

#endif
