/// Parses the numbers `pvm` accepts on its command line and in model scripts.
public enum NumberParser {
    /// A decimal or `0x`-hex unsigned integer; nil for anything else (signs, junk, overflow).
    public static func unsigned(_ token: Substring) -> UInt64? {
        let t = token.lowercased()
        if t.hasPrefix("0x") {
            let digits = t.dropFirst(2)
            guard !digits.isEmpty, digits.allSatisfy(\.isHexDigit) else { return nil }
            return UInt64(digits, radix: 16)
        }
        guard !t.isEmpty, t.allSatisfy(\.isASCII), t.allSatisfy(\.isNumber) else { return nil }
        return UInt64(t, radix: 10)
    }

    /// A size in bytes: a number optionally followed by K, M, G or T (powers of 1024), e.g.
    /// `64M`, `1G`, `0x4000000`. nil for malformed or overflowing input.
    public static func size(_ token: String) -> UInt64? {
        var t = Substring(token.trimmingCharactersInWhitespace())
        var shift: UInt64 = 0
        switch t.last {
        case "k", "K": shift = 10
        case "m", "M": shift = 20
        case "g", "G": shift = 30
        case "t", "T": shift = 40
        default: break
        }
        if shift != 0 { t = t.dropLast() }
        guard let n = unsigned(t), n <= UInt64.max >> shift else { return nil }
        return n << shift
    }
}

extension String {
    func trimmingCharactersInWhitespace() -> String {
        var s = Substring(self)
        while let f = s.first, f.isWhitespace { s = s.dropFirst() }
        while let l = s.last, l.isWhitespace { s = s.dropLast() }
        return String(s)
    }
}
