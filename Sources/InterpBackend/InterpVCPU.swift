import AArch64
import Disassembly
import EL2
import Synchronization
import Tracing
import VMM
#if canImport(Glibc)
import Glibc
#endif

/// One vCPU on the interpreter: runs the CPU and turns its exits into the seam's `GuestExit`,
/// with the hardware syndrome attached to every stage-2 abort.
final class InterpVCPU: GuestVCPU, @unchecked Sendable {
    let index: Int
    let cpu: AArch64CPU
    /// The abort the last `run()` reported, for `completeAccess` and the fault context.
    private var lastFault: Stage2Fault?
    /// Capstone for AArch64, opened on first use (fault records only).
    private let disassembler = Mutex<Disassembler?>(nil)

    /// The interrupt controller, if the machine has one: the timers' PPIs go to it, and WFI
    /// waits for it.
    let gic: GICv3?
    /// What a WFI sleeps on: the GIC raising this CPU's line, or a kick.
    let wakeup = Wakeup()
    /// Set for a deterministic run, where time is the machine's instruction count: a WFI with
    /// nothing pending lets the virtual clock pass to its timer's deadline (at most
    /// `longestSkip`) through this, instead of sleeping on the host's clock.
    var skipVirtualTime: (@Sendable (UInt64) -> Void)?
    /// The most virtual time one WFI skips: 1 ms alone; with other vCPUs, which may be busy
    /// and whose clock the skip moves too, 20 µs, a few of their turns.
    var longestSkip: UInt64 { (gic?.cpuCount ?? 1) > 1 ? 20_000 : 1_000_000 }

    /// Instructions per `run()` before the core gets a look (stop requests, statistics); the
    /// timers' lines are updated between runs, so this is also their resolution (about 0.3 ms).
    static let quantum = 1 << 16
    /// The longest a WFI sleeps before the core gets a look.
    static let longestSleep: UInt64 = 10_000_000

    init(index: Int, cpu: AArch64CPU, gic: GICv3?) {
        self.index = index
        self.cpu = cpu
        self.gic = gic
    }

    /// Counter ticks as nanoseconds, saturating (a deadline far away, or none, is `.max`).
    static func nanoseconds(ticks: UInt64?) -> UInt64 {
        guard let ticks else { return .max }
        let (ns, overflow) = ticks.multipliedReportingOverflow(by: AArch64CPU.nanosecondsPerTick)
        return overflow ? .max : ns
    }

    /// Drives the timers' PPIs from the CPU's timer registers and counter (on the vCPU's thread).
    /// Only changes go to the GIC: this runs before every slice of instructions.
    func updateTimers() {
        guard let gic else { return }
        let outputs = cpu.timerOutputs()
        if outputs.virtual != timerLevels.virtual { gic.setPPI(GICv3.virtualTimerPPI, cpu: index, level: outputs.virtual) }
        if outputs.physical != timerLevels.physical { gic.setPPI(GICv3.physicalTimerPPI, cpu: index, level: outputs.physical) }
        timerLevels = outputs
    }

    /// The timer outputs last given to the GIC (this vCPU's thread only).
    private var timerLevels = (virtual: false, physical: false)

    /// WFI (Arm ARM D1.16.2): returns at once if an interrupt is pending for this CPU (even one
    /// PSTATE masks), else sleeps until one is, the next timer deadline, a kick, or
    /// `longestSleep`. On virtual time it skips the clock forward instead. Without a GIC it
    /// completes at once (a spurious wake-up, which the architecture allows).
    private func waitForInterrupt() {
        guard let gic else {
            sched_yield()
            return
        }
        updateTimers()
        if gic.interruptPending(cpu: index) { return }
        if let skip = skipVirtualTime {
            skip(min(Self.nanoseconds(ticks: cpu.ticksUntilTimer()), longestSkip))
            updateTimers()
            return
        }
        var sleep = Self.longestSleep
        sleep = min(sleep, Self.nanoseconds(ticks: cpu.ticksUntilTimer()))
        if sleep > 0 { wakeup.wait(nanoseconds: sleep) { gic.interruptPending(cpu: index) } }
        updateTimers()
    }

    func powerOn(entry: UInt64, arguments: [UInt64], stack: UInt64) throws(VMMError) {
        let a = arguments + [0, 0, 0, 0]
        cpu.reset(pc: entry, x0: a[0], x1: a[1], x2: a[2], x3: a[3])
        if stack != 0 { cpu.sp = stack }
    }

