/// Why `KVM_RUN` returned (`kvm_run.exit_reason`, api.rst section 5), decoded.
public enum KVMExit: Sendable, Equatable {
    /// `KVM_EXIT_IO`: a port access. For an `out`, the data is at `dataOffset` in the `kvm_run`
    /// mapping; for an `in`, the VMM writes it there before the next run.
    case io(port: UInt16, size: UInt8, isWrite: Bool, count: UInt32, dataOffset: UInt64)
    /// `KVM_EXIT_MMIO`: a data access to a guest-physical address no memslot backs with the
    /// access it needs. For a read the VMM supplies the value with `completeMMIORead`.
    case mmio(address: UInt64, length: UInt32, isWrite: Bool, data: UInt64)
    /// `KVM_EXIT_HLT`.
    case halt
    /// `KVM_EXIT_SHUTDOWN`: triple fault.
    case shutdown
    /// `KVM_EXIT_INTERNAL_ERROR`; suberror 1 is an emulation failure (for pvm: an instruction
    /// fetch from a page the guest view has made inaccessible). Up to 15 instruction bytes when
    /// KVM provides them.
    case internalError(suberror: UInt32, instructionBytes: [UInt8])
    /// `KVM_EXIT_FAIL_ENTRY`: the CPU refused the guest state.
    case failEntry(reason: UInt64, cpu: UInt32)
    /// `KVM_EXIT_SYSTEM_EVENT`.
    case systemEvent(type: UInt32)
    /// `KVM_RUN` failed with EFAULT/EHWPOISON and filled `kvm_run.memory_fault` (Linux 6.8+).
    case memoryFault(address: UInt64, size: UInt64, flags: UInt64)
    /// `KVM_RUN` failed with EFAULT and no memory-fault report: the guest touched a page the
    /// memslot's host mapping does not allow, at an address KVM did not say (upstream's
    /// behaviour for an HVA-backed slot, Documentation/virt/kvm/api.rst, KVM_RUN). RIP still points at
    /// the instruction; decode it to find the address.
    case unreportedFault
    /// `KVM_RUN` was interrupted (EINTR) or `immediate_exit` was set: another thread kicked us.
    case interrupted
    /// An exit pvm does not handle.
    case other(reason: UInt32)
}
