import EL2

/// Everything a picture shows, captured from EL2 at one moment: the ownership of every page
/// and every stage-2 table, with a title saying where it came from.
public struct InspectionSnapshot: Sendable {
    /// One stage-2 table's entries.
    public struct Table: Sendable {
        /// "host stage-2", "vm 0x1000 stage-2 (vmid 1, protected)".
        public let name: String
        public let geometry: Stage2Geometry
        public let root: PhysAddr
        public let entries: [Stage2Entry]
    }

    /// A page the pictures mark, and why ("the faulting page", "--highlight").
    public struct Highlight: Sendable, Equatable {
        public let pfn: PFN
        public let reason: String
        public init(pfn: PFN, reason: String) {
            self.pfn = pfn
            self.reason = reason
        }
    }

    public let title: String
    public let map: OwnershipMap
    public let categories: [PageCategory]
    public let tables: [Table]
    /// Pages to mark, in the order given. Pages outside RAM are dropped by `highlightIndices`.
    public var highlights: [Highlight] = []
    /// Per page: the size of the host stage-2 leaf that maps it (0: not mapped, an
    /// annotation or nothing), and of the guest stage-2 leaf that maps it to its owner's IPA.
    let hostBlock: [UInt64]
    let guestBlock: [UInt64]

    /// Captures `hypervisor` now. Safe while guests run: each piece is read under EL2's locks.
    public init(_ hypervisor: Hypervisor, title: String) {
        self.title = title
        let map = hypervisor.ownershipMap()
        self.map = map
        categories = map.pages.map { PageCategory($0, in: map) }
        let host = hypervisor.hostStage2Entries()
        var tables = [Table(name: "host stage-2", geometry: host.geometry, root: host.root, entries: host.entries)]
        for vm in map.vms {
            guard let g = try? hypervisor.guestStage2Entries(vm: vm.handle) else { continue }
            let kind = vm.isProtected ? "protected" : "non-protected"
            tables.append(Table(name: "vm \(vm.handle) stage-2 (vmid \(vm.vmid.rawValue), \(kind)\(vm.isDying ? ", dying" : ""))",
                                geometry: g.geometry, root: g.root, entries: g.entries))
        }
        self.tables = tables
        (hostBlock, guestBlock) = Self.blockSizes(tables, map)
    }

    /// The index of `pfn` among the map's pages, nil outside RAM.
    public func index(of pfn: PFN) -> Int? {
        var offset = 0
        for r in map.regions {
            let first = r.base.rawValue >> pageShift
            if pfn.rawValue >= first, pfn.rawValue < first + r.pageCount { return offset + Int(pfn.rawValue - first) }
            offset += Int(r.pageCount)
        }
        return nil
    }

    /// The pages every guest frame `gfn` is backed by (one per VM that maps it).
    public func pages(gfn: GFN) -> [PFN] {
        map.pages.indices.filter { map.pages[$0].gfn == gfn }.map { map.pfn(at: $0) }
    }

    /// Highlighted page indices with their reasons, merged per page.
    public var highlightIndices: [(index: Int, reason: String)] {
        var out: [(index: Int, reason: String)] = []
        for h in highlights {
            guard let i = index(of: h.pfn) else { continue }
            if let k = out.firstIndex(where: { $0.index == i }) { out[k].reason += "; " + h.reason } else { out.append((i, h.reason)) }
        }
        return out
    }

    /// Leaf sizes per page from the tables' entries: the host stage-2 maps PA = IPA; a guest
    /// stage-2 leaf's output address says which pages it covers.
    private static func blockSizes(_ tables: [Table], _ map: OwnershipMap) -> ([UInt64], [UInt64]) {
        var host = [UInt64](repeating: 0, count: map.pages.count)
        var guest = host
        var starts: [(first: UInt64, count: UInt64, offset: Int)] = []
        var offset = 0
        for r in map.regions {
            starts.append((r.base.rawValue >> pageShift, r.pageCount, offset))
            offset += Int(r.pageCount)
        }
        func mark(_ array: inout [UInt64], pa: UInt64, size: UInt64) {
            let firstPFN = pa >> pageShift, pages = size >> pageShift
            for s in starts {
                let lo = max(firstPFN, s.first), hi = min(firstPFN + pages, s.first + s.count)
                if lo < hi { for p in lo ..< hi { array[s.offset + Int(p - s.first)] = size } }
            }
        }
        for (n, t) in tables.enumerated() {
            for e in t.entries where e.descriptor.isLeaf(level: e.level) {
                if n == 0 { mark(&host, pa: e.ipa, size: e.size) } else {
                    mark(&guest, pa: e.descriptor.outputAddress(level: e.level).rawValue, size: e.size)
                }
            }
        }
        return (host, guest)
    }

