/// Trace events as one line of text each, for `pvm trace`: time, track, kind, then what
/// happened in words with the numbers a kernel engineer looks for.
public enum TraceFormatter {
    /// "   16.317 ms  vcpu0   fault       write GVA 0x1006000 …"
    public static func line(_ r: TraceRecord) -> String {
        let track = Self.track(r)
        return pad(milliseconds(r.time), 12) + "  " + pad(track, 8, left: true) + "  " + pad(r.kind.rawValue, 11, left: true)
            + " " + details(r)
    }

    /// Nanoseconds as "16.317 ms".
    public static func milliseconds(_ ns: UInt64) -> String {
        let frac = String((ns / 1000) % 1000)
        return "\(ns / 1_000_000).\(String(repeating: "0", count: 3 - frac.count))\(frac) ms"
    }

    /// Who the event happened to: a vCPU, a device stream, the host, or EL2.
    public static func track(_ r: TraceRecord) -> String {
        switch r.kind {
        case .hypercall, .fault, .power: r.integer("vcpu").map { "vcpu\($0)" } ?? "vcpu?"
        case .iommuFault, .dma: r.integer("sid").map { "sid\($0)" } ?? "smmu"
        case .hostFault: "host"
        case .machine: "pvm"
        default: "el2"
        }
    }

    static func details(_ r: TraceRecord) -> String {
        func s(_ f: String) -> String { r.string(f) ?? "?" }
        func h(_ f: String) -> String { r.unsigned(f).map { "0x" + String($0, radix: 16) } ?? "?" }
        func opt(_ f: String, _ label: String) -> String { r[f] == nil ? "" : " \(label) \(h(f))" }
        switch r.kind {
        case .machine:
            let mem = (r.unsigned("memory") ?? 0) >> 20
            let vcpus = r.integer("vcpus") ?? 0
            return "vm \(h("vm")) (vmid \(r.integer("vmid") ?? 0)) \(r["protected"]?.bool == false ? "non-protected" : "protected"), "
                + "\(vcpus) vCPU\(vcpus == 1 ? "" : "s"), \(mem) MiB at PA \(h("ram_base")), image \(s("image")), IOMMU \(s("iommu"))"
        case .hypercall:
            let args = (r["args"]?.array ?? []).map { $0.string ?? "?" }.joined(separator: ", ")
            let ret = r["ret"]?.array?.first?.unsigned ?? 0
            let x0 = ret >= 1 << 63 ? String(Int64(bitPattern: ret)) : "0x" + String(ret, radix: 16)
            let dur = r.unsigned("dur").map { "  (\(micro($0)))" } ?? ""
            return "\(s("name"))(\(args)) = \(x0)\(dur)"
        case .transition:
            return "\(s("op"))\(opt("pfn", "pfn"))\(opt("gfn", "gfn"))\(r["vm"] == nil ? "" : " vm \(h("vm"))") -> \(s("result"))"
        case .stage2:
            let who = r.integer("vmid") == 0 ? "host" : "vmid \(r.integer("vmid") ?? 0)"
            var o = "\(who) [\(h("start")), \(h("end"))) \(s("op"))"
            if r["pa"] != nil { o += " -> pa \(h("pa"))" }
            if let p = r.string("prot") { o += " \(p)" }
            if let st = r.string("state") { o += " \(st)" }
            if let owner = r.string("owner") { o += " owner=\(owner)" }
            return o
        case .tlbi, .split, .merge:
            return "\(r.integer("vmid") == 0 ? "host" : "vmid \(r.integer("vmid") ?? 0)") ipa \(h("ipa")) size \(h("size"))"
        case .fault, .hostFault:
            var o = s("access")
            if r["gva"] != nil { o += " GVA \(h("gva"))" }
            if r["gpa"] != nil { o += " GPA \(h("gpa"))" }
            if let size = r.integer("size"), size > 0 { o += " (\(size) B)" }
            o += " -> \(s("action"))"
            if let result = r.string("result") { o += " \(result)" }
            o += ownership(r)
            if let reason = r.string("reason") { o += "; \(reason)" }
            if let syndrome = r.string("syndrome") { o += "; \(syndrome), FAR_EL2 \(h("far")), HPFAR_EL2 \(h("hpfar"))" }
            if let insn = r["insn"]?.object {
                o += "; insn \(insn["text"]?.string ?? "?") [\(insn["bytes"]?.string ?? "")] at \(insn["address"]?.string ?? "?")"
                if let regs = insn["regs"]?.object, !regs.members.isEmpty {
                    o += " " + regs.members.map { "\($0.key)=\($0.value.string ?? "?")" }.joined(separator: " ")
                }
            }
            return o
        case .power:
            return s("event")
        case .warning:
            return s("message")
        case .iommu:
            switch s("op") {
            case "attach": return "attach sid \(r.integer("sid") ?? 0) -> domain \(r.integer("domain") ?? 0) (\(s("type")))"
            case "detach": return "detach sid \(r.integer("sid") ?? 0)"
            case "map": return "map domain \(r.integer("domain") ?? 0) iova \(h("iova")) -> pa \(h("pa")) size \(h("size")) \(s("prot"))"
            default: return "\(s("op")) domain \(r.integer("domain") ?? 0) iova \(h("iova")) size \(h("size"))"
            }
        case .iotlbi:
            return "domain \(r.integer("domain") ?? 0) iova \(h("iova")) size \(h("size"))"
        case .iommuFault:
            var o = "\(s("event")) \(s("access")) IOVA \(h("iova"))"
            if let size = r.integer("size"), size > 0 { o += " (\(size) B)" }
            if let d = r.integer("domain") { o += " domain \(d)" }
            return o + " -> \(r.string("action") ?? "terminated")" + ownership(r)
        case .dma:
            return "\(s("device")) iova \(h("iova")) \(r.integer("bytes") ?? 0) B: \(s("result"))"
        }
    }

    private static func ownership(_ r: TraceRecord) -> String {
        var parts: [String] = []
        if r["pa"] != nil { parts.append("PA 0x" + String(r.unsigned("pa") ?? 0, radix: 16)) }
        if let owner = r.string("owner") { parts.append("owner \(owner)") }
        for side in ["host", "hyp", "guest"] { if let st = r.string(side) { parts.append("\(side) \(st)") } }
        return parts.isEmpty ? "" : "; " + parts.joined(separator: ", ")
    }

    static func micro(_ ns: UInt64) -> String {
        ns >= 1000 ? "\(ns / 1000).\(ns % 1000 / 100) µs" : "\(ns) ns"
    }

    static func pad(_ s: String, _ width: Int, left: Bool = false) -> String {
        let n = s.count
        if n >= width { return s }
        let fill = String(repeating: " ", count: width - n)
        return left ? s + fill : fill + s
    }
}
