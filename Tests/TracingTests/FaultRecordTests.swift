import EL2
import Testing
@testable import Tracing

/// Fault records as the trace writes them read back with every field.
@Suite struct FaultRecordTests {
    @Test func aFaultRecordRoundTripsThroughTheTraceFormat() throws {
        let record = FaultRecord(
            source: .vcpu(vm: VMHandle(rawValue: 0x1000), index: 0), gva: 0x7fff_0000, gpa: 0x1007000, access: .write, size: 1,
            action: .stopped, reason: "the guest gave this page back with \"MEM_RELINQUISH\"",
            ownership: PageOwnership(page: PhysAddr(0x8100_7000), owner: .host, host: .owned, hyp: .noPage, guest: .noPage),
            instruction: InstructionRecord(architecture: "x86-64", address: 0x10000cf, bytes: [0x41, 0xc6, 0x06, 0x55],
                                           text: "mov byte ptr [r14], 0x55", registers: [RegisterValue(name: "r14", value: 0x1007000)]))
        let line = TraceEncoder.line(.fault(record), time: 5)
        let t = try TraceFile(text: Array((line + "\n").utf8))
        let r = try #require(t.records.first)
        #expect(r.kind == .fault)
        #expect(r.unsigned("vm") == 0x1000 && r.integer("vcpu") == 0)
        #expect(r.unsigned("gva") == 0x7fff_0000 && r.unsigned("gpa") == 0x1007000 && r.unsigned("pa") == 0x8100_7000)
        #expect(r.string("access") == "write" && r.integer("size") == 1 && r.string("action") == "stopped")
        #expect(r.string("reason") == "the guest gave this page back with \"MEM_RELINQUISH\"")
        #expect(r.string("owner") == "host" && r.string("host") == "OWNED" && r.string("hyp") == "NOPAGE" && r.string("guest") == "NOPAGE")
        let insn = try #require(r["insn"]?.object)
        #expect(insn["bytes"]?.string == "41 c6 06 55" && insn["text"]?.string == "mov byte ptr [r14], 0x55")
        #expect(insn["regs"]?.object?["r14"]?.unsigned == 0x1007000)
        #expect(insn["address"]?.unsigned == 0x10000cf)

        let host = FaultRecord(source: .host(vm: nil), gpa: 0x2000, access: .read, size: 64, action: .refused, error: .EPERM)
        let hostTrace = try TraceFile(text: Array((TraceEncoder.line(.fault(host), time: 6) + "\n").utf8))
        let hr = try #require(hostTrace.records.first)
        #expect(hr.kind == .hostFault && hr.string("result") == "-EPERM" && hr.string("action") == "refused")
    }
}
