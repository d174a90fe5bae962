/// A TLB invalidation EL2 asks for: every translation the VMID holds for the IPA range must go,
/// as `__kvm_tlb_flush_vmid_ipa` / `kvm_tlb_flush_vmid_range` (TLBI IPAS2E1IS, then TLBI
/// VMALLE1IS and DSB ISH). EL2 emits one for every change that removes or narrows a valid
/// mapping, and for break-before-make when a block is split.
public struct TLBInvalidation: Hashable, Sendable, CustomStringConvertible {
    public let vmid: VMID
    /// Start of the range (inclusive), page aligned.
    public let start: IPA
    /// Bytes covered, a multiple of the page size.
    public let size: UInt64

    public init(vmid: VMID, start: IPA, size: UInt64) {
        self.vmid = vmid
        self.start = start
        self.size = size
    }

    public var description: String { "tlbi vmid=\(vmid) ipa=\(start) size=\(hex(size))" }
}
