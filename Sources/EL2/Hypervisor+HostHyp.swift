/// Host ↔ hypervisor transitions (mem_protect.c, newest mainline).
extension Hypervisor {
    /// `__pkvm_host_share_hyp`: the host lets EL2 read and write one of its pages.
    ///
    /// Checks, in order: memory check; DMA-mapped (-EINVAL, `IOMMUMode.refcount`); host OWNED
    /// (-EPERM); hyp NOPAGE (-EPERM).
    /// Effect: hyp SHARED_BORROWED, host SHARED_OWNED. No EL2 mapping yet: that is made at the
    /// first pin.
    public func hostShareHyp(_ pfn: PFN) throws(HypError) {
        try withHostAndHypLocks { () throws(HypError) in
            let pa = pfn.address
            try checkHostRange(pa, pages: 1, .owned, dmaUnmapped: true)
            try checkHypRange(pa, pages: 1, .noPage)
            setHypState(pa, pages: 1, .sharedBorrowed)
            setHostState(pa, pages: 1, .sharedOwned)
        }
    }

    /// `__pkvm_host_unshare_hyp`: the host takes back a page it shared with EL2.
    ///
    /// Checks, in order: memory check; host SHARED_OWNED (-EPERM); hyp SHARED_BORROWED (-EPERM);
    /// not pinned by EL2 (-EBUSY). Effect: hyp NOPAGE, host OWNED.
    public func hostUnshareHyp(_ pfn: PFN) throws(HypError) {
        try withHostAndHypLocks { () throws(HypError) in
            let pa = pfn.address
            try checkHostRange(pa, pages: 1, .sharedOwned)
            try checkHypRange(pa, pages: 1, .sharedBorrowed)
            if meta(pa).pointee.refcount != 0 { throw .EBUSY }
            setHypState(pa, pages: 1, .noPage)
            setHostState(pa, pages: 1, .owned)
        }
    }

    /// `hyp_pin_shared_mem`: EL2 pins pages the host shared with it, so the host cannot unshare
    /// them while EL2 uses them; the first pin maps the page at EL2.
    ///
    /// Checks: a non-empty range (-EINVAL); host SHARED_OWNED over the range (with the memory
    /// check, -EINVAL/-EPERM); hyp SHARED_BORROWED (-EPERM). pKVM BUGs when a refcount would pass
    /// 65535; pvm refuses with -EBUSY and changes nothing.
    public func hypPin(_ pfn: PFN, pages: UInt64) throws(HypError) {
        try withHostAndHypLocks { () throws(HypError) in
            guard pages > 0 else { throw .EINVAL }
            let pa = pfn.address
            try checkHostRange(pa, pages: pages, .sharedOwned)
            try checkHypRange(pa, pages: pages, .sharedBorrowed)
            let first = memory.pageIndex(pa)!
            for i in 0..<Int(pages) where vmemmap[first + i].refcount == UInt16.max { throw .EBUSY }
            for i in 0..<Int(pages) { vmemmap.pointer(first + i).pointee.refcount += 1 }
        }
    }

    /// `hyp_unpin_shared_mem`: drops one pin per page; the last unpin unmaps the page at EL2.
    ///
    /// pKVM trusts its caller (EL2 itself) and BUGs on a refcount already zero. pvm's host may
    /// call it, so it refuses the whole call, changing nothing, unless every page is pinned
    /// shared memory: a non-empty range of RAM (-EINVAL), host SHARED_OWNED and hyp
    /// SHARED_BORROWED (-EINVAL: anything else is not a pin, and its refcount counts page-table
    /// entries or DMA mappings), a pin to drop (-EINVAL).
    public func hypUnpin(_ pfn: PFN, pages: UInt64) throws(HypError) {
        try withHostAndHypLocks { () throws(HypError) in
            guard pages > 0, pfnRangeIsValid(pfn, pages) else { throw .EINVAL }
            let pa = pfn.address
            do { try checkRangeAllowedMemory(pa, pages: pages) } catch { throw .EINVAL }
            let first = memory.pageIndex(pa)!
            for i in 0..<Int(pages) {
                let p = vmemmap[first + i]
                guard p.hostState == .sharedOwned, p.hypState == .sharedBorrowed, p.refcount > 0 else { throw .EINVAL }
            }
            for i in 0..<Int(pages) { vmemmap.pointer(first + i).pointee.refcount -= 1 }
        }
    }

    /// `__pkvm_host_donate_hyp`: the host gives pages to EL2 for good (VM structures, memcache).
    ///
    /// Checks, in order: pfn range valid (-EINVAL); memory check; DMA-mapped (-EINVAL,
    /// `IOMMUMode.refcount`); host OWNED (-EPERM); hyp NOPAGE (-EPERM). Effect: hyp OWNED; host stage-2 annotated with owner HYP; host NOPAGE.
    public func hostDonateHyp(_ pfn: PFN, pages: UInt64) throws(HypError) {
        try withHostAndHypLocks { () throws(HypError) in
            try donateToHypLocked(pfn, pages: pages)
        }
    }

    func donateToHypLocked(_ pfn: PFN, pages: UInt64) throws(HypError) {
        guard pages > 0, pfnRangeIsValid(pfn, pages) else { throw .EINVAL }
        let pa = pfn.address
        try checkHostRange(pa, pages: pages, .owned, dmaUnmapped: true)
        try checkHypRange(pa, pages: pages, .noPage)
        try checkHostTables(pa, pages: pages)
        setHypState(pa, pages: pages, .owned)
        setHostOwner(pa, pages: pages, .hyp)
    }

    /// `__pkvm_hyp_donate_host`: EL2 gives pages back to the host.
    ///
    /// Checks, in order: a non-empty, valid pfn range (-EINVAL); hyp OWNED (-EPERM); memory
    /// check; host NOPAGE (-EPERM). Then, a guard pKVM does not need because only EL2 calls this: a page EL2
    /// is using (page table, pool, VM structure) is refused with -EBUSY.
    /// Effect: hyp NOPAGE; host stage-2 identity-mapped RWX; host OWNED.
    public func hypDonateHost(_ pfn: PFN, pages: UInt64) throws(HypError) {
        try withHostAndHypLocks { () throws(HypError) in
            guard pages > 0, pfnRangeIsValid(pfn, pages) else { throw .EINVAL }
            let pa = pfn.address
            try checkHypRange(pa, pages: pages, .owned)
            try checkHostRange(pa, pages: pages, .noPage)
            let first = memory.pageIndex(pa)!
            for i in 0..<Int(pages) where vmemmap[first + i].use != .none { throw .EBUSY }
            try checkHostTables(pa, pages: pages)
            returnToHostLocked(pa, pages: pages)
        }
    }

    /// The commit of `__pkvm_hyp_donate_host`, for EL2's own callers (teardown, memcache shrink).
    func returnToHostLocked(_ pa: PhysAddr, pages: UInt64) {
        let first = memory.pageIndex(pa)!
        for i in 0..<Int(pages) { vmemmap.pointer(first + i).pointee.use = .none }
        setHypState(pa, pages: pages, .noPage)
        setHostOwner(pa, pages: pages, .host)
    }
}
