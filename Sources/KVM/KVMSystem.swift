import CKVM
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// `/dev/kvm`: the system fd that answers capability questions and creates VMs
/// (Documentation/virt/kvm/api.rst, "System ioctls").
public final class KVMSystem: @unchecked Sendable {
    let fd: OwnedDescriptor
    /// The size of each vCPU's shared `kvm_run` mapping (`KVM_GET_VCPU_MMAP_SIZE`).
    public let vcpuMapSize: Int

    /// The only KVM API version there has ever been.
    public static let expectedAPIVersion: Int32 = 12

    /// Opens `path` (normally `/dev/kvm`) and checks the API version.
    public init(path: String = "/dev/kvm") throws(KVMError) {
        let raw = open(path, O_RDWR | O_CLOEXEC)
        if raw < 0 { throw KVMError("open \(path)", errno: errno) }
        fd = OwnedDescriptor(raw)
        let version = try KVMError.check(pvm_kvm_ioctl_value(raw, PVM_KVM_GET_API_VERSION, 0), "KVM_GET_API_VERSION")
        guard version == Self.expectedAPIVersion else {
            throw KVMError("KVM_GET_API_VERSION", errno: 0, detail: "API version \(version), expected \(Self.expectedAPIVersion)")
        }
        vcpuMapSize = Int(try KVMError.check(pvm_kvm_ioctl_value(raw, PVM_KVM_GET_VCPU_MMAP_SIZE, 0), "KVM_GET_VCPU_MMAP_SIZE"))
    }

    /// Why KVM cannot be used here, or nil when `/dev/kvm` opens: tests print this when they skip.
    public static func unavailableReason(path: String = "/dev/kvm") -> String? {
        do {
            _ = try KVMSystem(path: path)
            return nil
        } catch {
            return error.description
        }
    }

    /// `KVM_CHECK_EXTENSION` on the system fd: 0 when unsupported, otherwise the capability's
    /// value (often 1, sometimes a count or a mask).
    public func check(_ capability: KVMCapability) -> Int {
        Int(max(0, pvm_kvm_ioctl_value(fd.rawValue, PVM_KVM_CHECK_EXTENSION, UInt(capability.rawValue))))
    }

    /// `KVM_CREATE_VM` with the default machine type.
    public func createVM() throws(KVMError) -> KVMVirtualMachine {
        let raw = try KVMError.check(pvm_kvm_ioctl_value(fd.rawValue, PVM_KVM_CREATE_VM, 0), "KVM_CREATE_VM")
        return KVMVirtualMachine(system: self, fd: OwnedDescriptor(raw))
    }

    #if arch(x86_64)
    /// `KVM_GET_SUPPORTED_CPUID`: the CPUID leaves this host's KVM can present to a guest.
    public func supportedCPUID() throws(KVMError) -> KVMCPUID {
        var capacity: UInt32 = 64
        while true {
            let cpuid = KVMCPUID(capacity: capacity)
            let result = pvm_kvm_ioctl(fd.rawValue, PVM_KVM_GET_SUPPORTED_CPUID, cpuid.pointer)
            if result >= 0 { return cpuid }
            guard errno == E2BIG, capacity < 4096 else { throw KVMError("KVM_GET_SUPPORTED_CPUID", errno: errno) }
            capacity *= 2
        }
    }
    #endif
}

#if arch(x86_64)
/// A `struct kvm_cpuid2` and its entries, owned.
public final class KVMCPUID: @unchecked Sendable {
    let pointer: UnsafeMutablePointer<kvm_cpuid2>

    init(capacity: UInt32) {
        // calloc'd by the shim with room for `capacity` entries; freed in deinit.
        guard let p = pvm_kvm_cpuid2_alloc(capacity) else { fatalError("out of memory for kvm_cpuid2") }
        pointer = p
    }

    deinit { free(pointer) }

    /// The number of leaves KVM filled in.
    public var count: Int { Int(pointer.pointee.nent) }
}
#endif
