import EL2
import Synchronization

/// A device behind guest-physical MMIO pages: pvm's console, the block device's and the
/// assigned DMA engine's registers, the interrupt controller's frames. The core dispatches a decoded stage-2 abort outside RAM to
/// the device whose page holds it (after EL2's MMIO guard allowed it), the way a VMM's MMIO
/// bus does.
///
/// Called from vCPU threads, possibly several at once: a device synchronises itself.
public protocol MMIODevice: AnyObject, Sendable {
    /// A name for traces and messages.
    var name: String { get }
    /// A guest read of `size` bytes at `offset` into the device's page.
    func read(offset: UInt64, size: Int) -> UInt64
    /// A guest write of `size` bytes of `value` at `offset`.
    func write(offset: UInt64, size: Int, value: UInt64)
}

/// The machine's MMIO bus: devices by guest-physical page. Filled while the machine is built,
/// read-only afterwards.
final class MMIODeviceMap: @unchecked Sendable {
    /// Written only during `Machine.init`, before any vCPU thread exists: each page's device and
    /// the guest-physical address its region starts at.
    private var byPage: [UInt64: (device: any MMIODevice, base: UInt64)] = [:]

    /// Puts `device` behind the `size` bytes (whole pages) from `gpa`.
    func add(_ device: any MMIODevice, at gpa: UInt64, size: UInt64 = pageSize) {
        for page in stride(from: gpa >> pageShift, to: (gpa + size + pageSize - 1) >> pageShift, by: 1) {
            byPage[page] = (device, gpa)
        }
    }

    /// The device whose region holds `gpa`, and the offset into the region.
    func device(at gpa: UInt64) -> (device: any MMIODevice, offset: UInt64)? {
        guard let entry = byPage[gpa >> pageShift] else { return nil }
        return (entry.device, gpa - entry.base)
    }
}
