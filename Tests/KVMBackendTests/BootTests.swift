import EL2
import EmbeddedImages
import Foundation
import KVM
import KVMBackend
import Synchronization
import Testing
import Disassembly
import Tracing
@testable import VMM

/// Why the end-to-end tests cannot run here, printed once, or nil when /dev/kvm works.
let kvmUnavailable: String? = {
    let reason = KVMSystem.unavailableReason()
    if let reason { print("VMMTests: skipping KVM boots: \(reason)") }
    return reason
}()

/// Collects what a guest prints.
final class Console: Sendable {
    private let bytes = Mutex<[UInt8]>([])
    var text: String { String(decoding: bytes.withLock { $0 }, as: UTF8.self) }
    var sink: @Sendable ([UInt8]) -> Void { { [self] b in bytes.withLock { $0 += b } } }
}

/// Builds a machine for a built-in image.
func machine(_ image: EmbeddedImage, vcpus: Int = 1, protected: Bool = true, tamper: Bool = false,
             profile: PKVMProfile = .mainline, trace: EventTrace? = nil, console: Console) throws -> Machine {
    var c = MachineConfiguration(firmware: EmbeddedImage.firmware.bytes, payload: image.bytes)
    c.profile = profile
    c.payloadName = image.rawValue
    c.vcpus = vcpus
    c.isProtected = protected
    c.tamperPayload = tamper
    c.trace = trace
    c.console = console.sink
    return try Machine(c, backend: KVMBackend())
}

@Suite(.serialized, .enabled(if: kvmUnavailable == nil, "needs /dev/kvm"))
struct BootTests {
    @Test func helloBootsPrintsAndPowersOff() throws {
        let console = Console()
        let m = try machine(.hello, console: console)
        #expect(try m.run() == .poweredOff)
        #expect(console.text.contains("pvmfw: payload 6"))
        #expect(console.text.contains("Hello from a protected pvm guest!"))
        let stats = m.statistics
        #expect(stats.donated > 10)
        #expect(stats.shared == 1)  // the console page, by the firmware
        let report = try m.teardown()
        #expect(report.isClean, "\(report)")
        #expect(report.reclaimed == stats.donated)
    }

    /// The share guest expects each profile's answers (it tells them apart by FEATURES).
    @Test(arguments: [(PKVMProfile.mainline, 29), (.android, 30)])
    func shareGuestPassesEveryCheck(profile: PKVMProfile, checks: Int) throws {
        let console = Console()
        let m = try machine(.share, profile: profile, console: console)
        #expect(try m.run() == .poweredOff)
        #expect(console.text.contains("share: \(profile == .android ? "Android" : "mainline") pKVM ABI"))
        #expect(console.text.contains("share: \(checks)/\(checks) checks passed"), "\(console.text)")
        #expect(!console.text.contains("FAIL"))
        #expect(m.hypervisor.checkInvariants().isEmpty)
        #expect(try m.teardown().isClean)
    }

    @Test func vmmReadOfAPrivatePageIsRefused() throws {
        let console = Console()
        let m = try machine(.hello, console: console)
        #expect(try m.run() == .poweredOff)
        // The payload's first page is the guest's: EL2 refuses the host, and says so.
        #expect(throws: HostAccessError.self) { _ = try m.accessor.read(gpa: GuestLayout.payloadWindowStart, count: 16) }
        do {
            _ = try m.accessor.read(gpa: GuestLayout.payloadWindowStart, count: 16)
        } catch {
            #expect(error.error == .EPERM)
            #expect(!error.isWrite)
        }
        // The console page was shared by the firmware: the host may read it.
        let shared = try m.accessor.read(gpa: GuestLayout.consolePage, count: 5)
        #expect(shared.count == 5)
        #expect(try m.teardown().isClean)
    }

