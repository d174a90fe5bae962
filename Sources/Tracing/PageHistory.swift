/// The life of one physical page through a trace (`pvm trace --follow PFN`): every event that
/// touches it, and after each one that changes a view, what the host stage-2, the guest
/// stage-2s and the SMMU domains now say about it. The views are rebuilt from the `stage2` and
/// `iommu` events, the same updates EL2 wrote into the tables.
public struct PageHistory: Sendable {
    public let pfn: UInt64
    /// The host's page state (`hyp_page.__host_state`), from the transitions and the states
    /// fault records carry; pages start host-owned.
    public private(set) var hostState = "OWNED"
    /// The host stage-2 entry: mapped with rights, annotated with an owner, or not yet mapped
    /// (the host maps its memory on demand).
    public private(set) var hostEntry = "(boot default)"
    /// Guest stage-2 views, by VMID.
    public private(set) var guests: [UInt64: String] = [:]
    /// SMMU domains mapping the page, by domain ID.
    public private(set) var domains: [UInt64: String] = [:]
    private var sawMachine = false

    public init(pfn: UInt64) { self.pfn = pfn }

    /// "host OWNED rwx | vmid 1 OWNED rwx at 0x1007000 | DMA identity rw".
    public var summary: String {
        var parts = ["host \(hostState) \(hostEntry)"]
        parts += guests.keys.sorted().map { "vmid \($0) \(guests[$0]!)" }
        parts.append(domains.isEmpty ? "DMA none" : "DMA " + domains.keys.sorted().map { "domain \($0) \(domains[$0]!)" }.joined(separator: ", "))
        return parts.joined(separator: " | ")
    }

    /// Applies `r` (which touches the page); returns true when a view changed.
    public mutating func apply(_ r: TraceRecord, _ resolver: TracePageResolver) -> Bool {
        let before = summary
        let page = pfn << 12
        switch r.kind {
        case .machine:
            if !sawMachine, r.string("iommu") == "mirror" { domains[0] = "identity rw (mirror: follows the host stage-2)" }
            sawMachine = true
        case .stage2:
            guard let vmid = r.unsigned("vmid"), let start = r.unsigned("start") else { break }
            let op = r.string("op") ?? "?"
            let view: String? = switch op {
            case "map": vmid == 0 ? "mapped \(r.string("prot") ?? "")" : "\(r.string("state") ?? "?") \(r.string("prot") ?? "")"
            case "map-device": "device"
            case "annotate": "owner=\(r.string("owner") ?? "?")"
            default: nil
            }
            if vmid == 0 {
                hostEntry = view ?? "unmapped"
                if op == "annotate" { hostState = "NOPAGE" }
            } else {
                let pa = (r.unsigned("pa") ?? page) & ~0xfff
                let ipa = r["pa"] != nil ? start &+ (page &- pa) : guestIPA(vmid, resolver) ?? start
                guests[vmid] = view.map { "\($0) at IPA 0x\(String(ipa, radix: 16))" } ?? "none"
            }
        case .transition:
            if r.string("result") == "0", let op = r.string("op"), let state = Self.hostStateAfter[op] { hostState = state }
        case .fault, .hostFault:
            // A fault record holds the states before EL2 acted; after a refusal they still hold.
            if let state = r.string("host"), !["donated", "shared"].contains(r.string("action") ?? "") { hostState = state }
        case .iommu:
            guard let domain = r.unsigned("domain") else { break }
            if r.string("op") == "map" { domains[domain] = "\(domain == 0 ? "identity " : "")\(r.string("prot") ?? "")" }
            if r.string("op") == "unmap" { domains[domain] = nil }
        default:
            break
        }
        return summary != before
    }

    /// The host state a successful transition leaves the page in (pKVM's mem_protect.c).
    static let hostStateAfter: [String: String] = [
        "host_donate_guest": "NOPAGE", "host_share_guest": "SHARED_OWNED", "host_unshare_guest": "OWNED",
        "guest_share_host": "SHARED_BORROWED", "guest_unshare_host": "NOPAGE", "guest_relinquish_to_host": "OWNED",
        "reclaim_dying_guest_page": "OWNED", "host_reclaim_page_guest": "OWNED", "host_force_reclaim_page_guest": "OWNED",
        "host_share_hyp": "SHARED_OWNED", "host_unshare_hyp": "OWNED", "host_donate_hyp": "NOPAGE", "hyp_donate_host": "OWNED",
        "host_share_ffa": "SHARED_OWNED", "host_unshare_ffa": "OWNED",
    ]

    /// The IPA at which guest `vmid` sees this page, if it is that guest's RAM.
    private func guestIPA(_ vmid: UInt64, _ resolver: TracePageResolver) -> UInt64? {
        guard let m = resolver.soleMachine, m.vmid == vmid else { return nil }
        return m.gfn(pfn: pfn).map { $0 << 12 }
    }
}
