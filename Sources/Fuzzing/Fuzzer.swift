import EL2
import HostMemory
import ModelScript
import Synchronization

/// `pvm fuzz`: random sequences of host calls, guest hypercalls and device DMA against EL2, with
/// the reference model checked after every operation on what it touched, every page and frame
/// compared every `fullCompareInterval` operations, and EL2's own invariant checker every
/// `invariantInterval`. A violation is minimized (`FuzzMinimizer`) and saved as a `pvm model`
/// script.
public struct Fuzzer: Sendable {
    public struct Configuration: Sendable {
        public var operations = 100_000
        public var seed: UInt64 = 1
        public var threads = 1
        public var profile: PKVMProfile = .mainline
        public var iommu: IOMMUMode? = .mirror
        /// RAM of the model machine.
        public var memory: UInt64 = 8 << 20
        public var invariantInterval = 4096
        public var fullCompareInterval = 512
        /// The shape of each thread's world (`FuzzDomain`): pages, guest frames per VM, VMs.
        public var pages = 8, gfns = 8, vms = 3
        /// Memcache pages each VM is created with (nil: `vm_create`'s default).
        public var memcache: Int?
        /// Rewrites the reference model's expectation before it is compared: a mutant model,
        /// for the tests that prove a checker reports what it finds. Nil in every real run.
        public var mutation: (@Sendable (FuzzOperation, ReferenceModel.Expectation) -> ReferenceModel.Expectation)?
        public init() {}

        /// The `pvm model` flags that rebuild this machine.
        public var modelFlags: String {
            "--memory \(memory >> 20)M --iommu-mode \(iommu.map { "\($0)" } ?? "none") --pkvm-abi \(profile)"
        }

        var session: ModelSession.Configuration {
            var c = ModelSession.Configuration()
            c.memory = memory
            c.iommu = iommu
            c.profile = profile
            return c
        }
    }

    /// Something EL2 did that it must not: what, and where.
    public struct Violation: Error, Sendable, CustomStringConvertible {
        /// The thread (0 when single-threaded) and the index of the operation in its run.
        public let thread: Int
        public let index: Int
        public let operation: String
        public let message: String
        public var description: String { "operation \(index) (\(operation)): \(message)" }
    }

    public struct Report: Sendable {
        public var operations = 0
        public var seconds = 0.0
        public var violations: [Violation] = []
        /// Operations EL2 carried out, refused, answered with a replay, and lines that named
        /// nothing.
        public var done = 0, refused = 0, retried = 0, skipped = 0
        public var invariantChecks = 0
        public var operationsPerSecond: Double { seconds > 0 ? Double(operations) / seconds : 0 }
    }

    public let configuration: Configuration

    public init(_ configuration: Configuration) { self.configuration = configuration }

    /// The world of thread `t`.
    public func domain(_ t: Int) -> FuzzDomain {
        var d = FuzzDomain(firstPage: 16 + UInt64(t * configuration.pages), pages: configuration.pages, gfns: configuration.gfns,
                   vmCount: configuration.vms, tag: configuration.threads == 1 ? "" : "t\(t)", guestStream: 3 + UInt32(t))
        d.memcache = configuration.memcache
        return d
    }

    /// A machine with every thread's world set up.
    public func makeMachine() throws -> FuzzMachine {
        let m = try FuzzMachine(configuration.session)
        for t in 0 ..< configuration.threads {
            m.run(FuzzMachine.setup(domain(t), iommu: configuration.iommu, shared: t == 0))
        }
        return m
    }

    func generator(_ t: Int, _ m: FuzzMachine) -> FuzzGenerator {
        let base = m.hyp.memory.ramStart.pfn.rawValue
        return FuzzGenerator(seed: configuration.seed &+ UInt64(t) &* 0x9E37_79B9, domain: domain(t), iommu: configuration.iommu,
                             carveout: m.hyp.carveout.lowerBound.rawValue - base, ramPages: UInt64(m.hyp.memory.pageCount))
    }

