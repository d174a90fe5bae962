import Dispatch
@testable import EL2
import Testing

/// Guest-first memory at EL2 (docs/guest-first-memory.md): block donation, splits and merges
/// with their exact TLB invalidations, the host's all-or-nothing range conversion, pins.
@Suite struct GuestFirstMemoryTests {
    static let block: UInt64 = 512

    /// A machine with a protected VM whose gfns 0x400.. are backed by RAM pages 0x400..
    /// (2 MiB aligned), the first 2 MiB block donated whole.
    func machine(megabytes: UInt64 = 64, donate: Bool = true) throws -> (TestMachine, VMHandle) {
        let m = try TestMachine(megabytes: megabytes)
        let p = try m.createVM(protected: true, at: 100, memcache: 16)
        if donate { try m.hyp.hostDonateGuestBlock(m.pfn(0x400), gfn: GFN(0x400), pages: Self.block, vm: p) }
        m.expectSound()
        return (m, p)
    }

    func poke(_ m: TestMachine, _ pa: PhysAddr, _ value: UInt64) {
        withUnsafeBytes(of: value) { m.hyp.memory.write(pa, from: $0) }
    }

    func peek(_ m: TestMachine, _ pa: PhysAddr) -> UInt64 {
        var v: UInt64 = 0
        withUnsafeMutableBytes(of: &v) { m.hyp.memory.read(pa, into: $0) }
        return v
    }

    func leafLevel(_ m: TestMachine, _ vm: VMHandle, _ gfn: UInt64) -> Int {
        m.hyp.vm(vm)!.stage2.leaf(at: GFN(gfn).ipa).level
    }

    @Test func blockDonationMapsOneBlockAndAnnotatesEveryPage() throws {
        let (m, p) = try machine()
        let g = try m.guest(p, 0x4AB)
        #expect(g.state == .owned && g.level == 2 && g.phys == m.pfn(0x4AB).address)
        for k: UInt64 in [0x400, 0x4AB, 0x5FF] {
            #expect(m.hyp.ownership(of: m.pfn(k).address).owner == .guest(p, GFN(k)))
            #expect(m.hyp.hostStage2.leaf(at: IPA(m.pfn(k).address.rawValue)).level == 3)
        }
        // Misaligned, wrong sizes, a page already given: refused, nothing changed.
        m.expectRefused(.EINVAL) { try m.hyp.hostDonateGuestBlock(m.pfn(0x601), gfn: GFN(0x600), pages: 512, vm: p) }
        m.expectRefused(.EINVAL) { try m.hyp.hostDonateGuestBlock(m.pfn(0x600), gfn: GFN(0x601), pages: 512, vm: p) }
        m.expectRefused(.EINVAL) { try m.hyp.hostDonateGuestBlock(m.pfn(0x600), gfn: GFN(0x600), pages: 256, vm: p) }
        try m.hyp.hostDonateGuest(m.pfn(0x700), gfn: GFN(0x700), vm: p)
        m.expectRefused(.EPERM) { try m.hyp.hostDonateGuestBlock(m.pfn(0x600), gfn: GFN(0x600), pages: 512, vm: p) }
        m.expectSound()
    }

    @Test func partialShareSplitsWithOneBlockInvalidationAndUnshareCoalesces() throws {
        let (m, p) = try machine()
        let stage2 = m.hyp.vm(p)!.stage2
        let vmid = m.hyp.vm(p)!.vmid
        // The guest's bytes, written while private.
        let pa = m.pfn(0x410).address
        poke(m, pa, 0x1122_3344_5566_7788)
        m.sink.reset()
        #expect(try m.hyp.guestShareHostRange(vm: p, gfn: GFN(0x410), pages: 16) == 16)
        m.expectSound()
        #expect(stage2.splits == 1 && stage2.merges == 0)
        #expect(leafLevel(m, p, 0x410) == 3 && leafLevel(m, p, 0x420) == 3)
        // Exactly the old block, once.
        let guestTLBI = m.sink.invalidations.filter { $0.vmid == vmid }
        #expect(guestTLBI == [TLBInvalidation(vmid: vmid, start: GFN(0x400).ipa, size: 2 << 20)])
        // The host reads what the guest wrote, in place.
        #expect(try m.hyp.hostMemAbort(pa) == .alreadyMapped)
        #expect(peek(m, pa) == 0x1122_3344_5566_7788)
        #expect(try m.guest(p, 0x41F).state == .sharedOwned && (try m.guest(p, 0x420)).state == .owned)

        m.sink.reset()
        #expect(try m.hyp.guestUnshareHostRange(vm: p, gfn: GFN(0x410), pages: 16) == 16)
        m.expectSound()
        #expect(stage2.splits == 1 && stage2.merges == 1)
        #expect(leafLevel(m, p, 0x410) == 2 && stage2.tablePages == 1)  // the level-2 table only
        #expect(m.sink.invalidations.filter { $0.vmid == vmid } == [TLBInvalidation(vmid: vmid, start: GFN(0x400).ipa, size: 2 << 20)])
        #expect(peek(m, pa) == 0x1122_3344_5566_7788)
    }

