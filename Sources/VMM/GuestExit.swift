import EL2
import Tracing

/// Why a vCPU stopped running guest code, shaped like what EL2 sees on arm64 (ESR_EL2's
/// exception classes for a lower EL): an HVC, a stage-2 abort, a WFI; plus the two things
/// only software sees, an interruption and a backend that cannot go on.
public enum GuestExit: Sendable {
    /// `HVC #0` (EC 0x16): the SMCCC registers are in `GuestVCPU.hypercallArguments`.
    case hypercall
    /// A data or instruction abort that stage 2 did not allow (EC 0x24 / 0x20): an IPA the
    /// guest's stage-2 does not map with the access, in RAM (lazy donation, refusal, poison) or
    /// outside it (MMIO, checked against the MMIO guard).
    case stage2Abort(Stage2Abort)
    /// The vCPU has nothing to do and will not wake (x86 HLT with interrupts off; WFI with no
    /// interrupt source): the vCPU ends.
    case halt
    /// `kick()` made the run return, or the host interrupted it: run again unless stopping.
    case interrupted
    /// The backend cannot continue this vCPU (a triple fault, an entry failure, an instruction
    /// it cannot decode). The report says why.
    case fatal(FatalExit)
}

/// A stage-2 abort as EL2 sees it: HPFAR_EL2 (the IPA), ESR_EL2's access fields, and the
/// data of a decoded write.
public struct Stage2Abort: Sendable {
    /// How the vCPU goes on once the abort is resolved.
    public enum Resume: Sendable {
        /// The instruction did not complete: it runs again (arm64 after a stage-2 fault; KVM's
        /// EFAULT path on x86).
        case reexecute
        /// The backend decoded the access (ESR_EL2.ISV = 1) and expects the core to perform it:
        /// a write's `value` is stored, a read's value goes back through
        /// `GuestVCPU.completeAccess(read:)`, and the vCPU moves on (KVM_EXIT_MMIO).
        case complete
    }

    /// The faulting intermediate physical address (guest-physical, with the byte offset).
    public var ipa: UInt64
    public var access: FaultAccess
    /// Bytes accessed, when the backend knows (0 otherwise).
    public var size: Int
    /// The data a decoded write stores.
    public var value: UInt64
    public var resume: Resume
    /// The instruction and virtual address, when the backend already decoded them.
    public var context: FaultContext?
    /// ESR_EL2 / FAR_EL2 / HPFAR_EL2 as the hardware reported them, when the backend has them
    /// (the AArch64 interpreter). With a syndrome, an abort in RAM is resolved and the
    /// instruction runs again, as on arm64; `resume == .complete` then only matters for MMIO.
    public var syndrome: AbortSyndrome?

    public init(ipa: UInt64, access: FaultAccess, size: Int = 0, value: UInt64 = 0, resume: Resume,
                context: FaultContext? = nil, syndrome: AbortSyndrome? = nil) {
        self.syndrome = syndrome
        self.ipa = ipa
        self.access = access
        self.size = size
        self.value = value
        self.resume = resume
        self.context = context
    }
}

/// What a fault record knows about an access beyond its address: the decoded instruction and
/// the guest-virtual address it used.
public struct FaultContext: Sendable {
    public var instruction: InstructionRecord?
    public var gva: UInt64?

    public init(instruction: InstructionRecord? = nil, gva: UInt64? = nil) {
        self.instruction = instruction
        self.gva = gva
    }
}

/// A backend that cannot run a vCPU any further, and why.
public struct FatalExit: Sendable, Equatable {
    public var reason: String
    /// The guest-physical address involved, when there is one.
    public var gpa: UInt64?
    public var access: String
    public var programCounter: UInt64?
    /// The structured record for the trace, when the backend built one.
    public var record: FaultRecord?

    public init(reason: String, gpa: UInt64? = nil, access: String = "-", programCounter: UInt64? = nil,
                record: FaultRecord? = nil) {
        self.reason = reason
        self.gpa = gpa
        self.access = access
        self.programCounter = programCounter
        self.record = record
    }
}
