import CCapstone
import Synchronization

/// One decoded instruction.
public struct DecodedInstruction: Sendable, Equatable {
    /// A memory operand: `segment:[base + index * scale + displacement]`, with its size and
    /// whether the instruction reads or writes it.
    public struct MemoryOperand: Sendable, Equatable {
        public let base: String?
        public let index: String?
        public let scale: Int
        public let displacement: Int64
        public let size: Int
        public let reads: Bool
        public let writes: Bool
    }

    public let address: UInt64
    public let bytes: [UInt8]
    public let mnemonic: String
    public let operands: String
    /// Registers the instruction reads explicitly or implicitly, by Capstone name.
    public let registersRead: [String]
    /// Every register the operands name (read or written, and the base and index of memory
    /// operands), then the implicit ones Capstone lists, each once: what a fault record shows
    /// the values of.
    public let operandRegisters: [String]
    public let memoryOperands: [MemoryOperand]
    /// Pushes to or pops from the stack (push, pop, call, ret, enter, leave, pushf, popf):
    /// an implicit memory access at rsp that Capstone does not list as an operand.
    public let usesStack: Bool

    public var text: String { operands.isEmpty ? mnemonic : "\(mnemonic) \(operands)" }
    public var size: Int { bytes.count }
}

/// A Capstone handle for one architecture, opened once and reused (Capstone 4.0.2, detail
/// mode on). Decoding is serialised: a handle must not be used by two threads at once.
public final class Disassembler: Sendable {
    public enum Architecture: Sendable {
        case x86_64
        case aarch64
    }

    public struct OpenError: Error, CustomStringConvertible {
        public let message: String
        public var description: String { "Capstone: \(message)" }
    }

    public let architecture: Architecture
    private let handle: Mutex<csh>

    /// Capstone's version as (major, minor).
    public static var version: (Int, Int) {
        var major: Int32 = 0, minor: Int32 = 0
        _ = cs_version(&major, &minor)
        return (Int(major), Int(minor))
    }

    public init(_ architecture: Architecture) throws(OpenError) {
        self.architecture = architecture
        var h = csh()
        let status: cs_err
        switch architecture {
        case .x86_64: status = cs_open(CS_ARCH_X86, CS_MODE_64, &h)
        case .aarch64: status = cs_open(CS_ARCH_ARM64, CS_MODE_ARM, &h)
        }
        guard status == CS_ERR_OK else { throw OpenError(message: String(cString: cs_strerror(status))) }
        _ = cs_option(h, CS_OPT_DETAIL, Int(CS_OPT_ON.rawValue))
        handle = Mutex(h)
    }

    deinit {
        handle.withLock { h in _ = cs_close(&h) }
    }

    /// The architecture's name in traces: "x86-64" or "aarch64".
    public var architectureName: String { architecture == .x86_64 ? "x86-64" : "aarch64" }

    /// Decodes the first instruction of `bytes`, located at `address`; nil if they do not start
    /// with a valid instruction.
    public func decode(_ bytes: [UInt8], address: UInt64) -> DecodedInstruction? {
        handle.withLock { h -> DecodedInstruction? in
            var insn: UnsafeMutablePointer<cs_insn>?
            let count = bytes.withUnsafeBufferPointer { cs_disasm(h, $0.baseAddress, $0.count, address, 1, &insn) }
            guard count == 1, let insn else { return nil }
            defer { cs_free(insn, count) }
            return describe(h, insn.pointee)
        }
    }

