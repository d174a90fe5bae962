import EL2
import Fuzzing
import ModelScript
import Testing

/// The fuzzer in the suite: bounded runs of every design and profile that must find nothing,
/// a check that the fuzzer's direct calls are what the saved script replays, and a proof that
/// it is not blind (a deliberately wrong model is caught).
@Suite struct FuzzerTests {
    static let designs: [(IOMMUMode?, PKVMProfile)] = [(.mirror, .mainline), (.refcount, .android), (nil, .android), (.mirror, .android)]

    @Test(arguments: designs)
    func aBoundedRunFindsNothing(iommu: IOMMUMode?, profile: PKVMProfile) throws {
        var c = Fuzzer.Configuration()
        c.operations = 20_000
        c.seed = 7
        c.iommu = iommu
        c.profile = profile
        let report = try Fuzzer(c).run()
        #expect(report.violations.isEmpty, "\(report.violations.map(\.description))")
        #expect(report.operations == c.operations)
        #expect(report.done > 1000 && report.refused > 1000, "done \(report.done), refused \(report.refused)")
    }

    @Test func threadsShareOneEL2() throws {
        var c = Fuzzer.Configuration()
        c.operations = 20_000
        c.threads = 2
        c.iommu = .refcount
        let report = try Fuzzer(c).run()
        #expect(report.violations.isEmpty, "\(report.violations.map(\.description))")
    }

    /// The ops applied directly give the same EL2 results as their script lines.
    @Test func directCallsMatchTheScript() throws {
        var c = Fuzzer.Configuration()
        c.iommu = .mirror
        c.profile = .android
        let fuzzer = Fuzzer(c)
        let direct = try fuzzer.makeMachine()
        let ops = fuzzer.operations(count: 3000, machine: direct)
        let scripted = try fuzzer.makeMachine()
        for op in ops {
            let a = direct.apply(op, fuzzer.domain(0))
            let lines = scripted.run(op.scriptLine(fuzzer.domain(0)))
            let text = lines.first?.text ?? ""
            switch a {
            case .ok:
                #expect(text.hasSuffix("-> 0") || text.contains("x0=0x0 ") || text.hasSuffix("-> 1"), "\(text)")
            case let .error(e) where !text.hasPrefix("hvc") && !text.hasPrefix("dma_write"):
                #expect(text.hasSuffix("-> \(e)"), "\(text) vs \(e)")
            case .skipped:
                #expect(lines.first?.isMalformed ?? true, "\(text)")
            default:
                break
            }
        }
        #expect(direct.hyp.dumpHostStage2() == scripted.hyp.dumpHostStage2())
        #expect(direct.hyp.nonDefaultPages().map { "\($0)" } == scripted.hyp.nonDefaultPages().map { "\($0)" })
    }

    /// A violation is minimized and saved as a script `pvm model` replays: here an EL2 that
    /// "forgets" a pin (the host unpins behind EL2's back) must be caught.
    @Test func aViolationIsCaughtMinimizedAndScripted() throws {
        var c = Fuzzer.Configuration()
        c.iommu = nil
        let fuzzer = Fuzzer(c)
        let m = try fuzzer.makeMachine()
        var ops = fuzzer.operations(count: 300, machine: m)
        // Break EL2's state from outside between two operations: the model must notice.
        ops.insert(.shareHyp(16), at: 0)
        ops.insert(.pin(16, 1), at: 1)
        let sabotaged = try fuzzer.makeMachine()
        _ = sabotaged.apply(.shareHyp(16), fuzzer.domain(0))
        _ = sabotaged.apply(.pin(16, 1), fuzzer.domain(0))
        _ = sabotaged.apply(.unpin(16, 1), fuzzer.domain(0))  // not in `ops`: the model never hears of it
        var model = ReferenceModel(domain: fuzzer.domain(0), profile: c.profile, iommu: c.iommu)
        model.commit(.shareHyp(16))
        model.commit(.pin(16, 1))
        #expect(model.expectedPage(16) != sabotaged.hyp.pageView(sabotaged.hyp.memory.ramStart.pfn.advanced(by: 16).address))
        // And the minimizer shrinks a failing sequence to what fails.
        let failing: [FuzzOperation] = [.hostWrite(17, 3), .shareHyp(16), .hostWrite(18, 4), .pin(16, 1), .unshareHyp(16)]
        let minimal = FuzzMinimizer.minimize(failing) { candidate in
            candidate.contains(.pin(16, 1)) && candidate.contains(.shareHyp(16))
        }
        #expect(minimal == [.shareHyp(16), .pin(16, 1)])
        let script = fuzzer.script(minimal, violation: nil)
        let replay = try ModelSession(ModelSession.Configuration())
        for (i, line) in ModelSession.lines(of: script).enumerated() {
            let r = replay.run(line: line, number: i + 1)
            #expect(r?.isMalformed != true, "\(line)")
        }
    }
}

/// Fault injection at every failure point EL2 has: each injected failure returns its error and
/// leaves the whole state (metadata, stage-2s, IOMMU, RAM bytes) as it was.
@Suite struct FaultInjectionTests {
    @Test func everyFailurePointFailsCleanly() {
        var run = FaultInjectionRun()
        run.maxHitsPerPoint = 6
        let report = run.run(FaultInjectionRun.scenarios)
        #expect(report.violations.isEmpty, "\(report.violations.prefix(5))")
        #expect(report.exercised == Set(FailurePoint.allCases), "not reached: \(Set(FailurePoint.allCases).subtracting(report.exercised))")
        #expect(report.injections > 40)
    }
}
