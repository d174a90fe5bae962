/// The SHA-256 instructions (FEAT_SHA256; Arm ARM C7.2 SHA256H, SHA256H2, SHA256SU0, SHA256SU1,
/// and the shared pseudocode SHA256hash, SHAchoose, SHAmajority, SHAhashSIGMA0/1): four rounds
/// of the hash, and the message schedule, on 32-bit lanes. pvmfw uses them to check a kernel's
/// digest in a fraction of the instructions its C code needs. Lanes live in `SIMD4<UInt32>`
/// values (lane 0 lowest), so nothing is allocated.
extension AArch64CPU {
    func sha256(_ op: Op, _ n: UnsafeMutableRawPointer, _ m: UnsafeMutableRawPointer, _ o: UnsafeMutableRawPointer) {
        let vd = vreg(op.rd).loadUnaligned(as: SIMD4<UInt32>.self)
        let vn = n.loadUnaligned(as: SIMD4<UInt32>.self), vm = m.loadUnaligned(as: SIMD4<UInt32>.self)
        var result: SIMD4<UInt32>
        switch op.a {
        case 0: result = Self.sha256Hash(x: vd, y: vn, w: vm, part1: true)    // SHA256H
        case 1: result = Self.sha256Hash(x: vn, y: vd, w: vm, part1: false)   // SHA256H2
        case 2:  // SHA256SU1
            let t0 = SIMD4(vn[1], vn[2], vn[3], vm[0])
            result = .zero
            for e in 0 ..< 4 {
                let source = e < 2 ? vm[e + 2] : result[e - 2]
                let sigma1 = source.rotatedRight(17) ^ source.rotatedRight(19) ^ (source >> 10)
                result[e] = sigma1 &+ vd[e] &+ t0[e]
            }
        default:  // SHA256SU0
            let t = SIMD4(vd[1], vd[2], vd[3], vn[0])
            let sigma0 = (t &>> 7 | t &<< 25) ^ (t &>> 18 | t &<< 14) ^ (t &>> 3)
            result = sigma0 &+ vd
        }
        o.storeBytes(of: result, as: SIMD4<UInt32>.self)
    }

    /// SHA256hash: four rounds on the state halves X (a, b, c, d) and Y (e, f, g, h), lowest
    /// lane first, with the schedule words W; part 1 returns X (SHA256H), part 2 Y (SHA256H2).
    /// The lanes are scalars here: ROL(Y:X, 32) after each round is a renaming.
    @inline(__always)
    static func sha256Hash(x: SIMD4<UInt32>, y: SIMD4<UInt32>, w: SIMD4<UInt32>, part1: Bool) -> SIMD4<UInt32> {
        var (x0, x1, x2, x3) = (x[0], x[1], x[2], x[3])
        var (y0, y1, y2, y3) = (y[0], y[1], y[2], y[3])
        let words = (w[0], w[1], w[2], w[3])
        for e in 0 ..< 4 {
            let we = e == 0 ? words.0 : e == 1 ? words.1 : e == 2 ? words.2 : words.3
            let choose = ((y1 ^ y2) & y0) ^ y2
            let majority = (x0 & x1) | ((x0 | x1) & x2)
            let sigma1 = y0.rotatedRight(6) ^ y0.rotatedRight(11) ^ y0.rotatedRight(25)
            let sigma0 = x0.rotatedRight(2) ^ x0.rotatedRight(13) ^ x0.rotatedRight(22)
            let t = y3 &+ sigma1 &+ choose &+ we
            let xTop = t &+ x3
            let yTop = t &+ sigma0 &+ majority
            // ROL(Y:X, 32): each half moves up a lane; X's new top lane enters Y, Y's enters X.
            (x3, x2, x1, x0) = (x2, x1, x0, yTop)
            (y3, y2, y1, y0) = (y2, y1, y0, xTop)
        }
        return part1 ? SIMD4(x0, x1, x2, x3) : SIMD4(y0, y1, y2, y3)
    }
}

extension UInt32 {
    @inline(__always) func rotatedRight(_ n: UInt32) -> UInt32 { (self >> n) | (self << (32 - n)) }
}
