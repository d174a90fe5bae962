/// Guest-first memory at EL2 (docs/guest-first-memory.md): lazy donation of whole blocks, the
/// host's all-or-nothing range conversion, and the host's long-term pins on shared pages.
///
/// Upstream has none of these as one call. The donation follows Android's
/// `__pkvm_host_donate_guest(pfn, gfn, nr_pages)` (android16-6.12 mem_protect.c), whose
/// stage-2 code maps an aligned 2 MiB range as a block while the host's view stays page by page;
/// the conversion follows guest_memfd's `KVM_SET_MEMORY_ATTRIBUTES2` (in-place conversion v8,
/// `__kvm_gmem_set_attributes`): every page checked first, nothing changed on failure, the
/// first offending page reported.
extension Hypervisor {
    /// The sizes a block donation may have, in pages: a page, a level-2 block (2 MiB) and a
    /// level-1 block (1 GiB).
    public static let donationBlockPages: [UInt64] = [1, 512, 512 * 512]

    /// The stage-2 level whose leaves are `pages` pages (3, 2 or 1).
    public static func leafLevel(blockPages pages: UInt64) -> Int { pages >= 512 * 512 ? 1 : pages >= 512 ? 2 : 3 }

    /// Lazy donation of a whole block: gives `pages` host pages from `pfn` to a protected
    /// guest at `gfn`, mapped in its stage-2 by one leaf of that size, while the host stage-2
    /// records the donation page by page (each page's annotation names its own gfn, as
    /// `host_stage2_set_owner_metadata_locked` does with force_pte).
    ///
    /// Checks, in order: the VM exists (-EINVAL); `pages` one of `donationBlockPages` with both
    /// frames aligned to it, and the pfn range valid (-EINVAL); under the locks, a VM that is not
    /// dying (-EINVAL); memory check (-EINVAL / -EPERM); in `IOMMUMode.refcount`, no page
    /// DMA-mapped (-EINVAL); every host page OWNED (-EPERM); guest NOPAGE over the range
    /// (-EPERM; -ERANGE past the IPA limit); the memcache and the tables the mapping needs
    /// (-ENOMEM); the host stage-2 pool (-ENOMEM).
    public func hostDonateGuestBlock(_ pfn: PFN, gfn: GFN, pages: UInt64, vm handle: VMHandle) throws(HypError) {
        let vm = try transitionVM(handle)
        guard Self.donationBlockPages.contains(pages), pfn.rawValue % pages == 0, gfn.rawValue % pages == 0,
              pfnRangeIsValid(pfn, pages) else { throw .EINVAL }
        let phys = pfn.address, ipa = gfn.ipa
        try withHostAndGuestLocks(vm) { () throws(HypError) in
            guard vm.acceptsPages else { throw .EINVAL }
            try checkHostRange(phys, pages: pages, .owned, dmaUnmapped: true)
            try checkGuestRange(vm, ipa, pages: pages, .noPage)
            try checkGuestTables(vm, ipa, pages: pages, leafLevel: Self.leafLevel(blockPages: pages))
            try checkHostTables(phys, pages: pages)
            setHostOwnerGuest(phys, pages: pages, vm, gfn: gfn)
            vm.stage2.apply(.map(output: phys, permissions: .rwx, state: .owned, pagesOnly: false),
                            start: ipa.rawValue, end: ipa.rawValue + pages << pageShift)
        }
    }

    /// The attribute EL2's ownership gives guest frame `gfn` of a VM: private when the guest
    /// owns it alone, shared when the host can reach it (never given, shared by the guest, or
    /// the host's page a non-protected guest borrows), nil otherwise (another owner, poisoned,
    /// MMIO).
    public func guestMemoryAttribute(vm handle: VMHandle, gfn: GFN, backing pfn: PFN) throws(HypError) -> GuestMemoryAttribute? {
        let vm = try transitionVM(handle)
        guard gfn.ipa.rawValue < geometry.limit, memory.contains(pfn.address) else { throw .EINVAL }
        return withHostAndGuestLocks(vm) { () -> GuestMemoryAttribute? in
            let (d, _) = vm.stage2.leaf(at: gfn.ipa)
            switch guestState(d) {
            case .owned: return .private
            // Shared by the guest (protected), or the host's lent to a non-protected guest.
            case .sharedOwned, .sharedBorrowed: return .shared
            case .noPage: return meta(pfn.address).pointee.hostState == .owned ? .shared : nil
            default: return nil
            }
        }
    }

