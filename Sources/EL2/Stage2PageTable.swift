/// A VMSAv8-64 stage-2 translation table, 4 KB granule, stored inside `PhysicalMemory` the way
/// hardware would walk it: the PGD (possibly several concatenated pages) and every next-level
/// table are RAM pages the hypervisor owns. Modelled on Linux's `kvm_pgtable` stage-2 code
/// (arch/arm64/kvm/hyp/pgtable.c).
///
/// - Ranges are mapped with 1 GiB and 2 MiB blocks where the range and output address are
///   aligned and the update is uniform; a partial change to a block splits it into a table of
///   next-level entries (break-before-make, with a TLB invalidation when it was valid).
/// - A table whose entries all become zero is freed back to `freeTables`, as pKVM's unmap
///   walker puts childless tables. A table page's `HypPage.refcount` counts its non-zero entries
///   (pKVM counts them plus one).
/// - Every change that removes or narrows a valid mapping is reported to the TLB sink, once per
///   update, covering the IPA span that changed.
///
/// Table pages come from `freeTables` (already zero) first, then from `memcache` (host-donated
/// pages, zeroed on allocation as `guest_s2_zalloc_page` does).
///
/// Not thread-safe: the owner (the host stage-2 or a VM) guards it with its lock.
public final class Stage2PageTable: @unchecked Sendable {
    public let geometry: Stage2Geometry
    public let vmid: VMID
    /// Base of the PGD (VTTBR_EL2.BADDR).
    public let root: PhysAddr
    /// Zeroed pages ready to become tables (pKVM's `vm->pool` / `host_s2_pool`).
    public var freeTables: PagePool { state.pointee.freeTables }
    /// Host-donated pages, zeroed when taken (pKVM's vCPU `pkvm_memcache`).
    public var memcache: PagePool { state.pointee.memcache }
    /// Number of table pages below the PGD currently in use.
    public var tablePages: Int { state.pointee.tablePages }
    /// Valid blocks split into tables so far (each with one TLB invalidation of the block).
    public var splits: Int { state.pointee.splits }
    /// Tables coalesced back into the block they were split from.
    public var merges: Int { state.pointee.merges }
    /// Whether a table made by splitting a block becomes that block again when every entry is
    /// uniform once more (a guest stage-2; see `coalesceIfUniform`).
    let coalesces: Bool

    /// The table's mutable bookkeeping, kept behind a pointer rather than in stored `var`s:
    /// every transition touches it, and class stored properties would pay a dynamic
    /// exclusivity check on each access. Sound because the owner's lock serialises every use,
    /// the pointer is allocated in init and freed only in deinit, and no access escapes a method.
    private struct MutableState {
        var freeTables = PagePool()
        var memcache = PagePool()
        var tablePages = 0
        // The IPA span to invalidate at the end of the current update.
        var invalidLow = UInt64.max
        var invalidHigh: UInt64 = 0
        // The SMMU domain whose STE points at this table, if any: its IOTLB entries must go
        // with every TLB invalidation (a table shared by the CPU and the SMMU, SMMUv3 IHI 0070 3.3.2).
        var iotlb: IOTLB?
        var iotlbDomain = IOMMUDomainID(rawValue: 0)
        // Table pages made by splitting a valid block (by page number), when the table
        // coalesces: each may become that block again once its entries are uniform.
        var splitTables: Set<UInt64> = []
        var splits = 0
        var merges = 0
    }
    private let state: UnsafeMutablePointer<MutableState>

    let memory: PhysicalMemory
    let vmemmap: Vmemmap
    let tableUse: HypPageUse
    let freeUse: HypPageUse
    weak var sink: (any EL2EventSink)?
    /// The sink's `wantsStage2Updates`, read once.
    let reportsUpdates: Bool

