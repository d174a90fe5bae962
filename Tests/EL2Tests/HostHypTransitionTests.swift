import EL2
import Testing

/// Host ↔ hypervisor transitions (spec 5.1): share / unshare, pin / unpin, donate both ways.
/// Every refused call must return exactly the documented errno, in the documented order, and
/// change nothing.
@Suite struct HostHypTransitionTests {
    typealias View = Hypervisor.PageView
    static let sharedWithHyp = View(host: .sharedOwned, hyp: .sharedBorrowed)
    static let donatedToHyp = View(host: .noPage, hyp: .owned)

    // MARK: host_share_hyp

    @Test func shareHypSucceeds() throws {
        let m = try TestMachine()
        let before = m.hostEntry(m.pfn(3).address)
        try m.hyp.hostShareHyp(m.pfn(3))
        m.expectSound()
        #expect(m.view(3) == Self.sharedWithHyp)
        #expect(m.view(2) == TestMachine.hostOwned)
        #expect(m.view(4) == TestMachine.hostOwned)
        // No EL2 mapping and no host stage-2 change: the host keeps its access.
        #expect(m.hostEntry(m.pfn(3).address) == before)
        #expect(m.sink.invalidations.isEmpty)
    }

    @Test func shareHypRefusals() throws {
        let m = try TestMachine()
        // Memory check: MMIO, and a pfn past the IPA space (share_hyp has no pfn_range_is_valid,
        // so this is the memory check's -EPERM, not -EINVAL).
        m.expectRefused(.EPERM) { try m.hyp.hostShareHyp(TestMachine.mmioPFN) }
        m.expectRefused(.EPERM) { try m.hyp.hostShareHyp(m.firstInvalidPFN) }
        m.expectRefused(.EPERM) { try m.hyp.hostShareHyp(m.pfn(m.ramPages)) }
        // Host not OWNED.
        try m.hyp.hostShareHyp(m.pfn(1))
        m.expectSound()
        m.expectRefused(.EPERM) { try m.hyp.hostShareHyp(m.pfn(1)) }
        try m.hyp.hostDonateHyp(m.pfn(2), pages: 1)
        m.expectSound()
        m.expectRefused(.EPERM) { try m.hyp.hostShareHyp(m.pfn(2)) }
        try m.hyp.hostShareFFA(m.pfn(3), pages: 1)
        m.expectSound()
        m.expectRefused(.EPERM) { try m.hyp.hostShareHyp(m.pfn(3)) }
        let vm = try m.createVM(protected: false, at: 100)
        m.expectSound()
        try m.hyp.hostShareGuest(m.pfn(4), gfn: GFN(4), pages: 1, vm: vm, prot: .rwx)
        m.expectSound()
        m.expectRefused(.EPERM) { try m.hyp.hostShareHyp(m.pfn(4)) }
        m.expectRefused(.EPERM) { try m.hyp.hostShareHyp(m.hyp.carveout.lowerBound) }
        #expect(m.view(1) == Self.sharedWithHyp)
        #expect(m.view(2) == Self.donatedToHyp)
        #expect(m.view(3) == View(host: .sharedOwned, hyp: .noPage))
        #expect(m.view(4) == View(host: .sharedOwned, hyp: .noPage, shareCount: 1))
        // Hyp not NOPAGE while the host is OWNED is not a sound state: unreachable.
    }

    // MARK: host_unshare_hyp

    @Test func unshareHypSucceeds() throws {
        let m = try TestMachine()
        try m.hyp.hostShareHyp(m.pfn(3))
        m.expectSound()
        try m.hyp.hostUnshareHyp(m.pfn(3))
        m.expectSound()
        #expect(m.view(3) == TestMachine.hostOwned)
        // Shared again after the round trip.
        try m.hyp.hostShareHyp(m.pfn(3))
        m.expectSound()
        #expect(m.view(3) == Self.sharedWithHyp)
    }

