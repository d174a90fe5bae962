import EL2
import Tracing

/// Guest stage-2 aborts: pKVM's host side of a guest's abort (`kvm_handle_guest_abort`): lazy
/// donation in RAM (`pkvm_mem_abort`), MMIO emulation outside it (`io_mem_abort`) after EL2's
/// MMIO guard, and a stop with a report for anything else.
extension Machine {
    enum FaultResolution {
        /// The guest may now make the access (the page was donated or shared, or already was).
        case resolved
        case refused(FaultReport)
    }

    /// Handles a stage-2 abort the backend reported. Returns false when the vCPU must stop.
    func handleAbort(vcpu index: Int, _ abort: Stage2Abort) -> Bool {
        let vcpu = vcpus[index]
        if layout.contains(abort.ipa) {
            switch resolveGuestFault(vcpu: index, gpa: abort.ipa, access: abort.access, size: abort.size,
                                     rip: vcpu.programCounter, context: abort.context, syndrome: abort.syndrome) {
            case let .refused(report):
                stop(.faulted(report))
                return false
            case .resolved:
                // KVM decoded an access to a page its memslot view had not mapped yet: finish it.
                // With a hardware syndrome the instruction simply runs again, as on arm64.
                if abort.resume == .complete, abort.syndrome == nil { completeRAMAccess(vcpu, abort) }
                return true
            }
        }
        // Outside RAM: MMIO. EL2 decides whether the guard lets the access through.
        guard let (device, offset) = devices.device(at: abort.ipa) else {
            return stopForDeviceFault(vcpu: index, abort, reason: "access to unassigned guest-physical address")
        }
        guard hypervisor.guestMMIOAllowed(vm: handle, ipa: IPA(abort.ipa)) else {
            return stopForDeviceFault(vcpu: index, abort,
                                      reason: "MMIO access the MMIO guard does not allow (not MMIO_GUARD_MAPped)")
        }
        guard abort.resume == .complete, abort.access == .read || abort.access == .write else {
            // ESR_EL2.ISV = 0 (a pair, a writeback form, SIMD): the syndrome does not say what to
            // emulate. pKVM's host may not look into a protected guest to decode it, so it injects
            // a synchronous external abort into the guest (io_mem_abort: kvm_inject_sea_dabt);
            // for a non-protected guest KVM would exit KVM_EXIT_ARM_NISV, which pvm's VMM does not
            // decode. Either way the access does not happen.
            if configuration.isProtected, abort.syndrome != nil, vcpu.injectExternalDataAbort() {
                trace?.record(.fault(FaultRecord(source: .vcpu(vm: handle, index: index), gpa: abort.ipa, access: abort.access,
                                                 size: abort.size, action: .refused,
                                                 reason: "MMIO with ESR_EL2.ISV = 0: external abort injected (kvm_inject_sea_dabt)",
                                                 ownership: PageOwnership(page: nil, owner: .notRAM), syndrome: abort.syndrome)))
                return true
            }
            return stopForDeviceFault(vcpu: index, abort,
                                      reason: "MMIO access without a valid syndrome (ESR_EL2.ISV = 0): "
                                        + (configuration.isProtected ? "the guest has no vector table for the injected abort"
                                            : "KVM would exit KVM_EXIT_ARM_NISV, which pvm's VMM does not decode"))
        }
        if abort.access == .write {
            device.write(offset: offset, size: abort.size, value: abort.value)
            vcpu.completeAccess(read: 0)
        } else {
            vcpu.completeAccess(read: device.read(offset: offset, size: abort.size))
        }
        return true
    }

