/// The SMMU's configuration and the host's DMA mapping calls (PKVM-v4's SMMUv3
/// series, Android's kvm_iommu_ops): booting the SMMU, mirroring the host stage-2 into the identity domain, attaching
/// and assigning streams, and the paging-domain map / unmap of `IOMMUMode.refcount`.
extension Hypervisor {
    /// Paging domains the host may have at once in `IOMMUMode.refcount` (one PGD slot each).
    public static let maxPagingDomains = 8

    /// The IOMMU design this machine's SMMU uses, or nil without an SMMU.
    public var iommuMode: IOMMUMode? { smmu?.mode }

    /// Builds the SMMU over its carveout pages: `pgdSlots` naturally aligned PGDs, then the
    /// stream table (all STEs invalid: every stream aborts until attached), then the table pool.
    static func bootSMMU(_ mode: IOMMUMode, pages: Range<PFN>, pgdSlots: Int, geometry: Stage2Geometry,
                         memory: PhysicalMemory, vmemmap: Vmemmap, sink: (any EL2EventSink)?) -> SMMU {
        var next = pages.lowerBound.rawValue
        var slots: [PhysAddr] = []
        for _ in 0..<pgdSlots {
            slots.append(PFN(next).address)
            next += UInt64(geometry.pgdPages)
        }
        let streamTable = PFN(next).address
        for _ in 0..<SMMU.streamTablePages {
            let page = PFN(next).address
            memory.zeroPage(page)
            vmemmap.pointer(memory.pageIndex(page)!).pointee.use = .streamTable
            next += 1
        }
        var identity: IOMMUDomain?
        if mode == .mirror {
            let table = Stage2PageTable(geometry: geometry, vmid: VMID(rawValue: IOMMUDomainID.identity.rawValue),
                                        root: slots.removeFirst(), memory: memory, vmemmap: vmemmap,
                                        tableUse: .iommuTable, freeUse: .iommuPoolFree, sink: nil)
            identity = IOMMUDomain(id: .identity, kind: .identity, table: table)
        }
        let smmu = SMMU(mode: mode, streamTable: streamTable, identity: identity, sink: sink)
        for slot in slots {
            for k in 0..<geometry.pgdPages {
                let page = slot.advanced(by: UInt64(k) << pageShift)
                memory.zeroPage(page)
                vmemmap.pointer(memory.pageIndex(page)!).pointee.use = .iommuPoolFree
            }
        }
        smmu.pgdSlots = slots
        while next < pages.upperBound.rawValue {
            let page = PFN(next).address
            if let identity {
                identity.table.addFreeTable(page)
            } else {
                memory.zeroPage(page)
                vmemmap.pointer(memory.pageIndex(page)!).pointee.use = .iommuPoolFree
                smmu.pool.push(page, memory: memory)
            }
            next += 1
        }
        identity?.table.attachIOTLB(smmu.iotlb, domain: .identity)
        return smmu
    }

    /// The initial walk of PKVM-v4's "Shadow host stage-2": every RAM page the host may reach is
    /// mapped read-write in the identity domain (blocks where possible); donated pages (here,
    /// EL2's carveout) stay unmapped. Runs once at boot.
    func mirrorInitialHostStage2() {
        guard let identity = smmu?.identity else { return }
        for r in memory.regions {
            var i = memory.pageIndex(r.base)!
            let end = i + Int(r.pageCount)
            while i < end {
                guard vmemmap[i].hostState.isAccessible else { i += 1; continue }
                var j = i + 1
                while j < end, vmemmap[j].hostState.isAccessible { j += 1 }
                let start = memory.pageAddress(index: i)
                identity.table.apply(.map(output: start, permissions: .rw, state: .owned, pagesOnly: false),
                                     start: start.rawValue, end: start.rawValue + UInt64(j - i) << pageShift)
                i = j
            }
        }
    }

