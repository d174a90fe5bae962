import EL2
import Foundation
import EmbeddedImages
import InterpBackend
import Synchronization
import Testing
import Tracing
import VMM

/// Collects what a guest prints.
final class Console: Sendable {
    private let bytes = Mutex<[UInt8]>([])
    var text: String { String(decoding: bytes.withLock { $0 }, as: UTF8.self) }
    var sink: @Sendable ([UInt8]) -> Void { { [self] b in bytes.withLock { $0 += b } } }
}

/// A machine running a built-in aarch64 image on the interpreter.
func interpMachine(_ image: EmbeddedImage, vcpus: Int = 1, protected: Bool = true, profile: PKVMProfile = .mainline,
                   iommu: IOMMUMode? = .mirror, trace: EventTrace? = nil, console: Console) throws -> Machine {
    var c = MachineConfiguration(firmware: EmbeddedImage.firmware.bytes(for: "aarch64"), payload: image.bytes(for: "aarch64"))
    c.profile = profile
    c.payloadName = image.rawValue
    c.vcpus = vcpus
    c.isProtected = protected
    c.iommuMode = iommu
    c.trace = trace
    c.console = console.sink
    return try Machine(c, backend: InterpBackend())
}

/// The built-in images on the AArch64 interpreter: no /dev/kvm needed.
@Suite struct InterpBootTests {
    @Test func helloBootsPrintsAndPowersOff() throws {
        let console = Console()
        let m = try interpMachine(.hello, console: console)
        let outcome = try m.run()
        #expect(outcome == .poweredOff, "\(outcome)\n\(console.text)")
        #expect(console.text.contains("Hello from a protected pvm guest!"), "\(console.text)")
        let stats = m.statistics
        #expect(stats.donated > 10)
        let report = try m.teardown()
        #expect(report.isClean, "\(report)")
        #expect(report.reclaimed == stats.donated)
    }
}

/// The regression guests on the interpreter, with the results they give on KVM.
@Suite struct InterpScenarioTests {
    @Test(arguments: [(PKVMProfile.mainline, 1), (.android, 1), (.mainline, 4), (.android, 4)])
    func shareGuestPassesEveryCheck(profile: PKVMProfile, vcpus: Int) throws {
        let console = Console()
        let m = try interpMachine(.share, vcpus: vcpus, profile: profile, console: console)
        let outcome = try m.run()
        #expect(outcome == .poweredOff, "\(outcome)\n\(console.text)")
        #expect(!console.text.contains("FAIL"), "\(console.text)")
        #expect(console.text.range(of: #"share: (\d+)/\1 checks passed"#, options: .regularExpression) != nil, "\(console.text)")
        let report = try m.teardown()
        #expect(report.isClean, "\(report)")
    }

    @Test func giveawayIsStoppedWhenItTouchesTheRelinquishedPage() throws {
        let console = Console()
        let m = try interpMachine(.giveaway, profile: .android, console: console)
        let outcome = try m.run()
        guard case let .faulted(report) = outcome else {
            Issue.record("\(outcome)\n\(console.text)")
            return
        }
        #expect(report.reason.contains("MEM_RELINQUISH"), "\(report.reason)")
        #expect(report.record?.syndrome?.decoded.contains("data abort from a lower EL") == true, "\(String(describing: report.record))")
        #expect(report.record?.instruction?.architecture == "aarch64")
        #expect(try m.teardown().isClean)
    }

    @Test(arguments: [IOMMUMode.mirror, .refcount])
    func dmaGuestPasses(iommu: IOMMUMode) throws {
        let console = Console()
        let m = try interpMachine(.dma, profile: .android, iommu: iommu, console: console)
        let outcome = try m.run()
        #expect(outcome == .poweredOff, "\(outcome)\n\(console.text)")
        #expect(!console.text.contains("FAIL"), "\(console.text)")
        #expect(try m.teardown().isClean)
    }
}
