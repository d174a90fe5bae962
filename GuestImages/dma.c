/*
 * dma: the SMMU end to end (docs/iommu.md), one line per check, then a summary and SYSTEM_OFF
 * (SYSTEM_RESET when a check failed).
 *
 * 1. The DMA engine assigned to this guest fills and copies the guest's private pages by IPA,
 *    and faults on an IPA the guest has not got.
 * 2. The block device reads a sector range into a shared bounce buffer through the host's
 *    SMMU domain.
 * 3. The guest unshares the bounce buffer while a slow transfer is in flight. With the mirror
 *    design the unshare succeeds and the device stops at its next chunk: nothing lands past
 *    the point where it stopped. With the refcount design the unshare is refused until the
 *    host has unmapped the buffer after the transfer.
 */
#include "payload.h"

/* Give up polling a device after this long (in counter ticks: counter_frequency()). */
#define POLL_TIMEOUT_SECONDS 8
#define POLL_TIMEOUT_TICKS (POLL_TIMEOUT_SECONDS * counter_frequency())

static struct checks checks = { "dma", 0, 0 };

static void check(const char *name, u64 got, u64 expected) { checks_record(&checks, name, got, expected); }

static void blk_write(u64 reg, u64 value) { mmio_write64(PVM_ARCH_BLOCK_MMIO_GPA + reg, value); }
static u64 blk_read(u64 reg) { return mmio_read64(PVM_ARCH_BLOCK_MMIO_GPA + reg); }
static void dma_write_reg(u64 reg, u64 value) { mmio_write64(PVM_ARCH_DMA_MMIO_GPA + reg, value); }
static u64 dma_read_reg(u64 reg) { return mmio_read64(PVM_ARCH_DMA_MMIO_GPA + reg); }

/* Waits until the block device is no longer busy; returns its status. */
static u64 blk_wait(void)
{
    u64 start = counter_read();
    u64 status;
    while ((status = blk_read(PVM_BLOCK_REG_STATUS)) == PVM_BLOCK_STATUS_BUSY) {
        if (counter_read() - start > POLL_TIMEOUT_TICKS)
            break;
        cpu_relax();
    }
    return status;
}

static void blk_submit(u64 sector, u64 buffer, u64 length, u64 delay_us)
{
    blk_write(PVM_BLOCK_REG_SECTOR, sector);
    blk_write(PVM_BLOCK_REG_ADDR, buffer);
    blk_write(PVM_BLOCK_REG_LEN, length);
    blk_write(PVM_BLOCK_REG_CHUNK, 512);
    blk_write(PVM_BLOCK_REG_DELAY, delay_us);
    blk_write(PVM_BLOCK_REG_CMD, 1);
}

/* Bytes of [from, to) of `buffer` that differ from the disk read at `sector`. */
static u64 disk_mismatches(const volatile u8 *buffer, u64 sector, u64 from, u64 to)
{
    u64 bad = 0;
    for (u64 i = from; i < to; i++)
        if (buffer[i] != PVM_BLOCK_BYTE(sector * 512 + i))
            bad++;
    return bad;
}

static u64 count_not(const volatile u8 *buffer, u8 value, u64 from, u64 to)
{
    u64 n = 0;
    for (u64 i = from; i < to; i++)
        if (buffer[i] != value)
            n++;
    return n;
}

static void assigned_engine(const struct pvm_boot_config *config)
{
    u64 a = scratch_page(config, 1), b = scratch_page(config, 2), untouched = scratch_page(config, 5);
    volatile u8 *pa = (volatile u8 *)(uintptr_t)a, *pb = (volatile u8 *)(uintptr_t)b;
    pa[0] = 0x11;  /* first touches: the pages become the guest's */
    pb[0] = 0x22;

    dma_write_reg(PVM_DMA_REG_DST, a);
    dma_write_reg(PVM_DMA_REG_LEN, PVM_PAGE_SIZE);
    dma_write_reg(PVM_DMA_REG_FILL, 0x5C);
    dma_write_reg(PVM_DMA_REG_CMD, 2);
    check("assigned engine fills a private page", dma_read_reg(PVM_DMA_REG_STATUS), 0);
    check("fill wrote every byte", count_not(pa, 0x5C, 0, PVM_PAGE_SIZE), 0);

    dma_write_reg(PVM_DMA_REG_SRC, a);
    dma_write_reg(PVM_DMA_REG_DST, b);
    dma_write_reg(PVM_DMA_REG_CMD, 1);
    check("assigned engine copies between private pages", dma_read_reg(PVM_DMA_REG_DONE), PVM_PAGE_SIZE);
    check("copy landed", count_not(pb, 0x5C, 0, PVM_PAGE_SIZE), 0);

    dma_write_reg(PVM_DMA_REG_DST, untouched);
    dma_write_reg(PVM_DMA_REG_CMD, 2);
    check("fill of an IPA the guest has not got faults", dma_read_reg(PVM_DMA_REG_STATUS), 3);
    check("and writes nothing", dma_read_reg(PVM_DMA_REG_DONE), 0);
}

