import Foundation
import Testing

/// The habits of QEMU and crosvm users: --version, '-' for standard streams, MiB sizes and -m,
/// flags a mode would ignore refused, JSON outputs, quit in model sessions, traces in order
/// with the machine first, and quiet Perfetto export. Guests boot on the interpreter, so none
/// of this needs /dev/kvm.
@Suite struct CommandLineHabitsTests {
    func temporary(_ name: String) -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("pvm-habits-\(getpid())-\(UUID().uuidString.prefix(8))-\(name)").path
    }

    @Test func versionIsPrinted() throws {
        let r = try pvm(["--version"])
        #expect(r.status == 0)
        #expect(r.out.hasPrefix("pvm 0."))
    }

    @Test func aBareMemorySizeIsMiBAndMIsAnAlias() throws {
        let r = try pvm(["model", "-m", "8", "--json"], stdin: "summary\n")
        #expect(r.status == 0, "\(r.err)")
        let a = try pvm(["inspect", "--model", "-", "-m", "8", "--json"], stdin: "vm_create g\n")
        #expect(a.status == 0, "\(a.err)")
        let json = try JSONSerialization.jsonObject(with: Data(a.out.utf8)) as! [String: Any]
        #expect(json["pages"] as? Int == 2048)  // 8 MiB, not 8 bytes
        let bytes = try pvm(["inspect", "--model", "-", "--memory", "8388608B", "--json"], stdin: "")
        #expect((try JSONSerialization.jsonObject(with: Data(bytes.out.utf8)) as! [String: Any])["pages"] as? Int == 2048)
        let bad = try pvm(["model", "-m", "8Q"])
        #expect(bad.status == 64 && bad.err.contains("is not a size"))
    }

    @Test func flagsTheModeWouldIgnoreAreRefused() throws {
        for (args, message) in [
            (["inspect", "--model", "x.pvm", "--vcpus", "4"], "--vcpus describes a booted guest"),
            (["inspect", "--model", "x.pvm", "share"], "IMAGE describes a booted guest"),
            (["inspect", "--model", "x.pvm", "--at", "fault"], "--at describes a booted guest"),
            (["inspect", "share", "--ipa-bits", "48"], "--ipa-bits applies to --model"),
            (["inspect", "-o", "x.png"], "not .png"),
            (["inspect", "--at", "sometime"], "--at 'sometime' is not an event"),
            (["inspect", "--highlight", "page 3"], "--highlight 'page 3' is not a page"),
            (["boot", "--json", "--trace", "-"], "both want standard output"),
            (["trace", "x.jsonl", "--chrome", "x.json", "--json"], "cannot be combined"),
        ] {
            let r = try pvm(args)
            #expect(r.status == 64, "\(args): \(r.status)")
            #expect(r.err.contains(message), "\(args): \(r.err)")
        }
    }

    @Test func modelQuitEndsAScriptAndJSONResultsParse() throws {
        let r = try pvm(["model", "--json", "-"], stdin: "vm_create g\nhost_share_hyp 1\nquit\nbogus\n")
        #expect(r.status == 0, "\(r.err)")
        let lines = r.out.split(separator: "\n")
        #expect(lines.count == 2)
        let first = try JSONSerialization.jsonObject(with: Data(lines[0].utf8)) as! [String: Any]
        #expect(first["op"] as? String == "vm_create g" && first["result"] as? String == "0" && first["ok"] as? Bool == true)
        let exit = try pvm(["model"], stdin: "exit # done\nbogus\n")
        #expect(exit.status == 0 && exit.out.isEmpty)
    }

    @Test func bootJSONSummaryAndATraceOnStandardOutputInTimeOrderMachineFirst() throws {
        let r = try pvm(["boot", "share", "--backend", "interp", "--vcpus", "4", "--json"])
        #expect(r.status == 0, "\(r.err)")
        let json = try JSONSerialization.jsonObject(with: Data(r.out.utf8)) as! [String: Any]
        #expect(json["outcome"] as? String == "powered-off" && json["exit_status"] as? Int == 0)
        #expect(json["vcpus"] as? Int == 4 && json["backend"] as? String == "interp")
        #expect((json["teardown"] as? [String: Any])?["clean"] as? Bool == true)
        #expect(r.err.contains("share:"))  // the console moved to standard error

        let t = try pvm(["boot", "share", "--backend", "interp", "--vcpus", "4", "--trace", "-"])
        #expect(t.status == 0, "\(t.err)")
        let events = t.out.split(separator: "\n").map { try! JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any] }
        #expect(events.first?["kind"] as? String == "machine")
        let times = events.map { ($0["t"] as! NSNumber).uint64Value }
        let backward = zip(times, times.dropFirst()).filter { $0 > $1 }.count
        #expect(backward == 0, "\(backward) backward steps")
        #expect(events.count > 500)

        // Read back from standard input; a filter that matches nothing says so.
        let none = try pvm(["trace", "-", "--vcpu", "9"], stdin: t.out)
        #expect(none.status == 0 && none.out.isEmpty)
        #expect(none.err.contains("none of the \(events.count) events of standard input passes the filters"))
        let empty = try pvm(["trace", "-"], stdin: "")
        #expect(empty.err.contains("holds no events"))
    }

    @Test func chromeExportIsQuietWithDMASlicesAndFaultFlows() throws {
        let trace = temporary("dma.jsonl"), chrome = temporary("dma.json")
        defer { try? FileManager.default.removeItem(atPath: trace); try? FileManager.default.removeItem(atPath: chrome) }
        let boot = try pvm(["boot", "dma", "--backend", "interp", "--trace", trace])
        #expect(boot.status == 0, "\(boot.err)")
        let r = try pvm(["trace", trace, "--chrome", chrome])
        #expect(r.status == 0)
        #expect(r.out.isEmpty)  // the events go to the file, not to the terminal
        let root = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: chrome))) as! [String: Any]
        let events = root["traceEvents"] as! [[String: Any]]
        let dma = events.filter { $0["cat"] as? String == "dma" }
        #expect(!dma.isEmpty && dma.allSatisfy { $0["ph"] as? String == "X" && $0["dur"] != nil })
        let starts = events.filter { $0["ph"] as? String == "s" }, ends = events.filter { $0["ph"] as? String == "f" }
        #expect(starts.count > 10 && starts.count == ends.count)
        // Every flow ends on an EL2 slice and starts on a fault slice on a vCPU track.
        let faults = events.filter { $0["cat"] as? String == "fault" && $0["ph"] as? String == "X" }
        #expect(!faults.isEmpty)
        #expect(ends.allSatisfy { $0["tid"] as? Int == 1000 && $0["bp"] as? String == "e" })
        // To standard output: the timeline alone.
        let out = try pvm(["trace", trace, "--chrome", "-", "--kind", "dma"])
        let piped = try JSONSerialization.jsonObject(with: Data(out.out.utf8)) as! [String: Any]
        #expect((piped["traceEvents"] as! [Any]).count > dma.count - 1)
    }

    @Test func inspectCapturesAtAnEventAndMarksItsPage() throws {
        let r = try pvm(["inspect", "dma", "--backend", "interp", "--at", "hypercall:MEM_SHARE", "--json"])
        #expect(r.status == 0, "\(r.err)")
        let json = try JSONSerialization.jsonObject(with: Data(r.out.utf8)) as! [String: Any]
        #expect((json["title"] as? String)?.contains("at the first MEM_SHARE hypercall") == true)
        let f = try pvm(["inspect", "giveaway", "--backend", "interp", "--at", "fault:3", "--json"])
        let fj = try JSONSerialization.jsonObject(with: Data(f.out.utf8)) as! [String: Any]
        let marked = fj["marked"] as! [[String: Any]]
        #expect(marked.count == 1 && (marked[0]["reason"] as? String)?.contains("occurrence 3 of the guest fault") == true, "\(fj)")
        // A stopped guest's faulting page is marked without asking.
        let stopped = try pvm(["inspect", "giveaway", "--backend", "interp", "-o", "-", "--format", "text"])
        #expect(stopped.out.contains("marked: PFN") && stopped.out.contains("the faulting page"), "\(stopped.out.suffix(400))")
        let never = try pvm(["inspect", "hello", "--backend", "interp", "--at", "dma"])
        #expect(never.err.contains("the guest stopped before the first DMA transfer"))
    }
}
