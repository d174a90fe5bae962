#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Why a trace file could not be read, with the line (1-based) where reading stopped.
public enum TraceFileError: Error, Equatable, CustomStringConvertible {
    /// The file could not be opened or read.
    case io(path: String, errno: Int32)
    /// The file is larger than a trace pvm reads (or never ends, like /dev/zero).
    case tooLarge(path: String, limit: Int)
    /// A line is not JSON.
    case syntax(line: Int, column: Int, message: String)
    /// The last line stops in the middle of an event: the writer was killed, or the file was cut.
    case truncated(line: Int, message: String)
    /// A line is JSON but not a trace event.
    case schema(line: Int, message: String)
    /// A line is not UTF-8.
    case encoding(line: Int)

    /// The line the error is on, if it is about one.
    public var line: Int? {
        switch self {
        case .io, .tooLarge: nil
        case let .syntax(line, _, _), let .truncated(line, _), let .schema(line, _), let .encoding(line): line
        }
    }

    public var description: String {
        switch self {
        case let .io(path, errno): "cannot read \(path): \(String(cString: strerror(errno)))"
        case let .tooLarge(_, limit): "larger than \(limit >> 20) MiB, more than a trace pvm reads"
        case let .syntax(line, column, message): "line \(line), column \(column): not JSON: \(message)"
        case let .truncated(line, message): "line \(line): truncated event (the file ends inside it): \(message)"
        case let .schema(line, message): "line \(line): not a trace event: \(message)"
        case let .encoding(line): "line \(line): not UTF-8 text"
        }
    }
}
