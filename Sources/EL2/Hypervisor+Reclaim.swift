/// Reclaiming pages from guests: force-reclaim with poisoning, and teardown reclaim
/// (mem_protect.c and pkvm.c, newest mainline).
extension Hypervisor {
    /// `__pkvm_host_force_reclaim_page_guest`: the host takes back a page it donated to a
    /// protected guest (after it faulted on it). The guest's entry is poisoned, the page zeroed.
    ///
    /// Checks, in order: address not memory (-EFAULT); host state accessible (-EAGAIN: the host
    /// should no longer fault) or otherwise not NOPAGE (-EPERM); host entry not last level
    /// (-EINVAL); annotation: valid entry or not a DONATION (-EINVAL), owner not a guest (-EPERM),
    /// VM gone (-EAGAIN); the guest PTE (-EHWPOISON, -ENOENT, -E2BIG); guest not OWNED (-EPERM).
    /// Effect: guest PTE replaced by a POISONED annotation (TLB invalidated; no memcache needed);
    /// page zeroed; host OWNED, identity-mapped.
    public func hostForceReclaimPageGuest(_ phys: PhysAddr) throws(HypError) {
        let page = PhysAddr(phys.rawValue & ~(pageSize - 1))
        guard memory.contains(page) else { throw .EFAULT }
        try vmTableLock.withLock { _ throws(HypError) in
            try withHostLock { () throws(HypError) in
                let host = meta(page).pointee.hostState
                if host.isAccessible { throw .EAGAIN }
                if host != .noPage { throw .EPERM }
                let (d, level) = hostStage2.leaf(at: IPA(page.rawValue))
                guard level == Stage2Geometry.lastLevel else {
                    sink?.warning("force reclaim: host entry for \(page) at level \(level)")
                    throw .EINVAL
                }
                guard !d.isValid, d.annotationType == .donation else { throw .EINVAL }
                guard d.annotationOwner == .guest else { throw .EPERM }
                let (handle, gfn) = GuestOwnerMeta.decode(d.annotationMeta)
                guard let vm = lookupLocked(handle) else { throw .EAGAIN }
                try vm.lock.withLock { _ throws(HypError) in
                    let ipa = gfn.ipa
                    let (g, pa) = try validGuestPTE(vm, ipa, splitting: true)
                    if pa != page { sink?.warning("force reclaim: guest maps \(pa), host annotation says \(page)") }
                    guard g.pageState == .owned else { throw .EPERM }
                    try checkHostTables(page, pages: 1)
                    vm.stage2.apply(.annotate(.annotation(.poisoned, owner: .host)),
                                    start: ipa.rawValue, end: ipa.rawValue + pageSize)
                    memory.zeroPage(page)
                    setHostOwner(page, pages: 1, .host)
                }
            }
        }
    }

    /// `__pkvm_host_reclaim_page_guest`: teardown takes one guest page back.
    ///
    /// In order: the guest PTE (-ERANGE, -ENOENT, -E2BIG; -EHWPOISON means it was already
    /// force-reclaimed and returns success); guest OWNED (pKVM warns unless host NOPAGE) or
    /// SHARED_OWNED (warns unless host SHARED_BORROWED), anything else -EPERM.
    /// Effect: an OWNED page is zeroed, a SHARED_OWNED one keeps its contents; the guest entry
    /// is unmapped; the host gets the page back (OWNED, identity-mapped).
    ///
    /// A page of a guest-owned block (`--guest-block 2m|1g`) brings the whole block back at once,
    /// one entry cleared and no table split: pvm's choice, so that tearing down blocks costs what
    /// tearing down pages does per page, and the host's later reclaims of the block's other
    /// frames find nothing mapped (`-ENOENT`).
    public func hostReclaimPageGuest(gfn: GFN, vm handle: VMHandle) throws(HypError) {
        let vm = try transitionVM(handle)
        try reclaimPageGuest(vm, gfn: gfn)
    }

