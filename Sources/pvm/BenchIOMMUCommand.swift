import ArgumentParser
import EL2

/// `pvm bench iommu`: SMMU translation rate with a warm and a cold IOTLB, against a bare walk of
/// the same table; and what a page conversion costs when a host device can reach the page, in
/// each design, against the same conversion on a machine without an SMMU.
struct BenchIOMMUCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "iommu",
        abstract: "SMMU translations per second (warm and cold IOTLB) and the cost a conversion adds per design."
    )

    @Option(help: "Translations to time per measurement.")
    var translations: Int = 2_000_000

    @Option(help: "Conversion cycles (MEM_SHARE + MEM_UNSHARE of one page) to time per measurement.")
    var conversions: Int = 200_000

    @Option(help: "Repetitions of each measurement; the best is reported.")
    var repeats: Int = 3

    func validate() throws {
        guard (1...1_000_000_000).contains(translations) else { throw ValidationError("--translations must be 1...1000000000") }
        guard (1...100_000_000).contains(conversions) else { throw ValidationError("--conversions must be 1...100000000") }
        guard (1...50).contains(repeats) else { throw ValidationError("--repeats must be 1...50") }
    }

    static let device = StreamID(1)

    func run() throws {
        try translationRate()
        try conversionCost()
    }

    /// Warm: the same 64 pages again and again (all IOTLB hits). Cold: a stride over 16,384
    /// pages, 16 times the IOTLB, so nearly every translation fetches the STE and walks.
    /// Baseline: the bare table walk (`Stage2PageTable.translate`) of the cold addresses in the
    /// host stage-2 (which maps them with the same blocks), with no SMMU, lock or cache.
    private func translationRate() throws {
        let m = try BenchMachine(bytes: 128 << 20, iommu: .mirror)
        try m.hyp.iommuAttach(Self.device, domain: .identity)
        let base = m.pfn(0).address.rawValue
        let warmPages: UInt64 = 64, coldPages: UInt64 = 16_384
        let n = translations
        var warm = Double.infinity, cold = Double.infinity, bare = Double.infinity
        var missRatio = 0.0
        let identity = try m.hyp.iommuMappings(.identity)
        guard !identity.isEmpty else { throw ValidationError("the identity domain maps nothing") }
        // Fault the range into the host stage-2 so the baseline walks mappings of the same shape
        // (blocks) as the identity domain holds.
        try m.hyp.hostAccess(PhysAddr(base), count: Int(coldPages << 12))
        for k in 0..<repeats {
            benchProgress("pvm bench iommu: translations, run \(k + 1) of \(repeats)")
            warm = min(warm, try measure {
                for i in 0..<n {
                    _ = try m.hyp.dmaTranslate(stream: Self.device, iova: base + (UInt64(i) % warmPages) << 12, access: .read)
                }
            })
            let before = m.hyp.smmu!.iotlb.statistics
            cold = min(cold, try measure {
                for i in 0..<n {
                    _ = try m.hyp.dmaTranslate(stream: Self.device, iova: base + ((UInt64(i) &* 1031) % coldPages) << 12,
                                               access: .read)
                }
            })
            let after = m.hyp.smmu!.iotlb.statistics
            missRatio = Double(after.misses - before.misses) / Double(n)
            let table = m.hyp.hostStage2
            bare = min(bare, measure {
                var sink: UInt64 = 0
                for i in 0..<n {
                    sink &+= table.translate(IPA(base + ((UInt64(i) &* 1031) % coldPages) << 12))?.output.rawValue ?? 0
                }
                if sink == 42 { benchPrint("") }
            })
        }
        benchPrint("SMMU translation (dmaTranslate, one stream, identity domain, mirror mode):")
        benchPrint("  warm IOTLB (64 pages, all hits): \(grouped(Double(n) / warm)) translations/s")
        benchPrint("  cold IOTLB (16,384-page stride, \(format2(missRatio * 100))% misses): \(grouped(Double(n) / cold)) translations/s")
        benchPrint("  baseline, bare stage-2 walk of the same addresses: \(grouped(Double(n) / bare)) walks/s; "
              + "a cold translation costs \(format2(cold / bare))x a walk (goal: 3x), a warm one \(format2(warm / bare))x (goal: 0.5x)")
    }

    /// A protected guest shares and unshares one page (`guestShareHost` + `guestUnshareHost`),
    /// the conversion a bounce buffer goes through. Measured on a machine without an SMMU
    /// (baseline), in mirror mode with a host device in the identity domain (the page enters and
    /// leaves the domain with each conversion, an IOTLB invalidation each time), and in refcount
    /// mode, where the host must unmap the page from its device's domain before the guest may
    /// unshare it and map it again after the share.
    private func conversionCost() throws {
        let n = conversions
        var results: [(String, Double)] = []
        for mode in [nil, IOMMUMode.mirror, .refcount] {
            let m = try BenchMachine(bytes: 64 << 20, iommu: mode)
            let vm = try m.vm(protected: true)
            let gfn = GFN(0x40), pfn = m.pfn(16)
            try m.hyp.hostDonateGuest(pfn, gfn: gfn, vm: vm)
            switch mode {
            case .mirror?: try m.hyp.iommuAttach(Self.device, domain: .identity)
            case .refcount?:
                try m.hyp.iommuAllocDomain(IOMMUDomainID(1))
                try m.hyp.iommuAttach(Self.device, domain: IOMMUDomainID(1))
            case nil: break
            }
            // Warm the device's translation of the page.
            try m.hyp.guestShareHost(vm: vm, gfn: gfn)
            if mode == .refcount {
                try m.hyp.iommuMap(domain: IOMMUDomainID(1), iova: pfn.address.rawValue, pfn: pfn, pages: 1, prot: .rw)
            }
            if mode != nil { _ = try m.hyp.dmaTranslate(stream: Self.device, iova: pfn.address.rawValue, access: .write) }
            var best = Double.infinity
            for k in 0..<repeats {
                benchProgress("pvm bench iommu: conversions (\(mode.map { "\($0)" } ?? "no SMMU")), run \(k + 1) of \(repeats)")
                best = min(best, try measure {
                    for _ in 0..<n {
                        if mode == .refcount { try m.hyp.iommuUnmap(domain: IOMMUDomainID(1), iova: pfn.address.rawValue, pages: 1) }
                        try m.hyp.guestUnshareHost(vm: vm, gfn: gfn)
                        try m.hyp.guestShareHost(vm: vm, gfn: gfn)
                        if mode == .refcount {
                            try m.hyp.iommuMap(domain: IOMMUDomainID(1), iova: pfn.address.rawValue, pfn: pfn, pages: 1, prot: .rw)
                        }
                    }
                })
            }
            guard m.hyp.checkInvariants().isEmpty else { throw ValidationError("invariants broken by the benchmark") }
            results.append((mode.map { "\($0)" } ?? "none", best / Double(n)))
        }
        let baseline = results[0].1
        benchPrint("Page conversion (guest MEM_UNSHARE + MEM_SHARE of one page a host device can reach):")
        benchPrint("  baseline, no SMMU: \(format2(baseline * 1e9)) ns per cycle")
        for (name, t) in results.dropFirst() {
            let extra = name == "refcount" ? " (includes the host's unmap before and map after, which the design requires)" : ""
            benchPrint("  \(name): \(format2(t * 1e9)) ns per cycle, +\(format2((t - baseline) * 1e9)) ns = \(format2(t / baseline))x\(extra)")
        }
    }
}
