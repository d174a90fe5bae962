import EL2
import EmbeddedImages
import Foundation
import KVMBackend
import ScriptedBackend
import Testing
import Tracing
@testable import VMM

/// The guest ABI is EL2's, so both backends must give a guest the same registers: every
/// stateless call the share guest makes on KVM (from its trace) is replayed on the scripted
/// backend, under each profile, and must return the same x0..x3.
@Suite(.serialized, .enabled(if: kvmUnavailable == nil, "needs /dev/kvm"))
struct CrossBackendTests {
    /// Calls whose answer depends on no page state.
    static let stateless: Set<UInt32> = Set([
        SMCCCFunction.version, .vendorHypUID, .vendorHypFeatures, .hypMemInfo, .psciVersion, .psciFeatures,
        .psciMigrateInfoType, .archFeatures, .mmioGuardInfo,
    ].map(\.rawValue) + [0xC600_0030])

    @Test(arguments: PKVMProfile.allCases)
    func kvmAndScriptedGiveTheSameAnswers(profile: PKVMProfile) throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("pvm-xbackend-\(getpid())-\(profile).jsonl").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        let console = Console()
        let m = try machine(.share, profile: profile, trace: try EventTrace(path: path), console: console)
        #expect(try m.run() == .poweredOff)
        _ = try m.teardown()
        var calls: [(SMCCCRegisters, SMCCCRegisters)] = []
        for line in try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n") where line.contains("\"kind\":\"hypercall\"") {
            let o = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
            func n(_ s: Any?) -> UInt64 { UInt64((s as! String).dropFirst(2), radix: 16)! }
            let fid = UInt32(n(o["fn"]))
            guard Self.stateless.contains(fid) else { continue }
            let args = (o["args"] as! [Any]).map(n), ret = (o["ret"] as! [Any]).map(n)
            calls.append((SMCCCRegisters(UInt64(fid), args[0], args[1], args[2]), SMCCCRegisters(ret[0], ret[1], ret[2], ret[3])))
        }
        #expect(calls.count >= 8)
        var c = MachineConfiguration(firmware: EmbeddedImage.firmware.bytes, payload: EmbeddedImage.share.bytes)
        c.profile = profile
        let scripted = ScriptedBackend(scripts: [calls.map { .hypercall($0.0) } + [.hypercall(SMCCCRegisters(0x8400_0008))]])
        let s = try Machine(c, backend: scripted)
        #expect(try s.run() == .poweredOff)
        let answers = scripted.transcripts[0].compactMap { if case let .hypercall(_, r) = $0 { r } else { nil } }
        #expect(answers == calls.map(\.1))
    }
}
