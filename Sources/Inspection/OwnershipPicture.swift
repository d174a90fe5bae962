import EL2

/// Renders an `InspectionSnapshot` as a self-contained SVG image: a title, the legend on top,
/// then one cell per page (or per 2 MiB region), coloured by owner and state, with a dot on every
/// page an SMMU domain other than the host's identity domain maps, row labels in physical
/// addresses and a tooltip on every cell. Long runs of identical rows fold into one labelled
/// band, so a mostly-host machine stays a screen tall; highlighted pages get a red frame and a
/// line of their own in the header. A region cell shows its mix: one bar per kind of page it
/// holds, as wide as its share (at least a pixel), so a guest or EL2 page in a host region shows.
public struct OwnershipPicture: Sendable {
    public enum Granularity: String, Sendable, CaseIterable {
        case page, region
    }

    /// Above this many pages, `auto` draws regions (a 256 MiB machine still gets page cells).
    public static let pageCellLimit = 65536

    public let snapshot: InspectionSnapshot
    public let granularity: Granularity
    /// Cells a row, and a cell's size in pixels.
    let columns: Int
    let cell: Int

    /// `granularity` nil chooses: pages up to `pageCellLimit`, regions above.
    public init(_ snapshot: InspectionSnapshot, granularity: Granularity? = nil, columns: Int = 64, cell: Int = 9) {
        self.snapshot = snapshot
        self.granularity = granularity ?? (snapshot.categories.count <= Self.pageCellLimit ? .page : .region)
        self.columns = columns
        self.cell = cell
    }

    /// Cells a picture holds: pages, or 2 MiB regions.
    public var cellCount: Int { granularity == .page ? snapshot.categories.count : snapshot.regionCount }

    static let labelWidth = 96
    /// Rows of identical cells longer than this fold into a band.
    static let foldAfter = 3
    static let bandHeight = 14
    /// Monospace 11 px: about 6.7 px a character.
    static let charWidth = 6.7

    /// A row of the grid, or a band standing for folded rows.
    enum Line {
        case cells(row: Int)
        case band(rows: Range<Int>, category: PageCategory)
    }

