/// Creating guests, topping up their page-table pools, and tearing them down (pkvm.c).
extension Hypervisor {
    /// What the host donates to create a VM (`__pkvm_init_vm`): one page for EL2's VM structure
    /// and the PGD, `geometry.pgdPages` pages aligned to the PGD's size.
    public struct VMDonation: Sendable {
        public var metadata: PFN
        public var pgd: PFN
        public init(metadata: PFN, pgd: PFN) {
            self.metadata = metadata
            self.pgd = pgd
        }
    }

    /// `__pkvm_reserve_vm` + `__pkvm_init_vm`: creates a VM with `vcpus` vCPUs from pages the
    /// host donates. The order of checks and the errnos are the profile's (pkvm.c):
    ///
    /// - mainline (v7.1-rc4): a free VM-table slot (-ENOMEM, `__pkvm_reserve_vm`); at least one
    ///   vCPU (-EINVAL); the VM structure's donation, then the PGD's (-ENOMEM for any failure,
    ///   `map_donated_memory`; pvm also requires the PGD aligned to its size, which the
    ///   concatenated tables need, and reports a misaligned one as that failed donation).
    /// - android (6.12): at least one vCPU (-EINVAL); the PGD aligned and both donations
    ///   (-EINVAL); a free slot (-ENOMEM).
    ///
    /// Each donation is checked as `__pkvm_host_donate_hyp` checks it; nothing changes unless
    /// everything passes.
    public func createVM(protected: Bool, vcpus: Int = 1, donating donation: VMDonation) throws(HypError) -> VMHandle {
        let donationError: HypError = profile == .mainline ? .ENOMEM : .EINVAL
        let pgdPages = UInt64(geometry.pgdPages)
        return try vmTableLock.withLock { _ throws(HypError) -> VMHandle in
            try faults.check(.vmTable)
            let free = vmTable.firstIndex(where: { $0 == nil })
            if profile == .mainline, free == nil { throw .ENOMEM }
            guard vcpus >= 1, vcpus <= Self.maxVCPUsPerVM else { throw .EINVAL }
            let (slot, stage2) = try withHostAndHypLocks { () throws(HypError) -> (Int, Stage2PageTable) in
                do throws(HypError) {
                    guard donation.pgd.rawValue % pgdPages == 0 else { throw .EINVAL }
                    for (pfn, n) in [(donation.metadata, 1), (donation.pgd, pgdPages)] {
                        guard pfnRangeIsValid(pfn, n) else { throw .EINVAL }
                        try checkHostRange(pfn.address, pages: n, .owned, dmaUnmapped: true)
                        try checkHypRange(pfn.address, pages: n, .noPage)
                    }
                    if donation.metadata >= donation.pgd && donation.metadata < donation.pgd.advanced(by: pgdPages) {
                        throw .EPERM
                    }
                } catch {
                    throw donationError
                }
                guard let slot = free else { throw .ENOMEM }
                try donateToHypLocked(donation.metadata, pages: 1)
                try donateToHypLocked(donation.pgd, pages: pgdPages)
                let table = Stage2PageTable(geometry: geometry, vmid: VMID(rawValue: UInt16(slot + 1)),
                                            root: donation.pgd.address, memory: memory, vmemmap: vmemmap,
                                            tableUse: .guestTable, freeUse: .guestPoolFree, coalesces: true, sink: sink)
                return (slot, table)
            }
            let handle = VMHandle(rawValue: VMHandle.offset + UInt16(slot))
            let vmid = stage2.vmid
            let metadata = donation.metadata.address
            meta(metadata).pointee.use = .vmMetadata
            writeVMHeader(metadata, handle: handle, vmid: vmid, protected: protected)
            // Android starts the boot vCPU ON_PENDING (it becomes ON when first run); mainline's
            // host marks it RUNNABLE.
            let vm = GuestVM(handle: handle, vmid: vmid, isProtected: protected, vcpus: vcpus,
                             bootState: profile == .android ? .onPending : .on, stage2: stage2, metadataPage: metadata)
            hostLock.withLock { _ in setVMTableEntry(slot, vm) }
            return handle
        }
    }

    /// The most vCPUs a VM may have (`KVM_MAX_VCPUS` is larger; pvm's VMM runs at most 64).
    public static let maxVCPUsPerVM = 512

    /// EL2's VM structure, as much of it as pvm keeps in the donated page: "pvmVM" magic,
    /// handle, VMID, protected flag. Zeroed at teardown.
    private func writeVMHeader(_ page: PhysAddr, handle: VMHandle, vmid: VMID, protected: Bool) {
        memory.zeroPage(page)
        memory.store64(page, 0x0000_4d56_6d76_70)  // "pvmVM"
        memory.store64(page.advanced(by: 8), UInt64(handle.rawValue) | UInt64(vmid.rawValue) << 16
                       | (protected ? 1 << 32 : 0))
    }