    private func describe(_ h: csh, _ i: cs_insn) -> DecodedInstruction {
        let mnemonic = withUnsafeBytes(of: i.mnemonic) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) }
        let operands = withUnsafeBytes(of: i.op_str) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) }
        let bytes = withUnsafeBytes(of: i.bytes) { Array($0.prefix(Int(i.size))) }
        var memory: [DecodedInstruction.MemoryOperand] = []
        var read: [String] = []
        var used: [String] = []
        var usesStack = false
        func use(_ n: String?) { if let n, !used.contains(n) { used.append(n) } }
        func name(_ reg: UInt32) -> String? {
            guard reg != 0, let p = cs_reg_name(h, reg) else { return nil }
            return String(cString: p)
        }
        if let detail = i.detail?.pointee {
            withUnsafeBytes(of: detail.regs_read) { raw in
                for r in raw.bindMemory(to: UInt16.self).prefix(Int(detail.regs_read_count)) {
                    if let n = name(UInt32(r)) { read.append(n) }
                }
            }
            withUnsafeBytes(of: detail.groups) { raw in
                for g in raw.prefix(Int(detail.groups_count)) where g == UInt8(CS_GRP_CALL.rawValue) || g == UInt8(CS_GRP_RET.rawValue) {
                    usesStack = true
                }
            }
            if architecture == .x86_64 {
                let x86 = detail.x86
                withUnsafeBytes(of: x86.operands) { raw in
                    for op in raw.bindMemory(to: cs_x86_op.self).prefix(Int(x86.op_count)) {
                        switch op.type {
                        case X86_OP_REG:
                            use(name(op.reg.rawValue))
                            if let n = name(op.reg.rawValue), op.access & UInt8(CS_AC_READ.rawValue) != 0 { read.append(n) }
                        case X86_OP_MEM:
                            use(name(op.mem.base.rawValue))
                            use(name(op.mem.index.rawValue))
                            memory.append(.init(base: name(op.mem.base.rawValue), index: name(op.mem.index.rawValue),
                                                scale: Int(op.mem.scale), displacement: op.mem.disp, size: Int(op.size),
                                                reads: op.access & UInt8(CS_AC_READ.rawValue) != 0,
                                                writes: op.access & UInt8(CS_AC_WRITE.rawValue) != 0))
                        default: break
                        }
                    }
                }
                if ["push", "pop", "pushfq", "popfq", "enter", "leave"].contains(mnemonic) { usesStack = true }
            } else {
                let arm = detail.arm64
                withUnsafeBytes(of: arm.operands) { raw in
                    for op in raw.bindMemory(to: cs_arm64_op.self).prefix(Int(arm.op_count)) {
                        switch op.type {
                        case ARM64_OP_REG:
                            use(name(op.reg.rawValue))
                            if let n = name(op.reg.rawValue), op.access & UInt8(CS_AC_READ.rawValue) != 0 { read.append(n) }
                        case ARM64_OP_MEM:
                            use(name(op.mem.base.rawValue))
                            use(name(op.mem.index.rawValue))
                            let (loads, stores) = Self.aarch64Direction(mnemonic)
                            memory.append(.init(base: name(op.mem.base.rawValue), index: name(op.mem.index.rawValue),
                                                scale: op.mem.index.rawValue == 0 ? 0 : 1, displacement: Int64(op.mem.disp),
                                                size: Self.aarch64AccessSize(mnemonic, firstRegister: used.first),
                                                reads: loads, writes: stores))
                        default: break
                        }
                    }
                }
            }
            withUnsafeBytes(of: detail.regs_read) { raw in
                for r in raw.bindMemory(to: UInt16.self).prefix(Int(detail.regs_read_count)) { use(name(UInt32(r))) }
            }
        }
        return DecodedInstruction(address: i.address, bytes: bytes, mnemonic: mnemonic, operands: operands,
                                  registersRead: read, operandRegisters: used, memoryOperands: memory, usesStack: usesStack)
    }

    /// Whether an AArch64 load/store mnemonic reads memory, writes it (A64 LDR*/LDP/LDUR/LDAR,
    /// STR*/STP/STUR/STLR; swaps and atomics do both).
    static func aarch64Direction(_ mnemonic: String) -> (loads: Bool, stores: Bool) {
        if mnemonic.hasPrefix("st") && !mnemonic.hasPrefix("sta") { return (false, true) }
        if mnemonic.hasPrefix("ld") && !mnemonic.hasPrefix("ldadd") && !mnemonic.hasPrefix("ldset")
            && !mnemonic.hasPrefix("ldclr") && !mnemonic.hasPrefix("ldeor") { return (true, false) }
        if mnemonic.hasPrefix("prfm") { return (false, false) }
        return (true, true)
    }

    /// Bytes an AArch64 load/store moves: from the mnemonic's size suffix (b, h, w for
    /// LDRSW), else from the transfer register (x = 8, w = 4, q = 16, d = 8, s = 4), doubled
    /// for a pair.
    static func aarch64AccessSize(_ mnemonic: String, firstRegister: String?) -> Int {
        let pair = ["ldp", "stp", "ldnp", "stnp", "ldxp", "stxp", "ldaxp", "stlxp"].contains { mnemonic.hasPrefix($0) }
        var size: Int
        if mnemonic.hasSuffix("b") || mnemonic.hasSuffix("sb") { size = 1 }
        else if mnemonic.hasSuffix("h") || mnemonic.hasSuffix("sh") { size = 2 }
        else if mnemonic.hasSuffix("sw") { size = 4 }
        else {
            switch firstRegister?.first {
            case "x", "d": size = 8
            case "w", "s": size = 4
            case "q": size = 16
            case "h": size = 2
            case "b": size = 1
            default: size = 8
            }
        }
        if pair { size *= 2 }
        return size
    }
}

extension DecodedInstruction.MemoryOperand {
    /// The effective address under `register` (values by Capstone name, e.g. "rax", "rip").
    /// `rip` must be the address of the next instruction for RIP-relative operands.
    public func address(_ register: (String) -> UInt64?) -> UInt64? {
        var a = UInt64(bitPattern: displacement)
        if let base {
            guard let v = register(base) else { return nil }
            a &+= v
        }
        if let index {
            guard let v = register(index) else { return nil }
            a &+= v &* UInt64(scale)
        }
        return a
    }
}
