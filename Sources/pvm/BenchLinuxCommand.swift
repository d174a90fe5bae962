import ArgumentParser
import EL2
import EmbeddedImages
import HostMemory
import Foundation
import InterpBackend
import Synchronization
import Tracing
import VMM

/// `pvm bench linux`: Debian's arm64 kernel as a protected guest on the interpreter, from
/// `pvm boot` to the initramfs's shell prompt and to power-off (the shell is told to exit at its
/// prompt), with the instructions executed, MIPS and lazy donations; and the same kernel and
/// initramfs under qemu-system-aarch64 (TCG, `virt` board, GICv3, a Cortex-A57: ARMv8.0 as
/// pvm's CPU) to the same prompt, in the same run.
struct BenchLinuxCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "linux",
        abstract: "Linux boot to a shell and to power-off on the interpreter, vs QEMU TCG on the same kernel.",
        discussion: """
            The kernel and initramfs default to the ones scripts/fetch-linux.sh caches. Both machines \
            get the same command line: --append's (default: console=ttyAMA0 panic=-1 \
            cryptomgr.notests) plus pvm.shell, which makes the initramfs start a shell. Times are \
            wall-clock from building the machine (pvm) or starting the process (QEMU); pvm's \
            include pvmfw checking the kernel's and the initramfs's SHA-256. Without \
            qemu-system-aarch64 (Debian: qemu-system-arm) only pvm's figures are printed.
            """
    )

    @Option(help: ArgumentHelp("Which cached kernel: debian (Debian's cloud kernel, scripts/fetch-linux.sh) or pkvm (the pKVM guest, scripts/build-pkvm-guest-kernel.sh).", valueName: "NAME"))
    var guest = "debian"

    @Option(help: ArgumentHelp("Kernel Image instead of a cached one.", valueName: "IMAGE"))
    var kernel: String?

    @Option(help: ArgumentHelp("Initramfs (default: the cached one, with the pvm.shell /init).", valueName: "FILE"))
    var initrd: String?

    @Option(help: ArgumentHelp("Kernel command line, before pvm.shell.", valueName: "ARGS"))
    var append = "console=ttyAMA0 panic=-1 cryptomgr.notests"

    @Option(name: [.customShort("m"), .long], help: ArgumentHelp("Guest RAM (MiB, or with a suffix).", valueName: "SIZE"))
    var memory = "256M"

    @Option(help: "vCPUs (both machines).")
    var vcpus = 1

    @Option(help: "Repetitions of each run; the best is reported.")
    var repeats = 1

    @Flag(help: "Do not run QEMU even when it is installed.")
    var noQemu = false

    /// The prompt the cached initramfs's shell prints (scripts/fetch-linux.sh).
    static let prompt = "pvm> "
    /// How long a run may take before it is given up.
    static let timeout: Double = 300

    func validate() throws {
        guard (1 ... 20).contains(repeats) else { throw ValidationError("--repeats must be 1...20") }
        guard (1 ... 8).contains(vcpus) else { throw ValidationError("--vcpus must be 1...8") }
        guard SizeFlag.bytes(memory) != nil else { throw ValidationError("--memory '\(memory)' is not a size") }
        guard LinuxCache.names.contains(guest) else { throw ValidationError("--guest must be \(LinuxCache.names.joined(separator: " or "))") }
    }

    struct Figures {
        /// pvmfw done (its digests checked): "pvmfw: jumping to payload" printed.
        var firmware: Double = 0
        var prompt: Double
        var off: Double
        var instructions: UInt64 = 0
        /// Instructions up to the kernel's first PSCI call (pvmfw, then the kernel's early
        /// boot to psci_dt_init).
        var beforePSCI: UInt64 = 0
        /// MIPS from the kernel's first PSCI call to power-off (the kernel and its userspace,
        /// pvmfw and machine setup left out).
        var kernelMIPS: Double = 0
        var donations = 0
        var exits = 0
    }

    func run() throws {
        let cached = LinuxCache.find(guest)
        guard let kernelPath = kernel ?? cached?.kernel, let initrdPath = initrd ?? cached?.initrd else {
            throw ValidationError(LinuxCache.missing(guest) + "; or give --kernel and --initrd")
        }
        let kernelBytes = try GuestOptions.readImageFile(kernelPath, what: "kernel", limit: GuestOptions.kernelLimit)
        let initrdBytes = try GuestOptions.readImageFile(initrdPath, what: "initramfs", limit: GuestOptions.initrdLimit)
        let commandLine = append + " pvm.shell"
        benchPrint("Linux to a shell: \(kernelPath.split(separator: "/").last ?? "") (\(kernelBytes.count >> 20) MiB), "
                   + "\(memory), \(vcpus) vCPU\(vcpus == 1 ? "" : "s"), command line: \(commandLine)")
        var best: Figures?
        for k in 0 ..< repeats {
            benchProgress("pvm bench linux: pvm run \(k + 1) of \(repeats)")
            let f = try pvmRun(kernel: kernelBytes, initrd: initrdBytes, commandLine: commandLine)
            if best == nil || f.prompt < best!.prompt { best = f }
        }
        let p = best!
        let mips = Double(p.instructions) / p.off / 1e6
        benchPrint("  pvm (interpreter, protected, lazy donation): pvmfw done \(format2(p.firmware)) s, "
                   + "shell prompt \(format2(p.prompt)) s, power-off \(format2(p.off)) s; "
                   + "\(grouped(Double(p.instructions))) instructions (\(grouped(Double(p.beforePSCI))) before the kernel's first PSCI call), "
                   + "\(format2(mips)) MIPS overall, \(format2(p.kernelMIPS)) from the first PSCI call; \(p.donations) lazy donations, "
                   + "\(p.exits) exits  (aim: shell under 5 s)")
        guard !noQemu, let qemu = BenchInterpCommand.qemuPath else {
            if !noQemu { benchPrint("  (qemu-system-aarch64 not installed: apt-get install qemu-system-arm for the comparison)") }
            return
        }
        var bestQEMU: Figures?
        for k in 0 ..< repeats {
            benchProgress("pvm bench linux: QEMU run \(k + 1) of \(repeats)")
            let f = try qemuRun(qemu, kernel: kernelPath, initrd: initrdPath, commandLine: commandLine)
            if bestQEMU == nil || f.prompt < bestQEMU!.prompt { bestQEMU = f }
        }
        let q = bestQEMU!
        benchPrint("  QEMU TCG (virt, GICv3, cortex-a57): shell prompt \(format2(q.prompt)) s, power-off \(format2(q.off)) s")
        benchPrint("  pvm/QEMU: \(format2(p.prompt / q.prompt))x to the prompt, \(format2(p.off / q.off))x to power-off")
    }

    /// One boot on the interpreter: the prompt's time, then "exit" typed, then power-off.
    private func pvmRun(kernel: [UInt8], initrd: [UInt8], commandLine: String) throws -> Figures {
        let start = monotonicNanoseconds()
        var c = MachineConfiguration(firmware: EmbeddedImage.firmware.bytes(for: "aarch64"), payload: kernel)
        c.payloadName = "kernel"
        c.linux = LinuxBoot(initrd: initrd, commandLine: commandLine)
        c.memory = SizeFlag.bytes(memory)!
        c.vcpus = vcpus
        let watcher = PromptWatcher(prompt: Self.prompt)
        let jumped = PromptWatcher(prompt: "pvmfw: jumping to payload")
        let box = Mutex<Machine?>(nil)
        c.console = { bytes in
            _ = jumped.output(bytes)
            if watcher.output(bytes) { box.withLock { $0 }?.consoleInput(Array("exit\n".utf8)) }
        }
        let machine = try Machine(c, backend: InterpBackend())
        let created = monotonicNanoseconds()
        box.withLock { $0 = machine }
        // A kernel that never reaches the prompt is stopped after `timeout`.
        let (outcome, timedOut) = try machine.run(observingAfter: UInt64(Self.timeout * 1e9)) {
            machine.requestStop(signal: SIGALRM)
        }
        if timedOut { throw ValidationError("the kernel did not power off within \(Int(Self.timeout)) s on the interpreter") }
        let end = monotonicNanoseconds()
        let stats = machine.statistics
        let instructions = machine.instructionsRetired ?? 0
        _ = try machine.teardown()
        guard outcome == .poweredOff, let seen = watcher.seenAt else {
            throw ValidationError("the kernel did not reach the shell and power off on the interpreter: \(outcome)")
        }
        let psci = machine.markerInstructions.first.flatMap { $0 } ?? 0
        let kernelStart = created &+ (machine.markerTimes.first ?? 0)
        let kernelSeconds = Double(end > kernelStart ? end - kernelStart : 1) / 1e9
        return Figures(firmware: Double((jumped.seenAt ?? start) - start) / 1e9,
                       prompt: Double(seen - start) / 1e9, off: Double(end - start) / 1e9, instructions: instructions,
                       beforePSCI: psci, kernelMIPS: Double(instructions &- psci) / kernelSeconds / 1e6,
                       donations: stats.donated, exits: stats.exits)
    }

    /// The same boot under QEMU: its serial console on a pipe, "exit" typed at the prompt.
    private func qemuRun(_ qemu: String, kernel: String, initrd: String, commandLine: String) throws -> Figures {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: qemu)
        p.arguments = ["-M", "virt,gic-version=3", "-cpu", "cortex-a57", "-smp", String(vcpus), "-m", memory,
                       "-display", "none", "-monitor", "none", "-serial", "stdio", "-no-reboot",
                       "-kernel", kernel, "-initrd", initrd, "-append", commandLine]
        let output = Pipe(), input = Pipe()
        p.standardOutput = output
        p.standardInput = input
        p.standardError = FileHandle.nullDevice
        let watcher = PromptWatcher(prompt: Self.prompt)
        let start = monotonicNanoseconds()
        try p.run()
        let reader = try ThreadHandle.spawn {
            let fd = output.fileHandleForReading.fileDescriptor
            var buffer = [UInt8](repeating: 0, count: 65536)
            while true {
                let n = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
                if n <= 0 { return }
                if watcher.output(Array(buffer[0 ..< n])) { try? input.fileHandleForWriting.write(contentsOf: Array("exit\n".utf8)) }
            }
        }.get()
        let deadline = start + UInt64(Self.timeout * 1e9)
        while p.isRunning, monotonicNanoseconds() < deadline { usleep(2000) }
        if p.isRunning { p.terminate() }
        p.waitUntilExit()
        let end = monotonicNanoseconds()
        reader.join()
        guard let seen = watcher.seenAt else { throw ValidationError("QEMU did not reach the shell prompt (status \(p.terminationStatus))") }
        return Figures(prompt: Double(seen - start) / 1e9, off: Double(end - start) / 1e9)
    }
}

/// Notes when a console first shows a prompt (searching across chunk boundaries).
final class PromptWatcher: Sendable {
    private let prompt: [UInt8]
    private let state = Mutex<(tail: [UInt8], seen: UInt64?)>(([], nil))

    init(prompt: String) { self.prompt = Array(prompt.utf8) }

    /// Takes output; true the first time the prompt appears.
    func output(_ bytes: [UInt8]) -> Bool {
        state.withLock { s -> Bool in
            guard s.seen == nil else { return false }
            s.tail += bytes
            if ConsoleScript.find(prompt, in: s.tail, from: 0) != nil {
                s.seen = monotonicNanoseconds()
                return true
            }
            if s.tail.count > prompt.count { s.tail.removeFirst(s.tail.count - prompt.count) }
            return false
        }
    }

    var seenAt: UInt64? { state.withLock { $0.seen } }
}
