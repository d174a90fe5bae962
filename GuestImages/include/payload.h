/* Shared declarations of the guest images (GuestImages/). */
#ifndef PVM_PAYLOAD_H
#define PVM_PAYLOAD_H

#include "pvm_guest.h"

/*
 * An ELF note (name "pvm", type 1) telling the VMM which pKVM ABI profile the image is written
 * for: "mainline" or "android". `pvm boot` runs the image under it unless --pkvm-abi says
 * otherwise (docs/abi.md, "Profiles").
 */
#define PVM_NOTE_ABI_TYPE 1
#define PVM_REQUIRES_ABI(profile)                                                             \
    __attribute__((section(".note.pvm"), aligned(4), used)) static const struct {             \
        u32 namesz, descsz, type;                                                             \
        char name[4];                                                                         \
        char desc[(sizeof(profile) + 3) & ~3];                                                \
    } pvm_abi_note = { 4, sizeof(profile), PVM_NOTE_ABI_TYPE, "pvm", profile }

/*
 * Called on the image's own 16 KiB stack (lib/arch/<arch>/start.S). x86-64: pvmfw passes the
 * boot configuration page. AArch64: start.S enables the MMU and lib/arch/aarch64/boot.c
 * builds the configuration from the FDT pvmfw passes.
 */
int main(const struct pvm_boot_config *config);

/* First page after the image (arch/<arch>/payload.ld): never touched by pvmfw. */
extern u8 __scratch_start[];

/* Scratch page `index` after the image, or 0 when it would not fit the load window. */
static inline u64 scratch_page(const struct pvm_boot_config *config, u64 index)
{
    u64 gpa = ((u64)(uintptr_t)__scratch_start + PVM_PAGE_SIZE - 1) & ~(PVM_PAGE_SIZE - 1);
    gpa += index * PVM_PAGE_SIZE;
    if (gpa + PVM_PAGE_SIZE > config->load_window_end)
        return 0;
    return gpa;
}

/*
 * A region of `bytes` of RAM past the image for block-sized workloads (convert, bench's memory
 * sweep): from the first 1 GiB boundary past the image when it fits there, else from the first
 * 2 MiB boundary past the image plus 2 MiB, always ending 4 MiB before the end of RAM (the
 * device tree and boot data live at the top). 0 when it does not fit.
 */
static inline u64 block_region(const struct pvm_boot_config *config, u64 bytes)
{
    u64 start = (u64)(uintptr_t)__scratch_start;
    u64 limit = config->ram_base + config->ram_size - (4ULL << 20);
    u64 gib = (start + (1ULL << 30) - 1) & ~((1ULL << 30) - 1);
    if (gib + bytes <= limit)
        return gib;
    u64 mib = ((start + (2ULL << 20) - 1) & ~((2ULL << 20) - 1)) + (2ULL << 20);
    return mib + bytes <= limit ? mib : 0;
}

static inline bool is_protected(const struct pvm_boot_config *config)
{
    return (config->flags & PVM_CONFIG_FLAG_PROTECTED) != 0;
}

static inline void payload_console_init(const struct pvm_boot_config *config)
{
    console_init(config->console_page_gpa, config->console_mmio_gpa);
}

/* Regression checks: each prints "<prefix>: ok <name>" or "<prefix>: FAIL <name> got .. expected ..". */
struct checks {
    const char *prefix;
    u32 run, failed;
};
void checks_record(struct checks *c, const char *name, u64 got, u64 expected);
/* "<prefix>: N/N checks passed" or "<prefix>: FAILED k of N checks". */
void checks_summary(const struct checks *c);

#endif