    /// Builds an empty table over a zeroed, hyp-owned PGD of `geometry.pgdPages` pages at `root`.
    init(geometry: Stage2Geometry, vmid: VMID, root: PhysAddr, memory: PhysicalMemory, vmemmap: Vmemmap,
         tableUse: HypPageUse, freeUse: HypPageUse, coalesces: Bool = false, sink: (any EL2EventSink)?) {
        self.geometry = geometry
        self.coalesces = coalesces
        self.vmid = vmid
        self.root = root
        self.memory = memory
        self.vmemmap = vmemmap
        self.tableUse = tableUse
        self.freeUse = freeUse
        self.sink = sink
        self.reportsUpdates = sink?.wantsStage2Updates ?? false
        self.state = .allocate(capacity: 1)
        self.state.initialize(to: MutableState())
        for i in 0..<geometry.pgdPages {
            let page = root.advanced(by: UInt64(i) << pageShift)
            memory.zeroPage(page)
            vmemmap.pointer(memory.pageIndex(page)!).pointee.use = tableUse
        }
    }

    deinit {
        state.deinitialize(count: 1)
        state.deallocate()
    }

    // MARK: Lookup

    /// The entry that translates `ipa`: the first non-table descriptor on its walk and the
    /// level where it was found (`kvm_pgtable_get_leaf`). `ipa` must be below the limit.
    @inline(__always)
    public func leaf(at ipa: IPA) -> (descriptor: Stage2Descriptor, level: Int) {
        var level = geometry.startLevel
        var table = root
        var index = ipa.rawValue >> UInt64(Stage2Geometry.shift(level: level))
        while true {
            let d = Stage2Descriptor(rawValue: memory.load64(table.advanced(by: index << 3)))
            guard d.isTable(level: level) else { return (d, level) }
            table = d.tableAddress
            level += 1
            index = (ipa.rawValue >> UInt64(Stage2Geometry.shift(level: level))) & 511
        }
    }

    /// Translates `ipa` like a hardware walk: the output address and the leaf, or nil on a
    /// translation fault.
    public func translate(_ ipa: IPA) -> (output: PhysAddr, descriptor: Stage2Descriptor, level: Int)? {
        guard ipa.rawValue < geometry.limit else { return nil }
        let (d, level) = leaf(at: ipa)
        guard d.isLeaf(level: level) else { return nil }
        let mask = Stage2Geometry.blockSize(level: level) - 1
        return (d.outputAddress(level: level).advanced(by: ipa.rawValue & mask), d, level)
    }

    /// Pages available for new tables.
    public var availablePages: Int { freeTables.count + memcache.count }

    // MARK: Update

    /// Applies `update` to `[start, end)` (page aligned, below the limit). The caller has checked
    /// that enough table pages are available (`tablesNeededBound`), so this cannot fail half-way.
    public func apply(_ update: Stage2Update, start: UInt64, end: UInt64) {
        precondition(start & (pageSize - 1) == 0 && end & (pageSize - 1) == 0 && start < end
                     && end <= geometry.limit, "stage-2 update outside the table")
        state.pointee.invalidLow = .max
        state.pointee.invalidHigh = 0
        if end - start != pageSize || !applyPage(update, ipa: start) {
            walkUpdate(table: root, level: geometry.startLevel, tableBase: 0, start: start, end: end,
                       rangeStart: start, update: update)
        }
        if reportsUpdates { sink?.stage2Updated(vmid: vmid, update: update, start: IPA(start), end: IPA(end)) }
        let (low, high) = (state.pointee.invalidLow, state.pointee.invalidHigh)
        if low < high {
            sink?.invalidate(TLBInvalidation(vmid: vmid, start: IPA(low), size: high - low))
            if let iotlb = state.pointee.iotlb {
                iotlb.invalidate(domain: state.pointee.iotlbDomain, start: low, size: high - low)
            }
        }
    }

    /// Makes every later invalidation of this table also invalidate `iotlb` for `domain` (an
    /// SMMU STE now points at the table), or stops it (nil). Called under the owner's lock.
    func attachIOTLB(_ iotlb: IOTLB?, domain: IOMMUDomainID) {
        state.pointee.iotlb = iotlb
        state.pointee.iotlbDomain = domain
    }

    /// The SMMU domain sharing this table, if any.
    var sharingDomain: IOMMUDomainID? { state.pointee.iotlb == nil ? nil : state.pointee.iotlbDomain }