static void block_read(u64 bounce)
{
    volatile u8 *buf = (volatile u8 *)(uintptr_t)bounce;
    blk_submit(3, bounce, PVM_PAGE_SIZE, 0);
    check("block read completes", blk_wait(), PVM_BLOCK_STATUS_DONE);
    check("block read length", blk_read(PVM_BLOCK_REG_DONE), PVM_PAGE_SIZE);
    check("block data matches the disk", disk_mismatches(buf, 3, 0, PVM_PAGE_SIZE), 0);
}

static void unshare_race(u64 bounce)
{
    volatile u8 *buf = (volatile u8 *)(uintptr_t)bounce;
    for (u64 i = 0; i < PVM_PAGE_SIZE; i++)
        buf[i] = 0xEE;
    blk_submit(8, bounce, PVM_PAGE_SIZE, 3000);   /* 8 chunks, 3 ms apart */
    u64 start = counter_read();
    while (blk_read(PVM_BLOCK_REG_DONE) < 512 && counter_read() - start < POLL_TIMEOUT_TICKS)
        cpu_relax();

    s64 ret = pvm_mem_unshare(bounce);
    u64 done_at_unshare = blk_read(PVM_BLOCK_REG_DONE);
    u64 status = blk_wait();
    u64 done = blk_read(PVM_BLOCK_REG_DONE);
    console_puts("dma: MEM_UNSHARE during the transfer returned ");
    console_sdec(ret);
    console_puts(" with ");
    console_dec(done_at_unshare);
    console_puts(" bytes landed; the device stopped at ");
    console_dec(done);
    console_putc('\n');

    if (ret == SMCCC_RET_SUCCESS) {
        console_puts("dma: design: mirror (no pin, the unshare wins)\n");
        check("the SMMU stopped the transfer", status, PVM_BLOCK_STATUS_ERROR);
        check("the transfer stopped early", done < PVM_PAGE_SIZE, 1);
        check("at most one chunk was in flight at the unshare", done - done_at_unshare <= 512, 1);
        check("bytes before the stop are the disk's", disk_mismatches(buf, 8, 0, done), 0);
        check("no byte landed past the stop", count_not(buf, 0xEE, done, PVM_PAGE_SIZE), 0);
    } else {
        console_puts("dma: design: refcount (the DMA mapping blocks the unshare)\n");
        check("MEM_UNSHARE refused while DMA-mapped", (u64)ret, (u64)SMCCC_RET_INVALID_PARAMETER);
        check("the transfer completed", status, PVM_BLOCK_STATUS_DONE);
        check("every byte landed", disk_mismatches(buf, 8, 0, PVM_PAGE_SIZE), 0);
        check("MEM_UNSHARE after the host unmapped", (u64)pvm_mem_unshare(bounce), SMCCC_RET_SUCCESS);
    }
}

int main(const struct pvm_boot_config *config)
{
    payload_console_init(config);
    /* Under a pKVM with the MMIO guard (Android's), map the devices' pages first. */
    if (is_protected(config) && (smccc_call(KVM_FEATURES_FID, 0, 0, 0).a0 & KVM_FEATURE_MMIO_GUARD_MAP)) {
        check("MMIO_GUARD_MAP of the block device", (u64)smccc_call0(KVM_MMIO_GUARD_MAP_FID, PVM_ARCH_BLOCK_MMIO_GPA, 0, 0),
              SMCCC_RET_SUCCESS);
        check("MMIO_GUARD_MAP of the DMA engine", (u64)smccc_call0(KVM_MMIO_GUARD_MAP_FID, PVM_ARCH_DMA_MMIO_GPA, 0, 0),
              SMCCC_RET_SUCCESS);
    }

    assigned_engine(config);

    u64 bounce = scratch_page(config, 0);
    ((volatile u8 *)(uintptr_t)bounce)[0] = 0;
    check("MEM_SHARE of the bounce buffer", (u64)pvm_mem_share(bounce), SMCCC_RET_SUCCESS);
    block_read(bounce);
    unshare_race(bounce);

    console_puts("dma: ");
    console_dec(checks.run);
    console_puts(" checks, ");
    console_dec(checks.failed);
    console_puts(" failed\n");
    console_flush();
    if (checks.failed)
        psci_system_reset();
    psci_system_off();
}
