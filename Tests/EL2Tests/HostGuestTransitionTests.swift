import EL2
import Testing

/// Host → guest transitions (spec 5.3, 5.4): host_share_guest, host_unshare_guest and
/// host_donate_guest, each error in the documented order.
///
/// Not covered: the share count reaching U32_MAX (-EBUSY) needs 2^32 guest mappings.
@Suite struct HostGuestTransitionTests {
    typealias View = Hypervisor.PageView

    static func sharedWithGuests(_ count: UInt32) -> View {
        View(host: .sharedOwned, hyp: .noPage, shareCount: count)
    }

    static let donated = View(host: .noPage, hyp: .noPage)

    /// A machine with a non-protected VM at page 100 and a protected one at page 200.
    func machine(megabytes: UInt64 = 64) throws -> (TestMachine, np: VMHandle, p: VMHandle) {
        let m = try TestMachine(megabytes: megabytes)
        let np = try m.createVM(protected: false, at: 100)
        m.expectSound()
        let p = try m.createVM(protected: true, at: 200)
        m.expectSound()
        return (m, np, p)
    }

    // MARK: __pkvm_host_share_guest

    @Test func shareGuestPage() throws {
        let (m, np, _) = try machine()
        try m.hyp.hostShareGuest(m.pfn(10), gfn: GFN(0x40), pages: 1, vm: np, prot: .rwx)
        m.expectSound()
        #expect(m.view(10) == Self.sharedWithGuests(1))
        let g = try m.guest(np, 0x40)
        #expect(g.state == .sharedBorrowed)
        #expect(g.phys == m.pfn(10).address)
        #expect(g.level == 3)
        #expect(g.permissions == .rwx)
        // The host keeps its access: no host stage-2 change, no invalidation.
        #expect(m.hostEntry(m.pfn(10).address).descriptor.isZero)
        #expect(m.sink.invalidations.isEmpty)
    }

    @Test(arguments: [Stage2Permissions.read, .rw, [.read, .execute], .execute, []])
    func shareGuestWithProt(prot: Stage2Permissions) throws {
        let (m, np, _) = try machine()
        try m.hyp.hostShareGuest(m.pfn(10), gfn: GFN(0x40), pages: 1, vm: np, prot: prot)
        m.expectSound()
        let g = try m.guest(np, 0x40)
        #expect(g.permissions == prot)
        let d = try m.stage2(np).leaf(at: IPA(0x40_000)).descriptor
        #expect(d == .leaf(level: 3, output: m.pfn(10).address, permissions: prot, state: .sharedBorrowed))
    }

