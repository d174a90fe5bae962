#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// An owned file descriptor, closed exactly once when the owner goes away.
final class OwnedDescriptor: @unchecked Sendable {
    let rawValue: Int32

    init(_ rawValue: Int32) { self.rawValue = rawValue }

    deinit { _ = close(rawValue) }
}
