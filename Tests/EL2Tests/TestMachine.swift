import EL2
import Foundation
import HostMemory
import Testing

/// Records what EL2 reports, for assertions.
final class RecordingSink: EL2EventSink, @unchecked Sendable {
    private(set) var invalidations: [TLBInvalidation] = []
    private(set) var warnings: [String] = []
    private let iommuLock = NSLock()
    private var iommuNotes: [IOMMUNotification] = []
    func invalidate(_ request: TLBInvalidation) { invalidations.append(request) }
    func warning(_ message: String) { warnings.append(message) }
    func iommu(_ notification: IOMMUNotification) { iommuLock.withLock { iommuNotes.append(notification) } }
    var iommuNotifications: [IOMMUNotification] { iommuLock.withLock { iommuNotes } }
    func reset() { invalidations.removeAll(); warnings.removeAll(); iommuLock.withLock { iommuNotes.removeAll() } }
}

/// A small machine for tests: RAM at 0x8000_0000 (default 64 MiB), EL2 booted over it,
/// and helpers that check the invariants after every step.
struct TestMachine {
    static let ramBase: UInt64 = 0x8000_0000
    let hyp: Hypervisor
    let sink: RecordingSink
    let backing: AnonymousMemory

    init(megabytes: UInt64 = 64, ipaBits: Int = 40, regions: [MemoryRegion]? = nil, iommu: IOMMUMode? = nil,
         profile: PKVMProfile = .mainline) throws {
        let regions = regions ?? [MemoryRegion(base: PhysAddr(Self.ramBase), size: megabytes << 20)]
        let total = regions.reduce(0) { $0 + $1.size }
        backing = try AnonymousMemory(size: Int(total))
        let memory = try PhysicalMemory(regions: regions, backing: backing.buffer, owner: backing,
                                        clearPage: AnonymousMemory.clearPage)
        sink = RecordingSink()
        hyp = try Hypervisor(memory: memory, ipaBits: ipaBits, iommu: iommu, profile: profile, sink: sink)
    }

    /// The absolute pfn of RAM page `n`.
    func pfn(_ n: UInt64) -> PFN { PFN((Self.ramBase >> 12) + n) }

    func view(_ n: UInt64) -> Hypervisor.PageView { hyp.pageView(pfn(n).address)! }

    /// Expects a sound state.
    func expectSound(sourceLocation: SourceLocation = #_sourceLocation) {
        let v = hyp.checkInvariants()
        #expect(v.isEmpty, "\(v.map(\.message).joined(separator: "\n"))", sourceLocation: sourceLocation)
    }

    /// Creates a VM from host pages taken at RAM page `base` (metadata, PGD) and tops up its
    /// memcache with `memcache` pages after them.
    @discardableResult
    func createVM(protected: Bool, at base: UInt64, memcache: Int = 8, vcpus: Int = 1) throws -> VMHandle {
        let pgdPages = UInt64(hyp.geometry.pgdPages)
        let pgd = (base + 1 + pgdPages - 1) / pgdPages * pgdPages
        let h = try hyp.createVM(protected: protected, vcpus: vcpus, donating: .init(metadata: pfn(base), pgd: pfn(pgd)))
        let first = pgd + pgdPages
        try hyp.topUpMemcache(vm: h, pages: (0..<UInt64(memcache)).map { pfn(first + $0) })
        return h
    }
}

/// Expects `body` to throw exactly `error`.
func expectError(_ error: HypError, sourceLocation: SourceLocation = #_sourceLocation,
                 _ body: () throws(HypError) -> Void) {
    do {
        try body()
        Issue.record("expected \(error), got success", sourceLocation: sourceLocation)
    } catch let e {
        #expect(e == error, sourceLocation: sourceLocation)
    }
}
