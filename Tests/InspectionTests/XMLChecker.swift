/// A strict XML well-formedness check for the pictures: every tag closed in order, attributes
/// quoted and unique, only the five predefined entities and character references, no raw `<`
/// or `&` in text. Returns the element names in document order, or throws where it breaks.
struct XMLChecker {
    struct Malformed: Error, CustomStringConvertible {
        let offset: Int
        let message: String
        var description: String { "byte \(offset): \(message)" }
    }

    static func elements(_ text: String) throws -> [(name: String, attributes: [String: String])] {
        let b = Array(text.utf8)
        var i = 0
        var stack: [String] = []
        var out: [(name: String, attributes: [String: String])] = []
        var rootClosed = false
        func fail(_ m: String) -> Malformed { Malformed(offset: i, message: m) }
        func startsWith(_ s: String) -> Bool { b[i...].starts(with: s.utf8) }
        func skip(past s: String) throws {
            let t = Array(s.utf8)
            while i + t.count <= b.count { if b[i ..< i + t.count].elementsEqual(t) { i += t.count; return }; i += 1 }
            throw fail("unterminated construct, expected \(s)")
        }
        func isName(_ c: UInt8) -> Bool { (c >= 0x61 && c <= 0x7a) || (c >= 0x41 && c <= 0x5a) || (c >= 0x30 && c <= 0x39) || c == 0x2d || c == 0x5f || c == 0x3a || c == 0x2e }
        func name() throws -> String {
            let s = i
            while i < b.count, isName(b[i]) { i += 1 }
            guard i > s else { throw fail("expected a name") }
            return String(decoding: b[s ..< i], as: UTF8.self)
        }
        func space() { while i < b.count, [0x20, 0x0a, 0x09, 0x0d].contains(b[i]) { i += 1 } }
        func entity() throws {
            let s = i
            while i < b.count, b[i] != 0x3b { i += 1; if i - s > 10 { throw fail("unterminated entity") } }
            let e = String(decoding: b[s + 1 ..< i], as: UTF8.self)
            guard ["amp", "lt", "gt", "quot", "apos"].contains(e) || e.hasPrefix("#") else { throw fail("unknown entity &\(e);") }
            i += 1
        }
        while i < b.count {
            if b[i] == 0x3c {
                if startsWith("<?") { try skip(past: "?>"); continue }
                if startsWith("<!--") { try skip(past: "-->"); continue }
                if startsWith("<![CDATA[") { try skip(past: "]]>"); continue }
                if startsWith("<!DOCTYPE") { try skip(past: ">"); continue }
                if startsWith("</") {
                    i += 2
                    let n = try name()
                    space()
                    guard i < b.count, b[i] == 0x3e else { throw fail("expected > after </\(n)") }
                    i += 1
                    guard stack.popLast() == n else { throw fail("</\(n)> does not close the open element") }
                    if stack.isEmpty { rootClosed = true }
                    continue
                }
                i += 1
                if rootClosed { throw fail("a second root element") }
                let n = try name()
                var attributes: [String: String] = [:]
                while true {
                    space()
                    guard i < b.count else { throw fail("unterminated tag <\(n)") }
                    if b[i] == 0x3e { i += 1; stack.append(n); break }
                    if b[i] == 0x2f, i + 1 < b.count, b[i + 1] == 0x3e { i += 2; if stack.isEmpty { rootClosed = true }; break }
                    let a = try name()
                    space()
                    guard i < b.count, b[i] == 0x3d else { throw fail("attribute \(a) has no =") }
                    i += 1
                    space()
                    guard i < b.count, b[i] == 0x22 || b[i] == 0x27 else { throw fail("attribute \(a) is not quoted") }
                    let q = b[i]
                    i += 1
                    let s = i
                    while i < b.count, b[i] != q {
                        if b[i] == 0x3c { throw fail("< in attribute \(a)") }
                        if b[i] == 0x26 { try entity() } else { i += 1 }
                    }
                    guard i < b.count else { throw fail("unterminated attribute \(a)") }
                    guard attributes.updateValue(String(decoding: b[s ..< i], as: UTF8.self), forKey: a) == nil else {
                        throw fail("duplicate attribute \(a)")
                    }
                    i += 1
                }
                out.append((n, attributes))
            } else if b[i] == 0x26 {
                try entity()
            } else {
                i += 1
            }
        }
        guard stack.isEmpty else { throw fail("unclosed elements: \(stack.joined(separator: ", "))") }
        guard rootClosed else { throw fail("no root element") }
        return out
    }
}
