import EL2
import Synchronization
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// One event of a `pvm boot --trace` file (JSON Lines; docs/trace-format.md).
public enum TraceEvent: Sendable {
    /// A guest hypercall and what it returned (x0..x3).
    case hypercall(vcpu: Int, function: UInt32, arguments: (UInt64, UInt64, UInt64), results: (UInt64, UInt64, UInt64, UInt64))
    /// An EL2 ownership transition the VMM or a hypercall asked for, and its outcome.
    case transition(name: String, pfn: UInt64?, gfn: UInt64?, error: HypError?)
    /// A stage-2 range update (the host's stage-2 has vmid 0).
    case stage2(vmid: UInt16, update: Stage2Update, start: UInt64, end: UInt64)
    /// A TLB invalidation EL2 issued.
    case tlbi(vmid: UInt16, start: UInt64, size: UInt64)
    /// A guest stage-2 fault and what EL2 / the VMM did about it.
    case guestFault(vcpu: Int, gpa: UInt64, access: String, size: Int, action: String, detail: String?)
    /// A host access to guest memory that EL2 refused.
    case hostFault(pa: UInt64, gpa: UInt64, access: String, error: HypError)
    /// A vCPU or machine power event (start, cpu-on, cpu-off, system-off, system-reset, halt).
    case power(vcpu: Int, event: String)
    /// A warning from EL2 (pKVM's WARN_ON) or the VMM.
    case warning(String)
    /// The SMMU: attach / detach, a mapping EL2 wrote, an IOTLB invalidation, a DMA fault.
    case iommu(IOMMUNotification)
    /// A device transfer finished or stopped: device name, stream, bytes moved, outcome.
    case dma(device: String, stream: UInt32, iova: UInt64, bytes: Int, result: String)
}

/// Writes trace events as JSON Lines, one `write(2)` per flush, from any thread. Time is in
/// nanoseconds since the trace was opened (CLOCK_MONOTONIC).
public final class EventTrace: Sendable {
    private struct State {
        var buffer: [UInt8] = []
        var failed: Int32 = 0
    }

    private let fd: Int32
    private let start: UInt64
    private let state = Mutex(State())
    public let path: String

    /// Creates (or truncates) `path`.
    public init(path: String) throws(VMMError) {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        if fd < 0 { throw VMMError.io(operation: "open trace file \(path)", errno: errno) }
        self.fd = fd
        self.path = path
        start = monotonicNanoseconds()
    }

    deinit { _ = close(fd) }

    public func record(_ event: TraceEvent) {
        let line = Self.encode(event, time: monotonicNanoseconds() &- start)
        state.withLock { s in
            s.buffer.append(contentsOf: line.utf8)
            s.buffer.append(0x0a)
            if s.buffer.count >= 1 << 16 { flushLocked(&s) }
        }
    }

    /// Writes out everything recorded so far. Throws if any write failed.
    public func flush() throws(VMMError) {
        let failed = state.withLock { s -> Int32 in
            flushLocked(&s)
            return s.failed
        }
        if failed != 0 { throw VMMError.io(operation: "write trace file \(path)", errno: failed) }
    }

    private func flushLocked(_ s: inout State) {
        var done = 0
        s.buffer.withUnsafeBytes { raw in
            while done < raw.count {
                let n = write(fd, raw.baseAddress! + done, raw.count - done)
                if n < 0 {
                    if errno == EINTR { continue }
                    s.failed = errno
                    break
                }
                done += n
            }
        }
        s.buffer.removeAll(keepingCapacity: true)
    }

    static func encodeIOMMU(_ note: IOMMUNotification) -> String {
        switch note {
        case let .attached(sid, domain, kind):
            return "\"kind\":\"iommu\",\"op\":\"attach\",\"sid\":\(sid.rawValue),\"domain\":\(domain.rawValue),\"type\":\(jsonString("\(kind)"))"
        case let .detached(sid):
            return "\"kind\":\"iommu\",\"op\":\"detach\",\"sid\":\(sid.rawValue)"
        case let .mapped(domain, iova, output, size, permissions):
            return "\"kind\":\"iommu\",\"op\":\"map\",\"domain\":\(domain.rawValue),\"iova\":\"\(hex(iova))\",\"pa\":\"\(output)\","
                + "\"size\":\"\(hex(size))\",\"prot\":\"\(permissions)\""
        case let .unmapped(domain, iova, size):
            return "\"kind\":\"iommu\",\"op\":\"unmap\",\"domain\":\(domain.rawValue),\"iova\":\"\(hex(iova))\",\"size\":\"\(hex(size))\""
        case let .iotlbInvalidated(domain, iova, size):
            return "\"kind\":\"iotlbi\",\"domain\":\(domain.rawValue),\"iova\":\"\(hex(iova))\",\"size\":\"\(hex(size))\""
        case let .fault(e):
            var o = "\"kind\":\"iommu-fault\",\"event\":\"\(e.id)\",\"sid\":\(e.stream.rawValue),\"iova\":\"\(hex(e.iova))\","
            o += "\"access\":\"\(e.access)\",\"size\":\(e.size)"
            if let d = e.domain { o += ",\"domain\":\(d.rawValue)" }
            if let own = e.ownership {
                if let page = own.page { o += ",\"pa\":\"\(page)\"" }
                if let owner = own.owner { o += ",\"owner\":\(jsonString("\(owner)"))" }
                if let h = own.host { o += ",\"host\":\"\(h)\"" }
                if let y = own.hyp { o += ",\"hyp\":\"\(y)\"" }
                if let g = own.guest { o += ",\"guest\":\"\(g)\"" }
            }
            let (d0, d1, d2, d3) = e.dwords
            o += ",\"record\":[\"\(hex(d0))\",\"\(hex(d1))\",\"\(hex(d2))\",\"\(hex(d3))\"]"
            return o
        }
    }

