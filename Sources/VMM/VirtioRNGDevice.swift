import EL2
import Synchronization
import Tracing

/// A virtio entropy device (virtio 1.2 section 5.4, device ID 4) on the virtio-mmio transport,
/// version 2 (section 4.2.2; Linux's drivers/virtio/virtio_mmio.c), emulated by the host. Every
/// access it makes to guest memory, the split virtqueue's rings and the buffers it fills, is DMA
/// through the SMMU as the host's stream `stream`: in the host's identity domain (mirror mode),
/// which maps only what the host may touch, so a pKVM guest's private memory is out of its reach
/// and the guest must give it pages it shared (the restricted DMA pool the device tree names,
/// docs/linux.md). In refcount mode the host's driver maps each page into its paging domain for
/// the access and unmaps it after, which takes and drops DMA references.
///
/// It offers VIRTIO_F_VERSION_1 and VIRTIO_F_ACCESS_PLATFORM, one queue of up to 64 entries,
/// and fills every device-writable descriptor of a chain with random bytes when notified, on
/// the notifying vCPU's thread; a used buffer raises its SPI until the driver acknowledges it.
/// The bytes come from a SplitMix64 stream seeded from the host's random source (a fixed seed
/// in a deterministic run): an emulator's entropy, not a cryptographic one.
final class VirtioRNGDevice: MMIODevice, @unchecked Sendable {
    let name = "virtio-rng"
    static let stream = StreamID(4)
    static let queueSize: UInt64 = 64
    static let deviceID: UInt64 = 4
    /// VIRTIO_F_VERSION_1 (32) and VIRTIO_F_ACCESS_PLATFORM (33).
    static let features: UInt64 = 1 << 32 | 1 << 33
    /// "pvm " as the vendor ID.
    static let vendor: UInt64 = 0x206D_7670
    /// Random bytes given for one request at most (Linux asks for 64): the spec lets a device
    /// fill less than it is offered, and it bounds a notification's work to queueSize times this.
    static let chainLimit = 4096

    struct State {
        var status: UInt64 = 0
        var deviceFeaturesSelect: UInt64 = 0
        var driverFeatures: UInt64 = 0
        var driverFeaturesSelect: UInt64 = 0
        var queueSelect: UInt64 = 0
        var queueSize: UInt64 = 0
        var ready = false
        var descriptors: UInt64 = 0
        var available: UInt64 = 0
        var used: UInt64 = 0
        var lastAvailable: UInt16 = 0
        var interruptStatus: UInt64 = 0
        var random: UInt64
        /// Bytes handed to the guest and DMA faults, for traces and tests.
        var bytesFilled = 0
        var faults = 0
    }

    private let state: Mutex<State>
    private let hypervisor: Hypervisor
    private let ramBase: UInt64
    private let guestMemory: Range<UInt64>
    private let pagingDomain: IOMMUDomainID?
    private let interrupt: @Sendable (Bool) -> Void
    private let trace: EventTrace?

    init(hypervisor: Hypervisor, ramBase: UInt64, guestMemory: Range<UInt64>, pagingDomain: IOMMUDomainID?, seed: UInt64,
         trace: EventTrace?, interrupt: @escaping @Sendable (Bool) -> Void) {
        self.hypervisor = hypervisor
        self.ramBase = ramBase
        self.guestMemory = guestMemory
        self.pagingDomain = pagingDomain
        self.trace = trace
        self.interrupt = interrupt
        state = Mutex(State(random: seed))
    }

    /// Random bytes given to the guest so far, and DMA faults the device took.
    var statistics: (bytes: Int, faults: Int) { state.withLock { ($0.bytesFilled, $0.faults) } }

    func read(offset: UInt64, size: Int) -> UInt64 {
        state.withLock { s -> UInt64 in
            switch offset {
            case 0x000: return 0x7472_6976  // "virt"
            case 0x004: return 2
            case 0x008: return Self.deviceID
            case 0x00C: return Self.vendor
            case 0x010: return s.deviceFeaturesSelect == 0 ? Self.features & 0xFFFF_FFFF : s.deviceFeaturesSelect == 1 ? Self.features >> 32 : 0
            case 0x034: return s.queueSelect == 0 ? Self.queueSize : 0
            case 0x044: return s.queueSelect == 0 && s.ready ? 1 : 0
            case 0x060: return s.interruptStatus
            case 0x070: return s.status
            case 0x0FC: return 0  // ConfigGeneration: no configuration space
            default: return 0
            }
        }
    }