    /// The host converts guest frames `[gfn, gfn + pages)` of a protected VM, backed by the
    /// pages from `pfn` (guest_memfd's file offsets), to `attribute`, all or nothing. Returns
    /// the pages that changed.
    ///
    /// To private, per page: already private passes; never given (guest NOPAGE) needs host
    /// OWNED (-EPERM) and, in `IOMMUMode.refcount`, no DMA mapping (-EBUSY), and is donated in
    /// place (blocks of `blockPages` where aligned); shared by the guest needs the expected
    /// page (-EPERM), host SHARED_BORROWED (-EPERM), no DMA mapping and no long-term pin
    /// (-EBUSY), and goes back to the guest alone in place. To shared: pages the host can reach
    /// pass; a private page is -EPERM, because only the guest may expose its memory (MEM_SHARE):
    /// in pKVM the host is not trusted, so this direction is a check that host and EL2 agree.
    /// Either way poisoned is -EHWPOISON and any other state -EPERM.
    ///
    /// Before the pages: a VM that does not exist or is dying (-EINVAL), a non-protected VM
    /// (-EINVAL: v8's "the VM has no private memory"), a zero, overflowing or out-of-range size
    /// (-EINVAL), a backing range that is not one RAM region (-EINVAL); after them, the tables
    /// the commit needs (-ENOMEM). Every error but the per-page ones names `gfn`.
    ///
    /// `checkOnly` runs every check and changes nothing (the VMM asks it over the pages before
    /// one its own references refuse, so the error it reports is the first of either kind).
    @discardableResult
    public func hostConvertGuestRange(vm handle: VMHandle, gfn: GFN, pages: UInt64, to attribute: GuestMemoryAttribute,
                                      backing pfn: PFN, blockPages: UInt64 = 1,
                                      checkOnly: Bool = false) throws(ConversionError) -> UInt64 {
        let vm: GuestVM
        do { vm = try transitionVM(handle) } catch { throw ConversionError(.EINVAL, at: gfn) }
        guard vm.isProtected, Self.donationBlockPages.contains(blockPages),
              pages > 0, pages <= (geometry.limit >> pageShift), gfn.rawValue <= (geometry.limit >> pageShift) - pages,
              pfnRangeIsValid(pfn, pages), (try? checkRangeAllowedMemory(pfn.address, pages: pages)) != nil
        else { throw ConversionError(.EINVAL, at: gfn) }
        return try withHostAndGuestLocks(vm) { () throws(ConversionError) -> UInt64 in
            guard vm.acceptsPages else { throw ConversionError(.EINVAL, at: gfn) }
            let (runs, splitTables) = try conversionRuns(vm, gfn: gfn, pages: pages, to: attribute, backing: pfn)
            guard attribute == .private, !runs.isEmpty else { return 0 }
            do throws(HypError) {
                // Every table the whole commit may take, from one pool: the splits of guest-shared
                // blocks the range covers in part, and each donated run's mapping as `mapPrivate`
                // will write it.
                if runs.contains(where: \.donate) { try checkMemcache(vm) }
                var tables = splitTables
                for run in runs where run.donate {
                    tables += mapPrivateTablesBound(gfn.advanced(by: run.offset).ipa.rawValue,
                                                    pfn.address.advanced(by: run.offset << pageShift),
                                                    pages: run.pages, blockPages: blockPages)
                }
                if vm.stage2.availablePages < tables { throw .ENOMEM }
                for run in runs {
                    try checkHostTables(pfn.address.advanced(by: run.offset << pageShift), pages: run.pages)
                }
            } catch { throw ConversionError(error, at: gfn) }
            if checkOnly { return 0 }
            var changed: UInt64 = 0
            for run in runs {
                let first = gfn.advanced(by: run.offset)
                let phys = pfn.address.advanced(by: run.offset << pageShift)
                setHostOwnerGuest(phys, pages: run.pages, vm, gfn: first)
                mapPrivate(vm, first.ipa.rawValue, phys, pages: run.pages, blockPages: run.donate ? blockPages : 1)
                changed += run.pages
            }
            return changed
        }
    }

    /// A run of pages a conversion to private changes the same way: donated (never given)
    /// or taken back from the host (shared by the guest).
    struct ConversionRun {
        var offset: UInt64
        var pages: UInt64
        var donate: Bool
    }

