import EL2
import Testing

/// Guest ↔ host transitions (spec 5.4, 9): MEM_SHARE, MEM_UNSHARE and the Android
/// MEM_RELINQUISH, each error in the documented order.
@Suite struct GuestHostTransitionTests {
    typealias View = Hypervisor.PageView
    static let donated = View(host: .noPage, hyp: .noPage)
    static let borrowedByHost = View(host: .sharedBorrowed, hyp: .noPage)

    /// A machine with a protected VM (page 10 donated at gfn 0x40) and a non-protected VM
    /// (page 11 shared at gfn 0x40, pages 512..1023 shared as a block at gfn 0x200).
    func machine() throws -> (TestMachine, p: VMHandle, np: VMHandle) {
        let m = try TestMachine()
        let p = try m.createVM(protected: true, at: 100)
        m.expectSound()
        let np = try m.createVM(protected: false, at: 200)
        m.expectSound()
        try m.hyp.hostDonateGuest(m.pfn(10), gfn: GFN(0x40), vm: p)
        m.expectSound()
        try m.hyp.hostShareGuest(m.pfn(11), gfn: GFN(0x40), pages: 1, vm: np, prot: .rwx)
        m.expectSound()
        try m.hyp.hostShareGuest(m.pfn(512), gfn: GFN(0x200), pages: 512, vm: np, prot: .rwx)
        m.expectSound()
        return (m, p, np)
    }

    // MARK: __pkvm_guest_share_host

    @Test func shareHostSucceeds() throws {
        let (m, p, _) = try machine()
        let pa = m.pfn(10).address
        try m.hyp.guestShareHost(vm: p, gfn: GFN(0x40))
        m.expectSound()
        let g = try m.guest(p, 0x40)
        #expect(g.state == .sharedOwned && g.phys == pa && g.level == 3 && g.permissions == .rwx)
        #expect(m.view(10) == Self.borrowedByHost)
        // The host stage-2 identity-maps the page again.
        let t = try #require(m.hyp.hostStage2.translate(IPA(pa.rawValue)))
        #expect(t.output == pa && t.level == 3 && t.descriptor.permissions == .rwx)
        #expect(try m.hyp.hostMemAbort(pa) == .alreadyMapped)
    }

    @Test func shareHostRefusalsInOrder() throws {
        let (m, p, np) = try machine()
        m.expectRefused(.EINVAL) { try m.hyp.guestShareHost(vm: VMHandle(rawValue: 0x1005), gfn: GFN(0x40)) }
        // 1. a valid last-level guest PTE.
        m.expectRefused(.ERANGE) { try m.hyp.guestShareHost(vm: p, gfn: m.firstGFNPastLimit) }
        m.expectRefused(.ENOENT) { try m.hyp.guestShareHost(vm: p, gfn: GFN(0x41)) }
        m.expectRefused(.ENOENT) { try m.hyp.guestShareHost(vm: p, gfn: GFN(0x12_3456)) }
        // A block: -E2BIG before the state check (it is SHARED_BORROWED, which would be -EPERM).
        m.expectRefused(.E2BIG) { try m.hyp.guestShareHost(vm: np, gfn: GFN(0x2AB)) }
        // 2. guest OWNED: SHARED_BORROWED (host share) and SHARED_OWNED (already shared).
        m.expectRefused(.EPERM) { try m.hyp.guestShareHost(vm: np, gfn: GFN(0x40)) }
        try m.hyp.guestShareHost(vm: p, gfn: GFN(0x40))
        m.expectSound()
        m.expectRefused(.EPERM) { try m.hyp.guestShareHost(vm: p, gfn: GFN(0x40)) }
        // 3. host NOPAGE cannot fail once the guest check passed in a sound state.
        // -EHWPOISON: see ReclaimTransitionTests.
    }

    // MARK: __pkvm_guest_unshare_host

    @Test func unshareHostSucceeds() throws {
        let (m, p, _) = try machine()
        let pa = m.pfn(10).address
        try m.hyp.guestShareHost(vm: p, gfn: GFN(0x40))
        m.expectSound()
        m.sink.reset()
        try m.hyp.guestUnshareHost(vm: p, gfn: GFN(0x40))
        m.expectSound()
        let g = try m.guest(p, 0x40)
        #expect(g.state == .owned && g.phys == pa && g.level == 3 && g.permissions == .rwx)
        #expect(m.view(10) == Self.donated)
        #expect(m.hostEntry(pa) == (m.donatedTo(p, gfn: 0x40), 3))
        // The host loses its mapping: invalidate it. The guest keeps its access: nothing there.
        #expect(m.sink.invalidations == [TLBInvalidation(vmid: .host, start: IPA(pa.rawValue), size: 0x1000)])
        // Round trip again.
        try m.hyp.guestShareHost(vm: p, gfn: GFN(0x40))
        m.expectSound()
        #expect(m.view(10) == Self.borrowedByHost)
    }

