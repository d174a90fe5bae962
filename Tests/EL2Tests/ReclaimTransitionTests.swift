import EL2
import Testing

/// Reclaim (spec 5.5, 7, 8): force-reclaim with poisoning, and teardown reclaim, with the
/// zeroing rules (OWNED pages come back zeroed, SHARED_OWNED pages intact).
@Suite struct ReclaimTransitionTests {
    /// A machine with a protected VM at page 100 owning page 10 at gfn 0x40, filled with 0xA5.
    func machine() throws -> (TestMachine, p: VMHandle) {
        let m = try TestMachine()
        let p = try m.createVM(protected: true, at: 100)
        m.expectSound()
        try m.hyp.hostDonateGuest(m.pfn(10), gfn: GFN(0x40), vm: p)
        m.expectSound()
        m.fill(m.pfn(10).address)
        m.expectSound()
        return (m, p)
    }

    // MARK: __pkvm_host_force_reclaim_page_guest

    @Test func forceReclaimPoisonsAndZeroes() throws {
        let (m, p) = try machine()
        let pa = m.pfn(10).address
        let vmid = try #require(m.hyp.vm(p)).vmid
        m.sink.reset()
        // Any address inside the page names it.
        try m.hyp.hostForceReclaimPageGuest(pa.advanced(by: 0x123))
        m.expectSound()
        #expect(m.hyp.memory.isZeroPage(pa))
        #expect(m.view(10) == TestMachine.hostOwned)
        let g = try m.guest(p, 0x40)
        #expect(g.state == .poison && g.phys == nil && g.level == nil)
        #expect(try m.hyp.isPoisoned(vm: p, ipa: IPA(0x4_0000)))
        #expect(try m.stage2(p).leaf(at: IPA(0x4_0000)) == (Stage2Descriptor.annotation(.poisoned, owner: .host), 3))
        #expect(m.sink.invalidations.contains(TLBInvalidation(vmid: vmid, start: IPA(0x4_0000), size: 0x1000)))
        let t = try #require(m.hyp.hostStage2.translate(IPA(pa.rawValue)))
        #expect(t.output == pa && t.descriptor.permissions == .rwx)
        // Teardown walks the poisoned entry as a mapping with no page.
        let mappings = try m.hyp.guestMappings(vm: p)
        #expect(mappings.count == 1)
        #expect(mappings.first?.gfn == GFN(0x40) && mappings.first?.state == .poison)
        #expect(mappings.first?.phys == nil && mappings.first?.pages == 1)
    }

    @Test func poisonedGFNAfterForceReclaim() throws {
        let (m, p) = try machine()
        try m.hyp.hostForceReclaimPageGuest(m.pfn(10).address)
        m.expectSound()
        // MEM_SHARE / MEM_UNSHARE see -EHWPOISON; a new donation at the IPA is -EPERM.
        m.expectRefused(.EHWPOISON) { try m.hyp.guestShareHost(vm: p, gfn: GFN(0x40)) }
        m.expectRefused(.EHWPOISON) { try m.hyp.guestUnshareHost(vm: p, gfn: GFN(0x40)) }
        m.expectRefused(.EPERM) { try m.hyp.hostDonateGuest(m.pfn(11), gfn: GFN(0x40), vm: p) }
        m.expectRefused(.EPERM) { try m.hyp.hostShareGuest(m.pfn(11), gfn: GFN(0x40), pages: 1, vm: p, prot: .rwx) }
        m.expectRefused(.ENOENT) { try m.hyp.hostUnshareGuest(gfn: GFN(0x40), pages: 1, vm: p) }
        // Relinquish finds no valid leaf.
        #expect(try m.hyp.guestRelinquish(vm: p, gfn: GFN(0x40)) == nil)
        m.expectSound()
        // A second force reclaim: the host owns the page now.
        m.expectRefused(.EAGAIN) { try m.hyp.hostForceReclaimPageGuest(m.pfn(10).address) }
        // Teardown reclaim treats the poisoned gfn as already reclaimed.
        try m.hyp.hostReclaimPageGuest(gfn: GFN(0x40), vm: p)
        m.expectSound()
        try m.hyp.startTeardown(vm: p)
        m.expectSound()
        let before = m.snapshot()
        try m.hyp.reclaimDyingGuestPage(vm: p, gfn: GFN(0x40))
        m.expectSound()
        #expect(m.snapshot() == before)
        try m.hyp.finalizeTeardown(vm: p)
        m.expectSound()
        #expect(m.view(10) == TestMachine.hostOwned)
    }

