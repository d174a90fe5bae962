/*
 * share: regression checks of the hypercall ABI (docs/abi.md), one line per check, then a
 * summary and SYSTEM_OFF. It tells the two pKVM profiles apart by FEATURES, as a guest written
 * for both would, and expects each one's answers. With more than one vCPU, every vCPU also shares and unshares its own
 * page concurrently.
 */
#include "payload.h"

#define SMP_MAX_CPUS 64
#define SMP_ITERATIONS 200
#define SMP_STACK_SIZE 4096
/* Give up waiting for secondaries after this long (in counter ticks: counter_frequency()). */
#define SMP_TIMEOUT_SECONDS 16

/* Scratch pages after the image (never touched by pvmfw). */
#define PAGE_UNTOUCHED 0   /* first touched by MEM_SHARE's fault-then-retry path */
#define PAGE_PRIVATE   1   /* touched, never shared */
#define PAGE_SMP_BASE  2   /* one per vCPU */

struct share_cpu {
    u64 stack_top;         /* must stay first: share_entry.S loads the stack pointer from here */
    u64 index;
    u64 page;
    u32 failures;          /* written by the vCPU before done */
    u32 done;              /* set (release) by the vCPU when it has finished */
} __attribute__((aligned(64)));

_Static_assert(__builtin_offsetof(struct share_cpu, stack_top) == 0, "share_entry.S reads offset 0");

static struct share_cpu cpus[SMP_MAX_CPUS];
static u8 smp_stacks[SMP_MAX_CPUS][SMP_STACK_SIZE] __attribute__((aligned(16)));

void secondary_entry(void);
__attribute__((noreturn)) void secondary_main(struct share_cpu *cpu);

static struct checks checks = { "share", 0, 0 };

static void check(const char *name, u64 got, u64 expected) { checks_record(&checks, name, got, expected); }

static u64 pattern(u64 seed, u64 i)
{
    u64 x = seed * 0x9E3779B97F4A7C15ULL + i * 0xBF58476D1CE4E5B9ULL + 1;
    x ^= x >> 31;
    return x;
}

static void fill(u64 page, u64 seed)
{
    volatile u64 *p = (volatile u64 *)(uintptr_t)page;
    for (u64 i = 0; i < PVM_PAGE_SIZE / 8; i++)
        p[i] = pattern(seed, i);
}

/* Number of words of the page that differ from the pattern. */
static u64 verify(u64 page, u64 seed)
{
    volatile u64 *p = (volatile u64 *)(uintptr_t)page;
    u64 bad = 0;
    for (u64 i = 0; i < PVM_PAGE_SIZE / 8; i++)
        bad += p[i] != pattern(seed, i);
    return bad;
}

/* SMP_ITERATIONS x (MEM_SHARE, write and read a pattern, MEM_UNSHARE) on a touched page. */
static u32 stress(u64 index, u64 page)
{
    u32 failures = 0;
    *(volatile u64 *)(uintptr_t)page = index;
    for (u64 it = 0; it < SMP_ITERATIONS; it++) {
        u64 seed = (index << 32) | it;
        if (pvm_mem_share(page) != SMCCC_RET_SUCCESS)
            failures++;
        fill(page, seed);
        if (verify(page, seed) != 0)
            failures++;
        if (pvm_mem_unshare(page) != SMCCC_RET_SUCCESS)
            failures++;
    }
    return failures;
}

void secondary_main(struct share_cpu *cpu)
{
    u32 failures = stress(cpu->index, cpu->page);
    __atomic_store_n(&cpu->failures, failures, __ATOMIC_RELAXED);
    __atomic_store_n(&cpu->done, 1, __ATOMIC_RELEASE);
    psci_cpu_off();
}

