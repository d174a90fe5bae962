import HostMemory
import Synchronization
import VMM
#if canImport(Glibc)
import Glibc
#endif

/// Forwards what the user types to the guest's UART (`Machine.consoleInput`), as QEMU's and
/// crosvm's serial consoles do. On a terminal, standard input goes raw (no line editing, no
/// echo, no signals: Ctrl-C goes to the guest) and Ctrl-A x stops the guest, Ctrl-A Ctrl-A
/// sends one Ctrl-A (QEMU's escapes); the terminal's settings come back when the run ends.
/// From a pipe or a file, bytes are forwarded as they come, up to end of file.
///
/// A thread polls standard input with a short timeout, so that `finish` never waits for a key.
final class ConsoleInput: @unchecked Sendable {
    private let done = Atomic<Bool>(false)
    /// Whether the user stopped the guest with Ctrl-A x (the run then ends as for SIGINT).
    let escaped = Atomic<Bool>(false)
    private var thread: ThreadHandle?
    private var saved: termios?
    /// Ctrl-A, QEMU's escape.
    static let escape: UInt8 = 0x01

    /// Whether standard input is a terminal (the user can type into the guest).
    static var isTerminal: Bool { isatty(STDIN_FILENO) == 1 }

    /// Starts forwarding to `machine`.
    func start(_ machine: Machine) {
        if Self.isTerminal {
            var settings = termios()
            if tcgetattr(STDIN_FILENO, &settings) == 0 {
                saved = settings
                cfmakeraw(&settings)
                // Keep output processing: the guest's "\n" still returns the carriage.
                settings.c_oflag |= tcflag_t(OPOST)
                _ = tcsetattr(STDIN_FILENO, TCSANOW, &settings)
            }
        }
        let terminal = saved != nil
        thread = try? ThreadHandle.spawn { [self] in
            var escaped = false
            var buffer = [UInt8](repeating: 0, count: 4096)
            while !done.load(ordering: .acquiring) {
                var poller = pollfd(fd: STDIN_FILENO, events: Int16(POLLIN), revents: 0)
                let ready = poll(&poller, 1, 50)
                if ready < 0, errno == EINTR { continue }
                guard ready > 0 else { continue }
                let n = buffer.withUnsafeMutableBytes { read(STDIN_FILENO, $0.baseAddress, $0.count) }
                if n < 0, errno == EINTR || errno == EAGAIN { continue }
                guard n > 0 else { return }  // end of file, or an error: no more input
                var out: [UInt8] = []
                for byte in buffer[0 ..< n] {
                    guard terminal else { out.append(byte); continue }
                    if escaped {
                        escaped = false
                        if byte == UInt8(ascii: "x") {
                            self.escaped.store(true, ordering: .releasing)
                            machine.requestStop(signal: SIGINT)
                            return
                        }
                        out.append(byte)
                    } else if byte == Self.escape {
                        escaped = true
                    } else {
                        out.append(byte)
                    }
                }
                if !out.isEmpty { machine.consoleInput(out) }
            }
        }.get()
    }

    /// Stops forwarding and gives the terminal its settings back.
    func finish() {
        done.store(true, ordering: .releasing)
        thread?.join()
        thread = nil
        if var settings = saved { _ = tcsetattr(STDIN_FILENO, TCSANOW, &settings) }
        saved = nil
    }
}