    @Test func forceReclaimRefusalsInOrder() throws {
        let (m, p) = try machine()
        let np = try m.createVM(protected: false, at: 200)
        m.expectSound()
        // 1. not memory.
        m.expectRefused(.EFAULT) { try m.hyp.hostForceReclaimPageGuest(TestMachine.mmioPFN.address) }
        m.expectRefused(.EFAULT) { try m.hyp.hostForceReclaimPageGuest(m.pfn(m.ramPages).address) }
        // 2. host state accessible: -EAGAIN (owned, shared with hyp / FF-A / a guest, borrowed).
        try m.hyp.hostShareHyp(m.pfn(20))
        m.expectSound()
        try m.hyp.hostShareFFA(m.pfn(21), pages: 1)
        m.expectSound()
        try m.hyp.hostShareGuest(m.pfn(22), gfn: GFN(1), pages: 1, vm: np, prot: .rwx)
        m.expectSound()
        try m.hyp.hostDonateGuest(m.pfn(23), gfn: GFN(0x41), vm: p)
        m.expectSound()
        try m.hyp.guestShareHost(vm: p, gfn: GFN(0x41))
        m.expectSound()
        for n: UInt64 in [19, 20, 21, 22, 23] {
            m.expectRefused(.EAGAIN) { try m.hyp.hostForceReclaimPageGuest(m.pfn(n).address) }
        }
        // 3. host leaf not at the last level: a 2 MiB block donated to hyp (its owner is not a
        // guest either, but the level check comes first).
        try m.hyp.hostDonateHyp(m.pfn(1024), pages: 512)
        m.expectSound()
        #expect(m.hostEntry(m.pfn(1030).address).level == 2)
        m.expectRefused(.EINVAL) { try m.hyp.hostForceReclaimPageGuest(m.pfn(1030).address) }
        // 4. annotation owner not a guest: a page donated to hyp, a VM structure, the carveout.
        try m.hyp.hostDonateHyp(m.pfn(24), pages: 1)
        m.expectSound()
        m.expectRefused(.EPERM) { try m.hyp.hostForceReclaimPageGuest(m.pfn(24).address) }
        m.expectRefused(.EPERM) { try m.hyp.hostForceReclaimPageGuest(m.pfn(100).address) }
        m.expectRefused(.EPERM) { try m.hyp.hostForceReclaimPageGuest(m.hyp.carveout.lowerBound.address) }
        #expect(m.pageHolds(m.pfn(10).address, only: 0xA5))
    }

    /// pKVM would leave the page of a VM finalized without reclaim donated to a VM that is gone
    /// (force reclaim then answers -EAGAIN); pvm's finalize gave it back, zeroed, so the host
    /// already has it: the host-accessible check answers -EAGAIN first.
    @Test func forceReclaimOfAPageWhoseVMIsGoneIsEAGAIN() throws {
        let (m, p) = try machine()
        try m.hyp.startTeardown(vm: p)
        m.expectSound()
        try m.hyp.finalizeTeardown(vm: p)
        m.expectSound()
        m.expectRefused(.EAGAIN) { try m.hyp.hostForceReclaimPageGuest(m.pfn(10).address) }
        #expect(m.pageHolds(m.pfn(10).address, only: 0))
    }

    // MARK: __pkvm_host_reclaim_page_guest

    @Test func reclaimOwnedPageZeroesIt() throws {
        let (m, p) = try machine()
        let pa = m.pfn(10).address
        let vmid = try #require(m.hyp.vm(p)).vmid
        m.sink.reset()
        try m.hyp.hostReclaimPageGuest(gfn: GFN(0x40), vm: p)
        m.expectSound()
        #expect(m.hyp.memory.isZeroPage(pa))
        #expect(m.view(10) == TestMachine.hostOwned)
        #expect(try m.guest(p, 0x40).state == .noPage)
        #expect(m.sink.invalidations.contains(TLBInvalidation(vmid: vmid, start: IPA(0x4_0000), size: 0x1000)))
        #expect(m.hyp.hostStage2.translate(IPA(pa.rawValue))?.output == pa)
    }

    @Test func reclaimSharedOwnedPageKeepsItsContents() throws {
        let (m, p) = try machine()
        try m.hyp.guestShareHost(vm: p, gfn: GFN(0x40))
        m.expectSound()
        try m.hyp.hostReclaimPageGuest(gfn: GFN(0x40), vm: p)
        m.expectSound()
        #expect(m.pageHolds(m.pfn(10).address, only: 0xA5))
        #expect(!m.hyp.memory.isZeroPage(m.pfn(10).address))
        #expect(m.view(10) == TestMachine.hostOwned)
        #expect(try m.guest(p, 0x40).state == .noPage)
    }

