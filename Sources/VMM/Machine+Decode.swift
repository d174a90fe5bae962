import Disassembly
import EL2
import KVM
import Tracing

/// Finding the address of a fault KVM did not report. Arm hardware gives EL2 the faulting IPA
/// (HPFAR_EL2) and the access (ESR_EL2); on an x86 KVM that returns EFAULT for an
/// inaccessible memslot page (../shared/spec/kvm-uapi.md 7.2) pvm recovers the same facts by
/// decoding the instruction at RIP with Capstone and translating its operands' addresses.
extension Machine {
    /// Handles KVM_RUN's EFAULT: faults in the page the instruction fetches or touches (first the
    /// instruction's own page, then its memory operands, then the stack for push/pop/call/ret)
    /// and lets the vCPU re-execute it. Returns false when the vCPU must stop.
    func handleUnreportedFault(vcpu index: Int) -> Bool {
        let vcpu = vcpus[index]
        let regs: X86Registers
        do { regs = try vcpu.registers() } catch {
            fail(.kvm(error))
            return false
        }
        // An instruction fetch from a page the guest does not have yet.
        for va in [regs.rip, regs.rip &+ 14] {
            if let gpa = translate(vcpu, va), gpa < configuration.memory, !isMapped(gpa) {
                return resolveOrStop(vcpu: index, gpa: gpa, access: .fetch, size: 0, rip: regs.rip,
                                     context: FaultContext(instruction: nil, gva: va))
            }
        }
        guard let instruction = decodeInstruction(vcpu, at: regs.rip) else {
            let reason = "KVM reported an inaccessible page and the instruction could not be decoded"
            let record = FaultRecord(source: .vcpu(vm: handle, index: index), gva: regs.rip, gpa: nil, access: .unknown,
                                     size: 0, action: .stopped, reason: reason)
            trace?.record(.fault(record))
            stop(.faulted(FaultReport(vcpu: index, gpa: nil, access: "unknown", rip: regs.rip, reason: reason,
                                      pageState: nil, record: record)))
            return false
        }
        let record = instructionRecord(instruction, registers: regs)
        var accesses: [(va: UInt64, size: Int, access: FaultAccess)] = []
        for operand in instruction.memoryOperands {
            guard let va = operand.address({ registerValue($0, regs, next: regs.rip &+ UInt64(instruction.size)) }) else { continue }
            let access: FaultAccess = operand.writes ? .write : .read
            accesses.append((va, operand.size, access))
            if operand.size > 1 { accesses.append((va &+ UInt64(operand.size - 1), operand.size, access)) }
        }
        if instruction.usesStack {
            accesses.append((regs.rsp &- 8, 8, .write))
            accesses.append((regs.rsp, 8, .read))
        }
        var progressed = false
        for (va, size, access) in accesses {
            guard let gpa = translate(vcpu, va), gpa < configuration.memory, !isMapped(gpa) else { continue }
            if !resolveOrStop(vcpu: index, gpa: gpa, access: access, size: size, rip: regs.rip,
                              context: FaultContext(instruction: record, gva: va)) { return false }
            progressed = true
        }
        if !progressed {
            let reason = "KVM reported an inaccessible page, but every page this instruction touches is mapped"
            let fault = FaultRecord(source: .vcpu(vm: handle, index: index), gva: accesses.first?.va, gpa: nil,
                                    access: .unknown, size: 0, action: .stopped, reason: reason, instruction: record)
            trace?.record(.fault(fault))
            stop(.faulted(FaultReport(vcpu: index, gpa: nil, access: "unknown", rip: regs.rip, reason: reason,
                                      pageState: nil, record: fault)))
        }
        return progressed
    }

    private func resolveOrStop(vcpu index: Int, gpa: UInt64, access: FaultAccess, size: Int, rip: UInt64,
                               context: FaultContext) -> Bool {
        switch resolveGuestFault(vcpu: index, gpa: gpa, access: access, size: size, rip: rip, context: context) {
        case .resolved: return true
        case let .refused(report):
            stop(.faulted(report))
            return false
        }
    }

    /// The instruction at the vCPU's RIP, decoded by Capstone, with the registers its operands
    /// use and the guest-virtual address of its first memory operand (or RIP): what a fault
    /// record holds when KVM reported only the guest-physical address.
    func faultContext(vcpu index: Int) -> FaultContext {
        guard index >= 0, index < vcpus.count, let regs = try? vcpus[index].registers() else { return FaultContext() }
        guard let decoded = decodeInstruction(vcpus[index], at: regs.rip) else { return FaultContext(instruction: nil, gva: regs.rip) }
        let next = regs.rip &+ UInt64(decoded.size)
        let gva = decoded.memoryOperands.first.flatMap { $0.address { registerValue($0, regs, next: next) } }
        return FaultContext(instruction: instructionRecord(decoded, registers: regs), gva: gva ?? regs.rip)
    }

    /// A decoded instruction for a fault record, with the values of the registers it uses.
    func instructionRecord(_ decoded: DecodedInstruction, registers regs: X86Registers) -> InstructionRecord {
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

    /// Whether the guest's stage-2 maps `gpa`.
    func isMapped(_ gpa: UInt64) -> Bool {
        (try? hypervisor.guestPageView(vm: handle, gfn: IPA(gpa).gfn))?.phys != nil
    }

    func translate(_ vcpu: KVMVCPU, _ va: UInt64) -> UInt64? {
        (try? vcpu.translate(va)) ?? nil
    }

    /// Decodes the instruction at `rip`, reading up to 15 bytes of guest memory in EL2's view
    /// (one KVM_TRANSLATE per guest page the bytes span).
    func decodeInstruction(_ vcpu: KVMVCPU, at rip: UInt64) -> DecodedInstruction? {
        guard let disassembler else { return nil }
        var bytes: [UInt8] = []
        while bytes.count < 15 {
            let va = rip &+ UInt64(bytes.count)
            let count = Int(min(pageSize - (va & (pageSize - 1)), UInt64(15 - bytes.count)))
            guard let gpa = translate(vcpu, va), gpa < configuration.memory,
                  UInt64(count) <= configuration.memory - gpa else { break }
            var chunk = [UInt8](repeating: 0, count: count)
            chunk.withUnsafeMutableBytes { hypervisor.memory.read(PhysAddr(ramBase + gpa), into: $0) }
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

/// What a fault record knows about the access beyond its address: the decoded instruction and
/// the guest-virtual address it used.
struct FaultContext {
    var instruction: InstructionRecord?
    var gva: UInt64?
}
