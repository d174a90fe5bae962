import CHostMemory
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Guest-physical RAM for the KVM backend: one memfd, mapped several times. Each mapping (a
/// *view*) sees the same pages and has its own per-page protection, which is how the backend
/// mirrors EL2's stage-2 tables into the real MMU: the guest view (the KVM memslot) follows the
/// guest's stage-2, the host view (the VMM's device code) follows the host stage-2, and EL2's
/// own view stays read-write.
///
/// mmap, mprotect, ftruncate and munmap for guest RAM happen here and nowhere else.
public final class SharedMemoryFile: @unchecked Sendable {
    /// Access a view grants to a range of pages.
    public enum Access: Sendable, Equatable {
        case none, read, readWrite

        var protection: Int32 {
            switch self {
            case .none: PROT_NONE
            case .read: PROT_READ
            case .readWrite: PROT_READ | PROT_WRITE
            }
        }
    }

    /// A failed memory syscall.
    public struct MemoryError: Error, CustomStringConvertible {
        public let operation: String
        public let errno: Int32
        public var description: String {
            "\(operation): \(String(cString: strerror(errno))) (errno \(errno))"
        }
    }

    /// One mapping of `[offset, offset + count)` of the file.
    public struct View: @unchecked Sendable {
        public let buffer: UnsafeMutableRawBufferPointer
        public let offset: Int
    }

    public let size: Int
    private let fd: Int32
    private var views: [View] = []

    /// Creates a zero-filled file of `size` bytes (page multiple).
    public init(name: String, size: Int) throws(MemoryError) {
        precondition(size > 0 && size % 4096 == 0, "memory file size must be a page multiple")
        let fd = pvm_memfd_create(name)
        if fd < 0 { throw MemoryError(operation: "memfd_create", errno: errno) }
        if ftruncate(fd, off_t(size)) != 0 {
            let error = errno
            close(fd)
            throw MemoryError(operation: "ftruncate memfd to \(size) bytes", errno: error)
        }
        self.fd = fd
        self.size = size
    }

    deinit {
        for view in views { _ = munmap(view.buffer.baseAddress, view.buffer.count) }
        _ = close(fd)
    }

    /// Maps `[offset, offset + count)` shared with `access`. Views live as long as the file.
    public func map(offset: Int = 0, count: Int? = nil, access: Access) throws(MemoryError) -> View {
        let count = count ?? size - offset
        precondition(offset >= 0 && count > 0 && offset + count <= size && offset % 4096 == 0)
        let p = mmap(nil, count, access.protection, MAP_SHARED | MAP_NORESERVE, fd, off_t(offset))
        guard let p, p != MAP_FAILED else { throw MemoryError(operation: "mmap memfd view", errno: errno) }
        let view = View(buffer: UnsafeMutableRawBufferPointer(start: p, count: count), offset: offset)
        views.append(view)
        return view
    }

    /// Sets the protection of `[start, start + count)` bytes of `view` (page aligned, inside it).
    /// Fails with ENOMEM when the process runs out of mappings (vm.max_map_count).
    public static func protect(_ view: View, start: Int, count: Int, access: Access) throws(MemoryError) {
        precondition(start >= 0 && count > 0 && start + count <= view.buffer.count && start % 4096 == 0)
        // Inside the view, which this object mapped (checked above).
        if mprotect(view.buffer.baseAddress! + start, count, access.protection) != 0 {
            throw MemoryError(operation: "mprotect \(count) bytes at view offset \(start)", errno: errno)
        }
    }
}
