import EL2

/// A small, obviously-correct model of who owns and who may reach each page, written apart
/// from EL2 in the spirit of the Cambridge pKVM ghost specification: abstract owners and shares
/// instead of page-table bits, and for each operation the rule of whether it is allowed.
///
/// The fuzzer asks `expect` before an operation, applies it to EL2, then `commit`s it when EL2
/// said yes, and compares what EL2 now reports for every page and guest frame the operation
/// touched with `expectedPage` / `expectedGuest`.
public struct ReferenceModel: Sendable {
    public enum Owner: Hashable, Sendable {
        case host
        /// Donated to EL2 by `host_donate_hyp` (the only hyp pages the fuzzer names).
        case hyp
        case guest(vm: Int, gfn: UInt64)
    }

    public struct Page: Hashable, Sendable {
        public var owner = Owner.host
        /// Shared with EL2 (`host_share_hyp`), and EL2's pins on it.
        public var hypShared = false
        public var pins = 0
        public var ffaShared = false
        /// Guest frames the host shared this page into: bit `vm * gfns + slot` (a plain value, so
        /// the model costs no reference counting).
        public var borrowers: UInt64 = 0
        /// Owned by a guest that shared it back with the host (MEM_SHARE).
        public var guestShared = false
        /// Mappings in the host's paging domain (refcount design).
        public var dmaRefs = 0
        /// Every byte of the page (the fuzzer only ever writes whole pages of one byte).
        public var byte: UInt8 = 0

        /// Host OWNED: the host's and nobody else's.
        var exclusive: Bool { owner == .host && !hypShared && !ffaShared && borrowers == 0 }
        /// The host may touch it: its own, or a guest's it borrows.
        var hostAccessible: Bool { owner == .host || guestShared }
    }

    /// A guest frame.
    public enum Entry: Hashable, Sendable {
        case empty
        case owned(page: UInt64)
        case borrowed(page: UInt64, prot: Stage2Permissions)
        case poisoned
        case mmioNote
    }

    public struct VM: Hashable, Sendable {
        public var exists = true
        public var dying = false
        public var enrolled = false
        public var entries: [Entry]
    }

    public let domain: FuzzDomain
    public let profile: PKVMProfile
    public let iommu: IOMMUMode?
    public private(set) var pages: [Page]
    public private(set) var vms: [VM]

    /// Everything the model tracks, as one value: `pvm check` deduplicates states by it. VMs
    /// are slots, not EL2 handles, so the same world reached through different handles is one
    /// state.
    public struct State: Hashable, Sendable {
        public let pages: [Page]
        public let vms: [VM]
    }

    public var state: State { State(pages: pages, vms: vms) }

    public init(domain: FuzzDomain, profile: PKVMProfile, iommu: IOMMUMode?) {
        self.domain = domain
        self.profile = profile
        self.iommu = iommu
        pages = Array(repeating: Page(), count: domain.pages)
        vms = Array(repeating: VM(entries: Array(repeating: .empty, count: domain.gfns)), count: domain.vmCount)
    }

    // MARK: Lookups

    func index(_ page: UInt64) -> Int? {
        domain.pageRange.contains(page) ? Int(page - domain.firstPage) : nil
    }

    func slot(_ gfn: UInt64) -> Int? { domain.gfnRange.contains(gfn) ? Int(gfn - domain.firstGFN) : nil }

    func entry(_ vm: Int, _ gfn: UInt64) -> Entry {
        guard let s = slot(gfn) else { return .empty }
        return vms[vm].entries[s]
    }

    /// All pages `[page, page + n)` are tracked pages satisfying `rule`; false for an empty range.
    func all(_ page: UInt64, _ n: UInt64, _ rule: (Page) -> Bool) -> Bool {
        guard n > 0, n <= UInt64(domain.pages) else { return false }
        for k in 0 ..< n {
            guard let i = index(page &+ k), rule(pages[i]) else { return false }
        }
        return true
    }

    var refcountDesign: Bool { iommu == .refcount }

    // MARK: Rules

