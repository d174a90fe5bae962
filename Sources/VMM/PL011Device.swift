import Synchronization

/// The AArch64 machine's console: a PrimeCell PL011 UART (ARM DDI 0183), as much of it as
/// pvm's guests and Linux's amba-pl011 driver use. Transmit is immediate: the FIFO never
/// fills (FR.TXFF = 0, TXFE = 1, BUSY = 0), so a polled writer never waits, and the transmit
/// interrupt's raw status is always set (the FIFO is at or below any trigger level). Receive
/// takes what the console's input gives (`receive`) into a FIFO; while it holds data the
/// receive and receive-timeout interrupts are raised. In loopback (CR.LBE) transmitted bytes
/// are received instead of printed, as Linux's TX-interrupt probe expects. The masked
/// interrupt status drives the UART's interrupt line (`interrupt`). The PrimeCell
/// identification registers read as QEMU's PL011 does, so the AMBA bus matches the driver.
///
/// Output goes to the console a line at a time, and when the driver masks the transmit
/// interrupt (it has nothing more to send: a shell's prompt), and whatever is left when the
/// machine stops.
public final class PL011Device: MMIODevice {
    public let name = "pl011"
    private let console: @Sendable ([UInt8]) -> Void
    private let interrupt: @Sendable (Bool) -> Void

    private struct Registers {
        var line: [UInt8] = []
        var received: [UInt8] = []
        var receivedHead = 0
        var ibrd: UInt64 = 0, fbrd: UInt64 = 0, lcrh: UInt64 = 0, cr: UInt64 = 0x300, ifls: UInt64 = 0x12
        var imsc: UInt64 = 0, dmacr: UInt64 = 0
        var lineRaised = false

        var receiveCount: Int { received.count - receivedHead }
        /// RIS: TX (bit 5) always; RX (bit 4) and RT (bit 6) while data waits.
        var raw: UInt64 { 1 << 5 | (receiveCount > 0 ? 1 << 4 | 1 << 6 : 0) }
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
    /// Input bytes held for the guest at most; more is dropped (a paste into a guest that does
    /// not read).
    static let receiveLimit = 1 << 16
    /// FR.RXFF reads 1 from this many waiting bytes on (the hardware FIFO's depth).
    static let fifoDepth = 32

    init(console: @escaping @Sendable ([UInt8]) -> Void, interrupt: @escaping @Sendable (Bool) -> Void = { _ in }) {
        self.console = console
        self.interrupt = interrupt
    }

    public func read(offset: UInt64, size: Int) -> UInt64 {
        if offset >= 0xFE0, offset < 0x1000 { return UInt64(Self.identification[Int((offset - 0xFE0) / 4)]) }
        return update { r in
            switch offset {
            case Offset.data:
                guard r.receiveCount > 0 else { return 0 }
                let byte = r.received[r.receivedHead]
                r.receivedHead += 1
                if r.receivedHead == r.received.count {
                    r.received.removeAll(keepingCapacity: true)
                    r.receivedHead = 0
                } else if r.receivedHead >= Self.fifoDepth * 128 {
                    // Read bytes are dropped as the reader advances, so a guest that keeps the
                    // FIFO from ever draining (loopback writes between reads) cannot grow it.
                    r.received.removeFirst(r.receivedHead)
                    r.receivedHead = 0
                }
                return UInt64(byte)
            case Offset.flags:
                let n = r.receiveCount
                return UInt64(AArch64Layout.pl011FlagTxEmpty) | (n == 0 ? UInt64(AArch64Layout.pl011FlagRxEmpty) : 0)
                    | (n >= Self.fifoDepth ? 1 << 6 : 0)
            case Offset.integerBaud: return r.ibrd
            case Offset.fractionalBaud: return r.fbrd
            case Offset.lineControl: return r.lcrh
            case Offset.control: return r.cr
            case Offset.fifoLevel: return r.ifls
            case Offset.interruptMask: return r.imsc
            case Offset.rawInterrupts: return r.raw
            case Offset.maskedInterrupts: return r.raw & r.imsc
            case Offset.dmaControl: return r.dmacr
            default: return 0  // RSR: no errors
            }
        }
    }

    public func write(offset: UInt64, size: Int, value: UInt64) {
        var ready: [UInt8]?
        update { r in
            switch offset {
            case Offset.data:
                let byte = UInt8(truncatingIfNeeded: value)
                if r.cr & (1 << 7) != 0 {
                    if r.receiveCount < Self.receiveLimit { r.received.append(byte) }
                    return
                }
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
            case Offset.interruptMask:
                r.imsc = value & 0x7FF
                // A driver that sent what it had masks the transmit interrupt (Linux's
                // pl011_stop_tx): a prompt without a newline is shown now.
                if !r.line.isEmpty {
                    ready = r.line
                    r.line.removeAll(keepingCapacity: true)
                }
            case Offset.dmaControl: r.dmacr = value & 7
            default: break  // ECR, ICR: the raw status is a level, nothing latched to clear
            }
        }
        if let ready { console(ready) }
    }

    /// Bytes typed on the console, for the guest to read (from any thread).
    public func receive(_ bytes: [UInt8]) {
        update { r in
            let room = max(0, Self.receiveLimit - r.receiveCount)
            r.received.append(contentsOf: bytes.prefix(room))
        }
    }

    /// Runs `body` on the registers, then raises or lowers the interrupt line to match, under
    /// the lock, so that changes reach the interrupt controller in the order they happened (the
    /// controller never calls back into the UART).
    @discardableResult
    private func update<T>(_ body: (inout Registers) -> T) -> T {
        registers.withLock { r -> T in
            let result = body(&r)
            let raised = r.raw & r.imsc != 0
            if raised != r.lineRaised {
                r.lineRaised = raised
                interrupt(raised)
            }
            return result
        }
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
