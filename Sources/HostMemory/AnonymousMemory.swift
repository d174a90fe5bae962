import CHostMemory
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Zero-filled anonymous memory that backs guest-physical RAM: one `mmap(MAP_PRIVATE |
/// MAP_ANONYMOUS | MAP_NORESERVE)`, so a 64 GiB machine costs nothing until pages are touched,
/// advised to use transparent huge pages, released with `munmap` when the object goes away.
///
/// This is the only place pvm maps RAM for the model; the VMM's memfd-backed RAM comes with
/// the KVM backend.
public final class AnonymousMemory: @unchecked Sendable {
    /// The mapping. Valid for the object's lifetime; the kernel zero-fills it.
    public let buffer: UnsafeMutableRawBufferPointer

    /// Zeroes one page with non-temporal stores: hand it to `PhysicalMemory` so EL2's
    /// zero-on-reclaim runs at store bandwidth without touching the cache.
    public static let clearPage: @convention(c) (UnsafeMutableRawPointer?) -> Void = pvm_clear_page

    /// Why a mapping failed.
    public struct MapError: Error, CustomStringConvertible {
        public let size: Int
        public let errno: Int32
        public var description: String {
            "mmap of \(size) bytes failed: \(String(cString: strerror(errno))) (errno \(errno))"
        }
    }

    /// Maps `size` bytes (rounded up to the page size) of zeroed memory.
    public init(size: Int) throws(MapError) {
        let length = max(4096, (size + 4095) & ~4095)
        #if os(Linux)
        let flags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE
        #else
        let flags = MAP_PRIVATE | MAP_ANON
        #endif
        let p = mmap(nil, length, PROT_READ | PROT_WRITE, flags, -1, 0)
        guard let p, p != MAP_FAILED else { throw MapError(size: length, errno: errno) }
        buffer = UnsafeMutableRawBufferPointer(start: p, count: length)
        #if os(Linux)
        // Transparent huge pages where the kernel offers them (advisory; failure is harmless):
        // one fault per 2 MiB of RAM instead of 512, as a VMM's guest memory would be.
        _ = madvise(p, length, MADV_HUGEPAGE)
        #endif
    }

    deinit {
        // The mapping was created in init with exactly this base and length.
        _ = munmap(buffer.baseAddress, buffer.count)
    }
}
