/*
 * bench: hypercall round trips for `pvm bench`. payload_argument bits 0..47 = N, bits 48..55 =
 * mode. The timed region is bracketed by two PSCI_VERSION calls (markers); nothing is printed
 * between them.
 *   mode 0: N x SMCCC_VERSION
 *   mode 1: N x (MEM_SHARE page; MEM_UNSHARE page)
 *   mode 2: N rounds of an integer loop (a xorshift and multiply-add chain: ALU and branches)
 *   mode 3: N passes of CRC32 over a 16 KiB buffer (loads and CRC32 instructions where the
 *           architecture has them)
 *   mode 4: N sorts of 512 pseudo-random words (insertion sort: compares, branches, stores)
 *   mode 5: N read-modify-write passes over PVM_BENCH_SWEEP_BYTES of block_region, one word
 *           every PVM_BENCH_SWEEP_STRIDE bytes (a new page each: bound by the TLB); one untimed
 *           pass first touches it (the stage-2 faults)
 * Compute modes print a checksum after the second marker, so the work cannot be elided.
 */
#include "payload.h"

static inline void marker(void)
{
    smccc_call(PSCI_VERSION_FID, 0, 0, 0);
}

static u64 integer_loop(u64 rounds)
{
    u64 x = 0x9E3779B97F4A7C15ull, acc = 0;
    for (u64 i = 0; i < rounds; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        acc = acc * 31 + (x >> 3);
        if (acc & 1)
            acc ^= i;
    }
    return acc;
}

#define CRC_BYTES 16384
static u64 crc_buffer[CRC_BYTES / 8];

static u32 crc32_step(u32 crc, u64 data)
{
#if defined(__aarch64__) && defined(__ARM_FEATURE_CRC32)
    return __builtin_arm_crc32d(crc, data);
#else
    for (int i = 0; i < 64; i++) {
        u32 bit = (crc ^ (u32)(data >> i)) & 1;
        crc = (crc >> 1) ^ (bit ? 0xEDB88320u : 0);
    }
    return crc;
#endif
}

static u64 crc_loop(u64 passes)
{
    for (u64 i = 0; i < CRC_BYTES / 8; i++)
        crc_buffer[i] = i * 0x9E3779B97F4A7C15ull;
    u32 crc = 0xFFFFFFFF;
    for (u64 p = 0; p < passes; p++)
        for (u64 i = 0; i < CRC_BYTES / 8; i++)
            crc = crc32_step(crc, crc_buffer[i]);
    return crc;
}

#define SORT_WORDS 512
static u32 sort_buffer[SORT_WORDS];

static u64 sort_loop(u64 rounds)
{
    u64 seed = 12345, sum = 0;
    for (u64 r = 0; r < rounds; r++) {
        for (int i = 0; i < SORT_WORDS; i++) {
            seed = seed * 6364136223846793005ull + 1442695040888963407ull;
            sort_buffer[i] = (u32)(seed >> 33);
        }
        for (int i = 1; i < SORT_WORDS; i++) {
            u32 v = sort_buffer[i];
            int j = i - 1;
            while (j >= 0 && sort_buffer[j] > v) {
                sort_buffer[j + 1] = sort_buffer[j];
                j--;
            }
            sort_buffer[j + 1] = v;
        }
        sum += sort_buffer[SORT_WORDS / 2];
    }
    return sum;
}

/* One pass: one word every PVM_BENCH_SWEEP_STRIDE bytes incremented; returns the sum read. */
static u64 sweep(u64 base, u64 bytes)
{
    u64 sum = 0;
    for (u64 a = base; a < base + bytes; a += PVM_BENCH_SWEEP_STRIDE) {
        volatile u64 *p = (volatile u64 *)(uintptr_t)a;
        u64 v = *p + 1;
        *p = v;
        sum += v;
    }
    return sum;
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
    } else if (mode == PVM_BENCH_MODE_MEMORY) {
        u64 base = block_region(config, PVM_BENCH_SWEEP_BYTES);
        if (base == 0) {
            console_puts("bench: the memory sweep needs more RAM (--memory 512M)\n");
            psci_system_reset();
        }
        u64 result = sweep(base, PVM_BENCH_SWEEP_BYTES);
        marker();
        for (u64 i = 0; i < n; i++)
            result += sweep(base, PVM_BENCH_SWEEP_BYTES);
        marker();
        console_puts("bench: checksum ");
        console_hex(result);
        console_putc('\n');
    } else if (mode == PVM_BENCH_MODE_INTEGER || mode == PVM_BENCH_MODE_CRC32 || mode == PVM_BENCH_MODE_SORT) {
        marker();
        u64 result = mode == PVM_BENCH_MODE_INTEGER ? integer_loop(n) : mode == PVM_BENCH_MODE_CRC32 ? crc_loop(n) : sort_loop(n);
        marker();
        console_puts("bench: checksum ");
        console_hex(result);
        console_putc('\n');
    } else {
        console_puts("bench: unknown mode ");
        console_dec(mode);
        console_putc('\n');
        psci_system_reset();
    }

    console_puts("bench: done\n");
    psci_system_off();
}
