import ArgumentParser
#if canImport(Glibc)
import Glibc
#endif
import EL2
import EmbeddedImages
import ModelScript
import VMM

/// Options that describe a guest machine on KVM, shared by `pvm boot` and `pvm inspect`.
struct GuestOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("Number of vCPUs (1 to 64).", valueName: "N"))
    var vcpus: Int = 1

    @Option(name: .long, help: ArgumentHelp("Guest RAM: 32M to 3G, a multiple of 2M.", valueName: "SIZE"))
    var memory: String = "64M"

    @Flag(name: .long, help: "Boot a non-protected guest: the host shares its pages instead of donating them.")
    var nonProtected = false

    @Option(name: .long, help: ArgumentHelp("Firmware ELF to use instead of the built-in one.", valueName: "PATH"))
    var firmware: String?

    @Option(name: .long, help: ArgumentHelp("Value for the boot configuration's payload_argument.", valueName: "N"))
    var arg: String = "0"

    @Option(name: .long, help: ArgumentHelp("SMMU design: mirror (the host's DMA domain follows its stage-2), refcount (DMA mappings block conversions) or none (no SMMU, no DMA devices).", valueName: "MODE"))
    var iommuMode: String = "mirror"

    /// Checks every flag; a ValidationError names the bad one.
    func check() throws {
        _ = try memoryBytes()
        guard (1...64).contains(vcpus) else { throw ValidationError("--vcpus \(vcpus) is out of range: use 1 to 64") }
        guard NumberParser.unsigned(Substring(arg)) != nil else { throw ValidationError("--arg '\(arg)' is not a number") }
        _ = try iommu()
    }

    func iommu() throws -> IOMMUMode? { try parseIOMMUMode(iommuMode) }

    func memoryBytes() throws -> UInt64 {
        guard let size = NumberParser.size(memory) else {
            throw ValidationError("--memory '\(memory)' is not a size (examples: 64M, 1G)")
        }
        guard size >= GuestABI.minimumMemory, size <= GuestABI.maximumMemory, size % GuestABI.memoryAlignment == 0 else {
            throw ValidationError("--memory \(memory) must be a multiple of 2M between 32M and 3G")
        }
        return size
    }

    /// The machine these options describe, booting `image` (a file or a built-in name). Errors
    /// reading images are printed as "pvm COMMAND: …" and exit 2.
    func configuration(image: String, command: String) throws -> MachineConfiguration {
        let (payload, payloadName) = try loadImage(image, command: command)
        var configuration = MachineConfiguration(firmware: EmbeddedImage.firmware.bytes, payload: payload)
        if let firmware {
            guard let bytes = readBytes(firmware) else {
                throw fatal(command, "cannot read firmware \(firmware): \(String(cString: strerror(errno)))")
            }
            configuration.firmware = bytes
            configuration.firmwareName = firmware
        }
        configuration.payloadName = payloadName
        configuration.memory = try memoryBytes()
        configuration.vcpus = vcpus
        configuration.isProtected = !nonProtected
        configuration.payloadArgument = NumberParser.unsigned(Substring(arg))!
        configuration.iommuMode = try iommu()
        return configuration
    }

    /// The payload's bytes and a name for messages: a file, or a built-in image.
    private func loadImage(_ image: String, command: String) throws -> ([UInt8], String) {
        if !image.contains("/"), access(image, F_OK) != 0 {
            guard let builtIn = EmbeddedImage(rawValue: image), builtIn != .firmware else {
                throw fatal(command, "no image '\(image)': not a file, and not a built-in image (\(EmbeddedImage.guests.map(\.rawValue).joined(separator: ", ")))")
            }
            return (builtIn.bytes, image)
        }
        guard let bytes = readBytes(image) else {
            throw fatal(command, "cannot read image \(image): \(String(cString: strerror(errno)))")
        }
        return (bytes, image)
    }
}

/// Prints "pvm COMMAND: message" and gives exit status 2.
func fatal(_ command: String, _ message: String) -> ExitCode {
    printError("pvm \(command): \(message)")
    return ExitCode(2)
}