    @Test func reclaimRefusals() throws {
        let (m, p) = try machine()
        let np = try m.createVM(protected: false, at: 200)
        m.expectSound()
        try m.hyp.hostShareGuest(m.pfn(11), gfn: GFN(0x40), pages: 1, vm: np, prot: .rwx)
        m.expectSound()
        try m.hyp.hostShareGuest(m.pfn(512), gfn: GFN(0x200), pages: 512, vm: np, prot: .rwx)
        m.expectSound()
        m.expectRefused(.EINVAL) { try m.hyp.hostReclaimPageGuest(gfn: GFN(0x40), vm: VMHandle(rawValue: 0x1010)) }
        m.expectRefused(.ERANGE) { try m.hyp.hostReclaimPageGuest(gfn: m.firstGFNPastLimit, vm: p) }
        m.expectRefused(.ENOENT) { try m.hyp.hostReclaimPageGuest(gfn: GFN(0x41), vm: p) }
        // A block: -E2BIG before the state check.
        m.expectRefused(.E2BIG) { try m.hyp.hostReclaimPageGuest(gfn: GFN(0x200), vm: np) }
        // SHARED_BORROWED (a host share): -EPERM; the host unshares those instead.
        m.expectRefused(.EPERM) { try m.hyp.hostReclaimPageGuest(gfn: GFN(0x40), vm: np) }
        #expect(m.pageHolds(m.pfn(10).address, only: 0xA5))
    }

    // MARK: __pkvm_reclaim_dying_guest_page

    @Test func reclaimDyingRequiresADyingVM() throws {
        let (m, p) = try machine()
        m.expectRefused(.EINVAL) { try m.hyp.reclaimDyingGuestPage(vm: p, gfn: GFN(0x40)) }
        m.expectRefused(.EINVAL) { try m.hyp.reclaimDyingGuestPage(vm: VMHandle(rawValue: 0x1001), gfn: GFN(0x40)) }
        try m.hyp.startTeardown(vm: p)
        m.expectSound()
        m.expectRefused(.ENOENT) { try m.hyp.reclaimDyingGuestPage(vm: p, gfn: GFN(0x41)) }
        m.expectRefused(.ERANGE) { try m.hyp.reclaimDyingGuestPage(vm: p, gfn: m.firstGFNPastLimit) }
        try m.hyp.reclaimDyingGuestPage(vm: p, gfn: GFN(0x40))
        m.expectSound()
        #expect(m.hyp.memory.isZeroPage(m.pfn(10).address))
        #expect(m.view(10) == TestMachine.hostOwned)
        // Reclaimed once: nothing left at the gfn.
        m.expectRefused(.ENOENT) { try m.hyp.reclaimDyingGuestPage(vm: p, gfn: GFN(0x40)) }
    }

    @Test func relinquishZeroesButForceReclaimAndReclaimDiffer() throws {
        // One page per path, all filled, then checked side by side.
        let m = try TestMachine()
        let p = try m.createVM(protected: true, at: 100)
        m.expectSound()
        for (n, gfn): (UInt64, UInt64) in [(10, 0x40), (11, 0x41), (12, 0x42), (13, 0x43)] {
            try m.hyp.hostDonateGuest(m.pfn(n), gfn: GFN(gfn), vm: p)
            m.expectSound()
            m.fill(m.pfn(n).address, with: UInt8(n))
        }
        m.expectSound()
        try m.hyp.hostForceReclaimPageGuest(m.pfn(10).address)
        m.expectSound()
        try m.hyp.guestRelinquish(vm: p, gfn: GFN(0x41))
        m.expectSound()
        try m.hyp.guestShareHost(vm: p, gfn: GFN(0x43))
        m.expectSound()
        try m.hyp.startTeardown(vm: p)
        m.expectSound()
        // 0x41 was relinquished: nothing to reclaim there (-ENOENT), the others succeed.
        m.expectRefused(.ENOENT) { try m.hyp.reclaimDyingGuestPage(vm: p, gfn: GFN(0x41)) }
        for gfn: UInt64 in [0x40, 0x42, 0x43] {
            try m.hyp.reclaimDyingGuestPage(vm: p, gfn: GFN(gfn))
            m.expectSound()
        }
        #expect(m.hyp.memory.isZeroPage(m.pfn(10).address))  // force reclaim
        #expect(m.hyp.memory.isZeroPage(m.pfn(11).address))  // relinquish
        #expect(m.hyp.memory.isZeroPage(m.pfn(12).address))  // reclaim of an OWNED page
        #expect(m.pageHolds(m.pfn(13).address, only: 13))  // reclaim of a SHARED_OWNED page
        for n: UInt64 in 10...13 { #expect(m.view(n) == TestMachine.hostOwned) }
    }
}
