import EL2
import Testing

@Suite struct SmokeTests {
    @Test func bootIsSound() throws {
        let m = try TestMachine()
        m.expectSound()
        #expect(m.view(0) == Hypervisor.PageView(host: .owned, hyp: .noPage, refcount: 0, shareCount: 0, use: .none))
    }

    @Test func donateAndReclaim() throws {
        let m = try TestMachine()
        let vm = try m.createVM(protected: true, at: 100)
        m.expectSound()
        try m.hyp.hostDonateGuest(m.pfn(10), gfn: GFN(0x40), vm: vm)
        m.expectSound()
        #expect(m.view(10).host == .noPage)
        try m.hyp.guestShareHost(vm: vm, gfn: GFN(0x40))
        m.expectSound()
        try m.hyp.guestUnshareHost(vm: vm, gfn: GFN(0x40))
        m.expectSound()
        try m.hyp.startTeardown(vm: vm)
        try m.hyp.reclaimDyingGuestPage(vm: vm, gfn: GFN(0x40))
        m.expectSound()
        try m.hyp.finalizeTeardown(vm: vm)
        m.expectSound()
        #expect(m.view(10).host == .owned)
    }
}
