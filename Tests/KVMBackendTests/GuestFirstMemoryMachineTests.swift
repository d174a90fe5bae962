import EL2
import EmbeddedImages
import Foundation
import InterpBackend
import KVMBackend
import Testing
@testable import VMM

/// Guest-first memory with a real guest, on both backends (docs/guest-first-memory.md): the
/// convert image's block workload under `--guest-block 2m` and 4k, then host conversions of
/// what it left, with data checked in place both ways.
@Suite(.serialized)
struct GuestFirstMemoryMachineTests {
    static let backends = ["kvm", "interp"]

    func machine(_ backend: String, block: GuestBlockSize, console: Console) throws -> Machine? {
        if backend == "kvm", let reason = kvmUnavailable {
            print("GuestFirstMemoryMachineTests: skipping kvm: \(reason)")
            return nil
        }
        let arch = backend == "kvm" ? "x86-64" : "aarch64"
        var c = MachineConfiguration(firmware: EmbeddedImage.firmware.bytes(for: arch), payload: EmbeddedImage.convert.bytes(for: arch))
        c.payloadName = "convert"
        c.profile = .android
        c.guestBlock = block
        c.console = console.sink
        return try Machine(c, backend: backend == "kvm" ? try KVMBackend() : InterpBackend())
    }

    /// The convert guest's block workload run to power-off with all its checks passed; nil
    /// when the backend is missing here.
    func ranConvert(_ backend: String, block: GuestBlockSize, console: Console,
                    sourceLocation: SourceLocation = #_sourceLocation) throws -> Machine? {
        guard let m = try machine(backend, block: block, console: console) else { return nil }
        #expect(try m.run() == .poweredOff, "\(console.text)", sourceLocation: sourceLocation)
        #expect(console.text.contains("convert: 9/9 checks passed"), "\(console.text)", sourceLocation: sourceLocation)
        return m
    }

    /// The block region the guest printed (`convert: region 0x...`).
    func region(_ console: Console) throws -> UInt64 {
        let line = try #require(console.text.split(separator: "\n").first { $0.hasPrefix("convert: region 0x") })
        return try #require(UInt64(line.dropFirst("convert: region 0x".count), radix: 16))
    }

    func level(_ m: Machine, _ gpa: UInt64) throws -> Int? {
        try m.hypervisor.guestPageView(vm: m.handle, gfn: IPA(gpa).gfn).level
    }

    func expectSound(_ m: Machine, sourceLocation: SourceLocation = #_sourceLocation) {
        let v = m.hypervisor.checkInvariants().map(\.message)
        #expect(v.isEmpty, "\(v.joined(separator: "\n"))", sourceLocation: sourceLocation)
        let given = m.guestPages.withLock { Array($0.given) }
        let a = m.guestMemory.checkAgreement(given: given)
        #expect(a.isEmpty, "\(a.joined(separator: "\n"))", sourceLocation: sourceLocation)
    }

    @Test(arguments: backends)
    func blocksSplitAndCoalesceAndHostConversionsKeepData(backend: String) throws {
        let console = Console()
        guard let m = try ranConvert(backend, block: .block2M, console: console) else { return }
        let base = try region(console), block: UInt64 = 2 << 20
        let stats = m.statistics
        // Inside: one split and merge; whole block: neither; across two blocks: two and two; the
        // 4 pages left shared: one split. On x86-64 the console buffer page, which the guest
        // shares at boot, splits the first 2 MiB block too.
        let extraSplits = backend == "kvm" ? 1 : 0
        #expect(stats.splits - extraSplits == 4 && stats.merges == 3 && stats.blocksDonated >= 2, "\(stats)")
        #expect(try level(m, base) == 3)
        #expect(try level(m, base + block) == 2)
        expectSound(m)
        // The guest's stamps, read by the host in place.
        for k in 0 ..< UInt64(4) {
            let gpa = base + k * pageSize
            #expect(m.guestMemory.attribute(IPA(gpa).gfn) == .shared)
            let bytes = try m.accessor.read(gpa: gpa, count: 8)
            #expect(bytes.withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) } == gpa ^ 0x5A5A_0000_0000_0000)
        }
        #expect(m.guestMemory.attribute(IPA(base + 4 * pageSize).gfn) == .private)
        // The host writes into a shared page, then converts the four back: the bytes stay, the
        // block coalesces, the host can no longer read.
        try m.accessor.write(gpa: base, Array("host bytes".utf8))
        #expect(try m.convertGuestMemory(gfn: IPA(base).gfn, pages: 4, to: .private) == 4)
        #expect(m.statistics.merges == 4)
        #expect(try level(m, base) == 2)
        var back = [UInt8](repeating: 0, count: 10)
        back.withUnsafeMutableBytes { m.hypervisor.memory.read(PhysAddr(m.ramBase + m.layout.offset(base)), into: $0) }
        #expect(back == Array("host bytes".utf8))
        #expect(throws: HostAccessError.self) { _ = try m.accessor.read(gpa: base, count: 1) }
        // Memory the guest never touched, converted by the host: donated as one block.
        let untouched = base + 2 * block
        #expect(try m.convertGuestMemory(gfn: IPA(untouched).gfn, pages: 512, to: .private) == 512)
        #expect(try level(m, untouched) == 2)
        // To shared from the host: refused at the first private page, nothing changed.
        #expect(throws: ConversionError(.EPERM, at: IPA(base).gfn)) {
            try m.convertGuestMemory(gfn: IPA(base).gfn, pages: 8, to: .shared)
        }
        expectSound(m)
        let teardown = try m.teardown()
        #expect(teardown.isClean, "\(teardown.leaks.prefix(4)) \(teardown.violations.prefix(4))")
    }

    @Test(arguments: backends)
    func pageLeavesNeverSplitOrCoalesce(backend: String) throws {
        let console = Console()
        guard let m = try ranConvert(backend, block: .page, console: console) else { return }
        let stats = m.statistics
        #expect(stats.splits == 0 && stats.merges == 0 && stats.blocksDonated == 0)
        #expect(try level(m, try region(console) + (2 << 20)) == 3)
        expectSound(m)
        #expect(try m.teardown().isClean)
    }
}