    /// The single-page update every guest transition makes, without the range machinery:
    /// descend (allocating empty tables), write the level-3 entry, then free the tables the
    /// write emptied. Returns false, having changed nothing, when the walk meets a block or an
    /// annotation above level 3, which the general path splits.
    @inline(__always) private func applyPage(_ update: Stage2Update, ipa: UInt64) -> Bool {
        let new = leafValue(update, level: Stage2Geometry.lastLevel, entryStart: ipa, size: pageSize, rangeStart: ipa,
                            old: .zero)!
        var level = geometry.startLevel
        var table = root
        var index = ipa >> UInt64(Stage2Geometry.shift(level: level))
        // The slots that point at the tables on the path (at most 3 below a level-0 PGD).
        var parent0 = PhysAddr(0), parent1 = PhysAddr(0), parent2 = PhysAddr(0)
        var depth = 0
        while level < Stage2Geometry.lastLevel {
            let slot = table.advanced(by: index << 3)
            let d = Stage2Descriptor(rawValue: memory.load64(slot))
            if d.isTable(level: level) {
                table = d.tableAddress
            } else if d.isZero {
                if new.isZero { return true }  // nothing mapped here: nothing to clear
                let child = allocateTable()
                write(slot, old: d, new: .table(child))
                table = child
            } else {
                // Only reachable before anything was written: tables are allocated only below
                // zero entries, and a zero entry's subtree holds no block.
                return false
            }
            switch depth {
            case 0: parent0 = slot
            case 1: parent1 = slot
            default: parent2 = slot
            }
            depth += 1
            level += 1
            index = (ipa >> UInt64(Stage2Geometry.shift(level: level))) & 511
        }
        let slot = table.advanced(by: index << 3)
        let old = Stage2Descriptor(rawValue: memory.load64(slot))
        if old == new { return true }
        if old.isValid && !widens(old, new) { noteInvalidation(ipa, ipa + pageSize) }
        write(slot, old: old, new: new)
        if new.isValid, depth > 0, isSplitTable(table) {
            // The write may have made a split table uniform again: coalesce bottom-up.
            var child = table
            var parentLevel = Stage2Geometry.lastLevel - 1
            while depth > 0 {
                depth -= 1
                let parentSlot = depth == 0 ? parent0 : depth == 1 ? parent1 : parent2
                let span = Stage2Geometry.blockSize(level: parentLevel)
                guard coalesceIfUniform(parentSlot, child: child, level: parentLevel, entryStart: ipa & ~(span - 1))
                else { break }
                child = PhysAddr(parentSlot.rawValue & ~(pageSize - 1))
                parentLevel -= 1
            }
            return true
        }
        if new.isZero {
            var child = table
            while depth > 0, vmemmap[memory.pageIndex(child)!].refcount == 0 {
                depth -= 1
                let parentSlot = depth == 0 ? parent0 : depth == 1 ? parent1 : parent2
                write(parentSlot, old: .table(child), new: .zero)
                freeTable(child)
                child = PhysAddr(parentSlot.rawValue & ~(pageSize - 1))
            }
        }
        return true
    }

    @inline(__always) private func noteInvalidation(_ lo: UInt64, _ hi: UInt64) {
        if lo < state.pointee.invalidLow { state.pointee.invalidLow = lo }
        if hi > state.pointee.invalidHigh { state.pointee.invalidHigh = hi }
    }

