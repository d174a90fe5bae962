/// Why `AArch64CPU.run` returned: what EL2 (or the VMM below it) must look at. Everything the
/// guest's own EL1 handles (system calls, its own page faults, undefined instructions) stays
/// inside the CPU as an exception.
public enum CPUExit: Sendable, Equatable {
    /// HVC #imm from EL1 (ESR_EL2 EC 0x16): x0..x17 are in the register file; the PC is past
    /// the HVC, where ELR_EL2 would point.
    case hypercall(imm: UInt16)
    /// SMC #imm (EC 0x17, trapped by HCR_EL2.TSC as pKVM sets it); the PC is past the SMC.
    case secureMonitorCall(imm: UInt16)
    /// A stage-2 abort: the PC is on the instruction, which runs again once EL2 resolves it.
    case stage2Abort(Stage2Fault)
    /// WFI or WFE (EC 0x01; `isWFE` tells which); the PC is past it.
    case waitForInterrupt(isWFE: Bool)
    /// The instruction budget of this run is spent.
    case budgetExhausted
    /// Someone asked the vCPU to stop (`AArch64CPU.kick`), at an instruction boundary.
    case kicked
    /// The guest cannot go on: an exception with no vector table installed, an exception loop,
    /// an illegal exception return. The report says what happened.
    case stopped(String)
}

/// A stage-2 abort as EL2 receives it: ESR_EL2, FAR_EL2 and HPFAR_EL2 exactly as the
/// architecture defines them for an abort from a lower EL (Arm ARM D23.2.41 ESR_EL2, D23.2.48
/// HPFAR_EL2), plus what the interpreter knows beyond the syndrome.
public struct Stage2Fault: Sendable, Equatable {
    public var esr: UInt64
    public var far: UInt64
    public var hpfar: UInt64
    /// The faulting IPA with its byte offset (FAR's page offset over HPFAR's page).
    public var ipa: UInt64
    public var isWrite: Bool
    public var isInstructionFetch: Bool
    /// The access size in bytes (the whole access, even when ISV = 0).
    public var size: Int
    /// For a write with ISV = 1: the data the instruction stores (what the VMM's MMIO
    /// emulation writes to the device).
    public var value: UInt64

    public var syndrome: Syndrome { Syndrome(esr) }
}
