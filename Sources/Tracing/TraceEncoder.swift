import EL2

/// Turns trace events into JSON Lines (docs/trace-format.md). Built with string appends, not a
/// JSON tree: this runs on the vCPU threads for every event while tracing is on.
public enum TraceEncoder {
    /// One line, without its newline.
    public static func line(_ event: TraceEvent, time: UInt64) -> String {
        "{\"t\":\(time)," + body(event)
    }

    /// The line after its `{"t":N,` prefix: everything but the time, so a writer can encode
    /// outside its lock and stamp the time inside it (which keeps the file in time order).
    public static func body(_ event: TraceEvent) -> String {
        var o = ""
        switch event {
        case let .machine(m):
            o += "\"kind\":\"machine\",\"vm\":\(m.vm.rawValue),\"vmid\":\(m.vmid),\"protected\":\(m.isProtected),"
            o += "\"vcpus\":\(m.vcpus),\"arch\":\"\(m.architecture)\",\"ram_base\":\"\(hex(m.guestRAMBase))\","
            o += "\"memory\":\"\(hex(m.guestMemory))\",\"phys_base\":\"\(hex(m.physicalBase))\","
            o += "\"phys_size\":\"\(hex(m.physicalSize))\",\"iommu\":\"\(m.iommu)\",\"image\":\(JSONValue.quoted(m.image))"
        case let .hypercall(h):
            if let vm = h.vm { o += "\"kind\":\"hypercall\",\"vm\":\(vm.rawValue)," } else { o += "\"kind\":\"hypercall\"," }
            o += "\"vcpu\":\(h.vcpu),\"fn\":\"\(hex(h.function))\",\"name\":\"\(h.name)\","
            o += "\"args\":[\"\(hex(h.arguments.0))\",\"\(hex(h.arguments.1))\",\"\(hex(h.arguments.2))\"],"
            o += "\"ret\":[\"\(hex(h.results.0))\",\"\(hex(h.results.1))\",\"\(hex(h.results.2))\",\"\(hex(h.results.3))\"],"
            o += "\"dur\":\(h.duration)"
        case let .transition(vm, name, pfn, gfn, error):
            o += "\"kind\":\"transition\",\"op\":\"\(name)\""
            if let vm { o += ",\"vm\":\(vm.rawValue)" }
            if let pfn { o += ",\"pfn\":\"\(hex(pfn))\"" }
            if let gfn { o += ",\"gfn\":\"\(hex(gfn))\"" }
            o += ",\"result\":\"\(error.map { $0.description } ?? "0")\""
        case let .stage2(vmid, update, start, end):
            o += "\"kind\":\"stage2\",\"vmid\":\(vmid),\"start\":\"\(hex(start))\",\"end\":\"\(hex(end))\","
            switch update {
            case .clear: o += "\"op\":\"unmap\""
            case let .annotate(d): o += "\"op\":\"annotate\",\"owner\":\"\(d.annotationOwner.map { "\($0)" } ?? "?")\""
            case let .annotateDonation(handle, gfn):
                o += "\"op\":\"annotate\",\"owner\":\"guest\",\"vm\":\(handle.rawValue),\"gfn\":\"\(hex(gfn.rawValue))\""
            case let .map(output, permissions, state, _):
                o += "\"op\":\"map\",\"pa\":\"\(output)\",\"prot\":\"\(permissions)\",\"state\":\"\(state)\""
            case let .mapDevice(output): o += "\"op\":\"map-device\",\"pa\":\"\(output)\""
            }
        case let .restructure(r):
            o += "\"kind\":\"\(r.kind.rawValue)\",\"vmid\":\(r.vmid.rawValue),\"ipa\":\"\(hex(r.start.rawValue))\","
            o += "\"size\":\"\(hex(r.size))\""
        case let .tlbi(vmid, start, size):
            o += "\"kind\":\"tlbi\",\"vmid\":\(vmid),\"ipa\":\"\(hex(start))\",\"size\":\"\(hex(size))\""
        case let .fault(f):
            fault(f, into: &o)
        case let .power(vcpu, event):
            o += "\"kind\":\"power\",\"vcpu\":\(vcpu),\"event\":\"\(event)\""
        case let .warning(message):
            o += "\"kind\":\"warning\",\"message\":\(JSONValue.quoted(message))"
        case let .iommu(note):
            iommu(note, into: &o)
        case let .dma(device, stream, iova, bytes, result, duration):
            o += "\"kind\":\"dma\",\"device\":\(JSONValue.quoted(device)),\"sid\":\(stream),\"iova\":\"\(hex(iova))\","
            o += "\"bytes\":\(bytes),\"result\":\(JSONValue.quoted(result)),\"dur\":\(duration)"
        }
        return o + "}"
    }

