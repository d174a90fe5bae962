import EL2

/// Draws fuzz operations from a seed: mostly calls on the world's own pages, frames and VMs,
/// sometimes edge values (an empty or huge range, a page past RAM or past the IPA space, EL2's
/// own pages). The sequence depends on the seed alone, never on what EL2 answered, so a seed
/// and an operation count name a run exactly.
public struct FuzzGenerator: Sendable {
    public let domain: FuzzDomain
    let iommu: IOMMUMode?
    let probes: [UInt64]
    var rng: SplitMix64

    /// `carveout` is the first page (counted from the start of RAM) of EL2's carveout, `ramPages`
    /// the number of RAM pages.
    public init(seed: UInt64, domain: FuzzDomain, iommu: IOMMUMode?, carveout: UInt64, ramPages: UInt64) {
        self.domain = domain
        self.iommu = iommu
        rng = SplitMix64(seed: seed)
        probes = [carveout, ramPages - 1, ramPages, 1 << 28, 0xFFFF_FFFF_0000]
    }

    mutating func page() -> UInt64 {
        rng.below(8) == 0 ? probes[rng.below(probes.count)] : domain.firstPage + UInt64(rng.below(domain.pages))
    }

    mutating func count() -> UInt64 {
        switch rng.below(32) {
        case 0: return 0
        case 1: return 512
        case 2: return UInt64.max
        case 3 ... 6: return 2
        case 7, 8: return 3
        default: return 1
        }
    }

    mutating func gfn() -> UInt64 {
        // Frames outside the world are past the IPA space: any EL2 must refuse them.
        rng.below(10) == 0 ? [1 << 28, UInt64.max >> 12][rng.below(2)] : domain.firstGFN + UInt64(rng.below(domain.gfns))
    }

    /// A page range: in the world, it stays inside it (so no thread reaches another's pages,
    /// and the model tracks every page it names); 512 pages only for a 2 MiB block.
    mutating func range() -> (UInt64, UInt64) {
        let p = page()
        var n = count()
        if n == 512 { n = 1 }
        guard domain.pageRange.contains(p), n <= UInt64(domain.pages) else { return (p, n) }
        return (min(p, domain.pageRange.upperBound - max(n, 1)), n)
    }

    mutating func vm() -> Int { rng.below(domain.vmCount) }

    mutating func prot() -> Stage2Permissions { [.read, .rw, .rwx][rng.below(3)] }

    public mutating func next() -> FuzzOperation {
        switch rng.below(100) {
        case 0 ..< 4: return .shareHyp(page())
        case 4 ..< 7: return .unshareHyp(page())
        case 7 ..< 10: let (p, n) = range()
            return .pin(p, n)
        case 10 ..< 13: let (p, n) = range()
            return .unpin(p, n)
        case 13 ..< 16: let (p, n) = range()
            return .donateHyp(p, n)
        case 16 ..< 19: let (p, n) = range()
            return .hypDonateHost(p, n)
        case 19 ..< 21: let (p, n) = range()
            return .shareFFA(p, n)
        case 21 ..< 23: let (p, n) = range()
            return .unshareFFA(p, n)
        case 23 ..< 30: return .shareGuest(pfn: page(), gfn: gfn(), pages: rng.below(12) == 0 ? count() : 1, vm: vm(), prot: prot())
        case 30 ..< 35: return .unshareGuest(gfn: gfn(), pages: rng.below(12) == 0 ? count() : 1, vm: vm())
        case 35 ..< 43: return .donateGuest(pfn: page(), gfn: gfn(), vm: vm())
        case 43 ..< 47: return .guestShare(vm: vm(), gfn: gfn())
        case 47 ..< 51: return .guestUnshare(vm: vm(), gfn: gfn())
        case 51 ..< 53: return .relinquish(vm: vm(), gfn: gfn())
        case 53 ..< 56: return .forceReclaim(page())
        case 56 ..< 58: return .reclaimGuest(gfn: gfn(), vm: vm())
        case 58 ..< 60: return .reclaimDying(vm: vm(), gfn: gfn())
        case 60 ..< 63: return .hostAccess(page())
        case 63 ..< 67: return .hostWrite(page(), UInt8(truncatingIfNeeded: rng.next()))
        case 67:
            // Mostly re-creation, so the worlds' VMs spend little time gone.
            switch rng.below(12) {
            case 0: return .startTeardown(vm())
            case 1: return .finalize(vm())
            case 2: return .teardown(vm())
            default: return .create(vm())
            }
        case 68 ..< 86: return hypercall()
        case 86 ..< 94: return dma()
        default:
            guard iommu == .refcount else { return dma() }
            let p = page()
            return rng.below(2) == 0 ? .iommuMap(iova: FuzzDomain.iova(page: p), pfn: p) : .iommuUnmap(iova: FuzzDomain.iova(page: p))
        }
    }

    mutating func hypercall() -> FuzzOperation {
        let v = vm()
        var ipa = gfn() << 12
        if rng.below(16) == 0 { ipa |= 8 }
        let x3: UInt64 = rng.below(20) == 0 ? 1 : 0
        switch rng.below(10) {
        case 0 ..< 3: return .hvc(vm: v, function: .memShare, x1: ipa, x2: UInt64(rng.below(4)) * UInt64(rng.below(2)), x3: x3)
        case 3 ..< 6: return .hvc(vm: v, function: .memUnshare, x1: ipa, x2: UInt64(rng.below(4)) * UInt64(rng.below(2)), x3: x3)
        case 6: return .hvc(vm: v, function: .memRelinquish, x1: ipa, x2: 0, x3: x3)
        case 7: return .hvc(vm: v, function: .mmioGuardEnroll, x1: 0, x2: 0, x3: 0)
        case 8: return .hvc(vm: v, function: .mmioGuardMap, x1: rng.below(3) == 0 ? 0xD000_0000 : ipa, x2: 0, x3: 0)
        default:
            let f: [SMCCCFunction] = [.version, .vendorHypFeatures, .hypMemInfo, .psciAffinityInfo, .psciFeatures]
            return .hvc(vm: v, function: f[rng.below(f.count)], x1: UInt64(rng.below(3)), x2: 0, x3: 0)
        }
    }

    mutating func dma() -> FuzzOperation {
        let byte = UInt8(truncatingIfNeeded: rng.next() | 1)
        if rng.below(3) == 0 { return .dmaWrite(stream: domain.guestStream, iova: gfn() << 12, byte: byte) }
        let p = page()
        let iova = iommu == .refcount ? FuzzDomain.iova(page: p) : (ReferenceModel.ramBasePFN &+ p) << 12
        return .dmaWrite(stream: FuzzDomain.hostStream, iova: iova, byte: byte)
    }
}
