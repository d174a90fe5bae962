import EL2

/// A stage-2 table as a tree of levels with every descriptor decoded: text for a terminal, an
/// HTML list of collapsible levels for `pvm inspect`.
public enum Stage2Tree {
    /// "L2 [0x80000000, 0x80200000) 0x3 TABLE -> 0x84a01000" lines, indented by level.
    public static func text(_ t: InspectionSnapshot.Table, limit: Int = 0) -> String {
        var lines = ["\(t.name): root \(t.root), \(t.geometry)"]
        for (n, e) in t.entries.enumerated() {
            if limit > 0 && n >= limit {
                lines.append("  ... (\(t.entries.count - limit) more entries)")
                break
            }
            lines.append(String(repeating: "  ", count: e.level - t.geometry.startLevel + 1) + entryText(e))
        }
        return lines.joined(separator: "\n")
    }

    static func entryText(_ e: Stage2Entry) -> String {
        "L\(e.level) [\(hex(e.ipa)), \(hex(e.ipa &+ e.size))) \(e.descriptor) \(e.descriptor.decoded(level: e.level))"
    }

    /// Nested `<ul>`: a table entry is a `<details>` whose children are the next level's
    /// entries; levels below the root start folded. `limit` caps the entries (0 = none).
    public static func html(_ t: InspectionSnapshot.Table, limit: Int = 20000) -> String {
        var o = "<details class=\"stage2\" open=\"open\"><summary>\(xmlEscaped(t.name)): root \(t.root), "
        o += "\(xmlEscaped("\(t.geometry)")), \(t.entries.count) entries</summary>\n<ul class=\"tree\">\n"
        var open: [Int] = []
        for (n, e) in t.entries.enumerated() {
            if limit > 0 && n >= limit {
                while open.popLast() != nil { o += "</ul></details></li>\n" }
                o += "<li class=\"more\">… \(t.entries.count - limit) more entries (use pvm inspect --format stage2)</li>\n"
                break
            }
            while let top = open.last, top >= e.level {
                open.removeLast()
                o += "</ul></details></li>\n"
            }
            let text = xmlEscaped(entryText(e))
            if e.isTable {
                o += "<li><details><summary class=\"table\">\(text)</summary><ul>\n"
                open.append(e.level)
            } else {
                let cls = e.descriptor.isLeaf(level: e.level) ? "leaf" : "annotation"
                o += "<li class=\"\(cls)\">\(text)</li>\n"
            }
        }
        while open.popLast() != nil { o += "</ul></details></li>\n" }
        return o + "</ul></details>\n"
    }
}
