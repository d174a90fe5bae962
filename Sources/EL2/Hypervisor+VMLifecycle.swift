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

    /// `__pkvm_init_vm`: creates a VM from pages the host donates.
    ///
    /// Checks, in order: PGD aligned to its size (-EINVAL); a free VM-table slot (-ENOMEM); then
    /// each donation as `__pkvm_host_donate_hyp` checks it (-EINVAL, -EPERM). Nothing changes
    /// unless everything passes.
    public func createVM(protected: Bool, donating donation: VMDonation) throws(HypError) -> VMHandle {
        guard donation.pgd.rawValue % UInt64(geometry.pgdPages) == 0 else { throw .EINVAL }
        return try vmTableLock.withLock { _ throws(HypError) -> VMHandle in
            guard let slot = vmTable.firstIndex(where: { $0 == nil }) else { throw .ENOMEM }
            let handle = VMHandle(rawValue: VMHandle.offset + UInt16(slot))
            let vmid = VMID(rawValue: UInt16(slot + 1))
            let pgdPages = UInt64(geometry.pgdPages)
            let stage2 = try withHostAndHypLocks { () throws(HypError) -> Stage2PageTable in
                for (pfn, n) in [(donation.metadata, 1), (donation.pgd, pgdPages)] {
                    guard pfnRangeIsValid(pfn, n) else { throw .EINVAL }
                    try checkHostRange(pfn.address, pages: n, .owned)
                    try checkHypRange(pfn.address, pages: n, .noPage)
                }
                let overlap = donation.metadata >= donation.pgd && donation.metadata < donation.pgd.advanced(by: pgdPages)
                if overlap { throw .EPERM }
                try donateToHypLocked(donation.metadata, pages: 1)
                try donateToHypLocked(donation.pgd, pages: pgdPages)
                return Stage2PageTable(geometry: geometry, vmid: vmid, root: donation.pgd.address, memory: memory,
                                       vmemmap: vmemmap, tableUse: .guestTable, freeUse: .guestPoolFree, sink: sink)
            }
            let metadata = donation.metadata.address
            meta(metadata).pointee.use = .vmMetadata
            writeVMHeader(metadata, handle: handle, vmid: vmid, protected: protected)
            setVMTableEntry(slot, GuestVM(handle: handle, vmid: vmid, isProtected: protected, stage2: stage2,
                                          metadataPage: metadata))
            return handle
        }
    }

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

    /// `__pkvm_start_teardown_vm`: marks a VM dying. -ENOENT if there is no such VM, -EBUSY while
    /// it has references (loaded vCPUs), -EINVAL if already dying.
    public func startTeardown(vm handle: VMHandle) throws(HypError) {
        let vm = try vmTableLock.withLock { _ throws(HypError) -> GuestVM in
            guard let vm = lookupLocked(handle) else { throw .ENOENT }
            if vm.references != 0 { throw .EBUSY }
            if vm.isDying { throw .EINVAL }
            vm.isDying = true
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
    /// -ENOENT if there is no such VM, -EBUSY if it is not dying. Then: the VMID is flushed;
    /// the stage-2 is destroyed; its table pages and PGD go back to the host zeroed; unused
    /// memcache pages go back as they came; the VM structure page is zeroed and returned.
    /// Returns the number of pages given back.
    ///
    /// Like pKVM, this does not check that the guest's pages were reclaimed first: pages still
    /// mapped stay donated to a VM that no longer exists (the invariant checker reports them).
    @discardableResult
    public func finalizeTeardown(vm handle: VMHandle) throws(HypError) -> Int {
        let vm = try vmTableLock.withLock { _ throws(HypError) -> GuestVM in
            guard let vm = lookupLocked(handle) else { throw .ENOENT }
            guard vm.isDying else { throw .EBUSY }
            setVMTableEntry(Int(handle.rawValue - VMHandle.offset), nil)
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
    /// `pkvm_load_hyp_vcpu`: the host is about to run one of the VM's vCPUs, which holds a
    /// reference on the VM until `putVCPU`. A missing or dying VM gives -EINVAL (pKVM returns
    /// no vCPU), so a VM being torn down cannot be entered again.
    public func loadVCPU(vm handle: VMHandle) throws(HypError) {
        try vmTableLock.withLock { _ throws(HypError) in
            guard let vm = lookupLocked(handle), !vm.isDying else { throw .EINVAL }
            vm.references += 1
        }
    }

    /// `pkvm_put_hyp_vcpu`: drops the reference `loadVCPU` took.
    public func putVCPU(vm handle: VMHandle) {
        vmTableLock.withLock { _ in
            if let vm = lookupLocked(handle), vm.references > 0 { vm.references -= 1 }
        }
    }
}
