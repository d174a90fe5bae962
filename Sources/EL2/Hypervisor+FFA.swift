/// Host ↔ secure world (FF-A) transitions (mem_protect.c, newest mainline). Newest mainline
/// records no completer for an FF-A share: only the host state changes. pKVM's FF-A proxy only
/// unshares what it shared, and the functions trust it. pvm has no proxy: the host calls these
/// directly, so EL2 checks what pKVM trusts (docs/model.md, "Where pvm departs").
extension Hypervisor {
    /// `__pkvm_host_share_ffa`: checks a non-empty, valid pfn range (-EINVAL); memory check;
    /// DMA-mapped (-EINVAL, `IOMMUMode.refcount`); host OWNED (-EPERM). Effect: host SHARED_OWNED.
    public func hostShareFFA(_ pfn: PFN, pages: UInt64) throws(HypError) {
        try withHostLock { () throws(HypError) in
            guard pages > 0, pfnRangeIsValid(pfn, pages) else { throw .EINVAL }
            try checkHostRange(pfn.address, pages: pages, .owned, dmaUnmapped: true)
            setHostState(pfn.address, pages: pages, .sharedOwned)
        }
    }

    /// `__pkvm_host_unshare_ffa`: checks a non-empty, valid pfn range (-EINVAL); memory check;
    /// DMA-mapped (-EINVAL, `IOMMUMode.refcount`); host SHARED_OWNED (-EPERM). Then, what pKVM
    /// leaves to its proxy: the share must be an FF-A share, not one with a guest or with EL2
    /// (share count 0, hyp NOPAGE; -EPERM), or the page would return to the host while a guest
    /// or EL2 still maps it. Effect: host OWNED.
    public func hostUnshareFFA(_ pfn: PFN, pages: UInt64) throws(HypError) {
        try withHostLock { () throws(HypError) in
            guard pages > 0, pfnRangeIsValid(pfn, pages) else { throw .EINVAL }
            try checkHostRange(pfn.address, pages: pages, .sharedOwned, dmaUnmapped: true)
            let first = memory.pageIndex(pfn.address)!
            for i in 0..<Int(pages) {
                let p = vmemmap[first + i]
                guard p.hostShareGuestCount == 0, p.hypState == .noPage else { throw .EPERM }
            }
            setHostState(pfn.address, pages: pages, .owned)
        }
    }
}
