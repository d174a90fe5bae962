import EL2
import HostMemory
import Synchronization
import VMM

/// The KVM backend's half of "EL2 is the source of truth": an `EL2EventSink` that mirrors every
/// update of the guest's stage-2 into the real MMU by changing the protection of the guest view
/// (the KVM memslot). A page the guest has not been given is PROT_NONE, so the guest's access
/// exits (KVM_EXIT_MMIO with the exact GPA, EFAULT, or an emulation failure for a fetch) and
/// becomes a stage-2 abort for EL2. mprotect fires KVM's MMU notifiers, which zap the EPT /
/// shadow entries: that is the TLB invalidation.
///
/// It also keeps a bitmap of the guest frames it mapped, so the fault decoder can tell which
/// of the pages an instruction touches is the one missing (what HPFAR_EL2 would say on arm64).
///
/// Called with EL2's locks held, so updates reach the MMU in EL2's order. It never calls back
/// into EL2.
final class StageTwoMirror: EL2EventSink, @unchecked Sendable {
    private let guestView: SharedMemoryFile.View
    private let ramBase: UInt64
    private let guestSize: UInt64
    /// The guest's VMID, 0 until `attach`. One guest per machine.
    private let guestVMID = Atomic<UInt16>(0)
    private let failure = Mutex<String?>(nil)
    /// One bit per guest frame: mapped in the guest view. Written under EL2's guest lock (the
    /// sink runs inside it), read by the faulting vCPU without it: a stale bit only makes the
    /// decoder pick another candidate page, and the next run corrects it.
    private let mapped: UnsafeMutablePointer<UInt64>
    private let words: Int

    init(guestView: SharedMemoryFile.View, ramBase: UInt64, guestSize: UInt64) {
        self.guestView = guestView
        self.ramBase = ramBase
        self.guestSize = guestSize
        words = Int((guestSize >> pageShift + 63) / 64)
        mapped = .allocate(capacity: words)
        mapped.initialize(repeating: 0, count: words)
    }

    deinit { mapped.deallocate() }

    /// The guest view's first byte: the KVM memslot's userspace address.
    var guestViewBase: UnsafeMutableRawPointer { guestView.buffer.baseAddress! }

    /// Starts mirroring the stage-2 of `vmid` into the guest view.
    func attach(guest vmid: VMID) { guestVMID.store(vmid.rawValue, ordering: .releasing) }

    /// The first mprotect failure, if any (for example ENOMEM past vm.max_map_count).
    var firstFailure: String? { failure.withLock { $0 } }

    /// Whether the guest view maps `gpa` (any access).
    func isMapped(_ gpa: UInt64) -> Bool {
        guard gpa < guestSize else { return false }
        let frame = Int(gpa >> pageShift)
        return mapped[frame / 64] & (1 << UInt64(frame % 64)) != 0
    }

    var wantsStage2Updates: Bool { true }

    func stage2Updated(vmid: VMID, update: Stage2Update, start: IPA, end: IPA) {
        guard vmid != .host, vmid.rawValue == guestVMID.load(ordering: .acquiring) else { return }
        let lo = start.rawValue, hi = min(end.rawValue, guestSize)
        guard lo < hi else { return }
        let access: SharedMemoryFile.Access
        switch update {
        case .clear, .annotate, .annotateDonation, .mapDevice: access = .none
        case let .map(output, permissions, _, _):
            // The memslot maps IPA x to memfd offset x: only a linear mapping can be mirrored.
            if output.rawValue != ramBase + lo {
                fail("guest IPA \(hex(lo)) maps \(output), not the memslot's \(hex(ramBase + lo))")
                return
            }
            access = permissions.contains(.write) ? .readWrite : (permissions.contains(.read) ? .read : .none)
        }
        do {
            try SharedMemoryFile.protect(guestView, start: Int(lo), count: Int(hi - lo), access: access)
        } catch {
            fail(error.description)
        }
        for frame in Int(lo >> pageShift) ..< Int((hi + pageSize - 1) >> pageShift) {
            let bit: UInt64 = 1 << UInt64(frame % 64)
            if access == .none { mapped[frame / 64] &= ~bit } else { mapped[frame / 64] |= bit }
        }
    }

    func invalidate(_ request: TLBInvalidation) {
        // mprotect already made KVM zap its EPT entries (MMU notifiers); nothing else in this
        // backend caches translations.
    }

    private func fail(_ message: String) {
        failure.withLock { if $0 == nil { $0 = message } }
    }
}