    /// The entry to write for the whole entry `[entryStart, entryStart + size)` at `level`,
    /// or nil when one entry at this level cannot express the update there.
    /// `old` is the entry there now: a `pagesOnly` map creates no block, but keeps a block it
    /// rewrites whole (a guest's 2 MiB private block shared as a whole stays one block).
    @inline(__always)
    private func leafValue(_ update: Stage2Update, level: Int, entryStart: UInt64, size: UInt64,
                           rangeStart: UInt64, old: Stage2Descriptor) -> Stage2Descriptor? {
        switch update {
        case .clear:
            return .zero
        case .annotate(let d):
            return level >= Stage2Geometry.minBlockLevel ? d : nil
        case .annotateDonation(let handle, let firstGFN):
            guard level == Stage2Geometry.lastLevel else { return nil }
            let gfn = GFN(firstGFN.rawValue + (entryStart - rangeStart) >> pageShift)
            return .annotation(.donation, owner: .guest, meta: GuestOwnerMeta.encode(handle: handle, gfn: gfn))
        case .map(let output, let permissions, let state, let pagesOnly):
            if level != Stage2Geometry.lastLevel
                && (level < Stage2Geometry.minBlockLevel || (pagesOnly && !old.isLeaf(level: level))) {
                return nil
            }
            let oa = output.rawValue &+ (entryStart - rangeStart)
            guard oa & (size - 1) == 0 else { return nil }
            return .leaf(level: level, output: PhysAddr(oa), permissions: permissions, state: state)
        case .mapDevice(let output):
            guard level >= Stage2Geometry.minBlockLevel else { return nil }
            let oa = output.rawValue &+ (entryStart - rangeStart)
            guard oa & (size - 1) == 0 else { return nil }
            return .leaf(level: level, output: PhysAddr(oa), permissions: .rw, state: .owned,
                         memAttr: Stage2Descriptor.memAttrDevice)
        }
    }

    private func walkUpdate(table: PhysAddr, level: Int, tableBase: UInt64, start: UInt64, end: UInt64,
                        rangeStart: UInt64, update: Stage2Update) {
        let shift = UInt64(Stage2Geometry.shift(level: level))
        let size: UInt64 = 1 << shift
        var index = (start - tableBase) >> shift
        var address = start
        while address < end {
            let entryStart = tableBase + (index << shift)
            let entryEnd = entryStart + size
            let hi = min(end, entryEnd)
            let slot = table.advanced(by: index << 3)
            let old = Stage2Descriptor(rawValue: memory.load64(slot))

            if address == entryStart && hi == entryEnd,
               let new = leafValue(update, level: level, entryStart: entryStart, size: size, rangeStart: rangeStart,
                                   old: old) {
                // The whole entry becomes one leaf (or zero).
                if old != new {
                    if old.isTable(level: level) {
                        let wasSplit = isSplitTable(old.tableAddress)
                        if freeSubtree(old.tableAddress, level: level + 1) { noteInvalidation(entryStart, entryEnd) }
                        if wasSplit && new.isLeaf(level: level) { noteRestructure(.merge, entryStart, size) }
                    } else if old.isValid && !widens(old, new) {
                        noteInvalidation(entryStart, entryEnd)
                    }
                    write(slot, old: old, new: new)
                }
            } else if old.isTable(level: level) {
                walkUpdate(table: old.tableAddress, level: level + 1, tableBase: entryStart, start: address,
                            end: hi, rangeStart: rangeStart, update: update)
                if !releaseIfEmpty(slot, child: old.tableAddress) {
                    _ = coalesceIfUniform(slot, child: old.tableAddress, level: level, entryStart: entryStart)
                }
            } else if old.isZero, case .clear = update {
                // Nothing mapped here: nothing to clear.
            } else {
                // Zero entry that needs a table below it, or a block / annotated entry that is
                // only partly changed: split it into a next-level table first.
                let child = split(old, level: level, entryStart: entryStart)
                if old.isValid {
                    noteInvalidation(entryStart, entryEnd)  // break-before-make: the old block's TLBI
                    if coalesces && old.isLeaf(level: level) {
                        state.pointee.splitTables.insert(child.pfn.rawValue)
                        noteRestructure(.split, entryStart, size)
                    }
                }
                write(slot, old: old, new: .table(child))
                walkUpdate(table: child, level: level + 1, tableBase: entryStart, start: address, end: hi,
                            rangeStart: rangeStart, update: update)
                if !releaseIfEmpty(slot, child: child) {
                    _ = coalesceIfUniform(slot, child: child, level: level, entryStart: entryStart)
                }
            }
            address = hi
            index += 1
        }
    }

    /// True when `new` maps the same output with at least the same access and attributes, so the
    /// change needs no invalidation (a relaxation, as `stage2_map_walker_try_leaf` skips TLBI for).
    @inline(__always) private func widens(_ old: Stage2Descriptor, _ new: Stage2Descriptor) -> Bool {
        guard new.isValid, old.rawValue & Stage2Descriptor.addressMask == new.rawValue & Stage2Descriptor.addressMask,
              old.rawValue & 3 == new.rawValue & 3 else { return false }
        return new.permissions.isSuperset(of: old.permissions) && old.memAttr == new.memAttr
    }

