/// Addressing modes of a load or store (`Op.a`, low two bits).
enum AddressingMode {
    /// [Xn|SP, #imm] (unsigned offset or unscaled), no writeback.
    static let offset: UInt8 = 0
    /// [Xn|SP, #imm]!: the address is Xn + imm, written back.
    static let preIndex: UInt8 = 1
    /// [Xn|SP], #imm: the address is Xn, then Xn + imm is written back.
    static let postIndex: UInt8 = 2
    /// [Xn|SP, Rm{, extend {#amount}}]: `Op.b` the extend option, `Op.c` the shift.
    static let register: UInt8 = 3
    /// Bit 2 of `Op.a`: an unprivileged access (LDTR / STTR: EL0's permissions at EL1).
    static let unprivileged: UInt8 = 4
}

/// How a load widens its value (`Op.ra` of `.load` / `.loadLiteral`).
enum LoadExtension {
    static let zero: UInt8 = 0
    static let signTo64: UInt8 = 1
    static let signTo32: UInt8 = 2
}

extension Decoder {
    // MARK: Loads and stores (C4.1.88)

    static func loadStore(_ w: UInt32) -> Op {
        let op0 = f(w, 31, 28), v = bit(w, 26), op2 = f(w, 24, 23)
        switch op0 & 0b0011 {
        case 0b00:
            if v {
                guard op0 & 0b1011 == 0 else { return .undefined(w) }  // bit 31 clear
                return simdStructure(w)
            }
            guard op2 & 0b10 == 0 else { return .undefined(w) }  // bits 24:23 = 1x: unallocated / LDIAPP
            return exclusiveOrdered(w)
        case 0b01:
            if op2 & 0b10 == 0 { return literal(w) }
            // LDAPUR / STLUR (FEAT_LRCPC2): size 011001 opc 0 imm9 00 Rn Rt.
            guard !v, !bit(w, 21), f(w, 11, 10) == 0 else { return .undefined(w) }
            return rcpcUnscaled(w)
        case 0b10:
            return pair(w)
        default:
            if op2 & 0b10 != 0 { return unsignedImmediate(w) }
            if !bit(w, 21) { return immediate9(w) }
            switch f(w, 11, 10) {
            case 0b00: return v ? .undefined(w) : atomic(w)
            case 0b10: return registerOffset(w)
            default: return .undefined(w)  // LDRAA / LDRAB: no FEAT_PAuth
            }
        }
    }

    /// The size and kind of an integer load or store from `size` and `opc` (C6.2's LDR/LDRS/
    /// STR families): nil for an unallocated pair; `prefetch` for PRFM.
    private static func integerAccess(size: UInt32, opc: UInt32) -> (store: Bool, ext: UInt8)?? {
        switch opc {
        case 0: return (true, LoadExtension.zero)
        case 1: return (false, LoadExtension.zero)
        case 2: return size == 3 ? .some(nil) : (false, LoadExtension.signTo64)
        default: return size < 2 ? (false, LoadExtension.signTo32) : nil
        }
    }

    /// The log2 size of a SIMD&FP register access (B, H, S, D, Q) and whether it loads.
    private static func fpAccess(size: UInt32, opc: UInt32) -> (log2: UInt8, load: Bool)? {
        let load = opc & 1 == 1
        if opc & 2 != 0 { return size == 0 ? (4, load) : nil }
        return (UInt8(size), load)
    }