    @Test func unshareHostRefusalsInOrder() throws {
        let (m, p, np) = try machine()
        try m.hyp.hostDonateGuest(m.pfn(12), gfn: GFN(0x41), vm: p)
        m.expectSound()
        try m.hyp.guestShareHost(vm: p, gfn: GFN(0x41))
        m.expectSound()
        m.expectRefused(.EINVAL) { try m.hyp.guestUnshareHost(vm: VMHandle(rawValue: 0x1005), gfn: GFN(0x41)) }
        m.expectRefused(.ERANGE) { try m.hyp.guestUnshareHost(vm: p, gfn: m.firstGFNPastLimit) }
        m.expectRefused(.ENOENT) { try m.hyp.guestUnshareHost(vm: p, gfn: GFN(0x42)) }
        m.expectRefused(.E2BIG) { try m.hyp.guestUnshareHost(vm: np, gfn: GFN(0x200)) }
        // 2. guest SHARED_OWNED: OWNED (never shared) and SHARED_BORROWED.
        m.expectRefused(.EPERM) { try m.hyp.guestUnshareHost(vm: p, gfn: GFN(0x40)) }
        m.expectRefused(.EPERM) { try m.hyp.guestUnshareHost(vm: np, gfn: GFN(0x40)) }
        #expect(m.view(12) == Self.borrowedByHost)
        #expect(m.view(10) == Self.donated)
    }

    // MARK: __pkvm_guest_relinquish_to_host

    @Test func relinquishSucceeds() throws {
        let (m, p, _) = try machine()
        let pa = m.pfn(10).address
        m.fill(pa, with: 0x5A)
        let vmid = try #require(m.hyp.vm(p)).vmid
        m.sink.reset()
        let returned = try m.hyp.guestRelinquish(vm: p, gfn: GFN(0x40))
        m.expectSound()
        #expect(returned == pa)
        #expect(m.hyp.memory.isZeroPage(pa))
        #expect(m.view(10) == TestMachine.hostOwned)
        #expect(try m.guest(p, 0x40).state == .noPage)
        #expect(m.sink.invalidations.contains(TLBInvalidation(vmid: vmid, start: IPA(0x4_0000), size: 0x1000)))
        #expect(m.hyp.hostStage2.translate(IPA(pa.rawValue))?.output == pa)
        // Nothing left to relinquish there.
        m.expectRefused(.ENOENT) { try m.hyp.guestShareHost(vm: p, gfn: GFN(0x40)) }
        #expect(try m.hyp.guestRelinquish(vm: p, gfn: GFN(0x40)) == nil)
        m.expectSound()
    }

    @Test func relinquishNothingMappedIsNil() throws {
        let (m, p, _) = try machine()
        let before = m.snapshot()
        #expect(try m.hyp.guestRelinquish(vm: p, gfn: GFN(0x41)) == nil)
        #expect(try m.hyp.guestRelinquish(vm: p, gfn: GFN(0x9_9999)) == nil)
        m.expectSound()
        #expect(m.snapshot() == before)
        #expect(m.sink.invalidations.isEmpty)
    }

    @Test func relinquishOnNonProtectedVMIsNilAndChangesNothing() throws {
        let (m, _, np) = try machine()
        m.fill(m.pfn(11).address, with: 0x77)
        let before = m.snapshot()
        let invalidations = m.sink.invalidations.count
        // A shared page, a page inside a block, nothing mapped, and past the IPA limit: the
        // non-protected check comes first and answers 0 (nil) for all.
        for gfn in [GFN(0x40), GFN(0x2AB), GFN(0x41), m.firstGFNPastLimit] {
            #expect(try m.hyp.guestRelinquish(vm: np, gfn: gfn) == nil)
            m.expectSound()
        }
        #expect(m.snapshot() == before)
        #expect(m.sink.invalidations.count == invalidations)
        #expect(m.pageHolds(m.pfn(11).address, only: 0x77))
        #expect(m.view(11) == Hypervisor.PageView(host: .sharedOwned, hyp: .noPage, shareCount: 1))
    }

    @Test func relinquishRefusals() throws {
        let (m, p, _) = try machine()
        m.expectRefused(.EINVAL) { _ = try m.hyp.guestRelinquish(vm: VMHandle(rawValue: 0x1005), gfn: GFN(0x40)) }
        m.expectRefused(.ERANGE) { _ = try m.hyp.guestRelinquish(vm: p, gfn: m.firstGFNPastLimit) }
        // Guest not OWNED: shared with the host. The contents stay.
        try m.hyp.guestShareHost(vm: p, gfn: GFN(0x40))
        m.expectSound()
        m.fill(m.pfn(10).address, with: 0x33)
        m.expectRefused(.EPERM) { _ = try m.hyp.guestRelinquish(vm: p, gfn: GFN(0x40)) }
        #expect(m.pageHolds(m.pfn(10).address, only: 0x33))
        // -E2BIG (a block in a protected VM) and -EBUSY (a pinned guest-owned page) cannot be
        // reached: donations map pages only, and pins need a page shared with the hypervisor.
    }
}
