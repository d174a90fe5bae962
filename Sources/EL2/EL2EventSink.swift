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
}

extension EL2EventSink {
    public func warning(_ message: String) {}
}
