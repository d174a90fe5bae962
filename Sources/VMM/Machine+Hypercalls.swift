import EL2
import Tracing
import KVM

/// The guest hypercall ABI (docs/abi.md): pKVM's SMCCC calls, answered as pKVM's EL2
/// (`kvm_handle_pvm_hvc64`, handled at EL2) and host (PSCI, the rest) would.
extension Machine {
    enum HypercallAction {
        case resume
        case vcpuOff
        case stop(RunOutcome)
    }

    /// Handles the hypercall vCPU `index` just made: reads x0..x3 from the sync area, answers,
    /// writes the results back (one exit, no register ioctls).
    func handleHypercall(vcpu index: Int) -> HypercallAction {
        let vcpu = vcpus[index]
        let (x0, x1, x2, x3) = vcpu.syncedRAXToRDX
        let function = UInt32(truncatingIfNeeded: x0)
        let began = trace == nil ? 0 : monotonicNanoseconds()
        counters.withLock { $0.hypercalls += 1 }
        let results: (UInt64, UInt64, UInt64, UInt64)
        switch SMCCCFunction(rawValue: function) {
        case .version, .psciVersion:
            if function == SMCCCFunction.psciVersion.rawValue { markers.withLock { $0.append(elapsed) } }
            results = (SMCCCResult.version1_1, 0, 0, 0)
        case .archFeatures, .psciFeatures:
            results = (SMCCCFunction(rawValue: UInt32(truncatingIfNeeded: x1)) != nil ? 0 : SMCCCResult.notSupported, 0, 0, 0)
        case .vendorHypUID:
            results = GuestABI.kvmUID
        case .vendorHypFeatures:
            results = (configuration.isProtected ? GuestABI.protectedFeatures : GuestABI.nonProtectedFeatures, 0, 0, 0)
        case .hypMemInfo:
            results = (x1 | x2 | x3 == 0 ? GuestABI.granule : SMCCCResult.invalidParameter, 0, 0, 0)
        case .memShare:
            results = (memShare(vcpu: index, ipa: x1, x2: x2, x3: x3), 0, 0, 0)
        case .memUnshare:
            results = (memUnshare(ipa: x1, x2: x2, x3: x3), 0, 0, 0)
        case .memRelinquish:
            results = (memRelinquish(ipa: x1), 0, 0, 0)
        case .mmioGuardInfo, .mmioGuardEnroll, .mmioGuardMap, .mmioGuardUnmap:
            results = (mmioGuard(SMCCCFunction(rawValue: function)!, ipa: x1), 0, 0, 0)
        case .psciCPUOn:
            results = (cpuOn(target: x1, entry: x2, context: x3), 0, 0, 0)
        case .psciAffinityInfo:
            results = (affinityInfo(target: x1, level: x2), 0, 0, 0)
        case .psciCPUOff:
            if let trace {
                traceHypercall(trace, index, function, (x1, x2, x3), (0, 0, 0, 0), since: began)
                trace.record(.power(vcpu: index, event: "cpu-off"))
            }
            return .vcpuOff
        case .psciSystemOff:
            if let trace {
                traceHypercall(trace, index, function, (x1, x2, x3), (0, 0, 0, 0), since: began)
                trace.record(.power(vcpu: index, event: "system-off"))
            }
            return .stop(.poweredOff)
        case .psciSystemReset:
            if let trace {
                traceHypercall(trace, index, function, (x1, x2, x3), (0, 0, 0, 0), since: began)
                trace.record(.power(vcpu: index, event: "system-reset"))
            }
            return .stop(.reset)
        case nil:
            results = (SMCCCResult.notSupported, 0, 0, 0)
        }
        vcpu.setSyncedRAXToRDX(results)
        if let trace { traceHypercall(trace, index, function, (x1, x2, x3), results, since: began) }
        if let failure = mirror.firstFailure {
            fail(.configuration("mirroring EL2 into the MMU failed: \(failure)"))
            return .vcpuOff
        }
        return .resume
    }

    private func traceHypercall(_ trace: EventTrace, _ vcpu: Int, _ function: UInt32, _ arguments: (UInt64, UInt64, UInt64),
                                _ results: (UInt64, UInt64, UInt64, UInt64), since began: UInt64) {
        trace.record(.hypercall(HypercallRecord(
            vm: handle, vcpu: vcpu, function: function, name: SMCCCFunction(rawValue: function)?.name ?? "UNKNOWN",
            arguments: arguments, results: results, duration: monotonicNanoseconds() &- began)))
    }

    /// Checks the common MEM_* arguments: a page-aligned IPA and zero x2, x3.
    private func pageArgument(_ ipa: UInt64, _ x2: UInt64, _ x3: UInt64) -> GFN? {
        guard x2 | x3 == 0, ipa & (pageSize - 1) == 0 else { return nil }
        return IPA(ipa).gfn
    }