    /// `kvm_iommu_host_stage2_idmap`: keeps the identity domain equal to what the host may reach,
    /// in the same critical section (`hostLock`) as the host stage-2 change. Unmapping
    /// invalidates the IOTLB and waits for transactions in flight before returning.
    @inline(__always) func mirrorHostChange(_ start: PhysAddr, pages: UInt64, accessible: Bool) {
        guard let smmu, let identity = smmu.identity else { return }
        let end = start.rawValue + pages << pageShift
        if accessible {
            identity.table.apply(.map(output: start, permissions: .rw, state: .owned, pagesOnly: false),
                                 start: start.rawValue, end: end)
            sink?.iommu(.mapped(.identity, iova: start.rawValue, output: start, size: pages << pageShift,
                                permissions: .rw))
        } else {
            // Reported before the write so the trace reads unmap, then the invalidation it causes.
            sink?.iommu(.unmapped(.identity, iova: start.rawValue, size: pages << pageShift))
            identity.table.apply(.clear, start: start.rawValue, end: end)
        }
    }

    /// The refcount design's guard (`host_request_owned_transition`, `host_request_unshare` in
    /// Android): -EINVAL when any page of the range holds a DMA reference.
    @inline(__always) func checkNotDMAMapped(_ start: PhysAddr, pages: UInt64) throws(HypError) {
        guard refcountsDMA else { return }
        let first = memory.pageIndex(start)!
        for i in 0..<Int(pages) where vmemmap[first + i].refcount != 0 { throw .EINVAL }
    }

    // MARK: Streams

    @inline(__always) func requireSMMU() throws(HypError) -> SMMU {
        guard let smmu else { throw .ENODEV }
        return smmu
    }

    /// Attaches a host device's stream to a host domain: the identity domain in
    /// `IOMMUMode.mirror`, a paging domain the host allocated in `IOMMUMode.refcount`
    /// (`kvm_iommu_ops.attach_dev`). Writes the STE with pKVM's protocol, then CFGI_STE.
    ///
    /// -ENODEV without an SMMU; -EINVAL for a stream ID beyond the table or a domain that is not
    /// a host domain of this mode; -EBUSY if the stream is already attached.
    public func iommuAttach(_ stream: StreamID, domain id: IOMMUDomainID) throws(HypError) {
        let smmu = try requireSMMU()
        guard Int(stream.rawValue) < SMMU.streamCount else { throw .EINVAL }
        try withHostAndSMMULocks(smmu) { () throws(HypError) in
            guard let domain = smmu.domains[id], domain.vm == nil else { throw .EINVAL }
            try attachLocked(smmu, stream, domain)
        }
    }

    /// Assigns a device to a guest: its stream's STE points at the guest's own stage-2 with the
    /// guest's domain ID, so the device reaches exactly the pages the guest's stage-2 maps, with
    /// the same rights, and follows every change (the guest table's invalidations reach the
    /// IOTLB). -ENODEV, -EINVAL (bad stream, no such VM, or a dying one), -EBUSY (attached).
    public func iommuAssign(_ stream: StreamID, vm handle: VMHandle) throws(HypError) {
        let smmu = try requireSMMU()
        guard Int(stream.rawValue) < SMMU.streamCount else { throw .EINVAL }
        // The VM-table lock is held throughout, so start-teardown (which marks the VM dying
        // under it, then detaches its streams) cannot slip between the check and the attach.
        try vmTableLock.withLock { _ throws(HypError) in
            guard let vm = lookupLocked(handle), !vm.isDying else { throw .EINVAL }
            try withHostAndSMMULocks(smmu) { () throws(HypError) in
                let id = IOMMUDomainID.guest(vm.vmid)
                let existing = smmu.domains[id]
                let domain = existing ?? IOMMUDomain(id: id, kind: .guest(vm.handle), table: vm.stage2, vm: vm)
                try attachLocked(smmu, stream, domain)
                if existing == nil {
                    vm.lock.withLock { _ in vm.stage2.attachIOTLB(smmu.iotlb, domain: id) }
                    smmu.domains[id] = domain
                }
            }
        }
    }

