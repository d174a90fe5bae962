/// The physical address space EL2 manages: RAM regions backed by real memory that EL2 reads and
/// writes (page tables live inside it, as on hardware), with MMIO gaps between them.
///
/// EL2 never allocates or maps this memory itself: the caller (a test, `pvm model`, the VMM's
/// memfd) supplies the backing, and `owner` keeps it alive as long as this object lives. The
/// regions are laid out back to back in the backing, in address order.
///
/// Soundness of the raw accesses: every pointer handed out comes from `pointer(to:)`, which is
/// only reached with an address `contains(_:)` has accepted, and the initializer checked the
/// backing is large enough for every region; so each access lies inside the backing.
public final class PhysicalMemory: @unchecked Sendable {
    /// RAM, sorted by address, non-overlapping, page aligned.
    public let regions: [MemoryRegion]
    /// Total RAM pages across all regions; also the number of `HypPage` entries EL2 keeps.
    public let pageCount: Int
    /// The lowest RAM address: `pvm model` counts pfns from here.
    public var ramStart: PhysAddr { regions[0].base }

    private let base: UnsafeMutableRawPointer
    private let firstPageIndex: [Int]
    private let singleBase: UInt64
    private let singleSize: UInt64
    private let owner: AnyObject?
    private let clearPage: (@convention(c) (UnsafeMutableRawPointer?) -> Void)?

    /// Why a memory layout was refused.
    public enum LayoutError: Error, Equatable, CustomStringConvertible {
        case noRegions
        case misaligned(MemoryRegion)
        case overlapping(MemoryRegion, MemoryRegion)
        case backingTooSmall(needed: UInt64, given: UInt64)

        public var description: String {
            switch self {
            case .noRegions: "no RAM regions"
            case .misaligned(let r): "RAM region \(r) is not page aligned or is empty"
            case .overlapping(let a, let b): "RAM regions \(a) and \(b) overlap"
            case .backingTooSmall(let n, let g): "backing memory of \(g) bytes is smaller than RAM (\(n) bytes)"
            }
        }
    }

    /// - Parameters:
    ///   - regions: RAM ranges; sorted here.
    ///   - backing: at least the sum of the region sizes, zero-filled by the caller if it wants RAM
    ///     to start zeroed.
    ///   - owner: kept alive with this object (for example the mapping that provides `backing`).
    ///   - clearPage: the backing's fastest way to zero one 4 KiB page (for example non-temporal
    ///     stores); EL2 uses a plain Swift loop when none is given.
    public init(regions: [MemoryRegion], backing: UnsafeMutableRawBufferPointer, owner: AnyObject?,
                clearPage: (@convention(c) (UnsafeMutableRawPointer?) -> Void)? = nil) throws(LayoutError) {
        let sorted = regions.sorted { $0.base < $1.base }
        guard !sorted.isEmpty else { throw .noRegions }
        var total: UInt64 = 0
        var first: [Int] = []
        for (i, r) in sorted.enumerated() {
            guard r.size > 0, r.base.isPageAligned, r.size & (pageSize - 1) == 0,
                r.base.rawValue <= UInt64.max - r.size
            else { throw .misaligned(r) }
            if i > 0, sorted[i - 1].end > r.base { throw .overlapping(sorted[i - 1], r) }
            first.append(Int(total >> pageShift))
            total += r.size
        }
        guard let b = backing.baseAddress, UInt64(backing.count) >= total else {
            throw .backingTooSmall(needed: total, given: UInt64(backing.count))
        }
        self.regions = sorted
        self.firstPageIndex = first
        self.pageCount = Int(total >> pageShift)
        self.base = b
        self.owner = owner
        self.clearPage = clearPage
        self.singleBase = sorted.count == 1 ? sorted[0].base.rawValue : 0
        self.singleSize = sorted.count == 1 ? sorted[0].size : 0
    }

    /// The index of the page holding `pa` among all RAM pages, or nil if `pa` is not RAM.
    @inline(__always) public func pageIndex(_ pa: PhysAddr) -> Int? {
        let off = pa.rawValue &- singleBase
        if off < singleSize { return Int(truncatingIfNeeded: off >> pageShift) }
        return multiRegionPageIndex(pa)
    }

    @inline(never)
    private func multiRegionPageIndex(_ pa: PhysAddr) -> Int? {
        for (i, r) in regions.enumerated() where r.contains(pa) {
            return firstPageIndex[i] + Int((pa.rawValue - r.base.rawValue) >> pageShift)
        }
        return nil
    }

    /// True when `a` and `b` are both RAM in the same region.
    @inline(__always) public func inOneRegion(_ a: PhysAddr, _ b: PhysAddr) -> Bool {
        if singleSize != 0 {
            return a.rawValue &- singleBase < singleSize && b.rawValue &- singleBase < singleSize
        }
        for r in regions where r.contains(a) { return r.contains(b) }
        return false
    }

