import ModelScript
import Tracing
#if canImport(Glibc)
import Glibc
#endif

/// The terminal half of `pvm model`'s line editor: standard input in raw mode (termios, the
/// only place pvm changes terminal settings), keys decoded by `LineEditing`, the line redrawn
/// after each key, and the history kept in `$HOME/.pvm_model_history` (last 1,000 lines; read
/// with a bound). The terminal is restored before every return, including on end of input.
struct LineEditor {
    private var editing: LineEditing
    private let historyPath: String?
    private var pending: [UInt8] = []

    init() {
        let home = getenv("HOME").map { String(cString: $0) }
        historyPath = home.map { $0 + "/.pvm_model_history" }
        var lines: [String] = []
        if let historyPath, case let .success(bytes) = TextFile.read(historyPath, limit: 1 << 20) {
            lines = String(decoding: bytes, as: UTF8.self).split(separator: "\n").map(String.init)
        }
        editing = LineEditing(history: lines)
    }

    /// Reads one line with `prompt`; nil at end of input (Ctrl-D on an empty line, or EOF).
    mutating func readLine(prompt: String) -> String? {
        var saved = termios()
        guard tcgetattr(STDIN_FILENO, &saved) == 0 else { return nil }
        var raw = saved
        // No echo, no line buffering, no signal keys (Ctrl-C is a key here), no CR translation.
        raw.c_lflag &= ~tcflag_t(ECHO | ICANON | ISIG | IEXTEN)
        raw.c_iflag &= ~tcflag_t(IXON | ICRNL)
        withUnsafeMutableBytes(of: &raw.c_cc) { cc in
            cc[Int(VMIN)] = 1
            cc[Int(VTIME)] = 0
        }
        guard tcsetattr(STDIN_FILENO, TCSAFLUSH, &raw) == 0 else { return nil }
        defer { _ = tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved) }
        draw(prompt)
        while true {
            while let (key, used) = LineEditing.decode(pending[...]) {
                pending.removeFirst(used)
                switch editing.apply(key) {
                case .editing:
                    draw(prompt)
                case let .line(text):
                    emit("\r\n")
                    appendHistory(text)
                    return text
                case .interrupted:
                    emit("^C\r\n")
                    draw(prompt)
                case .endOfInput:
                    emit("\r\n")
                    return nil
                }
            }
            var chunk = [UInt8](repeating: 0, count: 256)
            let n = chunk.withUnsafeMutableBytes { read(STDIN_FILENO, $0.baseAddress, $0.count) }
            if n < 0, errno == EINTR { continue }
            if n <= 0 {
                emit("\r\n")
                return nil
            }
            pending += chunk[0 ..< n]
        }
    }

    /// Prompt and line, the rest of the terminal line cleared, the cursor put back.
    private func draw(_ prompt: String) {
        var o = "\r" + prompt + editing.text + "\u{1B}[K"
        let back = editing.line.count - editing.cursor
        if back > 0 { o += "\u{1B}[\(back)D" }
        emit(o)
    }

    private func emit(_ text: String) {
        var text = text
        text.withUTF8 { _ = write(STDOUT_FILENO, $0.baseAddress, $0.count) }
    }

    private func appendHistory(_ line: String) {
        guard let historyPath, !line.allSatisfy(\.isWhitespace) else { return }
        let fd = open(historyPath, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o600)
        guard fd >= 0 else { return }
        var entry = line + "\n"
        entry.withUTF8 { _ = write(fd, $0.baseAddress, $0.count) }
        close(fd)
    }
}
