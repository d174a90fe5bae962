import EL2
import Synchronization

/// Records what EL2 reports during a model session: TLB invalidations, pKVM WARN_ONs and SMMU
/// notifications, block splits and merges, until the script asks for them (`tlb`, `warnings`,
/// `iommu_log`, `blocks`). Each list
/// keeps at most `limit` records; later ones are counted, not kept, so a long session (or a
/// fuzz run) cannot grow it without bound.
final class ModelEventLog: EL2EventSink, @unchecked Sendable {
    static let limit = 4096

    struct Kept<T> {
        var records: [T] = []
        var dropped = 0

        mutating func add(_ r: T) {
            if records.count < ModelEventLog.limit { records.append(r) } else { dropped += 1 }
        }

        mutating func take() -> (records: [T], dropped: Int) {
            defer { self = Kept() }
            return (records, dropped)
        }
    }

    private let state = Mutex<(tlb: Kept<TLBInvalidation>, warnings: Kept<String>, iommu: Kept<IOMMUNotification>,
                               restructures: Kept<Stage2Restructure>)>((Kept(), Kept(), Kept(), Kept()))

    func invalidate(_ request: TLBInvalidation) { state.withLock { $0.tlb.add(request) } }
    func warning(_ message: String) { state.withLock { $0.warnings.add(message) } }
    func iommu(_ notification: IOMMUNotification) { state.withLock { $0.iommu.add(notification) } }
    func stage2Restructured(_ event: Stage2Restructure) { state.withLock { $0.restructures.add(event) } }

    /// Returns and forgets the splits and merges recorded so far, and how many were not kept.
    func takeRestructures() -> (records: [Stage2Restructure], dropped: Int) { state.withLock { $0.restructures.take() } }

    /// Returns and forgets the SMMU notifications recorded so far, and how many were not kept.
    func takeIOMMUNotifications() -> (records: [IOMMUNotification], dropped: Int) { state.withLock { $0.iommu.take() } }

    /// Returns and forgets the invalidations recorded so far, and how many were not kept.
    func takeInvalidations() -> (records: [TLBInvalidation], dropped: Int) { state.withLock { $0.tlb.take() } }

    /// Returns and forgets the warnings recorded so far, and how many were not kept.
    func takeWarnings() -> (records: [String], dropped: Int) { state.withLock { $0.warnings.take() } }
}
