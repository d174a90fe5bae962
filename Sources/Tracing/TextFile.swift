#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Writing the tools' files (a trace, a picture, an export): every `write(2)` loop is here.
public enum TextFile {
    public struct WriteError: Error, CustomStringConvertible {
        public let path: String
        public let errno: Int32
        public var description: String { "cannot write \(path): \(String(cString: strerror(errno)))" }
    }

    /// Creates or truncates `path` and writes `text`.
    public static func write(_ text: String, to path: String) throws(WriteError) {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw WriteError(path: path, errno: errno) }
        var text = text
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
