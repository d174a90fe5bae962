/// Decodes A64 instruction words into `Op`s, following the encoding index of the Arm ARM
/// (DDI 0487, C4.1): the top-level split on op0 (bits 28:25), then each group's own fields.
/// Anything the interpreter does not implement, and every UNDEFINED or UNALLOCATED encoding,
/// becomes `Op.undefined`, which the guest receives as an Undefined Instruction exception.
public enum Decoder {
    public static func decode(_ w: UInt32) -> Op {
        switch (w >> 25) & 0xF {
        case 0b1000, 0b1001: return dataProcessingImmediate(w)
        case 0b1010, 0b1011: return branchSystem(w)
        case 0b0100, 0b0110, 0b1100, 0b1110: return loadStore(w)
        case 0b0101, 0b1101: return dataProcessingRegister(w)
        case 0b0111, 0b1111: return simd(w)
        default: return .undefined(w)
        }
    }

    // MARK: Field helpers

    @inline(__always) static func f(_ w: UInt32, _ hi: Int, _ lo: Int) -> UInt32 {
        (w >> UInt32(lo)) & ((1 << UInt32(hi - lo + 1)) - 1)
    }

    @inline(__always) static func bit(_ w: UInt32, _ n: Int) -> Bool { (w >> UInt32(n)) & 1 == 1 }

    /// Sign-extends the low `bits` of `value`.
    @inline(__always) static func signExtend(_ value: UInt32, bits: Int) -> Int64 {
        let shift = 64 - bits
        return Int64(bitPattern: UInt64(value) << UInt64(shift)) >> Int64(shift)
    }

    @inline(__always) static func rd(_ w: UInt32) -> UInt8 { RegisterFile.destination(w & 31) }
    @inline(__always) static func rn(_ w: UInt32) -> UInt8 { RegisterFile.source((w >> 5) & 31) }
    @inline(__always) static func rm(_ w: UInt32) -> UInt8 { RegisterFile.source((w >> 16) & 31) }
    @inline(__always) static func rdSP(_ w: UInt32) -> UInt8 { RegisterFile.stackOr(w & 31) }
    @inline(__always) static func rnSP(_ w: UInt32) -> UInt8 { RegisterFile.stackOr((w >> 5) & 31) }

    /// `DecodeBitMasks(N, imms, immr, TRUE)` (Arm ARM J1, shared/functions/bitmasks): the
    /// wmask of a logical immediate, or nil for a reserved encoding.
    static func bitMask(n: UInt32, imms: UInt32, immr: UInt32, sixtyFour: Bool) -> UInt64? {
        let combined = (n << 6) | (~imms & 0x3F)
        guard combined != 0 else { return nil }
        let len = 31 - combined.leadingZeroBitCount
        guard len >= 1, sixtyFour || n == 0 else { return nil }
        let levels = UInt32((1 << len) - 1)
        guard imms & levels != levels else { return nil }
        let s = imms & levels, r = immr & levels
        let esize = 1 << len
        let elementMask: UInt64 = esize == 64 ? ~0 : (1 << UInt64(esize)) - 1
        let welem: UInt64 = s + 1 == 64 ? ~0 : (1 << UInt64(s + 1)) - 1
        // Rotate right by r within esize bits.
        let rotated = r == 0 ? welem : ((welem >> UInt64(r)) | (welem << UInt64(esize - Int(r)))) & elementMask
        var mask: UInt64 = 0
        var i = 0
        while i < 64 {
            mask |= rotated << UInt64(i)
            i += esize
        }
        return sixtyFour ? mask : mask & 0xFFFF_FFFF
    }

    // MARK: Data processing, immediate (C4.1.86)