    @Test func unshareHypRefusals() throws {
        let m = try TestMachine()
        m.expectRefused(.EPERM) { try m.hyp.hostUnshareHyp(TestMachine.mmioPFN) }
        m.expectRefused(.EPERM) { try m.hyp.hostUnshareHyp(m.firstInvalidPFN) }
        // Host OWNED (never shared).
        m.expectRefused(.EPERM) { try m.hyp.hostUnshareHyp(m.pfn(1)) }
        // Host SHARED_OWNED but hyp NOPAGE: shared with FF-A, or with a guest.
        try m.hyp.hostShareFFA(m.pfn(2), pages: 1)
        m.expectSound()
        m.expectRefused(.EPERM) { try m.hyp.hostUnshareHyp(m.pfn(2)) }
        let vm = try m.createVM(protected: false, at: 100)
        m.expectSound()
        try m.hyp.hostShareGuest(m.pfn(3), gfn: GFN(3), pages: 1, vm: vm, prot: .rwx)
        m.expectSound()
        m.expectRefused(.EPERM) { try m.hyp.hostUnshareHyp(m.pfn(3)) }
        // Host NOPAGE (donated to hyp).
        try m.hyp.hostDonateHyp(m.pfn(4), pages: 1)
        m.expectSound()
        m.expectRefused(.EPERM) { try m.hyp.hostUnshareHyp(m.pfn(4)) }
        // Pinned: -EBUSY until the last unpin.
        try m.hyp.hostShareHyp(m.pfn(5))
        m.expectSound()
        try m.hyp.hypPin(m.pfn(5), pages: 1)
        m.expectSound()
        try m.hyp.hypPin(m.pfn(5), pages: 1)
        m.expectSound()
        m.expectRefused(.EBUSY) { try m.hyp.hostUnshareHyp(m.pfn(5)) }
        try m.hyp.hypUnpin(m.pfn(5), pages: 1)
        m.expectSound()
        m.expectRefused(.EBUSY) { try m.hyp.hostUnshareHyp(m.pfn(5)) }
        try m.hyp.hypUnpin(m.pfn(5), pages: 1)
        m.expectSound()
        try m.hyp.hostUnshareHyp(m.pfn(5))
        m.expectSound()
        #expect(m.view(5) == TestMachine.hostOwned)
    }

    // MARK: hyp_pin_shared_mem / hyp_unpin_shared_mem

