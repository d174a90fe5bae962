/// One cached translation: a virtual page and the host address of the physical page behind
/// it, for one (exception level, access kind) pair whose permission the fill checked.
struct TLBEntry {
    /// The virtual page, or 1 (never a page address) when the entry is empty.
    var page: UInt64 = 1
    /// The ASID the entry belongs to, or `TLB.global` for a global (nG = 0) translation.
    var asid: UInt32 = 0
    var device = false
    var host: UnsafeMutableRawPointer?
    var ipa: UInt64 = 0
}

/// The software TLB: for each of EL0 and EL1 and each of read, write and execute, a
/// direct-mapped set of combined stage-1 + stage-2 translations (virtual page to host page),
/// and behind it a smaller set of 2 MiB entries, filled where both stages map the whole 2 MiB
/// with blocks (as hardware caches a block once, not page by page: the TLB reach a guest's
/// huge stage-2 mappings buy). A miss in the page set that hits a 2 MiB entry refills the page
/// entry from it without a walk.
/// Entries are tagged with the ASID they were walked under, as hardware tags non-global
/// entries (Arm ARM D8.13), so switching TTBR0 to another ASID needs no flush. Every TLBI the
/// guest issues, and every stage-2 invalidation EL2 issues, empties the matching entries.
struct TLB {
    static let setSize = 256
    static let sets = 6
    /// The `asid` of a global entry: matches every ASID.
    static let global: UInt32 = 0x1_0000

    /// 2 MiB entries per set.
    static let blockSetSize = 64
    static let blockSize: UInt64 = 2 << 20

    let entries: UnsafeMutablePointer<TLBEntry>
    /// The 2 MiB entries: `page` is the region's first VA, `host` the host address of its first
    /// byte (the region's physical memory is contiguous in the host).
    let blocks: UnsafeMutablePointer<TLBEntry>

    init() {
        entries = .allocate(capacity: Self.setSize * Self.sets)
        entries.initialize(repeating: TLBEntry(), count: Self.setSize * Self.sets)
        blocks = .allocate(capacity: Self.blockSetSize * Self.sets)
        blocks.initialize(repeating: TLBEntry(), count: Self.blockSetSize * Self.sets)
    }

    func deallocate() {
        entries.deinitialize(count: Self.setSize * Self.sets)
        entries.deallocate()
        blocks.deinitialize(count: Self.blockSetSize * Self.sets)
        blocks.deallocate()
    }

    /// The 2 MiB entry `va` would use in `set`.
    @inline(__always) func blockSlot(_ set: Int, _ va: UInt64) -> UnsafeMutablePointer<TLBEntry> {
        blocks + set * Self.blockSetSize + Int((va >> 21) & UInt64(Self.blockSetSize - 1))
    }

    @_transparent static func set(el0: Bool, _ access: AccessKind) -> Int {
        // A switch, not `rawValue`: the enum's raw-value getter is not inlined into the executor.
        let kind: Int
        switch access {
        case .read: kind = 0
        case .write: kind = 1
        case .execute: kind = 2
        }
        return (el0 ? 0 : 3) + kind
    }

    /// The entry `va` would use in `set`.
    @_transparent func slot(_ set: Int, _ va: UInt64) -> UnsafeMutablePointer<TLBEntry> {
        entries + set * Self.setSize + Int((va >> 12) & UInt64(Self.setSize - 1))
    }

    /// The host address of `va` if `set` holds its page under `asid`.
    @_transparent func lookup(_ set: Int, _ va: UInt64, asid: UInt32) -> UnsafeMutableRawPointer? {
        let e = slot(set, va)
        guard e.pointee.page == va & ~0xFFF, e.pointee.asid == asid || e.pointee.asid == Self.global else { return nil }
        return e.pointee.host.unsafelyUnwrapped + Int(va & 0xFFF)
    }

    func flushAll() {
        for i in 0 ..< Self.setSize * Self.sets { entries[i].page = 1 }
        for i in 0 ..< Self.blockSetSize * Self.sets { blocks[i].page = 1 }
    }

    /// TLBI by VA (`asid` nil: any ASID, the VAA forms) and/or by ASID (`page` nil).
    func flush(page: UInt64?, asid: UInt32?, includeGlobal: Bool = true) {
        for i in 0 ..< Self.setSize * Self.sets where entries[i].page != 1 {
            if let page, entries[i].page != page { continue }
            if let asid {
                let isGlobal = entries[i].asid == Self.global
                if isGlobal ? !includeGlobal : entries[i].asid != asid { continue }
            }
            entries[i].page = 1
        }
        for i in 0 ..< Self.blockSetSize * Self.sets where blocks[i].page != 1 {
            if let page, blocks[i].page != page & ~(Self.blockSize - 1) { continue }
            if let asid {
                let isGlobal = blocks[i].asid == Self.global
                if isGlobal ? !includeGlobal : blocks[i].asid != asid { continue }
            }
            blocks[i].page = 1
        }
    }
}
