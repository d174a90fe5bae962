import Synchronization

/// The EL2 component: the single source of truth about who owns every physical page, with the
/// host's stage-2, every guest's stage-2, and pKVM's ownership transitions.
///
/// Modelled on arm64 pKVM's nVHE hypervisor (arch/arm64/kvm/hyp/nvhe/mem_protect.c and pkvm.c):
/// each transition checks every precondition first, in pKVM's order and with pKVM's errno, then
/// commits a change that cannot fail half-way.
///
/// ## Locking
///
/// Lock order, outermost first (as pKVM's component IDs order the page-table locks):
///
///     vmTableLock  ──►  hostLock  ──►  hypLock
///                           │
///                           └──────►  GuestVM.lock
///
/// - `vmTableLock` (pKVM's `vm_table_lock`): the VM table, `isDying`, `references`.
/// - `hostLock` (`host_mmu.lock`): the host stage-2, host states, share counts, pin refcounts.
/// - `hypLock` (`pkvm_pgd_lock`): hyp states. Always taken inside `hostLock` here, because the
///   host and hyp states share one byte of `HypPage`.
/// - `GuestVM.lock` (`vm->lock`): that guest's stage-2 and pools; taken inside `hostLock`.
/// - `SMMU.configLock` (the IOMMU's lock): stream table, domains; inside `hostLock`, outside
///   `GuestVM.lock`. The IOTLB's lock is the innermost of all.
///
/// A VM object is looked up under `vmTableLock`, which is then dropped before the transition
/// takes `hostLock` (or, on the hottest transitions, under `hostLock` itself, which every write
/// of the table also holds); VM objects are never freed while referenced (Swift references keep them
/// alive), and a torn-down VM's table is empty, so a racing transition sees NOPAGE and fails.
public final class Hypervisor: @unchecked Sendable {
    public let memory: PhysicalMemory
    /// Shape of every stage-2 (host and guests share the host's VTCR, as pKVM does).
    public let geometry: Stage2Geometry
    /// The host's identity stage-2 (VMID 0).
    public let hostStage2: Stage2PageTable
    /// Pages reserved for EL2 at boot (pKVM's carveout): the host stage-2 PGD and table pool.
    public let carveout: Range<PFN>

    let vmemmap: Vmemmap
    let hostLock = Mutex(())
    let hypLock = Mutex(())
    let vmTableLock = Mutex(())
    /// Written holding `vmTableLock` and then `hostLock`, so it may be read holding either
    /// (a transition on the hot path looks its VM up under the host lock it takes anyway,
    /// `withHostLockedVM`); index = handle - `VMHandle.offset`.
    private(set) var vmTable: [GuestVM?]
    let sink: (any EL2EventSink)?
    /// The SMMU, when the machine has one.
    public let smmu: SMMU?
    /// `smmu.iotlb` without a reference count, for the DMA hit path: loading it through the
    /// optional `smmu` costs a retain and a release per transaction, as many atomic operations
    /// as the IOTLB's own lock. Sound because `smmu` keeps the IOTLB alive as long as `self`.
    let iotlbRef: Unmanaged<IOTLB>?
    /// True in `IOMMUMode.refcount`: host transitions refuse pages with DMA references.
    let refcountsDMA: Bool
    /// The pKVM whose guest ABI and host-call errnos EL2 reproduces.
    public let profile: PKVMProfile
    /// Counts and fails EL2's failure points on demand (off unless a test starts it).
    public let faults = FaultInjection()
    /// The host's long-term pins on pages a guest shared with it (`--host-pins longterm`), by
    /// vmemmap index: what VFIO's FOLL_LONGTERM holds while its IOMMU maps the page. Guarded by
    /// `hostLock`; empty (and never looked at) in pvm's default, where no pin is taken.
    var hostPins: [Int: UInt32] = [:]

    /// pKVM's `KVM_MAX_PVMS`.
    public static let maxVMs = 255

    /// Why EL2 could not start over the given memory.
    public enum InitError: Error, Equatable, CustomStringConvertible {
        case unsupportedIPABits(Int)
        case ramBeyondIPALimit(PhysAddr, ipaBits: Int)
        case tooLittleRAM(pagesNeeded: Int, pagesPresent: Int)

        public var description: String {
            switch self {
            case .unsupportedIPABits(let b):
                "IPA size \(b) bits is not supported (4 KB granule without LPA2: \(Stage2Geometry.supportedIPABits))"
            case .ramBeyondIPALimit(let end, let bits): "RAM ends at \(end), beyond the \(bits)-bit IPA space"
            case .tooLittleRAM(let n, let p): "EL2 needs \(n) pages of RAM for its carveout, the last region has \(p)"
            }
        }
    }

