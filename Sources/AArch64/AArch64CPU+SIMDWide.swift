extension AArch64CPU {
    /// AdvSIMD three different (C4.1.96.x): `Op.a` is U << 4 | opcode; `Op.size` the narrow
    /// element. Long forms (ADDL, SUBL, MULL, MLAL, MLSL) take the low (Q = 0) or high (Q = 1,
    /// the "2" forms) half of both narrow sources; wide forms (ADDW, SUBW) a wide first source;
    /// ADDHN / SUBHN (and the rounding R forms, U = 1) keep the high half of each wide result,
    /// into the low or (Q = 1) high half of the destination.
    func threeDifferent(_ op: Op, _ n: UnsafeMutableRawPointer, _ m: UnsafeMutableRawPointer, _ o: UnsafeMutableRawPointer, q: Bool) {
        let esize = op.size, wide = esize + 1
        let bits = UInt8(8 << esize), wideBits = UInt8(16 << esize)
        let count = 8 >> Int(esize)
        let unsigned = op.a & 0x10 != 0
        let opcode = op.a & 0xF
        let half = q ? count : 0
        func narrow(_ p: UnsafeMutableRawPointer, _ i: Int) -> UInt64 {
            let x = Self.lane(p, half + i, esize)
            return unsigned ? x : ALU.signExtend(x, bits: bits) & ALU.ones(wideBits)
        }
        switch opcode {
        case 0b0100, 0b0110:
            // ADDHN / SUBHN (RADDHN / RSUBHN with U): the destination keeps its other half.
            o.copyMemory(from: vreg(op.rd), byteCount: 16)
            let round: UInt64 = unsigned ? 1 << UInt64(bits - 1) : 0
            for i in 0 ..< count {
                let a = Self.lane(n, i, wide), b = Self.lane(m, i, wide)
                let sum = (opcode == 0b0100 ? a &+ b : a &- b) &+ round
                Self.setLane(o, half + i, esize, (sum & ALU.ones(wideBits)) >> UInt64(bits))
            }
            if !q { o.storeBytes(of: UInt64(0), toByteOffset: 8, as: UInt64.self) }
        default:
            let d = vreg(op.rd)
            for i in 0 ..< count {
                let a = opcode == 0b0001 || opcode == 0b0011 ? Self.lane(n, i, wide) : narrow(n, i)
                let b = narrow(m, i)
                let v: UInt64
                switch opcode {
                case 0b0000, 0b0001: v = a &+ b
                case 0b0010, 0b0011: v = a &- b
                case 0b1000: v = Self.lane(d, i, wide) &+ a &* b   // MLAL
                case 0b1010: v = Self.lane(d, i, wide) &- a &* b   // MLSL
                default: v = a &* b                                // MULL
                }
                Self.setLane(o, i, wide, v & ALU.ones(wideBits))
            }
        }
    }
}
