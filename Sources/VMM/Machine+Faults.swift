import EL2
import KVM
import Tracing

/// Guest stage-2 faults: pKVM's `pkvm_mem_abort`, with the KVM exits that stand for them.
extension Machine {
    enum FaultResolution {
        /// The guest may now make the access (the page was donated or shared, or already was).
        case resolved
        case refused(FaultReport)
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
                           context: FaultContext? = nil) -> FaultResolution {
        let gfn = IPA(gpa).gfn
        var known = context
        func record(_ action: FaultAction, _ reason: String?, _ ownership: PageOwnership?) -> FaultRecord {
            if known == nil { known = access == .boot ? FaultContext() : faultContext(vcpu: vcpu) }
            return FaultRecord(source: .vcpu(vm: handle, index: vcpu), gva: known?.gva, gpa: gpa, access: access, size: size,
                               action: action, reason: reason, ownership: ownership, instruction: known?.instruction)
        }
        func refuse(_ reason: String, action: FaultAction = .stopped) -> FaultResolution {
            let r = record(action, reason, ownership(gpa))
            trace?.record(.fault(r))
            return .refused(FaultReport(vcpu: vcpu, gpa: gpa, access: access.rawValue, rip: rip, reason: reason,
                                        pageState: pageDescription(gpa), record: r))
        }
        guard gpa < configuration.memory else { return refuse("no guest RAM at this address") }
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

    /// The page behind `gpa` as EL2 sees it now, with the guest's own stage-2 state.
    func ownership(_ gpa: UInt64) -> PageOwnership {
        guard gpa < configuration.memory else { return PageOwnership(page: nil, owner: .notRAM) }
        var o = hypervisor.ownership(of: PhysAddr(ramBase + gpa))
        o.guest = (try? hypervisor.guestPageView(vm: handle, gfn: IPA(gpa).gfn))?.state
        return o
    }

    /// "host OWNED, hyp NOPAGE; guest: OWNED rwx" for fault reports.
    func pageDescription(_ gpa: UInt64) -> String? {
        guard gpa < configuration.memory else { return nil }
        let pa = PhysAddr(ramBase + (gpa & ~(pageSize - 1)))
        var text = "PA \(pa)"
        if let view = hypervisor.pageView(pa) { text += ": \(view)" }
        if let guest = try? hypervisor.guestPageView(vm: handle, gfn: IPA(gpa).gfn) { text += "; guest stage-2: \(guest)" }
        return text
    }

    /// A data access KVM could not complete: guest RAM the guest view does not map (a stage-2
    /// fault), the console, or nothing at all. Returns false when the vCPU must stop.
    func handleMMIO(vcpu index: Int, address: UInt64, length: Int, isWrite: Bool, data: UInt64) -> Bool {
        if address < configuration.memory {
            switch resolveGuestFault(vcpu: index, gpa: address, access: isWrite ? .write : .read, size: length,
                                     rip: rip(vcpus[index])) {
            case let .refused(report):
                stop(.faulted(report))
                return false
            case .resolved:
                completeAccess(vcpu: vcpus[index], gpa: address, length: length, isWrite: isWrite, data: data)
                return true
            }
        }
        let devicePage = address & ~(pageSize - 1)
        let isDevice = devicePage == GuestABI.consoleMMIO
            || (devicePage == GuestABI.blockMMIO && blockDevice != nil)
            || (devicePage == GuestABI.dmaMMIO && guestDMA != nil)
        if isDevice {
            let allowed = !configuration.isProtected || guestPages.withLock {
                !$0.guardEnrolled || $0.guardMapped.contains(devicePage >> pageShift)
            }
            guard allowed else {
                return stopForDeviceFault(vcpu: index, address: address, length: length, isWrite: isWrite,
                                          reason: "MMIO access the MMIO guard does not allow (not MMIO_GUARD_MAPped)")
            }
            let offset = address - devicePage
            switch devicePage {
            case GuestABI.consoleMMIO:
                if isWrite { consoleWrite(offset: offset, value: data, length: length) }
                else { vcpus[index].completeMMIORead(0) }
            case GuestABI.blockMMIO:
                if isWrite { blockDevice!.write(offset: offset, value: data) }
                else { vcpus[index].completeMMIORead(blockDevice!.read(offset: offset)) }
            default:
                if isWrite { guestDMAWrite(offset: offset, value: data) }
                else { vcpus[index].completeMMIORead(guestDMARead(offset: offset)) }
            }
            return true
        }
        return stopForDeviceFault(vcpu: index, address: address, length: length, isWrite: isWrite,
                                  reason: "access to unassigned guest-physical address")
    }

    /// Stops the guest for an access outside RAM that no device allows; returns false.
    private func stopForDeviceFault(vcpu index: Int, address: UInt64, length: Int, isWrite: Bool, reason: String) -> Bool {
        let context = faultContext(vcpu: index)
        let record = FaultRecord(source: .vcpu(vm: handle, index: index), gva: context.gva, gpa: address,
                                 access: isWrite ? .write : .read, size: length, action: .stopped, reason: reason,
                                 ownership: PageOwnership(page: nil, owner: .notRAM), instruction: context.instruction)
        trace?.record(.fault(record))
        stop(.faulted(FaultReport(vcpu: index, gpa: address, access: record.access.rawValue, rip: rip(vcpus[index]),
                                  reason: reason, pageState: nil, record: record)))
        return false
    }

    /// Completes the access that exited, now that the page is the guest's: KVM has already
    /// decoded it, so the VMM performs it on the guest's behalf in EL2's view of RAM.
    private func completeAccess(vcpu: KVMVCPU, gpa: UInt64, length: Int, isWrite: Bool, data: UInt64) {
        let pa = PhysAddr(ramBase + gpa)
        let count = min(max(length, 0), 8)
        var value = data
        withUnsafeMutableBytes(of: &value) { raw in
            let bytes = UnsafeMutableRawBufferPointer(rebasing: raw[0 ..< count])
            if isWrite { hypervisor.memory.write(pa, from: UnsafeRawBufferPointer(bytes)) }
            else { hypervisor.memory.read(pa, into: bytes) }
        }
        if !isWrite { vcpu.completeMMIORead(value) }
    }

    /// KVM_EXIT_INTERNAL_ERROR: on this kernel an instruction fetch from a page the guest view
    /// does not map (../shared/spec/kvm-uapi.md 7.1). The page holding RIP is faulted in and
    /// the instruction re-executed; any other emulation failure stops the guest.
    func handleInternalError(vcpu index: Int, suberror: UInt32, bytes: [UInt8]) -> Bool {
        let vcpu = vcpus[index]
        let rip = rip(vcpu)
        var gpa: UInt64?
        if let rip { gpa = try? vcpu.translate(rip) ?? nil }
        if suberror == 1, let gpa, gpa < configuration.memory,
           (try? hypervisor.guestPageView(vm: handle, gfn: IPA(gpa).gfn))?.phys == nil {
            switch resolveGuestFault(vcpu: index, gpa: gpa, access: .fetch, size: 0, rip: rip,
                                     context: FaultContext(instruction: nil, gva: rip)) {
            case .resolved: return true
            case let .refused(report):
                stop(.faulted(report))
                return false
            }
        }
        let hexBytes = bytes.map { String($0, radix: 16) }.joined(separator: " ")
        stop(.faulted(FaultReport(vcpu: index, gpa: gpa, access: "fetch", rip: rip,
                                  reason: "KVM could not emulate the instruction (internal error \(suberror)\(bytes.isEmpty ? "" : ", bytes \(hexBytes)"))",
                                  pageState: gpa.flatMap { pageDescription($0) })))
        return false
    }

    /// The console device: FLUSH prints the buffer page, read through EL2's host-access check.
    func consoleWrite(offset: UInt64, value: UInt64, length: Int) {
        switch offset {
        case GuestABI.consoleFlush:
            let count = Int(min(value & 0xffff_ffff, pageSize))
            guard count > 0 else { return }
            do {
                configuration.console(try accessor.read(gpa: consoleBuffer.load(ordering: .relaxed), count: count))
            } catch {
                counters.withLock { $0.hostFaults += 1 }
                hostFaultLog.withLock { $0.append(error) }
            }
        case GuestABI.consoleBuffer:
            consoleBuffer.store(value & ~(pageSize - 1), ordering: .relaxed)
        default:
            break
        }
    }
}
