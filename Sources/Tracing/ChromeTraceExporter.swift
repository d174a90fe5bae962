/// Exports a trace as Chrome trace-event JSON (the "JSON Object Format" Perfetto and
/// chrome://tracing open): one process for the machine, one track per vCPU, one for EL2's table
/// updates, one for the host, one per device stream; hypercalls as slices with their duration,
/// vCPU run time as slices from power-on to power-off, faults and table updates as instant
/// events with every field as arguments, DMA transfers as slices on their stream's track, and a
/// counter of pages the guest holds. A guest fault becomes a slice from the first table update
/// it caused to its record, with a flow arrow (Chrome's `s`/`f` flow events, bound to enclosing
/// slices) to each ownership transition, stage-2 update, TLBI and SMMU change it caused.
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
        // EL2 events a later fault may claim as its effects: where they sit in `events`.
        var effects = FaultEffects()
        var flows = 0
        func causedBy(_ fault: TraceRecord, track: Int) -> UInt64 {
            let claimed = effects.claim(fault)
            guard let first = claimed.map(\.time).min().map({ min($0, fault.time) }) else { return fault.time }
            for effect in claimed {
                flows += 1
                // The effect becomes a 1 ns slice so the flow's end has a slice to bind to.
                if case var .object(o) = events[effect.index] {
                    o["ph"] = "X"
                    o["dur"] = ts(1)
                    o["s"] = nil
                    events[effect.index] = .object(o)
                }
                events.append(.object(["name": "caused", "cat": "fault", "ph": "s", "id": .int(flows), "ts": ts(first),
                                       "pid": .int(1), "tid": .int(track)]))
                events.append(.object(["name": "caused", "cat": "fault", "ph": "f", "bp": "e", "id": .int(flows),
                                       "ts": ts(effect.time), "pid": .int(1), "tid": .int(el2Track)]))
            }
            return first
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
                let track = vcpuTrack(r)
                let start = causedBy(r, track: track)
                event("X", "fault: \(r.string("access") ?? "?") \(action)", track, start, args: args(r),
                      extra: [("dur", ts(max(r.time &- start, 1))), ("cat", .string("fault"))])
                if action == "donated" || action == "shared" {
                    guestPages += 1
                    event("C", "guest pages", el2Track, r.time, args: ["pages": .int(guestPages)])
                }
            case .hostFault:
                names[hostTrack] = "host (VMM)"
                event("i", "host fault: \(r.string("access") ?? "?") \(r.string("result") ?? "")", hostTrack, r.time,
                      args: args(r), extra: [("s", .string("t")), ("cat", .string("fault"))])
            case .dma:
                let sid = r.integer("sid") ?? 0
                let tid = deviceTrackBase + sid
                names[tid] = r.string("device").map { "SMMU stream \(sid) (\($0))" } ?? "SMMU stream \(sid)"
                let dur = r.unsigned("dur") ?? 0
                event("X", "dma \(r.integer("bytes") ?? 0) B: \(r.string("result") ?? "?")", tid, r.time >= dur ? r.time - dur : 0,
                      args: args(r), extra: [("dur", ts(max(dur, 1))), ("cat", .string("dma"))])
            case .iommuFault:
                let sid = r.integer("sid") ?? 0
                let tid = deviceTrackBase + sid
                if names[tid] == nil || r.kind == .dma {
                    names[tid] = r.string("device").map { "SMMU stream \(sid) (\($0))" } ?? names[tid] ?? "SMMU stream \(sid)"
                }
                event("i", "IOMMU fault: \(r.string("event") ?? "?")", tid, r.time, args: args(r), extra: [("s", .string("t")), ("cat", .string(r.kind.rawValue))])
            case .transition:
                effects.note(r, at: events.count)
                event("i", r.string("op") ?? "transition", el2Track, r.time, args: args(r),
                      extra: [("s", .string("t")), ("cat", .string("transition"))])
                let op = r.string("op") ?? ""
                if r.string("result") == "0", ["reclaim_dying_guest_page", "guest_relinquish_to_host", "host_unshare_guest"].contains(op) {
                    guestPages -= 1
                    event("C", "guest pages", el2Track, r.time, args: ["pages": .int(guestPages)])
                }
            case .warning:
                event("i", "warning", el2Track, r.time, args: args(r), extra: [("s", .string("g"))])
            case .stage2, .tlbi, .split, .merge, .iommu, .iotlbi:
                effects.note(r, at: events.count)
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

/// The recent EL2 events (transitions, stage-2 and SMMU updates, invalidations) a fault record
/// can claim as its effects: pvm records a fault after EL2 has acted on it, so its effects come
/// just before it, and they name its page by PA (host side) or by IPA (the guest's stage-2).
struct FaultEffects {
    struct Effect {
        let index: Int
        let time: UInt64
        /// The guest's VMID for an IPA range, nil for a PA range.
        let vmid: Int?
        let range: Range<UInt64>
    }

    private var recent: [Effect] = []
    /// How far back a fault looks.
    static let window = 48

    mutating func note(_ r: TraceRecord, at index: Int) {
        let vmid = r.integer("vmid") ?? 0
        var range: Range<UInt64>?
        var onGuest: Int? = nil
        switch r.kind {
        case .transition:
            // Hostile values must not trap: frames past 2^52 name no page.
            if let pfn = r.unsigned("pfn"), pfn < 1 << 52 { range = pfn << 12 ..< (pfn + 1) << 12 }
        case .stage2:
            if let a = r.unsigned("start"), let b = r.unsigned("end"), a < b { range = a ..< b }
            onGuest = vmid == 0 ? nil : vmid
        case .tlbi, .split, .merge:
            if let a = r.unsigned("ipa"), let n = r.unsigned("size"), a <= UInt64.max - max(n, 1) { range = a ..< a + max(n, 1) }
            onGuest = vmid == 0 ? nil : vmid
        case .iommu, .iotlbi:
            // The identity domain (0) maps IOVA = PA; other domains' IOVAs are not the page's PA.
            let n = max(r.unsigned("size") ?? 4096, 1)
            if r.integer("domain") == 0, let a = r.unsigned("iova"), a <= UInt64.max - n { range = a ..< a + n }
        default: break
        }
        guard let range, !range.isEmpty else { return }
        recent.append(Effect(index: index, time: r.time, vmid: onGuest, range: range))
        if recent.count > Self.window { recent.removeFirst(recent.count - Self.window) }
    }

    /// The recent effects that touch `fault`'s page (by PA) or its guest frame (by IPA), removed
    /// so no later fault claims them again.
    mutating func claim(_ fault: TraceRecord) -> [Effect] {
        let pa = fault.unsigned("pa"), gpa = fault.unsigned("gpa")
        guard pa != nil || gpa != nil else { return [] }
        var mine: [Effect] = [], rest: [Effect] = []
        for e in recent {
            let hit = e.vmid == nil ? pa.map { e.range.contains($0) } ?? false : gpa.map { e.range.contains($0) } ?? false
            if hit { mine.append(e) } else { rest.append(e) }
        }
        recent = rest
        return mine
    }
}

extension JSONValue: ExpressibleByStringLiteral {
    public init(stringLiteral value: String) { self = .string(value) }
}
