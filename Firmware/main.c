/*
 * pvmfw: the protected-VM firmware (docs/abi.md, "Firmware flow"). It checks the boot
 * configuration, talks to the hypervisor (SMCCC version, vendor UID, features, MMIO guard,
 * console sharing), verifies the staged payload's SHA-256 and ELF headers, loads it into the
 * load window and jumps to it. Any failure ends in PSCI SYSTEM_RESET: the payload never runs.
 * The same flow on every architecture; fw_arch.h (arch/<arch>/) has the layout numbers and
 * checks that differ, arch/<arch>/entry.S the entry and the jump.
 *
 * pvmfw must not call PSCI_VERSION: benchmarks use the payload's PSCI_VERSION calls as markers.
 */
#include "pvm_guest.h"
#include "loader.h"
#include "sha256.h"
#include "fw_arch.h"
#include "pvmfw.h"

static __attribute__((noreturn)) void fail(const char *what)
{
    console_puts("pvmfw: ");
    console_puts(what);
    console_puts(", resetting\n");
    psci_system_reset();
}

static __attribute__((noreturn)) void reject(const char *reason)
{
    console_puts("pvmfw: payload rejected: ");
    console_puts(reason);
    console_putc('\n');
    psci_system_reset();
}

/* Step 1: the configuration page must be sane before anything in it is used (even the console
 * addresses). There is no console yet, so a bad configuration resets silently. */
static bool config_ok(const struct pvm_boot_config *c)
{
    if (c->magic != PVM_CONFIG_MAGIC)
        return false;
    if (PVM_CONFIG_VERSION_MAJOR(c->version) != PVM_CONFIG_VERSION_MAJOR(PVM_CONFIG_VERSION))
        return false;
    if (c->total_size != PVM_CONFIG_SIZE)
        return false;
    /* RAM and the console's addresses: the architecture's layout. */
    if (!fw_arch_layout_ok(c))
        return false;
    if (c->vcpu_count == 0)
        return false;
    return true;
}

