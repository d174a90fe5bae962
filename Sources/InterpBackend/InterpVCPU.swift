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

    /// Instructions per `run()` before the core gets a look (stop requests, statistics).
    static let quantum = 1 << 20

    init(index: Int, cpu: AArch64CPU) {
        self.index = index
        self.cpu = cpu
    }

    func powerOn(entry: UInt64, arguments: [UInt64], stack: UInt64) throws(VMMError) {
        let a = arguments + [0, 0, 0, 0]
        cpu.reset(pc: entry, x0: a[0], x1: a[1], x2: a[2], x3: a[3])
        if stack != 0 { cpu.sp = stack }
    }

    func run() -> GuestExit { run(budget: Self.quantum) }

    func run(budget: Int) -> GuestExit {
        lastFault = nil
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
                syndrome: AbortSyndrome(esr: fault.esr, far: fault.far, hpfar: fault.hpfar, decoded: syndrome.description)))
        case .waitForInterrupt:
            // No interrupt controller yet: WFI and WFE complete at once, which the architecture
            // allows (a spurious wake-up).
            sched_yield()
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

    func kick() { cpu.kick() }

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
