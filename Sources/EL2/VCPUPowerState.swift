/// A vCPU's PSCI power state as EL2 keeps it (Android's `hyp_vcpu->power_state`,
/// `PSCI_0_2_AFFINITY_LEVEL_ON` / `_OFF` / `_ON_PENDING`; mainline's host keeps the same
/// facts in `mp_state`: STOPPED is `off`, RUNNABLE is `on`).
public enum VCPUPowerState: String, Sendable {
    case off
    /// CPU_ON accepted, the vCPU has not run yet (Android only: mainline never reports it).
    case onPending
    case on
}

/// Per-VM PSCI state: every vCPU's power state, and which vCPUs the host has loaded
/// (`pkvm_load_hyp_vcpu`). Guarded by its own lock in `GuestVM`.
struct PSCIState {
    var power: [VCPUPowerState]
    var loaded: [Bool]

    init(vcpus: Int, bootState: VCPUPowerState) {
        power = Array(repeating: .off, count: vcpus)
        loaded = Array(repeating: false, count: vcpus)
        if vcpus > 0 { power[0] = bootState }
    }
}

/// An MPIDR_EL1 value: what PSCI calls a CPU by. KVM gives vCPU i Aff0 = i[3:0],
/// Aff1 = i[11:4], Aff2 = i[19:12] and sets bit 31 (`reset_mpidr`, arch/arm64/kvm/sys_regs.c).
public struct MPIDR: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public var rawValue: UInt64
    public init(rawValue: UInt64) { self.rawValue = rawValue }

    /// The MPIDR KVM gives vCPU `index`.
    public init(vcpu index: Int) {
        let i = UInt64(index)
        rawValue = (i & 0xF) | ((i >> 4) & 0xFF) << 8 | ((i >> 12) & 0xFF) << 16 | 1 << 31
    }

    /// The affinity fields PSCI compares (`MPIDR_HWID_BITMASK`).
    public var hardwareID: UInt64 { rawValue & SMCCCConstant.mpidrHardwareID }

    public var description: String { hex(rawValue) }
}
