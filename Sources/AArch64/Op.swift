/// One decoded A64 instruction, as the executor switches on it. The decoder (`Decoder`) turns an
/// instruction word into this once; the decode cache (`DecodeCache`) keeps it keyed by the word
/// itself, so code that changes is decoded again without any invalidation.
///
/// Register fields are slots of the register file (`RegisterFile`), not architectural numbers:
/// the decoder has already resolved what register 31 means for each operand (the zero register
/// when read, a discard slot when written, or the stack pointer).
public struct Op: Sendable, Equatable {
    /// The instruction word (the decode cache's tag).
    public var word: UInt32
    public var kind: OpKind
    public var rd: UInt8
    public var rn: UInt8
    public var rm: UInt8
    public var ra: UInt8
    /// 64-bit operation (sf), or an access's log2 size, as the kind says.
    public var size: UInt8
    /// Kind-specific small fields: shift type and amount, condition, addressing mode, ...
    public var a: UInt8
    public var b: UInt8
    public var c: UInt8
    /// Immediate, offset, bitmask or system-register key.
    public var imm: UInt64

    @inline(__always)
    init(_ word: UInt32, _ kind: OpKind, rd: UInt8 = RegisterFile.discard, rn: UInt8 = RegisterFile.zero,
         rm: UInt8 = RegisterFile.zero, ra: UInt8 = RegisterFile.zero, size: UInt8 = 0, a: UInt8 = 0, b: UInt8 = 0,
         c: UInt8 = 0, imm: UInt64 = 0) {
        self.word = word
        self.kind = kind
        self.rd = rd
        self.rn = rn
        self.rm = rm
        self.ra = ra
        self.size = size
        self.a = a
        self.b = b
        self.c = c
        self.imm = imm
    }

    /// An instruction the interpreter does not implement, or that is UNDEFINED: executing it
    /// takes an Undefined Instruction exception (EC 0x00) in the guest.
    static func undefined(_ word: UInt32) -> Op { Op(word, .undefined) }
}

/// What an `Op` does. Grouped as the A64 encoding index groups instructions (Arm ARM C4.1).
public enum OpKind: UInt16, Sendable {
    case undefined

    // Data processing, immediate (C4.1.86).
    case adr, adrp
    case addImm, addsImm, subImm, subsImm
    case andImm, orrImm, eorImm, andsImm
    case movImm, movk
    case ubfx, ubfiz, sbfx, sbfiz, bfxil, bfi
    case extr

    // Data processing, register (C4.1.95).
    case movReg
    case andReg, bicReg, orrReg, ornReg, eorReg, eonReg, andsReg, bicsReg
    case addShifted, addsShifted, subShifted, subsShifted
    case addExtended, addsExtended, subExtended, subsExtended
    case adc, adcs, sbc, sbcs
    case ccmnReg, ccmpReg, ccmnImm, ccmpImm
    case csel, csinc, csinv, csneg
    case rbit, rev16, rev32, rev, clz, cls
    case udiv, sdiv, lslv, lsrv, asrv, rorv, crc32
    case madd, msub, smaddl, smsubl, umaddl, umsubl, smulh, umulh

    // Branches, exception generation, system (C4.1.87).
    case b, bl, bcond, cbz, cbnz, tbz, tbnz, br, blr, ret, eret
    case svc, hvc, smc, brk, hlt
    case nop, wfi, wfe, sev, clrex, dmb, dsb, isb
    case msrImm, mrs, msr, sys

    // Loads and stores (C4.1.88).
    /// Fast forms: 64- and 32-bit LDR / STR, unsigned immediate offset.
    case ldrX, ldrW, strX, strW
    /// Every other single-register integer load or store: size, sign, addressing mode.
    case load, store
    case loadPair, storePair
    case loadLiteral, prefetch
    case loadExclusive, storeExclusive, loadExclusivePair, storeExclusivePair
    case loadAcquire, storeRelease
    case cas, casp, atomic, swp
    case loadFP, storeFP, loadPairFP, storePairFP, loadLiteralFP
    case loadMultiple, storeMultiple, loadReplicate, loadLane, storeLane

    // SIMD and floating point (C4.1.96).
    case fmovToGeneral, fmovFromGeneral, fmovReg, fmovImm
    case fpArith2, fpArith1, fpCompare, fpCondSelect, fpCondCompare, fpFused
    case fpToInt, intToFP, fpConvert
    case movi, dupGeneral, dupElement, insGeneral, insElement, umov, smov
    case vecLogical, vecArith3, vecArith2, vecShiftImm, vecAcross, vecPermute, vecExt, vecTable, vecCompareZero
    case vecFPArith3, vecWiden, vecNarrow, vecThreeDifferent, sha256, sha1
}