    @Test func guestTouchingAPageItGaveAwayIsStopped() throws {
        let console = Console()
        let m = try machine(.giveaway, profile: .android, console: console)
        guard case let .faulted(report) = try m.run() else {
            Issue.record("giveaway was not stopped: \(console.text)")
            return
        }
        #expect(console.text.contains("relinquished page"))
        #expect(!console.text.contains("BUG"))
        #expect(report.access == "write")
        #expect(report.reason.contains("MEM_RELINQUISH"))
        #expect(report.gpa.map { $0 & 0xfff } == 0)
        #expect(report.instruction?.hasPrefix("mov") == true, "\(report)")
        #expect(m.statistics.relinquished == 1)
        let teardown = try m.teardown()
        #expect(teardown.isClean, "\(teardown)")
    }

    /// The guest's `movb $0x55, (reg)` to the page it relinquished: the stop's fault record and
    /// the trace's last fault both carry that instruction, decoded by Capstone, with the
    /// register's value, the page's ownership and EL2's action; the trace reads back whole.
    @Test func writeToAGivenAwayPageLeavesAFaultRecordWithTheInstruction() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("pvm-giveaway-\(getpid()).jsonl").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        let console = Console()
        let m = try machine(.giveaway, profile: .android, trace: try EventTrace(path: path), console: console)
        guard case let .faulted(report) = try m.run() else {
            Issue.record("giveaway was not stopped: \(console.text)")
            return
        }
        _ = try m.teardown()
        let record = try #require(report.record)
        let insn = try #require(record.instruction)
        #expect(insn.text.hasPrefix("mov byte ptr [") && insn.text.hasSuffix("], 0x55"), "\(insn.text)")
        #expect(insn.address == report.rip)
        #expect(insn.architecture == "x86-64")
        // The bytes are the instruction: decoding them again gives the same text.
        #expect(try Disassembler(.x86_64).decode(insn.bytes, address: insn.address)?.text == insn.text)
        // The base register's value is the address written: the relinquished page.
        let base = String(insn.text.dropFirst("mov byte ptr [".count).prefix { $0 != "]" })
        #expect(insn.registers.first { $0.name == base }?.value == report.gpa)
        #expect(record.gva == report.gpa && record.access == .write && record.size == 1 && record.action == .stopped)
        #expect(record.ownership?.owner == .host && record.ownership?.host == .owned && record.ownership?.guest == .noPage)
        #expect("\(report)".contains("insn:    \(insn.text)"))

