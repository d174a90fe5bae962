import EL2
import HostMemory
import Synchronization
import Tracing

/// The machine's `EL2EventSink`: what the host side does with EL2's events, before the backend
/// gets its share.
///
/// - Every stage-2 update, TLB invalidation, IOMMU notification and warning goes to the trace.
/// - The **host view** (the VMM's window on guest memory, used only through `HostAccessor`)
///   follows the host stage-2: a page annotated for a guest or for EL2 is PROT_NONE, so a VMM
///   bug that bypasses the EL2-checked accessor crashes loudly instead of leaking guest memory.
///   An unmapped but host-owned page stays accessible: pKVM maps it on the host's first touch
///   (host_stage2_idmap).
/// - The backend's own sink (KVM: the guest view) then sees every event.
///
/// Called with EL2's locks held, so updates reach the MMU in EL2's order; it never calls back
/// into EL2.
final class MachineEventSink: EL2EventSink, @unchecked Sendable {
    private let hostView: SharedMemoryFile.View
    private let ramBase: UInt64
    private let trace: EventTrace?
    private let backend: (any EL2EventSink)?
    private let backendWantsUpdates: Bool
    private let failed = Mutex<String?>(nil)
    let tlbInvalidations = Atomic<Int>(0)
    /// Guest stage-2 splits and merges (`stage2Restructured`).
    let splits = Atomic<Int>(0)
    let merges = Atomic<Int>(0)

    init(hostView: SharedMemoryFile.View, ramBase: UInt64, trace: EventTrace?, backend: (any EL2EventSink)?) {
        self.hostView = hostView
        self.ramBase = ramBase
        self.trace = trace
        self.backend = backend
        backendWantsUpdates = backend?.wantsStage2Updates ?? false
    }

    /// The first mprotect failure of the host view, if any.
    var failure: String? { failed.withLock { $0 } }

    var wantsStage2Updates: Bool { true }

    func stage2Updated(vmid: VMID, update: Stage2Update, start: IPA, end: IPA) {
        trace?.record(.stage2(vmid: vmid.rawValue, update: update, start: start.rawValue, end: end.rawValue))
        if vmid == .host { mirrorHost(update, start: start.rawValue, end: end.rawValue) }
        if backendWantsUpdates { backend?.stage2Updated(vmid: vmid, update: update, start: start, end: end) }
    }

    /// Host IPA = PA. Only RAM is mirrored; the MMIO identity map has no view.
    private func mirrorHost(_ update: Stage2Update, start: UInt64, end: UInt64) {
        let lo = max(start, ramBase), hi = min(end, ramBase + UInt64(hostView.buffer.count))
        guard lo < hi else { return }
        let access: SharedMemoryFile.Access
        switch update {
        case .clear: access = .readWrite
        case .annotate, .annotateDonation: access = .none
        case let .map(_, permissions, _, _): access = permissions.contains(.write) ? .readWrite : .read
        case .mapDevice: return
        }
        do {
            try SharedMemoryFile.protect(hostView, start: Int(lo - ramBase), count: Int(hi - lo), access: access)
        } catch {
            failed.withLock { if $0 == nil { $0 = error.description } }
        }
    }

    func invalidate(_ request: TLBInvalidation) {
        tlbInvalidations.add(1, ordering: .relaxed)
        trace?.record(.tlbi(vmid: request.vmid.rawValue, start: request.start.rawValue, size: request.size))
        backend?.invalidate(request)
    }

    func warning(_ message: String) {
        trace?.record(.warning("EL2: " + message))
        backend?.warning(message)
    }

    func stage2Restructured(_ event: Stage2Restructure) {
        if event.kind == .split { splits.add(1, ordering: .relaxed) } else { merges.add(1, ordering: .relaxed) }
        trace?.record(.restructure(event))
    }

    func iommu(_ notification: IOMMUNotification) {
        trace?.record(.iommu(notification))
        backend?.iommu(notification)
    }
}
