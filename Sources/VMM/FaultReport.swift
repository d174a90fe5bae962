import EL2
import Tracing

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
        if let rip {
            // An AArch64 guest's fault carries a syndrome (or an aarch64 instruction): call it pc.
            let arm = record?.syndrome != nil || record?.instruction?.architecture == "aarch64"
            text += arm ? "\n  pc:      \(hex(rip))" : "\n  rip:     \(hex(rip))"
        }
        if let syndrome = record?.syndrome {
            let fields = syndrome.decoded.hasPrefix("ESR ") ? String(syndrome.decoded.dropFirst(4)) : syndrome.decoded
            text += "\n  esr:     \(fields); FAR \(hex(syndrome.far)), HPFAR \(hex(syndrome.hpfar))"
        }
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