    private func attachLocked(_ smmu: SMMU, _ stream: StreamID, _ domain: IOMMUDomain) throws(HypError) {
        if smmu.readSTE(stream, memory: memory).isValid { throw .EBUSY }
        let ste = StreamTableEntry.stage2(domain: domain.id, vtcr: geometry.vtcr(physBits: geometry.ipaBits),
                                          root: domain.table.root)
        smmu.writeSTE(stream, ste, memory: memory)
        smmu.iotlb.invalidateStream(stream, domain: nil)
        domain.streams.insert(stream)
        sink?.iommu(.attached(stream, domain.id, domain.kind))
    }

    /// Detaches a stream (`kvm_iommu_ops.detach_dev`): STE V cleared first, then CFGI_STE and a
    /// CMD_SYNC, so the device's next transaction gets C_BAD_STE. A guest domain left with no
    /// stream is removed. -ENODEV; -EINVAL if the stream is out of range or not attached.
    public func iommuDetach(_ stream: StreamID) throws(HypError) {
        let smmu = try requireSMMU()
        guard Int(stream.rawValue) < SMMU.streamCount else { throw .EINVAL }
        try withHostAndSMMULocks(smmu) { () throws(HypError) in
            let ste = smmu.readSTE(stream, memory: memory)
            guard ste.isValid, let domain = smmu.domains[ste.s2vmid] else { throw .EINVAL }
            detachLocked(smmu, stream, domain)
        }
    }

    private func detachLocked(_ smmu: SMMU, _ stream: StreamID, _ domain: IOMMUDomain) {
        smmu.writeSTE(stream, StreamTableEntry(), memory: memory)
        smmu.iotlb.invalidateStream(stream, domain: domain.streams.count == 1 ? domain.id : nil)
        domain.streams.remove(stream)
        sink?.iommu(.detached(stream))
        if let vm = domain.vm, domain.streams.isEmpty {
            vm.lock.withLock { _ in vm.stage2.attachIOTLB(nil, domain: domain.id) }
            smmu.domains[domain.id] = nil
        }
    }

    /// Detaches every stream assigned to `vm` (its devices are reset when it starts dying, so no
    /// device can reach its pages while they are reclaimed or its tables are freed). Runs with
    /// the host lock held.
    func detachAssignedStreamsLocked(_ vm: GuestVM) {
        guard let smmu else { return }
        smmu.configLock.withLock { _ in
            let id = IOMMUDomainID.guest(vm.vmid)
            guard let domain = smmu.domains[id], domain.vm === vm else { return }
            for stream in domain.streams.sorted() { detachLocked(smmu, stream, domain) }
        }
    }

    // MARK: Paging domains (IOMMUMode.refcount)

    /// `kvm_iommu_alloc_domain`: creates an empty paging domain numbered `id`.
    ///
    /// -ENODEV without an SMMU; -EINVAL in `IOMMUMode.mirror` (the host's devices use the
    /// identity domain there) or for an ID outside the host's range; -EEXIST if it exists;
    /// -ENOMEM when all `maxPagingDomains` PGDs are in use.
    public func iommuAllocDomain(_ id: IOMMUDomainID) throws(HypError) {
        let smmu = try requireSMMU()
        guard smmu.mode == .refcount, IOMMUDomainID.hostRange.contains(id.rawValue) else { throw .EINVAL }
        try smmu.configLock.withLock { _ throws(HypError) in
            if smmu.domains[id] != nil { throw .EEXIST }
            try faults.check(.pagingDomainPGD)
            guard let root = smmu.pgdSlots.popLast() else { throw .ENOMEM }
            let table = Stage2PageTable(geometry: geometry, vmid: VMID(rawValue: id.rawValue), root: root,
                                        memory: memory, vmemmap: vmemmap, tableUse: .iommuTable,
                                        freeUse: .iommuPoolFree, sink: nil)
            table.attachIOTLB(smmu.iotlb, domain: id)
            smmu.domains[id] = IOMMUDomain(id: id, kind: .paging, table: table)
        }
    }

