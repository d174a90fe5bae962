import EL2

/// One thing a scripted vCPU does: what a guest instruction would make the CPU do, at the level
/// the machine core sees it. Accesses go through the backend's copy of the guest's stage-2,
/// exactly as an MMU would: a page the guest's stage-2 does not map (or maps without the right)
/// is a stage-2 abort, and the access runs again once the core resolved it.
public enum VCPUStep: Sendable, Equatable {
    /// `HVC #0` with these registers (x0 = function ID).
    case hypercall(SMCCCRegisters)
    /// The same hypercall `count` times in a row (benchmarks).
    case hypercalls(SMCCCRegisters, count: Int)
    /// A load of `size` bytes (1, 2, 4 or 8) at guest-physical `gpa`.
    case read(gpa: UInt64, size: Int)
    /// A store of the low `size` bytes of `value` at `gpa`.
    case write(gpa: UInt64, size: Int, value: UInt64)
    /// An instruction fetch from `gpa`.
    case fetch(gpa: UInt64)
    /// Fills the page at `gpa` with `byte` (a guest's memset, one access per page).
    case fill(gpa: UInt64, byte: UInt8)
    /// WFI / HLT with nothing to wake the vCPU: it ends.
    case halt
}

/// What a scripted vCPU saw, in order: the record a test reads back, as swift-nio's
/// `EmbeddedChannel` hands back what was written.
public enum VCPUEvent: Sendable, Equatable {
    /// The vCPU powered on (boot, or PSCI CPU_ON with these values).
    case poweredOn(entry: UInt64, context: UInt64)
    /// A hypercall and the registers it returned with.
    case hypercall(SMCCCRegisters, results: SMCCCRegisters)
    /// A hypercall the core asked to run again (MEM_SHARE's fault-then-retry).
    case retried(SMCCCRegisters)
    /// A stage-2 abort the vCPU took before the access could run.
    case abort(ipa: UInt64, access: String)
    /// A load and the value it read.
    case read(gpa: UInt64, value: UInt64)
    /// A store that completed.
    case wrote(gpa: UInt64)
    /// A fetch that completed.
    case fetched(gpa: UInt64)
    /// A page fill that completed.
    case filled(gpa: UInt64)
    /// The script ran out, or a `halt` step.
    case halted
}
