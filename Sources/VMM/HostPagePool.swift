import EL2
import Synchronization

/// The host kernel's own free pages (outside guest RAM and EL2's carveout): where the VMM takes
/// the pages it donates to EL2 for VM structures, PGDs and memcache top-ups. A bump allocator:
/// a machine runs one guest, and teardown hands everything back at once.
final class HostPagePool: Sendable {
    private let range: Range<PFN>
    private let next: Mutex<PFN>

    init(_ range: Range<PFN>) {
        self.range = range
        next = Mutex(range.lowerBound)
    }

    /// `count` contiguous pages whose first PFN is a multiple of `alignment`, or nil.
    func allocate(count: Int = 1, alignment: Int = 1) -> PFN? {
        next.withLock { next in
            let a = UInt64(alignment)
            let first = PFN((next.rawValue + a - 1) / a * a)
            let end = first.advanced(by: UInt64(count))
            guard end <= range.upperBound else { return nil }
            next = end
            return first
        }
    }

    /// Pages not handed out yet.
    var remaining: Int { next.withLock { Int(range.upperBound.rawValue - $0.rawValue) } }
}
