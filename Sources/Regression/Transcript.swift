import EL2
import Synchronization
import Tracing

/// What a run did, as a scenario compares it: per vCPU, the payload's hypercalls with all four
/// results and the faults that are not plain first-touch donations. It is recorded from the
/// trace events (never from the guest's own prints) by `TranscriptRecorder`.
///
/// Addresses are written relative to where they are, so the x86-64 and AArch64 builds of a
/// guest (RAM at IPA 0 and at 0x80000000, images of different sizes) give the same transcript:
/// `scratch+0x1000` for an IPA at or after the image's end (the scratch pages), `img` for one
/// inside the image (code and data addresses differ by architecture), `dev:console+0x0` for one
/// in a device window, `ram+0x9000` for the rest of RAM, raw hex below it. Only the arguments
/// that are IPAs (x1 of MEM_SHARE, MEM_UNSHARE, MEM_RELINQUISH, MMIO guard map and unmap; x2
/// and x3 of PSCI CPU_ON), result registers x1..x3 that come back equal to their argument, and
/// fault addresses are rewritten.
public struct Transcript: Sendable, Equatable {
    public var lines: [Int: [String]] = [:]
    public init() {}

    /// The hypercall lines as `hvc NAME` (what `transcript calls` compares), without the calls
    /// named in `ignored`.
    public func calls(ignoring ignored: [String]) -> Transcript {
        var t = Transcript()
        for (v, l) in lines {
            t.lines[v] = l.filter { $0.hasPrefix("hvc ") }.map { $0.split(separator: " ").prefix(2).joined(separator: " ") }
                .filter { line in !ignored.contains { "hvc " + $0 == line } }
        }
        return t
    }

    /// What a scenario compares against: everything, or with `transcript calls` the calls
    /// it does not ignore.
    public func compared(by scenario: Scenario) -> Transcript {
        scenario.callsOnly ? calls(ignoring: scenario.ignored) : self
    }

    /// `0x1f`, `ram+0x9000`, `dev:block+0x0`.
    static func isValue(_ s: String) -> Bool {
        var digits = Substring(s)
        if digits.hasPrefix("ram+") { digits = digits.dropFirst(4) } else if digits.hasPrefix("dev:") {
            guard let plus = digits.firstIndex(of: "+") else { return false }
            digits = digits[digits.index(after: plus)...]
        }
        if s == "img" { return true }
        if digits.hasPrefix("scratch+") { digits = digits.dropFirst(8) }
        guard digits.hasPrefix("0x"), digits.count > 2 else { return false }
        return digits.dropFirst(2).allSatisfy(\.isHexDigit)
    }
}

/// Where things are in the guest's IPA space, for writing addresses relative to them.
public struct AddressMap: Sendable {
    public let ram: Range<UInt64>
    /// The payload image's segments, from its first to the end of its last (page-aligned):
    /// scratch pages start at the upper bound (GuestImages/include/payload.h).
    public let image: Range<UInt64>
    public let devices: [(name: String, window: Range<UInt64>)]

    public init(ram: Range<UInt64>, image: Range<UInt64>, devices: [(name: String, window: Range<UInt64>)]) {
        self.ram = ram
        self.image = image
        self.devices = devices
    }

    func name(_ ipa: UInt64) -> String {
        // Zero is a null pointer or "no context" more often than an address: it stays 0x0
        // (on x86-64, IPA 0 is also the start of RAM).
        if ipa == 0 { return "0x0" }
        for d in devices where d.window.contains(ipa) { return "dev:\(d.name)+\(hex(ipa - d.window.lowerBound))" }
        if image.contains(ipa) { return "img" }
        if ipa >= image.upperBound, ipa < ram.upperBound { return "scratch+\(hex(ipa - image.upperBound))" }
        if ipa >= ram.lowerBound { return "ram+\(hex(ipa - ram.lowerBound))" }
        return hex(ipa)
    }

    /// The IPA a `ram+0x...` or `scratch+0x...` name stands for.
    public func ipa(_ name: String) -> UInt64? {
        for (prefix, base) in [("ram+0x", ram.lowerBound), ("scratch+0x", image.upperBound)] where name.hasPrefix(prefix) {
            guard let off = UInt64(name.dropFirst(prefix.count), radix: 16), off <= UInt64.max - base else { return nil }
            return base + off
        }
        return nil
    }
}

