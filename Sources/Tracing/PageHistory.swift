/// The life of one physical page through a trace (`pvm trace --follow PFN`): every event that
/// touches it, and after each one that changes a view, what the host stage-2, the guest
/// stage-2s and the SMMU domains now say about it. The views are rebuilt from the `stage2` and
/// `iommu` events, the same updates EL2 wrote into the tables.
public struct PageHistory: Sendable {
    public let pfn: UInt64
    /// Host stage-2 view; pages start host-owned and mapped on demand (boot default).
    public private(set) var host = "OWNED (boot default)"
    /// Guest stage-2 views, by VMID.
    public private(set) var guests: [UInt64: String] = [:]
    /// SMMU domains mapping the page, by domain ID.
    public private(set) var domains: [UInt64: String] = [:]
    private var sawMachine = false

    public init(pfn: UInt64) { self.pfn = pfn }

    /// "host OWNED rwx | vmid 1 OWNED rwx at 0x1007000 | DMA identity rw".
    public var summary: String {
        var parts = ["host \(host)"]
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
            case "map": "\(r.string("state") ?? "?") \(r.string("prot") ?? "")"
            case "map-device": "device"
            case "annotate": "NOPAGE owner=\(r.string("owner") ?? "?")"
            default: nil
            }
            if vmid == 0 {
                host = view ?? "unmapped"
            } else {
                let ipa = r["pa"] != nil ? start + (page - (r.unsigned("pa") ?? page)) : guestIPA(vmid, resolver) ?? start
                guests[vmid] = view.map { "\($0) at IPA 0x\(String(ipa, radix: 16))" } ?? "none"
            }
        case .iommu:
            guard let domain = r.unsigned("domain") else { break }
            if r.string("op") == "map" { domains[domain] = "\(domain == 0 ? "identity " : "")\(r.string("prot") ?? "")" }
            if r.string("op") == "unmap" { domains[domain] = nil }
        default:
            break
        }
        return summary != before
    }

    /// The IPA at which guest `vmid` sees this page, if it is that guest's RAM.
    private func guestIPA(_ vmid: UInt64, _ resolver: TracePageResolver) -> UInt64? {
        guard let m = resolver.soleMachine, m.vmid == vmid, pfn >= m.guestRAMBase >> 12 else { return nil }
        let gfn = pfn - (m.guestRAMBase >> 12)
        return gfn < m.guestMemory >> 12 ? gfn << 12 : nil
    }
}
