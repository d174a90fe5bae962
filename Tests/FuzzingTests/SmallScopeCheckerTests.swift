import EL2
import Fuzzing
import ModelScript
import Testing

/// `pvm check` in the suite: shallow exhaustive runs of each design that must find nothing
/// and whose state counts are pinned (a change to EL2 or the model that changes what is
/// reachable shows up here), and mutant models that it must catch, minimize and script.
@Suite struct SmallScopeCheckerTests {
    /// (The mirror/mainline world is `stateCountsArePinned`'s.)
    static let designs: [(IOMMUMode?, PKVMProfile)] = [(.refcount, .android), (nil, .android)]

    @Test(arguments: designs)
    func everyStateToDepthTwoHolds(iommu: IOMMUMode?, profile: PKVMProfile) throws {
        var c = SmallScopeChecker.Configuration()
        c.depth = 2
        c.iommu = iommu
        c.profile = profile
        let report = try SmallScopeChecker(c).run()
        #expect(report.counterexample == nil, "\(report.counterexample.map { "\($0.violation)" } ?? "")")
        #expect(report.statesPerDepth.count == 3)
        #expect(report.states > 500, "\(report.statesPerDepth)")
        #expect(!report.truncated)
        #expect(report.invariantChecks > report.states)
    }

    /// The mainline world's reachable states, pinned.
    @Test func stateCountsArePinned() throws {
        var c = SmallScopeChecker.Configuration()
        c.depth = 2
        let report = try SmallScopeChecker(c).run()
        #expect(report.counterexample == nil, "\(report.counterexample.map { "\($0.violation)" } ?? "")")
        #expect(report.statesPerDepth == [1, 46, 726])
        #expect(report.transitions == 7097)
    }

    /// A model that forbids what EL2 rightly does: the checker stops at the first state where
    /// it matters and hands over a path that replays the violation.
    @Test func aMutantModelIsCaughtAndScripted() throws {
        var c = SmallScopeChecker.Configuration()
        c.depth = 3
        // Wrong only once a VM owns a page: the counterexample needs a donation first.
        c.mutation = { op, expected in
            if case .guestShare = op, expected == .allowed { return .refused }
            return expected
        }
        let checker = SmallScopeChecker(c)
        let report = try checker.run()
        let (ops, violation) = try #require(report.counterexample)
        #expect(violation.message.contains("forbids"), "\(violation)")
        #expect(report.statesPerDepth.count == 2, "found at depth 1's expansion: \(report.statesPerDepth)")
        let minimal = FuzzMinimizer.minimize(ops) { checker.fuzzer.replay($0) != nil }
        #expect(minimal.count == 2, "\(minimal)")
        if case .donateGuest = minimal.first {} else { Issue.record("\(minimal)") }
        // The script runs line for line under pvm model.
        let script = checker.fuzzer.script(minimal, violation: violation)
        var session = ModelSession.Configuration()
        session.memory = c.fuzzer.memory
        session.iommu = c.iommu
        let replay = try ModelSession(session)
        for (i, line) in ModelSession.lines(of: script).enumerated() {
            #expect(replay.run(line: line, number: i + 1)?.isMalformed != true, "\(line)")
        }
    }

    @Test func aStateLimitStopsTheSearch() throws {
        var c = SmallScopeChecker.Configuration()
        c.depth = 4
        c.maxStates = 100
        let report = try SmallScopeChecker(c).run()
        #expect(report.truncated)
        #expect(report.states <= 100 + 1)
    }
}