/// Records a transcript from the events of a run, on the threads that record them. It starts
/// at the payload: pvm's firmware makes different calls on each architecture (it shares a
/// console page on x86-64; a PL011 needs none), so the recorder waits until the firmware has
/// said "jumping to payload" on the console, which it does, flushed, right before it jumps.
public final class TranscriptRecorder: Sendable {
    private struct State {
        var transcript = Transcript()
        var inPayload: Bool
        var console: [UInt8] = []
        var ipaArguments: Set<String> = []
    }

    private let state: Mutex<State>
    private let map: AddressMap
    /// The firmware's last words before the payload runs (Firmware/main.c).
    public static let payloadMarker = Array("pvmfw: jumping to payload".utf8)
    /// Hypercalls whose x1 is an IPA.
    static let ipaCalls: Set<String> = ["MEM_SHARE", "MEM_UNSHARE", "MEM_RELINQUISH", "MMIO_GUARD_MAP", "MMIO_GUARD_UNMAP"]

    /// `waitForPayload` false records from the first event (a firmware of the user's own).
    public init(map: AddressMap, waitForPayload: Bool = true) {
        self.map = map
        state = Mutex(State(inPayload: !waitForPayload))
    }

    /// Console bytes, in order, from the vCPU that wrote them.
    public func console(_ bytes: [UInt8]) {
        state.withLock { s in
            guard !s.inPayload else { return }
            s.console += bytes
            if s.console.count > 1 << 16 { s.console.removeFirst(s.console.count - 4096) }
            let m = Self.payloadMarker
            if s.console.count >= m.count,
               (0 ... s.console.count - m.count).contains(where: { s.console[$0 ..< $0 + m.count].elementsEqual(m) }) {
                s.inPayload = true
            }
        }
    }

    public func observe(_ event: TraceEvent) {
        switch event {
        case let .hypercall(h):
            let name = h.name == "UNKNOWN" ? hex(UInt64(h.function)) : h.name
            let isIPA = Self.ipaCalls.contains(h.name), isCPUOn = h.name == "PSCI_CPU_ON"
            let a1 = isIPA ? map.name(h.arguments.0) : hex(h.arguments.0)
            let a2 = isCPUOn ? map.name(h.arguments.1) : hex(h.arguments.1)
            let a3 = isCPUOn ? map.name(h.arguments.2) : hex(h.arguments.2)
            // x1..x3 come back unchanged from calls that return only x0 (PSCI CPU_ON's entry
            // and context): written as their argument was.
            func r(_ v: UInt64, _ arg: UInt64, _ text: String) -> String { v == arg ? text : hex(v) }
            let line = "hvc \(name) \(a1) \(a2) \(a3) -> \(hex(h.results.0)) \(r(h.results.1, h.arguments.0, a1)) "
                + "\(r(h.results.2, h.arguments.1, a2)) \(r(h.results.3, h.arguments.2, a3))"
            state.withLock { s in
                guard s.inPayload else { return }
                s.transcript.lines[h.vcpu, default: []].append(line)
                if Self.ipaCalls.contains(h.name), h.name.hasPrefix("MEM_"), h.arguments.0 & 0xFFF == 0,
                   map.ram.contains(h.arguments.0), map.ipa(a1) != nil {
                    s.ipaArguments.insert(a1)
                }
            }
        case let .fault(f):
            // First-touch donations depend on the image's size, which differs by architecture.
            if f.access != .share, f.action == .donated || f.action == .shared { return }
            guard case let .vcpu(_, index) = f.source, let gpa = f.gpa else { return }
            if f.access == .boot { return }
            let line = "fault \(f.access.rawValue) \(map.name(gpa)) \(f.action.rawValue)"
            state.withLock { s in
                guard s.inPayload else { return }
                s.transcript.lines[index, default: []].append(line)
            }
        default:
            break
        }
    }

    public var transcript: Transcript { state.withLock { $0.transcript } }

    /// Whether the payload runs yet (host actions count events from then on, as the transcript does).
    public var isInPayload: Bool { state.withLock { $0.inPayload } }

    /// A line the runner adds for the host's own action, in the transcript of the vCPU whose
    /// event triggered it.
    public func host(_ line: String, vcpu: Int) {
        state.withLock { $0.transcript.lines[vcpu, default: []].append(line) }
    }

