import ArgumentParser
import EL2
import EmbeddedImages
import KVM
import ModelScript
import Tracing
import VMM
#if canImport(Glibc)
import Glibc
#endif

/// `pvm boot`: boot a guest through the firmware on KVM, with EL2 enforcing both stage-2s.
struct BootCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "boot",
        abstract: "Boot a protected guest (firmware, then IMAGE) on KVM or the AArch64 interpreter, with EL2 enforcing ownership.",
        discussion: """
            IMAGE is an x86-64 or AArch64 ELF64 executable, or the name of a built-in image: \
            \(EmbeddedImage.guests.map(\.rawValue).joined(separator: ", ")) (default hello). The guest's \
            console goes to standard output (to standard error with --json or --trace -); pvm's \
            messages and the closing summary go to standard error, or with --json the summary goes \
            to standard output as one JSON object. Exit status: 0 the guest powered off (PSCI SYSTEM_OFF), 1 the guest was stopped \
            for a fault (a report is printed), 2 a VMM error (bad image, KVM failure), 3 the guest \
            asked for a reset (PSCI SYSTEM_RESET; pvm does not reboot), 64 a bad flag. \
            docs/vmm.md describes the machine, docs/abi.md the guest ABI.
            """
    )

    @Argument(help: ArgumentHelp("Guest image: an ELF file or a built-in name (default hello; not with --kernel).", valueName: "IMAGE"))
    var imageArgument: String?

    var image: String { imageArgument ?? guest.kernel ?? "hello" }

    @OptionGroup var guest: GuestOptions

    @Option(name: .long, help: ArgumentHelp("Write every hypercall, transition and fault as JSON Lines ('-': standard output).", valueName: "FILE"))
    var trace: String?

    @Flag(name: .long, help: "Print the closing summary as one JSON object on standard output (the console goes to standard error).")
    var json = false

    @Flag(name: .long, help: "Flip a byte of the payload after its digest is computed: the firmware must refuse it.")
    var tamperPayload = false

    func validate() throws {
        try guest.check()
        if guest.kernel != nil, let imageArgument {
            throw ValidationError("give IMAGE ('\(imageArgument)') or --kernel, not both")
        }
        if json && trace == TextFile.standardStream {
            throw ValidationError("--json and --trace - both want standard output; write the trace to a file")
        }
    }

    func run() throws {
        let wallStart = monotonicNanoseconds()
        var (configuration, backend) = try guest.machine(image: image, command: "boot")
        configuration.tamperPayload = tamperPayload
        // Standard output carries the trace or the JSON summary when asked to: the console moves.
        let consoleFD: Int32 = json || trace == TextFile.standardStream ? 2 : 1
        configuration.console = { bytes in bytes.withUnsafeBytes { _ = write(consoleFD, $0.baseAddress, $0.count) } }
        let signals = SignalWatcher()
        do {
            if let trace {
                do { configuration.trace = try EventTrace(path: trace) } catch { throw fatal("\(error)") }
            }
            let machine = try Machine(configuration, backend: backend)
            signals.watch(machine)
            let input = ConsoleInput()
            if machine.acceptsConsoleInput {
                if ConsoleInput.isTerminal { printError("pvm: typing goes to the guest's console; Ctrl-A x stops the guest") }
                input.start(machine)
            }
            let outcome = Result { () throws(VMMError) in try machine.run() }
            input.finish()
            signals.finish()
            let teardown = try machine.teardown()
            let stats = machine.statistics
            let wall = Double(monotonicNanoseconds() - wallStart) / 1e6
            for refusal in machine.hostFaults { printError("pvm: console: \(refusal)") }
            if stats.hostFaults > machine.hostFaults.count {
                printError("pvm: console: \(stats.hostFaults - machine.hostFaults.count) more refused reads not shown")
            }
            let ending: String, code: Int32
            let result = try outcome.get()
            switch result {
            case .poweredOff: (ending, code) = ("guest powered off", 0)
            case .reset: (ending, code) = ("guest requested a reset (pvm does not reboot)", 3)
            case let .faulted(report):
                printError("pvm: guest stopped by EL2: \(report)")
                (ending, code) = ("guest stopped for a fault", 1)
            case let .interrupted(signal):
                let cause = input.escaped.load(ordering: .acquiring) ? "Ctrl-A x" : SignalWatcher.name(signal)
                printError("pvm: \(cause)\(cause == "Ctrl-A x" ? "" : " received"): vCPUs stopped, guest torn down and checked")
                (ending, code) = ("guest stopped by \(cause)", 128 + signal)
            }
            printError("pvm: \(ending) · " + summary(configuration, machine: machine, stats: stats, teardown: teardown, wall: wall))
            if json {
                let status = teardown.isClean ? code : 2
                print(BootSummary(configuration: configuration, image: image, backend: machine.backend.name, outcome: result,
                                  status: status, stats: stats, teardown: teardown, wall: wall).json)
            }
            guard teardown.isClean else {
                for gpa in teardown.leaks { printError("pvm: teardown: guest page at GPA \(hex(gpa)) is readable by the host and not zero") }
                for v in teardown.violations { printError("pvm: teardown: EL2 invariant violated: \(v)") }
                throw ExitCode(2)
            }
            if code != 0 { throw ExitCode(code) }
        } catch let error as VMMError {
            signals.finish()
            throw fatal("\(error)")
        }
    }

    /// The closing line after the ending: machine, pages, exits, time.
    private func summary(_ c: MachineConfiguration, machine: Machine, stats: MachineCounters, teardown: TeardownReport,
                         wall: Double) -> String {
        let kind = c.isProtected ? "protected" : "non-protected"
        let given = c.isProtected ? "\(stats.donated) pages donated" : "\(stats.donated) pages shared with the guest"
        let vcpus = "\(c.vcpus) vCPU\(c.vcpus == 1 ? "" : "s")"
        let machinePart = "\(kind), \(c.profile) pKVM ABI, \(vcpus), \(c.memory >> 20) MiB, \(machine.backend.name)"
        let blocks = c.guestBlock == .page ? "" : " (\(stats.blocksDonated) \(c.guestBlock) blocks; \(stats.splits) splits, \(stats.merges) merges)"
        let pages = "\(given)\(blocks), \(stats.shared) shared and \(stats.unshared) unshared by the guest, "
            + "\(teardown.reclaimed) reclaimed (\(teardown.verifiedZero) verified zero)"
        let exits = "\(stats.exits) exits (\(stats.hypercalls) hypercalls, \(stats.stage2Faults) stage-2 faults)"
        return [machinePart, pages, exits, format2(wall) + " ms"].joined(separator: " · ")
    }

    private func fatal(_ message: String) -> ExitCode {
        printError("pvm boot: \(message)")
        return ExitCode(2)
    }
}
