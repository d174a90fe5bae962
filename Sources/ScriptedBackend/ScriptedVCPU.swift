import EL2
import Synchronization
import Tracing
import VMM

/// One scripted vCPU: replays its steps, one exit per step that needs the core (a hypercall, an
/// abort, an MMIO access), and performs the rest itself through `ScriptedStage2`.
final class ScriptedVCPU: GuestVCPU, @unchecked Sendable {
    let index: Int
    private let script: [VCPUStep]
    private let ram: GuestRAM
    private let stage2: ScriptedStage2
    private let kicked = Atomic<Bool>(false)
    private let log = Mutex<[VCPUEvent]>([])

    // Owned by the vCPU's thread (run() and the calls the core makes on it in between).
    private var next = 0
    /// Repetitions of the current `hypercalls` step still to make.
    private var repeatsLeft = 0
    private var powered = false
    private var pendingHypercall: SMCCCRegisters?
    /// Whether the pending hypercall goes into the transcript.
    private var recordsCall = true
    /// The step whose access is waiting for the core (an abort, or an MMIO access).
    private var pendingAccess: VCPUStep?

    init(index: Int, script: [VCPUStep], ram: GuestRAM, stage2: ScriptedStage2) {
        self.index = index
        self.script = script
        self.ram = ram
        self.stage2 = stage2
    }

    var events: [VCPUEvent] { log.withLock { $0 } }

    private func note(_ event: VCPUEvent) { log.withLock { $0.append(event) } }

    /// Powers on (again): a vCPU turned off and on again by PSCI goes on with the step after
    /// the one it stopped at.
    func powerOn(entry: UInt64, arguments: [UInt64], stack: UInt64) throws(VMMError) {
        powered = true
        pendingHypercall = nil
        pendingAccess = nil
        note(.poweredOn(entry: entry, context: arguments.first ?? 0))
    }

    func run() -> GuestExit {
        if kicked.exchange(false, ordering: .acquiringAndReleasing) { return .interrupted }
        if pendingHypercall != nil { return .hypercall }  // retried
        if let step = pendingAccess, let exit = perform(step) { return exit }
        while powered, next < script.count {
            let step = script[next]
            switch step {
            case let .hypercall(registers):
                next += 1
                pendingHypercall = registers
                recordsCall = true
                return .hypercall
            case let .hypercalls(registers, count):
                if repeatsLeft == 0 { repeatsLeft = count }
                repeatsLeft -= 1
                if repeatsLeft == 0 { next += 1 }
                pendingHypercall = registers
                // A benchmark loop records only its last call.
                recordsCall = repeatsLeft == 0
                return .hypercall
            case .halt:
                next = script.count
            case .read, .write, .fetch, .fill:
                next += 1
                if let exit = perform(step) { return exit }
            }
        }
        note(.halted)
        return .halt
    }

    /// Tries an access through the guest's stage-2: nil when it completed, else the exit for
    /// the core (a stage-2 abort, or an MMIO access to complete).
    private func perform(_ step: VCPUStep) -> GuestExit? {
        pendingAccess = nil
        let (gpa, size, access): (UInt64, Int, FaultAccess)
        var value: UInt64 = 0
        switch step {
        case let .read(g, s): (gpa, size, access) = (g, s, .read)
        case let .write(g, s, v): (gpa, size, access, value) = (g, s, .write, v)
        case let .fetch(g): (gpa, size, access) = (g, 4, .fetch)
        case let .fill(g, _): (gpa, size, access) = (g & ~(pageSize - 1), Int(pageSize), .write)
        default: preconditionFailure("not an access")
        }
        if gpa >= ram.guestSize {
            // Outside RAM: MMIO, decoded (ISV = 1) for the core to complete.
            pendingAccess = step
            return .stage2Abort(Stage2Abort(ipa: gpa, access: access, size: size, value: value, resume: .complete))
        }
        let needed: Stage2Permissions = access == .read ? .read : access == .write ? .write : .execute
        guard let m = stage2.mapping(gpa), m.permissions.contains(needed) else {
            note(.abort(ipa: gpa, access: access.rawValue))
            pendingAccess = step
            return .stage2Abort(Stage2Abort(ipa: gpa, access: access, size: size, value: value, resume: .reexecute,
                                            context: FaultContext(gva: gpa)))
        }
        let pa = PhysAddr(m.output + (gpa & (pageSize - 1)))
        switch step {
        case .read:
            var v: UInt64 = 0
            withUnsafeMutableBytes(of: &v) { ram.memory.read(pa, into: UnsafeMutableRawBufferPointer(rebasing: $0[0 ..< size])) }
            note(.read(gpa: gpa, value: v))
        case .write:
            withUnsafeBytes(of: value) { ram.memory.write(pa, from: UnsafeRawBufferPointer(rebasing: $0[0 ..< size])) }
            note(.wrote(gpa: gpa))
        case let .fill(_, byte):
            [UInt8](repeating: byte, count: Int(pageSize)).withUnsafeBytes { ram.memory.write(pa, from: $0) }
            note(.filled(gpa: gpa))
        default:
            note(.fetched(gpa: gpa))
        }
        return nil
    }

    var hypercallArguments: SMCCCRegisters { pendingHypercall ?? SMCCCRegisters(0) }

    func setHypercallResults(_ results: SMCCCRegisters) {
        if recordsCall, let call = pendingHypercall { note(.hypercall(call, results: results)) }
        pendingHypercall = nil
    }

    func retryHypercall() {
        if let call = pendingHypercall { note(.retried(call)) }
    }

    func completeAccess(read value: UInt64) {
        guard let step = pendingAccess else { return }
        pendingAccess = nil
        switch step {
        case let .read(gpa, _): note(.read(gpa: gpa, value: value))
        case let .write(gpa, _, _): note(.wrote(gpa: gpa))
        case let .fetch(gpa): note(.fetched(gpa: gpa))
        case let .fill(gpa, _): note(.filled(gpa: gpa))
        default: break
        }
    }

    func kick() { kicked.store(true, ordering: .releasing) }

    func faultContext() -> FaultContext { FaultContext(gva: pendingAccess.map(Self.address)) }

    var programCounter: UInt64? { UInt64(next) }

    private static func address(_ step: VCPUStep) -> UInt64 {
        switch step {
        case let .read(g, _), let .write(g, _, _), let .fetch(g), let .fill(g, _): g
        default: 0
        }
    }
}
