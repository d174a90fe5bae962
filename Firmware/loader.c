/*
 * Strict ELF64 validation (docs/abi.md, "Firmware flow" step 6). Every header is copied out of
 * the staged file before use, and every sum of untrusted numbers is checked for overflow.
 */
#include "loader.h"
#include "elf64.h"
#include "fw_arch.h"

static bool add_overflows(u64 a, u64 b, u64 *sum)
{
    return __builtin_add_overflow(a, b, sum);
}

static void read_phdr(const u8 *image, const struct elf64_ehdr *eh, unsigned i, struct elf64_phdr *ph)
{
    memcpy(ph, image + eh->e_phoff + (u64)i * sizeof(*ph), sizeof(*ph));
}

const char *elf_validate(const u8 *image, u64 size, u64 window_start, u64 window_end, u64 *entry)
{
    struct elf64_ehdr eh;

    if (size < sizeof(eh))
        return "file too small for an ELF header";
    memcpy(&eh, image, sizeof(eh));

    if (eh.e_ident[EI_MAG0] != 0x7f || eh.e_ident[1] != 'E' || eh.e_ident[2] != 'L' ||
        eh.e_ident[3] != 'F')
        return "not an ELF file (bad magic)";
    if (eh.e_ident[EI_CLASS] != ELFCLASS64)
        return "not ELFCLASS64";
    if (eh.e_ident[EI_DATA] != ELFDATA2LSB)
        return "not little-endian";
    if (eh.e_ident[EI_VERSION] != EV_CURRENT || eh.e_version != EV_CURRENT)
        return "bad ELF version";
    if (eh.e_machine != FW_ELF_MACHINE)
        return FW_ELF_MACHINE_TEXT;
    if (eh.e_type != ET_EXEC)
        return "not an executable (e_type is not ET_EXEC)";
    if (eh.e_ehsize < sizeof(eh))
        return "bad e_ehsize";
    if (eh.e_phentsize != sizeof(struct elf64_phdr))
        return "bad e_phentsize";
    if (eh.e_phnum == 0)
        return "no program headers";
    if (eh.e_phnum > PVMFW_MAX_PHDRS)
        return "too many program headers";

    u64 ph_end;
    if (add_overflows(eh.e_phoff, (u64)eh.e_phnum * sizeof(struct elf64_phdr), &ph_end) ||
        ph_end > size)
        return "program headers outside the file";

    if (window_start >= window_end)
        return "empty load window";

    unsigned loads = 0;
    bool entry_ok = false;
    for (unsigned i = 0; i < eh.e_phnum; i++) {
        struct elf64_phdr ph;
        read_phdr(image, &eh, i, &ph);

        if (ph.p_type == PT_DYNAMIC || ph.p_type == PT_INTERP)
            return "dynamic executables are not supported (PT_DYNAMIC/PT_INTERP)";
        if (ph.p_type != PT_LOAD)
            continue;
        loads++;

        u64 file_end, mem_end;
        if (ph.p_filesz > ph.p_memsz)
            return "PT_LOAD with p_filesz > p_memsz";
        if (add_overflows(ph.p_offset, ph.p_filesz, &file_end) || file_end > size)
            return "PT_LOAD extends past the end of the file";
        if (add_overflows(ph.p_vaddr, ph.p_memsz, &mem_end))
            return "PT_LOAD address range overflows";
        if (ph.p_vaddr < window_start || mem_end > window_end)
            return "PT_LOAD outside the load window";

        /* No two PT_LOAD segments may overlap in memory. */
        for (unsigned j = 0; j < i; j++) {
            struct elf64_phdr other;
            read_phdr(image, &eh, j, &other);
            if (other.p_type != PT_LOAD || other.p_memsz == 0 || ph.p_memsz == 0)
                continue;
            if (ph.p_vaddr < other.p_vaddr + other.p_memsz && other.p_vaddr < mem_end)
                return "overlapping PT_LOAD segments";
        }

        if ((ph.p_flags & PF_X) && eh.e_entry >= ph.p_vaddr && eh.e_entry < mem_end)
            entry_ok = true;
    }

    if (loads == 0)
        return "no PT_LOAD segments";
    if (!entry_ok)
        return "entry point not inside an executable PT_LOAD segment";

    *entry = eh.e_entry;
    return NULL;
}

void elf_load(const u8 *image)
{
    struct elf64_ehdr eh;
    memcpy(&eh, image, sizeof(eh));
    for (unsigned i = 0; i < eh.e_phnum; i++) {
        struct elf64_phdr ph;
        read_phdr(image, &eh, i, &ph);
        if (ph.p_type != PT_LOAD)
            continue;
        u8 *dst = (u8 *)(uintptr_t)ph.p_vaddr;
        memcpy(dst, image + ph.p_offset, ph.p_filesz);
        memset(dst + ph.p_filesz, 0, ph.p_memsz - ph.p_filesz);
    }
}
