import EL2
import Synchronization

/// Records what EL2 reports during a model session: TLB invalidations and pKVM WARN_ONs, until
/// the script asks for them (`tlb`, `warnings`).
final class ModelEventLog: EL2EventSink, @unchecked Sendable {
    private let state = Mutex<(tlb: [TLBInvalidation], warnings: [String])>(([], []))

    func invalidate(_ request: TLBInvalidation) { state.withLock { $0.tlb.append(request) } }
    func warning(_ message: String) { state.withLock { $0.warnings.append(message) } }

    /// Returns and forgets the invalidations recorded so far.
    func takeInvalidations() -> [TLBInvalidation] {
        state.withLock { s in defer { s.tlb.removeAll() }; return s.tlb }
    }

    /// Returns and forgets the warnings recorded so far.
    func takeWarnings() -> [String] {
        state.withLock { s in defer { s.warnings.removeAll() }; return s.warnings }
    }
}