    @Test func pinAndUnpinCount() throws {
        let m = try TestMachine()
        for n: UInt64 in 10..<13 { try m.hyp.hostShareHyp(m.pfn(n)) }
        m.expectSound()
        try m.hyp.hypPin(m.pfn(10), pages: 3)
        m.expectSound()
        try m.hyp.hypPin(m.pfn(11), pages: 1)
        m.expectSound()
        #expect(m.view(10) == View(host: .sharedOwned, hyp: .sharedBorrowed, refcount: 1))
        #expect(m.view(11) == View(host: .sharedOwned, hyp: .sharedBorrowed, refcount: 2))
        #expect(m.view(12) == View(host: .sharedOwned, hyp: .sharedBorrowed, refcount: 1))
        try m.hyp.hypUnpin(m.pfn(10), pages: 3)
        m.expectSound()
        #expect(m.view(10).refcount == 0)
        #expect(m.view(11).refcount == 1)
        #expect(m.view(12).refcount == 0)
        try m.hyp.hypUnpin(m.pfn(11), pages: 1)
        m.expectSound()
        for n: UInt64 in 10..<13 { #expect(m.view(n) == Self.sharedWithHyp) }
        #expect(m.sink.invalidations.isEmpty)
    }

    @Test func pinRefusals() throws {
        let m = try TestMachine()
        try m.hyp.hostShareHyp(m.pfn(10))
        m.expectSound()
        // Memory check inside the host range check: straddling RAM's end or start is -EINVAL,
        // entirely outside RAM is -EPERM.
        m.expectRefused(.EINVAL) { try m.hyp.hypPin(m.pfn(m.ramPages - 1), pages: 2) }
        m.expectRefused(.EINVAL) { try m.hyp.hypPin(PFN(m.pfn(0).rawValue - 1), pages: 2) }
        m.expectRefused(.EPERM) { try m.hyp.hypPin(TestMachine.mmioPFN, pages: 1) }
        m.expectRefused(.EPERM) { try m.hyp.hypPin(m.pfn(m.ramPages), pages: 4) }
        // Host not SHARED_OWNED.
        m.expectRefused(.EPERM) { try m.hyp.hypPin(m.pfn(11), pages: 1) }
        // Host SHARED_OWNED, hyp NOPAGE (FF-A share): the hyp check fails.
        try m.hyp.hostShareFFA(m.pfn(12), pages: 1)
        m.expectSound()
        m.expectRefused(.EPERM) { try m.hyp.hypPin(m.pfn(12), pages: 1) }
        // One bad page refuses the whole range: page 10 keeps refcount 0.
        m.expectRefused(.EPERM) { try m.hyp.hypPin(m.pfn(10), pages: 2) }
        #expect(m.view(10) == Self.sharedWithHyp)
    }

    @Test func pinRefcountSaturatesWithEBUSY() throws {
        let m = try TestMachine()
        try m.hyp.hostShareHyp(m.pfn(10))
        m.expectSound()
        try m.hyp.hostShareHyp(m.pfn(11))
        m.expectSound()
        for _ in 0..<Int(UInt16.max) { try m.hyp.hypPin(m.pfn(11), pages: 1) }
        m.expectSound()
        #expect(m.view(11).refcount == UInt16.max)
        m.expectRefused(.EBUSY) { try m.hyp.hypPin(m.pfn(11), pages: 1) }
        // The saturated page refuses the range; page 10 is not pinned either.
        m.expectRefused(.EBUSY) { try m.hyp.hypPin(m.pfn(10), pages: 2) }
        #expect(m.view(10).refcount == 0)
        try m.hyp.hypUnpin(m.pfn(11), pages: 1)
        m.expectSound()
        try m.hyp.hypPin(m.pfn(10), pages: 2)
        m.expectSound()
        #expect(m.view(10).refcount == 1)
        #expect(m.view(11).refcount == UInt16.max)
    }

    @Test func unpinRefusals() throws {
        let m = try TestMachine()
        try m.hyp.hostShareHyp(m.pfn(10))
        m.expectSound()
        try m.hyp.hostShareHyp(m.pfn(11))
        m.expectSound()
        try m.hyp.hypPin(m.pfn(10), pages: 1)
        m.expectSound()
        // pvm answers every refusal with -EINVAL (pKVM BUGs).
        m.expectRefused(.EINVAL) { try m.hyp.hypUnpin(TestMachine.mmioPFN, pages: 1) }
        m.expectRefused(.EINVAL) { try m.hyp.hypUnpin(m.pfn(m.ramPages - 1), pages: 2) }
        m.expectRefused(.EINVAL) { try m.hyp.hypUnpin(m.pfn(11), pages: 1) }
        m.expectRefused(.EINVAL) { try m.hyp.hypUnpin(m.pfn(20), pages: 1) }
        // Page 11 is not pinned: page 10 keeps its pin.
        m.expectRefused(.EINVAL) { try m.hyp.hypUnpin(m.pfn(10), pages: 2) }
        #expect(m.view(10).refcount == 1)
    }

    // MARK: __pkvm_host_donate_hyp

    @Test func donateHypSucceeds() throws {
        let m = try TestMachine()
        try m.hyp.hostDonateHyp(m.pfn(5), pages: 3)
        m.expectSound()
        for n: UInt64 in 5..<8 {
            #expect(m.view(n) == Self.donatedToHyp)
            #expect(m.hostEntry(m.pfn(n).address) == (Stage2Descriptor.annotation(.donation, owner: .hyp), 3))
        }
        #expect(m.view(4) == TestMachine.hostOwned)
        #expect(m.view(8) == TestMachine.hostOwned)
        // A whole 2 MiB block is annotated with one level-2 entry.
        try m.hyp.hostDonateHyp(m.pfn(512), pages: 512)
        m.expectSound()
        #expect(m.hostEntry(m.pfn(700).address) == (Stage2Descriptor.annotation(.donation, owner: .hyp), 2))
        #expect(m.view(1023) == Self.donatedToHyp)
        #expect(m.view(1024) == TestMachine.hostOwned)
    }

    @Test func donateHypRefusals() throws {
        let m = try TestMachine()
        // 1. pfn_range_is_valid: beyond 2^(40-12), or overflowing.
        m.expectRefused(.EINVAL) { try m.hyp.hostDonateHyp(m.firstInvalidPFN, pages: 1) }
        m.expectRefused(.EINVAL) { try m.hyp.hostDonateHyp(PFN(m.firstInvalidPFN.rawValue - 1), pages: 2) }
        m.expectRefused(.EINVAL) { try m.hyp.hostDonateHyp(m.pfn(0), pages: .max) }
        // 2. memory check.
        m.expectRefused(.EINVAL) { try m.hyp.hostDonateHyp(m.pfn(m.ramPages - 1), pages: 2) }
        m.expectRefused(.EINVAL) { try m.hyp.hostDonateHyp(PFN(m.pfn(0).rawValue - 1), pages: 2) }
        m.expectRefused(.EPERM) { try m.hyp.hostDonateHyp(TestMachine.mmioPFN, pages: 1) }
        m.expectRefused(.EPERM) { try m.hyp.hostDonateHyp(m.pfn(m.ramPages), pages: 16) }
        // 3. host OWNED.
        try m.hyp.hostShareHyp(m.pfn(3))
        m.expectSound()
        m.expectRefused(.EPERM) { try m.hyp.hostDonateHyp(m.pfn(3), pages: 1) }
        try m.hyp.hostDonateHyp(m.pfn(4), pages: 1)
        m.expectSound()
        m.expectRefused(.EPERM) { try m.hyp.hostDonateHyp(m.pfn(4), pages: 1) }
        m.expectRefused(.EPERM) { try m.hyp.hostDonateHyp(m.hyp.carveout.lowerBound, pages: 1) }
        // One page of the range not OWNED: nothing is donated.
        m.expectRefused(.EPERM) { try m.hyp.hostDonateHyp(m.pfn(1), pages: 3) }
        #expect(m.view(1) == TestMachine.hostOwned)
        #expect(m.view(2) == TestMachine.hostOwned)
    }

    @Test func donateHypPrecedence() throws {
        let m = try TestMachine()
        // Invalid pfn that is also MMIO: the pfn check (-EINVAL) runs before the memory check
        // (which would say -EPERM).
        m.expectRefused(.EINVAL) { try m.hyp.hostDonateHyp(m.firstInvalidPFN, pages: 1) }
        #expect(m.hyp.pageView(m.firstInvalidPFN.address) == nil)
        // Straddling RAM's end (-EINVAL) although the last RAM page is not host OWNED (-EPERM).
        #expect(m.view(m.ramPages - 1).host == .noPage)
        m.expectRefused(.EINVAL) { try m.hyp.hostDonateHyp(m.pfn(m.ramPages - 1), pages: 2) }
    }

    // MARK: __pkvm_hyp_donate_host

    @Test func hypDonateHostSucceeds() throws {
        let m = try TestMachine()
        try m.hyp.hostDonateHyp(m.pfn(5), pages: 2)
        m.expectSound()
        try m.hyp.hypDonateHost(m.pfn(5), pages: 2)
        m.expectSound()
        for n: UInt64 in 5..<7 {
            #expect(m.view(n) == TestMachine.hostOwned)
            let pa = m.pfn(n).address
            let t = try #require(m.hyp.hostStage2.translate(IPA(pa.rawValue)))
            #expect(t.output == pa)
            #expect(t.descriptor.permissions == .rwx)
        }
        // Back to the host, the page can be donated again.
        try m.hyp.hostDonateHyp(m.pfn(5), pages: 1)
        m.expectSound()
        #expect(m.view(5) == Self.donatedToHyp)
    }

    @Test func hypDonateHostRefusals() throws {
        let m = try TestMachine()
        let vm = try m.createVM(protected: true, at: 100)
        m.expectSound()
        try m.hyp.hostDonateHyp(m.pfn(5), pages: 1)
        m.expectSound()
        // 1. pfn_range_is_valid.
        m.expectRefused(.EINVAL) { try m.hyp.hypDonateHost(m.firstInvalidPFN, pages: 1) }
        m.expectRefused(.EINVAL) { try m.hyp.hypDonateHost(PFN(m.firstInvalidPFN.rawValue - 1), pages: 2) }
        // 2. hyp OWNED: host pages, MMIO, pages shared with hyp, donated to a guest.
        m.expectRefused(.EPERM) { try m.hyp.hypDonateHost(m.pfn(1), pages: 1) }
        m.expectRefused(.EPERM) { try m.hyp.hypDonateHost(TestMachine.mmioPFN, pages: 1) }
        try m.hyp.hostShareHyp(m.pfn(2))
        m.expectSound()
        m.expectRefused(.EPERM) { try m.hyp.hypDonateHost(m.pfn(2), pages: 1) }
        try m.hyp.hostDonateGuest(m.pfn(3), gfn: GFN(3), vm: vm)
        m.expectSound()
        m.expectRefused(.EPERM) { try m.hyp.hypDonateHost(m.pfn(3), pages: 1) }
        // Page 5 is hyp's, page 6 is not: nothing moves.
        m.expectRefused(.EPERM) { try m.hyp.hypDonateHost(m.pfn(5), pages: 2) }
        #expect(m.view(5) == Self.donatedToHyp)
        // 3./4. memory check and host NOPAGE cannot fail once hyp OWNED passed in a sound state.
        // 5. pages EL2 is using: the VM structure, its PGD and memcache, the host stage-2 pool.
        m.expectRefused(.EBUSY) { try m.hyp.hypDonateHost(m.pfn(100), pages: 1) }
        m.expectRefused(.EBUSY) { try m.hyp.hypDonateHost(m.pfn(102), pages: 2) }
        m.expectRefused(.EBUSY) { try m.hyp.hypDonateHost(m.pfn(104), pages: 1) }
        m.expectRefused(.EBUSY) { try m.hyp.hypDonateHost(m.hyp.carveout.lowerBound, pages: 1) }
        m.expectRefused(.EBUSY) { try m.hyp.hypDonateHost(PFN(m.hyp.carveout.upperBound.rawValue - 1), pages: 1) }
        // A free page next to a used one: -EBUSY for the range, the free page stays hyp's.
        try m.hyp.hostDonateHyp(m.pfn(99), pages: 1)
        m.expectSound()
        m.expectRefused(.EBUSY) { try m.hyp.hypDonateHost(m.pfn(99), pages: 2) }
        #expect(m.view(99) == Self.donatedToHyp)
    }

    @Test func hypDonateHostChecksHypBeforeMemory() throws {
        let m = try TestMachine()
        // The last RAM page is hyp's (carveout); the range runs past RAM. The hyp check comes
        // before the memory check, so this is the hyp check's -EPERM, not the straddle -EINVAL.
        #expect(m.view(m.ramPages - 1).hyp == .owned)
        m.expectRefused(.EPERM) { try m.hyp.hypDonateHost(m.pfn(m.ramPages - 1), pages: 2) }
        // The pfn check still comes first.
        m.expectRefused(.EINVAL) { try m.hyp.hypDonateHost(m.firstInvalidPFN, pages: 1) }
    }
}
