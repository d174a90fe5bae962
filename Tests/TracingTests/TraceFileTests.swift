import EL2
import Foundation
import Testing
@testable import Tracing

/// Reading traces back: the JSON parser, the format check with line numbers, filters, the life
/// of a page, the Perfetto export.
@Suite struct TraceFileTests {
    static let machine = #"{"t":10,"kind":"machine","vm":4096,"vmid":1,"protected":true,"vcpus":2,"arch":"x86-64","ram_base":"0x80000000","memory":"0x4000000","phys_base":"0x80000000","phys_size":"0x4a00000","iommu":"mirror","image":"giveaway"}"#
    static let lines = [
        machine,
        #"{"t":20,"kind":"power","vcpu":0,"event":"start"}"#,
        #"{"t":30,"kind":"stage2","vmid":0,"start":"0x81007000","end":"0x81008000","op":"annotate","owner":"guest"}"#,
        #"{"t":31,"kind":"iommu","op":"unmap","domain":0,"iova":"0x81007000","size":"0x1000"}"#,
        #"{"t":32,"kind":"stage2","vmid":1,"start":"0x1007000","end":"0x1008000","op":"map","pa":"0x81007000","prot":"rwx","state":"OWNED"}"#,
        #"{"t":33,"kind":"transition","op":"host_donate_guest","vm":4096,"pfn":"0x81007","gfn":"0x1007","result":"0"}"#,
        #"{"t":34,"kind":"fault","vm":4096,"vcpu":1,"gva":"0x1007000","gpa":"0x1007000","access":"write","size":1,"action":"donated","pa":"0x81007000","owner":"host","host":"OWNED","hyp":"NOPAGE","insn":{"arch":"x86-64","address":"0x1000060","bytes":"41 c6 04 06 aa","text":"mov byte ptr [r14 + rax], 0xaa","regs":{"r14":"0x1007000","rax":"0x0"}}}"#,
        #"{"t":1500,"kind":"hypercall","vm":4096,"vcpu":0,"fn":"0xc6000009","name":"MEM_RELINQUISH","args":["0x1007000","0x0","0x0"],"ret":["0x0","0x0","0x0","0x0"],"dur":700}"#,
        #"{"t":1600,"kind":"hypercall","vm":4096,"vcpu":0,"fn":"0xc6000003","name":"MEM_SHARE","args":["0x9000","0x0","0x0"],"ret":["0xfffffffffffffffd","0x0","0x0","0x0"],"dur":900}"#,
        #"{"t":1700,"kind":"host-fault","gpa":"0x2000","access":"read","size":64,"action":"refused","result":"-EPERM","pa":"0x80002000","owner":"vm 0x1000 gfn 0x2"}"#,
        #"{"t":1750,"kind":"iommu","op":"attach","sid":2,"domain":0,"type":"identity"}"#,
        #"{"t":1800,"kind":"dma","device":"virtio-blk","sid":2,"iova":"0x81008000","bytes":512,"result":"F_TRANSLATION"}"#,
        #"{"t":1900,"kind":"power","vcpu":0,"event":"system-off"}"#,
    ]

    func trace(_ lines: [String] = lines, newline: Bool = true) throws(TraceFileError) -> TraceFile {
        try TraceFile(text: Array((lines.joined(separator: "\n") + (newline ? "\n" : "")).utf8))
    }

    @Test func jsonParsesAndWritesBackTheSameText() throws {
        let text = #"{"a":[1,-2.5e3,"x\"\u00e9\n"],"b":{"c":null,"d":true},"e":18446744073709551615}"#
        let v = try JSONValue.parse(text)
        #expect(v.description == #"{"a":[1,-2.5e3,"x\"é\n"],"b":{"c":null,"d":true},"e":18446744073709551615}"#)
        #expect(v.object?["e"]?.unsigned == UInt64.max)
        #expect(JSONValue.string("0x10").unsigned == 16)
    }

