import EL2
import Synchronization

/// The backend's copy of the guest's stage-2: per guest frame, the output page and rights EL2
/// last wrote. Updated under EL2's guest lock (the sink is called inside it), read by vCPUs
/// under its own lock.
final class ScriptedStage2: EL2EventSink, @unchecked Sendable {
    struct Mapping {
        var output: UInt64
        var permissions: Stage2Permissions
    }

    let vmid = Atomic<UInt16>(0)
    /// Set once in `attach`, before any update.
    var guestSize: UInt64 = 0
    private let frames = Mutex<[UInt64: Mapping]>([:])
    let invalidations = Atomic<Int>(0)

    var wantsStage2Updates: Bool { true }

    func stage2Updated(vmid: VMID, update: Stage2Update, start: IPA, end: IPA) {
        guard vmid != .host, vmid.rawValue == self.vmid.load(ordering: .acquiring) else { return }
        frames.withLock { f in
            var ipa = start.rawValue
            while ipa < end.rawValue {
                switch update {
                case let .map(output, permissions, _, _):
                    f[ipa >> pageShift] = Mapping(output: output.rawValue + (ipa - start.rawValue), permissions: permissions)
                case .clear, .annotate, .annotateDonation, .mapDevice:
                    f[ipa >> pageShift] = nil
                }
                ipa += pageSize
            }
        }
    }

    func invalidate(_ request: TLBInvalidation) { invalidations.add(1, ordering: .relaxed) }

    /// The mapping of the frame holding `gpa`, if the guest's stage-2 has one.
    func mapping(_ gpa: UInt64) -> Mapping? { frames.withLock { $0[gpa >> pageShift] } }
}
