import Foundation
import Testing

/// Runs the built `pvm` executable (next to the test bundle) with `arguments` and `stdin`.
private func pvm(_ arguments: [String], stdin: String = "") throws -> (status: Int32, out: String, err: String) {
    let exe = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent()
        .appendingPathComponent("pvm")
    let p = Process()
    p.executableURL = exe
    p.arguments = arguments
    let i = Pipe(), o = Pipe(), e = Pipe()
    p.standardInput = i
    p.standardOutput = o
    p.standardError = e
    try p.run()
    i.fileHandleForWriting.write(Data(stdin.utf8))
    try i.fileHandleForWriting.close()
    let out = o.fileHandleForReading.readDataToEndOfFile()
    let err = e.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return (p.terminationStatus, String(decoding: out, as: UTF8.self), String(decoding: err, as: UTF8.self))
}

@Suite struct PVMCommandTests {
    @Test func scriptFromStdinRunsAndExitsZero() throws {
        let r = try pvm(["model"], stdin: "vm_create g\nhost_donate_guest 1 2 g\ncheck\n")
        #expect(r.status == 0)
        #expect(r.out == "vm_create g -> 0\nhost_donate_guest 1 2 g -> 0\ncheck -> ok\n")
    }

    @Test func malformedLineExitsOneAfterRunningTheRest() throws {
        let r = try pvm(["model"], stdin: "nope\nhost_share_hyp 1\n")
        #expect(r.status == 1)
        #expect(r.out.contains("host_share_hyp 1 -> 0"))
        #expect(r.err.contains("line 1: unknown operation 'nope'"))
    }

    @Test func scriptFileAndOptions() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("pvm-test-\(getpid()).pvm")
        try "host_donate_hyp 0 1\nstate 0\n".write(to: path, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: path) }
        let r = try pvm(["model", path.path, "--memory", "128M", "--ipa-bits", "48"])
        #expect(r.status == 0)
        #expect(r.out == "host_donate_hyp 0 1 -> 0\nstate 0 -> host=NOPAGE hyp=OWNED refcount=0 share_count=0\n")
    }

    @Test func missingScriptExitsTwo() throws {
        let r = try pvm(["model", "/nonexistent/script.pvm"])
        #expect(r.status == 2)
        #expect(r.err.contains("cannot read script '/nonexistent/script.pvm'"))
    }

    @Test(arguments: [
        (["model", "--memory", "lots"], "--memory 'lots' is not a size"),
        (["model", "--memory", "1M"], "out of range"),
        (["model", "--memory", "100G"], "out of range"),
        (["model", "--ipa-bits", "52"], "--ipa-bits 52 is not supported"),
        (["model", "--ram-base", "0x1234"], "2 MiB aligned"),
        (["model", "--ipa-bits", "32", "--memory", "4G"], "does not fit"),
        (["frobnicate"], "Unexpected argument"),
    ])
    func badFlagsGetAClearError(arguments: [String], message: String) throws {
        let r = try pvm(arguments)
        #expect(r.status == 64)
        #expect(r.err.contains(message))
    }
}
