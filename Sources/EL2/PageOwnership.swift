/// Who owns a physical page and what every side's state is, captured at one moment (a fault, a
/// refused access): what an IOMMU event record and a fault trace carry beyond the architectural
/// fields, so a reader sees why the access failed.
public struct PageOwnership: Sendable, Equatable, CustomStringConvertible {
    /// The page's owner by EL2's records.
    public enum Owner: Sendable, Equatable, CustomStringConvertible {
        case host
        case hyp
        /// Donated to a guest: the host stage-2 annotation names the VM and the gfn.
        case guest(VMHandle, GFN)
        /// The address is not RAM (MMIO or nothing).
        case notRAM

        public var description: String {
            switch self {
            case .host: "host"
            case .hyp: "hyp"
            case .guest(let h, let g): "vm \(h) gfn \(g)"
            case .notRAM: "not-ram"
            }
        }
    }

    /// The physical page; nil when the faulting address had no output address (a translation
    /// fault in a guest or paging domain).
    public var page: PhysAddr?
    /// Nil when no page was identified.
    public var owner: Owner?
    /// Host state (`hyp_page.__host_state`); nil when not RAM.
    public var host: PageState?
    /// Hyp state; nil when not RAM.
    public var hyp: PageState?
    /// The state in the faulting guest's stage-2 at the faulting IPA, when a guest's table was
    /// walked.
    public var guest: PageState?

    public init(page: PhysAddr?, owner: Owner?, host: PageState? = nil, hyp: PageState? = nil, guest: PageState? = nil) {
        self.page = page
        self.owner = owner
        self.host = host
        self.hyp = hyp
        self.guest = guest
    }

    public var description: String {
        var parts: [String] = []
        if let page { parts.append("pa=\(page)") }
        if let owner { parts.append("owner=\(owner)") }
        if let host { parts.append("host=\(host)") }
        if let hyp { parts.append("hyp=\(hyp)") }
        if let guest { parts.append("guest=\(guest)") }
        return parts.joined(separator: " ")
    }
}

extension Hypervisor {
    /// The ownership of the page at `pa`, read under the host lock the caller holds: the host
    /// and hyp states from the vmemmap and, for a donated page, the owner the host stage-2
    /// annotation records.
    func ownershipLocked(_ pa: PhysAddr, guest: PageState? = nil) -> PageOwnership {
        let page = PhysAddr(pa.rawValue & ~(pageSize - 1))
        guard let i = memory.pageIndex(page) else { return PageOwnership(page: page, owner: .notRAM, guest: guest) }
        let p = vmemmap[i]
        var owner: PageOwnership.Owner = .host
        if p.hostState == .noPage {
            let (d, _) = hostStage2.leaf(at: IPA(page.rawValue))
            switch d.annotationOwner {
            case .guest:
                let (h, g) = GuestOwnerMeta.decode(d.annotationMeta)
                owner = .guest(h, g)
            case .hyp: owner = .hyp
            default: owner = p.hypState == .owned ? .hyp : .host
            }
        }
        return PageOwnership(page: page, owner: owner, host: p.hostState, hyp: p.hypState, guest: guest)
    }

    /// The ownership of the page at `pa` now (takes the host lock).
    public func ownership(of pa: PhysAddr) -> PageOwnership {
        hostLock.withLock { _ in ownershipLocked(pa) }
    }
}
