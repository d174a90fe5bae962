/// The AdvSIMD instructions (Arm ARM C7): lanes are read and written as bytes of the
/// 16-byte register; a 64-bit (Q = 0) operation zeroes the upper half, as the architecture
/// requires. `Op.c` bit 0 is Q, bit 1 marks the scalar form (one lane, the rest zeroed).
extension AArch64CPU {
    func executeSIMD(_ op: Op, pc: UInt64) -> Step {
        switch op.kind {
        case .loadFP, .storeFP, .loadPairFP, .storePairFP, .loadLiteralFP, .loadMultiple, .storeMultiple, .loadReplicate:
            return executeFPLoadStore(op, pc: pc)
        case .fmovReg, .fmovImm, .fmovToGeneral, .fmovFromGeneral, .fpArith2, .fpArith1, .fpConvert, .fpCompare,
             .fpCondCompare, .fpCondSelect, .fpFused, .fpToInt, .intToFP:
            return executeScalarFP(op) ? .next : .undefined
        case .sha1:
            sha1(op, vreg(op.rn), vreg(op.rm), vreg(op.rd))
            return .next
        case .sha256:
            // Straight on the registers: no lane loop, no result buffer (pvmfw hashes a whole
            // kernel with these).
            sha256(op, vreg(op.rn), vreg(op.rm), vreg(op.rd))
            return .next
        case .vecArith3 where op.a == 0b10000 && op.c == 1 && op.size >= 2:
            // ADD / SUB of four words or two doublewords (the SHA-256 schedule's W + K).
            let n = vreg(op.rn), m = vreg(op.rm), d = vreg(op.rd)
            let sub = op.b == 1
            if op.size == 2 {
                let x = n.loadUnaligned(as: SIMD4<UInt32>.self), y = m.loadUnaligned(as: SIMD4<UInt32>.self)
                d.storeBytes(of: sub ? x &- y : x &+ y, as: SIMD4<UInt32>.self)
            } else {
                let x = n.loadUnaligned(as: SIMD2<UInt64>.self), y = m.loadUnaligned(as: SIMD2<UInt64>.self)
                d.storeBytes(of: sub ? x &- y : x &+ y, as: SIMD2<UInt64>.self)
            }
            return .next
        case .vecArith3 where op.a == 0b00011 && op.b == 0 && op.size == 2 && op.c & 2 == 0:
            // ORR (MOV when Rn = Rm), 8 or 16 bytes.
            let n = vreg(op.rn), m = vreg(op.rm), d = vreg(op.rd)
            let lo = n.load(as: UInt64.self) | m.load(as: UInt64.self)
            let hi = op.c & 1 != 0 ? n.load(fromByteOffset: 8, as: UInt64.self) | m.load(fromByteOffset: 8, as: UInt64.self) : 0
            d.storeBytes(of: lo, as: UInt64.self)
            d.storeBytes(of: hi, toByteOffset: 8, as: UInt64.self)
            return .next
        default:
            return executeVector(op) ? .next : .undefined
        }
    }

    /// A vector result in `out` (16 bytes) moved into V`rd`, the upper half cleared for Q = 0.
    @inline(__always) func commit(_ out: (UInt64, UInt64), to rd: UInt8, q: Bool) {
        let i = 2 * Int(rd & 31)
        vectors[i] = out.0
        vectors[i + 1] = q ? out.1 : 0
    }

