import Regression
import Synchronization

/// A scenario's console side: what the guest printed (bounded), the lines to type, each sent
/// once the prompt appears after the previous one, and the texts the console must show in
/// order. Fed from the UART's output on vCPU threads.
final class ConsoleScript: Sendable {
    private struct State {
        var text: [UInt8] = []
        /// Where the next prompt search starts (after the last prompt answered).
        var searchFrom = 0
        /// How far the prompt search has looked: the next one starts a prompt's length before
        /// it, so each byte is compared a bounded number of times.
        var scanned = 0
        var next = 0
    }
    private let typed: [String]
    private let prompt: [UInt8]
    private let state = Mutex(State())
    /// The console output kept for the expectations (a kernel prints a few hundred KiB).
    static let limit = 4 << 20

    init(typed: [String], prompt: String) {
        self.typed = typed
        self.prompt = Array(prompt.utf8)
    }

    /// Takes console output; returns the next line to type if the prompt just appeared.
    func output(_ bytes: [UInt8]) -> String? {
        state.withLock { s -> String? in
            if s.text.count + bytes.count <= Self.limit { s.text += bytes }
            guard s.next < typed.count else { return nil }
            let from = max(s.searchFrom, s.scanned - prompt.count + 1)
            guard let at = Self.find(prompt, in: s.text, from: from) else {
                s.scanned = s.text.count
                return nil
            }
            s.searchFrom = at + prompt.count
            s.scanned = s.searchFrom
            s.next += 1
            return typed[s.next - 1]
        }
    }

    /// The first expected text the console did not show (each searched after the previous).
    func firstMissing(_ expected: [Scenario.Expected]) -> Scenario.Expected? {
        state.withLock { s -> Scenario.Expected? in
            var from = 0
            for e in expected {
                guard let at = Self.find(Array(e.text.utf8), in: s.text, from: from) else { return e }
                from = at + e.text.utf8.count
            }
            return nil
        }
    }

    static func find(_ needle: [UInt8], in haystack: [UInt8], from: Int) -> Int? {
        guard !needle.isEmpty, haystack.count - from >= needle.count else { return nil }
        var i = from
        while i + needle.count <= haystack.count {
            if haystack[i] == needle[0], haystack[i ..< i + needle.count].elementsEqual(needle) { return i }
            i += 1
        }
        return nil
    }
}
