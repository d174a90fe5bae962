import EL2

/// One event of a trace (JSON Lines; docs/trace-format.md).
public enum TraceEvent: Sendable {
    /// The machine the trace describes; first in every trace `pvm boot` writes.
    case machine(MachineInfo)
    /// A guest hypercall and what it returned.
    case hypercall(HypercallRecord)
    /// An EL2 ownership transition the VMM or a hypercall asked for, and its outcome.
    case transition(vm: VMHandle?, name: String, pfn: UInt64?, gfn: UInt64?, error: HypError?)
    /// A stage-2 range update (the host's stage-2 has vmid 0).
    case stage2(vmid: UInt16, update: Stage2Update, start: UInt64, end: UInt64)
    /// A guest stage-2 block split into a table, or a table coalesced back into its block.
    case restructure(Stage2Restructure)
    /// A TLB invalidation EL2 issued.
    case tlbi(vmid: UInt16, start: UInt64, size: UInt64)
    /// A guest stage-2 fault or a refused host access, and what was done about it.
    case fault(FaultRecord)
    /// A vCPU or machine power event (start, cpu-on, cpu-off, system-off, system-reset, halt).
    case power(vcpu: Int, event: String)
    /// A warning from EL2 (pKVM's WARN_ON) or the VMM.
    case warning(String)
    /// The SMMU: attach / detach, a mapping EL2 wrote, an IOTLB invalidation, a DMA fault.
    case iommu(IOMMUNotification)
    /// A device transfer finished or stopped: device name, stream, bytes moved, outcome.
    case dma(device: String, stream: UInt32, iova: UInt64, bytes: Int, result: String, duration: UInt64)
}

/// The machine a trace describes: enough for a reader to map VMIDs to VMs, guest frames to
/// physical pages, and to draw one track per vCPU.
public struct MachineInfo: Sendable, Equatable {
    public var vm: VMHandle
    public var vmid: UInt16
    public var isProtected: Bool
    public var vcpus: Int
    /// "x86-64" (guests run on KVM) or "aarch64".
    public var architecture: String
    /// Where guest frame 0 lives in physical memory, and how much guest RAM there is.
    public var guestRAMBase: UInt64
    public var guestMemory: UInt64
    /// All physical RAM (guest RAM, the host's pool, EL2's carveout).
    public var physicalBase: UInt64
    public var physicalSize: UInt64
    /// "mirror", "refcount" or "none".
    public var iommu: String
    /// The payload's name.
    public var image: String

    public init(vm: VMHandle, vmid: UInt16, isProtected: Bool, vcpus: Int, architecture: String, guestRAMBase: UInt64,
                guestMemory: UInt64, physicalBase: UInt64, physicalSize: UInt64, iommu: String, image: String) {
        self.vm = vm
        self.vmid = vmid
        self.isProtected = isProtected
        self.vcpus = vcpus
        self.architecture = architecture
        self.guestRAMBase = guestRAMBase
        self.guestMemory = guestMemory
        self.physicalBase = physicalBase
        self.physicalSize = physicalSize
        self.iommu = iommu
        self.image = image
    }
}

/// One SMCCC call a guest made (SMC/HVC on Arm; the `out` conduit on x86, docs/abi.md).
public struct HypercallRecord: Sendable {
    public var vm: VMHandle?
    public var vcpu: Int
    public var function: UInt32
    /// The SMCCC name (MEM_SHARE, PSCI_CPU_ON, ...), or UNKNOWN.
    public var name: String
    /// x1..x3.
    public var arguments: (UInt64, UInt64, UInt64)
    /// x0..x3 as returned.
    public var results: (UInt64, UInt64, UInt64, UInt64)
    /// Nanoseconds the VMM and EL2 spent handling the call (the exit to the re-entry).
    public var duration: UInt64

    public init(vm: VMHandle?, vcpu: Int, function: UInt32, name: String, arguments: (UInt64, UInt64, UInt64),
                results: (UInt64, UInt64, UInt64, UInt64), duration: UInt64) {
        self.vm = vm
        self.vcpu = vcpu
        self.function = function
        self.name = name
        self.arguments = arguments
        self.results = results
        self.duration = duration
    }
}