    /// A guest touched `gpa` without a stage-2 mapping for it. For a protected guest the host
    /// donates the backing page (`__pkvm_host_donate_guest`), for a non-protected one it shares
    /// it (`__pkvm_host_share_guest`), after topping up the memcache. Faults are serialised, as
    /// the host's MMU lock serialises them; a page another vCPU mapped meanwhile is resolved.
    ///
    /// Refused (the VM stops): an address outside guest RAM, a page the guest relinquished, a
    /// poisoned page, a write to a read-only mapping, a fetch from a page without execute
    /// right, and anything EL2 refuses to give.
    ///
    /// A fault record (the instruction, its registers, the page's ownership before anything is
    /// done) is built only when something reads it: a trace, or a refusal. `context` is the
    /// instruction when the caller already decoded it.
    func resolveGuestFault(vcpu: Int, gpa: UInt64, access: FaultAccess, size: Int, rip: UInt64? = nil,
                           context: FaultContext? = nil, syndrome: AbortSyndrome? = nil) -> FaultResolution {
        let gfn = IPA(gpa).gfn
        var known = context
        func record(_ action: FaultAction, _ reason: String?, _ ownership: PageOwnership?) -> FaultRecord {
            if known == nil { known = access == .boot ? FaultContext() : vcpus[vcpu].faultContext() }
            return FaultRecord(source: .vcpu(vm: handle, index: vcpu), gva: known?.gva, gpa: gpa, access: access, size: size,
                               action: action, reason: reason, ownership: ownership, instruction: known?.instruction,
                               syndrome: syndrome)
        }
        func refuse(_ reason: String, action: FaultAction = .stopped) -> FaultResolution {
            let r = record(action, reason, ownership(gpa))
            trace?.record(.fault(r))
            return .refused(FaultReport(vcpu: vcpu, gpa: gpa, access: access.rawValue, rip: rip, reason: reason,
                                        pageState: pageDescription(gpa), record: r))
        }
        guard layout.contains(gpa) else { return refuse("no guest RAM at this address") }
        counters.withLock { $0.stage2Faults += 1 }
        return guestPages.withLock { pages -> FaultResolution in
            if pages.relinquished.contains(gfn.rawValue) {
                return refuse("the guest gave this page back with MEM_RELINQUISH; it belongs to the host now")
            }
            if let view = try? hypervisor.guestPageView(vm: handle, gfn: gfn), view.phys != nil {
                if access == .write, !view.permissions.contains(.write) {
                    return refuse("write to a page the guest may only read")
                }
                if access == .fetch, !view.permissions.contains(.execute) {
                    return refuse("instruction fetch from a page without execute right (stage-2 XN)")
                }
                return .resolved
            }
            if (try? hypervisor.isPoisoned(vm: handle, ipa: gfn.ipa)) == true {
                return refuse("the page is poisoned (force-reclaimed by the host)", action: .poisoned)
            }
            do { try topUpMemcache() } catch {
                return refuse("memcache top-up failed: \(error)")
            }
            let before = trace == nil ? nil : ownership(gpa)
            let pfn = backingPage(gfn)
            if let block = donateBlock(around: gfn, &pages) {
                counters.withLock {
                    $0.donated += Int(block)
                    $0.blocksDonated += 1
                }
                if let trace { trace.record(.fault(record(.donated, nil, before))) }
                return .resolved
            }
            do {
                if configuration.isProtected {
                    try transition("host_donate_guest", pfn: pfn, gfn: gfn) { () throws(HypError) in
                        try hypervisor.hostDonateGuest(pfn, gfn: gfn, vm: handle)
                    }
                } else {
                    try transition("host_share_guest", pfn: pfn, gfn: gfn) { () throws(HypError) in
                        try hypervisor.hostShareGuest(pfn, gfn: gfn, pages: 1, vm: handle, prot: .rwx)
                    }
                }
            } catch {
                return refuse("EL2 refused to give the page to the guest: \(error)")
            }
            pages.given.insert(gfn.rawValue)
            counters.withLock { $0.donated += 1 }
            if let trace {
                trace.record(.fault(record(configuration.isProtected ? .donated : .shared, nil, before)))
            }
            return .resolved
        }
    }

    /// `--guest-block 2m|1g`: a protected guest's first touch in an aligned block that lies in
    /// guest RAM, none of whose frames was given or relinquished, donates the whole block at
    /// once (`hostDonateGuestBlock`), mapped by one leaf. Returns the pages donated, or nil when
    /// the fault takes a single page (no such block, or EL2 refused it: a page of the block is
    /// not the host's any more). Called under `guestPages`'s lock.
    private func donateBlock(around gfn: GFN, _ pages: inout GuestPages) -> UInt64? {
        let n = configuration.guestBlock.pages
        guard configuration.isProtected, n > 1 else { return nil }
        let first = GFN(gfn.rawValue & ~(n - 1))
        guard guestMemory.contains(first, pages: n),
              !pages.relinquished.contains(where: { $0 >= first.rawValue && $0 - first.rawValue < n }) else { return nil }
        // A block with a page given already fails EL2's checks (guest NOPAGE, host OWNED); that
        // refusal is the normal way to learn it, so it is not traced.
        do throws(HypError) {
            try hypervisor.hostDonateGuestBlock(backingPage(first), gfn: first, pages: n, vm: handle)
        } catch { return nil }
        trace?.record(.transition(vm: handle, name: "host_donate_guest_block", pfn: backingPage(first).rawValue,
                                  gfn: first.rawValue, error: nil))
        for k in 0 ..< n { pages.given.insert(first.rawValue + k) }
        return n
    }

