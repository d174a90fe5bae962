/// The shape of a stage-2 table for a given IPA size, 4 KB granule, following the VTCR_EL2
/// rules (Arm ARM D8.2.5 "Concatenated translation tables", D8.2.6 "Initial lookup level"):
/// Linux picks `levels = ARM64_HW_PGTABLE_LEVELS(ipaBits - 4)`, so the entry level absorbs up
/// to 4 extra bits by concatenating up to 16 tables.
///
/// | IPA bits | T0SZ | levels | entry level | SL0 | PGD |
/// |---|---|---|---|---|---|
/// | 40 | 24 | 3 | 1 | 1 | 2 concatenated tables, 8 KiB aligned |
/// | 48 | 16 | 4 | 0 | 2 | one 4 KiB table |
public struct Stage2Geometry: Hashable, Sendable, CustomStringConvertible {
    /// Input (IPA) size in bits, 32...48.
    public let ipaBits: Int
    /// Number of lookup levels.
    public let levels: Int
    /// The level of the PGD (the entry table): `4 - levels`.
    public let startLevel: Int
    /// Bytes of the PGD, `2^(ipaBits - levels * 9)` (ARM64_VTTBR_X), at least one page.
    public let pgdBytes: UInt64
    /// Entries the PGD resolves.
    public let pgdEntries: Int

    /// The smallest level that may hold a block (`KVM_PGTABLE_MIN_BLOCK_LEVEL`, 4 KB granule).
    public static let minBlockLevel = 1
    public static let lastLevel = 3
    public static let supportedIPABits = 32...48

    /// Returns nil for an IPA size the 4 KB granule cannot express without LPA2.
    public init?(ipaBits: Int) {
        guard Self.supportedIPABits.contains(ipaBits) else { return nil }
        self.ipaBits = ipaBits
        levels = max(2, (ipaBits - 8) / 9)
        startLevel = 4 - levels
        let x = ipaBits - levels * 9
        pgdBytes = max(pageSize, 1 << UInt64(x))
        pgdEntries = 1 << (ipaBits - Self.shift(level: startLevel))
    }

    /// Pages of the PGD: the concatenated entry-level tables.
    public var pgdPages: Int { Int(pgdBytes >> pageShift) }

    /// Bit position of the lowest IPA bit a level indexes: 39, 30, 21, 12 for levels 0–3.
    @inline(__always) public static func shift(level: Int) -> Int { 12 + 9 * (3 - level) }

    /// Bytes one entry at `level` maps: 512 GiB, 1 GiB, 2 MiB, 4 KiB.
    @inline(__always) public static func blockSize(level: Int) -> UInt64 { 1 << UInt64(shift(level: level)) }

    /// The first IPA past the input range.
    public var limit: UInt64 { 1 << UInt64(ipaBits) }

    /// `kvm_mmu_cache_min_pages`: the pages a single-page map may need, one per level below the PGD.
    public var minMemcachePages: Int { levels - 1 }

    /// An upper bound on the table pages an update of `[start, end)` may allocate: for each
    /// level below the PGD, the number of parent entries the range touches. For one page this is
    /// `levels - 1`, pKVM's `kvm_mmu_cache_min_pages`. A range mapped by blocks of
    /// `leafLevel` needs no tables below that level.
    public func tablesNeededBound(start: UInt64, end: UInt64, leafLevel: Int = Self.lastLevel) -> Int {
        guard end > start, leafLevel > startLevel else { return 0 }
        var n = 0
        for level in (startLevel + 1)...min(leafLevel, Self.lastLevel) {
            let parentShift = UInt64(Self.shift(level: level - 1))
            n += Int(((end - 1) >> parentShift) - (start >> parentShift) + 1)
        }
        return n
    }

    /// An upper bound on the table pages mapping `[start, end)` with the largest leaves that fit
    /// may allocate (an identity map, output aligned as the input): tables only where the range
    /// does not cover a whole 2 MiB or 1 GiB entry, at its two ends.
    public func tablesNeededBoundForBlocks(start: UInt64, end: UInt64) -> Int {
        guard end > start else { return 0 }
        let mib2 = Self.blockSize(level: 2), gib = Self.blockSize(level: 1)
        let midStart = (start + mib2 - 1) & ~(mib2 - 1), midEnd = end & ~(mib2 - 1)
        guard midStart < midEnd else { return tablesNeededBound(start: start, end: end) }
        let gibStart = (midStart + gib - 1) & ~(gib - 1), gibEnd = midEnd & ~(gib - 1)
        var n = tablesNeededBound(start: start, end: midStart) + tablesNeededBound(start: midEnd, end: end)
        if gibStart < gibEnd {
            n += tablesNeededBound(start: midStart, end: gibStart, leafLevel: 2)
            n += tablesNeededBound(start: gibEnd, end: midEnd, leafLevel: 2)
        } else {
            n += tablesNeededBound(start: midStart, end: midEnd, leafLevel: 2)
        }
        return n
    }

    /// VTCR_EL2 for this geometry: T0SZ, SL0, inner/outer write-back walks, inner shareable,
    /// TG0 = 4 KB, PS as given, RES1 bit 31 (Arm ARM D13.2.151).
    public func vtcr(physBits: Int) -> UInt64 {
        let t0sz = UInt64(64 - ipaBits)
        let sl0 = UInt64(2 - startLevel)
        let ps: UInt64 = switch physBits {
        case ...32: 0
        case ...36: 1
        case ...40: 2
        case ...42: 3
        case ...44: 4
        case ...48: 5
        default: 6
        }
        return t0sz | sl0 << 6 | 1 << 8 | 1 << 10 | 3 << 12 | 0 << 14 | ps << 16 | 1 << 31
    }

    public var description: String {
        "\(ipaBits)-bit IPA, \(levels) levels, entry level \(startLevel), PGD \(pgdEntries) entries in \(pgdPages) page(s)"
    }
}
