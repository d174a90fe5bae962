import ArgumentParser
import EL2
import EmbeddedImages
import KVM
import ModelScript
import VMM
#if canImport(Glibc)
import Glibc
#endif

/// `pvm boot`: boot a guest through the firmware on KVM, with EL2 enforcing both stage-2s.
struct BootCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "boot",
        abstract: "Boot a protected guest (firmware, then IMAGE) on /dev/kvm with EL2 enforcing ownership.",
        discussion: """
            IMAGE is an x86-64 ELF64 executable, or the name of a built-in image: \
            \(EmbeddedImage.guests.map(\.rawValue).joined(separator: ", ")) (default hello). The guest's \
            console goes to standard output; pvm's messages and the closing summary go to standard \
            error. Exit status: 0 the guest powered off (PSCI SYSTEM_OFF), 1 the guest was stopped \
            for a fault (a report is printed), 2 a VMM error (bad image, KVM failure), 3 the guest \
            asked for a reset (PSCI SYSTEM_RESET; pvm does not reboot), 64 a bad flag. \
            docs/vmm.md describes the machine, docs/abi.md the guest ABI.
            """
    )

    @Argument(help: ArgumentHelp("Guest image: an ELF file or a built-in name.", valueName: "IMAGE"))
    var image: String = "hello"

    @Option(name: .long, help: ArgumentHelp("Number of vCPUs (1 to 64).", valueName: "N"))
    var vcpus: Int = 1

    @Option(name: .long, help: ArgumentHelp("Guest RAM: 32M to 3G, a multiple of 2M.", valueName: "SIZE"))
    var memory: String = "64M"

    @Flag(name: .long, help: "Boot a non-protected guest: the host shares its pages instead of donating them.")
    var nonProtected = false

    @Option(name: .long, help: ArgumentHelp("Firmware ELF to use instead of the built-in one.", valueName: "PATH"))
    var firmware: String?

    @Option(name: .long, help: ArgumentHelp("Write every hypercall, transition and fault as JSON Lines.", valueName: "FILE"))
    var trace: String?

    @Option(name: .long, help: ArgumentHelp("Value for the boot configuration's payload_argument.", valueName: "N"))
    var arg: String = "0"

    @Flag(name: .long, help: "Flip a byte of the payload after its digest is computed: the firmware must refuse it.")
    var tamperPayload = false

    @Option(name: .long, help: ArgumentHelp("SMMU design: mirror (the host's DMA domain follows its stage-2), refcount (DMA mappings block conversions) or none (no SMMU, no DMA devices).", valueName: "MODE"))
    var iommuMode: String = "mirror"

    func validate() throws {
        _ = try memoryBytes()
        guard (1...64).contains(vcpus) else { throw ValidationError("--vcpus \(vcpus) is out of range: use 1 to 64") }
        guard NumberParser.unsigned(Substring(arg)) != nil else { throw ValidationError("--arg '\(arg)' is not a number") }
        _ = try iommu()
    }

    private func iommu() throws -> IOMMUMode? {
        if iommuMode == "none" { return nil }
        guard let mode = IOMMUMode(rawValue: iommuMode) else {
            throw ValidationError("--iommu-mode '\(iommuMode)' must be mirror, refcount or none")
        }
        return mode
    }

    private func memoryBytes() throws -> UInt64 {
        guard let size = NumberParser.size(memory) else {
            throw ValidationError("--memory '\(memory)' is not a size (examples: 64M, 1G)")
        }
        guard size >= GuestABI.minimumMemory, size <= GuestABI.maximumMemory, size % GuestABI.memoryAlignment == 0 else {
            throw ValidationError("--memory \(memory) must be a multiple of 2M between 32M and 3G")
        }
        return size
    }

    func run() throws {
        let wallStart = monotonicNanoseconds()
        let (payload, payloadName) = try loadImage(image)
        var configuration = MachineConfiguration(firmware: EmbeddedImage.firmware.bytes, payload: payload)
        if let firmware {
            guard let bytes = readBytes(firmware) else { throw fatal("cannot read firmware \(firmware): \(String(cString: strerror(errno)))") }
            configuration.firmware = bytes
            configuration.firmwareName = firmware
        }
        configuration.payloadName = payloadName
        configuration.memory = try memoryBytes()
        configuration.vcpus = vcpus
        configuration.isProtected = !nonProtected
        configuration.payloadArgument = NumberParser.unsigned(Substring(arg))!
        configuration.tamperPayload = tamperPayload
        configuration.iommuMode = try iommu()
        configuration.console = { bytes in bytes.withUnsafeBytes { _ = write(1, $0.baseAddress, $0.count) } }
        do {
            if let trace { configuration.trace = try EventTrace(path: trace) }
            let machine = try Machine(configuration)
            let outcome = try machine.run()
            let teardown = try machine.teardown()
            let stats = machine.statistics
            let wall = Double(monotonicNanoseconds() - wallStart) / 1e6
            for refusal in machine.hostFaults { printError("pvm: console: \(refusal)") }
            let ending: String, code: Int32
            switch outcome {
            case .poweredOff: (ending, code) = ("guest powered off", 0)
            case .reset: (ending, code) = ("guest requested a reset (pvm does not reboot)", 3)
            case let .faulted(report):
                printError("pvm: guest stopped by EL2: \(report)")
                (ending, code) = ("guest stopped for a fault", 1)
            }
            let kind = nonProtected ? "non-protected" : "protected"
            let given = nonProtected ? "\(stats.donated) pages shared with the guest" : "\(stats.donated) pages donated"
            printError("pvm: \(ending) · \(kind), \(vcpus) vCPU\(vcpus == 1 ? "" : "s"), \(configuration.memory >> 20) MiB · "
                       + "\(given), \(stats.shared) shared and \(stats.unshared) unshared by the guest, "
                       + "\(teardown.reclaimed) reclaimed (\(teardown.verifiedZero) verified zero) · "
                       + "\(stats.exits) exits (\(stats.hypercalls) hypercalls, \(stats.stage2Faults) stage-2 faults) · "
                       + String(format2(wall)) + " ms")
            guard teardown.isClean else {
                for gpa in teardown.leaks { printError("pvm: teardown: guest page at GPA 0x\(String(gpa, radix: 16)) is readable by the host and not zero") }
                for v in teardown.violations { printError("pvm: teardown: EL2 invariant violated: \(v)") }
                throw ExitCode(2)
            }
            if code != 0 { throw ExitCode(code) }
        } catch let error as VMMError {
            throw fatal("\(error)")
        }
    }

    /// The payload's bytes and a name for messages: a file, or a built-in image.
    private func loadImage(_ image: String) throws -> ([UInt8], String) {
        if !image.contains("/"), access(image, F_OK) != 0 {
            guard let builtIn = EmbeddedImage(rawValue: image), builtIn != .firmware else {
                throw fatal("no image '\(image)': not a file, and not a built-in image (\(EmbeddedImage.guests.map(\.rawValue).joined(separator: ", ")))")
            }
            return (builtIn.bytes, image)
        }
        guard let bytes = readBytes(image) else { throw fatal("cannot read image \(image): \(String(cString: strerror(errno)))") }
        return (bytes, image)
    }

    private func fatal(_ message: String) -> ExitCode {
        printError("pvm boot: \(message)")
        return ExitCode(2)
    }
}

/// Reads a whole file, or nil with `errno` set.
func readBytes(_ path: String) -> [UInt8]? {
    guard let f = fopen(path, "rb") else { return nil }
    defer { fclose(f) }
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 65536)
    while true {
        let n = fread(&chunk, 1, chunk.count, f)
        if n > 0 { bytes.append(contentsOf: chunk[0..<n]) }
        if n < chunk.count {
            if ferror(f) != 0 { return nil }
            break
        }
    }
    return bytes
}