static void smp_checks(const struct pvm_boot_config *config)
{
    u64 n = config->vcpu_count;
    if (n > SMP_MAX_CPUS) {
        console_puts("share: note: stressing the first ");
        console_dec(SMP_MAX_CPUS);
        console_puts(" of ");
        console_dec(n);
        console_puts(" vCPUs\n");
        n = SMP_MAX_CPUS;
    }
    if (scratch_page(config, PAGE_SMP_BASE + n - 1) == 0) {
        check("smp pages fit the load window", 0, 1);
        return;
    }

    check("AFFINITY_INFO(vCPU 1) before CPU_ON is off", (u64)psci_affinity_info(PVM_VCPU_MPIDR(1)),
          (u64)PSCI_AFFINITY_OFF);

    u64 failures = 0;
    bool started[SMP_MAX_CPUS] = { false };
    for (u64 i = 0; i < n; i++) {
        cpus[i].stack_top = (u64)(uintptr_t)&smp_stacks[i][SMP_STACK_SIZE];
        cpus[i].index = i;
        cpus[i].page = scratch_page(config, PAGE_SMP_BASE + i);
        __atomic_store_n(&cpus[i].failures, 0, __ATOMIC_RELAXED);
        __atomic_store_n(&cpus[i].done, 0, __ATOMIC_RELEASE);
    }
    for (u64 i = 1; i < n; i++) {
        s64 ret = psci_cpu_on(PVM_VCPU_MPIDR(i), (u64)(uintptr_t)secondary_entry, (u64)(uintptr_t)&cpus[i]);
        if (ret != PSCI_RET_SUCCESS) {
            console_puts("share: CPU_ON(");
            console_dec(i);
            console_puts(") returned ");
            console_sdec(ret);
            console_putc('\n');
            failures++;
        } else {
            started[i] = true;
        }
    }

    failures += stress(0, cpus[0].page);

    u64 deadline = counter_read() + SMP_TIMEOUT_SECONDS * counter_frequency();
    for (u64 i = 1; i < n; i++) {
        if (!started[i])
            continue;
        bool off = false;
        while (counter_read() < deadline) {
            if (__atomic_load_n(&cpus[i].done, __ATOMIC_ACQUIRE) &&
                psci_affinity_info(PVM_VCPU_MPIDR(i)) == PSCI_AFFINITY_OFF) {
                off = true;
                break;
            }
            cpu_relax();
        }
        if (!off) {
            console_puts("share: vCPU ");
            console_dec(i);
            console_puts(__atomic_load_n(&cpus[i].done, __ATOMIC_ACQUIRE)
                             ? " finished but never turned off\n"
                             : " did not finish in time\n");
            failures++;
            continue;
        }
        failures += __atomic_load_n(&cpus[i].failures, __ATOMIC_RELAXED);
    }

    console_puts("share: ");
    console_dec(n);
    console_puts(" vCPUs x ");
    console_dec(SMP_ITERATIONS);
    console_puts(" share/unshare rounds, ");
    console_dec(failures);
    console_puts(" failures\n");
    char name[48] = "smp share/unshare on ";
    /* append n (at most 2 digits) and " vCPUs" */
    size_t len = 21;
    if (n >= 10)
        name[len++] = (char)('0' + n / 10);
    name[len++] = (char)('0' + n % 10);
    memcpy(name + len, " vCPUs", 7);
    check(name, failures, 0);
}

