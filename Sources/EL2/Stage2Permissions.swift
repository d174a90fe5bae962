/// Access rights a stage-2 leaf grants: pKVM's `KVM_PGTABLE_PROT_R | _W | _X`.
///
/// Encoded in the descriptor as S2AP (bit 6 read, bit 7 write) and XN (bits 54:53 = 0b10 when
/// execution is forbidden): Arm ARM D8.3.2, "Stage 2 data access permissions" and "execute-never".
public struct Stage2Permissions: OptionSet, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    public static let read = Stage2Permissions(rawValue: 1)
    public static let write = Stage2Permissions(rawValue: 2)
    public static let execute = Stage2Permissions(rawValue: 4)
    public static let rw: Stage2Permissions = [.read, .write]
    public static let rwx: Stage2Permissions = [.read, .write, .execute]

    /// Parses `r`, `rw`, `rwx`, `rx`, `x`, ... (letters in any order, each at most once).
    public init?(letters: String) {
        var p: Stage2Permissions = []
        for c in letters {
            let bit: Stage2Permissions
            switch c {
            case "r": bit = .read
            case "w": bit = .write
            case "x": bit = .execute
            default: return nil
            }
            if p.contains(bit) { return nil }
            p.insert(bit)
        }
        if p.isEmpty { return nil }
        self = p
    }

    /// `r`, `rw`, `rwx`, or `-` for none.
    public var description: String {
        var s = ""
        if contains(.read) { s += "r" }
        if contains(.write) { s += "w" }
        if contains(.execute) { s += "x" }
        return s.isEmpty ? "-" : s
    }
}
