import ArgumentParser
import EL2
import ModelScript

/// Options that shape the emulated machine, shared by subcommands.
struct MachineOptions: ParsableArguments {
    @Option(name: [.customShort("m"), .long], help: ArgumentHelp("RAM size, 1M to 64G: a bare number is MiB (as QEMU's -m); K/M/G suffixes, B for bytes.", valueName: "SIZE"))
    var memory: String = "64M"

    @Option(name: .long, help: ArgumentHelp("IPA size of every stage-2: 40 or 48 (any of 32...48 works).", valueName: "BITS"))
    var ipaBits: Int = 40

    @Option(name: .long, help: ArgumentHelp("Physical address of the first RAM byte (2 MiB aligned).", valueName: "ADDR"))
    var ramBase: String = "0x80000000"

    @Option(name: .long, help: ArgumentHelp("SMMU design: mirror (identity domain follows the host stage-2), refcount (DMA references block conversions) or none.", valueName: "MODE"))
    var iommuMode: String = "mirror"

    @Option(name: .long, help: ArgumentHelp("Which pKVM's guest ABI and errnos EL2 answers with: mainline or android.", valueName: "PROFILE"))
    var pkvmABI: String = "mainline"

    func validate() throws {
        _ = try configuration()
    }

    /// The model configuration these options describe, or a ValidationError naming the bad flag.
    func configuration() throws -> ModelSession.Configuration {
        var c = try Self.configuration(memory: memory, ipaBits: ipaBits, ramBase: ramBase, iommuMode: iommuMode)
        guard let profile = PKVMProfile(rawValue: pkvmABI) else {
            throw ValidationError("--pkvm-abi '\(pkvmABI)' must be mainline or android")
        }
        c.profile = profile
        return c
    }

    /// A model configuration from flag values (also `pvm inspect --model`'s).
    static func configuration(memory: String, ipaBits: Int, ramBase: String, iommuMode: String) throws -> ModelSession.Configuration {
        var c = ModelSession.Configuration()
        guard let size = SizeFlag.bytes(memory) else {
            throw ValidationError("--memory '\(memory)' is not a size (examples: \(SizeFlag.examples))")
        }
        guard size >= ModelSession.minimumMemory, size <= ModelSession.maximumMemory else {
            throw ValidationError("--memory \(memory) is out of range: pvm emulates 1M to 64G of RAM")
        }
        guard size % 4096 == 0 else { throw ValidationError("--memory \(memory) is not a multiple of 4 KiB") }
        guard (32...48).contains(ipaBits) else {
            throw ValidationError("--ipa-bits \(ipaBits) is not supported: use 40 or 48 (32...48 with the 4 KB granule)")
        }
        guard let base = NumberParser.unsigned(Substring(ramBase)), base % (2 << 20) == 0 else {
            throw ValidationError("--ram-base '\(ramBase)' must be a 2 MiB aligned address")
        }
        guard base <= UInt64.max - size, base + size <= 1 << UInt64(ipaBits) else {
            throw ValidationError("RAM [\(ramBase), +\(memory)) does not fit a \(ipaBits)-bit IPA space")
        }
        c.iommu = try parseIOMMUMode(iommuMode)
        c.memory = size
        c.ipaBits = ipaBits
        c.ramBase = base
        return c
    }
}

/// `--iommu-mode`: an SMMU design, or nil for `none`.
func parseIOMMUMode(_ text: String) throws -> IOMMUMode? {
    if text == "none" { return nil }
    guard let mode = IOMMUMode(rawValue: text) else {
        throw ValidationError("--iommu-mode '\(text)' must be mirror, refcount or none")
    }
    return mode
}
