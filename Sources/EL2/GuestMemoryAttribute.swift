/// Whether a page of a VM's guest memory is the guest's alone or reachable by the host: the
/// attribute guest_memfd keeps per page (`KVM_MEMORY_ATTRIBUTE_PRIVATE`, bit 3 of
/// `kvm_memory_attributes2.attributes` in the in-place conversion series, v8 on kvm-x86/next).
/// In pvm EL2's ownership decides it (`Hypervisor.guestMemoryAttribute(vm:gfn:)`).
public enum GuestMemoryAttribute: String, Sendable, CaseIterable, CustomStringConvertible {
    /// The host may map the page: not given to the guest yet (host OWNED), or shared by the
    /// guest (guest SHARED_OWNED, host SHARED_BORROWED).
    case shared
    /// The guest owns the page and the host cannot reach it (guest OWNED, host NOPAGE).
    case `private`

    public var description: String { rawValue }
}

/// A range conversion that changed nothing: the errno and the first page that could not
/// convert (the RFC's `error_offset`, as a guest frame).
public struct ConversionError: Error, Sendable, Equatable, CustomStringConvertible {
    public let errno: HypError
    public let gfn: GFN

    public init(_ errno: HypError, at gfn: GFN) {
        self.errno = errno
        self.gfn = gfn
    }

    public var description: String { "\(errno) at gfn \(gfn)" }
}