    /// One register, base plus a scaled or unscaled immediate, or with writeback: everything
    /// but the register-offset form goes through here.
    private static func single(_ w: UInt32, mode: UInt8, offset: Int64) -> Op {
        let size = f(w, 31, 30), opc = f(w, 23, 22)
        let rt = w & 31
        let base = rnSP(w)
        if bit(w, 26) {
            guard mode & AddressingMode.unprivileged == 0, let (log2, load) = fpAccess(size: size, opc: opc) else {
                return .undefined(w)
            }
            return Op(w, load ? .loadFP : .storeFP, rd: UInt8(rt), rn: base, size: log2, a: mode,
                      imm: UInt64(bitPattern: offset))
        }
        guard let access = integerAccess(size: size, opc: opc) else { return .undefined(w) }
        guard let (store, ext) = access else {
            guard mode & 3 == AddressingMode.offset, mode & AddressingMode.unprivileged == 0 else { return .undefined(w) }
            return Op(w, .prefetch)
        }
        let imm = UInt64(bitPattern: offset)
        if mode == AddressingMode.offset, ext == LoadExtension.zero, size >= 2 {
            let kind: OpKind = store ? (size == 3 ? .strX : .strW) : (size == 3 ? .ldrX : .ldrW)
            return Op(w, kind, rd: store ? RegisterFile.source(rt) : RegisterFile.destination(rt), rn: base,
                      size: UInt8(size), imm: imm)
        }
        return Op(w, store ? .store : .load, rd: store ? RegisterFile.source(rt) : RegisterFile.destination(rt), rn: base,
                  ra: ext, size: UInt8(size), a: mode, imm: imm)
    }

    static func unsignedImmediate(_ w: UInt32) -> Op {
        let size = f(w, 31, 30), opc = f(w, 23, 22)
        let scale = bit(w, 26) && opc & 2 != 0 ? 4 : size
        return single(w, mode: AddressingMode.offset, offset: Int64(f(w, 21, 10)) << Int64(scale))
    }

    static func immediate9(_ w: UInt32) -> Op {
        let offset = signExtend(f(w, 20, 12), bits: 9)
        switch f(w, 11, 10) {
        case 0b00: return single(w, mode: AddressingMode.offset, offset: offset)
        case 0b01: return single(w, mode: AddressingMode.postIndex, offset: offset)
        case 0b10: return single(w, mode: AddressingMode.offset | AddressingMode.unprivileged, offset: offset)
        default: return single(w, mode: AddressingMode.preIndex, offset: offset)
        }
    }

    static func registerOffset(_ w: UInt32) -> Op {
        let size = f(w, 31, 30), opc = f(w, 23, 22), option = f(w, 15, 13)
        guard option & 0b010 != 0 else { return .undefined(w) }  // UXTW, LSL (UXTX), SXTW, SXTX only
        let rt = w & 31
        let amount: UInt32
        if bit(w, 26) {
            guard let (log2, load) = fpAccess(size: size, opc: opc) else { return .undefined(w) }
            amount = bit(w, 12) ? UInt32(log2) : 0
            return Op(w, load ? .loadFP : .storeFP, rd: UInt8(rt), rn: rnSP(w), rm: rm(w), size: log2,
                      a: AddressingMode.register, b: UInt8(option), c: UInt8(amount))
        }
        amount = bit(w, 12) ? size : 0
        guard let access = integerAccess(size: size, opc: opc) else { return .undefined(w) }
        guard let (store, ext) = access else { return Op(w, .prefetch) }
        return Op(w, store ? .store : .load, rd: store ? RegisterFile.source(rt) : RegisterFile.destination(rt),
                  rn: rnSP(w), rm: rm(w), ra: ext, size: UInt8(size), a: AddressingMode.register, b: UInt8(option),
                  c: UInt8(amount))
    }

    static func literal(_ w: UInt32) -> Op {
        let opc = f(w, 31, 30)
        let offset = UInt64(bitPattern: signExtend(f(w, 23, 5), bits: 19) << 2)
        let rt = w & 31
        if bit(w, 26) {
            guard opc != 3 else { return .undefined(w) }
            return Op(w, .loadLiteralFP, rd: UInt8(rt), size: UInt8(opc + 2), imm: offset)
        }
        switch opc {
        case 0: return Op(w, .loadLiteral, rd: RegisterFile.destination(rt), size: 2, imm: offset)
        case 1: return Op(w, .loadLiteral, rd: RegisterFile.destination(rt), size: 3, imm: offset)
        case 2: return Op(w, .loadLiteral, rd: RegisterFile.destination(rt), ra: LoadExtension.signTo64, size: 2, imm: offset)
        default: return Op(w, .prefetch)
        }
    }

