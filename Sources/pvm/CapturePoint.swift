import Tracing

/// `pvm inspect --at EVENT`: the event at which to capture a running guest, counted from the
/// start (boot-time placements by the VMM are not faults here). The capture is taken on the
/// thread that recorded the event, right after EL2 handled it, while the guest is paused there.
enum CapturePoint: Equatable, CustomStringConvertible {
    /// The Nth guest stage-2 fault (a first touch, a MEM_SHARE of an untouched page, a stop).
    case fault(Int)
    /// The Nth hypercall with this SMCCC name (MEM_SHARE, PSCI_CPU_ON, ...), once answered.
    case hypercall(String, Int)
    /// The Nth DMA transfer, finished or stopped.
    case dma(Int)
    /// The Nth PSCI CPU_ON that started a vCPU.
    case cpuOn(Int)

    static let forms = "fault[:N], hypercall:NAME[:N] (an SMCCC name such as MEM_SHARE), dma[:N], cpu-on[:N]"

    init?(_ text: String) {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
        func nth(_ i: Int) -> Int? {
            guard parts.count > i else { return 1 }
            guard parts.count == i + 1, let n = Int(parts[i]), n >= 1, n <= 1_000_000 else { return nil }
            return n
        }
        switch parts.first?.lowercased() {
        case "fault": guard let n = nth(1) else { return nil }; self = .fault(n)
        case "dma": guard let n = nth(1) else { return nil }; self = .dma(n)
        case "cpu-on": guard let n = nth(1) else { return nil }; self = .cpuOn(n)
        case "hypercall":
            guard parts.count >= 2, !parts[1].isEmpty, parts[1].allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" }),
                  let n = nth(2) else { return nil }
            self = .hypercall(parts[1].uppercased(), n)
        default: return nil
        }
    }

    /// Whether `event` is one this point counts.
    func counts(_ event: TraceEvent) -> Bool {
        switch (self, event) {
        case let (.fault, .fault(f)): f.access != .boot
        case let (.hypercall(name, _), .hypercall(h)): h.name.uppercased() == name
        case (.dma, .dma): true
        case let (.cpuOn, .power(_, e)): e == "cpu-on"
        default: false
        }
    }

    var occurrence: Int {
        switch self {
        case let .fault(n), let .hypercall(_, n), let .dma(n), let .cpuOn(n): n
        }
    }

    var description: String {
        let nth = occurrence == 1 ? "the first" : "occurrence \(occurrence) of the"
        return switch self {
        case .fault: "\(nth) guest fault"
        case let .hypercall(name, _): "\(nth) \(name) hypercall"
        case .dma: "\(nth) DMA transfer"
        case .cpuOn: "\(nth) CPU_ON"
        }
    }
}