void fw_main(const struct pvm_boot_config *boot_config, u64 handoff)
{
    /* 1. Boot configuration: take one copy, so every check and use sees the same values. */
    static struct pvm_boot_config config_copy;
    memcpy(&config_copy, boot_config, sizeof(config_copy));
    const struct pvm_boot_config *config = &config_copy;
    if (!config_ok(config))
        psci_system_reset();

    bool protected_vm = (config->flags & PVM_CONFIG_FLAG_PROTECTED) != 0;

    /* 2. SMCCC version, vendor UID, features. */
    u64 smccc_version = smccc_call(SMCCC_VERSION_FID, 0, 0, 0).a0;
    struct smccc_res uid = smccc_call(KVM_VENDOR_UID_FID, 0, 0, 0);
    u64 features = smccc_call(KVM_FEATURES_FID, 0, 0, 0).a0;
    if ((s64)features < 0)
        features = 0; /* NOT_SUPPORTED: no vendor functions */
    bool uid_ok = uid.a0 == KVM_UID_REG0 && uid.a1 == KVM_UID_REG1 && uid.a2 == KVM_UID_REG2 &&
                  uid.a3 == KVM_UID_REG3;

    /* 3. MMIO guard: enroll and map the console device before touching it. */
    if (uid_ok && (features & KVM_FEATURES_MMIO_GUARD) == KVM_FEATURES_MMIO_GUARD) {
        struct smccc_res info = smccc_call(KVM_MMIO_GUARD_INFO_FID, 0, 0, 0);
        if (info.a0 != PVM_GRANULE)
            psci_system_reset();
        if (smccc_call0(KVM_MMIO_GUARD_ENROLL_FID, 0, 0, 0) != SMCCC_RET_SUCCESS)
            psci_system_reset();
        if (smccc_call0(KVM_MMIO_GUARD_MAP_FID, config->console_mmio_gpa, 0, 0) != SMCCC_RET_SUCCESS)
            psci_system_reset();
    }

    /* 4. Share the console buffer page with the host (touch it first so it is ours). A PL011
     * (AArch64) has no buffer page: console_page_gpa is 0. */
    if (config->console_page_gpa != 0 && uid_ok && (features & KVM_FEATURE_MEM_SHARE)) {
        *(volatile u8 *)(uintptr_t)config->console_page_gpa = 0;
        if (pvm_mem_share(config->console_page_gpa) != SMCCC_RET_SUCCESS)
            psci_system_reset();
    }

    console_init(config->console_page_gpa, config->console_mmio_gpa);

    if (!uid_ok) {
        console_puts("pvmfw: hypervisor UID is not KVM's: ");
        console_hex(uid.a0);
        console_putc(' ');
        console_hex(uid.a1);
        console_putc(' ');
        console_hex(uid.a2);
        console_putc(' ');
        console_hex(uid.a3);
        console_putc('\n');
        fail("unsupported hypervisor");
    }
    if ((smccc_version >> 16) != 1) {
        console_puts("pvmfw: SMCCC version ");
        console_hex(smccc_version);
        console_putc('\n');
        fail("unsupported SMCCC version");
    }
    u64 granule = PVM_GRANULE;
    if (features & KVM_FEATURE_HYP_MEMINFO) {
        granule = smccc_call(KVM_HYP_MEMINFO_FID, 0, 0, 0).a0;
        if (granule != PVM_GRANULE) {
            console_puts("pvmfw: HYP_MEMINFO granule ");
            console_hex(granule);
            console_putc('\n');
            fail("unsupported protection granule");
        }
    }

    /* 5. Report, then check the payload's digest. */
    console_puts(protected_vm ? "pvmfw: protected guest" : "pvmfw: non-protected guest");
    console_puts(", SMCCC ");
    console_dec(smccc_version >> 16);
    console_putc('.');
    console_dec(smccc_version & 0xffff);
    console_puts(", granule ");
    console_dec(granule);
    console_putc('\n');
    console_puts("pvmfw: features ");
    console_hex(features);
    console_puts(", ");
    console_dec(config->vcpu_count);
    console_puts(config->vcpu_count == 1 ? " vCPU, " : " vCPUs, ");
    console_dec(config->ram_size >> 20);
    console_puts(" MiB RAM\n");

    u64 payload = config->payload_gpa;
    u64 size = config->payload_size;
    u64 staged_end;
    if (size == 0)
        reject("empty payload (payload_size is 0)");
    /* A Linux Image is verified where the VMM loaded it; an ELF payload must be staged. */
    bool linux_image = fw_arch_is_linux_image(config);
    if (!linux_image && (payload < FW_STAGING_START || __builtin_add_overflow(payload, size, &staged_end) ||
                         staged_end > FW_STAGING_END))
        reject("payload does not fit the staging area " FW_STAGING_TEXT);

    u8 digest[SHA256_DIGEST_SIZE];
    sha256((const void *)(uintptr_t)payload, size, digest);
    if (memcmp(digest, config->payload_sha256, SHA256_DIGEST_SIZE) != 0) {
        console_puts("pvmfw: payload rejected: SHA-256 mismatch\n");
        console_puts("pvmfw:   expected ");
        console_hex_bytes(config->payload_sha256, SHA256_DIGEST_SIZE);
        console_puts("\npvmfw:   computed ");
        console_hex_bytes(digest, SHA256_DIGEST_SIZE);
        console_putc('\n');
        psci_system_reset();
    }
    console_puts("pvmfw: payload ");
    console_dec(size);
    console_puts(" bytes, SHA-256 ok\n");

    if (linux_image)
        reject(fw_arch_boot_linux(config, handoff)); /* returns only to say why not */

    /* 6. Strict ELF checks against the load window. */
    u64 window_start = config->load_window_start;
    u64 window_end = config->load_window_end;
    if (window_start < FW_LOAD_WINDOW_START || window_end > config->ram_base + config->ram_size ||
        window_start >= window_end)
        reject("bad load window in the boot configuration");

    u64 entry = 0;
    const char *reason = elf_validate((const u8 *)(uintptr_t)payload, size, window_start,
                                      window_end, &entry);
    if (reason != NULL)
        reject(reason);

    /* 7. Load and go. */
    elf_load((const u8 *)(uintptr_t)payload);
    console_puts("pvmfw: jumping to payload at ");
    console_hex(entry);
    console_putc('\n');
    console_flush();
    enter_payload(entry, handoff);
}
