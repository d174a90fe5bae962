/* Strict ELF64 payload validation and loading. */
#ifndef PVMFW_LOADER_H
#define PVMFW_LOADER_H

#include "pvm_guest.h"

/* Upper bound on program headers pvmfw accepts. */
#define PVMFW_MAX_PHDRS 64

/*
 * Checks the ELF file image[0..size) against the load window [window_start, window_end).
 * Returns NULL when the payload may be loaded, else a reason for "pvmfw: payload rejected: ".
 * On success *entry is the entry point.
 */
const char *elf_validate(const u8 *image, u64 size, u64 window_start, u64 window_end, u64 *entry);

/* Copies every PT_LOAD segment and zeroes its BSS. Only after elf_validate succeeded. */
void elf_load(const u8 *image);

#endif