    func executeVector(_ op: Op) -> Bool {
        let q = op.c & 1 != 0, scalarForm = op.c & 2 != 0
        let n = vreg(op.rn), m = vreg(op.rm)
        let esize = op.size
        let lanes = (q ? 16 : 8) >> Int(esize)
        var out: (UInt64, UInt64) = (0, 0)
        let outcome = withUnsafeMutableBytes(of: &out) { buffer -> VectorOutcome in
            let o = buffer.baseAddress!
            switch op.kind {
            case .movi:
                let d = vreg(op.rd)
                let lo = d.load(as: UInt64.self), hi = d.load(fromByteOffset: 8, as: UInt64.self)
                let value: (UInt64, UInt64)
                switch op.a {
                case 0: value = (op.imm, op.imm)
                case 1: value = (~op.imm, ~op.imm)
                case 2: value = (lo | op.imm, hi | op.imm)
                default: value = (lo & ~op.imm, hi & ~op.imm)
                }
                o.storeBytes(of: value, as: (UInt64, UInt64).self)
            case .dupGeneral:
                for i in 0 ..< lanes { Self.setLane(o, i, esize, registers[Int(op.rn)]) }
            case .dupElement:
                let v = Self.lane(n, Int(op.b), esize)
                for i in 0 ..< lanes { Self.setLane(o, i, esize, v) }
            case .insGeneral, .insElement:
                let d = vreg(op.rd)
                let value = op.kind == .insGeneral ? registers[Int(op.rn)] : Self.lane(n, Int(op.b), esize)
                Self.setLane(d, Int(op.a), esize, value)
                return .done
            case .umov:
                registers[Int(op.rd)] = Self.lane(n, Int(op.b), esize)
                return .done
            case .smov:
                let v = ALU.signExtend(Self.lane(n, Int(op.b), esize), bits: 8 << esize)
                registers[Int(op.rd)] = q ? v : v & 0xFFFF_FFFF
                return .done
            case .vecArith3:
                guard vectorThreeSame(op, n, m, o, lanes: scalarForm ? 1 : lanes, scalarForm: scalarForm) else { return .failed }
            case .vecArith2, .vecCompareZero:
                guard vectorTwoMisc(op, n, o, lanes: scalarForm ? 1 : lanes) else { return .failed }
            case .vecAcross:
                guard vectorAcross(op, n, o, lanes: lanes, scalarForm: scalarForm) else { return .failed }
                return .commit(q: false)
            case .vecShiftImm:
                guard !scalarForm || esize == 3 else { return .failed }
                let count = scalarForm ? 1 : lanes
                let bits = UInt8(8 << esize)
                let d = vreg(op.rd)
                for i in 0 ..< count {
                    let x = Self.lane(n, i, esize)
                    let shift = UInt64(op.b)
                    let signed = ALU.signExtend(x, bits: bits)
                    let v: UInt64
                    switch op.a {
                    case 0, 3: v = shift >= 64 ? (Int64(bitPattern: signed) < 0 ? ~0 : 0) : UInt64(bitPattern: Int64(bitPattern: signed) >> Int64(shift))
                    case 1, 4: v = shift >= UInt64(bits) ? 0 : x >> shift
                    default: v = x << shift
                    }
                    let accumulate = op.a >= 3 ? Self.lane(d, i, esize) : 0
                    Self.setLane(o, i, esize, (accumulate &+ v) & ALU.ones(bits))
                }
                if scalarForm { o.storeBytes(of: UInt64(0), toByteOffset: 8, as: UInt64.self) }
            case .vecNarrow:
                // XTN / SHRN: source elements are twice `esize`; Q = 1 writes the upper half.
                let source = esize + 1
                let count = 8 >> Int(esize)
                let d = vreg(op.rd)
                o.copyMemory(from: d, byteCount: 16)
                for i in 0 ..< count {
                    let v = op.a == 1 ? Self.lane(n, i, source) >> UInt64(op.b) : Self.lane(n, i, source)
                    Self.setLane(o, (q ? count : 0) + i, esize, v)
                }
                if !q { o.storeBytes(of: UInt64(0), toByteOffset: 8, as: UInt64.self) }
                return .commit(q: true)
            case .vecThreeDifferent:
                threeDifferent(op, n, m, o, q: q)
                return .commit(q: true)
            case .vecWiden:
                // SSHLL / USHLL: the low (or, Q = 1, high) half's elements widened, then shifted.
                let count = 8 >> Int(esize)
                let bits = UInt8(8 << esize)
                for i in 0 ..< count {
                    let x = Self.lane(n, (q ? count : 0) + i, esize)
                    let wide = op.a == 1 ? x : ALU.signExtend(x, bits: bits)
                    Self.setLane(o, i, esize + 1, wide << UInt64(op.b))
                }
                return .commit(q: true)
            case .vecPermute:
                let half = lanes / 2
                let part = op.a & 4 != 0 ? 1 : 0
                for i in 0 ..< lanes {
                    let v: UInt64
                    switch op.a & 3 {
                    case 1:  // UZP: even (or odd) elements of n then m
                        let s = 2 * i + part
                        v = s < lanes ? Self.lane(n, s, esize) : Self.lane(m, s - lanes, esize)
                    case 2:  // TRN
                        v = i & 1 == 0 ? Self.lane(n, i - (i & 1) + part, esize) : Self.lane(m, i - (i & 1) + part, esize)
                    case 3:  // ZIP: interleave the low (or high) halves
                        v = i & 1 == 0 ? Self.lane(n, part * half + i / 2, esize) : Self.lane(m, part * half + i / 2, esize)
                    default: return .failed
                    }
                    Self.setLane(o, i, esize, v)
                }
            case .vecExt:
                let total = q ? 16 : 8
                let start = Int(op.a)
                guard start < total else { return .failed }
                for i in 0 ..< total {
                    let j = start + i
                    o.storeBytes(of: j < total ? n.load(fromByteOffset: j, as: UInt8.self) : m.load(fromByteOffset: j - total, as: UInt8.self),
                                 toByteOffset: i, as: UInt8.self)
                }
            case .vecTable:
                let d = vreg(op.rd)
                let tableBytes = 16 * Int(op.a)
                for i in 0 ..< (q ? 16 : 8) {
                    let index = Int(m.load(fromByteOffset: i, as: UInt8.self))
                    let byte: UInt8
                    if index < tableBytes {
                        byte = vreg(op.rn &+ UInt8(index / 16)).load(fromByteOffset: index % 16, as: UInt8.self)
                    } else {
                        byte = op.b == 1 ? d.load(fromByteOffset: i, as: UInt8.self) : 0
                    }
                    o.storeBytes(of: byte, toByteOffset: i, as: UInt8.self)
                }
            case .vecFPArith3:
                guard vectorFP(op, n, m, o, q: q, scalarForm: scalarForm) else { return .failed }
            default:
                return .failed
            }
            return .commit(q: q && !scalarForm)
        }
        switch outcome {
        case .failed: return false
        case .done: return true
        case let .commit(q):
            commit(out, to: op.rd, q: q)
            return true
        }
    }

