/// EL2's metadata for one physical page, in the spirit of pKVM's `struct hyp_page`: 8 bytes.
///
/// | bytes | field | pKVM |
/// |---|---|---|
/// | 0–1 | `refcount` | `refcount`: hyp pins; for a page-table page, its count of non-zero entries |
/// | 2 | `use` | (pKVM: buddy `order`; pvm has no buddy allocator and records what EL2 uses the page for) |
/// | 3 | host state (bits 3:0), hyp state XOR 3 (bits 7:4) | `__host_state`, `__hyp_state_comp` |
/// | 4–7 | `hostShareGuestCount` | `host_share_guest_count` |
///
/// The hyp state is stored XOR 3 exactly as pKVM does, so an all-zero entry decodes as host
/// `OWNED`, hyp `NOPAGE`: the state of every page at boot.
public struct HypPage: Sendable, Equatable {
    public var refcount: UInt16 = 0
    public var use: HypPageUse = .none
    @usableFromInline var stateBits: UInt8 = 0
    public var hostShareGuestCount: UInt32 = 0

    public init() {}

    /// The host's state for this page (`hyp_page.__host_state`).
    @inlinable public var hostState: PageState {
        get { PageState(rawValue: stateBits & 0xF) ?? .noPage }
        set { stateBits = (stateBits & 0xF0) | newValue.rawValue }
    }

    /// The hypervisor's state for this page (`hyp_page.__hyp_state_comp ^ 3`).
    @inlinable public var hypState: PageState {
        get { PageState(rawValue: (stateBits >> 4) ^ 3) ?? .noPage }
        set { stateBits = (stateBits & 0x0F) | ((newValue.rawValue ^ 3) << 4) }
    }
}

/// What a hyp-owned page is used for. pvm records it in the byte pKVM spends on the buddy
/// allocator's `order`, so that inspection and the invariant checker can account for every page
/// the hypervisor holds.
public enum HypPageUse: UInt8, Sendable, CustomStringConvertible {
    /// Not used by EL2, or donated by `host_donate_hyp` for no recorded purpose.
    case none = 0
    /// A free page in the host stage-2 page-table pool (pKVM's `host_s2_pool`).
    case hostPoolFree = 1
    /// A table page of the host stage-2.
    case hostTable = 2
    /// A free page in a VM's page-table pool (the memcache the host tops up).
    case guestPoolFree = 3
    /// A table page of a guest stage-2, including its concatenated PGD pages.
    case guestTable = 4
    /// A page holding EL2's structure for a VM (pKVM's `struct pkvm_hyp_vm`).
    case vmMetadata = 5
    /// A table page of an SMMU domain EL2 owns (the host identity domain, a host paging domain).
    case iommuTable = 6
    /// A free page in the SMMU's page-table pool.
    case iommuPoolFree = 7
    /// A page of the SMMU stream table (STRTAB_BASE).
    case streamTable = 8

    public var description: String {
        switch self {
        case .none: "none"
        case .hostPoolFree: "host-pool"
        case .hostTable: "host-s2-table"
        case .guestPoolFree: "vm-pool"
        case .guestTable: "vm-s2-table"
        case .vmMetadata: "vm-metadata"
        case .iommuTable: "iommu-table"
        case .iommuPoolFree: "iommu-pool"
        case .streamTable: "smmu-stream-table"
        }
    }
}
