/// A LIFO list of free pages EL2 may use for page tables: pKVM's `struct kvm_hyp_memcache`
/// (the per-VM memcache the host tops up) and the hyp page pools, linked through the pages
/// themselves (the first 8 bytes of each free page hold the next page's address), so a pool
/// costs no memory outside the pages it holds.
public struct PagePool: Sendable {
    private static let end = UInt64.max
    private var head = PagePool.end
    /// Pages in the pool.
    public private(set) var count = 0

    public init() {}

    public var isEmpty: Bool { count == 0 }

    /// Pushes a free page; writes the link into it.
    @inline(__always) mutating func push(_ page: PhysAddr, memory: PhysicalMemory) {
        memory.store64(page, head)
        head = page.rawValue
        count += 1
    }

    /// Pops a page and clears its link word, or returns nil when empty. The rest of the page is
    /// as it was pushed.
    @inline(__always) mutating func pop(memory: PhysicalMemory) -> PhysAddr? {
        guard head != Self.end else { return nil }
        let page = PhysAddr(head)
        head = memory.load64(page)
        memory.store64(page, 0)
        count -= 1
        return page
    }

    /// The pages, most recent first (inspection and invariant checks; not for hot paths).
    func pages(memory: PhysicalMemory) -> [PhysAddr] {
        var out: [PhysAddr] = []
        var p = head
        while p != Self.end {
            out.append(PhysAddr(p))
            p = memory.load64(PhysAddr(p))
        }
        return out
    }
}
