/// Random A64 instruction sequences for the differential test: user-level integer, load/store
/// (every addressing mode, pairs, exclusives, acquire/release, LSE atomics) and a SIMD&FP
/// subset, on registers the harness reserves nothing of (x0-x23 written; x24 an index, x25 a
/// moving base and x28 the scratch base are read only or moved within bounds).
struct SequenceGenerator {
    var state: UInt64

    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    mutating func below(_ n: Int) -> UInt32 { UInt32(next() % UInt64(n)) }
    mutating func below(_ n: UInt32) -> UInt32 { UInt32(next() % UInt64(n)) }
    mutating func flag() -> Bool { next() & 1 == 1 }

    /// A destination (x0-x23), a source (x0-x25 or xzr).
    mutating func rd() -> UInt32 { below(24) }
    mutating func rs() -> UInt32 { let r = below(27); return r == 26 ? 31 : r }
    /// A vector register V0-V7.
    mutating func vr() -> UInt32 { below(8) }

    /// One instruction (or a short idiom), as words.
    mutating func instruction(fp: Bool) -> [UInt32] {
        let sf = flag()
        if fp, below(3) == 0 { return simdInstruction() }
        switch below(30) {
        case 0: return [A64.addImm(sf: sf, sub: flag(), setFlags: flag(), rd: rd(), rn: below(24), imm12: below(4096), shift12: below(4) == 0)]
        case 1:
            // A valid logical immediate: N = 0 for 32-bit, element sizes 2-64.
            while true {
                let n: UInt32 = sf ? below(2) : 0
                let immr = below(sf ? 64 : 32), imms = below(64)
                if valid(n: n, imms: imms, sf: sf) {
                    let opc = below(4)
                    return [A64.logicalImm(sf: sf, opc: opc, n: n, immr: immr, imms: imms, rd: rd(), rn: rs())]
                }
            }
        case 2: return [A64.moveWide(sf: sf, opc: [0, 2, 3][Int(below(3))], hw: sf ? below(4) : below(2), imm16: below(65536), rd: rd())]
        case 3:
            let limit: UInt32 = sf ? 64 : 32
            return [A64.bitfield(sf: sf, opc: below(3), immr: below(limit), imms: below(limit), rd: rd(), rn: rs())]
        case 4: return [A64.extr(sf: sf, rd: rd(), rn: rs(), rm: rs(), lsb: below(sf ? 64 : 32))]
        case 5, 6:
            return [A64.logicalShifted(sf: sf, opc: below(4), shift: below(4), n: below(2), rd: rd(), rn: rs(), rm: rs(),
                                       amount: below(sf ? 64 : 32))]
        case 7, 8:
            return [A64.addShifted(sf: sf, sub: flag(), setFlags: flag(), shift: below(3), rd: rd(), rn: rs(), rm: rs(),
                                   amount: below(sf ? 64 : 32))]
        case 9: return [A64.addExtended(sf: sf, sub: flag(), setFlags: flag(), option: below(8), amount: below(5), rd: rd(),
                                        rn: below(24), rm: rs())]
        case 10: return [A64.addCarry(sf: sf, sub: flag(), setFlags: flag(), rd: rd(), rn: rs(), rm: rs())]
        case 11:
            let immediate = flag()
            return [A64.conditionalCompare(sf: sf, negative: flag(), immediate: immediate, rn: rs(), rmOrImm: immediate ? below(32) : rs(),
                                           cond: below(16), nzcv: below(16))]
        case 12: return [A64.conditionalSelect(sf: sf, op: below(2), op2: below(2), rd: rd(), rn: rs(), rm: rs(), cond: below(16))]
        case 13:
            let opcode = [0, 1, 2, 3, 4, 5][Int(below(6))]
            return [A64.oneSource(sf: opcode == 3 ? true : sf, opcode: UInt32(opcode), rd: rd(), rn: rs())]
        case 14:
            let opcodes: [UInt32] = [2, 3, 8, 9, 10, 11, 16, 17, 18, 20, 21, 22]
            let opcode = opcodes[Int(below(opcodes.count))]
            return [A64.twoSource(sf: opcode >= 16 ? false : sf, opcode: opcode, rd: rd(), rn: rs(), rm: rs())]
        case 15: return [A64.twoSource(sf: true, opcode: flag() ? 19 : 23, rd: rd(), rn: rs(), rm: rs())]  // CRC32X / CRC32CX
        case 16:
            let forms: [(UInt32, UInt32, Bool)] = [(0, 0, false), (0, 1, false), (1, 0, true), (1, 1, true), (2, 0, true), (5, 0, true),
                                                   (5, 1, true), (6, 0, true)]
            let (op31, o0, wide) = forms[Int(below(forms.count))]
            return [A64.threeSource(sf: wide ? true : sf, op31: op31, o0: o0, rd: rd(), rn: rs(), rm: rs(), ra: rs())]
        case 17:
            // A forward branch over the next instruction.
            let skip = A64.addImm(sf: true, sub: false, setFlags: false, rd: rd(), rn: rs() == 31 ? 0 : below(24), imm12: below(100), shift12: false)
            switch below(3) {
            case 0: return [A64.bcond(offset: 8, cond: below(15)), skip]
            case 1: return [A64.cbz(sf: sf, nonzero: flag(), rt: rs(), offset: 8), skip]
            default: return [A64.tbz(nonzero: flag(), rt: rs(), bit: below(64), offset: 8), skip]
            }
        case 18, 19, 20: return memory()
        case 21: return pairs()
        case 22: return atomics()
        default:
            return [A64.addShifted(sf: sf, sub: flag(), setFlags: true, shift: 0, rd: rd(), rn: rs(), rm: rs(), amount: 0)]
        }
    }

