import Disassembly
import EL2
import KVM
import Tracing
import VMM

/// Finding what a fault was when KVM did not say. Arm hardware gives EL2 the faulting IPA
/// (HPFAR_EL2) and the access (ESR_EL2); an x86 KVM that returns EFAULT for an inaccessible
/// memslot page (Documentation/virt/kvm/api.rst, KVM_RUN: "-EFAULT ... the memory of the guest
/// is not accessible") gives neither. pvm recovers the same facts by decoding the instruction
/// at RIP with Capstone and translating its operands' addresses with `KVM_TRANSLATE`, and
/// reports the first page the instruction touches that the guest view does not map: the fault
/// is resolved, the instruction re-executes, and the next missing page (if any) faults next.
final class X86FaultDecoder: @unchecked Sendable {
    /// Capstone for x86-64, opened once per machine: decodes faulting instructions.
    private let disassembler = try? Disassembler(.x86_64)
    private let mirror: StageTwoMirror
    private let memory: PhysicalMemory
    private let ramBase: UInt64
    private let guestSize: UInt64

    init(mirror: StageTwoMirror, memory: PhysicalMemory, ramBase: UInt64, guestSize: UInt64) {
        self.mirror = mirror
        self.memory = memory
        self.ramBase = ramBase
        self.guestSize = guestSize
    }

    /// KVM_RUN's EFAULT: the stage-2 abort of the first page the instruction fetches or touches
    /// (the instruction's own bytes, then its memory operands, then the stack for
    /// push/pop/call/ret) that the guest view does not map.
    func unreportedFault(_ vcpu: KVMVCPU) -> GuestExit {
        let regs: X86Registers
        do { regs = try vcpu.registers() } catch {
            return .fatal(FatalExit(reason: "KVM: \(error)"))
        }
        // An instruction fetch from a page the guest does not have yet.
        for va in [regs.rip, regs.rip &+ 14] {
            if let gpa = translate(vcpu, va), gpa < guestSize, !mirror.isMapped(gpa) {
                return .stage2Abort(Stage2Abort(ipa: gpa, access: .fetch, resume: .reexecute,
                                                context: FaultContext(instruction: nil, gva: va)))
            }
        }
        guard let instruction = decodeInstruction(vcpu, at: regs.rip) else {
            let reason = "KVM reported an inaccessible page and the instruction could not be decoded"
            return .fatal(FatalExit(reason: reason, access: "unknown", programCounter: regs.rip))
        }
        let record = instructionRecord(instruction, registers: regs)
        let next = regs.rip &+ UInt64(instruction.size)
        var accesses: [(va: UInt64, size: Int, access: FaultAccess)] = []
        for operand in instruction.memoryOperands {
            guard let va = operand.address({ registerValue($0, regs, next: next) }) else { continue }
            let access: FaultAccess = operand.writes ? .write : .read
            accesses.append((va, operand.size, access))
            if operand.size > 1 { accesses.append((va &+ UInt64(operand.size - 1), operand.size, access)) }
        }
        if instruction.usesStack {
            accesses.append((regs.rsp &- 8, 8, .write))
            accesses.append((regs.rsp, 8, .read))
        }
        for (va, size, access) in accesses {
            guard let gpa = translate(vcpu, va), gpa < guestSize, !mirror.isMapped(gpa) else { continue }
            return .stage2Abort(Stage2Abort(ipa: gpa, access: access, size: size, resume: .reexecute,
                                            context: FaultContext(instruction: record, gva: va)))
        }
        let reason = "KVM reported an inaccessible page, but every page this instruction touches is mapped"
        return .fatal(FatalExit(reason: reason, access: "unknown", programCounter: regs.rip))
    }

    /// KVM_EXIT_INTERNAL_ERROR: on this kernel an instruction fetch from a page the guest view
    /// does not map gives an emulation failure. The page holding RIP becomes an instruction
    /// abort; any other emulation failure stops the vCPU.
    func internalError(_ vcpu: KVMVCPU, suberror: UInt32, bytes: [UInt8]) -> GuestExit {
        let rip = try? vcpu.registers().rip
        let gpa = rip.flatMap { translate(vcpu, $0) }
        if suberror == 1, let gpa, gpa < guestSize, !mirror.isMapped(gpa) {
            return .stage2Abort(Stage2Abort(ipa: gpa, access: .fetch, resume: .reexecute,
                                            context: FaultContext(instruction: nil, gva: rip)))
        }
        let hexBytes = bytes.map { String($0, radix: 16) }.joined(separator: " ")
        return .fatal(FatalExit(
            reason: "KVM could not emulate the instruction (internal error \(suberror)\(bytes.isEmpty ? "" : ", bytes \(hexBytes)"))",
            gpa: gpa, access: "fetch", programCounter: rip))
    }

    /// The instruction at the vCPU's RIP, decoded by Capstone, with the registers its operands
    /// use and the guest-virtual address of its first memory operand (or RIP).
    func context(_ vcpu: KVMVCPU) -> FaultContext {
        guard let regs = try? vcpu.registers() else { return FaultContext() }
        guard let decoded = decodeInstruction(vcpu, at: regs.rip) else { return FaultContext(instruction: nil, gva: regs.rip) }
        let next = regs.rip &+ UInt64(decoded.size)
        let gva = decoded.memoryOperands.first.flatMap { $0.address { registerValue($0, regs, next: next) } }
        return FaultContext(instruction: instructionRecord(decoded, registers: regs), gva: gva ?? regs.rip)
    }

