import EL2

/// The VMM's side of in-place conversion (docs/guest-first-memory.md): what a VMM does with
/// guest_memfd's `KVM_SET_MEMORY_ATTRIBUTES2`, and its devices' pins.
extension Machine {
    /// Converts guest frames `[gfn, gfn + pages)` to `attribute` in place, all or nothing
    /// (`GuestMemory.convert`): first the memcache is topped up for what the mapping may take,
    /// then host references and EL2 check every page, then EL2 converts. Serialised with the
    /// guest's stage-2 faults. Returns the pages that changed; traced as a transition.
    @discardableResult
    public func convertGuestMemory(gfn: GFN, pages: UInt64, to attribute: GuestMemoryAttribute) throws(ConversionError) -> UInt64 {
        try guestPages.withLock { given throws(ConversionError) -> UInt64 in
            guard pages > 0, guestMemory.contains(gfn, pages: pages) else { throw ConversionError(.EINVAL, at: gfn) }
            if attribute == .private {
                let leaf = Hypervisor.leafLevel(blockPages: configuration.guestBlock.pages)
                let tables = hypervisor.geometry.tablesNeededBound(start: gfn.ipa.rawValue,
                                                                   end: gfn.advanced(by: pages).ipa.rawValue, leafLevel: leaf)
                do { try topUpMemcache(atLeast: tables) } catch { throw ConversionError(.ENOMEM, at: gfn) }
            }
            let name = attribute == .private ? "convert_private" : "convert_shared"
            do throws(ConversionError) {
                let changed = try guestMemory.convert(gfn, pages: pages, to: attribute)
                trace?.record(.transition(vm: handle, name: name, pfn: guestMemory.pfn(gfn).rawValue, gfn: gfn.rawValue, error: nil))
                if attribute == .private, changed > 0 {
                    for k in 0 ..< pages where !given.relinquished.contains(gfn.rawValue + k) {
                        given.given.insert(gfn.rawValue + k)
                    }
                }
                return changed
            } catch {
                trace?.record(.transition(vm: handle, name: name, pfn: guestMemory.pfn(error.gfn).rawValue,
                                          gfn: error.gfn.rawValue, error: error.errno))
                throw error
            }
        }
    }

    /// `convertGuestMemory`, retried while the answer is -EAGAIN (a short-term host reference,
    /// drained by the failing call), at most `attempts` times. Returns the pages changed and the
    /// -EAGAIN answers met.
    public func convertGuestMemoryRetrying(gfn: GFN, pages: UInt64, to attribute: GuestMemoryAttribute,
                                           attempts: Int = 4) throws(ConversionError) -> (changed: UInt64, retries: Int) {
        var retries = 0
        while true {
            do throws(ConversionError) {
                return (try convertGuestMemory(gfn: gfn, pages: pages, to: attribute), retries)
            } catch where error.errno == .EAGAIN && retries + 1 < attempts {
                retries += 1
            }
        }
    }
}