    /// DecodeBitMasks would accept (N, imms) for a logical immediate.
    func valid(n: UInt32, imms: UInt32, sf: Bool) -> Bool {
        let combined = (n << 6) | (~imms & 0x3F)
        guard combined != 0 else { return false }
        let len = 31 - combined.leadingZeroBitCount
        guard len >= 1, sf || n == 0 else { return false }
        let levels = UInt32((1 << len) - 1)
        return imms & levels != levels
    }

    /// Single-register loads and stores on the scratch buffer.
    mutating func memory() -> [UInt32] {
        let size = below(4)
        let opc: UInt32
        switch below(6) {
        case 0, 1: opc = 0
        case 2, 3: opc = 1
        case 4: opc = size == 3 ? 1 : 2
        default: opc = size < 2 ? 3 : 1
        }
        let rt = opc == 0 ? rs() : rd()
        switch below(5) {
        case 0: return [A64.loadStoreUnsigned(size: size, opc: opc, rt: rt, rn: 28, imm12: below(900 >> size))]
        case 1: return [A64.loadStoreImm9(size: size, opc: opc, mode: 0, rt: rt, rn: 28, imm9: Int32(below(250)))]  // LDUR: unaligned
        case 2, 3:
            // Post / pre-index on x25, moving it by a small aligned step.
            let step = Int32(below(5) * 8) - 16
            return [A64.loadStoreImm9(size: size, opc: opc, mode: below(2) == 0 ? 1 : 3, rt: rt == 25 ? 0 : rt, rn: 25, imm9: step)]
        default:
            return [A64.loadStoreRegister(size: size, opc: opc, rt: rt, rn: 28, rm: 24, option: flag() ? 3 : 2, shift: flag())]
        }
    }

    mutating func pairs() -> [UInt32] {
        let opc = [0, 1, 2][Int(below(3))]
        let load = opc == 1 ? true : flag()
        let mode = [1, 2, 3][Int(below(3))]
        var a = load ? rd() : rs(), b = load ? rd() : rs()
        if load && a == b { b = (a + 1) % 24 }
        let base: UInt32 = mode == 2 ? 28 : 25
        let imm = mode == 2 ? Int32(below(40)) : Int32(below(5)) - 2
        if base == 25 { a = a == 25 ? 0 : a; b = b == 25 ? 1 : b }
        return [A64.pair(opc: UInt32(opc), mode: UInt32(mode), load: load, rt: a, rt2: b, rn: base, imm7: imm)]
    }

    mutating func atomics() -> [UInt32] {
        let size = below(4)
        let offsetRegister: UInt32 = 28
        switch below(5) {
        case 0:  // LDXR; modify; STXR
            let value = rd(), status = rd()
            return [A64.exclusive(size: size, load: true, ordered: flag(), rs: 31, rt: value, rn: offsetRegister),
                    A64.addImm(sf: true, sub: false, setFlags: false, rd: value, rn: value, imm12: 1, shift12: false),
                    A64.exclusive(size: size, load: false, ordered: flag(), rs: status == value ? (value + 1) % 24 : status, rt: value,
                                  rn: offsetRegister)]
        case 1: return [A64.loadAcquireStoreRelease(size: size, load: flag(), rt: rd(), rn: offsetRegister)]
        case 2: return [A64.cas(size: size, acquire: flag(), release: flag(), rs: rd(), rt: rs(), rn: offsetRegister)]
        default: return [A64.atomic(size: size, op: below(9), acquire: flag(), release: flag(), rs: rs(), rt: rd(), rn: offsetRegister)]
        }
    }