    /// `name` as this run's IPA, for the runner's host actions.
    public func ipa(_ name: String) -> UInt64? { map.ipa(name) }

    /// The transcript's name for `ipa` (`scratch+0x3000`), for the runner's host actions.
    public func name(of ipa: UInt64) -> String { map.name(ipa) }

    /// The RAM pages the payload's memory calls named, as `ram+0x...`, for `--record`.
    public var namedPages: [String] {
        state.withLock { $0.ipaArguments }.sorted { (map.ipa($0) ?? 0) < (map.ipa($1) ?? 0) }
    }
}

/// The first place a run's transcript parts from a scenario's.
public enum TranscriptComparison {
    /// nil when they agree; else the first divergence, for a human. A `*` line consumes every
    /// consecutive actual line equal to it (none, one or many), then matching goes on.
    public static func firstDivergence(_ scenario: Scenario, _ actual: Transcript) -> String? {
        let vcpus = Set(scenario.transcripts.keys).union(actual.lines.keys).sorted()
        for v in vcpus {
            let expected = scenario.transcripts[v] ?? []
            let got = actual.lines[v] ?? []
            var g = 0
            func report(_ e: Scenario.Expected?) -> String {
                let at = e.map { "\(scenario.path):\($0.line)" } ?? "\(scenario.path), after the last line of vcpu \(v)"
                return "vcpu \(v), transcript line \(g + 1) (\(at)):\n      expected: \(e.map { ($0.repeats ? "* " : "") + $0.text } ?? "(nothing more)")"
                    + "\n      actual:   \(g < got.count ? got[g] : "(nothing more)")"
            }
            for e in expected {
                if e.repeats {
                    while g < got.count, got[g] == e.text { g += 1 }
                    continue
                }
                guard g < got.count, got[g] == e.text else { return report(e) }
                g += 1
            }
            if g < got.count { return report(nil) }
        }
        return nil
    }

    /// `lines` with every run of one repeated line folded into a `*` line (what `--record`
    /// writes for `transcript calls`: how often a kernel tops up its entropy or polls depends on
    /// timing, which calls it makes in which order does not).
    public static func foldedRuns(_ lines: [String]) -> [Scenario.Expected] {
        var out: [Scenario.Expected] = []
        var i = 0
        while i < lines.count {
            var j = i + 1
            while j < lines.count, lines[j] == lines[i] { j += 1 }
            out.append(Scenario.Expected(text: lines[i], line: 0, repeats: j - i > 1))
            i = j
        }
        return out
    }

    /// `lines` with a vCPU's polling of another folded: PSCI_AFFINITY_INFO answers "on" before
    /// the "off" one become one `*` line (present even when the first poll already said off).
    /// What `--record` writes, so a polling loop's count does not become part of the scenario.
    public static func folded(_ lines: [String]) -> [Scenario.Expected] {
        var out: [Scenario.Expected] = []
        for line in lines {
            // Repeated polls fold into one line; any other repetition is the scenario's own.
            if let last = out.last, last.text == line, line.hasPrefix("hvc PSCI_AFFINITY_INFO ") {
                if !last.repeats { out[out.count - 1] = Scenario.Expected(text: line, line: 0, repeats: true) }
                continue
            }
            out.append(Scenario.Expected(text: line, line: 0))
        }
        // A vCPU waiting for another polls PSCI_AFFINITY_INFO until the answer changes: the
        // earlier answer may come any number of times, none included.
        // If it was already off at the first poll, the "on" answers may still come another time.
        var polled: [Scenario.Expected] = []
        for e in out {
            let parts = e.text.split(separator: "->").map { $0.trimmingSpaces }
            if e.text.hasPrefix("hvc PSCI_AFFINITY_INFO "), parts.count == 2 {
                if let last = polled.last, last.text.hasPrefix(parts[0] + " ->") {
                    polled[polled.count - 1] = Scenario.Expected(text: last.text, line: 0, repeats: true)
                } else if parts[1].hasPrefix("0x1 ") {
                    polled.append(Scenario.Expected(text: parts[0] + " -> 0x0 0x0 0x0 0x0", line: 0, repeats: true))
                }
            }
            polled.append(e)
        }
        return polled
    }
}

extension Substring {
    var trimmingSpaces: String {
        var s = self
        while s.first == " " { s = s.dropFirst() }
        while s.last == " " { s = s.dropLast() }
        return String(s)
    }
}