    /// Three registers of the same arrangement (C7.2 integer forms). `Op.a` opcode, `Op.b` U.
    private func vectorThreeSame(_ op: Op, _ n: UnsafeMutableRawPointer, _ m: UnsafeMutableRawPointer,
                                 _ o: UnsafeMutableRawPointer, lanes: Int, scalarForm: Bool) -> Bool {
        let esize = op.size, u = op.b == 1
        let bits = UInt8(8 << esize)
        if op.a == 0b00011 {  // logical, on whole registers
            let d = vreg(op.rd)
            for i in 0 ..< 2 {
                let a = n.load(fromByteOffset: 8 * i, as: UInt64.self), b = m.load(fromByteOffset: 8 * i, as: UInt64.self)
                let c = d.load(fromByteOffset: 8 * i, as: UInt64.self)
                let v: UInt64
                switch (u, esize) {
                case (false, 0): v = a & b
                case (false, 1): v = a & ~b
                case (false, 2): v = a | b
                case (false, _): v = a | ~b
                case (true, 0): v = a ^ b
                case (true, 1): v = (c & a) | (~c & b)      // BSL
                case (true, 2): v = (c & ~b) | (a & b)      // BIT
                case (true, _): v = (c & b) | (a & ~b)      // BIF
                }
                o.storeBytes(of: v, toByteOffset: 8 * i, as: UInt64.self)
            }
            return true
        }
        if scalarForm { guard esize == 3 else { return false } }
        let pairwise = op.a == 0b10111 || op.a == 0b10100 || op.a == 0b10101
        for i in 0 ..< lanes {
            let x: UInt64, y: UInt64
            if pairwise {
                let half = lanes / 2
                let src = i < half ? n : m
                let j = (i % half) * 2
                x = Self.lane(src, j, esize)
                y = Self.lane(src, j + 1, esize)
            } else {
                x = Self.lane(n, i, esize)
                y = Self.lane(m, i, esize)
            }
            let sx = Int64(bitPattern: ALU.signExtend(x, bits: bits)), sy = Int64(bitPattern: ALU.signExtend(y, bits: bits))
            let ones = ALU.ones(bits)
            let v: UInt64
            switch op.a {
            case 0b10000: v = u ? x &- y : x &+ y
            case 0b10111: guard !u else { return false }; v = x &+ y                    // ADDP
            case 0b10001: v = (u ? x == y : x & y != 0) ? ones : 0                     // CMEQ / CMTST
            case 0b00110: v = (u ? x > y : sx > sy) ? ones : 0                          // CMHI / CMGT
            case 0b00111: v = (u ? x >= y : sx >= sy) ? ones : 0                        // CMHS / CMGE
            case 0b10011: guard !u, esize < 3 else { return false }; v = x &* y          // MUL
            case 0b01100, 0b10100: v = u ? max(x, y) : UInt64(bitPattern: max(sx, sy))  // [SU]MAX[P]
            case 0b01101, 0b10101: v = u ? min(x, y) : UInt64(bitPattern: min(sx, sy))  // [SU]MIN[P]
            case 0b01000:                                                               // [SU]SHL by register
                let shift = Int8(truncatingIfNeeded: y)
                if shift >= 0 {
                    v = shift >= Int8(bits) ? 0 : x << UInt64(shift)
                } else if u {
                    v = -Int(shift) >= Int(bits) ? 0 : x >> UInt64(-Int(shift))
                } else {
                    v = UInt64(bitPattern: sx >> Int64(min(-Int(shift), 63)))
                }
            default: return false
            }
            Self.setLane(o, i, esize, v & ones)
        }
        return true
    }

