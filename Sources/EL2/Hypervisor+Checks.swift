/// The checks every transition shares (mem_protect.c), and the host stage-2 updates commits use.
/// All of these run with the locks the transition holds.
extension Hypervisor {
    /// `pfn_range_is_valid`: the range lies below `2^(phys_shift - PAGE_SHIFT)` without overflow.
    @inline(__always) func pfnRangeIsValid(_ pfn: PFN, _ nr: UInt64) -> Bool {
        let limit: UInt64 = 1 << UInt64(geometry.ipaBits - Int(pageShift))
        return pfn.rawValue < limit && limit - pfn.rawValue >= nr
    }

    /// `check_range_allowed_memory`: `[start, start + size)` must not straddle a memory / MMIO
    /// boundary (`-EINVAL`) and must be memory (`-EPERM`).
    /// A range so large its end overflows is reported as straddling (-EINVAL).
    @inline(__always) func checkRangeAllowedMemory(_ start: PhysAddr, pages: UInt64) throws(HypError) {
        guard pages > 0, pages <= (UInt64.max - start.rawValue) >> pageShift else { throw .EINVAL }
        let last = PhysAddr(start.rawValue + (pages << pageShift) - 1)
        if memory.inOneRegion(start, last) { return }
        let (range, isMemory) = memory.addressRange(containing: start)
        guard range.contains(last.rawValue) else { throw .EINVAL }
        guard isMemory else { throw .EPERM }
    }

    /// `__host_check_page_state_range`: memory check, then every page's host state.
    /// `dmaUnmapped` adds the refcount design's check between the two (-EINVAL while any page
    /// holds a DMA reference; `IOMMUMode.refcount` only): what `host_request_owned_transition` and
    /// `host_request_unshare` check first in Android.
    @inline(__always) func checkHostRange(_ start: PhysAddr, pages: UInt64, _ state: PageState,
                                          dmaUnmapped: Bool = false) throws(HypError) {
        try checkRangeAllowedMemory(start, pages: pages)
        if dmaUnmapped { try checkNotDMAMapped(start, pages: pages) }
        let first = memory.pageIndex(start)!
        for i in 0..<Int(pages) where vmemmap[first + i].hostState != state { throw .EPERM }
    }

    /// `__hyp_check_page_state_range`: every page's hyp state, no memory check. A page that is
    /// not RAM has no hyp state and fails the check (-EPERM).
    @inline(__always) func checkHypRange(_ start: PhysAddr, pages: UInt64, _ state: PageState) throws(HypError) {
        guard pages > 0 else { throw .EPERM }
        if let first = memory.pageIndex(start), pages <= UInt64(memory.pageCount - first),
           memory.inOneRegion(start, PhysAddr(start.rawValue + (pages - 1) << pageShift)) {
            for i in 0..<Int(pages) where vmemmap[first + i].hypState != state { throw .EPERM }
            return
        }
        var pa = start
        for _ in 0..<pages {
            guard let i = memory.pageIndex(pa), vmemmap[i].hypState == state else { throw .EPERM }
            pa = pa.advanced(by: pageSize)
        }
    }

    /// `__guest_check_transition_size`: one page, or exactly one level-2 block (2 MiB) with both
    /// addresses block aligned.
    @inline(__always) func checkTransitionSize(phys: PhysAddr, ipa: IPA, pages: UInt64) throws(HypError) {
        if pages == 1 { return }
        let block = Stage2Geometry.blockSize(level: Stage2Geometry.lastLevel - 1)
        guard pages == block >> pageShift, phys.rawValue & (block - 1) == 0, ipa.rawValue & (block - 1) == 0
        else { throw .EINVAL }
    }

    /// `__guest_check_page_state_range`: every guest leaf over the range decodes to `state`.
    /// The walk itself fails with -ERANGE past the IPA limit (`_kvm_pgtable_walk`).
    func checkGuestRange(_ vm: GuestVM, _ ipa: IPA, pages: UInt64, _ state: PageState) throws(HypError) {
        let end = ipa.rawValue &+ pages << pageShift
        guard end <= geometry.limit, end > ipa.rawValue else { throw .ERANGE }
        var a = ipa.rawValue
        while a < end {
            let (d, level) = vm.stage2.leaf(at: IPA(a))
            if guestState(d) != state { throw .EPERM }
            // A leaf or empty entry at `level` decides the whole span it covers.
            let span = Stage2Geometry.blockSize(level: level)
            a = (a & ~(span - 1)) + span
        }
    }

