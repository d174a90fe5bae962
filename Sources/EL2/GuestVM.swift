import Synchronization

/// EL2's record of one guest: pKVM's `struct pkvm_hyp_vm`, with its stage-2 and page pools.
///
/// Locking: `lock` (pKVM's `vm->lock`, the guest component lock) guards `stage2` and its pools.
/// `isDying` and `references` are guarded by the hypervisor's VM-table lock.
public final class GuestVM: @unchecked Sendable {
    public let handle: VMHandle
    public let vmid: VMID
    /// A protected VM (pVM): memory is donated to it and the host loses access.
    public let isProtected: Bool
    /// The guest stage-2; its `memcache` is the pool the host tops up.
    public let stage2: Stage2PageTable
    /// The page holding EL2's VM structure (donated by the host at creation).
    public let metadataPage: PhysAddr
    /// Set by start-teardown; the VM then only accepts reclaim and finalize.
    public internal(set) var isDying = false
    /// Loaded vCPUs and other holders (`hyp_vm` refcount); teardown needs zero.
    public internal(set) var references = 0

    /// False once teardown started: a dying VM takes no new page from the host (pKVM's host
    /// calls name the VM through a loaded vCPU, which a dying VM cannot have). Guarded by `lock`,
    /// so a transition checks it in the same critical section as its commit.
    var acceptsPages = true
    /// vCPUs the VM was created with (`created_vcpus`).
    public let vcpuCount: Int
    /// PSCI power states and loaded vCPUs; taken inside the VM-table lock when both are held,
    /// never with the host or guest locks.
    let psci: Mutex<PSCIState>
    /// Android's `KVM_ARCH_FLAG_MMIO_GUARD`: set by MMIO_GUARD_ENROLL (or by entering through
    /// pvmfw), never cleared. Guarded by `lock`.
    var mmioGuardEnrolled = false

    /// Set by finalize-teardown once the VM's pools are drained. Guarded by the host lock, so a
    /// memcache top-up that passed the `isDying` check re-checks it where the pages move.
    var isFinalized = false

    let lock = Mutex(())

    init(handle: VMHandle, vmid: VMID, isProtected: Bool, vcpus: Int, bootState: VCPUPowerState,
         stage2: Stage2PageTable, metadataPage: PhysAddr) {
        self.handle = handle
        self.vcpuCount = vcpus
        self.psci = Mutex(PSCIState(vcpus: vcpus, bootState: bootState))
        self.vmid = vmid
        self.isProtected = isProtected
        self.stage2 = stage2
        self.metadataPage = metadataPage
    }
}
