import EL2

/// Renders an `InspectionSnapshot` as one self-contained HTML page (no network, no external
/// file): the machine, a search box for a PFN or a GFN, the marked pages, the legend, an
/// overview with one cell per 2 MiB region (bars showing each region's mix), a zoomed view with
/// one cell per page of the region you click, the runs of pages by owner, and every stage-2
/// table as a tree of levels. Every page's tooltip (and the line under the zoomed view when you
/// find or click one) says everything the SVG's does. The page is also well-formed XML, so
/// tools can parse it.
public struct OwnershipPage: Sendable {
    public let snapshot: InspectionSnapshot

    public init(_ snapshot: InspectionSnapshot) { self.snapshot = snapshot }

    public func html() -> String {
        let map = snapshot.map
        let legend = PageCategory.present(in: snapshot.categories, map)
        var o = "<!DOCTYPE html>\n<html xmlns=\"http://www.w3.org/1999/xhtml\" lang=\"en\">\n<head>\n<meta charset=\"utf-8\"/>\n"
        o += "<title>\(xmlEscaped(snapshot.title))</title>\n<style>\n" + Self.style + OwnershipPicture.css(legend) + "</style>\n</head>\n<body>\n"
        o += "<h1>\(xmlEscaped(snapshot.title))</h1>\n<p>"
        o += "\(map.pages.count) pages (\(map.pages.count >> 8) MiB) of RAM in \(xmlEscaped(map.regions.map { "\($0)" }.joined(separator: ", "))); "
        o += "EL2 carveout PFN [\(hex(map.carveout.lowerBound.rawValue)), \(hex(map.carveout.upperBound.rawValue))); "
        o += "SMMU: \(map.iommuMode.map { "\($0)" } ?? "none"); VMs: "
        o += map.vms.isEmpty ? "none" : xmlEscaped(map.vms.map { "\($0.handle) (vmid \($0.vmid.rawValue)\($0.isProtected ? ", protected" : ""))" }.joined(separator: ", "))
        o += "</p>\n<form id=\"find\" class=\"find\"><label>Find a page: <input id=\"query\" type=\"search\" size=\"22\" "
        o += "placeholder=\"PFN 0x80010, PA 0x80010000 or gfn 0x10\"/></label> <button type=\"submit\">Find</button> "
        o += "<span id=\"found\" class=\"hint\"></span></form>\n"
        let marks = snapshot.highlightIndices
        if !marks.isEmpty {
            o += "<ul id=\"marked\" class=\"marked\">\n"
            for m in marks {
                let pfn = map.pfn(at: m.index).rawValue
                o += "<li><a href=\"#zoom-title\" data-page=\"\(m.index)\">PFN \(hex(pfn))</a>: \(xmlEscaped(m.reason)) "
                o += "<span class=\"hint\">(\(xmlEscaped(snapshot.details(page: m.index))))</span></li>\n"
            }
            o += "</ul>\n"
        }
        o += "<div class=\"legend\">"
        for c in legend {
            o += "<span><span class=\"swatch \(c.cssClass)\"></span>\(xmlEscaped(c.label(map)))</span>\n"
        }
        o += "<span><span class=\"swatch dot\"></span>mapped by an SMMU domain</span></div>\n"
        o += "<h2>Overview: one cell per 2 MiB region</h2>\n<p class=\"hint\">Click a region to see its pages below. "
        o += "A region holding several kinds of page shows a bar for each, as wide as its share (at least a pixel), "
        o += "and a dark border. Runs of identical rows are folded into a band.</p>\n<div id=\"overview\">\n"
        o += OwnershipPicture(snapshot, granularity: .region, columns: 32, cell: 16).svg(standalone: false, chrome: false)
        o += "</div>\n<h2 id=\"zoom-title\">Pages</h2>\n<p id=\"zoom-info\" class=\"hint\">Hover a page for its owner and states; click it to keep them here.</p>\n"
        o += "<div id=\"zoom\"></div>\n"
        o += "<h2>Runs of pages</h2>\n<table class=\"runs\"><tr><th>physical range</th><th>pages</th><th>owner and state</th></tr>\n"
        let runs = snapshot.runs
        for run in runs.prefix(2000) {
            let start = map.pfn(at: run.first).rawValue << pageShift
            o += "<tr><td>[\(hex(start)), \(hex(start + UInt64(run.count) << pageShift)))</td><td>\(run.count)</td>"
            o += "<td><span class=\"swatch \(run.category.cssClass)\"></span>\(xmlEscaped(run.category.label(map)))</td></tr>\n"
        }
        if runs.count > 2000 { o += "<tr><td colspan=\"3\">… \(runs.count - 2000) more runs</td></tr>\n" }
        o += "</table>\n<h2>Stage-2 tables</h2>\n"
        for t in snapshot.tables { o += Stage2Tree.html(t) }
        o += "<script>//<![CDATA[\n" + data(legend) + Self.script + "//]]></script>\n</body>\n</html>\n"
        return o
    }