    /// What EL2 must do with `op`: it must refuse an operation the rules forbid and change
    /// nothing; an allowed one must succeed, except that one needing page-table pages may fail
    /// with -ENOMEM (then changing nothing either).
    public enum Expectation: Equatable, Sendable {
        case allowed
        /// Allowed, but it may need pages EL2 may lack.
        case allowedUnlessOutOfMemory
        case refused
        /// A guest hypercall that asks the host to fault pages in (or top up) and replay: no change.
        case retry
        /// The outcome is not the model's to predict (a call on pages it does not track); it
        /// must change nothing the model tracks.
        case unchecked
    }

    public func expect(_ op: FuzzOperation) -> Expectation {
        // Local functions, not closure values: a closure value would box a copy of the model.
        let refcount = refcountDesign
        func dmaFree(_ page: Page) -> Bool { !refcount || page.dmaRefs == 0 }
        func vmAlive(_ vm: Int) -> Bool { vms[vm].exists }
        func accepts(_ vm: Int) -> Bool { vms[vm].exists && !vms[vm].dying }
        func allowed(_ b: Bool, memory: Bool = false) -> Expectation {
            b ? (memory ? .allowedUnlessOutOfMemory : .allowed) : .refused
        }
        switch op {
        case let .shareHyp(p): return allowed(all(p, 1) { $0.exclusive && dmaFree($0) })
        case let .unshareHyp(p): return allowed(all(p, 1) { $0.owner == .host && $0.hypShared && $0.pins == 0 })
        case let .pin(p, n): return allowed(all(p, n) { $0.owner == .host && $0.hypShared && $0.pins < 0xFFFF })
        case let .unpin(p, n): return allowed(all(p, n) { $0.owner == .host && $0.hypShared && $0.pins > 0 })
        case let .donateHyp(p, n): return allowed(all(p, n) { $0.exclusive && dmaFree($0) })
        case let .hypDonateHost(p, n): return allowed(all(p, n) { $0.owner == .hyp })
        case let .shareFFA(p, n): return allowed(all(p, n) { $0.exclusive && dmaFree($0) })
        case let .unshareFFA(p, n): return allowed(all(p, n) { $0.ffaShared && dmaFree($0) })
        case let .shareGuest(p, g, n, vm, prot):
            guard n == 1, accepts(vm), slot(g) != nil, entry(vm, g) == .empty else { return .refused }
            return allowed(all(p, 1) { ($0.exclusive || ($0.owner == .host && !$0.hypShared && !$0.ffaShared))
                                    && dmaFree($0) && prot.isSubset(of: .rwx) }, memory: true)
        case let .unshareGuest(g, n, vm):
            guard n == 1, vmAlive(vm), case let .borrowed(p, _) = entry(vm, g) else { return .refused }
            return allowed(all(p, 1, dmaFree))
        case let .donateGuest(p, g, vm):
            guard accepts(vm), slot(g) != nil, entry(vm, g) == .empty else { return .refused }
            return allowed(all(p, 1) { $0.exclusive && dmaFree($0) }, memory: true)
        case let .guestShare(vm, g):
            guard vmAlive(vm), case let .owned(p) = entry(vm, g) else { return .refused }
            return allowed(!pages[index(p)!].guestShared)
        case let .guestUnshare(vm, g):
            guard vmAlive(vm), case let .owned(p) = entry(vm, g) else { return .refused }
            return allowed(pages[index(p)!].guestShared && dmaFree(pages[index(p)!]))
        case let .relinquish(vm, g):
            guard vmAlive(vm) else { return .refused }
            guard domain.isProtected(vm) else { return .allowed }  // a no-op success
            guard g < Self.ipaLimitGFN else { return .refused }  // -ERANGE
            switch entry(vm, g) {
            case let .owned(p):
                let page = pages[index(p)!]
                return allowed(!page.guestShared && page.pins == 0 && page.dmaRefs == 0)
            case .borrowed: return .refused
            default: return .allowed  // nothing to give back: success, no change
            }
        case let .forceReclaim(p):
            guard let i = index(p) else { return .unchecked }
            guard case let .guest(vm, _) = pages[i].owner, vmAlive(vm) else { return .refused }
            return allowed(!pages[i].guestShared)
        case let .reclaimGuest(g, vm), let .reclaimDying(vm, g):
            if case .reclaimDying = op, !(vmAlive(vm) && vms[vm].dying) { return .refused }
            guard vmAlive(vm) else { return .refused }
            switch entry(vm, g) {
            case .owned, .poisoned: return .allowed
            default: return .refused
            }
        case let .hostAccess(p):
            guard let i = index(p) else { return .unchecked }
            return allowed(pages[i].hostAccessible)
        case let .hostWrite(p, _):
            guard let i = index(p) else { return .unchecked }
            return allowed(pages[i].hostAccessible)
        case let .startTeardown(vm): return allowed(vmAlive(vm) && !vms[vm].dying)
        case let .finalize(vm): return allowed(vmAlive(vm) && vms[vm].dying)
        case let .teardown(vm): return allowed(vmAlive(vm) && !vms[vm].dying)
        case let .create(vm): return allowed(!vmAlive(vm), memory: true)
        case let .hvc(vm, function, x1, x2, x3): return expectHVC(vm, function, x1, x2, x3)
        case let .dmaWrite(stream, iova, _): return dmaTarget(stream, iova) != nil ? .allowed : .refused
        case let .iommuMap(iova, p):
            guard refcountDesign, let i = index(p), iova == FuzzDomain.iova(page: p) else { return .unchecked }
            let page = pages[i]
            let reachable = (page.owner == .host && !page.hypShared) || (page.guestShared)
            return allowed(reachable && page.dmaRefs == 0, memory: true)
        case let .iommuUnmap(iova):
            guard refcountDesign, let p = page(ofIOVA: iova), let i = index(p) else { return .unchecked }
            return allowed(pages[i].dmaRefs > 0)
        }
    }

