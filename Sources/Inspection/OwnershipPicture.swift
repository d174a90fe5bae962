import EL2

/// Renders an `InspectionSnapshot` as a self-contained SVG image: one cell per page (or per
/// 2 MiB region), coloured by owner and state, with a dot on every page an SMMU domain other
/// than the host's identity domain maps, row labels in physical addresses, a tooltip on every
/// cell and a legend.
public struct OwnershipPicture: Sendable {
    public enum Granularity: String, Sendable, CaseIterable {
        case page, region
    }

    /// Above this many pages, `auto` draws regions (a 256 MiB machine still gets page cells).
    public static let pageCellLimit = 65536

    public let snapshot: InspectionSnapshot
    public let granularity: Granularity

    /// `granularity` nil chooses: pages up to `pageCellLimit`, regions above.
    public init(_ snapshot: InspectionSnapshot, granularity: Granularity? = nil) {
        self.snapshot = snapshot
        self.granularity = granularity ?? (snapshot.categories.count <= Self.pageCellLimit ? .page : .region)
    }

    /// Cells a picture holds: pages, or 2 MiB regions.
    public var cellCount: Int { granularity == .page ? snapshot.categories.count : snapshot.regionCount }

    static let columns = 64
    static let cell = 9
    static let labelWidth = 96
    static let header = 46

    public func svg(standalone: Bool = true) -> String {
        let map = snapshot.map
        let rows = (cellCount + Self.columns - 1) / Self.columns
        let gridHeight = rows * Self.cell
        let legend = PageCategory.present(in: snapshot.categories, map)
        let legendRows = (legend.count + 1 + 2) / 3
        let width = Self.labelWidth + Self.columns * Self.cell + 8
        let height = Self.header + gridHeight + 16 + legendRows * 16 + 8
        var o = ""
        o.reserveCapacity(cellCount * (granularity == .page ? 160 : 200))
        if standalone { o += "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n" }
        o += "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(width)\" height=\"\(height)\" viewBox=\"0 0 \(width) \(height)\" "
        o += "font-family=\"monospace\" font-size=\"11\" class=\"ownership \(granularity.rawValue)s\">\n"
        o += "<title>\(xmlEscaped(snapshot.title))</title>\n"
        o += "<style>\n" + Self.css(legend) + "</style>\n"
        let unit = granularity == .page ? "4 KiB page" : "2 MiB region"
        o += "<text x=\"4\" y=\"14\" font-weight=\"bold\">\(xmlEscaped(snapshot.title))</text>\n"
        o += "<text x=\"4\" y=\"30\">\(snapshot.categories.count) pages (\(snapshot.categories.count >> 8) MiB) in "
        o += "\(map.regions.map { "\($0)" }.joined(separator: ", ")); one cell per \(unit), \(Self.columns) cells a row; "
        o += "dot: mapped by an SMMU domain</text>\n"
        o += "<g transform=\"translate(\(Self.labelWidth),\(Self.header))\">\n"
        let pagesPerCell = granularity == .page ? 1 : InspectionSnapshot.regionPages
        for row in 0 ..< rows {
            if row % 4 == 0 {
                let pa = map.pfn(at: row * Self.columns * pagesPerCell).rawValue << pageShift
                o += "<text class=\"addr\" x=\"-4\" y=\"\(row * Self.cell + 8)\" text-anchor=\"end\">\(hex(pa))</text>\n"
            }
        }
        for i in 0 ..< cellCount {
            let x = (i % Self.columns) * Self.cell, y = (i / Self.columns) * Self.cell
            if granularity == .page {
                let c = snapshot.categories[i]
                o += "<rect class=\"page \(c.cssClass)\" x=\"\(x)\" y=\"\(y)\" width=\"\(Self.cell - 1)\" height=\"\(Self.cell - 1)\">"
                o += "<title>\(xmlEscaped(snapshot.describe(page: i)))</title></rect>\n"
                if !map.pages[i].dmaDomains.isEmpty { o += dot(x, y) }
            } else {
                let (c, mixed) = snapshot.dominant(region: i)
                o += "<rect class=\"region \(c.cssClass)\(mixed ? " mixed" : "")\" data-region=\"\(i)\" x=\"\(x)\" y=\"\(y)\" "
                o += "width=\"\(Self.cell - 1)\" height=\"\(Self.cell - 1)\"><title>\(xmlEscaped(snapshot.describe(region: i)))</title></rect>\n"
                let pages = i * pagesPerCell ..< min((i + 1) * pagesPerCell, map.pages.count)
                if pages.contains(where: { !map.pages[$0].dmaDomains.isEmpty }) { o += dot(x, y) }
            }
        }
        o += "</g>\n"
        var ly = Self.header + gridHeight + 16
        for (k, c) in legend.enumerated() {
            let x = 4 + (k % 3) * 220
            if k > 0 && k % 3 == 0 { ly += 16 }
            o += "<rect class=\"\(c.cssClass)\" x=\"\(x)\" y=\"\(ly - 9)\" width=\"10\" height=\"10\"/>"
            o += "<text x=\"\(x + 14)\" y=\"\(ly)\">\(xmlEscaped(c.label(map)))</text>\n"
        }
        o += "</svg>\n"
        return o
    }

    private func dot(_ x: Int, _ y: Int) -> String {
        "<circle class=\"dma\" cx=\"\(x + 4)\" cy=\"\(y + 4)\" r=\"2\"/>\n"
    }

    static func css(_ categories: [PageCategory]) -> String {
        var o = ".addr{fill:#555}.mixed{stroke:#222;stroke-width:1}.dma{fill:#111;pointer-events:none}\n"
        o += "rect.page:hover,rect.region:hover{stroke:#000;stroke-width:2}\n"
        for c in categories { o += ".\(c.cssClass){fill:\(c.colour)}\n" }
        return o
    }
}
