import Foundation
import Testing

/// Runs the built `pvm` executable (next to the test bundle) with `arguments` and `stdin`.
func pvm(_ arguments: [String], stdin: String = "") throws -> (status: Int32, out: String, err: String) {
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

    /// Every input is read with a bound: an endless one is refused with a clear error.
    @Test(arguments: [
        (["model", "/dev/zero"], "File too large"),
        (["trace", "/dev/zero"], "more than a trace pvm reads"),
        (["boot", "/dev/zero"], "image /dev/zero is larger than 16 MiB"),
        (["boot", "--firmware", "/dev/zero"], "firmware /dev/zero is larger than 16 MiB"),
        (["inspect", "--model", "/dev/zero"], "cannot read script"),
    ])
    func endlessInputsAreRefused(arguments: [String], message: String) throws {
        let r = try pvm(arguments)
        #expect(r.status == 2)
        #expect(r.err.contains(message), "\(r.err)")
    }

    @Test func endlessStandardInputIsRefused() throws {
        let r = try pvm(["model"], stdin: String(repeating: "x", count: 70_000))
        #expect(r.status == 2)
        #expect(r.err.contains("longer than 65536 bytes"))
    }

    @Test func crlfScriptsRunLineByLine() throws {
        let r = try pvm(["model"], stdin: "vm_create g\r\nhost_donate_guest 1 2 g\r\n")
        #expect(r.status == 0)
        #expect(r.out == "vm_create g -> 0\nhost_donate_guest 1 2 g -> 0\n")
    }

    @Test func missingScriptExitsTwo() throws {
        let r = try pvm(["model", "/nonexistent/script.pvm"])
        #expect(r.status == 2)
        #expect(r.err.contains("cannot read script '/nonexistent/script.pvm'"))
    }

    @Test func fuzzAndCheckReportTheirFigures() throws {
        let fuzz = try pvm(["fuzz", "--ops", "20000", "--seed", "3", "--iommu-mode", "refcount"])
        #expect(fuzz.status == 0, "\(fuzz.err)")
        #expect(fuzz.out.contains("20,000 operations in") && fuzz.out.contains("ops/s") && fuzz.out.contains("0 violations"), "\(fuzz.out)")
        let check = try pvm(["check", "--depth", "1"])
        #expect(check.status == 0, "\(check.err)")
        #expect(check.out.contains("states per depth: 1 46\n") && check.out.contains("states/s"), "\(check.out)")
        #expect(check.out.contains("0 counterexamples"))
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
        (["model", "--memory", "512K"], "out of range"),
        (["model", "--memory", "100G"], "out of range"),
        (["model", "--ipa-bits", "52"], "--ipa-bits 52 is not supported"),
        (["model", "--ram-base", "0x1234"], "2 MiB aligned"),
        (["model", "--ipa-bits", "32", "--memory", "4G"], "does not fit"),
        (["model", "--iommu-mode", "pinned"], "--iommu-mode 'pinned' must be mirror, refcount or none"),
        (["model", "--ram-base", "0xffffffffffe00000"], "does not fit"),
        (["model", "--pkvm-abi", "gunyah"], "--pkvm-abi 'gunyah' must be mainline or android"),
        (["bench", "iommu", "--translations", "0"], "--translations must be"),
        (["trace", "t.jsonl", "--kind", "bogus"], "--kind 'bogus' is not an event kind"),
        (["trace", "t.jsonl", "--follow", "page"], "--follow 'page' is not a page frame number"),
        (["trace", "t.jsonl", "--vm", "me"], "--vm 'me' is not a VM handle"),
        (["inspect", "--granularity", "huge"], "--granularity 'huge' must be page, region or auto"),
        (["inspect", "--model", "s.pvm", "--at-ms", "5"], "--at-ms describes a booted guest"),
        (["inspect", "--format", "png"], "--format"),
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
        #expect(r.err.contains("pvm: guest powered off · protected, mainline pKVM ABI, 1 vCPU, 64 MiB, kvm"))
        #expect(r.err.contains("pages donated"))
        #expect(r.err.contains("verified zero"))
    }

    @Test func faultExitsOneWithAReport() throws {
        let r = try pvm(["boot", "giveaway"])
        #expect(r.status == 1)
        #expect(r.err.contains("guest stopped by EL2"))
        #expect(r.err.contains("MEM_RELINQUISH"))
        // giveaway's ELF note asks for the android profile.
        #expect(r.err.contains("android pKVM ABI"))
        #expect(r.err.contains("insn:"))
    }

    /// SIGINT / SIGTERM: the vCPUs stop, the guest is torn down and checked, the summary says
    /// which signal ended the run, and pvm exits 128 + the signal.
    @Test(arguments: [(SIGINT, Int32(130), "SIGINT"), (SIGTERM, 143, "SIGTERM")])
    func signalsStopTearDownAndSummarise(signal: Int32, status: Int32, name: String) throws {
        let exe = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent()
            .appendingPathComponent("pvm")
        let p = Process()
        p.executableURL = exe
        p.arguments = ["boot", "bench", "--arg", "1000000000"]
        let e = Pipe()
        p.standardOutput = FileHandle.nullDevice
        p.standardError = e
        try p.run()
        usleep(700_000)
        kill(p.processIdentifier, signal)
        let err = String(decoding: e.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        #expect(p.terminationStatus == status, "\(err)")
        #expect(err.contains("pvm: \(name) received: vCPUs stopped, guest torn down and checked"))
        #expect(err.contains("guest stopped by \(name)") && err.contains("verified zero"))
    }

    @Test func profileFlagIsChecked() throws {
        let r = try pvm(["boot", "--pkvm-abi", "hafnium"])
        #expect(r.status == 64)
        #expect(r.err.contains("--pkvm-abi 'hafnium' must be mainline or android"))
        let android = try pvm(["boot", "share", "--pkvm-abi", "android"])
        #expect(android.status == 0, "\(android.err)")
        #expect(android.out.contains("share: Android pKVM ABI") && !android.out.contains("FAIL"))
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

    /// A boot's trace read back by `pvm trace`: whole (--json gives the file back byte for
    /// byte), as text, filtered, one page's life, and exported for Perfetto.
    @Test func traceCommandReadsABootTraceBack() throws {
        let dir = FileManager.default.temporaryDirectory
        let path = dir.appendingPathComponent("pvm-trace-\(getpid()).jsonl").path
        let chrome = dir.appendingPathComponent("pvm-trace-\(getpid()).json").path
        defer { for p in [path, chrome] { try? FileManager.default.removeItem(atPath: p) } }
        let boot = try pvm(["boot", "share", "--trace", path])
        #expect(boot.status == 0, "\(boot.err)")
        let file = try String(contentsOfFile: path, encoding: .utf8)
        let json = try pvm(["trace", path, "--json"])
        #expect(json.status == 0, "\(json.err)")
        #expect(json.out == file)
        let text = try pvm(["trace", path])
        #expect(text.out.split(separator: "\n").count == file.split(separator: "\n").count)
        let faults = try pvm(["trace", path, "--kind", "faults", "--summary"])
        #expect(faults.out.contains(" events: ") && faults.out.contains(" fault; faults: "), "\(faults.out)")
        #expect(!faults.out.contains("  hypercall "))
        // The console page (gfn 9): donated on first touch, then shared with the host.
        let life = try pvm(["trace", path, "--follow", "0x80009"])
        #expect(life.out.hasPrefix("life of PFN 0x80009 (PA 0x80009000)"))
        #expect(life.out.contains("host_donate_guest pfn 0x80009 gfn 0x9"))
        #expect(life.out.contains("guest_share_host pfn 0x80009 gfn 0x9"))
        #expect(life.out.contains("now: host SHARED_BORROWED"), "\(life.out)")
        let export = try pvm(["trace", path, "--chrome", chrome])
        #expect(export.status == 0 && export.err.contains("ui.perfetto.dev"))
        let object = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: chrome))) as? [String: Any]
        let events = object?["traceEvents"] as? [[String: Any]] ?? []
        #expect(events.contains { ($0["args"] as? [String: Any])?["name"] as? String == "vCPU 0" })
        #expect(events.contains { $0["ph"] as? String == "X" && $0["name"] as? String == "MEM_SHARE" })
    }

    @Test func truncatedOrCorruptTracesAreRefusedWithTheLine() throws {
        let dir = FileManager.default.temporaryDirectory
        let path = dir.appendingPathComponent("pvm-cut-\(getpid()).jsonl").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        let good = #"{"t":1,"kind":"power","vcpu":0,"event":"start"}"#
        try (good + "\n" + good + "\n" + #"{"t":3,"kind":"tlbi","vmid":0,"ipa":"0x1"#).write(toFile: path, atomically: true, encoding: .utf8)
        let cut = try pvm(["trace", path])
        #expect(cut.status == 2)
        #expect(cut.err.contains("\(path): line 3: truncated event (the file ends inside it)"), "\(cut.err)")
        #expect(cut.out.isEmpty)
        try (good + "\n" + #"{"t":2,"kind":"tlbi","vmid":0}"# + "\n" + good + "\n").write(toFile: path, atomically: true, encoding: .utf8)
        let bad = try pvm(["trace", path])
        #expect(bad.status == 2)
        #expect(bad.err.contains("line 2: not a trace event: tlbi event has no \"ipa\""), "\(bad.err)")
        let missing = try pvm(["trace", "/nonexistent/t.jsonl"])
        #expect(missing.status == 2 && missing.err.contains("cannot read /nonexistent/t.jsonl: No such file or directory"))
    }

    @Test func inspectDrawsAModelSessionAndAGuest() throws {
        let dir = FileManager.default.temporaryDirectory
        let script = dir.appendingPathComponent("pvm-inspect-\(getpid()).pvm").path
        let svg = dir.appendingPathComponent("pvm-inspect-\(getpid()).svg").path
        defer { for p in [script, svg] { try? FileManager.default.removeItem(atPath: p) } }
        try "vm_create g\nhost_donate_guest 16 2 g\n".write(toFile: script, atomically: true, encoding: .utf8)
        let r = try pvm(["inspect", "--model", script, "--memory", "8M", "-o", svg])
        #expect(r.status == 0, "\(r.err)")
        let picture = try String(contentsOfFile: svg, encoding: .utf8)
        // Every page is a cell or counted in a folded band.
        let cells = picture.components(separatedBy: "<rect class=\"page ").count - 1
        let folded = picture.components(separatedBy: "data-pages=\"").dropFirst().map { Int($0.prefix { $0.isNumber })! }.reduce(0, +)
        #expect(cells + folded == 2048 && folded > 0)
        let text = try pvm(["inspect", "hello"])
        #expect(text.status == 0, "\(text.err)")
        #expect(text.out.contains("guest powered off, before teardown"))
        #expect(text.out.contains("vm 0x1000 private") && text.out.contains("vm 0x1000 shared with host"))
        let tree = try pvm(["inspect", "hello", "--format", "stage2"])
        #expect(tree.out.contains("host stage-2: root") && tree.out.contains("INVALID DONATION owner=guest vm=0x1000"))
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
        (["fuzz", "--threads", "9"], 64, "--threads must be 1 to 8"),
        (["fuzz", "--ops", "0"], 64, "--ops must be 1 to 10^12"),
        (["check", "--depth", "0"], 64, "--depth must be 1 to 12"),
        (["check", "--vms", "4"], 64, "--vms must be 2 or 3"),
        (["check", "--pkvm-abi", "gunyah"], 64, "must be mainline or android"),
    ] as [([String], Int32, String)])
    func badInputGetsAClearErrorAndStatus(arguments: [String], status: Int32, message: String) throws {
        let r = try pvm(arguments)
        #expect(r.status == status)
        #expect(r.err.contains(message), "\(r.err)")
        #expect(!r.err.contains("Fatal error"))
    }
}
