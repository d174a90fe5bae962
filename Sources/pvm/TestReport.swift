import Foundation
import Inspection
import Regression
import Synchronization
import Tracing

/// `pvm test`'s results: KTAP lines and the closing count, JUnit XML, or one JSON object.
struct TestReport {
    let results: [ScenarioRunner.Result]
    /// Scenario files that could not be read or parsed: errors, never passes.
    let broken: [String]
    let wall: Double

    private func count(_ match: (ScenarioRunner.Verdict) -> Bool) -> Int { results.count { match($0.verdict) } }
    var passed: Int { count { $0 == .passed } }
    var failed: Int {
        count { if case .failed = $0 { true } else if case .error = $0 { true } else { false } } + broken.count
    }
    var skipped: Int { count { if case .skipped = $0 { true } else { false } } }
    var allPassed: Bool { failed == 0 }

    /// Why scenarios were skipped, distinct.
    private var skipReasons: [String] {
        var seen: [String] = []
        for r in results { if case let .skipped(why) = r.verdict, !seen.contains("\(r.backend.rawValue): \(why)") { seen.append("\(r.backend.rawValue): \(why)") } }
        return seen
    }

    var ktap: String {
        var o = "KTAP version 1\n1..\(results.count + broken.count)\n"
        var n = 0
        for b in broken {
            n += 1
            o += "not ok \(n) \(b)\n"
        }
        for r in results {
            n += 1
            let name = "\(r.scenario.name) [\(r.backend.rawValue)]"
            switch r.verdict {
            case .passed: o += "ok \(n) \(name) # \(format2(r.seconds)) s\n"
            case let .skipped(why): o += "ok \(n) \(name) # SKIP \(why)\n"
            case let .failed(why), let .error(why):
                o += "not ok \(n) \(name)\n"
                for line in why.split(separator: "\n") { o += "#   \(line)\n" }
                if let trace = r.tracePath { o += "#   full trace kept: \(trace) (pvm trace \(trace))\n" }
            }
        }
        o += "\(passed) passed, \(failed) failed"
        if skipped > 0 { o += ", \(skipped) skipped (\(skipReasons.joined(separator: "; ")))" }
        o += "\n" + timing + "\n"
        return o
    }

    /// "time: kvm 3.10 s, interp 4.22 s (scenario time, summed); 5.01 s wall".
    var timing: String {
        var parts: [String] = []
        for b in GuestOptions.BackendKind.allCases {
            let ran = results.filter { $0.backend == b && !isSkip($0.verdict) }
            if !ran.isEmpty { parts.append("\(b.rawValue) \(format2(ran.reduce(0) { $0 + $1.seconds })) s") }
        }
        return "time: " + (parts.isEmpty ? "nothing ran" : parts.joined(separator: ", ")) + " (summed per backend); \(format2(wall)) s wall"
    }

    private func isSkip(_ v: ScenarioRunner.Verdict) -> Bool { if case .skipped = v { true } else { false } }

    var json: String {
        let items: [JSONValue] = results.map { r in
            var o: JSONObject = ["name": .string(r.scenario.name), "file": .string(r.scenario.path), "backend": .string(r.backend.rawValue),
                                 "seconds": .number(format2(r.seconds))]
            switch r.verdict {
            case .passed: o["result"] = "passed"
            case let .skipped(why): o["result"] = "skipped"; o["reason"] = .string(why)
            case let .failed(why): o["result"] = "failed"; o["divergence"] = .string(why)
            case let .error(why): o["result"] = "error"; o["message"] = .string(why)
            }
            if let t = r.tracePath { o["trace"] = .string(t) }
            return .object(o)
        }
        let root: JSONObject = ["passed": .int(passed), "failed": .int(failed), "skipped": .int(skipped),
                                "broken": .array(broken.map { .string($0) }), "scenarios": .array(items),
                                "wall_seconds": .number(format2(wall))]
        return JSONValue.object(root).description
    }

    var junit: String {
        func esc(_ s: String) -> String { xmlEscaped(s) }
        var o = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
        o += "<testsuites name=\"pvm test\" tests=\"\(results.count + broken.count)\" failures=\"\(failed)\" skipped=\"\(skipped)\" time=\"\(format2(wall))\">\n"
        for b in GuestOptions.BackendKind.allCases {
            let mine = results.filter { $0.backend == b }
            guard !mine.isEmpty else { continue }
            o += "<testsuite name=\"\(b.rawValue)\" tests=\"\(mine.count)\">\n"
            for r in mine {
                o += "<testcase classname=\"pvm.\(b.rawValue)\" name=\"\(esc(r.scenario.name))\" file=\"\(esc(r.scenario.path))\" time=\"\(format2(r.seconds))\">"
                switch r.verdict {
                case .passed: break
                case let .skipped(why): o += "<skipped message=\"\(esc(why))\"/>"
                case let .failed(why), let .error(why):
                    o += "<failure message=\"\(esc(String(why.split(separator: "\n").first ?? "")))\">\(esc(why))"
                    if let t = r.tracePath { o += "\nfull trace: \(esc(t))" }
                    o += "</failure>"
                }
                o += "</testcase>\n"
            }
            o += "</testsuite>\n"
        }
        for b in broken { o += "<testsuite name=\"files\"><testcase name=\"\(esc(b))\"><error message=\"\(esc(b))\"/></testcase></testsuite>\n" }
        return o + "</testsuites>\n"
    }
}

/// One slot per result, written by the worker threads.
final class ResultSlots<R: Sendable>: Sendable {
    private let slots: Mutex<[R?]>
    init(count: Int) { slots = Mutex(Array(repeating: nil, count: count)) }
    func set(_ i: Int, _ value: R) { slots.withLock { $0[i] = value } }
    var values: [R] { slots.withLock { $0.map { $0! } } }
}

/// The next work item's index.
final class AtomicCounter: Sendable {
    private let value = Atomic<Int>(0)
    func increment() -> Int { value.add(1, ordering: .relaxed).oldValue }
}