    /// The operations thread `t` makes in the first `count` steps: the same for the same seed.
    public func operations(thread t: Int = 0, count: Int, machine: FuzzMachine) -> [FuzzOperation] {
        var g = generator(t, machine)
        return (0 ..< count).map { _ in g.next() }
    }

    /// Runs the fuzz: every thread its own world on one shared EL2. Stops at the first violation.
    public func run(progress: (@Sendable (Int) -> Void)? = nil) throws -> Report {
        let m = try makeMachine()
        let stop = Atomic<Bool>(false)
        let reports = Mutex<[Report]>([])
        let clock = ContinuousClock()
        let start = clock.now
        let perThread = configuration.operations / configuration.threads
        ThreadHandle.forEach(configuration.threads) { t in
            var worker = FuzzWorker(fuzzer: self, thread: t, machine: m)
            let r = worker.run(perThread, stop: stop, progress: t == 0 ? progress : nil)
            reports.withLock { $0.append(r) }
        }
        var total = Report()
        for r in reports.withLock({ $0 }) {
            total.operations += r.operations
            total.violations += r.violations
            total.done += r.done
            total.refused += r.refused
            total.retried += r.retried
            total.skipped += r.skipped
            total.invariantChecks += r.invariantChecks
        }
        let final = m.hyp.checkInvariants()
        total.invariantChecks += 1
        if total.violations.isEmpty, let v = final.first {
            total.violations.append(Violation(thread: -1, index: total.operations, operation: "end of run",
                                              message: "invariant: \(v.message)"))
        }
        let elapsed = clock.now - start
        total.seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        return total
    }

    /// Replays `ops` on a fresh single-threaded machine: the first violation, if any.
    public func replay(_ ops: [FuzzOperation]) -> Violation? {
        guard let m = try? makeMachine() else { return nil }
        var worker = FuzzWorker(fuzzer: self, thread: 0, machine: m)
        for (i, op) in ops.enumerated() {
            if let v = worker.step(op, index: i, forceChecks: i == ops.count - 1) { return v }
        }
        let final = m.hyp.checkInvariants()
        return final.first.map { Violation(thread: 0, index: ops.count, operation: "end", message: "invariant: \($0.message)") }
    }

    /// The `pvm model` script that replays `ops`.
    public func script(_ ops: [FuzzOperation], violation: Violation?) -> String {
        var lines = ["# pvm fuzz seed \(configuration.seed): replay with pvm model THIS-FILE \(configuration.modelFlags)"]
        if let violation { lines.append("# \(violation)") }
        lines.append(FuzzMachine.setup(domain(0), iommu: configuration.iommu, shared: true))
        for op in ops {
            var line = op.scriptLine(domain(0))
            if case .create(0) = op, configuration.iommu != nil { line += "\niommu_assign \(domain(0).guestStream) \(domain(0).vmName(0))" }
            lines.append(line)
        }
        lines.append("check")
        return lines.joined(separator: "\n") + "\n"
    }
}

/// One thread's fuzzing: its generator, its reference model, its counters.
struct FuzzWorker {
    let fuzzer: Fuzzer
    let thread: Int
    let machine: FuzzMachine
    let domain: FuzzDomain
    var generator: FuzzGenerator
    var model: ReferenceModel
    var report = Fuzzer.Report()
    /// This world's VM handles, cached per lifecycle generation.
    let handles = FuzzMachine.Handles()
    /// What the current operation touched; kept between operations so no step allocates.
    var touchedPages: [UInt64] = []
    var touchedFrames: [(Int, UInt64)] = []
    /// What EL2 answered to the last operation.
    var lastOutcome = FuzzMachine.Outcome.skipped
    /// From the configuration, read once (a closure in a struct costs a retain per read).
    let mutation: (@Sendable (FuzzOperation, ReferenceModel.Expectation) -> ReferenceModel.Expectation)?
    let fullCompareInterval: Int, invariantInterval: Int

