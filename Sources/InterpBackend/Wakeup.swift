#if canImport(Glibc)
import Glibc
#endif

/// A wake-up a sleeping vCPU thread waits for (its WFI), signalled from any thread: a
/// pthread condition variable on CLOCK_MONOTONIC with a flag, so a signal that comes before
/// the wait is not lost.
final class Wakeup: @unchecked Sendable {
    // Allocated once and never moved: pthread objects must not be copied.
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let condition = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    /// Guarded by `mutex`.
    private var signalled = false

    init() {
        pthread_mutex_init(mutex, nil)
        var attributes = pthread_condattr_t()
        pthread_condattr_init(&attributes)
        pthread_condattr_setclock(&attributes, CLOCK_MONOTONIC)
        pthread_cond_init(condition, &attributes)
        pthread_condattr_destroy(&attributes)
    }

    deinit {
        pthread_cond_destroy(condition)
        pthread_mutex_destroy(mutex)
        condition.deallocate()
        mutex.deallocate()
    }

    func signal() {
        pthread_mutex_lock(mutex)
        signalled = true
        pthread_cond_signal(condition)
        pthread_mutex_unlock(mutex)
    }

    /// Sleeps until a signal or `nanoseconds` pass; returns at once if `ready()` (checked
    /// before the mutex is taken) or if a signal came since the last wait.
    func wait(nanoseconds: UInt64, until ready: () -> Bool) {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        let total = UInt64(now.tv_nsec) + nanoseconds % 1_000_000_000
        var deadline = timespec(tv_sec: now.tv_sec + Int(nanoseconds / 1_000_000_000) + Int(total / 1_000_000_000),
                                tv_nsec: Int(total % 1_000_000_000))
        // `ready` takes the interrupt controller's lock, whose holder signals us with it held:
        // it is asked before this mutex is taken (a signal in between sets `signalled`, which
        // the loop below sees, so nothing is lost).
        if ready() { return }
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        // A signal from before the wait (possibly stale) ends it at once: a spurious wake-up.
        while !signalled {
            if pthread_cond_timedwait(condition, mutex, &deadline) == ETIMEDOUT { break }
        }
        signalled = false
    }
}
