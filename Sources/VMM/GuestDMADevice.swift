import EL2
import Synchronization

/// The MMIO front of the DMA engine assigned to the guest (GuestLayout.dmaMMIO, docs/vmm.md):
/// SRC 0x00, DST 0x08, LEN 0x10, FILL 0x18 (byte), CMD 0x20 (write 1 = copy, 2 = fill; runs to
/// completion before the write returns), STATUS 0x28 (0 done, 3 SMMU fault, 4 rejected),
/// DONE 0x30 (bytes written). Addresses are the guest's IPAs: the engine's stream is assigned
/// to the guest, so its SMMU domain is the guest's own stage-2.
final class GuestDMADevice: MMIODevice {
    let name = "guest-dma"
    let engine: DMAEngine
    /// SRC, DST, LEN, FILL, STATUS, DONE.
    private let registers = Mutex<[UInt64]>([0, 0, 0, 0, 0, 0])

    /// Largest operation one command may ask for.
    static let maxBytes: UInt64 = 1 << 20

    init(engine: DMAEngine) { self.engine = engine }

    func read(offset: UInt64, size: Int) -> UInt64 {
        registers.withLock { r in
            switch offset {
            case 0x00: r[0]
            case 0x08: r[1]
            case 0x10: r[2]
            case 0x18: r[3]
            case 0x28: r[4]
            case 0x30: r[5]
            default: 0
            }
        }
    }

    func write(offset: UInt64, size: Int, value: UInt64) {
        let command: DMAEngine.Operation? = registers.withLock { r in
            switch offset {
            case 0x00: r[0] = value
            case 0x08: r[1] = value
            case 0x10: r[2] = value
            case 0x18: r[3] = value & 0xFF
            case 0x20:
                guard r[2] > 0, r[2] <= Self.maxBytes, value == 1 || value == 2 else {
                    r[4] = 4
                    r[5] = 0
                    return nil
                }
                return value == 1 ? .copy(from: r[0], to: r[1], count: Int(r[2]))
                                  : .fill(at: r[1], byte: UInt8(r[3]), count: Int(r[2]))
            default: break
            }
            return nil
        }
        guard let command else { return }
        let outcome = engine.perform(command)
        registers.withLock { r in
            r[4] = outcome.fault == nil ? 0 : 3
            r[5] = UInt64(outcome.bytes)
        }
    }
}
