/// An SMMUv3 Stream Table Entry, 64 bytes (8 doublewords), as EL2 writes it into the stream
/// table for a stage-2-only SMMU (Arm SMMUv3 IHI 0070, 5.2 "Stream Table Entry"; Linux
/// `arm_smmu_make_s2_domain_ste`, pKVM's hypervisor driver):
///
/// | dword | bits | field |
/// |---|---|---|
/// | 0 | 0 | V |
/// | 0 | 3:1 | Config: 0 abort, 4 bypass, 6 stage-2 translate |
/// | 1 | 45:44 | SHCFG = 1 (use incoming) |
/// | 2 | 15:0 | S2VMID |
/// | 2 | 50:32 | VTCR (S2T0SZ, S2SL0, S2IR0, S2OR0, S2SH0, S2TG, S2PS) |
/// | 2 | 51 | S2AA64 |
/// | 2 | 58 | S2R (record faults) |
/// | 3 | 51:4 | S2TTB |
///
/// Only the dwords pvm uses are stored; dwords 4 to 7 are zero.
public struct StreamTableEntry: Hashable, Sendable, CustomStringConvertible {
    public var dword0: UInt64 = 0
    public var dword1: UInt64 = 0
    public var dword2: UInt64 = 0
    public var dword3: UInt64 = 0

    /// Bytes per STE.
    public static let size = 64

    /// STE.Config values.
    public enum Config: UInt8, Sendable {
        case abort = 0
        case bypass = 4
        case stage1 = 5
        case stage2 = 6
        case nested = 7
    }

    static let validBit: UInt64 = 1
    static let shcfgIncoming: UInt64 = 1 << 44
    static let vtcrShift: UInt64 = 32
    static let vtcrMask: UInt64 = (1 << 19) - 1
    static let s2aa64Bit: UInt64 = 1 << 51
    static let s2rBit: UInt64 = 1 << 58
    static let ttbMask: UInt64 = 0x000F_FFFF_FFFF_FFF0  // bits 51:4

    public init() {}

    public init(dword0: UInt64, dword1: UInt64, dword2: UInt64, dword3: UInt64) {
        self.dword0 = dword0
        self.dword1 = dword1
        self.dword2 = dword2
        self.dword3 = dword3
    }

    /// The STE pKVM writes for a stage-2 domain: V, Config = 6, SHCFG incoming, the VTCR the
    /// CPU uses, S2VMID = the domain, S2AA64, S2R, and S2TTB = the table's base.
    public static func stage2(domain: IOMMUDomainID, vtcr: UInt64, root: PhysAddr) -> StreamTableEntry {
        StreamTableEntry(dword0: validBit | UInt64(Config.stage2.rawValue) << 1,
                         dword1: shcfgIncoming,
                         dword2: UInt64(domain.rawValue) | (vtcr & vtcrMask) << vtcrShift | s2aa64Bit | s2rBit,
                         dword3: root.rawValue & ttbMask)
    }

    public var isValid: Bool { dword0 & Self.validBit != 0 }
    /// STE.Config; nil for the reserved encodings.
    public var config: Config? { Config(rawValue: UInt8((dword0 >> 1) & 7)) }
    public var s2vmid: IOMMUDomainID { IOMMUDomainID(rawValue: UInt16(truncatingIfNeeded: dword2)) }
    /// The VTCR_EL2-format field (bits 18:0 of VTCR).
    public var vtcr: UInt64 { (dword2 >> Self.vtcrShift) & Self.vtcrMask }
    public var s2ttb: PhysAddr { PhysAddr(dword3 & Self.ttbMask) }
    public var recordsFaults: Bool { dword2 & Self.s2rBit != 0 }

    public var description: String {
        guard isValid else { return "STE V=0" }
        guard let config else { return "STE V=1 Config=reserved" }
        switch config {
        case .stage2:
            return "STE V=1 Config=S2 S2VMID=\(s2vmid.rawValue) VTCR=\(hex(vtcr)) S2TTB=\(s2ttb)"
                + (dword2 & Self.s2aa64Bit != 0 ? " S2AA64" : "") + (recordsFaults ? " S2R" : "")
        default:
            return "STE V=1 Config=\(config)"
        }
    }
}
