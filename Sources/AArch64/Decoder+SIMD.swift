/// The SIMD and floating-point encodings the interpreter implements (Arm ARM C4.1.96): the
/// scalar FP instructions (moves, arithmetic, compares, conversions), and the AdvSIMD integer
/// and logical instructions clang emits for copies, zeroing, byte searches, popcounts and
/// simple vector arithmetic. Field use per kind is documented at the kind's executor
/// (`AArch64CPU.executeSIMD`).
extension Decoder {
    static func simd(_ w: UInt32) -> Op {
        let rd = UInt8(w & 31), rn = UInt8((w >> 5) & 31), rm = UInt8((w >> 16) & 31)
        let q = UInt8(f(w, 30, 30)), u = UInt8(f(w, 29, 29)), size = UInt8(f(w, 23, 22))

        // Cryptographic three-register SHA (C4.1.96.x): SHA1C, SHA1P, SHA1M, SHA1SU0 (opcode
        // 0-3, FEAT_SHA1) and SHA256H, SHA256H2, SHA256SU1 (4-6, FEAT_SHA256); two-register SHA:
        // SHA1H, SHA1SU1, SHA256SU0. `Op.a` for .sha1: 0 C, 1 P, 2 M, 3 SU0, 4 H, 5 SU1; for
        // .sha256: 0 H, 1 H2, 2 SU1, 3 SU0.
        if w & 0xFFE0_8C00 == 0x5E00_0000 {
            let opcode = f(w, 14, 12)
            guard opcode <= 6 else { return .undefined(w) }
            if opcode < 4 { return Op(w, .sha1, rd: rd, rn: rn, rm: rm, a: UInt8(opcode)) }
            return Op(w, .sha256, rd: rd, rn: rn, rm: rm, a: UInt8(opcode - 4))
        }
        if w & 0xFFFF_FC00 == 0x5E28_0800 { return Op(w, .sha1, rd: rd, rn: rn, a: 4) }
        if w & 0xFFFF_FC00 == 0x5E28_1800 { return Op(w, .sha1, rd: rd, rn: rn, a: 5) }
        if w & 0xFFFF_FC00 == 0x5E28_2800 { return Op(w, .sha256, rd: rd, rn: rn, a: 3) }
        // Scalar floating point: bits 31 = 0 (M), 30 = 0, 28:24 = 11110 or 11111.
        if f(w, 31, 30) == 0, f(w, 28, 24) == 0b11111 {  // FMADD, FMSUB, FNMADD, FNMSUB
            let ftype = f(w, 23, 22)
            guard ftype < 2, !bit(w, 29) else { return .undefined(w) }
            return Op(w, .fpFused, rd: rd, rn: rn, rm: rm, ra: UInt8(f(w, 14, 10)), size: UInt8(ftype),
                      a: UInt8(f(w, 21, 21) << 1 | f(w, 15, 15)))
        }
        if f(w, 30, 30) == 0, f(w, 28, 24) == 0b11110, bit(w, 21) {
            return scalarFP(w)
        }
        // AdvSIMD: bit 31 = 0, 28:24 = 01110 / 01111 (or the scalar forms with bit 28 and 30 set).
        guard !bit(w, 31) else { return .undefined(w) }
        if f(w, 28, 19) == 0b01111_00000, bit(w, 10) {  // modified immediate
            return modifiedImmediate(w)
        }
        // Shift by immediate: vector (0 Q U 011110) or scalar (01 U 111110).
        if f(w, 28, 23) == 0b011110 || (f(w, 31, 30) == 0b01 && f(w, 28, 23) == 0b111110), f(w, 22, 19) != 0, bit(w, 10) {
            let immh = f(w, 22, 19), immb = f(w, 18, 16)
            let esizeLog2 = UInt8(31 - immh.leadingZeroBitCount)  // 0: B, 1: H, 2: S, 3: D
            let esize = UInt32(8) << UInt32(esizeLog2)
            let raw = (immh << 3) | immb
            let opcode = f(w, 15, 11)
            guard esizeLog2 < 3 || q == 1 || bit(w, 28) else { return .undefined(w) }
            // Right shifts: 2 * esize - raw; left shifts: raw - esize.
            let right = UInt8(2 * esize - raw), left = UInt8(raw - esize)
            let scalar = UInt8(f(w, 28, 28))
            switch (u, opcode) {
            case (_, 0b00000): return Op(w, .vecShiftImm, rd: rd, rn: rn, size: esizeLog2, a: u == 0 ? 0 : 1, b: right, c: q | scalar << 1)
            case (0, 0b01010): return Op(w, .vecShiftImm, rd: rd, rn: rn, size: esizeLog2, a: 2, b: left, c: q | scalar << 1)
            case (_, 0b00010): return Op(w, .vecShiftImm, rd: rd, rn: rn, size: esizeLog2, a: u == 0 ? 3 : 4, b: right, c: q | scalar << 1)  // SSRA / USRA
            case (0, 0b10000) where scalar == 0 && esizeLog2 < 3:  // SHRN: immh gives the narrow element
                return Op(w, .vecNarrow, rd: rd, rn: rn, size: esizeLog2, a: 1, b: right, c: q)
            case (_, 0b10100) where scalar == 0 && esizeLog2 < 3:  // SSHLL / USHLL (SXTL / UXTL)
                return Op(w, .vecWiden, rd: rd, rn: rn, size: esizeLog2, a: u, b: left, c: q)
            default: return .undefined(w)
            }
        }
        // Three different (0 Q U 01110 size 1 Rm opcode 00 Rn Rd): widening and narrowing arithmetic.
        if f(w, 28, 24) == 0b01110, bit(w, 21), f(w, 11, 10) == 0 {
            let opcode = f(w, 15, 12), size = f(w, 23, 22)
            guard size < 3, [0b0000, 0b0001, 0b0010, 0b0011, 0b0100, 0b0110, 0b1000, 0b1010, 0b1100].contains(opcode) else {
                return .undefined(w)
            }
            return Op(w, .vecThreeDifferent, rd: rd, rn: rn, rm: UInt8(f(w, 20, 16)), size: UInt8(size), a: UInt8(opcode) | u << 4, c: q)
        }
        if f(w, 28, 24) == 0b01110 || f(w, 28, 24) == 0b11110 {
            let scalar = bit(w, 28)
            if !scalar, f(w, 29, 21) == 0b0_0111_0000, !bit(w, 15), bit(w, 10) { return copy(w) }
            if !scalar, u == 1, f(w, 28, 21) == 0b0111_0000, !bit(w, 15), bit(w, 10) { return copy(w) }  // INS (element)
            if bit(w, 21), bit(w, 10) {  // three same
                let opcode = UInt8(f(w, 15, 11))
                if opcode >= 0b11000 {
                    return Op(w, .vecFPArith3, rd: rd, rn: rn, rm: rm, size: size, a: opcode, b: u, c: q | (scalar ? 2 : 0))
                }
                return Op(w, .vecArith3, rd: rd, rn: rn, rm: rm, size: size, a: opcode, b: u, c: q | (scalar ? 2 : 0))
            }
            if bit(w, 21), f(w, 20, 17) == 0b0000, f(w, 11, 10) == 0b10 {  // two-register miscellaneous
                let opcode = UInt8(f(w, 16, 12))
                if opcode == 0b10010 && !scalar && u == 0 {  // XTN
                    return Op(w, .vecNarrow, rd: rd, rn: rn, size: size, a: 0, c: q)
                }
                if [0b01000, 0b01001, 0b01010].contains(opcode) {
                    return Op(w, .vecCompareZero, rd: rd, rn: rn, size: size, a: opcode, b: u, c: q | (scalar ? 2 : 0))
                }
                return Op(w, .vecArith2, rd: rd, rn: rn, size: size, a: opcode, b: u, c: q | (scalar ? 2 : 0))
            }
            if bit(w, 21), f(w, 20, 17) == 0b1000, f(w, 11, 10) == 0b10 {  // across lanes, or scalar pairwise
                return Op(w, .vecAcross, rd: rd, rn: rn, size: size, a: UInt8(f(w, 16, 12)), b: u, c: q | (scalar ? 2 : 0))
            }
            if !scalar, !bit(w, 21), !bit(w, 15), f(w, 11, 10) == 0b10, u == 0 {  // permute
                return Op(w, .vecPermute, rd: rd, rn: rn, rm: rm, size: size, a: UInt8(f(w, 14, 12)), c: q)
            }
            if !scalar, u == 1, f(w, 23, 21) == 0, !bit(w, 15), !bit(w, 10) {  // EXT
                return Op(w, .vecExt, rd: rd, rn: rn, rm: rm, a: UInt8(f(w, 14, 11)), c: q)
            }
            if !scalar, u == 0, f(w, 23, 21) == 0, !bit(w, 15), f(w, 11, 10) == 0 {  // TBL / TBX
                return Op(w, .vecTable, rd: rd, rn: rn, rm: rm, a: UInt8(f(w, 14, 13)) + 1, b: UInt8(f(w, 12, 12)), c: q)
            }
        }
        return .undefined(w)
    }

