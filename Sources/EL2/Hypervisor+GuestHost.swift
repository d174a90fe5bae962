/// Guest ↔ host transitions a guest asks for with MEM_SHARE, MEM_UNSHARE and (Android)
/// MEM_RELINQUISH (mem_protect.c; ACK for relinquish).
extension Hypervisor {
    /// `__pkvm_guest_share_host` (MEM_SHARE): a guest lets the host access one of its pages.
    ///
    /// Checks, in order: a valid last-level guest PTE (-ERANGE, -EHWPOISON, -ENOENT, -E2BIG;
    /// a page of a guest-owned block is accepted and the block split, -ENOMEM when the VM's pool
    /// cannot pay for it: pvm's, docs/guest-first-memory.md); guest OWNED (-EPERM); host NOPAGE
    /// (-EPERM, whatever the host check's reason).
    /// Effect: guest PTE re-mapped RWX as SHARED_OWNED; host SHARED_BORROWED, identity-mapped again.
    public func guestShareHost(vm handle: VMHandle, gfn: GFN) throws(HypError) {
        try withHostAndGuestLocks(vm: handle) { vm throws(HypError) in
            let ipa = gfn.ipa
            let (d, phys) = try validGuestPTE(vm, ipa, splitting: true)
            guard d.pageState == .owned else { throw .EPERM }
            do { try checkHostRange(phys, pages: 1, .noPage) } catch { throw .EPERM }
            try checkHostTables(phys, pages: 1)
            vm.stage2.apply(.map(output: phys, permissions: .rwx, state: .sharedOwned, pagesOnly: true),
                            start: ipa.rawValue, end: ipa.rawValue + pageSize)
            setHostPageStateRange(phys, pages: 1, .sharedBorrowed)
        }
    }

    /// `__pkvm_guest_unshare_host` (MEM_UNSHARE): a guest takes a shared page back.
    ///
    /// Checks, in order: a valid last-level guest PTE (as for MEM_SHARE, blocks split);
    /// guest SHARED_OWNED (-EPERM); host SHARED_BORROWED (-EPERM, whatever the reason); no host
    /// device holds a DMA mapping of the page (`IOMMUMode.refcount`) nor a long-term pin on it
    /// (`--host-pins longterm`; -EBUSY, pvm's choice).
    /// Effect: host stage-2 annotated owner GUEST again (TLB invalidated), host NOPAGE; guest
    /// PTE re-mapped as OWNED.
    public func guestUnshareHost(vm handle: VMHandle, gfn: GFN) throws(HypError) {
        try withHostAndGuestLocks(vm: handle) { vm throws(HypError) in
            let ipa = gfn.ipa
            let (d, phys) = try validGuestPTE(vm, ipa, splitting: true)
            guard d.pageState == .sharedOwned else { throw .EPERM }
            do { try checkHostRange(phys, pages: 1, .sharedBorrowed) } catch { throw .EPERM }
            // The refcount design: a page a host device has DMA-mapped cannot be taken back
            // until the host unmaps it (the guest sees -EBUSY, as relinquish reports a DMA user).
            // So can a page the host holds a long-term pin on (`--host-pins longterm`).
            if meta(phys).pointee.refcount != 0 || isHostPinned(phys, pages: 1) { throw .EBUSY }
            try checkHostTables(phys, pages: 1)
            setHostOwner(phys, pages: 1, .guest, meta: GuestOwnerMeta.encode(handle: vm.handle, gfn: gfn))
            vm.stage2.apply(.map(output: phys, permissions: .rwx, state: .owned, pagesOnly: true),
                            start: ipa.rawValue, end: ipa.rawValue + pageSize)
        }
    }

    /// `__pkvm_guest_relinquish_to_host` (Android ACK, MEM_RELINQUISH): a guest gives a page it
    /// owns back to the host, zeroed. Returns the page's address, or nil when there was nothing
    /// to relinquish.
    ///
    /// In order: non-protected VM → nil (success, nothing done); no valid leaf → nil; leaf not
    /// last level and not a private block -E2BIG; guest not OWNED -EPERM; a private block whose
    /// split the VM's pool cannot pay for -ENOMEM; page pinned -EBUSY.
    /// Effect: guest entry unmapped (TLB invalidated); page zeroed; host OWNED, identity-mapped.
    @discardableResult
    public func guestRelinquish(vm handle: VMHandle, gfn: GFN) throws(HypError) -> PhysAddr? {
        let vm = try transitionVM(handle)
        if !vm.isProtected { return nil }
        return try withHostAndGuestLocks(vm) { () throws(HypError) -> PhysAddr? in
            let ipa = gfn.ipa
            guard ipa.rawValue < geometry.limit else { throw .ERANGE }
            let (d, level) = vm.stage2.leaf(at: ipa)
            guard d.isValid else { return nil }
            guard level == Stage2Geometry.lastLevel || d.pageState == .owned else { throw .E2BIG }
            guard d.pageState == .owned else { throw .EPERM }
            // A page of a private block: EL2 splits it here (Android answers -E2BIG and has its
            // host split the block, then the guest retries).
            try checkSplitTables(vm, leafLevel: level, splits: 1)
            let phys = d.outputAddress(level: level)
                .advanced(by: ipa.rawValue & (Stage2Geometry.blockSize(level: level) - 1) & ~(pageSize - 1))
            guard memory.contains(phys) else { throw .EPERM }
            if meta(phys).pointee.refcount != 0 { throw .EBUSY }
            try checkHostTables(phys, pages: 1)
            vm.stage2.apply(.clear, start: ipa.rawValue, end: ipa.rawValue + pageSize)
            memory.zeroPage(phys)
            setHostOwner(phys, pages: 1, .host)
            return phys
        }
    }
}
