import CAArch64

/// The integer arithmetic of the A64 data-processing instructions, as the Arm ARM pseudocode
/// defines it (J1, shared/functions): AddWithCarry and its flags, ShiftReg, ExtendReg, the
/// bit counts and CRC32. `sf` false means a 32-bit operation: operands are the low words,
/// results are zero-extended.
///
/// The helpers are `@_transparent`: the executor's switch is large enough that the optimizer
/// would otherwise call them out of line (measured: a call per ADDS or shifted operand).
enum ALU {
    @_transparent static func flags(n: Bool, z: Bool, c: Bool, v: Bool) -> UInt32 {
        (n ? 1 << 31 : 0) | (z ? 1 << 30 : 0) | (c ? 1 << 29 : 0) | (v ? 1 << 28 : 0)
    }

    /// `AddWithCarry(x, y, carry_in)`: the sum and NZCV.
    @_transparent
    static func addWithCarry(_ x: UInt64, _ y: UInt64, _ carry: Bool, sf: Bool) -> (UInt64, UInt32) {
        if sf {
            let (s1, o1) = x.addingReportingOverflow(y)
            let (s2, o2) = s1.addingReportingOverflow(carry ? 1 : 0)
            let v = ((x ^ s2) & (y ^ s2)) >> 63 != 0
            return (s2, flags(n: s2 >> 63 != 0, z: s2 == 0, c: o1 || o2, v: v))
        }
        let x32 = x & 0xFFFF_FFFF, y32 = y & 0xFFFF_FFFF
        let full = x32 &+ y32 &+ (carry ? 1 : 0)
        let r = full & 0xFFFF_FFFF
        let v = ((x32 ^ r) & (y32 ^ r)) >> 31 & 1 != 0
        return (r, flags(n: r >> 31 != 0, z: r == 0, c: full >> 32 != 0, v: v))
    }

    /// N and Z of a logical result, C and V cleared.
    @_transparent static func logicFlags(_ r: UInt64, sf: Bool) -> UInt32 {
        sf ? flags(n: r >> 63 != 0, z: r == 0, c: false, v: false)
            : flags(n: r >> 31 & 1 != 0, z: r & 0xFFFF_FFFF == 0, c: false, v: false)
    }

    @_transparent static func width(_ value: UInt64, sf: Bool) -> UInt64 { sf ? value : value & 0xFFFF_FFFF }

    /// `ShiftReg`: LSL, LSR, ASR, ROR by `amount` (< the register width).
    @_transparent
    static func shift(_ value: UInt64, type: UInt8, amount: UInt8, sf: Bool) -> UInt64 {
        let a = UInt64(amount)
        if sf {
            switch type {
            case 0: return value << a
            case 1: return value >> a
            case 2: return UInt64(bitPattern: Int64(bitPattern: value) >> Int64(a))
            default: return a == 0 ? value : (value >> a) | (value << (64 - a))
            }
        }
        let v = value & 0xFFFF_FFFF
        switch type {
        case 0: return (v << a) & 0xFFFF_FFFF
        case 1: return v >> a
        case 2: return UInt64(UInt32(bitPattern: Int32(bitPattern: UInt32(v)) >> Int32(a)))
        default: return a == 0 ? v : ((v >> a) | (v << (32 - a))) & 0xFFFF_FFFF
        }
    }

    /// `ExtendReg`: UXTB..SXTX of `value`, then shifted left by `amount` (0 to 4).
    @_transparent
    static func extend(_ value: UInt64, option: UInt8, amount: UInt8) -> UInt64 {
        let v: UInt64
        switch option {
        case 0: v = value & 0xFF
        case 1: v = value & 0xFFFF
        case 2: v = value & 0xFFFF_FFFF
        case 3: v = value
        case 4: v = UInt64(bitPattern: Int64(Int8(truncatingIfNeeded: value)))
        case 5: v = UInt64(bitPattern: Int64(Int16(truncatingIfNeeded: value)))
        case 6: v = UInt64(bitPattern: Int64(Int32(truncatingIfNeeded: value)))
        default: v = value
        }
        return v << UInt64(amount)
    }

    /// Ones in the low `n` bits (n = 0 ... 64).
    @_transparent static func ones(_ n: UInt8) -> UInt64 { n >= 64 ? ~0 : (1 << UInt64(n)) - 1 }

    /// Sign-extends the low `bits` of `value` (1 ... 64).
    @_transparent static func signExtend(_ value: UInt64, bits: UInt8) -> UInt64 {
        guard bits < 64 else { return value }
        let shift = 64 - UInt64(bits)
        return UInt64(bitPattern: Int64(bitPattern: value << shift) >> Int64(shift))
    }

    /// CLS: leading bits equal to the sign bit, not counting it.
    @inline(__always) static func countLeadingSign(_ value: UInt64, sf: Bool) -> UInt64 {
        if sf { return UInt64(((value ^ (value << 1)) | 1).leadingZeroBitCount) }
        let v = UInt32(truncatingIfNeeded: value)
        return UInt64(((v ^ (v << 1)) | 1).leadingZeroBitCount)
    }

    /// The CRC32 / CRC32C step over the low `bytes` of `data` (Arm ARM C6.2.80: bit-reflected,
    /// polynomial 0x04C11DB7 or 0x1EDC6F41, no final inversion), by slicing-by-8 tables.
    @inline(__always)
    static func crc32(_ crc: UInt32, _ data: UInt64, bytes: Int, castagnoli: Bool) -> UInt32 {
        pvm_crc32(crc, data, Int32(bytes), castagnoli ? 1 : 0)
    }
}
