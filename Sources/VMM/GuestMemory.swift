import EL2
import Synchronization

/// The memory a VM's RAM is made of, in the spirit of guest_memfd: guest frame g is always the
/// same physical page (`pfn(g)`), whatever memslot or view maps it, and each page has a
/// shared / private attribute. The attribute is not stored here: it is whatever EL2's ownership
/// says (`Hypervisor.guestMemoryAttribute`), so a memslot replaced or a view remapped cannot
/// change it, and the VMM cannot disagree with EL2 (`checkAgreement` proves it).
///
/// What the object does keep is the host kernel's side of a page: the references the host holds
/// on it. Under `HostPinMode.longterm` a device that maps a shared page takes a long-term pin
/// (registered with EL2, which then refuses to take the page away), and short-term speculative
/// references (GUP-fast) come and go. A host conversion to private checks them first, as
/// guest_memfd's `kvm_gmem_is_safe_for_conversion` checks folio refcounts (in-place conversion
/// v8): a long-term pin fails the call with -EBUSY (upstream answers -EAGAIN for every
/// unexpected reference; pvm tells the two apart), a short-term one is drained by the failing
/// call, which answers -EAGAIN, so the caller's retry succeeds (upstream drains per-CPU LRU
/// batches once per call and succeeds at once when that was all).
public final class GuestMemory: @unchecked Sendable {
    let hypervisor: Hypervisor
    let handle: VMHandle
    /// Guest frames `[firstGFN, firstGFN + pageCount)` are backed from `firstPFN`.
    public let firstGFN: GFN
    public let firstPFN: PFN
    public let pageCount: UInt64
    public let pinMode: HostPinMode
    /// The leaf a donation maps (`--guest-block`).
    public let blockSize: GuestBlockSize

    struct References {
        /// Long-term pins per gfn (each also registered with EL2).
        var longTerm: [UInt64: UInt32] = [:]
        /// Frames under a short-term reference.
        var transient: Set<UInt64> = []
    }
    let references = Mutex(References())

    init(hypervisor: Hypervisor, handle: VMHandle, firstGFN: GFN, firstPFN: PFN, pageCount: UInt64,
         pinMode: HostPinMode, blockSize: GuestBlockSize) {
        self.hypervisor = hypervisor
        self.handle = handle
        self.firstGFN = firstGFN
        self.firstPFN = firstPFN
        self.pageCount = pageCount
        self.pinMode = pinMode
        self.blockSize = blockSize
    }

    /// Whether `[gfn, gfn + pages)` is guest memory.
    public func contains(_ gfn: GFN, pages: UInt64 = 1) -> Bool {
        gfn >= firstGFN && pages <= pageCount && gfn.rawValue - firstGFN.rawValue <= pageCount - pages
    }

    /// The page behind frame `gfn` (which must be guest memory).
    public func pfn(_ gfn: GFN) -> PFN { PFN(firstPFN.rawValue + (gfn.rawValue - firstGFN.rawValue)) }

    /// The page's attribute as EL2's ownership has it; nil outside guest memory or when the page
    /// is neither (poisoned, relinquished and reused, given elsewhere).
    public func attribute(_ gfn: GFN) -> GuestMemoryAttribute? {
        guard contains(gfn) else { return nil }
        return try? hypervisor.guestMemoryAttribute(vm: handle, gfn: gfn, backing: pfn(gfn))
    }

    // MARK: Host references

    /// A host device maps the shared page `gfn` for DMA. Under `.longterm` that takes a
    /// long-term pin, registered with EL2 (-EPERM unless the guest shared the page); by default
    /// the device maps it through EL2's SMMU and no pin is taken. Returns whether it pinned.
    @discardableResult
    public func pin(_ gfn: GFN) throws(HypError) -> Bool {
        guard contains(gfn) else { throw .EINVAL }
        guard pinMode == .longterm else { return false }
        try references.withLock { r throws(HypError) in
            try hypervisor.hostPinShared(pfn(gfn), pages: 1)
            r.longTerm[gfn.rawValue, default: 0] += 1
        }
        return true
    }

    /// The device lets go of `gfn`: drops its long-term pin (-EINVAL when it held none).
    /// Returns false, doing nothing, on a host that takes no pins.
    @discardableResult
    public func unpin(_ gfn: GFN) throws(HypError) -> Bool {
        guard pinMode == .longterm else { return false }
        return try references.withLock { r throws(HypError) -> Bool in
            guard let n = r.longTerm[gfn.rawValue] else { throw .EINVAL }
            try hypervisor.hostUnpinShared(pfn(gfn), pages: 1)
            r.longTerm[gfn.rawValue] = n == 1 ? nil : n - 1
            return true
        }
    }

