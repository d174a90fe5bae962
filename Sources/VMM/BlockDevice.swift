import EL2
import HostMemory
import Tracing
import Synchronization
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// A virtio-style block device with a host backend: the guest writes a request into MMIO
/// registers (sector, guest-physical buffer, length) and the backend writes the data into the
/// guest's shared bounce buffer by DMA through the host's SMMU domain, in chunks over time, on
/// a thread of its own. A conversion of the buffer can therefore race the transfer, which is
/// what docs/iommu.md's two designs answer differently:
///
/// - `IOMMUMode.mirror`: the backend DMAs to the buffer's physical address in the identity
///   domain. A guest MEM_UNSHARE succeeds at once and the next chunk faults: the request ends
///   with status ERROR and no byte lands after the unshare.
/// - `IOMMUMode.refcount`: the host driver maps the buffer into its paging domain before the
///   transfer (taking DMA references) and unmaps it after. A MEM_UNSHARE meanwhile is refused.
///
/// The disk is synthetic and read-only: byte `o` is `GuestLayout.blockByte(o)` (the guest computes
/// the same formula to check what it received).
///
/// Registers (8 bytes each): SECTOR 0x00, ADDR 0x08 (guest-physical), LEN 0x10 (bytes, at most
/// 64 KiB), CMD 0x18 (write 1: read from the disk), STATUS 0x20, DONE 0x28 (bytes landed),
/// CHUNK 0x30 (bytes per DMA chunk, default 512), DELAY 0x38 (microseconds between chunks).
final class BlockDevice: MMIODevice, @unchecked Sendable {
    let name = "virtio-blk"
    static let stream = StreamID(2)
    /// Disk size: 1 MiB.
    static let diskBytes: UInt64 = 1 << 20
    static let maxRequest: UInt64 = 64 << 10

    enum Status: UInt64 {
        case idle = 0, busy = 1, done = 2, error = 3, rejected = 4
    }

    struct Registers {
        var sector: UInt64 = 0
        var address: UInt64 = 0
        var length: UInt64 = 0
        var chunk: UInt64 = 512
        var delay: UInt64 = 0
        var status = Status.idle
        var done: UInt64 = 0
        var thread: ThreadHandle?
    }

    let registers = Mutex(Registers())
    private let cancelled = Atomic<Bool>(false)
    /// In a deterministic run: the transfer thread moves one chunk per grant of the scheduler.
    private let stepper: ChunkStepper?
    let engine: DMAEngine
    let hypervisor: Hypervisor
    let ramBase: UInt64
    /// The guest memory the VMM backs (guest-physical); requests must lie inside it.
    let guestMemory: Range<UInt64>
    /// The host's paging domain in refcount mode (the driver maps buffers there).
    let pagingDomain: IOMMUDomainID?
    let trace: EventTrace?

    init(hypervisor: Hypervisor, ramBase: UInt64, guestMemory: Range<UInt64>, pagingDomain: IOMMUDomainID?, trace: EventTrace?,
         deterministic: Bool = false) {
        stepper = deterministic ? ChunkStepper() : nil
        self.hypervisor = hypervisor
        self.ramBase = ramBase
        self.guestMemory = guestMemory
        self.pagingDomain = pagingDomain
        self.trace = trace
        engine = DMAEngine(name: "virtio-blk", stream: Self.stream, hypervisor: hypervisor, trace: trace)
    }

    func read(offset: UInt64, size: Int) -> UInt64 {
        registers.withLock { r in
            switch offset {
            case 0x00: r.sector
            case 0x08: r.address
            case 0x10: r.length
            case 0x20: r.status.rawValue
            case 0x28: r.done
            case 0x30: r.chunk
            case 0x38: r.delay
            default: 0
            }
        }
    }

    func write(offset: UInt64, size: Int, value: UInt64) {
        // A command is accepted, and the device marked busy, in one critical section: two
        // vCPUs writing CMD at once start one transfer, not two.
        let request = registers.withLock { r -> (UInt64, UInt64, UInt64, Int, UInt64, ThreadHandle?)? in
            guard r.status != .busy else { return nil }  // registers are frozen during a transfer
            switch offset {
            case 0x00: r.sector = value
            case 0x08: r.address = value
            case 0x10: r.length = value
            case 0x18 where value == 1:
                let (sector, address, length) = (r.sector, r.address, r.length)
                guard length > 0, length <= Self.maxRequest, sector < Self.diskBytes / 512,
                      sector * 512 + length <= Self.diskBytes, guestMemory.contains(address),
                      length <= guestMemory.upperBound - address
                else {
                    r.status = .rejected
                    return nil
                }
                r.status = .busy
                r.done = 0
                let previous = r.thread
                r.thread = nil
                return (sector, address, length, Int(r.chunk), r.delay, previous)
            case 0x30: r.chunk = min(max(value, 1), UInt64(DMAEngine.maxChunk))
            case 0x38: r.delay = min(value, 100_000)
            default: break
            }
            return nil
        }
        guard let (sector, address, length, chunk, delay, previous) = request else { return }
        // The previous transfer has finished (the device was not busy); reap its thread
        // outside the lock.
        previous?.join()
        // Only this path creates threads, and only while the device is busy, so at most one
        // backend thread exists at a time.
        stepper?.begin()
        let thread = try? ThreadHandle.spawn { [self] in
            if stepper?.waitForGrant(cancelled) == false { stepper?.end(); return }
            transfer(sector: sector, address: address, length: length, chunk: chunk, delay: delay)
            stepper?.end()
        }.get()
        registers.withLock { r in
            if let thread { r.thread = thread } else { r.status = .rejected }
        }
    }

