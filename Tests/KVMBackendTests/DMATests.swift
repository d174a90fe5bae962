import EL2
import KVMBackend
import EmbeddedImages
import Foundation
import Testing
import Tracing
@testable import VMM

/// The SMMU in a booted machine (docs/iommu.md): the `dma` guest in both designs, and the
/// host's DMA engine against host and guest pages.
@Suite(.serialized, .enabled(if: kvmUnavailable == nil, "needs /dev/kvm"))
struct DMATests {
    func boot(_ mode: IOMMUMode, trace: EventTrace? = nil) throws -> (Machine, String) {
        let console = Console()
        var c = MachineConfiguration(firmware: EmbeddedImage.firmware.bytes, payload: EmbeddedImage.dma.bytes)
        c.payloadName = "dma"
        c.iommuMode = mode
        c.trace = trace
        c.console = console.sink
        let m = try Machine(c, backend: KVMBackend())
        #expect(try m.run() == .poweredOff, "\(console.text)")
        return (m, console.text)
    }

    /// Mirror: the unshare wins the race, the block device stops at its next chunk, nothing
    /// lands past the stop; the trace records the IOMMU fault with the page's new owner.
    @Test func mirrorUnshareStopsAnInFlightTransfer() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("pvm-dma-\(getpid()).jsonl").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        let trace = try EventTrace(path: path)
        let (m, text) = try boot(.mirror, trace: trace)
        #expect(text.contains("dma: design: mirror"), "\(text)")
        #expect(text.contains("dma: ok no byte landed past the stop"))
        #expect(text.contains("dma: 15 checks, 0 failed"), "\(text)")
        #expect(m.hypervisor.checkInvariants().isEmpty)
        let faults = m.hypervisor.iommuEvents().records
        let blockFault = try #require(faults.first { $0.stream == StreamID(2) })
        #expect(blockFault.id == .translation && blockFault.access == .write)
        if case .guest(let vm, _)? = blockFault.ownership?.owner { #expect(vm == m.handle) } else {
            Issue.record("the fault record does not name the guest as owner: \(blockFault)")
        }
        #expect(faults.contains { $0.stream == Machine.guestDMAStream && $0.ownership?.guest == .noPage })
        #expect(try m.teardown().isClean)
        try trace.flush()
        let lines = try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n")
        #expect(lines.contains { $0.contains("\"kind\":\"iommu-fault\"") && $0.contains("\"sid\":2") && $0.contains("\"owner\":\"vm") })
        #expect(lines.contains { $0.contains("\"kind\":\"iotlbi\"") })
        #expect(lines.contains { $0.contains("\"kind\":\"iommu\",\"op\":\"attach\"") })
        #expect(lines.contains { $0.contains("\"kind\":\"dma\",\"device\":\"virtio-blk\"") })
    }

    /// Refcount: the host's DMA mapping refuses the unshare until the transfer is over.
    @Test func refcountRefusesTheUnshareUntilUnmapped() throws {
        let (m, text) = try boot(.refcount)
        #expect(text.contains("dma: design: refcount"), "\(text)")
        #expect(text.contains("dma: 14 checks, 0 failed"), "\(text)")
        #expect(m.hypervisor.checkInvariants().isEmpty)
        #expect(try m.teardown().isClean)
    }

    /// The host's own engine: host pages yes, the guest's private pages no, nothing written.
    @Test func hostEngineReachesOnlyHostPages() throws {
        let console = Console()
        let m = try machine(.hello, console: console)
        #expect(try m.run() == .poweredOff)
        let engine = try #require(m.hostDMA)
        let hostPage = m.hypervisor.memory.ramStart.rawValue + m.configuration.memory + (4 << 20)
        let ok = engine.perform(.fill(at: hostPage, byte: 0x6B, count: 8192))
        #expect(ok == DMAEngine.Outcome(bytes: 8192, fault: nil))
        // Guest page 1 (the GDT) is guest-private until teardown.
        let guestPage = m.ramBase + 0x1000
        var before = [UInt8](repeating: 0, count: 64)
        before.withUnsafeMutableBytes { m.hypervisor.memory.read(PhysAddr(guestPage), into: $0) }
        let refused = engine.perform(.copy(from: hostPage, to: guestPage, count: 64))
        #expect(refused.bytes == 0 && refused.fault?.event.id == .translation)
        var after = [UInt8](repeating: 0, count: 64)
        after.withUnsafeMutableBytes { m.hypervisor.memory.read(PhysAddr(guestPage), into: $0) }
        #expect(before == after)
        #expect(try m.teardown().isClean)
        // After teardown the page is the host's again, and so is its DMA.
        #expect(engine.perform(.fill(at: guestPage, byte: 0, count: 64)).fault == nil)
    }
}