    func run() -> GuestExit { run(budget: Self.quantum) }

    func run(budget: Int) -> GuestExit {
        lastFault = nil
        updateTimers()
        switch cpu.run(budget: budget) {
        case .hypercall, .secureMonitorCall:
            return .hypercall
        case let .stage2Abort(fault):
            lastFault = fault
            let syndrome = Syndrome(fault.esr)
            let access: FaultAccess = fault.isInstructionFetch ? .fetch : fault.isWrite ? .write : .read
            return .stage2Abort(Stage2Abort(
                ipa: fault.ipa, access: access, size: fault.size, value: fault.value,
                resume: syndrome.isv ? .complete : .reexecute, context: nil,
                syndrome: AbortSyndrome(esr: fault.esr, far: fault.far, hpfar: fault.hpfar, describe: { Syndrome($0).description })))
        case let .waitForInterrupt(isWFE):
            // WFE waits for an event another CPU signals by a store or SEV: completing at once
            // is always allowed, and a spin-wait loop around it then just spins.
            if isWFE { sched_yield() } else { waitForInterrupt() }
            return .interrupted
        case .budgetExhausted, .kicked:
            return .interrupted
        case let .stopped(reason):
            return .fatal(FatalExit(reason: reason, programCounter: cpu.pc))
        }
    }

    var hypercallArguments: SMCCCRegisters { SMCCCRegisters(cpu.x(0), cpu.x(1), cpu.x(2), cpu.x(3)) }

    func setHypercallResults(_ r: SMCCCRegisters) {
        cpu.setX(0, r.x0)
        cpu.setX(1, r.x1)
        cpu.setX(2, r.x2)
        cpu.setX(3, r.x3)
    }

    /// The HVC's preferred return is the next instruction (ELR_EL2); rewinding it makes the guest
    /// issue the call again, as pKVM does for MEM_SHARE's fault-then-retry.
    func retryHypercall() { cpu.pc &-= 4 }

    /// Completes an MMIO access the core emulated from the syndrome (ISV = 1): a load's value goes
    /// to Xt (SRT), sign-extended when SSE, to 64 bits when SF; the PC moves past the instruction
    /// (kvm_handle_mmio_return).
    func completeAccess(read value: UInt64) {
        guard let fault = lastFault else { return }
        let s = Syndrome(fault.esr)
        if !fault.isWrite, s.srt != 31 {
            let bits = 8 << s.sas
            var v = bits == 64 ? value : value & ((1 << UInt64(bits)) - 1)
            if s.sse, bits < 64 {
                let shift = UInt64(64 - bits)
                v = UInt64(bitPattern: Int64(bitPattern: v << shift) >> Int64(shift))
            }
            cpu.setX(s.srt, s.sf ? v : v & 0xFFFF_FFFF)
        }
        cpu.pc &+= 4
        lastFault = nil
    }

    func kick() {
        cpu.kick()
        wakeup.signal()
    }

    func faultContext() -> FaultContext {
        let pc = cpu.pc
        var record: InstructionRecord?
        if let word = cpu.peekInstruction(at: pc) {
            let bytes = (0 ..< 4).map { UInt8(truncatingIfNeeded: word >> (8 * UInt32($0))) }
            let decoded = disassembler.withLock { d -> DecodedInstruction? in
                if d == nil { d = try? Disassembler(.aarch64) }
                return d?.decode(bytes, address: pc)
            }
            if let decoded {
                let values = decoded.operandRegisters.compactMap { name in cpu.registerValue(name).map { RegisterValue(name: name, value: $0) } }
                record = InstructionRecord(architecture: "aarch64", address: pc, bytes: bytes, text: decoded.text, registers: values)
            } else {
                record = InstructionRecord(architecture: "aarch64", address: pc, bytes: bytes, text: ".inst 0x" + String(word, radix: 16),
                                           registers: [])
            }
        }
        return FaultContext(instruction: record, gva: lastFault?.far)
    }

    var programCounter: UInt64? { cpu.pc }

    var instructionsRetired: UInt64? { cpu.instructionsRetired }

    func injectExternalDataAbort() -> Bool {
        guard let fault = lastFault else { return false }
        lastFault = nil
        return cpu.injectExternalDataAbort(far: fault.far)
    }
}
