/*
 * pvm guest ABI for the firmware and the guest images (docs/abi.md). The numbers come from
 * ABI/guest-abi.table through the generated pvm_abi_table.h, shared with the Swift side; this
 * header adds the boot configuration's layout and the macros built from the numbers.
 */
#ifndef PVM_ABI_H
#define PVM_ABI_H

#ifndef __ASSEMBLER__
#include <stdint.h>
#include <stddef.h>
#endif

#include "pvm_abi_table.h"

#define PVM_CONFIG_VERSION_MAJOR(v) ((v) >> 16)

/* The four MMIO guard calls Android's pKVM advertises together. */
#define KVM_FEATURES_MMIO_GUARD     (KVM_FEATURE_MMIO_GUARD_INFO | KVM_FEATURE_MMIO_GUARD_ENROLL | \
                                     KVM_FEATURE_MMIO_GUARD_MAP | KVM_FEATURE_MMIO_GUARD_UNMAP)

/* Byte `offset` of the block device's synthetic disk (GuestLayout.blockByte). */
#define PVM_BLOCK_BYTE(offset) ((unsigned char)((((offset) >> 9) * 31) + (offset) * 7 + 0x5A))

/*
 * The affinity fields of vCPU `index`'s MPIDR_EL1, as KVM's reset_mpidr sets them
 * (arch/arm64/kvm/sys_regs.c): Aff0 = index[3:0], Aff1 = index[11:4], Aff2 = index[19:12].
 * PSCI CPU_ON and AFFINITY_INFO name their target by this value (MPIDR & MPIDR_HWID_BITMASK,
 * what Linux keeps in cpu_logical_map); other bits are INVALID_PARAMETERS.
 */
#define PVM_VCPU_MPIDR(index) ((((index) & 0xfULL)) | ((((index) >> 4) & 0xffULL) << 8) | \
                               ((((index) >> 12) & 0xffULL) << 16))

#ifndef __ASSEMBLER__
struct __attribute__((packed)) pvm_boot_config {
    uint32_t magic;              /*   0 */
    uint32_t version;            /*   4 */
    uint32_t total_size;         /*   8 */
    uint32_t flags;              /*  12 */
    uint64_t payload_gpa;        /*  16 */
    uint64_t payload_size;       /*  24 */
    uint8_t  payload_sha256[32]; /*  32 */
    uint64_t ram_base;           /*  64 */
    uint64_t ram_size;           /*  72 */
    uint64_t console_page_gpa;   /*  80 */
    uint64_t console_mmio_gpa;   /*  88 */
    uint32_t vcpu_count;         /*  96 */
    uint32_t reserved;           /* 100 */
    uint64_t payload_argument;   /* 104 */
    uint64_t load_window_start;  /* 112 */
    uint64_t load_window_end;    /* 120 */
};

_Static_assert(offsetof(struct pvm_boot_config, magic) == 0, "magic");
_Static_assert(offsetof(struct pvm_boot_config, version) == 4, "version");
_Static_assert(offsetof(struct pvm_boot_config, total_size) == 8, "total_size");
_Static_assert(offsetof(struct pvm_boot_config, flags) == 12, "flags");
_Static_assert(offsetof(struct pvm_boot_config, payload_gpa) == 16, "payload_gpa");
_Static_assert(offsetof(struct pvm_boot_config, payload_size) == 24, "payload_size");
_Static_assert(offsetof(struct pvm_boot_config, payload_sha256) == 32, "payload_sha256");
_Static_assert(offsetof(struct pvm_boot_config, ram_base) == 64, "ram_base");
_Static_assert(offsetof(struct pvm_boot_config, ram_size) == 72, "ram_size");
_Static_assert(offsetof(struct pvm_boot_config, console_page_gpa) == 80, "console_page_gpa");
_Static_assert(offsetof(struct pvm_boot_config, console_mmio_gpa) == 88, "console_mmio_gpa");
_Static_assert(offsetof(struct pvm_boot_config, vcpu_count) == 96, "vcpu_count");
_Static_assert(offsetof(struct pvm_boot_config, reserved) == 100, "reserved");
_Static_assert(offsetof(struct pvm_boot_config, payload_argument) == 104, "payload_argument");
_Static_assert(offsetof(struct pvm_boot_config, load_window_start) == 112, "load_window_start");
_Static_assert(offsetof(struct pvm_boot_config, load_window_end) == 120, "load_window_end");
_Static_assert(sizeof(struct pvm_boot_config) == PVM_CONFIG_SIZE, "boot config is 128 bytes");
#endif

#endif /* PVM_ABI_H */