    /// Boots EL2 over `memory`: reserves a carveout at the top of the last RAM region for the host
    /// stage-2 (PGD and table pool) and, with an SMMU, for the stream table and the IOMMU domain
    /// tables; annotates the carveout as hyp-owned in the host stage-2.
    ///
    /// - Parameters:
    ///   - ipaBits: IPA size of every stage-2 (VTCR_EL2.T0SZ); also the host's physical address size.
    ///   - iommu: build an SMMU keeping DMA consistent with ownership this way; nil for none.
    ///   - profile: the pKVM tree whose guest ABI and errnos EL2 answers with.
    ///   - sink: receives every TLB invalidation, for the host and all guests.
    public init(memory: PhysicalMemory, ipaBits: Int = 40, iommu: IOMMUMode? = nil, profile: PKVMProfile = .mainline,
                sink: (any EL2EventSink)? = nil) throws(InitError) {
        guard let geometry = Stage2Geometry(ipaBits: ipaBits) else { throw .unsupportedIPABits(ipaBits) }
        let last = memory.regions[memory.regions.count - 1]
        guard last.end.rawValue <= geometry.limit else { throw .ramBeyondIPALimit(last.end, ipaBits: ipaBits) }
        self.memory = memory
        self.geometry = geometry
        self.sink = sink
        self.vmemmap = Vmemmap(pageCount: memory.pageCount)
        self.vmTable = Array(repeating: nil, count: Self.maxVMs)
        self.refcountsDMA = iommu == .refcount
        self.profile = profile

        // Size the host stage-2 pool so that mapping every RAM page at page granularity can never
        // run out, plus slack for MMIO identity maps (reclaimed on demand, as host_stage2_try does).
        var tables = 0
        for r in memory.regions {
            tables += geometry.tablesNeededBound(start: r.base.rawValue, end: r.end.rawValue)
        }
        let mmioSlack = 2 * (memory.regions.count + 1) * (geometry.levels - 1)
        let pgdPages = geometry.pgdPages
        let pgdAlign = UInt64(pgdPages)
        let poolPages = tables + mmioSlack
        // The SMMU's share: PGD slots (one identity domain, or the paging domains), the stream
        // table, and a table pool that can map all RAM at page granularity once.
        let pgdSlots = iommu == nil ? 0 : iommu == .mirror ? 1 : Self.maxPagingDomains
        let iommuPages = iommu == nil ? 0 : pgdSlots * pgdPages + SMMU.streamTablePages + tables + 16
        // Carveout at the top of the last region: [SMMU][pool pages][PGD], PGDs naturally aligned.
        let lastEndPFN = last.end.pfn.rawValue
        let pgdStart = (lastEndPFN - UInt64(pgdPages)) / pgdAlign * pgdAlign
        let wanted = UInt64(poolPages + iommuPages)
        let carveStart = pgdStart >= wanted ? (pgdStart - wanted) / pgdAlign * pgdAlign : 0
        guard pgdStart >= wanted, carveStart >= last.base.pfn.rawValue, pgdStart + UInt64(pgdPages) <= lastEndPFN else {
            throw .tooLittleRAM(pagesNeeded: poolPages + iommuPages + 2 * pgdPages, pagesPresent: Int(last.pageCount))
        }
        self.carveout = PFN(carveStart)..<PFN(lastEndPFN)
        for pfn in carveStart..<lastEndPFN {
            let i = memory.pageIndex(PFN(pfn).address)!
            vmemmap.pointer(i).pointee.hostState = .noPage
            vmemmap.pointer(i).pointee.hypState = .owned
        }
        let stage2 = Stage2PageTable(geometry: geometry, vmid: .host, root: PFN(pgdStart).address, memory: memory,
                                     vmemmap: vmemmap, tableUse: .hostTable, freeUse: .hostPoolFree, sink: sink)
        let hostPoolStart = carveStart + UInt64(iommuPages)
        for pfn in hostPoolStart..<pgdStart { stage2.addFreeTable(PFN(pfn).address) }
        // Pages between the PGD's end and the region's end (alignment slack) stay in the pool too.
        for pfn in (pgdStart + UInt64(pgdPages))..<lastEndPFN { stage2.addFreeTable(PFN(pfn).address) }
        self.hostStage2 = stage2
        stage2.apply(.annotate(.annotation(.donation, owner: .hyp)),
                     start: PFN(carveStart).address.rawValue, end: last.end.rawValue)
        if let iommu {
            self.smmu = Self.bootSMMU(iommu, pages: PFN(carveStart)..<PFN(hostPoolStart), pgdSlots: pgdSlots,
                                      geometry: geometry, memory: memory, vmemmap: vmemmap, sink: sink)
            self.iotlbRef = Unmanaged.passUnretained(self.smmu!.iotlb)
            mirrorInitialHostStage2()
        } else {
            self.smmu = nil
            self.iotlbRef = nil
        }
    }

    // MARK: Per-page metadata

    /// The metadata of the RAM page at `pa`; nil when `pa` is not RAM.
    public func page(_ pa: PhysAddr) -> HypPage? {
        guard let i = memory.pageIndex(pa) else { return nil }
        return vmemmap[i]
    }

    /// Bytes of EL2 metadata per RAM page (`HypPage`).
    public var metadataBytesPerPage: Int { Vmemmap.bytesPerPage }

    @inline(__always) func meta(_ pa: PhysAddr) -> UnsafeMutablePointer<HypPage> {
        vmemmap.pointer(memory.pageIndex(pa)!)
    }

    // MARK: VM table

    /// The VM with `handle`, or nil (`get_vm_by_handle`). Takes the VM-table lock.
    public func vm(_ handle: VMHandle) -> GuestVM? {
        vmTableLock.withLock { _ in lookupLocked(handle) }
    }

    func lookupLocked(_ handle: VMHandle) -> GuestVM? {
        let i = Int(handle.rawValue) - Int(VMHandle.offset)
        guard i >= 0, i < vmTable.count else { return nil }
        return vmTable[i]
    }

    /// All live VMs, by handle.
    public var vms: [GuestVM] {
        vmTableLock.withLock { _ in vmTable.compactMap { $0 } }
    }

    func setVMTableEntry(_ index: Int, _ vm: GuestVM?) { vmTable[index] = vm }
}
