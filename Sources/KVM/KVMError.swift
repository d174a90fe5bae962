#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// A failed call into KVM: which ioctl (or syscall) and the errno it returned.
public struct KVMError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The ioctl or syscall, e.g. `KVM_CREATE_VM` or `open /dev/kvm`.
    public let operation: String
    /// The errno the kernel returned (0 when the failure is not an errno, see `detail`).
    public let errno: Int32
    /// Extra context where the errno alone does not say what went wrong.
    public let detail: String?

    public init(_ operation: String, errno: Int32, detail: String? = nil) {
        self.operation = operation
        self.errno = errno
        self.detail = detail
    }

    public var description: String {
        var text = operation
        if errno != 0 { text += ": \(String(cString: strerror(errno))) (errno \(errno))" }
        if let detail { text += errno != 0 ? " — \(detail)" : ": \(detail)" }
        return text
    }

    /// Throws a `KVMError` named `operation` if `result` is negative; returns it otherwise.
    @inline(__always)
    static func check(_ result: Int32, _ operation: @autoclosure () -> String) throws(KVMError) -> Int32 {
        if result < 0 { throw KVMError(operation(), errno: Glibc.errno) }
        return result
    }
}