    init(fuzzer: Fuzzer, thread: Int, machine: FuzzMachine) {
        self.fuzzer = fuzzer
        self.thread = thread
        self.machine = machine
        domain = fuzzer.domain(thread)
        generator = fuzzer.generator(thread, machine)
        model = ReferenceModel(domain: domain, profile: fuzzer.configuration.profile, iommu: fuzzer.configuration.iommu)
        mutation = fuzzer.configuration.mutation
        fullCompareInterval = fuzzer.configuration.fullCompareInterval
        invariantInterval = fuzzer.configuration.invariantInterval
    }

    mutating func run(_ count: Int, stop: borrowing Atomic<Bool>, progress: (@Sendable (Int) -> Void)?) -> Fuzzer.Report {
        for i in 0 ..< count {
            if i & 0x3FF == 0 {
                if stop.load(ordering: .relaxed) { break }
                if i & 0xFFFF == 0 { progress?(i) }
            }
            let op = generator.next()
            if let v = step(op, index: i, forceChecks: false) {
                report.violations.append(v)
                stop.store(true, ordering: .relaxed)
                break
            }
        }
        return report
    }

    /// One operation: expectation, EL2, the model's update, the comparisons.
    mutating func step(_ op: FuzzOperation, index: Int, forceChecks: Bool) -> Fuzzer.Violation? {
        report.operations += 1
        var expectation = model.expect(op)
        if let mutation { expectation = mutation(op, expectation) }
        let outcome = machine.apply(op, domain, handles: handles)
        lastOutcome = outcome
        func violation(_ message: String) -> Fuzzer.Violation {
            Fuzzer.Violation(thread: thread, index: index, operation: op.scriptLine(domain), message: message)
        }
        switch outcome {
        case let .ok(done):
            report.done += 1
            switch expectation {
            case .refused:
                return violation("EL2 carried out an operation the reference model forbids")
            case .allowed, .allowedUnlessOutOfMemory, .retry:
                model.commit(op, done: done)
            case .unchecked:
                break
            }
        case let .error(error):
            report.refused += 1
            if expectation == .allowed || (expectation == .allowedUnlessOutOfMemory && error != .ENOMEM)
                || (expectation == .retry && error != .ENOMEM) {
                return violation("EL2 refused (\(error)) an operation the reference model allows")
            }
        case .retry:
            report.retried += 1
            if expectation == .allowed || expectation == .refused {
                return violation("EL2 asked the host to act and replay; the reference model expected \(expectation)")
            }
        case .skipped:
            report.skipped += 1
        }
        let full = forceChecks || report.operations % fullCompareInterval == 0 || op.isLifecycle
        if full {
            touchedPages = Array(domain.pageRange)
            touchedFrames = (0 ..< domain.vmCount).flatMap { vm in domain.gfnRange.map { (vm, $0) } }
        } else {
            collectTouched(op)
        }
        if let m = compare() { return violation(m) }
        if forceChecks || report.operations % invariantInterval == 0 {
            report.invariantChecks += 1
            if let v = machine.hyp.checkInvariants(limit: 1).first { return violation("invariant: \(v.message)") }
        }
        return nil
    }

