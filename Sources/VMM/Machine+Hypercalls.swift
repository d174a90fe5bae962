import EL2
import HostMemory
import Synchronization
import Tracing
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// A guest's hypercall: EL2 answers it (`Hypervisor.guestHypercall`, which owns every rule of
/// the guest ABI for the machine's pKVM profile), and the VMM, as pKVM's host, carries out what
/// EL2 asks of the host: faulting pages in for a retried MEM_SHARE, starting and stopping vCPUs,
/// powering off, reading the clock, filling random bits.
extension Machine {
    enum HypercallOutcome {
        case resume
        case vcpuOff
        case stop(RunOutcome)
    }

    /// The most pages one fault-then-retry resolves before the guest runs its HVC again (the
    /// walk of a range transition stops after as many leaf entries).
    static let faultInLimit: UInt64 = 256

    /// Handles the hypercall vCPU `index` just made.
    func handleHypercall(vcpu index: Int) -> HypercallOutcome {
        let vcpu = vcpus[index]
        let arguments = vcpu.hypercallArguments
        let began = trace == nil ? 0 : elapsed
        counters.withLock { $0.hypercalls += 1 }
        if arguments.functionID == SMCCCFunction.psciVersion.rawValue {
            let instructions = vcpu.instructionsRetired
            markers.withLock { if $0.count < Self.markerLimit { $0.append((elapsed, instructions)) } }
        }
        let call = hypervisor.guestHypercall(vm: handle, vcpu: index, arguments)
        if let t = call.transition { record(t) }
        var results = call.results
        var outcome = HypercallOutcome.resume
        switch call.action {
        case .none, .suspend:
            // CPU_SUSPEND is a WFI: with no interrupt source it may end at once.
            break
        case let .faultIn(ipa, pages, _):
            let count = min(pages, Self.faultInLimit)
            for k in 0 ..< count {
                let gpa = ipa.rawValue &+ k << pageShift
                guard !isGuestMapped(gpa) else { continue }
                if case let .refused(report) = resolveGuestFault(vcpu: index, gpa: gpa, access: .share, size: 0,
                                                                 rip: vcpu.programCounter) {
                    return .stop(.faulted(report))
                }
            }
            vcpu.retryHypercall()
        case .topUpMemcache:
            do { try topUpMemcache() } catch {
                return .stop(.faulted(FaultReport(vcpu: index, gpa: nil, access: "-", rip: vcpu.programCounter,
                                                  reason: "the host cannot top up the VM's memcache: \(error)",
                                                  pageState: nil)))
            }
            vcpu.retryHypercall()
        case let .cpuOn(target, entry, context):
            do { try powerOn(vcpu: target, entry: entry, context: context) } catch {
                fail(error)
                return .vcpuOff
            }
        case .cpuOff:
            trace?.record(.power(vcpu: index, event: "cpu-off"))
            outcome = .vcpuOff
        case .systemOff:
            trace?.record(.power(vcpu: index, event: "system-off"))
            outcome = .stop(.poweredOff)
        case .systemReset:
            trace?.record(.power(vcpu: index, event: "system-reset"))
            outcome = .stop(.reset)
        case let .relinquished(gfn, _):
            guestPages.withLock {
                $0.given.remove(gfn.rawValue)
                $0.relinquished.insert(gfn.rawValue)
            }
        case let .reclaim(gfn):
            reclaimFromNonProtectedGuest(gfn)
        case let .readClock(physical):
            results = Self.clockReading(physical: physical)
        case let .entropy(bits, wide):
            results = entropy.withLock { state -> SMCCCRegisters in
                if state != nil {
                    var seeded = SeededWords(state: state!)
                    defer { state = seeded.state }
                    return Self.randomBits(bits, wide: wide, using: &seeded)
                }
                var system = SystemRandomNumberGenerator()
                return Self.randomBits(bits, wide: wide, using: &system)
            }
        }
        if let results { vcpu.setHypercallResults(results) }
        if let trace {
            trace.record(.hypercall(HypercallRecord(
                vm: handle, vcpu: index, function: arguments.functionID,
                name: SMCCCFunction(rawValue: arguments.functionID)?.name ?? "UNKNOWN",
                arguments: (arguments.x1, arguments.x2, arguments.x3),
                results: results.map { ($0.x0, $0.x1, $0.x2, $0.x3) } ?? (0, 0, 0, 0),
                duration: elapsed &- began)))
        }
        if let failure = sink.failure ?? backend.failure {
            fail(.mirror(failure))
            return .vcpuOff
        }
        return outcome
    }

