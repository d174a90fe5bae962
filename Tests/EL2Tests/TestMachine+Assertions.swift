import EL2
import Testing

/// Shared vocabulary of the transition suites: "this call must fail with exactly this errno and
/// change nothing", state snapshots, and page-content helpers.
extension TestMachine {
    /// Host OWNED, hyp NOPAGE, no counts: the boot state of every RAM page outside the carveout.
    static let hostOwned = Hypervisor.PageView(host: .owned, hyp: .noPage)

    /// RAM pages of a single-region machine.
    var ramPages: UInt64 { UInt64(hyp.memory.pageCount) }

    /// A pfn below RAM (address 0x100_0000): MMIO for every machine the suites build.
    static let mmioPFN = PFN(0x1000)

    /// The first pfn `pfn_range_is_valid` rejects: `2^(ipaBits - 12)`.
    var firstInvalidPFN: PFN { PFN(1 << UInt64(hyp.geometry.ipaBits - 12)) }

    /// The first gfn past the IPA limit.
    var firstGFNPastLimit: GFN { GFN(hyp.geometry.limit >> 12) }

    /// Everything a transition could change, as text: the host stage-2 (entries, pool counts),
    /// every page whose metadata is not the boot default, and every VM's stage-2 (entries,
    /// dying flag, pool and memcache counts).
    func snapshot() -> String {
        var s = hyp.dumpHostStage2()
        for (first, pages, view) in hyp.nonDefaultPages() {
            s += "\n\(first) x\(pages) \(view) use=\(view.use)"
        }
        for vm in hyp.vms {
            s += "\n" + ((try? hyp.dumpGuestStage2(vm: vm.handle)) ?? "vm \(vm.handle) vanished")
        }
        return s
    }

    /// Expects `body` to fail with exactly `error`, leave every page, table and pool as it was,
    /// ask for no TLB invalidation, and leave the machine sound.
    func expectRefused(_ error: HypError, sourceLocation: SourceLocation = #_sourceLocation,
                       _ body: () throws -> Void) {
        let before = snapshot()
        let invalidations = sink.invalidations.count
        do {
            try body()
            Issue.record("expected \(error), got success", sourceLocation: sourceLocation)
        } catch let e as HypError {
            #expect(e == error, sourceLocation: sourceLocation)
        } catch let other {
            Issue.record("expected \(error), got \(other)", sourceLocation: sourceLocation)
        }
        let after = snapshot()
        #expect(after == before, "a refused call changed EL2 state", sourceLocation: sourceLocation)
        #expect(sink.invalidations.count == invalidations, "a refused call invalidated TLBs",
                sourceLocation: sourceLocation)
        expectSound(sourceLocation: sourceLocation)
    }

    /// The guest's view of `gfn`.
    func guest(_ vm: VMHandle, _ gfn: UInt64) throws -> Hypervisor.GuestPageView {
        try hyp.guestPageView(vm: vm, gfn: GFN(gfn))
    }

    /// Fills RAM page `pa` with `byte`.
    func fill(_ pa: PhysAddr, with byte: UInt8 = 0xA5) {
        let bytes = [UInt8](repeating: byte, count: Int(pageSize))
        bytes.withUnsafeBytes { hyp.memory.write(pa, from: $0) }
    }

    /// True when every byte of RAM page `pa` equals `byte`.
    func pageHolds(_ pa: PhysAddr, only byte: UInt8) -> Bool {
        var bytes = [UInt8](repeating: 0, count: Int(pageSize))
        bytes.withUnsafeMutableBytes { hyp.memory.read(pa, into: $0) }
        return bytes.allSatisfy { $0 == byte }
    }

    /// The host stage-2 entry that translates `pa`, and its level.
    func hostEntry(_ pa: PhysAddr) -> (descriptor: Stage2Descriptor, level: Int) {
        hyp.hostStage2.leaf(at: IPA(pa.rawValue))
    }

    /// The host stage-2 DONATION annotation naming `vm` and `gfn` as a page's owner.
    func donatedTo(_ vm: VMHandle, gfn: UInt64) -> Stage2Descriptor {
        .annotation(.donation, owner: .guest, meta: GuestOwnerMeta.encode(handle: vm, gfn: GFN(gfn)))
    }

    /// The guest stage-2 of `vm`.
    func stage2(_ vm: VMHandle) throws -> Stage2PageTable {
        try #require(hyp.vm(vm)).stage2
    }
}