    static func dataProcessingImmediate(_ w: UInt32) -> Op {
        let sf = bit(w, 31)
        let size: UInt8 = sf ? 1 : 0
        switch f(w, 25, 23) {
        case 0b000, 0b001:  // PC-relative addressing
            let imm = signExtend((f(w, 23, 5) << 2) | f(w, 30, 29), bits: 21)
            if sf { return Op(w, .adrp, rd: rd(w), imm: UInt64(bitPattern: imm << 12)) }
            return Op(w, .adr, rd: rd(w), imm: UInt64(bitPattern: imm))
        case 0b010:  // Add/subtract (immediate)
            let sh = bit(w, 22)
            let imm = UInt64(f(w, 21, 10)) << (sh ? 12 : 0)
            let setFlags = bit(w, 29)
            let kinds: [OpKind] = [.addImm, .addsImm, .subImm, .subsImm]
            let kind = kinds[Int(f(w, 30, 29))]
            // ADD/SUB use SP for Rd and Rn; ADDS/SUBS use SP for Rn, ZR for Rd (CMP/CMN).
            return Op(w, kind, rd: setFlags ? rd(w) : rdSP(w), rn: rnSP(w), size: size, imm: imm)
        case 0b100:  // Logical (immediate)
            guard let mask = bitMask(n: f(w, 22, 22), imms: f(w, 15, 10), immr: f(w, 21, 16), sixtyFour: sf) else {
                return .undefined(w)
            }
            let opc = f(w, 30, 29)
            let kind: OpKind = [.andImm, .orrImm, .eorImm, .andsImm][Int(opc)]
            // AND/ORR/EOR write SP (e.g. `and sp, x0, #mask`); ANDS writes ZR.
            return Op(w, kind, rd: opc == 3 ? rd(w) : rdSP(w), rn: rn(w), size: size, imm: mask)
        case 0b101:  // Move wide (immediate)
            let hw = f(w, 22, 21)
            guard sf || hw < 2 else { return .undefined(w) }
            let shift = UInt64(hw * 16)
            let imm16 = UInt64(f(w, 20, 5))
            switch f(w, 30, 29) {
            case 0b00:  // MOVN
                let value = ~(imm16 << shift)
                return Op(w, .movImm, rd: rd(w), size: size, imm: sf ? value : value & 0xFFFF_FFFF)
            case 0b10: return Op(w, .movImm, rd: rd(w), size: size, imm: imm16 << shift)  // MOVZ
            case 0b11: return Op(w, .movk, rd: rd(w), size: size, a: UInt8(shift), imm: imm16)  // MOVK
            default: return .undefined(w)
            }
        case 0b110:  // Bitfield
            let n = bit(w, 22), immr = f(w, 21, 16), imms = f(w, 15, 10)
            guard n == sf, sf || (immr < 32 && imms < 32) else { return .undefined(w) }
            let regSize: UInt32 = sf ? 64 : 32
            let opc = f(w, 30, 29)
            guard opc != 3 else { return .undefined(w) }
            // The two shapes of each: field extract (imms >= immr) or field insert.
            let extract = imms >= immr
            let lsb = extract ? immr : regSize - immr
            let width = extract ? imms - immr + 1 : imms + 1
            let kind: OpKind
            switch opc {
            case 0: kind = extract ? .sbfx : .sbfiz
            case 1: kind = extract ? .bfxil : .bfi
            default: kind = extract ? .ubfx : .ubfiz
            }
            return Op(w, kind, rd: rd(w), rn: rn(w), size: size, a: UInt8(lsb), b: UInt8(width))
        case 0b111:  // Extract
            guard f(w, 30, 29) == 0, !bit(w, 21), bit(w, 22) == sf else { return .undefined(w) }
            let lsb = f(w, 15, 10)
            guard sf || lsb < 32 else { return .undefined(w) }
            return Op(w, .extr, rd: rd(w), rn: rn(w), rm: rm(w), size: size, a: UInt8(lsb))
        default:
            return .undefined(w)
        }
    }

    // MARK: Branches, exception generating and system instructions (C4.1.87)

    static func branchSystem(_ w: UInt32) -> Op {
        let op0 = f(w, 31, 29)
        switch op0 {
        case 0b010:
            // Conditional branch (immediate); bit 4 set is BC.cond (FEAT_HBC), the same branch.
            guard !bit(w, 25), !bit(w, 24) else { return .undefined(w) }
            let offset = signExtend(f(w, 23, 5), bits: 19) << 2
            return Op(w, .bcond, a: UInt8(w & 0xF), imm: UInt64(bitPattern: offset))
        case 0b110:
            if f(w, 25, 24) == 0b00 { return exceptionGeneration(w) }
            if f(w, 25, 22) == 0b0100 { return system(w) }
            if f(w, 25, 25) == 1 { return branchRegister(w) }
            return .undefined(w)
        case 0b000, 0b100:  // B, BL
            let offset = signExtend(f(w, 25, 0), bits: 26) << 2
            return Op(w, op0 == 0 ? .b : .bl, rd: 30, imm: UInt64(bitPattern: offset))
        case 0b001, 0b101:
            if !bit(w, 25) {  // Compare and branch
                let offset = signExtend(f(w, 23, 5), bits: 19) << 2
                return Op(w, bit(w, 24) ? .cbnz : .cbz, rn: RegisterFile.source(w & 31), size: bit(w, 31) ? 1 : 0,
                          imm: UInt64(bitPattern: offset))
            }
            // Test and branch
            let bitNumber = (f(w, 31, 31) << 5) | f(w, 23, 19)
            let offset = signExtend(f(w, 18, 5), bits: 14) << 2
            return Op(w, bit(w, 24) ? .tbnz : .tbz, rn: RegisterFile.source(w & 31), a: UInt8(bitNumber),
                      imm: UInt64(bitPattern: offset))
        default:
            return .undefined(w)
        }
    }

