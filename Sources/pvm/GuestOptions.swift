import ArgumentParser
#if canImport(Glibc)
import Glibc
#endif
import EL2
import EmbeddedImages
import InterpBackend
import KVMBackend
import ModelScript
import Tracing
import VMM

/// Options that describe a guest machine, shared by `pvm boot` and `pvm inspect`.
struct GuestOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("Number of vCPUs (1 to 64; default 1).", valueName: "N"))
    var vcpus: Int?

    @Option(name: [.customShort("m"), .long], help: ArgumentHelp("Guest RAM, 32M to 3G, a multiple of 2M: a bare number is MiB (as QEMU's -m and crosvm's --mem); K/M/G suffixes, B for bytes.", valueName: "SIZE"))
    var memory: String = "64M"

    @Flag(name: .long, help: "Boot a non-protected guest: the host shares its pages instead of donating them.")
    var nonProtected = false

    @Option(name: .long, help: ArgumentHelp("Which pKVM's guest ABI EL2 answers with: mainline (Linux) or android (Android's common kernel 6.12). Default: what the image asks for, else mainline.", valueName: "PROFILE"))
    var pkvmABI: String?

    @Option(name: .long, help: ArgumentHelp("Firmware ELF to use instead of the built-in one.", valueName: "PATH"))
    var firmware: String?

    @Option(name: .long, help: ArgumentHelp("Value for the boot configuration's payload_argument (default 0).", valueName: "N"))
    var arg: String?

    @Option(name: .long, help: ArgumentHelp("SMMU design: mirror (the host's DMA domain follows its stage-2), refcount (DMA mappings block conversions) or none (no SMMU, no DMA devices).", valueName: "MODE"))
    var iommuMode: String = "mirror"

    @Option(name: .long, help: ArgumentHelp("What runs the guest: kvm (x86-64 images on /dev/kvm) or interp (AArch64 images on pvm's interpreter, any host). Default: from the image's ELF machine; for a built-in image, kvm where /dev/kvm works, else interp.", valueName: "BACKEND"))
    var backend: String?

    @Option(name: .long, help: ArgumentHelp("Run every vCPU on one host thread, in turns whose order and length SEED picks, with time counted in instructions: the same image, flags and seed give the same run and the same trace, byte for byte (interpreter only).", valueName: "SEED"))
    var deterministic: UInt64?

    @Option(name: .long, help: ArgumentHelp("The stage-2 leaf a protected guest's first touch donates: 4k (a page, default), 2m or 1g (the whole aligned block around it, where all of it is still the host's; 1g needs --memory 2G or more). The host's views stay 4 KiB.", valueName: "SIZE"))
    var guestBlock: String = "4k"

    @Option(name: .long, help: ArgumentHelp("none (default: EL2 unmaps a page from every IOMMU, no pin needed) or longterm (devices hold long-term pins on the shared pages they map, as VFIO does: unsharing or converting such a page fails with -EBUSY).", valueName: "MODE"))
    var hostPins: String = "none"

    @Option(name: .long, help: ArgumentHelp("Boot a Linux arm64 kernel Image (uncompressed, as Debian's linux-image-*-arm64 ships it) through pvmfw instead of IMAGE, on the interpreter.", valueName: "IMAGE"))
    var kernel: String?

    @Option(name: .long, help: ArgumentHelp("The initramfs for --kernel (/chosen linux,initrd-start/end; pvmfw checks its SHA-256).", valueName: "FILE"))
    var initrd: String?

    @Option(name: .long, help: ArgumentHelp("The kernel command line for --kernel (/chosen bootargs).", valueName: "ARGS"))
    var append: String?

    /// Checks every flag; a ValidationError names the bad one.
    func check() throws {
        if kernel == nil, initrd != nil || append != nil {
            throw ValidationError("--initrd and --append go with --kernel")
        }
        if kernel != nil, arg != nil {
            throw ValidationError("--arg is pvm's own payloads' argument; a kernel takes --append")
        }
        if kernel != nil, let backend = try explicitBackend(), backend != .interp {
            throw ValidationError("--kernel boots an arm64 Linux Image, which runs on the interpreter (--backend interp), not on \(backend)")
        }
        _ = try memoryBytes()
        guard (1...64).contains(vcpuCount) else { throw ValidationError("--vcpus \(vcpuCount) is out of range: use 1 to 64") }
        guard payloadArgument != nil else { throw ValidationError("--arg '\(arg ?? "")' is not a number") }
        _ = try iommu()
        _ = try explicitProfile()
        _ = try explicitBackend()
        let block = try blockSize()
        _ = try pinMode()
        if block != .page, nonProtected {
            throw ValidationError("--guest-block \(block) is for protected guests: a non-protected guest's memory stays the host's, shared page by page")
        }
        if block == .block1G, try memoryBytes() < 2 << 30 {
            throw ValidationError("--guest-block 1g needs --memory 2G or more: the first 1 GiB of RAM holds the boot structures, so no other block fits")
        }
    }

    func blockSize() throws -> GuestBlockSize {
        guard let b = GuestBlockSize(rawValue: guestBlock.lowercased()) else {
            throw ValidationError("--guest-block '\(guestBlock)' must be 4k, 2m or 1g")
        }
        return b
    }

    func pinMode() throws -> HostPinMode {
        guard let m = HostPinMode(rawValue: hostPins) else { throw ValidationError("--host-pins '\(hostPins)' must be none or longterm") }
        return m
    }

    var vcpuCount: Int { vcpus ?? 1 }
    var payloadArgument: UInt64? { NumberParser.unsigned(Substring(arg ?? "0")) }

    /// The flags that describe only a booted guest, which were given: `pvm inspect --model`
    /// refuses them rather than ignore them.
    var bootOnlyFlagsGiven: [String] {
        var given: [String] = []
        if vcpus != nil { given.append("--vcpus") }
        if nonProtected { given.append("--non-protected") }
        if firmware != nil { given.append("--firmware") }
        if arg != nil { given.append("--arg") }
        if backend != nil { given.append("--backend") }
        if deterministic != nil { given.append("--deterministic") }
        if kernel != nil { given.append("--kernel") }
        if initrd != nil { given.append("--initrd") }
        if append != nil { given.append("--append") }
        if guestBlock != "4k" { given.append("--guest-block") }
        if hostPins != "none" { given.append("--host-pins") }
        return given
    }

    /// The two backends `pvm boot` can run a guest on.
    enum BackendKind: String, CaseIterable {
        case kvm, interp

        var architecture: GuestArchitecture { self == .kvm ? .x86_64 : .aarch64 }
    }

    /// `--backend`, when given.
    func explicitBackend() throws -> BackendKind? {
        guard let backend else { return nil }
        guard let kind = BackendKind(rawValue: backend) else {
            throw ValidationError("--backend '\(backend)' must be kvm or interp")
        }
        return kind
    }

    func iommu() throws -> IOMMUMode? { try parseIOMMUMode(iommuMode) }

    /// `--pkvm-abi`, when given.
    func explicitProfile() throws -> PKVMProfile? {
        guard let pkvmABI else { return nil }
        guard let profile = PKVMProfile(rawValue: pkvmABI) else {
            throw ValidationError("--pkvm-abi '\(pkvmABI)' must be mainline or android")
        }
        return profile
    }

    func memoryBytes() throws -> UInt64 {
        guard let size = SizeFlag.bytes(memory) else {
            throw ValidationError("--memory '\(memory)' is not a size (examples: \(SizeFlag.examples))")
        }
        guard size >= GuestLayout.minimumMemory, size <= GuestLayout.maximumMemory, size % GuestLayout.memoryAlignment == 0 else {
            throw ValidationError("--memory \(memory) must be a multiple of 2M between 32M and 3G")
        }
        return size
    }

    /// The machine these options describe, booting `image` (a file or a built-in name), and the
    /// backend to run it on: `--backend`, else the one the image's ELF machine needs, else (a
    /// built-in image, which exists for both architectures) KVM where it works and the
    /// interpreter everywhere else. Errors are printed as "pvm COMMAND: …" and exit 2.
    func machine(image: String, command: String) throws -> (MachineConfiguration, any ExecutionBackend) {
        do { return try machine(image: image, command: command, quiet: true) } catch let e as SetupError {
            throw fatal(command, e.message)
        }
    }

    /// Why a machine could not be built (a bad image, an impossible backend), not printed.
    struct SetupError: Error, CustomStringConvertible {
        let message: String
        init(_ message: String) { self.message = message }
        var description: String { message }
    }

    /// The same, throwing `SetupError` instead of printing (`pvm test` reports it per scenario).
    func machine(image: String, command: String, quiet: Bool) throws -> (MachineConfiguration, any ExecutionBackend) {
        if let kernel { return try linuxMachine(kernel: kernel, command: command) }
        let kind = try chooseBackend(image: image, command: command)
        let architecture = kind.architecture
        let (payload, payloadName) = try loadImage(image, architecture: architecture, command: command)
        if let found = Self.elfMachine(payload), found != architecture {
            throw SetupError("\(payloadName) is an \(found) image; the \(kind) backend runs \(architecture) images"
                        + (found == .aarch64 ? " (use --backend interp)" : " (use --backend kvm)"))
        }
        var configuration = try configuration(architecture, payload: payload, name: payloadName, command: command)
        configuration.payloadArgument = payloadArgument!
        configuration.profile = try profile(for: payload, name: payloadName, architecture: architecture, command: command)
        if let deterministic {
            guard kind == .interp else {
                throw SetupError("--deterministic needs the interpreter (--backend interp): KVM cannot count instructions")
            }
            configuration.scheduling = .deterministic(seed: deterministic)
        }
        return (configuration, try makeBackend(kind, command: command))
    }

    /// What every guest takes from these flags: the firmware (built in, or `--firmware`), the
    /// payload, memory, vCPUs, protection and the SMMU design.
    private func configuration(_ architecture: GuestArchitecture, payload: [UInt8], name: String, command: String) throws
        -> MachineConfiguration {
        var configuration = MachineConfiguration(firmware: EmbeddedImage.firmware.bytes(for: architecture.rawValue), payload: payload)
        if let firmware {
            configuration.firmware = try Self.readImageFile(firmware, what: "firmware")
            configuration.firmwareName = firmware
        }
        configuration.payloadName = name
        configuration.memory = try memoryBytes()
        configuration.vcpus = vcpuCount
        configuration.isProtected = !nonProtected
        configuration.iommuMode = try iommu()
        configuration.guestBlock = try blockSize()
        configuration.hostPins = try pinMode()
        return configuration
    }

    /// The machine for `--kernel`: the built-in pvmfw, then the kernel, on the interpreter.
    private func linuxMachine(kernel: String, command: String) throws -> (MachineConfiguration, any ExecutionBackend) {
        let bytes = try Self.readImageFile(kernel, what: "kernel", limit: Self.kernelLimit)
        guard LinuxImage.isImage(bytes) else {
            throw SetupError("\(kernel) is not a Linux arm64 Image (no \"ARM\\x64\" magic at byte 56); "
                             + "a compressed vmlinuz must be unpacked first")
        }
        let initrdBytes = try initrd.map { try Self.readImageFile($0, what: "initramfs", limit: Self.initrdLimit) }
        var configuration = try configuration(.aarch64, payload: bytes, name: kernel, command: command)
        configuration.linux = LinuxBoot(initrd: initrdBytes, commandLine: append ?? "")
        configuration.profile = try explicitProfile() ?? .mainline
        if let deterministic { configuration.scheduling = .deterministic(seed: deterministic) }
        return (configuration, InterpBackend())
    }

    /// `--backend`; else the ELF machine of an image file; else KVM if it works here, else the
    /// interpreter.
    private func chooseBackend(image: String, command: String) throws -> BackendKind {
        if let explicit = try explicitBackend() { return explicit }
        if deterministic != nil, !isFile(image) { return .interp }
        if isFile(image) {
            let bytes = try Self.readImageFile(image, what: "image")
            switch Self.elfMachine(bytes) {
            case .aarch64: return .interp
            case .x86_64: return .kvm
            case nil: break  // ELFImage says what is wrong with it
            }
        }
        return KVMBackend.unavailableReason() == nil ? .kvm : .interp
    }

    /// The architecture an ELF file's e_machine names, if it is one pvm runs.
    static func elfMachine(_ bytes: [UInt8]) -> GuestArchitecture? {
        guard bytes.count >= 20, bytes[0 ..< 4] == [0x7F, 0x45, 0x4C, 0x46] else { return nil }
        switch UInt16(bytes[18]) | UInt16(bytes[19]) << 8 {
        case 62: return .x86_64
        case 183: return .aarch64
        default: return nil
        }
    }

    private func makeBackend(_ kind: BackendKind, command: String) throws -> any ExecutionBackend {
        switch kind {
        case .interp: return InterpBackend()
        case .kvm:
            do { return try KVMBackend() } catch {
                throw SetupError("\(error)" + (KVMBackend.unavailableReason().map { " (\($0))" } ?? "")
                            + "; --backend interp runs the AArch64 build of the built-in images on any host")
            }
        }
    }

    private func isFile(_ image: String) -> Bool { image.contains("/") || access(image, F_OK) == 0 }

    /// `--pkvm-abi`, else the profile the image's note asks for, else mainline.
    private func profile(for payload: [UInt8], name: String, architecture: GuestArchitecture, command: String) throws -> PKVMProfile {
        if let explicit = try explicitProfile() { return explicit }
        let wanted = (try? ELFImage(bytes: payload, name: name, window: 0 ..< .max, machine: architecture))?.requiredProfile
        guard let wanted else { return .mainline }
        guard let profile = PKVMProfile(rawValue: wanted) else {
            throw SetupError("\(name) asks for pKVM profile '\(wanted)', which pvm does not have (mainline, android)")
        }
        return profile
    }

    /// The payload's bytes and a name for messages: a file, or a built-in image.
    private func loadImage(_ image: String, architecture: GuestArchitecture, command: String) throws -> ([UInt8], String) {
        if !isFile(image) {
            guard let builtIn = EmbeddedImage(rawValue: image), builtIn != .firmware else {
                throw SetupError("no image '\(image)': not a file, and not a built-in image (\(EmbeddedImage.guests.map(\.rawValue).joined(separator: ", ")))")
            }
            return (builtIn.bytes(for: architecture.rawValue), image)
        }
        return (try Self.readImageFile(image, what: "image"), image)
    }

    /// Reads an image file, at most `imageLimit` bytes: a larger one (or /dev/zero) is refused
    /// before it is read whole.
    static func readImageFile(_ path: String, what: String, limit: Int = Self.imageLimit) throws -> [UInt8] {
        switch TextFile.read(path, limit: limit) {
        case let .success(bytes): return bytes
        case let .failure(.tooLarge(limit)):
            throw SetupError("\(what) \(path) is larger than \(limit >> 20) MiB; pvm reads no \(what) that large")
        case let .failure(.unreadable(errno)):
            throw SetupError("cannot read \(what) \(path): \(String(cString: strerror(errno)))")
        }
    }

    /// Largest image or firmware file pvm reads: the payload staging area is 15 MiB.
    static let imageLimit = 16 << 20
    /// Largest kernel Image and initramfs pvm reads (Debian's arm64 Image is about 35 MiB).
    static let kernelLimit = 256 << 20
    static let initrdLimit = 1 << 30

}

/// Prints "pvm COMMAND: message" and gives exit status 2.
func fatal(_ command: String, _ message: String) -> ExitCode {
    printError("pvm \(command): \(message)")
    return ExitCode(2)
}