    /// "4 KiB page", "2 MiB block", "1 GiB block".
    static func leafName(_ size: UInt64) -> String {
        size >= 1 << 30 ? "\(size >> 30) GiB block" : size >= 1 << 20 ? "\(size >> 20) MiB block" : "\(size >> 10) KiB page"
    }

    /// Pages per 2 MiB region cell.
    public static let regionPages = 512

    /// Runs of consecutive pages in the same category: (first index, count, category).
    public var runs: [(first: Int, count: Int, category: PageCategory)] {
        var out: [(first: Int, count: Int, category: PageCategory)] = []
        for (i, c) in categories.enumerated() {
            if let last = out.last, last.category == c, last.first + last.count == i,
               map.pfn(at: i).rawValue == map.pfn(at: last.first).rawValue + UInt64(last.count) {
                out[out.count - 1].count += 1
            } else {
                out.append((i, 1, c))
            }
        }
        return out
    }

    /// One line per page for tooltips: "PFN 0x80010 (PA 0x80010000): vm 0x1000 gfn 0x10 · guest OWNED · host NOPAGE · hyp NOPAGE".
    func describe(page i: Int) -> String {
        let pfn = map.pfn(at: i)
        return "PFN \(hex(pfn.rawValue)) (PA \(hex(pfn.rawValue << pageShift))): " + details(page: i)
    }

    /// Everything about page `i` but its address: category, owner, every side's state, use,
    /// refcount, SMMU domains, and the stage-2 leaves that map it.
    func details(page i: Int) -> String {
        let p = map.pages[i]
        var s = categories[i].label(map)
        s += " · owner \(p.owner) · host \(p.host) · hyp \(p.hyp)"
        if let state = p.guestState, let vm = p.guestVM, let gfn = p.gfn { s += " · vm \(vm) gfn \(gfn) \(state)" }
        if p.use != .none { s += " · use \(p.use)" }
        if p.refcount > 0 { s += " · refcount \(p.refcount)" }
        if !p.dmaDomains.isEmpty { s += " · DMA-mapped in " + p.dmaDomains.map { "\($0)" }.joined(separator: ", ") }
        if p.identityDMA { s += " · host devices can DMA (identity domain)" }
        s += " · host stage-2: " + (hostBlock[i] == 0 ? "not mapped" : Self.leafName(hostBlock[i]))
        if guestBlock[i] != 0 { s += " · guest stage-2: " + Self.leafName(guestBlock[i]) }
        return s
    }

    /// A short description of a 2 MiB region's pages, by category.
    func describe(region r: Int) -> String {
        let range = r * Self.regionPages ..< min((r + 1) * Self.regionPages, categories.count)
        var counts: [PageCategory: Int] = [:]
        var dma = 0
        for i in range {
            counts[categories[i], default: 0] += 1
            if !map.pages[i].dmaDomains.isEmpty { dma += 1 }
        }
        let start = map.pfn(at: range.lowerBound).rawValue << pageShift
        let parts = PageCategory.present(in: Array(counts.keys), map).map { "\(counts[$0]!) \($0.label(map))" }
        return "[\(hex(start)), +2 MiB): " + parts.joined(separator: ", ") + (dma > 0 ? "; \(dma) DMA-mapped" : "")
    }

    /// The kinds of page region `r` holds, with their counts, in legend order.
    func mix(region r: Int) -> [(category: PageCategory, count: Int)] {
        let range = r * Self.regionPages ..< min((r + 1) * Self.regionPages, categories.count)
        var counts: [PageCategory: Int] = [:]
        for i in range { counts[categories[i], default: 0] += 1 }
        return PageCategory.present(in: Array(counts.keys), map).map { ($0, counts[$0]!) }
    }

    public var regionCount: Int { (categories.count + Self.regionPages - 1) / Self.regionPages }
}