    /// The page an IOVA of the host's paging domain names, by the fuzzer's mapping scheme.
    func page(ofIOVA iova: UInt64) -> UInt64? {
        let base = FuzzDomain.iova(page: 0)
        guard iova >= base, iova & 0xFFF == 0 else { return nil }
        return (iova - base) >> 12
    }

    /// The tracked page a full-page DMA write of `stream` at `iova` lands in, if it is allowed.
    func dmaTarget(_ stream: UInt32, _ iova: UInt64) -> Int? {
        guard iova & 0xFFF == 0 else { return nil }
        switch stream {
        case FuzzDomain.hostStream:
            if refcountDesign {
                guard let p = page(ofIOVA: iova), let i = index(p), pages[i].dmaRefs > 0 else { return nil }
                return i
            }
            guard iommu == .mirror, let i = index((iova >> 12) &- Self.ramBasePFN), pages[i].hostAccessible else { return nil }
            return i
        case domain.guestStream:
            guard iommu != nil, vms[0].exists, !vms[0].dying else { return nil }
            switch entry(0, iova >> 12) {
            case let .owned(p): return index(p)
            case let .borrowed(p, prot): return prot.contains(.write) ? index(p) : nil
            default: return nil
            }
        default:
            return nil
        }
    }

    /// The first guest frame past the 40-bit IPA space the fuzz machines use.
    static let ipaLimitGFN: UInt64 = 1 << 28

    /// The model session's RAM base, as a page frame (0x8000_0000 >> 12).
    static let ramBasePFN: UInt64 = 0x8_0000