    /// The page behind `gpa` as EL2 sees it now, with the guest's own stage-2 state.
    func ownership(_ gpa: UInt64) -> PageOwnership {
        guard layout.contains(gpa) else { return PageOwnership(page: nil, owner: .notRAM) }
        var o = hypervisor.ownership(of: PhysAddr(ramBase + layout.offset(gpa)))
        o.guest = (try? hypervisor.guestPageView(vm: handle, gfn: IPA(gpa).gfn))?.state
        return o
    }

    /// "host OWNED, hyp NOPAGE; guest: OWNED rwx" for fault reports.
    func pageDescription(_ gpa: UInt64) -> String? {
        guard layout.contains(gpa) else { return nil }
        let pa = PhysAddr(ramBase + layout.offset(gpa & ~(pageSize - 1)))
        var text = "PA \(pa)"
        if let view = hypervisor.pageView(pa) { text += ": \(view)" }
        if let guest = try? hypervisor.guestPageView(vm: handle, gfn: IPA(gpa).gfn) { text += "; guest stage-2: \(guest)" }
        return text
    }

    /// Stops the guest for an access outside RAM that no device allows; returns false.
    private func stopForDeviceFault(vcpu index: Int, _ abort: Stage2Abort, reason: String) -> Bool {
        let context = abort.context ?? vcpus[index].faultContext()
        let record = FaultRecord(source: .vcpu(vm: handle, index: index), gva: context.gva, gpa: abort.ipa,
                                 access: abort.access, size: abort.size, action: .stopped, reason: reason,
                                 ownership: PageOwnership(page: nil, owner: .notRAM), instruction: context.instruction,
                                 syndrome: abort.syndrome)
        trace?.record(.fault(record))
        stop(.faulted(FaultReport(vcpu: index, gpa: abort.ipa, access: abort.access.rawValue,
                                  rip: context.instruction?.address ?? vcpus[index].programCounter,
                                  reason: reason, pageState: nil, record: record)))
        return false
    }

    /// Completes an access the backend decoded but could not make (KVM_EXIT_MMIO on a page the
    /// guest view had not mapped yet), now that the page is the guest's: the VMM performs it on
    /// the guest's behalf in EL2's view of RAM.
    private func completeRAMAccess(_ vcpu: any GuestVCPU, _ abort: Stage2Abort) {
        let pa = PhysAddr(ramBase + layout.offset(abort.ipa))
        // Never past the faulting page: the next one may not be the guest's.
        let count = min(max(abort.size, 0), 8, Int(pageSize - (abort.ipa & (pageSize - 1))))
        var value = abort.value
        withUnsafeMutableBytes(of: &value) { raw in
            let bytes = UnsafeMutableRawBufferPointer(rebasing: raw[0 ..< count])
            if abort.access == .write { hypervisor.memory.write(pa, from: UnsafeRawBufferPointer(bytes)) }
            else { hypervisor.memory.read(pa, into: bytes) }
        }
        vcpu.completeAccess(read: abort.access == .write ? 0 : value)
    }

    /// The physical page behind guest frame `gfn`: guest RAM is one contiguous run from
    /// `ramBase`, so frame g is always backed by the same page.
    func backingPage(_ gfn: GFN) -> PFN {
        PFN(rawValue: (ramBase >> pageShift) + gfn.rawValue - (layout.memory.lowerBound >> pageShift))
    }

    /// Runs an EL2 transition and traces it with its result.
    func transition(_ name: String, pfn: PFN? = nil, gfn: GFN?, _ body: () throws(HypError) -> Void) throws(HypError) {
        do {
            try body()
            trace?.record(.transition(vm: handle, name: name, pfn: (pfn ?? gfn.map(backingPage))?.rawValue, gfn: gfn?.rawValue, error: nil))
        } catch {
            trace?.record(.transition(vm: handle, name: name, pfn: (pfn ?? gfn.map(backingPage))?.rawValue, gfn: gfn?.rawValue, error: error))
            throw error
        }
    }
}
