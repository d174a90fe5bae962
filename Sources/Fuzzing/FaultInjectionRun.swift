import EL2
import ModelScript

/// Fault injection over model scripts: every failure point each line reaches is made to fail
/// in turn (the first `maxHitsPerPoint` hits of each point), and the line that failed must
/// return its error with EL2's whole state (every page's metadata, every stage-2, every IOMMU
/// domain, every byte of RAM) exactly as before it; the invariants must hold after it and at
/// the end of the script.
public struct FaultInjectionRun: Sendable {
    public struct Scenario: Sendable {
        public let name: String
        public let configuration: ModelSession.Configuration
        public let script: String
    }

    public struct Report: Sendable {
        /// Every failure point EL2 has, and those the scenarios reached.
        public var points = FailurePoint.allCases
        public var exercised: Set<FailurePoint> = []
        /// Failures injected; of those, the ones the caller absorbed (the line still succeeded,
        /// as a host teardown that skips a page does), which must keep the invariants only.
        public var injections = 0
        public var absorbed = 0
        public var violations: [String] = []
        public init() {}
    }

    public var maxHitsPerPoint = 32

    public init() {}

    public func run(_ scenarios: [Scenario]) -> Report {
        var report = Report()
        for s in scenarios { run(s, into: &report) }
        return report
    }

    private func run(_ scenario: Scenario, into report: inout Report) {
        let lines = ModelSession.lines(of: scenario.script)
        // A dry run: the hits each line reaches.
        guard let dry = try? ModelSession(scenario.configuration) else {
            report.violations.append("\(scenario.name): the machine could not be built")
            return
        }
        dry.hypervisor.faults.start()
        var hitsBefore: [[FailurePoint: Int]] = []
        for (i, line) in lines.enumerated() {
            hitsBefore.append(dry.hypervisor.faults.hits)
            _ = dry.run(line: line, number: i + 1)
        }
        hitsBefore.append(dry.hypervisor.faults.stop().hits)
        // Every line fails once at each point it reaches (its first hit there), and each point
        // also at its first `maxHitsPerPoint` hits overall.
        var targets: Set<[Int]> = []
        for point in FailurePoint.allCases {
            let total = hitsBefore[lines.count][point, default: 0]
            guard total > 0 else { continue }
            report.exercised.insert(point)
            for hit in 1 ... min(total, maxHitsPerPoint) { targets.insert([FailurePoint.allCases.firstIndex(of: point)!, hit]) }
            for l in 0 ..< lines.count where hitsBefore[l + 1][point, default: 0] > hitsBefore[l][point, default: 0] {
                targets.insert([FailurePoint.allCases.firstIndex(of: point)!, hitsBefore[l][point, default: 0] + 1])
            }
        }
        for t in targets.sorted(by: { $0.lexicographicallyPrecedes($1) }) {
            inject(FailurePoint.allCases[t[0]], t[1], scenario, lines, hitsBefore, into: &report)
        }
    }

    private func inject(_ point: FailurePoint, _ hit: Int, _ scenario: Scenario, _ lines: [String],
                        _ hitsBefore: [[FailurePoint: Int]], into report: inout Report) {
        guard let session = try? ModelSession(scenario.configuration) else { return }
        let hyp = session.hypervisor
        // The line that reaches the hit: the last whose count before it is below `hit`.
        let target = hitsBefore.lastIndex { $0[point, default: 0] < hit } ?? 0
        hyp.faults.start(failing: point, atHit: hit)
        let where_ = "\(scenario.name) line \(target + 1) (\(lines[target])), \(point) hit \(hit)"
        for (i, line) in lines.enumerated() {
            if i == target {
                let before = hyp.snapshot()
                let result = session.run(line: line, number: i + 1)?.text ?? ""
                guard hyp.faults.fired else {
                    report.violations.append("\(where_): the failure point was not reached")
                    return
                }
                report.injections += 1
                let failed = result.hasSuffix("-> \(point.error)") || result.contains("no return")
                    || result.contains("x0=0xfffffffffffffffd")
                // The host's composite operations make several EL2 calls; the ones before the
                // failure stand (as in pKVM's host), so only the invariants are checked.
                let composite = ["vm_create", "vm_teardown", "vm_memcache"].contains { line.hasPrefix($0 + " ") }
                // An MMIO guard range that runs dry after its first page stops there with success.
                let partial = line.hasPrefix("hvc ") && line.contains("GUARD")
                if failed && !composite {
                    if hyp.snapshot() != before {
                        report.violations.append("\(where_): failed with \(result), but EL2's state changed")
                    }
                } else if composite || partial {
                    report.absorbed += 1
                } else {
                    report.violations.append("\(where_): the injected failure was swallowed: \(result)")
                }
                if let v = hyp.checkInvariants(limit: 1).first {
                    report.violations.append("\(where_): after the failure: \(v.message)")
                    return
                }
            } else {
                _ = session.run(line: line, number: i + 1)
            }
        }
        hyp.faults.stop()
        if let v = hyp.checkInvariants(limit: 1).first {
            report.violations.append("\(where_): at the end: \(v.message)")
        }
    }