    func expectHVC(_ vm: Int, _ function: SMCCCFunction, _ x1: UInt64, _ x2: UInt64, _ x3: UInt64) -> Expectation {
        guard vms[vm].exists else { return .unchecked }
        // A non-protected guest's hypercalls go to the host: EL2 changes nothing.
        guard domain.isProtected(vm) else { return .unchecked }
        let android = profile == .android
        let gfn = x1 >> 12
        switch function {
        case .memShare, .memUnshare:
            let share = function == .memShare
            let pagesAsked = android ? (x2 == 0 ? 1 : x2) : 1
            guard x1 & 0xFFF == 0, x3 == 0, android || x2 == 0 else { return .refused }
            guard gfn < Self.ipaLimitGFN, pagesAsked <= Self.ipaLimitGFN - gfn else { return .refused }
            for k in 0 ..< min(pagesAsked, 257) {
                switch entry(vm, gfn &+ k) {
                case let .owned(p) where share && !pages[index(p)!].guestShared: continue
                case let .owned(p) where !share && pages[index(p)!].guestShared && (!refcountDesign || pages[index(p)!].dmaRefs == 0):
                    continue
                case .empty where share:
                    // Nothing mapped: the host faults it in and the guest replays (mainline only
                    // for the first page; Android for the first page the walk meets).
                    if !android && k == 0 { return .retry }
                    if android { return .retry }
                    return .refused
                default: return .refused
                }
            }
            return .allowed
        case .memRelinquish:
            guard android, x1 & 0xFFF == 0, x2 | x3 == 0 else { return .refused }
            return expect(.relinquish(vm: vm, gfn: gfn))
        case .mmioGuardEnroll:
            return android ? .allowed : .refused
        case .mmioGuardMap:
            guard android, vms[vm].enrolled, x1 & 0xFFF == 0, gfn < Self.ipaLimitGFN else { return .refused }
            switch entry(vm, gfn) {
            case .empty, .mmioNote: return .retry  // allowed; may first ask for a memcache top-up
            default: return .refused
            }
        default:
            return .unchecked
        }
    }

    // MARK: Effects

    /// Applies an operation EL2 carried out. `guarded` is the MMIO_GUARD_MAP's x1, `done` a
    /// range MEM_SHARE / MEM_UNSHARE's.
    public mutating func commit(_ op: FuzzOperation, done: UInt64 = 1) {
        switch op {
        case let .shareHyp(p): pages[index(p)!].hypShared = true
        case let .unshareHyp(p): pages[index(p)!].hypShared = false
        case let .pin(p, n): for k in 0 ..< n { pages[index(p + k)!].pins += 1 }
        case let .unpin(p, n): for k in 0 ..< n { pages[index(p + k)!].pins -= 1 }
        case let .donateHyp(p, n): for k in 0 ..< n { pages[index(p + k)!].owner = .hyp }
        case let .hypDonateHost(p, n): for k in 0 ..< n { pages[index(p + k)!].owner = .host }
        case let .shareFFA(p, n): for k in 0 ..< n { pages[index(p + k)!].ffaShared = true }
        case let .unshareFFA(p, n): for k in 0 ..< n { pages[index(p + k)!].ffaShared = false }
        case let .shareGuest(p, g, _, vm, prot):
            pages[index(p)!].borrowers |= borrowerBit(vm, g)
            vms[vm].entries[slot(g)!] = .borrowed(page: p, prot: prot)
        case let .unshareGuest(g, _, vm):
            guard case let .borrowed(p, _) = entry(vm, g) else { return }
            pages[index(p)!].borrowers &= ~borrowerBit(vm, g)
            vms[vm].entries[slot(g)!] = .empty
        case let .donateGuest(p, g, vm):
            pages[index(p)!].owner = .guest(vm: vm, gfn: g)
            vms[vm].entries[slot(g)!] = .owned(page: p)
        case let .guestShare(vm, g):
            if case let .owned(p) = entry(vm, g) { pages[index(p)!].guestShared = true }
        case let .guestUnshare(vm, g):
            if case let .owned(p) = entry(vm, g) { pages[index(p)!].guestShared = false }
        case let .relinquish(vm, g):
            guard domain.isProtected(vm), case let .owned(p) = entry(vm, g) else { return }
            give(p, from: vm, g, zero: true)
        case let .forceReclaim(p):
            guard case let .guest(vm, g) = pages[index(p)!].owner else { return }
            give(p, from: vm, g, zero: true)
            vms[vm].entries[slot(g)!] = .poisoned
        case let .reclaimGuest(g, vm), let .reclaimDying(vm, g):
            if case let .owned(p) = entry(vm, g) { give(p, from: vm, g, zero: !pages[index(p)!].guestShared) }
        case .hostAccess: break
        case let .hostWrite(p, b): pages[index(p)!].byte = b
        case let .startTeardown(vm): vms[vm].dying = true
        case let .finalize(vm), let .teardown(vm): finalize(vm)
        case let .create(vm):
            vms[vm] = VM(entries: Array(repeating: .empty, count: domain.gfns))
        case let .hvc(vm, function, x1, x2, _):
            commitHVC(vm, function, x1, x2, done: done)
        case let .dmaWrite(stream, iova, byte):
            if let i = dmaTarget(stream, iova) { pages[i].byte = byte }
        case let .iommuMap(_, p): pages[index(p)!].dmaRefs += 1
        case let .iommuUnmap(iova): if let p = page(ofIOVA: iova), let i = index(p) { pages[i].dmaRefs -= 1 }
        }
    }

