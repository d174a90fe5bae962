/*
 * abi: a hypercall regression scenario for the guest ABI (docs/abi.md). The guest checks
 * nothing itself: it makes one fixed sequence of calls, carries on whatever each returns, and
 * an external runner compares the four result registers of every call (the VMM traces them)
 * with an expectation file. One console line per section (`abi: <section>`), then SYSTEM_OFF.
 *
 * The sequence is the same on x86-64 and AArch64, for protected and non-protected guests and
 * under both pKVM profiles (the answers differ, which is the point). Only the Linux-driver
 * section branches on a result, as the driver does. Every RAM address is computed from the
 * boot configuration and the image's scratch pages, so the calls are identical relative to
 * the RAM base on both architectures; device IPAs are the architecture's (pvm_arch.h).
 *
 * Probes of MEM_SHARE outside RAM (past its end, an MMIO page) make a protected guest's host
 * fault in a page it cannot map, which stops the VM (docs/abi.md, "Memory faults"). They run
 * only when bit 0 of the payload argument is set (`pvm boot --arg 1`); without it the scenario
 * runs to SYSTEM_OFF on every configuration.
 */
#include "payload.h"

/* payload_argument bit 0: also run the MEM_SHARE probes outside RAM (they stop a protected VM). */
#define ABI_ARG_OUTSIDE_RAM_PROBES (1ULL << 0)
/* payload_argument bit 1: touch page C again just before SYSTEM_OFF, for scenarios in which the
 * host has force-reclaimed it meanwhile (the access must find it poisoned). */
#define ABI_ARG_TOUCH_C_AT_END (1ULL << 1)

/* Function IDs no table row names (docs/abi.md: "any other function" is NOT_SUPPORTED). */
#define ABI_UNKNOWN_VENDOR_HYP_FID 0x8600FFFFU  /* vendor hypervisor service, function 0xFFFF */
#define ABI_UNKNOWN_PSCI_FID       0x8400FFFFU  /* standard service, PSCI's range, 0xFFFF */

/* An MPIDR affinity that names no vCPU (vCPU 4080 by PVM_VCPU_MPIDR): docs/abi.md, CPU_ON's "no vCPU
 * with that MPIDR". */
#define ABI_ABSENT_MPIDR 0xFF00ULL

/* Scratch pages (indices from __scratch_start: the images differ in size between the
 * architectures, and pvm test names these pages relative to the image's end, scratch+N). */
#define PAGE_A      0  /* touched; shared, unshared, then a RAM IPA for MMIO_GUARD_MAP */
#define PAGE_B      1  /* never touched before its MEM_SHARE (fault-then-retry) */
#define PAGE_C      2  /* touched, never shared */
#define PAGE_D      3  /* touched; shared, relinquish attempts, unshared */
#define PAGE_E      4  /* touched, relinquished; never touched again */
#define PAGE_F0     5  /* F0..F3: the Linux driver's four consecutive pages */
#define PAGE_COUNT  9

struct abi_pages {
    u64 base;     /* aligned scratch base: page index 0 */
    u64 ram_end;  /* first IPA past guest RAM */
};

static u64 page(const struct abi_pages *p, u64 index) { return p->base + index * PVM_PAGE_SIZE; }

/* First write to a page: a protected guest's host donates it here (a stage-2 fault). */
static void touch(u64 ipa, u8 value) { *(volatile u8 *)(uintptr_t)ipa = value; }

static void section(const char *name)
{
    console_puts("abi: ");
    console_puts(name);
    console_putc('\n');
}

/* One call whose result only the trace records. */
static void call(u32 fid, u64 a1, u64 a2, u64 a3) { (void)smccc_call(fid, a1, a2, a3); }

static void discovery(void)
{
    section("discovery");
    call(SMCCC_VERSION_FID, 0, 0, 0);
    call(SMCCC_ARCH_FEATURES_FID, SMCCC_VERSION_FID, 0, 0);
    call(SMCCC_ARCH_FEATURES_FID, SMCCC_ARCH_FEATURES_FID, 0, 0);
    call(SMCCC_ARCH_FEATURES_FID, SMCCC_ARCH_WORKAROUND_1_FID, 0, 0);
    call(SMCCC_ARCH_FEATURES_FID, ABI_UNKNOWN_VENDOR_HYP_FID, 0, 0);
    call(KVM_VENDOR_UID_FID, 0, 0, 0);
    call(KVM_FEATURES_FID, 0, 0, 0);
}