    static func encode(_ event: TraceEvent, time: UInt64) -> String {
        var o = "{\"t\":\(time),"
        switch event {
        case let .hypercall(vcpu, function, a, r):
            let name = SMCCCFunction(rawValue: function)?.name ?? "UNKNOWN"
            o += "\"kind\":\"hypercall\",\"vcpu\":\(vcpu),\"fn\":\"\(hex(function))\",\"name\":\"\(name)\","
            o += "\"args\":[\"\(hex(a.0))\",\"\(hex(a.1))\",\"\(hex(a.2))\"],"
            o += "\"ret\":[\"\(hex(r.0))\",\"\(hex(r.1))\",\"\(hex(r.2))\",\"\(hex(r.3))\"]"
        case let .transition(name, pfn, gfn, error):
            o += "\"kind\":\"transition\",\"op\":\"\(name)\""
            if let pfn { o += ",\"pfn\":\"\(hex(pfn))\"" }
            if let gfn { o += ",\"gfn\":\"\(hex(gfn))\"" }
            o += ",\"result\":\"\(error.map { $0.description } ?? "0")\""
        case let .stage2(vmid, update, start, end):
            o += "\"kind\":\"stage2\",\"vmid\":\(vmid),\"start\":\"\(hex(start))\",\"end\":\"\(hex(end))\","
            switch update {
            case .clear: o += "\"op\":\"unmap\""
            case let .annotate(d): o += "\"op\":\"annotate\",\"owner\":\"\(d.annotationOwner.map { "\($0)" } ?? "?")\""
            case let .map(output, permissions, state, _):
                o += "\"op\":\"map\",\"pa\":\"\(output)\",\"prot\":\"\(permissions)\",\"state\":\"\(state)\""
            case let .mapDevice(output): o += "\"op\":\"map-device\",\"pa\":\"\(output)\""
            }
        case let .tlbi(vmid, start, size):
            o += "\"kind\":\"tlbi\",\"vmid\":\(vmid),\"ipa\":\"\(hex(start))\",\"size\":\"\(hex(size))\""
        case let .guestFault(vcpu, gpa, access, size, action, detail):
            o += "\"kind\":\"fault\",\"vcpu\":\(vcpu),\"gpa\":\"\(hex(gpa))\",\"access\":\"\(access)\",\"size\":\(size),"
            o += "\"action\":\"\(action)\""
            if let detail { o += ",\"detail\":\(jsonString(detail))" }
        case let .hostFault(pa, gpa, access, error):
            o += "\"kind\":\"host-fault\",\"pa\":\"\(hex(pa))\",\"gpa\":\"\(hex(gpa))\",\"access\":\"\(access)\","
            o += "\"result\":\"\(error)\""
        case let .power(vcpu, event):
            o += "\"kind\":\"power\",\"vcpu\":\(vcpu),\"event\":\"\(event)\""
        case let .warning(message):
            o += "\"kind\":\"warning\",\"message\":\(jsonString(message))"
        case let .iommu(note):
            o += encodeIOMMU(note)
        case let .dma(device, stream, iova, bytes, result):
            o += "\"kind\":\"dma\",\"device\":\(jsonString(device)),\"sid\":\(stream),\"iova\":\"\(hex(iova))\","
            o += "\"bytes\":\(bytes),\"result\":\(jsonString(result))"
        }
        return o + "}"
    }
}

/// `message` as a JSON string literal.
func jsonString(_ message: String) -> String {
    var o = "\""
    for scalar in message.unicodeScalars {
        switch scalar {
        case "\"": o += "\\\""
        case "\\": o += "\\\\"
        case "\n": o += "\\n"
        case "\t": o += "\\t"
        case "\r": o += "\\r"
        default:
            if scalar.value < 0x20 { o += "\\u" + String(repeating: "0", count: 4 - String(scalar.value, radix: 16).count) + String(scalar.value, radix: 16) }
            else { o.unicodeScalars.append(scalar) }
        }
    }
    return o + "\""
}

/// CLOCK_MONOTONIC in nanoseconds.
public func monotonicNanoseconds() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}
