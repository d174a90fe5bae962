/// Host → guest transitions (mem_protect.c, newest mainline): sharing with non-protected guests
/// and donating to protected ones. Like pKVM's internal functions these do not check whether the
/// VM is protected; the hypercall handlers add that gating.
extension Hypervisor {
    /// `__pkvm_host_share_guest`: maps host pages into a guest, the host keeping ownership.
    /// `pages` is 1 or 512 (one 2 MiB block, mapped as a level-2 block).
    ///
    /// Checks, in order: the VM exists (-EINVAL: pKVM's handler resolves the vCPU's VM before the
    /// transition runs); `prot` ⊆ RWX (-EINVAL); ... (see below); and, under the locks, a VM that
    /// is not dying (-EINVAL: pKVM's host names it by a loaded vCPU, which a dying VM cannot have); pfn range valid (-EINVAL); transition size
    /// (-EINVAL); memory check (-EINVAL / -EPERM); in `IOMMUMode.refcount`, a DMA-mapped page
    /// (-EINVAL); guest NOPAGE over the range (-EPERM; -ERANGE past the IPA limit); per page: host OWNED passes, host SHARED_OWNED with a share count
    /// of U32_MAX gives -EBUSY, with a count above zero passes, anything else -EPERM; memcache
    /// (-ENOMEM).
    /// Effect: per page host SHARED_OWNED and share count + 1; guest mapped with `prot`,
    /// state SHARED_BORROWED.
    public func hostShareGuest(_ pfn: PFN, gfn: GFN, pages: UInt64, vm handle: VMHandle,
                               prot: Stage2Permissions) throws(HypError) {
        try withHostLockedVM(handle) { vm throws(HypError) in
            guard prot.isSubset(of: .rwx) else { throw .EINVAL }
            guard pfnRangeIsValid(pfn, pages) else { throw .EINVAL }
            let phys = pfn.address, ipa = gfn.ipa
            try checkTransitionSize(phys: phys, ipa: ipa, pages: pages)
            try checkRangeAllowedMemory(phys, pages: pages)
            try vm.lock.withLock { _ throws(HypError) in
                guard vm.acceptsPages else { throw .EINVAL }
                try checkNotDMAMapped(phys, pages: pages)
                try checkGuestRange(vm, ipa, pages: pages, .noPage)
                let first = memory.pageIndex(phys)!
                for i in 0..<Int(pages) {
                    let p = vmemmap[first + i]
                    switch p.hostState {
                    case .owned: continue
                    case .sharedOwned where p.hostShareGuestCount == UInt32.max: throw .EBUSY
                    case .sharedOwned where p.hostShareGuestCount > 0: continue
                    default: throw .EPERM
                    }
                }
                try checkMemcache(vm)
                for i in 0..<Int(pages) {
                    let p = vmemmap.pointer(first + i)
                    p.pointee.hostState = .sharedOwned
                    p.pointee.hostShareGuestCount += 1
                }
                vm.stage2.apply(.map(output: phys, permissions: prot, state: .sharedBorrowed, pagesOnly: false),
                                start: ipa.rawValue, end: ipa.rawValue + pages << pageShift)
            }
        }
    }

    /// `__pkvm_host_unshare_guest`: removes a host page (or 2 MiB block) shared with a guest.
    ///
    /// Checks, in order: the VM exists (-EINVAL, the handler's `get_pkvm_hyp_vm`); transition
    /// size (-EINVAL); the guest leaf (-ERANGE past the IPA limit;
    /// invalid -ENOENT, before any state check); the mapping's granule equals the request
    /// (-E2BIG); guest SHARED_BORROWED (-EPERM); per page host SHARED_OWNED (-EPERM) with a
    /// non-zero share count (-EINVAL); in `IOMMUMode.refcount`, not DMA-mapped (-EINVAL).
    /// Effect: guest entry unmapped (TLB invalidated); per page share count − 1, host OWNED at 0.
    public func hostUnshareGuest(gfn: GFN, pages: UInt64, vm handle: VMHandle) throws(HypError) {
        try withHostLockedVM(handle) { vm throws(HypError) in
            let ipa = gfn.ipa
            try checkTransitionSize(phys: PhysAddr(0), ipa: ipa, pages: pages)
            try vm.lock.withLock { _ throws(HypError) in
                guard ipa.rawValue < geometry.limit, pages << pageShift <= geometry.limit - ipa.rawValue else {
                    throw .ERANGE
                }
                let (d, level) = vm.stage2.leaf(at: ipa)
                guard d.isValid else { throw .ENOENT }
                guard Stage2Geometry.blockSize(level: level) == pages << pageShift else { throw .E2BIG }
                guard guestState(d) == .sharedBorrowed else { throw .EPERM }
                let phys = d.outputAddress(level: level)
                guard let first = memory.pageIndex(phys), memory.inOneRegion(phys, phys.advanced(by: (pages - 1) << pageShift))
                else { throw .EPERM }
                for i in 0..<Int(pages) {
                    let p = vmemmap[first + i]
                    guard p.hostState == .sharedOwned else { throw .EPERM }
                    guard p.hostShareGuestCount > 0 else { throw .EINVAL }
                    if refcountsDMA && p.refcount != 0 { throw .EINVAL }
                }
                vm.stage2.apply(.clear, start: ipa.rawValue, end: ipa.rawValue + pages << pageShift)
                for i in 0..<Int(pages) {
                    let p = vmemmap.pointer(first + i)
                    p.pointee.hostShareGuestCount -= 1
                    if p.pointee.hostShareGuestCount == 0 { p.pointee.hostState = .owned }
                }
            }
        }
    }

    /// `__pkvm_host_donate_guest`: gives one host page to a (protected) guest, the lazy donation
    /// a guest's first stage-2 fault on the page triggers.
    ///
    /// Checks, in order: a VM that is not dying (-EINVAL, as above); memory check (-EINVAL /
    /// -EPERM); in `IOMMUMode.refcount`, not DMA-mapped
    /// (-EINVAL); host OWNED (-EPERM); guest NOPAGE (-EPERM,
    /// a POISON entry included; -ERANGE past the IPA limit); memcache (-ENOMEM).
    /// Effect: host stage-2 annotated owner GUEST with (handle, gfn); host NOPAGE; guest
    /// mapped RWX at page granularity, state OWNED.
    public func hostDonateGuest(_ pfn: PFN, gfn: GFN, vm handle: VMHandle) throws(HypError) {
        let vm = try transitionVM(handle)
        let phys = pfn.address, ipa = gfn.ipa
        try withHostAndGuestLocks(vm) { () throws(HypError) in
            guard vm.acceptsPages else { throw .EINVAL }
            try checkHostRange(phys, pages: 1, .owned, dmaUnmapped: true)
            try checkGuestRange(vm, ipa, pages: 1, .noPage)
            try checkMemcache(vm)
            try checkHostTables(phys, pages: 1)
            setHostOwner(phys, pages: 1, .guest, meta: GuestOwnerMeta.encode(handle: vm.handle, gfn: gfn))
            vm.stage2.apply(.map(output: phys, permissions: .rwx, state: .owned, pagesOnly: true),
                            start: ipa.rawValue, end: ipa.rawValue + pageSize)
        }
    }
}
