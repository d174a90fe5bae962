/// The host's stage-2 faults (`handle_host_mem_abort`, `host_stage2_idmap`, mem_protect.c) and
/// the checked accessor through which host-side code touches physical memory.
extension Hypervisor {
    /// What EL2 did about a host access.
    public enum HostAccessOutcome: Equatable, Sendable {
        /// The host stage-2 already mapped the page (`-EEXIST` from `host_stage2_adjust_range`).
        case alreadyMapped
        /// The fault was handled by identity-mapping `range` (a page, or a 2 MiB / 1 GiB block).
        case mapped(Range<UInt64>)
    }

    /// Handles a host stage-2 fault at `pa`, as `host_stage2_idmap` does: a valid leaf means
    /// already mapped; an annotated invalid leaf means someone else owns the page (-EPERM: EL2
    /// injects an abort into the host); an empty entry is identity-mapped with the largest block
    /// that fits inside the entry's span and the memory region (or MMIO gap): RWX for memory,
    /// RW device memory for MMIO. An address past the IPA limit is -EFAULT.
    public func hostMemAbort(_ pa: PhysAddr) throws(HypError) -> HostAccessOutcome {
        guard pa.rawValue < geometry.limit else { throw .EFAULT }
        return try withHostLock { () throws(HypError) -> HostAccessOutcome in try hostMemAbortLocked(pa) }
    }

    /// `host_stage2_idmap` with the host lock held; `pa` is below the IPA limit.
    func hostMemAbortLocked(_ pa: PhysAddr) throws(HypError) -> HostAccessOutcome {
        let (d, level) = hostStage2.leaf(at: IPA(pa.rawValue))
        if d.isValid { return .alreadyMapped }
        if !d.isZero {
            if memory.contains(pa), meta(pa).pointee.hostState != .noPage {
                sink?.warning("host fault on annotated page \(pa) whose host state is not NOPAGE")
            }
            throw .EPERM
        }
        let (range, isMemory) = memory.addressRange(containing: pa)
        let regionEnd = min(range.upperBound, geometry.limit)
        var chosen = max(level, Stage2Geometry.minBlockLevel)
        while chosen < Stage2Geometry.lastLevel {
            let size = Stage2Geometry.blockSize(level: chosen)
            let start = pa.rawValue & ~(size - 1)
            if start >= range.lowerBound && start + size <= regionEnd { break }
            chosen += 1
        }
        let size = Stage2Geometry.blockSize(level: chosen)
        let start = pa.rawValue & ~(size - 1)
        try checkHostTables(PhysAddr(start), pages: size >> pageShift, leafLevel: chosen)
        let update: Stage2Update = isMemory
            ? .map(output: PhysAddr(start), permissions: .rwx, state: .owned, pagesOnly: false)
            : .mapDevice(output: PhysAddr(start))
        hostStage2Apply(update, start: start, end: start + size)
        return .mapped(start..<start + size)
    }

    /// Checks that the host may access `[pa, pa + count)` the way host-side device code would,
    /// faulting pages into the host stage-2 as needed. -EPERM (a host stage-2 fault EL2 refuses)
    /// if any page belongs to the hypervisor or a guest; -EFAULT past the IPA limit.
    public func hostAccess(_ pa: PhysAddr, count: Int) throws(HypError) {
        try withHostAccess(pa, count: count) {}
    }

    /// Runs `body` while the host may access `[pa, pa + count)`: every page is checked (and
    /// faulted into the host stage-2) as `hostAccess` does, and `body` runs with the host lock
    /// still held, so no transition can take a page from the host between the check and the
    /// host's copy. This is what a real host gets from its stage-2 for free: a page cannot be
    /// unmapped under a load that is already translating. `body` must not call into EL2.
    ///
    /// -EPERM if any page belongs to the hypervisor or a guest; -EFAULT past the IPA limit or for
    /// a range that wraps.
    public func withHostAccess<R>(_ pa: PhysAddr, count: Int, _ body: () -> R) throws(HypError) -> R {
        guard count > 0 else { return body() }
        let end = pa.rawValue.addingReportingOverflow(UInt64(count))
        guard !end.overflow, end.partialValue <= geometry.limit else { throw .EFAULT }
        return try withHostLock { () throws(HypError) -> R in
            var page = pa.rawValue & ~(pageSize - 1)
            while page < end.partialValue {
                _ = try hostMemAbortLocked(PhysAddr(page))
                page += pageSize
            }
            return body()
        }
    }
}