/* HYP_MEMINFO twice; returns x0 of the well-formed call (the Linux driver's granule). */
static u64 meminfo(void)
{
    u64 granule = smccc_call(KVM_HYP_MEMINFO_FID, 0, 0, 0).a0;
    call(KVM_HYP_MEMINFO_FID, 1, 0, 0);  /* reserved argument nonzero */
    return granule;
}

static void mem_share(const struct abi_pages *p, u64 device_ipa, bool outside_ram_probes)
{
    u64 a = page(p, PAGE_A), b = page(p, PAGE_B);
    section("mem_share");
    touch(a, 0xA0);
    call(KVM_MEM_SHARE_FID, a, 0, 0);
    call(KVM_MEM_SHARE_FID, a, 0, 0);      /* shared twice */
    call(KVM_MEM_SHARE_FID, a + 1, 0, 0);  /* unaligned */
    if (outside_ram_probes) {
        section("mem_share outside RAM");
        call(KVM_MEM_SHARE_FID, p->ram_end, 0, 0);
        call(KVM_MEM_SHARE_FID, p->ram_end + (1ULL << 30), 0, 0);
        call(KVM_MEM_SHARE_FID, device_ipa, 0, 0);
    }
    call(KVM_MEM_SHARE_FID, a, 1, 0);      /* x2: reserved (mainline), a page count (android) */
    call(KVM_MEM_SHARE_FID, a, 0, 1);      /* x3: reserved */
    call(KVM_MEM_SHARE_FID, b, 0, 0);      /* never touched: fault-then-retry */
}

static void mem_unshare(const struct abi_pages *p)
{
    u64 a = page(p, PAGE_A), b = page(p, PAGE_B), c = page(p, PAGE_C);
    section("mem_unshare");
    call(KVM_MEM_UNSHARE_FID, a, 0, 0);
    call(KVM_MEM_UNSHARE_FID, a, 0, 0);      /* no longer shared */
    touch(c, 0xC0);
    call(KVM_MEM_UNSHARE_FID, c, 0, 0);      /* touched, never shared */
    call(KVM_MEM_UNSHARE_FID, b + 1, 0, 0);  /* unaligned */
    call(KVM_MEM_UNSHARE_FID, b, 1, 0);      /* x2: reserved (mainline), a page count (android) */
    call(KVM_MEM_UNSHARE_FID, p->ram_end, 0, 0);
    call(KVM_MEM_UNSHARE_FID, b, 0, 0);
}

static void relinquish(const struct abi_pages *p)
{
    u64 d = page(p, PAGE_D), e = page(p, PAGE_E);
    section("relinquish");
    touch(d, 0xD0);
    touch(e, 0xE0);
    call(KVM_MEM_SHARE_FID, d, 0, 0);
    call(KVM_MEM_RELINQUISH_FID, d, 0, 0);      /* a shared page */
    call(KVM_MEM_UNSHARE_FID, d, 0, 0);
    call(KVM_MEM_RELINQUISH_FID, e, 0, 0);      /* a private page; from here on E is never touched */
    call(KVM_MEM_RELINQUISH_FID, e, 0, 0);      /* again */
    call(KVM_MEM_RELINQUISH_FID, d + 1, 0, 0);  /* unaligned */
    call(KVM_MEM_RELINQUISH_FID, d, 1, 0);      /* x2 reserved */
    call(KVM_MEM_RELINQUISH_FID, p->ram_end, 0, 0);
}

/* `device_ipa` is a device page the firmware has not guard-mapped; the guest never accesses it. */
static void mmio_guard(const struct abi_pages *p, u64 device_ipa)
{
    section("mmio_guard");
    call(KVM_MMIO_GUARD_INFO_FID, 0, 0, 0);
    call(KVM_MMIO_GUARD_ENROLL_FID, 0, 0, 0);
    call(KVM_MMIO_GUARD_MAP_FID, device_ipa, 0, 0);
    call(KVM_MMIO_GUARD_MAP_FID, device_ipa, 0, 0);      /* again */
    call(KVM_MMIO_GUARD_MAP_FID, device_ipa + 1, 0, 0);  /* unaligned */
    call(KVM_MMIO_GUARD_MAP_FID, page(p, PAGE_A), 0, 0); /* a RAM IPA (mapped) */
    call(KVM_MMIO_GUARD_MAP_FID, device_ipa, 1, 0);      /* x2 = 1 */
    call(KVM_MMIO_GUARD_UNMAP_FID, device_ipa, 0, 0);
    call(KVM_MMIO_GUARD_UNMAP_FID, device_ipa, 0, 0);    /* again */
    /* The console's page stays mapped: the console must keep working. */
}