    /// Two-register miscellaneous: REV*, CNT, NOT, RBIT, ABS, NEG, compares with zero, FABS,
    /// FNEG, FSQRT (vector).
    private func vectorTwoMisc(_ op: Op, _ n: UnsafeMutableRawPointer, _ o: UnsafeMutableRawPointer, lanes: Int) -> Bool {
        let esize = op.size, u = op.b == 1
        let bits = UInt8(8 << esize)
        let bytes = (op.c & 1 != 0) ? 16 : 8
        switch (op.a, u) {
        case (0b00000, _), (0b00001, false):  // REV64, REV32, REV16: reverse elements within containers
            let container = op.a == 1 ? 1 : (u ? 2 : 3)
            guard Int(esize) < container else { return false }
            let perContainer = 1 << (container - Int(esize))
            for i in 0 ..< (bytes >> Int(esize)) {
                let base = i - i % perContainer
                Self.setLane(o, i, esize, Self.lane(n, base + perContainer - 1 - i % perContainer, esize))
            }
            return true
        case (0b00101, false):
            guard esize == 0 else { return false }
            for i in 0 ..< bytes { o.storeBytes(of: UInt8(n.load(fromByteOffset: i, as: UInt8.self).nonzeroBitCount), toByteOffset: i, as: UInt8.self) }
            return true
        case (0b00101, true):
            for i in 0 ..< bytes {
                let b = n.load(fromByteOffset: i, as: UInt8.self)
                let v: UInt8
                switch esize {
                case 0: v = ~b
                case 1: v = UInt8(truncatingIfNeeded: Self.reverseBits(UInt64(b)) >> 56)
                default: return false
                }
                o.storeBytes(of: v, toByteOffset: i, as: UInt8.self)
            }
            return true
        case (0b01111, _), (0b11111, true):
            guard esize >= 2 else { return false }  // size 1x: sz = bit 22
            let double = esize & 1 == 1
            let count = bytes >> (double ? 3 : 2)
            for i in 0 ..< count {
                let opcode: UInt8 = op.a == 0b11111 ? 3 : (u ? 2 : 1)
                if double {
                    guard let v = FP.arith1(opcode, Double(bitPattern: Self.lane(n, i, 3)), dn: defaultNaNMode) else { return false }
                    Self.setLane(o, i, 3, v.bitPattern)
                } else {
                    guard let v = FP.arith1(opcode, Float(bitPattern: UInt32(Self.lane(n, i, 2))), dn: defaultNaNMode) else { return false }
                    Self.setLane(o, i, 2, UInt64(v.bitPattern))
                }
            }
            return true
        default:
            break
        }
        for i in 0 ..< lanes {
            let x = Self.lane(n, i, esize)
            let sx = Int64(bitPattern: ALU.signExtend(x, bits: bits))
            let ones = ALU.ones(bits)
            let v: UInt64
            switch (op.a, u) {
            case (0b01011, false): v = UInt64(bitPattern: sx < 0 ? 0 &- sx : sx)   // ABS
            case (0b01011, true): v = 0 &- x                                         // NEG
            case (0b01000, false): v = sx > 0 ? ones : 0                             // CMGT #0
            case (0b01000, true): v = sx >= 0 ? ones : 0                             // CMGE #0
            case (0b01001, false): v = x == 0 ? ones : 0                             // CMEQ #0
            case (0b01001, true): v = sx <= 0 ? ones : 0                             // CMLE #0
            case (0b01010, false): v = sx < 0 ? ones : 0                             // CMLT #0
            default: return false
            }
            Self.setLane(o, i, esize, v & ones)
        }
        return true
    }

