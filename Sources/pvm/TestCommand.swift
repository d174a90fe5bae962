import ArgumentParser
import Foundation
import KVMBackend
import Regression
import Tracing

/// `pvm test`: the hypercall regression suite (docs/testing.md), built-in or the user's own
/// scenarios, on each backend, in parallel, reported KTAP-style, as JUnit XML or as JSON.
struct TestCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "test",
        abstract: "Run the hypercall regression scenarios (built-in, by name or glob, or scenario files) on each backend.",
        discussion: """
            Each scenario boots a guest with its flags and compares the transcript recorded from \
            the trace (every payload hypercall with all four results, the faults that are not \
            first-touch donations, the outcome, and named pages' states at the end) with its \
            file. Without SCENARIO, the built-in suite runs; a SCENARIO is a built-in name, a glob \
            of names (quote it), a .scenario file or a directory of them. One line per scenario \
            and backend (KTAP: 'ok N name [backend]' / 'not ok N ...', the first divergence and \
            the kept trace under it), then 'N passed, N failed' (', N skipped' with the reason \
            where a backend is missing). --record rewrites the named files from a run. Exit \
            status: 0 all passed, 1 a scenario failed or could not run, 64 a bad flag.
            """
    )

    @Argument(help: ArgumentHelp("Built-in scenario names or globs, .scenario files or directories (default: the built-in suite).", valueName: "SCENARIO"))
    var scenarios: [String] = []

    @Option(name: .long, help: ArgumentHelp("kvm, interp or all (default: all; kvm is skipped where /dev/kvm is missing).", valueName: "BACKEND"))
    var backend: String = "all"

    @Option(name: .long, help: ArgumentHelp("Scenarios run at once (default: the number of cores).", valueName: "N"))
    var jobs: Int?

    @Option(name: .long, help: ArgumentHelp("Run the interpreter under deterministic scheduling with this seed.", valueName: "SEED"))
    var deterministic: UInt64?

    @Option(name: .long, help: ArgumentHelp("Also write the results as JUnit XML ('-': standard output).", valueName: "FILE"))
    var junit: String?

    @Flag(name: .long, help: "Print the results as one JSON object instead of KTAP lines.")
    var json = false

    @Flag(name: .long, help: "Run each named scenario file once and rewrite it with what the run did (its image and flags are kept).")
    var record = false

    @Option(name: .long, help: ArgumentHelp("Where failing scenarios' traces are kept (default: the temporary directory).", valueName: "DIR"))
    var keepTraces: String?

    @Option(name: .long, help: ArgumentHelp("Leave out the scenarios whose names match this glob (repeatable): --exclude 'linux-*' skips the kernels.", valueName: "PATTERN"))
    var exclude: [String] = []

    @Flag(name: .long, help: "List the scenarios that would run, and exit.")
    var list = false

    func validate() throws {
        guard ["kvm", "interp", "all"].contains(backend) else { throw ValidationError("--backend '\(backend)' must be kvm, interp or all") }
        if let jobs, !(1 ... 64).contains(jobs) { throw ValidationError("--jobs \(jobs) must be 1 to 64") }
        if record {
            guard !scenarios.isEmpty, scenarios.allSatisfy({ $0.hasSuffix(".scenario") }) else {
                throw ValidationError("--record rewrites scenario files: name the .scenario files to record")
            }
            if backend == "all" { throw ValidationError("--record runs on one backend: add --backend kvm or --backend interp") }
        }
        if json && junit == TextFile.standardStream { throw ValidationError("--json and --junit - both want standard output") }
    }

    func run() throws {
        let selected: [String]
        do { selected = try selectFiles() } catch let e as ValidationError { throw e }
        let files = selected.filter { file in !exclude.contains { fnmatch($0, Self.name(of: file), 0) == 0 } }
        var loaded: [(path: String, scenario: Scenario?, error: String?)] = []
        for f in files {
            switch TextFile.read(f, limit: Scenario.sizeLimit) {
            case let .success(bytes):
                do { loaded.append((f, try Scenario(parsing: String(decoding: bytes, as: UTF8.self), path: f, recording: record), nil)) } catch {
                    loaded.append((f, nil, error.description))
                }
            case let .failure(e): loaded.append((f, nil, "\(f): cannot read: \(e)"))
            }
        }
        if list {
            for l in loaded { print(l.scenario.map { "\($0.name)  \(l.path)" } ?? "\(l.path): \(l.error!)") }
            return
        }
        let backends: [GuestOptions.BackendKind] = backend == "all" ? [.kvm, .interp] : [GuestOptions.BackendKind(rawValue: backend)!]
        let runner = ScenarioRunner(deterministic: deterministic, traceDirectory: keepTraces ?? FileManager.default.temporaryDirectory.path,
                                    recording: record)
        var work: [(Scenario, GuestOptions.BackendKind)] = []
        for l in loaded { if let s = l.scenario { for b in backends { work.append((s, b)) } } }
        let started = monotonicNanoseconds()
        let results = ParallelRun.map(work, jobs: jobs ?? ProcessInfo.processInfo.activeProcessorCount) { runner.run($0.0, on: $0.1) }
        let wall = Double(monotonicNanoseconds() - started) / 1e9
        if record { return try write(results) }
        let report = TestReport(results: results, broken: loaded.compactMap(\.error), wall: wall)
        if json { print(report.json) } else if junit == TextFile.standardStream {
            printError(report.ktap, newline: false)  // standard output carries the XML
        } else {
            print(report.ktap, terminator: "")
        }
        if let junit {
            do { try TextFile.write(report.junit, to: junit) } catch { printError("pvm test: \(error)"); throw ExitCode(2) }
        }
        if !report.allPassed { throw ExitCode(1) }
    }

    /// The files the arguments name: built-in names and globs, files, directories.
    private func selectFiles() throws -> [String] {
        let builtIn = BuiltInSuite.directory.map(BuiltInSuite.files(in:)) ?? []
        if scenarios.isEmpty {
            guard !builtIn.isEmpty else { throw ValidationError("the built-in scenarios are missing (no resource bundle next to pvm)") }
            return builtIn
        }
        var out: [String] = []
        for arg in scenarios {
            var isDir: ObjCBool = false
            if FileManager.default.fileExists(atPath: arg, isDirectory: &isDir) {
                out += isDir.boolValue ? BuiltInSuite.files(in: arg) : [arg]
                continue
            }
            if arg.hasSuffix(".scenario") || arg.contains("/") {
                if record { out.append(arg); continue }
                throw ValidationError("no scenario file '\(arg)'")
            }
            let matches = builtIn.filter { fnmatch(arg, Self.name(of: $0), 0) == 0 }
            guard !matches.isEmpty else {
                throw ValidationError("no built-in scenario matches '\(arg)' (pvm test --list shows them)")
            }
            out += matches
        }
        return out
    }

    static func name(of path: String) -> String {
        let base = path.split(separator: "/").last.map(String.init) ?? path
        return base.hasSuffix(".scenario") ? String(base.dropLast(9)) : base
    }

    /// `--record`: each file rewritten with its run's outcome, transcript and pages.
    private func write(_ results: [ScenarioRunner.Result]) throws {
        var failed = false
        for r in results {
            switch r.verdict {
            case .error(let why), .failed(let why):
                printError("pvm test --record: \(r.scenario.path): \(why)")
                failed = true
                continue
            case .skipped(let why):
                printError("pvm test --record: \(r.scenario.path): skipped on \(r.backend.rawValue): \(why)")
                failed = true
                continue
            case .passed: break
            }
            var s = r.scenario
            s.outcome = r.outcome
            s.transcripts = s.callsOnly ? r.transcript.calls(ignoring: s.ignored).lines.mapValues(TranscriptComparison.foldedRuns)
                : r.transcript.lines.mapValues(TranscriptComparison.folded)
            s.pages = r.pages
            do { try TextFile.write(s.text, to: s.path) } catch { printError("pvm test --record: \(error)"); failed = true; continue }
            let calls = r.transcript.lines.values.reduce(0) { $0 + $1.count }
            printError("pvm test --record: wrote \(s.path): \(r.outcome), \(calls) transcript lines on \(r.transcript.lines.count) vCPU(s), \(s.pages.count) pages (\(r.backend.rawValue))")
        }
        if failed { throw ExitCode(1) }
    }
}

/// Runs `body` over `items` on `jobs` threads, results in the items' order.
enum ParallelRun {
    static func map<T, R>(_ items: [T], jobs: Int, _ body: @escaping @Sendable (T) -> R) -> [R] where T: Sendable, R: Sendable {
        let results = ResultSlots<R>(count: items.count)
        let next = AtomicCounter()
        let workers = max(1, min(jobs, items.count))
        DispatchQueue.concurrentPerform(iterations: workers) { _ in
            while true {
                let i = next.increment()
                guard i < items.count else { return }
                results.set(i, body(items[i]))
            }
        }
        return results.values
    }
}