    /// Writes `new` over `old` in a table slot, keeping the table page's count of non-zero entries.
    @inline(__always) private func write(_ slot: PhysAddr, old: Stage2Descriptor, new: Stage2Descriptor) {
        memory.store64(slot, new.rawValue)
        if old.isZero != new.isZero {
            let page = vmemmap.pointer(memory.pageIndex(slot)!)
            if new.isZero { page.pointee.refcount -= 1 } else { page.pointee.refcount += 1 }
        }
    }

    /// Frees `child` and zeroes its parent entry if it no longer holds any non-zero entry;
    /// returns whether it did.
    @inline(__always) @discardableResult
    private func releaseIfEmpty(_ slot: PhysAddr, child: PhysAddr) -> Bool {
        guard vmemmap[memory.pageIndex(child)!].refcount == 0 else { return false }
        write(slot, old: .table(child), new: .zero)
        freeTable(child)
        return true
    }

    /// Makes the table `child`, which the entry `slot` at `level` points at, the block it was
    /// split from, if it was split from one and its 512 entries are again that block's pages:
    /// valid leaves with the same attributes, outputs contiguous from an address aligned to the
    /// block. The table entry is broken before the block is made (one TLB invalidation of the
    /// block's span, as pKVM invalidates a replaced table entry with a range flush over its
    /// granule, `stage2_try_break_pte`). Returns whether it coalesced.
    ///
    /// pvm's choice: Android's guest stage-2 never collapses a table (`guest_s2_free_unlinked_table`
    /// warns), because its pinned-page tree must match the guest geometry; pvm's host pins nothing
    /// at block granularity, so a guest block split by a conversion can come back.
    private func coalesceIfUniform(_ slot: PhysAddr, child: PhysAddr, level: Int, entryStart: UInt64) -> Bool {
        guard level >= Stage2Geometry.minBlockLevel, isSplitTable(child),
              vmemmap[memory.pageIndex(child)!].refcount == 512 else { return false }
        let first = Stage2Descriptor(rawValue: memory.load64(child))
        let size = Stage2Geometry.blockSize(level: level)
        guard first.isLeaf(level: level + 1), first.outputAddress(level: level + 1).rawValue & (size - 1) == 0
        else { return false }
        let step = Stage2Geometry.blockSize(level: level + 1)
        for i in 1 ..< UInt64(512) where memory.load64(child.advanced(by: i << 3)) != first.rawValue &+ i * step {
            return false
        }
        let block = first.withOutput(first.outputAddress(level: level + 1), level: level)
        noteInvalidation(entryStart, entryStart + size)
        write(slot, old: .table(child), new: block)
        memory.zeroPage(child)
        vmemmap.pointer(memory.pageIndex(child)!).pointee.refcount = 0
        freeTable(child)
        noteRestructure(.merge, entryStart, size)
        return true
    }

    /// Whether `table` was made by splitting a block (and so may coalesce). No hashing while no
    /// block of this table was ever split, which is every single-page transition's case.
    @inline(__always) private func isSplitTable(_ table: PhysAddr) -> Bool {
        coalesces && !state.pointee.splitTables.isEmpty && state.pointee.splitTables.contains(table.pfn.rawValue)
    }

    /// Counts a split or a merge and tells the sink.
    private func noteRestructure(_ kind: Stage2Restructure.Kind, _ start: UInt64, _ size: UInt64) {
        if kind == .split { state.pointee.splits += 1 } else { state.pointee.merges += 1 }
        sink?.stage2Restructured(Stage2Restructure(kind: kind, vmid: vmid, start: IPA(start), size: size))
    }

