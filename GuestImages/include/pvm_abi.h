/*
 * pvm guest ABI: every constant of docs/abi.md, for the firmware and the guest images.
 * Keep in step with docs/abi.md and Sources/VMM/GuestABI.swift.
 */
#ifndef PVM_ABI_H
#define PVM_ABI_H

#ifndef __ASSEMBLER__
#include <stdint.h>
#include <stddef.h>
#endif

/* ---- Guest-physical layout -------------------------------------------------------------- */
#define PVM_RAM_BASE                0x0ULL
#define PVM_GDT_GPA                 0x1000ULL
#define PVM_PML4_GPA                0x2000ULL
#define PVM_PDPT_GPA                0x3000ULL
#define PVM_PD_GPA                  0x4000ULL   /* four PDs, 0x4000..0x8000 */
#define PVM_PD_COUNT                4
#define PVM_BOOT_CONFIG_GPA         0x8000ULL
#define PVM_CONSOLE_PAGE_GPA        0x9000ULL
#define PVM_FIRMWARE_BASE           0x10000ULL
#define PVM_FIRMWARE_END            0x80000ULL  /* exclusive */
#define PVM_FIRMWARE_STACK_BASE     0x80000ULL
#define PVM_FIRMWARE_STACK_TOP      0x90000ULL  /* initial rsp of vCPU 0 */
#define PVM_PAYLOAD_STAGING_GPA     0x100000ULL
#define PVM_PAYLOAD_STAGING_END     0x1000000ULL /* exclusive: staging is at most 15 MiB */
#define PVM_LOAD_WINDOW_START       0x1000000ULL
#define PVM_CONSOLE_MMIO_GPA        0xD0000000ULL

#define PVM_PAGE_SIZE               4096ULL
#define PVM_GRANULE                 4096ULL

/* GDT selectors */
#define PVM_SEL_CODE64              0x08
#define PVM_SEL_DATA                0x10
#define PVM_SEL_TSS                 0x18

/* Memory size limits (--memory) */
#define PVM_MIN_RAM                 (32ULL << 20)
#define PVM_MAX_RAM                 (3ULL << 30)
#define PVM_DEFAULT_RAM             (64ULL << 20)
#define PVM_RAM_ALIGN               (2ULL << 20)

/* ---- Hypercall conduit: `out %eax, $0xf1`; x0..x3 = rax, rbx, rcx, rdx ------------------- */
#define PVM_HVC_PORT                0xF1

/* ---- Function IDs ----------------------------------------------------------------------- */
#define SMCCC_VERSION_FID           0x80000000U
#define SMCCC_ARCH_FEATURES_FID     0x80000001U
#define KVM_VENDOR_UID_FID          0x8600FF01U
#define KVM_FEATURES_FID            0x86000000U
#define KVM_HYP_MEMINFO_FID         0xC6000002U
#define KVM_MEM_SHARE_FID           0xC6000003U
#define KVM_MEM_UNSHARE_FID         0xC6000004U
#define KVM_MMIO_GUARD_INFO_FID     0xC6000005U
#define KVM_MMIO_GUARD_ENROLL_FID   0xC6000006U
#define KVM_MMIO_GUARD_MAP_FID      0xC6000007U
#define KVM_MMIO_GUARD_UNMAP_FID    0xC6000008U
#define KVM_MEM_RELINQUISH_FID      0xC6000009U
#define PSCI_VERSION_FID            0x84000000U
#define PSCI_CPU_OFF_FID            0x84000002U
#define PSCI_CPU_ON_FID             0xC4000003U
#define PSCI_AFFINITY_INFO_FID      0xC4000004U
#define PSCI_SYSTEM_OFF_FID         0x84000008U
#define PSCI_SYSTEM_RESET_FID       0x84000009U
#define PSCI_FEATURES_FID           0x8400000AU

/* ---- Results (64-bit, sign-extended) ---------------------------------------------------- */
#define SMCCC_VERSION_1_1           0x10001ULL
#define PSCI_VERSION_1_1            0x10001ULL
#define SMCCC_RET_SUCCESS           0LL
#define SMCCC_RET_NOT_SUPPORTED     (-1LL)
#define SMCCC_RET_NOT_REQUIRED      (-2LL)
#define SMCCC_RET_INVALID_PARAMETER (-3LL)

#define PSCI_RET_SUCCESS            0LL
#define PSCI_RET_NOT_SUPPORTED      (-1LL)
#define PSCI_RET_INVALID_PARAMS     (-2LL)
#define PSCI_RET_DENIED             (-3LL)
#define PSCI_RET_ALREADY_ON         (-4LL)
#define PSCI_RET_ON_PENDING         (-5LL)
#define PSCI_RET_INTERNAL_FAILURE   (-6LL)
#define PSCI_RET_NOT_PRESENT        (-7LL)
#define PSCI_RET_DISABLED           (-8LL)
#define PSCI_RET_INVALID_ADDRESS    (-9LL)

/* AFFINITY_INFO results */
#define PSCI_AFFINITY_ON            0LL
#define PSCI_AFFINITY_OFF           1LL
#define PSCI_AFFINITY_ON_PENDING    2LL

