#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Interrupting a vCPU thread that is inside KVM_RUN: set `immediate_exit` (`KVMVCPU.requestExit`)
/// and send the thread a signal whose handler does nothing, so the ioctl returns EINTR
/// (api.rst, KVM_CAP_IMMEDIATE_EXIT). Firecracker and crosvm kick vCPUs the same way.
public enum VCPUKick {
    /// The signal used for kicks.
    public static let signal = SIGUSR1

    /// Installs the no-op handler (without SA_RESTART, so KVM_RUN is interrupted). Installing a
    /// process-wide handler is unavoidable here; it is idempotent and does nothing else.
    public static func install() {
        var action = sigaction()
        action.__sigaction_handler.sa_handler = { _ in }
        sigemptyset(&action.sa_mask)
        action.sa_flags = 0
        _ = sigaction(signal, &action, nil)
    }

    /// Sends the kick signal to `thread`.
    public static func kick(_ thread: pthread_t) {
        _ = pthread_kill(thread, signal)
    }
}
