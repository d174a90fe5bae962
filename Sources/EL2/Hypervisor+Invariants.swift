/// One broken invariant, with the page or VM it concerns.
public struct InvariantViolation: Hashable, Sendable, CustomStringConvertible {
    public let message: String
    public var description: String { message }
}

/// The invariant checker: a full cross-check of the host states, hyp states, share counts,
/// every guest stage-2 entry, the host stage-2, and EL2's page accounting. Any test (and the
/// fuzzer) can call it after every operation; `pvm model` runs it with `check`.
///
/// What must hold (pKVM's rules, section numbers of docs/model.md):
/// 1. Each RAM page has exactly one owner: host (OWNED / SHARED_OWNED), hyp (OWNED) or one
///    guest mapping (OWNED / SHARED_OWNED).
/// 2. The host stage-2 agrees with the host state: a valid entry is an identity map of a page
///    the host may access; an annotated entry names the owner of a NOPAGE page, and a guest owner
///    annotation names the VM and gfn whose stage-2 maps the page as OWNED.
/// 3. Every guest leaf agrees with the host state (OWNED ↔ host NOPAGE, SHARED_OWNED ↔ host
///    SHARED_BORROWED, SHARED_BORROWED ↔ host SHARED_OWNED), and owned pages are mapped RWX.
/// 4. `host_share_guest_count` equals the number of guest SHARED_BORROWED mappings of the page.
/// 5. Pins only on pages shared with the hypervisor; hyp SHARED_BORROWED only on host SHARED_OWNED;
///    the host's long-term pins only on pages a guest shared with it (host SHARED_BORROWED).
/// 6. Every page EL2 holds is accounted for (a table of a live stage-2, a pool or memcache page,
///    a VM structure, an SMMU table, pool or stream-table page), and every table page's refcount
///    equals its non-zero entries.
/// 3a. A guest's invalid entries are empty, POISONED (last level), or Android's MMIO guard note
///     (last level, only in an enrolled protected VM under the android profile).
/// 7. The SMMU (Hypervisor+IOMMUInvariants.swift): every IOMMU mapping and every cached IOTLB
///    entry is allowed by ownership.
extension Hypervisor {
    /// Returns every violation found (at most `limit`), or an empty array when the state is sound.
    public func checkInvariants(limit: Int = 64) -> [InvariantViolation] {
        vmTableLock.withLock { _ in
            hostLock.withLock { _ in
                hypLock.withLock { _ in
                    var c = InvariantCollector(limit: limit)
                    checkLocked(&c)
                    if c.dropped > 0 {
                        c.violations.append(InvariantViolation(message: "... and \(c.dropped) more violations"))
                    }
                    return c.violations
                }
            }
        }
    }

