#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Why a file could not be read.
enum ReadError: Error {
    /// open(2) or read(2) failed with this errno.
    case unreadable(Int32)
    /// The file holds more than `limit` bytes (or never ends, like /dev/zero).
    case tooLarge(limit: Int)
}

/// Reads at most `limit` bytes of `path`: every file pvm reads goes through here, so no input
/// (an image, a script, /dev/zero) can make it read without bound. EINTR is retried.
func readBytes(_ path: String, limit: Int) -> Result<[UInt8], ReadError> {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    if fd < 0 { return .failure(.unreadable(errno)) }
    defer { close(fd) }
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 1 << 16)
    while true {
        let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if n < 0 {
            if errno == EINTR { continue }
            return .failure(.unreadable(errno))
        }
        if n == 0 { return .success(bytes) }
        guard bytes.count + n <= limit else { return .failure(.tooLarge(limit: limit)) }
        bytes.append(contentsOf: chunk[0 ..< n])
    }
}

/// Largest script pvm model or pvm inspect --model reads.
let scriptLimit = 64 << 20

/// Reads a whole text file (at most `limit` bytes) as UTF-8, invalid bytes replaced; nil with
/// `errno` set when it cannot.
func readFile(_ path: String, limit: Int = scriptLimit) -> String? {
    switch readBytes(path, limit: limit) {
    case let .success(bytes): return String(decoding: bytes, as: UTF8.self)
    case let .failure(.unreadable(e)):
        errno = e
        return nil
    case .failure(.tooLarge):
        errno = EFBIG
        return nil
    }
}
