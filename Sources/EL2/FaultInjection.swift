import Synchronization

/// The points where an EL2 call can fail after its checks began: each is where the call finds
/// out whether a pool has the pages it needs. pvm checks every resource before it commits, so
/// these are the only places a transition that passed its state checks can still fail, and
/// each must then leave everything as it was.
public enum FailurePoint: String, CaseIterable, Sendable, CustomStringConvertible {
    /// A guest stage-2 map needs table pages from the VM's memcache (`__guest_check_pgtable_memcache`).
    case guestMemcache = "guest-memcache"
    /// A host stage-2 change needs table pages from EL2's host pool (`host_stage2_try`).
    case hostPool = "host-pool"
    /// An IOMMU paging-domain map needs table pages from the SMMU's reserve.
    case iommuTables = "iommu-tables"
    /// VM creation needs a free VM-table slot.
    case vmTable = "vm-table"
    /// A paging domain needs one of the SMMU's PGD slots.
    case pagingDomainPGD = "paging-domain-pgd"
    /// An MMIO guard note needs table pages from the VM's memcache.
    case mmioGuardTables = "mmio-guard-tables"

    /// What the call returns when the point fails.
    public var error: HypError { .ENOMEM }

    public var description: String { rawValue }
}

/// Fault injection for EL2 (the LPC "utilizing fault injection to increase test coverage"
/// idea): counts how often each failure point is reached, and can make the Nth hit of one point
/// fail as if its pool were empty. Off by default, when each point costs one relaxed load.
public final class FaultInjection: @unchecked Sendable {
    private let enabled = Atomic<Bool>(false)
    private struct State {
        var hits: [FailurePoint: Int] = [:]
        var armed: (point: FailurePoint, hit: Int)?
        var fired = false
    }
    private let state = Mutex(State())

    init() {}

    /// Starts counting hits (and failing the armed one, if any).
    public func start(failing point: FailurePoint? = nil, atHit hit: Int = 1) {
        state.withLock { s in
            s = State()
            if let point { s.armed = (point, hit) }
        }
        enabled.store(true, ordering: .releasing)
    }

    /// Stops; returns how often each point was reached and whether the armed failure fired.
    @discardableResult
    public func stop() -> (hits: [FailurePoint: Int], fired: Bool) {
        enabled.store(false, ordering: .releasing)
        return state.withLock { ($0.hits, $0.fired) }
    }

    /// Hits so far.
    public var hits: [FailurePoint: Int] { state.withLock { $0.hits } }
    /// Whether the armed failure has fired.
    public var fired: Bool { state.withLock { $0.fired } }

    /// A failure point: throws its error when it is the armed one's Nth hit.
    @inline(__always)
    func check(_ point: FailurePoint) throws(HypError) {
        guard enabled.load(ordering: .relaxed) else { return }
        try count(point)
    }

    @inline(never)
    private func count(_ point: FailurePoint) throws(HypError) {
        let fail = state.withLock { s -> Bool in
            let n = s.hits[point, default: 0] + 1
            s.hits[point] = n
            guard let armed = s.armed, armed.point == point, armed.hit == n else { return false }
            s.fired = true
            return true
        }
        if fail { throw point.error }
    }
}
