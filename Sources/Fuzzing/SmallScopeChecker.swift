import EL2
import ModelScript

/// `pvm check`: exhaustive small-scope checking. From a tiny world (by default 3 pages, 2 VMs,
/// 2 guest frames each, the host's device stream and one assigned to the protected VM) it takes
/// every operation of a fixed alphabet (`alphabet`) from every state reached, breadth first, up
/// to a depth, and in every state compares EL2 with the reference model and runs EL2's full
/// invariant checker. States are deduplicated by the reference model's abstract state
/// (`ReferenceModel.State`), so every distinct ownership configuration reachable in `depth`
/// operations is visited once, however many orders reach it.
///
/// EL2 has no undo, so a state is entered by replaying its path on a fresh machine. From there
/// every operation EL2 refuses leaves the machine where it was, and the next one runs on it;
/// an operation that changed the abstract state sends the checker back to a fresh replay. An
/// operation EL2 carried out without changing the abstract state (a host access that only maps
/// a page) stays on the machine and joins the path, so every recorded path replays exactly.
public struct SmallScopeChecker: Sendable {
    public struct Configuration: Sendable {
        public var depth = 3
        public var profile: PKVMProfile = .mainline
        public var iommu: IOMMUMode? = .mirror
        public var pages = 3, gfns = 2, vms = 2
        /// Stop (and say so) after this many states.
        public var maxStates = 1_000_000
        /// A mutant reference model (`Fuzzer.Configuration.mutation`), for tests only.
        public var mutation: (@Sendable (FuzzOperation, ReferenceModel.Expectation) -> ReferenceModel.Expectation)?
        public init() {}

        /// The fuzzer configuration of the same world.
        public var fuzzer: Fuzzer.Configuration {
            var c = Fuzzer.Configuration()
            c.profile = profile
            c.iommu = iommu
            c.memory = 1 << 20
            c.pages = pages
            c.gfns = gfns
            c.vms = vms
            // Enough for the guest stage-2 tables of a few frames (and MMIO guard notes).
            c.memcache = 8
            c.fullCompareInterval = 1
            c.invariantInterval = .max
            c.mutation = mutation
            return c
        }
    }

    public struct Report: Sendable {
        /// Distinct abstract states reached (the initial one included), per depth.
        public var statesPerDepth: [Int] = []
        public var states: Int { statesPerDepth.reduce(0, +) }
        /// Operations applied from a state (replays not counted), and replays of a path.
        public var transitions = 0
        public var replays = 0
        public var invariantChecks = 0
        public var seconds = 0.0
        /// The state limit stopped the search before the depth.
        public var truncated = false
        /// The first violation and the operations that lead to it.
        public var counterexample: (operations: [FuzzOperation], violation: Fuzzer.Violation)?
        public var statesPerSecond: Double { seconds > 0 ? Double(states) / seconds : 0 }
    }

    public let configuration: Configuration
    public let fuzzer: Fuzzer

    public init(_ configuration: Configuration) {
        self.configuration = configuration
        fuzzer = Fuzzer(configuration.fuzzer)
    }

    /// Every operation the checker tries from each state: each host call on each page (and on
    /// EL2's carveout and the first page past RAM, which EL2 must always refuse), two-page and
    /// empty ranges, each guest call on each VM's frames, each hypercall the reference model
    /// rules on, VM lifecycle, device writes through both streams, and the paging domain's
    /// map / unmap in the refcount design.
    public func alphabet(carveout: UInt64, ramPages: UInt64) -> [FuzzOperation] {
        let d = fuzzer.domain(0)
        let pages = Array(d.pageRange), edges = [carveout, ramPages]
        let byte: UInt8 = 0xA5
        var ops: [FuzzOperation] = []
        for p in pages + edges {
            ops += [.shareHyp(p), .unshareHyp(p), .pin(p, 1), .unpin(p, 1), .donateHyp(p, 1), .hypDonateHost(p, 1),
                    .shareFFA(p, 1), .unshareFFA(p, 1), .forceReclaim(p), .hostAccess(p), .hostWrite(p, byte)]
        }
        let first = d.firstPage
        ops += [.pin(first, 2), .unpin(first, 2), .donateHyp(first, 2), .hypDonateHost(first, 2), .shareFFA(first, 2),
                .unshareFFA(first, 2), .donateHyp(first, 0), .hypDonateHost(first, 0), .pin(first, 0)]
        for vm in 0 ..< d.vmCount {
            for g in d.gfnRange {
                for p in pages { ops += [.shareGuest(pfn: p, gfn: g, pages: 1, vm: vm, prot: .rw), .donateGuest(pfn: p, gfn: g, vm: vm)] }
                ops += [.shareGuest(pfn: first, gfn: g, pages: 1, vm: vm, prot: .read),
                        .unshareGuest(gfn: g, pages: 1, vm: vm), .guestShare(vm: vm, gfn: g), .guestUnshare(vm: vm, gfn: g),
                        .relinquish(vm: vm, gfn: g), .reclaimGuest(gfn: g, vm: vm), .reclaimDying(vm: vm, gfn: g)]
                for f in [SMCCCFunction.memShare, .memUnshare, .memRelinquish, .mmioGuardMap] {
                    ops.append(.hvc(vm: vm, function: f, x1: g << 12, x2: 0, x3: 0))
                }
            }
            let g0 = d.firstGFN << 12
            ops += [.hvc(vm: vm, function: .memShare, x1: g0, x2: 2, x3: 0), .hvc(vm: vm, function: .memUnshare, x1: g0, x2: 2, x3: 0),
                    .hvc(vm: vm, function: .mmioGuardEnroll, x1: 0, x2: 0, x3: 0),
                    .startTeardown(vm), .finalize(vm), .teardown(vm), .create(vm)]
        }
        if configuration.iommu != nil {
            for g in d.gfnRange { ops.append(.dmaWrite(stream: d.guestStream, iova: g << 12, byte: byte)) }
        }
        for p in pages {
            switch configuration.iommu {
            case .refcount:
                ops += [.dmaWrite(stream: FuzzDomain.hostStream, iova: FuzzDomain.iova(page: p), byte: byte),
                        .iommuMap(iova: FuzzDomain.iova(page: p), pfn: p), .iommuUnmap(iova: FuzzDomain.iova(page: p))]
            case .mirror:
                ops.append(.dmaWrite(stream: FuzzDomain.hostStream, iova: (ReferenceModel.ramBasePFN + p) << 12, byte: byte))
            case nil:
                break
            }
        }
        return ops
    }