    static func pair(_ w: UInt32) -> Op {
        let opc = f(w, 31, 30), load = bit(w, 22)
        let mode: UInt8
        switch f(w, 24, 23) {
        case 0b01: mode = AddressingMode.postIndex
        case 0b11: mode = AddressingMode.preIndex
        default: mode = AddressingMode.offset  // signed offset, and the no-allocate hint (LDNP / STNP)
        }
        let imm7 = signExtend(f(w, 21, 15), bits: 7)
        let rt = w & 31, rt2 = f(w, 14, 10)
        if bit(w, 26) {
            guard opc != 3 else { return .undefined(w) }
            let log2 = UInt8(opc + 2)
            return Op(w, load ? .loadPairFP : .storePairFP, rd: UInt8(rt), rn: rnSP(w), ra: UInt8(rt2), size: log2, a: mode,
                      imm: UInt64(bitPattern: imm7 << Int64(log2)))
        }
        let log2: UInt8
        var ext = LoadExtension.zero
        switch opc {
        case 0: log2 = 2
        case 1:
            guard load, f(w, 24, 23) != 0 else { return .undefined(w) }  // LDPSW (STGP: no FEAT_MTE)
            log2 = 2
            ext = LoadExtension.signTo64
        case 2: log2 = 3
        default: return .undefined(w)
        }
        let reg = load ? RegisterFile.destination : RegisterFile.source
        return Op(w, load ? .loadPair : .storePair, rd: reg(rt), rn: rnSP(w), rm: reg(rt2), ra: ext, size: log2, a: mode,
                  imm: UInt64(bitPattern: imm7 << Int64(log2)))
    }

    /// Exclusives, load-acquire / store-release, CAS and CASP (C4.1.88, "Load/store exclusive
    /// and ordered", "Compare and swap"). `Op.a`: bit 0 acquire, bit 1 release.
    static func exclusiveOrdered(_ w: UInt32) -> Op {
        let size = f(w, 31, 30), o2 = bit(w, 23), l = bit(w, 22), o1 = bit(w, 21), o0 = bit(w, 15)
        let rs = f(w, 20, 16), rt2 = f(w, 14, 10), rt = w & 31
        let n = rnSP(w)
        switch (o2, o1) {
        case (false, false):
            if l { return Op(w, .loadExclusive, rd: RegisterFile.destination(rt), rn: n, size: UInt8(size), a: o0 ? 1 : 0) }
            return Op(w, .storeExclusive, rd: RegisterFile.source(rt), rn: n, ra: RegisterFile.destination(rs),
                      size: UInt8(size), a: o0 ? 2 : 0)
        case (false, true):
            if size & 2 != 0 {
                let log2 = UInt8(size)  // 2: two words, 3: two doublewords
                if l {
                    return Op(w, .loadExclusivePair, rd: RegisterFile.destination(rt), rn: n, rm: RegisterFile.destination(rt2),
                              size: log2, a: o0 ? 1 : 0)
                }
                return Op(w, .storeExclusivePair, rd: RegisterFile.source(rt), rn: n, rm: RegisterFile.source(rt2),
                          ra: RegisterFile.destination(rs), size: log2, a: o0 ? 2 : 0)
            }
            // CASP{A}{L}: Rs, Rs+1 and Rt, Rt+1 must be even pairs.
            guard rt2 == 31, rs & 1 == 0, rt & 1 == 0 else { return .undefined(w) }
            // size is log2 of the whole pair: 3 for two words, 4 for two doublewords.
            return Op(w, .casp, rd: UInt8(rt), rn: n, rm: UInt8(rs), size: UInt8(size + 3), a: (l ? 1 : 0) | (o0 ? 2 : 0))
        case (true, false):
            guard o0 else { return .undefined(w) }  // LDLAR / STLLR: no FEAT_LOR
            if l { return Op(w, .loadAcquire, rd: RegisterFile.destination(rt), rn: n, size: UInt8(size)) }
            return Op(w, .storeRelease, rd: RegisterFile.source(rt), rn: n, size: UInt8(size))
        case (true, true):
            guard rt2 == 31 else { return .undefined(w) }
            return Op(w, .cas, rd: RegisterFile.source(rt), rn: n, rm: RegisterFile.source(rs),
                      ra: RegisterFile.destination(rs), size: UInt8(size), a: (l ? 1 : 0) | (o0 ? 2 : 0))
        }
    }

