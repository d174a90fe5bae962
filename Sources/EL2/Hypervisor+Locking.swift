/// Lock helpers that take EL2's locks in the documented order (see `Hypervisor`).
extension Hypervisor {
    /// Runs `body` holding the host lock (`host_lock_component`).
    @inline(__always)
    func withHostLock<R, E: Error>(_ body: () throws(E) -> R) throws(E) -> R {
        try hostLock.withLock { _ throws(E) -> R in try body() }
    }

    /// Runs `body` holding the host, then the hyp lock (`host_lock_component`; `hyp_lock_component`).
    @inline(__always)
    func withHostAndHypLocks<R, E: Error>(_ body: () throws(E) -> R) throws(E) -> R {
        try hostLock.withLock { _ throws(E) -> R in
            try hypLock.withLock { _ throws(E) -> R in try body() }
        }
    }

    /// Runs `body` holding the host lock, then `vm`'s lock (`guest_lock_component`).
    @inline(__always)
    func withHostAndGuestLocks<R, E: Error>(_ vm: GuestVM, _ body: () throws(E) -> R) throws(E) -> R {
        try hostLock.withLock { _ throws(E) -> R in
            try vm.lock.withLock { _ throws(E) -> R in try body() }
        }
    }

    /// Looks VM `handle` up under the host lock and runs `body` with it, the host lock still
    /// held (-EINVAL when there is none, as `transitionVM`): one lock fewer than `transitionVM`
    /// followed by `withHostAndGuestLocks`, because every write of the VM table also holds the
    /// host lock. `body` takes the guest lock itself, after any check that needs neither.
    @inline(__always)
    func withHostLockedVM<R>(_ handle: VMHandle, _ body: (GuestVM) throws(HypError) -> R) throws(HypError) -> R {
        try hostLock.withLock { _ throws(HypError) -> R in
            guard let vm = lookupLocked(handle) else { throw .EINVAL }
            return try body(vm)
        }
    }

    /// `withHostLockedVM`, then the VM's lock too: a transition with no check before the guest lock.
    @inline(__always)
    func withHostAndGuestLocks<R>(vm handle: VMHandle, _ body: (GuestVM) throws(HypError) -> R) throws(HypError) -> R {
        try withHostLockedVM(handle) { vm throws(HypError) -> R in
            try vm.lock.withLock { _ throws(HypError) -> R in try body(vm) }
        }
    }

    /// Runs `body` holding the host lock, then the SMMU's configuration lock.
    @inline(__always)
    func withHostAndSMMULocks<R, E: Error>(_ smmu: SMMU, _ body: () throws(E) -> R) throws(E) -> R {
        try hostLock.withLock { _ throws(E) -> R in
            try smmu.configLock.withLock { _ throws(E) -> R in try body() }
        }
    }

    /// Runs `body` holding the lock that guards `domain`'s table, when it is not one the caller
    /// already holds: a guest domain's table is the guest's stage-2, under the VM's lock. The
    /// identity and paging tables are guarded by the host and configuration locks the caller has.
    @inline(__always)
    func withDomainTable<R, E: Error>(_ domain: IOMMUDomain, _ body: () throws(E) -> R) throws(E) -> R {
        guard let vm = domain.vm else { return try body() }
        return try vm.lock.withLock { _ throws(E) -> R in try body() }
    }

    /// The VM for a transition the host names by handle: -EINVAL when there is none, as pKVM's
    /// hypercall handlers answer when `get_pkvm_hyp_vm` finds nothing.
    @inline(__always) func transitionVM(_ handle: VMHandle) throws(HypError) -> GuestVM {
        guard let vm = vm(handle) else { throw .EINVAL }
        return vm
    }
}
