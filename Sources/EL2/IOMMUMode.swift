/// How EL2 keeps the host's DMA domains consistent with page ownership: the two designs pKVM's
/// SMMUv3 support has had (docs/iommu.md: PKVM-v4's SMMUv3 series and Android's kvm_iommu_ops).
public enum IOMMUMode: String, Sendable, CaseIterable, CustomStringConvertible {
    /// The trap-and-emulate design (pKVM SMMUv3 v4, "Shadow host stage-2"): host devices sit in
    /// one identity domain that mirrors the host stage-2. A transition that takes a page from
    /// the host unmaps it from the domain in the same commit (`kvm_iommu_host_stage2_idmap`),
    /// with an IOTLB invalidation; nothing is pinned and no conversion is ever refused.
    case mirror
    /// The paravirtual design Android ships (`kvm_iommu_ops`, `__pkvm_host_use_dma`): the host
    /// maps pages into paging domains by hypercall; every mapped page holds a reference in its
    /// `hyp_page.refcount`, and any share, donate or unshare of a referenced page is refused
    /// until the host unmaps it.
    case refcount

    public var description: String { rawValue }
}