    /// Tops up a VM's memcache with host pages, each admitted with `__pkvm_host_donate_hyp` as
    /// pKVM's `refill_memcache` / `admit_host_page` do. Stops at the first page refused and
    /// throws its error; pages admitted before it stay in the memcache.
    /// A missing or dying VM gives -EINVAL.
    public func topUpMemcache(vm handle: VMHandle, pages: [PFN]) throws(HypError) {
        let vm = try transitionVM(handle)
        for pfn in pages {
            // isDying is guarded by the VM-table lock, which comes before the host lock.
            if vmTableLock.withLock({ _ in vm.isDying }) { throw .EINVAL }
            try withHostLock { () throws(HypError) in
                // A finalize may have run since the check above; it drains under this lock.
                if vm.isFinalized { throw .EINVAL }
                try hypLock.withLock { _ throws(HypError) in try donateToHypLocked(pfn, pages: 1) }
                vm.lock.withLock { _ in vm.stage2.addToMemcache(pfn.address) }
            }
        }
    }

    /// Gives up to `count` unused memcache pages back to the host (`__pkvm_hyp_donate_host`,
    /// not zeroed: EL2 never wrote to them). Returns the pages returned.
    @discardableResult
    public func shrinkMemcache(vm handle: VMHandle, by count: Int) throws(HypError) -> [PFN] {
        let vm = try transitionVM(handle)
        return try withHostLock { () throws(HypError) -> [PFN] in
            var out: [PFN] = []
            while out.count < count, let page = vm.lock.withLock({ _ in vm.stage2.takeFromMemcache() }) {
                hypLock.withLock { _ in returnToHostLocked(page, pages: 1) }
                out.append(page.pfn)
            }
            return out
        }
    }

    /// `__pkvm_start_teardown_vm`: marks a VM dying. In order: no such VM, a VM with references
    /// (loaded vCPUs), a VM already dying. Mainline (v7.1-rc4, `get_pkvm_unref_hyp_vm_locked`)
    /// answers -EINVAL to all three; Android 6.12 answers -ENOENT, -EBUSY, -EINVAL.
    public func startTeardown(vm handle: VMHandle) throws(HypError) {
        let android = profile == .android
        let vm = try vmTableLock.withLock { _ throws(HypError) -> GuestVM in
            guard let vm = lookupLocked(handle) else { throw android ? .ENOENT : .EINVAL }
            if vm.references != 0 { throw android ? .EBUSY : .EINVAL }
            if vm.isDying { throw .EINVAL }
            vm.isDying = true
            vm.lock.withLock { _ in vm.acceptsPages = false }
            return vm
        }
        if smmu != nil { hostLock.withLock { _ in detachAssignedStreamsLocked(vm) } }
    }

    /// `__pkvm_reclaim_dying_guest_page`: `hostReclaimPageGuest` for a dying VM; -EINVAL if the
    /// VM does not exist or is not dying.
    public func reclaimDyingGuestPage(vm handle: VMHandle, gfn: GFN) throws(HypError) {
        let vm = try vmTableLock.withLock { _ throws(HypError) -> GuestVM in
            guard let vm = lookupLocked(handle), vm.isDying else { throw .EINVAL }
            return vm
        }
        try reclaimPageGuest(vm, gfn: gfn)
    }

    /// `__pkvm_finalize_teardown_vm`: removes a dying VM and returns every page EL2 held for it.
    ///
    /// Mainline (v7.1-rc4) answers -EINVAL for a missing or referenced VM and for one that is not
    /// dying; Android 6.12 answers -ENOENT for a missing VM and -EBUSY for one not dying, and does
    /// not look at references. Then: the VMID is flushed;
    /// the stage-2 is destroyed; its table pages and PGD go back to the host zeroed; unused
    /// memcache pages go back as they came; the VM structure page is zeroed and returned.
    /// Returns the number of pages given back.
    ///
    /// pKVM trusts its host to reclaim every guest page first, and leaves a page still mapped
    /// donated to a VM that no longer exists: lost to the host, and named by a handle the next VM
    /// may reuse. pvm's host is not trusted, so finalize gives back what is still mapped, the
    /// way reclaim would (private pages zeroed, pages the guest shared kept, pages the host
    /// shared unshared): no page is ever owned by a VM that is gone (docs/model.md).
    @discardableResult
    public func finalizeTeardown(vm handle: VMHandle) throws(HypError) -> Int {
        let android = profile == .android
        let vm = try vmTableLock.withLock { _ throws(HypError) -> GuestVM in
            guard let vm = lookupLocked(handle) else { throw android ? .ENOENT : .EINVAL }
            if !android, vm.references != 0 { throw .EINVAL }
            guard vm.isDying else { throw android ? .EBUSY : .EINVAL }
            hostLock.withLock { _ in setVMTableEntry(Int(handle.rawValue - VMHandle.offset), nil) }
            return vm
        }
        return withHostAndHypLocks { () -> Int in
            vm.isFinalized = true
            detachAssignedStreamsLocked(vm)
            // The sink is only ever called with EL2 locks held.
            sink?.invalidate(TLBInvalidation(vmid: vm.vmid, start: IPA(0), size: geometry.limit))
            return vm.lock.withLock { _ -> Int in
                var returned = 0
                let s2 = vm.stage2
                reclaimRemainingLocked(vm)
                for page in s2.destroy() {
                    returnToHostLocked(page, pages: 1)
                    returned += 1
                }
                while let page = s2.takeFreeTable() {
                    returnToHostLocked(page, pages: 1)
                    returned += 1
                }
                while let page = s2.takeFromMemcache() {
                    returnToHostLocked(page, pages: 1)
                    returned += 1
                }
                memory.zeroPage(vm.metadataPage)
                returnToHostLocked(vm.metadataPage, pages: 1)
                return returned + 1
            }
        }
    }
}

