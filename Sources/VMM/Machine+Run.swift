import EL2
import Tracing
import KVM
import Synchronization
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Running the guest: one thread per vCPU, each looping on KVM_RUN and turning exits into
/// hypercalls, stage-2 faults and device accesses.
extension Machine {
    /// Boots vCPU 0 at the firmware entry and waits until the guest powers off, resets, or is
    /// stopped. Throws only for VMM failures (a KVM ioctl, the MMU mirror), never for the guest.
    public func run() throws(VMMError) -> RunOutcome {
        do {
            try X86Boot.start(vcpus[0], rip: firmwareEntry, rdi: GuestABI.bootConfig, rsp: GuestABI.firmwareStackTop)
        } catch { throw .kvm(error) }
        try startThread(vcpu: 0)
        trace?.record(.power(vcpu: 0, event: "start"))
        // Join every vCPU thread, including those CPU_ON starts while we wait: a thread is
        // queued before the CPU_ON that starts it returns, so the queue is only empty at the end.
        while let thread = runState.withLock({ $0.joinable.isEmpty ? nil : $0.joinable.removeFirst() }) {
            pthread_join(thread, nil)
        }
        if let failure = vmmFailure.withLock({ $0 }) { throw failure }
        try checkMirror()
        try flushTrace()
        return runState.withLock { $0.outcome } ?? .faulted(FaultReport(
            vcpu: 0, gpa: nil, access: "-", rip: nil,
            reason: "every vCPU stopped (CPU_OFF or HLT) without PSCI SYSTEM_OFF", pageState: nil))
    }

    /// Runs the guest like `run()`, and calls `observer` from another thread `delay`
    /// nanoseconds after the start while the vCPUs are still running: a look at a live guest
    /// (EL2's views take its locks, so what the observer reads is consistent). Returns the
    /// outcome and whether the observer ran; it does not run once the guest has stopped.
    public func run(observingAfter delay: UInt64, _ observer: @escaping @Sendable () -> Void) throws(VMMError) -> (RunOutcome, observed: Bool) {
        let observed = Atomic<Bool>(false)
        let finished = Atomic<Bool>(false)
        let began = monotonicNanoseconds()
        let watcher = spawnThread { [self] in
            while !finished.load(ordering: .acquiring) {
                if monotonicNanoseconds() &- began >= delay {
                    if !stopRequested.load(ordering: .acquiring) {
                        observer()
                        observed.store(true, ordering: .releasing)
                    }
                    return
                }
                var pause = timespec(tv_sec: 0, tv_nsec: 200_000)
                nanosleep(&pause, nil)
            }
        }
        let result = Result { () throws(VMMError) in try run() }
        finished.store(true, ordering: .releasing)
        if let watcher { pthread_join(watcher, nil) }
        return (try result.get(), observed.load(ordering: .acquiring))
    }

    /// Writes out the trace recorded so far; a failed write is a VMM error.
    func flushTrace() throws(VMMError) {
        do { try trace?.flush() } catch { throw .io(operation: "write trace file \(error.path)", errno: error.errno) }
    }

    /// Starts a thread running vCPU `index` (its registers already set).
    func startThread(vcpu index: Int) throws(VMMError) {
        let ok = runState.withLock { state -> Bool in
            guard let thread = spawnThread({ [self] in vcpuLoop(index) }) else { return false }
            state.power[index] = true
            state.threads[index] = thread
            state.joinable.append(thread)
            return true
        }
        if !ok { throw .io(operation: "pthread_create for vCPU \(index)", errno: errno) }
    }

    /// Ends the run with `outcome` (the first one wins) and kicks every vCPU out of the guest.
    func stop(_ outcome: RunOutcome) {
        let threads = runState.withLock { state -> [pthread_t] in
            if state.outcome == nil { state.outcome = outcome }
            return state.threads.compactMap { $0 }
        }
        stopRequested.store(true, ordering: .releasing)
        for vcpu in vcpus { vcpu.requestExit() }
        let me = pthread_self()
        for thread in threads where pthread_equal(thread, me) == 0 { VCPUKick.kick(thread) }
    }

    /// Records a VMM failure and stops the machine; `run()` throws it.
    func fail(_ error: VMMError) {
        vmmFailure.withLock { if $0 == nil { $0 = error } }
        stop(.faulted(FaultReport(vcpu: -1, gpa: nil, access: "-", rip: nil, reason: "VMM error: \(error)", pageState: nil)))
    }

