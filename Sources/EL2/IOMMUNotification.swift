/// What the SMMU reports to an `EL2EventSink`: configuration changes, mappings EL2 writes into
/// its own domains, IOTLB invalidations and recorded faults. The trace records each one.
public enum IOMMUNotification: Sendable, CustomStringConvertible {
    /// A stream's STE now selects `domain` (CFGI_STE + CMD_SYNC done).
    case attached(StreamID, IOMMUDomainID, IOMMUDomain.Kind)
    /// A stream's STE was cleared (V = 0): its transactions now get C_BAD_STE.
    case detached(StreamID)
    /// EL2 mapped `[iova, iova + size)` to `output` in a domain it writes (identity, paging).
    case mapped(IOMMUDomainID, iova: UInt64, output: PhysAddr, size: UInt64, permissions: Stage2Permissions)
    /// EL2 unmapped `[iova, iova + size)` from a domain it writes.
    case unmapped(IOMMUDomainID, iova: UInt64, size: UInt64)
    /// TLBI_S2_IPA (or TLBI_S12_VMALL) for the domain's VMID, then CMD_SYNC: no device uses the
    /// old translations once this is reported.
    case iotlbInvalidated(IOMMUDomainID, iova: UInt64, size: UInt64)
    /// A transaction faulted; the record went to the event queue.
    case fault(IOMMUEvent)

    public var description: String {
        switch self {
        case .attached(let s, let d, let k): "attach \(s) \(d) (\(k))"
        case .detached(let s): "detach \(s)"
        case .mapped(let d, let iova, let out, let size, let p):
            "map \(d) iova=\(hex(iova)) pa=\(out) size=\(hex(size)) prot=\(p)"
        case .unmapped(let d, let iova, let size): "unmap \(d) iova=\(hex(iova)) size=\(hex(size))"
        case .iotlbInvalidated(let d, let iova, let size): "iotlbi \(d) iova=\(hex(iova)) size=\(hex(size))"
        case .fault(let e): "fault \(e)"
        }
    }
}