    /// Across lanes (ADDV, [SU]ADDLV, [SU]MAXV, [SU]MINV) and the scalar pairwise ADDP.
    private func vectorAcross(_ op: Op, _ n: UnsafeMutableRawPointer, _ o: UnsafeMutableRawPointer, lanes: Int,
                              scalarForm: Bool) -> Bool {
        let esize = op.size, u = op.b == 1
        let bits = UInt8(8 << esize)
        if scalarForm {  // ADDP Dd, Vn.2D
            guard op.a == 0b11011, !u, esize == 3 else { return false }
            Self.setLane(o, 0, 3, Self.lane(n, 0, 3) &+ Self.lane(n, 1, 3))
            return true
        }
        guard esize < 3 else { return false }
        var acc: UInt64 = 0
        var sacc: Int64 = 0
        for i in 0 ..< lanes {
            let x = Self.lane(n, i, esize)
            let sx = Int64(bitPattern: ALU.signExtend(x, bits: bits))
            switch (op.a, u) {
            case (0b11011, false): acc = acc &+ x
            case (0b00011, true): acc = acc &+ x
            case (0b00011, false): sacc = sacc &+ sx
            case (0b01010, true): acc = i == 0 ? x : max(acc, x)
            case (0b11010, true): acc = i == 0 ? x : min(acc, x)
            case (0b01010, false): sacc = i == 0 ? sx : max(sacc, sx)
            case (0b11010, false): sacc = i == 0 ? sx : min(sacc, sx)
            default: return false
            }
        }
        let long = op.a == 0b00011
        let resultSize = long ? esize + 1 : esize
        let value = u || op.a == 0b11011 ? acc : UInt64(bitPattern: sacc)
        Self.setLane(o, 0, resultSize, value & ALU.ones(UInt8(8 << resultSize)))
        return true
    }

    /// FP three same (vector): FADD, FSUB, FMUL, FDIV, FMAX, FMIN, FADDP, FMLA, FMLS.
    /// `Op.size` bit 0 is sz (double), bit 1 selects the second of a pair of operations.
    private func vectorFP(_ op: Op, _ n: UnsafeMutableRawPointer, _ m: UnsafeMutableRawPointer,
                          _ o: UnsafeMutableRawPointer, q: Bool, scalarForm: Bool) -> Bool {
        let double = op.size & 1 == 1, second = op.size & 2 != 0, u = op.b == 1
        guard !double || q || scalarForm else { return false }
        let log2: UInt8 = double ? 3 : 2
        let count = scalarForm ? 1 : (q ? 16 : 8) >> Int(log2)
        let d = vreg(op.rd)
        let dn = defaultNaNMode
        for i in 0 ..< count {
            let pairwise = u && op.a == 0b11010 && !second
            var xi = i, yi = i
            var xs = n, ys = m
            if pairwise {
                let half = count / 2
                xs = i < half ? n : m
                ys = xs
                xi = (i % half) * 2
                yi = xi + 1
            }
            func compute<F: ArmFloat>(_ x: F, _ y: F, _ acc: F) -> F? {
                switch (op.a, u, second) {
                case (0b11010, false, false), (0b11010, true, false): return FP.arith2(2, x, y, dn: dn)  // FADD, FADDP
                case (0b11010, false, true): return FP.arith2(3, x, y, dn: dn)                          // FSUB
                case (0b11011, true, false): return FP.arith2(0, x, y, dn: dn)                          // FMUL
                case (0b11111, true, false): return FP.arith2(1, x, y, dn: dn)                          // FDIV
                case (0b11110, false, false): return FP.arith2(4, x, y, dn: dn)                         // FMAX
                case (0b11110, false, true): return FP.arith2(5, x, y, dn: dn)                          // FMIN
                case (0b11001, false, false): return FP.mulAdd(acc, x, y, dn: dn)                       // FMLA
                case (0b11001, false, true): return FP.mulAdd(acc, -x, y, dn: dn)                       // FMLS
                default: return nil
                }
            }
            if double {
                guard let v = compute(Double(bitPattern: Self.lane(xs, xi, 3)), Double(bitPattern: Self.lane(ys, yi, 3)),
                                      Double(bitPattern: Self.lane(d, i, 3))) else { return false }
                Self.setLane(o, i, 3, v.bitPattern)
            } else {
                guard let v = compute(Float(bitPattern: UInt32(Self.lane(xs, xi, 2))), Float(bitPattern: UInt32(Self.lane(ys, yi, 2))),
                                      Float(bitPattern: UInt32(Self.lane(d, i, 2)))) else { return false }
                Self.setLane(o, i, 2, UInt64(v.bitPattern))
            }
        }
        return true
    }
}

/// What a vector instruction's lane loop produced.
private enum VectorOutcome { case failed, done, commit(q: Bool) }
