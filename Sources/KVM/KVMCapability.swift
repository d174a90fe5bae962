import CKVM

/// A KVM capability number for `KVM_CHECK_EXTENSION` (include/uapi/linux/kvm.h). pvm probes
/// what it uses and never assumes an answer.
public struct KVMCapability: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: Int32
    public let name: String

    public init(rawValue: Int32) {
        self.rawValue = rawValue
        self.name = "capability \(rawValue)"
    }

    init(_ rawValue: Int32, _ name: String) {
        self.rawValue = rawValue
        self.name = name
    }

    public var description: String { "\(name) (\(rawValue))" }

    public static let userMemory = KVMCapability(3, "KVM_CAP_USER_MEMORY")
    public static let setTSSAddress = KVMCapability(4, "KVM_CAP_SET_TSS_ADDR")
    public static let extCPUID = KVMCapability(7, "KVM_CAP_EXT_CPUID")
    public static let numberOfMemorySlots = KVMCapability(10, "KVM_CAP_NR_MEMSLOTS")
    public static let syncMMU = KVMCapability(16, "KVM_CAP_SYNC_MMU")
    public static let maxVCPUs = KVMCapability(66, "KVM_CAP_MAX_VCPUS")
    public static let syncRegisters = KVMCapability(74, "KVM_CAP_SYNC_REGS")
    public static let immediateExit = KVMCapability(136, "KVM_CAP_IMMEDIATE_EXIT")
    public static let memoryFaultInfo = KVMCapability(PVM_KVM_CAP_MEMORY_FAULT_INFO, "KVM_CAP_MEMORY_FAULT_INFO")
    public static let guestMemfd = KVMCapability(PVM_KVM_CAP_GUEST_MEMFD, "KVM_CAP_GUEST_MEMFD")
}
