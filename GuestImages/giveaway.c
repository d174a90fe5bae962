/*
 * giveaway: gives a page back with MEM_RELINQUISH and then writes to it. The VMM treats a
 * relinquished page as ballooned out, so it must stop the VM at that write with a fault report;
 * if the write goes through, the guest reports a bug and powers off.
 */
#include "payload.h"

/* MEM_RELINQUISH is Android's: this image asks to be run under the android profile. */
PVM_REQUIRES_ABI("android");

int main(const struct pvm_boot_config *config)
{
    payload_console_init(config);
    if (!(smccc_call(KVM_FEATURES_FID, 0, 0, 0).a0 & KVM_FEATURE_MEM_RELINQUISH)) {
        console_puts("giveaway: this pKVM does not offer MEM_RELINQUISH (an Android call): "
                     "run it with --pkvm-abi android\n");
        psci_system_reset();
    }

    u64 page = scratch_page(config, 0);
    if (page == 0) {
        console_puts("giveaway: FAIL no scratch page in the load window\n");
        psci_system_reset();
    }

    volatile u8 *p = (volatile u8 *)(uintptr_t)page;
    for (u64 i = 0; i < PVM_PAGE_SIZE; i++)
        p[i] = 0xAA;

    s64 ret = pvm_mem_relinquish(page);
    if (ret != SMCCC_RET_SUCCESS) {
        console_puts("giveaway: FAIL MEM_RELINQUISH of ");
        console_hex(page);
        console_puts(" got ");
        console_hex((u64)ret);
        console_puts(" expected 0x0\n");
        psci_system_reset();
    }

    console_puts("giveaway: relinquished page ");
    console_hex(page);
    console_puts(", now touching it\n");
    console_flush();

    /* A plain store to the page we no longer own. */
    *(volatile u8 *)(uintptr_t)page = 0x55;

    console_puts("giveaway: BUG: write to a relinquished page went through\n");
    psci_system_off();
}
