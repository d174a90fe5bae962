/// The error an EL2 transition returns: exactly the negative errno pKVM's function returns,
/// so a caller (a hypercall handler, a test, `pvm model`) sees what Linux would see.
///
/// Values are Linux's (include/uapi/asm-generic/errno-base.h and errno.h).
public enum HypError: Int32, Error, Sendable, CaseIterable, CustomStringConvertible {
    case EPERM = 1
    case ENOENT = 2
    case E2BIG = 7
    case EAGAIN = 11
    case ENOMEM = 12
    case EFAULT = 14
    case EBUSY = 16
    case EEXIST = 17
    /// No such device: an IOMMU operation on a machine without an SMMU.
    case ENODEV = 19
    case EINVAL = 22
    /// `kvm_pgtable_walk` on an address beyond the table's input size.
    case ERANGE = 34
    case EHWPOISON = 133

    /// The return value as the C function would give it, e.g. -1 for EPERM.
    public var errno: Int32 { -rawValue }

    /// `-EPERM`, `-ENOMEM`, ...: how pvm prints results.
    public var description: String {
        switch self {
        case .EPERM: "-EPERM"
        case .ENOENT: "-ENOENT"
        case .E2BIG: "-E2BIG"
        case .EAGAIN: "-EAGAIN"
        case .ENOMEM: "-ENOMEM"
        case .EFAULT: "-EFAULT"
        case .EBUSY: "-EBUSY"
        case .EEXIST: "-EEXIST"
        case .ENODEV: "-ENODEV"
        case .EINVAL: "-EINVAL"
        case .ERANGE: "-ERANGE"
        case .EHWPOISON: "-EHWPOISON"
        }
    }
}