    /// The store that made a `KVM_EXIT_MMIO` write exit. KVM reports MMIO writes after the
    /// instruction retired, so RIP already points at the next one: look back up to 15 bytes
    /// for instructions that end exactly at RIP and store to `gpa` (a memory operand, computed
    /// from the registers they left, that translates to `gpa`). Bytes before an instruction can
    /// decode as a shorter one with the same tail (`89 18` inside `48 89 18`), so the one whose
    /// store is `size` bytes wins, then the longest. Falls back to RIP's own instruction.
    func contextOfCompletedWrite(_ vcpu: KVMVCPU, gpa: UInt64, size: Int) -> FaultContext {
        guard let regs = try? vcpu.registers() else { return FaultContext() }
        var best: (context: FaultContext, sizeMatches: Bool)?
        for length in 1 ... 15 {
            let start = regs.rip &- UInt64(length)
            guard let decoded = decodeInstruction(vcpu, at: start), decoded.size == length else { continue }
            for operand in decoded.memoryOperands where operand.writes {
                guard let va = operand.address({ registerValue($0, regs, next: regs.rip) }),
                      translate(vcpu, va) == gpa else { continue }
                var shifted = regs
                shifted.rip = start
                let matches = operand.size == size
                if best == nil || matches || best?.sizeMatches == false {
                    best = (FaultContext(instruction: instructionRecord(decoded, registers: shifted), gva: va), matches)
                }
            }
        }
        return best?.context ?? context(vcpu)
    }

    /// A decoded instruction for a fault record, with the values of the registers it uses.
    private func instructionRecord(_ decoded: DecodedInstruction, registers regs: X86Registers) -> InstructionRecord {
        let values = decoded.operandRegisters.compactMap { name in
            registerValue(name, regs, next: regs.rip &+ UInt64(decoded.size)).map { RegisterValue(name: name, value: $0) }
        }
        return InstructionRecord(architecture: disassembler?.architectureName ?? "x86-64", address: decoded.address,
                                 bytes: decoded.bytes, text: decoded.text, registers: values)
    }

    /// A register's value for address arithmetic: `rip` reads as the next instruction's address.
    private func registerValue(_ name: String, _ regs: X86Registers, next: UInt64) -> UInt64? {
        name == "rip" ? next : Self.register(name, in: regs)
    }

    private func translate(_ vcpu: KVMVCPU, _ va: UInt64) -> UInt64? {
        (try? vcpu.translate(va)) ?? nil
    }

    /// Decodes the instruction at `rip`, reading up to 15 bytes of guest memory in EL2's view
    /// (one KVM_TRANSLATE per guest page the bytes span).
    private func decodeInstruction(_ vcpu: KVMVCPU, at rip: UInt64) -> DecodedInstruction? {
        guard let disassembler else { return nil }
        var bytes: [UInt8] = []
        while bytes.count < 15 {
            let va = rip &+ UInt64(bytes.count)
            let count = Int(min(pageSize - (va & (pageSize - 1)), UInt64(15 - bytes.count)))
            guard let gpa = translate(vcpu, va), gpa < guestSize, UInt64(count) <= guestSize - gpa else { break }
            var chunk = [UInt8](repeating: 0, count: count)
            chunk.withUnsafeMutableBytes { memory.read(PhysAddr(ramBase + gpa), into: $0) }
            bytes += chunk
        }
        return disassembler.decode(bytes, address: rip)
    }

    /// A general register's value by Capstone name: the 64-bit register or its 32-, 16- or
    /// low 8-bit part.
    static func register(_ name: String, in r: X86Registers) -> UInt64? {
        if name == "rip" { return r.rip }
        for (names, value) in [(["rax", "eax", "ax", "al"], r.rax), (["rbx", "ebx", "bx", "bl"], r.rbx),
                               (["rcx", "ecx", "cx", "cl"], r.rcx), (["rdx", "edx", "dx", "dl"], r.rdx),
                               (["rsi", "esi", "si", "sil"], r.rsi), (["rdi", "edi", "di", "dil"], r.rdi),
                               (["rsp", "esp", "sp", "spl"], r.rsp), (["rbp", "ebp", "bp", "bpl"], r.rbp),
                               (["r8", "r8d", "r8w", "r8b"], r.r8), (["r9", "r9d", "r9w", "r9b"], r.r9),
                               (["r10", "r10d", "r10w", "r10b"], r.r10), (["r11", "r11d", "r11w", "r11b"], r.r11),
                               (["r12", "r12d", "r12w", "r12b"], r.r12), (["r13", "r13d", "r13w", "r13b"], r.r13),
                               (["r14", "r14d", "r14w", "r14b"], r.r14), (["r15", "r15d", "r15w", "r15b"], r.r15)] {
            if let width = names.firstIndex(of: name) {
                return [value, value & 0xffff_ffff, value & 0xffff, value & 0xff][width]
            }
        }
        return nil
    }
}
