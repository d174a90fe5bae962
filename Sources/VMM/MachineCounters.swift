/// Counters for the one-line summary, updated from every vCPU thread.
public struct MachineCounters: Sendable, Equatable {
    public var exits = 0
    public var hypercalls = 0
    public var stage2Faults = 0
    /// Pages given to the guest: donated (protected) or shared by the host (non-protected).
    public var donated = 0
    /// Successful MEM_SHARE / MEM_UNSHARE / MEM_RELINQUISH.
    public var shared = 0
    public var unshared = 0
    public var relinquished = 0
    /// Host accesses EL2 refused.
    public var hostFaults = 0
    /// Pages returned to the host at teardown.
    public var reclaimed = 0
    /// Whole blocks a first touch donated (`--guest-block 2m|1g`; their pages count in `donated`).
    public var blocksDonated = 0
    /// Guest stage-2 blocks split by a conversion of part of them, and tables coalesced back.
    public var splits = 0
    public var merges = 0
}
