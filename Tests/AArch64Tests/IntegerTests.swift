import AArch64
import Testing

/// Integer instructions against values worked out from the Arm ARM pseudocode (AddWithCarry,
/// ShiftReg, ExtendReg, DecodeBitMasks, the bitfield moves, CRC32). Encodings from llvm-mc.
@Suite struct IntegerTests {
    /// ADDS / SUBS flags at every edge: N Z C V as AddWithCarry defines them.
    @Test(arguments: [
        // (word, x1, x2, result, NZCV)
        (UInt32(0xAB02_0020), UInt64(0x7FFF_FFFF_FFFF_FFFF), UInt64(1), UInt64(0x8000_0000_0000_0000), UInt32(0b1001)),  // adds: signed overflow
        (0xAB02_0020, 0xFFFF_FFFF_FFFF_FFFF, 1, 0, 0b0110),                                        // adds: carry, zero
        (0xAB02_0020, 0x8000_0000_0000_0000, 0x8000_0000_0000_0000, 0, 0b0111),                    // adds: C, V, Z
        (0xEB02_0020, 0, 1, 0xFFFF_FFFF_FFFF_FFFF, 0b1000),                                        // subs: borrow (C = 0)
        (0xEB02_0020, 0x8000_0000_0000_0000, 1, 0x7FFF_FFFF_FFFF_FFFF, 0b0011),                    // subs: V, no borrow
        (0xEB02_0020, 5, 5, 0, 0b0110),                                                            // subs: equal
        (0x2B02_0020, 0xFFFF_FFFF_7FFF_FFFF, 1, 0x8000_0000, 0b1001),                              // adds w: upper bits ignored
        (0x2B02_0020, 0xFFFF_FFFF, 1, 0, 0b0110),                                                  // adds w: 32-bit carry
        (0x6B02_0020, 3, 4, 0xFFFF_FFFF, 0b1000),                                                  // subs w: zero-extended result
        (0x6B02_0020, 0x8000_0000, 1, 0x7FFF_FFFF, 0b0011),                                        // subs w: V
    ] as [(UInt32, UInt64, UInt64, UInt64, UInt32)])
    func addSubtractFlags(word: UInt32, x1: UInt64, x2: UInt64, result: UInt64, nzcv: UInt32) {
        let t = TestCPU()
        t[1] = x1
        t[2] = x2
        #expect(t.run([word]) == .hypercall(imm: 0x77))
        #expect(t[0] == result)
        #expect(t.nzcv == nzcv)
    }

