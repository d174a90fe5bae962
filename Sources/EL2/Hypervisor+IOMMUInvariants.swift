/// Rule 7 of the invariant checker: every IOMMU mapping is allowed by ownership.
///
/// - Each valid STE is a stage-2 STE naming a live domain with that domain's table base, and a
///   domain's streams are exactly the STEs that name it.
/// - `IOMMUMode.mirror`: the identity domain maps, read-write and identity, exactly the RAM pages
///   whose host state lets the host reach them (PKVM-v4: host devices reach what the host CPU
///   reaches, nothing else).
/// - `IOMMUMode.refcount`: every paging-domain leaf maps a RAM page the host may DMA
///   (`__pkvm_host_use_dma_page`), and each such mapping holds one reference in the page's
///   refcount (returned so the per-page rule can subtract DMA references from pins).
/// - Guest domains use the live guest's own stage-2, and that table reports its invalidations
///   to the IOTLB.
/// - Every cached IOTLB entry is what a walk of its domain gives now, with no more rights: a
///   stale entry would let a device reach a page it lost.
extension Hypervisor {
    /// Runs with the VM-table, host and hyp locks held. Returns the DMA references per page
    /// (empty without an SMMU).
    func checkIOMMULocked(_ c: inout InvariantCollector, liveVMs: [GuestVM],
                          account: (PhysAddr, HypPageUse, String) -> Void,
                          checkTables: (Stage2PageTable, String) -> Void) -> [UInt16] {
        guard let smmu else { return [] }
        var dmaRefs = [UInt16](repeating: 0, count: memory.pageCount)
        smmu.configLock.withLock { _ in
            for k in 0..<SMMU.streamTablePages {
                account(smmu.streamTable.advanced(by: UInt64(k) << pageShift), .streamTable, "SMMU stream table")
            }
            for slot in smmu.pgdSlots {
                for k in 0..<geometry.pgdPages {
                    account(slot.advanced(by: UInt64(k) << pageShift), .iommuPoolFree, "SMMU free PGD")
                }
            }
            for p in smmu.pool.pages(memory: memory) { account(p, .iommuPoolFree, "SMMU pool") }

            // Stream table against the domains.
            var named: [IOMMUDomainID: Set<StreamID>] = [:]
            for sid in 0..<SMMU.streamCount {
                let stream = StreamID(UInt32(sid))
                let ste = smmu.readSTE(stream, memory: memory)
                guard ste.isValid else { continue }
                guard ste.config == .stage2, let domain = smmu.domains[ste.s2vmid] else {
                    c.add("\(stream): \(ste) names no live stage-2 domain"); continue
                }
                if ste.s2ttb != domain.table.root { c.add("\(stream): S2TTB \(ste.s2ttb) but \(domain.id) is at \(domain.table.root)") }
                named[domain.id, default: []].insert(stream)
            }

            for domain in smmu.domains.values.sorted(by: { $0.id < $1.id }) {
                let name = "\(domain.id)"
                if domain.streams != named[domain.id, default: []] {
                    c.add("\(name) lists streams \(domain.streams.sorted()) but the stream table names \(named[domain.id, default: []].sorted())")
                }
                switch domain.kind {
                case .identity:
                    checkTables(domain.table, name)
                    checkIdentityDomain(&c, domain)
                case .paging:
                    checkTables(domain.table, name)
                    domain.table.forEachEntry { e in
                        guard e.descriptor.isLeaf(level: e.level) else {
                            if !e.isTable { c.add("\(name) iova \(hex(e.ipa)): annotated entry in a paging domain") }
                            return
                        }
                        let base = e.descriptor.outputAddress(level: e.level)
                        for k in 0..<(e.size >> pageShift) {
                            let pa = base.advanced(by: k << pageShift)
                            guard let i = memory.pageIndex(pa) else { c.add("\(name) maps \(pa), which is not RAM"); continue }
                            let p = vmemmap[i]
                            dmaRefs[i] &+= 1
                            let allowed = p.hostState == .owned
                                || ((p.hostState == .sharedOwned || p.hostState == .sharedBorrowed) && p.hypState == .noPage)
                            if !allowed {
                                c.add("\(name) iova \(hex(e.ipa + (k << pageShift))) maps \(pa) but host=\(p.hostState) hyp=\(p.hypState) may not DMA it")
                            }
                        }
                    }
                case .guest(let handle):
                    guard let vm = domain.vm, vm.handle == handle, liveVMs.contains(where: { $0 === vm }), !vm.isFinalized else {
                        c.add("\(name) is assigned to vm \(handle), which is gone"); continue
                    }
                    if domain.table !== vm.stage2 { c.add("\(name) does not use vm \(handle)'s stage-2") }
                    let sharing = vm.lock.withLock { _ in vm.stage2.sharingDomain }
                    if sharing != domain.id { c.add("vm \(handle)'s stage-2 does not invalidate the IOTLB of \(name)") }
                }
            }

            // The IOTLB: every cached translation must still be what the table says.
            for (stream, id) in smmu.iotlb.cachedConfigurations() {
                let ste = smmu.readSTE(stream, memory: memory)
                if !ste.isValid || ste.s2vmid != id { c.add("configuration cache holds \(stream) → \(id) but the STE is \(ste)") }
            }
            for e in smmu.iotlb.cachedEntries() {
                guard let domain = smmu.domains[e.domain] else {
                    c.add("IOTLB holds iova \(hex(e.iova)) of \(e.domain), which does not exist"); continue
                }
                let now = withDomainTable(domain) { domain.table.translate(IPA(e.iova)) }
                guard let (output, descriptor, _) = now else {
                    c.add("stale IOTLB entry: \(e.domain) iova \(hex(e.iova)) → \(e.output) but the table no longer maps it")
                    continue
                }
                let rights: Stage2Permissions = [e.rights & 1 != 0 ? .read : [], e.rights & 2 != 0 ? .write : []]
                if output != e.output || !descriptor.permissions.isSuperset(of: rights) {
                    c.add("stale IOTLB entry: \(e.domain) iova \(hex(e.iova)) → \(e.output) \(rights) but the table says \(output) \(descriptor.permissions)")
                }
            }
        }
        return dmaRefs
    }

    /// The identity domain against the host states, page by page.
    private func checkIdentityDomain(_ c: inout InvariantCollector, _ domain: IOMMUDomain) {
        var mapped = [Bool](repeating: false, count: memory.pageCount)
        domain.table.forEachEntry { e in
            let d = e.descriptor
            guard d.isLeaf(level: e.level) else {
                if !e.isTable { c.add("identity domain iova \(hex(e.ipa)): annotated entry \(d)") }
                return
            }
            if d.outputAddress(level: e.level).rawValue != e.ipa { c.add("identity domain maps \(hex(e.ipa)) elsewhere: \(d)") }
            if d.permissions != .rw { c.add("identity domain maps \(hex(e.ipa)) \(d.permissions), expected RW") }
            for k in 0..<(e.size >> pageShift) {
                let pa = PhysAddr(e.ipa + (k << pageShift))
                guard let i = memory.pageIndex(pa) else { c.add("identity domain maps \(pa), which is not RAM"); continue }
                mapped[i] = true
            }
        }
        for i in 0..<memory.pageCount {
            let h = vmemmap[i].hostState
            if mapped[i] != h.isAccessible {
                let pa = memory.pageAddress(index: i)
                c.add(mapped[i] ? "host devices can DMA \(pa) but host state is \(h)"
                                : "host devices cannot DMA \(pa) although host state is \(h)")
            }
        }
    }
}
