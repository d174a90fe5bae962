import EL2
import Testing

/// VM creation, memcache top-up and shrink, and teardown (spec 8): every page EL2 took for a
/// VM goes back to the host.
@Suite struct VMLifecycleTests {
    typealias View = Hypervisor.PageView
    typealias Donation = Hypervisor.VMDonation

    // MARK: __pkvm_init_vm

    @Test func createVMTakesItsPages() throws {
        let m = try TestMachine()
        let h = try m.hyp.createVM(protected: true, donating: Donation(metadata: m.pfn(5), pgd: m.pfn(8)))
        m.expectSound()
        #expect(h == VMHandle(rawValue: 0x1000))
        let vm = try #require(m.hyp.vm(h))
        #expect(vm.vmid == VMID(rawValue: 1))
        #expect(vm.isProtected && !vm.isDying && vm.references == 0)
        #expect(vm.metadataPage == m.pfn(5).address)
        #expect(vm.stage2.root == m.pfn(8).address)
        #expect(vm.stage2.tablePages == 0 && vm.stage2.memcache.count == 0)
        #expect(m.view(5) == View(host: .noPage, hyp: .owned, use: .vmMetadata))
        #expect(m.view(8) == View(host: .noPage, hyp: .owned, use: .guestTable))
        #expect(m.view(9) == View(host: .noPage, hyp: .owned, use: .guestTable))
        for n: UInt64 in [4, 6, 7, 10] { #expect(m.view(n) == TestMachine.hostOwned) }
        for n: UInt64 in [5, 8, 9] {
            #expect(m.hostEntry(m.pfn(n).address) == (Stage2Descriptor.annotation(.donation, owner: .hyp), 3))
        }
        let h2 = try m.hyp.createVM(protected: false, donating: Donation(metadata: m.pfn(20), pgd: m.pfn(22)))
        m.expectSound()
        #expect(h2 == VMHandle(rawValue: 0x1001))
        #expect(try #require(m.hyp.vm(h2)).vmid == VMID(rawValue: 2))
        #expect(try !#require(m.hyp.vm(h2)).isProtected)
        #expect(m.hyp.vms.map(\.handle) == [h, h2])
    }

    /// Every refused donation: mainline (v7.1-rc4) reports each as -ENOMEM, Android 6.12 as
    /// -EINVAL (`__pkvm_init_vm`).
    @Test(arguments: PKVMProfile.allCases)
    func createVMRefusalsInOrder(profile: PKVMProfile) throws {
        let m = try TestMachine(profile: profile)
        let d: HypError = profile == .mainline ? .ENOMEM : .EINVAL
        let existing = try m.createVM(protected: true, at: 100)
        m.expectSound()
        try m.hyp.hostShareHyp(m.pfn(30))
        m.expectSound()
        try m.hyp.hostShareHyp(m.pfn(33))
        m.expectSound()
        func create(_ metadata: PFN, _ pgd: PFN) throws {
            _ = try m.hyp.createVM(protected: true, donating: Donation(metadata: metadata, pgd: pgd))
        }
        // 1. PGD aligned to its size (2 pages at 40 bits).
        m.expectRefused(d) { try create(m.pfn(4), m.pfn(9)) }
        // 3. metadata as host_donate_hyp checks it.
        m.expectRefused(d) { try create(m.firstInvalidPFN, m.pfn(8)) }
        m.expectRefused(d) { try create(TestMachine.mmioPFN, m.pfn(8)) }
        m.expectRefused(d) { try create(m.pfn(30), m.pfn(8)) }
        m.expectRefused(d) { try create(m.pfn(100), m.pfn(8)) }  // another VM's structure
        // 3. the PGD likewise.
        m.expectRefused(d) { try create(m.pfn(4), m.firstInvalidPFN) }
        m.expectRefused(d) { try create(m.pfn(4), TestMachine.mmioPFN) }
        m.expectRefused(d) { try create(m.pfn(4), m.pfn(30)) }  // first PGD page shared
        m.expectRefused(d) { try create(m.pfn(4), m.pfn(32)) }  // second one
        m.expectRefused(d) { try create(m.pfn(4), m.pfn(102)) }  // another VM's PGD
        // 4. metadata inside the PGD.
        m.expectRefused(d) { try create(m.pfn(8), m.pfn(8)) }
        m.expectRefused(d) { try create(m.pfn(9), m.pfn(8)) }
        #expect(m.hyp.vms.map(\.handle) == [existing])
        // Nothing was taken: the next VM gets the next handle and these pages.
        let h = try m.hyp.createVM(protected: false, donating: Donation(metadata: m.pfn(4), pgd: m.pfn(8)))
        m.expectSound()
        #expect(h == VMHandle(rawValue: 0x1001))
    }

    @Test(arguments: PKVMProfile.allCases)
    func createVMPrecedence(profile: PKVMProfile) throws {
        let m = try TestMachine(profile: profile)
        let d: HypError = profile == .mainline ? .ENOMEM : .EINVAL
        // Misaligned PGD and MMIO metadata: the alignment -EINVAL, not the memory -EPERM.
        m.expectRefused(d) {
            _ = try m.hyp.createVM(protected: true, donating: Donation(metadata: TestMachine.mmioPFN, pgd: m.pfn(9)))
        }
        // MMIO metadata (-EPERM) and an invalid PGD pfn (-EINVAL): the metadata is checked first.
        m.expectRefused(d) {
            _ = try m.hyp.createVM(protected: true, donating: Donation(metadata: TestMachine.mmioPFN, pgd: m.firstInvalidPFN))
        }
        // Good metadata, PGD half shared: nothing is donated, the metadata included.
        try m.hyp.hostShareHyp(m.pfn(9))
        m.expectSound()
        m.expectRefused(d) {
            _ = try m.hyp.createVM(protected: true, donating: Donation(metadata: m.pfn(4), pgd: m.pfn(8)))
        }
        #expect(m.view(4) == TestMachine.hostOwned)
        #expect(m.view(8) == TestMachine.hostOwned)
    }

    @Test(arguments: PKVMProfile.allCases)
    func createVMPGDStraddlingRAMEnd(profile: PKVMProfile) throws {
        let d: HypError = profile == .mainline ? .ENOMEM : .EINVAL
        // RAM ends one page past a 2-page boundary, so an aligned PGD can straddle it.
        let m = try TestMachine(regions: [MemoryRegion(base: PhysAddr(TestMachine.ramBase), size: (64 << 20) + 4096)],
                                profile: profile)
        m.expectSound()
        let last = m.pfn(m.ramPages - 1)
        #expect(last.rawValue % 2 == 0)
        m.expectRefused(d) {
            _ = try m.hyp.createVM(protected: true, donating: Donation(metadata: m.pfn(4), pgd: last))
        }
        m.expectRefused(d) {
            _ = try m.hyp.createVM(protected: true, donating: Donation(metadata: m.pfn(4), pgd: last.advanced(by: 2)))
        }
    }

    /// Fills the VM table: 255 VMs, metadata at pages 1000..., PGDs at 2000... (aligned).
    /// The invariant checker runs after every `checkEvery`-th creation and at the end: a check
    /// costs about 0.1 ms per live VM in a debug build, so checking all 255 steps would cost
    /// seconds for set-up steps that `createVMTakesItsPages` already checks one by one.
    func fillVMTable(_ m: TestMachine, checkEvery: UInt64) throws -> [VMHandle] {
        var handles: [VMHandle] = []
        let pgdPages = UInt64(m.hyp.geometry.pgdPages)
        for i in 0..<UInt64(Hypervisor.maxVMs) {
            handles.append(try m.hyp.createVM(protected: i % 2 == 0,
                                              donating: Donation(metadata: m.pfn(1000 + i), pgd: m.pfn(2000 + pgdPages * i))))
            if i % checkEvery == 0 { m.expectSound() }
        }
        m.expectSound()
        return handles
    }

    @Test func vmTableFullIsENOMEM() throws {
        // 36-bit IPA: a one-page PGD of 64 entries keeps the checks of 255 VMs cheap.
        let m = try TestMachine(megabytes: 16, ipaBits: 36)
        let handles = try fillVMTable(m, checkEvery: 8)
        #expect(handles.first == VMHandle(rawValue: 0x1000))
        #expect(handles.last == VMHandle(rawValue: 0x1000 + 254))
        #expect(Set(handles).count == 255)
        #expect(Set(m.hyp.vms.map(\.vmid.rawValue)) == Set(1...255))
        m.expectRefused(.ENOMEM) {
            _ = try m.hyp.createVM(protected: true, donating: Donation(metadata: m.pfn(10), pgd: m.pfn(12)))
        }
        // A full table comes before the donation checks.
        m.expectRefused(.ENOMEM) {
            _ = try m.hyp.createVM(protected: true, donating: Donation(metadata: TestMachine.mmioPFN, pgd: m.pfn(12)))
        }
        // Freeing a slot makes room again, with the same handle.
        try m.hyp.startTeardown(vm: handles[7])
        m.expectSound()
        try m.hyp.finalizeTeardown(vm: handles[7])
        m.expectSound()
        let h = try m.hyp.createVM(protected: true, donating: Donation(metadata: m.pfn(10), pgd: m.pfn(12)))
        m.expectSound()
        #expect(h == handles[7])
    }

    /// Android checks the donations (a misaligned PGD: -EINVAL) before the VM table (-ENOMEM);
    /// mainline reserves the slot first (`__pkvm_reserve_vm`), so a full table wins.
    @Test(arguments: PKVMProfile.allCases)
    func pgdAlignmentAndTheVMTable(profile: PKVMProfile) throws {
        // 40-bit IPA: a two-page PGD can be misaligned.
        let m = try TestMachine(megabytes: 16, profile: profile)
        _ = try fillVMTable(m, checkEvery: 64)
        m.expectRefused(profile == .mainline ? .ENOMEM : .EINVAL) {
            _ = try m.hyp.createVM(protected: true, donating: Donation(metadata: m.pfn(10), pgd: m.pfn(13)))
        }
        m.expectRefused(.ENOMEM) {
            _ = try m.hyp.createVM(protected: true, donating: Donation(metadata: m.pfn(10), pgd: m.pfn(12)))
        }
    }

    @Test(arguments: PKVMProfile.allCases)
    func createVMNeedsAVCPU(profile: PKVMProfile) throws {
        let m = try TestMachine(profile: profile)
        m.expectRefused(.EINVAL) {
            _ = try m.hyp.createVM(protected: true, vcpus: 0, donating: Donation(metadata: m.pfn(4), pgd: m.pfn(8)))
        }
    }

    // MARK: Memcache

    @Test func topUpAndShrink() throws {
        let m = try TestMachine()
        let h = try m.createVM(protected: true, at: 100, memcache: 0)
        m.expectSound()
        let s2 = try m.stage2(h)
        #expect(s2.memcache.count == 0)
        try m.hyp.topUpMemcache(vm: h, pages: [m.pfn(10), m.pfn(11), m.pfn(12)])
        m.expectSound()
        #expect(s2.memcache.count == 3)
        for n: UInt64 in 10...12 { #expect(m.view(n) == View(host: .noPage, hyp: .owned, use: .guestPoolFree)) }
        // Shrinking gives the most recent pages back first.
        #expect(try m.hyp.shrinkMemcache(vm: h, by: 2) == [m.pfn(12), m.pfn(11)])
        m.expectSound()
        #expect(s2.memcache.count == 1)
        #expect(m.view(12) == TestMachine.hostOwned)
        #expect(m.view(11) == TestMachine.hostOwned)
        #expect(m.view(10) == View(host: .noPage, hyp: .owned, use: .guestPoolFree))
        #expect(m.hyp.hostStage2.translate(IPA(m.pfn(12).address.rawValue))?.output == m.pfn(12).address)
        #expect(try m.hyp.shrinkMemcache(vm: h, by: 0) == [])
        #expect(try m.hyp.shrinkMemcache(vm: h, by: 50) == [m.pfn(10)])
        m.expectSound()
        #expect(try m.hyp.shrinkMemcache(vm: h, by: 1) == [])
        m.expectSound()
        #expect(s2.memcache.count == 0)
        #expect(m.view(10) == TestMachine.hostOwned)
        m.expectRefused(.EINVAL) { _ = try m.hyp.shrinkMemcache(vm: VMHandle(rawValue: 0x1001), by: 1) }
    }

    @Test func topUpRefusals() throws {
        let m = try TestMachine()
        let h = try m.createVM(protected: true, at: 100, memcache: 0)
        m.expectSound()
        try m.hyp.hostShareHyp(m.pfn(11))
        m.expectSound()
        m.expectRefused(.EINVAL) { try m.hyp.topUpMemcache(vm: VMHandle(rawValue: 0x1001), pages: [m.pfn(10)]) }
        m.expectRefused(.EINVAL) { try m.hyp.topUpMemcache(vm: h, pages: [m.firstInvalidPFN]) }
        m.expectRefused(.EPERM) { try m.hyp.topUpMemcache(vm: h, pages: [TestMachine.mmioPFN]) }
        m.expectRefused(.EPERM) { try m.hyp.topUpMemcache(vm: h, pages: [m.pfn(11)]) }
        m.expectRefused(.EPERM) { try m.hyp.topUpMemcache(vm: h, pages: [m.pfn(100)]) }
        // Stops at the first refused page; pages before it stay admitted.
        expectError(.EPERM) { () throws(HypError) in
            try m.hyp.topUpMemcache(vm: h, pages: [m.pfn(10), m.pfn(11), m.pfn(12)])
            m.expectSound()
        }
        m.expectSound()
        #expect(try m.stage2(h).memcache.count == 1)
        #expect(m.view(10) == View(host: .noPage, hyp: .owned, use: .guestPoolFree))
        #expect(m.view(12) == TestMachine.hostOwned)
        // A dying VM takes no more pages.
        try m.hyp.startTeardown(vm: h)
        m.expectSound()
        m.expectRefused(.EINVAL) { try m.hyp.topUpMemcache(vm: h, pages: [m.pfn(12)]) }
    }

    // MARK: Teardown

    /// Mainline (v7.1-rc4) answers -EINVAL for a missing VM, a referenced one and one already
    /// dying; Android 6.12 -ENOENT, -EBUSY and -EINVAL.
    @Test(arguments: PKVMProfile.allCases)
    func startTeardownRefusals(profile: PKVMProfile) throws {
        let m = try TestMachine(profile: profile)
        let android = profile == .android
        let h = try m.createVM(protected: true, at: 100)
        m.expectSound()
        m.expectRefused(android ? .ENOENT : .EINVAL) { try m.hyp.startTeardown(vm: VMHandle(rawValue: 0x1001)) }
        m.expectRefused(android ? .ENOENT : .EINVAL) { try m.hyp.startTeardown(vm: VMHandle(rawValue: 7)) }
        // A loaded vCPU holds a reference.
        try m.hyp.loadVCPU(vm: h, vcpu: 0)
        m.expectRefused(android ? .EBUSY : .EINVAL) { try m.hyp.startTeardown(vm: h) }
        m.hyp.putVCPU(vm: h, vcpu: 0)
        try m.hyp.startTeardown(vm: h)
        m.expectSound()
        #expect(try #require(m.hyp.vm(h)).isDying)
        m.expectRefused(.EINVAL) { try m.hyp.startTeardown(vm: h) }
        // A dying VM cannot be entered again.
        m.expectRefused(.EINVAL) { try m.hyp.loadVCPU(vm: h, vcpu: 0) }
    }

    /// Mainline: -EINVAL for missing, referenced or not dying; Android: -ENOENT, then -EBUSY.
    @Test(arguments: PKVMProfile.allCases)
    func finalizeRefusals(profile: PKVMProfile) throws {
        let m = try TestMachine(profile: profile)
        let android = profile == .android
        let h = try m.createVM(protected: true, at: 100)
        m.expectSound()
        m.expectRefused(android ? .ENOENT : .EINVAL) { _ = try m.hyp.finalizeTeardown(vm: VMHandle(rawValue: 0x1001)) }
        m.expectRefused(android ? .EBUSY : .EINVAL) { _ = try m.hyp.finalizeTeardown(vm: h) }
        try m.hyp.startTeardown(vm: h)
        m.expectSound()
        try m.hyp.finalizeTeardown(vm: h)
        m.expectSound()
        #expect(m.hyp.vm(h) == nil)
        m.expectRefused(android ? .ENOENT : .EINVAL) { _ = try m.hyp.finalizeTeardown(vm: h) }
        m.expectRefused(android ? .ENOENT : .EINVAL) { try m.hyp.startTeardown(vm: h) }
        m.expectRefused(.EINVAL) { try m.hyp.hostDonateGuest(m.pfn(10), gfn: GFN(1), vm: h) }
        m.expectRefused(.EINVAL) { try m.hyp.reclaimDyingGuestPage(vm: h, gfn: GFN(1)) }
    }

    @Test(arguments: [40, 48])
    func teardownReturnsEveryPage(ipaBits: Int) throws {
        let m = try TestMachine(ipaBits: ipaBits)
        let p = try m.createVM(protected: true, at: 100)
        m.expectSound()
        let np = try m.createVM(protected: false, at: 200)
        m.expectSound()
        let pVMID = try #require(m.hyp.vm(p)).vmid
        for (n, gfn): (UInt64, UInt64) in [(10, 0x40), (11, 0x41), (12, 0x42), (13, 0x9_0000)] {
            try m.hyp.hostDonateGuest(m.pfn(n), gfn: GFN(gfn), vm: p)
            m.expectSound()
            m.fill(m.pfn(n).address, with: UInt8(n))
            m.expectSound()
        }
        try m.hyp.guestShareHost(vm: p, gfn: GFN(0x41))
        m.expectSound()
        try m.hyp.hostForceReclaimPageGuest(m.pfn(12).address)
        m.expectSound()
        try m.hyp.hostShareGuest(m.pfn(20), gfn: GFN(0x10), pages: 1, vm: np, prot: .rwx)
        m.expectSound()
        try m.hyp.hostShareGuest(m.pfn(20), gfn: GFN(0x11), pages: 1, vm: np, prot: .read)
        m.expectSound()
        try m.hyp.hostShareGuest(m.pfn(512), gfn: GFN(0x200), pages: 512, vm: np, prot: .rwx)
        m.expectSound()
        try m.hyp.topUpMemcache(vm: p, pages: [m.pfn(30)])
        m.expectSound()

        // The protected VM: reclaim what the host recorded, then finalize.
        try m.hyp.startTeardown(vm: p)
        m.expectSound()
        let mappings = try m.hyp.guestMappings(vm: p)
        #expect(mappings.map(\.gfn) == [GFN(0x40), GFN(0x41), GFN(0x42), GFN(0x9_0000)])
        #expect(mappings.map(\.state) == [.owned, .sharedOwned, .poison, .owned])
        for mapping in mappings {
            try m.hyp.reclaimDyingGuestPage(vm: p, gfn: mapping.gfn)
            m.expectSound()
        }
        m.sink.reset()
        let pgdPages = m.hyp.geometry.pgdPages
        // PGD + the 8 + 1 memcache pages (now tables, pool or memcache) + the VM structure.
        #expect(try m.hyp.finalizeTeardown(vm: p) == pgdPages + 9 + 1)
        m.expectSound()
        #expect(m.sink.invalidations.first == TLBInvalidation(vmid: pVMID, start: IPA(0), size: m.hyp.geometry.limit))
        #expect(m.hyp.vm(p) == nil)

        // The non-protected VM: unshare every mapping, then finalize.
        try m.hyp.startTeardown(vm: np)
        m.expectSound()
        for mapping in try m.hyp.guestMappings(vm: np) {
            try m.hyp.hostUnshareGuest(gfn: mapping.gfn, pages: mapping.pages, vm: np)
            m.expectSound()
        }
        #expect(try m.hyp.finalizeTeardown(vm: np) == pgdPages + 8 + 1)
        m.expectSound()
        #expect(m.hyp.vms.isEmpty)

        // Every page outside the carveout is the host's again; EL2's pages came back zeroed;
        // former guest pages are zeroed unless they were shared with the host.
        for i in 0..<m.ramPages where !m.hyp.carveout.contains(m.pfn(i)) {
            let v = m.view(i)
            if v != TestMachine.hostOwned { Issue.record("page \(i): \(v) use=\(v.use)") }
        }
        for (first, pages, _) in m.hyp.nonDefaultPages() {
            #expect(m.hyp.carveout.contains(first.pfn))
            #expect(m.hyp.carveout.contains(first.pfn.advanced(by: UInt64(pages - 1))))
        }
        for n: UInt64 in [100, 200] { #expect(m.hyp.memory.isZeroPage(m.pfn(n).address)) }
        for n in 0..<UInt64(pgdPages) {
            for vmBase: UInt64 in [100, 200] {
                let pgd = (vmBase + UInt64(pgdPages)) / UInt64(pgdPages) * UInt64(pgdPages)
                #expect(m.hyp.memory.isZeroPage(m.pfn(pgd + n).address))
            }
        }
        for n: UInt64 in 100..<112 { #expect(m.hyp.memory.isZeroPage(m.pfn(n).address)) }
        for n: UInt64 in 200..<212 { #expect(m.hyp.memory.isZeroPage(m.pfn(n).address)) }
        #expect(m.hyp.memory.isZeroPage(m.pfn(10).address))
        #expect(m.pageHolds(m.pfn(11).address, only: 11))
        #expect(m.hyp.memory.isZeroPage(m.pfn(12).address))
        #expect(m.hyp.memory.isZeroPage(m.pfn(13).address))
    }

    /// pKVM leaves a page the host did not reclaim donated to a VM that is gone; pvm's finalize
    /// gives it back instead (zeroed if private, intact if shared, unshared if the host's).
    @Test func finalizeWithoutReclaimGivesEveryPageBack() throws {
        let m = try TestMachine()
        let p = try m.createVM(protected: true, at: 100)
        let n = try m.createVM(protected: false, at: 200)
        try m.hyp.hostDonateGuest(m.pfn(10), gfn: GFN(0x40), vm: p)
        try m.hyp.hostDonateGuest(m.pfn(11), gfn: GFN(0x41), vm: p)
        try m.hyp.guestShareHost(vm: p, gfn: GFN(0x41))
        try m.hyp.hostShareGuest(m.pfn(12), gfn: GFN(0x42), pages: 1, vm: n, prot: .rwx)
        try m.hyp.hostShareGuest(m.pfn(12), gfn: GFN(0x43), pages: 1, vm: p, prot: .rw)
        m.fill(m.pfn(10).address, with: 0x11)
        m.fill(m.pfn(11).address, with: 0x22)
        m.expectSound()
        for vm in [p, n] {
            try m.hyp.startTeardown(vm: vm)
            try m.hyp.finalizeTeardown(vm: vm)
            m.expectSound()
        }
        for k: UInt64 in [10, 11, 12] { #expect(m.view(k) == TestMachine.hostOwned, "page \(k)") }
        #expect(m.pageHolds(m.pfn(10).address, only: 0))
        #expect(m.pageHolds(m.pfn(11).address, only: 0x22))
        // Everything else came back.
        #expect(m.view(100) == TestMachine.hostOwned)
        #expect(m.view(104) == TestMachine.hostOwned)
    }
}
