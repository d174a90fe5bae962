import ArgumentParser
import CKVMBaseline
import EmbeddedImages
import KVMBackend
import ScriptedBackend
import EL2
import Foundation
import Tracing
import VMM

/// `pvm bench hypercall`: the guest hypercall round trip against a minimal C KVM loop making the
/// same port-I/O exits, MEM_SHARE + MEM_UNSHARE throughput, and `pvm boot` wall time.
struct BenchHypercallCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "hypercall",
        abstract: "Hypercall round trip vs a bare C KVM loop, share/unshare rate, boot wall time.",
        discussion: """
            The pvm figure is measured inside the bench guest between two PSCI_VERSION markers: \
            N SMCCC_VERSION calls, each one port-I/O exit that the VMM decodes from the sync \
            registers and answers. The baseline (CKVMBaseline, C) runs N bare KVM_RUN -> \
            KVM_EXIT_IO -> KVM_RUN round trips on a one-page real-mode guest in the same process. \
            The best of --repeats runs of each is reported.
            """
    )

    @Option(help: "Hypercalls (and baseline exits) per run.")
    var iterations: Int = 100_000

    @Option(help: "MEM_SHARE + MEM_UNSHARE pairs per run.")
    var pairs: Int = 20_000

    @Option(help: "Repetitions of each measurement; the best is reported.")
    var repeats: Int = 3

    @Option(help: "pvm boot runs to time (median reported).")
    var boots: Int = 10

    func validate() throws {
        guard (1...100_000_000).contains(iterations) else { throw ValidationError("--iterations must be 1...100000000") }
        guard (1...10_000_000).contains(pairs) else { throw ValidationError("--pairs must be 1...10000000") }
        guard (1...50).contains(repeats) else { throw ValidationError("--repeats must be 1...50") }
        guard (0...1000).contains(boots) else { throw ValidationError("--boots must be 0...1000") }
    }

    func run() throws {
        var baseline = Double.infinity, realMode = Double.infinity, pvm = Double.infinity, traced = Double.infinity
        let tracePath = FileManager.default.temporaryDirectory.appendingPathComponent("pvm-bench-\(getpid()).jsonl").path
        defer { try? FileManager.default.removeItem(atPath: tracePath) }
        var traceBytes: UInt64 = 0
        for k in 0 ..< repeats {
            benchProgress("pvm bench hypercall: round trips, run \(k + 1) of \(repeats)")
            baseline = min(baseline, try baselineSeconds(iterations, longModeRing3: true))
            realMode = min(realMode, try baselineSeconds(iterations, longModeRing3: false))
            pvm = min(pvm, try guestSeconds(mode: 0, count: iterations))
            traced = min(traced, try guestSeconds(mode: 0, count: iterations, trace: try EventTrace(path: tracePath)))
            traceBytes = (try? FileManager.default.attributesOfItem(atPath: tracePath)[.size] as? UInt64) ?? 0
        }
        let n = Double(iterations)
        let baseNs = baseline * 1e9 / n, realNs = realMode * 1e9 / n, pvmNs = pvm * 1e9 / n
        benchPrint("hypercall round trip (SMCCC_VERSION, \(grouped(n)) calls, best of \(repeats)):")
        benchPrint("  pvm:                                  \(format2(pvmNs / 1000)) µs  (\(grouped(1 / pvmNs * 1e9)) /s)")
        benchPrint("  C KVM loop, same exits (ring 3):      \(format2(baseNs / 1000)) µs  (\(grouped(1 / baseNs * 1e9)) /s)")
        benchPrint("  ratio:                                \(format2(pvmNs / baseNs))x  (aim: within 1.15x)")
        benchPrint("  C KVM loop, real mode (for scale):    \(format2(realNs / 1000)) µs")
        var scripted = Double.infinity
        for _ in 0 ..< repeats { scripted = min(scripted, try scriptedSeconds(count: iterations)) }
        let scriptedNs = scripted * 1e9 / n
        benchPrint("  scripted backend (core + EL2, no guest): \(format2(scriptedNs / 1000)) µs  (the floor an interpreter's hypercall can reach)")
        let tracedNs = traced * 1e9 / n
        benchPrint("tracing (same calls, every hypercall written as a JSON line, \(grouped(Double(traceBytes) / 1e6)) MB):")
        benchPrint("  disabled:                             \(format2(pvmNs / 1000)) µs  (\(format2(pvmNs / baseNs))x the C loop)")
        benchPrint("  enabled:                              \(format2(tracedNs / 1000)) µs  (\(format2(tracedNs / baseNs))x the C loop)")
        benchPrint("  ratio enabled / disabled:             \(format2(tracedNs / pvmNs))x  (aim: under 2x)")

        var share = Double.infinity
        for _ in 0 ..< repeats { share = min(share, try guestSeconds(mode: 1, count: pairs)) }
        let pairNs = share * 1e9 / Double(pairs)
        benchPrint("MEM_SHARE + MEM_UNSHARE of one page: \(grouped(Double(pairs) / share)) pairs/s "
              + "(\(format2(pairNs / 1000)) µs a pair, two hypercalls and two EL2 transitions)")
        benchPrint("  baseline, two null hypercalls (above): \(format2(2 * pvmNs / 1000)) µs; "
              + "the pair costs \(format2(pairNs / (2 * pvmNs)))x (goal: 1.2x)")

        if boots > 0 {
            var times: [Double] = []
            for _ in 0 ..< boots { times.append(try bootWallSeconds()) }
            times.sort()
            benchPrint("pvm boot hello, process start to exit (includes teardown), median of \(boots): "
                  + "\(format2(times[times.count / 2] * 1000)) ms (min \(format2(times[0] * 1000)) ms; goal: 25 ms)")
        }
    }

    /// The C loop: `count` bare port-I/O exits.
    private func baselineSeconds(_ count: Int, longModeRing3: Bool) throws -> Double {
        var elapsed: UInt64 = 0
        var message = [UInt8](repeating: 0, count: 256)
        let status = message.withUnsafeMutableBufferPointer { buffer in
            buffer.withMemoryRebound(to: CChar.self) {
                pvm_baseline_pio_loop(UInt64(count), longModeRing3 ? 1 : 0, &elapsed, $0.baseAddress, $0.count)
            }
        }
        guard status == 0 else {
            throw ValidationError("C baseline failed: \(String(decoding: message.prefix { $0 != 0 }, as: UTF8.self))")
        }
        return Double(elapsed) / 1e9
    }

    /// Boots the bench guest in `mode` and returns the time between its two markers.
    private func guestSeconds(mode: UInt64, count: Int, trace: EventTrace? = nil) throws -> Double {
        var c = MachineConfiguration(firmware: EmbeddedImage.firmware.bytes, payload: EmbeddedImage.bench.bytes)
        c.payloadName = "bench"
        c.trace = trace
        c.payloadArgument = UInt64(count) | mode << 48
        let machine = try Machine(c, backend: try KVMBackend())
        let outcome = try machine.run()
        _ = try machine.teardown()
        let markers = machine.markerTimes
        guard outcome == .poweredOff, markers.count == 2 else {
            throw ValidationError("bench guest did not run to completion: \(outcome)")
        }
        return Double(markers[1] - markers[0]) / 1e9
    }

    /// The same calls on the scripted backend: the machine core and EL2 with no guest to enter,
    /// timed between the same PSCI_VERSION markers.
    private func scriptedSeconds(count: Int) throws -> Double {
        var c = MachineConfiguration(firmware: EmbeddedImage.firmware.bytes, payload: EmbeddedImage.bench.bytes)
        c.payloadName = "bench"
        let marker = VCPUStep.hypercall(SMCCCRegisters(UInt64(SMCCCFunction.psciVersion.rawValue)))
        let script: [VCPUStep] = [marker, .hypercalls(SMCCCRegisters(UInt64(SMCCCFunction.version.rawValue)), count: count),
                                  marker, .hypercall(SMCCCRegisters(UInt64(SMCCCFunction.psciSystemOff.rawValue)))]
        let machine = try Machine(c, backend: ScriptedBackend(scripts: [script]))
        let outcome = try machine.run()
        _ = try machine.teardown()
        let markers = machine.markerTimes
        guard outcome == .poweredOff, markers.count == 2 else {
            throw ValidationError("scripted bench did not run to completion: \(outcome)")
        }
        return Double(markers[1] - markers[0]) / 1e9
    }

    /// Runs `pvm boot` (this executable) and times it from spawn to exit.
    private func bootWallSeconds() throws -> Double {
        let executable = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().path
        let start = monotonicNanoseconds()
        let status = try ChildProcess.run(executable, ["boot"])
        let end = monotonicNanoseconds()
        guard status == 0 else { throw ValidationError("pvm boot exited \(status)") }
        return Double(end - start) / 1e9
    }
}
