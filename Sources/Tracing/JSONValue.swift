/// A JSON value, read or written by the trace tools. Numbers keep their lexeme so 64-bit
/// integers survive; objects keep their keys in order so written files read the same way twice.
public enum JSONValue: Sendable, Equatable {
    case null
    case bool(Bool)
    /// A number as written (`12`, `-3`, `1.5e3`).
    case number(String)
    case string(String)
    case array([JSONValue])
    case object(JSONObject)

    public static func int<T: BinaryInteger>(_ value: T) -> JSONValue { .number(String(value)) }
    /// A hexadecimal string (`"0x1000"`), the trace format's way of writing addresses.
    public static func hex<T: BinaryInteger>(_ value: T) -> JSONValue { .string("0x" + String(value, radix: 16)) }

    public var string: String? { if case let .string(s) = self { s } else { nil } }
    public var object: JSONObject? { if case let .object(o) = self { o } else { nil } }
    public var array: [JSONValue]? { if case let .array(a) = self { a } else { nil } }
    public var bool: Bool? { if case let .bool(b) = self { b } else { nil } }

    /// An integer: a JSON number without fraction, or a `"0x…"` / decimal string.
    public var integer: Int64? {
        switch self {
        case let .number(n): Int64(n)
        case let .string(s): Self.parseInteger(s).flatMap { Int64(exactly: $0) }
        default: nil
        }
    }

    /// An unsigned 64-bit value: a JSON number or a `"0x…"` / decimal string.
    public var unsigned: UInt64? {
        switch self {
        case let .number(n): UInt64(n)
        case let .string(s): Self.parseInteger(s)
        default: nil
        }
    }

    public var double: Double? { if case let .number(n) = self { Double(n) } else { nil } }

    private static func parseInteger(_ s: String) -> UInt64? {
        if s.hasPrefix("0x") || s.hasPrefix("0X") { return UInt64(s.dropFirst(2), radix: 16) }
        return UInt64(s)
    }
}

/// A JSON object with its keys in insertion order.
public struct JSONObject: Sendable, Equatable, ExpressibleByDictionaryLiteral {
    public private(set) var members: [(key: String, value: JSONValue)]

    public init(_ members: [(key: String, value: JSONValue)] = []) { self.members = members }

    /// Appends a member the caller knows is new (the parser, which tracks the keys it saw).
    mutating func appendNew(_ key: String, _ value: JSONValue) { members.append((key, value)) }
    public init(dictionaryLiteral elements: (String, JSONValue)...) { members = elements.map { ($0.0, $0.1) } }

    public subscript(key: String) -> JSONValue? {
        get { members.first { $0.key == key }?.value }
        set {
            if let i = members.firstIndex(where: { $0.key == key }) {
                if let newValue { members[i].value = newValue } else { members.remove(at: i) }
            } else if let newValue {
                members.append((key, newValue))
            }
        }
    }

    public var keys: [String] { members.map(\.key) }

    public static func == (a: JSONObject, b: JSONObject) -> Bool {
        a.members.count == b.members.count && zip(a.members, b.members).allSatisfy { $0.key == $1.key && $0.value == $1.value }
    }
}

// MARK: Writing

extension JSONValue: CustomStringConvertible {
    /// Compact JSON text.
    public var description: String {
        var out = ""
        write(to: &out)
        return out
    }

    public func write(to out: inout String) {
        switch self {
        case .null: out += "null"
        case let .bool(b): out += b ? "true" : "false"
        case let .number(n): out += n
        case let .string(s): out += Self.quoted(s)
        case let .array(a):
            out += "["
            for (i, v) in a.enumerated() {
                if i > 0 { out += "," }
                v.write(to: &out)
            }
            out += "]"
        case let .object(o):
            out += "{"
            for (i, m) in o.members.enumerated() {
                if i > 0 { out += "," }
                out += Self.quoted(m.key)
                out += ":"
                m.value.write(to: &out)
            }
            out += "}"
        }
    }

    /// `text` as a JSON string literal.
    public static func quoted(_ text: String) -> String {
        var o = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": o += "\\\""
            case "\\": o += "\\\\"
            case "\n": o += "\\n"
            case "\t": o += "\\t"
            case "\r": o += "\\r"
            default:
                if scalar.value < 0x20 {
                    let digits = String(scalar.value, radix: 16)
                    o += "\\u" + String(repeating: "0", count: 4 - digits.count) + digits
                } else {
                    o.unicodeScalars.append(scalar)
                }
            }
        }
        return o + "\""
    }
}

