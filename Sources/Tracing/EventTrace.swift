import Synchronization
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Writes trace events as JSON Lines, from any thread, in batches of one `write(2)` per 64 KiB.
/// Time is in nanoseconds since the trace was opened (CLOCK_MONOTONIC). A machine without a
/// trace holds nil, so tracing disabled costs one nil check per event site.
public final class EventTrace: Sendable {
    public struct OpenError: Error, CustomStringConvertible {
        public let path: String
        public let errno: Int32
        public var description: String { "cannot open trace file \(path): \(String(cString: strerror(errno)))" }
    }

    public struct WriteError: Error, CustomStringConvertible {
        public let path: String
        public let errno: Int32
        public var description: String { "cannot write trace file \(path): \(String(cString: strerror(errno)))" }
    }

    private struct State {
        var buffer: [UInt8] = []
        var failed: Int32 = 0
    }

    private let fd: Int32
    /// CLOCK_MONOTONIC when the trace was opened: event times are relative to it.
    public let start: UInt64
    private let state = Mutex(State())
    public let path: String
    /// Where event times come from instead of CLOCK_MONOTONIC, when set: a deterministic run's
    /// virtual clock (nanoseconds), so the same run writes the same trace byte for byte.
    private let virtualClock = Mutex<(@Sendable () -> UInt64)?>(nil)

    /// Takes event times from `clock` from now on.
    public func useClock(_ clock: @escaping @Sendable () -> UInt64) { virtualClock.withLock { $0 = clock } }

    /// Nanoseconds since the trace was opened, by its clock.
    public var now: UInt64 {
        if let clock = virtualClock.withLock({ $0 }) { return clock() }
        return monotonicNanoseconds() &- start
    }

    /// Creates (or truncates) `path`.
    public init(path: String) throws(OpenError) {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        if fd < 0 { throw OpenError(path: path, errno: errno) }
        self.fd = fd
        self.path = path
        start = monotonicNanoseconds()
    }

    deinit { _ = close(fd) }

    public func record(_ event: TraceEvent) {
        let line = TraceEncoder.line(event, time: now)
        state.withLock { s in
            s.buffer.append(contentsOf: line.utf8)
            s.buffer.append(0x0a)
            if s.buffer.count >= 1 << 16 { flushLocked(&s) }
        }
    }

    /// Writes out everything recorded so far. Throws if any write failed.
    public func flush() throws(WriteError) {
        let failed = state.withLock { s -> Int32 in
            flushLocked(&s)
            return s.failed
        }
        if failed != 0 { throw WriteError(path: path, errno: failed) }
    }

    private func flushLocked(_ s: inout State) {
        let failed = s.buffer.withUnsafeBytes { TextFile.writeAll(fd, $0) }
        if failed != 0 { s.failed = failed }
        s.buffer.removeAll(keepingCapacity: true)
    }
}

/// CLOCK_MONOTONIC in nanoseconds.
public func monotonicNanoseconds() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}
