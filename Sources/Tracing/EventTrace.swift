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
        /// Bytes already written to the file: a header can go first only while this is 0.
        var written = 0
    }

    private let fd: Int32
    /// Called with every event as it is recorded, on the recording thread (a vCPU or device
    /// thread, outside EL2's locks for the VMM's own events: fault, hypercall, power, dma).
    private let observer: (@Sendable (TraceEvent) -> Void)?
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

    /// Creates (or truncates) `path`; "-" writes to standard output. `observer`, when given,
    /// also sees every event as it is recorded (`pvm test` records its transcript this way).
    public init(path: String, observer: (@Sendable (TraceEvent) -> Void)? = nil) throws(OpenError) {
        let fd = path == TextFile.standardStream ? STDOUT_FILENO : open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        if fd < 0 { throw OpenError(path: path, errno: errno) }
        self.fd = fd
        self.path = path == TextFile.standardStream ? "standard output" : path
        self.observer = observer
        start = monotonicNanoseconds()
    }

    /// A trace that writes nothing and hands every event to `observer`: how `pvm inspect --at`
    /// stops at an event.
    public init(observer: @escaping @Sendable (TraceEvent) -> Void) {
        fd = -1
        path = "(observer)"
        self.observer = observer
        start = monotonicNanoseconds()
    }

    /// Whether the trace goes to standard output (so the tool must print elsewhere).
    public var isStandardOutput: Bool { fd == STDOUT_FILENO }

    deinit { if fd != STDOUT_FILENO && fd >= 0 { _ = close(fd) } }

    /// Appends `event`. The time is read under the writer's lock, so lines are in time order
    /// even when several vCPU threads record at once (the encoding happens outside it).
    public func record(_ event: TraceEvent) {
        if let observer {
            observer(event)
            if fd < 0 { return }
        }
        let body = TraceEncoder.body(event)
        state.withLock { s in
            s.buffer.append(contentsOf: "{\"t\":\(now),".utf8)
            s.buffer.append(contentsOf: body.utf8)
            s.buffer.append(0x0a)
            if s.buffer.count >= 1 << 16 { flushLocked(&s) }
        }
    }

    /// Puts `event` on the trace's first line, with time 0: the `machine` event, which can
    /// only be written once EL2 has made the VM, describes the trace from its start. Events
    /// recorded before it (EL2's boot) follow it. If the buffer was already written out (more
    /// than 64 KiB before the header), the header is appended instead.
    public func recordHeader(_ event: TraceEvent) {
        let line = Array(("{\"t\":0," + TraceEncoder.body(event) + "\n").utf8)
        state.withLock { s in
            if s.written == 0 { s.buffer.insert(contentsOf: line, at: 0) } else { s.buffer.append(contentsOf: line) }
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
        if fd < 0 { return s.buffer.removeAll(keepingCapacity: true) }
        let failed = s.buffer.withUnsafeBytes { TextFile.writeAll(fd, $0) }
        if failed != 0 { s.failed = failed }
        s.written += s.buffer.count
        s.buffer.removeAll(keepingCapacity: true)
    }
}

/// CLOCK_MONOTONIC in nanoseconds.
public func monotonicNanoseconds() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}
