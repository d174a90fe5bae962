/// Exports a trace as Chrome trace-event JSON (the "JSON Object Format" Perfetto and
/// chrome://tracing open): one process for the machine, one track per vCPU, one for EL2's table
/// updates, one for the host, one per device stream; hypercalls as slices with their duration,
/// vCPU run time as slices from power-on to power-off, faults and table updates as instant
/// events with every field as arguments, and a counter of pages the guest holds.
public enum ChromeTraceExporter {
    static let el2Track = 1000, hostTrack = 1001, deviceTrackBase = 2000

    public static func export(_ records: [TraceRecord]) -> String {
        var events: [JSONValue] = []
        var names: [Int: String] = [el2Track: "EL2 (stage-2, TLBI, SMMU)"]
        var running: Set<Int> = []
        var guestPages: Int64 = 0
        var last: UInt64 = 0
        var title = "pvm"

        func ts(_ ns: UInt64) -> JSONValue {
            let frac = String(ns % 1000)
            return .number("\(ns / 1000).\(String(repeating: "0", count: 3 - frac.count))\(frac)")
        }
        func event(_ phase: String, _ name: String, _ tid: Int, _ time: UInt64, args: JSONObject? = nil,
                   extra: [(String, JSONValue)] = []) {
            var o: JSONObject = ["name": .string(name), "ph": .string(phase), "ts": ts(time), "pid": .int(1), "tid": .int(tid)]
            for (k, v) in extra { o[k] = v }
            if let args { o["args"] = .object(args) }
            events.append(.object(o))
        }
        // Track IDs: vCPU n is n + 1 (Perfetto reserves 0), then EL2, the host, device streams.
        func vcpuTrack(_ r: TraceRecord) -> Int {
            let v = r.integer("vcpu") ?? 0
            if names[v + 1] == nil { names[v + 1] = "vCPU \(v)" }
            return v + 1
        }
        func args(_ r: TraceRecord) -> JSONObject {
            JSONObject(r.fields.members.filter { $0.key != "t" && $0.key != "kind" })
        }

        for r in records {
            last = max(last, r.time)
            switch r.kind {
            case .machine:
                title = "pvm: \(r.string("image") ?? "guest") (vm \(r.unsigned("vm") ?? 0))"
                event("i", "machine", el2Track, r.time, args: args(r), extra: [("s", .string("g"))])
            case .hypercall:
                let dur = r.unsigned("dur") ?? 0
                event("X", r.string("name") ?? "hypercall", vcpuTrack(r), r.time >= dur ? r.time - dur : 0, args: args(r),
                      extra: [("dur", ts(dur)), ("cat", .string("hypercall"))])
            case .power:
                let v = vcpuTrack(r)
                switch r.string("event") {
                case "start", "cpu-on":
                    if running.insert(v).inserted { event("B", "running", v, r.time, extra: [("cat", .string("vcpu"))]) }
                case "system-off", "system-reset":
                    for open in running.sorted() { event("E", "running", open, r.time) }
                    running.removeAll()
                default:
                    if running.remove(v) != nil { event("E", "running", v, r.time) }
                }
                event("i", r.string("event") ?? "power", v, r.time, extra: [("s", .string("t")), ("cat", .string("power"))])
            case .fault:
                let action = r.string("action") ?? "?"
                event("i", "fault: \(r.string("access") ?? "?") \(action)", vcpuTrack(r), r.time, args: args(r),
                      extra: [("s", .string("t")), ("cat", .string("fault"))])
                if action == "donated" || action == "shared" {
                    guestPages += 1
                    event("C", "guest pages", el2Track, r.time, args: ["pages": .int(guestPages)])
                }
            case .hostFault:
                names[hostTrack] = "host (VMM)"
                event("i", "host fault: \(r.string("access") ?? "?") \(r.string("result") ?? "")", hostTrack, r.time,
                      args: args(r), extra: [("s", .string("t")), ("cat", .string("fault"))])
            case .iommuFault, .dma:
                let sid = r.integer("sid") ?? 0
                let tid = deviceTrackBase + sid
                if names[tid] == nil || r.kind == .dma {
                    names[tid] = r.string("device").map { "SMMU stream \(sid) (\($0))" } ?? names[tid] ?? "SMMU stream \(sid)"
                }
                let name = r.kind == .dma ? "dma: \(r.string("result") ?? "?")" : "IOMMU fault: \(r.string("event") ?? "?")"
                event("i", name, tid, r.time, args: args(r), extra: [("s", .string("t")), ("cat", .string(r.kind.rawValue))])
            case .transition:
                event("i", r.string("op") ?? "transition", el2Track, r.time, args: args(r),
                      extra: [("s", .string("t")), ("cat", .string("transition"))])
                let op = r.string("op") ?? ""
                if r.string("result") == "0", ["reclaim_dying_guest_page", "guest_relinquish_to_host", "host_unshare_guest"].contains(op) {
                    guestPages -= 1
                    event("C", "guest pages", el2Track, r.time, args: ["pages": .int(guestPages)])
                }
            case .warning:
                event("i", "warning", el2Track, r.time, args: args(r), extra: [("s", .string("g"))])
            case .stage2, .tlbi, .iommu, .iotlbi:
                let name = r.kind == .stage2 ? "stage2 \(r.string("op") ?? "")" : r.kind == .iommu ? "iommu \(r.string("op") ?? "")" : r.kind.rawValue
                event("i", name, el2Track, r.time, args: args(r), extra: [("s", .string("t")), ("cat", .string(r.kind.rawValue))])
            }
        }
        for open in running.sorted() { event("E", "running", open, last) }

        var meta: [JSONValue] = [.object(["name": "process_name", "ph": "M", "pid": .int(1), "tid": .int(0),
                                          "args": .object(["name": .string(title)])])]
        for (tid, name) in names.sorted(by: { $0.key < $1.key }) {
            meta.append(.object(["name": "thread_name", "ph": "M", "pid": .int(1), "tid": .int(tid),
                                 "args": .object(["name": .string(name)])]))
            meta.append(.object(["name": "thread_sort_index", "ph": "M", "pid": .int(1), "tid": .int(tid),
                                 "args": .object(["sort_index": .int(tid)])]))
        }
        let root: JSONObject = ["displayTimeUnit": "ns", "traceEvents": .array(meta + events)]
        return JSONValue.object(root).description
    }
}

extension JSONValue: ExpressibleByStringLiteral {
    public init(stringLiteral value: String) { self = .string(value) }
}