// MARK: Reading

/// Why a JSON text did not parse, at which byte (0-based) of it.
public struct JSONSyntaxError: Error, Equatable, CustomStringConvertible {
    public let offset: Int
    public let message: String
    public var description: String { "\(message) at column \(offset + 1)" }
}

extension JSONValue {
    /// Parses one JSON value that must fill `text` (surrounding whitespace allowed).
    public static func parse(_ text: some StringProtocol) throws(JSONSyntaxError) -> JSONValue {
        var parser = JSONParser(bytes: Array(text.utf8))
        parser.skipSpace()
        let value = try parser.value(depth: 0)
        parser.skipSpace()
        if parser.position < parser.bytes.count { throw parser.error("unexpected text after the value") }
        return value
    }
}

/// A strict RFC 8259 recursive-descent parser over UTF-8 bytes, with a nesting limit so a
/// hostile file cannot exhaust the stack.
struct JSONParser {
    let bytes: [UInt8]
    var position = 0
    static let maximumDepth = 64

    init(bytes: [UInt8]) { self.bytes = bytes }

    func error(_ message: String, at offset: Int? = nil) -> JSONSyntaxError {
        JSONSyntaxError(offset: offset ?? position, message: message)
    }

    mutating func skipSpace() {
        while position < bytes.count, [0x20, 0x09, 0x0a, 0x0d].contains(bytes[position]) { position += 1 }
    }

    private var atEnd: Bool { position >= bytes.count }

    mutating func value(depth: Int) throws(JSONSyntaxError) -> JSONValue {
        guard depth < Self.maximumDepth else { throw error("nesting deeper than \(Self.maximumDepth) levels") }
        guard !atEnd else { throw error("unexpected end of text (truncated?)") }
        switch bytes[position] {
        case UInt8(ascii: "{"): return try object(depth: depth)
        case UInt8(ascii: "["): return try array(depth: depth)
        case UInt8(ascii: "\""): return .string(try string())
        case UInt8(ascii: "t"): try literal("true"); return .bool(true)
        case UInt8(ascii: "f"): try literal("false"); return .bool(false)
        case UInt8(ascii: "n"): try literal("null"); return .null
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return try number()
        default: throw error("unexpected character '\(printable(bytes[position]))'")
        }
    }

    private func printable(_ b: UInt8) -> String {
        b >= 0x20 && b < 0x7f ? String(UnicodeScalar(b)) : "\\x" + String(b, radix: 16)
    }

    private mutating func literal(_ word: String) throws(JSONSyntaxError) {
        for (i, c) in word.utf8.enumerated() {
            guard position + i < bytes.count else { throw error("unexpected end of text (truncated?)", at: position + i) }
            guard bytes[position + i] == c else { throw error("invalid literal, expected '\(word)'") }
        }
        position += word.utf8.count
    }

    private mutating func expect(_ c: Character) throws(JSONSyntaxError) {
        guard !atEnd else { throw error("unexpected end of text, expected '\(c)' (truncated?)") }
        guard bytes[position] == c.asciiValue! else { throw error("expected '\(c)', found '\(printable(bytes[position]))'") }
        position += 1
    }

    private mutating func object(depth: Int) throws(JSONSyntaxError) -> JSONValue {
        position += 1
        var o = JSONObject()
        var seen: Set<String> = []
        skipSpace()
        if !atEnd, bytes[position] == UInt8(ascii: "}") { position += 1; return .object(o) }
        while true {
            skipSpace()
            guard !atEnd else { throw error("unexpected end of text inside an object (truncated?)") }
            guard bytes[position] == UInt8(ascii: "\"") else { throw error("expected a member name in quotes") }
            let keyAt = position
            let key = try string()
            guard seen.insert(key).inserted else { throw error("duplicate member \"\(key)\"", at: keyAt) }
            skipSpace()
            try expect(":")
            skipSpace()
            o.appendNew(key, try value(depth: depth + 1))
            skipSpace()
            guard !atEnd else { throw error("unexpected end of text inside an object (truncated?)") }
            if bytes[position] == UInt8(ascii: ",") { position += 1; continue }
            try expect("}")
            return .object(o)
        }
    }

