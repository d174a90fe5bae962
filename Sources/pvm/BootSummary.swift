import Tracing
import VMM

/// `pvm boot --json`: the closing summary as one JSON object, for scripts and CI. Addresses
/// are "0x…" strings, as in traces (docs/trace-format.md), so 64-bit values survive any reader.
struct BootSummary {
    let configuration: MachineConfiguration
    let image: String
    let backend: String
    let outcome: RunOutcome
    let status: Int32
    let stats: MachineCounters
    let teardown: TeardownReport
    let wall: Double

    var json: String {
        func address(_ v: UInt64) -> JSONValue { .string("0x" + String(v, radix: 16)) }
        let c = configuration
        var o: JSONObject = [
            "image": .string(image), "outcome": .string(outcomeName), "exit_status": .int(Int(status)),
            "protected": .bool(c.isProtected), "profile": .string("\(c.profile)"), "vcpus": .int(c.vcpus),
            "memory": .int(Int(c.memory)), "backend": .string(backend),
            "iommu": .string(c.iommuMode.map { "\($0)" } ?? "none"),
        ]
        o["pages"] = .object([
            "donated": .int(stats.donated), "shared": .int(stats.shared), "unshared": .int(stats.unshared),
            "relinquished": .int(stats.relinquished), "reclaimed": .int(teardown.reclaimed),
            "verified_zero": .int(teardown.verifiedZero), "guest_block": .string("\(c.guestBlock)"),
            "blocks_donated": .int(stats.blocksDonated), "splits": .int(stats.splits), "merges": .int(stats.merges),
        ])
        o["exits"] = .object(["total": .int(stats.exits), "hypercalls": .int(stats.hypercalls),
                              "stage2_faults": .int(stats.stage2Faults), "host_faults": .int(stats.hostFaults)])
        o["teardown"] = .object(["clean": .bool(teardown.isClean), "leaks": .array(teardown.leaks.map(address)),
                                 "violations": .array(teardown.violations.map { .string($0) })])
        if case let .faulted(report) = outcome {
            var f: JSONObject = ["vcpu": .int(report.vcpu), "access": .string(report.access), "reason": .string(report.reason)]
            if let gpa = report.gpa { f["gpa"] = address(gpa) }
            if let pc = report.rip { f["pc"] = address(pc) }
            if let gva = report.record?.gva { f["gva"] = address(gva) }
            if let insn = report.record?.instruction {
                f["insn"] = .object(["arch": .string(insn.architecture), "text": .string(insn.text), "bytes": .string(insn.byteString)])
            }
            if let s = report.record?.syndrome { f["esr"] = address(s.esr); f["syndrome"] = .string(s.decoded) }
            if let page = report.pageState { f["page"] = .string(page) }
            o["fault"] = .object(f)
        }
        if case let .interrupted(signal) = outcome { o["signal"] = .int(Int(signal)) }
        o["wall_ms"] = .number(String(format2(wall)))
        return JSONValue.object(o).description
    }

    private var outcomeName: String { outcome.name }
}

extension RunOutcome {
    /// How `pvm boot --json` and scenario files (`outcome` lines) name an ending.
    var name: String {
        switch self {
        case .poweredOff: "powered-off"
        case .reset: "reset"
        case .faulted: "faulted"
        case .interrupted: "interrupted"
        }
    }
}