    mutating func commitHVC(_ vm: Int, _ function: SMCCCFunction, _ x1: UInt64, _ x2: UInt64, done: UInt64) {
        let gfn = x1 >> 12
        switch function {
        case .memShare: for k in 0 ..< done { commit(.guestShare(vm: vm, gfn: gfn + k)) }
        case .memUnshare: for k in 0 ..< done { commit(.guestUnshare(vm: vm, gfn: gfn + k)) }
        case .memRelinquish: commit(.relinquish(vm: vm, gfn: gfn))
        case .mmioGuardEnroll: vms[vm].enrolled = true
        case .mmioGuardMap: if let s = slot(gfn), done > 0 { vms[vm].entries[s] = .mmioNote }
        default: break
        }
    }

    func borrowerBit(_ vm: Int, _ g: UInt64) -> UInt64 { 1 << UInt64(vm * domain.gfns + slot(g)!) }

    /// The page goes back to the host from the guest frame that owned it.
    mutating func give(_ p: UInt64, from vm: Int, _ g: UInt64, zero: Bool) {
        let i = index(p)!
        pages[i].owner = .host
        pages[i].guestShared = false
        if zero { pages[i].byte = 0 }
        vms[vm].entries[slot(g)!] = .empty
    }

    /// Finalize (pvm's): every page the VM still maps goes back, then the VM is gone.
    mutating func finalize(_ vm: Int) {
        for s in 0 ..< domain.gfns {
            let g = domain.firstGFN + UInt64(s)
            switch vms[vm].entries[s] {
            case let .owned(p): give(p, from: vm, g, zero: !pages[index(p)!].guestShared)
            case let .borrowed(p, _): pages[index(p)!].borrowers &= ~borrowerBit(vm, g)
            default: break
            }
        }
        vms[vm] = VM(exists: false, entries: Array(repeating: .empty, count: domain.gfns))
    }

    // MARK: What EL2 must report

    /// The host and hyp view of tracked page `p` that follows from the model.
    public func expectedPage(_ p: UInt64) -> Hypervisor.PageView? {
        guard let i = index(p) else { return nil }
        let page = pages[i]
        let host: PageState, hyp: PageState
        switch page.owner {
        case .host:
            host = page.exclusive ? .owned : .sharedOwned
            hyp = page.hypShared ? .sharedBorrowed : .noPage
        case .hyp:
            (host, hyp) = (.noPage, .owned)
        case .guest:
            host = page.guestShared ? .sharedBorrowed : .noPage
            hyp = .noPage
        }
        return Hypervisor.PageView(host: host, hyp: hyp, refcount: UInt16(page.pins + page.dmaRefs),
                                   shareCount: UInt32(page.borrowers.nonzeroBitCount))
    }

    /// The guest state and page of a VM's frame that follows from the model.
    public func expectedGuest(_ vm: Int, _ gfn: UInt64) -> (state: PageState, page: UInt64?)? {
        guard vms[vm].exists else { return nil }
        switch entry(vm, gfn) {
        case .empty: return (.noPage, nil)
        case .poisoned: return (.poison, nil)
        case .mmioNote: return (.mmio, nil)
        case let .borrowed(p, _): return (.sharedBorrowed, p)
        case let .owned(p): return (pages[index(p)!].guestShared ? .sharedOwned : .owned, p)
        }
    }

    /// The byte every byte of tracked page `p` must hold.
    public func expectedByte(_ p: UInt64) -> UInt8? { index(p).map { pages[$0].byte } }
}
