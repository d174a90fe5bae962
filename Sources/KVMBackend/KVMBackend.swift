import EL2
import HostMemory
import KVM
import VMM

/// Runs x86-64 guests on /dev/kvm: the KVM VM, one memslot over the guest view of guest RAM
/// (kept in step with the guest's stage-2 by `StageTwoMirror`), and vCPUs in 64-bit long mode
/// at CPL 3 (`X86Boot`, docs/abi.md).
public final class KVMBackend: ExecutionBackend, @unchecked Sendable {
    public let name = "kvm"
    public let architecture = GuestArchitecture.x86_64
    public let maxVCPUs: Int

    private let system: KVMSystem
    private let cpuid: KVMCPUID
    /// Set by `attach`, before any vCPU exists; read-only afterwards.
    private var vm: KVMVirtualMachine?
    private var mirror: StageTwoMirror?
    private var decoder: X86FaultDecoder?

    /// Opens /dev/kvm. Throws when it is missing or unusable (`KVMSystem.unavailableReason()`
    /// says why without throwing).
    public init() throws(VMMError) {
        do {
            system = try KVMSystem()
            cpuid = try system.supportedCPUID()
        } catch { throw .backend(operation: "/dev/kvm", error: error) }
        maxVCPUs = min(64, max(1, system.check(.maxVCPUs)))
        VCPUKick.install()
    }

    /// Why a KVM backend cannot be made here, or nil when it can.
    public static func unavailableReason() -> String? { KVMSystem.unavailableReason() }

    /// The guest view's mirror (after `attach`).
    public var eventSink: (any EL2EventSink)? { mirror }

    public func attach(_ ram: GuestRAM) throws(VMMError) {
        let guestView: SharedMemoryFile.View
        do { guestView = try ram.file.map(offset: 0, count: Int(ram.guestSize), access: .none) } catch {
            throw .memory(error)
        }
        let mirror = StageTwoMirror(guestView: guestView, ramBase: ram.ramBase, guestSize: ram.guestSize)
        do {
            let vm = try system.createVM()
            try vm.setTSSAddress(0xfffb_d000)
            try vm.setIdentityMapAddress(0xfffb_c000)
            try vm.setMemoryRegion(slot: 0, guestPhysical: ram.guestBase, size: ram.guestSize, host: mirror.guestViewBase)
            self.vm = vm
        } catch { throw .backend(operation: "KVM VM setup", error: error) }
        self.mirror = mirror
        decoder = X86FaultDecoder(mirror: mirror, memory: ram.memory, ramBase: ram.ramBase, guestSize: ram.guestSize)
    }

    public func attachGuest(vmid: VMID, stage2: GuestStage2) { mirror?.attach(guest: vmid) }

    public func makeVCPU(index: Int) throws(VMMError) -> any GuestVCPU {
        guard let vm, let decoder else { throw .backend(operation: "KVM vCPU \(index)", error: KVMError("KVM_CREATE_VCPU", errno: 0, detail: "no VM yet")) }
        do {
            let vcpu = try vm.createVCPU(id: index)
            try vcpu.setCPUID(cpuid)
            try vcpu.enableRegisterSync()
            return KVMGuestVCPU(index: index, vcpu: vcpu, decoder: decoder)
        } catch { throw .backend(operation: "KVM vCPU \(index)", error: error) }
    }

    public func bootStructures(memory: UInt64) -> [(gpa: UInt64, bytes: [UInt8])] {
        X86Boot.structures(memory: memory).map { (gpa: $0.0, bytes: $0.1) }
    }

    public var bootStructurePages: Range<UInt64> { X86Boot.bootStructurePages }

    public var failure: String? { mirror?.firstFailure }
}