    /// Scalar FP with bit 21 set: conversions to and from integers, 1-source, compare,
    /// immediate, conditional compare, 2-source, conditional select.
    static func scalarFP(_ w: UInt32) -> Op {
        let rd = UInt8(w & 31), rn = UInt8((w >> 5) & 31), rm = UInt8((w >> 16) & 31)
        let ftype = f(w, 23, 22)
        if f(w, 15, 10) == 0 {  // conversion between FP and integer
            let sf = f(w, 31, 31), rmode = f(w, 20, 19), opcode = f(w, 18, 16)
            switch (rmode, opcode) {
            case (0, 6), (0, 7), (1, 6), (1, 7):  // FMOV (general)
                // ftype 00: W <-> S; 01: X <-> D; 10 with rmode 01: X <-> V.D[1].
                let valid = (ftype == 0 && sf == 0 && rmode == 0) || (ftype == 1 && sf == 1 && rmode == 0)
                    || (ftype == 2 && sf == 1 && rmode == 1)
                guard valid else { return .undefined(w) }
                let toGeneral = opcode == 6
                return Op(w, toGeneral ? .fmovToGeneral : .fmovFromGeneral,
                          rd: toGeneral ? RegisterFile.destination(UInt32(rd)) : rd,
                          rn: toGeneral ? rn : RegisterFile.source(UInt32(rn)), size: UInt8(ftype), a: UInt8(sf), b: UInt8(rmode))
            case (0, 2), (0, 3):  // SCVTF, UCVTF
                guard ftype < 2 else { return .undefined(w) }
                return Op(w, .intToFP, rd: rd, rn: RegisterFile.source(UInt32(rn)), size: UInt8(ftype), a: UInt8(sf),
                          b: UInt8(opcode & 1))
            case (_, 0), (_, 1), (0, 4), (0, 5):  // FCVT{N,P,M,Z}{S,U}, FCVTA{S,U}
                guard ftype < 2 else { return .undefined(w) }
                let rounding = opcode >= 4 ? UInt8(4) : UInt8(rmode)  // 0 N, 1 P, 2 M, 3 Z, 4 A
                return Op(w, .fpToInt, rd: RegisterFile.destination(UInt32(rd)), rn: rn, size: UInt8(ftype), a: UInt8(sf),
                          b: UInt8(opcode & 1), c: rounding)
            default: return .undefined(w)
            }
        }
        guard ftype < 2 || (f(w, 14, 10) == 0b10000 && f(w, 20, 15) == 0b000101) else { return .undefined(w) }
        if f(w, 14, 10) == 0b10000 {  // 1-source
            let opcode = UInt8(f(w, 20, 15))
            switch opcode {
            case 0: return Op(w, .fmovReg, rd: rd, rn: rn, size: UInt8(ftype))
            case 1, 2, 3, 8 ... 15: return Op(w, .fpArith1, rd: rd, rn: rn, size: UInt8(ftype), a: opcode)
            case 4, 5:  // FCVT to single / double
                guard UInt32(opcode - 4) != ftype else { return .undefined(w) }
                return Op(w, .fpConvert, rd: rd, rn: rn, size: UInt8(ftype), a: opcode - 4)
            default: return .undefined(w)
            }
        }
        if f(w, 13, 10) == 0b1000 {  // compare
            guard f(w, 15, 14) == 0, f(w, 2, 0) == 0 else { return .undefined(w) }
            return Op(w, .fpCompare, rn: rn, rm: rm, size: UInt8(ftype), a: UInt8(f(w, 4, 3)))
        }
        if f(w, 12, 10) == 0b100 {  // immediate
            guard f(w, 9, 5) == 0 else { return .undefined(w) }
            return Op(w, .fmovImm, rd: rd, size: UInt8(ftype), imm: UInt64(f(w, 20, 13)))
        }
        switch f(w, 11, 10) {
        case 0b01: return Op(w, .fpCondCompare, rn: rn, rm: rm, size: UInt8(ftype), a: UInt8(f(w, 15, 12)), b: UInt8(w & 0xF))
        case 0b10:
            let opcode = UInt8(f(w, 15, 12))
            guard opcode <= 8 else { return .undefined(w) }
            return Op(w, .fpArith2, rd: rd, rn: rn, rm: rm, size: UInt8(ftype), a: opcode)
        default: return Op(w, .fpCondSelect, rd: rd, rn: rn, rm: rm, size: UInt8(ftype), a: UInt8(f(w, 15, 12)))
        }
    }

