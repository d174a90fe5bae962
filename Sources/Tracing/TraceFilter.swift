/// Which events `pvm trace` shows. Every condition given must hold.
public struct TraceFilter: Sendable, Equatable {
    /// Kinds to show; empty shows all.
    public var kinds: Set<TraceKind> = []
    /// A VM handle: events of that VM, and events naming no VM (the host's, EL2's) only when
    /// they touch one of its pages.
    public var vm: UInt64?
    /// Physical frames: events that touch any of them.
    public var pfns: [UInt64] = []
    public var vcpu: Int?
    /// Time window in nanoseconds.
    public var since: UInt64?
    public var until: UInt64?

    public init() {}

    public var isEmpty: Bool { self == TraceFilter() }

    /// Whether `r` passes, with `resolver` having observed every record before it (and `r`).
    public func accepts(_ r: TraceRecord, _ resolver: TracePageResolver) -> Bool {
        if !kinds.isEmpty, !kinds.contains(r.kind) { return false }
        if let since, r.time < since { return false }
        if let until, r.time > until { return false }
        if let vcpu, r.integer("vcpu") != vcpu { return false }
        var pages: [Range<UInt64>]?
        if let vm {
            if let owner = resolver.vm(of: r) {
                if owner != vm { return false }
            } else if r.kind != .machine {
                // Host / EL2 / device events: shown when they touch the VM's RAM.
                guard let m = resolver.machine(handle: vm) else { return false }
                let ram = (m.guestRAMBase >> 12) ..< (m.guestRAMBase + m.guestMemory) >> 12
                pages = resolver.pages(of: r)
                if !pages!.contains(where: { $0.overlaps(ram) }) { return false }
            } else {
                return false
            }
        }
        if !pfns.isEmpty {
            let touched = pages ?? resolver.pages(of: r)
            if !pfns.contains(where: { p in touched.contains { $0.contains(p) } }) { return false }
        }
        return true
    }
}