    /// Every page's checks for `hostConvertGuestRange`, in page order, one leaf or unmapped
    /// span at a time; the first failing page is the error. Returns the runs to change and the
    /// tables splitting the blocks they cover in part may take.
    private func conversionRuns(_ vm: GuestVM, gfn: GFN, pages: UInt64, to attribute: GuestMemoryAttribute,
                                backing pfn: PFN) throws(ConversionError) -> (runs: [ConversionRun], splitTables: Int) {
        var runs: [ConversionRun] = []
        var splitTables = 0
        let base = memory.pageIndex(pfn.address)!
        let pinned = !hostPins.isEmpty
        var k: UInt64 = 0
        while k < pages {
            let ipa = gfn.advanced(by: k).ipa.rawValue
            let (d, level) = vm.stage2.leaf(at: IPA(ipa))
            let span = Stage2Geometry.blockSize(level: level)
            let count = min(pages - k, ((ipa & ~(span - 1)) + span - ipa) >> pageShift)
            func fail(_ e: HypError, _ at: UInt64 = 0) -> ConversionError { ConversionError(e, at: gfn.advanced(by: k + at)) }
            let state = guestState(d)
            switch (state, attribute) {
            case (.owned, .private), (.sharedOwned, .shared):
                break
            case (.noPage, _):
                for j in 0 ..< count {
                    let p = vmemmap[base + Int(k + j)]
                    guard p.hostState == .owned else { throw fail(.EPERM, j) }
                    if attribute == .private, refcountsDMA, p.refcount != 0 { throw fail(.EBUSY, j) }
                }
                if attribute == .private { appendRun(&runs, k, count, donate: true) }
            case (.sharedOwned, .private):
                let output = d.outputAddress(level: level).rawValue + (ipa & (span - 1))
                guard output == pfn.address.rawValue + k << pageShift else { throw fail(.EPERM) }
                for j in 0 ..< count {
                    let i = base + Int(k + j)
                    guard vmemmap[i].hostState == .sharedBorrowed else { throw fail(.EPERM, j) }
                    if vmemmap[i].refcount != 0 || (pinned && hostPins[i] != nil) { throw fail(.EBUSY, j) }
                }
                if level != Stage2Geometry.lastLevel, count << pageShift != span {
                    splitTables += 2 * (Stage2Geometry.lastLevel - level)  // both ends, at worst
                }
                appendRun(&runs, k, count, donate: false)
            case (.poison, _):
                throw fail(.EHWPOISON)
            default:
                throw fail(.EPERM)
            }
            k += count
        }
        return (runs, splitTables)
    }

    private func appendRun(_ runs: inout [ConversionRun], _ offset: UInt64, _ pages: UInt64, donate: Bool) {
        if let last = runs.last, last.donate == donate, last.offset + last.pages == offset {
            runs[runs.count - 1].pages += pages
        } else {
            runs.append(ConversionRun(offset: offset, pages: pages, donate: donate))
        }
    }

    /// Maps `[ipa, ipa + pages)` OWNED for the guest: blocks of `blockPages` where the IPA and
    /// the output are both aligned (a donation), else keeping the table's shape (pages, or a
    /// block the update covers whole; a split table whose pages are all private again
    /// coalesces).
    private func mapPrivate(_ vm: GuestVM, _ ipa: UInt64, _ phys: PhysAddr, pages: UInt64, blockPages: UInt64) {
        forEachMapPrivateChunk(ipa, phys, pages: pages, blockPages: blockPages) { a, next, output, block in
            vm.stage2.apply(.map(output: output, permissions: .rwx, state: .owned, pagesOnly: !block), start: a, end: next)
        }
    }

    /// The tables `mapPrivate` of the same arguments may take from an empty range: per chunk,
    /// down to its block's level when it is one block, else down to pages.
    func mapPrivateTablesBound(_ ipa: UInt64, _ phys: PhysAddr, pages: UInt64, blockPages: UInt64) -> Int {
        var n = 0
        forEachMapPrivateChunk(ipa, phys, pages: pages, blockPages: blockPages) { a, next, _, block in
            n += geometry.tablesNeededBound(start: a, end: next,
                                            leafLevel: block ? Self.leafLevel(blockPages: blockPages) : Stage2Geometry.lastLevel)
        }
        return n
    }

    /// The chunks `mapPrivate` writes: one update for the whole range with page leaves, or,
    /// with blocks, one per block span, `block` true where that span is one whole block with an
    /// aligned output.
    private func forEachMapPrivateChunk(_ ipa: UInt64, _ phys: PhysAddr, pages: UInt64, blockPages: UInt64,
                                        _ body: (_ start: UInt64, _ end: UInt64, _ output: PhysAddr, _ block: Bool) -> Void) {
        let end = ipa + pages << pageShift
        guard blockPages > 1 else { return body(ipa, end, phys, false) }
        let block = blockPages << pageShift
        var a = ipa
        while a < end {
            let next = a & (block - 1) == 0 && end - a >= block ? a + block : min(end, (a & ~(block - 1)) + block)
            let output = phys.advanced(by: a - ipa)
            body(a, next, output, next - a == block && output.rawValue & (block - 1) == 0)
            a = next
        }
    }

