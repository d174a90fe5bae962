import Disassembly
import Testing

/// Capstone decodes known instructions with the expected text, operands and registers.
@Suite struct DisassemblerTests {
    @Test func x86StoreThroughRegister() throws {
        let d = try Disassembler(.x86_64)
        // mov qword ptr [rdi + 8], rax
        let i = try #require(d.decode([0x48, 0x89, 0x47, 0x08], address: 0x401000))
        #expect(i.text == "mov qword ptr [rdi + 8], rax")
        #expect(i.size == 4)
        #expect(i.address == 0x401000)
        #expect(i.operandRegisters == ["rdi", "rax"])
        let m = try #require(i.memoryOperands.first)
        #expect(m.base == "rdi" && m.index == nil && m.displacement == 8 && m.size == 8)
        #expect(m.writes && !m.reads)
        #expect(m.address { $0 == "rdi" ? 0x1000 : nil } == 0x1008)
    }

    @Test func x86LoadWithIndexAndRIPRelative() throws {
        let d = try Disassembler(.x86_64)
        // mov eax, dword ptr [rbx + rcx*4 + 0x10]
        let i = try #require(d.decode([0x8b, 0x44, 0x8b, 0x10], address: 0))
        #expect(i.text == "mov eax, dword ptr [rbx + rcx*4 + 0x10]")
        let m = try #require(i.memoryOperands.first)
        #expect(m.base == "rbx" && m.index == "rcx" && m.scale == 4 && m.size == 4 && m.reads && !m.writes)
        #expect(i.operandRegisters == ["eax", "rbx", "rcx"])
        // lea rax, [rip + 0x100] at 0x2000: 7 bytes, so the operand is 0x2107.
        let lea = try #require(d.decode([0x48, 0x8d, 0x05, 0x00, 0x01, 0x00, 0x00], address: 0x2000))
        #expect(lea.text == "lea rax, [rip + 0x100]")
        #expect(lea.memoryOperands.first?.address { $0 == "rip" ? 0x2007 : nil } == 0x2107)
    }

    @Test func x86StackAndInvalidBytes() throws {
        let d = try Disassembler(.x86_64)
        let push = try #require(d.decode([0x55], address: 0))
        #expect(push.text == "push rbp")
        #expect(push.usesStack)
        #expect(push.operandRegisters.contains("rsp"))
        let ret = try #require(d.decode([0xc3], address: 0))
        #expect(ret.mnemonic == "ret" && ret.usesStack)
        #expect(d.decode([0x06], address: 0) == nil)  // PUSH ES does not exist in 64-bit mode
        #expect(d.decode([], address: 0) == nil)
    }

    @Test func aarch64LoadsAndStores() throws {
        let d = try Disassembler(.aarch64)
        #expect(d.architectureName == "aarch64")
        // str x1, [x0, #8]   (0xf9000401)
        let str = try #require(d.decode([0x01, 0x04, 0x00, 0xf9], address: 0x8000_0000))
        #expect(str.text == "str x1, [x0, #8]")
        #expect(str.operandRegisters == ["x1", "x0"])
        let m = try #require(str.memoryOperands.first)
        #expect(m.base == "x0" && m.displacement == 8 && m.size == 8 && m.writes && !m.reads)
        // ldrb w2, [x3]      (0x39400062)
        let ldrb = try #require(d.decode([0x62, 0x00, 0x40, 0x39], address: 0))
        #expect(ldrb.text == "ldrb w2, [x3]")
        #expect(ldrb.memoryOperands.first?.size == 1)
        #expect(ldrb.memoryOperands.first?.reads == true)
        // ldp x29, x30, [sp], #0x10   (0xa8c17bfd)
        let ldp = try #require(d.decode([0xfd, 0x7b, 0xc1, 0xa8], address: 0))
        #expect(ldp.text == "ldp x29, x30, [sp], #0x10")
        #expect(ldp.memoryOperands.first?.size == 16)
        #expect(ldp.memoryOperands.first?.base == "sp")
        // hvc #0    (0xd4000002)
        let hvc = try #require(d.decode([0x02, 0x00, 0x00, 0xd4], address: 0))
        #expect(hvc.text == "hvc #0")
        #expect(hvc.memoryOperands.isEmpty)
    }
}