    func reclaimPageGuest(_ vm: GuestVM, gfn: GFN) throws(HypError) {
        try withHostAndGuestLocks(vm) { () throws(HypError) in
            if try reclaimBlockLocked(vm, gfn: gfn) { return }
            let ipa = gfn.ipa
            let d: Stage2Descriptor, phys: PhysAddr
            do throws(HypError) {
                (d, phys) = try validGuestPTE(vm, ipa)
            } catch {
                if error == .EHWPOISON { return }  // already force-reclaimed
                throw error
            }
            let host = meta(phys).pointee.hostState
            switch d.pageState {
            case .owned:
                if host != .noPage { sink?.warning("reclaim: guest OWNED page \(phys) has host state \(host)") }
            case .sharedOwned:
                if host != .sharedBorrowed {
                    sink?.warning("reclaim: guest SHARED_OWNED page \(phys) has host state \(host)")
                }
            default:
                throw .EPERM
            }
            try checkHostTables(phys, pages: 1)
            // Unmap (invalidating TLBs and the IOTLB of an assigned device) before zeroing, so
            // no CPU or device write can land between the zeroing and the hand-over.
            vm.stage2.apply(.clear, start: ipa.rawValue, end: ipa.rawValue + pageSize)
            if d.pageState == .owned { memory.zeroPage(phys) }
            setHostOwner(phys, pages: 1, .host)
        }
    }

    /// Reclaims the whole guest-owned block holding `gfn`, if there is one (see
    /// `hostReclaimPageGuest`); false when the leaf is not such a block. Under the host and
    /// guest locks.
    private func reclaimBlockLocked(_ vm: GuestVM, gfn: GFN) throws(HypError) -> Bool {
        guard gfn.ipa.rawValue < geometry.limit else { throw .ERANGE }
        let (d, level) = vm.stage2.leaf(at: gfn.ipa)
        guard level != Stage2Geometry.lastLevel, d.isLeaf(level: level),
              d.pageState == .owned || d.pageState == .sharedOwned else { return false }
        let size = Stage2Geometry.blockSize(level: level)
        let start = gfn.ipa.rawValue & ~(size - 1), pages = size >> pageShift
        let phys = d.outputAddress(level: level)
        guard memory.inOneRegion(phys, phys.advanced(by: size - 1)), let first = memory.pageIndex(phys) else { throw .EPERM }
        let expected: PageState = d.pageState == .owned ? .noPage : .sharedBorrowed
        if let k = (0 ..< Int(pages)).first(where: { vmemmap[first + $0].hostState != expected }) {
            sink?.warning("reclaim: guest \(d.pageState) block page \(phys.advanced(by: UInt64(k) << pageShift)) has host state \(vmemmap[first + k].hostState)")
        }
        try checkHostTables(phys, pages: pages, identityMap: true)
        // Unmapped first (one TLB and IOTLB invalidation of the block), then zeroed, then handed over.
        vm.stage2.apply(.clear, start: start, end: start + size)
        if d.pageState == .owned { for k in 0 ..< pages { memory.zeroPage(phys.advanced(by: k << pageShift)) } }
        setHostOwner(phys, pages: pages, .host)
        return true
    }

    /// `__pkvm_vcpu_in_poison_fault` without the vCPU: 1 if the guest entry at `ipa` is
    /// poisoned, else 0; -EINVAL if it is not at the last level.
    public func isPoisoned(vm handle: VMHandle, ipa: IPA) throws(HypError) -> Bool {
        let vm = try transitionVM(handle)
        guard ipa.rawValue < geometry.limit else { throw .ERANGE }
        return try vm.lock.withLock { _ throws(HypError) -> Bool in
            let (d, level) = vm.stage2.leaf(at: ipa)
            guard level == Stage2Geometry.lastLevel || !d.isPoisoned else { throw .EINVAL }
            return d.isPoisoned
        }
    }
}