    @Test func wholeBlockShareKeepsTheBlock() throws {
        let (m, p) = try machine()
        let stage2 = m.hyp.vm(p)!.stage2
        #expect(try m.hyp.guestShareHostRange(vm: p, gfn: GFN(0x400), pages: 512) == 512)
        m.expectSound()
        #expect(stage2.splits == 0 && leafLevel(m, p, 0x400) == 2)
        #expect(try m.guest(p, 0x5FF).state == .sharedOwned)
        #expect(try m.hyp.guestUnshareHostRange(vm: p, gfn: GFN(0x400), pages: 512) == 512)
        #expect(stage2.splits == 0 && stage2.merges == 0 && leafLevel(m, p, 0x400) == 2)
        m.expectSound()
    }

    @Test func singlePageTransitionsSplitPrivateBlocks() throws {
        let (m, p) = try machine()
        let stage2 = m.hyp.vm(p)!.stage2
        try m.hyp.guestShareHost(vm: p, gfn: GFN(0x433))
        #expect(stage2.splits == 1 && leafLevel(m, p, 0x433) == 3)
        m.expectSound()
        try m.hyp.guestUnshareHost(vm: p, gfn: GFN(0x433))
        #expect(stage2.merges == 1 && leafLevel(m, p, 0x433) == 2)
        m.expectSound()
        // Relinquish splits for good: the page is the host's now.
        #expect(try m.hyp.guestRelinquish(vm: p, gfn: GFN(0x434)) == m.pfn(0x434).address)
        #expect(stage2.splits == 2 && stage2.merges == 1)
        m.expectSound()
    }

    /// The conversion's checks run before anything changes: an offending page at any position
    /// leaves every page as it was and is named.
    @Test func hostConversionIsAllOrNothingAtEveryPosition() throws {
        let (m, p) = try machine(donate: false)
        let n: UInt64 = 8
        for bad in 0 ..< n {
            // Page `bad` of the range is shared with the hypervisor: not the VM's to take.
            let first: UInt64 = 0x800 + bad * 16
            try m.hyp.hostShareHyp(m.pfn(first + bad))
            let before = m.snapshot()
            do {
                try m.hyp.hostConvertGuestRange(vm: p, gfn: GFN(first), pages: n, to: .private, backing: m.pfn(first))
                Issue.record("conversion with an offending page \(bad) succeeded")
            } catch {
                #expect(error == ConversionError(.EPERM, at: GFN(first + bad)))
            }
            #expect(m.snapshot() == before)
            m.expectSound()
        }
        // Without one: every page donated in place, the host's bytes kept.
        poke(m, m.pfn(0x900).address, 42)
        #expect(try m.hyp.hostConvertGuestRange(vm: p, gfn: GFN(0x900), pages: n, to: .private, backing: m.pfn(0x900)) == n)
        #expect(try m.guest(p, 0x907).state == .owned && peek(m, m.pfn(0x900).address) == 42)
        #expect(try m.hyp.guestMemoryAttribute(vm: p, gfn: GFN(0x900), backing: m.pfn(0x900)) == .private)
        // Again: nothing to do.
        #expect(try m.hyp.hostConvertGuestRange(vm: p, gfn: GFN(0x900), pages: n, to: .private, backing: m.pfn(0x900)) == 0)
        m.expectSound()
    }