    /// AdvSIMD modified immediate: MOVI, MVNI, ORR, BIC, FMOV (vector). `Op.imm`
    /// is the 64-bit pattern of one doubleword; `Op.a`: 0 move, 1 move inverted, 2 ORR, 3 BIC.
    static func modifiedImmediate(_ w: UInt32) -> Op {
        let q = UInt8(f(w, 30, 30)), op = f(w, 29, 29), cmode = f(w, 15, 12)
        let imm8 = UInt64((f(w, 18, 16) << 5) | f(w, 9, 5))
        let rd = UInt8(w & 31)
        func replicate(_ value: UInt64, _ bits: Int) -> UInt64 {
            var r: UInt64 = 0
            var i = 0
            while i < 64 { r |= value << UInt64(i); i += bits }
            return r
        }
        var mode: UInt8 = op == 0 ? 0 : 1
        let imm: UInt64
        switch cmode {
        case 0, 2, 4, 6:  // 32-bit shifted
            imm = replicate(imm8 << UInt64(8 * (cmode >> 1)), 32)
        case 1, 3, 5, 7:  // 32-bit shifted ORR / BIC
            imm = replicate(imm8 << UInt64(8 * (cmode >> 1)), 32)
            mode = op == 0 ? 2 : 3
        case 8, 10:
            imm = replicate(imm8 << UInt64(8 * ((cmode >> 1) & 1)), 16)
        case 9, 11:
            imm = replicate(imm8 << UInt64(8 * ((cmode >> 1) & 1)), 16)
            mode = op == 0 ? 2 : 3
        case 12, 13:  // shifting ones
            let ones: UInt64 = cmode == 12 ? 0xFF : 0xFFFF
            imm = replicate((imm8 << UInt64(8 * (cmode - 11))) | ones, 32)
        case 14:
            if op == 0 {
                imm = replicate(imm8, 8)
            } else {  // 64-bit: each bit of imm8 a byte of ones
                var v: UInt64 = 0
                for i in 0 ..< 8 where imm8 & (1 << UInt64(i)) != 0 { v |= 0xFF << UInt64(8 * i) }
                imm = v
                mode = 0
            }
        default:  // 15: FMOV (vector, immediate)
            if op == 0 {
                imm = replicate(UInt64(Self.expandFPImmediate(UInt32(imm8), double: false)), 32)
            } else {
                guard q == 1 else { return .undefined(w) }
                imm = Self.expandFPImmediate(UInt32(imm8), double: true)
            }
            mode = 0
        }
        return Op(w, .movi, rd: rd, a: mode, c: q, imm: imm)
    }