extension Hypervisor {
    /// Gives back every page a finalized VM's stage-2 still maps (host, hyp and guest locks
    /// held): as `__pkvm_host_reclaim_page_guest` for pages it owned or shared, as
    /// `__pkvm_host_unshare_guest` for pages the host shared with it. No TLB invalidation is
    /// needed: finalize flushed the VMID, and the table is destroyed next.
    func reclaimRemainingLocked(_ vm: GuestVM) {
        var leaves: [(ipa: UInt64, descriptor: Stage2Descriptor, level: Int)] = []
        vm.stage2.forEachEntry { e in
            if e.descriptor.isLeaf(level: e.level) { leaves.append((e.ipa, e.descriptor, e.level)) }
        }
        for (_, d, level) in leaves {
            let phys = d.outputAddress(level: level)
            let pages = Stage2Geometry.blockSize(level: level) >> pageShift
            guard let first = memory.pageIndex(phys) else { continue }
            switch d.pageState {
            case .owned:
                for k in 0 ..< pages { memory.zeroPage(phys.advanced(by: k << pageShift)) }
                setHostOwner(phys, pages: pages, .host)
            case .sharedOwned:
                setHostOwner(phys, pages: pages, .host)
            case .sharedBorrowed:
                for i in 0 ..< Int(pages) {
                    let p = vmemmap.pointer(first + i)
                    if p.pointee.hostShareGuestCount > 0 { p.pointee.hostShareGuestCount -= 1 }
                    if p.pointee.hostShareGuestCount == 0 { p.pointee.hostState = .owned }
                }
            default:
                break
            }
        }
    }

    /// `pkvm_load_hyp_vcpu`: the host is about to run vCPU `index` of the VM, which holds a
    /// reference on the VM until `putVCPU`. A missing or dying VM, an index the VM does not have,
    /// or a vCPU already loaded gives -EINVAL (pKVM returns no vCPU and the host's vcpu_run
    /// fails), so a VM being torn down cannot be entered again. A vCPU CPU_ON left ON_PENDING
    /// becomes ON here, as Android's `pkvm_reset_vcpu` makes it on its first run.
    public func loadVCPU(vm handle: VMHandle, vcpu index: Int = 0) throws(HypError) {
        try vmTableLock.withLock { _ throws(HypError) in
            guard let vm = lookupLocked(handle), !vm.isDying, index >= 0, index < vm.vcpuCount else { throw .EINVAL }
            try vm.psci.withLock { p throws(HypError) in
                guard !p.loaded[index] else { throw .EINVAL }
                p.loaded[index] = true
                if p.power[index] == .onPending { p.power[index] = .on }
            }
            vm.references += 1
        }
    }

    /// `pkvm_put_hyp_vcpu`: drops the reference `loadVCPU` took.
    public func putVCPU(vm handle: VMHandle, vcpu index: Int = 0) {
        vmTableLock.withLock { _ in
            guard let vm = lookupLocked(handle), index >= 0, index < vm.vcpuCount else { return }
            let wasLoaded = vm.psci.withLock { p -> Bool in
                defer { p.loaded[index] = false }
                return p.loaded[index]
            }
            if wasLoaded, vm.references > 0 { vm.references -= 1 }
        }
    }

    /// A vCPU's PSCI power state, or nil for no such VM or vCPU.
    public func powerState(vm handle: VMHandle, vcpu index: Int) -> VCPUPowerState? {
        guard let vm = vm(handle), index >= 0, index < vm.vcpuCount else { return nil }
        return vm.psci.withLock { $0.power[index] }
    }
}