    /// A new table one level below `level` that expresses exactly what `old` expressed over the
    /// entry at `entryStart`: 512 copies of an annotation, 512 smaller leaves of a block, or zeros.
    private func split(_ old: Stage2Descriptor, level: Int, entryStart: UInt64) -> PhysAddr {
        let child = allocateTable()
        if !old.isZero {
            let childLevel = level + 1
            let step = Stage2Geometry.blockSize(level: childLevel)
            let base = old.isValid ? old.outputAddress(level: level).rawValue : 0
            for i in 0..<UInt64(512) {
                let d = old.isValid ? old.withOutput(PhysAddr(base + i * step), level: childLevel) : old
                memory.store64(child.advanced(by: i << 3), d.rawValue)
            }
            vmemmap.pointer(memory.pageIndex(child)!).pointee.refcount = 512
        }
        return child
    }

    /// Frees a whole subtree; returns true if it held any valid leaf (so a TLBI is needed).
    private func freeSubtree(_ table: PhysAddr, level: Int) -> Bool {
        var hadValid = false
        for i in 0..<UInt64(512) {
            let d = Stage2Descriptor(rawValue: memory.load64(table.advanced(by: i << 3)))
            if d.isTable(level: level) {
                hadValid = freeSubtree(d.tableAddress, level: level + 1) || hadValid
            } else if d.isValid {
                hadValid = true
            }
        }
        memory.zeroPage(table)
        vmemmap.pointer(memory.pageIndex(table)!).pointee.refcount = 0
        freeTable(table)
        return hadValid
    }

    private func allocateTable() -> PhysAddr {
        let page: PhysAddr
        if let p = state.pointee.freeTables.pop(memory: memory) {
            page = p
        } else if let p = state.pointee.memcache.pop(memory: memory) {
            memory.zeroPage(p)
            page = p
        } else {
            preconditionFailure("stage-2 table pool exhausted after the transition's memcache check: EL2 accounting bug")
        }
        let meta = vmemmap.pointer(memory.pageIndex(page)!)
        meta.pointee.use = tableUse
        meta.pointee.refcount = 0
        state.pointee.tablePages += 1
        return page
    }

    private func freeTable(_ page: PhysAddr) {
        if isSplitTable(page) { state.pointee.splitTables.remove(page.pfn.rawValue) }
        vmemmap.pointer(memory.pageIndex(page)!).pointee.use = freeUse
        state.pointee.freeTables.push(page, memory: memory)
        // The pool's link word is the only non-zero word of a free table page.
        state.pointee.tablePages -= 1
    }

    /// Adds a host-donated page to the memcache.
    func addToMemcache(_ page: PhysAddr) {
        vmemmap.pointer(memory.pageIndex(page)!).pointee.use = freeUse
        state.pointee.memcache.push(page, memory: memory)
    }

    /// Adds a zeroed page to the free-table pool.
    func addFreeTable(_ page: PhysAddr) {
        memory.zeroPage(page)
        vmemmap.pointer(memory.pageIndex(page)!).pointee.use = freeUse
        state.pointee.freeTables.push(page, memory: memory)
    }

    /// Takes a page back out of the memcache (the host shrinking it), link word cleared.
    func takeFromMemcache() -> PhysAddr? { state.pointee.memcache.pop(memory: memory) }

    /// Takes a free table page back out of the pool (teardown), link word cleared.
    func takeFreeTable() -> PhysAddr? { state.pointee.freeTables.pop(memory: memory) }

    /// Destroys the whole table (`kvm_pgtable_stage2_destroy`): every table page below the PGD
    /// returns to `freeTables`, zeroed, and the PGD is zeroed. Returns the pages of the PGD.
    func destroy() -> [PhysAddr] {
        let entries = UInt64(geometry.pgdEntries)
        for i in 0..<entries {
            let slot = root.advanced(by: i << 3)
            let d = Stage2Descriptor(rawValue: memory.load64(slot))
            if d.isTable(level: geometry.startLevel) { _ = freeSubtree(d.tableAddress, level: geometry.startLevel + 1) }
        }
        var pgd: [PhysAddr] = []
        for i in 0..<geometry.pgdPages {
            let page = root.advanced(by: UInt64(i) << pageShift)
            memory.zeroPage(page)
            vmemmap.pointer(memory.pageIndex(page)!).pointee.refcount = 0
            pgd.append(page)
        }
        return pgd
    }
}
