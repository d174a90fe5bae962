import EL2

/// What the faulting side tried to do.
public enum FaultAccess: String, Sendable, Equatable, CaseIterable {
    case read, write
    /// An instruction fetch.
    case fetch
    /// MEM_SHARE of a page the guest never touched: pKVM faults it in, then retries.
    case share
    /// The VMM wrote the boot image or configuration into guest memory.
    case boot
    /// KVM reported an inaccessible page and the instruction could not be decoded.
    case unknown
}

/// What EL2 (and the VMM acting for it) did about a fault.
public enum FaultAction: String, Sendable, Equatable, CaseIterable {
    /// The host donated the page to the protected guest on first touch (`pkvm_mem_abort` →
    /// `__pkvm_host_donate_guest`); the guest re-executes the access.
    case donated
    /// The host shared the page with a non-protected guest on first touch (`__pkvm_host_share_guest`).
    case shared
    /// EL2 refused the access; the requester got an error and goes on (a host access).
    case refused
    /// The page is poisoned (force-reclaimed from the guest); the VM is stopped.
    case poisoned
    /// The VM is stopped.
    case stopped
    /// The SMMU terminated a DMA transaction (abort, no bytes moved).
    case terminated
}

/// One register an instruction's operands use, with its value at the fault.
public struct RegisterValue: Sendable, Equatable {
    public let name: String
    public let value: UInt64

    public init(name: String, value: UInt64) {
        self.name = name
        self.value = value
    }
}

/// The faulting instruction as Capstone decoded it, for a fault record: where it is, its bytes,
/// its text, and the registers its operands use with their values.
public struct InstructionRecord: Sendable, Equatable {
    /// "x86-64" or "aarch64".
    public let architecture: String
    public let address: UInt64
    public let bytes: [UInt8]
    public let text: String
    public let registers: [RegisterValue]

    public init(architecture: String, address: UInt64, bytes: [UInt8], text: String, registers: [RegisterValue]) {
        self.architecture = architecture
        self.address = address
        self.bytes = bytes
        self.text = text
        self.registers = registers
    }

    /// "48 89 07".
    public var byteString: String { bytes.map { $0 < 16 ? "0" + String($0, radix: 16) : String($0, radix: 16) }.joined(separator: " ") }
}

/// Everything known about one fault: a guest stage-2 abort, an instruction fetch from a page
/// without execute right, or a host access EL2 refused. (An IOMMU fault is an `IOMMUEvent`,
/// which carries the same ownership snapshot.) This is the trace's `fault` / `host-fault` event
/// and what `pvm boot` prints when it stops a guest.
public struct FaultRecord: Sendable, Equatable {
    /// Who faulted.
    public enum Source: Sendable, Equatable {
        /// A guest vCPU (the hardware reports this as a stage-2 abort to EL2).
        case vcpu(vm: VMHandle, index: Int)
        /// The host touching guest memory through EL2's host stage-2 (`handle_host_mem_abort`).
        case host(vm: VMHandle?)
    }

    public var source: Source
    /// The guest-virtual address, when the instruction was decoded and translated.
    public var gva: UInt64?
    /// The guest-physical address (IPA); for a host fault, the guest page the host touched.
    public var gpa: UInt64?
    public var access: FaultAccess
    /// Bytes accessed (0 when unknown, or for a fetch).
    public var size: Int
    public var action: FaultAction
    /// Why, in words: nil for a plain lazy donation.
    public var reason: String?
    /// The page's owner and its state on every side at the moment of the fault.
    public var ownership: PageOwnership?
    /// The instruction that faulted, when there is one to decode.
    public var instruction: InstructionRecord?
    /// The error EL2 returned, for a refused host access.
    public var error: HypError?
    /// ESR_EL2, FAR_EL2 and HPFAR_EL2 of the abort, when the backend reports a hardware
    /// syndrome (the AArch64 interpreter; KVM on x86 has none).
    public var syndrome: AbortSyndrome?

    public init(source: Source, gva: UInt64? = nil, gpa: UInt64?, access: FaultAccess, size: Int, action: FaultAction,
                reason: String? = nil, ownership: PageOwnership? = nil, instruction: InstructionRecord? = nil,
                error: HypError? = nil, syndrome: AbortSyndrome? = nil) {
        self.syndrome = syndrome
        self.source = source
        self.gva = gva
        self.gpa = gpa
        self.access = access
        self.size = size
        self.action = action
        self.reason = reason
        self.ownership = ownership
        self.instruction = instruction
        self.error = error
    }
}

/// The registers an abort to EL2 sets (Arm ARM D23.2.41 ESR_EL2, D23.2.44 FAR_EL2, D23.2.48
/// HPFAR_EL2), with the syndrome decoded field by field.
public struct AbortSyndrome: Sendable, Equatable {
    public var esr: UInt64
    public var far: UInt64
    public var hpfar: UInt64
    /// Decodes ESR: called only when a record or report needs the text (an abort is taken far
    /// more often than it is written down).
    private let describe: @Sendable (UInt64) -> String

    /// "EC 0x24 (data abort from a lower EL), IL, ISV SAS=4B SRT=x1, WnR (write), DFSC 0x7 (...)".
    public var decoded: String { describe(esr) }

    public init(esr: UInt64, far: UInt64, hpfar: UInt64, decoded: String) {
        self.init(esr: esr, far: far, hpfar: hpfar, describe: { _ in decoded })
    }

    public init(esr: UInt64, far: UInt64, hpfar: UInt64, describe: @escaping @Sendable (UInt64) -> String) {
        self.esr = esr
        self.far = far
        self.hpfar = hpfar
        self.describe = describe
    }

    public static func == (a: AbortSyndrome, b: AbortSyndrome) -> Bool {
        a.esr == b.esr && a.far == b.far && a.hpfar == b.hpfar && a.decoded == b.decoded
    }
}