    static func exceptionGeneration(_ w: UInt32) -> Op {
        let opc = f(w, 23, 21), op2 = f(w, 4, 2), ll = f(w, 1, 0)
        let imm = UInt64(f(w, 20, 5))
        guard op2 == 0 else { return .undefined(w) }
        switch (opc, ll) {
        case (0, 1): return Op(w, .svc, imm: imm)
        case (0, 2): return Op(w, .hvc, imm: imm)
        case (0, 3): return Op(w, .smc, imm: imm)
        case (1, 0): return Op(w, .brk, imm: imm)
        case (2, 0): return Op(w, .hlt, imm: imm)
        default: return .undefined(w)
        }
    }

    static func branchRegister(_ w: UInt32) -> Op {
        let opc = f(w, 24, 21), op2 = f(w, 20, 16), op3 = f(w, 15, 10), op4 = f(w, 4, 0)
        guard op2 == 0x1F, op3 == 0, op4 == 0 else { return .undefined(w) }  // PAC forms: no FEAT_PAuth
        let n = RegisterFile.source((w >> 5) & 31)
        switch opc {
        case 0b0000: return Op(w, .br, rn: n)
        case 0b0001: return Op(w, .blr, rd: 30, rn: n)
        case 0b0010: return Op(w, .ret, rn: n)
        case 0b0100: return f(w, 9, 5) == 31 ? Op(w, .eret) : .undefined(w)
        default: return .undefined(w)
        }
    }

    /// System instructions (C5.2): hints, barriers, PSTATE writes, SYS, MRS and MSR. The
    /// system-register key is `op0:op1:CRn:CRm:op2` in 16 bits (`SystemRegister`).
    static func system(_ w: UInt32) -> Op {
        let l = bit(w, 21), op0 = f(w, 20, 19), op1 = f(w, 18, 16), crn = f(w, 15, 12)
        let crm = f(w, 11, 8), op2 = f(w, 7, 5), rt = f(w, 4, 0)
        let key = UInt64((op0 << 14) | (op1 << 11) | (crn << 7) | (crm << 3) | op2)
        switch op0 {
        case 0:
            guard !l else { return .undefined(w) }
            switch crn {
            case 0b0010:  // Hints: everything not listed is a NOP (C6.2.108).
                guard rt == 31 else { return .undefined(w) }
                switch (crm << 3) | op2 {
                case 2: return Op(w, .wfe)
                case 3: return Op(w, .wfi)
                case 4, 5: return Op(w, .sev)  // SEV, SEVL
                default: return Op(w, .nop)    // NOP, YIELD, ESB, CSDB, BTI, PACIASP, ...
                }
            case 0b0011:  // Barriers
                guard rt == 31 else { return .undefined(w) }
                switch op2 {
                case 2: return Op(w, .clrex)
                case 4: return Op(w, .dsb, a: UInt8(crm))
                case 5: return Op(w, .dmb, a: UInt8(crm))
                case 6: return Op(w, .isb)
                case 7: return Op(w, .nop)  // SB
                default: return .undefined(w)
                }
            case 0b0100:  // MSR (immediate): PSTATE fields
                guard rt == 31 else { return .undefined(w) }
                return Op(w, .msrImm, a: UInt8((op1 << 3) | op2), b: UInt8(crm))
            default:
                return .undefined(w)
            }
        case 1:  // SYS / SYSL: cache maintenance, TLB maintenance, address translation
            guard !l else { return .undefined(w) }
            return Op(w, .sys, rn: RegisterFile.source(rt), imm: key)
        default:
            if l { return Op(w, .mrs, rd: RegisterFile.destination(rt), imm: key) }
            return Op(w, .msr, rn: RegisterFile.source(rt), imm: key)
        }
    }
}