    private static func fault(_ f: FaultRecord, into o: inout String) {
        switch f.source {
        case let .vcpu(vm, index): o += "\"kind\":\"fault\",\"vm\":\(vm.rawValue),\"vcpu\":\(index)"
        case let .host(vm):
            o += "\"kind\":\"host-fault\""
            if let vm { o += ",\"vm\":\(vm.rawValue)" }
        }
        if let gva = f.gva { o += ",\"gva\":\"\(hex(gva))\"" }
        if let gpa = f.gpa { o += ",\"gpa\":\"\(hex(gpa))\"" }
        o += ",\"access\":\"\(f.access.rawValue)\",\"size\":\(f.size),\"action\":\"\(f.action.rawValue)\""
        if let error = f.error { o += ",\"result\":\"\(error)\"" }
        if let reason = f.reason { o += ",\"reason\":\(JSONValue.quoted(reason))" }
        if let own = f.ownership { ownership(own, into: &o) }
        if let s = f.syndrome {
            o += ",\"esr\":\"\(hex(s.esr))\",\"far\":\"\(hex(s.far))\",\"hpfar\":\"\(hex(s.hpfar))\",\"syndrome\":\(JSONValue.quoted(s.decoded))"
        }
        if let i = f.instruction {
            o += ",\"insn\":{\"arch\":\"\(i.architecture)\",\"address\":\"\(hex(i.address))\",\"bytes\":\"\(i.byteString)\","
            o += "\"text\":\(JSONValue.quoted(i.text)),\"regs\":{"
            o += i.registers.map { "\"\($0.name)\":\"\(hex($0.value))\"" }.joined(separator: ",")
            o += "}}"
        }
    }

    private static func ownership(_ own: PageOwnership, into o: inout String) {
        if let page = own.page { o += ",\"pa\":\"\(page)\"" }
        if let owner = own.owner { o += ",\"owner\":\(JSONValue.quoted("\(owner)"))" }
        if let h = own.host { o += ",\"host\":\"\(h)\"" }
        if let y = own.hyp { o += ",\"hyp\":\"\(y)\"" }
        if let g = own.guest { o += ",\"guest\":\"\(g)\"" }
    }

    private static func iommu(_ note: IOMMUNotification, into o: inout String) {
        switch note {
        case let .attached(sid, domain, kind):
            o += "\"kind\":\"iommu\",\"op\":\"attach\",\"sid\":\(sid.rawValue),\"domain\":\(domain.rawValue),\"type\":\(JSONValue.quoted("\(kind)"))"
        case let .detached(sid):
            o += "\"kind\":\"iommu\",\"op\":\"detach\",\"sid\":\(sid.rawValue)"
        case let .mapped(domain, iova, output, size, permissions):
            o += "\"kind\":\"iommu\",\"op\":\"map\",\"domain\":\(domain.rawValue),\"iova\":\"\(hex(iova))\",\"pa\":\"\(output)\","
            o += "\"size\":\"\(hex(size))\",\"prot\":\"\(permissions)\""
        case let .unmapped(domain, iova, size):
            o += "\"kind\":\"iommu\",\"op\":\"unmap\",\"domain\":\(domain.rawValue),\"iova\":\"\(hex(iova))\",\"size\":\"\(hex(size))\""
        case let .iotlbInvalidated(domain, iova, size):
            o += "\"kind\":\"iotlbi\",\"domain\":\(domain.rawValue),\"iova\":\"\(hex(iova))\",\"size\":\"\(hex(size))\""
        case let .fault(e):
            o += "\"kind\":\"iommu-fault\",\"event\":\"\(e.id)\",\"sid\":\(e.stream.rawValue),\"iova\":\"\(hex(e.iova))\","
            o += "\"access\":\"\(e.access)\",\"size\":\(e.size),\"action\":\"terminated\""
            if let d = e.domain { o += ",\"domain\":\(d.rawValue)" }
            if let own = e.ownership { ownership(own, into: &o) }
            let (d0, d1, d2, d3) = e.dwords
            o += ",\"record\":[\"\(hex(d0))\",\"\(hex(d1))\",\"\(hex(d2))\",\"\(hex(d3))\"]"
        }
    }
}
