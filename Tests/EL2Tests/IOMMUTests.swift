import EL2
import Foundation
import Testing

/// The SMMU: stream table, identity domain mirroring the host stage-2, paging domains with DMA
/// refcounts, device assignment, the event queue and the IOTLB (docs/iommu.md).
@Suite struct IOMMUTests {
    static let hostDevice = StreamID(1)
    static let guestDevice = StreamID(5)

    /// A mirror-mode machine with a host device on the identity domain and a protected VM that
    /// owns page 10 at gfn 0x40.
    func mirrorMachine() throws -> (TestMachine, VMHandle) {
        let m = try TestMachine(iommu: .mirror)
        m.expectSound()
        try m.hyp.iommuAttach(Self.hostDevice, domain: .identity)
        let vm = try m.createVM(protected: true, at: 100)
        try m.hyp.hostDonateGuest(m.pfn(10), gfn: GFN(0x40), vm: vm)
        m.expectSound()
        return (m, vm)
    }

    func bytes(_ m: TestMachine, _ pfn: PFN, count: Int = 16) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: count)
        out.withUnsafeMutableBytes { m.hyp.memory.read(pfn.address, into: $0) }
        return out
    }

    func write(_ m: TestMachine, _ stream: StreamID, _ iova: UInt64, _ data: [UInt8]) throws(DMAFault) {
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: data.count, alignment: 8)
        defer { buffer.deallocate() }
        buffer.copyBytes(from: data)
        try m.hyp.dmaWrite(stream: stream, iova: iova, from: UnsafeRawBufferPointer(buffer))
    }

    // MARK: Stream table

    @Test func attachWritesAStage2STE() throws {
        let (m, _) = try mirrorMachine()
        let ste = try #require(m.hyp.streamTableEntry(Self.hostDevice))
        #expect(ste.isValid && ste.config == .stage2 && ste.recordsFaults)
        #expect(ste.s2vmid == .identity)
        #expect(ste.vtcr == m.hyp.geometry.vtcr(physBits: 40) & 0x7FFFF)
        let domain = try #require(m.hyp.iommuDomains().first { $0.id == .identity })
        #expect(ste.s2ttb == domain.root && domain.streams == [Self.hostDevice])
        #expect(m.hyp.streamTableEntry(StreamID(2))?.isValid == false)
        #expect(m.hyp.streamTableEntry(StreamID(256)) == nil)
    }

    @Test func badStreamsAndConfigurationsAreRefused() throws {
        let (m, vm) = try mirrorMachine()
        expectError(.EBUSY) { () throws(HypError) in try m.hyp.iommuAttach(Self.hostDevice, domain: .identity) }
        expectError(.EINVAL) { () throws(HypError) in try m.hyp.iommuAttach(StreamID(256), domain: .identity) }
        expectError(.EINVAL) { () throws(HypError) in try m.hyp.iommuAttach(StreamID(2), domain: IOMMUDomainID(7)) }
        expectError(.EINVAL) { () throws(HypError) in try m.hyp.iommuAllocDomain(IOMMUDomainID(1)) }  // mirror mode
        expectError(.EINVAL) { () throws(HypError) in try m.hyp.iommuMap(domain: .identity, iova: 0, pfn: m.pfn(1), pages: 1, prot: .rw) }
        expectError(.EINVAL) { () throws(HypError) in try m.hyp.iommuDetach(StreamID(3)) }
        expectError(.EINVAL) { () throws(HypError) in try m.hyp.iommuAssign(StreamID(3), vm: VMHandle(rawValue: 0x1234)) }
        try m.hyp.iommuAssign(Self.guestDevice, vm: vm)
        expectError(.EBUSY) { () throws(HypError) in try m.hyp.iommuAssign(Self.guestDevice, vm: vm) }
        m.expectSound()

        // Transactions from streams nobody configured.
        #expect(throws: DMAFault.self) { try m.hyp.dmaTranslate(stream: StreamID(9), iova: 0x8000_0000, access: .read) }
        #expect(throws: DMAFault.self) { try m.hyp.dmaTranslate(stream: StreamID(999), iova: 0, access: .read) }
        let ids = m.hyp.iommuEvents().records.map(\.id)
        #expect(ids == [.badSTE, .badStreamID])

        let plain = try TestMachine()
        expectError(.ENODEV) { () throws(HypError) in try plain.hyp.iommuAttach(Self.hostDevice, domain: .identity) }
        expectError(.ENODEV) { () throws(HypError) in try plain.hyp.iommuAllocDomain(IOMMUDomainID(1)) }
        #expect(throws: DMAFault.self) { try plain.hyp.dmaTranslate(stream: Self.hostDevice, iova: 0, access: .read) }
    }

    // MARK: Mirror mode

    @Test func hostDeviceReachesHostMemory() throws {
        let (m, _) = try mirrorMachine()
        let iova = m.pfn(20).address.rawValue + 0xFF0
        try write(m, Self.hostDevice, iova, Array(1...32))  // crosses into page 21
        #expect(bytes(m, PFN(m.pfn(20).rawValue), count: 4096).suffix(16) == ArraySlice(1...16))
        #expect(bytes(m, m.pfn(21)) == Array(17...32))
        var back = [UInt8](repeating: 0, count: 32)
        try back.withUnsafeMutableBytes { try m.hyp.dmaRead(stream: Self.hostDevice, iova: iova, into: $0) }
        #expect(back == Array(1...32))
        #expect(try m.hyp.dmaTranslate(stream: Self.hostDevice, iova: iova, access: .write) == PhysAddr(iova))
        #expect(m.hyp.smmu!.iotlb.statistics.hits > 0)
        m.expectSound()
    }

    @Test func hostDeviceCannotReachAGuestPrivatePage() throws {
        let (m, vm) = try mirrorMachine()
        let pa = m.pfn(10).address
        [UInt8](repeating: 0xAB, count: 16).withUnsafeBytes { m.hyp.memory.write(pa, from: $0) }
        let before = bytes(m, m.pfn(10))
        do {
            try write(m, Self.hostDevice, pa.rawValue, [UInt8](repeating: 0x55, count: 16))
            Issue.record("DMA into a guest-private page succeeded")
        } catch {
            #expect(error.bytesTransferred == 0)
            let e = error.event
            #expect(e.id == .translation && e.stream == Self.hostDevice && e.iova == pa.rawValue)
            #expect(e.access == .write && e.domain == .identity)
            #expect(e.ownership == PageOwnership(page: pa, owner: .guest(vm, GFN(0x40)), host: .noPage, hyp: .noPage))
            let (d0, d1, d2, d3) = e.dwords
            #expect(d0 == 0x10 | UInt64(Self.hostDevice.rawValue) << 32)
            #expect(d1 & (1 << 35) == 0 && d1 & (1 << 39) != 0 && (d1 >> 40) & 3 == 2)
            #expect(d2 == pa.rawValue && d3 == pa.rawValue)
        }
        #expect(bytes(m, m.pfn(10)) == before)
        #expect(m.hyp.iommuEvents(drain: true).records.count == 1)
        #expect(m.hyp.iommuEvents().records.isEmpty)
        // EL2's own pages are out of reach too.
        #expect(throws: DMAFault.self) {
            try m.hyp.dmaTranslate(stream: Self.hostDevice, iova: m.hyp.carveout.lowerBound.address.rawValue, access: .read)
        }
        m.expectSound()
    }

    @Test func guestUnshareRemovesThePageFromTheHostDomainAtOnce() throws {
        let (m, vm) = try mirrorMachine()
        let pa = m.pfn(10).address
        try m.hyp.guestShareHost(vm: vm, gfn: GFN(0x40))
        m.expectSound()
        try write(m, Self.hostDevice, pa.rawValue, [1, 2, 3])  // warms the IOTLB
        #expect(bytes(m, m.pfn(10), count: 3) == [1, 2, 3])
        m.sink.reset()
        try m.hyp.guestUnshareHost(vm: vm, gfn: GFN(0x40))
        let notes = m.sink.iommuNotifications.map(\.description)
        #expect(notes.contains { $0.hasPrefix("iotlbi domain 0 iova=\(hex(pa.rawValue))") })
        #expect(notes.contains { $0.hasPrefix("unmap domain 0") })
        m.expectSound()
        #expect(throws: DMAFault.self) { try write(m, Self.hostDevice, pa.rawValue, [9, 9, 9]) }
        #expect(bytes(m, m.pfn(10), count: 3) == [1, 2, 3])
        // Sharing again gives the device the page back.
        try m.hyp.guestShareHost(vm: vm, gfn: GFN(0x40))
        try write(m, Self.hostDevice, pa.rawValue, [7])
        #expect(bytes(m, m.pfn(10), count: 1) == [7])
        m.expectSound()
    }

    /// A device writes the page as fast as it can while the guest unshares it: once the unshare
    /// has returned, not one more byte lands.
    @Test func unshareDuringAnInFlightTransferStopsIt() throws {
        let (m, vm) = try mirrorMachine()
        let pa = m.pfn(10).address
        try m.hyp.guestShareHost(vm: vm, gfn: GFN(0x40))
        let hyp = m.hyp
        let started = DispatchSemaphore(value: 0)
        let finished = DispatchSemaphore(value: 0)
        let result = ResultBox()
        Thread.detachNewThread {
            var counter: UInt64 = 0
            var signalled = false
            while true {
                counter += 1
                var chunk = [UInt64](repeating: counter, count: 64)  // 512-byte chunks
                let fault: DMAFault? = chunk.withUnsafeBytes { b in
                    for offset in stride(from: 0, to: 4096, by: 512) {
                        do throws(DMAFault) {
                            try hyp.dmaWrite(stream: Self.hostDevice, iova: pa.rawValue + UInt64(offset), from: b)
                        } catch {
                            return error
                        }
                    }
                    return nil
                }
                if let fault {
                    result.set(fault, chunks: counter)
                    break
                }
                chunk[0] = 0
                if !signalled { signalled = true; started.signal() }
            }
            finished.signal()
        }
        started.wait()
        Thread.sleep(forTimeInterval: 0.002)
        try m.hyp.guestUnshareHost(vm: vm, gfn: GFN(0x40))
        let atUnshare = bytes(m, m.pfn(10), count: 4096)
        finished.wait()
        #expect(bytes(m, m.pfn(10), count: 4096) == atUnshare)
        let fault = try #require(result.fault)
        #expect(fault.event.id == .translation)
        #expect(fault.event.ownership?.owner == .guest(vm, GFN(0x40)))
        #expect(result.chunks > 1)
        m.expectSound()
    }

    // MARK: Refcount mode

    /// A refcount-mode machine: paging domain 1 with the host device attached, a protected VM
    /// that owns page 10 at gfn 0x40 and shares it with the host.
    func refcountMachine() throws -> (TestMachine, VMHandle) {
        let m = try TestMachine(iommu: .refcount)
        try m.hyp.iommuAllocDomain(IOMMUDomainID(1))
        try m.hyp.iommuAttach(Self.hostDevice, domain: IOMMUDomainID(1))
        let vm = try m.createVM(protected: true, at: 100)
        try m.hyp.hostDonateGuest(m.pfn(10), gfn: GFN(0x40), vm: vm)
        try m.hyp.guestShareHost(vm: vm, gfn: GFN(0x40))
        m.expectSound()
        return (m, vm)
    }

    @Test func refcountModeRefusesTheConversionUntilUnmapped() throws {
        let (m, vm) = try refcountMachine()
        let d = IOMMUDomainID(1)
        try m.hyp.iommuMap(domain: d, iova: 0x10_0000, pfn: m.pfn(10), pages: 1, prot: .rw)
        #expect(m.view(10).refcount == 1)
        m.expectSound()
        try write(m, Self.hostDevice, 0x10_0000, [4, 5, 6])
        #expect(bytes(m, m.pfn(10), count: 3) == [4, 5, 6])
        m.expectRefused(.EBUSY) { try m.hyp.guestUnshareHost(vm: vm, gfn: GFN(0x40)) }
        #expect(try m.hyp.iommuUnmap(domain: d, iova: 0x10_0000, pages: 1) == 1)
        #expect(m.view(10).refcount == 0)
        #expect(throws: DMAFault.self) { try write(m, Self.hostDevice, 0x10_0000, [1]) }
        try m.hyp.guestUnshareHost(vm: vm, gfn: GFN(0x40))
        m.expectSound()
    }

    @Test func refcountModeBlocksHostTransitionsOfMappedPages() throws {
        let (m, vm) = try refcountMachine()
        let d = IOMMUDomainID(1)
        try m.hyp.iommuMap(domain: d, iova: 0x20_0000, pfn: m.pfn(30), pages: 2, prot: .read)
        m.expectSound()
        m.expectRefused(.EINVAL) { try m.hyp.hostDonateGuest(m.pfn(30), gfn: GFN(0x50), vm: vm) }
        m.expectRefused(.EINVAL) { try m.hyp.hostShareHyp(m.pfn(31)) }
        m.expectRefused(.EINVAL) { try m.hyp.hostDonateHyp(m.pfn(30), pages: 2) }
        m.expectRefused(.EINVAL) { try m.hyp.hostShareFFA(m.pfn(31), pages: 1) }
        // Read-only mapping: a device write is a permission fault.
        do {
            try write(m, Self.hostDevice, 0x20_0000, [1])
            Issue.record("write through a read-only mapping succeeded")
        } catch {
            #expect(error.event.id == .permission)
            #expect(error.event.ownership?.page == m.pfn(30).address)
        }
        // Two domains may map the same page: two references.
        try m.hyp.iommuAllocDomain(IOMMUDomainID(2))
        try m.hyp.iommuMap(domain: IOMMUDomainID(2), iova: 0, pfn: m.pfn(30), pages: 1, prot: .rw)
        #expect(m.view(30).refcount == 2)
        m.expectSound()
        try m.hyp.iommuFreeDomain(IOMMUDomainID(2))
        #expect(m.view(30).refcount == 1)
        try m.hyp.iommuUnmap(domain: d, iova: 0x20_0000, pages: 2)
        try m.hyp.hostDonateGuest(m.pfn(30), gfn: GFN(0x50), vm: vm)
        m.expectSound()
    }

    @Test func refcountModeMapChecks() throws {
        let (m, _) = try refcountMachine()
        let d = IOMMUDomainID(1)
        let plain = m.pfn(40)
        m.expectRefused(.EINVAL) { try m.hyp.iommuMap(domain: IOMMUDomainID(9), iova: 0, pfn: plain, pages: 1, prot: .rw) }
        m.expectRefused(.EINVAL) { try m.hyp.iommuMap(domain: d, iova: 0, pfn: plain, pages: 1, prot: .rwx) }
        m.expectRefused(.EINVAL) { try m.hyp.iommuMap(domain: d, iova: 0x123, pfn: plain, pages: 1, prot: .rw) }
        m.expectRefused(.EINVAL) { try m.hyp.iommuMap(domain: d, iova: 0, pfn: plain, pages: 0, prot: .rw) }
        m.expectRefused(.EINVAL) { try m.hyp.iommuMap(domain: d, iova: m.hyp.geometry.limit, pfn: plain, pages: 1, prot: .rw) }
        m.expectRefused(.EPERM) { try m.hyp.iommuMap(domain: d, iova: 0, pfn: TestMachine.mmioPFN, pages: 1, prot: .rw) }
        // A page a guest owns, and a page shared with EL2.
        try m.hyp.hostShareHyp(m.pfn(41))
        m.expectRefused(.EPERM) { try m.hyp.iommuMap(domain: d, iova: 0, pfn: m.hyp.carveout.lowerBound, pages: 1, prot: .rw) }
        m.expectRefused(.EPERM) { try m.hyp.iommuMap(domain: d, iova: 0, pfn: m.pfn(41), pages: 1, prot: .rw) }
        try m.hyp.iommuMap(domain: d, iova: 0, pfn: plain, pages: 1, prot: .rw)
        m.expectRefused(.EEXIST) { try m.hyp.iommuMap(domain: d, iova: 0, pfn: m.pfn(42), pages: 1, prot: .rw) }
        m.expectRefused(.EBUSY) { try m.hyp.iommuFreeDomain(d) }
        m.expectRefused(.EINVAL) { try m.hyp.iommuAttach(StreamID(2), domain: .identity) }
        m.expectRefused(.EEXIST) { try m.hyp.iommuAllocDomain(d) }
        m.expectRefused(.EINVAL) { try m.hyp.iommuAllocDomain(IOMMUDomainID(0x8001)) }
        #expect(try m.hyp.iommuUnmap(domain: d, iova: 0x40_0000, pages: 4) == 0)
        m.expectSound()
    }

    // MARK: Device assignment

    @Test func assignedDeviceReachesItsGuestAndNobodyElse() throws {
        let (m, vm) = try mirrorMachine()
        let other = try m.createVM(protected: true, at: 300)
        try m.hyp.hostDonateGuest(m.pfn(12), gfn: GFN(0x40), vm: other)
        try m.hyp.iommuAssign(Self.guestDevice, vm: vm)
        m.expectSound()
        // The guest's private page, by IPA.
        try write(m, Self.guestDevice, GFN(0x40).ipa.rawValue + 8, [0xC0, 0xDE])
        #expect(bytes(m, m.pfn(10), count: 10).suffix(2) == [0xC0, 0xDE])
        // An IPA the guest has not got (the other VM's gfn 0x41, a host page's address).
        for iova in [GFN(0x41).ipa.rawValue, m.pfn(12).address.rawValue, m.pfn(20).address.rawValue] {
            do {
                try write(m, Self.guestDevice, iova, [1])
                Issue.record("assigned device reached iova \(hex(iova))")
            } catch {
                #expect(error.event.id == .translation)
                #expect(error.event.ownership?.guest == .noPage)
            }
        }
        #expect(bytes(m, m.pfn(12), count: 1) == [0])
        // The guest relinquishes its page: the device loses it with the guest.
        try write(m, Self.guestDevice, GFN(0x40).ipa.rawValue, [1])  // warm
        _ = try m.hyp.guestRelinquish(vm: vm, gfn: GFN(0x40))
        #expect(throws: DMAFault.self) { try write(m, Self.guestDevice, GFN(0x40).ipa.rawValue, [2]) }
        m.expectSound()
        // Teardown detaches the device.
        try m.hyp.startTeardown(vm: vm)
        #expect(m.hyp.streamTableEntry(Self.guestDevice)?.isValid == false)
        #expect(throws: DMAFault.self) { try write(m, Self.guestDevice, GFN(0x40).ipa.rawValue, [3]) }
        expectError(.EINVAL) { () throws(HypError) in try m.hyp.iommuAssign(StreamID(6), vm: vm) }
        _ = try m.hyp.finalizeTeardown(vm: vm)
        m.expectSound()
    }

    @Test func eventQueueOverflowIsReported() throws {
        let (m, _) = try mirrorMachine()
        for _ in 0..<(SMMU.eventQueueCapacity + 3) {
            _ = try? m.hyp.dmaTranslate(stream: StreamID(77), iova: 0, access: .write)
        }
        let (records, overflowed) = m.hyp.iommuEvents(drain: true)
        #expect(records.count == SMMU.eventQueueCapacity && overflowed)
        #expect(m.hyp.iommuEvents().overflowed == false)
    }
}

/// The DMA thread's outcome.
final class ResultBox: @unchecked Sendable {
    private let lock = NSLock()
    private var _fault: DMAFault?
    private var _chunks: UInt64 = 0
    func set(_ fault: DMAFault, chunks: UInt64) { lock.withLock { _fault = fault; _chunks = chunks } }
    var fault: DMAFault? { lock.withLock { _fault } }
    var chunks: UInt64 { lock.withLock { _chunks } }
}
