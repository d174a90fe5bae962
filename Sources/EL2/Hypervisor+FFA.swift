/// Host ↔ secure world (FF-A) transitions (mem_protect.c, newest mainline). Newest mainline
/// records no completer for an FF-A share: only the host state changes. pKVM's FF-A proxy only
/// unshares what it shared; the functions themselves trust it, and so does pvm.
extension Hypervisor {
    /// `__pkvm_host_share_ffa`: checks pfn range valid (-EINVAL); memory check; DMA-mapped
    /// (-EINVAL, `IOMMUMode.refcount`); host OWNED (-EPERM). Effect: host SHARED_OWNED.
    public func hostShareFFA(_ pfn: PFN, pages: UInt64) throws(HypError) {
        try withHostLock { () throws(HypError) in
            guard pfnRangeIsValid(pfn, pages) else { throw .EINVAL }
            try checkHostRange(pfn.address, pages: pages, .owned, dmaUnmapped: true)
            setHostState(pfn.address, pages: pages, .sharedOwned)
        }
    }

    /// `__pkvm_host_unshare_ffa`: checks pfn range valid (-EINVAL); memory check; DMA-mapped
    /// (-EINVAL, `IOMMUMode.refcount`); host SHARED_OWNED (-EPERM). Effect: host OWNED.
    public func hostUnshareFFA(_ pfn: PFN, pages: UInt64) throws(HypError) {
        try withHostLock { () throws(HypError) in
            guard pfnRangeIsValid(pfn, pages) else { throw .EINVAL }
            try checkHostRange(pfn.address, pages: pages, .sharedOwned, dmaUnmapped: true)
            setHostState(pfn.address, pages: pages, .owned)
        }
    }
}
