/// The numbers of pvm's x86-64 guest ABI (docs/abi.md): the guest-physical layout, the
/// hypercall conduit, the SMCCC / PSCI function IDs of pKVM's guest ABI
/// (include/linux/arm-smccc.h, ../shared/spec/pkvm-ownership.md section 10), and the boot
/// configuration. The guest side has the same numbers in GuestImages/include/pvm_abi.h.
public enum GuestABI {
    // MARK: Layout (guest-physical addresses)

    public static let gdt: UInt64 = 0x1000
    public static let pml4: UInt64 = 0x2000
    public static let pdpt: UInt64 = 0x3000
    /// Four page directories: 0–4 GiB identity-mapped with 2 MiB pages.
    public static let pageDirectories: UInt64 = 0x4000
    public static let bootConfig: UInt64 = 0x8000
    public static let consolePage: UInt64 = 0x9000
    public static let firmwareWindow: Range<UInt64> = 0x1_0000 ..< 0x8_0000
    public static let firmwareStackTop: UInt64 = 0x9_0000
    public static let payloadStaging: UInt64 = 0x10_0000
    public static let payloadStagingEnd: UInt64 = 0x100_0000
    public static let payloadWindowStart: UInt64 = 0x100_0000
    public static let consoleMMIO: UInt64 = 0xD000_0000
    /// The virtio-style block device's registers (one page).
    public static let blockMMIO: UInt64 = 0xD000_1000
    /// The DMA engine assigned to the guest (one page).
    public static let dmaMMIO: UInt64 = 0xD000_2000

    /// Byte `offset` of the block device's synthetic disk (GuestImages/include/pvm_abi.h has
    /// the same formula).
    @inline(__always) public static func blockByte(_ offset: UInt64) -> UInt8 {
        UInt8(truncatingIfNeeded: (offset >> 9) &* 31 &+ offset &* 7 &+ 0x5A)
    }

    /// Guest RAM bounds for `--memory`.
    public static let minimumMemory: UInt64 = 32 << 20
    public static let maximumMemory: UInt64 = 3 << 30
    public static let memoryAlignment: UInt64 = 2 << 20

    /// Guest-physical pages the VMM writes before the first instruction and donates up front:
    /// the GDT, page tables and boot configuration (the CPU walks the tables before any exit
    /// could donate them).
    public static let bootStructurePages: Range<UInt64> = 0x1 ..< 0x9

    // MARK: Hypercall conduit

    /// `out $0xf1, %eax` is pvm's x86 stand-in for `HVC #0`; x0..x3 = rax, rbx, rcx, rdx.
    public static let hypercallPort: UInt16 = 0xF1

    // MARK: Console device registers (MMIO)

    public static let consoleFlush: UInt64 = 0x0
    public static let consoleBuffer: UInt64 = 0x8

    // MARK: Boot configuration

    public static let configMagic: UInt32 = 0x636d_7670  // "pvmc"
    public static let configVersion: UInt32 = 0x0001_0000
    public static let configSize = 128
    public static let configFlagProtected: UInt32 = 1

    /// The SMCCC vendor-hyp FEATURES bitmap (bits = function numbers 0–31).
    public static let protectedFeatures: UInt64 = 0x3FD
    public static let nonProtectedFeatures: UInt64 = 0x205

    /// KVM's vendor-hyp UID, 28b46fb6-2ec5-11e9-a9ca-4b564d003a74, as SMCCC returns it.
    public static let kvmUID: (UInt64, UInt64, UInt64, UInt64) = (0xb66f_b428, 0xe911_c52e, 0x564b_caa9, 0x743a_004d)

    /// The protection granule HYP_MEMINFO and MMIO_GUARD_INFO report.
    public static let granule: UInt64 = 4096
}

/// SMCCC function IDs pvm's EL2 and VMM answer (arm-smccc.h, the pKVM vendor-hyp range, PSCI).
public enum SMCCCFunction: UInt32, Sendable, CaseIterable {
    case version = 0x8000_0000
    case archFeatures = 0x8000_0001
    case vendorHypFeatures = 0x8600_0000
    case vendorHypUID = 0x8600_FF01
    case hypMemInfo = 0xC600_0002
    case memShare = 0xC600_0003
    case memUnshare = 0xC600_0004
    case mmioGuardInfo = 0xC600_0005
    case mmioGuardEnroll = 0xC600_0006
    case mmioGuardMap = 0xC600_0007
    case mmioGuardUnmap = 0xC600_0008
    case memRelinquish = 0xC600_0009
    case psciVersion = 0x8400_0000
    case psciCPUOff = 0x8400_0002
    case psciCPUOn = 0xC400_0003
    case psciAffinityInfo = 0xC400_0004
    case psciSystemOff = 0x8400_0008
    case psciSystemReset = 0x8400_0009
    case psciFeatures = 0x8400_000A

    /// The name used in traces and docs.
    public var name: String {
        switch self {
        case .version: "SMCCC_VERSION"
        case .archFeatures: "SMCCC_ARCH_FEATURES"
        case .vendorHypFeatures: "KVM_FEATURES"
        case .vendorHypUID: "KVM_UID"
        case .hypMemInfo: "HYP_MEMINFO"
        case .memShare: "MEM_SHARE"
        case .memUnshare: "MEM_UNSHARE"
        case .mmioGuardInfo: "MMIO_GUARD_INFO"
        case .mmioGuardEnroll: "MMIO_GUARD_ENROLL"
        case .mmioGuardMap: "MMIO_GUARD_MAP"
        case .mmioGuardUnmap: "MMIO_GUARD_UNMAP"
        case .memRelinquish: "MEM_RELINQUISH"
        case .psciVersion: "PSCI_VERSION"
        case .psciCPUOff: "PSCI_CPU_OFF"
        case .psciCPUOn: "PSCI_CPU_ON"
        case .psciAffinityInfo: "PSCI_AFFINITY_INFO"
        case .psciSystemOff: "PSCI_SYSTEM_OFF"
        case .psciSystemReset: "PSCI_SYSTEM_RESET"
        case .psciFeatures: "PSCI_FEATURES"
        }
    }
}

/// SMCCC and PSCI return codes, as 64-bit register values.
public enum SMCCCResult {
    public static let success: UInt64 = 0
    public static let notSupported = UInt64(bitPattern: -1)
    public static let notRequired = UInt64(bitPattern: -2)
    public static let invalidParameter = UInt64(bitPattern: -3)
    /// PSCI's codes where they differ.
    public static let psciInvalidParameters = UInt64(bitPattern: -2)
    public static let psciAlreadyOn = UInt64(bitPattern: -4)
    /// SMCCC 1.1 and PSCI 1.1.
    public static let version1_1: UInt64 = 0x1_0001
}
