import EL2
import Testing

/// The stage-2 tables as the transitions build them, observed through the public read APIs
/// (`leaf(at:)`, `translate(_:)`, `forEachEntry`, `dump`, `tablePages`): blocks where they
/// fit, splits with break-before-make invalidations, empty tables freed to the pool.
@Suite struct PageTableTests {
    static let ipaSizes = [40, 48]

    /// Leaves (non-table entries) of a stage-2, in IPA order.
    func leaves(_ s2: Stage2PageTable) -> [Stage2Entry] {
        var out: [Stage2Entry] = []
        s2.forEachEntry { if !$0.isTable { out.append($0) } }
        return out
    }

    // MARK: Guest blocks

    @Test(arguments: ipaSizes)
    func blockShareMapsOneLevel2Block(ipaBits: Int) throws {
        let m = try TestMachine(ipaBits: ipaBits)
        let vm = try m.createVM(protected: false, at: 100)
        m.expectSound()
        let s2 = try m.stage2(vm)
        #expect(s2.tablePages == 0)

        try m.hyp.hostShareGuest(m.pfn(512), gfn: GFN(0x200), pages: 512, vm: vm, prot: .rwx)
        m.expectSound()

        let base = m.pfn(512).address  // 0x8020_0000
        let (d, level) = s2.leaf(at: IPA(0x20_0000))
        #expect(level == 2)
        #expect(d == .leaf(level: 2, output: base, permissions: .rwx, state: .sharedBorrowed))
        #expect(d.rawValue == 0x0100_0000_8020_07FD)  // SW1 (SHARED_BORROWED) + OA + 0x7FD
        for gfn: UInt64 in [0x200, 0x201, 0x2FF, 0x3FF] {
            let v = try m.guest(vm, gfn)
            #expect(v.state == .sharedBorrowed)
            #expect(v.level == 2)
            #expect(v.phys == base.advanced(by: (gfn - 0x200) << 12))
            #expect(v.permissions == .rwx)
        }
        #expect(try m.guest(vm, 0x1FF).state == .noPage)
        #expect(try m.guest(vm, 0x400).state == .noPage)

        let t = try #require(s2.translate(IPA(0x20_0000 + 0x12_3456)))
        #expect(t.output == PhysAddr(0x8020_0000 + 0x12_3456))
        #expect(t.level == 2)

        // Exactly one leaf below one table per level between the PGD and level 2.
        let all = leaves(s2)
        #expect(all.count == 1)
        #expect(all.first?.ipa == 0x20_0000 && all.first?.level == 2 && all.first?.size == 0x20_0000)
        #expect(s2.tablePages == 2 - s2.geometry.startLevel)
        #expect(s2.dump().contains("L2 [0x200000, 0x400000) 0x1000000802007fd BLOCK oa=0x80200000"))

        for n: UInt64 in [512, 513, 1023] {
            #expect(m.view(n) == Hypervisor.PageView(host: .sharedOwned, hyp: .noPage, shareCount: 1))
        }
        #expect(m.view(511) == TestMachine.hostOwned)
        #expect(m.view(1024) == TestMachine.hostOwned)

        m.sink.reset()
        try m.hyp.hostUnshareGuest(gfn: GFN(0x200), pages: 512, vm: vm)
        m.expectSound()
        let vmid = try #require(m.hyp.vm(vm)).vmid
        #expect(m.sink.invalidations == [TLBInvalidation(vmid: vmid, start: IPA(0x20_0000), size: 0x20_0000)])
        #expect(s2.tablePages == 0)
        #expect(leaves(s2).isEmpty)
        for n: UInt64 in [512, 767, 1023] { #expect(m.view(n) == TestMachine.hostOwned) }
    }

    // MARK: Host identity map

    @Test(arguments: ipaSizes)
    func hostFaultMapsLevel2BlockOnSmallMachine(ipaBits: Int) throws {
        let m = try TestMachine(ipaBits: ipaBits)
        m.expectSound()
        #expect(try m.hyp.hostMemAbort(PhysAddr(0x8000_5000)) == .mapped(0x8000_0000..<0x8020_0000))
        m.expectSound()
        let (d, level) = m.hostEntry(PhysAddr(0x8000_5000))
        #expect(level == 2)
        #expect(d == .leaf(level: 2, output: PhysAddr(0x8000_0000), permissions: .rwx, state: .owned))
        #expect(m.hyp.hostStage2.translate(IPA(0x801F_F123))?.output == PhysAddr(0x801F_F123))
        #expect(try m.hyp.hostMemAbort(PhysAddr(0x8000_0000)) == .alreadyMapped)
        #expect(try m.hyp.hostMemAbort(PhysAddr(0x801F_F000)) == .alreadyMapped)
        m.expectSound()
        // The next 2 MiB is still unmapped.
        #expect(m.hyp.hostStage2.translate(IPA(0x8020_0000)) == nil)
    }

    @Test(arguments: ipaSizes)
    func hostFaultMapsLevel1BlockInAGibibyteRegion(ipaBits: Int) throws {
        // The carveout lives at the top of the last region, so the 1 GiB region stays untouched.
        let m = try TestMachine(ipaBits: ipaBits, regions: [
            MemoryRegion(base: PhysAddr(0x4000_0000), size: 1 << 30),
            MemoryRegion(base: PhysAddr(0x8000_0000), size: 16 << 20),
        ])
        m.expectSound()
        #expect(try m.hyp.hostMemAbort(PhysAddr(0x4000_1000)) == .mapped(0x4000_0000..<0x8000_0000))
        m.expectSound()
        let (d, level) = m.hostEntry(PhysAddr(0x7FFF_F000))
        #expect(level == 1)
        #expect(d == .leaf(level: 1, output: PhysAddr(0x4000_0000), permissions: .rwx, state: .owned))
        #expect(d.rawValue == 0x4000_07FD)
    }

    @Test func hostFaultOnMMIOMapsDeviceBlock() throws {
        let m = try TestMachine()
        #expect(try m.hyp.hostMemAbort(PhysAddr(0x0900_0000)) == .mapped(0..<0x4000_0000))
        m.expectSound()
        let (d, level) = m.hostEntry(PhysAddr(0x0900_0000))
        #expect(level == 1)
        #expect(d.memAttr == Stage2Descriptor.memAttrDevice)
        #expect(d.permissions == .rw)
        #expect(d.rawValue == 0x0040_0000_0000_07C5)  // XN + AF + SH + S2AP RW + MemAttr 1 + valid
    }

    @Test func hostFaultRefusals() throws {
        let m = try TestMachine()
        let carveoutPage = m.hyp.carveout.lowerBound.address
        m.expectRefused(.EPERM) { _ = try m.hyp.hostMemAbort(carveoutPage) }
        try m.hyp.hostDonateHyp(m.pfn(7), pages: 1)
        m.expectSound()
        m.expectRefused(.EPERM) { _ = try m.hyp.hostMemAbort(m.pfn(7).address) }
        m.expectRefused(.EFAULT) { _ = try m.hyp.hostMemAbort(PhysAddr(m.hyp.geometry.limit)) }
        // Next to the annotated page only that page's neighbours get mapped, page by page.
        #expect(try m.hyp.hostMemAbort(m.pfn(6).address) == .mapped(0x8000_6000..<0x8000_7000))
        m.expectSound()
    }

    // MARK: Splitting identity blocks

    @Test(arguments: ipaSizes)
    func donateHypSplitsIdentityBlock(ipaBits: Int) throws {
        let m = try TestMachine(ipaBits: ipaBits)
        _ = try m.hyp.hostMemAbort(PhysAddr(0x8000_5000))
        m.expectSound()
        let tables = m.hyp.hostStage2.tablePages
        let available = m.hyp.hostStage2.availablePages
        m.sink.reset()

        try m.hyp.hostDonateHyp(m.pfn(5), pages: 1)
        m.expectSound()

        let (d, level) = m.hostEntry(PhysAddr(0x8000_5000))
        #expect(level == 3)
        #expect(d == .annotation(.donation, owner: .hyp))
        for n: UInt64 in [0, 4, 6, 511] {
            let pa = m.pfn(n).address
            let t = try #require(m.hyp.hostStage2.translate(IPA(pa.rawValue)))
            #expect(t.output == pa)
            #expect(t.level == 3)
            #expect(t.descriptor == .leaf(level: 3, output: pa, permissions: .rwx, state: .owned))
        }
        // Break-before-make over the whole block.
        #expect(m.sink.invalidations == [TLBInvalidation(vmid: .host, start: IPA(0x8000_0000), size: 0x20_0000)])
        #expect(m.hyp.hostStage2.tablePages == tables + 1)
        #expect(m.hyp.hostStage2.availablePages == available - 1)
    }

    @Test(arguments: ipaSizes)
    func donateGuestSplitsIdentityBlock(ipaBits: Int) throws {
        let m = try TestMachine(ipaBits: ipaBits)
        let vm = try m.createVM(protected: true, at: 100)
        m.expectSound()
        // Creating the VM annotated pages in the first 2 MiB; fault in the third.
        #expect(try m.hyp.hostMemAbort(m.pfn(1029).address) == .mapped(0x8040_0000..<0x8060_0000))
        m.expectSound()
        m.sink.reset()

        try m.hyp.hostDonateGuest(m.pfn(1029), gfn: GFN(0x10), vm: vm)
        m.expectSound()

        let (d, level) = m.hostEntry(m.pfn(1029).address)
        #expect(level == 3)
        #expect(d == m.donatedTo(vm, gfn: 0x10))
        for n: UInt64 in [1024, 1028, 1030, 1535] {
            let pa = m.pfn(n).address
            #expect(m.hyp.hostStage2.translate(IPA(pa.rawValue))?.output == pa)
            #expect(m.hostEntry(pa).level == 3)
        }
        // Only the host lost a mapping: the guest entry was empty before.
        #expect(m.sink.invalidations == [TLBInvalidation(vmid: .host, start: IPA(0x8040_0000), size: 0x20_0000)])
        let g = try m.guest(vm, 0x10)
        #expect(g.state == .owned && g.level == 3 && g.phys == m.pfn(1029).address)
    }

    @Test func donateGuestSplitsLevel1IdentityBlockDownToPages() throws {
        let m = try TestMachine(regions: [
            MemoryRegion(base: PhysAddr(0x4000_0000), size: 1 << 30),
            MemoryRegion(base: PhysAddr(0x8000_0000), size: 16 << 20),
        ])
        let vm = try m.createVM(protected: true, at: 100)  // in the 16 MiB region
        m.expectSound()
        _ = try m.hyp.hostMemAbort(PhysAddr(0x4000_1000))
        m.expectSound()
        let tables = m.hyp.hostStage2.tablePages
        m.sink.reset()

        try m.hyp.hostDonateGuest(PFN(0x4_0005), gfn: GFN(0x77), vm: vm)
        m.expectSound()

        #expect(m.hostEntry(PhysAddr(0x4000_5000)).level == 3)
        #expect(m.hostEntry(PhysAddr(0x4000_5000)).descriptor == m.donatedTo(vm, gfn: 0x77))
        // Same 2 MiB: pages; the rest of the gibibyte: 2 MiB blocks.
        for (pa, lvl): (UInt64, Int) in [(0x4000_4000, 3), (0x4000_6000, 3), (0x401F_F000, 3),
                                        (0x4020_0000, 2), (0x7FFF_F000, 2)] {
            let t = try #require(m.hyp.hostStage2.translate(IPA(pa)))
            #expect(t.output == PhysAddr(pa))
            #expect(t.level == lvl)
        }
        #expect(m.sink.invalidations == [TLBInvalidation(vmid: .host, start: IPA(0x4000_0000), size: 1 << 30)])
        #expect(m.hyp.hostStage2.tablePages == tables + 2)
    }

    // MARK: Freeing tables

    @Test(arguments: ipaSizes)
    func unmapFreesEmptyTables(ipaBits: Int) throws {
        let m = try TestMachine(ipaBits: ipaBits)
        let vm = try m.createVM(protected: false, at: 100)
        m.expectSound()
        let s2 = try m.stage2(vm)
        let vmid = try #require(m.hyp.vm(vm)).vmid
        let levelsBelowPGD = m.hyp.geometry.levels - 1
        #expect(s2.tablePages == 0 && s2.memcache.count == 8 && s2.freeTables.count == 0)

        try m.hyp.hostShareGuest(m.pfn(10), gfn: GFN(0x1234), pages: 1, vm: vm, prot: .rwx)
        m.expectSound()
        #expect(s2.tablePages == levelsBelowPGD)
        #expect(s2.memcache.count == 8 - levelsBelowPGD)
        try m.hyp.hostShareGuest(m.pfn(11), gfn: GFN(0x1235), pages: 1, vm: vm, prot: .rwx)
        m.expectSound()
        #expect(s2.tablePages == levelsBelowPGD)  // same last-level table

        m.sink.reset()
        try m.hyp.hostUnshareGuest(gfn: GFN(0x1234), pages: 1, vm: vm)
        m.expectSound()
        #expect(s2.tablePages == levelsBelowPGD)
        try m.hyp.hostUnshareGuest(gfn: GFN(0x1235), pages: 1, vm: vm)
        m.expectSound()
        #expect(s2.tablePages == 0)
        #expect(s2.freeTables.count == levelsBelowPGD)
        #expect(s2.memcache.count == 8 - levelsBelowPGD)
        #expect(s2.availablePages == 8)
        #expect(leaves(s2).isEmpty)
        #expect(m.sink.invalidations == [
            TLBInvalidation(vmid: vmid, start: IPA(0x123_4000), size: 0x1000),
            TLBInvalidation(vmid: vmid, start: IPA(0x123_5000), size: 0x1000),
        ])