    /// The pages and frames an operation can change, by its arguments and the model's entries,
    /// into `touchedPages` and `touchedFrames`.
    mutating func collectTouched(_ op: FuzzOperation) {
        // Moved out and back, so appending never copies a buffer `self` still holds.
        var pages: [UInt64] = [], frames: [(Int, UInt64)] = []
        swap(&pages, &touchedPages)
        swap(&frames, &touchedFrames)
        pages.removeAll(keepingCapacity: true)
        frames.removeAll(keepingCapacity: true)
        defer {
            swap(&pages, &touchedPages)
            swap(&frames, &touchedFrames)
        }
        let model = self.model
        func frame(_ vm: Int, _ g: UInt64, _ n: UInt64 = 1) {
            for k in 0 ..< min(n, UInt64(domain.gfns)) {
                frames.append((vm, g &+ k))
                switch model.entry(vm, g &+ k) {
                case let .owned(p), let .borrowed(p, _): pages.append(p)
                default: break
                }
            }
        }
        func range(_ p: UInt64, _ n: UInt64) { for k in 0 ..< min(n, 4) { pages.append(p &+ k) } }
        switch op {
        case let .shareHyp(p), let .unshareHyp(p), let .forceReclaim(p), let .hostAccess(p), let .hostWrite(p, _):
            pages.append(p)
            if let i = model.index(p), case let .guest(vm, g) = model.pages[i].owner { frames.append((vm, g)) }
        case let .pin(p, n), let .unpin(p, n), let .donateHyp(p, n), let .hypDonateHost(p, n), let .shareFFA(p, n),
             let .unshareFFA(p, n):
            range(p, n)
        case let .shareGuest(p, g, _, vm, _), let .donateGuest(p, g, vm):
            pages.append(p)
            frame(vm, g)
        case let .unshareGuest(g, _, vm), let .guestShare(vm, g), let .guestUnshare(vm, g), let .relinquish(vm, g),
             let .reclaimGuest(g, vm), let .reclaimDying(vm, g):
            frame(vm, g)
        case let .hvc(vm, _, x1, x2, _):
            frame(vm, x1 >> 12, max(x2, 1))
        case let .dmaWrite(stream, iova, _):
            if stream == domain.guestStream { frame(0, iova >> 12) } else if let p = model.page(ofIOVA: iova) { pages.append(p) }
            else { pages.append((iova >> 12) &- ReferenceModel.ramBasePFN) }
        case let .iommuMap(_, p): pages.append(p)
        case let .iommuUnmap(iova): if let p = model.page(ofIOVA: iova) { pages.append(p) }
        case .startTeardown, .finalize, .teardown, .create:
            break
        }
    }

    /// Compares EL2's view with the model's for `touchedPages` and `touchedFrames`.
    func compare() -> String? {
        let hyp = machine.hyp
        for p in touchedPages {
            guard let expected = model.expectedPage(p) else { continue }
            let pa = machine.pfn(p).address
            guard let v = hyp.pageView(pa) else { return "page \(hex(p)) is not RAM" }
            let seen = Hypervisor.PageView(host: v.host, hyp: v.hyp, refcount: v.refcount, shareCount: v.shareCount)
            if seen != expected { return "page \(hex(p)): EL2 says \(seen), the reference model \(expected)" }
            let byte = model.expectedByte(p)!
            var probe = [UInt8](repeating: 0, count: 1)
            for offset: UInt64 in [0, 0x800, 0xFFF] {
                probe.withUnsafeMutableBytes { hyp.memory.read(pa.advanced(by: offset), into: $0) }
                if probe[0] != byte { return "page \(hex(p)) holds \(hex(probe[0])) at \(hex(offset)), expected \(hex(byte))" }
            }
        }
        for (vm, g) in touchedFrames {
            guard domain.gfnRange.contains(g), let expected = model.expectedGuest(vm, g),
                  let h = machine.handle(vm, domain, handles) else { continue }
            guard let view = try? hyp.guestPageView(vm: h, gfn: GFN(g)) else { return "\(domain.vmName(vm)) gfn \(hex(g)): no view" }
            let page = view.phys.map { $0.pfn.rawValue - hyp.memory.ramStart.pfn.rawValue }
            if view.state != expected.state || page != expected.page {
                return "\(domain.vmName(vm)) gfn \(hex(g)): EL2 says \(view), the reference model \(expected.state) page \(expected.page.map { hex($0) } ?? "-")"
            }
        }
        return nil
    }
}

extension FuzzOperation {
    var isLifecycle: Bool {
        switch self {
        case .startTeardown, .finalize, .teardown, .create: true
        default: false
        }
    }
}
