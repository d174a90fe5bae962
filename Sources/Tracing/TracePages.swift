/// Which physical pages a trace event is about. Reading a trace is sequential: the resolver
/// learns the machines (guest frame → physical frame) and the SMMU's stream attachments as it
/// goes, so a DMA transfer is resolved through the domain its stream was attached to then.
public struct TracePageResolver: Sendable {
    private var machinesByVM: [UInt64: TraceMachine] = [:]
    private var machinesByVMID: [UInt64: TraceMachine] = [:]
    /// Stream → domain, from `iommu` attach / detach.
    private var streamDomain: [UInt64: UInt64] = [:]

    public init() {}

    /// The only machine, when the trace has exactly one.
    public private(set) var soleMachine: TraceMachine?

    /// Learns what `record` says about the machine; call for every record, in order.
    public mutating func observe(_ record: TraceRecord) {
        switch record.kind {
        case .machine:
            guard let m = TraceMachine(record) else { return }
            soleMachine = machinesByVM.isEmpty ? m : nil
            machinesByVM[m.vm] = m
            machinesByVMID[m.vmid] = m
        case .iommu:
            guard let sid = record.unsigned("sid") else { return }
            if record.string("op") == "attach", let domain = record.unsigned("domain") { streamDomain[sid] = domain }
            if record.string("op") == "detach" { streamDomain[sid] = nil }
        default: break
        }
    }

    /// The VM (handle) an event belongs to, when it names one, directly or by VMID.
    public func vm(of r: TraceRecord) -> UInt64? {
        if let vm = r.unsigned("vm") { return vm }
        if let vmid = r.unsigned("vmid") { return vmid == 0 ? nil : machinesByVMID[vmid]?.vm }
        if let domain = r.unsigned("domain"), domain & 0x8000 != 0 { return machinesByVMID[domain & 0x7fff]?.vm }
        // A vCPU event of a one-machine trace (older traces name no VM on power events).
        if r["vcpu"] != nil, let m = soleMachine { return m.vm }
        return nil
    }

    private func machine(vm: UInt64?) -> TraceMachine? { vm.flatMap { machinesByVM[$0] } ?? soleMachine }

    /// Physical frames `[first, end)` the event touches.
    public func pages(of r: TraceRecord) -> [Range<UInt64>] {
        func frames(_ start: UInt64, _ size: UInt64) -> [Range<UInt64>] { Self.frames(start, size).map { [$0] } ?? [] }
        /// A guest-physical range of `vm` as physical frames.
        func guest(_ vm: UInt64?, _ ipa: UInt64, _ size: UInt64) -> [Range<UInt64>] {
            guard let m = machine(vm: vm), let g = Self.frames(ipa, size) else { return [] }
            return Self.guestFrames(g, m).map { [$0] } ?? []
        }
        switch r.kind {
        case .machine, .power, .warning: return []
        case .hypercall:
            guard let name = r.string("name"), ["MEM_SHARE", "MEM_UNSHARE", "MEM_RELINQUISH"].contains(name),
                  let ipa = r["args"]?.array?.first?.unsigned else { return [] }
            return guest(vm(of: r), ipa, 1)
        case .transition:
            if let pfn = r.unsigned("pfn") { return pfn < .max ? [pfn ..< pfn + 1] : [] }
            if let gfn = r.unsigned("gfn") { return guest(vm(of: r), gfn << 12, 1) }
            return []
        case .stage2:
            guard let vmid = r.unsigned("vmid"), let start = r.unsigned("start"), let end = r.unsigned("end"), end > start else { return [] }
            if vmid == 0 { return frames(start, end - start) }
            if let pa = r.unsigned("pa") { return frames(pa, end - start) }
            return guest(vm(of: r), start, end - start)
        case .tlbi, .split, .merge:
            guard let vmid = r.unsigned("vmid"), let ipa = r.unsigned("ipa"), let size = r.unsigned("size") else { return [] }
            return vmid == 0 ? frames(ipa, size) : guest(vm(of: r), ipa, size)
        case .fault, .hostFault:
            if let pa = r.unsigned("pa") { return frames(pa, 1) }
            if let gpa = r.unsigned("gpa") { return guest(vm(of: r), gpa, 1) }
            return []
        case .iommuFault:
            if let pa = r.unsigned("pa") { return frames(pa, 1) }
            return []
        case .iommu, .iotlbi:
            guard let domain = r.unsigned("domain"), let size = r.unsigned("size") else { return [] }
            if let pa = r.unsigned("pa") { return frames(pa, size) }
            guard let iova = r.unsigned("iova") else { return [] }
            return resolve(domain: domain, iova, size)
        case .dma:
            guard let sid = r.unsigned("sid"), let domain = streamDomain[sid], let iova = r.unsigned("iova"),
                  let bytes = r.unsigned("bytes") else { return [] }
            return resolve(domain: domain, iova, bytes)
        }
    }

    /// An IOVA range of `domain` as physical frames: the identity domain maps IOVA = PA; a
    /// guest domain (0x8000 | VMID) maps the guest's IPAs. Paging domains are not resolved.
    private func resolve(domain: UInt64, _ iova: UInt64, _ size: UInt64) -> [Range<UInt64>] {
        guard let g = Self.frames(iova, size) else { return [] }
        if domain == 0 { return [g] }
        if domain & 0x8000 != 0, let m = machinesByVMID[domain & 0x7fff] { return Self.guestFrames(g, m).map { [$0] } ?? [] }
        return []
    }

    /// The frames `[start, start + size)` touches (a zero size touches one), saturating at the
    /// top of the address space: trace values are untrusted.
    static func frames(_ start: UInt64, _ size: UInt64) -> Range<UInt64>? {
        let (end, overflow) = start.addingReportingOverflow(max(size, 1))
        let last = overflow ? UInt64.max >> 12 : (end - 1) >> 12
        let first = start >> 12
        return first <= last && last < .max ? first ..< last + 1 : nil
    }

    /// Guest frames as physical frames, clipped to the machine's guest RAM.
    static func guestFrames(_ g: Range<UInt64>, _ m: TraceMachine) -> Range<UInt64>? {
        let end = min(g.upperBound, m.guestMemory >> 12)
        guard g.lowerBound < end, let first = m.pfn(gfn: g.lowerBound) else { return nil }
        return first ..< first + (end - g.lowerBound)
    }

    /// The machine whose VM handle is `vm`.
    public func machine(handle vm: UInt64) -> TraceMachine? { machinesByVM[vm] }
}
