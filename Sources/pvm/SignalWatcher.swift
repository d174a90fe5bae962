import HostMemory
import Synchronization
import VMM
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Turns SIGINT and SIGTERM into an orderly stop of a running machine: the signals are blocked
/// in every thread (the vCPU threads inherit the mask), and one thread waits for them with
/// sigtimedwait and calls `Machine.requestStop(signal:)`. pvm then tears the guest down,
/// verifies it, flushes the trace and prints its summary before exiting 128 + the signal, as a
/// shell expects (130 for SIGINT, 143 for SIGTERM).
final class SignalWatcher: @unchecked Sendable {
    static let signals = [SIGINT, SIGTERM]

    private let done = Atomic<Bool>(false)
    private var thread: ThreadHandle?
    private var set = sigset_t()

    /// Blocks the signals in the calling thread; call before any machine thread starts.
    init() {
        sigemptyset(&set)
        for s in Self.signals { sigaddset(&set, s) }
        pthread_sigmask(SIG_BLOCK, &set, nil)
    }

    /// Starts watching: a signal stops `machine`.
    func watch(_ machine: Machine) {
        let set = self.set
        thread = try? ThreadHandle.spawn { [self] in
            var wait = set
            var timeout = timespec(tv_sec: 1, tv_nsec: 0)
            while !done.load(ordering: .acquiring) {
                let s = sigtimedwait(&wait, nil, &timeout)
                if s > 0, !done.load(ordering: .acquiring) { machine.requestStop(signal: s) }
            }
        }.get()
    }

    /// Stops watching. Signals stay blocked: one arriving now ends pvm once it unblocks them
    /// at exit, which is what the user asked for.
    func finish() {
        done.store(true, ordering: .releasing)
        // Wake the watcher at once: a signal it waits for, sent to it alone.
        thread?.send(SIGTERM)
        thread?.join()
        thread = nil
    }

    /// The name of a signal for messages.
    static func name(_ signal: Int32) -> String {
        switch signal {
        case SIGINT: "SIGINT"
        case SIGTERM: "SIGTERM"
        default: "signal \(signal)"
        }
    }
}
