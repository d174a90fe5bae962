import EL2

/// One step of a fuzz run: a host call into EL2, a guest hypercall through EL2's guest entry
/// point, or a device's DMA. Each is exactly one `pvm model` line (`scriptLine`), so a failing
/// run is saved as a script anyone can replay.
///
/// Pages are numbered from the start of RAM, as the model language numbers them; VMs are slot
/// numbers whose script names `FuzzDomain.vmName` gives.
public enum FuzzOperation: Sendable, Equatable {
    case shareHyp(UInt64), unshareHyp(UInt64)
    case pin(UInt64, UInt64), unpin(UInt64, UInt64)
    case donateHyp(UInt64, UInt64), hypDonateHost(UInt64, UInt64)
    case shareFFA(UInt64, UInt64), unshareFFA(UInt64, UInt64)
    case shareGuest(pfn: UInt64, gfn: UInt64, pages: UInt64, vm: Int, prot: Stage2Permissions)
    case unshareGuest(gfn: UInt64, pages: UInt64, vm: Int)
    case donateGuest(pfn: UInt64, gfn: UInt64, vm: Int)
    case guestShare(vm: Int, gfn: UInt64), guestUnshare(vm: Int, gfn: UInt64), relinquish(vm: Int, gfn: UInt64)
    case forceReclaim(UInt64)
    case reclaimGuest(gfn: UInt64, vm: Int), reclaimDying(vm: Int, gfn: UInt64)
    case hostAccess(UInt64), hostWrite(UInt64, UInt8)
    case startTeardown(Int), finalize(Int), teardown(Int), create(Int)
    /// A guest HVC from vCPU 0: function and x1..x3.
    case hvc(vm: Int, function: SMCCCFunction, x1: UInt64, x2: UInt64, x3: UInt64)
    /// A device writes a page of `byte` at `iova` through stream `stream`.
    case dmaWrite(stream: UInt32, iova: UInt64, byte: UInt8)
    case iommuMap(iova: UInt64, pfn: UInt64), iommuUnmap(iova: UInt64)

    /// The `pvm model` line that makes the same call.
    public func scriptLine(_ domain: FuzzDomain) -> String {
        func v(_ i: Int) -> String { domain.vmName(i) }
        switch self {
        case let .shareHyp(p): return "host_share_hyp \(hex(p))"
        case let .unshareHyp(p): return "host_unshare_hyp \(hex(p))"
        case let .pin(p, n): return "hyp_pin \(hex(p)) \(n)"
        case let .unpin(p, n): return "hyp_unpin \(hex(p)) \(n)"
        case let .donateHyp(p, n): return "host_donate_hyp \(hex(p)) \(n)"
        case let .hypDonateHost(p, n): return "hyp_donate_host \(hex(p)) \(n)"
        case let .shareFFA(p, n): return "host_share_ffa \(hex(p)) \(n)"
        case let .unshareFFA(p, n): return "host_unshare_ffa \(hex(p)) \(n)"
        case let .shareGuest(p, g, n, vm, prot): return "host_share_guest \(hex(p)) \(hex(g)) \(n) \(v(vm)) \(prot)"
        case let .unshareGuest(g, n, vm): return "host_unshare_guest \(hex(g)) \(n) \(v(vm))"
        case let .donateGuest(p, g, vm): return "host_donate_guest \(hex(p)) \(hex(g)) \(v(vm))"
        case let .guestShare(vm, g): return "guest_share_host \(v(vm)) \(hex(g))"
        case let .guestUnshare(vm, g): return "guest_unshare_host \(v(vm)) \(hex(g))"
        case let .relinquish(vm, g): return "guest_relinquish \(v(vm)) \(hex(g))"
        case let .forceReclaim(p): return "host_force_reclaim \(hex(p))"
        case let .reclaimGuest(g, vm): return "host_reclaim_guest \(hex(g)) \(v(vm))"
        case let .reclaimDying(vm, g): return "vm_reclaim \(v(vm)) \(hex(g))"
        case let .hostAccess(p): return "host_access \(hex(p))"
        case let .hostWrite(p, b): return "host_write \(hex(p)) \(hex(b))"
        case let .startTeardown(vm): return "vm_start_teardown \(v(vm))"
        case let .finalize(vm): return "vm_finalize_teardown \(v(vm))"
        case let .teardown(vm): return "vm_teardown \(v(vm))"
        case let .create(vm):
            return "vm_create \(v(vm)) \(domain.isProtected(vm) ? "protected" : "nonprotected")" + (domain.memcache.map { " 1 \($0)" } ?? "")
        case let .hvc(vm, f, x1, x2, x3): return "hvc \(v(vm)) \(f.name) \(hex(x1)) \(hex(x2)) \(hex(x3))"
        case let .dmaWrite(s, iova, b): return "dma_write \(s) \(hex(iova)) 4096 \(hex(b))"
        case let .iommuMap(iova, p): return "iommu_map \(FuzzDomain.pagingDomain) \(hex(iova)) \(hex(p)) 1 rw"
        case let .iommuUnmap(iova): return "iommu_unmap \(FuzzDomain.pagingDomain) \(hex(iova)) 1"
        }
    }
}
