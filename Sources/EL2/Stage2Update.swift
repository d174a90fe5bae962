/// What a stage-2 range update writes at every entry it covers.
public enum Stage2Update: Sendable {
    /// Unmap: write zero entries, freeing tables that become empty (`kvm_pgtable_stage2_unmap`).
    case clear
    /// Write the same invalid annotated entry everywhere (`kvm_pgtable_stage2_annotate`).
    case annotate(Stage2Descriptor)
    /// Annotate every page as donated to the guest `handle`, page k of the range naming gfn
    /// `firstGFN + k` (`host_stage2_set_owner_metadata_locked` over a range): always page entries,
    /// since each carries its own gfn.
    case annotateDonation(handle: VMHandle, firstGFN: GFN)
    /// Map `[start, end)` to `output + (ipa - start)` (`kvm_pgtable_stage2_map`). Blocks are used
    /// where the range and output allow, unless `pagesOnly`.
    case map(output: PhysAddr, permissions: Stage2Permissions, state: PageState, pagesOnly: Bool)
    /// Map `[start, end)` read-write as Device-nGnRE, not executable: the host's MMIO
    /// identity map (`PKVM_HOST_MMIO_PROT`).
    case mapDevice(output: PhysAddr)
}
