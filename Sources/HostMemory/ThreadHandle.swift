#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// A joinable thread: the VMM's vCPU, device-backend and observer threads, the fuzzer's
/// workers. pthreads directly, because a vCPU thread must be a real thread that a signal can
/// interrupt (KVM's kick), and a Swift task is not.
public struct ThreadHandle: @unchecked Sendable {
    let thread: pthread_t

    /// Starts a thread running `body`; nil (with the pthread error) when it cannot be created.
    /// The thread owns the retained closure box and releases it when it starts.
    public static func spawn(_ body: @escaping () -> Void) -> Result<ThreadHandle, ThreadError> {
        let box = Unmanaged.passRetained(ThreadBody(body))
        var thread = pthread_t()
        let rc = pthread_create(&thread, nil, { raw in
            // `raw` is the box passed below, retained once for this thread.
            Unmanaged<ThreadBody>.fromOpaque(raw!).takeRetainedValue().body()
            return nil
        }, box.toOpaque())
        guard rc == 0 else {
            box.release()
            return .failure(ThreadError(errno: rc))
        }
        return .success(ThreadHandle(thread: thread))
    }

    /// Waits for the thread to end.
    public func join() { pthread_join(thread, nil) }

    /// The calling thread's handle.
    public static var current: ThreadHandle { ThreadHandle(thread: pthread_self()) }

    /// Sends `signal` to the thread (a vCPU kick).
    public func send(_ signal: Int32) { _ = pthread_kill(thread, signal) }

    public static func == (a: ThreadHandle, b: ThreadHandle) -> Bool { pthread_equal(a.thread, b.thread) != 0 }
}

/// pthread_create's error.
public struct ThreadError: Error, Sendable {
    public let errno: Int32
}

extension ThreadHandle {
    /// Runs `body(i)` for i in 0 ..< `count` on that many threads and waits for all; one
    /// thread runs inline when `count` is 1 or a thread cannot be made.
    public static func forEach(_ count: Int, _ body: @escaping @Sendable (Int) -> Void) {
        guard count > 1 else {
            if count == 1 { body(0) }
            return
        }
        var threads: [ThreadHandle] = []
        for i in 1 ..< count {
            if case let .success(t) = spawn({ body(i) }) { threads.append(t) } else { body(i) }
        }
        body(0)
        for t in threads { t.join() }
    }
}

private final class ThreadBody {
    let body: () -> Void
    init(_ body: @escaping () -> Void) { self.body = body }
}
