import Tracing

/// How a guest run ended.
public enum RunOutcome: Sendable, Equatable {
    /// PSCI SYSTEM_OFF.
    case poweredOff
    /// PSCI SYSTEM_RESET (pvm does not reboot).
    case reset
    /// The guest did something it has no right to, or the CPU could not go on; EL2 / the VMM
    /// stopped the VM.
    case faulted(FaultReport)
    /// The host asked pvm to stop (SIGINT, SIGTERM): the vCPUs were stopped where they were.
    case interrupted(signal: Int32)
}
