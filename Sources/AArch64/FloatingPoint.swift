/// IEEE 754 arithmetic with the Arm ARM's rules where the host's differ (J1,
/// shared/functions/float): NaN operands are propagated as FPProcessNaNs does (the first
/// signaling NaN quieted, else the first quiet NaN), an invalid operation gives the default
/// NaN (positive, quiet, zero payload: x86's is negative), FPCR.DN forces the default NaN,
/// and conversions to integers saturate. Rounding is round-to-nearest-even (FPCR.RMode 0, what
/// Linux and C programs run with); FPSR's cumulative exception bits are not computed.
protocol ArmFloat: BinaryFloatingPoint where RawSignificand: FixedWidthInteger {
    associatedtype Bits: FixedWidthInteger & UnsignedInteger
    var bits: Bits { get }
    init(bits: Bits)
    static var defaultNaNBits: Bits { get }
    static var quietBit: Bits { get }
}

extension Float: ArmFloat {
    var bits: UInt32 { bitPattern }
    init(bits: UInt32) { self.init(bitPattern: bits) }
    static var defaultNaNBits: UInt32 { 0x7FC0_0000 }
    static var quietBit: UInt32 { 0x0040_0000 }
}

extension Double: ArmFloat {
    var bits: UInt64 { bitPattern }
    init(bits: UInt64) { self.init(bitPattern: bits) }
    static var defaultNaNBits: UInt64 { 0x7FF8_0000_0000_0000 }
    static var quietBit: UInt64 { 0x0008_0000_0000_0000 }
}

enum FP {
    static func defaultNaN<F: ArmFloat>(_: F.Type) -> F { F(bits: F.defaultNaNBits) }

    @inline(__always) static func quiet<F: ArmFloat>(_ x: F, dn: Bool) -> F {
        dn ? defaultNaN(F.self) : F(bits: x.bits | F.quietBit)
    }

    /// FPProcessNaNs for up to three operands, in order; nil when none is a NaN.
    static func processNaNs<F: ArmFloat>(_ ops: F..., dn: Bool) -> F? {
        if let s = ops.first(where: { $0.isSignalingNaN }) { return quiet(s, dn: dn) }
        if let q = ops.first(where: { $0.isNaN }) { return dn ? defaultNaN(F.self) : q }
        return nil
    }

    /// A result the host computed: an invalid operation's NaN becomes the Arm default NaN.
    @inline(__always) static func result<F: ArmFloat>(_ x: F) -> F { x.isNaN ? defaultNaN(F.self) : x }

    /// FADD, FSUB, FMUL, FDIV, FMAX, FMIN, FMAXNM, FMINNM, FNMUL (2-source opcode 0-8).
    static func arith2<F: ArmFloat>(_ opcode: UInt8, _ a: F, _ b: F, dn: Bool) -> F {
        switch opcode {
        case 6, 7:  // FMAXNM, FMINNM: a quiet NaN loses to a number
            if a.isNaN && !a.isSignalingNaN && !b.isNaN { return b }
            if b.isNaN && !b.isSignalingNaN && !a.isNaN { return a }
        case 8:  // FNMUL is FPNeg(FPMul(a, b)): the sign flips even on a NaN result
            let product = arith2(0, a, b, dn: dn)
            return F(bits: product.bits ^ (F.Bits(1) << (F.Bits.bitWidth - 1)))
        default: break
        }
        if let nan = processNaNs(a, b, dn: dn) { return nan }
        switch opcode {
        case 0: return result(a * b)
        case 1: return result(a / b)
        case 2: return result(a + b)
        case 3: return result(a - b)
        case 4, 6:
            if a == 0, b == 0 { return a.sign == .plus || b.sign == .plus ? 0 : a }
            return a > b ? a : b
        case 5, 7:
            if a == 0, b == 0 { return a.sign == .minus ? a : b }
            return a < b ? a : b
        default: return result(a * b)
        }
    }

    /// FABS, FNEG, FSQRT, FRINT{N,P,M,Z,A,X,I} (1-source opcode 1-3, 8-15).
    static func arith1<F: ArmFloat>(_ opcode: UInt8, _ a: F, dn: Bool) -> F? {
        switch opcode {
        case 1: return F(bits: a.bits & ~(F.Bits(1) << (F.Bits.bitWidth - 1)))
        case 2: return F(bits: a.bits ^ (F.Bits(1) << (F.Bits.bitWidth - 1)))
        default: break
        }
        if let nan = processNaNs(a, dn: dn) { return nan }
        switch opcode {
        case 3: return result(a.squareRoot())
        case 8, 14, 15: return a.rounded(.toNearestOrEven)  // FRINTN, FRINTX, FRINTI (RMode nearest)
        case 9: return a.rounded(.up)
        case 10: return a.rounded(.down)
        case 11: return a.rounded(.towardZero)
        case 12: return a.rounded(.toNearestOrAwayFromZero)
        default: return nil
        }
    }

    /// FPMulAdd: addend + op1 * op2, fused, with the NaN rules (an infinity times a zero
    /// gives the default NaN even when the addend is a quiet NaN).
    static func mulAdd<F: ArmFloat>(_ addend: F, _ op1: F, _ op2: F, dn: Bool) -> F {
        if (op1.isInfinite && op2 == 0) || (op1 == 0 && op2.isInfinite), !addend.isSignalingNaN { return defaultNaN(F.self) }
        if let nan = processNaNs(addend, op1, op2, dn: dn) { return nan }
        return result(addend.addingProduct(op1, op2))
    }

    /// FPCompare: NZCV for a < b (1000), == (0110), > (0010), unordered (0011).
    static func compare<F: ArmFloat>(_ a: F, _ b: F) -> UInt32 {
        if a.isNaN || b.isNaN { return 0b0011 << 28 }
        if a == b { return 0b0110 << 28 }
        return a < b ? 0b1000 << 28 : 0b0010 << 28
    }

    /// FPToFixed with rounding `mode` (0 nearest even, 1 +inf, 2 -inf, 3 zero, 4 away),
    /// saturating to a signed or unsigned integer of `bits`; NaN gives 0.
    static func toInteger<F: ArmFloat>(_ x: F, mode: UInt8, unsigned: Bool, bits: Int) -> UInt64 {
        guard !x.isNaN else { return 0 }
        let rule: FloatingPointRoundingRule
        switch mode {
        case 0: rule = .toNearestOrEven
        case 1: rule = .up
        case 2: rule = .down
        case 3: rule = .towardZero
        default: rule = .toNearestOrAwayFromZero
        }
        let r = x.rounded(rule)
        if unsigned {
            let max = bits == 64 ? F(UInt64.max) : F((UInt64(1) << UInt64(bits)) - 1)
            if r <= 0 { return 0 }
            if r >= max { return bits == 64 ? .max : (UInt64(1) << UInt64(bits)) - 1 }
            return UInt64(r)
        }
        let maxValue = bits == 64 ? Int64.max : Int64(Int32.max), minValue = bits == 64 ? Int64.min : Int64(Int32.min)
        if r >= F(maxValue) { return UInt64(bitPattern: maxValue) & ALU.ones(UInt8(bits)) }
        if r <= F(minValue) { return UInt64(bitPattern: minValue) & ALU.ones(UInt8(bits)) }
        return UInt64(bitPattern: Int64(r)) & ALU.ones(UInt8(bits))
    }
}