    /// `kvm_iommu_free_domain`: unmaps everything the domain still maps (dropping the DMA
    /// references after the IOTLB sync) and returns its tables to the pool.
    /// -ENODEV; -EINVAL if there is no such paging domain; -EBUSY while a stream is attached.
    public func iommuFreeDomain(_ id: IOMMUDomainID) throws(HypError) {
        let smmu = try requireSMMU()
        try withHostAndSMMULocks(smmu) { () throws(HypError) in
            guard let domain = smmu.domains[id], domain.kind == .paging else { throw .EINVAL }
            guard domain.streams.isEmpty else { throw .EBUSY }
            var mapped: [(UInt64, UInt64)] = []
            domain.table.forEachEntry { e in
                if e.descriptor.isLeaf(level: e.level) { mapped.append((e.ipa, e.size)) }
            }
            for (iova, size) in mapped { unmapPagingLocked(smmu, domain, iova: iova, end: iova + size) }
            for page in domain.table.destroy() {
                vmemmap.pointer(memory.pageIndex(page)!).pointee.use = .iommuPoolFree
            }
            smmu.pgdSlots.append(domain.table.root)
            drainTables(smmu, domain.table)
            smmu.domains[id] = nil
        }
    }

    /// `kvm_iommu_map_pages` with `__pkvm_host_use_dma` before the PTEs are written: maps
    /// `pages` host pages at `iova` in a paging domain, each taking a DMA reference.
    ///
    /// Checks, in order: an SMMU (-ENODEV); a paging domain (-EINVAL); `prot` is R, W or RW
    /// (-EINVAL); IOVA page aligned, `pages` > 0 and the range below the IPA limit (-EINVAL);
    /// pfn range valid (-EINVAL); memory check (-EINVAL / -EPERM: pvm has no DMA-capable MMIO);
    /// per page (`__pkvm_host_use_dma_page`): host NOPAGE -EPERM, host shared while EL2 maps the
    /// page (hyp not NOPAGE) -EPERM, refcount saturated -EBUSY; nothing mapped in the IOVA
    /// range (-EEXIST); enough table pages in the SMMU pool (-ENOMEM).
    public func iommuMap(domain id: IOMMUDomainID, iova: UInt64, pfn: PFN, pages: UInt64,
                         prot: Stage2Permissions) throws(HypError) {
        let smmu = try requireSMMU()
        try withHostAndSMMULocks(smmu) { () throws(HypError) in
            guard let domain = smmu.domains[id], domain.kind == .paging else { throw .EINVAL }
            guard !prot.isEmpty, prot.isSubset(of: .rw) else { throw .EINVAL }
            let end = try checkIOVARange(iova, pages: pages)
            guard pfnRangeIsValid(pfn, pages) else { throw .EINVAL }
            let pa = pfn.address
            try checkRangeAllowedMemory(pa, pages: pages)
            let first = memory.pageIndex(pa)!
            for i in 0..<Int(pages) {
                let p = vmemmap[first + i]
                switch p.hostState {
                case .owned: break
                case .sharedOwned, .sharedBorrowed: if p.hypState != .noPage { throw .EPERM }
                default: throw .EPERM
                }
                if p.refcount == UInt16.max { throw .EBUSY }
            }
            var a = iova
            while a < end {
                let (d, level) = domain.table.leaf(at: IPA(a))
                if !d.isZero && !d.isTable(level: level) { throw .EEXIST }
                a += pageSize
            }
            try topUpTables(smmu, domain.table, start: iova, end: end)
            for i in 0..<Int(pages) { vmemmap.pointer(first + i).pointee.refcount += 1 }
            domain.table.apply(.map(output: pa, permissions: prot, state: .owned, pagesOnly: true),
                               start: iova, end: end)
            sink?.iommu(.mapped(id, iova: iova, output: pa, size: pages << pageShift, permissions: prot))
        }
    }

