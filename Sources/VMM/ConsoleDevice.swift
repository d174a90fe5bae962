import EL2
import Synchronization

/// pvm's console (docs/abi.md, "Console device"): FLUSH prints the first n bytes of the buffer
/// page, read through EL2's host-access check; BUFFER moves the buffer page. Reads return 0.
/// A refused read (the guest did not share the page) prints nothing and is reported.
final class ConsoleDevice: MMIODevice {
    let name = "console"
    private let accessor: HostAccessor
    private let console: @Sendable ([UInt8]) -> Void
    private let refused: @Sendable (HostAccessError) -> Void
    /// The console buffer page, as the guest last set it.
    private let buffer = Atomic<UInt64>(GuestLayout.consolePage)

    init(accessor: HostAccessor, console: @escaping @Sendable ([UInt8]) -> Void,
         refused: @escaping @Sendable (HostAccessError) -> Void) {
        self.accessor = accessor
        self.console = console
        self.refused = refused
    }

    func read(offset: UInt64, size: Int) -> UInt64 { 0 }

    func write(offset: UInt64, size: Int, value: UInt64) {
        switch offset {
        case GuestLayout.consoleFlush:
            let count = Int(min(value & 0xffff_ffff, pageSize))
            guard count > 0 else { return }
            do {
                console(try accessor.read(gpa: buffer.load(ordering: .relaxed), count: count))
            } catch {
                refused(error)
            }
        case GuestLayout.consoleBuffer:
            buffer.store(value & ~(pageSize - 1), ordering: .relaxed)
        default:
            break
        }
    }
}