        let lines = try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n").map(String.init)
        let trace = try TraceFile(path: path)
        #expect(trace.records.map(\.jsonLine) == lines)
        let last = try #require(trace.records.last { $0.kind == .fault })
        #expect(last.string("action") == "stopped")
        #expect(last["insn"]?.object?["text"]?.string == insn.text)
        #expect(last["insn"]?.object?["bytes"]?.string == insn.byteString)
        #expect(trace.machines.first?.image == "giveaway")
        // Every lazily donated page has a record too, with the instruction that touched it.
        let donated = trace.records.filter { $0.kind == .fault && $0.string("action") == "donated" }
        #expect(donated.count == m.statistics.donated)
        let byInstruction = donated.filter { !["fetch", "boot"].contains($0.string("access")) }
        #expect(!byInstruction.isEmpty && byInstruction.allSatisfy { $0["insn"] != nil })
    }

    @Test func memShareOfAnUntouchedPageTakesTheFaultThenRetryPath() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("pvm-share-\(getpid()).jsonl").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        let console = Console()
        let m = try machine(.share, trace: try EventTrace(path: path), console: console)
        #expect(try m.run() == .poweredOff)
        #expect(console.text.contains("share: ok MEM_SHARE untouched page"), "\(console.text)")
        let lines = try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n")
        // -ENOENT from guest_share_host, a donation for the share, then the retry succeeding.
        let retried = lines.firstIndex { $0.contains("\"op\":\"guest_share_host\"") && $0.contains("-ENOENT") }
        #expect(retried != nil)
        if let retried {
            let rest = lines[retried...]
            #expect(rest.contains { $0.contains("\"access\":\"share\"") && $0.contains("\"action\":\"donated\"") })
            #expect(rest.contains { $0.contains("\"op\":\"guest_share_host\"") && $0.contains("\"result\":\"0\"") })
        }
        _ = try m.teardown()
    }

    @Test func teardownLeavesNoGuestByteReadableByTheHost() throws {
        let console = Console()
        let m = try machine(.hello, console: console)
        #expect(try m.run() == .poweredOff)
        let report = try m.teardown()
        #expect(report.isClean, "\(report)")
        #expect(report.verifiedZero > 10)
        // Every page of guest RAM is the host's again, and only the page the guest shared (the
        // console) still holds anything.
        let memory = m.configuration.memory
        var nonZero: [UInt64] = []
        for gpa in stride(from: UInt64(0), to: memory, by: 4096) {
            let page = try m.accessor.read(gpa: gpa, count: 4096)
            if page.contains(where: { $0 != 0 }) { nonZero.append(gpa) }
        }
        #expect(nonZero == [GuestLayout.consolePage])
    }

    @Test func tamperedPayloadIsRefusedByTheFirmware() throws {
        let console = Console()
        let m = try machine(.hello, tamper: true, console: console)
        #expect(try m.run() == .reset)
        #expect(console.text.contains("pvmfw: payload rejected: SHA-256 mismatch"))
        #expect(!console.text.contains("Hello from"))
        #expect(try m.teardown().isClean)
    }

    @Test(arguments: [(PKVMProfile.mainline, 31), (.android, 32)])
    func fourVCPUsSharingAndUnsharingKeepEL2Consistent(profile: PKVMProfile, checks: Int) throws {
        let console = Console()
        let m = try machine(.share, vcpus: 4, profile: profile, console: console)
        #expect(try m.run() == .poweredOff)
        #expect(console.text.contains("share: ok smp share/unshare on 4 vCPUs"), "\(console.text)")
        #expect(console.text.contains("\(checks)/\(checks) checks passed"))
        #expect(m.statistics.shared > 800)
        #expect(m.hypervisor.checkInvariants().isEmpty)
        let report = try m.teardown()
        #expect(report.isClean, "\(report)")
    }

    @Test func nonProtectedGuestGetsSharedPages() throws {
        let console = Console()
        let m = try machine(.hello, protected: false, console: console)
        #expect(try m.run() == .poweredOff)
        #expect(console.text.contains("Hello from a non-protected pvm guest!"))
        // The host shared its pages: it can still read the guest's memory.
        #expect(try m.accessor.read(gpa: GuestLayout.payloadWindowStart, count: 4).count == 4)
        #expect(m.hypervisor.checkInvariants().isEmpty)
        #expect(try m.teardown().isClean)
    }

    @Test(arguments: [
        ([UInt8](), "empty"),
        ([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1], "truncated"),
        (Array("#!/bin/sh\necho not an image\n".utf8), "not an ELF"),
        (Array(EmbeddedImage.hello.bytes.prefix(200)), "truncated"),
        ([0x7f, 0x45, 0x4c, 0x46, 0xff], "too large"),  // stands for 16 MiB, built below
    ])
    func badImagesAreRefusedBeforeBoot(bytes: [UInt8], message: String) throws {
        let payload = message == "too large" ? [UInt8](repeating: 0x7f, count: 16 << 20) : bytes
        var c = MachineConfiguration(firmware: EmbeddedImage.firmware.bytes, payload: payload)
        c.payloadName = "bad"
        #expect {
            _ = try Machine(c, backend: KVMBackend())
        } throws: { error in
            guard let e = error as? VMMError, case .image = e else { return false }
            return e.description.contains(message)
        }
    }

    @Test func imageLinkedOutsideGuestMemoryIsRefused() throws {
        // The firmware is linked at 0x10000: as a payload it lies outside the load window.
        var c = MachineConfiguration(firmware: EmbeddedImage.firmware.bytes, payload: EmbeddedImage.firmware.bytes)
        c.payloadName = "firmware-as-payload"
        #expect {
            _ = try Machine(c, backend: KVMBackend())
        } throws: { error in
            (error as? VMMError)?.description.contains("outside guest memory window") == true
        }
    }
}
