/// Hooks for `pvm bench`, outside the public API: they bypass every check and lock, so they exist
/// only to measure what a transition costs beyond its page-table work.
extension Hypervisor {
    /// Maps `pfn` at `gfn` in the VM's stage-2 and unmaps it again, `iterations` times, with no
    /// lock, no ownership check and no metadata update: the page-table floor under one
    /// host_share_guest + host_unshare_guest pair. The VM's stage-2 must not map `gfn` already;
    /// the state afterwards is what it was.
    @_spi(Benchmarks)
    public func benchmarkBareStage2MapUnmap(vm handle: VMHandle, gfn: GFN, pfn: PFN, iterations: Int) {
        guard let vm = vm(handle) else { return }
        let s2 = vm.stage2
        let start = gfn.ipa.rawValue
        for _ in 0..<iterations {
            s2.apply(.map(output: pfn.address, permissions: .rwx, state: .sharedBorrowed, pagesOnly: false),
                     start: start, end: start + pageSize)
            s2.apply(.clear, start: start, end: start + pageSize)
        }
    }
}
