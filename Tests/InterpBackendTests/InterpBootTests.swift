import EL2
import Foundation
import ScriptedBackend
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

/// Deterministic scheduling: the same seed gives the same trace byte for byte; another seed
/// another interleaving.
@Suite struct DeterministicSchedulingTests {
    func tracedRun(_ image: EmbeddedImage, seed: UInt64, vcpus: Int) throws -> [UInt8] {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("pvm-det-\(getpid())-\(UInt32.random(in: 0 ... .max)).jsonl").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        var c = MachineConfiguration(firmware: EmbeddedImage.firmware.bytes(for: "aarch64"), payload: image.bytes(for: "aarch64"))
        c.payloadName = image.rawValue
        c.vcpus = vcpus
        c.profile = .android
        c.scheduling = .deterministic(seed: seed)
        c.trace = try EventTrace(path: path)
        let m = try Machine(c, backend: InterpBackend())
        #expect(try m.run() == .poweredOff)
        #expect(try m.teardown().isClean)
        return [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
    }

    /// The vCPU of every hypercall, in order: the interleaving.
    func interleaving(_ trace: [UInt8]) -> [Int] {
        String(decoding: trace, as: UTF8.self).split(separator: "\n").compactMap { line -> Int? in
            guard line.contains("\"kind\":\"hypercall\""), let r = line.range(of: "\"vcpu\":") else { return nil }
            return Int(line[r.upperBound...].prefix { $0.isNumber })
        }
    }

    @Test func theSameSeedGivesTheSameTraceAndAnotherSeedAnotherInterleaving() throws {
        let a = try tracedRun(.share, seed: 7, vcpus: 4)
        let b = try tracedRun(.share, seed: 7, vcpus: 4)
        #expect(a == b, "same seed, different traces")
        let c = try tracedRun(.share, seed: 8, vcpus: 4)
        #expect(interleaving(a) != interleaving(c), "different seeds, same interleaving")
        #expect(Set(interleaving(a)) == [0, 1, 2, 3])
    }

    /// The block device's transfer runs chunk by chunk in the scheduler's turns: reproducible too.
    @Test func aDeviceTransferIsScheduledDeterministically() throws {
        let a = try tracedRun(.dma, seed: 3, vcpus: 1)
        let b = try tracedRun(.dma, seed: 3, vcpus: 1)
        #expect(a == b)
    }

    @Test func kvmCannotRunDeterministically() throws {
        // Any backend that cannot count instructions refuses; the scripted double stands in.
        var c = MachineConfiguration(firmware: EmbeddedImage.firmware.bytes, payload: EmbeddedImage.hello.bytes)
        c.scheduling = .deterministic(seed: 1)
        #expect(throws: VMMError.self) { _ = try Machine(c, backend: NoClockBackend()) }
    }
}

/// A backend with no instruction count (like KVM), to see the deterministic mode refused.
final class NoClockBackend: ExecutionBackend, @unchecked Sendable {
    let inner = ScriptedBackend(scripts: [[]])
    var name: String { "noclock" }
    var architecture: GuestArchitecture { inner.architecture }
    var maxVCPUs: Int { inner.maxVCPUs }
    var eventSink: (any EL2EventSink)? { inner.eventSink }
    func attach(_ ram: GuestRAM) throws(VMMError) { try inner.attach(ram) }
    func attachGuest(vmid: VMID, stage2: GuestStage2) { inner.attachGuest(vmid: vmid, stage2: stage2) }
    func makeVCPU(index: Int) throws(VMMError) -> any GuestVCPU { try inner.makeVCPU(index: index) }
    func bootStructures(memory: UInt64) -> [(gpa: UInt64, bytes: [UInt8])] { inner.bootStructures(memory: memory) }
    var bootStructurePages: Range<UInt64> { inner.bootStructurePages }
    var failure: String? { nil }
}