    private mutating func array(depth: Int) throws(JSONSyntaxError) -> JSONValue {
        position += 1
        var a: [JSONValue] = []
        skipSpace()
        if !atEnd, bytes[position] == UInt8(ascii: "]") { position += 1; return .array(a) }
        while true {
            skipSpace()
            a.append(try value(depth: depth + 1))
            skipSpace()
            guard !atEnd else { throw error("unexpected end of text inside an array (truncated?)") }
            if bytes[position] == UInt8(ascii: ",") { position += 1; continue }
            try expect("]")
            return .array(a)
        }
    }

    private mutating func string() throws(JSONSyntaxError) -> String {
        let start = position
        position += 1
        var scalars = String.UnicodeScalarView()
        var run = position
        func flush(_ end: Int) { scalars.append(contentsOf: String(decoding: bytes[run ..< end], as: UTF8.self).unicodeScalars) }
        while true {
            guard !atEnd else { throw error("unterminated string (truncated?)", at: start) }
            let b = bytes[position]
            if b == UInt8(ascii: "\"") {
                flush(position)
                position += 1
                return String(scalars)
            }
            if b < 0x20 { throw error("control character in a string") }
            if b != UInt8(ascii: "\\") { position += 1; continue }
            flush(position)
            position += 1
            guard !atEnd else { throw error("unterminated string (truncated?)", at: start) }
            let e = bytes[position]
            position += 1
            switch e {
            case UInt8(ascii: "\""): scalars.append("\"")
            case UInt8(ascii: "\\"): scalars.append("\\")
            case UInt8(ascii: "/"): scalars.append("/")
            case UInt8(ascii: "b"): scalars.append("\u{8}")
            case UInt8(ascii: "f"): scalars.append("\u{c}")
            case UInt8(ascii: "n"): scalars.append("\n")
            case UInt8(ascii: "r"): scalars.append("\r")
            case UInt8(ascii: "t"): scalars.append("\t")
            case UInt8(ascii: "u"):
                var code = try hex4()
                if (0xD800 ..< 0xDC00).contains(code) {
                    guard position + 1 < bytes.count, bytes[position] == UInt8(ascii: "\\"), bytes[position + 1] == UInt8(ascii: "u")
                    else { throw error("unpaired surrogate in \\u escape") }
                    position += 2
                    let low = try hex4()
                    guard (0xDC00 ..< 0xE000).contains(low) else { throw error("unpaired surrogate in \\u escape") }
                    code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
                }
                guard let scalar = UnicodeScalar(code) else { throw error("invalid \\u escape") }
                scalars.append(scalar)
            default: throw error("invalid escape '\\\(printable(e))'", at: position - 2)
            }
            run = position
        }
    }

    private mutating func hex4() throws(JSONSyntaxError) -> UInt32 {
        guard position + 4 <= bytes.count else { throw error("unexpected end of text in \\u escape (truncated?)") }
        var v: UInt32 = 0
        for _ in 0 ..< 4 {
            let b = bytes[position]
            let d: UInt8
            switch b {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): d = b - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): d = b - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): d = b - UInt8(ascii: "A") + 10
            default: throw error("invalid hex digit in \\u escape")
            }
            v = v << 4 | UInt32(d)
            position += 1
        }
        return v
    }

    private mutating func number() throws(JSONSyntaxError) -> JSONValue {
        let start = position
        func digits() -> Int {
            let s = position
            while !atEnd, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[position]) { position += 1 }
            return position - s
        }
        if bytes[position] == UInt8(ascii: "-") { position += 1 }
        let intStart = position
        guard digits() > 0 else { throw error("a number needs digits") }
        if bytes[intStart] == UInt8(ascii: "0"), position - intStart > 1 { throw error("leading zero in a number", at: intStart) }
        if !atEnd, bytes[position] == UInt8(ascii: ".") {
            position += 1
            guard digits() > 0 else { throw error("a fraction needs digits") }
        }
        if !atEnd, bytes[position] == UInt8(ascii: "e") || bytes[position] == UInt8(ascii: "E") {
            position += 1
            if !atEnd, bytes[position] == UInt8(ascii: "+") || bytes[position] == UInt8(ascii: "-") { position += 1 }
            guard digits() > 0 else { throw error("an exponent needs digits") }
        }
        return .number(String(decoding: bytes[start ..< position], as: UTF8.self))
    }
}
