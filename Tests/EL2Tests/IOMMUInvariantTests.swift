@testable import EL2
import Testing

/// Rule 7 of the invariant checker is not vacuous: it catches an identity domain that lets a
/// device reach a page the host lost, and an IOTLB entry that outlived its mapping. (The state
/// is corrupted through internals no public call can reach.)
@Suite struct IOMMUInvariantTests {
    @Test func checkerCatchesAnIdentityMappingOfAGuestPage() throws {
        let m = try TestMachine(iommu: .mirror)
        let vm = try m.createVM(protected: true, at: 100)
        try m.hyp.hostDonateGuest(m.pfn(10), gfn: GFN(0x40), vm: vm)
        m.expectSound()
        let pa = m.pfn(10).address
        m.hyp.hostLock.withLock { _ in
            m.hyp.smmu!.identity!.table.apply(.map(output: pa, permissions: .rw, state: .owned, pagesOnly: true),
                                              start: pa.rawValue, end: pa.rawValue + 4096)
        }
        let v = m.hyp.checkInvariants().map(\.message)
        #expect(v.contains { $0.contains("host devices can DMA \(pa) but host state is NOPAGE") }, "\(v)")
    }

    @Test func checkerCatchesAStaleIOTLBEntry() throws {
        let m = try TestMachine(iommu: .mirror)
        try m.hyp.iommuAttach(StreamID(1), domain: .identity)
        let pa = m.pfn(20).address
        _ = try m.hyp.dmaTranslate(stream: StreamID(1), iova: pa.rawValue, access: .write)
        m.expectSound()
        // Unmap behind the IOTLB's back: no invalidation reaches it.
        m.hyp.hostLock.withLock { _ in
            let table = m.hyp.smmu!.identity!.table
            table.attachIOTLB(nil, domain: .identity)
            table.apply(.clear, start: pa.rawValue, end: pa.rawValue + 4096)
            table.attachIOTLB(m.hyp.smmu!.iotlb, domain: .identity)
        }
        let v = m.hyp.checkInvariants().map(\.message)
        #expect(v.contains { $0.contains("stale IOTLB entry: domain 0 iova \(hex(pa.rawValue))") }, "\(v)")
    }

    /// An IOVA above the IPA limit must not alias a cached entry of another domain.
    @Test func iovaBeyondTheLimitIsAnAddressSizeFault() throws {
        let m = try TestMachine(iommu: .mirror)
        let a = try m.createVM(protected: true, at: 100)
        let b = try m.createVM(protected: true, at: 200)
        try m.hyp.hostDonateGuest(m.pfn(10), gfn: GFN(0x40), vm: a)
        try m.hyp.hostDonateGuest(m.pfn(11), gfn: GFN(0x40), vm: b)
        try m.hyp.iommuAssign(StreamID(5), vm: a)
        try m.hyp.iommuAssign(StreamID(6), vm: b)
        _ = try m.hyp.dmaTranslate(stream: StreamID(6), iova: GFN(0x40).ipa.rawValue, access: .write)  // b's entry cached
        let vmidA = m.hyp.vm(a)!.vmid.rawValue, vmidB = m.hyp.vm(b)!.vmid.rawValue
        // Bits above the limit that would turn a's domain number into b's in a naive tag.
        let alias = UInt64(vmidA ^ vmidB) << 52 | GFN(0x40).ipa.rawValue
        do {
            _ = try m.hyp.dmaTranslate(stream: StreamID(5), iova: alias, access: .write)
            Issue.record("IOVA \(hex(alias)) translated")
        } catch {
            #expect(error.event.id == .addressSize)
        }
        m.expectSound()
    }
}