    /// MEM_SHARE: `__pkvm_guest_share_host`. A page never faulted in gives -ENOENT; pKVM then
    /// fakes a data abort so the host donates the page, and the guest retries the HVC
    /// (../shared/spec/pkvm-ownership.md 12.2). pvm runs the same fault path and retries once.
    private func memShare(vcpu: Int, ipa: UInt64, x2: UInt64, x3: UInt64) -> UInt64 {
        guard configuration.isProtected else { return SMCCCResult.notSupported }
        guard let gfn = pageArgument(ipa, x2, x3) else { return SMCCCResult.invalidParameter }
        do {
            try transition("guest_share_host", gfn: gfn) { () throws(HypError) in try hypervisor.guestShareHost(vm: handle, gfn: gfn) }
        } catch .ENOENT {
            guard ipa < configuration.memory,
                  case .resolved = resolveGuestFault(vcpu: vcpu, gpa: ipa, access: .share, size: 0) else {
                return SMCCCResult.invalidParameter
            }
            do {
                try transition("guest_share_host", gfn: gfn) { () throws(HypError) in try hypervisor.guestShareHost(vm: handle, gfn: gfn) }
            } catch { return SMCCCResult.invalidParameter }
        } catch { return SMCCCResult.invalidParameter }
        counters.withLock { $0.shared += 1 }
        return SMCCCResult.success
    }

    /// MEM_UNSHARE: `__pkvm_guest_unshare_host`.
    private func memUnshare(ipa: UInt64, x2: UInt64, x3: UInt64) -> UInt64 {
        guard configuration.isProtected else { return SMCCCResult.notSupported }
        guard let gfn = pageArgument(ipa, x2, x3) else { return SMCCCResult.invalidParameter }
        do {
            try transition("guest_unshare_host", gfn: gfn) { () throws(HypError) in try hypervisor.guestUnshareHost(vm: handle, gfn: gfn) }
        } catch { return SMCCCResult.invalidParameter }
        counters.withLock { $0.unshared += 1 }
        return SMCCCResult.success
    }

    /// MEM_RELINQUISH (Android): `__pkvm_guest_relinquish_to_host`. The VMM then treats the
    /// page as ballooned out: a later access stops the guest instead of donating it again.
    private func memRelinquish(ipa: UInt64) -> UInt64 {
        guard ipa & (pageSize - 1) == 0 else { return SMCCCResult.invalidParameter }
        let gfn = IPA(ipa).gfn
        do {
            var returned: PhysAddr?
            try transition("guest_relinquish_to_host", gfn: gfn) { () throws(HypError) in
                returned = try hypervisor.guestRelinquish(vm: handle, gfn: gfn)
            }
            if returned != nil {
                guestPages.withLock {
                    $0.given.remove(gfn.rawValue)
                    $0.relinquished.insert(gfn.rawValue)
                }
                counters.withLock { $0.relinquished += 1 }
            }
            return SMCCCResult.success
        } catch { return SMCCCResult.invalidParameter }
    }

    /// The Android MMIO guard: once enrolled, the guest may only touch MMIO granules it has
    /// mapped with MMIO_GUARD_MAP.
    private func mmioGuard(_ function: SMCCCFunction, ipa: UInt64) -> UInt64 {
        guard configuration.isProtected else { return SMCCCResult.notSupported }
        switch function {
        case .mmioGuardInfo: return GuestABI.granule
        case .mmioGuardEnroll:
            guestPages.withLock { $0.guardEnrolled = true }
            return SMCCCResult.success
        case .mmioGuardMap, .mmioGuardUnmap:
            guard ipa & (pageSize - 1) == 0, ipa >= configuration.memory else { return SMCCCResult.invalidParameter }
            return guestPages.withLock { pages -> UInt64 in
                guard pages.guardEnrolled else { return SMCCCResult.invalidParameter }
                if function == .mmioGuardMap {
                    pages.guardMapped.insert(ipa >> pageShift)
                    return SMCCCResult.success
                }
                return pages.guardMapped.remove(ipa >> pageShift) != nil ? SMCCCResult.success : SMCCCResult.invalidParameter
            }
        default: return SMCCCResult.notSupported
        }
    }

    /// PSCI CPU_ON: starts vCPU `target` in long mode at `entry` with `rdi = context`.
    private func cpuOn(target: UInt64, entry: UInt64, context: UInt64) -> UInt64 {
        guard target < UInt64(vcpus.count) else { return SMCCCResult.psciInvalidParameters }
        let index = Int(target)
        // Claim the vCPU under the lock, so two CPU_ONs cannot both start it.
        let claimed = runState.withLock { state -> Bool in
            if state.power[index] { return false }
            state.power[index] = true
            return true
        }
        guard claimed else { return SMCCCResult.psciAlreadyOn }
        do {
            try X86Boot.start(vcpus[index], rip: entry, rdi: context, rsp: 0)
            try startThread(vcpu: index)
        } catch let error as KVMError {
            fail(.kvm(error))
            return SMCCCResult.notSupported
        } catch {
            fail(error as! VMMError)
            return SMCCCResult.notSupported
        }
        trace?.record(.power(vcpu: index, event: "cpu-on"))
        return SMCCCResult.success
    }

    /// PSCI AFFINITY_INFO at affinity level 0: 0 on, 1 off.
    private func affinityInfo(target: UInt64, level: UInt64) -> UInt64 {
        guard target < UInt64(vcpus.count), level == 0 else { return SMCCCResult.psciInvalidParameters }
        return runState.withLock { $0.power[Int(target)] } ? 0 : 1
    }

    /// The physical page behind guest frame `gfn`: guest RAM is one contiguous run from
    /// `ramBase`, so frame g is always backed by the same page.
    func backingPage(_ gfn: GFN) -> PFN { PFN(rawValue: (ramBase >> pageShift) + gfn.rawValue) }

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
