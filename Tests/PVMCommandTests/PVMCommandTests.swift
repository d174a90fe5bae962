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

    @Test func benchIOMMUPrintsFiguresNextToBaselines() throws {
        let r = try pvm(["bench", "iommu", "--translations", "20000", "--conversions", "2000", "--repeats", "1"])
        #expect(r.status == 0, "\(r.err)")
        #expect(r.out.contains("warm IOTLB (64 pages, all hits):"))
        #expect(r.out.contains("baseline, bare stage-2 walk"))
        #expect(r.out.contains("baseline, no SMMU:"))
        #expect(r.out.contains("  mirror: ") && r.out.contains("  refcount: "))
    }

    @Test func dmaGuestPassesInBothDesigns() throws {
        guard access("/dev/kvm", R_OK | W_OK) == 0 else { return print("skipping: needs /dev/kvm") }
        for mode in ["mirror", "refcount"] {
            let r = try pvm(["boot", "dma", "--iommu-mode", mode])
            #expect(r.status == 0, "\(r.err)")
            #expect(r.out.contains("dma: design: \(mode)"))
            #expect(r.out.contains("checks, 0 failed"))
        }
        let none = try pvm(["boot", "dma", "--iommu-mode", "none"])
        #expect(none.status == 1, "without an SMMU the block device's MMIO page is unassigned")
        #expect(none.err.contains("unassigned guest-physical address"))
    }

    @Test(arguments: [
        (["model", "--memory", "lots"], "--memory 'lots' is not a size"),
        (["model", "--memory", "1M"], "out of range"),
        (["model", "--memory", "100G"], "out of range"),
        (["model", "--ipa-bits", "52"], "--ipa-bits 52 is not supported"),
        (["model", "--ram-base", "0x1234"], "2 MiB aligned"),
        (["model", "--ipa-bits", "32", "--memory", "4G"], "does not fit"),
        (["model", "--iommu-mode", "pinned"], "--iommu-mode 'pinned' must be mirror, refcount or none"),
        (["bench", "iommu", "--translations", "0"], "--translations must be"),
        (["frobnicate"], "Unexpected argument"),
    ])
    func badFlagsGetAClearError(arguments: [String], message: String) throws {
        let r = try pvm(arguments)
        #expect(r.status == 64)
        #expect(r.err.contains(message))
    }
}

/// `pvm boot` end to end, as a user runs it: exit status, console on stdout, summary on stderr.
@Suite(.serialized, .enabled(if: access("/dev/kvm", R_OK | W_OK) == 0, "needs /dev/kvm"))
struct BootCommandTests {
    @Test func helloPowersOffAndSummarises() throws {
        let r = try pvm(["boot"])
        #expect(r.status == 0, "\(r.err)")
        #expect(r.out.contains("Hello from a protected pvm guest!"))
        #expect(r.err.contains("pvm: guest powered off · protected, 1 vCPU, 64 MiB"))
        #expect(r.err.contains("pages donated"))
        #expect(r.err.contains("verified zero"))
    }

    @Test func faultExitsOneWithAReport() throws {
        let r = try pvm(["boot", "giveaway"])
        #expect(r.status == 1)
        #expect(r.err.contains("guest stopped by EL2"))
        #expect(r.err.contains("MEM_RELINQUISH"))
        #expect(r.err.contains("insn:"))
    }

    @Test func resetExitsThree() throws {
        let r = try pvm(["boot", "--tamper-payload"])
        #expect(r.status == 3)
        #expect(r.out.contains("SHA-256 mismatch"))
    }

    @Test func traceIsJSONLines() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("pvm-boot-\(getpid()).jsonl").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        let r = try pvm(["boot", "share", "--vcpus", "2", "--trace", path])
        #expect(r.status == 0, "\(r.err)")
        let lines = try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n")
        #expect(lines.count > 100)
        for line in lines {
            let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
            #expect(object?["kind"] is String && object?["t"] is Int)
        }
        for kind in ["hypercall", "transition", "stage2", "fault", "power", "tlbi"] {
            #expect(lines.contains { $0.contains("\"kind\":\"\(kind)\"") }, "no \(kind) event")
        }
    }

    @Test(arguments: [
        (["boot", "/nonexistent/image.elf"], 2, "cannot read image /nonexistent/image.elf"),
        (["boot", "nosuchimage"], 2, "no image 'nosuchimage'"),
        (["boot", "/etc/hostname"], 2, "not an ELF image"),
        (["boot", "--firmware", "/etc/hostname"], 2, "/etc/hostname: not an ELF image"),
        (["boot", "--memory", "31M"], 64, "multiple of 2M between 32M and 3G"),
        (["boot", "--vcpus", "0"], 64, "--vcpus 0 is out of range"),
        (["boot", "--arg", "x"], 64, "--arg 'x' is not a number"),
        (["boot", "--iommu-mode", "pinned"], 64, "--iommu-mode 'pinned' must be mirror, refcount or none"),
        (["boot", "--trace", "/nonexistent/dir/t.jsonl"], 2, "open trace file"),
    ] as [([String], Int32, String)])
    func badInputGetsAClearErrorAndStatus(arguments: [String], status: Int32, message: String) throws {
        let r = try pvm(arguments)
        #expect(r.status == status)
        #expect(r.err.contains(message), "\(r.err)")
        #expect(!r.err.contains("Fatal error"))
    }
}
