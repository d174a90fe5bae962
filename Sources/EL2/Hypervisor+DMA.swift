/// Device transactions through the SMMU: what a DMA master's reads and writes go through. A
/// transaction that hits the IOTLB moves its bytes under the transaction lock; a miss fetches
/// the STE and walks the domain's stage-2 table under the locks that guard it (so no
/// transition can change the table between the walk and the access), then fills the IOTLB.
/// Faults are recorded in the event queue with the page's ownership at that moment.
extension Hypervisor {
    /// A device writes `buffer` to `[iova, iova + count)`, page by page. Throws when a page
    /// faults: the pages before it were written, nothing at or after it.
    public func dmaWrite(stream: StreamID, iova: UInt64, from buffer: UnsafeRawBufferPointer) throws(DMAFault) {
        try transfer(stream: stream, iova: iova, count: buffer.count, access: .write) { pa, range in
            memory.write(pa, from: UnsafeRawBufferPointer(rebasing: buffer[range]))
        }
    }

    /// A device reads `[iova, iova + buffer.count)` into `buffer`, page by page. Throws when a
    /// page faults; the bytes before it were read.
    public func dmaRead(stream: StreamID, iova: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws(DMAFault) {
        try transfer(stream: stream, iova: iova, count: buffer.count, access: .read) { pa, range in
            memory.read(pa, into: UnsafeMutableRawBufferPointer(rebasing: buffer[range]))
        }
    }

    /// Translates one device access without moving data, as the SMMU would for a transaction:
    /// the physical address, or the fault (recorded in the event queue).
    public func dmaTranslate(stream: StreamID, iova: UInt64, access: DMAAccess) throws(DMAFault) -> PhysAddr {
        var out = PhysAddr(0)
        try transfer(stream: stream, iova: iova, count: 1, access: access) { pa, _ in out = pa }
        return out
    }

    private func transfer(stream: StreamID, iova: UInt64, count: Int, access: DMAAccess,
                          _ move: (PhysAddr, Range<Int>) -> Void) throws(DMAFault) {
        var done = 0
        while done < count {
            let a = iova &+ UInt64(done)
            let n = min(count - done, Int(pageSize - (a & (pageSize - 1))))
            let range = done..<done + n
            do throws(IOMMUEventError) {
                try transact(stream, a, n, access) { pa in move(pa, range) }
            } catch {
                throw DMAFault(event: error.event, bytesTransferred: done)
            }
            done += n
        }
    }

    /// One transaction of at most a page.
    @inline(__always)
    private func transact(_ stream: StreamID, _ iova: UInt64, _ size: Int, _ access: DMAAccess,
                          _ body: (PhysAddr) -> Void) throws(IOMMUEventError) {
        // The IOTLB tag has room for IOVAs below the IPA limit only; larger ones take the slow
        // path, which reports F_ADDR_SIZE.
        if let iotlbRef, iova < geometry.limit,
           iotlbRef._withUnsafeGuaranteedRef({ $0.withCachedTranslation(stream, iova, access, body) }) { return }
        guard let smmu else {
            throw IOMMUEventError(event: IOMMUEvent(id: .badStreamID, stream: stream, iova: iova, access: access,
                                                    size: size, domain: nil, ownership: nil))
        }
        try translateSlow(smmu, stream, iova, size, access, body)
    }

    /// The configuration-cache or IOTLB miss: fetch the STE, check it, walk the table.
    private func translateSlow(_ smmu: SMMU, _ stream: StreamID, _ iova: UInt64, _ size: Int, _ access: DMAAccess,
                               _ body: (PhysAddr) -> Void) throws(IOMMUEventError) {
        func fault(_ id: IOMMUEvent.ID, _ domain: IOMMUDomainID?, _ ownership: PageOwnership?) -> IOMMUEventError {
            let event = IOMMUEvent(id: id, stream: stream, iova: iova, access: access, size: size,
                                   domain: domain, ownership: ownership)
            smmu.record(event)
            sink?.iommu(.fault(event))
            return IOMMUEventError(event: event)
        }
        guard Int(stream.rawValue) < SMMU.streamCount else { throw fault(.badStreamID, nil, nil) }
        try withHostAndSMMULocks(smmu) { () throws(IOMMUEventError) in
            let ste = smmu.readSTE(stream, memory: memory)
            let vtcr = geometry.vtcr(physBits: geometry.ipaBits) & StreamTableEntry.vtcrMask
            guard ste.isValid, ste.config == .stage2, ste.vtcr == vtcr,
                  let domain = smmu.domains[ste.s2vmid], domain.table.root == ste.s2ttb
            else { throw fault(.badSTE, nil, nil) }
            try withDomainTable(domain) { () throws(IOMMUEventError) in
                try walkAndFill(smmu, stream, domain, iova, access, fault, body)
            }
        }
    }

    /// The stage-2 walk from the STE's S2TTB (SMMUv3 IHI 0070 3.4, using the VMSAv8-64 stage-2 walk) and the checks on the leaf.
    private func walkAndFill(_ smmu: SMMU, _ stream: StreamID, _ domain: IOMMUDomain, _ iova: UInt64,
                             _ access: DMAAccess,
                             _ fault: (IOMMUEvent.ID, IOMMUDomainID?, PageOwnership?) -> IOMMUEventError,
                             _ body: (PhysAddr) -> Void) throws(IOMMUEventError) {
        let isGuest = domain.vm != nil
        guard iova < geometry.limit else { throw fault(.addressSize, domain.id, nil) }
        let (d, level) = domain.table.leaf(at: IPA(iova))
        guard d.isLeaf(level: level) else {
            // No translation: for the identity domain the IOVA is the physical address, so the
            // record can name its owner; for other domains only the guest's view is known.
            let ownership = domain.kind == .identity
                ? ownershipLocked(PhysAddr(iova))
                : PageOwnership(page: nil, owner: nil, guest: isGuest ? guestState(d) : nil)
            throw fault(.translation, domain.id, ownership)
        }
        let output = d.outputAddress(level: level).advanced(by: iova & (Stage2Geometry.blockSize(level: level) - 1))
        let permissions = d.permissions
        guard permissions.contains(access == .read ? .read : .write) else {
            throw fault(.permission, domain.id, ownershipLocked(output, guest: isGuest ? d.pageState : nil))
        }
        guard memory.contains(output) else {
            // A mapping of something that is not RAM: there is nothing to move; abort as the
            // interconnect would, recorded as a translation fault on that page.
            throw fault(.translation, domain.id, ownershipLocked(output))
        }
        smmu.iotlb.fill(stream, domain: domain.id, iova: iova,
                        outputPage: PhysAddr(output.rawValue & ~(pageSize - 1)), permissions: permissions, body)
    }

    // MARK: Inspection

    /// The event queue's records, oldest first, and whether records were dropped since the last
    /// drain (EVTQ overflow). `drain` empties the queue, as the host consuming EVTQ_CONS would.
    public func iommuEvents(drain: Bool = false) -> (records: [IOMMUEvent], overflowed: Bool) {
        guard let smmu else { return ([], false) }
        return smmu.events.withLock { q in
            let out = (q.records, q.overflowed)
            if drain {
                q.records.removeAll()
                q.overflowed = false
            }
            return out
        }
    }

    /// The STE of `stream` as the stream table holds it; nil without an SMMU or out of range.
    public func streamTableEntry(_ stream: StreamID) -> StreamTableEntry? {
        guard let smmu, Int(stream.rawValue) < SMMU.streamCount else { return nil }
        return smmu.configLock.withLock { _ in smmu.readSTE(stream, memory: memory) }
    }

    /// One domain as inspection shows it.
    public struct IOMMUDomainView: Sendable, Equatable {
        public let id: IOMMUDomainID
        public let kind: IOMMUDomain.Kind
        public let streams: [StreamID]
        public let root: PhysAddr
    }

    /// Every domain, by ID.
    public func iommuDomains() -> [IOMMUDomainView] {
        guard let smmu else { return [] }
        return smmu.configLock.withLock { _ in
            smmu.domains.values.sorted { $0.id < $1.id }.map {
                IOMMUDomainView(id: $0.id, kind: $0.kind, streams: $0.streams.sorted(), root: $0.table.root)
            }
        }
    }

    /// A domain's table dump (for a guest domain, the guest's stage-2). -ENODEV; -EINVAL if
    /// there is no such domain.
    public func dumpIOMMUDomain(_ id: IOMMUDomainID, limit: Int = 0) throws(HypError) -> String {
        let smmu = try requireSMMU()
        return try withHostAndSMMULocks(smmu) { () throws(HypError) -> String in
            guard let domain = smmu.domains[id] else { throw .EINVAL }
            let header = "\(domain.id) (\(domain.kind)) streams=\(domain.streams.sorted().map { String($0.rawValue) })"
            return header + "\n" + withDomainTable(domain) { domain.table.dump(limit: limit) }
        }
    }

    /// The physical pages a domain can reach with the rights it grants, for inspection and
    /// pictures: (IOVA, output, bytes, rights) per leaf. -ENODEV; -EINVAL for no such domain.
    public func iommuMappings(_ id: IOMMUDomainID) throws(HypError)
        -> [(iova: UInt64, output: PhysAddr, size: UInt64, permissions: Stage2Permissions)] {
        let smmu = try requireSMMU()
        return try withHostAndSMMULocks(smmu) { () throws(HypError) in
            guard let domain = smmu.domains[id] else { throw .EINVAL }
            var out: [(iova: UInt64, output: PhysAddr, size: UInt64, permissions: Stage2Permissions)] = []
            withDomainTable(domain) {
                domain.table.forEachEntry { e in
                    guard e.descriptor.isLeaf(level: e.level) else { return }
                    out.append((e.ipa, e.descriptor.outputAddress(level: e.level), e.size, e.descriptor.permissions))
                }
            }
            return out
        }
    }
}

/// A fault carried out of the locked slow path.
struct IOMMUEventError: Error {
    let event: IOMMUEvent
}
