import EL2
import Synchronization

/// Records what EL2 reports during a model session: TLB invalidations, pKVM WARN_ONs and SMMU
/// notifications, until the script asks for them (`tlb`, `warnings`, `iommu_log`).
final class ModelEventLog: EL2EventSink, @unchecked Sendable {
    private let state = Mutex<(tlb: [TLBInvalidation], warnings: [String], iommu: [IOMMUNotification])>(([], [], []))

    func invalidate(_ request: TLBInvalidation) { state.withLock { $0.tlb.append(request) } }
    func warning(_ message: String) { state.withLock { $0.warnings.append(message) } }
    func iommu(_ notification: IOMMUNotification) { state.withLock { $0.iommu.append(notification) } }

    /// Returns and forgets the SMMU notifications recorded so far.
    func takeIOMMUNotifications() -> [IOMMUNotification] {
        state.withLock { s in defer { s.iommu.removeAll() }; return s.iommu }
    }

    /// Returns and forgets the invalidations recorded so far.
    func takeInvalidations() -> [TLBInvalidation] {
        state.withLock { s in defer { s.tlb.removeAll() }; return s.tlb }
    }

    /// Returns and forgets the warnings recorded so far.
    func takeWarnings() -> [String] {
        state.withLock { s in defer { s.warnings.removeAll() }; return s.warnings }
    }
}