    func write(offset: UInt64, size: Int, value: UInt64) {
        let v = value & 0xFFFF_FFFF
        state.withLock { s in
            switch offset {
            case 0x014: s.deviceFeaturesSelect = v
            case 0x020:
                if s.driverFeaturesSelect < 2 {
                    let shift = 32 * s.driverFeaturesSelect
                    s.driverFeatures = (s.driverFeatures & ~(0xFFFF_FFFF << shift)) | v << shift
                }
            case 0x024: s.driverFeaturesSelect = v
            case 0x030: s.queueSelect = v
            case 0x038 where s.queueSelect == 0: s.queueSize = min(v, Self.queueSize)
            case 0x044 where s.queueSelect == 0: s.ready = v & 1 != 0
            case 0x050 where v == 0: process(&s)
            case 0x064:
                s.interruptStatus &= ~v
                if s.interruptStatus == 0 { interrupt(false) }
            case 0x070:
                if v == 0 { reset(&s) } else { s.status = v & 0xFF }
            case 0x080 where s.queueSelect == 0: s.descriptors = (s.descriptors & ~0xFFFF_FFFF) | v
            case 0x084 where s.queueSelect == 0: s.descriptors = (s.descriptors & 0xFFFF_FFFF) | v << 32
            case 0x090 where s.queueSelect == 0: s.available = (s.available & ~0xFFFF_FFFF) | v
            case 0x094 where s.queueSelect == 0: s.available = (s.available & 0xFFFF_FFFF) | v << 32
            case 0x0A0 where s.queueSelect == 0: s.used = (s.used & ~0xFFFF_FFFF) | v
            case 0x0A4 where s.queueSelect == 0: s.used = (s.used & 0xFFFF_FFFF) | v << 32
            default: break
            }
        }
    }

    private func reset(_ s: inout State) {
        let random = s.random, bytes = s.bytesFilled, faults = s.faults
        s = State(random: random)
        s.bytesFilled = bytes
        s.faults = faults
        interrupt(false)
    }

    // MARK: The queue

    /// Takes every chain the driver made available since the last notification: fills its
    /// device-writable descriptors, returns it in the used ring with the bytes written, and
    /// raises the interrupt. A DMA fault (memory the host may not touch) ends the processing:
    /// the device sets DEVICE_NEEDS_RESET (status bit 6), as the spec asks of a device that
    /// cannot go on.
    private func process(_ s: inout State) {
        guard s.ready, s.status & 4 != 0, s.queueSize > 0 else { return }
        do throws(VirtioAccessError) {
            let availableIndex = try read16(s.available &+ 2)
            // More new entries than the queue holds is a broken driver (virtio 1.2 2.7.13).
            guard availableIndex &- s.lastAvailable <= UInt16(s.queueSize) else { throw .brokenRing }
            var returned = false
            while s.lastAvailable != availableIndex {
                let slot = UInt64(s.lastAvailable) % s.queueSize
                let head = try read16(s.available &+ 4 &+ 2 * slot)
                let began = trace?.now ?? 0
                let (written, buffer) = try fill(chain: head, &s)
                let usedIndex = try read16(s.used &+ 2)
                let element = s.used &+ 4 &+ 8 * (UInt64(usedIndex) % s.queueSize)
                try write32(element, UInt32(head))
                try write32(element &+ 4, UInt32(written))
                try write16(s.used &+ 2, usedIndex &+ 1)
                s.lastAvailable &+= 1
                trace?.record(.dma(device: name, stream: Self.stream.rawValue, iova: buffer, bytes: written, result: "ok",
                                   duration: (trace?.now ?? 0) &- began))
                returned = true
            }
            if returned {
                s.interruptStatus |= 1
                interrupt(true)
            }
        } catch {
            trace?.record(.dma(device: name, stream: Self.stream.rawValue, iova: 0, bytes: 0, result: "\(error)", duration: 0))
            s.faults += 1
            s.status |= 0x40
            s.interruptStatus |= 2  // a configuration change tells the driver to look
            interrupt(true)
        }
    }

    /// Fills the device-writable descriptors of the chain at `head` (at most `queueSize` links,
    /// so a looping chain ends); returns the bytes written and the physical address of the first
    /// buffer (the IOVA a trace shows).
    private func fill(chain head: UInt16, _ s: inout State) throws(VirtioAccessError) -> (Int, UInt64) {
        var index = UInt64(head), written = 0, first: UInt64?
        for _ in 0 ..< s.queueSize {
            guard index < s.queueSize else { break }
            let d = s.descriptors &+ 16 * index
            let address = try read64(d), length = try read32(d &+ 8), flags = try read16(d &+ 12), next = try read16(d &+ 14)
            if flags & 2 != 0, written < Self.chainLimit {  // VIRTQ_DESC_F_WRITE
                let count = Int(min(UInt64(length), UInt64(Self.chainLimit - written)))
                var bytes = [UInt8](repeating: 0, count: count)
                for i in 0 ..< count {
                    if i % 8 == 0 { s.random = SplitMix.next(&s.random) }
                    bytes[i] = UInt8(truncatingIfNeeded: s.random >> (8 * UInt64(i % 8)))
                }
                try dma(address, count: count, write: true) { buffer in buffer.copyBytes(from: bytes) }
                if first == nil { first = ramBase &+ (address &- guestMemory.lowerBound) }
                written += count
                s.bytesFilled += count
            }
            guard flags & 1 != 0 else { break }  // VIRTQ_DESC_F_NEXT
            index = UInt64(next)
        }
        return (written, first ?? 0)
    }

