/// The SIMD&FP register file as bytes, and the scalar floating-point instructions and the FP
/// register loads and stores.
extension AArch64CPU {
    /// The 16 bytes of V`n`.
    @inline(__always) func vreg(_ n: UInt8) -> UnsafeMutableRawPointer { UnsafeMutableRawPointer(vectors + 2 * Int(n & 31)) }

    @inline(__always) static func lane(_ v: UnsafeMutableRawPointer, _ index: Int, _ log2: UInt8) -> UInt64 {
        let p = v + (index << Int(log2))
        switch log2 {
        case 0: return UInt64(p.load(as: UInt8.self))
        case 1: return UInt64(p.load(as: UInt16.self))
        case 2: return UInt64(p.load(as: UInt32.self))
        default: return p.load(as: UInt64.self)
        }
    }

    @inline(__always) static func setLane(_ v: UnsafeMutableRawPointer, _ index: Int, _ log2: UInt8, _ value: UInt64) {
        let p = v + (index << Int(log2))
        switch log2 {
        case 0: p.storeBytes(of: UInt8(truncatingIfNeeded: value), as: UInt8.self)
        case 1: p.storeBytes(of: UInt16(truncatingIfNeeded: value), as: UInt16.self)
        case 2: p.storeBytes(of: UInt32(truncatingIfNeeded: value), as: UInt32.self)
        default: p.storeBytes(of: value, as: UInt64.self)
        }
    }

    /// Writes a scalar of `log2` bytes to V`n`, zeroing the rest of the register (as every
    /// scalar FP write does).
    @inline(__always) func setScalar(_ n: UInt8, _ value: UInt64, log2: UInt8) {
        let i = 2 * Int(n & 31)
        vectors[i] = log2 >= 3 ? value : value & ALU.ones(8 << log2)
        vectors[i + 1] = 0
    }

    @inline(__always) func scalar(_ n: UInt8, log2: UInt8) -> UInt64 { vectors[2 * Int(n & 31)] & ALU.ones(8 << log2) }

    var defaultNaNMode: Bool { state.pointee.fpcr & (1 << 25) != 0 }

