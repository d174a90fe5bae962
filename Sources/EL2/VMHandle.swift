/// The handle by which the host names a guest to EL2, as pKVM's `pkvm_handle_t`.
///
/// pKVM hands out `HANDLE_OFFSET + index` with `HANDLE_OFFSET = 0x1000` so that a zero or small
/// integer passed by a confused host never names a VM. The 16-bit value is also what a host
/// stage-2 DONATION annotation records as the owning VM (PTE bits 19:4).
public struct VMHandle: RawRepresentable, Hashable, Comparable, Sendable, CustomStringConvertible {
    public var rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }

    /// pKVM's `HANDLE_OFFSET`.
    public static let offset: UInt16 = 0x1000

    public static func < (a: VMHandle, b: VMHandle) -> Bool { a.rawValue < b.rawValue }
    public var description: String { hex(rawValue) }
}

/// A stage-2 VMID: the tag TLB entries carry, and what every TLB invalidation names
/// (VTTBR_EL2.VMID, Arm ARM D8.16). VMID 0 belongs to the host's stage-2.
public struct VMID: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public var rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }
    public static let host = VMID(rawValue: 0)
    public var description: String { String(rawValue) }
}
