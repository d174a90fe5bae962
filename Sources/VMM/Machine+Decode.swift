import Disassembly
import EL2
import KVM

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
                return resolveOrStop(vcpu: index, gpa: gpa, access: "fetch", size: 0, rip: regs.rip, instruction: nil)
            }
        }
        guard let instruction = decodeInstruction(vcpu, at: regs.rip) else {
            stop(.faulted(FaultReport(vcpu: index, gpa: nil, access: "unknown", rip: regs.rip,
                                      reason: "KVM reported an inaccessible page and the instruction could not be decoded",
                                      pageState: nil)))
            return false
        }
        let text = "\(instruction.text)  [\(instruction.bytes.map { byteHex($0) }.joined(separator: " "))]"
        var accesses: [(va: UInt64, size: Int, access: String)] = []
        for operand in instruction.memoryOperands {
            let value = { (name: String) -> UInt64? in
                name == "rip" ? regs.rip &+ UInt64(instruction.size) : Self.register(name, in: regs)
            }
            guard let va = operand.address(value) else { continue }
            let access = operand.writes ? "write" : "read"
            accesses.append((va, operand.size, access))
            if operand.size > 1 { accesses.append((va &+ UInt64(operand.size - 1), operand.size, access)) }
        }
        if instruction.usesStack {
            accesses.append((regs.rsp &- 8, 8, "write"))
            accesses.append((regs.rsp, 8, "read"))
        }
        var progressed = false
        for (va, size, access) in accesses {
            guard let gpa = translate(vcpu, va), gpa < configuration.memory, !isMapped(gpa) else { continue }
            if !resolveOrStop(vcpu: index, gpa: gpa, access: access, size: size, rip: regs.rip, instruction: text) { return false }
            progressed = true
        }
        if !progressed {
            stop(.faulted(FaultReport(vcpu: index, gpa: nil, access: "unknown", rip: regs.rip,
                                      reason: "KVM reported an inaccessible page, but every page this instruction touches is mapped",
                                      pageState: nil, instruction: text)))
        }
        return progressed
    }

    private func resolveOrStop(vcpu index: Int, gpa: UInt64, access: String, size: Int, rip: UInt64,
                               instruction: String?) -> Bool {
        switch resolveGuestFault(vcpu: index, gpa: gpa, access: access, size: size, rip: rip) {
        case .resolved: return true
        case var .refused(report):
            report.instruction = instruction
            stop(.faulted(report))
            return false
        }
    }

    /// Whether the guest's stage-2 maps `gpa`.
    func isMapped(_ gpa: UInt64) -> Bool {
        (try? hypervisor.guestPageView(vm: handle, gfn: IPA(gpa).gfn))?.phys != nil
    }

    func translate(_ vcpu: KVMVCPU, _ va: UInt64) -> UInt64? {
        (try? vcpu.translate(va)) ?? nil
    }

    /// Decodes the instruction at `rip`, reading up to 15 bytes of guest memory in EL2's view.
    func decodeInstruction(_ vcpu: KVMVCPU, at rip: UInt64) -> DecodedInstruction? {
        guard let disassembler else { return nil }
        var bytes: [UInt8] = []
        for offset in 0 ..< UInt64(15) {
            guard let gpa = translate(vcpu, rip &+ offset), gpa < configuration.memory else { break }
            var byte: UInt8 = 0
            withUnsafeMutableBytes(of: &byte) { hypervisor.memory.read(PhysAddr(ramBase + gpa), into: $0) }
            bytes.append(byte)
        }
        return disassembler.decode(bytes, address: rip)
    }

    /// A general register's value by Capstone name (64-bit names and their 32-bit halves).
    static func register(_ name: String, in r: X86Registers) -> UInt64? {
        switch name {
        case "rax": r.rax
        case "rbx": r.rbx
        case "rcx": r.rcx
        case "rdx": r.rdx
        case "rsi": r.rsi
        case "rdi": r.rdi
        case "rsp": r.rsp
        case "rbp": r.rbp
        case "r8": r.r8
        case "r9": r.r9
        case "r10": r.r10
        case "r11": r.r11
        case "r12": r.r12
        case "r13": r.r13
        case "r14": r.r14
        case "r15": r.r15
        case "rip": r.rip
        case "eax": r.rax & 0xffff_ffff
        case "ebx": r.rbx & 0xffff_ffff
        case "ecx": r.rcx & 0xffff_ffff
        case "edx": r.rdx & 0xffff_ffff
        case "esi": r.rsi & 0xffff_ffff
        case "edi": r.rdi & 0xffff_ffff
        case "esp": r.rsp & 0xffff_ffff
        case "ebp": r.rbp & 0xffff_ffff
        default: nil
        }
    }
}

private func byteHex(_ b: UInt8) -> String { b < 16 ? "0" + String(b, radix: 16) : String(b, radix: 16) }