    /// The data the page's script draws from: a category code and a DMA mark per page, the
    /// regions, the legend's labels, every page's details as runs of identical text (a
    /// dictionary of distinct texts and `[first, count, text]` triples), and the marked pages.
    private func data(_ legend: [PageCategory]) -> String {
        let map = snapshot.map
        var o = "const PVM={cats:\""
        o += String(snapshot.categories.map(\.code))
        o += "\",dma:\""
        o += String(map.pages.map { $0.dmaDomains.isEmpty ? "." : "d" })
        o += "\",regions:["
        o += map.regions.map { "[\($0.base.rawValue >> pageShift),\($0.pageCount)]" }.joined(separator: ",")
        o += "],labels:{"
        o += legend.map { "\"\($0.code)\":\(JSONString.quote($0.label(map)))" }.joined(separator: ",")
        o += "},regionPages:\(InspectionSnapshot.regionPages),"
        var texts: [String: Int] = [:], dictionary: [String] = [], runs: [Int] = []
        var gfns: [String] = []
        for i in map.pages.indices {
            let text = snapshot.details(page: i)
            let id: Int
            if let known = texts[text] { id = known } else {
                id = dictionary.count
                texts[text] = id
                dictionary.append(text)
            }
            if runs.count >= 3, runs[runs.count - 1] == id, runs[runs.count - 3] + runs[runs.count - 2] == i {
                runs[runs.count - 2] += 1
            } else {
                runs += [i, 1, id]
            }
            if let gfn = map.pages[i].gfn { gfns.append("[\(gfn.rawValue),\(i)]") }
        }
        o += "details:[" + dictionary.map(JSONString.quote).joined(separator: ",") + "],"
        o += "runs:[" + runs.map(String.init).joined(separator: ",") + "],"
        o += "gfns:[" + gfns.joined(separator: ",") + "],"
        o += "marked:[" + snapshot.highlightIndices.map { "[\($0.index),\(JSONString.quote($0.reason))]" }.joined(separator: ",") + "]};\n"
        return o
    }

    static let style = """
        body{font-family:system-ui,sans-serif;margin:16px;color:#222}
        h1{font-size:18px}h2{font-size:15px;margin-top:22px}
        .hint{color:#666;font-size:12px}
        .legend>span{display:inline-block;margin:2px 12px 2px 0;font-size:12px}
        form.find{margin:8px 0}ul.marked{font-size:13px;color:#a00}ul.marked a{color:#a00;font-weight:bold}
        #overview g.region{cursor:pointer}
        #overview g.selected rect.frame{stroke:#e00;stroke-width:2.5}
        #zoom rect.found{stroke:#e00;stroke-width:3}
        table.runs{border-collapse:collapse;font-family:monospace;font-size:12px}
        table.runs td,table.runs th{border:1px solid #ccc;padding:1px 6px;text-align:left}
        .swatch{display:inline-block;width:10px;height:10px;margin-right:6px;vertical-align:middle;border:1px solid #999}
        .swatch.dot{background:radial-gradient(circle,#111 30%,transparent 35%)}
        ul.tree,ul.tree ul{list-style:none;padding-left:18px;font-family:monospace;font-size:12px;margin:0}
        details.stage2>summary{font-family:monospace;font-size:12px;font-weight:bold}
        li.annotation{color:#a05000}li.leaf{color:#14602e}

        """
}

/// JSON string quoting for the page's embedded data.
enum JSONString {
    static func quote(_ s: String) -> String {
        var o = "\""
        for c in s.unicodeScalars {
            switch c {
            case "\"": o += "\\\""
            case "\\": o += "\\\\"
            case "<": o += "\\u003c"
            case "&": o += "\\u0026"
            default: if c.value < 0x20 { o += " " } else { o.unicodeScalars.append(c) }
            }
        }
        return o + "\""
    }
}
