/// Where everything is in one guest's physical address space, for its architecture
/// (docs/abi.md): the numbers of `GuestLayout` (x86-64) or `AArch64Layout` (crosvm's
/// protected-VM map) for a machine with `ram` bytes of RAM.
///
/// The VMM backs one contiguous range of guest-physical memory, `memory`, with the start of
/// its memory file: guest-physical address `memory.lowerBound + x` is physical address
/// `Machine.ramBase + x`. On x86-64 that range is RAM from 0; on AArch64 it is pvmfw's 4 MiB
/// region below RAM, then RAM at 0x8000_0000.
public struct MachineLayout: Sendable, Equatable {
    public let architecture: GuestArchitecture
    /// The guest-physical memory the VMM backs (and lazily donates page by page).
    public let memory: Range<UInt64>
    /// RAM as the guest is told about it (the boot configuration, the device tree).
    public let ram: Range<UInt64>
    /// Where the firmware's PT_LOAD segments must lie.
    public let firmwareWindow: Range<UInt64>
    /// Where the VMM stages the payload's ELF file for the firmware.
    public let payloadStaging: Range<UInt64>
    /// Where the payload's PT_LOAD segments must lie.
    public let payloadWindow: Range<UInt64>
    /// The console: pvm's console device on x86-64, a PL011 UART on AArch64.
    public let console: UInt64
    public let block: UInt64
    public let dma: UInt64
    /// The boot handoff: the boot configuration page (x86-64) or the flattened device tree (AArch64).
    public let handoff: UInt64
    /// The stack pointer vCPU 0 starts with (0: the firmware sets its own).
    public let firmwareStack: UInt64

    public init(architecture: GuestArchitecture, ram size: UInt64) {
        self.architecture = architecture
        switch architecture {
        case .x86_64:
            memory = GuestLayout.ramBase ..< GuestLayout.ramBase + size
            ram = memory
            firmwareWindow = GuestLayout.firmwareWindow
            payloadStaging = GuestLayout.payloadStaging ..< GuestLayout.payloadStagingEnd
            payloadWindow = GuestLayout.payloadWindowStart ..< size
            console = GuestLayout.consoleMMIO
            block = GuestLayout.blockMMIO
            dma = GuestLayout.dmaMMIO
            handoff = GuestLayout.bootConfig
            firmwareStack = GuestLayout.firmwareStackTop
        case .aarch64:
            let ramEnd = AArch64Layout.ramBase + size
            memory = AArch64Layout.firmwareBase ..< ramEnd
            ram = AArch64Layout.ramBase ..< ramEnd
            firmwareWindow = AArch64Layout.firmwareBase ..< AArch64Layout.firmwareImageEnd
            payloadStaging = AArch64Layout.payloadStaging ..< AArch64Layout.payloadStagingEnd
            // The FDT in the last 2 MiB-aligned 2 MiB of RAM, as crosvm places it for a kernel.
            let fdt = (ramEnd - AArch64Layout.fdtMaxSize) & ~(AArch64Layout.fdtMaxSize - 1)
            payloadWindow = AArch64Layout.payloadWindowStart ..< fdt
            console = AArch64Layout.uartMMIO
            block = AArch64Layout.blockMMIO
            dma = AArch64Layout.dmaMMIO
            handoff = fdt
            firmwareStack = 0
        }
    }

    /// Bytes of guest-physical memory the VMM backs.
    public var memorySize: UInt64 { memory.upperBound - memory.lowerBound }

    /// Whether `[gpa, gpa + count)` is backed guest memory.
    @inline(__always) public func contains(_ gpa: UInt64, count: UInt64 = 1) -> Bool {
        gpa >= memory.lowerBound && gpa < memory.upperBound && count <= memory.upperBound - gpa
    }

    /// The offset of `gpa` into the backed memory (its offset into the memory file).
    @inline(__always) public func offset(_ gpa: UInt64) -> UInt64 { gpa &- memory.lowerBound }
}
