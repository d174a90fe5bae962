import Regression
import Testing

/// The scenario format: what it accepts, what it refuses (with the line), how transcripts
/// compare, and how addresses are named so both architectures agree.
@Suite struct ScenarioFileTests {
    static let good = """
        # a comment
        scenario demo
        image share
        flags --pkvm-abi android --vcpus 2
        outcome powered-off
        host touch scratch+0x2000 at hypercall:MMIO_GUARD_INFO
        vcpu 0
          hvc MEM_SHARE scratch+0x0 0x0 0x0 -> 0x0 0x1 0x0 0x0   # trailing comment
        * hvc PSCI_AFFINITY_INFO 0x1 0x0 0x0 -> 0x0 0x0 0x0 0x0
          hvc PSCI_AFFINITY_INFO 0x1 0x0 0x0 -> 0x1 0x0 0x0 0x0
          fault write ram+0x100d000 stopped
          host force-reclaim scratch+0x2000 -> 0
        vcpu 1
          hvc PSCI_CPU_OFF 0x0 0x0 0x0 -> 0x0 0x0 0x0 0x0
        page scratch+0x0 guest=SHARED_OWNED host=SHARED_BORROWED hyp=NOPAGE
        """

    static let kernel = """
        scenario boot
        image linux:debian
        flags --memory 256M
        append console=ttyAMA0 panic=-1 pvm.shell
        prompt pvm>
        type uname -r
        type exit
        console pvm-init: shell ready
        transcript calls
        shared-pages 0
        outcome powered-off
        vcpu 0
          hvc PSCI_VERSION
        * hvc TRNG_RND64
          hvc PSCI_SYSTEM_OFF
        """

