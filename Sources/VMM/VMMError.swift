import EL2
import HostMemory
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Why the VMM could not build or run a machine. A guest's misbehaviour is not a `VMMError`: it
/// ends the run with `RunOutcome.faulted`. Each case carries the typed error underneath.
public enum VMMError: Error, CustomStringConvertible {
    /// The execution backend failed (for KVM: an ioctl and its errno).
    case backend(operation: String, error: any Error & Sendable)
    /// EL2 refused a call the VMM had to make (VM creation, memcache top-up, teardown).
    case hypervisor(operation: String, error: HypError)
    /// EL2 could not boot over the machine's memory.
    case el2Boot(Hypervisor.InitError)
    /// The physical memory layout was refused.
    case layout(PhysicalMemory.LayoutError)
    /// EL2 refused a host write while the VMM loaded the guest.
    case hostAccess(HostAccessError)
    /// A boot structure page could not be given to the guest.
    case bootDonation(gpa: UInt64, reason: String)
    case image(ELFImage.ImageError)
    case linux(LinuxImage.ImageError)
    /// The kernel, its initramfs and the device tree do not fit in guest RAM.
    case linuxPlacement(String)
    case memory(SharedMemoryFile.MemoryError)
    /// The real MMU (host view or backend) no longer matches EL2.
    case mirror(String)
    case io(operation: String, errno: Int32)
    case configuration(ConfigurationError)

    /// A machine description the VMM cannot build.
    public enum ConfigurationError: Error, Equatable, Sendable, CustomStringConvertible {
        case memory(UInt64)
        case vcpus(Int, maximum: Int)
        /// The host's page pool cannot hold the VM structures.
        case hostPoolExhausted
        /// Deterministic scheduling needs a backend that counts instructions.
        case deterministic(backend: String)

        public var description: String {
            switch self {
            case let .memory(bytes):
                "--memory must be a multiple of 2 MiB between 32 MiB and 3 GiB (got \(bytes) bytes)"
            case let .vcpus(n, maximum): "--vcpus must be between 1 and \(maximum) (got \(n))"
            case .hostPoolExhausted: "the host pool is too small for the VM structures"
            case let .deterministic(backend):
                "deterministic scheduling needs the interpreter (--backend interp); the \(backend) backend cannot count instructions"
            }
        }
    }

    public var description: String {
        switch self {
        case let .backend(operation, error): "\(operation): \(error)"
        case let .hypervisor(operation, error): "EL2 refused \(operation): \(error)"
        case let .el2Boot(e): "EL2: \(e)"
        case let .layout(e): "physical memory: \(e)"
        case let .hostAccess(e): "loading the guest: \(e)"
        case let .bootDonation(gpa, reason): "donating boot page at GPA \(hex(gpa)): \(reason)"
        case let .image(e): "\(e)"
        case let .linux(e): "\(e)"
        case let .linuxPlacement(message): message
        case let .memory(e): "guest memory: \(e)"
        case let .mirror(message): "mirroring EL2 into the MMU failed: \(message)"
        case let .io(operation, errno): "\(operation): \(String(cString: strerror(errno))) (errno \(errno))"
        case let .configuration(e): e.description
        }
    }
}