    @Test func shareGuestBlock() throws {
        let (m, np, _) = try machine()
        try m.hyp.hostShareGuest(m.pfn(1024), gfn: GFN(0x1000), pages: 512, vm: np, prot: .rw)
        m.expectSound()
        for n: UInt64 in [1024, 1300, 1535] { #expect(m.view(n) == Self.sharedWithGuests(1)) }
        #expect(m.view(1536) == TestMachine.hostOwned)
        let g = try m.guest(np, 0x1001)
        #expect(g.level == 2 && g.phys == m.pfn(1025).address && g.permissions == .rw)
        try m.hyp.hostUnshareGuest(gfn: GFN(0x1000), pages: 512, vm: np)
        m.expectSound()
        for n: UInt64 in [1024, 1300, 1535] { #expect(m.view(n) == TestMachine.hostOwned) }
    }

    @Test func shareCountAcrossTwoVMs() throws {
        let (m, np, _) = try machine()
        let np2 = try m.createVM(protected: false, at: 300)
        m.expectSound()
        try m.hyp.hostShareGuest(m.pfn(10), gfn: GFN(0x40), pages: 1, vm: np, prot: .rwx)
        m.expectSound()
        try m.hyp.hostShareGuest(m.pfn(10), gfn: GFN(0x80), pages: 1, vm: np2, prot: .read)
        m.expectSound()
        #expect(m.view(10) == Self.sharedWithGuests(2))
        #expect(try m.guest(np2, 0x80).phys == m.pfn(10).address)
        try m.hyp.hostUnshareGuest(gfn: GFN(0x40), pages: 1, vm: np)
        m.expectSound()
        #expect(m.view(10) == Self.sharedWithGuests(1))
        #expect(try m.guest(np, 0x40).state == .noPage)
        try m.hyp.hostUnshareGuest(gfn: GFN(0x80), pages: 1, vm: np2)
        m.expectSound()
        #expect(m.view(10) == TestMachine.hostOwned)
    }

    @Test func shareCountWithinOneVMAndWithBlocks() throws {
        let (m, np, _) = try machine()
        let np2 = try m.createVM(protected: false, at: 300)
        m.expectSound()
        // The same page at two gfns of one VM.
        try m.hyp.hostShareGuest(m.pfn(1030), gfn: GFN(0x40), pages: 1, vm: np, prot: .rwx)
        m.expectSound()
        try m.hyp.hostShareGuest(m.pfn(1030), gfn: GFN(0x41), pages: 1, vm: np, prot: .rwx)
        m.expectSound()
        #expect(m.view(1030) == Self.sharedWithGuests(2))
        // A block over it in another VM: SHARED_OWNED pages with a count pass the check.
        try m.hyp.hostShareGuest(m.pfn(1024), gfn: GFN(0x200), pages: 512, vm: np2, prot: .rwx)
        m.expectSound()
        #expect(m.view(1030) == Self.sharedWithGuests(3))
        #expect(m.view(1031) == Self.sharedWithGuests(1))
        try m.hyp.hostUnshareGuest(gfn: GFN(0x200), pages: 512, vm: np2)
        m.expectSound()
        #expect(m.view(1030) == Self.sharedWithGuests(2))
        #expect(m.view(1031) == TestMachine.hostOwned)
    }

    @Test func shareGuestRefusalsInOrder() throws {
        let (m, np, p) = try machine()
        let bad = Stage2Permissions(rawValue: 8)
        // 1. prot outside RWX.
        m.expectRefused(.EINVAL) { try m.hyp.hostShareGuest(m.pfn(10), gfn: GFN(1), pages: 1, vm: np, prot: bad) }
        // 2. pfn_range_is_valid.
        m.expectRefused(.EINVAL) {
            try m.hyp.hostShareGuest(m.firstInvalidPFN, gfn: GFN(1), pages: 1, vm: np, prot: .rwx)
        }
        // 3. transition size: 1 page or one aligned 2 MiB block.
        for pages: UInt64 in [0, 2, 511, 513, 1024] {
            m.expectRefused(.EINVAL) { try m.hyp.hostShareGuest(m.pfn(512), gfn: GFN(0x200), pages: pages, vm: np, prot: .rwx) }
        }
        m.expectRefused(.EINVAL) { try m.hyp.hostShareGuest(m.pfn(513), gfn: GFN(0x200), pages: 512, vm: np, prot: .rwx) }
        m.expectRefused(.EINVAL) { try m.hyp.hostShareGuest(m.pfn(512), gfn: GFN(0x201), pages: 512, vm: np, prot: .rwx) }
        // 4. memory check.
        m.expectRefused(.EPERM) { try m.hyp.hostShareGuest(TestMachine.mmioPFN, gfn: GFN(1), pages: 1, vm: np, prot: .rwx) }
        m.expectRefused(.EPERM) {
            try m.hyp.hostShareGuest(m.pfn(m.ramPages), gfn: GFN(0x200), pages: 512, vm: np, prot: .rwx)
        }
        // Unknown VM.
        m.expectRefused(.EINVAL) {
            try m.hyp.hostShareGuest(m.pfn(10), gfn: GFN(1), pages: 1, vm: VMHandle(rawValue: 0x1050), prot: .rwx)
        }
        // 5. guest NOPAGE over the whole range.
        try m.hyp.hostShareGuest(m.pfn(11), gfn: GFN(0x201), pages: 1, vm: np, prot: .rwx)
        m.expectSound()
        m.expectRefused(.EPERM) { try m.hyp.hostShareGuest(m.pfn(12), gfn: GFN(0x201), pages: 1, vm: np, prot: .rwx) }
        m.expectRefused(.EPERM) { try m.hyp.hostShareGuest(m.pfn(512), gfn: GFN(0x200), pages: 512, vm: np, prot: .rwx) }
        // 6. host state: shared with hyp, with FF-A, donated to hyp, donated to a guest.
        try m.hyp.hostShareHyp(m.pfn(20))
        m.expectSound()
        try m.hyp.hostShareFFA(m.pfn(21), pages: 1)
        m.expectSound()
        try m.hyp.hostDonateHyp(m.pfn(22), pages: 1)
        m.expectSound()
        try m.hyp.hostDonateGuest(m.pfn(23), gfn: GFN(23), vm: p)
        m.expectSound()
        for n: UInt64 in 20...23 {
            m.expectRefused(.EPERM) { try m.hyp.hostShareGuest(m.pfn(n), gfn: GFN(0x300), pages: 1, vm: np, prot: .rwx) }
        }
        m.expectRefused(.EPERM) {
            try m.hyp.hostShareGuest(m.hyp.carveout.lowerBound, gfn: GFN(0x300), pages: 1, vm: np, prot: .rwx)
        }
        // One page of a block not OWNED: nothing is shared.
        try m.hyp.hostDonateHyp(m.pfn(1100), pages: 1)
        m.expectSound()
        m.expectRefused(.EPERM) { try m.hyp.hostShareGuest(m.pfn(1024), gfn: GFN(0x400), pages: 512, vm: np, prot: .rwx) }
        #expect(m.view(1024) == TestMachine.hostOwned)
        #expect(try m.guest(np, 0x400).state == .noPage)
        // 7. memcache below kvm_mmu_cache_min_pages.
        let s2 = try m.stage2(np)
        let keep = m.hyp.geometry.minMemcachePages - 1
        try m.hyp.shrinkMemcache(vm: np, by: s2.memcache.count - keep)
        m.expectSound()
        #expect(s2.memcache.count == keep)
        m.expectRefused(.ENOMEM) { try m.hyp.hostShareGuest(m.pfn(30), gfn: GFN(0x9000), pages: 1, vm: np, prot: .rwx) }
        m.expectRefused(.ENOMEM) { try m.hyp.hostShareGuest(m.pfn(1536), gfn: GFN(0x800), pages: 512, vm: np, prot: .rwx) }
        #expect(m.view(30) == TestMachine.hostOwned)
    }

    @Test func shareGuestPrecedence() throws {
        let (m, np, p) = try machine()
        let bad = Stage2Permissions(rawValue: 0x80)
        try m.hyp.hostShareGuest(m.pfn(11), gfn: GFN(0x201), pages: 1, vm: np, prot: .rwx)
        m.expectSound()
        try m.hyp.hostDonateGuest(m.pfn(12), gfn: GFN(1), vm: p)
        m.expectSound()
        // Bad prot and an MMIO pfn (memory check: -EPERM): the prot -EINVAL wins.
        m.expectRefused(.EINVAL) { try m.hyp.hostShareGuest(TestMachine.mmioPFN, gfn: GFN(1), pages: 1, vm: np, prot: bad) }
        // Bad prot and a mapped gfn and a non-OWNED page: still the prot -EINVAL.
        m.expectRefused(.EINVAL) { try m.hyp.hostShareGuest(m.pfn(12), gfn: GFN(0x201), pages: 1, vm: np, prot: bad) }
        // Bad transition size and an MMIO pfn: the size -EINVAL before the memory -EPERM.
        m.expectRefused(.EINVAL) { try m.hyp.hostShareGuest(TestMachine.mmioPFN, gfn: GFN(0), pages: 2, vm: np, prot: .rwx) }
        // MMIO pfn and a gfn past the IPA limit: memory -EPERM before the walk's -ERANGE.
        m.expectRefused(.EPERM) {
            try m.hyp.hostShareGuest(TestMachine.mmioPFN, gfn: m.firstGFNPastLimit, pages: 1, vm: np, prot: .rwx)
        }
        // gfn past the limit and a page the host does not own: guest check (-ERANGE) first.
        m.expectRefused(.ERANGE) { try m.hyp.hostShareGuest(m.pfn(12), gfn: m.firstGFNPastLimit, pages: 1, vm: np, prot: .rwx) }
        // Empty memcache and a page the host does not own: the host -EPERM before -ENOMEM.
        try m.hyp.shrinkMemcache(vm: np, by: 100)
        m.expectSound()
        #expect(try m.stage2(np).memcache.count == 0)
        m.expectRefused(.EPERM) { try m.hyp.hostShareGuest(m.pfn(12), gfn: GFN(0x5000), pages: 1, vm: np, prot: .rwx) }
        // ... and a mapped gfn before -ENOMEM.
        m.expectRefused(.EPERM) { try m.hyp.hostShareGuest(m.pfn(13), gfn: GFN(0x201), pages: 1, vm: np, prot: .rwx) }
        m.expectRefused(.ENOMEM) { try m.hyp.hostShareGuest(m.pfn(13), gfn: GFN(0x5000), pages: 1, vm: np, prot: .rwx) }
    }

    @Test func shareGuestBlockStraddlingRAMEndIsEINVAL() throws {
        // RAM ends at 0x8410_0000, in the middle of a 2 MiB block.
        let m = try TestMachine(megabytes: 65)
        let np = try m.createVM(protected: false, at: 100)
        m.expectSound()
        m.expectRefused(.EINVAL) {
            try m.hyp.hostShareGuest(PFN(0x8_4000), gfn: GFN(0x200), pages: 512, vm: np, prot: .rwx)
        }
        // Entirely past RAM: -EPERM.
        m.expectRefused(.EPERM) {
            try m.hyp.hostShareGuest(PFN(0x8_4200), gfn: GFN(0x200), pages: 512, vm: np, prot: .rwx)
        }
    }

    // MARK: __pkvm_host_unshare_guest

    @Test func unshareGuestRefusalsInOrder() throws {
        let (m, np, p) = try machine()
        try m.hyp.hostShareGuest(m.pfn(10), gfn: GFN(0x40), pages: 1, vm: np, prot: .rwx)
        m.expectSound()
        try m.hyp.hostShareGuest(m.pfn(512), gfn: GFN(0x200), pages: 512, vm: np, prot: .rwx)
        m.expectSound()
        try m.hyp.hostDonateGuest(m.pfn(11), gfn: GFN(0x400), vm: p)
        m.expectSound()
        try m.hyp.hostDonateGuest(m.pfn(12), gfn: GFN(0x401), vm: p)
        m.expectSound()
        try m.hyp.guestShareHost(vm: p, gfn: GFN(0x401))
        m.expectSound()
        // 1. transition size.
        for pages: UInt64 in [0, 3, 256] {
            m.expectRefused(.EINVAL) { try m.hyp.hostUnshareGuest(gfn: GFN(0x200), pages: pages, vm: np) }
        }
        m.expectRefused(.EINVAL) { try m.hyp.hostUnshareGuest(gfn: GFN(0x201), pages: 512, vm: np) }
        // Unknown VM.
        m.expectRefused(.EINVAL) { try m.hyp.hostUnshareGuest(gfn: GFN(0x40), pages: 1, vm: VMHandle(rawValue: 0xFFFF)) }
        // 2. past the IPA limit.
        m.expectRefused(.ERANGE) { try m.hyp.hostUnshareGuest(gfn: m.firstGFNPastLimit, pages: 1, vm: np) }
        // 3. invalid leaf.
        m.expectRefused(.ENOENT) { try m.hyp.hostUnshareGuest(gfn: GFN(0x41), pages: 1, vm: np) }
        m.expectRefused(.ENOENT) { try m.hyp.hostUnshareGuest(gfn: GFN(0x40), pages: 1, vm: p) }
        m.expectRefused(.ENOENT) { try m.hyp.hostUnshareGuest(gfn: GFN(0x600), pages: 512, vm: np) }
        // 4. the request is not the mapping's granule.
        m.expectRefused(.E2BIG) { try m.hyp.hostUnshareGuest(gfn: GFN(0x200), pages: 1, vm: np) }
        m.expectRefused(.E2BIG) { try m.hyp.hostUnshareGuest(gfn: GFN(0x3FF), pages: 1, vm: np) }
        // 5. guest not SHARED_BORROWED: pages a protected guest owns or shares with the host.
        m.expectRefused(.EPERM) { try m.hyp.hostUnshareGuest(gfn: GFN(0x400), pages: 1, vm: p) }
        m.expectRefused(.EPERM) { try m.hyp.hostUnshareGuest(gfn: GFN(0x401), pages: 1, vm: p) }
        // 6. host SHARED_OWNED with a count: only broken in an unsound state, not reachable here.
        #expect(m.view(10) == Self.sharedWithGuests(1))
        #expect(m.view(600) == Self.sharedWithGuests(1))
    }

    @Test func unshareGuestPrecedence() throws {
        let (m, _, p) = try machine()
        try m.hyp.hostDonateGuest(m.pfn(11), gfn: GFN(0x400), vm: p)
        m.expectSound()
        // A 2 MiB request at a page the guest owns: the granule (-E2BIG) before the state (-EPERM).
        m.expectRefused(.E2BIG) { try m.hyp.hostUnshareGuest(gfn: GFN(0x400), pages: 512, vm: p) }
        // A bad size at an owned page: the size -EINVAL first.
        m.expectRefused(.EINVAL) { try m.hyp.hostUnshareGuest(gfn: GFN(0x400), pages: 2, vm: p) }
        // Nothing mapped at a gfn past the limit: -ERANGE before -ENOENT.
        m.expectRefused(.ERANGE) { try m.hyp.hostUnshareGuest(gfn: GFN(m.firstGFNPastLimit.rawValue + 3), pages: 1, vm: p) }
    }

    // MARK: __pkvm_host_donate_guest

    @Test func donateGuestPage() throws {
        let (m, _, p) = try machine()
        m.sink.reset()
        try m.hyp.hostDonateGuest(m.pfn(10), gfn: GFN(0x40), vm: p)
        m.expectSound()
        #expect(m.view(10) == Self.donated)
        let g = try m.guest(p, 0x40)
        #expect(g.state == .owned && g.phys == m.pfn(10).address && g.level == 3 && g.permissions == .rwx)
        let (d, level) = m.hostEntry(m.pfn(10).address)
        #expect(level == 3)
        #expect(d == m.donatedTo(p, gfn: 0x40))
        // DONATION (2 << 60) + (0x1001 | 0x40 << 16) << 4 + owner GUEST (2 << 1).
        #expect(d.rawValue == 0x2000_0000_0401_0014)
        // The host had not faulted the page in: nothing to invalidate.
        #expect(m.sink.invalidations.isEmpty)
        // Two gfns, two pages; gfns next to each other share the last-level table.
        try m.hyp.hostDonateGuest(m.pfn(11), gfn: GFN(0x41), vm: p)
        m.expectSound()
        #expect(try m.guest(p, 0x41).phys == m.pfn(11).address)
        #expect(try m.stage2(p).tablePages == m.hyp.geometry.levels - 1)
    }

    @Test func donateGuestInvalidatesAHostMapping() throws {
        let (m, _, p) = try machine()
        _ = try m.hyp.hostMemAbort(m.pfn(10).address)
        m.expectSound()
        m.sink.reset()
        try m.hyp.hostDonateGuest(m.pfn(10), gfn: GFN(0x40), vm: p)
        m.expectSound()
        #expect(m.sink.invalidations == [TLBInvalidation(vmid: .host, start: IPA(m.pfn(10).address.rawValue), size: 0x1000)])
    }

    @Test func donateGuestRefusalsInOrder() throws {
        let (m, np, p) = try machine()
        // Unknown VM.
        m.expectRefused(.EINVAL) { try m.hyp.hostDonateGuest(m.pfn(10), gfn: GFN(1), vm: VMHandle(rawValue: 0)) }
        // 1. memory check (no pfn_range_is_valid: an absurd pfn is the memory -EPERM).
        m.expectRefused(.EPERM) { try m.hyp.hostDonateGuest(TestMachine.mmioPFN, gfn: GFN(1), vm: p) }
        m.expectRefused(.EPERM) { try m.hyp.hostDonateGuest(m.firstInvalidPFN, gfn: GFN(1), vm: p) }
        m.expectRefused(.EPERM) { try m.hyp.hostDonateGuest(PFN(1 << 50), gfn: GFN(1), vm: p) }
        // 1. host OWNED.
        try m.hyp.hostShareHyp(m.pfn(20))
        m.expectSound()
        try m.hyp.hostShareFFA(m.pfn(21), pages: 1)
        m.expectSound()
        try m.hyp.hostDonateHyp(m.pfn(22), pages: 1)
        m.expectSound()
        try m.hyp.hostDonateGuest(m.pfn(23), gfn: GFN(23), vm: p)
        m.expectSound()
        try m.hyp.hostShareGuest(m.pfn(24), gfn: GFN(24), pages: 1, vm: np, prot: .rwx)
        m.expectSound()
        for n: UInt64 in 20...24 {
            m.expectRefused(.EPERM) { try m.hyp.hostDonateGuest(m.pfn(n), gfn: GFN(0x100), vm: p) }
        }
        // 2. guest NOPAGE.
        m.expectRefused(.EPERM) { try m.hyp.hostDonateGuest(m.pfn(30), gfn: GFN(23), vm: p) }
        m.expectRefused(.ERANGE) { try m.hyp.hostDonateGuest(m.pfn(30), gfn: m.firstGFNPastLimit, vm: p) }
        // A gfn inside a block another transition mapped.
        try m.hyp.hostShareGuest(m.pfn(512), gfn: GFN(0x200), pages: 512, vm: np, prot: .rwx)
        m.expectSound()
        m.expectRefused(.EPERM) { try m.hyp.hostDonateGuest(m.pfn(30), gfn: GFN(0x2AA), vm: np) }
        // 3. memcache.
        try m.hyp.shrinkMemcache(vm: p, by: try m.stage2(p).memcache.count - (m.hyp.geometry.minMemcachePages - 1))
        m.expectSound()
        m.expectRefused(.ENOMEM) { try m.hyp.hostDonateGuest(m.pfn(30), gfn: GFN(0x100), vm: p) }
        #expect(m.view(30) == TestMachine.hostOwned)
        #expect(try m.guest(p, 0x100).state == .noPage)
        // Topped up again, the same call succeeds.
        try m.hyp.topUpMemcache(vm: p, pages: [m.pfn(40)])
        m.expectSound()
        try m.hyp.hostDonateGuest(m.pfn(30), gfn: GFN(0x100), vm: p)
        m.expectSound()
        #expect(m.view(30) == Self.donated)
    }

    @Test func donateGuestPrecedence() throws {
        let (m, _, p) = try machine()
        try m.hyp.hostDonateGuest(m.pfn(10), gfn: GFN(0x40), vm: p)
        m.expectSound()
        try m.hyp.hostDonateHyp(m.pfn(11), pages: 1)
        m.expectSound()
        // Unknown VM and an MMIO pfn: the VM lookup comes first.
        m.expectRefused(.EINVAL) { try m.hyp.hostDonateGuest(TestMachine.mmioPFN, gfn: GFN(1), vm: VMHandle(rawValue: 0x10FF)) }
        // Page not host-owned and gfn already mapped: -EPERM from the host check (the guest check
        // would also say -EPERM) ...
        m.expectRefused(.EPERM) { try m.hyp.hostDonateGuest(m.pfn(11), gfn: GFN(0x40), vm: p) }
        // ... and with a gfn past the limit, the host check still wins over the walk's -ERANGE.
        m.expectRefused(.EPERM) { try m.hyp.hostDonateGuest(m.pfn(11), gfn: m.firstGFNPastLimit, vm: p) }
        m.expectRefused(.EPERM) { try m.hyp.hostDonateGuest(TestMachine.mmioPFN, gfn: m.firstGFNPastLimit, vm: p) }
        // Empty memcache: a mapped gfn (-EPERM) and a foreign page (-EPERM) come before -ENOMEM.
        try m.hyp.shrinkMemcache(vm: p, by: 100)
        m.expectSound()
        m.expectRefused(.EPERM) { try m.hyp.hostDonateGuest(m.pfn(12), gfn: GFN(0x40), vm: p) }
        m.expectRefused(.EPERM) { try m.hyp.hostDonateGuest(m.pfn(11), gfn: GFN(0x41), vm: p) }
        m.expectRefused(.ERANGE) { try m.hyp.hostDonateGuest(m.pfn(12), gfn: m.firstGFNPastLimit, vm: p) }
        m.expectRefused(.ENOMEM) { try m.hyp.hostDonateGuest(m.pfn(12), gfn: GFN(0x41), vm: p) }
    }

    // MARK: VM resolution comes first

    @Test func unknownVMIsRefusedBeforeAnyOtherCheck() throws {
        let (m, _, _) = try machine()
        let missing = VMHandle(rawValue: 0x1050)
        // pKVM's handlers (spec 5.6) fail with -EINVAL when they find no VM, before the
        // transition runs any check: an MMIO pfn, bad prot and bad size still give -EINVAL.
        m.expectRefused(.EINVAL) {
            try m.hyp.hostShareGuest(TestMachine.mmioPFN, gfn: GFN(1), pages: 1, vm: missing, prot: .rwx)
        }
        m.expectRefused(.EINVAL) { try m.hyp.hostUnshareGuest(gfn: GFN(1), pages: 3, vm: missing) }
        m.expectRefused(.EINVAL) { try m.hyp.hostDonateGuest(TestMachine.mmioPFN, gfn: GFN(1), vm: missing) }
    }
}
