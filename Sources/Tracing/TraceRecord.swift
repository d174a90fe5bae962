/// The kinds of trace event (docs/trace-format.md).
public enum TraceKind: String, Sendable, CaseIterable, Comparable {
    case machine, hypercall, transition, stage2, split, merge, tlbi, fault
    case hostFault = "host-fault"
    case power, warning, iommu, iotlbi
    case iommuFault = "iommu-fault"
    case dma

    public static func < (a: TraceKind, b: TraceKind) -> Bool {
        allCases.firstIndex(of: a)! < allCases.firstIndex(of: b)!
    }

    /// The three fault kinds: `--kind faults` selects them all.
    public static let faults: Set<TraceKind> = [.fault, .hostFault, .iommuFault]

    /// Fields every event of the kind has, and what each must hold.
    var required: [(name: String, type: TraceRecord.FieldType)] {
        switch self {
        case .machine: [("vm", .id), ("vmid", .id), ("vcpus", .id), ("ram_base", .address), ("memory", .address)]
        case .hypercall: [("vcpu", .id), ("fn", .address), ("name", .string), ("args", .addresses(3)), ("ret", .addresses(4))]
        case .transition: [("op", .string), ("result", .string)]
        case .stage2: [("vmid", .id), ("start", .address), ("end", .address), ("op", .string)]
        case .tlbi, .split, .merge: [("vmid", .id), ("ipa", .address), ("size", .address)]
        case .fault: [("vcpu", .id), ("access", .string), ("size", .integer), ("action", .string)]
        case .hostFault: [("access", .string), ("action", .string)]
        case .power: [("vcpu", .id), ("event", .string)]
        case .warning: [("message", .string)]
        case .iommu: [("op", .string)]
        case .iotlbi: [("domain", .id), ("iova", .address), ("size", .address)]
        case .iommuFault: [("event", .string), ("sid", .id), ("iova", .address), ("access", .string)]
        case .dma: [("device", .string), ("sid", .id), ("iova", .address), ("bytes", .integer), ("result", .string)]
        }
    }

    /// Optional fields that, when present, must hold the given type.
    static let optionalFields: [(name: String, type: TraceRecord.FieldType)] = [
        ("vm", .id), ("pfn", .address), ("gfn", .address), ("gpa", .address), ("gva", .address), ("pa", .address),
        ("dur", .integer), ("domain", .id), ("sid", .id), ("size", .any), ("insn", .object),
        ("esr", .address), ("far", .address), ("hpfar", .address), ("syndrome", .string),
    ]
}

/// One event read back from a trace file: its line, time, kind and every field as written.
public struct TraceRecord: Sendable, Equatable {
    enum FieldType {
        case integer, string, object, any
        /// A VM handle, VMID, vCPU, stream or domain: an integer in 0...0xffffffff.
        case id
        /// A `"0x…"` string.
        case address
        /// An array of n `"0x…"` strings.
        case addresses(Int)

        var name: String {
            switch self {
            case .integer: "an integer"
            case .id: "an integer from 0 to 0xffffffff"
            case .string: "a string"
            case .object: "an object"
            case .any: "a value"
            case .address: "a hexadecimal string (\"0x…\")"
            case let .addresses(n): "an array of \(n) hexadecimal strings"
            }
        }

        func accepts(_ v: JSONValue) -> Bool {
            switch self {
            case .integer: if case .number = v { return v.integer != nil || v.unsigned != nil } else { return false }
            case .id: if case .number = v { return v.unsigned.map { $0 <= 0xffff_ffff } ?? false } else { return false }
            case .string: return v.string != nil
            case .object: return v.object != nil
            case .any: return true
            case .address: return v.string.map { $0.hasPrefix("0x") && v.unsigned != nil } ?? false
            case let .addresses(n):
                guard let a = v.array, a.count == n else { return false }
                return a.allSatisfy { FieldType.address.accepts($0) }
            }
        }
    }

    /// 1-based line in the file.
    public let line: Int
    /// Nanoseconds since the trace was opened.
    public let time: UInt64
    public let kind: TraceKind
    /// The whole object, `t` and `kind` included, in the order written.
    public let fields: JSONObject

    /// Checks `object` against the format: `t`, a known `kind`, that kind's fields.
    init(line: Int, object: JSONObject) throws(TraceFileError) {
        guard let t = object["t"] else { throw .schema(line: line, message: "event has no \"t\" (time)") }
        guard case .number = t, let time = t.unsigned else {
            throw .schema(line: line, message: "\"t\" must be a non-negative integer (nanoseconds), found \(t)")
        }
        guard let k = object["kind"] else { throw .schema(line: line, message: "event has no \"kind\"") }
        guard let name = k.string else { throw .schema(line: line, message: "\"kind\" must be a string, found \(k)") }
        guard let kind = TraceKind(rawValue: name) else {
            throw .schema(line: line, message: "unknown kind \"\(name)\" (known: \(TraceKind.allCases.map(\.rawValue).joined(separator: ", ")))")
        }
        for (field, type) in kind.required {
            guard let v = object[field] else { throw .schema(line: line, message: "\(name) event has no \"\(field)\"") }
            guard type.accepts(v) else { throw .schema(line: line, message: "\"\(field)\" must be \(type.name), found \(v)") }
        }
        for (field, type) in TraceKind.optionalFields {
            if let v = object[field], !type.accepts(v), !(kind.required.contains { $0.name == field }) {
                throw .schema(line: line, message: "\"\(field)\" must be \(type.name), found \(v)")
            }
        }
        if kind == .machine, let base = object["ram_base"]?.unsigned, let memory = object["memory"]?.unsigned,
           base.addingReportingOverflow(memory).overflow {
            throw .schema(line: line, message: "machine RAM [ram_base, +memory) runs past 2^64")
        }
        self.line = line
        self.time = time
        self.kind = kind
        fields = object
    }

    public subscript(field: String) -> JSONValue? { fields[field] }

    /// A hexadecimal or integer field's value.
    public func unsigned(_ field: String) -> UInt64? { fields[field]?.unsigned }
    public func integer(_ field: String) -> Int? { fields[field]?.integer.flatMap { Int(exactly: $0) } }
    public func string(_ field: String) -> String? { fields[field]?.string }

    /// The record as one JSON line, exactly as a trace file holds it.
    public var jsonLine: String { JSONValue.object(fields).description }
}
