/// The SHA-1 instructions (FEAT_SHA1; Arm ARM C7.2 SHA1C, SHA1P, SHA1M, SHA1H, SHA1SU0,
/// SHA1SU1, and the shared pseudocode SHAchoose, SHAparity, SHAmajority): four rounds of the
/// hash on the state (a, b, c, d) in a vector and e in a scalar, and the message schedule.
/// Implemented because the architecture allows SHA-256 only beside SHA-1.
extension AArch64CPU {
    func sha1(_ op: Op, _ n: UnsafeMutableRawPointer, _ m: UnsafeMutableRawPointer, _ o: UnsafeMutableRawPointer) {
        let vd = vreg(op.rd).loadUnaligned(as: SIMD4<UInt32>.self)
        let vn = n.loadUnaligned(as: SIMD4<UInt32>.self), vm = m.loadUnaligned(as: SIMD4<UInt32>.self)
        let result: SIMD4<UInt32>
        switch op.a {
        case 0, 1, 2:  // SHA1C, SHA1P, SHA1M: Qd, Sn, Vm.4S
            var (x0, x1, x2, x3) = (vd[0], vd[1], vd[2], vd[3])
            var y = vn[0]
            for e in 0 ..< 4 {
                let f: UInt32
                switch op.a {
                case 0: f = ((x2 ^ x3) & x1) ^ x3                   // SHAchoose(x1, x2, x3)
                case 1: f = x1 ^ x2 ^ x3                            // SHAparity
                default: f = (x1 & x2) | ((x1 | x2) & x3)           // SHAmajority
                }
                y = y &+ x0.rotatedRight(27) &+ f &+ vm[e]          // ROL(x0, 5)
                x1 = x1.rotatedRight(2)                              // ROL(x1, 30)
                // ROL(Y:X, 32) on 160 bits: Y enters X's low lane, X's top lane becomes Y.
                (y, x3, x2, x1, x0) = (x3, x2, x1, x0, y)
            }
            result = SIMD4(x0, x1, x2, x3)
        case 3:  // SHA1SU0: (Vn[1:0] : Vd[3:2]) ^ Vd ^ Vm
            result = SIMD4(vd[2], vd[3], vn[0], vn[1]) ^ vd ^ vm
        case 4:  // SHA1H: ROL(Sn, 30), the rest of Vd cleared
            result = SIMD4(vn[0].rotatedRight(2), 0, 0, 0)
        default:  // SHA1SU1: T = Vd ^ (Vn >> 32); ROL by 1, the top lane also ^ ROL(T[0], 2)
            let t = vd ^ SIMD4(vn[1], vn[2], vn[3], 0)
            result = SIMD4(t[0].rotatedRight(31), t[1].rotatedRight(31), t[2].rotatedRight(31),
                           t[3].rotatedRight(31) ^ t[0].rotatedRight(30))
        }
        o.storeBytes(of: result, as: SIMD4<UInt32>.self)
    }
}