        // The next map takes its tables from the pool before the memcache.
        try m.hyp.hostShareGuest(m.pfn(10), gfn: GFN(0x9_9999), pages: 1, vm: vm, prot: .rwx)
        m.expectSound()
        #expect(s2.freeTables.count == 0)
        #expect(s2.memcache.count == 8 - levelsBelowPGD)
        #expect(s2.tablePages == levelsBelowPGD)
    }

    @Test func lastPageOfTheIPASpace() throws {
        for ipaBits in Self.ipaSizes {
            let m = try TestMachine(ipaBits: ipaBits)
            let vm = try m.createVM(protected: true, at: 100)
            m.expectSound()
            let last = m.firstGFNPastLimit.rawValue - 1
            try m.hyp.hostDonateGuest(m.pfn(10), gfn: GFN(last), vm: vm)
            m.expectSound()
            let v = try m.guest(vm, last)
            #expect(v.state == .owned && v.level == 3 && v.phys == m.pfn(10).address)
            #expect(try m.stage2(vm).translate(IPA(m.hyp.geometry.limit - 1))?.output == m.pfn(10).address.advanced(by: 0xFFF))
        }
    }

    // MARK: IPA limit

    @Test(arguments: ipaSizes)
    func ipaBeyondLimitIsERANGE(ipaBits: Int) throws {
        let m = try TestMachine(ipaBits: ipaBits)
        let pvm = try m.createVM(protected: true, at: 100)
        m.expectSound()
        let npvm = try m.createVM(protected: false, at: 200)
        m.expectSound()
        try m.hyp.hostDonateGuest(m.pfn(20), gfn: GFN(1), vm: pvm)
        m.expectSound()
        let past = m.firstGFNPastLimit
        m.expectRefused(.ERANGE) { try m.hyp.hostDonateGuest(m.pfn(10), gfn: past, vm: pvm) }
        m.expectRefused(.ERANGE) { try m.hyp.hostShareGuest(m.pfn(10), gfn: past, pages: 1, vm: npvm, prot: .rwx) }
        m.expectRefused(.ERANGE) {
            try m.hyp.hostShareGuest(m.pfn(512), gfn: GFN(past.rawValue + 512), pages: 512, vm: npvm, prot: .rwx)
        }
        m.expectRefused(.ERANGE) { try m.hyp.guestShareHost(vm: pvm, gfn: past) }
        m.expectRefused(.ERANGE) { try m.hyp.guestUnshareHost(vm: pvm, gfn: past) }
        m.expectRefused(.ERANGE) { try m.hyp.hostUnshareGuest(gfn: past, pages: 1, vm: npvm) }
        m.expectRefused(.ERANGE) { _ = try m.hyp.guestPageView(vm: pvm, gfn: past) }
        #expect(m.view(10) == TestMachine.hostOwned)
    }
}