    /// A state to expand: how to get there, and what the model says it is.
    struct Node {
        var path: [FuzzOperation]
        var state: ReferenceModel.State
    }

    /// Explores every state up to `configuration.depth`; stops at the first violation.
    /// `progress` gets the depth being expanded and the states found so far.
    public func run(progress: ((Int, Int) -> Void)? = nil) throws -> Report {
        let clock = ContinuousClock()
        let start = clock.now
        var report = Report()
        try explore(&report, progress: progress)
        let t = (clock.now - start).components
        report.seconds = Double(t.seconds) + Double(t.attoseconds) / 1e18
        return report
    }

    private func explore(_ report: inout Report, progress: ((Int, Int) -> Void)?) throws {
        let worker = try fresh(&report)
        let alphabet = alphabet(carveout: worker.machine.hyp.carveout.lowerBound.rawValue - worker.machine.hyp.memory.ramStart.pfn.rawValue,
                                ramPages: UInt64(worker.machine.hyp.memory.pageCount))
        var visited: Set<ReferenceModel.State> = [worker.model.state]
        var frontier = [Node(path: [], state: worker.model.state)]
        report.statesPerDepth = [1]
        report.invariantChecks += 1
        if let v = worker.machine.hyp.checkInvariants(limit: 1).first {
            report.counterexample = ([], Fuzzer.Violation(thread: 0, index: 0, operation: "setup", message: "invariant: \(v.message)"))
            return
        }
        for depth in 0 ..< configuration.depth {
            var next: [Node] = []
            progress?(depth, visited.count)
            for node in frontier {
                var current: FuzzWorker?
                // `history` replays the machine's state (what EL2 carried out); `applied` is
                // everything it was given, refusals too, for an exact counterexample.
                var history: [FuzzOperation] = [], applied: [FuzzOperation] = []
                for op in alphabet {
                    if current == nil {
                        do {
                            current = try enter(node, &report)
                        } catch let replay as Replay {
                            report.counterexample = (replay.operations, replay.violation)
                            return
                        }
                        history = node.path
                        applied = node.path
                    }
                    report.transitions += 1
                    applied.append(op)
                    if let v = current!.step(op, index: applied.count - 1, forceChecks: false) {
                        report.counterexample = (applied, v)
                        return
                    }
                    guard case .ok = current!.lastOutcome else { continue }
                    report.invariantChecks += 1
                    if let v = current!.machine.hyp.checkInvariants(limit: 1).first {
                        report.counterexample = (applied, violation(op, applied.count - 1, "invariant: \(v.message)"))
                        return
                    }
                    let state = current!.model.state
                    guard state != node.state else {
                        history.append(op)
                        continue
                    }
                    if visited.insert(state).inserted {
                        next.append(Node(path: history + [op], state: state))
                        if visited.count >= configuration.maxStates {
                            report.statesPerDepth.append(next.count)
                            report.truncated = true
                            return
                        }
                    }
                    current = nil
                }
            }
            guard !next.isEmpty else { break }
            report.statesPerDepth.append(next.count)
            frontier = next
        }
    }

    func violation(_ op: FuzzOperation, _ index: Int, _ message: String) -> Fuzzer.Violation {
        Fuzzer.Violation(thread: 0, index: index, operation: op.scriptLine(fuzzer.domain(0)), message: message)
    }

    /// A fresh machine with the world set up.
    func fresh(_ report: inout Report) throws -> FuzzWorker {
        report.replays += 1
        let m = try fuzzer.makeMachine()
        return FuzzWorker(fuzzer: fuzzer, thread: 0, machine: m)
    }

    /// A fresh machine that has replayed `node.path`, checked on the way.
    func enter(_ node: Node, _ report: inout Report) throws -> FuzzWorker {
        var w = try fresh(&report)
        for (i, op) in node.path.enumerated() {
            if let v = w.step(op, index: i, forceChecks: false) {
                throw Replay(violation: v, operations: Array(node.path[...i]))
            }
        }
        guard w.model.state == node.state else {
            throw Replay(violation: violation(node.path.last!, node.path.count - 1, "replaying the path reached another state"),
                         operations: node.path)
        }
        return w
    }

    /// A path that replayed differently from the first time: EL2 is not deterministic.
    public struct Replay: Error, CustomStringConvertible {
        public let violation: Fuzzer.Violation
        public let operations: [FuzzOperation]
        public var description: String { "replay: \(violation)" }
    }
}
