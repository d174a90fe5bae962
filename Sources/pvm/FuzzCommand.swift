import ArgumentParser
import EL2
import Fuzzing
import ModelScript
import Tracing
#if canImport(Glibc)
import Glibc
#endif

/// `pvm fuzz`: random host calls, guest hypercalls and DMA against EL2, checked against a
/// reference model after every operation (docs/fuzzing.md).
struct FuzzCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fuzz",
        abstract: "Fuzz EL2 as a hostile host and guests would, against an independent reference model.",
        discussion: """
            Runs --ops operations from --seed (the same seed gives the same run) on a small machine, \
            checking after every operation what it touched against the reference model, every page \
            every 512 operations, and EL2's invariant checker every 4096. A violation is minimized \
            and saved as a pvm model script (--out), which replays it. Exit status: 0 nothing \
            found, 1 a violation (the script is written), 64 a bad flag.
            """
    )

    @Option(help: "Operations to run (all threads together).")
    var ops: Int = 1_000_000

    @Option(help: "Seed of the run.")
    var seed: UInt64 = 1

    @Option(help: "Threads, each on its own pages and VMs of one shared EL2 (1 to 8).")
    var threads: Int = 1

    @OptionGroup var design: DesignOptions

    @Option(help: ArgumentHelp("Where to write the minimized script of a violation.", valueName: "FILE"))
    var out: String = "pvm-fuzz-failure.pvm"

    @Flag(help: "Instead of a random run: fail every failure point of EL2 in turn over the built-in scenarios.")
    var injectFaults = false

    func validate() throws {
        guard (1 ... 1_000_000_000_000).contains(ops) else { throw ValidationError("--ops must be 1 to 10^12") }
        guard (1 ... 8).contains(threads) else { throw ValidationError("--threads must be 1 to 8") }
    }

    func run() throws {
        if injectFaults { return try runFaultInjection() }
        var c = Fuzzer.Configuration()
        c.operations = ops
        c.seed = seed
        c.threads = threads
        c.iommu = design.iommu
        c.profile = design.profile
        let fuzzer = Fuzzer(c)
        let interactive = isatty(2) == 1
        let threadCount = threads
        let progress: @Sendable (Int) -> Void = { done in
            printError("\u{1B}[1Gpvm fuzz: \(done * threadCount) operations…", newline: false)
        }
        let report = try fuzzer.run(progress: interactive ? progress : nil)
        if interactive { printError("\u{1B}[1G\u{1B}[K", newline: false) }
        print("pvm fuzz: seed \(seed), \(c.iommu.map { "\($0)" } ?? "no") SMMU, \(c.profile) ABI, \(threads) thread\(threads == 1 ? "" : "s")")
        print("  \(grouped(Double(report.operations))) operations in \(format2(report.seconds)) s: "
              + "\(grouped(report.operationsPerSecond)) ops/s (\(grouped(report.operationsPerSecond / Double(threads))) per thread)")
        print("  \(grouped(Double(report.done))) done, \(grouped(Double(report.refused))) refused, "
              + "\(grouped(Double(report.retried))) replayed, \(grouped(Double(report.skipped))) named nothing; "
              + "\(report.invariantChecks) full invariant checks")
        guard let violation = report.violations.first else {
            print("  0 violations, 0 crashes")
            return
        }
        print("  VIOLATION (thread \(violation.thread)): \(violation)")
        guard threads == 1, violation.thread == 0 else {
            print("  (runs with several threads are not replayable; rerun with --threads 1)")
            throw ExitCode(1)
        }
        let m = try fuzzer.makeMachine()
        let prefix = fuzzer.operations(count: violation.index + 1, machine: m)
        let minimal = FuzzMinimizer.minimize(prefix) { fuzzer.replay($0) != nil }
        let script = fuzzer.script(minimal, violation: fuzzer.replay(minimal))
        do { try TextFile.write(script, to: out) } catch { printError("pvm fuzz: \(error)") }
        print("  minimized to \(minimal.count) operations: \(out) (pvm model \(out) \(c.modelFlags))")
        throw ExitCode(1)
    }

    private func runFaultInjection() throws {
        let clock = ContinuousClock()
        var report = FaultInjectionRun.Report()
        let elapsed = clock.measure { report = FaultInjectionRun().run(FaultInjectionRun.scenarios) }
        print("pvm fuzz --inject-faults: \(FaultInjectionRun.scenarios.count) scenarios, \(report.points.count) failure points, "
              + "\(report.exercised.count) exercised (\(report.exercised.map(\.rawValue).sorted().joined(separator: ", ")))")
        print("  \(report.injections) failures injected, \(report.absorbed) absorbed by a host composite call, "
              + "\(report.violations.count) violations, \(elapsed)")
        for v in report.violations.prefix(20) { print("  VIOLATION: \(v)") }
        if !report.violations.isEmpty { throw ExitCode(1) }
    }
}
