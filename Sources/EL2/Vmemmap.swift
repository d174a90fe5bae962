/// EL2's array of `HypPage`, one per RAM page: pKVM's `hyp_vmemmap`. Indexed by
/// `PhysicalMemory.pageIndex`, so it costs exactly `MemoryLayout<HypPage>.stride` (8) bytes
/// per RAM page.
///
/// Locking: an entry's state byte, share count and pin refcount change only under the host
/// lock (and the hyp lock for hyp-state changes); the refcount of a page-table page changes
/// only under the lock of the stage-2 that owns the table. Distinct fields are distinct memory
/// locations, so the two never race.
public final class Vmemmap: @unchecked Sendable {
    /// Allocated once, initialised to all-zero (host OWNED, hyp NOPAGE), never resized; freed
    /// in deinit. Indices are checked by `PhysicalMemory.pageIndex` before use.
    private let entries: UnsafeMutablePointer<HypPage>
    public let count: Int

    init(pageCount: Int) {
        count = pageCount
        entries = .allocate(capacity: max(1, pageCount))
        entries.initialize(repeating: HypPage(), count: max(1, pageCount))
    }

    deinit { entries.deallocate() }

    /// Bytes of metadata per page.
    public static var bytesPerPage: Int { MemoryLayout<HypPage>.stride }

    @inline(__always) subscript(index: Int) -> HypPage {
        get { entries[index] }
        set { entries[index] = newValue }
    }

    /// Direct access to one entry for in-place updates.
    @inline(__always) func pointer(_ index: Int) -> UnsafeMutablePointer<HypPage> { entries + index }
}