    /// The scalar FP kinds: `Op.size` is the FP type (0 single, 1 double).
    func executeScalarFP(_ op: Op) -> Bool {
        let r = registers
        let dn = defaultNaNMode
        let double = op.size == 1
        let log2: UInt8 = double ? 3 : 2
        switch op.kind {
        case .fmovReg: setScalar(op.rd, scalar(op.rn, log2: log2), log2: log2)
        case .fmovImm: setScalar(op.rd, Decoder.expandFPImmediate(UInt32(op.imm), double: double), log2: log2)
        case .fmovToGeneral:
            // ftype 2 / rmode 1 reads V.D[1].
            r[Int(op.rd)] = op.size == 2 ? vectors[2 * Int(op.rn) + 1] : (op.a == 1 ? vectors[2 * Int(op.rn)] : vectors[2 * Int(op.rn)] & 0xFFFF_FFFF)
        case .fmovFromGeneral:
            if op.size == 2 { vectors[2 * Int(op.rd) + 1] = r[Int(op.rn)] } else { setScalar(op.rd, r[Int(op.rn)], log2: op.a == 1 ? 3 : 2) }
        case .fpArith2:
            if double {
                let v = FP.arith2(op.a, Double(bitPattern: scalar(op.rn, log2: 3)), Double(bitPattern: scalar(op.rm, log2: 3)), dn: dn)
                setScalar(op.rd, v.bitPattern, log2: 3)
            } else {
                let v = FP.arith2(op.a, Float(bitPattern: UInt32(scalar(op.rn, log2: 2))), Float(bitPattern: UInt32(scalar(op.rm, log2: 2))), dn: dn)
                setScalar(op.rd, UInt64(v.bitPattern), log2: 2)
            }
        case .fpArith1:
            if double {
                guard let v = FP.arith1(op.a, Double(bitPattern: scalar(op.rn, log2: 3)), dn: dn) else { return false }
                setScalar(op.rd, v.bitPattern, log2: 3)
            } else {
                guard let v = FP.arith1(op.a, Float(bitPattern: UInt32(scalar(op.rn, log2: 2))), dn: dn) else { return false }
                setScalar(op.rd, UInt64(v.bitPattern), log2: 2)
            }
        case .fpConvert:
            if double {  // to single
                let x = Double(bitPattern: scalar(op.rn, log2: 3))
                let v: Float = x.isNaN ? (dn ? FP.defaultNaN(Float.self) : Float(bits: UInt32(x.bitPattern >> 63) << 31 | 0x7FC0_0000 | UInt32((x.bitPattern >> 29) & 0x3F_FFFF))) : Float(x)
                setScalar(op.rd, UInt64(v.bitPattern), log2: 2)
            } else {
                let x = Float(bitPattern: UInt32(scalar(op.rn, log2: 2)))
                let v: Double = x.isNaN ? (dn ? FP.defaultNaN(Double.self) : Double(bits: UInt64(x.bitPattern >> 31) << 63 | 0x7FF8_0000_0000_0000 | UInt64(x.bitPattern & 0x3F_FFFF) << 29)) : Double(x)
                setScalar(op.rd, v.bitPattern, log2: 3)
            }
        case .fpCompare:
            let zero = op.a & 1 != 0
            if double {
                state.pointee.nzcv = FP.compare(Double(bitPattern: scalar(op.rn, log2: 3)), zero ? 0 : Double(bitPattern: scalar(op.rm, log2: 3)))
            } else {
                state.pointee.nzcv = FP.compare(Float(bitPattern: UInt32(scalar(op.rn, log2: 2))), zero ? 0 : Float(bitPattern: UInt32(scalar(op.rm, log2: 2))))
            }
        case .fpCondCompare:
            if Condition.holds(op.a, state.pointee.nzcv) {
                state.pointee.nzcv = double
                    ? FP.compare(Double(bitPattern: scalar(op.rn, log2: 3)), Double(bitPattern: scalar(op.rm, log2: 3)))
                    : FP.compare(Float(bitPattern: UInt32(scalar(op.rn, log2: 2))), Float(bitPattern: UInt32(scalar(op.rm, log2: 2))))
            } else {
                state.pointee.nzcv = UInt32(op.b) << 28
            }
        case .fpCondSelect:
            setScalar(op.rd, scalar(Condition.holds(op.a, state.pointee.nzcv) ? op.rn : op.rm, log2: log2), log2: log2)
        case .fpFused:
            // a: o1:o0 = 00 FMADD (a + n*m), 01 FMSUB (a - n*m), 10 FNMADD (-a - n*m), 11 FNMSUB (-a + n*m).
            let negateProduct = (op.a & 1) != (op.a >> 1), negateAddend = op.a & 2 != 0
            if double {
                var n = Double(bitPattern: scalar(op.rn, log2: 3)), addend = Double(bitPattern: scalar(op.ra, log2: 3))
                if negateProduct { n = -n }
                if negateAddend { addend = -addend }
                setScalar(op.rd, FP.mulAdd(addend, n, Double(bitPattern: scalar(op.rm, log2: 3)), dn: dn).bitPattern, log2: 3)
            } else {
                var n = Float(bitPattern: UInt32(scalar(op.rn, log2: 2))), addend = Float(bitPattern: UInt32(scalar(op.ra, log2: 2)))
                if negateProduct { n = -n }
                if negateAddend { addend = -addend }
                setScalar(op.rd, UInt64(FP.mulAdd(addend, n, Float(bitPattern: UInt32(scalar(op.rm, log2: 2))), dn: dn).bitPattern), log2: 2)
            }
        case .fpToInt:
            let bits = op.a == 1 ? 64 : 32
            let v = double
                ? FP.toInteger(Double(bitPattern: scalar(op.rn, log2: 3)), mode: op.c, unsigned: op.b == 1, bits: bits)
                : FP.toInteger(Float(bitPattern: UInt32(scalar(op.rn, log2: 2))), mode: op.c, unsigned: op.b == 1, bits: bits)
            r[Int(op.rd)] = v
        case .intToFP:
            let x = op.a == 1 ? r[Int(op.rn)] : r[Int(op.rn)] & 0xFFFF_FFFF
            let unsigned = op.b == 1
            let signed = op.a == 1 ? Int64(bitPattern: x) : Int64(Int32(truncatingIfNeeded: x))
            if double {
                setScalar(op.rd, (unsigned ? Double(x) : Double(signed)).bitPattern, log2: 3)
            } else {
                setScalar(op.rd, UInt64((unsigned ? Float(x) : Float(signed)).bitPattern), log2: 2)
            }
        default:
            return false
        }
        return true
    }

