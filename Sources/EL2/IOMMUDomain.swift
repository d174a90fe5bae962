/// An SMMU translation domain's number: the S2VMID its Stream Table Entries carry, which tags
/// its IOTLB entries (SMMUv3 STE.S2VMID). Android's pKVM numbers domains the same way
/// (`kvm_iommu_alloc_domain(domain_id, ...)`), with `KVM_IOMMU_DOMAIN_IDMAP_ID` = 0 reserved for
/// the identity domain.
public struct IOMMUDomainID: RawRepresentable, Hashable, Comparable, Sendable, CustomStringConvertible {
    public var rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }
    public init(_ value: UInt16) { self.rawValue = value }

    /// The host identity domain (`KVM_IOMMU_DOMAIN_IDMAP_ID`).
    public static let identity = IOMMUDomainID(rawValue: 0)
    /// Paging domains the host may allocate: 1 ..< `firstGuest`.
    public static let hostRange: Range<UInt16> = 1..<0x8000
    /// Domains EL2 creates for device assignment: `firstGuest + VMID`.
    public static let firstGuest: UInt16 = 0x8000

    /// The domain EL2 creates when a device is assigned to the guest with `vmid`.
    public static func guest(_ vmid: VMID) -> IOMMUDomainID { IOMMUDomainID(rawValue: firstGuest | vmid.rawValue) }

    public static func < (a: IOMMUDomainID, b: IOMMUDomainID) -> Bool { a.rawValue < b.rawValue }
    public var description: String { rawValue < Self.firstGuest ? "domain \(rawValue)" : "domain \(hex(rawValue))" }
}

/// One SMMU translation domain: a stage-2 table in the CPU's format (SMMUv3 IHI 0070
/// 3.3.2: stage 2 uses the VMSAv8-64 stage-2 format) that the Stream Table Entries of its attached streams point at.
///
/// Three kinds, after pKVM's designs:
/// - `identity`: the host's DMA domain in `IOMMUMode.mirror`, a table EL2 keeps equal to what
///   the host stage-2 lets the host reach (PKVM-v4 "Shadow host stage-2"). Guarded by the host
///   lock, because it changes in the same commit as the host stage-2.
/// - `paging`: a host-managed domain in `IOMMUMode.refcount` (Android `kvm_iommu_ops`): the host
///   maps and unmaps, EL2 refcounts every mapped page. Guarded by the SMMU's configuration lock.
/// - `guest`: device assignment. The STE points at the guest's own stage-2, so the device sees
///   exactly what the guest's CPU sees. Guarded by the VM's lock, like the table itself.
public final class IOMMUDomain: @unchecked Sendable {
    public enum Kind: Sendable, Equatable, CustomStringConvertible {
        case identity
        case paging
        case guest(VMHandle)

        public var description: String {
            switch self {
            case .identity: "identity"
            case .paging: "paging"
            case .guest(let h): "guest \(h)"
            }
        }
    }

    public let id: IOMMUDomainID
    public let kind: Kind
    /// The translation table (for a guest domain, the guest's stage-2 itself).
    let table: Stage2PageTable
    /// The guest whose stage-2 this domain uses.
    let vm: GuestVM?
    /// Streams whose STE selects this domain. Guarded by the SMMU configuration lock.
    var streams: Set<StreamID> = []

    init(id: IOMMUDomainID, kind: Kind, table: Stage2PageTable, vm: GuestVM? = nil) {
        self.id = id
        self.kind = kind
        self.table = table
        self.vm = vm
    }
}
