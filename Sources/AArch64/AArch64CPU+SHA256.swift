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
    @inline(__always)
    static func sha256Hash(x: SIMD4<UInt32>, y: SIMD4<UInt32>, w: SIMD4<UInt32>, part1: Bool) -> SIMD4<UInt32> {
        var x = x, y = y
        for e in 0 ..< 4 {
            let choose = ((y[1] ^ y[2]) & y[0]) ^ y[2]
            let majority = (x[0] & x[1]) | ((x[0] | x[1]) & x[2])
            let sigma1 = y[0].rotatedRight(6) ^ y[0].rotatedRight(11) ^ y[0].rotatedRight(25)
            let sigma0 = x[0].rotatedRight(2) ^ x[0].rotatedRight(13) ^ x[0].rotatedRight(22)
            let t = y[3] &+ sigma1 &+ choose &+ w[e]
            let xTop = t &+ x[3]
            let yTop = t &+ sigma0 &+ majority
            // ROL(Y:X, 32): each half moves up a lane; X's new top lane enters Y, Y's enters X.
            x = SIMD4(yTop, x[0], x[1], x[2])
            y = SIMD4(xTop, y[0], y[1], y[2])
        }
        return part1 ? x : y
    }
}

extension UInt32 {
    @inline(__always) func rotatedRight(_ n: UInt32) -> UInt32 { (self >> n) | (self << (32 - n)) }
}
