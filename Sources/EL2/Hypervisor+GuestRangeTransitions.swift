/// Android's range forms of the guest ↔ host transitions (arch/arm64/kvm/hyp/nvhe/mem_protect.c,
/// android16-6.12): `__pkvm_guest_share_host` and `__pkvm_guest_unshare_host` with a page count,
/// over `__guest_request_page_transition`'s walk of at most 256 leaf entries.
extension Hypervisor {
    /// Leaf entries one request walks at most (`max_ptes`): past them the transition stops and
    /// reports what it did.
    static let maxRequestEntries = 256

    /// `__guest_request_page_transition` with the host and guest locks held: walks the guest
    /// leaves over `[ipa, ipa + pages)` and returns the physical start and the pages that may
    /// change, all in state `desired`.
    ///
    /// In order: a size that overflows or wraps (-EINVAL); a range past the IPA space (the walk
    /// fails at once, -EINVAL); per leaf: state not `desired` (-EFAULT when nothing is mapped,
    /// else -EPERM), the first leaf starting before `ipa` (-E2BIG), a later one with other rights
    /// (-EINVAL), output not contiguous or the 256th leaf (stop: a partial transition); the
    /// checked range ending inside a block (-E2BIG).
    func guestRequestTransitionLocked(_ vm: GuestVM, ipa: IPA, pages: UInt64,
                                      desired: PageState) throws(HypError) -> (phys: PhysAddr, pages: UInt64) {
        guard pages <= UInt64.max >> pageShift else { throw .EINVAL }
        let (end, wraps) = ipa.rawValue.addingReportingOverflow(pages << pageShift)
        guard !wraps else { throw .EINVAL }
        guard ipa.rawValue < geometry.limit, end <= geometry.limit else { throw .EINVAL }
        var a = ipa.rawValue
        var first: (phys: PhysAddr, permissions: Stage2Permissions)?
        var entries = 0
        walk: while a < end {
            if entries == Self.maxRequestEntries { break }
            let (d, level) = vm.stage2.leaf(at: IPA(a))
            let state = guestState(d)
            if state != desired || !d.isLeaf(level: level) {
                throw state == .noPage ? .EFAULT : .EPERM
            }
            let granule = Stage2Geometry.blockSize(level: level)
            let output = d.outputAddress(level: level).advanced(by: a & (granule - 1))
            if let start = first {
                if d.permissions != start.permissions { throw .EINVAL }
                if output != start.phys.advanced(by: a - ipa.rawValue) { break walk }
            } else {
                if a & (granule - 1) != 0 { throw .E2BIG }
                first = (output, d.permissions)
            }
            entries += 1
            a = (a & ~(granule - 1)) + granule
        }
        if a > end { throw .E2BIG }
        guard let first else { throw .EINVAL }
        return (first.phys, (a - ipa.rawValue) >> pageShift)
    }

    /// `__pkvm_guest_share_host`, Android's range form: the guest shares up to `pages` pages from
    /// `ipa`. After the walk: the memory check on the physical range (-EINVAL / -EPERM) and host
    /// NOPAGE over it (-EPERM). Effect as the single-page form, page by page. Returns the pages
    /// shared.
    func guestShareHostRange(_ vm: GuestVM, ipa: IPA, pages: UInt64) throws(HypError) -> UInt64 {
        try withHostAndGuestLocks(vm) { () throws(HypError) -> UInt64 in
            let (phys, done) = try guestRequestTransitionLocked(vm, ipa: ipa, pages: pages, desired: .owned)
            try checkRangeAllowedMemory(phys, pages: done)
            do { try checkHostRange(phys, pages: done, .noPage) } catch { throw .EPERM }
            try checkHostTables(phys, pages: done)
            for k in 0 ..< done {
                let a = ipa.rawValue + k << pageShift
                vm.stage2.apply(.map(output: phys.advanced(by: k << pageShift), permissions: .rwx, state: .sharedOwned,
                                     pagesOnly: true), start: a, end: a + pageSize)
                setHostPageStateRange(phys.advanced(by: k << pageShift), pages: 1, .sharedBorrowed)
            }
            return done
        }
    }

    /// `__pkvm_guest_unshare_host`, Android's range form: the walk for SHARED_OWNED, host
    /// SHARED_BORROWED over the range (-EPERM), no DMA reference on any page (refcount IOMMU
    /// design; -EBUSY). Effect: each page annotated for the guest again and mapped OWNED.
    func guestUnshareHostRange(_ vm: GuestVM, ipa: IPA, pages: UInt64) throws(HypError) -> UInt64 {
        try withHostAndGuestLocks(vm) { () throws(HypError) -> UInt64 in
            let (phys, done) = try guestRequestTransitionLocked(vm, ipa: ipa, pages: pages, desired: .sharedOwned)
            try checkRangeAllowedMemory(phys, pages: done)
            do { try checkHostRange(phys, pages: done, .sharedBorrowed) } catch { throw .EPERM }
            let first = memory.pageIndex(phys)!
            for k in 0 ..< Int(done) where vmemmap[first + k].refcount != 0 { throw .EBUSY }
            try checkHostTables(phys, pages: done)
            for k in 0 ..< done {
                let a = ipa.rawValue + k << pageShift
                let page = phys.advanced(by: k << pageShift)
                setHostOwner(page, pages: 1, .guest, meta: GuestOwnerMeta.encode(handle: vm.handle, gfn: IPA(a).gfn))
                vm.stage2.apply(.map(output: page, permissions: .rwx, state: .owned, pagesOnly: true),
                                start: a, end: a + pageSize)
            }
            return done
        }
    }
}
