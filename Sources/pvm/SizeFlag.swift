import ModelScript

/// The size flags (`--memory`, `-m`) read as QEMU's `-m` and crosvm's `--mem` do: a bare number
/// is MiB; K, M, G and T suffixes (optionally followed by "iB" or "B") scale by 2^10..2^40; a
/// trailing B alone means bytes. Decimal or 0x-prefixed hexadecimal digits.
enum SizeFlag {
    static func bytes(_ text: String) -> UInt64? {
        var t = Substring(text)
        let isHex = t.hasPrefix("0x") || t.hasPrefix("0X")
        if t.count > 3, t.hasSuffix("iB") || t.hasSuffix("ib") { t = t.dropLast(2) }
        let shift: UInt64
        switch t.last {
        case "k", "K": shift = 10
        case "m", "M": shift = 20
        case "g", "G": shift = 30
        case "t", "T": shift = 40
        case "b" where !isHex, "B" where !isHex: shift = 0  // bytes (in hex, b is a digit)
        default:
            // A bare number: MiB.
            guard let n = NumberParser.unsigned(t), n <= UInt64.max >> 20 else { return nil }
            return n << 20
        }
        t = t.dropLast()
        guard let n = NumberParser.unsigned(t), n <= UInt64.max >> shift else { return nil }
        return n << shift
    }

    /// What the help and the errors say.
    static let examples = "64 (MiB), 64M, 1G, 1GiB, 67108864B"
}
