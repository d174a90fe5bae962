import EL2
import HostMemory
import Synchronization
import Tracing
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Running the guest: one thread per vCPU, each looping on the backend's `run()` and turning
/// exits into hypercalls, stage-2 faults and device accesses.
extension Machine {
    /// Boots vCPU 0 at the firmware entry and waits until the guest powers off, resets, or is
    /// stopped. Throws only for VMM failures (the backend, the MMU mirror), never for the guest.
    public func run() throws(VMMError) -> RunOutcome {
        // x86-64: rdi = the boot configuration. AArch64, as pKVM enters pvmfw: x0 = the device
        // tree, x1 = the staged payload, x2 = its size.
        let arguments = layout.architecture == .aarch64 ? [layout.handoff, payloadAddress, stagedPayloadSize]
            : [layout.handoff]
        try vcpus[0].powerOn(entry: firmwareEntry, arguments: arguments, stack: layout.firmwareStack)
        if case let .deterministic(seed) = configuration.scheduling {
            return try runDeterministic(seed: seed)
        }
        try startThread(vcpu: 0)
        trace?.record(.power(vcpu: 0, event: "start"))
        // Join every vCPU thread, including those CPU_ON starts while we wait: a thread is
        // queued before the CPU_ON that starts it returns, so the queue is only empty at the end.
        while let thread = runState.withLock({ $0.joinable.isEmpty ? nil : $0.joinable.removeFirst() }) {
            thread.join()
        }
        return try endOfRun()
    }

    /// After the last vCPU stopped: a VMM failure, a backend that lost EL2, the trace written
    /// out, then how the run ended.
    func endOfRun() throws(VMMError) -> RunOutcome {
        uart?.flush()
        if let failure = vmmFailure.withLock({ $0 }) { throw failure }
        try checkBackend()
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
        let watcher = try? ThreadHandle.spawn { [self] in
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
        }.get()
        let result = Result { () throws(VMMError) in try run() }
        finished.store(true, ordering: .releasing)
        watcher?.join()
        return (try result.get(), observed.load(ordering: .acquiring))
    }

    /// Stops the guest from outside (a signal the host received): every vCPU leaves the guest
    /// where it is, and `run()` returns `.interrupted(signal:)`. Safe from any thread.
    public func requestStop(signal: Int32) {
        stop(.interrupted(signal: signal))
    }

    /// Writes out the trace recorded so far; a failed write is a VMM error.
    func flushTrace() throws(VMMError) {
        do { try trace?.flush() } catch { throw .io(operation: "write trace file \(error.path)", errno: error.errno) }
    }

    /// Starts a thread running vCPU `index` (its registers already set); in a deterministic run
    /// the scheduler's loop picks it up instead.
    func startThread(vcpu index: Int) throws(VMMError) {
        if case .deterministic = configuration.scheduling {
            runState.withLock { $0.power[index] = true }
            do { try hypervisor.loadVCPU(vm: handle, vcpu: index) } catch {
                throw .hypervisor(operation: "vcpu_load", error: error)
            }
            return
        }
        let result = runState.withLock { state -> Result<Void, ThreadError> in
            switch ThreadHandle.spawn({ [self] in vcpuLoop(index) }) {
            case let .success(thread):
                state.power[index] = true
                state.threads[index] = thread
                state.joinable.append(thread)
                return .success(())
            case let .failure(error):
                return .failure(error)
            }
        }
        if case let .failure(error) = result {
            throw .io(operation: "pthread_create for vCPU \(index)", errno: error.errno)
        }
    }

    /// Ends the run with `outcome` (the first one wins) and kicks every vCPU out of the guest.
    func stop(_ outcome: RunOutcome) {
        runState.withLock { state in
            if state.outcome == nil { state.outcome = outcome }
        }
        stopRequested.store(true, ordering: .releasing)
        for vcpu in vcpus { vcpu.kick() }
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
            try hypervisor.loadVCPU(vm: handle, vcpu: index)
        } catch {
            fail(.hypervisor(operation: "vcpu_load", error: error))
            finish(index, exits: 0)
            return
        }
        while !stopRequested.load(ordering: .acquiring) {
            exits += 1
            if !handleExit(vcpu.run(), vcpu: index) { break }
        }
        hypervisor.putVCPU(vm: handle, vcpu: index)
        finish(index, exits: exits)
    }

    /// What the core does with one exit of vCPU `index`; false when the vCPU ends (CPU_OFF,
    /// HLT, a stop).
    func handleExit(_ exit: GuestExit, vcpu index: Int) -> Bool {
        switch exit {
        case .hypercall:
            switch handleHypercall(vcpu: index) {
            case .resume: return true
            case .vcpuOff: return false
            case let .stop(outcome):
                stop(outcome)
                return false
            }
        case let .stage2Abort(abort):
            return handleAbort(vcpu: index, abort)
        case .interrupted:
            return true
        case .halt:
            trace?.record(.power(vcpu: index, event: "halt"))
            return false
        case let .fatal(fatal):
            if let record = fatal.record { trace?.record(.fault(record)) }
            stop(.faulted(FaultReport(vcpu: index, gpa: fatal.gpa, access: fatal.access, rip: fatal.programCounter,
                                      reason: fatal.reason, pageState: fatal.gpa.flatMap { pageDescription($0) },
                                      record: fatal.record)))
            return false
        }
    }

    /// Marks vCPU `index` off; the machine stops when no vCPU is left on.
    func finish(_ index: Int, exits: Int) {
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
}