    /// The backend: map (refcount mode), DMA chunk by chunk, unmap.
    private func transfer(sector: UInt64, address: UInt64, length: UInt64, chunk: Int, delay: UInt64) {
        // The host knows which physical page backs each guest page it gave or shares: the
        // memslot maps the guest memory's IPAs linearly from ramBase.
        let pa = ramBase + (address - guestMemory.lowerBound)
        let firstPage = pa & ~(pageSize - 1)
        let pages = (pa + length - firstPage + pageSize - 1) >> pageShift
        if let domain = pagingDomain {
            do throws(HypError) {
                try hypervisor.iommuMap(domain: domain, iova: firstPage, pfn: PhysAddr(firstPage).pfn, pages: pages, prot: .rw)
            } catch {
                trace?.record(.dma(device: engine.name, stream: Self.stream.rawValue, iova: pa, bytes: 0,
                                   result: "map refused: \(error)", duration: 0))
                registers.withLock { $0.status = .rejected }
                return
            }
        }
        let base = sector * 512
        let outcome = engine.store(at: pa, count: Int(length), chunk: chunk, produce: { offset, piece in
            for i in 0 ..< piece.count { piece[i] = GuestLayout.blockByte(base + UInt64(offset + i)) }
        }, between: { [self] done in
            registers.withLock { $0.done = UInt64(done) }
            if let stepper { return stepper.waitForGrant(cancelled) }
            if delay > 0 { usleep(UInt32(delay)) }
            return !cancelled.load(ordering: .relaxed)
        })
        if let domain = pagingDomain {
            _ = try? hypervisor.iommuUnmap(domain: domain, iova: firstPage, pages: pages)
        }
        registers.withLock { r in
            r.done = UInt64(outcome.bytes)
            r.status = outcome.fault == nil && outcome.bytes == Int(length) ? .done : .error
        }
    }

    /// A transfer is waiting for the deterministic scheduler's next grant.
    var hasPendingChunk: Bool { stepper?.active.load(ordering: .acquiring) ?? false }

    /// Lets the transfer move one chunk (or start, or finish) and waits until it has.
    func stepOneChunk() { stepper?.step() }

    /// Grants chunks until no transfer is in flight.
    func stepUntilIdle() { while hasPendingChunk { stepOneChunk() } }

    /// Abandons a transfer in flight and waits for the backend thread (teardown).
    func stop() {
        cancelled.store(true, ordering: .relaxed)
        let thread = registers.withLock { r -> ThreadHandle? in defer { r.thread = nil }; return r.thread }
        thread?.join()
    }
}

/// The handshake that makes the block device's transfer thread deterministic: the thread waits
/// for a grant before its first chunk and between chunks; the scheduler grants one and waits
/// until the chunk is done. Only one side runs at a time, so the order of the transfer's
/// writes against the vCPUs' instructions is the scheduler's, drawn from its seed.
final class ChunkStepper: Sendable {
    let active = Atomic<Bool>(false)
    private let grants = Atomic<Int>(0)
    private let taken = Atomic<Int>(0)
    private let completed = Atomic<Int>(0)

    /// A transfer was started (before its thread exists).
    func begin() { active.store(true, ordering: .releasing) }

    /// The transfer thread: the previous chunk is done; wait for the next grant. False when
    /// the device was stopped meanwhile.
    func waitForGrant(_ cancelled: borrowing Atomic<Bool>) -> Bool {
        let mine = taken.load(ordering: .relaxed)
        completed.store(mine, ordering: .releasing)
        while grants.load(ordering: .acquiring) == mine {
            if cancelled.load(ordering: .relaxed) { return false }
            sched_yield()
        }
        taken.store(mine + 1, ordering: .relaxed)
        return true
    }

    /// The transfer thread is finished.
    func end() {
        completed.store(taken.load(ordering: .relaxed), ordering: .releasing)
        active.store(false, ordering: .releasing)
    }

    /// The scheduler: one grant, then wait for it to be used up.
    func step() {
        let granted = grants.add(1, ordering: .acquiringAndReleasing).newValue
        while active.load(ordering: .acquiring), completed.load(ordering: .acquiring) < granted { sched_yield() }
    }
}
