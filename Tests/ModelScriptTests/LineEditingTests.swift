import ModelScript
import Testing

/// The interactive `pvm model` line editor's keys, without a terminal.
@Suite struct LineEditingTests {
    /// Feeds raw terminal bytes, returning the finished lines.
    func type(_ bytes: [UInt8], into e: inout LineEditing) -> [LineEditing.Outcome] {
        var out: [LineEditing.Outcome] = []
        var rest = bytes[...]
        while let (key, used) = LineEditing.decode(rest) {
            rest = rest.dropFirst(used)
            let o = e.apply(key)
            if o != .editing { out.append(o) }
        }
        #expect(rest.isEmpty)
        return out
    }

    @Test func editingKeysAndHistory() {
        var e = LineEditing()
        #expect(type(Array("vm_crate g\r".utf8), into: &e) == [.line("vm_crate g")])
        // Up recalls; Left x5 puts the cursor before "te g"; 'e' is inserted there; Enter.
        let left: [UInt8] = [0x1B, 0x5B, 0x44]
        let fix: [UInt8] = [0x1B, 0x5B, 0x41] + Array(repeating: left, count: 5).flatMap { $0 } + [UInt8(ascii: "e"), 0x0D]
        #expect(type(fix, into: &e) == [.line("vm_create g")])
        #expect(e.history == ["vm_crate g", "vm_create g"])
        // Ctrl-A, Ctrl-K clears; Ctrl-W deletes a word; Backspace; Delete (ESC [ 3 ~).
        #expect(type(Array("abc def".utf8) + [0x17, 0x0D], into: &e) == [.line("abc ")])
        #expect(type(Array("xyz".utf8) + [0x01, 0x0B] + Array("q".utf8) + [0x0D], into: &e) == [.line("q")])
        #expect(type(Array("ab".utf8) + [0x7F, 0x01, 0x1B, 0x5B, 0x33, 0x7E, 0x0D], into: &e) == [.line("")])
        // Down after Up returns to the draft.
        #expect(type(Array("dra".utf8) + [0x10, 0x0E, 0x0D], into: &e) == [.line("dra")])
        // Ctrl-C drops the line; Ctrl-D on an empty line ends input, in the middle deletes.
        #expect(type(Array("oops".utf8) + [0x03], into: &e) == [.interrupted])
        #expect(type(Array("ab".utf8) + [0x01, 0x04, 0x0D, 0x04], into: &e) == [.line("b"), .endOfInput])
    }

    @Test func decodeWaitsForAWholeKeyAndSkipsUnknownSequences() {
        #expect(LineEditing.decode([0x1B][...]) == nil)
        #expect(LineEditing.decode([0x1B, 0x5B][...]) == nil)
        #expect(LineEditing.decode([0x1B, 0x5B, 0x31, 0x3B, 0x35, 0x43][...])! == (.right, 6))
        #expect(LineEditing.decode([0x1B, 0x5B, 0x32, 0x30, 0x30, 0x7E][...])! == (.ignored, 6))  // bracketed paste start
        #expect(LineEditing.decode([0xC3][...]) == nil)
        #expect(LineEditing.decode([0xC3, 0xA9][...])! == (.character("é"), 2))
        #expect(LineEditing.decode([0x07][...])! == (.ignored, 1))
    }

    @Test func historyIsBounded() {
        var e = LineEditing(history: (0 ..< 1500).map { "line \($0)" })
        #expect(e.history.count == LineEditing.historyLimit)
        _ = e.apply(.character("x"))
        _ = e.apply(.enter)
        #expect(e.history.count == LineEditing.historyLimit && e.history.last == "x")
    }
}
