/// A small A64 encoder for the differential tests: every instruction form the random
/// sequences use, encoded from the Arm ARM's encoding diagrams (C6, C7). Written apart from
/// the decoder; the reference that judges both is QEMU, which executes the bits.
enum A64 {
    // MARK: Data processing, immediate
    static func addImm(sf: Bool, sub: Bool, setFlags: Bool, rd: UInt32, rn: UInt32, imm12: UInt32, shift12: Bool) -> UInt32 {
        (sf ? 1 << 31 : 0) | (sub ? 1 << 30 : 0) | (setFlags ? 1 << 29 : 0) | 0b100010 << 23 | (shift12 ? 1 << 22 : 0)
            | (imm12 & 0xFFF) << 10 | rn << 5 | rd
    }
    static func logicalImm(sf: Bool, opc: UInt32, n: UInt32, immr: UInt32, imms: UInt32, rd: UInt32, rn: UInt32) -> UInt32 {
        (sf ? 1 << 31 : 0) | opc << 29 | 0b100100 << 23 | n << 22 | immr << 16 | imms << 10 | rn << 5 | rd
    }
    static func moveWide(sf: Bool, opc: UInt32, hw: UInt32, imm16: UInt32, rd: UInt32) -> UInt32 {
        (sf ? 1 << 31 : 0) | opc << 29 | 0b100101 << 23 | hw << 21 | (imm16 & 0xFFFF) << 5 | rd
    }
    static func bitfield(sf: Bool, opc: UInt32, immr: UInt32, imms: UInt32, rd: UInt32, rn: UInt32) -> UInt32 {
        (sf ? 1 << 31 : 0) | opc << 29 | 0b100110 << 23 | (sf ? 1 << 22 : 0) | immr << 16 | imms << 10 | rn << 5 | rd
    }
    static func extr(sf: Bool, rd: UInt32, rn: UInt32, rm: UInt32, lsb: UInt32) -> UInt32 {
        (sf ? 1 << 31 : 0) | 0b00100111 << 23 | (sf ? 1 << 22 : 0) | rm << 16 | lsb << 10 | rn << 5 | rd
    }

    // MARK: Data processing, register
    static func logicalShifted(sf: Bool, opc: UInt32, shift: UInt32, n: UInt32, rd: UInt32, rn: UInt32, rm: UInt32, amount: UInt32) -> UInt32 {
        (sf ? 1 << 31 : 0) | opc << 29 | 0b01010 << 24 | shift << 22 | n << 21 | rm << 16 | amount << 10 | rn << 5 | rd
    }
    static func addShifted(sf: Bool, sub: Bool, setFlags: Bool, shift: UInt32, rd: UInt32, rn: UInt32, rm: UInt32, amount: UInt32) -> UInt32 {
        (sf ? 1 << 31 : 0) | (sub ? 1 << 30 : 0) | (setFlags ? 1 << 29 : 0) | 0b01011 << 24 | shift << 22 | rm << 16
            | amount << 10 | rn << 5 | rd
    }
    static func addExtended(sf: Bool, sub: Bool, setFlags: Bool, option: UInt32, amount: UInt32, rd: UInt32, rn: UInt32, rm: UInt32) -> UInt32 {
        (sf ? 1 << 31 : 0) | (sub ? 1 << 30 : 0) | (setFlags ? 1 << 29 : 0) | 0b01011001 << 21 | rm << 16 | option << 13
            | amount << 10 | rn << 5 | rd
    }
    static func addCarry(sf: Bool, sub: Bool, setFlags: Bool, rd: UInt32, rn: UInt32, rm: UInt32) -> UInt32 {
        (sf ? 1 << 31 : 0) | (sub ? 1 << 30 : 0) | (setFlags ? 1 << 29 : 0) | 0b11010000 << 21 | rm << 16 | rn << 5 | rd
    }
    static func conditionalCompare(sf: Bool, negative: Bool, immediate: Bool, rn: UInt32, rmOrImm: UInt32, cond: UInt32, nzcv: UInt32) -> UInt32 {
        (sf ? 1 << 31 : 0) | (negative ? 0 : 1 << 30) | 1 << 29 | 0b11010010 << 21 | rmOrImm << 16 | cond << 12
            | (immediate ? 1 << 11 : 0) | rn << 5 | nzcv
    }
    static func conditionalSelect(sf: Bool, op: UInt32, op2: UInt32, rd: UInt32, rn: UInt32, rm: UInt32, cond: UInt32) -> UInt32 {
        (sf ? 1 << 31 : 0) | op << 30 | 0b11010100 << 21 | rm << 16 | cond << 12 | op2 << 10 | rn << 5 | rd
    }
    static func oneSource(sf: Bool, opcode: UInt32, rd: UInt32, rn: UInt32) -> UInt32 {
        (sf ? 1 << 31 : 0) | 1 << 30 | 0b11010110 << 21 | opcode << 10 | rn << 5 | rd
    }
    static func twoSource(sf: Bool, opcode: UInt32, rd: UInt32, rn: UInt32, rm: UInt32) -> UInt32 {
        (sf ? 1 << 31 : 0) | 0b11010110 << 21 | rm << 16 | opcode << 10 | rn << 5 | rd
    }
    static func threeSource(sf: Bool, op31: UInt32, o0: UInt32, rd: UInt32, rn: UInt32, rm: UInt32, ra: UInt32) -> UInt32 {
        (sf ? 1 << 31 : 0) | 0b11011 << 24 | op31 << 21 | rm << 16 | o0 << 15 | ra << 10 | rn << 5 | rd
    }

