import ArgumentParser
import EL2
import Fuzzing
import ModelScript
import Tracing
#if canImport(Glibc)
import Glibc
#endif

/// `pvm check`: every state a tiny world reaches in `--depth` operations, checked against the
/// reference model and EL2's invariants (docs/fuzzing.md).
struct CheckCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check",
        abstract: "Exhaustive small-scope check of EL2: every state of a tiny world up to a depth.",
        discussion: """
            From --pages pages, --vms VMs (the last non-protected) with --gfns guest frames each, \
            the host's device stream and one assigned to the first VM, applies every operation of \
            a fixed alphabet (host calls, guest hypercalls, VM lifecycle, DMA) from every state \
            reached, breadth first, to --depth. States are deduplicated by the reference model's \
            abstract state. In every state EL2 is compared with the reference model and its \
            invariant checker runs. A counterexample is minimized and saved as a pvm model script \
            (--out). Exit status: 0 nothing found, 1 a counterexample, 64 a bad flag.
            """
    )

    @Option(help: "Operations deep to explore (1 to 12).")
    var depth: Int = 3

    @Option(help: "Pages the host calls name (1 to 4).")
    var pages: Int = 3

    @Option(help: "Guest frames per VM (1 to 4).")
    var gfns: Int = 2

    @Option(help: "VMs, the last non-protected (2 or 3).")
    var vms: Int = 2

    @OptionGroup var design: DesignOptions

    @Option(help: "Stop after this many states (1 to 10^8).")
    var maxStates: Int = 2_000_000

    @Option(help: ArgumentHelp("Where to write the minimized script of a counterexample.", valueName: "FILE"))
    var out: String = "pvm-check-failure.pvm"

    func validate() throws {
        guard (1 ... 12).contains(depth) else { throw ValidationError("--depth must be 1 to 12") }
        guard (1 ... 4).contains(pages) else { throw ValidationError("--pages must be 1 to 4") }
        guard (1 ... 4).contains(gfns) else { throw ValidationError("--gfns must be 1 to 4") }
        guard (2 ... 3).contains(vms) else { throw ValidationError("--vms must be 2 or 3") }
        guard (1 ... 100_000_000).contains(maxStates) else { throw ValidationError("--max-states must be 1 to 10^8") }
    }

    func run() throws {
        var c = SmallScopeChecker.Configuration()
        c.depth = depth
        c.pages = pages
        c.gfns = gfns
        c.vms = vms
        c.maxStates = maxStates
        c.iommu = design.iommu
        c.profile = design.profile
        let checker = SmallScopeChecker(c)
        let interactive = isatty(2) == 1
        let report = try checker.run { depth, states in
            if interactive { printError("\u{1B}[1Gpvm check: depth \(depth + 1), \(states) states…", newline: false) }
        }
        if interactive { printError("\u{1B}[1G\u{1B}[K", newline: false) }
        let alphabet = try checker.fuzzer.makeMachine().hyp
        let size = checker.alphabet(carveout: alphabet.carveout.lowerBound.rawValue - alphabet.memory.ramStart.pfn.rawValue,
                                    ramPages: UInt64(alphabet.memory.pageCount)).count
        print("pvm check: \(pages) pages, \(vms) VMs × \(gfns) frames, \(c.iommu.map { "\($0)" } ?? "no") SMMU, "
              + "\(c.profile) ABI, \(size) operations from each state, depth \(depth)")
        print("  states per depth: \(report.statesPerDepth.map(String.init).joined(separator: " "))")
        let states = grouped(Double(report.states)), transitions = grouped(Double(report.transitions))
        let replays = grouped(Double(report.replays)), checks = grouped(Double(report.invariantChecks))
        let rate = grouped(Double(report.transitions) / max(report.seconds, 1e-9))
        print("  \(states) states, \(transitions) transitions, \(replays) replays, \(checks) invariant checks")
        print("  \(format2(report.seconds)) s: \(grouped(report.statesPerSecond)) states/s, \(rate) transitions/s")
        if report.truncated { print("  stopped at --max-states \(maxStates): the depth was not exhausted") }
        guard let (operations, violation) = report.counterexample else {
            print("  0 counterexamples")
            return
        }
        print("  COUNTEREXAMPLE after \(operations.count) operations: \(violation)")
        let fuzzer = checker.fuzzer
        let minimal = fuzzer.replay(operations) == nil ? operations : FuzzMinimizer.minimize(operations) { fuzzer.replay($0) != nil }
        let script = fuzzer.script(minimal, violation: fuzzer.replay(minimal) ?? violation)
        do { try TextFile.write(script, to: out) } catch { printError("pvm check: \(error)") }
        print("  minimized to \(minimal.count) operations: \(out) (pvm model \(out) \(fuzzer.configuration.modelFlags))")
        throw ExitCode(1)
    }
}
