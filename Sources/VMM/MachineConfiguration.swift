import EL2
import Tracing

/// What `pvm boot` asks for: the machine's size, the guest's protection, the pKVM ABI it is
/// written against, and the images.
public struct MachineConfiguration: Sendable {
    /// Guest RAM in bytes (GuestLayout.minimumMemory ... maximumMemory, 2 MiB multiple).
    public var memory: UInt64 = 64 << 20
    /// vCPUs; vCPU 0 boots, the others wait for PSCI CPU_ON.
    public var vcpus = 1
    /// A protected guest (pKVM's pVM: lazy donation) or not (host_share_guest on fault).
    public var isProtected = true
    /// Which pKVM the guest's hypercalls are answered as (docs/abi.md).
    public var profile: PKVMProfile = .mainline
    /// The firmware ELF and a name for messages.
    public var firmware: [UInt8]
    public var firmwareName = "firmware"
    /// The payload ELF the firmware verifies and boots.
    public var payload: [UInt8]
    public var payloadName = "payload"
    /// Set to boot `payload` as a Linux arm64 Image (with this initramfs and command line)
    /// instead of as an ELF file.
    public var linux: LinuxBoot?
    /// `payload_argument` in the boot configuration.
    public var payloadArgument: UInt64 = 0
    /// Flip one byte of the staged payload after its digest is computed, to watch the firmware
    /// refuse it.
    public var tamperPayload = false
    /// How EL2's SMMU keeps device DMA consistent with ownership (docs/iommu.md); nil for a
    /// machine without an SMMU and without DMA devices.
    public var iommuMode: IOMMUMode? = .mirror
    /// Where to record every hypercall, transition and fault (JSON Lines), if anywhere.
    public var trace: EventTrace?
    /// Receives what the guest prints on its console.
    public var console: @Sendable ([UInt8]) -> Void = { _ in }
    /// How vCPUs share the host's CPUs.
    public var scheduling: Scheduling = .threads
    /// The leaf a protected guest's first touch donates and maps (`--guest-block`): a page, or
    /// the whole aligned 2 MiB / 1 GiB block around it where all of it is still the host's.
    public var guestBlock: GuestBlockSize = .page
    /// Whether the host's devices hold long-term pins on the shared pages they map
    /// (`--host-pins longterm`), or map them through EL2's SMMU with no pin (the default).
    public var hostPins: HostPinMode = .none

    /// One host thread per vCPU, or all vCPUs interleaved on one thread in an order a seed
    /// picks (docs/vmm.md, "Deterministic scheduling").
    public enum Scheduling: Sendable, Equatable {
        case threads
        /// vCPUs run in turns of a few hundred to a few thousand instructions, the next vCPU
        /// and the turn's length drawn from `seed`; time is the instruction count (1 ns per
        /// instruction), so the same image, flags and seed give the same run and the same trace.
        case deterministic(seed: UInt64)
    }

    public init(firmware: [UInt8], payload: [UInt8]) {
        self.firmware = firmware
        self.payload = payload
    }

    /// Checks the numbers a user can get wrong; the images are checked when loaded.
    func validate(maxVCPUs: Int) throws(VMMError) {
        guard memory >= GuestLayout.minimumMemory, memory <= GuestLayout.maximumMemory,
              memory % GuestLayout.memoryAlignment == 0 else {
            throw .configuration(.memory(memory))
        }
        guard vcpus >= 1, vcpus <= maxVCPUs else { throw .configuration(.vcpus(vcpus, maximum: maxVCPUs)) }
    }
}
