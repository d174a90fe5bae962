/// The editing half of `pvm model`'s interactive line editor, with no I/O: a line, a cursor
/// and a history, changed one key at a time. The terminal half (raw mode, reading keys,
/// redrawing) is `LineEditor` in the pvm tool. Keys follow readline's defaults for the few it
/// supports: arrows, Home/End, Backspace/Delete, Ctrl-A/E/B/F/K/U/W/L, Ctrl-C clears the line,
/// Ctrl-D on an empty line ends input.
public struct LineEditing: Sendable {
    /// A decoded key.
    public enum Key: Equatable, Sendable {
        case character(Character)
        case left, right, home, end, up, down
        case backspace, delete, killToEnd, killLine, killWord
        case enter, interrupt, endOfInput, redraw
        case ignored
    }

    /// What a key did to the session.
    public enum Outcome: Equatable, Sendable {
        case editing
        /// The line is done (Enter): it joins the history when not blank.
        case line(String)
        /// Ctrl-D on an empty line.
        case endOfInput
        /// Ctrl-C: the line was dropped.
        case interrupted
    }

    public private(set) var line: [Character] = []
    public private(set) var cursor = 0
    public private(set) var history: [String]
    /// Where Up/Down are in the history (history.count: the line being typed).
    private var browsing: Int
    private var draft: [Character] = []
    /// The most lines kept.
    public static let historyLimit = 1000

    public init(history: [String] = []) {
        self.history = Array(history.suffix(Self.historyLimit))
        browsing = self.history.count
    }

    public var text: String { String(line) }

    public mutating func apply(_ key: Key) -> Outcome {
        switch key {
        case let .character(c):
            line.insert(c, at: cursor)
            cursor += 1
        case .left: cursor = max(0, cursor - 1)
        case .right: cursor = min(line.count, cursor + 1)
        case .home: cursor = 0
        case .end: cursor = line.count
        case .backspace:
            if cursor > 0 {
                line.remove(at: cursor - 1)
                cursor -= 1
            }
        case .delete:
            if cursor < line.count { line.remove(at: cursor) }
        case .killToEnd: line.removeSubrange(cursor...)
        case .killLine:
            line.removeSubrange(..<cursor)
            cursor = 0
        case .killWord:
            var start = cursor
            while start > 0, line[start - 1] == " " { start -= 1 }
            while start > 0, line[start - 1] != " " { start -= 1 }
            line.removeSubrange(start ..< cursor)
            cursor = start
        case .up:
            guard browsing > 0 else { break }
            if browsing == history.count { draft = line }
            browsing -= 1
            line = Array(history[browsing])
            cursor = line.count
        case .down:
            guard browsing < history.count else { break }
            browsing += 1
            line = browsing == history.count ? draft : Array(history[browsing])
            cursor = line.count
        case .enter:
            let done = text
            if !done.allSatisfy(\.isWhitespace), history.last != done {
                history.append(done)
                if history.count > Self.historyLimit { history.removeFirst(history.count - Self.historyLimit) }
            }
            reset()
            return .line(done)
        case .interrupt:
            reset()
            return .interrupted
        case .endOfInput:
            if line.isEmpty { return .endOfInput }
            if cursor < line.count { line.remove(at: cursor) }
        case .redraw, .ignored: break
        }
        return .editing
    }

    private mutating func reset() {
        line = []
        cursor = 0
        draft = []
        browsing = history.count
    }

    /// Decodes the bytes of one key press from the start of `bytes` (a control byte, an ESC [
    /// or ESC O sequence, or one UTF-8 character): the key and how many bytes it took, or nil
    /// when `bytes` holds only the start of one.
    public static func decode(_ bytes: ArraySlice<UInt8>) -> (Key, Int)? {
        guard let first = bytes.first else { return nil }
        let b = bytes.startIndex
        switch first {
        case 0x01: return (.home, 1)
        case 0x02: return (.left, 1)
        case 0x03: return (.interrupt, 1)
        case 0x04: return (.endOfInput, 1)
        case 0x05: return (.end, 1)
        case 0x06: return (.right, 1)
        case 0x08, 0x7F: return (.backspace, 1)
        case 0x0B: return (.killToEnd, 1)
        case 0x0C: return (.redraw, 1)
        case 0x0D, 0x0A: return (.enter, 1)
        case 0x0E: return (.down, 1)
        case 0x10: return (.up, 1)
        case 0x15: return (.killLine, 1)
        case 0x17: return (.killWord, 1)
        case 0x1B:
            guard bytes.count >= 2 else { return nil }
            let kind = bytes[b + 1]
            guard kind == UInt8(ascii: "[") || kind == UInt8(ascii: "O") else { return (.ignored, 2) }
            // CSI: parameters (digits, ';'), then one final byte in 0x40...0x7E.
            var i = b + 2
            while i < bytes.endIndex, (0x30...0x3F).contains(bytes[i]) { i += 1 }
            guard i < bytes.endIndex else { return bytes.count > 16 ? (.ignored, bytes.count) : nil }
            let final = bytes[i], params = String(decoding: bytes[(b + 2) ..< i], as: UTF8.self)
            let used = i - b + 1
            switch (final, params) {
            case (UInt8(ascii: "A"), _): return (.up, used)
            case (UInt8(ascii: "B"), _): return (.down, used)
            case (UInt8(ascii: "C"), _): return (.right, used)
            case (UInt8(ascii: "D"), _): return (.left, used)
            case (UInt8(ascii: "H"), _), (UInt8(ascii: "~"), "1"), (UInt8(ascii: "~"), "7"): return (.home, used)
            case (UInt8(ascii: "F"), _), (UInt8(ascii: "~"), "4"), (UInt8(ascii: "~"), "8"): return (.end, used)
            case (UInt8(ascii: "~"), "3"): return (.delete, used)
            default: return (.ignored, used)
            }
        case 0x00 ..< 0x20: return (.ignored, 1)
        default:
            // One UTF-8 character: its length from the lead byte.
            let length = first < 0x80 ? 1 : first >= 0xF0 ? 4 : first >= 0xE0 ? 3 : first >= 0xC0 ? 2 : 1
            guard bytes.count >= length else { return nil }
            let s = String(decoding: bytes[b ..< b + length], as: UTF8.self)
            return (s.first.map { Key.character($0) } ?? .ignored, length)
        }
    }
}
