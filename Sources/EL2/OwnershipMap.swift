/// One RAM page as an ownership picture shows it: who owns it, every side's state, and who
/// else can reach it (a guest stage-2, an SMMU domain).
public struct PageSummary: Sendable, Equatable {
    public var owner: PageOwnership.Owner
    public var host: PageState
    public var hyp: PageState
    /// What EL2 uses the page for, when it owns it.
    public var use: HypPageUse
    public var refcount: UInt16
    /// The guest whose stage-2 maps the page, the frame it maps it at, and its state there.
    public var guestVM: VMHandle?
    public var gfn: GFN?
    public var guestState: PageState?
    /// SMMU domains other than the identity domain that map the page (paging domains, and
    /// guest domains of assigned devices).
    public var dmaDomains: [IOMMUDomainID]
    /// The host's identity domain maps the page: a host device can DMA to it.
    public var identityDMA: Bool

    public init(owner: PageOwnership.Owner, host: PageState, hyp: PageState, use: HypPageUse = .none, refcount: UInt16 = 0,
                guestVM: VMHandle? = nil, gfn: GFN? = nil, guestState: PageState? = nil,
                dmaDomains: [IOMMUDomainID] = [], identityDMA: Bool = false) {
        self.owner = owner
        self.host = host
        self.hyp = hyp
        self.use = use
        self.refcount = refcount
        self.guestVM = guestVM
        self.gfn = gfn
        self.guestState = guestState
        self.dmaDomains = dmaDomains
        self.identityDMA = identityDMA
    }
}

/// Every RAM page's ownership at one moment, for `pvm inspect` and `pvm model`'s `inspect`:
/// the vmemmap, the host stage-2 annotations, every guest stage-2 and every SMMU domain.
public struct OwnershipMap: Sendable {
    /// A VM as the map names it.
    public struct VM: Sendable, Equatable {
        public let handle: VMHandle
        public let vmid: VMID
        public let isProtected: Bool
        public let isDying: Bool
    }

    public let regions: [MemoryRegion]
    /// One entry per RAM page, in region order (`regions[0]` first).
    public let pages: [PageSummary]
    public let vms: [VM]
    public let carveout: Range<PFN>
    public let iommuMode: IOMMUMode?

    /// The physical frame of `pages[index]`.
    public func pfn(at index: Int) -> PFN {
        var i = index
        for r in regions {
            if i < Int(r.pageCount) { return PFN(rawValue: (r.base.rawValue >> pageShift) + UInt64(i)) }
            i -= Int(r.pageCount)
        }
        return PFN(rawValue: 0)
    }
}

extension Hypervisor {
    /// Captures the ownership of every RAM page. The vmemmap, the host stage-2 and the guest
    /// stage-2s are read together under the host lock and each VM's lock (pKVM's order), so the
    /// page states are one consistent cut even while guests run; the SMMU domains are read
    /// right after, under the SMMU's locks.
    public func ownershipMap() -> OwnershipMap {
        let vmList = vms
        var pages: [PageSummary] = []
        pages.reserveCapacity(memory.pageCount)
        hostLock.withLock { _ in
            for i in 0 ..< memory.pageCount {
                let p = vmemmap[i]
                var owner: PageOwnership.Owner = p.hypState == .owned ? .hyp : .host
                if p.hostState == .noPage {
                    owner = ownershipLocked(memory.pageAddress(index: i)).owner ?? .host
                }
                pages.append(PageSummary(owner: owner, host: p.hostState, hyp: p.hypState, use: p.use, refcount: p.refcount))
            }
            for vm in vmList {
                vm.lock.withLock { _ in
                    vm.stage2.forEachEntry { e in
                        guard e.descriptor.isLeaf(level: e.level) else { return }
                        let state = e.descriptor.pageState
                        let output = e.descriptor.outputAddress(level: e.level)
                        for k in 0 ..< e.size >> pageShift {
                            guard let i = memory.pageIndex(output.advanced(by: k << pageShift)) else { continue }
                            pages[i].guestVM = vm.handle
                            pages[i].gfn = GFN((e.ipa >> pageShift) + k)
                            pages[i].guestState = state
                            // A page the guest owns and shares with the host is still the guest's.
                            if state == .owned || state == .sharedOwned {
                                pages[i].owner = .guest(vm.handle, GFN((e.ipa >> pageShift) + k))
                            }
                        }
                    }
                }
            }
        }
        for domain in iommuDomains() {
            guard let mappings = try? iommuMappings(domain.id) else { continue }
            for m in mappings {
                for k in 0 ..< m.size >> pageShift {
                    guard let i = memory.pageIndex(m.output.advanced(by: k << pageShift)) else { continue }
                    if domain.kind == .identity { pages[i].identityDMA = true }
                    else if !pages[i].dmaDomains.contains(domain.id) { pages[i].dmaDomains.append(domain.id) }
                }
            }
        }
        return OwnershipMap(regions: memory.regions, pages: pages,
                            vms: vmList.map { .init(handle: $0.handle, vmid: $0.vmid, isProtected: $0.isProtected, isDying: $0.isDying) },
                            carveout: carveout, iommuMode: iommuMode)
    }

    /// Every entry of the host stage-2 (table entries first), for a table picture.
    public func hostStage2Entries() -> (geometry: Stage2Geometry, root: PhysAddr, entries: [Stage2Entry]) {
        hostLock.withLock { _ in
            var out: [Stage2Entry] = []
            hostStage2.forEachEntry { out.append($0) }
            return (hostStage2.geometry, hostStage2.root, out)
        }
    }

    /// Every entry of a guest's stage-2: -EINVAL if there is no such VM.
    public func guestStage2Entries(vm handle: VMHandle) throws(HypError) -> (geometry: Stage2Geometry, root: PhysAddr, entries: [Stage2Entry]) {
        let vm = try transitionVM(handle)
        return vm.lock.withLock { _ in
            var out: [Stage2Entry] = []
            vm.stage2.forEachEntry { out.append($0) }
            return (vm.stage2.geometry, vm.stage2.root, out)
        }
    }
}
