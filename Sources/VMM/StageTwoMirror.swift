import EL2
import Tracing
import HostMemory
import Synchronization

/// The KVM backend's half of "EL2 is the source of truth": an `EL2EventSink` that mirrors every
/// stage-2 update into the real MMU by changing the protection of the memfd views.
///
/// - The **guest view** (the KVM memslot) follows the guest's stage-2: a page the guest has not
///   been given is PROT_NONE, so the guest's access exits (KVM_EXIT_MMIO with the exact GPA,
///   or an emulation failure for a fetch) and becomes an EL2 stage-2 abort.
/// - The **host view** (what the VMM's device code reads) follows the host stage-2: a page
///   annotated for a guest or EL2 is PROT_NONE, so a VMM bug that bypasses the EL2-checked
///   accessor crashes loudly instead of leaking guest memory. An unmapped but host-owned page
///   stays accessible: pKVM maps it on the host's first touch (host_stage2_idmap).
///
/// Called with EL2's locks held, so updates reach the MMU in EL2's order. mprotect is the only
/// work done; it never calls back into EL2.
final class StageTwoMirror: EL2EventSink, @unchecked Sendable {
    private let hostView: SharedMemoryFile.View
    private let guestView: SharedMemoryFile.View
    private let ramBase: UInt64
    private let guestSize: UInt64
    /// The guest's VMID, 0 until `attach`. One guest per machine.
    private let guestVMID = Atomic<UInt16>(0)
    private let failure = Mutex<String?>(nil)
    let trace: EventTrace?
    let tlbInvalidations = Atomic<Int>(0)

    init(hostView: SharedMemoryFile.View, guestView: SharedMemoryFile.View, ramBase: UInt64, guestSize: UInt64,
         trace: EventTrace?) {
        self.hostView = hostView
        self.guestView = guestView
        self.ramBase = ramBase
        self.guestSize = guestSize
        self.trace = trace
    }

    /// The guest view's first byte: the KVM memslot's userspace address.
    var guestViewBase: UnsafeMutableRawPointer { guestView.buffer.baseAddress! }

    /// Starts mirroring the stage-2 of `vmid` into the guest view.
    func attach(guest vmid: VMID) { guestVMID.store(vmid.rawValue, ordering: .releasing) }

    /// The first mprotect failure, if any (for example ENOMEM past vm.max_map_count). The
    /// machine checks it after each EL2 call and stops: the MMU no longer matches EL2.
    var firstFailure: String? { failure.withLock { $0 } }

    var wantsStage2Updates: Bool { true }

    func stage2Updated(vmid: VMID, update: Stage2Update, start: IPA, end: IPA) {
        trace?.record(.stage2(vmid: vmid.rawValue, update: update, start: start.rawValue, end: end.rawValue))
        if vmid == .host {
            // Host IPA = PA. Only RAM is mirrored; the MMIO identity map has no view.
            guard case let lo = max(start.rawValue, ramBase), case let hi = min(end.rawValue, ramBase + UInt64(hostView.buffer.count)),
                  lo < hi else { return }
            let access: SharedMemoryFile.Access
            switch update {
            case .clear: access = .readWrite
            case .annotate: access = .none
            case let .map(_, permissions, _, _): access = permissions.contains(.write) ? .readWrite : .read
            case .mapDevice: return
            }
            protect(hostView, start: lo - ramBase, end: hi - ramBase, access)
        } else if vmid.rawValue == guestVMID.load(ordering: .acquiring) {
            let lo = start.rawValue, hi = min(end.rawValue, guestSize)
            guard lo < hi else { return }
            let access: SharedMemoryFile.Access
            switch update {
            case .clear, .annotate, .mapDevice: access = .none
            case let .map(output, permissions, _, _):
                // The memslot maps IPA x to memfd offset x: only a linear mapping can be mirrored.
                if output.rawValue != ramBase + lo {
                    fail("guest IPA \(hex(lo)) maps \(output), not the memslot's \(hex(ramBase + lo))")
                    return
                }
                access = permissions.contains(.write) ? .readWrite : (permissions.contains(.read) ? .read : .none)
            }
            protect(guestView, start: lo, end: hi, access)
        }
    }

    func invalidate(_ request: TLBInvalidation) {
        // mprotect already made KVM zap its EPT entries (MMU notifiers); nothing else caches
        // translations, so the invalidation is counted and traced.
        tlbInvalidations.add(1, ordering: .relaxed)
        trace?.record(.tlbi(vmid: request.vmid.rawValue, start: request.start.rawValue, size: request.size))
    }

    func warning(_ message: String) {
        trace?.record(.warning("EL2: " + message))
    }

    func iommu(_ notification: IOMMUNotification) {
        trace?.record(.iommu(notification))
    }

    private func protect(_ view: SharedMemoryFile.View, start: UInt64, end: UInt64, _ access: SharedMemoryFile.Access) {
        do {
            try SharedMemoryFile.protect(view, start: Int(start), count: Int(end - start), access: access)
        } catch {
            fail(error.description)
        }
    }

    private func fail(_ message: String) {
        failure.withLock { if $0 == nil { $0 = message } }
    }
}
