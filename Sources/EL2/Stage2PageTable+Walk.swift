/// One non-zero entry met by a full-table walk.
public struct Stage2Entry: Sendable {
    /// The first IPA the entry covers.
    public let ipa: UInt64
    public let level: Int
    public let descriptor: Stage2Descriptor
    /// The table page that holds the entry.
    public let tablePage: PhysAddr

    /// Bytes the entry covers.
    public var size: UInt64 { Stage2Geometry.blockSize(level: level) }
    public var isTable: Bool { descriptor.isTable(level: level) }
}

/// Whole-table walks, for inspection and invariant checks (cold paths: closures are fine here).
extension Stage2PageTable {
    /// Visits every non-zero entry in address order, a table entry before the entries below it.
    public func forEachEntry(_ body: (Stage2Entry) -> Void) {
        visit(table: root, level: geometry.startLevel, base: 0, entries: geometry.pgdEntries, body)
    }

    private func visit(table: PhysAddr, level: Int, base: UInt64, entries: Int, _ body: (Stage2Entry) -> Void) {
        let shift = UInt64(Stage2Geometry.shift(level: level))
        for i in 0..<UInt64(entries) {
            let slot = table.advanced(by: i << 3)
            let d = Stage2Descriptor(rawValue: memory.load64(slot))
            if d.isZero { continue }
            let ipa = base + (i << shift)
            let tablePage = PhysAddr(slot.rawValue & ~(pageSize - 1))
            body(Stage2Entry(ipa: ipa, level: level, descriptor: d, tablePage: tablePage))
            if d.isTable(level: level) { visit(table: d.tableAddress, level: level + 1, base: ipa, entries: 512, body) }
        }
    }

    /// A text dump: one line per non-zero entry, indented by level, decoded field by field.
    /// `limit` caps the lines (0 = no cap).
    public func dump(limit: Int = 0) -> String {
        var lines = ["stage-2 vmid=\(vmid) root=\(root) \(geometry)",
                     "  VTCR_EL2=\(hex(geometry.vtcr(physBits: geometry.ipaBits))) tables=\(tablePages) "
                     + "pool=\(freeTables.count) memcache=\(memcache.count)"]
        var count = 0
        var truncated = false
        forEachEntry { e in
            if limit > 0 && count >= limit { truncated = true; return }
            count += 1
            let indent = String(repeating: "  ", count: e.level - geometry.startLevel + 1)
            let end = e.ipa + e.size
            lines.append("\(indent)L\(e.level) [\(hex(e.ipa)), \(hex(end))) \(e.descriptor) \(e.descriptor.decoded(level: e.level))")
        }
        if truncated { lines.append("  ... (truncated at \(limit) entries)") }
        return lines.joined(separator: "\n")
    }
}
