import EL2
import HostMemory

/// The seam between the machine core and what executes guest instructions: KVM today
/// (`KVMBackend`), a scripted test double (`ScriptedBackend`), an AArch64 interpreter next.
///
/// A backend executes and reports exits; it knows no ownership rule. It applies the mappings EL2
/// tells it about through `eventSink` (KVM mirrors them into the real MMU; an interpreter walks
/// EL2's tables itself and only needs the TLB invalidations), and it reports every access the
/// guest may not make as a `GuestExit.stage2Abort`, which the core hands to EL2.
///
/// Order of calls, all from the thread that builds the `Machine`: `attach(_:)` (guest RAM exists,
/// EL2 does not yet), `eventSink` (read once, as EL2 boots), `attachGuest(vmid:)`,
/// `makeVCPU(index:)` for every vCPU.
public protocol ExecutionBackend: AnyObject, Sendable {
    /// Short name for messages and traces: "kvm", "scripted", "interp".
    var name: String { get }
    /// The guest architecture this backend executes.
    var architecture: GuestArchitecture { get }
    /// The largest number of vCPUs it can run.
    var maxVCPUs: Int { get }
    /// What the backend must hear from EL2: stage-2 updates to mirror, TLB invalidations to
    /// perform. Read once, after `attach(_:)`. Called with EL2's locks held; it must not call
    /// back into EL2.
    var eventSink: (any EL2EventSink)? { get }
    /// Guest RAM exists: create the backend's VM over it (KVM: the VM and its memslot).
    func attach(_ ram: GuestRAM) throws(VMMError)
    /// The guest's VMID in EL2: from now on, stage-2 updates of that VMID are the guest's.
    /// `stage2` is what EL2 would load into VTTBR_EL2 / VTCR_EL2 for it (a backend whose CPU
    /// walks the guest's stage 2 itself uses it; KVM mirrors updates instead).
    func attachGuest(vmid: VMID, stage2: GuestStage2)
    /// Creates vCPU `index` (powered off until `GuestVCPU.powerOn`).
    func makeVCPU(index: Int) throws(VMMError) -> any GuestVCPU
    /// The architecture's boot structures, written into guest RAM before the first instruction
    /// (x86-64: GDT, TSS and identity page tables), as (guest-physical address, bytes).
    func bootStructures(memory: UInt64) -> [(gpa: UInt64, bytes: [UInt8])]
    /// Guest frames the CPU needs mapped before it can execute at all (the page tables it walks
    /// before any exit could fault them in). Donated up front.
    var bootStructurePages: Range<UInt64> { get }
    /// Why the backend can no longer follow EL2 (an mprotect failed), if it cannot.
    var failure: String? { get }
    /// Switches the guest's clock to `clock` (instructions retired by the whole machine, plus
    /// skipped time) for a deterministic run. An idle vCPU (in WFI with nothing pending) calls
    /// `skip` to let virtual time pass to its next timer deadline instead of spinning until the
    /// clock gets there. False when the backend cannot run deterministically (KVM).
    func useVirtualClock(_ clock: @escaping @Sendable () -> UInt64, skip: @escaping @Sendable (UInt64) -> Void) -> Bool
    /// The interrupt controller the backend emulates beside its CPUs, as KVM's in-kernel vGIC
    /// is (the interpreter: a GICv3), for `vcpus` vCPUs: its MMIO frames, which the machine puts
    /// on its bus behind the guest's stage 2 like any device. Called once, before `makeVCPU`;
    /// empty for a backend without one.
    func attachInterruptController(vcpus: Int) -> [(base: UInt64, size: UInt64, device: any MMIODevice)]
    /// Drives the controller's input for device interrupt `spi` (KVM_IRQ_LINE for an SPI): a
    /// level-sensitive line, raised while the device wants attention. From any thread.
    func setInterruptLine(spi: Int, level: Bool)
}

