import EL2
import HostMemory
import Synchronization
import Testing
@testable import VMM

/// The virtio-rng as a hostile or careless driver drives it: a well-formed request is filled
/// through the SMMU; a buffer in a page the host may not touch (donated to a protected guest)
/// faults and the device asks for a reset instead of writing; bad indices, looping chains and
/// huge lengths stay bounded.
@Suite struct VirtioRNGDeviceTests {
    static let ramBase: UInt64 = 0x8000_0000
    /// Where the test's driver keeps its queue: descriptors, available ring, used ring, buffers.
    static let desc = ramBase + 0x10_0000, avail = ramBase + 0x10_1000, used = ramBase + 0x10_2000
    static let buffer = ramBase + 0x10_3000

    final class Line: Sendable { let raised = Mutex(false) }

    struct Rig {
        let hyp: Hypervisor
        let memory: PhysicalMemory
        let backing: AnonymousMemory
        let device: VirtioRNGDevice
        let line: Line

        init() throws {
            backing = try AnonymousMemory(size: 64 << 20)
            memory = try PhysicalMemory(regions: [MemoryRegion(base: PhysAddr(VirtioRNGDeviceTests.ramBase), size: 64 << 20)],
                                        backing: backing.buffer, owner: backing, clearPage: AnonymousMemory.clearPage)
            hyp = try Hypervisor(memory: memory, ipaBits: 40, iommu: .mirror)
            try hyp.iommuAttach(VirtioRNGDevice.stream, domain: .identity)
            let line = Line()
            self.line = line
            // Guest-physical = physical, 32 MiB of "guest memory".
            device = VirtioRNGDevice(hypervisor: hyp, ramBase: VirtioRNGDeviceTests.ramBase,
                                     guestMemory: VirtioRNGDeviceTests.ramBase ..< VirtioRNGDeviceTests.ramBase + (32 << 20),
                                     pagingDomain: nil, seed: 42, trace: nil) { level in line.raised.withLock { $0 = level } }
        }

        func put<T: FixedWidthInteger>(_ value: T, at pa: UInt64) {
            withUnsafeBytes(of: value.littleEndian) { memory.write(PhysAddr(pa), from: $0) }
        }

        func get<T: FixedWidthInteger>(_ type: T.Type, at pa: UInt64) -> T {
            var v = T.zero
            withUnsafeMutableBytes(of: &v) { memory.read(PhysAddr(pa), into: $0) }
            return T(littleEndian: v)
        }

        /// The Linux driver's setup: status, features, queue 0 of 8 entries at the three rings.
        func setUp() {
            device.write(offset: 0x070, size: 4, value: 1 | 2)
            device.write(offset: 0x024, size: 4, value: 1)
            device.write(offset: 0x020, size: 4, value: 3)          // VERSION_1 | ACCESS_PLATFORM
            device.write(offset: 0x070, size: 4, value: 1 | 2 | 8)
            device.write(offset: 0x030, size: 4, value: 0)
            device.write(offset: 0x038, size: 4, value: 8)
            for (offset, address) in [(0x080, desc), (0x090, avail), (0x0A0, used)] as [(UInt64, UInt64)] {
                device.write(offset: offset, size: 4, value: address & 0xFFFF_FFFF)
                device.write(offset: offset + 4, size: 4, value: address >> 32)
            }
            device.write(offset: 0x044, size: 4, value: 1)
            device.write(offset: 0x070, size: 4, value: 1 | 2 | 8 | 4)
        }

        /// Descriptor `i`: address, length, flags, next.
        func descriptor(_ i: UInt64, address: UInt64, length: UInt32, flags: UInt16, next: UInt16 = 0) {
            put(address, at: desc + 16 * i)
            put(length, at: desc + 16 * i + 8)
            put(flags, at: desc + 16 * i + 12)
            put(next, at: desc + 16 * i + 14)
        }

        /// Makes chain `head` available as the `n`th entry and notifies.
        func offer(_ head: UInt16, index n: UInt16) {
            put(head, at: avail + 4 + 2 * UInt64(n % 8))
            put(n &+ 1, at: avail + 2)
            device.write(offset: 0x050, size: 4, value: 0)
        }
    }

