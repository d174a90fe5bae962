import CKVM
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// A KVM VM fd: memory slots, vCPUs and the x86 odds and ends (api.rst, "VM ioctls").
public final class KVMVirtualMachine: @unchecked Sendable {
    public let system: KVMSystem
    let fd: OwnedDescriptor

    init(system: KVMSystem, fd: OwnedDescriptor) {
        self.system = system
        self.fd = fd
    }

    /// `KVM_CHECK_EXTENSION` on the VM fd (answers may depend on the VM type).
    public func check(_ capability: KVMCapability) -> Int {
        Int(max(0, pvm_kvm_ioctl_value(fd.rawValue, PVM_KVM_CHECK_EXTENSION, UInt(capability.rawValue))))
    }

    /// `KVM_SET_USER_MEMORY_REGION`: maps `[guestPhysical, guestPhysical + size)` to the host
    /// mapping at `host`. A size of 0 deletes the slot.
    public func setMemoryRegion(slot: UInt32, guestPhysical: UInt64, size: UInt64,
                                host: UnsafeMutableRawPointer?, readOnly: Bool = false) throws(KVMError) {
        var region = kvm_userspace_memory_region(
            slot: slot, flags: readOnly ? UInt32(KVM_MEM_READONLY) : 0, guest_phys_addr: guestPhysical,
            memory_size: size, userspace_addr: UInt64(UInt(bitPattern: host)))
        _ = try KVMError.check(pvm_kvm_ioctl(fd.rawValue, PVM_KVM_SET_USER_MEMORY_REGION, &region),
                               "KVM_SET_USER_MEMORY_REGION slot \(slot)")
    }

    #if arch(x86_64)
    /// `KVM_SET_TSS_ADDR`: three pages of guest-physical space KVM needs on Intel hosts.
    public func setTSSAddress(_ address: UInt64) throws(KVMError) {
        _ = try KVMError.check(pvm_kvm_ioctl_value(fd.rawValue, PVM_KVM_SET_TSS_ADDR, UInt(address)), "KVM_SET_TSS_ADDR")
    }

    /// `KVM_SET_IDENTITY_MAP_ADDR`: one page KVM uses for real-mode emulation on Intel hosts.
    public func setIdentityMapAddress(_ address: UInt64) throws(KVMError) {
        var value = address
        _ = try KVMError.check(pvm_kvm_ioctl(fd.rawValue, PVM_KVM_SET_IDENTITY_MAP_ADDR, &value), "KVM_SET_IDENTITY_MAP_ADDR")
    }
    #endif

    /// `KVM_CREATE_VCPU` and the mapping of its `kvm_run` page.
    public func createVCPU(id: Int) throws(KVMError) -> KVMVCPU {
        let raw = try KVMError.check(pvm_kvm_ioctl_value(fd.rawValue, PVM_KVM_CREATE_VCPU, UInt(id)), "KVM_CREATE_VCPU \(id)")
        let owned = OwnedDescriptor(raw)
        let map = mmap(nil, system.vcpuMapSize, PROT_READ | PROT_WRITE, MAP_SHARED, raw, 0)
        guard let map, map != MAP_FAILED else { throw KVMError("mmap kvm_run of vCPU \(id)", errno: errno) }
        return KVMVCPU(vm: self, id: id, fd: owned, run: map, mapSize: system.vcpuMapSize)
    }
}
