import ArgumentParser
import EL2

/// The EL2 design a fuzz or check run targets: the SMMU's design and the pKVM profile.
struct DesignOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("SMMU design: mirror, refcount or none.", valueName: "MODE"))
    var iommuMode: String = "mirror"

    @Option(name: .long, help: ArgumentHelp("pKVM profile: mainline or android.", valueName: "PROFILE"))
    var pkvmABI: String = "mainline"

    func validate() throws {
        _ = try parseIOMMUMode(iommuMode)
        guard PKVMProfile(rawValue: pkvmABI) != nil else { throw ValidationError("--pkvm-abi '\(pkvmABI)' must be mainline or android") }
    }

    /// Valid once `validate` passed.
    var iommu: IOMMUMode? { (try? parseIOMMUMode(iommuMode)) ?? nil }
    var profile: PKVMProfile { PKVMProfile(rawValue: pkvmABI) ?? .mainline }
}
