/*
 * convert: guest-first memory workloads (docs/guest-first-memory.md), with Android's range
 * MEM_SHARE / MEM_UNSHARE (x2 = pages; a1 = pages done, fewer when EL2 stopped early). Every
 * page of a region is stamped with its own address in its first word; after each step the
 * guest checks that every stamp is still there (conversion keeps data in place).
 * payload_argument bits 48..55 = mode:
 *   mode 0 (blocks): a 4 MiB block_region: touch it, share 16 pages inside the first 2 MiB
 *     block (a split), unshare them (a merge), share and unshare the whole block (neither),
 *     share 32 pages straddling the two blocks (two splits), unshare them (two merges), then
 *     share the region's first 4 pages and leave them shared. One check line each.
 *   mode 1 (pins): 8 scratch pages shared; PSCI_VERSION (the host may pin one); unshare the
 *     first 4; PSCI_VERSION (the host may convert all 8 to private); PSCI_VERSION (the host may
 *     unpin and convert again); every stamp checked. Prints the unshare's results, checks
 *     nothing about them: a scenario compares them per host pin mode.
 */
#include "payload.h"

PVM_REQUIRES_ABI("android");

static struct checks checks = { "convert", 0, 0 };

static void check(const char *name, u64 got, u64 expected) { checks_record(&checks, name, got, expected); }

static u64 stamp(u64 page) { return page ^ 0x5A5A000000000000ULL; }

/* Stamps `pages` pages from `base`; returns how many stamps differ afterwards. */
static void fill(u64 base, u64 pages)
{
    for (u64 i = 0; i < pages; i++)
        *(volatile u64 *)(uintptr_t)(base + i * PVM_PAGE_SIZE) = stamp(base + i * PVM_PAGE_SIZE);
}

static u64 verify(u64 base, u64 pages)
{
    u64 bad = 0;
    for (u64 i = 0; i < pages; i++)
        bad += *(volatile u64 *)(uintptr_t)(base + i * PVM_PAGE_SIZE) != stamp(base + i * PVM_PAGE_SIZE);
    return bad;
}

/*
 * Range MEM_SHARE or MEM_UNSHARE of `pages` pages, repeated from where EL2 stopped (it stops
 * after 256 leaves) as Linux's range callers do. SMCCC success, or the first failure.
 */
static s64 range(u32 fid, u64 base, u64 pages)
{
    while (pages > 0) {
        struct smccc_res r = smccc_call(fid, base, pages, 0);
        if ((s64)r.a0 != SMCCC_RET_SUCCESS)
            return (s64)r.a0;
        if (r.a1 == 0 || r.a1 > pages)
            return SMCCC_RET_INVALID_PARAMETER;
        base += r.a1 * PVM_PAGE_SIZE;
        pages -= r.a1;
    }
    return SMCCC_RET_SUCCESS;
}

static void blocks(const struct pvm_boot_config *config)
{
    const u64 block = 512, region_pages = 2 * block;
    u64 base = block_region(config, region_pages * PVM_PAGE_SIZE);
    if (base == 0) {
        check("a 4 MiB block region fits in RAM", 0, 1);
        return;
    }
    console_puts("convert: region ");
    console_hex(base);
    console_putc('\n');
    fill(base, region_pages);
    u64 inside = base + 16 * PVM_PAGE_SIZE, straddle = base + (block - 16) * PVM_PAGE_SIZE;
    check("share 16 pages inside a block", (u64)range(KVM_MEM_SHARE_FID, inside, 16), SMCCC_RET_SUCCESS);
    check("stamps kept after the share", verify(base, region_pages), 0);
    check("unshare them", (u64)range(KVM_MEM_UNSHARE_FID, inside, 16), SMCCC_RET_SUCCESS);
    check("share the whole block", (u64)range(KVM_MEM_SHARE_FID, base, block), SMCCC_RET_SUCCESS);
    check("unshare the whole block", (u64)range(KVM_MEM_UNSHARE_FID, base, block), SMCCC_RET_SUCCESS);
    check("share 32 pages across two blocks", (u64)range(KVM_MEM_SHARE_FID, straddle, 32), SMCCC_RET_SUCCESS);
    check("unshare them", (u64)range(KVM_MEM_UNSHARE_FID, straddle, 32), SMCCC_RET_SUCCESS);
    check("stamps kept after every conversion", verify(base, region_pages), 0);
    check("share the first 4 pages and keep them shared", (u64)range(KVM_MEM_SHARE_FID, base, 4), SMCCC_RET_SUCCESS);
}

static void pins(const struct pvm_boot_config *config)
{
    u64 base = scratch_page(config, 0);
    if (base == 0 || scratch_page(config, 7) == 0) {
        check("8 scratch pages fit the load window", 0, 1);
        return;
    }
    fill(base, 8);
    check("share 8 pages", (u64)range(KVM_MEM_SHARE_FID, base, 8), SMCCC_RET_SUCCESS);
    smccc_call(PSCI_VERSION_FID, 0, 0, 0);
    s64 unshare = range(KVM_MEM_UNSHARE_FID, base, 4);
    console_puts("convert: unshare of pages 0-3 returned ");
    console_sdec(unshare);
    console_putc('\n');
    smccc_call(PSCI_VERSION_FID, 0, 0, 0);
    smccc_call(PSCI_VERSION_FID, 0, 0, 0);
    check("stamps kept through every conversion", verify(base, 8), 0);
}

int main(const struct pvm_boot_config *config)
{
    payload_console_init(config);
    if (!is_protected(config)) {
        console_puts("convert: a non-protected guest has no private memory to convert\n");
        psci_system_off();
    }
    u64 mode = (config->payload_argument >> PVM_BENCH_MODE_SHIFT) & PVM_BENCH_MODE_MASK;
    if (mode == PVM_CONVERT_MODE_BLOCKS)
        blocks(config);
    else if (mode == PVM_CONVERT_MODE_PINS)
        pins(config);
    else
        check("a known mode", mode, 0);
    checks_summary(&checks);
    psci_system_off();
}
