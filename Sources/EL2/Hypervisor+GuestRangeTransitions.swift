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
    /// else -EPERM), a later one with other rights (-EINVAL), output not contiguous or the 256th
    /// leaf (stop: a partial transition); the tables splitting a block at either end of the
    /// range needs (-ENOMEM).
    ///
    /// pvm departs from Android in one place: where Android answers -E2BIG (the first leaf is a
    /// block starting before `ipa`, or the range ends inside a block) and its MEM_SHARE handler
    /// gives up, pvm splits the block, so a guest can convert part of a private block in place
    /// (docs/guest-first-memory.md). Such a block is always guest-owned: the walk only reaches
    /// that point in state `desired`, OWNED or SHARED_OWNED.
    func guestRequestTransitionLocked(_ vm: GuestVM, ipa: IPA, pages: UInt64,
                                      desired: PageState) throws(HypError) -> (phys: PhysAddr, pages: UInt64) {
        guard pages <= UInt64.max >> pageShift else { throw .EINVAL }
        let (end, wraps) = ipa.rawValue.addingReportingOverflow(pages << pageShift)
        guard !wraps else { throw .EINVAL }
        guard ipa.rawValue < geometry.limit, end <= geometry.limit else { throw .EINVAL }
        var a = ipa.rawValue
        var first: (phys: PhysAddr, permissions: Stage2Permissions)?
        var entries = 0
        var splits = 0, splitLevel = Stage2Geometry.lastLevel
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
                first = (output, d.permissions)
            }
            if level != Stage2Geometry.lastLevel && (a & (granule - 1) != 0 || (a & ~(granule - 1)) + granule > end) {
                splits += 1
                splitLevel = level
            }
            entries += 1
            a = (a & ~(granule - 1)) + granule
        }
        a = min(a, end)
        guard let first else { throw .EINVAL }
        try checkSplitTables(vm, leafLevel: splitLevel, splits: 2 * splits)  // both ends of a block, at worst
        return (first.phys, (a - ipa.rawValue) >> pageShift)
    }

    /// `__pkvm_guest_share_host`, Android's range form: the guest shares up to `pages` pages from
    /// `ipa`. After the walk: the memory check on the physical range (-EINVAL / -EPERM) and host
    /// NOPAGE over it (-EPERM). Effect as the single-page form, as one update of each stage-2:
    /// a block shared whole stays a block. Returns the pages shared.
    func guestShareHostRange(_ vm: GuestVM, ipa: IPA, pages: UInt64) throws(HypError) -> UInt64 {
        try withHostAndGuestLocks(vm) { () throws(HypError) -> UInt64 in
            let (phys, done) = try guestRequestTransitionLocked(vm, ipa: ipa, pages: pages, desired: .owned)
            try checkRangeAllowedMemory(phys, pages: done)
            do { try checkHostRange(phys, pages: done, .noPage) } catch { throw .EPERM }
            try checkHostTables(phys, pages: done, identityMap: true)
            vm.stage2.apply(.map(output: phys, permissions: .rwx, state: .sharedOwned, pagesOnly: true),
                            start: ipa.rawValue, end: ipa.rawValue + done << pageShift)
            setHostPageStateRange(phys, pages: done, .sharedBorrowed)
            return done
        }
    }

    /// `__pkvm_guest_unshare_host`, Android's range form: the walk for SHARED_OWNED, host
    /// SHARED_BORROWED over the range (-EPERM), no DMA reference and no long-term host pin on
    /// any page (-EBUSY). Effect: the range annotated for the guest again, page by page, and
    /// mapped OWNED in one update (a split table whose pages are all private again coalesces).
    func guestUnshareHostRange(_ vm: GuestVM, ipa: IPA, pages: UInt64) throws(HypError) -> UInt64 {
        try withHostAndGuestLocks(vm) { () throws(HypError) -> UInt64 in
            let (phys, done) = try guestRequestTransitionLocked(vm, ipa: ipa, pages: pages, desired: .sharedOwned)
            try checkRangeAllowedMemory(phys, pages: done)
            do { try checkHostRange(phys, pages: done, .sharedBorrowed) } catch { throw .EPERM }
            let first = memory.pageIndex(phys)!
            for k in 0 ..< Int(done) where vmemmap[first + k].refcount != 0 { throw .EBUSY }
            if isHostPinned(phys, pages: done) { throw .EBUSY }
            try checkHostTables(phys, pages: done)
            setHostOwnerGuest(phys, pages: done, vm, gfn: ipa.gfn)
            vm.stage2.apply(.map(output: phys, permissions: .rwx, state: .owned, pagesOnly: true),
                            start: ipa.rawValue, end: ipa.rawValue + done << pageShift)
            return done
        }
    }

    /// The range MEM_SHARE of guest `handle` without the HVC (tests, `pvm model`, the bench).
    public func guestShareHostRange(vm handle: VMHandle, gfn: GFN, pages: UInt64) throws(HypError) -> UInt64 {
        try guestShareHostRange(try transitionVM(handle), ipa: gfn.ipa, pages: pages)
    }

    /// The range MEM_UNSHARE of guest `handle` without the HVC.
    public func guestUnshareHostRange(vm handle: VMHandle, gfn: GFN, pages: UInt64) throws(HypError) -> UInt64 {
        try guestUnshareHostRange(try transitionVM(handle), ipa: gfn.ipa, pages: pages)
    }
}