    /// Counts and traces a transition a hypercall ran.
    private func record(_ t: GuestTransition) {
        if t.error == nil, t.done > 0 {
            counters.withLock { c in
                switch t.name {
                case "guest_share_host": c.shared += Int(t.done)
                case "guest_unshare_host": c.unshared += Int(t.done)
                case "guest_relinquish_to_host": c.relinquished += Int(t.done)
                default: break
                }
            }
        }
        trace?.record(.transition(vm: handle, name: t.name, pfn: backingPage(t.gfn).rawValue, gfn: t.gfn.rawValue,
                                  error: t.error))
    }

    /// Whether the guest's stage-2 maps `gpa` (EL2's view).
    func isGuestMapped(_ gpa: UInt64) -> Bool {
        (try? hypervisor.guestPageView(vm: handle, gfn: IPA(gpa).gfn))?.phys != nil
    }

    /// PSCI CPU_ON, as the host's `kvm_psci_vcpu_on` wakes the target: reset state (entry,
    /// context, MMU off) and a thread. A thread left from the vCPU's previous life (it called
    /// CPU_OFF and is putting the vCPU) is let finish first; `run()` joins it.
    private func powerOn(vcpu target: Int, entry: UInt64, context: UInt64) throws(VMMError) {
        while runState.withLock({ $0.threads[target] != nil }) {
            var pause = timespec(tv_sec: 0, tv_nsec: 20_000)
            nanosleep(&pause, nil)
        }
        try vcpus[target].powerOn(entry: entry, arguments: [context], stack: 0)
        try startThread(vcpu: target)
        trace?.record(.power(vcpu: target, event: "cpu-on"))
    }

    /// Android's host answering MEM_RELINQUISH of a non-protected guest (`pkvm_host_reclaim_page`):
    /// the page stops being shared with the guest and goes back to the host's free memory,
    /// zeroed; the guest's next touch shares a zero page again.
    private func reclaimFromNonProtectedGuest(_ gfn: GFN) {
        let given = guestPages.withLock { $0.given.remove(gfn.rawValue) != nil }
        guard given else { return }
        do {
            try transition("host_unshare_guest", gfn: gfn) { () throws(HypError) in
                try hypervisor.hostUnshareGuest(gfn: gfn, pages: 1, vm: handle)
            }
            try? accessor.write(gpa: gfn.ipa.rawValue, [UInt8](repeating: 0, count: Int(pageSize)))
        } catch {
            guestPages.withLock { _ = $0.given.insert(gfn.rawValue) }
        }
    }

    /// The generic timer's frequency pvm's vCPUs see (CNTFRQ_EL0): 62.5 MHz, as QEMU's virt board.
    public static let counterFrequency: UInt64 = 62_500_000

    /// KVM PTP (`kvm_ptp_get_time`): the wall clock in ns and the counter at the same moment,
    /// each as high and low 32 bits. pvm's counters are CLOCK_MONOTONIC at `counterFrequency`,
    /// with no virtual offset.
    static func clockReading(physical: Bool) -> SMCCCRegisters {
        var wall = timespec(), mono = timespec()
        clock_gettime(CLOCK_REALTIME, &wall)
        clock_gettime(CLOCK_MONOTONIC, &mono)
        let ns = UInt64(wall.tv_sec) &* 1_000_000_000 &+ UInt64(wall.tv_nsec)
        let monoNs = UInt64(mono.tv_sec) &* 1_000_000_000 &+ UInt64(mono.tv_nsec)
        let cycles = UInt64((Double(monoNs) * Double(counterFrequency) / 1e9).rounded(.down))
        return SMCCCRegisters(ns >> 32, ns & 0xFFFF_FFFF, cycles >> 32, cycles & 0xFFFF_FFFF)
    }

    /// TRNG RND32 / RND64 (`kvm_trng_do_rnd`): `bits` random bits, the rest cleared, in x1..x3
    /// (RND32: 32 bits a register, RND64: 64).
    static func randomBits<G: RandomNumberGenerator>(_ bits: Int, wide: Bool, using g: inout G) -> SMCCCRegisters {
        var words = [UInt64](repeating: 0, count: 3)
        for i in 0 ..< (bits + 63) / 64 { words[i] = g.next() }
        for i in 0 ..< 3 {
            let low = i * 64
            if bits <= low { words[i] = 0 } else if bits < low + 64 { words[i] &= (1 << UInt64(bits - low)) - 1 }
        }
        if wide { return SMCCCRegisters(SMCCCResult.success, words[2], words[1], words[0]) }
        return SMCCCRegisters(SMCCCResult.success, words[1] & 0xFFFF_FFFF, words[0] >> 32, words[0] & 0xFFFF_FFFF)
    }
}

/// A deterministic run's TRNG words (SplitMix64).
struct SeededWords: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 { SplitMix.next(&state) }
}