    /// LDR / STR / LDP / STP / LDR (literal) of SIMD&FP registers, LD1 / ST1 (multiple
    /// structures) and LD1R.
    func executeFPLoadStore(_ op: Op, pc: UInt64) -> Step {
        let r = registers
        let bytes = 1 << Int(op.size)
        switch op.kind {
        case .loadFP, .storeFP, .loadPairFP, .storePairFP:
            let pair = op.kind == .loadPairFP || op.kind == .storePairFP
            let (va, writeback) = effectiveAddress(op)
            let total = pair ? 2 * bytes : bytes
            var buffer: (UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0)
            let load = op.kind == .loadFP || op.kind == .loadPairFP
            let ok = withUnsafeMutableBytes(of: &buffer) { b -> Bool in
                let base = b.baseAddress!
                if load { return loadBytes(va, total, into: base, element: bytes) }
                base.copyMemory(from: vreg(op.rd), byteCount: bytes)
                if pair { (base + bytes).copyMemory(from: vreg(op.ra), byteCount: bytes) }
                return storeBytes(va, total, from: base, element: bytes)
            }
            guard ok else { return .fault }
            if load {
                withUnsafeBytes(of: &buffer) { b in
                    let first = vreg(op.rd)
                    first.storeBytes(of: (UInt64(0), UInt64(0)), as: (UInt64, UInt64).self)
                    first.copyMemory(from: b.baseAddress!, byteCount: bytes)
                    if pair {
                        let second = vreg(op.ra)
                        second.storeBytes(of: (UInt64(0), UInt64(0)), as: (UInt64, UInt64).self)
                        second.copyMemory(from: b.baseAddress! + bytes, byteCount: bytes)
                    }
                }
            }
            if let writeback { r[Int(op.rn)] = writeback }
        case .loadLiteralFP:
            var buffer: (UInt64, UInt64) = (0, 0)
            guard withUnsafeMutableBytes(of: &buffer, { loadBytes(pc &+ op.imm, bytes, into: $0.baseAddress!) }) else { return .fault }
            vreg(op.rd).storeBytes(of: buffer, as: (UInt64, UInt64).self)
        case .loadMultiple, .storeMultiple, .loadReplicate:
            let registerBytes = op.b == 1 ? 16 : 8
            let base = r[Int(op.rn)]
            let count = op.kind == .loadReplicate ? bytes : Int(op.a) * registerBytes
            var buffer = (UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0))
            let ok = withUnsafeMutableBytes(of: &buffer) { b -> Bool in
                let p = b.baseAddress!
                if op.kind == .storeMultiple {
                    for i in 0 ..< Int(op.a) {
                        (p + i * registerBytes).copyMemory(from: vreg(op.rd &+ UInt8(i)), byteCount: registerBytes)
                    }
                    return storeBytes(base, count, from: p, element: 1 << Int(op.size))
                }
                return loadBytes(base, count, into: p, element: 1 << Int(op.size))
            }
            guard ok else { return .fault }
            withUnsafeBytes(of: &buffer) { b in
                if op.kind == .loadMultiple {
                    for i in 0 ..< Int(op.a) {
                        let v = vreg(op.rd &+ UInt8(i))
                        v.storeBytes(of: (UInt64(0), UInt64(0)), as: (UInt64, UInt64).self)
                        v.copyMemory(from: b.baseAddress! + i * registerBytes, byteCount: registerBytes)
                    }
                } else if op.kind == .loadReplicate {
                    let element = Self.lane(UnsafeMutableRawPointer(mutating: b.baseAddress!), 0, op.size)
                    let v = vreg(op.rd)
                    v.storeBytes(of: (UInt64(0), UInt64(0)), as: (UInt64, UInt64).self)
                    for i in 0 ..< registerBytes >> Int(op.size) { Self.setLane(v, i, op.size, element) }
                }
            }
            switch op.c {
            case 1: r[Int(op.rn)] = base &+ UInt64(count)
            case 2: r[Int(op.rn)] = base &+ r[Int(op.rm)]
            default: break
            }
        default:
            return .undefined
        }
        return .next
    }
}