    /// The physical address of the page with RAM index `index` (inverse of `pageIndex`).
    public func pageAddress(index: Int) -> PhysAddr {
        if singleSize != 0 { return PhysAddr(singleBase + UInt64(index) << pageShift) }
        var i = regions.count - 1
        while firstPageIndex[i] > index { i -= 1 }
        return regions[i].base.advanced(by: UInt64(index - firstPageIndex[i]) << pageShift)
    }

    /// True when `pa` is RAM.
    @inline(__always) public func contains(_ pa: PhysAddr) -> Bool { pageIndex(pa) != nil }

    /// The memory region, or the MMIO gap between regions, that contains `pa`: pKVM's
    /// `find_mem_range`. Used to tell "straddles memory and MMIO" (-EINVAL) from "is MMIO" (-EPERM).
    public func addressRange(containing pa: PhysAddr) -> (range: Range<UInt64>, isMemory: Bool) {
        var low: UInt64 = 0
        for r in regions {
            if pa < r.base { return (low..<r.base.rawValue, false) }
            if r.contains(pa) { return (r.base.rawValue..<r.end.rawValue, true) }
            low = r.end.rawValue
        }
        return (low..<UInt64.max, false)
    }

    /// A pointer to the byte at `pa`, which must be RAM.
    @inline(__always) func pointer(to pa: PhysAddr) -> UnsafeMutableRawPointer {
        guard let index = pageIndex(pa) else { preconditionFailure("EL2 touched non-RAM address \(pa)") }
        return base + (index << Int(pageShift)) + Int(pa.rawValue & (pageSize - 1))
    }

    /// Reads the 64-bit little-endian word at `pa` (8-byte aligned: a descriptor).
    @inline(__always) public func load64(_ pa: PhysAddr) -> UInt64 {
        pointer(to: pa).load(as: UInt64.self)
    }

    /// Writes the 64-bit word at `pa` (8-byte aligned: a descriptor).
    @inline(__always) func store64(_ pa: PhysAddr, _ value: UInt64) {
        pointer(to: pa).storeBytes(of: value, as: UInt64.self)
    }

    /// Zeroes one page, as `hyp_poison_page` does, with the backing's clear-page primitive
    /// when it has one. Writing always beats checking first: reading a page costs most of what
    /// streaming zeros over it does.
    @inline(never) public func zeroPage(_ page: PhysAddr) {
        let p = pointer(to: page)
        if let clearPage { clearPage(p) } else {
            p.initializeMemory(as: UInt64.self, repeating: 0, count: Int(pageSize / 8))
        }
    }

    /// True when every byte of the page is zero.
    @inline(never) public func isZeroPage(_ page: PhysAddr) -> Bool {
        let words = UnsafeRawPointer(pointer(to: page)).assumingMemoryBound(to: UInt64.self)
        var i = 0
        while i < Int(pageSize / 8) {
            // Eight words a step keeps the loop vectorisable while still stopping early.
            var acc: UInt64 = 0
            for j in 0..<8 { acc |= words[i + j] }
            if acc != 0 { return false }
            i += 8
        }
        return true
    }

    /// Copies bytes out of RAM (inspection, tests, the VMM's checked accessor).
    public func read(_ pa: PhysAddr, into buffer: UnsafeMutableRawBufferPointer) {
        forEachChunk(pa, count: buffer.count) { ram, offset, n in
            buffer.baseAddress!.advanced(by: offset).copyMemory(from: ram, byteCount: n)
        }
    }

    /// Copies bytes into RAM.
    public func write(_ pa: PhysAddr, from buffer: UnsafeRawBufferPointer) {
        forEachChunk(pa, count: buffer.count) { ram, offset, n in
            ram.copyMemory(from: buffer.baseAddress!.advanced(by: offset), byteCount: n)
        }
    }

    /// Splits `[pa, pa + count)` at page boundaries (regions need not be contiguous in the
    /// backing) and hands each piece's RAM pointer, offset into the range, and length to `body`.
    private func forEachChunk(_ pa: PhysAddr, count: Int,
                              _ body: (UnsafeMutableRawPointer, Int, Int) -> Void) {
        guard count > 0 else { return }
        precondition(pageIndex(pa) != nil && pageIndex(pa.advanced(by: UInt64(count - 1))) != nil,
                     "access outside RAM")
        var done = 0
        while done < count {
            let here = pa.advanced(by: UInt64(done))
            let n = min(count - done, Int(pageSize - (here.rawValue & (pageSize - 1))))
            body(pointer(to: here), done, n)
            done += n
        }
    }
}
