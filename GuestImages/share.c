/*
 * share: regression checks of the hypercall ABI (docs/abi.md), one line per check, then a
 * summary and SYSTEM_OFF. With more than one vCPU, every vCPU also shares and unshares its own
 * page concurrently.
 */
#include "payload.h"

#define SMP_MAX_CPUS 64
#define SMP_ITERATIONS 200
#define SMP_STACK_SIZE 4096
/* Give up waiting for secondaries after this many TSC cycles (tens of seconds). */
#define SMP_TIMEOUT_CYCLES (1ULL << 36)

/* Scratch pages after the image (never touched by pvmfw). */
#define PAGE_UNTOUCHED 0   /* first touched by MEM_SHARE's fault-then-retry path */
#define PAGE_PRIVATE   1   /* touched, never shared */
#define PAGE_SMP_BASE  2   /* one per vCPU */

struct share_cpu {
    u64 stack_top;         /* must stay first: share_entry.S loads rsp from here */
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

    check("AFFINITY_INFO(1) before CPU_ON is off", (u64)psci_affinity_info(1),
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
        s64 ret = psci_cpu_on(i, (u64)(uintptr_t)secondary_entry, (u64)(uintptr_t)&cpus[i]);
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

    u64 deadline = rdtsc() + SMP_TIMEOUT_CYCLES;
    for (u64 i = 1; i < n; i++) {
        if (!started[i])
            continue;
        bool off = false;
        while (rdtsc() < deadline) {
            if (__atomic_load_n(&cpus[i].done, __ATOMIC_ACQUIRE) &&
                psci_affinity_info(i) == PSCI_AFFINITY_OFF) {
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

    struct smccc_res r = smccc_call(SMCCC_VERSION_FID, 0, 0, 0);
    check("SMCCC_VERSION", r.a0, SMCCC_VERSION_1_1);

    r = smccc_call(KVM_VENDOR_UID_FID, 0, 0, 0);
    check("vendor UID x0", r.a0, KVM_UID_REG0);
    check("vendor UID x1", r.a1, KVM_UID_REG1);
    check("vendor UID x2", r.a2, KVM_UID_REG2);
    check("vendor UID x3", r.a3, KVM_UID_REG3);

    if (!is_protected(config)) {
        r = smccc_call(KVM_FEATURES_FID, 0, 0, 0);
        check("FEATURES", r.a0, KVM_FEATURES_NON_PROTECTED);
        check("HYP_MEMINFO", (u64)smccc_call0(KVM_HYP_MEMINFO_FID, 0, 0, 0), PVM_GRANULE);
        *(volatile u64 *)(uintptr_t)private_page = 1;
        check("MEM_SHARE not supported", (u64)pvm_mem_share(private_page),
              (u64)SMCCC_RET_NOT_SUPPORTED);
        goto summary;
    }

    r = smccc_call(KVM_FEATURES_FID, 0, 0, 0);
    check("FEATURES", r.a0, KVM_FEATURES_PROTECTED);
    check("FEATURES x1..x3", r.a1 | r.a2 | r.a3, 0);
    check("HYP_MEMINFO", (u64)smccc_call0(KVM_HYP_MEMINFO_FID, 0, 0, 0), PVM_GRANULE);
    check("HYP_MEMINFO x1=1", (u64)smccc_call0(KVM_HYP_MEMINFO_FID, 1, 0, 0),
          (u64)SMCCC_RET_INVALID_PARAMETER);
    check("unknown function 0xC600003F", (u64)smccc_call0(0xC600003FU, 0, 0, 0),
          (u64)SMCCC_RET_NOT_SUPPORTED);

    /* The untouched page: MEM_SHARE must fault it in and retry. */
    check("MEM_SHARE untouched page", (u64)pvm_mem_share(untouched), 0);
    fill(untouched, 0x5eed);
    check("shared page reads back", verify(untouched, 0x5eed), 0);
    check("MEM_SHARE again", (u64)pvm_mem_share(untouched), (u64)SMCCC_RET_INVALID_PARAMETER);

    /* Argument checks on a touched page that stays private. */
    *(volatile u64 *)(uintptr_t)private_page = 0x1234;
    check("MEM_SHARE misaligned", (u64)pvm_mem_share(private_page + 8),
          (u64)SMCCC_RET_INVALID_PARAMETER);
    check("MEM_SHARE x2=1", (u64)smccc_call0(KVM_MEM_SHARE_FID, private_page, 1, 0),
          (u64)SMCCC_RET_INVALID_PARAMETER);
    check("MEM_SHARE x3=1", (u64)smccc_call0(KVM_MEM_SHARE_FID, private_page, 0, 1),
          (u64)SMCCC_RET_INVALID_PARAMETER);
    check("MEM_SHARE beyond RAM", (u64)pvm_mem_share(config->ram_size + 0x10000000ULL),
          (u64)SMCCC_RET_INVALID_PARAMETER);

    check("MEM_UNSHARE", (u64)pvm_mem_unshare(untouched), 0);
    check("contents intact after unshare", verify(untouched, 0x5eed), 0);
    check("MEM_UNSHARE again", (u64)pvm_mem_unshare(untouched), (u64)SMCCC_RET_INVALID_PARAMETER);
    check("MEM_UNSHARE never-shared page", (u64)pvm_mem_unshare(private_page),
          (u64)SMCCC_RET_INVALID_PARAMETER);
    check("private page intact", *(volatile u64 *)(uintptr_t)private_page, 0x1234);

    check("PSCI_FEATURES(CPU_ON)", (u64)smccc_call0(PSCI_FEATURES_FID, PSCI_CPU_ON_FID, 0, 0), 0);
    check("AFFINITY_INFO(0)", (u64)psci_affinity_info(0), (u64)PSCI_AFFINITY_ON);
    check("CPU_ON(0) already on",
          (u64)psci_cpu_on(0, (u64)(uintptr_t)secondary_entry, (u64)(uintptr_t)&cpus[0]),
          (u64)PSCI_RET_ALREADY_ON);
    check("CPU_ON(vcpu_count) bad target",
          (u64)psci_cpu_on(config->vcpu_count, (u64)(uintptr_t)secondary_entry,
                           (u64)(uintptr_t)&cpus[0]),
          (u64)PSCI_RET_INVALID_PARAMS);

    if (config->vcpu_count > 1)
        smp_checks(config);

summary:
    console_puts("share: ");
    if (checks.failed == 0) {
        console_dec(checks.run);
        console_putc('/');
        console_dec(checks.run);
        console_puts(" checks passed\n");
    } else {
        console_puts("FAILED ");
        console_dec(checks.failed);
        console_puts(" of ");
        console_dec(checks.run);
        console_puts(" checks\n");
    }
    psci_system_off();
}
