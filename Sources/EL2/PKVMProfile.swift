/// Which pKVM a guest is written against: the two trees whose guest ABI pvm reproduces call
/// for call (docs/abi.md has the table, with the source of every answer).
public enum PKVMProfile: String, Sendable, CaseIterable, CustomStringConvertible {
    /// Linux mainline: arch/arm64/kvm/hyp/nvhe/pkvm.c (`kvm_handle_pvm_hvc64`), the host's
    /// arch/arm64/kvm/hypercalls.c and psci.c, and the guest driver
    /// drivers/virt/coco/pkvm-guest/arm-pkvm-guest.c.
    case mainline
    /// Android's common kernel 6.12: the MMIO guard, MEM_RELINQUISH and the range forms of
    /// MEM_SHARE / MEM_UNSHARE, with more answered at EL2.
    case android

    public var description: String { rawValue }
}