    /// `standalone` adds the XML declaration; `chrome` false leaves out the title, subtitle and
    /// legend (the HTML page draws its own).
    public func svg(standalone: Bool = true, chrome: Bool = true) -> String {
        let map = snapshot.map
        let legend = PageCategory.present(in: snapshot.categories, map)
        let width = Self.labelWidth + columns * cell + 8
        let textColumns = Int(Double(width - 8) / Self.charWidth)
        let highlights = snapshot.highlightIndices
        var header: [(text: String, marked: Bool)] = []
        var legendRows = 0
        if chrome {
            let unit = granularity == .page ? "4 KiB page" : "2 MiB region"
            var sub = "\(snapshot.categories.count) pages (\(snapshot.categories.count >> 8) MiB) in "
            sub += map.regions.map { "\($0)" }.joined(separator: ", ")
            sub += "; one cell per \(unit), \(columns) cells a row; dot: mapped by an SMMU domain"
            if granularity == .region { sub += "; a cell's bars show the mix of pages in its region" }
            sub += "; runs of identical rows are folded"
            header = wrap(sub, columns: textColumns).map { ($0, false) }
            for h in highlights {
                header += wrap("marked: PFN \(hex(map.pfn(at: h.index).rawValue)): \(h.reason)", columns: textColumns).map { ($0, true) }
            }
            legendRows = (legend.count + 1 + 2) / 3
        }
        let headerHeight = chrome ? 22 + header.count * 14 + legendRows * 16 + 8 : 4
        let marked = Set(highlights.map(\.index))
        let lines = layout(highlighted: marked)
        let gridHeight = lines.reduce(0) { h, line in
            if case .band = line { return h + Self.bandHeight }
            return h + cell
        }
        let height = headerHeight + gridHeight + 8
        var o = ""
        o.reserveCapacity(cellCount * (granularity == .page ? 160 : 260))
        if standalone { o += "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n" }
        o += "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(width)\" height=\"\(height)\" viewBox=\"0 0 \(width) \(height)\" "
        o += "font-family=\"monospace\" font-size=\"11\" class=\"ownership \(granularity.rawValue)s\">\n"
        if chrome { o += "<title>\(xmlEscaped(snapshot.title))</title>\n" }
        o += "<style>\n" + Self.css(legend) + "</style>\n"
        if chrome {
            o += "<text x=\"4\" y=\"14\" font-weight=\"bold\">\(xmlEscaped(snapshot.title))</text>\n"
            for (n, line) in header.enumerated() {
                let cls = line.marked ? " class=\"marked\"" : ""
                o += "<text x=\"4\" y=\"\(30 + n * 14)\"\(cls)>\(xmlEscaped(line.text))</text>\n"
            }
            var ly = 30 + header.count * 14 + 4
            for (k, c) in (legend.map(Optional.some) + [nil]).enumerated() {
                let x = 4 + (k % 3) * 220
                if k > 0 && k % 3 == 0 { ly += 16 }
                if let c {
                    o += "<rect class=\"\(c.cssClass)\" x=\"\(x)\" y=\"\(ly - 9)\" width=\"10\" height=\"10\"/>"
                    o += "<text x=\"\(x + 14)\" y=\"\(ly)\">\(xmlEscaped(c.label(map)))</text>\n"
                } else {
                    o += "<circle class=\"dma key\" cx=\"\(x + 5)\" cy=\"\(ly - 4)\" r=\"2\"/>"
                    o += "<text x=\"\(x + 14)\" y=\"\(ly)\">mapped by an SMMU domain</text>\n"
                }
            }
        }
        o += "<g class=\"grid\" transform=\"translate(\(Self.labelWidth),\(headerHeight))\">\n"
        var y = 0
        var labelled = -4
        for line in lines {
            switch line {
            case let .cells(row):
                if row - labelled >= 4 || row == 0 {
                    let pa = map.pfn(at: row * columns * pagesPerCell).rawValue << pageShift
                    o += "<text class=\"addr\" x=\"-4\" y=\"\(y + cell - 1)\" text-anchor=\"end\">\(hex(pa))</text>\n"
                    labelled = row
                }
                for i in row * columns ..< min((row + 1) * columns, cellCount) {
                    drawCell(i, x: (i % columns) * cell, y: y, marked: marked, into: &o)
                }
                y += cell
            case let .band(rows, category):
                let first = rows.lowerBound * columns * pagesPerCell
                let last = min(rows.upperBound * columns * pagesPerCell, map.pages.count)
                let start = map.pfn(at: first).rawValue << pageShift
                let text = "\u{22EE} \(last - first) pages [\(hex(start)), \(hex(start + UInt64(last - first) << pageShift))) folded: all \(category.label(map))"
                o += "<g class=\"fold\" data-first=\"\(first)\" data-pages=\"\(last - first)\"><rect class=\"band \(category.cssClass)\" x=\"0\" y=\"\(y + 1)\" width=\"\(columns * cell - 1)\" "
                o += "height=\"\(Self.bandHeight - 3)\"/><text x=\"4\" y=\"\(y + Self.bandHeight - 4)\">\(xmlEscaped(text))</text></g>\n"
                y += Self.bandHeight
                labelled = -4
            }
        }
        o += "</g>\n</svg>\n"
        return o
    }

    private var pagesPerCell: Int { granularity == .page ? 1 : InspectionSnapshot.regionPages }

    /// The grid's lines: rows, with runs of more than `foldAfter` identical rows after the
    /// first folded into a band. A row is foldable when every cell is the same plain category
    /// (one kind of page, no DMA dot, not highlighted, not a mixed region).
    func layout(highlighted: Set<Int>) -> [Line] {
        let rows = (cellCount + columns - 1) / columns
        func uniform(_ row: Int) -> PageCategory? {
            let cells = row * columns ..< min((row + 1) * columns, cellCount)
            guard cells.count == columns else { return nil }
            let map = snapshot.map
            if granularity == .page {
                let c = snapshot.categories[cells.lowerBound]
                for i in cells where snapshot.categories[i] != c || !map.pages[i].dmaDomains.isEmpty || highlighted.contains(i) {
                    return nil
                }
                return c
            }
            let pages = cells.lowerBound * pagesPerCell ..< min(cells.upperBound * pagesPerCell, map.pages.count)
            let c = snapshot.categories[pages.lowerBound]
            for i in pages where snapshot.categories[i] != c || !map.pages[i].dmaDomains.isEmpty || highlighted.contains(i) {
                return nil
            }
            return c
        }
        var lines: [Line] = []
        var row = 0
        while row < rows {
            guard let c = uniform(row) else {
                lines.append(.cells(row: row))
                row += 1
                continue
            }
            var end = row + 1
            while end < rows, uniform(end) == c { end += 1 }
            lines.append(.cells(row: row))
            if end - row - 1 > Self.foldAfter {
                lines.append(.band(rows: row + 1 ..< end, category: c))
            } else {
                for r in row + 1 ..< end { lines.append(.cells(row: r)) }
            }
            row = end
        }
        return lines
    }

