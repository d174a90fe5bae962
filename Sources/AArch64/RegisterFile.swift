/// The general-purpose register file as the executor indexes it: slots 0 to 30 are X0 to X30,
/// slot 31 always reads zero (XZR / WZR as a source), slot 32 takes writes that are discarded
/// (XZR as a destination), slot 33 is the stack pointer of the current exception level
/// (SP_EL0 or SP_EL1, as PSTATE.SPSel and the EL select; the other one is kept in
/// `ArchState`). Resolving register 31 once in the decoder keeps every "is it SP or ZR?" out of
/// the executor.
public enum RegisterFile {
    public static let zero: UInt8 = 31
    public static let discard: UInt8 = 32
    public static let sp: UInt8 = 33
    public static let count = 34

    /// Register field `r` read as a general-purpose register or the zero register.
    @inline(__always) static func source(_ r: UInt32) -> UInt8 { UInt8(r) }
    /// Register field `r` written as a general-purpose register or the zero register.
    @inline(__always) static func destination(_ r: UInt32) -> UInt8 { r == 31 ? discard : UInt8(r) }
    /// Register field `r` where 31 names the stack pointer (read or written).
    @inline(__always) static func stackOr(_ r: UInt32) -> UInt8 { r == 31 ? sp : UInt8(r) }

    /// The architectural name of slot `slot` in an operand of width `bits`.
    public static func name(_ slot: UInt8, bits: Int = 64) -> String {
        switch slot {
        case 0 ... 30: return (bits == 64 ? "x" : "w") + "\(slot)"
        case zero, discard: return bits == 64 ? "xzr" : "wzr"
        default: return bits == 64 ? "sp" : "wsp"
        }
    }
}

/// A64 condition codes (Arm ARM C1.2.4), evaluated against PSTATE.NZCV.
enum Condition {
    /// `ConditionHolds(cond)` with NZCV in bits 31..28 of `nzcv`.
    @_transparent
    static func holds(_ cond: UInt8, _ nzcv: UInt32) -> Bool {
        let n = nzcv & (1 << 31) != 0, z = nzcv & (1 << 30) != 0
        let c = nzcv & (1 << 29) != 0, v = nzcv & (1 << 28) != 0
        var result: Bool
        switch cond >> 1 {
        case 0: result = z                 // EQ / NE
        case 1: result = c                 // CS / CC
        case 2: result = n                 // MI / PL
        case 3: result = v                 // VS / VC
        case 4: result = c && !z           // HI / LS
        case 5: result = n == v            // GE / LT
        case 6: result = n == v && !z      // GT / LE
        default: result = true             // AL / NV (both always)
        }
        if cond & 1 == 1 && cond != 0xF { result = !result }
        return result
    }
}
