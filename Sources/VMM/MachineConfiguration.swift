import EL2
import Tracing

/// What `pvm boot` asks for: the machine's size, the guest's protection, and the images.
public struct MachineConfiguration: Sendable {
    /// Guest RAM in bytes (GuestABI.minimumMemory ... maximumMemory, 2 MiB multiple).
    public var memory: UInt64 = 64 << 20
    /// vCPUs; vCPU 0 boots, the others wait for PSCI CPU_ON.
    public var vcpus = 1
    /// A protected guest (pKVM's pVM: lazy donation) or not (host_share_guest on fault).
    public var isProtected = true
    /// The firmware ELF and a name for messages.
    public var firmware: [UInt8]
    public var firmwareName = "firmware"
    /// The payload ELF the firmware verifies and boots.
    public var payload: [UInt8]
    public var payloadName = "payload"
    /// `payload_argument` in the boot configuration.
    public var payloadArgument: UInt64 = 0
    /// Flip one byte of the staged payload after its digest is computed, to watch the firmware
    /// refuse it.
    public var tamperPayload = false
    /// How EL2's SMMU keeps device DMA consistent with ownership (docs/iommu.md); nil for a
    /// machine without an SMMU and without DMA devices.
    public var iommuMode: IOMMUMode? = .mirror
    /// Where to record every hypercall, transition and fault (JSON Lines), if anywhere.
    public var trace: EventTrace?
    /// Receives what the guest prints on its console.
    public var console: @Sendable ([UInt8]) -> Void = { _ in }

    public init(firmware: [UInt8], payload: [UInt8]) {
        self.firmware = firmware
        self.payload = payload
    }

    /// Checks the numbers a user can get wrong; the images are checked when loaded.
    func validate(maxVCPUs: Int) throws(VMMError) {
        guard memory >= GuestABI.minimumMemory, memory <= GuestABI.maximumMemory,
              memory % GuestABI.memoryAlignment == 0 else {
            throw .configuration("--memory must be a multiple of 2 MiB between 32 MiB and 3 GiB (got \(memory) bytes)")
        }
        guard vcpus >= 1, vcpus <= maxVCPUs else {
            throw .configuration("--vcpus must be between 1 and \(maxVCPUs) (got \(vcpus))")
        }
    }
}

/// How a guest run ended.
public enum RunOutcome: Sendable, Equatable {
    /// PSCI SYSTEM_OFF.
    case poweredOff
    /// PSCI SYSTEM_RESET (pvm does not reboot).
    case reset
    /// The guest did something it has no right to, or the CPU could not go on; EL2 / the VMM
    /// stopped the VM.
    case faulted(FaultReport)
}

/// Why a guest was stopped.
public struct FaultReport: Sendable, Equatable, CustomStringConvertible {
    public let vcpu: Int
    /// The guest-physical address involved, when there is one.
    public let gpa: UInt64?
    /// read, write, fetch, or what the CPU reported.
    public let access: String
    /// The instruction pointer at the fault, when known.
    public let rip: UInt64?
    public let reason: String
    /// The page's owner and state as EL2 saw them.
    public let pageState: String?
    /// The structured record the trace got (instruction, registers, ownership), when the stop
    /// came from a fault.
    public let record: FaultRecord?

    public init(vcpu: Int, gpa: UInt64?, access: String, rip: UInt64?, reason: String, pageState: String?,
                record: FaultRecord? = nil) {
        self.vcpu = vcpu
        self.gpa = gpa
        self.access = access
        self.rip = rip
        self.reason = reason
        self.pageState = pageState
        self.record = record
    }

    /// The faulting instruction, disassembled, with its bytes, when known.
    public var instruction: String? {
        record?.instruction.map { "\($0.text)  [\($0.byteString)]" }
    }

    public var description: String {
        var text = "vCPU \(vcpu): \(reason)"
        if let gpa {
            text += "\n  address: GPA \(hex(gpa))"
            if let gva = record?.gva { text += ", GVA \(hex(gva))" }
            text += " (\(access)\(record.map { $0.size > 0 ? ", \($0.size) bytes" : "" } ?? ""))"
        } else {
            text += "\n  access: \(access)"
        }
        if let rip { text += "\n  rip:     \(hex(rip))" }
        if let insn = record?.instruction {
            text += "\n  insn:    \(insn.text)  [\(insn.byteString)] (\(insn.architecture), Capstone)"
            if !insn.registers.isEmpty {
                text += "\n  regs:    " + insn.registers.map { "\($0.name)=\(hex($0.value))" }.joined(separator: " ")
            }
        }
        if let pageState { text += "\n  page:    \(pageState)" }
        if let owner = record?.ownership?.owner { text += "\n  owner:   \(owner)" }
        if let action = record?.action { text += "\n  EL2:     \(action.rawValue)" }
        return text
    }
}

/// Counters for the one-line summary, updated from every vCPU thread.
public struct MachineCounters: Sendable, Equatable {
    public var exits = 0
    public var hypercalls = 0
    public var stage2Faults = 0
    /// Pages given to the guest: donated (protected) or shared by the host (non-protected).
    public var donated = 0
    /// Successful MEM_SHARE / MEM_UNSHARE / MEM_RELINQUISH.
    public var shared = 0
    public var unshared = 0
    public var relinquished = 0
    /// Host accesses EL2 refused.
    public var hostFaults = 0
    /// Pages returned to the host at teardown.
    public var reclaimed = 0
}

private func hex(_ v: UInt64) -> String { "0x" + String(v, radix: 16) }
