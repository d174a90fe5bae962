import ArgumentParser
import EL2
import EmbeddedImages
import Foundation
import InterpBackend
import Tracing
import VMM

/// `pvm bench interp`: the AArch64 interpreter's speed on compute-bound loops (MIPS, with the
/// guest's MMU and EL2's stage 2 on), next to qemu-system-aarch64 (TCG) running the same
/// firmware and bench image on an EL2 stand-in, and the interpreter's null-hypercall round trip.
struct BenchInterpCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "interp",
        abstract: "Interpreter MIPS on integer, CRC32 and sort loops vs QEMU TCG; null hypercall round trip.",
        discussion: """
            pvm's figure is the bench guest's instructions between its two PSCI_VERSION markers over \
            the time between them. QEMU reports no instruction count, so its figure is the extra \
            instructions of a run with 11 times the iterations (counted by pvm, the same code) over \
            the extra wall time: start-up cancels out. The best of --repeats runs of each is \
            reported. Without qemu-system-aarch64 (Debian: qemu-system-arm) only pvm's figures \
            are printed.
            """
    )

    @Option(help: "Scale of every loop (1 = the default work, about 0.3 s each on the interpreter).")
    var scale: Double = 1

    @Option(help: "Repetitions of each measurement; the best is reported.")
    var repeats: Int = 3

    @Option(help: "Null hypercalls (SMCCC_VERSION) to time.")
    var hypercalls: Int = 100_000

    @Flag(help: "Do not run QEMU even when it is installed.")
    var noQemu = false

    func validate() throws {
        guard scale > 0, scale <= 1000 else { throw ValidationError("--scale must be in (0, 1000]") }
        guard (1 ... 50).contains(repeats) else { throw ValidationError("--repeats must be 1...50") }
        guard (1 ... 100_000_000).contains(hypercalls) else { throw ValidationError("--hypercalls must be 1...100000000") }
    }

    /// The compute modes of GuestImages/bench.c and their default iteration counts.
    static let loops: [(name: String, mode: UInt64, iterations: Double)] = [
        ("integer loop (xorshift, multiply-add, branch)", GuestLayout.benchModeInteger, 4_000_000),
        ("CRC32 over 16 KiB (loads, CRC32X)", GuestLayout.benchModeCRC32, 1_500),
        ("insertion sort of 512 words (branchy)", GuestLayout.benchModeSort, 100),
    ]

    /// QEMU's second run has this many times the iterations of its first.
    static let qemuFactor = 11

    static let qemuPath = ["/usr/bin/qemu-system-aarch64", "/usr/local/bin/qemu-system-aarch64"]
        .first { FileManager.default.isExecutableFile(atPath: $0) }

    func run() throws {
        let qemu = noQemu ? nil : Self.qemuPath
        benchPrint("AArch64 interpreter, guest MMU on, stage 2 on (best of \(repeats)):")
        var ratios: [Double] = []
        for loop in Self.loops {
            let n = UInt64(max(1, loop.iterations * scale))
            var best = (mips: 0.0, instructions: UInt64(0))
            for k in 0 ..< repeats {
                benchProgress("pvm bench interp: \(loop.name), pvm run \(k + 1) of \(repeats)")
                let r = try pvmRun(mode: loop.mode, iterations: n)
                if r.mips > best.mips { best = (r.mips, r.instructions) }
            }
            var line = "  \(loop.name):".padding(toLength: 52, withPad: " ", startingAt: 0) + "pvm \(format2(best.mips)) MIPS"
            if let qemu {
                // The loop's instructions are linear in its iterations: per iteration from two pvm
                // runs, so QEMU can run ten times more work than pvm did (its JIT is fast, and
                // the difference must stand well above its start-up noise).
                let doubled = try pvmRun(mode: loop.mode, iterations: 2 * n).instructions
                let extra = Double(doubled - best.instructions) * Double(Self.qemuFactor - 1)
                var bestQEMU = Double.infinity
                for k in 0 ..< repeats {
                    benchProgress("pvm bench interp: \(loop.name), QEMU run \(k + 1) of \(repeats)")
                    let t1 = try qemuSeconds(qemu, mode: loop.mode, iterations: n)
                    let t2 = try qemuSeconds(qemu, mode: loop.mode, iterations: UInt64(Self.qemuFactor) * n)
                    if t2 > t1 { bestQEMU = min(bestQEMU, t2 - t1) }
                }
                let qemuMIPS = bestQEMU.isFinite ? extra / bestQEMU / 1e6 : 0
                line += ", QEMU TCG \(format2(qemuMIPS)) MIPS"
                if qemuMIPS > 0 {
                    line += ", pvm/QEMU \(format2(best.mips / qemuMIPS))x"
                    ratios.append(best.mips / qemuMIPS)
                }
            }
            benchPrint(line + "  (\(grouped(Double(best.instructions))) instructions; aim: 300 MIPS)")
        }
        if qemu == nil { benchPrint("  (qemu-system-aarch64 not installed: apt-get install qemu-system-arm for the comparison)") }
        var bestCall = Double.infinity
        for _ in 0 ..< repeats { bestCall = min(bestCall, try hypercallSeconds()) }
        benchPrint("null hypercall (SMCCC_VERSION) round trip on the interpreter: \(format2(bestCall * 1e6 / Double(hypercalls))) µs "
              + "(\(grouped(Double(hypercalls) / bestCall)) /s; aim: under 1 µs)")
    }

    /// One bench run on the interpreter: MIPS and instructions between the markers.
    private func pvmRun(mode: UInt64, iterations: UInt64) throws -> (mips: Double, instructions: UInt64) {
        let machine = try benchMachine(mode: mode, iterations: iterations)
        let outcome = try machine.run()
        _ = try machine.teardown()
        let times = machine.markerTimes, counts = machine.markerInstructions
        guard outcome == .poweredOff, times.count == 2, let a = counts[0], let b = counts[1] else {
            throw ValidationError("bench guest did not run to completion on the interpreter: \(outcome)")
        }
        let instructions = b - a
        return (Double(instructions) / (Double(times[1] - times[0]) / 1e9) / 1e6, instructions)
    }

    private func hypercallSeconds() throws -> Double {
        let machine = try benchMachine(mode: GuestLayout.benchModeVersion, iterations: UInt64(hypercalls))
        let outcome = try machine.run()
        _ = try machine.teardown()
        let times = machine.markerTimes
        guard outcome == .poweredOff, times.count == 2 else { throw ValidationError("bench guest failed: \(outcome)") }
        return Double(times[1] - times[0]) / 1e9
    }

    private func benchMachine(mode: UInt64, iterations: UInt64) throws -> Machine {
        var c = MachineConfiguration(firmware: EmbeddedImage.firmware.bytes(for: "aarch64"),
                                     payload: EmbeddedImage.bench.bytes(for: "aarch64"))
        c.payloadName = "bench"
        c.payloadArgument = iterations | mode << 48
        return try Machine(c, backend: InterpBackend())
    }

    /// Wall time of qemu-system-aarch64 booting the same firmware and bench image on the EL2
    /// stand-in (Bench/qemu-el2-stub), with the device tree pvm would write.
    private func qemuSeconds(_ qemu: String, mode: UInt64, iterations: UInt64) throws -> Double {
        let machine = try benchMachine(mode: mode, iterations: iterations)
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("pvm-bench-qemu-\(getpid())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        func file(_ name: String, _ bytes: [UInt8]) throws -> String {
            let url = directory.appendingPathComponent(name)
            try Data(bytes).write(to: url)
            return url.path
        }
        let layout = machine.layout
        var parameters: [UInt8] = []
        for value in [layout.handoff, layout.payloadStaging.lowerBound, UInt64(machine.configuration.payload.count)] {
            withUnsafeBytes(of: value.littleEndian) { parameters += $0 }
        }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: qemu)
        p.arguments = ["-M", "virt,virtualization=on", "-cpu", "max", "-m", "3G", "-nographic", "-no-reboot",
                       "-monitor", "none", "-serial", "null",
                       "-device", "loader,file=\(try file("stub.elf", EmbeddedImage.qemuEL2Stub)),cpu-num=0",
                       "-device", "loader,file=\(try file("firmware.elf", machine.configuration.firmware))",
                       "-device", "loader,file=\(try file("payload.elf", machine.configuration.payload)),addr=0x\(String(layout.payloadStaging.lowerBound, radix: 16)),force-raw=on",
                       "-device", "loader,file=\(try file("handoff.dtb", machine.handoffBytes)),addr=0x\(String(layout.handoff, radix: 16)),force-raw=on",
                       "-device", "loader,file=\(try file("params.bin", parameters)),addr=0x40200000,force-raw=on"]
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        let start = monotonicNanoseconds()
        try p.run()
        p.waitUntilExit()
        let end = monotonicNanoseconds()
        guard p.terminationStatus == 0 else { throw ValidationError("qemu-system-aarch64 exited \(p.terminationStatus)") }
        return Double(end - start) / 1e9
    }
}