    private func drawCell(_ i: Int, x: Int, y: Int, marked markedPages: Set<Int>, into o: inout String) {
        let map = snapshot.map
        let side = cell - 1
        if granularity == .page {
            let c = snapshot.categories[i]
            let marked = markedPages.contains(i)
            o += "<rect class=\"page \(c.cssClass)\(marked ? " marked" : "")\" data-page=\"\(i)\" x=\"\(x)\" y=\"\(y)\" width=\"\(side)\" height=\"\(side)\">"
            o += "<title>\(xmlEscaped(snapshot.describe(page: i)))</title></rect>\n"
            if !map.pages[i].dmaDomains.isEmpty { o += dot(x, y) }
            return
        }
        let pages = i * pagesPerCell ..< min((i + 1) * pagesPerCell, map.pages.count)
        let mix = snapshot.mix(region: i)
        let marked = markedPages.contains { pages.contains($0) }
        o += "<g class=\"region\(mix.count > 1 ? " mixed" : "")\(marked ? " marked" : "")\" data-region=\"\(i)\">"
        o += "<title>\(xmlEscaped(snapshot.describe(region: i)))</title>"
        // Bars: each kind at least 1 px; the largest takes what is left.
        var widths = mix.map { max(1, side * $0.count / pages.count) }
        if let big = mix.indices.max(by: { mix[$0].count < mix[$1].count }) {
            widths[big] = max(1, widths[big] + side - widths.reduce(0, +))
        }
        var bx = x
        for (k, part) in mix.enumerated() where bx < x + side {
            let w = min(widths[k], x + side - bx)
            o += "<rect class=\"\(part.category.cssClass)\" x=\"\(bx)\" y=\"\(y)\" width=\"\(w)\" height=\"\(side)\"/>"
            bx += w
        }
        o += "<rect class=\"frame\" x=\"\(x)\" y=\"\(y)\" width=\"\(side)\" height=\"\(side)\"/></g>\n"
        if pages.contains(where: { !map.pages[$0].dmaDomains.isEmpty }) { o += dot(x, y) }
    }

    private func dot(_ x: Int, _ y: Int) -> String {
        "<circle class=\"dma\" cx=\"\(x + cell / 2)\" cy=\"\(y + cell / 2)\" r=\"\(max(2, cell / 5))\"/>\n"
    }

    /// Greedy word wrap at `columns` characters.
    private func wrap(_ text: String, columns: Int) -> [String] {
        var lines: [String] = [], line = ""
        for word in text.split(separator: " ") {
            if !line.isEmpty, line.count + 1 + word.count > columns {
                lines.append(line)
                line = "  "
            }
            line += (line.isEmpty || line == "  " ? "" : " ") + word
        }
        if !line.isEmpty { lines.append(line) }
        return lines
    }

    /// The categories' fills, for SVG shapes and (as backgrounds) for HTML swatches.
    static func css(_ categories: [PageCategory]) -> String {
        var o = ".addr{fill:#555}.dma{fill:#111;pointer-events:none}text.marked{fill:#c00;font-weight:bold}\n"
        o += "rect.frame{fill:none;stroke:none}g.mixed rect.frame{stroke:#222;stroke-width:0.6}\n"
        o += "rect.page.marked,g.marked rect.frame{stroke:#e00;stroke-width:2.5}\n"
        o += "rect.page:hover,g.region:hover rect.frame{stroke:#000;stroke-width:2}\n"
        o += "g.fold text{fill:#333;font-size:10px}rect.band{opacity:0.55}\n"
        for c in categories { o += ".\(c.cssClass){fill:\(c.colour)}span.\(c.cssClass){background:\(c.colour)}\n" }
        return o
    }
}
