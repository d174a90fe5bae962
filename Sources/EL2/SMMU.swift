import Synchronization

/// EL2's SMMUv3-style IOMMU: a linear stream table in hyp-owned pages, translation domains whose
/// tables use the CPU's stage-2 format, an IOTLB, and an event queue (Arm SMMUv3, IHI
/// 0070). Only EL2 writes its tables and STEs, as in pKVM and Gunyah: a device can
/// reach a page only if ownership allows it.
///
/// The SMMU is stage-2 only: every STE is Config = 6 (stage-2 translate) or invalid, so a stream
/// nobody attached gets C_BAD_STE and a detached device can reach nothing. The operations that
/// change it are `Hypervisor` methods (Hypervisor+IOMMU.swift), because they interact with page
/// ownership.
///
/// ## Locking
///
/// `configLock` guards the stream table, the domain registry, the page pool and the paging
/// domains' tables. Order: `hostLock` → `configLock` → `GuestVM.lock` → the IOTLB's lock. The
/// identity domain's table is guarded by `hostLock` (it changes with the host stage-2); a guest
/// domain's table is the guest's stage-2, guarded by the VM's lock.
public final class SMMU: @unchecked Sendable {
    public let mode: IOMMUMode
    /// IDR1.SIDSIZE.
    public static let streamIDBits = 8
    /// Stream table entries (a linear table, STRTAB_BASE_CFG.FMT = 0).
    public static let streamCount = 1 << streamIDBits
    /// Event queue records kept; later ones are lost until the queue is drained (EVTQ LOG2SIZE = 8).
    public static let eventQueueCapacity = 256
    /// STRTAB_BASE: the first page of the stream table.
    public let streamTable: PhysAddr
    /// The caches (and transaction lock).
    public let iotlb: IOTLB
    /// The identity domain (`IOMMUMode.mirror` only).
    let identity: IOMMUDomain?

    let configLock = Mutex(())
    /// Guarded by `configLock` (the identity domain is also registered here).
    var domains: [IOMMUDomainID: IOMMUDomain] = [:]
    /// Free pages for domain tables, guarded by `configLock` (the identity domain's table keeps
    /// its own pool, filled at boot).
    var pool = PagePool()
    /// Free, naturally aligned PGDs for paging domains, guarded by `configLock`.
    var pgdSlots: [PhysAddr] = []

    struct EventQueue {
        var records: [IOMMUEvent] = []
        var overflowed = false
        var total = 0
    }
    let events = Mutex(EventQueue())

    init(mode: IOMMUMode, streamTable: PhysAddr, identity: IOMMUDomain?, sink: (any EL2EventSink)?) {
        self.mode = mode
        self.streamTable = streamTable
        self.identity = identity
        self.iotlb = IOTLB(streams: Self.streamCount, sink: sink)
        if let identity { domains[identity.id] = identity }
    }

    /// Pages the stream table occupies.
    static var streamTablePages: Int { streamCount * StreamTableEntry.size / Int(pageSize) }

    /// The address of a stream's STE.
    @inline(__always) func steAddress(_ stream: StreamID) -> PhysAddr {
        streamTable.advanced(by: UInt64(stream.rawValue) * UInt64(StreamTableEntry.size))
    }

    /// Reads an STE from the stream table (what the SMMU fetches on a configuration-cache miss).
    func readSTE(_ stream: StreamID, memory: PhysicalMemory) -> StreamTableEntry {
        let a = steAddress(stream)
        return StreamTableEntry(dword0: memory.load64(a), dword1: memory.load64(a.advanced(by: 8)),
                                dword2: memory.load64(a.advanced(by: 16)), dword3: memory.load64(a.advanced(by: 24)))
    }

    /// Writes an STE with pKVM's protocol: dwords 1 to 3 first, then dword 0 (V) last when
    /// enabling; dword 0 first when disabling, so no half-written entry is ever valid.
    func writeSTE(_ stream: StreamID, _ ste: StreamTableEntry, memory: PhysicalMemory) {
        let a = steAddress(stream)
        if ste.isValid {
            memory.store64(a.advanced(by: 8), ste.dword1)
            memory.store64(a.advanced(by: 16), ste.dword2)
            memory.store64(a.advanced(by: 24), ste.dword3)
            memory.store64(a, ste.dword0)
        } else {
            memory.store64(a, ste.dword0)
            memory.store64(a.advanced(by: 8), ste.dword1)
            memory.store64(a.advanced(by: 16), ste.dword2)
            memory.store64(a.advanced(by: 24), ste.dword3)
        }
    }

    /// Appends a record to the event queue. A full queue keeps what it holds and loses the new
    /// record, setting the overflow flag, as an SMMUv3 toggles EVTQ_PROD.OVFLG.
    func record(_ event: IOMMUEvent) {
        events.withLock { q in
            q.total += 1
            guard q.records.count < Self.eventQueueCapacity else {
                q.overflowed = true
                return
            }
            q.records.append(event)
        }
    }
}