    /// Drops every pin (the devices are reset: teardown).
    public func unpinAll() {
        references.withLock { r in
            for (gfn, n) in r.longTerm {
                for _ in 0 ..< n { try? hypervisor.hostUnpinShared(pfn(GFN(gfn)), pages: 1) }
            }
            r.longTerm = [:]
            r.transient = []
        }
    }

    /// A short-term reference on `gfn`, as GUP-fast takes for a moment (kept until the next
    /// conversion that meets it drains it). Only `.longterm` hosts take references at all.
    public func holdTransientReference(_ gfn: GFN) {
        guard pinMode == .longterm, contains(gfn) else { return }
        references.withLock { _ = $0.transient.insert(gfn.rawValue) }
    }

    /// Long-term pins on `gfn`.
    public func pins(_ gfn: GFN) -> UInt32 { references.withLock { $0.longTerm[gfn.rawValue] ?? 0 } }

    // MARK: Conversion

    /// Converts `[gfn, gfn + pages)` to `attribute` in place, all or nothing (the VMM's
    /// `KVM_SET_MEMORY_ATTRIBUTES2`). Host references are checked first, page by page, for a
    /// conversion to private; then EL2 checks and converts. The error names the first page
    /// either refuses. Returns the pages that changed. The caller serialises it with its faults
    /// and keeps the memcache topped up.
    func convert(_ gfn: GFN, pages: UInt64, to attribute: GuestMemoryAttribute) throws(ConversionError) -> UInt64 {
        guard pages > 0, contains(gfn, pages: pages) else { throw ConversionError(.EINVAL, at: gfn) }
        return try references.withLock { r throws(ConversionError) -> UInt64 in
            if attribute == .private, !r.longTerm.isEmpty || !r.transient.isEmpty,
               let (k, busy) = firstReferenced(r, gfn, pages) {
                // The pages before the referenced one may fail EL2's checks first.
                if k > 0 {
                    try hypervisor.hostConvertGuestRange(vm: handle, gfn: gfn, pages: k, to: attribute, backing: pfn(gfn),
                                                         blockPages: blockSize.pages, checkOnly: true)
                }
                if !busy {
                    // The drain: short-term references over the range are gone after this call.
                    for j in 0 ..< pages { r.transient.remove(gfn.rawValue + j) }
                }
                throw ConversionError(busy ? .EBUSY : .EAGAIN, at: gfn.advanced(by: k))
            }
            return try hypervisor.hostConvertGuestRange(vm: handle, gfn: gfn, pages: pages, to: attribute,
                                                        backing: pfn(gfn), blockPages: blockSize.pages)
        }
    }

    /// The first page of the range with a host reference: its offset, and whether it is a
    /// long-term pin (else a short-term reference).
    private func firstReferenced(_ r: References, _ gfn: GFN, _ pages: UInt64) -> (UInt64, Bool)? {
        var best: (UInt64, Bool)?
        for (g, _) in r.longTerm where g >= gfn.rawValue && g - gfn.rawValue < pages {
            let k = g - gfn.rawValue
            if best == nil || k < best!.0 { best = (k, true) }
        }
        for g in r.transient where g >= gfn.rawValue && g - gfn.rawValue < pages {
            let k = g - gfn.rawValue
            if best == nil || k < best!.0 { best = (k, false) }
        }
        return best
    }

    /// Where this object and EL2 disagree (empty when sound): a frame given to the guest whose
    /// attribute EL2 cannot name (and did not poison: a force-reclaimed page), a pin on a page that is not shared, a pin count EL2 does not
    /// hold. `given` is the frames the VMM donated.
    public func checkAgreement(given: [UInt64]) -> [String] {
        var problems: [String] = []
        for g in given where attribute(GFN(g)) == nil && (try? hypervisor.isPoisoned(vm: handle, ipa: GFN(g).ipa)) != true {
            problems.append("gfn \(GFN(g)) was given to the guest but is neither shared nor private (nor poisoned) at EL2")
        }
        for (g, n) in references.withLock({ $0.longTerm }) {
            if attribute(GFN(g)) != .shared { problems.append("gfn \(GFN(g)) holds \(n) long-term pins but is not shared") }
            let el2 = hypervisor.hostPins(pfn(GFN(g)).address)
            if el2 != n { problems.append("gfn \(GFN(g)): \(n) pins here, \(el2) at EL2") }
        }
        return problems
    }
}