    @Test func theDeviceIdentifiesItselfAndOffersAccessPlatform() throws {
        let r = try Rig()
        #expect(r.device.read(offset: 0x000, size: 4) == 0x7472_6976 && r.device.read(offset: 0x004, size: 4) == 2)
        #expect(r.device.read(offset: 0x008, size: 4) == 4)
        r.device.write(offset: 0x014, size: 4, value: 1)
        #expect(r.device.read(offset: 0x010, size: 4) == 3)  // bits 32, 33
    }

    @Test func aRequestIsFilledThroughTheSMMUAndReturnedUsed() throws {
        let r = try Rig()
        r.setUp()
        r.descriptor(0, address: Self.buffer, length: 64, flags: 2)
        r.offer(0, index: 0)
        #expect(r.get(UInt16.self, at: Self.used + 2) == 1)
        #expect(r.get(UInt32.self, at: Self.used + 4) == 0 && r.get(UInt32.self, at: Self.used + 8) == 64)
        #expect(r.get(UInt64.self, at: Self.buffer) != 0 || r.get(UInt64.self, at: Self.buffer + 8) != 0)
        #expect(r.line.raised.withLock { $0 } && r.device.read(offset: 0x060, size: 4) == 1)
        r.device.write(offset: 0x064, size: 4, value: 1)
        #expect(!r.line.raised.withLock { $0 })
        #expect(r.device.statistics.bytes == 64 && r.device.statistics.faults == 0)
    }

    @Test func aBufferInAProtectedGuestsPageFaultsAndNothingIsWritten() throws {
        let r = try Rig()
        // Donate the buffer's page to a protected VM: the host's identity domain loses it.
        let base = PFN((Self.ramBase >> 12) + 0x2000)
        let pgd = PFN(base.rawValue + UInt64(r.hyp.geometry.pgdPages))
        let vm = try r.hyp.createVM(protected: true, vcpus: 1, donating: .init(metadata: base, pgd: pgd))
        try r.hyp.topUpMemcache(vm: vm, pages: (1 ... 8).map { PFN(pgd.rawValue + UInt64(r.hyp.geometry.pgdPages) + $0) })
        try r.hyp.hostDonateGuest(PhysAddr(Self.buffer).pfn, gfn: GFN(0x100), vm: vm)
        r.setUp()
        r.descriptor(0, address: Self.buffer, length: 64, flags: 2)
        r.offer(0, index: 0)
        #expect(r.get(UInt16.self, at: Self.used + 2) == 0)                     // nothing returned
        #expect(r.device.read(offset: 0x070, size: 4) & 0x40 != 0)              // DEVICE_NEEDS_RESET
        #expect(r.device.statistics.faults == 1 && r.device.statistics.bytes == 0)
        #expect(r.hyp.checkInvariants().isEmpty)
    }

    @Test func badIndicesLoopsAndHugeLengthsStayBounded() throws {
        let r = try Rig()
        r.setUp()
        // A chain that loops on itself, with a length far past the cap.
        r.descriptor(0, address: Self.buffer, length: 0xFFFF_FFFF, flags: 1 | 2, next: 0)
        r.offer(0, index: 0)
        #expect(r.get(UInt16.self, at: Self.used + 2) == 1)
        #expect(r.get(UInt32.self, at: Self.used + 8) == 4096)  // capped at chainLimit
        // A head past the queue, and a descriptor pointing past guest memory.
        r.offer(200, index: 1)
        #expect(r.get(UInt16.self, at: Self.used + 2) == 2 && r.get(UInt32.self, at: Self.used + 16) == 0)
        r.descriptor(1, address: 0xFFFF_FFFF_FFFF_F000, length: 4096, flags: 2)
        r.offer(1, index: 2)
        #expect(r.device.read(offset: 0x070, size: 4) & 0x40 != 0)
        // Writing 0 to Status resets the queue; the device works again.
        r.device.write(offset: 0x070, size: 4, value: 0)
        #expect(r.device.read(offset: 0x070, size: 4) == 0 && r.device.read(offset: 0x044, size: 4) == 0)
    }
}
