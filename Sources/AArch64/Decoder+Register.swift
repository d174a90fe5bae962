extension Decoder {
    // MARK: Data processing, register (C4.1.95)

    static func dataProcessingRegister(_ w: UInt32) -> Op {
        let sf = bit(w, 31)
        let size: UInt8 = sf ? 1 : 0
        let op2 = f(w, 24, 21)
        if !bit(w, 28) {
            if op2 & 0b1000 == 0 { return logicalShifted(w, sf: sf) }
            if op2 & 1 == 0 { return addSubShifted(w, sf: sf) }
            return addSubExtended(w, sf: sf)
        }
        switch op2 {
        case 0b0000:
            guard f(w, 15, 10) == 0 else { return .undefined(w) }  // RMIF / SETF: no FEAT_FlagM
            let kind: OpKind = [.adc, .adcs, .sbc, .sbcs][Int(f(w, 30, 29))]
            return Op(w, kind, rd: rd(w), rn: rn(w), rm: rm(w), size: size)
        case 0b0010:  // Conditional compare
            guard bit(w, 29), !bit(w, 10), !bit(w, 4) else { return .undefined(w) }
            let immediate = bit(w, 11)
            let negative = !bit(w, 30)  // CCMN when op = 0
            let kind: OpKind = immediate ? (negative ? .ccmnImm : .ccmpImm) : (negative ? .ccmnReg : .ccmpReg)
            return Op(w, kind, rn: rn(w), rm: rm(w), size: size, a: UInt8(f(w, 15, 12)), b: UInt8(w & 0xF),
                      imm: UInt64(f(w, 20, 16)))
        case 0b0100:  // Conditional select
            guard !bit(w, 29), !bit(w, 11) else { return .undefined(w) }
            let kind: OpKind = [.csel, .csinc, .csinv, .csneg][Int((f(w, 30, 30) << 1) | f(w, 10, 10))]
            return Op(w, kind, rd: rd(w), rn: rn(w), rm: rm(w), size: size, a: UInt8(f(w, 15, 12)))
        case 0b0110:
            return bit(w, 30) ? oneSource(w, sf: sf) : twoSource(w, sf: sf)
        default:
            if op2 & 0b1000 != 0 { return threeSource(w, sf: sf) }
            return .undefined(w)
        }
    }

    static func logicalShifted(_ w: UInt32, sf: Bool) -> Op {
        let shift = f(w, 23, 22), amount = f(w, 15, 10)
        guard sf || amount < 32 else { return .undefined(w) }
        let opc = f(w, 30, 29), invert = bit(w, 21)
        // MOV (register): ORR Rd, ZR, Rm with no shift.
        if opc == 1, !invert, amount == 0, f(w, 9, 5) == 31 {
            return Op(w, .movReg, rd: rd(w), rm: rm(w), size: sf ? 1 : 0)
        }
        let kinds: [OpKind] = [.andReg, .bicReg, .orrReg, .ornReg, .eorReg, .eonReg, .andsReg, .bicsReg]
        return Op(w, kinds[Int(opc << 1 | (invert ? 1 : 0))], rd: rd(w), rn: rn(w), rm: rm(w), size: sf ? 1 : 0,
                  a: UInt8(shift), b: UInt8(amount))
    }

    static func addSubShifted(_ w: UInt32, sf: Bool) -> Op {
        let shift = f(w, 23, 22), amount = f(w, 15, 10)
        guard shift != 3, sf || amount < 32 else { return .undefined(w) }
        let kinds: [OpKind] = [.addShifted, .addsShifted, .subShifted, .subsShifted]
        return Op(w, kinds[Int(f(w, 30, 29))], rd: rd(w), rn: rn(w), rm: rm(w), size: sf ? 1 : 0, a: UInt8(shift),
                  b: UInt8(amount))
    }

    static func addSubExtended(_ w: UInt32, sf: Bool) -> Op {
        let amount = f(w, 12, 10)
        guard f(w, 23, 22) == 0, amount <= 4 else { return .undefined(w) }
        let setFlags = bit(w, 29)
        let kinds: [OpKind] = [.addExtended, .addsExtended, .subExtended, .subsExtended]
        return Op(w, kinds[Int(f(w, 30, 29))], rd: setFlags ? rd(w) : rdSP(w), rn: rnSP(w), rm: rm(w), size: sf ? 1 : 0,
                  a: UInt8(f(w, 15, 13)), b: UInt8(amount))
    }

    static func twoSource(_ w: UInt32, sf: Bool) -> Op {
        guard !bit(w, 29) else { return .undefined(w) }
        let size: UInt8 = sf ? 1 : 0
        let opcode = f(w, 15, 10)
        let kind: OpKind
        switch opcode {
        case 0b000010: kind = .udiv
        case 0b000011: kind = .sdiv
        case 0b001000: kind = .lslv
        case 0b001001: kind = .lsrv
        case 0b001010: kind = .asrv
        case 0b001011: kind = .rorv
        case 0b010000 ... 0b010111:
            // CRC32{B,H,W}/CRC32C{B,H,W} with sf = 0, CRC32X/CRC32CX with sf = 1.
            let sz = opcode & 3
            guard (sz == 3) == sf else { return .undefined(w) }
            return Op(w, .crc32, rd: rd(w), rn: rn(w), rm: rm(w), size: UInt8(sz), a: UInt8((opcode >> 2) & 1))
        default: return .undefined(w)
        }
        return Op(w, kind, rd: rd(w), rn: rn(w), rm: rm(w), size: size)
    }

    static func oneSource(_ w: UInt32, sf: Bool) -> Op {
        guard !bit(w, 29), f(w, 20, 16) == 0 else { return .undefined(w) }  // PAC: no FEAT_PAuth
        let size: UInt8 = sf ? 1 : 0
        let kind: OpKind
        switch f(w, 15, 10) {
        case 0: kind = .rbit
        case 1: kind = .rev16
        case 2: kind = sf ? .rev32 : .rev
        case 3:
            guard sf else { return .undefined(w) }
            kind = .rev
        case 4: kind = .clz
        case 5: kind = .cls
        default: return .undefined(w)
        }
        return Op(w, kind, rd: rd(w), rn: rn(w), size: size)
    }

    static func threeSource(_ w: UInt32, sf: Bool) -> Op {
        guard f(w, 30, 29) == 0 else { return .undefined(w) }
        let size: UInt8 = sf ? 1 : 0
        let o0 = bit(w, 15)
        let kind: OpKind
        switch f(w, 23, 21) {
        case 0b000: kind = o0 ? .msub : .madd
        case 0b001 where sf: kind = o0 ? .smsubl : .smaddl
        case 0b010 where sf && !o0: kind = .smulh
        case 0b101 where sf: kind = o0 ? .umsubl : .umaddl
        case 0b110 where sf && !o0: kind = .umulh
        default: return .undefined(w)
        }
        return Op(w, kind, rd: rd(w), rn: rn(w), rm: rm(w), ra: RegisterFile.source(f(w, 14, 10)), size: size)
    }
}