/* KVM vendor hypervisor UID (x0..x3) */
#define KVM_UID_REG0                0xb66fb428ULL
#define KVM_UID_REG1                0xe911c52eULL
#define KVM_UID_REG2                0x564bcaa9ULL
#define KVM_UID_REG3                0x743a004dULL

/* ---- FEATURES bitmap (vendor function numbers 0-31) ------------------------------------- */
#define KVM_FEATURE_FEATURES        (1ULL << 0)
#define KVM_FEATURE_PTP             (1ULL << 1)  /* not offered by pvm */
#define KVM_FEATURE_HYP_MEMINFO     (1ULL << 2)
#define KVM_FEATURE_MEM_SHARE       (1ULL << 3)
#define KVM_FEATURE_MEM_UNSHARE     (1ULL << 4)
#define KVM_FEATURE_MMIO_GUARD_INFO (1ULL << 5)
#define KVM_FEATURE_MMIO_GUARD_ENROLL (1ULL << 6)
#define KVM_FEATURE_MMIO_GUARD_MAP  (1ULL << 7)
#define KVM_FEATURE_MMIO_GUARD_UNMAP (1ULL << 8)
#define KVM_FEATURE_MEM_RELINQUISH  (1ULL << 9)
#define KVM_FEATURES_MMIO_GUARD     (KVM_FEATURE_MMIO_GUARD_INFO | KVM_FEATURE_MMIO_GUARD_ENROLL | \
                                     KVM_FEATURE_MMIO_GUARD_MAP | KVM_FEATURE_MMIO_GUARD_UNMAP)
#define KVM_FEATURES_PROTECTED      0x3FDULL
#define KVM_FEATURES_NON_PROTECTED  0x205ULL

/* ---- Boot configuration (GPA 0x8000) ---------------------------------------------------- */
#define PVM_CONFIG_MAGIC            0x636d7670U  /* "pvmc" */
#define PVM_CONFIG_VERSION          0x00010000U  /* major << 16 | minor */
#define PVM_CONFIG_VERSION_MAJOR(v) ((v) >> 16)
#define PVM_CONFIG_SIZE             128U
#define PVM_CONFIG_FLAG_PROTECTED   (1U << 0)

/* payload_argument layout used by the bench image */
#define PVM_BENCH_ITERATIONS_MASK   ((1ULL << 48) - 1)
#define PVM_BENCH_MODE_SHIFT        48
#define PVM_BENCH_MODE_MASK         0xFFULL
#define PVM_BENCH_MODE_VERSION      0   /* N x SMCCC_VERSION */
#define PVM_BENCH_MODE_SHARE        1   /* N x (MEM_SHARE; MEM_UNSHARE) */

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

/* ---- Console device (MMIO at 0xD0000000) ------------------------------------------------ */
#define PVM_CONSOLE_REG_FLUSH       0x0   /* write, 4 bytes: print the first n bytes of the buffer */
#define PVM_CONSOLE_REG_BUFFER      0x8   /* write, 8 bytes: GPA of the buffer page */
#define PVM_CONSOLE_BUFFER_SIZE     4096U

/* ---- Block device (MMIO at 0xD0001000; docs/iommu.md) ------------------------------------- */
#define PVM_BLOCK_MMIO_GPA          0xD0001000ULL
#define PVM_BLOCK_REG_SECTOR        0x00  /* first 512-byte sector to read */
#define PVM_BLOCK_REG_ADDR          0x08  /* guest-physical address of the (shared) buffer */
#define PVM_BLOCK_REG_LEN           0x10  /* bytes, 1 .. 64 KiB */
#define PVM_BLOCK_REG_CMD           0x18  /* write 1: read from the disk into the buffer */
#define PVM_BLOCK_REG_STATUS        0x20  /* 0 idle, 1 busy, 2 done, 3 error (SMMU fault), 4 rejected */
#define PVM_BLOCK_REG_DONE          0x28  /* bytes landed so far */
#define PVM_BLOCK_REG_CHUNK         0x30  /* bytes per DMA chunk (default 512) */
#define PVM_BLOCK_REG_DELAY         0x38  /* microseconds between chunks (default 0) */
#define PVM_BLOCK_STATUS_BUSY       1
#define PVM_BLOCK_STATUS_DONE       2
#define PVM_BLOCK_STATUS_ERROR      3

/* Byte `offset` of the synthetic disk (GuestABI.blockByte). */
#define PVM_BLOCK_BYTE(offset) ((unsigned char)((((offset) >> 9) * 31) + (offset) * 7 + 0x5A))

/* ---- DMA engine assigned to the guest (MMIO at 0xD0002000); addresses are IPAs ----------- */
#define PVM_DMA_MMIO_GPA            0xD0002000ULL
#define PVM_DMA_REG_SRC             0x00
#define PVM_DMA_REG_DST             0x08
#define PVM_DMA_REG_LEN             0x10
#define PVM_DMA_REG_FILL            0x18
#define PVM_DMA_REG_CMD             0x20  /* write 1 = copy, 2 = fill; done when the write returns */
#define PVM_DMA_REG_STATUS          0x28  /* 0 done, 3 SMMU fault, 4 rejected */
#define PVM_DMA_REG_DONE            0x30  /* bytes written */

#endif /* PVM_ABI_H */
