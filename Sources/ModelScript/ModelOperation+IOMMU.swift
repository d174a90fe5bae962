import EL2

/// The SMMU operations of the `pvm model` language (docs/model-language.md, docs/iommu.md).
extension ModelOperation {
    /// Largest DMA transfer one line may ask for.
    static let maxDMABytes: UInt64 = 1 << 20

    static let iommu: [ModelOperation] = [
        .init(name: "iommu_attach", synopsis: "SID host|DOMAIN",
              summary: "attach a host device's stream: host = the identity domain (mirror), a paging domain (refcount)",
              arity: 2...2) { a throws(ModelLineError) in
            let sid = try a.stream(0), domain = try a.domain(1)
            return errno { () throws(HypError) in try a.session.hypervisor.iommuAttach(sid, domain: domain) }
        },
        .init(name: "iommu_assign", synopsis: "SID VM", summary: "assign a device to a guest: its STE points at the guest's stage-2",
              arity: 2...2) { a throws(ModelLineError) in
            let sid = try a.stream(0), vm = try a.vm(1)
            return errno { () throws(HypError) in try a.session.hypervisor.iommuAssign(sid, vm: vm) }
        },
        .init(name: "iommu_detach", synopsis: "SID", summary: "clear the stream's STE (its DMA then gets C_BAD_STE)",
              arity: 1...1) { a throws(ModelLineError) in
            let sid = try a.stream(0)
            return errno { () throws(HypError) in try a.session.hypervisor.iommuDetach(sid) }
        },
        .init(name: "iommu_domain_alloc", synopsis: "DOMAIN", summary: "create a host paging domain (refcount mode)",
              arity: 1...1) { a throws(ModelLineError) in
            let d = try a.domain(0)
            return errno { () throws(HypError) in try a.session.hypervisor.iommuAllocDomain(d) }
        },
        .init(name: "iommu_domain_free", synopsis: "DOMAIN", summary: "unmap everything and free a paging domain",
              arity: 1...1) { a throws(ModelLineError) in
            let d = try a.domain(0)
            return errno { () throws(HypError) in try a.session.hypervisor.iommuFreeDomain(d) }
        },
        .init(name: "iommu_map", synopsis: "DOMAIN IOVA PFN [NR] [r|w|rw]",
              summary: "map host pages into a paging domain; each takes a DMA reference (__pkvm_host_use_dma)",
              arity: 3...5) { a throws(ModelLineError) in
            let d = try a.domain(0), iova = try a.iova(1), pfn = try a.pfn(2)
            let nr = a.count >= 4 ? try a.pages(3) : 1
            let prot = a.count == 5 ? try a.prot(4) : .rw
            return errno { () throws(HypError) in
                try a.session.hypervisor.iommuMap(domain: d, iova: iova, pfn: pfn, pages: nr, prot: prot)
            }
        },
        .init(name: "iommu_unmap", synopsis: "DOMAIN IOVA [NR]",
              summary: "unmap from a paging domain; references drop after the IOTLB sync. Prints pages unmapped",
              arity: 2...3) { a throws(ModelLineError) in
            let d = try a.domain(0), iova = try a.iova(1)
            let nr = a.count == 3 ? try a.pages(2) : 1
            do throws(HypError) {
                return String(try a.session.hypervisor.iommuUnmap(domain: d, iova: iova, pages: nr))
            } catch {
                return error.description
            }
        },
        .init(name: "dma_write", synopsis: "SID IOVA LEN [BYTE]",
              summary: "the device writes LEN bytes of BYTE (default 0xA5): 0, or the fault and bytes written",
              arity: 3...4) { a throws(ModelLineError) in
            let sid = try a.stream(0), iova = try a.iova(1), len = try a.number(2, "LEN")
            let byte = a.count == 4 ? try a.number(3, "BYTE") : 0xA5
            guard len > 0, len <= maxDMABytes else { throw ModelLineError("dma_write: LEN \(len) must be 1 to \(maxDMABytes)") }
            guard byte <= 0xFF else { throw ModelLineError("dma_write: BYTE \(byte) is not a byte") }
            let data = [UInt8](repeating: UInt8(byte), count: Int(len))
            let hyp = a.session.hypervisor
            return data.withUnsafeBytes { b in
                do throws(DMAFault) {
                    try hyp.dmaWrite(stream: sid, iova: iova, from: b)
                    return "0"
                } catch {
                    return "fault \(error.event) after \(error.bytesTransferred) bytes"
                }
            }
        },
        .init(name: "dma_read", synopsis: "SID IOVA LEN",
              summary: "the device reads LEN bytes: their first 16 in hex, or the fault",
              arity: 3...3) { a throws(ModelLineError) in
            let sid = try a.stream(0), iova = try a.iova(1), len = try a.number(2, "LEN")
            guard len > 0, len <= maxDMABytes else { throw ModelLineError("dma_read: LEN \(len) must be 1 to \(maxDMABytes)") }
            var data = [UInt8](repeating: 0, count: Int(len))
            let hyp = a.session.hypervisor
            return data.withUnsafeMutableBytes { b in
                do throws(DMAFault) {
                    try hyp.dmaRead(stream: sid, iova: iova, into: b)
                    return b.prefix(16).map { String($0, radix: 16).leftPadded(2) }.joined(separator: " ")
                } catch {
                    return "fault \(error.event) after \(error.bytesTransferred) bytes"
                }
            }
        },
        .init(name: "iommu_translate", synopsis: "SID IOVA [r|w]",
              summary: "what the SMMU gives a transaction: the physical address, or the fault", arity: 2...3) { a throws(ModelLineError) in
            let sid = try a.stream(0), iova = try a.iova(1)
            var access = DMAAccess.read
            if a.count == 3 {
                switch a.tokens[2] {
                case "r": access = .read
                case "w": access = .write
                default: throw ModelLineError("iommu_translate: access '\(a.tokens[2])' must be r or w")
                }
            }
            do throws(DMAFault) {
                return "pa \(try a.session.hypervisor.dmaTranslate(stream: sid, iova: iova, access: access))"
            } catch {
                return "fault \(error.event)"
            }
        },
        .init(name: "iommu_events", synopsis: "", summary: "drain the SMMU event queue, oldest first",
              arity: 0...0) { a throws(ModelLineError) in
            let (records, overflowed) = a.session.hypervisor.iommuEvents(drain: true)
            return "\(records.count) events" + (overflowed ? " (queue overflowed: later records lost)" : "")
                + (records.isEmpty ? "" : "\n" + records.map { "  \($0)" }.joined(separator: "\n"))
        },
        .init(name: "iommu_log", synopsis: "", summary: "SMMU attaches, maps, unmaps, IOTLB invalidations since the last iommu_log",
              arity: 0...0) { a throws(ModelLineError) in
            ModelOperation.listing(a.session.log.takeIOMMUNotifications(), "notifications")
        },
        .init(name: "iommu_show", synopsis: "", summary: "the SMMU: mode, valid STEs, domains, IOTLB counters",
              arity: 0...0) { a throws(ModelLineError) in
            let hyp = a.session.hypervisor
            guard let smmu = hyp.smmu else { return "no SMMU (start with --iommu-mode mirror or refcount)" }
            var lines = ["mode \(smmu.mode) STRTAB_BASE=\(smmu.streamTable) \(SMMU.streamCount) STEs"]
            for sid in 0..<UInt32(SMMU.streamCount) {
                if let ste = hyp.streamTableEntry(StreamID(sid)), ste.isValid { lines.append("  sid \(sid): \(ste)") }
            }
            for d in hyp.iommuDomains() {
                lines.append("  \(d.id) \(d.kind) root=\(d.root) streams=\(d.streams.map { Int($0.rawValue) })")
            }
            let s = smmu.iotlb.statistics
            lines.append("  IOTLB hits=\(s.hits) misses=\(s.misses) invalidations=\(s.invalidations)")
            return lines.joined(separator: "\n")
        },
        .init(name: "iommu_dump", synopsis: "host|DOMAIN [MAX]", summary: "a domain's stage-2 table, decoded",
              arity: 1...2) { a throws(ModelLineError) in
            let d = try a.domain(0)
            let limit = a.count == 2 ? Int(min(try a.number(1, "MAX"), 1 << 20)) : 0
            do throws(HypError) { return try a.session.hypervisor.dumpIOMMUDomain(d, limit: limit) } catch { return error.description }
        },
    ]
}