    @Test func hostConversionRefusals() throws {
        let (m, p) = try machine()
        let np = try m.createVM(protected: false, at: 200)
        func expect(_ e: HypError, at gfn: UInt64, _ body: () throws -> Void) {
            do { try body(); Issue.record("expected \(e)") } catch { #expect(error as? ConversionError == ConversionError(e, at: GFN(gfn))) }
        }
        expect(.EINVAL, at: 0x400) { _ = try m.hyp.hostConvertGuestRange(vm: np, gfn: GFN(0x400), pages: 1, to: .private, backing: m.pfn(0x400)) }
        expect(.EINVAL, at: 0x400) { _ = try m.hyp.hostConvertGuestRange(vm: p, gfn: GFN(0x400), pages: 0, to: .private, backing: m.pfn(0x400)) }
        expect(.EINVAL, at: 0x400) { _ = try m.hyp.hostConvertGuestRange(vm: p, gfn: GFN(0x400), pages: .max, to: .private, backing: m.pfn(0x400)) }
        expect(.EINVAL, at: 0x400) { _ = try m.hyp.hostConvertGuestRange(vm: VMHandle(rawValue: 0x1005), gfn: GFN(0x400), pages: 1, to: .private, backing: m.pfn(0x400)) }
        // To shared: only the guest may expose its private memory; the first private page is named.
        expect(.EPERM, at: 0x400) { _ = try m.hyp.hostConvertGuestRange(vm: p, gfn: GFN(0x3FE), pages: 4, to: .shared, backing: m.pfn(0x3FE)) }
        // Shared by the guest already: agreement, nothing changes.
        #expect(try m.hyp.guestShareHostRange(vm: p, gfn: GFN(0x400), pages: 4) == 4)
        #expect(try m.hyp.hostConvertGuestRange(vm: p, gfn: GFN(0x3FE), pages: 6, to: .shared, backing: m.pfn(0x3FE)) == 0)
        // A backing page that is not the one the guest maps: -EPERM at it.
        expect(.EPERM, at: 0x402) { _ = try m.hyp.hostConvertGuestRange(vm: p, gfn: GFN(0x402), pages: 1, to: .private, backing: m.pfn(0x900)) }
        // Poisoned: force-reclaim gfn 0x410's page.
        try m.hyp.hostForceReclaimPageGuest(m.pfn(0x410).address)
        expect(.EHWPOISON, at: 0x410) { _ = try m.hyp.hostConvertGuestRange(vm: p, gfn: GFN(0x400), pages: 32, to: .private, backing: m.pfn(0x400)) }
        m.expectSound()
    }

    @Test func longTermPinsRefuseConversionAndUnshare() throws {
        let (m, p) = try machine()
        #expect(try m.hyp.guestShareHostRange(vm: p, gfn: GFN(0x400), pages: 8) == 8)
        m.expectRefused(.EPERM) { try m.hyp.hostPinShared(m.pfn(0x408), pages: 1) }  // private
        try m.hyp.hostPinShared(m.pfn(0x405), pages: 1)
        m.expectSound()
        do {
            try m.hyp.hostConvertGuestRange(vm: p, gfn: GFN(0x400), pages: 8, to: .private, backing: m.pfn(0x400))
            Issue.record("converted a pinned page")
        } catch {
            #expect(error == ConversionError(.EBUSY, at: GFN(0x405)))
        }
        m.expectRefused(.EBUSY) { _ = try m.hyp.guestUnshareHostRange(vm: p, gfn: GFN(0x400), pages: 8) }
        m.expectRefused(.EBUSY) { try m.hyp.guestUnshareHost(vm: p, gfn: GFN(0x405)) }
        try m.hyp.hostUnpinShared(m.pfn(0x405), pages: 1)
        m.expectRefused(.EINVAL) { try m.hyp.hostUnpinShared(m.pfn(0x405), pages: 1) }
        #expect(try m.hyp.hostConvertGuestRange(vm: p, gfn: GFN(0x400), pages: 8, to: .private, backing: m.pfn(0x400)) == 8)
        #expect(m.hyp.vm(p)!.stage2.merges == 1 && leafLevel(m, p, 0x400) == 2)
        m.expectSound()
    }

    @Test func gigabyteBlockSplitsTwiceAndCoalescesTwice() throws {
        // 1 GiB of guest memory at gfn 0x40000 (RAM page 0x40000: RAM starts 1 GiB aligned).
        let m = try TestMachine(megabytes: 2048 + 64)
        let p = try m.createVM(protected: true, at: 100, memcache: 16)
        let g: UInt64 = 0x40000
        try m.hyp.hostDonateGuestBlock(m.pfn(g), gfn: GFN(g), pages: 512 * 512, vm: p)
        let stage2 = m.hyp.vm(p)!.stage2
        let vmid = m.hyp.vm(p)!.vmid
        #expect(leafLevel(m, p, g + 12345) == 1)
        m.sink.reset()
        #expect(try m.hyp.guestShareHostRange(vm: p, gfn: GFN(g + 0x1234), pages: 3) == 3)
        #expect(stage2.splits == 2 && leafLevel(m, p, g + 0x1234) == 3 && leafLevel(m, p, g + 0x400) == 2)
        #expect(m.sink.invalidations.filter { $0.vmid == vmid } == [TLBInvalidation(vmid: vmid, start: GFN(g).ipa, size: 1 << 30)])
        #expect(try m.hyp.guestUnshareHostRange(vm: p, gfn: GFN(g + 0x1234), pages: 3) == 3)
        #expect(stage2.merges == 2 && leafLevel(m, p, g) == 1 && stage2.tablePages == 0)
        // A whole-range share and back: the block never splits.
        #expect(try m.hyp.guestShareHostRange(vm: p, gfn: GFN(g), pages: 512 * 512) == 512 * 512)
        #expect(try m.hyp.hostConvertGuestRange(vm: p, gfn: GFN(g), pages: 512 * 512, to: .private, backing: m.pfn(g)) == 512 * 512)
        #expect(stage2.splits == 2 && leafLevel(m, p, g) == 1)
        m.expectSound()
    }

    /// Every split needs a table from the VM's pool; with none left, each path that would split
    /// refuses with -ENOMEM before changing anything, and EL2 never runs dry mid-update.
    @Test func splitsWithAnEmptyPoolAreENOMEMAndChangeNothing() throws {
        let (m, p) = try machine()
        #expect(try m.hyp.guestShareHostRange(vm: p, gfn: GFN(0x400), pages: 512) == 512)  // whole: no split
        let stage2 = m.hyp.vm(p)!.stage2
        _ = try m.hyp.shrinkMemcache(vm: p, by: try m.hyp.memcacheCount(vm: p))
        var taken: [PhysAddr] = []
        while let t = stage2.takeFreeTable() { taken.append(t) }
        #expect(stage2.availablePages == 0)
        m.expectRefused(.ENOMEM) { _ = try m.hyp.guestUnshareHostRange(vm: p, gfn: GFN(0x410), pages: 4) }
        m.expectRefused(.ENOMEM) { try m.hyp.guestUnshareHost(vm: p, gfn: GFN(0x411)) }
        do {
            try m.hyp.hostConvertGuestRange(vm: p, gfn: GFN(0x410), pages: 4, to: .private, backing: m.pfn(0x410))
            Issue.record("a split with no tables succeeded")
        } catch {
            #expect(error == ConversionError(.ENOMEM, at: GFN(0x410)))
        }
        #expect(stage2.splits == 0 && leafLevel(m, p, 0x410) == 2)
        for t in taken { stage2.addFreeTable(t) }
        m.expectSound()
    }

    /// Found by an adversarial run: the commit's tables are counted over every run together,
    /// and down to pages where the backing is not block-aligned, so a small pool gives -ENOMEM
    /// instead of running dry in the middle of the update.
    @Test func conversionTablesAreCountedOverEveryRunAndUnalignedBacking() throws {
        let (m, p) = try machine(donate: false)
        try m.hyp.hostDonateGuestBlock(m.pfn(0x2000), gfn: GFN(0x200), pages: 512, vm: p)
        try m.hyp.hostDonateGuestBlock(m.pfn(0x2200), gfn: GFN(0x600), pages: 512, vm: p)
        _ = try m.hyp.shrinkMemcache(vm: p, by: try m.hyp.memcacheCount(vm: p) - 2)
        for (gfn, pages, pfn, block) in [(UInt64(0x1FF), UInt64(0x602), UInt64(0x1000), UInt64(1)),
                                         (0x800, 1024, 0x1001, 512)] {
            do {
                try m.hyp.hostConvertGuestRange(vm: p, gfn: GFN(gfn), pages: pages, to: .private, backing: m.pfn(pfn),
                                                blockPages: block)
                Issue.record("a conversion the pool cannot pay for succeeded")
            } catch {
                #expect(error == ConversionError(.ENOMEM, at: GFN(gfn)))
            }
            m.expectSound()
        }
    }

    /// Also found by an adversarial run: pins on a guest's shared page go when finalize gives the
    /// page back, so they cannot follow it to the next VM.
    @Test func finalizeDropsThePinsOfPagesItGivesBack() throws {
        let (m, p) = try machine()
        #expect(try m.hyp.guestShareHostRange(vm: p, gfn: GFN(0x400), pages: 2) == 2)
        try m.hyp.hostPinShared(m.pfn(0x400), pages: 2)
        try m.hyp.startTeardown(vm: p)
        try m.hyp.finalizeTeardown(vm: p)
        #expect(m.hyp.hostPins(m.pfn(0x400).address) == 0 && m.hyp.hostPins(m.pfn(0x401).address) == 0)
        m.expectSound()
    }

    /// Teardown brings a guest-owned block back whole: one entry cleared, no split, every page
    /// zeroed (private) and the host's again; the block's other frames then find nothing.
    @Test func teardownReclaimsABlockWhole() throws {
        let (m, p) = try machine()
        poke(m, m.pfn(0x4AB).address, 0xDEAD)
        try m.hyp.startTeardown(vm: p)
        try m.hyp.reclaimDyingGuestPage(vm: p, gfn: GFN(0x4AB))
        #expect(m.hyp.vm(p)!.stage2.splits == 0)
        #expect(peek(m, m.pfn(0x4AB).address) == 0 && m.view(0x400).host == .owned && m.view(0x5FF).host == .owned)
        m.expectRefused(.ENOENT) { try m.hyp.reclaimDyingGuestPage(vm: p, gfn: GFN(0x400)) }
        try m.hyp.finalizeTeardown(vm: p)
        m.expectSound()
    }

    /// Three vCPUs (threads) converting ranges in two 2 MiB blocks — two of them overlapping,
    /// one disjoint — while the host converts ranges of the same blocks back to private. Races
    /// make calls fail; none may fail in a way its state does not explain, and the invariant
    /// checker must find nothing after, with every block's table whole again or consistent.
    @Test func concurrentConversionsOfOverlappingAndDisjointRanges() throws {
        let (m, p) = try machine()
        try m.hyp.hostDonateGuestBlock(m.pfn(0x600), gfn: GFN(0x600), pages: 512, vm: p)
        // Enough for every split: the VM's pool, topped up beyond the minimum.
        try m.hyp.topUpMemcache(vm: p, pages: (0 ..< 64).map { m.pfn(0x2000 + $0) })
        let unexpected = ConcurrencyTests.Unexpected()
        let hyp = m.hyp
        // Worker 0 and 1 overlap in block 0x400; worker 2 has block 0x600 to itself; 3 is the host.
        let ranges: [(UInt64, UInt64)] = [(0x400, 0x500), (0x480, 0x600), (0x600, 0x800), (0x400, 0x800)]
        DispatchQueue.concurrentPerform(iterations: 4) { w in
            var rng = ConcurrencyTests.SplitMix64(state: UInt64(w) &* 0x1234_5678 &+ 1)
            let (lo, hi) = ranges[w]
            for _ in 0 ..< 300 {
                let start = lo + rng.below(hi - lo)
                let pages = 1 + rng.below(min(64, hi - start))
                // -EPERM / -EFAULT: a page in another state (the racing worker's); -ENOMEM: a pool
                // another split emptied; -EBUSY never (no pins, no DMA).
                if w == 3 {
                    do {
                        try hyp.hostConvertGuestRange(vm: p, gfn: GFN(start), pages: pages, to: .private, backing: m.pfn(start))
                        unexpected.succeeded("convert")
                    } catch {
                        let e = (error as? ConversionError)?.errno
                        if e != .EPERM && e != .ENOMEM { unexpected.record("convert: \(error)") }
                    }
                } else if rng.below(2) == 0 {
                    ConcurrencyTests.attempt("share", allowed: [.EPERM, .ENOMEM], unexpected) {
                        _ = try hyp.guestShareHostRange(vm: p, gfn: GFN(start), pages: pages)
                    }
                } else {
                    ConcurrencyTests.attempt("unshare", allowed: [.EPERM, .ENOMEM], unexpected) {
                        _ = try hyp.guestUnshareHostRange(vm: p, gfn: GFN(start), pages: pages)
                    }
                }
            }
        }
        #expect(unexpected.all.isEmpty, "\(unexpected.all.prefix(5))")
        #expect(unexpected.successCount("share") > 0 && unexpected.successCount("unshare") > 0)
        m.expectSound()
        // Everything private again: both blocks coalesce whole.
        try hyp.hostConvertGuestRange(vm: p, gfn: GFN(0x400), pages: 1024, to: .private, backing: m.pfn(0x400))
        #expect(leafLevel(m, p, 0x400) == 2 && leafLevel(m, p, 0x600) == 2)
        m.expectSound()
    }
}
