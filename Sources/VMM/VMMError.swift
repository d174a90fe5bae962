import EL2
import HostMemory
import KVM

/// Why the VMM could not build or run a machine. A guest's misbehaviour is not a `VMMError`: it
/// ends the run with `RunOutcome.faulted`.
public enum VMMError: Error, CustomStringConvertible {
    case kvm(KVMError)
    /// EL2 refused a call the VMM had to make (VM creation, memcache top-up, teardown).
    case hypervisor(operation: String, error: HypError)
    case el2(String)
    case image(ELFImage.ImageError)
    case memory(SharedMemoryFile.MemoryError)
    case io(operation: String, errno: Int32)
    case configuration(String)

    public var description: String {
        switch self {
        case let .kvm(e): "KVM: \(e)"
        case let .hypervisor(operation, error): "EL2 refused \(operation): \(error)"
        case let .el2(message): "EL2: \(message)"
        case let .image(e): "\(e)"
        case let .memory(e): "guest memory: \(e)"
        case let .io(operation, errno): "\(operation): \(KVMError(operation, errno: errno).description.dropFirst(operation.count + 2))"
        case let .configuration(message): message
        }
    }
}
