/// Which way a DMA transaction goes, from the device's side.
public enum DMAAccess: String, Sendable, CustomStringConvertible {
    /// The device reads memory (SMMU event RnW = 1).
    case read
    /// The device writes memory.
    case write

    public var description: String { rawValue }
}

/// One record of the SMMU event queue: the architectural fields of an SMMUv3 event (spec
/// stage2-iommu.md section 11.4, Linux `arm-smmu-v3.h` EVT_*), plus what pvm adds for people
/// studying ownership: the page's owner and every side's state at the moment of the fault.
public struct IOMMUEvent: Sendable, Equatable, CustomStringConvertible {
    /// SMMUv3 event IDs (EVTQ_0_ID).
    public enum ID: UInt8, Sendable, CustomStringConvertible {
        case badStreamID = 0x02
        case badSTE = 0x04
        case translation = 0x10
        case addressSize = 0x11
        case accessFlag = 0x12
        case permission = 0x13

        public var description: String {
            switch self {
            case .badStreamID: "C_BAD_STREAMID"
            case .badSTE: "C_BAD_STE"
            case .translation: "F_TRANSLATION"
            case .addressSize: "F_ADDR_SIZE"
            case .accessFlag: "F_ACCESS"
            case .permission: "F_PERMISSION"
            }
        }
    }

    public let id: ID
    public let stream: StreamID
    /// The input address (the IOVA; equal to the IPA since stage 1 is bypassed).
    public let iova: UInt64
    public let access: DMAAccess
    /// Bytes the faulting transaction asked for.
    public let size: Int
    /// The domain the STE selected, when there was one.
    public let domain: IOMMUDomainID?
    /// The page and its owner and states when EL2 recorded the fault.
    public let ownership: PageOwnership?

    public init(id: ID, stream: StreamID, iova: UInt64, access: DMAAccess, size: Int,
                domain: IOMMUDomainID?, ownership: PageOwnership?) {
        self.id = id
        self.stream = stream
        self.iova = iova
        self.access = access
        self.size = size
        self.domain = domain
        self.ownership = ownership
    }

    /// True for the stage-2 translation faults (0x10 to 0x13), which set EVTQ_1_S2.
    public var isStage2Fault: Bool { id.rawValue >= 0x10 }

    /// The 32-byte record as the SMMU writes it to the event queue:
    /// dword 0 = EventID [7:0] | StreamID [63:32]; dword 1 = RnW bit 35 | S2 bit 39 |
    /// CLASS [41:40] (2 = input address); dword 2 = InputAddr; dword 3 = IPA [51:12].
    public var dwords: (UInt64, UInt64, UInt64, UInt64) {
        let d0 = UInt64(id.rawValue) | UInt64(stream.rawValue) << 32
        var d1: UInt64 = 0
        if access == .read { d1 |= 1 << 35 }
        if isStage2Fault { d1 |= 1 << 39 | 2 << 40 }
        let d3 = isStage2Fault ? iova & 0x000F_FFFF_FFFF_F000 : 0
        return (d0, d1, iova, d3)
    }

    public var description: String {
        var s = "\(id) \(stream) iova=\(hex(iova)) \(access) size=\(size)"
        if let domain { s += " \(domain)" }
        if let ownership { s += " [\(ownership)]" }
        return s
    }
}
