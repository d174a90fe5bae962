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

    public let title: String
    public let map: OwnershipMap
    public let categories: [PageCategory]
    public let tables: [Table]

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
        let p = map.pages[i]
        let pfn = map.pfn(at: i)
        var s = "PFN \(hex(pfn.rawValue)) (PA \(hex(pfn.rawValue << pageShift))): \(categories[i].label(map))"
        s += " · owner \(p.owner) · host \(p.host) · hyp \(p.hyp)"
        if let state = p.guestState, let vm = p.guestVM, let gfn = p.gfn { s += " · vm \(vm) gfn \(gfn) \(state)" }
        if p.use != .none { s += " · use \(p.use)" }
        if p.refcount > 0 { s += " · refcount \(p.refcount)" }
        if !p.dmaDomains.isEmpty { s += " · DMA-mapped in " + p.dmaDomains.map { "\($0)" }.joined(separator: ", ") }
        if p.identityDMA { s += " · host devices can DMA (identity domain)" }
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

    /// The most common category of region `r`, and whether it holds more than one.
    func dominant(region r: Int) -> (PageCategory, mixed: Bool) {
        let range = r * Self.regionPages ..< min((r + 1) * Self.regionPages, categories.count)
        var counts: [PageCategory: Int] = [:]
        for i in range { counts[categories[i], default: 0] += 1 }
        // Prefer what the user looks for: a guest or EL2 page in a host region still shows.
        let best = counts.max { a, b in a.value != b.value ? a.value < b.value : "\(a.key)" > "\(b.key)" }!.key
        return (best, counts.count > 1)
    }

    public var regionCount: Int { (categories.count + Self.regionPages - 1) / Self.regionPages }
}