/* `entry` is a RAM IPA; no CPU_ON here can start a vCPU. */
static void psci(u64 entry)
{
    section("psci");
    call(PSCI_VERSION_FID, 0, 0, 0);
    call(PSCI_FEATURES_FID, PSCI_CPU_ON_FID, 0, 0);
    call(PSCI_FEATURES_FID, ABI_UNKNOWN_PSCI_FID, 0, 0);
    call(PSCI_AFFINITY_INFO_FID, PVM_VCPU_MPIDR(0), 0, 0);  /* self */
    call(PSCI_CPU_ON_FID, PVM_VCPU_MPIDR(0), entry, 0);     /* already on */
    call(PSCI_CPU_ON_FID, ABI_ABSENT_MPIDR, entry, 0);      /* no such vCPU */
    call(PSCI_MIGRATE_INFO_TYPE_FID, 0, 0, 0);
}

/*
 * Linux's __set_memory_range (drivers/virt/coco/pkvm-guest/arm-pkvm-guest.c): one call per
 * granule over `pages` pages from `start`, stopping at the first result that is not SMCCC
 * success, with no rollback. The one place the guest branches on a result.
 */
static void set_memory_range(u32 fid, u64 start, u64 pages, u64 granule)
{
    u64 end = start + pages * PVM_PAGE_SIZE;
    for (u64 ipa = start; ipa < end; ipa += granule)
        if ((s64)smccc_call(fid, ipa, 0, 0).a0 != SMCCC_RET_SUCCESS)
            return;
}

static void linux_driver(const struct abi_pages *p, u64 granule)
{
    section("linux_driver");
    /*
     * The driver only registers with 0 < granule <= PAGE_SIZE (pkvm_init_hyp_services: "res.a0
     * > PAGE_SIZE" includes error codes). Where HYP_MEMINFO fails (non-protected mainline),
     * the calls are made anyway, one page each, so every configuration makes the same ones.
     */
    if (granule == 0 || granule > PVM_PAGE_SIZE)
        granule = PVM_GRANULE;
    u64 f0 = page(p, PAGE_F0);
    for (u64 i = 0; i < 4; i++)
        touch(f0 + i * PVM_PAGE_SIZE, (u8)(0xF0 + i));
    set_memory_range(KVM_MEM_SHARE_FID, f0 + 2 * PVM_PAGE_SIZE, 1, granule);  /* F2 alone */
    set_memory_range(KVM_MEM_SHARE_FID, f0, 4, granule);    /* F0, F1 shared; F2 fails */
    set_memory_range(KVM_MEM_UNSHARE_FID, f0, 4, granule);  /* F0..F2 unshared; F3 fails */
}

int main(const struct pvm_boot_config *config)
{
    payload_console_init(config);

    struct abi_pages p;
    u64 first = scratch_page(config, 0);
    p.base = first;
    p.ram_end = config->ram_base + config->ram_size;
    if (first == 0 || p.base + PAGE_COUNT * PVM_PAGE_SIZE > config->load_window_end) {
        console_puts("abi: FAIL no scratch pages in the load window\n");
        psci_system_reset();
    }
    /* Devices: the DMA engine's page for MEM_SHARE, the block device's for the MMIO guard. */
    u64 share_device = PVM_ARCH_DMA_MMIO_GPA;
    u64 guard_device = PVM_ARCH_BLOCK_MMIO_GPA;

    discovery();
    u64 granule = meminfo();
    mem_share(&p, share_device, (config->payload_argument & ABI_ARG_OUTSIDE_RAM_PROBES) != 0);
    mem_unshare(&p);
    relinquish(&p);
    mmio_guard(&p, guard_device);
    psci(config->load_window_start);
    linux_driver(&p, granule);

    if (config->payload_argument & ABI_ARG_TOUCH_C_AT_END) {
        section("touch C again");
        touch(p.base + PAGE_C * PVM_PAGE_SIZE, 0xCC);
    }

    section("system_off");
    psci_system_off();
}
