#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Reading and writing the tools' files (a trace, a script, an image, a picture, an export):
/// every `read(2)` and `write(2)` loop is here. Reads are bounded, so no input (a huge file,
/// /dev/zero) can make a tool read without end. EINTR is retried.
public enum TextFile {
    /// Why a file could not be read.
    public enum ReadError: Error, Equatable, Sendable {
        /// open(2) or read(2) failed with this errno.
        case unreadable(Int32)
        /// The file holds more than `limit` bytes (or never ends).
        case tooLarge(limit: Int)
    }

    /// The name that means standard input when read and standard output when written, as in
    /// most Unix tools.
    public static let standardStream = "-"

    /// Reads at most `limit` bytes of `path` ("-": standard input).
    public static func read(_ path: String, limit: Int) -> Result<[UInt8], ReadError> {
        let isStdin = path == standardStream
        let fd = isStdin ? STDIN_FILENO : open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 { return .failure(.unreadable(errno)) }
        defer { if !isStdin { close(fd) } }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let n = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                return .failure(.unreadable(errno))
            }
            if n == 0 { return .success(bytes) }
            guard bytes.count + n <= limit else { return .failure(.tooLarge(limit: limit)) }
            bytes.append(contentsOf: chunk[0 ..< n])
        }
    }

    public struct WriteError: Error, CustomStringConvertible {
        public let path: String
        public let errno: Int32
        public var description: String { "cannot write \(path): \(String(cString: strerror(errno)))" }
    }

    /// Creates or truncates `path` and writes `text` ("-": standard output).
    public static func write(_ text: String, to path: String) throws(WriteError) {
        var text = text
        if path == standardStream {
            fflush(nil)  // print(...) text already buffered goes out first
            let failure = text.withUTF8 { writeAll(STDOUT_FILENO, UnsafeRawBufferPointer($0)) }
            if failure != 0 { throw WriteError(path: "standard output", errno: failure) }
            return
        }
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw WriteError(path: path, errno: errno) }
        let failure = text.withUTF8 { writeAll(fd, UnsafeRawBufferPointer($0)) }
        let closed = close(fd) == 0 ? 0 : errno
        if failure != 0 || closed != 0 { throw WriteError(path: path, errno: failure != 0 ? failure : closed) }
    }

    /// Writes all of `bytes` to `fd`, retrying short writes and EINTR: 0, or the errno.
    static func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer) -> Int32 {
        var done = 0
        while done < bytes.count {
            let n = Glibc.write(fd, bytes.baseAddress! + done, bytes.count - done)
            if n < 0 {
                if errno == EINTR { continue }
                return errno
            }
            done += n
        }
        return 0
    }
}