    // MARK: Branches and system
    static func bcond(offset: Int32, cond: UInt32) -> UInt32 { 0b01010100 << 24 | (UInt32(bitPattern: offset / 4) & 0x7FFFF) << 5 | cond }
    static func cbz(sf: Bool, nonzero: Bool, rt: UInt32, offset: Int32) -> UInt32 {
        (sf ? 1 << 31 : 0) | 0b011010 << 25 | (nonzero ? 1 << 24 : 0) | (UInt32(bitPattern: offset / 4) & 0x7FFFF) << 5 | rt
    }
    static func tbz(nonzero: Bool, rt: UInt32, bit: UInt32, offset: Int32) -> UInt32 {
        (bit >> 5) << 31 | 0b011011 << 25 | (nonzero ? 1 << 24 : 0) | (bit & 31) << 19
            | (UInt32(bitPattern: offset / 4) & 0x3FFF) << 5 | rt
    }
    static func svc(_ imm: UInt32) -> UInt32 { 0xD400_0001 | imm << 5 }
    static func mrsNZCV(_ rt: UInt32) -> UInt32 { 0xD53B_4200 | rt }
    static func msrNZCV(_ rt: UInt32) -> UInt32 { 0xD51B_4200 | rt }

    // MARK: Loads and stores
    /// LDR/STR (unsigned offset): size 0-3, opc 0 store, 1 load, 2 load signed 64, 3 load signed 32.
    static func loadStoreUnsigned(size: UInt32, opc: UInt32, rt: UInt32, rn: UInt32, imm12: UInt32) -> UInt32 {
        size << 30 | 0b111001 << 24 | opc << 22 | imm12 << 10 | rn << 5 | rt
    }
    /// LDUR / post-index (mode 1) / pre-index (mode 3) with a signed 9-bit offset.
    static func loadStoreImm9(size: UInt32, opc: UInt32, mode: UInt32, rt: UInt32, rn: UInt32, imm9: Int32) -> UInt32 {
        size << 30 | 0b111000 << 24 | opc << 22 | (UInt32(bitPattern: imm9) & 0x1FF) << 12 | mode << 10 | rn << 5 | rt
    }
    static func loadStoreRegister(size: UInt32, opc: UInt32, rt: UInt32, rn: UInt32, rm: UInt32, option: UInt32, shift: Bool) -> UInt32 {
        size << 30 | 0b111000 << 24 | opc << 22 | 1 << 21 | rm << 16 | option << 13 | (shift ? 1 << 12 : 0) | 0b10 << 10 | rn << 5 | rt
    }
    /// LDP/STP: opc 0 (32-bit), 1 (LDPSW), 2 (64-bit); mode 1 post, 2 offset, 3 pre.
    static func pair(opc: UInt32, vector: Bool = false, mode: UInt32, load: Bool, rt: UInt32, rt2: UInt32, rn: UInt32, imm7: Int32) -> UInt32 {
        opc << 30 | 0b101 << 27 | (vector ? 1 << 26 : 0) | mode << 23 | (load ? 1 << 22 : 0)
            | (UInt32(bitPattern: imm7) & 0x7F) << 15 | rt2 << 10 | rn << 5 | rt
    }
    static func exclusive(size: UInt32, load: Bool, ordered: Bool, rs: UInt32, rt: UInt32, rn: UInt32) -> UInt32 {
        size << 30 | 0b001000 << 24 | (load ? 1 << 22 : 0) | rs << 16 | (ordered ? 1 << 15 : 0) | 0x1F << 10 | rn << 5 | rt
    }
    static func loadAcquireStoreRelease(size: UInt32, load: Bool, rt: UInt32, rn: UInt32) -> UInt32 {
        size << 30 | 0b001000 << 24 | 1 << 23 | (load ? 1 << 22 : 0) | 0x1F << 16 | 1 << 15 | 0x1F << 10 | rn << 5 | rt
    }
    static func cas(size: UInt32, acquire: Bool, release: Bool, rs: UInt32, rt: UInt32, rn: UInt32) -> UInt32 {
        size << 30 | 0b001000 << 24 | 1 << 23 | (acquire ? 1 << 22 : 0) | 1 << 21 | rs << 16 | (release ? 1 << 15 : 0)
            | 0x1F << 10 | rn << 5 | rt
    }
    /// LD<op> (opc 0-7) and SWP (op 8).
    static func atomic(size: UInt32, op: UInt32, acquire: Bool, release: Bool, rs: UInt32, rt: UInt32, rn: UInt32) -> UInt32 {
        size << 30 | 0b111000 << 24 | (acquire ? 1 << 23 : 0) | (release ? 1 << 22 : 0) | 1 << 21 | rs << 16
            | (op >> 3) << 15 | (op & 7) << 12 | rn << 5 | rt
    }
    /// LDR/STR of a SIMD&FP register, unsigned offset: log2 size 0-4.
    static func loadStoreFP(log2: UInt32, load: Bool, rt: UInt32, rn: UInt32, imm12: UInt32) -> UInt32 {
        let size: UInt32 = log2 == 4 ? 0 : log2
        let opc: UInt32 = (log2 == 4 ? 2 : 0) | (load ? 1 : 0)
        let high: UInt32 = size << 30 | 0b111101 << 24 | opc << 22
        return high | imm12 << 10 | rn << 5 | rt
    }
    /// LD1 / ST1 multiple structures, no offset: registers 1-4.
    static func ld1(load: Bool, q: UInt32, registers: UInt32, size: UInt32, rt: UInt32, rn: UInt32) -> UInt32 {
        let opcode: UInt32 = [0, 0b0111, 0b1010, 0b0110, 0b0010][Int(registers)]
        return q << 30 | 0b0011000 << 23 | (load ? 1 << 22 : 0) | opcode << 12 | size << 10 | rn << 5 | rt
    }