    /// `VFPExpandImm` (J1): the 8-bit FP immediate as a single or double.
    static func expandFPImmediate(_ imm8: UInt32, double: Bool) -> UInt64 {
        let sign = UInt64(imm8 >> 7), b6 = UInt64((imm8 >> 6) & 1), low = UInt64(imm8 & 0x3F)
        if double {
            let exp = ((1 - b6) << 10) | (b6 == 1 ? 0xFF << 2 : 0) | (low >> 4)
            return sign << 63 | exp << 52 | (low & 0xF) << 48
        }
        let exp = ((1 - b6) << 7) | (b6 == 1 ? 0x1F << 2 : 0) | (low >> 4)
        return sign << 31 | exp << 23 | (low & 0xF) << 19
    }

    /// AdvSIMD copy: DUP (element / general), INS (element / general), SMOV, UMOV. `Op.size`
    /// the element log2 size; `Op.a` the destination index; `Op.b` the source index.
    static func copy(_ w: UInt32) -> Op {
        let q = UInt8(f(w, 30, 30)), op = f(w, 29, 29), imm5 = f(w, 20, 16), imm4 = f(w, 14, 11)
        let rd = UInt8(w & 31), rn = UInt8((w >> 5) & 31)
        guard imm5 & 0xF != 0 else { return .undefined(w) }
        let sizeLog2 = UInt8(imm5.trailingZeroBitCount)
        let index = UInt8(imm5 >> (UInt32(sizeLog2) + 1))
        if op == 1 {  // INS (element): imm4 holds the source index
            let source = UInt8(imm4 >> UInt32(sizeLog2))
            return Op(w, .insElement, rd: rd, rn: rn, size: sizeLog2, a: index, b: source)
        }
        switch imm4 {
        case 0b0000: return Op(w, .dupElement, rd: rd, rn: rn, size: sizeLog2, b: index, c: q)
        case 0b0001:
            guard sizeLog2 < 3 || q == 1 else { return .undefined(w) }
            return Op(w, .dupGeneral, rd: rd, rn: RegisterFile.source(UInt32(rn)), size: sizeLog2, c: q)
        case 0b0011: return Op(w, .insGeneral, rd: rd, rn: RegisterFile.source(UInt32(rn)), size: sizeLog2, a: index)
        case 0b0111:
            guard (q == 1) == (sizeLog2 == 3) else { return .undefined(w) }
            return Op(w, .umov, rd: RegisterFile.destination(UInt32(rd)), rn: rn, size: sizeLog2, b: index)
        case 0b0101:
            guard sizeLog2 < 2 || (sizeLog2 == 2 && q == 1) else { return .undefined(w) }
            return Op(w, .smov, rd: RegisterFile.destination(UInt32(rd)), rn: rn, size: sizeLog2, b: index, c: q)
        default: return .undefined(w)
        }
    }
}