    private func checkLocked(_ c: inout InvariantCollector) {
        let n = memory.pageCount
        var guestOwners = [UInt16](repeating: 0, count: n)
        var guestBorrows = [UInt32](repeating: 0, count: n)
        var guestSharedOwners = [UInt16](repeating: 0, count: n)
        var accounted = [HypPageUse](repeating: .none, count: n)

        func account(_ pa: PhysAddr, _ use: HypPageUse, _ what: String) {
            guard let i = memory.pageIndex(pa) else { return c.add("\(what) page \(pa) is not RAM") }
            if accounted[i] != .none { c.add("\(what) page \(pa) is also used as \(accounted[i])") }
            accounted[i] = use
            let p = vmemmap[i]
            if p.use != use { c.add("\(what) page \(pa) is tagged \(p.use), expected \(use)") }
            if p.hypState != .owned || p.hostState != .noPage {
                c.add("\(what) page \(pa) is host=\(p.hostState) hyp=\(p.hypState), expected host=NOPAGE hyp=OWNED")
            }
        }

        func checkTables(_ s2: Stage2PageTable, name: String) {
            for i in 0..<s2.geometry.pgdPages { account(s2.root.advanced(by: UInt64(i) << pageShift), s2.tableUse, "\(name) PGD") }
            var counts: [PhysAddr: Int] = [:]
            var tables = (0..<s2.geometry.pgdPages).map { s2.root.advanced(by: UInt64($0) << pageShift) }
            s2.forEachEntry { e in
                counts[e.tablePage, default: 0] += 1
                if e.isTable {
                    account(e.descriptor.tableAddress, s2.tableUse, "\(name) table")
                    tables.append(e.descriptor.tableAddress)
                }
            }
            for t in tables {
                let rc = Int(vmemmap[memory.pageIndex(t)!].refcount)
                if rc != counts[t, default: 0] {
                    c.add("\(name) table \(t) refcount \(rc) but \(counts[t, default: 0]) non-zero entries")
                }
            }
            for p in s2.freeTables.pages(memory: memory) { account(p, s2.freeUse, "\(name) pool") }
            for p in s2.memcache.pages(memory: memory) { account(p, s2.freeUse, "\(name) memcache") }
            let walked = tables.count - s2.geometry.pgdPages
            if walked != s2.tablePages {
                c.add("\(name) counts \(s2.tablePages) table pages but the walk finds \(walked)")
            }
        }

        // Guests: every leaf against the host view.
        let liveVMs = vmTable.compactMap { $0 }
        for vm in liveVMs {
            vm.lock.withLock { _ in
                let name = "vm \(vm.handle)"
                account(vm.metadataPage, .vmMetadata, "\(name) structure")
                checkTables(vm.stage2, name: name)
                vm.stage2.forEachEntry { e in
                    guard !e.isTable else { return }
                    let d = e.descriptor
                    guard d.isLeaf(level: e.level) else {
                        if d.isMMIOGuardNote {
                            // Android's MMIO guard: a page's note, written only for an enrolled
                            // protected VM under the android profile.
                            if e.level != Stage2Geometry.lastLevel {
                                c.add("\(name) ipa \(hex(e.ipa)): MMIO guard note above the last level (L\(e.level))")
                            }
                            if profile != .android || !vm.isProtected || !vm.mmioGuardEnrolled {
                                c.add("\(name) ipa \(hex(e.ipa)): MMIO guard note in a VM that did not enroll")
                            }
                        } else if !d.isPoisoned {
                            c.add("\(name) ipa \(hex(e.ipa)): invalid entry \(d) is neither empty, POISONED nor an MMIO guard note")
                        }
                        return
                    }
                    let state = d.pageState
                    if state != .sharedBorrowed && d.permissions != .rwx {
                        c.add("\(name) ipa \(hex(e.ipa)): \(state) page mapped \(d.permissions), pKVM maps RWX")
                    }
                    let base = d.outputAddress(level: e.level)
                    for k in 0..<(e.size >> pageShift) {
                        let pa = base.advanced(by: k << pageShift)
                        let gfn = GFN((e.ipa >> pageShift) + k)
                        guard let i = memory.pageIndex(pa) else {
                            c.add("\(name) gfn \(gfn) maps \(pa), which is not RAM"); continue
                        }
                        let host = vmemmap[i].hostState
                        switch state {
                        case .owned:
                            guestOwners[i] += 1
                            if host != .noPage { c.add("\(name) owns \(pa) (gfn \(gfn)) but host state is \(host)") }
                            let (h, _) = hostStage2.leaf(at: IPA(pa.rawValue))
                            let want = Stage2Descriptor.annotation(.donation, owner: .guest,
                                                                   meta: GuestOwnerMeta.encode(handle: vm.handle, gfn: gfn))
                            if h != want { c.add("host stage-2 entry for \(pa) is \(h), expected donation to \(name) gfn \(gfn)") }
                        case .sharedOwned:
                            guestOwners[i] += 1
                            guestSharedOwners[i] += 1
                            if host != .sharedBorrowed { c.add("\(name) shares \(pa) with the host but host state is \(host)") }
                        case .sharedBorrowed:
                            guestBorrows[i] += 1
                            if host != .sharedOwned { c.add("\(name) borrows \(pa) but host state is \(host)") }
                        default:
                            c.add("\(name) ipa \(hex(e.ipa)): valid leaf with reserved state bits")
                        }
                    }
                }
            }
        }
        checkTables(hostStage2, name: "host")
        // The SMMU collects apart: its closures write `c` themselves.
        var iommu = InvariantCollector(limit: c.limit)
        let dmaRefs = checkIOMMULocked(&iommu, liveVMs: liveVMs, account: account, checkTables: checkTables)
        for v in iommu.violations { c.add(v.message) }
        c.dropped += iommu.dropped

        // Every page: host stage-2, states, counters, single owner, accounting.
        for i in 0..<n {
            let p = vmemmap[i]
            let pa = memory.pageAddress(index: i)
            let h = p.hostState, y = p.hypState
            let (d, level) = hostStage2.leaf(at: IPA(pa.rawValue))
            if d.isValid {
                let oa = d.outputAddress(level: level).advanced(by: pa.rawValue & (Stage2Geometry.blockSize(level: level) - 1))
                if !d.isLeaf(level: level) || oa != pa { c.add("host stage-2 maps \(pa) to \(oa): not an identity map") }
                if !h.isAccessible { c.add("host stage-2 maps \(pa) but host state is \(h)") }
            } else if d.isZero {
                if !h.isAccessible { c.add("host stage-2 entry for \(pa) is empty but host state is \(h)") }
            } else {
                if h != .noPage { c.add("host stage-2 annotates \(pa) (\(d.decoded(level: level))) but host state is \(h)") }
                switch d.annotationOwner {
                case .hyp:
                    if y != .owned { c.add("host stage-2 says hyp owns \(pa) but hyp state is \(y)") }
                case .guest:
                    let (handle, gfn) = GuestOwnerMeta.decode(d.annotationMeta)
                    if liveVMs.first(where: { $0.handle == handle }) == nil {
                        c.add("\(pa) is donated to vm \(handle) gfn \(gfn), which does not exist")
                    } else if guestOwners[i] == 0 {
                        c.add("\(pa) is annotated as donated to vm \(handle) gfn \(gfn) but no guest maps it")
                    }
                default:
                    c.add("host stage-2 entry for \(pa) has an unexpected annotation \(d)")
                }
            }
            if h == .poison { c.add("\(pa) host state is POISON, which only guests have") }
            if y == .sharedOwned || y == .poison { c.add("\(pa) hyp state \(y) is never used by pKVM") }
            if y == .sharedBorrowed && h != .sharedOwned { c.add("hyp borrows \(pa) but host state is \(h)") }
            if y == .owned && h != .noPage { c.add("hyp owns \(pa) but host state is \(h)") }
            let isTable = p.use == .hostTable || p.use == .guestTable || p.use == .iommuTable
            let dma = dmaRefs.isEmpty ? 0 : dmaRefs[i]
            if !isTable && p.refcount < dma {
                c.add("\(pa) is mapped in \(dma) IOMMU paging domain entries but its refcount is \(p.refcount)")
            }
            if !isTable && p.refcount > dma && y != .sharedBorrowed {
                c.add("\(pa) has refcount \(p.refcount) (\(dma) DMA) but is neither pinned shared memory nor a table")
            }
            if p.hostShareGuestCount != guestBorrows[i] {
                c.add("\(pa) host_share_guest_count \(p.hostShareGuestCount) but \(guestBorrows[i]) guest mappings borrow it")
            }
            if p.hostShareGuestCount > 0 && (h != .sharedOwned || y != .noPage) {
                c.add("\(pa) is shared with guests but host=\(h) hyp=\(y)")
            }
            if h == .sharedBorrowed && guestSharedOwners[i] != 1 {
                c.add("host borrows \(pa) but \(guestSharedOwners[i]) guests share it")
            }
            let owners = (h == .owned || h == .sharedOwned ? 1 : 0) + (y == .owned ? 1 : 0) + Int(guestOwners[i])
            if owners != 1 { c.add("\(pa) has \(owners) owners (host=\(h) hyp=\(y) guests=\(guestOwners[i]))") }
            if !hostPins.isEmpty, let pins = hostPins[i], h != .sharedBorrowed {
                c.add("\(pa) holds \(pins) long-term host pins but host state is \(h), not a page a guest shared")
            }
            if p.use != .none && accounted[i] == .none {
                c.add("\(pa) is tagged \(p.use) but no stage-2, pool or VM holds it")
            }
        }
    }
}

/// Collects violations up to a limit.
struct InvariantCollector {
    let limit: Int
    var violations: [InvariantViolation] = []
    var dropped = 0

    mutating func add(_ message: String) {
        if violations.count < limit { violations.append(InvariantViolation(message: message)) } else { dropped += 1 }
    }
}
