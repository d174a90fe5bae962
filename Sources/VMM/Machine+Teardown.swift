import EL2
import Tracing

/// What teardown gave back and what it verified.
public struct TeardownReport: Sendable, Equatable {
    /// Guest pages returned to the host (`__pkvm_reclaim_dying_guest_page` or unshare).
    public var reclaimed = 0
    /// Of those, pages that were private to the guest and are now verified all-zero, read back
    /// through the host's EL2-checked accessor. Relinquished pages are checked too.
    public var verifiedZero = 0
    /// Pages the guest had shared with the host: they come back with their contents, as in pKVM.
    public var sharedIntact = 0
    /// Pages EL2 handed back at finalize (page tables, VM structure, memcache).
    public var returnedByEL2 = 0
    /// Guest-private pages that came back non-zero or unreadable: must be empty.
    public var leaks: [UInt64] = []
    /// Where the guest-memory object disagreed with EL2 before teardown, then EL2 invariant
    /// violations after it: must be empty.
    public var violations: [String] = []

    public var isClean: Bool { leaks.isEmpty && violations.isEmpty }
}

extension Machine {
    /// Tears the guest down as pKVM's host does (`pkvm_destroy_hyp_vm`): start teardown, give
    /// every page back (reclaim what was donated, unshare what was shared), finalize; then
    /// checks that every page the guest held privately reads as zero from the host and that
    /// EL2's invariants hold. Call after `run()` returned.
    public func teardown() throws(VMMError) -> TeardownReport {
        blockDevice?.stop()  // a device reset: no transfer outlives the guest
        var report = TeardownReport()
        let (given, relinquished) = guestPages.withLock { (Array($0.given).sorted(), Array($0.relinquished).sorted()) }
        // The guest-memory object and EL2 must agree before anything goes back.
        let disagreements = guestMemory.checkAgreement(given: given)
        guestMemory.unpinAll()  // a device reset: no device keeps a pin
        var privatePages = relinquished
        for gfn in given {
            let view = try? hypervisor.guestPageView(vm: handle, gfn: GFN(gfn))
            if view?.state == .sharedOwned { report.sharedIntact += 1 }
            else if configuration.isProtected { privatePages.append(gfn) }
        }
        do {
            try transition("start_teardown_vm", gfn: nil) { () throws(HypError) in try hypervisor.startTeardown(vm: handle) }
            for gfn in given {
                let g = GFN(gfn)
                // A frame of a block came back with the block's first reclaim.
                if configuration.guestBlock != .page, (try? hypervisor.guestPageView(vm: handle, gfn: g))?.phys == nil,
                   (try? hypervisor.isPoisoned(vm: handle, ipa: g.ipa)) != true {
                    report.reclaimed += 1
                    continue
                }
                if configuration.isProtected {
                    try transition("reclaim_dying_guest_page", gfn: g) { () throws(HypError) in
                        try hypervisor.reclaimDyingGuestPage(vm: handle, gfn: g)
                    }
                } else {
                    try transition("host_unshare_guest", gfn: g) { () throws(HypError) in
                        try hypervisor.hostUnshareGuest(gfn: g, pages: 1, vm: handle)
                    }
                }
                report.reclaimed += 1
            }
            var returned = 0
            try transition("finalize_teardown_vm", gfn: nil) { () throws(HypError) in
                returned = try hypervisor.finalizeTeardown(vm: handle)
            }
            report.returnedByEL2 = returned
        } catch {
            throw .hypervisor(operation: "teardown", error: error)
        }
        counters.withLock { $0.reclaimed += report.reclaimed }
        for gfn in privatePages {
            let gpa = gfn << pageShift
            if let bytes = try? accessor.read(gpa: gpa, count: Int(pageSize)), bytes.allSatisfy({ $0 == 0 }) {
                report.verifiedZero += 1
            } else {
                report.leaks.append(gpa)
            }
        }
        report.violations = disagreements + hypervisor.checkInvariants().map(\.message)
        try checkBackend()
        try flushTrace()
        return report
    }
}