    /// `guest_get_page_state`: POISON for a poisoned invalid entry, MMIO for Android's MMIO
    /// guard note, NOPAGE for any other invalid entry, else the software-bit state.
    @inline(__always) func guestState(_ d: Stage2Descriptor) -> PageState {
        if !d.isValid { return d.isPoisoned ? .poison : d.isMMIOGuardNote ? .mmio : .noPage }
        return d.pageState
    }

    /// `get_valid_guest_pte`: the last-level valid leaf at `ipa` and the page it maps.
    ///
    /// `splitting`: a leaf of a guest-owned block (OWNED or SHARED_OWNED, only pvm's block
    /// donation makes one) is accepted too, and the page inside it returned; the caller's
    /// single-page update then splits the block. The VM's table pool must hold the tables the
    /// split needs (-ENOMEM, checked here so the commit cannot run dry). Upstream answers
    /// -E2BIG for any block; Android's relinquish then asks its host to split and retries.
    func validGuestPTE(_ vm: GuestVM, _ ipa: IPA, splitting: Bool = false) throws(HypError) -> (Stage2Descriptor, PhysAddr) {
        guard ipa.rawValue < geometry.limit else { throw .ERANGE }
        let (d, level) = vm.stage2.leaf(at: ipa)
        if d.isPoisoned { throw .EHWPOISON }
        guard d.isValid else { throw .ENOENT }
        var phys = d.outputAddress(level: level)
        if level != Stage2Geometry.lastLevel {
            guard splitting, d.isLeaf(level: level), d.pageState == .owned || d.pageState == .sharedOwned else {
                throw .E2BIG
            }
            phys = phys.advanced(by: ipa.rawValue & (Stage2Geometry.blockSize(level: level) - 1) & ~(pageSize - 1))
            try checkSplitTables(vm, leafLevel: level, splits: 1)
        }
        // pKVM warns (and carries on) if the page is not memory; pvm refuses instead of
        // touching non-RAM.
        guard memory.contains(phys) else { throw .EINVAL }
        return (d, phys)
    }

    /// The tables splitting `splits` blocks at `leafLevel` down to pages may take from the VM's
    /// pool (-ENOMEM when it holds fewer).
    @inline(__always) func checkSplitTables(_ vm: GuestVM, leafLevel: Int, splits: Int) throws(HypError) {
        let needed = splits * (Stage2Geometry.lastLevel - leafLevel)
        if needed > 0, vm.stage2.availablePages < needed { throw .ENOMEM }
    }

    /// `__guest_check_pgtable_memcache`: the memcache must hold `kvm_mmu_cache_min_pages`
    /// pages. Free pages in the VM's table pool do not count.
    @inline(__always) func checkMemcache(_ vm: GuestVM) throws(HypError) {
        try faults.check(.guestMemcache)
        if vm.stage2.memcache.count < geometry.minMemcachePages { throw .ENOMEM }
    }

    /// The host stage-2 pool holds the table pages a change of `[start, start + pages)` may
    /// need (`host_stage2_try`: if not, every MMIO identity mapping is dropped first, a cache
    /// the host re-faults; still not: -ENOMEM). Part of a transition's checks, so the commit's
    /// host stage-2 update cannot run dry. The carveout was sized for RAM, so only the MMIO
    /// slack ever gets short.
    /// `identityMap`: the change maps the range back to the host with blocks where they fit
    /// (`setHostPageStateRange`), so only its unaligned ends can need tables.
    @inline(__always) func checkHostTables(_ start: PhysAddr, pages: UInt64, leafLevel: Int = Stage2Geometry.lastLevel,
                                           identityMap: Bool = false) throws(HypError) {
        try faults.check(.hostPool)
        let end = start.rawValue &+ pages << pageShift
        let needed = identityMap ? geometry.tablesNeededBoundForBlocks(start: start.rawValue, end: end)
            : geometry.tablesNeededBound(start: start.rawValue, end: end, leafLevel: leafLevel)
        if hostStage2.availablePages >= needed { return }
        unmapHostMMIO()
        if hostStage2.availablePages < needed { throw .ENOMEM }
    }

