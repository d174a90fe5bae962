/// The parts of a vCPU's architectural state that are not register files: PSTATE, the
/// banked stack pointers, the EL1 and EL0 system registers, the exclusive monitor. Kept in one
/// struct behind a pointer (`AArch64CPU.state`), so the executor reads and writes it without
/// Swift's dynamic exclusivity checks on class properties.
public struct ArchState: Sendable {
    /// The program counter (only up to date outside `AArch64CPU.run`).
    public var pc: UInt64 = 0

    // PSTATE (Arm ARM D1.4): NZCV in bits 31:28 as the NZCV register holds them; DAIF in bits 9:6
    // as the DAIF register holds them.
    public var nzcv: UInt32 = 0
    public var daif: UInt32 = 0x3C0
    public var el: UInt8 = 1
    /// PSTATE.SP: 1 selects SP_ELx at EL1, 0 SP_EL0.
    public var spsel: UInt8 = 1
    public var pan = false
    public var uao = false
    public var dit = false
    public var ssbs = false
    /// PSTATE.SS and PSTATE.IL, kept only to be saved into SPSR and restored.
    public var ss = false
    public var il = false

    /// The stack pointer not currently in the register file's SP slot: SP_EL0 while SP_EL1 is
    /// selected, SP_EL1 while SP_EL0 is.
    public var spEL0: UInt64 = 0
    public var spEL1: UInt64 = 0

    public var fpcr: UInt32 = 0
    public var fpsr: UInt32 = 0

    public var sys = SystemRegisters()

    /// The local exclusive monitor (Arm ARM B2.9): the physical address, size and value of the
    /// last load-exclusive. A store-exclusive succeeds only if the monitor is open for the same
    /// address and the memory still holds the value (the host compares and swaps), so
    /// exclusives are atomic across vCPUs on different host threads.
    public var exclusiveValid = false
    public var exclusiveAddress: UInt64 = 0
    public var exclusiveSize: UInt8 = 0
    public var exclusiveValue: UInt64 = 0
    public var exclusiveValueHigh: UInt64 = 0

    /// The fault the last failed memory access raised, for the executor to deliver with the
    /// instruction's syndrome (`AArch64CPU.deliverDataFault`).
    public var fault = PendingFault()

    /// Instructions retired since the CPU was made.
    public var instructions: UInt64 = 0

    /// Whether the guest has written VBAR_EL1: an exception with no vector table installed
    /// stops the vCPU with a report instead of jumping into address 0.
    public var vectorsInstalled = false

    public init() {}
}

/// The EL1 and EL0 system registers the interpreter keeps (Arm ARM D23). Identification
/// registers are not stored: `AArch64CPU.readSystemRegister` computes them from what the
/// interpreter implements.
public struct SystemRegisters: Sendable {
    /// SCTLR_EL1 as pKVM gives a protected VM's first instruction: RES1 bits, MMU and caches off.
    public var sctlr: UInt64 = 0x00C5_0078
    public var actlr: UInt64 = 0
    public var cpacr: UInt64 = 0
    public var ttbr0: UInt64 = 0
    public var ttbr1: UInt64 = 0
    public var tcr: UInt64 = 0
    public var mair: UInt64 = 0
    public var amair: UInt64 = 0
    public var vbar: UInt64 = 0
    public var esr: UInt64 = 0
    public var far: UInt64 = 0
    public var par: UInt64 = 0
    public var elr: UInt64 = 0
    public var spsr: UInt64 = 0
    public var afsr0: UInt64 = 0
    public var afsr1: UInt64 = 0
    public var contextidr: UInt64 = 0
    public var tpidrEL1: UInt64 = 0
    public var tpidrEL0: UInt64 = 0
    public var tpidrroEL0: UInt64 = 0
    public var cntkctl: UInt64 = 0
    public var csselr: UInt64 = 0
    public var mdscr: UInt64 = 0
    /// The OS lock (OSLAR_EL1 / OSLSR_EL1): locked out of reset.
    public var osLock = true
    public var cntvCtl: UInt64 = 0
    public var cntvCval: UInt64 = 0
    public var cntpCtl: UInt64 = 0
    public var cntpCval: UInt64 = 0
    /// Debug breakpoint and watchpoint registers (two of each, as ID_AA64DFR0_EL1 says):
    /// stored and read back, never triggered.
    public var debug: [UInt64] = Array(repeating: 0, count: 8)

    public init() {}
}

/// A memory access that failed, as the access path recorded it.
public struct PendingFault: Sendable {
    public enum Kind: UInt8, Sendable { case none, stage1, stage2, external, alignment }
    public var kind = Kind.none
    public var status: UInt8 = 0
    public var va: UInt64 = 0
    public var ipa: UInt64 = 0
    public var access = AccessKind.read
    public var size = 0
    /// On the stage-1 table walk (S1PTW).
    public var onWalk = false
    public init() {}

    init(kind: Kind, status: UInt8, va: UInt64, ipa: UInt64, access: AccessKind, size: Int, onWalk: Bool) {
        self.kind = kind
        self.status = status
        self.va = va
        self.ipa = ipa
        self.access = access
        self.size = size
        self.onWalk = onWalk
    }
}
