/// Where EL2 reports what a backend or an observer must know: TLB invalidations (the KVM backend
/// turns them into mprotect / vCPU kicks, the model records them) and the conditions pKVM only
/// WARNs about.
///
/// Called with EL2 locks held: an implementation must not call back into EL2.
public protocol EL2EventSink: AnyObject, Sendable {
    /// A valid mapping was removed or narrowed: translations for the range must go.
    func invalidate(_ request: TLBInvalidation)
    /// pKVM would `WARN_ON` here and carry on; so does pvm.
    func warning(_ message: String)
    /// Whether `stage2Updated` should be called. Read once when a stage-2 is created, so a sink
    /// that does not mirror tables costs the transitions nothing.
    var wantsStage2Updates: Bool { get }
    /// `update` was written to `[start, end)` of the stage-2 of `vmid` (the host's is
    /// `VMID.host`). A backend mirrors it into the real MMU (the KVM backend: mprotect of the
    /// guest or host view). Called after the write and before any TLB invalidation it causes.
    func stage2Updated(vmid: VMID, update: Stage2Update, start: IPA, end: IPA)
    /// The SMMU changed a stream, a mapping in a domain EL2 writes, invalidated its IOTLB, or
    /// recorded a fault.
    func iommu(_ notification: IOMMUNotification)
    /// A guest stage-2 split a block or coalesced a table back into one (after the update's
    /// write, before its TLB invalidation).
    func stage2Restructured(_ event: Stage2Restructure)
}

extension EL2EventSink {
    public func warning(_ message: String) {}
    public var wantsStage2Updates: Bool { false }
    public func stage2Updated(vmid: VMID, update: Stage2Update, start: IPA, end: IPA) {}
    public func iommu(_ notification: IOMMUNotification) {}
    public func stage2Restructured(_ event: Stage2Restructure) {}
}