    @Test func aKernelScenarioParsesAndRoundTrips() throws {
        let s = try Scenario(parsing: Self.kernel, path: "boot.scenario")
        #expect(s.linuxKernel == "debian" && s.append == "console=ttyAMA0 panic=-1 pvm.shell")
        #expect(s.typed == ["uname -r", "exit"] && s.prompt == "pvm>" && s.callsOnly && s.sharedPages == 0)
        #expect(s.consoleExpectations.map(\.text) == ["pvm-init: shell ready"])
        #expect(s.transcripts[0]?.map(\.text) == ["hvc PSCI_VERSION", "hvc TRNG_RND64", "hvc PSCI_SYSTEM_OFF"])
        #expect(try Scenario(parsing: s.text, path: "boot.scenario").text == s.text)
        // Names only under `transcript calls`; a full line there is refused, and so are kernel
        // lines for an image that is not a kernel.
        #expect(throws: ScenarioError.self) {
            try Scenario(parsing: Self.kernel.replacingOccurrences(of: "  hvc PSCI_VERSION", with: "  hvc PSCI_VERSION 0x0 0x0 0x0 -> 0x0 0x0 0x0 0x0"), path: "b")
        }
        #expect(throws: ScenarioError.self) {
            try Scenario(parsing: Self.kernel.replacingOccurrences(of: "image linux:debian", with: "image hello"), path: "b")
        }
        var t = Transcript()
        t.lines[0] = ["hvc PSCI_VERSION 0x0 0x0 0x0 -> 0x10003 0x0 0x0 0x0", "fault read ram+0x0 donated",
                      "hvc PSCI_SYSTEM_OFF 0x0 0x0 0x0 -> 0x0 0x0 0x0 0x0"]
        #expect(TranscriptComparison.firstDivergence(s, t.compared(by: s)) == nil)
        t.lines[0]!.insert("hvc MEM_SHARE 0x0 0x0 0x0 -> 0x0 0x0 0x0 0x0", at: 1)
        #expect(TranscriptComparison.firstDivergence(s, t.compared(by: s))?.contains("hvc MEM_SHARE") == true)
    }

    @Test func aGoodFileParsesAndRoundTrips() throws {
        let s = try Scenario(parsing: Self.good, path: "demo.scenario")
        #expect(s.name == "demo" && s.image == "share" && s.flags == ["--pkvm-abi", "android", "--vcpus", "2"])
        #expect(s.transcripts[0]?.count == 5 && s.transcripts[0]?[1].repeats == true && s.transcripts[0]?[1].line == 9)
        #expect(s.transcripts[0]?[4].text == "host force-reclaim scratch+0x2000 -> 0")
        #expect(s.hostActions == [.init(address: "scratch+0x2000", event: "hypercall:MMIO_GUARD_INFO", line: 6)])
        #expect(s.pages == [.init(address: "scratch+0x0", state: "guest=SHARED_OWNED host=SHARED_BORROWED hyp=NOPAGE", line: 15)])
        let again = try Scenario(parsing: s.text, path: "demo.scenario")
        #expect(again.transcripts.mapValues { $0.map(\.text) } == s.transcripts.mapValues { $0.map(\.text) })
        #expect(again.pages.map(\.state) == s.pages.map(\.state))
        #expect(again.hostActions.map(\.event) == s.hostActions.map(\.event))
    }

    @Test(arguments: [
        ("image hello\nvcpu 0\n  hvc X 0x0 0x0 0x0 -> 0x0\noutcome powered-off\n", 3, "hvc takes NAME A1 A2 A3 -> R0 R1 R2 R3"),
        ("image hello\noutcome powered-off\n  hvc X 0x0 0x0 0x0 -> 0x0 0x0 0x0 0x0\n", 3, "before any 'vcpu N' line"),
        ("image hello\noutcome off\n", 2, "outcome must be one of"),
        ("image hello\noutcome powered-off\nvcpu 0\n  fault write nowhere stopped\n", 4, "'nowhere' is not an address"),
        ("image hello\noutcome powered-off\nvcpu 0\n  hvc X zz 0x0 0x0 -> 0x0 0x0 0x0 0x0\n", 4, "'zz' is not a value"),
        ("image hello\noutcome powered-off\nbogus 1\n", 3, "unknown keyword 'bogus'"),
        ("image hello\noutcome powered-off\npage 0x1000 guest=OWNED host=NOPAGE hyp=NOPAGE\n", 3, "page takes ram+OFFSET"),
        ("image hello\noutcome powered-off\n* page ram+0x0 guest=OWNED host=NOPAGE hyp=NOPAGE\n", 3, "'*' applies to hvc and fault lines only"),
        ("image hello\noutcome powered-off\nvcpu 0\nvcpu 0\n", 4, "vcpu 0 appears twice"),
        ("image hello\noutcome powered-off\nhost touch 0x1000 at fault\n", 3, "host takes touch ADDRESS at EVENT"),
        ("image hello\noutcome powered-off\nhost convert-private scratch+0x0 0 at fault\n", 3, "convert-private: PAGES must be 1 to 1048576"),
        ("image hello\noutcome powered-off\nvcpu 0\n  host poke ram+0x0 -> 0\n", 4, "host read|force-reclaim|pin|unpin|ref|convert-private|convert-shared ADDRESS [PAGES] -> RESULT"),
        ("outcome powered-off\n", 0, "no 'image' line"),
        ("image hello\n", 0, "no 'outcome' line"),
    ])
    func malformedFilesNameTheLine(text: String, line: Int, message: String) {
        do {
            _ = try Scenario(parsing: text, path: "bad.scenario")
            Issue.record("accepted: \(text)")
        } catch {
            #expect(error.line == line, "\(error)")
            #expect(error.message.contains(message), "\(error)")
            #expect(error.description.hasPrefix(line > 0 ? "bad.scenario:\(line): " : "bad.scenario: "))
        }
    }

    @Test func repeatedLinesMatchAnyCountAndDivergenceNamesTheLine() throws {
        let s = try Scenario(parsing: Self.good, path: "demo.scenario")
        var t = Transcript()
        let share = "hvc MEM_SHARE scratch+0x0 0x0 0x0 -> 0x0 0x1 0x0 0x0"
        let on = "hvc PSCI_AFFINITY_INFO 0x1 0x0 0x0 -> 0x0 0x0 0x0 0x0", off = "hvc PSCI_AFFINITY_INFO 0x1 0x0 0x0 -> 0x1 0x0 0x0 0x0"
        let stop = "fault write ram+0x100d000 stopped", reclaim = "host force-reclaim scratch+0x2000 -> 0"
        t.lines[1] = ["hvc PSCI_CPU_OFF 0x0 0x0 0x0 -> 0x0 0x0 0x0 0x0"]
        for polls in [0, 1, 5] {
            t.lines[0] = [share] + Array(repeating: on, count: polls) + [off, stop, reclaim]
            #expect(TranscriptComparison.firstDivergence(s, t) == nil, "\(polls) polls")
        }
        t.lines[0] = [share, off]
        let d = try #require(TranscriptComparison.firstDivergence(s, t))
        #expect(d.contains("demo.scenario:11") && d.contains("expected: \(stop)") && d.contains("actual:   (nothing more)"), "\(d)")
        t.lines[0] = [share, off, stop, reclaim, stop]
        #expect(TranscriptComparison.firstDivergence(s, t)?.contains("after the last line of vcpu 0") == true)
        t.lines[2] = ["hvc PSCI_CPU_OFF 0x0 0x0 0x0 -> 0x0 0x0 0x0 0x0"]
        t.lines[0] = [share, off, stop, reclaim]
        #expect(TranscriptComparison.firstDivergence(s, t)?.hasPrefix("vcpu 2") == true)
    }

    @Test func recordingFoldsPollsOnly() {
        let on = "hvc PSCI_AFFINITY_INFO 0x2 0x0 0x0 -> 0x0 0x0 0x0 0x0", off = "hvc PSCI_AFFINITY_INFO 0x2 0x0 0x0 -> 0x1 0x0 0x0 0x0"
        let share = "hvc MEM_SHARE scratch+0x0 0x0 0x0 -> 0x0 0x0 0x0 0x0"
        let folded = TranscriptComparison.folded([share, share, on, on, on, off, off.replacingOccurrences(of: "0x2", with: "0x3")])
        #expect(folded.map(\.text) == [share, share, on, off, on.replacingOccurrences(of: "0x2", with: "0x3"),
                                       off.replacingOccurrences(of: "0x2", with: "0x3")])
        #expect(folded.map(\.repeats) == [false, false, true, false, true, false])
    }
}