    /// LSE atomic memory operations (FEAT_LSE): LD<op>, SWP, and LDAPR. `Op.a` is o3:opc,
    /// `Op.b` bit 0 acquire (A), bit 1 release (R).
    static func atomic(_ w: UInt32) -> Op {
        let size = f(w, 31, 30), a = bit(w, 23), r = bit(w, 22), rs = f(w, 20, 16)
        let o3 = f(w, 15, 15), opc = f(w, 14, 12), rt = w & 31
        let op = (o3 << 3) | opc
        let order = UInt8((a ? 1 : 0) | (r ? 2 : 0))
        switch op {
        case 0 ... 7:
            return Op(w, .atomic, rd: RegisterFile.destination(rt), rn: rnSP(w), rm: RegisterFile.source(rs),
                      size: UInt8(size), a: UInt8(op), b: order)
        case 8:
            return Op(w, .swp, rd: RegisterFile.destination(rt), rn: rnSP(w), rm: RegisterFile.source(rs),
                      size: UInt8(size), b: order)
        case 12 where a && !r && rs == 31:
            return Op(w, .loadAcquire, rd: RegisterFile.destination(rt), rn: rnSP(w), size: UInt8(size))
        default:
            return .undefined(w)
        }
    }

    /// LDAPUR{B,H,SB,SH,SW} / STLUR{B,H}: an ordered access with a 9-bit unscaled offset.
    static func rcpcUnscaled(_ w: UInt32) -> Op {
        let size = f(w, 31, 30), opc = f(w, 23, 22)
        let offset = UInt64(bitPattern: signExtend(f(w, 20, 12), bits: 9))
        let rt = w & 31
        switch opc {
        case 0: return Op(w, .storeRelease, rd: RegisterFile.source(rt), rn: rnSP(w), size: UInt8(size), imm: offset)
        case 1: return Op(w, .loadAcquire, rd: RegisterFile.destination(rt), rn: rnSP(w), size: UInt8(size), imm: offset)
        case 2 where size < 3:
            return Op(w, .loadAcquire, rd: RegisterFile.destination(rt), rn: rnSP(w), ra: LoadExtension.signTo64,
                      size: UInt8(size), imm: offset)
        case 3 where size < 2:
            return Op(w, .loadAcquire, rd: RegisterFile.destination(rt), rn: rnSP(w), ra: LoadExtension.signTo32,
                      size: UInt8(size), imm: offset)
        default: return .undefined(w)
        }
    }

    /// LD1 / ST1 (multiple structures, one to four registers) and LD1R, with or without
    /// post-index. `Op.a`: registers; `Op.b`: Q (128-bit registers); `Op.size`: element log2;
    /// `Op.c`: 1 post-index by immediate (the total size), 2 post-index by `Op.rm`.
    static func simdStructure(_ w: UInt32) -> Op {
        let q = f(w, 30, 30), l = bit(w, 22), postIndex = bit(w, 23)
        let rm = f(w, 20, 16), opcode = f(w, 15, 12), size = f(w, 11, 10)
        let rt = UInt8(w & 31)
        let post: UInt8 = !postIndex ? 0 : rm == 31 ? 1 : 2
        if !bit(w, 24) {  // multiple structures
            guard postIndex || rm == 0, !bit(w, 21) else { return .undefined(w) }
            let registers: UInt8
            switch opcode {
            case 0b0111: registers = 1
            case 0b1010: registers = 2
            case 0b0110: registers = 3
            case 0b0010: registers = 4
            default: return .undefined(w)  // LD2-LD4 / ST2-ST4 interleaving: not implemented
            }
            guard size != 3 || q == 1 || registers > 0 else { return .undefined(w) }
            return Op(w, l ? .loadMultiple : .storeMultiple, rd: rt, rn: rnSP(w), rm: RegisterFile.source(rm), size: UInt8(size),
                      a: registers, b: UInt8(q), c: post)
        }
        // Single structure: LD1R only.
        guard l, !bit(w, 21), opcode == 0b1100, !bit(w, 12), postIndex || rm == 0 else { return .undefined(w) }
        return Op(w, .loadReplicate, rd: rt, rn: rnSP(w), rm: RegisterFile.source(rm), size: UInt8(size), a: 1, b: UInt8(q), c: post)
    }
}
