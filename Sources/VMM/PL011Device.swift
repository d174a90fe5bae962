import Synchronization

/// The AArch64 machine's console: a PrimeCell PL011 UART (ARM DDI 0183), as much of it as
/// pvm's guests and Linux's amba-pl011 driver use. Transmit is immediate: the FIFO never
/// fills (FR.TXFF = 0, TXFE = 1, BUSY = 0), so a polled writer never waits. There is no input
/// yet (FR.RXFE = 1). The control registers read back what was written; the PrimeCell
/// identification registers read as QEMU's PL011 does, so the AMBA bus matches the driver.
///
/// Output goes to the console a line at a time (and whatever is left when the machine stops).
final class PL011Device: MMIODevice {
    let name = "pl011"
    private let console: @Sendable ([UInt8]) -> Void

    private struct Registers {
        var line: [UInt8] = []
        var ibrd: UInt64 = 0, fbrd: UInt64 = 0, lcrh: UInt64 = 0, cr: UInt64 = 0x300, ifls: UInt64 = 0x12
        var imsc: UInt64 = 0, dmacr: UInt64 = 0
    }
    private let registers = Mutex(Registers())

    /// Register offsets (DDI 0183 table 3-1).
    enum Offset {
        static let data: UInt64 = 0x000, receiveStatus: UInt64 = 0x004, flags: UInt64 = 0x018
        static let integerBaud: UInt64 = 0x024, fractionalBaud: UInt64 = 0x028, lineControl: UInt64 = 0x02C
        static let control: UInt64 = 0x030, fifoLevel: UInt64 = 0x034, interruptMask: UInt64 = 0x038
        static let rawInterrupts: UInt64 = 0x03C, maskedInterrupts: UInt64 = 0x040, interruptClear: UInt64 = 0x044
        static let dmaControl: UInt64 = 0x048
    }

    /// PeriphID0-3 then PCellID0-3 at 0xFE0-0xFFC (QEMU hw/char/pl011.c `pl011_id_arm`).
    static let identification: [UInt8] = [0x11, 0x10, 0x14, 0x00, 0x0D, 0xF0, 0x05, 0xB1]
    /// The longest line kept before it is printed anyway.
    static let lineLimit = 4096

    init(console: @escaping @Sendable ([UInt8]) -> Void) { self.console = console }

    func read(offset: UInt64, size: Int) -> UInt64 {
        if offset >= 0xFE0, offset < 0x1000 { return UInt64(Self.identification[Int((offset - 0xFE0) / 4)]) }
        return registers.withLock { r in
            switch offset {
            case Offset.flags: return UInt64(AArch64Layout.pl011FlagTxEmpty | AArch64Layout.pl011FlagRxEmpty)
            case Offset.integerBaud: return r.ibrd
            case Offset.fractionalBaud: return r.fbrd
            case Offset.lineControl: return r.lcrh
            case Offset.control: return r.cr
            case Offset.fifoLevel: return r.ifls
            case Offset.interruptMask: return r.imsc
            case Offset.dmaControl: return r.dmacr
            default: return 0  // DR with nothing received, RSR, RIS, MIS
            }
        }
    }

    func write(offset: UInt64, size: Int, value: UInt64) {
        var ready: [UInt8]?
        registers.withLock { r in
            switch offset {
            case Offset.data:
                let byte = UInt8(truncatingIfNeeded: value)
                r.line.append(byte)
                if byte == 0x0A || r.line.count >= Self.lineLimit {
                    ready = r.line
                    r.line.removeAll(keepingCapacity: true)
                }
            case Offset.integerBaud: r.ibrd = value & 0xFFFF
            case Offset.fractionalBaud: r.fbrd = value & 0x3F
            case Offset.lineControl: r.lcrh = value & 0xFF
            case Offset.control: r.cr = value & 0xFFFF
            case Offset.fifoLevel: r.ifls = value & 0x3F
            case Offset.interruptMask: r.imsc = value & 0x7FF
            case Offset.dmaControl: r.dmacr = value & 7
            default: break  // ECR, ICR: nothing pending to clear
            }
        }
        if let ready { console(ready) }
    }

    /// Prints what is left of an unfinished line.
    func flush() {
        let rest = registers.withLock { r -> [UInt8] in
            defer { r.line.removeAll() }
            return r.line
        }
        if !rest.isEmpty { console(rest) }
    }
}