    @Test(arguments: [
        (#"{"a":1,}"#, "expected a member name"),
        (#"{"a" 1}"#, "expected ':'"),
        (#"[01]"#, "leading zero"),
        (#"{"a":1}{"#, "unexpected text after the value"),
        (#"{"a":"\q"}"#, "invalid escape"),
        (#"{"a":1,"a":2}"#, "duplicate member"),
        ("[" + String(repeating: "[", count: 100), "nesting deeper than 64"),
    ])
    func badJSONIsRefusedWithAColumn(text: String, message: String) {
        #expect { try JSONValue.parse(text) } throws: { e in
            guard let e = e as? JSONSyntaxError else { return false }
            return e.message.contains(message) && e.offset >= 0 && e.offset <= text.utf8.count
        }
    }

    @Test func aBootTraceReadsBackRecordByRecord() throws {
        let t = try trace()
        #expect(t.records.count == Self.lines.count)
        #expect(t.records.map(\.jsonLine) == Self.lines)
        #expect(t.records[6].line == 7 && t.records[6].kind == .fault && t.records[6].time == 34)
        #expect(t.machines.first?.pfn(gfn: 0x1007) == 0x81007)
        // The text view: one line each, the fault with its instruction and registers.
        let fault = TraceFormatter.line(t.records[6])
        #expect(fault.contains("vcpu1") && fault.contains("GVA 0x1007000") && fault.contains("-> donated"))
        #expect(fault.contains("insn mov byte ptr [r14 + rax], 0xaa [41 c6 04 06 aa]") && fault.contains("r14=0x1007000"))
        #expect(TraceFormatter.line(t.records[8]).contains("MEM_SHARE(0x9000, 0x0, 0x0) = -3"))
    }

    @Test func aTruncatedLastLineIsReportedAsTruncated() {
        var lines = Self.lines
        lines[lines.count - 1] = String(lines[lines.count - 1].prefix(30))
        #expect(throws: TraceFileError.truncated(line: 13, message: "unterminated string (truncated?) at column 26")) {
            try trace(lines, newline: false)
        }
    }

    @Test func corruptLinesGiveTheirLineNumber() throws {
        func error(_ replacement: String, at index: Int = 3) -> TraceFileError? {
            var lines = Self.lines
            lines[index] = replacement
            do { _ = try trace(lines) } catch { return error }
            return nil
        }
        #expect(error(#"{"t":31,"kind":"iommu","op":"unmap",,}"#) == .syntax(line: 4, column: 37, message: "expected a member name in quotes"))
        #expect(error(#"{"t":31,"kind":"teleport"}"#)?.description.hasPrefix("line 4: not a trace event: unknown kind \"teleport\"") == true)
        #expect(error(#"{"t":31,"kind":"tlbi","vmid":0,"ipa":"0x1000"}"#) == .schema(line: 4, message: "tlbi event has no \"size\""))
        #expect(error(#"{"t":31,"kind":"tlbi","vmid":0,"ipa":4096,"size":"0x1000"}"#)
                == .schema(line: 4, message: "\"ipa\" must be a hexadecimal string (\"0x…\"), found 4096"))
        #expect(error(#"{"kind":"power","vcpu":0,"event":"start"}"#) == .schema(line: 4, message: "event has no \"t\" (time)"))
        #expect(error("[1,2]") == .schema(line: 4, message: "each line must be a JSON object, found [1,2]"))
        // A cut in the middle of the file is corruption, not truncation.
        #expect(error(#"{"t":31,"kind":"iommu","op":"un"#)?.line == 4)
        if case .truncated = error(#"{"t":31,"kind":"iommu","op":"un"#) { Issue.record("mid-file cut reported as truncation") }
        var bytes = Array((Self.lines.joined(separator: "\n") + "\n").utf8)
        bytes.insert(0xff, at: Self.lines[0].utf8.count + 5)
        #expect(throws: TraceFileError.encoding(line: 2)) { try TraceFile(text: bytes) }
    }

    /// Values at the edges of 64 bits go through every filter, --follow and the export
    /// without trapping; IDs out of range and a machine whose RAM wraps are format errors.
    @Test func hostileValuesNeitherTrapNorPass() throws {
        let max = "0xffffffffffffffff"
        let hostile = [
            Self.machine,
            #"{"t":1,"kind":"transition","op":"host_donate_guest","pfn":"\#(max)","result":"0"}"#,
            #"{"t":2,"kind":"iotlbi","domain":0,"iova":"0xfffffffffffff000","size":"0x1000"}"#,
            #"{"t":3,"kind":"iotlbi","domain":32769,"iova":"0x1000","size":"0xffffffffffffe000"}"#,
            #"{"t":4,"kind":"stage2","vmid":1,"start":"0x1007000","end":"\#(max)","op":"map","pa":"0x81007fff","prot":"rw","state":"OWNED"}"#,
            #"{"t":5,"kind":"tlbi","vmid":0,"ipa":"\#(max)","size":"\#(max)"}"#,
            #"{"t":18446744073709551615,"kind":"hypercall","vcpu":4294967295,"fn":"0x0","name":"X","args":["0x0","0x0","0x0"],"ret":["0x0","0x0","0x0","0x0"],"dur":18446744073709551615}"#,
            #"{"t":7,"kind":"dma","device":"d","sid":4294967295,"iova":"\#(max)","bytes":9223372036854775807,"result":"ok"}"#,
        ]
        let t = try trace(hostile)
        var filter = TraceFilter()
        filter.vm = 0x1000
        filter.pfns = [0x81007, UInt64.max >> 12]
        var resolver = TracePageResolver()
        var h = PageHistory(pfn: 0x81007)
        for r in t.records {
            resolver.observe(r)
            _ = filter.accepts(r, resolver)
            _ = h.apply(r, resolver)
            _ = TraceFormatter.line(r)
        }
        _ = ChromeTraceExporter.export(t.records)
        #expect(throws: TraceFileError.schema(line: 1, message: "\"vcpu\" must be an integer from 0 to 0xffffffff, found 4294967296")) {
            try trace([#"{"t":1,"kind":"power","vcpu":4294967296,"event":"start"}"#])
        }
        #expect(throws: TraceFileError.schema(line: 1, message: "machine RAM [ram_base, +memory) runs past 2^64")) {
            try trace([Self.machine.replacingOccurrences(of: "\"ram_base\":\"0x80000000\"", with: "\"ram_base\":\"\(max)\"")])
        }
        // A line of many members parses in linear time.
        let wide = "{" + (0 ..< 50_000).map { "\"k\($0)\":0" }.joined(separator: ",") + "}"
        #expect(try JSONValue.parse(wide).object?.members.count == 50_000)
    }

    @Test func filtersSelectByKindVMPageAndVCPU() throws {
        let t = try trace()
        func select(_ f: TraceFilter) -> [Int] {
            var resolver = TracePageResolver()
            return t.records.filter { resolver.observe($0); return f.accepts($0, resolver) }.map(\.line)
        }
        var f = TraceFilter()
        f.kinds = TraceKind.faults
        #expect(select(f) == [7, 10])
        f = TraceFilter()
        f.pfns = [0x81007]
        // Host stage-2 annotate, identity unmap, guest map (by PA), transition, fault, MEM_RELINQUISH (by IPA).
        #expect(select(f) == [3, 4, 5, 6, 7, 8])
        f.pfns = [0x81008]
        #expect(select(f) == [12])  // the block device's DMA, through the identity domain its stream is attached to
        f = TraceFilter()
        f.vcpu = 1
        #expect(select(f) == [7])
        f = TraceFilter()
        f.vm = 0x1000
        // Its own events, its vCPUs', and host / EL2 / device events on its RAM; not the bare attach.
        #expect(select(f) == [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 12, 13])
        f.vm = 0x2000
        #expect(select(f).isEmpty)
    }

    @Test func followTellsThePagesViewsAfterEachChange() throws {
        let t = try trace()
        var resolver = TracePageResolver()
        var h = PageHistory(pfn: 0x81007)
        var changes: [String] = []
        for r in t.records {
            resolver.observe(r)
            guard r.kind == .machine || resolver.pages(of: r).contains(where: { $0.contains(0x81007) }) else { continue }
            if h.apply(r, resolver) { changes.append(h.summary) }
        }
        #expect(changes == [
            "host OWNED (boot default) | DMA domain 0 identity rw (mirror: follows the host stage-2)",
            "host NOPAGE owner=guest | DMA domain 0 identity rw (mirror: follows the host stage-2)",
            "host NOPAGE owner=guest | DMA none",
            "host NOPAGE owner=guest | vmid 1 OWNED rwx at IPA 0x1007000 | DMA none",
        ])
    }

    @Test func chromeExportHasATrackPerVCPUAndSlicesForHypercalls() throws {
        let t = try trace()
        let json = try JSONValue.parse(ChromeTraceExporter.export(t.records))
        let all = try #require(json.object?["traceEvents"]?.array)
        let events = all.compactMap { $0.object }
        let threads = events.filter { $0["name"]?.string == "thread_name" }.compactMap { $0["args"]?.object?["name"]?.string }
        #expect(threads.contains("vCPU 0") && threads.contains("vCPU 1") && threads.contains("EL2 (stage-2, TLBI, SMMU)"))
        #expect(threads.contains("host (VMM)") && threads.contains("SMMU stream 2 (virtio-blk)"))
        let share = try #require(events.first { $0["name"]?.string == "MEM_SHARE" })
        #expect(share["ph"]?.string == "X" && share["ts"] == .number("0.700") && share["dur"] == .number("0.900"))
        #expect(share["tid"] == .int(1))
        let runs = events.filter { $0["name"]?.string == "running" }.map { $0["ph"]?.string ?? "" }
        #expect(runs == ["B", "E"])
        #expect(events.contains { $0["name"]?.string == "fault: write donated" && $0["tid"] == .int(2) })
    }
}
