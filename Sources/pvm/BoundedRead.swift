import Tracing
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Largest script pvm model or pvm inspect --model reads.
let scriptLimit = 64 << 20

/// Reads a whole text file (at most `limit` bytes) as UTF-8, invalid bytes replaced; nil with
/// `errno` set when it cannot (EFBIG when it is larger than `limit`).
func readFile(_ path: String, limit: Int = scriptLimit) -> String? {
    switch TextFile.read(path, limit: limit) {
    case let .success(bytes): return String(decoding: bytes, as: UTF8.self)
    case let .failure(.unreadable(e)):
        errno = e
        return nil
    case .failure(.tooLarge):
        errno = EFBIG
        return nil
    }
}

/// Lines from a file descriptor (standard input), each at most `lineLimit` bytes: a stream that
/// never ends a line (/dev/zero) is an error, not unbounded memory. LF, CR LF and CR end lines.
struct LineReader {
    /// The longest line a script may have.
    static let lineLimit = 64 << 10

    enum Failure: Error {
        case lineTooLong(limit: Int)
        case unreadable(Int32)
    }

    private let fd: Int32
    private var buffer: [UInt8] = []
    private var start = 0
    private var ended = false
    private var skipLF = false

    init(fd: Int32) { self.fd = fd }

    /// The next line without its terminator, nil at the end of input.
    mutating func next() throws(Failure) -> String? {
        while true {
            if skipLF, start < buffer.count {
                if buffer[start] == 0x0A { start += 1 }
                skipLF = false
            }
            if let end = buffer[start...].firstIndex(where: { $0 == 0x0A || $0 == 0x0D }) {
                let line = String(decoding: buffer[start ..< end], as: UTF8.self)
                skipLF = buffer[end] == 0x0D
                start = end + 1
                return line
            }
            if buffer.count - start > Self.lineLimit { throw .lineTooLong(limit: Self.lineLimit) }
            if ended {
                guard start < buffer.count else { return nil }
                let line = String(decoding: buffer[start...], as: UTF8.self)
                start = buffer.count
                return line
            }
            buffer.removeFirst(start)
            start = 0
            var chunk = [UInt8](repeating: 0, count: 1 << 14)
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                throw .unreadable(errno)
            }
            if n == 0 { ended = true } else { buffer.append(contentsOf: chunk[0 ..< n]) }
        }
    }
}
