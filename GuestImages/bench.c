/*
 * bench: hypercall round trips for `pvm bench`. payload_argument bits 0..47 = N, bits 48..55 =
 * mode. The timed region is bracketed by two PSCI_VERSION calls (markers); nothing is printed
 * between them.
 *   mode 0: N x SMCCC_VERSION
 *   mode 1: N x (MEM_SHARE page; MEM_UNSHARE page)
 */
#include "payload.h"

static inline void marker(void)
{
    smccc_call(PSCI_VERSION_FID, 0, 0, 0);
}

int main(const struct pvm_boot_config *config)
{
    payload_console_init(config);

    u64 arg = config->payload_argument;
    u64 n = arg & PVM_BENCH_ITERATIONS_MASK;
    u64 mode = (arg >> PVM_BENCH_MODE_SHIFT) & PVM_BENCH_MODE_MASK;

    console_puts("bench: mode ");
    console_dec(mode);
    console_puts(", ");
    console_dec(n);
    console_puts(" iterations\n");

    if (mode == PVM_BENCH_MODE_VERSION) {
        marker();
        for (u64 i = 0; i < n; i++)
            smccc_call(SMCCC_VERSION_FID, 0, 0, 0);
        marker();
    } else if (mode == PVM_BENCH_MODE_SHARE) {
        u64 page = scratch_page(config, 0);
        if (page == 0) {
            console_puts("bench: no scratch page in the load window\n");
            psci_system_reset();
        }
        *(volatile u64 *)(uintptr_t)page = 0; /* touch it: the loop measures share/unshare only */

        u64 i;
        s64 share = 0, unshare = 0;
        marker();
        for (i = 0; i < n; i++) {
            share = pvm_mem_share(page);
            if (share != SMCCC_RET_SUCCESS)
                break;
            unshare = pvm_mem_unshare(page);
            if (unshare != SMCCC_RET_SUCCESS)
                break;
        }
        if (i != n) {
            console_puts(share != SMCCC_RET_SUCCESS ? "bench: MEM_SHARE" : "bench: MEM_UNSHARE");
            console_puts(" failed at iteration ");
            console_dec(i);
            console_puts(" with ");
            console_sdec(share != SMCCC_RET_SUCCESS ? share : unshare);
            console_putc('\n');
            psci_system_reset();
        }
        marker();
    } else {
        console_puts("bench: unknown mode ");
        console_dec(mode);
        console_putc('\n');
        psci_system_reset();
    }

    console_puts("bench: done\n");
    psci_system_off();
}
