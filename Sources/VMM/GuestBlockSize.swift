import EL2

/// The stage-2 leaf a protected guest's private memory is donated and mapped with on first
/// touch (`--guest-block 4k|2m|1g`). The host's own views (its stage-2, the VMM's mapping of
/// the memory file) stay page by page whatever the choice (docs/guest-first-memory.md).
public enum GuestBlockSize: String, Sendable, CaseIterable, CustomStringConvertible {
    case page = "4k"
    case block2M = "2m"
    case block1G = "1g"

    /// Pages in one leaf.
    public var pages: UInt64 {
        switch self {
        case .page: 1
        case .block2M: 512
        case .block1G: 512 * 512
        }
    }

    public var description: String { rawValue }
}

/// How the host keeps a device's DMA away from memory a guest takes back (`--host-pins`).
public enum HostPinMode: String, Sendable, CaseIterable, CustomStringConvertible {
    /// pvm's default: EL2 unmaps a page from every IOMMU when its owner changes, so the host
    /// needs no pin and conversions never wait for one.
    case none
    /// The host's devices take long-term pins on the shared pages they map (VFIO's
    /// FOLL_LONGTERM), registered with EL2: converting or unsharing such a page fails with
    /// -EBUSY until the device lets go; a short-term reference (GUP-fast) makes a host
    /// conversion fail once with -EAGAIN.
    case longterm

    public var description: String { rawValue }
}