    /// The memcache holds what mapping `[ipa, ipa + pages)` with leaves at `leafLevel` may
    /// take (`kvm_mmu_cache_min_pages` at least; -ENOMEM).
    func checkGuestTables(_ vm: GuestVM, _ ipa: IPA, pages: UInt64, leafLevel: Int) throws(HypError) {
        try checkMemcache(vm)
        let needed = geometry.tablesNeededBound(start: ipa.rawValue, end: ipa.rawValue + pages << pageShift,
                                                leafLevel: leafLevel)
        if vm.stage2.availablePages < needed { throw .ENOMEM }
    }

    /// The host loses `[start, start + pages)` to guest `vm`, page k annotated with gfn
    /// `gfn + k` (`host_stage2_set_owner_metadata_locked` over a range).
    func setHostOwnerGuest(_ start: PhysAddr, pages: UInt64, _ vm: GuestVM, gfn: GFN) {
        hostStage2Apply(.annotateDonation(handle: vm.handle, firstGFN: gfn), start: start.rawValue,
                        end: start.rawValue + pages << pageShift)
        mirrorHostChange(start, pages: pages, accessible: false)
        setHostState(start, pages: pages, .noPage)
    }

    // MARK: Host pins

    /// The host takes a long-term pin on each of `pages` pages from `pfn`, pages a guest shared
    /// with it (host SHARED_BORROWED; -EPERM otherwise, -EINVAL for a bad range, -EBUSY past
    /// 2^32 - 1 pins). While pinned, the guest cannot take the page back (MEM_UNSHARE -EBUSY)
    /// nor the host convert it to private. pvm's model of VFIO's FOLL_LONGTERM pins in
    /// `--host-pins longterm`; pKVM's own host takes such pins on pages it donates
    /// (`pkvm_mem_abort`), which EL2 never sees.
    public func hostPinShared(_ pfn: PFN, pages: UInt64) throws(HypError) {
        guard pfnRangeIsValid(pfn, pages) else { throw .EINVAL }
        try withHostLock { () throws(HypError) in
            try checkHostRange(pfn.address, pages: pages, .sharedBorrowed)
            let first = memory.pageIndex(pfn.address)!
            for i in first ..< first + Int(pages) where hostPins[i] == UInt32.max { throw .EBUSY }
            for i in first ..< first + Int(pages) { hostPins[i, default: 0] += 1 }
        }
    }

    /// Drops one long-term pin from each page (-EINVAL for a bad range or a page not pinned).
    public func hostUnpinShared(_ pfn: PFN, pages: UInt64) throws(HypError) {
        guard pfnRangeIsValid(pfn, pages) else { throw .EINVAL }
        try withHostLock { () throws(HypError) in
            try checkRangeAllowedMemory(pfn.address, pages: pages)
            let first = memory.pageIndex(pfn.address)!
            for i in first ..< first + Int(pages) where hostPins[i] == nil { throw .EINVAL }
            for i in first ..< first + Int(pages) {
                if hostPins[i] == 1 { hostPins[i] = nil } else { hostPins[i]! -= 1 }
            }
        }
    }

    /// The long-term pins on the page at `pa` (0 when none).
    public func hostPins(_ pa: PhysAddr) -> UInt32 {
        guard let i = memory.pageIndex(pa) else { return 0 }
        return withHostLock { () -> UInt32 in hostPins[i] ?? 0 }
    }

    /// Whether any page of the range holds a long-term pin (under the host lock).
    @inline(__always) func isHostPinned(_ start: PhysAddr, pages: UInt64) -> Bool {
        guard !hostPins.isEmpty, let first = memory.pageIndex(start) else { return false }
        for i in first ..< first + Int(pages) where hostPins[i] != nil { return true }
        return false
    }

    /// Forgets the pins on pages the host owns outright again (teardown gave them back).
    func dropHostPins(_ start: PhysAddr, pages: UInt64) {
        guard !hostPins.isEmpty, let first = memory.pageIndex(start) else { return }
        for i in first ..< first + Int(pages) { hostPins[i] = nil }
    }
}