    /// One-instruction results: x0 from x1, x2, x3 (encodings in the comments).
    @Test(arguments: [
        (UInt32(0x8B22_C820), UInt64(100), UInt64(0xFFFF_FFFF_FFFF_FFFE), UInt64(0), UInt64(92)),   // add x0, x1, w2, sxtw #2
        (0xCB22_0020, 0x1000, 0x1FF, 0, 0xF01),                                                      // sub x0, x1, w2, uxtb
        (0x8B82_0C20, 1, 0x8000_0000_0000_0000, 0, 0xF000_0000_0000_0001),                           // add x0, x1, x2, asr #3
        (0x2AC2_2020, 0xF0, 0x1234_5678, 0, 0x7812_34F6),                                            // orr w0, w1, w2, ror #8
        (0xD348_4C20, 0xABC_DEF0_1234, 0, 0, 0x012),                                                 // ubfx x0, x1, #8, #12
        (0x9344_2C20, 0x0F80, 0, 0, 0xFFFF_FFFF_FFFF_FFF8),                                          // sbfx x0, x1, #4, #8
        (0xD344_0C20, 0x0F, 0, 0, 0xF000_0000_0000_0000),                                            // lsl x0, x1, #60
        (0x131F_7C20, 0x8000_0000, 0, 0, 0xFFFF_FFFF),                                               // asr w0, w1, #31
        (0xD37C_0C20, 0xFF, 0, 0, 0xF0),                                                             // ubfiz x0, x1, #4, #4
        (0x9340_7C20, 0x8000_0000, 0, 0, 0xFFFF_FFFF_8000_0000),                                     // sxtw x0, w1
        (0x93C2_4020, 0x1111, 0xAAAA_BBBB_CCCC_DDDD, 0, 0x1111_AAAA_BBBB_CCCC),                      // extr x0, x1, x2, #16
        (0x1381_1020, 0x1234_5678, 0, 0, 0x8123_4567),                                               // ror w0, w1, #4
        (0x1AC2_4020, 0xFFFF_FFFF, 0x31, 0, 0x7C23_1048),                                            // crc32b w0, w1, w2
        (0x9AC2_4C20, 0x1234_5678, 0x0123_4567_89AB_CDEF, 0, 0x9B62_EADF),                           // crc32x w0, w1, x2
        (0x1AC2_5820, 0xFFFF_FFFF, 0xDEAD_BEEF, 0, 0xBE01_A92C),                                     // crc32cw w0, w1, w2
        (0x1AC2_5420, 0, 0xBEEF, 0, 0x824B_18EC),                                                    // crc32ch w0, w1, w2
        (0xDAC0_1420, 0xFFFF_FFFF_FFFF_FFFF, 0, 0, 63),                                              // cls x0, x1
        (0xDAC0_1420, 0x0000_FFFF_0000_0000, 0, 0, 15),                                              // cls x0, x1
        (0x5AC0_1020, 0x0001_0000, 0, 0, 15),                                                        // clz w0, w1
        (0x5AC0_1020, 0, 0, 0, 32),                                                                  // clz w0, wzr-like
        (0xDAC0_0020, 1, 0, 0, 0x8000_0000_0000_0000),                                               // rbit x0, x1
        (0x5AC0_0420, 0xAABB_CCDD, 0, 0, 0xBBAA_DDCC),                                               // rev16 w0, w1
        (0xDAC0_0C20, 0x0102_0304_0506_0708, 0, 0, 0x0807_0605_0403_0201),                           // rev x0, x1
        (0x9AC2_0C20, 0x8000_0000_0000_0000, 0xFFFF_FFFF_FFFF_FFFF, 0, 0x8000_0000_0000_0000),       // sdiv: INT64_MIN / -1
        (0x9AC2_0C20, 7, 0, 0, 0),                                                                   // sdiv by zero
        (0x1AC2_0820, 0xFFFF_FFFF, 2, 0, 0x7FFF_FFFF),                                               // udiv w0, w1, w2
        (0x9B42_7C20, 0xFFFF_FFFF_FFFF_FFFF, 2, 0, 0xFFFF_FFFF_FFFF_FFFF),                           // smulh: -1 * 2
        (0x9BC2_7C20, 0xFFFF_FFFF_FFFF_FFFF, 2, 0, 1),                                               // umulh
        (0x9B22_0C20, 0xFFFF_FFFF, 3, 10, 7),                                                        // smaddl x0, w1, w2, x3: -1*3+10
        (0x1B02_0C20, 0x10000, 0x10000, 5, 5),                                                       // madd w0: wraps at 32 bits
        (0x9A02_0020, 1, 2, 0, 3),                                                                   // adc (C clear)
        (0xF2C2_4680, 0xFFFF, 0, 0, 0xFFFF),                                                         // movk x0, #0x1234, lsl #32 (x0 preset below)
        (0x1280_00A0, 0, 0, 0, 0xFFFF_FFFA),                                                         // movn w0, #5
        (0x9200_9C20, 0x1234_5678_9ABC_DEF0, 0, 0, 0x0034_0078_00BC_00F0),                           // and x0, x1, #0x00ff00ff00ff00ff
        (0x3200_F3E0, 0, 0, 0, 0x5555_5555),                                                         // orr w0, wzr, #0x55555555
        (0xD27F_F820, 0xF, 0, 0, 0xFFFF_FFFF_FFFF_FFF1),                                             // eor x0, x1, #~1
    ] as [(UInt32, UInt64, UInt64, UInt64, UInt64)])
    func singleInstruction(word: UInt32, x1: UInt64, x2: UInt64, x3: UInt64, result: UInt64) {
        let t = TestCPU()
        t[1] = x1
        t[2] = x2
        t[3] = x3
        if word == 0xF2C2_4680 { t[0] = 0xFFFF }
        #expect(t.run([word]) == .hypercall(imm: 0x77))
        let expected = word == 0xF2C2_4680 ? 0x1234_0000_FFFF : result
        #expect(t[0] == expected, "word 0x\(String(word, radix: 16))")
    }

    /// BFI / BFXIL keep the bits they do not insert.
    @Test func bitfieldInsertKeepsTheRest() {
        let t = TestCPU()
        t[0] = 0xFFFF_FFFF_FFFF_FFFF
        t[1] = 0xAB
        t.run([0xB370_1C20])  // bfi x0, x1, #16, #8
        #expect(t[0] == 0xFFFF_FFFF_FFAB_FFFF)
        let u = TestCPU()
        u[0] = 0xFFFF_FFFF_1234_5678
        u[1] = 0b1101_0110_000
        u.run([0x3303_1C20])  // bfxil w0, w1, #3, #5
        #expect(u[0] == 0x1234_5676)  // low 5 bits from w1[7:3] = 0b10110; upper word cleared (W form)
    }

    /// CSNEG, CCMP, CCMN take and skip their conditions.
    @Test func conditionalForms() {
        let t = TestCPU()
        t[1] = 5
        t[2] = 9
        t.state(nzcv: 0b1000)  // N: LT holds (N != V)
        t.run([0xDA82_B420])  // csneg x0, x1, x2, lt
        #expect(t[0] == 5)
        t.state(nzcv: 0b0000)
        t.run([0xDA82_B420])
        #expect(t[0] == UInt64(bitPattern: -9))
        // ccmp x1, x2, #5, ne: NE holds (Z = 0): flags of 5 - 9.
        t.state(nzcv: 0b0000)
        t.run([0xFA42_1025])
        #expect(t.nzcv == 0b1000)
        // NE fails (Z = 1): flags = #5.
        t.state(nzcv: 0b0100)
        t.run([0xFA42_1025])
        #expect(t.nzcv == 0b0101)
        // ccmn w1, #3, #2, eq with Z set: flags of 5 + 3.
        t.state(nzcv: 0b0100)
        t.run([0x3A43_0822])
        #expect(t.nzcv == 0b0000)
    }

    @Test func subtractWithCarryUsesTheBorrow() {
        let t = TestCPU()
        t[1] = 10
        t[2] = 3
        t.state(nzcv: 0b0000)  // C clear: 10 - 3 - 1
        t.run([0x7A02_0020])   // sbcs w0, w1, w2
        #expect(t[0] == 6)
        #expect(t.nzcv == 0b0010)
    }
}

extension TestCPU {
    func state(nzcv: UInt32) { cpu.state.pointee.nzcv = nzcv << 28 }
}
