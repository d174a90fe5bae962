import Foundation
import Testing

/// `pvm test`: the built-in suite passes on both backends (KVM skipped, saying why, where it is
/// missing), and a user's own scenario files are run, recorded, and refused when malformed.
@Suite struct PVMTestCommandTests {
    func directory() throws -> URL {
        let d = FileManager.default.temporaryDirectory.appendingPathComponent("pvm-test-cmd-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: d, withIntermediateDirectories: true)
        return d
    }

    @Test func theBuiltInSuitePassesOnBothBackends() throws {
        let dir = try directory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let junit = dir.appendingPathComponent("results.xml").path
        let r = try pvm(["test", "--exclude", "linux-*", "--junit", junit])
        #expect(r.status == 0, "\(r.out.suffix(3000))\(r.err)")
        let lines = r.out.split(separator: "\n")
        #expect(lines.first == "KTAP version 1")
        let counts = try #require(lines.first { $0.contains(" passed, ") })
        #expect(counts.hasPrefix("44 passed, 0 failed") || counts.hasPrefix("22 passed, 0 failed, 22 skipped"), "\(counts)")
        #expect(lines.last?.hasPrefix("time: ") == true)
        for name in ["abi-mainline", "abi-android", "abi-host-touch", "share-4-vcpus", "giveaway", "dma-refcount", "convert-pins-longterm", "convert-blocks"] {
            #expect(lines.contains { $0.hasPrefix("ok ") && $0.contains(" \(name) [interp]") }, "\(name)")
        }
        let xml = try String(contentsOfFile: junit, encoding: .utf8)
        #expect(xml.contains("<testsuites name=\"pvm test\" tests=\"44\" failures=\"0\""))
    }

    @Test func aUsersScenarioIsRecordedThenPassesThenCatchesAChange() throws {
        let dir = try directory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let file = dir.appendingPathComponent("mine.scenario").path
        try "# my guest\nimage share\nflags --pkvm-abi android\n".write(toFile: file, atomically: true, encoding: .utf8)
        let rec = try pvm(["test", "--record", "--backend", "interp", file])
        #expect(rec.status == 0, "\(rec.err)")
        let recorded = try String(contentsOfFile: file, encoding: .utf8)
        #expect(recorded.contains("outcome powered-off") && recorded.contains("hvc MEM_SHARE scratch+0x0"))
        let run = try pvm(["test", file, "--json"])
        #expect(run.status == 0, "\(run.out)")
        let json = try JSONSerialization.jsonObject(with: Data(run.out.utf8)) as! [String: Any]
        #expect(json["failed"] as? Int == 0 && (json["passed"] as? Int ?? 0) >= 1)
        // Change one expected result: the run fails, names the line and keeps the trace.
        let changed = recorded.replacingOccurrences(of: "hvc HYP_MEMINFO 0x0 0x0 0x0 -> 0x1000", with: "hvc HYP_MEMINFO 0x0 0x0 0x0 -> 0x2000")
        #expect(changed != recorded)
        try changed.write(toFile: file, atomically: true, encoding: .utf8)
        let bad = try pvm(["test", file, "--backend", "interp", "--keep-traces", dir.path])
        #expect(bad.status == 1)
        #expect(bad.out.contains("not ok 1 mine [interp]") && bad.out.contains("expected: hvc HYP_MEMINFO 0x0 0x0 0x0 -> 0x2000"), "\(bad.out)")
        #expect(bad.out.contains("full trace kept: \(dir.path)/pvm-test-mine-interp-"))
        #expect(bad.out.contains("0 passed, 1 failed"))
    }

    @Test func malformedFilesAndBadArgumentsAreErrorsNotPasses() throws {
        let dir = try directory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let broken = dir.appendingPathComponent("broken.scenario").path
        try "image hello\noutcome powered-off\nvcpu 0\n  hvc SMCCC_VERSION 0x0 -> 0x0\n".write(toFile: broken, atomically: true, encoding: .utf8)
        let r = try pvm(["test", broken])
        #expect(r.status == 1)
        #expect(r.out.contains("not ok 1 \(broken):4: hvc takes NAME A1 A2 A3"), "\(r.out)")
        let noImage = dir.appendingPathComponent("noimage.scenario").path
        try "image nosuchimage\noutcome powered-off\n".write(toFile: noImage, atomically: true, encoding: .utf8)
        let n = try pvm(["test", noImage, "--backend", "interp"])
        #expect(n.status == 1 && n.out.contains("no image 'nosuchimage'"), "\(n.out)")
        let badFlags = dir.appendingPathComponent("flags.scenario").path
        try "image hello\nflags --vcpus 99\noutcome powered-off\n".write(toFile: badFlags, atomically: true, encoding: .utf8)
        let f = try pvm(["test", badFlags, "--backend", "interp"])
        #expect(f.status == 1 && f.out.contains("flags:") && f.out.contains("--vcpus 99"), "\(f.out)")
        for (args, message) in [(["test", "nosuch*"], "no built-in scenario matches"), (["test", "--backend", "qemu"], "must be kvm, interp or all"),
                                (["test", "--record", "hello"], "name the .scenario files"), (["test", "--record", broken], "add --backend")] {
            let e = try pvm(args)
            #expect(e.status == 64 && e.err.contains(message), "\(args): \(e.err)")
        }
        let listed = try pvm(["test", "--list", "share-*"])
        #expect(listed.out.split(separator: "\n").count == 5, "\(listed.out)")
    }
}