int main(const struct pvm_boot_config *config)
{
    payload_console_init(config);

    u64 untouched = scratch_page(config, PAGE_UNTOUCHED);
    u64 private_page = scratch_page(config, PAGE_PRIVATE);
    if (untouched == 0 || private_page == 0) {
        console_puts("share: FAIL no scratch pages in the load window\n");
        psci_system_reset();
    }

    console_puts(is_protected(config) ? "share: protected guest, " : "share: non-protected guest, ");
    console_dec(config->vcpu_count);
    console_puts(config->vcpu_count == 1 ? " vCPU\n" : " vCPUs\n");

    /* Which pKVM answers: Android's advertises the MMIO guard, mainline's does not. */
    struct smccc_res r = smccc_call(KVM_FEATURES_FID, 0, 0, 0);
    bool android = (r.a0 & KVM_FEATURE_MMIO_GUARD_ENROLL) != 0 ||
                   (!is_protected(config) && (r.a0 & KVM_FEATURE_MEM_RELINQUISH) != 0);
    console_puts(android ? "share: Android pKVM ABI\n" : "share: mainline pKVM ABI\n");

    u64 features = r.a0;
    r = smccc_call(SMCCC_VERSION_FID, 0, 0, 0);
    check("SMCCC_VERSION", r.a0, android && is_protected(config) ? SMCCC_VERSION_1_2 : SMCCC_VERSION_1_1);

    r = smccc_call(KVM_VENDOR_UID_FID, 0, 0, 0);
    check("vendor UID x0", r.a0, KVM_UID_REG0);
    check("vendor UID x1", r.a1, KVM_UID_REG1);
    check("vendor UID x2", r.a2, KVM_UID_REG2);
    check("vendor UID x3", r.a3, KVM_UID_REG3);
    check("unknown function 0xC6000030", (u64)smccc_call0(0xC6000030U, 0, 0, 0), (u64)SMCCC_RET_NOT_SUPPORTED);

    if (!is_protected(config)) {
        /* No EL2 handler: the host answers. */
        check("FEATURES", features, android ? 0x207 : 0x3);
        check("HYP_MEMINFO", (u64)smccc_call0(KVM_HYP_MEMINFO_FID, 0, 0, 0),
              android ? PVM_GRANULE : (u64)SMCCC_RET_NOT_SUPPORTED);
        *(volatile u64 *)(uintptr_t)private_page = 1;
        check("MEM_SHARE not supported", (u64)pvm_mem_share(private_page), (u64)SMCCC_RET_NOT_SUPPORTED);
        check("PSCI_VERSION", (u64)smccc_call0(PSCI_VERSION_FID, 0, 0, 0),
              android ? PSCI_VERSION_1_1 : PSCI_VERSION_1_3);
        goto summary;
    }

    r = smccc_call(KVM_FEATURES_FID, 0, 0, 0);
    check("FEATURES", r.a0, android ? 0xFFD : 0x1D);
    check("FEATURES x1..x3", r.a1 | r.a2 | r.a3, 0);
    r = smccc_call(KVM_HYP_MEMINFO_FID, 0, 0, 0);
    check("HYP_MEMINFO", r.a0, PVM_GRANULE);
    check("HYP_MEMINFO x1 (range forms)", r.a1, android ? KVM_FUNC_HAS_RANGE : 0);
    check("HYP_MEMINFO x1=1", (u64)smccc_call0(KVM_HYP_MEMINFO_FID, 1, 0, 0), (u64)SMCCC_RET_INVALID_PARAMETER);

    /* The untouched page: MEM_SHARE must fault it in and retry. */
    r = smccc_call(KVM_MEM_SHARE_FID, untouched, 0, 0);
    check("MEM_SHARE untouched page", r.a0, 0);
    check("MEM_SHARE x1 (pages shared)", r.a1, android ? 1 : 0);
    fill(untouched, 0x5eed);
    check("shared page reads back", verify(untouched, 0x5eed), 0);
    check("MEM_SHARE again", (u64)pvm_mem_share(untouched), (u64)SMCCC_RET_INVALID_PARAMETER);

    /* Argument checks on a touched page that stays private. */
    *(volatile u64 *)(uintptr_t)private_page = 0x1234;
    check("MEM_SHARE misaligned", (u64)pvm_mem_share(private_page + 8), (u64)SMCCC_RET_INVALID_PARAMETER);
    if (!android)  /* Android reads x2 as a page count */
        check("MEM_SHARE x2=1", (u64)smccc_call0(KVM_MEM_SHARE_FID, private_page, 1, 0),
              (u64)SMCCC_RET_INVALID_PARAMETER);
    check("MEM_SHARE x3=1", (u64)smccc_call0(KVM_MEM_SHARE_FID, private_page, 0, 1), (u64)SMCCC_RET_INVALID_PARAMETER);

    check("MEM_UNSHARE", (u64)pvm_mem_unshare(untouched), 0);
    check("contents intact after unshare", verify(untouched, 0x5eed), 0);
    check("MEM_UNSHARE again", (u64)pvm_mem_unshare(untouched), (u64)SMCCC_RET_INVALID_PARAMETER);
    check("MEM_UNSHARE never-shared page", (u64)pvm_mem_unshare(private_page), (u64)SMCCC_RET_INVALID_PARAMETER);
    check("private page intact", *(volatile u64 *)(uintptr_t)private_page, 0x1234);

    if (android) {
        /* The firmware enrolled in the MMIO guard. */
        check("MMIO_GUARD_MAP of a mapped page", (u64)smccc_call0(KVM_MMIO_GUARD_MAP_FID, private_page, 0, 0),
              (u64)SMCCC_RET_INVALID_PARAMETER);
        check("MMIO_GUARD_UNMAP (a no-op)", (u64)smccc_call0(KVM_MMIO_GUARD_UNMAP_FID, config->console_mmio_gpa, 0, 0), 0);
    }

    check("PSCI_VERSION", (u64)smccc_call0(PSCI_VERSION_FID, 0, 0, 0), android ? PSCI_VERSION_1_1 : PSCI_VERSION_1_3);
    check("PSCI_FEATURES(CPU_ON)", (u64)smccc_call0(PSCI_FEATURES_FID, PSCI_CPU_ON_FID, 0, 0), 0);
    check("MIGRATE_INFO_TYPE", (u64)smccc_call0(PSCI_MIGRATE_INFO_TYPE_FID, 0, 0, 0),
          android ? (u64)PSCI_RET_NOT_SUPPORTED : PSCI_MIGRATE_INFO_TYPE_TOS_MP);
    check("AFFINITY_INFO(vCPU 0)", (u64)psci_affinity_info(PVM_VCPU_MPIDR(0)), (u64)PSCI_AFFINITY_ON);
    check("CPU_ON(vCPU 0) already on",
          (u64)psci_cpu_on(PVM_VCPU_MPIDR(0), (u64)(uintptr_t)secondary_entry, (u64)(uintptr_t)&cpus[0]),
          (u64)PSCI_RET_ALREADY_ON);
    check("CPU_ON(vcpu_count) bad target",
          (u64)psci_cpu_on(PVM_VCPU_MPIDR(config->vcpu_count), (u64)(uintptr_t)secondary_entry,
                           (u64)(uintptr_t)&cpus[0]),
          (u64)PSCI_RET_INVALID_PARAMS);

    if (config->vcpu_count > 1)
        smp_checks(config);

summary:
    checks_summary(&checks);
    psci_system_off();
}