    /// Scenarios that reach every failure point: the transitions in both IOMMU designs and
    /// both profiles, VM creation and teardown, host faults on RAM and MMIO, the MMIO guard.
    public static let scenarios: [Scenario] = {
        func config(_ iommu: IOMMUMode?, _ profile: PKVMProfile) -> ModelSession.Configuration {
            var c = ModelSession.Configuration()
            c.memory = 8 << 20
            c.iommu = iommu
            c.profile = profile
            return c
        }
        let transitions = """
            vm_create g
            vm_create n nonprotected
            host_donate_guest 16 0x100 g
            host_donate_guest 17 0x40000 g
            host_share_guest 18 0x100 1 n rw
            host_share_guest 18 0x101 1 n
            guest_share_host g 0x100
            host_write 16 0x11
            guest_unshare_host g 0x100
            host_force_reclaim 17
            host_reclaim_guest 0x100 g
            host_share_hyp 20
            hyp_pin 20 1
            hyp_unpin 20 1
            host_unshare_hyp 20
            host_donate_hyp 21 2
            hyp_donate_host 21 2
            host_share_ffa 23 1
            host_unshare_ffa 23 1
            host_access 0x40000
            host_access 0xfffff
            host_unshare_guest 0x101 1 n
            hvc g MEM_SHARE 0x104000
            host_donate_guest 19 0x104 g
            hvc g MEM_SHARE 0x104000
            hvc g MEM_UNSHARE 0x104000
            vm_memcache g 0
            host_donate_guest 24 0x200000 g
            vm_teardown g
            vm_start_teardown n
            vm_reclaim n 0x100
            vm_finalize_teardown n
            """
        let iommu = """
            iommu_domain_alloc 1
            iommu_domain_alloc 2
            iommu_attach 1 1
            iommu_map 1 0x10000 30 4 rw
            iommu_map 2 0x40000000 34 1 rw
            dma_write 1 0x10000 64 0x33
            iommu_unmap 1 0x10000 4
            iommu_domain_free 2
            vm_create g
            iommu_assign 3 g
            host_donate_guest 40 0x300 g
            dma_write 3 0x300000 64 0x44
            vm_teardown g
            """
        let guard_ = """
            vm_create g
            hvc g MMIO_GUARD_ENROLL
            hvc g MMIO_GUARD_MAP 0xd0000000
            hvc g MMIO_RGUARD_MAP 0xd0100000 4
            host_donate_guest 16 0x100 g
            host_donate_guest 17 0x101 g
            hvc g MEM_SHARE 0x100000 2
            hvc g MEM_UNSHARE 0x100000 2
            hvc g MEM_RELINQUISH 0x101000
            vm_teardown g
            """
        return [
            Scenario(name: "transitions (mirror, mainline)", configuration: config(.mirror, .mainline), script: transitions),
            Scenario(name: "transitions (refcount, android)", configuration: config(.refcount, .android), script: transitions),
            Scenario(name: "IOMMU (refcount)", configuration: config(.refcount, .mainline), script: iommu),
            Scenario(name: "MMIO guard and ranges (android)", configuration: config(.mirror, .android), script: guard_),
        ]
    }()
}
