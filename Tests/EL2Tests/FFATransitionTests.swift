import EL2
import Testing

/// Host ↔ FF-A transitions (spec 5.2): only the host state changes; no completer is recorded.
@Suite struct FFATransitionTests {
    static let sharedWithFFA = Hypervisor.PageView(host: .sharedOwned, hyp: .noPage)

    @Test func shareAndUnshare() throws {
        let m = try TestMachine()
        let hostStage2 = m.hyp.dumpHostStage2()
        try m.hyp.hostShareFFA(m.pfn(10), pages: 3)
        m.expectSound()
        for n: UInt64 in 10..<13 { #expect(m.view(n) == Self.sharedWithFFA) }
        #expect(m.view(9) == TestMachine.hostOwned)
        #expect(m.view(13) == TestMachine.hostOwned)
        #expect(m.hyp.dumpHostStage2() == hostStage2)
        // Unshare part of the range.
        try m.hyp.hostUnshareFFA(m.pfn(11), pages: 1)
        m.expectSound()
        #expect(m.view(10) == Self.sharedWithFFA)
        #expect(m.view(11) == TestMachine.hostOwned)
        #expect(m.view(12) == Self.sharedWithFFA)
        try m.hyp.hostUnshareFFA(m.pfn(12), pages: 1)
        m.expectSound()
        try m.hyp.hostUnshareFFA(m.pfn(10), pages: 1)
        m.expectSound()
        for n: UInt64 in 10..<13 { #expect(m.view(n) == TestMachine.hostOwned) }
        #expect(m.hyp.dumpHostStage2() == hostStage2)
        #expect(m.sink.invalidations.isEmpty)
    }

    @Test func shareRefusals() throws {
        let m = try TestMachine()
        let vm = try m.createVM(protected: true, at: 100)
        m.expectSound()
        // 1. pfn_range_is_valid.
        m.expectRefused(.EINVAL) { try m.hyp.hostShareFFA(m.firstInvalidPFN, pages: 1) }
        m.expectRefused(.EINVAL) { try m.hyp.hostShareFFA(PFN(m.firstInvalidPFN.rawValue - 2), pages: 3) }
        // 2. memory check.
        m.expectRefused(.EINVAL) { try m.hyp.hostShareFFA(m.pfn(m.ramPages - 2), pages: 3) }
        m.expectRefused(.EINVAL) { try m.hyp.hostShareFFA(PFN(m.pfn(0).rawValue - 1), pages: 2) }
        m.expectRefused(.EPERM) { try m.hyp.hostShareFFA(TestMachine.mmioPFN, pages: 4) }
        // 3. host OWNED.
        try m.hyp.hostShareFFA(m.pfn(1), pages: 1)
        m.expectSound()
        try m.hyp.hostShareHyp(m.pfn(2))
        m.expectSound()
        try m.hyp.hostDonateHyp(m.pfn(3), pages: 1)
        m.expectSound()
        try m.hyp.hostDonateGuest(m.pfn(4), gfn: GFN(4), vm: vm)
        m.expectSound()
        for n: UInt64 in 1...4 {
            m.expectRefused(.EPERM) { try m.hyp.hostShareFFA(m.pfn(n), pages: 1) }
        }
        m.expectRefused(.EPERM) { try m.hyp.hostShareFFA(m.hyp.carveout.lowerBound, pages: 1) }
        // Pages 5 and 7 are OWNED, page 6 is not: none is shared.
        try m.hyp.hostDonateHyp(m.pfn(6), pages: 1)
        m.expectSound()
        m.expectRefused(.EPERM) { try m.hyp.hostShareFFA(m.pfn(5), pages: 3) }
        #expect(m.view(5) == TestMachine.hostOwned)
        #expect(m.view(7) == TestMachine.hostOwned)
    }

    @Test func sharePrecedence() throws {
        let m = try TestMachine()
        // An invalid pfn that is also MMIO: -EINVAL from the pfn check, not the memory -EPERM.
        m.expectRefused(.EINVAL) { try m.hyp.hostShareFFA(PFN(1 << 40), pages: 1) }
        // A range straddling RAM's end whose RAM part is not host OWNED: the memory -EINVAL.
        m.expectRefused(.EINVAL) { try m.hyp.hostShareFFA(m.pfn(m.ramPages - 1), pages: 2) }
        m.expectRefused(.EINVAL) { try m.hyp.hostUnshareFFA(m.pfn(m.ramPages - 1), pages: 2) }
    }

    @Test func unshareRefusals() throws {
        let m = try TestMachine()
        try m.hyp.hostShareFFA(m.pfn(10), pages: 1)
        m.expectSound()
        m.expectRefused(.EINVAL) { try m.hyp.hostUnshareFFA(m.firstInvalidPFN, pages: 1) }
        m.expectRefused(.EINVAL) { try m.hyp.hostUnshareFFA(m.pfn(0), pages: .max) }
        m.expectRefused(.EINVAL) { try m.hyp.hostUnshareFFA(PFN(m.pfn(0).rawValue - 1), pages: 2) }
        m.expectRefused(.EPERM) { try m.hyp.hostUnshareFFA(TestMachine.mmioPFN, pages: 1) }
        // Host not SHARED_OWNED: never shared, or donated to hyp.
        m.expectRefused(.EPERM) { try m.hyp.hostUnshareFFA(m.pfn(11), pages: 1) }
        try m.hyp.hostDonateHyp(m.pfn(12), pages: 1)
        m.expectSound()
        m.expectRefused(.EPERM) { try m.hyp.hostUnshareFFA(m.pfn(12), pages: 1) }
        // Page 10 shared, page 11 not: page 10 stays shared.
        m.expectRefused(.EPERM) { try m.hyp.hostUnshareFFA(m.pfn(10), pages: 2) }
        #expect(m.view(10) == Self.sharedWithFFA)
    }

    @Test func ffaSharedPageCannotGoElsewhere() throws {
        let m = try TestMachine()
        let np = try m.createVM(protected: false, at: 100)
        m.expectSound()
        let p = try m.createVM(protected: true, at: 200)
        m.expectSound()
        try m.hyp.hostShareFFA(m.pfn(10), pages: 1)
        m.expectSound()
        // SHARED_OWNED with a share count of 0 is not a guest share: -EPERM.
        m.expectRefused(.EPERM) { try m.hyp.hostShareGuest(m.pfn(10), gfn: GFN(1), pages: 1, vm: np, prot: .rwx) }
        m.expectRefused(.EPERM) { try m.hyp.hostDonateGuest(m.pfn(10), gfn: GFN(1), vm: p) }
        m.expectRefused(.EPERM) { try m.hyp.hostShareHyp(m.pfn(10)) }
        m.expectRefused(.EPERM) { try m.hyp.hostDonateHyp(m.pfn(10), pages: 1) }
        #expect(m.view(10) == Self.sharedWithFFA)
    }
}