    // MARK: SIMD and FP
    static func fp2(ftype: UInt32, opcode: UInt32, rd: UInt32, rn: UInt32, rm: UInt32) -> UInt32 {
        0b00011110 << 24 | ftype << 22 | 1 << 21 | rm << 16 | opcode << 12 | 0b10 << 10 | rn << 5 | rd
    }
    static func fp1(ftype: UInt32, opcode: UInt32, rd: UInt32, rn: UInt32) -> UInt32 {
        0b00011110 << 24 | ftype << 22 | 1 << 21 | opcode << 15 | 0b10000 << 10 | rn << 5 | rd
    }
    static func fcmp(ftype: UInt32, rn: UInt32, rm: UInt32, zero: Bool) -> UInt32 {
        0b00011110 << 24 | ftype << 22 | 1 << 21 | rm << 16 | 0b1000 << 10 | rn << 5 | (zero ? 0b01000 : 0)
    }
    static func fcsel(ftype: UInt32, rd: UInt32, rn: UInt32, rm: UInt32, cond: UInt32) -> UInt32 {
        0b00011110 << 24 | ftype << 22 | 1 << 21 | rm << 16 | cond << 12 | 0b11 << 10 | rn << 5 | rd
    }
    static func fmadd(ftype: UInt32, o1: UInt32, o0: UInt32, rd: UInt32, rn: UInt32, rm: UInt32, ra: UInt32) -> UInt32 {
        0b00011111 << 24 | ftype << 22 | o1 << 21 | rm << 16 | o0 << 15 | ra << 10 | rn << 5 | rd
    }
    /// FP <-> integer conversions: rmode, opcode as in C7.2 (SCVTF 00/010, FCVTZS 11/000, FMOV 00/110-111).
    static func fpInt(sf: Bool, ftype: UInt32, rmode: UInt32, opcode: UInt32, rd: UInt32, rn: UInt32) -> UInt32 {
        (sf ? 1 << 31 : 0) | 0b00011110 << 24 | ftype << 22 | 1 << 21 | rmode << 19 | opcode << 16 | rn << 5 | rd
    }
    static func fmovImm(ftype: UInt32, imm8: UInt32, rd: UInt32) -> UInt32 {
        0b00011110 << 24 | ftype << 22 | 1 << 21 | imm8 << 13 | 0b100 << 10 | rd
    }
    static func simd3(q: UInt32, u: UInt32, size: UInt32, opcode: UInt32, rd: UInt32, rn: UInt32, rm: UInt32) -> UInt32 {
        q << 30 | u << 29 | 0b01110 << 24 | size << 22 | 1 << 21 | rm << 16 | opcode << 11 | 1 << 10 | rn << 5 | rd
    }
    static func threeDifferent(q: UInt32, u: UInt32, size: UInt32, opcode: UInt32, rd: UInt32, rn: UInt32, rm: UInt32) -> UInt32 {
        q << 30 | u << 29 | 0b01110 << 24 | size << 22 | 1 << 21 | rm << 16 | opcode << 12 | rn << 5 | rd
    }
    static func simd2(q: UInt32, u: UInt32, size: UInt32, opcode: UInt32, rd: UInt32, rn: UInt32) -> UInt32 {
        q << 30 | u << 29 | 0b01110 << 24 | size << 22 | 0b10000 << 17 | opcode << 12 | 0b10 << 10 | rn << 5 | rd
    }
    static func across(q: UInt32, u: UInt32, size: UInt32, opcode: UInt32, rd: UInt32, rn: UInt32) -> UInt32 {
        q << 30 | u << 29 | 0b01110 << 24 | size << 22 | 0b11000 << 17 | opcode << 12 | 0b10 << 10 | rn << 5 | rd
    }
    static func shiftImm(q: UInt32, u: UInt32, immhb: UInt32, opcode: UInt32, rd: UInt32, rn: UInt32) -> UInt32 {
        q << 30 | u << 29 | 0b011110 << 23 | immhb << 16 | opcode << 11 | 1 << 10 | rn << 5 | rd
    }
    static func permute(q: UInt32, size: UInt32, opcode: UInt32, rd: UInt32, rn: UInt32, rm: UInt32) -> UInt32 {
        q << 30 | 0b001110 << 24 | size << 22 | rm << 16 | opcode << 12 | 0b10 << 10 | rn << 5 | rd
    }
    static func ext(q: UInt32, rd: UInt32, rn: UInt32, rm: UInt32, index: UInt32) -> UInt32 {
        q << 30 | 0b101110 << 24 | rm << 16 | index << 11 | rn << 5 | rd
    }
    static func tbl(q: UInt32, registers: UInt32, rd: UInt32, rn: UInt32, rm: UInt32) -> UInt32 {
        q << 30 | 0b001110 << 24 | rm << 16 | (registers - 1) << 13 | rn << 5 | rd
    }
    static func modifiedImmediate(q: UInt32, op: UInt32, cmode: UInt32, imm8: UInt32, rd: UInt32) -> UInt32 {
        q << 30 | op << 29 | 0b0111100000 << 19 | (imm8 >> 5) << 16 | cmode << 12 | 1 << 10 | (imm8 & 31) << 5 | rd
    }
    /// DUP / INS / UMOV / SMOV: imm4 selects the form (C7.2 "Advanced SIMD copy").
    static func copy(q: UInt32, op: UInt32, imm5: UInt32, imm4: UInt32, rd: UInt32, rn: UInt32) -> UInt32 {
        q << 30 | op << 29 | 0b01110000 << 21 | imm5 << 16 | imm4 << 11 | 1 << 10 | rn << 5 | rd
    }
}
