import Disassembly
import EL2
import HostMemory
import KVM
import Synchronization
import Tracing
import VMM

/// One KVM vCPU behind the seam: runs `KVM_RUN` and translates `KVMExit` into the arm64-shaped
/// `GuestExit`. The x86 stand-ins:
///
/// | arm64 | x86 on KVM |
/// |---|---|
/// | `HVC #0`, x0..x3 | `out %eax, $0xf1`, rax, rbx, rcx, rdx (through the sync-regs area: one exit) |
/// | stage-2 data abort, ISV = 1 | `KVM_EXIT_MMIO` (KVM decoded the access; the core completes it) |
/// | stage-2 abort, HPFAR_EL2 | `KVM_RUN` -EFAULT: the address comes from `X86FaultDecoder` |
/// | instruction abort | `KVM_EXIT_INTERNAL_ERROR` (emulation failure at a revoked RIP) |
/// | WFI | `HLT` |
final class KVMGuestVCPU: GuestVCPU, @unchecked Sendable {
    let index: Int
    let vcpu: KVMVCPU
    let decoder: X86FaultDecoder
    /// The thread running this vCPU, for kicks (set when `run()` is first called).
    private let thread = Mutex<ThreadHandle?>(nil)
    /// The hypercall must be reported again without entering the guest (the guest's registers
    /// still hold its arguments: re-executing `out` would read the same values).
    private var retryPending = false
    /// The GPA of the `KVM_EXIT_MMIO` write that was the last exit: KVM reports writes after the
    /// instruction retired, so the fault context must look behind RIP.
    private var completedWrite: (gpa: UInt64, size: Int)?

    init(index: Int, vcpu: KVMVCPU, decoder: X86FaultDecoder) {
        self.index = index
        self.vcpu = vcpu
        self.decoder = decoder
    }

    func powerOn(entry: UInt64, arguments: [UInt64], stack: UInt64) throws(VMMError) {
        do { try X86Boot.start(vcpu, rip: entry, rdi: arguments.first ?? 0, rsp: stack) } catch {
            throw .backend(operation: "vCPU \(index) power-on", error: error)
        }
    }

    func run() -> GuestExit {
        if retryPending {
            retryPending = false
            return .hypercall
        }
        if thread.withLock({ $0 == nil }) { thread.withLock { $0 = .current } }
        completedWrite = nil
        let exit: KVMExit
        do { exit = try vcpu.run() } catch {
            return .fatal(FatalExit(reason: "KVM: \(error)", programCounter: programCounter))
        }
        switch exit {
        case let .io(port, _, isWrite, _, _):
            guard port == X86Boot.hypercallPort, isWrite else {
                return .fatal(FatalExit(reason: "access to an unassigned I/O port",
                                        access: "\(isWrite ? "out" : "in") port \(hex(UInt64(port)))",
                                        programCounter: programCounter))
            }
            return .hypercall
        case let .mmio(address, length, isWrite, data):
            if isWrite { completedWrite = (address, Int(length)) }
            return .stage2Abort(Stage2Abort(ipa: address, access: isWrite ? .write : .read, size: Int(length), value: data,
                                            resume: .complete))
        case let .memoryFault(address, _, _):
            return .stage2Abort(Stage2Abort(ipa: address, access: .unknown, resume: .reexecute))
        case .unreportedFault:
            return decoder.unreportedFault(vcpu)
        case let .internalError(suberror, bytes):
            return decoder.internalError(vcpu, suberror: suberror, bytes: bytes)
        case .interrupted:
            return .interrupted
        case .halt:
            return .halt
        case .shutdown:
            return .fatal(FatalExit(reason: "triple fault (KVM_EXIT_SHUTDOWN)", programCounter: programCounter))
        case let .failEntry(reason, _):
            return .fatal(FatalExit(reason: "KVM_EXIT_FAIL_ENTRY, hardware reason \(hex(reason))", programCounter: programCounter))
        case let .systemEvent(type):
            return .fatal(FatalExit(reason: "unexpected KVM system event \(type)"))
        case let .other(reason):
            return .fatal(FatalExit(reason: "unhandled KVM exit \(reason)", programCounter: programCounter))
        }
    }

    var hypercallArguments: SMCCCRegisters {
        let (rax, rbx, rcx, rdx) = vcpu.syncedRAXToRDX
        return SMCCCRegisters(rax, rbx, rcx, rdx)
    }

    func setHypercallResults(_ r: SMCCCRegisters) {
        vcpu.setSyncedRAXToRDX((r.x0, r.x1, r.x2, r.x3))
    }

    func retryHypercall() { retryPending = true }

    func completeAccess(read value: UInt64) { vcpu.completeMMIORead(value) }

    func kick() {
        vcpu.requestExit()
        if let thread = thread.withLock({ $0 }), !(thread == .current) { thread.send(VCPUKick.signal) }
    }

    func faultContext() -> FaultContext {
        if let write = completedWrite { return decoder.contextOfCompletedWrite(vcpu, gpa: write.gpa, size: write.size) }
        return decoder.context(vcpu)
    }

    var programCounter: UInt64? {
        if completedWrite != nil, let address = faultContext().instruction?.address { return address }
        return try? vcpu.registers().rip
    }
}
