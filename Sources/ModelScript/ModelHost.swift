import EL2

/// What the host kernel does around EL2 in a model session, kept out of EL2 because pKVM's
/// host does it: choosing pages to donate (VM structures, PGDs, memcache top-ups) and running
/// the teardown sequence over its record of the guest's mappings.
struct ModelHost {
    let hyp: Hypervisor

    /// Finds `count` consecutive host pages, starting at a multiple of `alignment`, that the host
    /// owns outright (OWNED, not pinned, not shared), scanning down from the carveout so that
    /// the low pfns a script names stay free. nil if there are none.
    func allocate(_ count: Int, alignment: UInt64 = 1, avoiding: Set<PFN> = []) -> PFN? {
        let memory = hyp.memory
        var top = hyp.carveout.lowerBound.rawValue
        let bottom = memory.ramStart.pfn.rawValue
        while top >= bottom + UInt64(count) {
            let start = (top - UInt64(count)) / alignment * alignment
            guard start >= bottom else { return nil }
            var ok = true
            for k in 0..<UInt64(count) {
                let pfn = PFN(start + k)
                guard !avoiding.contains(pfn), let v = hyp.pageView(pfn.address), v.host == .owned,
                      v.hyp == .noPage, v.refcount == 0, v.shareCount == 0 else {
                    ok = false
                    top = start + k  // resume below the page that failed
                    break
                }
            }
            if ok { return PFN(start) }
        }
        return nil
    }

    /// Allocates `count` single host pages (not necessarily consecutive), in one downward scan
    /// from the carveout: linear in the pages looked at.
    func allocatePages(_ count: Int) -> [PFN]? {
        var out: [PFN] = []
        out.reserveCapacity(count)
        var pfn = hyp.carveout.lowerBound.rawValue
        let bottom = hyp.memory.ramStart.pfn.rawValue
        while out.count < count, pfn > bottom {
            pfn -= 1
            if let v = hyp.pageView(PFN(pfn).address), v.host == .owned, v.hyp == .noPage, v.refcount == 0,
               v.shareCount == 0 {
                out.append(PFN(pfn))
            }
        }
        return out.count == count ? out : nil
    }

    /// Creates a VM the way the host's `pkvm_create_hyp_vm` does: picks a page for EL2's VM
    /// structure and an aligned PGD, then tops up the memcache with `memcache` pages.
    func createVM(protected: Bool, vcpus: Int = 1, memcache: Int) throws(HypError) -> VMHandle {
        let pgdPages = hyp.geometry.pgdPages
        guard let pgd = allocate(pgdPages, alignment: UInt64(pgdPages)) else { throw .ENOMEM }
        let pgdSet = Set((0..<UInt64(pgdPages)).map { pgd.advanced(by: $0) })
        guard let metadata = allocate(1, avoiding: pgdSet) else { throw .ENOMEM }
        let handle = try hyp.createVM(protected: protected, vcpus: vcpus, donating: .init(metadata: metadata, pgd: pgd))
        try setMemcache(handle, to: memcache)
        return handle
    }

    /// Grows or shrinks a VM's memcache to exactly `count` pages.
    func setMemcache(_ handle: VMHandle, to count: Int) throws(HypError) {
        let current = try hyp.memcacheCount(vm: handle)
        if count > current {
            guard let pages = allocatePages(count - current) else { throw .ENOMEM }
            try hyp.topUpMemcache(vm: handle, pages: pages)
        } else if count < current {
            try hyp.shrinkMemcache(vm: handle, by: current - count)
        }
    }

    /// The host's teardown of a VM (`pkvm_destroy_hyp_vm`): start teardown, give back every
    /// page the guest holds (unshare what the host shared, reclaim what it donated, poisoned
    /// entries included), then finalize. A page EL2 will not give back now (a shared page a
    /// host device still maps, in the refcount design) is skipped, as Android's host skips
    /// -EBUSY pages; finalize returns it.
    func teardown(_ handle: VMHandle) throws(HypError) {
        try hyp.startTeardown(vm: handle)
        for m in try hyp.guestMappings(vm: handle) {
            if m.state == .sharedBorrowed {
                try? hyp.hostUnshareGuest(gfn: m.gfn, pages: m.pages, vm: handle)
            } else {
                try? hyp.reclaimDyingGuestPage(vm: handle, gfn: m.gfn)
            }
        }
        try hyp.finalizeTeardown(vm: handle)
    }
}