    /// SIMD&FP on V0-V7.
    mutating func simdInstruction() -> [UInt32] {
        let q = below(2), d = vr(), n = vr(), m = vr()
        let ftype = below(2)
        switch below(26) {
        case 22:
            // SHRN: immh names the narrow element; shift 1 ... esize.
            let esize = below(3)
            let immhb = ((UInt32(1) << esize) << 3) + below(UInt32(8) << esize)
            return [A64.shiftImm(q: q, u: 0, immhb: immhb, opcode: 0b10000, rd: d, rn: n)]
        case 23:
            let opcode: UInt32 = [0b0000, 0b0001, 0b0010, 0b0011, 0b0100, 0b0110, 0b1000, 0b1010, 0b1100][Int(below(9))]
            return [A64.threeDifferent(q: q, u: below(2), size: below(3), opcode: opcode, rd: d, rn: n, rm: m)]
        case 24:
            switch below(10) {
            case 4, 5, 6, 7: return [0x5E00_0000 | (below(4)) << 12 | m << 16 | n << 5 | d]  // SHA1C/P/M/SU0
            case 8: return [0x5E28_0800 | n << 5 | d]          // SHA1H
            case 9: return [0x5E28_1800 | n << 5 | d]          // SHA1SU1
            case 0: return [0x5E00_4000 | m << 16 | n << 5 | d]  // SHA256H
            case 1: return [0x5E00_5000 | m << 16 | n << 5 | d]  // SHA256H2
            case 2: return [0x5E00_6000 | m << 16 | n << 5 | d]  // SHA256SU1
            default: return [0x5E28_2800 | n << 5 | d]          // SHA256SU0
            }
        case 25:
            // Scalar SSHR / USHR / SHL / SSRA / USRA on D registers.
            let form = [(0, 0b00000), (1, 0b00000), (0, 0b01010), (0, 0b00010), (1, 0b00010)][Int(below(5))]
            let immhb = (UInt32(0b1000) << 3) + below(64)
            return [1 << 30 | 1 << 28 | A64.shiftImm(q: 0, u: UInt32(form.0), immhb: immhb, opcode: UInt32(form.1), rd: d, rn: n)]
        case 0: return [A64.fp2(ftype: ftype, opcode: below(9), rd: d, rn: n, rm: m)]
        case 1: return [A64.fp1(ftype: ftype, opcode: [0, 1, 2, 3, 8, 9, 10, 11, 12][Int(below(9))], rd: d, rn: n)]
        case 2: return [A64.fcmp(ftype: ftype, rn: n, rm: m, zero: flag())]
        case 3: return [A64.fcsel(ftype: ftype, rd: d, rn: n, rm: m, cond: below(16))]
        case 4: return [A64.fmadd(ftype: ftype, o1: below(2), o0: below(2), rd: d, rn: n, rm: m, ra: vr())]
        case 5: return [A64.fp1(ftype: ftype, opcode: ftype == 0 ? 5 : 4, rd: d, rn: n)]  // FCVT
        case 6:
            switch below(4) {
            case 0: return [A64.fpInt(sf: flag(), ftype: ftype, rmode: 0, opcode: below(2) + 2, rd: d, rn: rs())]  // SCVTF / UCVTF
            case 1: return [A64.fpInt(sf: flag(), ftype: ftype, rmode: below(4), opcode: below(2), rd: rd(), rn: n)] // FCVT[NPMZ][SU]
            case 2: return [A64.fpInt(sf: ftype == 1, ftype: ftype, rmode: 0, opcode: 6, rd: rd(), rn: n)]           // FMOV to general
            default: return [A64.fpInt(sf: ftype == 1, ftype: ftype, rmode: 0, opcode: 7, rd: d, rn: rs())]         // FMOV from general
            }
        case 7: return [A64.fmovImm(ftype: ftype, imm8: below(256), rd: d)]
        case 8:
            let opcodes: [(UInt32, UInt32)] = [(0, 0b10000), (1, 0b10000), (0, 0b10001), (1, 0b10001), (0, 0b00110), (1, 0b00110),
                                               (0, 0b00111), (1, 0b00111), (0, 0b01100), (1, 0b01100), (0, 0b01101), (1, 0b01101),
                                               (0, 0b10111), (0, 0b10100), (1, 0b10101)]
            let (u, opcode) = opcodes[Int(below(opcodes.count))]
            let size = opcode == 0b10000 || opcode == 0b10001 || opcode == 0b00110 || opcode == 0b00111 || opcode == 0b10111
                ? (q == 1 ? below(4) : below(3)) : below(3)
            return [A64.simd3(q: q, u: u, size: size, opcode: opcode, rd: d, rn: n, rm: m)]
        case 9: return [A64.simd3(q: q, u: below(2), size: below(4), opcode: 0b00011, rd: d, rn: n, rm: m)]  // logical
        case 10: return [A64.simd3(q: q, u: 0, size: below(3), opcode: 0b10011, rd: d, rn: n, rm: m)]         // MUL
        case 11:
            let forms: [(UInt32, UInt32, UInt32)] = [(0, 0b00101, 0), (1, 0b00101, 0), (1, 0b00101, 1), (0, 0b00000, 0), (1, 0b00000, 0),
                                                     (0, 0b00001, 0), (0, 0b01011, 9), (1, 0b01011, 9), (0, 0b01000, 9), (1, 0b01000, 9),
                                                     (0, 0b01001, 9), (1, 0b01001, 9), (0, 0b01010, 9)]
            let (u, opcode, fixed) = forms[Int(below(forms.count))]
            var size = fixed == 9 ? (q == 1 ? below(4) : below(3)) : fixed
            if opcode == 0 && u == 0 { size = below(3) }
            if opcode == 0 && u == 1 { size = below(2) }
            return [A64.simd2(q: q, u: u, size: size, opcode: opcode, rd: d, rn: n)]
        case 12:
            let forms: [(UInt32, UInt32)] = [(0, 0b11011), (1, 0b00011), (0, 0b00011), (1, 0b01010), (1, 0b11010), (0, 0b01010), (0, 0b11010)]
            let (u, opcode) = forms[Int(below(forms.count))]
            let size = q == 1 ? below(3) : below(2)
            return [A64.across(q: q, u: u, size: size, opcode: opcode, rd: d, rn: n)]
        case 13:
            let esize = q == 1 ? below(4) : below(3)
            let immh: UInt32 = 1 << esize
            let shiftForm = [(0, 0b00000), (1, 0b00000), (0, 0b01010), (0, 0b00010), (1, 0b00010)][Int(below(5))]
            let bits = UInt32(8) << esize
            let immhb = shiftForm.1 == 0b01010 ? (immh << 3) + below(bits) : (immh << 3) + below(bits)
            return [A64.shiftImm(q: q, u: UInt32(shiftForm.0), immhb: immhb, opcode: UInt32(shiftForm.1), rd: d, rn: n)]
        case 14:
            let esize = below(3)
            let immhb = ((UInt32(1) << esize) << 3) + below(UInt32(8) << esize)
            return flag() ? [A64.shiftImm(q: q, u: below(2), immhb: immhb, opcode: 0b10100, rd: d, rn: n)]     // [SU]SHLL
                : [A64.simd2(q: q, u: 0, size: esize, opcode: 0b10010, rd: d, rn: n)]                           // XTN
        case 15: return [A64.permute(q: q, size: q == 1 ? below(4) : below(3), opcode: [1, 2, 3, 5, 6, 7][Int(below(6))], rd: d, rn: n, rm: m)]
        case 16: return [A64.ext(q: q, rd: d, rn: n, rm: m, index: q == 1 ? below(16) : below(8))]
        case 17: return [A64.tbl(q: q, registers: below(2) + 1, rd: d, rn: n, rm: m)]
        case 18:
            let cmode = below(15)
            return [A64.modifiedImmediate(q: q, op: cmode == 14 ? below(2) : below(2), cmode: cmode, imm8: below(256), rd: d)]
        case 19:
            let esize = q == 1 ? below(4) : below(3)
            let index = below(16 >> esize)
            let imm5 = ((index << 1) | 1) << esize
            switch below(4) {
            case 0: return [A64.copy(q: q, op: 0, imm5: imm5, imm4: 0, rd: d, rn: n)]           // DUP (element)
            case 1: return [A64.copy(q: q, op: 0, imm5: imm5, imm4: 1, rd: d, rn: rs())]        // DUP (general)
            case 2: return [A64.copy(q: 1, op: 0, imm5: imm5, imm4: 3, rd: d, rn: rs())]        // INS (general)
            default: return [A64.copy(q: esize == 3 ? 1 : 0, op: 0, imm5: imm5, imm4: 7, rd: rd(), rn: n)]  // UMOV
            }
        case 20:
            switch below(3) {
            case 0: return [A64.ld1(load: flag(), q: q, registers: below(4) + 1, size: below(4), rt: vr(), rn: 28)]
            case 1: return [A64.loadStoreFP(log2: below(5), load: flag(), rt: d, rn: 28, imm12: below(32))]
            default: return [A64.pair(opc: below(3), vector: true, mode: 2, load: flag(), rt: d, rt2: (d + 1) % 8, rn: 28, imm7: Int32(below(16)))]
            }
        default:
            let forms: [(UInt32, UInt32, UInt32)] = [(0, 0, 0b11010), (0, 2, 0b11010), (1, 0, 0b11011), (1, 0, 0b11111), (0, 0, 0b11110),
                                                     (0, 2, 0b11110), (1, 0, 0b11010), (0, 0, 0b11001)]
            let (u, high, opcode) = forms[Int(below(forms.count))]
            let sz = q == 1 ? below(2) : 0
            return [A64.simd3(q: q, u: u, size: high | sz, opcode: opcode, rd: d, rn: n, rm: m)]
        }
    }
}
