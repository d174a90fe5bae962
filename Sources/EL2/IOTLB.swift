import Synchronization

/// The SMMU's caches: the configuration cache (stream → domain, what CFGI_STE invalidates) and
/// the IOTLB (domain + IOVA page → output page and rights, what TLBI_S2_IPA invalidates).
///
/// Its lock is also the SMMU's transaction lock: a DMA transaction that hits the cache moves its
/// bytes while holding it, and every invalidation takes it. So an invalidation returns only when
/// no transaction still uses the old translation, which is the guarantee CMD_SYNC gives after a
/// TLBI (SMMUv3 "completion of TLB invalidation"): once a transition that unmapped a page has
/// committed, no device byte lands in that page.
///
/// Direct-mapped, 1024 entries; faults are never cached.
public final class IOTLB: Sendable {
    /// IOTLB entries.
    public static let capacity = 1024
    static let validBit: UInt64 = 1 << 63

    struct Entry {
        /// valid | domain << 40 | IOVA page number (0 = empty).
        var tag: UInt64 = 0
        /// Output page address | rights (bit 0 read, bit 1 write).
        var output: UInt64 = 0
    }

    /// The caches, in buffers allocated once: a hit then costs the lock and two loads, with no
    /// array copy-on-write or exclusivity check (sound: only ever touched under `state`'s lock,
    /// allocated in init, freed in deinit).
    struct State {
        let entries: UnsafeMutablePointer<Entry>
        /// Per stream ID: the cached domain + 1, or 0 when nothing is cached.
        let config: UnsafeMutablePointer<UInt32>
        let streams: Int
        var hits: UInt64 = 0
        var misses: UInt64 = 0
        var invalidations: UInt64 = 0
    }

    let state: Mutex<State>
    private let sink: (any EL2EventSink)?

    init(streams: Int, sink: (any EL2EventSink)?) {
        let entries = UnsafeMutablePointer<Entry>.allocate(capacity: IOTLB.capacity)
        entries.initialize(repeating: Entry(), count: IOTLB.capacity)
        let config = UnsafeMutablePointer<UInt32>.allocate(capacity: streams)
        config.initialize(repeating: 0, count: streams)
        state = Mutex(State(entries: entries, config: config, streams: streams))
        self.sink = sink
    }

    deinit {
        state.withLock { s in
            s.entries.deallocate()
            s.config.deallocate()
        }
    }

    @inline(__always) static func tag(_ domain: IOMMUDomainID, _ iova: UInt64) -> UInt64 {
        validBit | UInt64(domain.rawValue) << 40 | iova >> pageShift
    }

    @inline(__always) static func slot(_ tag: UInt64) -> Int {
        Int(truncatingIfNeeded: (tag &* 0x9E37_79B9_7F4A_7C15) >> 54)
    }

    @inline(__always) static func rights(_ access: DMAAccess) -> UInt64 { access == .read ? 1 : 2 }

    /// Runs `body` with the output address if the stream's configuration and the page are cached
    /// with the right, under the transaction lock; returns false on a miss (the caller walks).
    @inline(__always)
    func withCachedTranslation(_ stream: StreamID, _ iova: UInt64, _ access: DMAAccess,
                               _ body: (PhysAddr) -> Void) -> Bool {
        state.withLock { s in
            let sid = Int(stream.rawValue)
            guard sid < s.streams, s.config[sid] != 0 else { s.misses += 1; return false }
            let domain = IOMMUDomainID(rawValue: UInt16(s.config[sid] - 1))
            let tag = Self.tag(domain, iova)
            let e = s.entries[Self.slot(tag)]
            guard e.tag == tag, e.output & Self.rights(access) != 0 else { s.misses += 1; return false }
            s.hits += 1
            body(PhysAddr((e.output & ~(pageSize - 1)) | (iova & (pageSize - 1))))
            return true
        }
    }

