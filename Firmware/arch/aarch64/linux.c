/*
 * pvmfw on AArch64: booting a Linux arm64 Image (Documentation/arch/arm64/booting.rst) the way
 * crosvm's pvmfw boots a protected VM's kernel: the VMM loaded the Image at the start of RAM
 * (plus text_offset) and the initramfs after it; pvmfw has checked the Image's SHA-256
 * (main.c) and here checks its header against RAM and the device tree, and the initramfs's
 * place and SHA-256 (/chosen linux,initrd-start/end, /config pvm,initrd-sha256), then enters
 * the kernel with x0 = the FDT, the MMU off. The host is not trusted: every number is checked
 * before it is used, and anything wrong rejects the payload.
 */
#include "pvmfw.h"
#include "fdt.h"
#include "sha256.h"
#include "fw_arch.h"

#define LINUX_IMAGE_MAGIC   0x644d5241U   /* "ARM\x64" at byte 56 */
#define SZ_2M               0x200000ULL

static u64 le64(const u8 *p)
{
    u64 v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

bool fw_arch_is_linux_image(const struct pvm_boot_config *c)
{
    u64 ram_end = c->ram_base + c->ram_size;
    u64 p = c->payload_gpa;
    if (p < c->ram_base || p > ram_end || c->payload_size < 64 || c->payload_size > ram_end - p)
        return false;
    const u8 *h = (const u8 *)(uintptr_t)p;
    return (u32)le64(h + 56) == LINUX_IMAGE_MAGIC;
}

/* The initramfs the FDT names, if any: inside RAM, clear of the kernel and of the FDT, with the
 * digest /config carries. NULL when it is fine (or absent). */
static const char *check_initrd(u64 fdt_gpa, u64 kernel_start, u64 kernel_end, u64 fdt_end,
                                const struct pvm_boot_config *c, u64 *initrd_size, u64 *initrd_start)
{
    struct fdt f;
    if (fdt_open(&f, (const void *)(uintptr_t)fdt_gpa, PVM_A64_FDT_MAX_SIZE) != NULL)
        return "FDT: unreadable";
    int chosen = -1, config = -1, child = -1, r;
    while ((r = fdt_next_child(&f, f.root, &child)) == 1) {
        if (fdt_node_is(&f, child, "chosen"))
            chosen = child;
        if (fdt_node_is(&f, child, "config"))
            config = child;
    }
    if (r < 0 || config < 0)
        return "FDT: no /config";
    const u8 *start_v = NULL, *end_v = NULL, *digest = NULL;
    uint32_t start_len = 0, end_len = 0, digest_len = 0;
    int has_start = chosen >= 0 ? fdt_prop(&f, chosen, "linux,initrd-start", &start_v, &start_len) : 0;
    int has_end = chosen >= 0 ? fdt_prop(&f, chosen, "linux,initrd-end", &end_v, &end_len) : 0;
    int has_digest = fdt_prop(&f, config, "pvm,initrd-sha256", &digest, &digest_len);
    *initrd_size = 0;
    *initrd_start = 0;
    if (has_start == 0 && has_end == 0 && has_digest == 0)
        return NULL;
    if (has_start != 1 || has_end != 1 || has_digest != 1 || start_len != 8 || end_len != 8 ||
        digest_len != SHA256_DIGEST_SIZE)
        return "the initramfs needs linux,initrd-start/end (u64) and pvm,initrd-sha256";
    u64 start = fdt_be64(start_v), end = fdt_be64(end_v);
    u64 ram_end = c->ram_base + c->ram_size;
    if (start >= end || start < c->ram_base || end > ram_end)
        return "the initramfs is not inside RAM";
    if (start < kernel_end && end > kernel_start)
        return "the initramfs overlaps the kernel's image_size";
    if (start < fdt_end && end > fdt_gpa)
        return "the initramfs overlaps the device tree";
    u8 computed[SHA256_DIGEST_SIZE];
    sha256((const void *)(uintptr_t)start, end - start, computed);
    if (memcmp(computed, digest, SHA256_DIGEST_SIZE) != 0)
        return "initramfs SHA-256 mismatch";
    *initrd_size = end - start;
    *initrd_start = start;
    return NULL;
}

static bool overlaps(u64 a, u64 a_end, u64 b, u64 b_end) { return a < b_end && b < a_end; }

/* Every /reserved-memory restricted-dma-pool: the guest shares these with the host for its
 * devices' DMA (kernel/dma/swiotlb.c rmem_swiotlb_device_init), so a pool the host placed over
 * the kernel, the initramfs or the FDT would hand the host pages pvmfw has just verified. Each
 * must be page-aligned, inside RAM and clear of all three (AOSP's pvmfw checks its swiotlb
 * region the same way). NULL when they are fine. */
static const char *check_dma_pools(u64 fdt_gpa, u64 fdt_end, u64 kernel_start, u64 kernel_end,
                                   u64 initrd_start, u64 initrd_end, const struct pvm_boot_config *c)
{
    struct fdt f;
    if (fdt_open(&f, (const void *)(uintptr_t)fdt_gpa, PVM_A64_FDT_MAX_SIZE) != NULL)
        return "FDT: unreadable";
    int reserved = -1, child = -1, r;
    while ((r = fdt_next_child(&f, f.root, &child)) == 1) {
        if (fdt_node_is(&f, child, "reserved-memory"))
            reserved = child;
    }
    if (r < 0)
        return "FDT: malformed";
    if (reserved < 0)
        return NULL;
    int pool = -1;
    while ((r = fdt_next_child(&f, reserved, &pool)) == 1) {
        const u8 *compatible, *reg;
        uint32_t clen, rlen;
        if (fdt_prop(&f, pool, "compatible", &compatible, &clen) != 1 ||
            !fdt_string_list_has(compatible, clen, "restricted-dma-pool"))
            continue;
        if (fdt_prop(&f, pool, "reg", &reg, &rlen) != 1 || rlen != 16)
            return "a restricted-dma-pool without one (address, size) reg";
        u64 start = fdt_be64(reg), size = fdt_be64(reg + 8), end;
        u64 ram_end = c->ram_base + c->ram_size;
        if (size == 0 || __builtin_add_overflow(start, size, &end) || (start | size) & (PVM_PAGE_SIZE - 1))
            return "a restricted-dma-pool that is empty, wraps or is not page-aligned";
        if (start < c->ram_base || end > ram_end)
            return "a restricted-dma-pool outside RAM";
        if (overlaps(start, end, kernel_start, kernel_end) || overlaps(start, end, initrd_start, initrd_end) ||
            overlaps(start, end, fdt_gpa, fdt_end))
            return "a restricted-dma-pool over the kernel, the initramfs or the device tree";
    }
    return r < 0 ? "FDT: malformed /reserved-memory" : NULL;
}

const char *fw_arch_boot_linux(const struct pvm_boot_config *c, u64 fdt_gpa)
{
    const u8 *h = (const u8 *)(uintptr_t)c->payload_gpa;
    u64 text_offset = le64(h + 8), image_size = le64(h + 16), flags = le64(h + 24);
    if (image_size == 0)
        return "Linux Image with image_size 0 (before Linux 3.17)";
    if (flags & 1)
        return "big-endian Linux Image";
    if (((flags >> 1) & 3) > 1)
        return "Linux Image for 16 or 64 KiB pages";
    if (text_offset >= SZ_2M || c->payload_gpa < text_offset || ((c->payload_gpa - text_offset) & (SZ_2M - 1)) != 0)
        return "Linux Image not at a 2 MiB-aligned base plus text_offset";
    u64 kernel_start = c->payload_gpa, kernel_end;
    if (image_size < c->payload_size || __builtin_add_overflow(kernel_start, image_size, &kernel_end))
        return "Linux Image's image_size is smaller than the image";
    /* The FDT: its header's totalsize, checked when the configuration was read. */
    struct fdt f;
    if (fdt_open(&f, (const void *)(uintptr_t)fdt_gpa, PVM_A64_FDT_MAX_SIZE) != NULL)
        return "FDT: unreadable";
    u64 fdt_end = fdt_gpa + f.size;
    if (kernel_end > fdt_gpa && kernel_start < fdt_end)
        return "the kernel's image_size overlaps the device tree";
    if (kernel_end > c->ram_base + c->ram_size)
        return "the kernel's image_size runs past the end of RAM";
    u64 initrd_size, initrd_start;
    const char *why = check_initrd(fdt_gpa, kernel_start, kernel_end, fdt_end, c, &initrd_size, &initrd_start);
    if (why != NULL)
        return why;
    why = check_dma_pools(fdt_gpa, fdt_end, kernel_start, kernel_end, initrd_start, initrd_start + initrd_size, c);
    if (why != NULL)
        return why;
    console_puts("pvmfw: Linux Image, ");
    console_dec(image_size >> 10);
    console_puts(" KiB with BSS");
    if (initrd_size != 0) {
        console_puts(", initramfs ");
        console_dec(initrd_size >> 10);
        console_puts(" KiB, SHA-256 ok");
    }
    console_putc('\n');
    console_puts("pvmfw: jumping to payload at ");
    console_hex(kernel_start);
    console_putc('\n');
    console_flush();
    enter_payload(kernel_start, fdt_gpa);
}