    /// One vCPU's life: load it in EL2 (a VM reference, as pkvm_load_hyp_vcpu), run until it
    /// turns off or the machine stops, put it.
    func vcpuLoop(_ index: Int) {
        let vcpu = vcpus[index]
        var exits = 0
        do {
            try hypervisor.loadVCPU(vm: handle)
        } catch {
            fail(.hypervisor(operation: "vcpu_load", error: error))
            finish(index, exits: 0)
            return
        }
        loop: while !stopRequested.load(ordering: .acquiring) {
            let exit: KVMExit
            do { exit = try vcpu.run() } catch {
                fail(.kvm(error))
                break
            }
            exits += 1
            switch exit {
            case let .io(port, _, isWrite, _, _):
                guard port == GuestABI.hypercallPort, isWrite else {
                    stop(.faulted(FaultReport(vcpu: index, gpa: nil, access: "\(isWrite ? "out" : "in") port \(hex(UInt64(port)))",
                                              rip: rip(vcpu), reason: "access to an unassigned I/O port", pageState: nil)))
                    break loop
                }
                switch handleHypercall(vcpu: index) {
                case .resume: continue
                case .vcpuOff: break loop
                case let .stop(outcome):
                    stop(outcome)
                    break loop
                }
            case let .mmio(address, length, isWrite, data):
                if !handleMMIO(vcpu: index, address: address, length: Int(length), isWrite: isWrite, data: data) { break loop }
            case let .internalError(suberror, bytes):
                if !handleInternalError(vcpu: index, suberror: suberror, bytes: bytes) { break loop }
            case let .memoryFault(address, _, _):
                if case let .refused(report) = resolveGuestFault(vcpu: index, gpa: address, access: .unknown, size: 0, rip: rip(vcpu)) {
                    stop(.faulted(report))
                    break loop
                }
            case .unreportedFault:
                if !handleUnreportedFault(vcpu: index) { break loop }
            case .interrupted:
                continue
            case .halt:
                trace?.record(.power(vcpu: index, event: "halt"))
                break loop
            case .shutdown:
                stop(.faulted(FaultReport(vcpu: index, gpa: nil, access: "-", rip: rip(vcpu),
                                          reason: "triple fault (KVM_EXIT_SHUTDOWN)", pageState: nil)))
                break loop
            case let .failEntry(reason, _):
                stop(.faulted(FaultReport(vcpu: index, gpa: nil, access: "-", rip: rip(vcpu),
                                          reason: "KVM_EXIT_FAIL_ENTRY, hardware reason \(hex(reason))", pageState: nil)))
                break loop
            case let .systemEvent(type):
                stop(.faulted(FaultReport(vcpu: index, gpa: nil, access: "-", rip: nil,
                                          reason: "unexpected KVM system event \(type)", pageState: nil)))
                break loop
            case let .other(reason):
                stop(.faulted(FaultReport(vcpu: index, gpa: nil, access: "-", rip: rip(vcpu),
                                          reason: "unhandled KVM exit \(reason)", pageState: nil)))
                break loop
            }
        }
        hypervisor.putVCPU(vm: handle)
        finish(index, exits: exits)
    }

    /// Marks vCPU `index` off; the machine stops when no vCPU is left on.
    private func finish(_ index: Int, exits: Int) {
        counters.withLock { $0.exits += exits }
        let anyOn = runState.withLock { state -> Bool in
            state.power[index] = false
            state.threads[index] = nil
            return state.power.contains(true)
        }
        if !anyOn, !stopRequested.load(ordering: .acquiring) {
            stop(.faulted(FaultReport(vcpu: index, gpa: nil, access: "-", rip: nil,
                                      reason: "every vCPU stopped (CPU_OFF or HLT) without PSCI SYSTEM_OFF", pageState: nil)))
        }
    }

    /// The vCPU's instruction pointer, for fault reports (nil if KVM cannot say).
    func rip(_ vcpu: KVMVCPU) -> UInt64? { try? vcpu.registers().rip }
}

/// A closure handed to a new thread.
/// Starts a joinable thread running `body`; nil (errno set) when pthread_create fails. The
/// thread takes ownership of the retained closure box and releases it when it starts.
func spawnThread(_ body: @escaping () -> Void) -> pthread_t? {
    let box = Unmanaged.passRetained(ThreadBody(body))
    var thread = pthread_t()
    let rc = pthread_create(&thread, nil, { raw in
        Unmanaged<ThreadBody>.fromOpaque(raw!).takeRetainedValue().body()
        return nil
    }, box.toOpaque())
    guard rc == 0 else {
        box.release()
        errno = rc
        return nil
    }
    return thread
}

final class ThreadBody {
    let body: () -> Void
    init(_ body: @escaping () -> Void) { self.body = body }
}