    /// `kvm_iommu_unmap_pages`: unmaps `[iova, iova + pages)` from a paging domain; the IOTLB is
    /// invalidated and synced before each page's DMA reference is dropped
    /// (`__pkvm_host_unuse_dma` after the sync). Returns the pages that were mapped there.
    /// -ENODEV; -EINVAL for a bad domain or range.
    @discardableResult
    public func iommuUnmap(domain id: IOMMUDomainID, iova: UInt64, pages: UInt64) throws(HypError) -> UInt64 {
        let smmu = try requireSMMU()
        return try withHostAndSMMULocks(smmu) { () throws(HypError) -> UInt64 in
            guard let domain = smmu.domains[id], domain.kind == .paging else { throw .EINVAL }
            let end = try checkIOVARange(iova, pages: pages)
            return unmapPagingLocked(smmu, domain, iova: iova, end: end)
        }
    }

    /// A paging-domain IOVA range: page aligned, not empty, below the IPA limit (-EINVAL).
    /// Returns its end.
    private func checkIOVARange(_ iova: UInt64, pages: UInt64) throws(HypError) -> UInt64 {
        guard iova & (pageSize - 1) == 0, pages > 0, pages <= geometry.limit >> pageShift else { throw .EINVAL }
        let end = iova &+ pages << pageShift
        guard end > iova, end <= geometry.limit else { throw .EINVAL }
        return end
    }

    @discardableResult
    private func unmapPagingLocked(_ smmu: SMMU, _ domain: IOMMUDomain, iova: UInt64, end: UInt64) -> UInt64 {
        var outputs: [PhysAddr] = []
        var a = iova
        while a < end {
            // Paging domains map pages only; an empty entry above level 3 skips its whole span.
            let (d, level) = domain.table.leaf(at: IPA(a))
            if d.isLeaf(level: level) { outputs.append(d.outputAddress(level: level)) }
            let span = Stage2Geometry.blockSize(level: level)
            a = (a & ~(span - 1)) + span
        }
        guard !outputs.isEmpty else { return 0 }
        sink?.iommu(.unmapped(domain.id, iova: iova, size: end - iova))
        domain.table.apply(.clear, start: iova, end: end)  // TLBI + CMD_SYNC through the IOTLB hook
        for pa in outputs { meta(pa).pointee.refcount -= 1 }
        drainTables(smmu, domain.table, keeping: Self.pagingTableReserve)
        return UInt64(outputs.count)
    }

    /// Moves pool pages into a paging domain's table pool so an update of `[start, end)` cannot
    /// run short; -ENOMEM (nothing moved) when the SMMU pool is too small.
    private func topUpTables(_ smmu: SMMU, _ table: Stage2PageTable, start: UInt64, end: UInt64) throws(HypError) {
        try faults.check(.iommuTables)
        let needed = geometry.tablesNeededBound(start: start, end: end) - table.availablePages
        guard needed > 0 else { return }
        guard smmu.pool.count >= needed else { throw .ENOMEM }
        for _ in 0..<needed { table.addFreeTable(smmu.pool.pop(memory: memory)!) }
    }

    /// Free table pages a paging domain keeps after an unmap, so that a map / unmap cycle of one
    /// page (a driver's dma_map / dma_unmap) does not zero and move tables every time.
    static let pagingTableReserve = 4

    /// Returns a paging domain's unused table pages beyond `keeping` to the SMMU pool.
    private func drainTables(_ smmu: SMMU, _ table: Stage2PageTable, keeping: Int = 0) {
        while table.freeTables.count > keeping, let page = table.takeFreeTable() {
            vmemmap.pointer(memory.pageIndex(page)!).pointee.use = .iommuPoolFree
            smmu.pool.push(page, memory: memory)
        }
    }
}