    /// Fills both caches after a successful walk and runs `body` under the transaction lock.
    /// The caller holds the lock of the table it walked, so no invalidation can slip between
    /// its walk and this fill.
    func fill(_ stream: StreamID, domain: IOMMUDomainID, iova: UInt64, outputPage: PhysAddr,
              permissions: Stage2Permissions, _ body: (PhysAddr) -> Void) {
        state.withLock { s in
            s.config[Int(stream.rawValue)] = UInt32(domain.rawValue) + 1
            let tag = Self.tag(domain, iova)
            var rights: UInt64 = 0
            if permissions.contains(.read) { rights |= 1 }
            if permissions.contains(.write) { rights |= 2 }
            s.entries[Self.slot(tag)] = Entry(tag: tag, output: outputPage.rawValue | rights)
            body(outputPage.advanced(by: iova & (pageSize - 1)))
        }
    }

    /// TLBI_S2_IPA over `[start, start + size)` for `domain`, then CMD_SYNC (waits for every
    /// transaction in flight). Called with the lock of the domain's table held.
    func invalidate(domain: IOMMUDomainID, start: UInt64, size: UInt64) {
        let pages = size >> pageShift
        state.withLock { s in
            s.invalidations += 1
            if pages <= 32 {
                for k in 0..<pages {
                    let tag = Self.tag(domain, start + (k << pageShift))
                    let i = Self.slot(tag)
                    if s.entries[i].tag == tag { s.entries[i] = Entry() }
                }
            } else {
                let low = Self.tag(domain, start), high = Self.tag(domain, start &+ size - 1)
                for i in 0..<Self.capacity where s.entries[i].tag >= low && s.entries[i].tag <= high {
                    s.entries[i] = Entry()
                }
            }
        }
        sink?.iommu(.iotlbInvalidated(domain, iova: start, size: size))
    }

    /// CFGI_STE + CMD_SYNC for one stream, and TLBI_S12_VMALL for the domain it used.
    func invalidateStream(_ stream: StreamID, domain: IOMMUDomainID?) {
        state.withLock { s in
            s.config[Int(stream.rawValue)] = 0
            if let domain {
                s.invalidations += 1
                for i in 0..<Self.capacity where s.entries[i].tag >> 40 == Self.validBit >> 40 | UInt64(domain.rawValue) {
                    s.entries[i] = Entry()
                }
            }
        }
    }

    /// Drops every cached entry (the cold-IOTLB benchmark; TLBI_NSNH_ALL).
    public func invalidateAll() {
        state.withLock { s in
            for i in 0..<Self.capacity { s.entries[i] = Entry() }
            for i in 0..<s.streams { s.config[i] = 0 }
            s.invalidations += 1
        }
    }

    /// Hit, miss and invalidation counts since the SMMU started.
    public var statistics: (hits: UInt64, misses: UInt64, invalidations: UInt64) {
        state.withLock { s in (s.hits, s.misses, s.invalidations) }
    }

    /// Every cached translation (domain, IOVA page, output page, rights): for the invariant
    /// checker, which proves each one is still what a walk gives.
    func cachedEntries() -> [(domain: IOMMUDomainID, iova: UInt64, output: PhysAddr, rights: UInt64)] {
        state.withLock { s in
            UnsafeBufferPointer(start: s.entries, count: Self.capacity).compactMap { e in
                guard e.tag & Self.validBit != 0 else { return nil }
                return (IOMMUDomainID(rawValue: UInt16(truncatingIfNeeded: e.tag >> 40)),
                        (e.tag & ((1 << 40) - 1)) << pageShift, PhysAddr(e.output & ~(pageSize - 1)), e.output & 3)
            }
        }
    }

    /// The cached domain of each stream with a cached configuration.
    func cachedConfigurations() -> [(StreamID, IOMMUDomainID)] {
        state.withLock { s in
            UnsafeBufferPointer(start: s.config, count: s.streams).enumerated().compactMap { i, v in
                v == 0 ? nil : (StreamID(UInt32(i)), IOMMUDomainID(rawValue: UInt16(v - 1)))
            }
        }
    }
}
