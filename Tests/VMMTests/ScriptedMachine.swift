import EL2
import EmbeddedImages
import ScriptedBackend
import Synchronization
import Tracing
@testable import VMM

/// Collects what a guest prints.
final class Console: Sendable {
    private let bytes = Mutex<[UInt8]>([])
    var text: String { String(decoding: bytes.withLock { $0 }, as: UTF8.self) }
    var sink: @Sendable ([UInt8]) -> Void { { [self] b in bytes.withLock { $0 += b } } }
}

/// A machine on the scripted backend: the real core, EL2 and devices, with vCPUs that replay
/// `scripts` instead of running instructions. The images are the built-in ones (the core loads
/// and checks them; nothing executes them).
struct ScriptedMachine {
    let machine: Machine
    let backend: ScriptedBackend
    let console = Console()

    init(_ scripts: [[VCPUStep]], profile: PKVMProfile = .mainline, protected: Bool = true,
         iommu: IOMMUMode? = .mirror, trace: EventTrace? = nil) throws {
        var c = MachineConfiguration(firmware: EmbeddedImage.firmware.bytes, payload: EmbeddedImage.hello.bytes)
        c.vcpus = scripts.count
        c.profile = profile
        c.isProtected = protected
        c.iommuMode = iommu
        c.trace = trace
        c.console = console.sink
        backend = ScriptedBackend(scripts: scripts)
        machine = try Machine(c, backend: backend)
    }

    /// What vCPU `i` saw.
    func transcript(_ i: Int = 0) -> [VCPUEvent] { backend.transcripts[i] }

    /// The results of every hypercall vCPU `i` made, in order.
    func results(_ i: Int = 0) -> [SMCCCRegisters] {
        transcript(i).compactMap { if case let .hypercall(_, r) = $0 { r } else { nil } }
    }
}

/// Script shorthands.
extension VCPUStep {
    static func call(_ f: SMCCCFunction, _ x1: UInt64 = 0, _ x2: UInt64 = 0, _ x3: UInt64 = 0) -> VCPUStep {
        .hypercall(SMCCCRegisters(UInt64(f.rawValue), x1, x2, x3))
    }
    static let systemOff = VCPUStep.call(.psciSystemOff)
}
