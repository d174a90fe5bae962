import EL2
import Synchronization
import VMM

/// An execution backend that runs scripts instead of instructions: a test double for the
/// machine core, in the spirit of swift-nio's `EmbeddedChannel`. Each vCPU replays its list of
/// `VCPUStep`s (hypercalls, loads, stores, fetches) and records what happened (`VCPUEvent`), so
/// the core's hypercall, fault, MMIO-guard, device and teardown paths are tested on any machine,
/// without /dev/kvm.
///
/// It is a faithful backend, not a stub: it keeps its own copy of the guest's stage-2 from EL2's
/// stage-2 updates (a frame, its output page and rights), so an access to a frame the guest has
/// not been given is a stage-2 abort and runs again once the core resolved it, and a load reads
/// the bytes EL2 keeps in RAM.
public final class ScriptedBackend: ExecutionBackend, @unchecked Sendable {
    public let name = "scripted"
    public let architecture: GuestArchitecture
    public let maxVCPUs = 64

    let scripts: [[VCPUStep]]
    /// Filled by `attach`, before any vCPU exists.
    private(set) var ram: GuestRAM?
    let stage2 = ScriptedStage2()
    private let made = Mutex<[ScriptedVCPU]>([])

    /// `scripts[i]` is what vCPU i does once powered on. Images still have to be valid ELF
    /// files of `architecture` (the core loads them), though nothing executes them.
    public init(scripts: [[VCPUStep]], architecture: GuestArchitecture = .x86_64) {
        self.scripts = scripts
        self.architecture = architecture
    }

    public var eventSink: (any EL2EventSink)? { stage2 }

    public func attach(_ ram: GuestRAM) throws(VMMError) {
        self.ram = ram
        stage2.guestSize = ram.guestSize
    }

    public func attachGuest(vmid: VMID, stage2 _: GuestStage2) { stage2.vmid.store(vmid.rawValue, ordering: .releasing) }

    public func makeVCPU(index: Int) throws(VMMError) -> any GuestVCPU {
        guard let ram else { preconditionFailure("makeVCPU before attach") }
        let vcpu = ScriptedVCPU(index: index, script: index < scripts.count ? scripts[index] : [], ram: ram, stage2: stage2)
        made.withLock { $0.append(vcpu) }
        return vcpu
    }

    public func bootStructures(memory: UInt64) -> [(gpa: UInt64, bytes: [UInt8])] { [] }
    public var bootStructurePages: Range<UInt64> { 0 ..< 0 }
    public var failure: String? { nil }

    /// What each vCPU saw, by vCPU index.
    public var transcripts: [[VCPUEvent]] {
        made.withLock { $0.sorted { $0.index < $1.index }.map(\.events) }
    }
}