    // MARK: DMA through the SMMU

    /// `count` bytes at guest-physical `gpa`, read or written by DMA as the device's stream: the
    /// IOVA is the physical address in the identity domain, or (refcount mode) in the host's
    /// paging domain, mapped for the access. Guest-physical addresses outside guest memory fault.
    private func dma(_ gpa: UInt64, count: Int, write: Bool, _ body: (UnsafeMutableRawBufferPointer) -> Void) throws(VirtioAccessError) {
        guard guestMemory.contains(gpa), UInt64(count) <= guestMemory.upperBound - gpa else {
            throw .outsideGuestMemory(gpa)
        }
        let pa = ramBase + (gpa - guestMemory.lowerBound)
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: count, alignment: 8)
        defer { buffer.deallocate() }
        let first = pa & ~(pageSize - 1), pages = (pa + UInt64(count) - first + pageSize - 1) >> pageShift
        if let domain = pagingDomain {
            do throws(HypError) {
                try hypervisor.iommuMap(domain: domain, iova: first, pfn: PhysAddr(first).pfn, pages: pages, prot: .rw)
            } catch {
                throw .mapRefused(error)
            }
        }
        defer { if let domain = pagingDomain { _ = try? hypervisor.iommuUnmap(domain: domain, iova: first, pages: pages) } }
        do throws(DMAFault) {
            if write {
                body(buffer)
                try hypervisor.dmaWrite(stream: Self.stream, iova: pa, from: UnsafeRawBufferPointer(buffer))
            } else {
                try hypervisor.dmaRead(stream: Self.stream, iova: pa, into: buffer)
                body(buffer)
            }
        } catch { throw .fault(error) }
    }

    private func read16(_ gpa: UInt64) throws(VirtioAccessError) -> UInt16 { UInt16(truncatingIfNeeded: try readInt(gpa, 2)) }
    private func read32(_ gpa: UInt64) throws(VirtioAccessError) -> UInt32 { UInt32(truncatingIfNeeded: try readInt(gpa, 4)) }
    private func read64(_ gpa: UInt64) throws(VirtioAccessError) -> UInt64 { try readInt(gpa, 8) }

    private func readInt(_ gpa: UInt64, _ bytes: Int) throws(VirtioAccessError) -> UInt64 {
        var value: UInt64 = 0
        try dma(gpa, count: bytes, write: false) { b in
            for i in 0 ..< bytes { value |= UInt64(b[i]) << (8 * UInt64(i)) }
        }
        return value
    }

    private func write16(_ gpa: UInt64, _ v: UInt16) throws(VirtioAccessError) { try writeInt(gpa, UInt64(v), 2) }
    private func write32(_ gpa: UInt64, _ v: UInt32) throws(VirtioAccessError) { try writeInt(gpa, UInt64(v), 4) }

    private func writeInt(_ gpa: UInt64, _ v: UInt64, _ bytes: Int) throws(VirtioAccessError) {
        try dma(gpa, count: bytes, write: true) { b in
            for i in 0 ..< bytes { b[i] = UInt8(truncatingIfNeeded: v >> (8 * UInt64(i))) }
        }
    }
}

/// Why the device could not touch guest memory.
enum VirtioAccessError: Error, CustomStringConvertible {
    /// The SMMU refused the transaction (the page is not the host's to touch).
    case fault(DMAFault)
    /// The driver gave an address outside guest memory.
    case outsideGuestMemory(UInt64)
    /// Refcount mode: EL2 refused to map the page into the host's paging domain.
    case mapRefused(HypError)
    /// The driver made more entries available than the queue holds.
    case brokenRing

    var description: String {
        switch self {
        case let .fault(f): "SMMU fault: \(f)"
        case let .outsideGuestMemory(gpa): "address \(hex(gpa)) is outside guest memory"
        case let .mapRefused(e): "iommu map refused: \(e)"
        case .brokenRing: "more available entries than the queue holds"
        }
    }
}

/// SplitMix64 (Steele, Lea, Flood 2014): the device's byte stream.
enum SplitMix {
    static func next(_ state: inout UInt64) -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