extension ExecutionBackend {
    public func useVirtualClock(_ clock: @escaping @Sendable () -> UInt64, skip: @escaping @Sendable (UInt64) -> Void) -> Bool {
        false
    }
    public func attachInterruptController(vcpus: Int) -> [(base: UInt64, size: UInt64, device: any MMIODevice)] { [] }
    public func setInterruptLine(spi: Int, level: Bool) {}
}

/// One vCPU of a backend. `run()` and everything but `kick()` are called from the vCPU's own
/// thread; `kick()` from any thread.
public protocol GuestVCPU: AnyObject, Sendable {
    var index: Int { get }
    /// Sets the architectural state a vCPU powers on with (PSCI CPU_ON, or the boot vCPU):
    /// the program counter at `entry`, the first argument registers holding `arguments` (x0,
    /// x1, ... on arm64; rdi, rsi, ... on x86-64), and the stack pointer at `stack` (0: the
    /// entry code sets its own).
    func powerOn(entry: UInt64, arguments: [UInt64], stack: UInt64) throws(VMMError)
    /// Runs the guest until the next exit.
    func run() -> GuestExit
    /// Runs at most about `budget` instructions (deterministic scheduling); a backend that
    /// cannot count instructions runs to the next exit.
    func run(budget: Int) -> GuestExit
    /// The SMCCC registers of the hypercall that just exited: x0 (function ID) to x3.
    var hypercallArguments: SMCCCRegisters { get }
    /// Writes x0..x3 for the guest to read when it resumes after the hypercall.
    func setHypercallResults(_ results: SMCCCRegisters)
    /// Rewinds the vCPU onto the hypercall that just exited, so it runs again on the next
    /// `run()` (pKVM rewinds ELR_EL2 for MEM_SHARE's fault-then-retry).
    func retryHypercall()
    /// Completes a decoded stage-2 abort the core emulated (`Stage2Abort.resume == .complete`):
    /// a read gets `value` in its destination register; the vCPU moves past the instruction.
    func completeAccess(read value: UInt64)
    /// Makes `run()` return `.interrupted` soon, from any thread.
    func kick()
    /// The instruction at the program counter, decoded, and the virtual address of its memory
    /// operand: what a fault record holds. Cold path.
    func faultContext() -> FaultContext
    /// The program counter, when the backend can read it.
    var programCounter: UInt64? { get }
    /// Instructions this vCPU has retired, when the backend counts them (the interpreter).
    var instructionsRetired: UInt64? { get }
    /// Makes the guest take a synchronous external abort on the access that just exited (arm64:
    /// `kvm_inject_sea_dabt`). False when the backend cannot, or the guest has nowhere to take it.
    func injectExternalDataAbort() -> Bool
}

extension GuestVCPU {
    public func run(budget: Int) -> GuestExit { run() }
    public var instructionsRetired: UInt64? { nil }
    public func injectExternalDataAbort() -> Bool { false }
}

/// The guest architectures pvm runs.
public enum GuestArchitecture: String, Sendable, CustomStringConvertible {
    case x86_64 = "x86-64"
    case aarch64

    public var description: String { rawValue }
}

/// The guest's stage 2 as EL2 programs it: VTTBR_EL2 (VMID and PGD) and VTCR_EL2.
public struct GuestStage2: Sendable, Equatable {
    public let vttbr: UInt64
    public let vtcr: UInt64

    public init(vttbr: UInt64, vtcr: UInt64) {
        self.vttbr = vttbr
        self.vtcr = vtcr
    }
}

/// Guest RAM as the core built it, for a backend to run over: one memory file whose first
/// `guestSize` bytes back guest-physical `guestBase` up (the KVM memslot maps exactly those),
/// and EL2's physical memory over the whole file.
public struct GuestRAM: Sendable {
    /// The file backing all of physical memory.
    public let file: SharedMemoryFile
    /// Physical address of the file's first byte (guest-physical `guestBase`).
    public let ramBase: UInt64
    /// Guest-physical address of the file's first byte.
    public let guestBase: UInt64
    /// Bytes of guest memory (from `guestBase`).
    public let guestSize: UInt64
    /// EL2's physical memory (guest RAM, the host's pages, EL2's carveout).
    public let memory: PhysicalMemory
}