    // MARK: Host stage-2 updates (run under hostLock)

    /// Sets the host state of each page (`__host_update_page_state`).
    @inline(__always) func setHostState(_ start: PhysAddr, pages: UInt64, _ state: PageState) {
        let first = memory.pageIndex(start)!
        for i in 0..<Int(pages) { vmemmap.pointer(first + i).pointee.hostState = state }
    }

    /// Sets the hyp state of each page (`__hyp_set_page_state_range`).
    @inline(__always) func setHypState(_ start: PhysAddr, pages: UInt64, _ state: PageState) {
        let first = memory.pageIndex(start)!
        for i in 0..<Int(pages) { vmemmap.pointer(first + i).pointee.hypState = state }
    }

    /// `__host_set_page_state_range`: identity-maps the range again if the host had no access,
    /// then records `state`.
    func setHostPageStateRange(_ start: PhysAddr, pages: UInt64, _ state: PageState) {
        if vmemmap[memory.pageIndex(start)!].hostState == .noPage {
            hostStage2Apply(.map(output: start, permissions: .rwx, state: .owned, pagesOnly: false),
                            start: start.rawValue, end: start.rawValue + pages << pageShift)
            mirrorHostChange(start, pages: pages, accessible: true)
        }
        setHostState(start, pages: pages, state)
    }

    /// `host_stage2_set_owner_locked` / `host_stage2_set_owner_metadata_locked`: the host gets
    /// the range back (identity map RWX, OWNED), or loses it to `owner` (DONATION annotation
    /// carrying `meta`, NOPAGE).
    func setHostOwner(_ start: PhysAddr, pages: UInt64, _ owner: OwnerID, meta: UInt64 = 0) {
        let end = start.rawValue + pages << pageShift
        switch owner {
        case .host:
            hostStage2Apply(.map(output: start, permissions: .rwx, state: .owned, pagesOnly: false),
                            start: start.rawValue, end: end)
            mirrorHostChange(start, pages: pages, accessible: true)
            setHostState(start, pages: pages, .owned)
            // The host owns it outright again: pins it held while a guest shared it mean nothing.
            dropHostPins(start, pages: pages)
        case .hyp, .guest:
            hostStage2Apply(.annotate(.annotation(.donation, owner: owner, meta: meta)), start: start.rawValue, end: end)
            mirrorHostChange(start, pages: pages, accessible: false)
            setHostState(start, pages: pages, .noPage)
        }
    }

    /// Applies a host stage-2 update, first releasing every MMIO identity mapping if the pool
    /// could run short (pKVM's `host_stage2_try` retries after `host_stage2_unmap_dev_all`).
    /// RAM alone never exhausts the pool: the carveout was sized for it at boot.
    func hostStage2Apply(_ update: Stage2Update, start: UInt64, end: UInt64) {
        let needed: Int
        if case .map(_, _, _, pagesOnly: false) = update {
            needed = geometry.tablesNeededBoundForBlocks(start: start, end: end)
        } else {
            needed = geometry.tablesNeededBound(start: start, end: end)
        }
        if hostStage2.availablePages < needed {
            unmapHostMMIO()
        }
        hostStage2.apply(update, start: start, end: end)
    }

    /// Unmaps every identity mapping of the host stage-2 outside RAM (`host_stage2_unmap_dev_all`).
    func unmapHostMMIO() {
        var low: UInt64 = 0
        for r in memory.regions {
            if r.base.rawValue > low { hostStage2.apply(.clear, start: low, end: r.base.rawValue) }
            low = r.end.rawValue
        }
        if low < geometry.limit { hostStage2.apply(.clear, start: low, end: geometry.limit) }
    }
}
