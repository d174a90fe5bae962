import CAArch64

/// The executor: fetch through the instruction TLB, decode through the decode cache, and one
/// `switch` over the decoded kind. The hot state lives in locals (PC, the fetch page, the
/// current ASID and EL) and in memory reached through pointers, so the loop has no reference
/// counting and no exclusivity checks; faults come back as values, and every cold path
/// (exceptions, system registers, SIMD, the slower loads and stores) is out of line.
extension AArch64CPU {
    /// What an out-of-line instruction asks the loop to do next.
    enum Step {
        /// Go on at the next instruction.
        case next
        /// Go on at `state.pc` (a branch or exception the helper took).
        case jump
        /// Deliver the data fault the access recorded.
        case fault
        /// Take an Undefined Instruction exception.
        case undefined
        /// Take an FP/SIMD access trap.
        case fpTrapped
    }

    /// Runs until an exit, at most `budget` instructions.
    public func run(budget: Int) -> CPUExit {
        running.store(true, ordering: .sequentiallyConsistent)
        defer { running.store(false, ordering: .sequentiallyConsistent) }
        let r = registers
        let s = state
        var pc = s.pointee.pc
        var executed = 0
        defer { s.pointee.instructions &+= UInt64(executed) }
        // Cross-thread requests first: a flush asked for while the CPU was out must happen
        // before it uses a translation.
        if attention.load(ordering: .sequentiallyConsistent) != 0 {
            let (next, exit) = attentionPoint(pc)
            if let exit { return exit }
            pc = next
        }
        var page: UInt64 = 1
        var code = UnsafeRawPointer(memory.host)
        var asid = currentASID
        var el0 = s.pointee.el == 0
        let cache = decodeCache
        let shift = UInt32(32 - Self.decodeCacheBits)

        while executed < budget {
            if pc & ~0xFFF != page {
                if attention.load(ordering: .relaxed) != 0 {
                    let (next, exit) = attentionPoint(pc)
                    if let exit { s.pointee.pc = pc; return exit }
                    pc = next
                    el0 = s.pointee.el == 0
                    asid = currentASID
                }
                guard let base = fetchPage(pc, el0: el0, asid: asid) else {
                    if let exit = fetchFailed(pc) { s.pointee.pc = pc; return exit }
                    pc = s.pointee.pc
                    el0 = false
                    asid = currentASID
                    continue
                }
                code = UnsafeRawPointer(base)
                page = pc & ~0xFFF
            }
            let word = code.load(fromByteOffset: Int(pc & 0xFFF), as: UInt32.self)
            let slot = cache + Int((word &* 0x9E37_79B1) >> shift)
            if slot.pointee.word != word { slot.pointee = Decoder.decode(word) }
            // The op is read field by field where each case needs it (copying all of it up
            // front costs a dozen loads and spills per instruction).
            let op = slot
            executed &+= 1

            switch op.pointee.kind {
            // MARK: Data processing, immediate
            case .adr: r[Int(op.pointee.rd)] = pc &+ op.pointee.imm
            case .adrp: r[Int(op.pointee.rd)] = (pc & ~0xFFF) &+ op.pointee.imm
            case .addImm: r[Int(op.pointee.rd)] = ALU.width(r[Int(op.pointee.rn)] &+ op.pointee.imm, sf: op.pointee.size != 0)
            case .subImm: r[Int(op.pointee.rd)] = ALU.width(r[Int(op.pointee.rn)] &- op.pointee.imm, sf: op.pointee.size != 0)
            case .addsImm:
                let (v, f) = ALU.addWithCarry(r[Int(op.pointee.rn)], op.pointee.imm, false, sf: op.pointee.size != 0)
                r[Int(op.pointee.rd)] = v
                s.pointee.nzcv = f
            case .subsImm:
                let (v, f) = ALU.addWithCarry(r[Int(op.pointee.rn)], ~op.pointee.imm, true, sf: op.pointee.size != 0)
                r[Int(op.pointee.rd)] = v
                s.pointee.nzcv = f
            case .andImm: r[Int(op.pointee.rd)] = r[Int(op.pointee.rn)] & op.pointee.imm
            case .orrImm: r[Int(op.pointee.rd)] = ALU.width(r[Int(op.pointee.rn)] | op.pointee.imm, sf: op.pointee.size != 0)
            case .eorImm: r[Int(op.pointee.rd)] = ALU.width(r[Int(op.pointee.rn)] ^ op.pointee.imm, sf: op.pointee.size != 0)
            case .andsImm:
                let v = r[Int(op.pointee.rn)] & op.pointee.imm
                r[Int(op.pointee.rd)] = v
                s.pointee.nzcv = ALU.logicFlags(v, sf: op.pointee.size != 0)
            case .movImm: r[Int(op.pointee.rd)] = op.pointee.imm
            case .movk:
                let mask: UInt64 = 0xFFFF << UInt64(op.pointee.a)
                r[Int(op.pointee.rd)] = ALU.width((r[Int(op.pointee.rd)] & ~mask) | (op.pointee.imm << UInt64(op.pointee.a)), sf: op.pointee.size != 0)
            case .ubfx: r[Int(op.pointee.rd)] = (ALU.width(r[Int(op.pointee.rn)], sf: op.pointee.size != 0) >> UInt64(op.pointee.a)) & ALU.ones(op.pointee.b)
            case .ubfiz: r[Int(op.pointee.rd)] = ALU.width((r[Int(op.pointee.rn)] & ALU.ones(op.pointee.b)) << UInt64(op.pointee.a), sf: op.pointee.size != 0)
            case .sbfx:
                r[Int(op.pointee.rd)] = ALU.width(ALU.signExtend((ALU.width(r[Int(op.pointee.rn)], sf: op.pointee.size != 0) >> UInt64(op.pointee.a)) & ALU.ones(op.pointee.b), bits: op.pointee.b), sf: op.pointee.size != 0)
            case .sbfiz: r[Int(op.pointee.rd)] = ALU.width(ALU.signExtend(r[Int(op.pointee.rn)] & ALU.ones(op.pointee.b), bits: op.pointee.b) << UInt64(op.pointee.a), sf: op.pointee.size != 0)
            case .bfxil:
                let mask = ALU.ones(op.pointee.b)
                r[Int(op.pointee.rd)] = ALU.width((r[Int(op.pointee.rd)] & ~mask) | ((ALU.width(r[Int(op.pointee.rn)], sf: op.pointee.size != 0) >> UInt64(op.pointee.a)) & mask), sf: op.pointee.size != 0)
            case .bfi:
                let mask = ALU.ones(op.pointee.b) << UInt64(op.pointee.a)
                r[Int(op.pointee.rd)] = ALU.width((r[Int(op.pointee.rd)] & ~mask) | ((r[Int(op.pointee.rn)] << UInt64(op.pointee.a)) & mask), sf: op.pointee.size != 0)
            case .extr:
                let lsb = UInt64(op.pointee.a)
                if op.pointee.size != 0 {
                    r[Int(op.pointee.rd)] = lsb == 0 ? r[Int(op.pointee.rm)] : (r[Int(op.pointee.rm)] >> lsb) | (r[Int(op.pointee.rn)] << (64 - lsb))
                } else {
                    let lo = r[Int(op.pointee.rm)] & 0xFFFF_FFFF, hi = r[Int(op.pointee.rn)] & 0xFFFF_FFFF
                    r[Int(op.pointee.rd)] = lsb == 0 ? lo : ((lo >> lsb) | (hi << (32 - lsb))) & 0xFFFF_FFFF
                }

            // MARK: Data processing, register
            case .movReg: r[Int(op.pointee.rd)] = ALU.width(r[Int(op.pointee.rm)], sf: op.pointee.size != 0)
            case .andReg: r[Int(op.pointee.rd)] = ALU.width(r[Int(op.pointee.rn)] & ALU.shift(r[Int(op.pointee.rm)], type: op.pointee.a, amount: op.pointee.b, sf: op.pointee.size != 0), sf: op.pointee.size != 0)
            case .bicReg: r[Int(op.pointee.rd)] = ALU.width(r[Int(op.pointee.rn)] & ~ALU.shift(r[Int(op.pointee.rm)], type: op.pointee.a, amount: op.pointee.b, sf: op.pointee.size != 0), sf: op.pointee.size != 0)
            case .orrReg: r[Int(op.pointee.rd)] = ALU.width(r[Int(op.pointee.rn)] | ALU.shift(r[Int(op.pointee.rm)], type: op.pointee.a, amount: op.pointee.b, sf: op.pointee.size != 0), sf: op.pointee.size != 0)
            case .ornReg: r[Int(op.pointee.rd)] = ALU.width(r[Int(op.pointee.rn)] | ~ALU.shift(r[Int(op.pointee.rm)], type: op.pointee.a, amount: op.pointee.b, sf: op.pointee.size != 0), sf: op.pointee.size != 0)
            case .eorReg: r[Int(op.pointee.rd)] = ALU.width(r[Int(op.pointee.rn)] ^ ALU.shift(r[Int(op.pointee.rm)], type: op.pointee.a, amount: op.pointee.b, sf: op.pointee.size != 0), sf: op.pointee.size != 0)
            case .eonReg: r[Int(op.pointee.rd)] = ALU.width(r[Int(op.pointee.rn)] ^ ~ALU.shift(r[Int(op.pointee.rm)], type: op.pointee.a, amount: op.pointee.b, sf: op.pointee.size != 0), sf: op.pointee.size != 0)
            case .andsReg, .bicsReg:
                var y = ALU.shift(r[Int(op.pointee.rm)], type: op.pointee.a, amount: op.pointee.b, sf: op.pointee.size != 0)
                if op.pointee.kind == .bicsReg { y = ~y }
                let v = ALU.width(r[Int(op.pointee.rn)] & y, sf: op.pointee.size != 0)
                r[Int(op.pointee.rd)] = v
                s.pointee.nzcv = ALU.logicFlags(v, sf: op.pointee.size != 0)
            case .addShifted: r[Int(op.pointee.rd)] = ALU.width(r[Int(op.pointee.rn)] &+ ALU.shift(r[Int(op.pointee.rm)], type: op.pointee.a, amount: op.pointee.b, sf: op.pointee.size != 0), sf: op.pointee.size != 0)
            case .subShifted: r[Int(op.pointee.rd)] = ALU.width(r[Int(op.pointee.rn)] &- ALU.shift(r[Int(op.pointee.rm)], type: op.pointee.a, amount: op.pointee.b, sf: op.pointee.size != 0), sf: op.pointee.size != 0)
            case .addsShifted, .subsShifted:
                var y = ALU.shift(r[Int(op.pointee.rm)], type: op.pointee.a, amount: op.pointee.b, sf: op.pointee.size != 0)
                let sub = op.pointee.kind == .subsShifted
                if sub { y = ~y }
                let (v, f) = ALU.addWithCarry(r[Int(op.pointee.rn)], y, sub, sf: op.pointee.size != 0)
                r[Int(op.pointee.rd)] = v
                s.pointee.nzcv = f
            case .addExtended: r[Int(op.pointee.rd)] = ALU.width(r[Int(op.pointee.rn)] &+ ALU.extend(r[Int(op.pointee.rm)], option: op.pointee.a, amount: op.pointee.b), sf: op.pointee.size != 0)
            case .subExtended: r[Int(op.pointee.rd)] = ALU.width(r[Int(op.pointee.rn)] &- ALU.extend(r[Int(op.pointee.rm)], option: op.pointee.a, amount: op.pointee.b), sf: op.pointee.size != 0)
            case .addsExtended, .subsExtended:
                var y = ALU.extend(r[Int(op.pointee.rm)], option: op.pointee.a, amount: op.pointee.b)
                let sub = op.pointee.kind == .subsExtended
                if sub { y = ~y }
                let (v, f) = ALU.addWithCarry(r[Int(op.pointee.rn)], y, sub, sf: op.pointee.size != 0)
                r[Int(op.pointee.rd)] = v
                s.pointee.nzcv = f
            case .adc, .adcs, .sbc, .sbcs:
                let sub = op.pointee.kind == .sbc || op.pointee.kind == .sbcs
                let (v, f) = ALU.addWithCarry(r[Int(op.pointee.rn)], sub ? ~r[Int(op.pointee.rm)] : r[Int(op.pointee.rm)], s.pointee.nzcv & (1 << 29) != 0, sf: op.pointee.size != 0)
                r[Int(op.pointee.rd)] = v
                if op.pointee.kind == .adcs || op.pointee.kind == .sbcs { s.pointee.nzcv = f }
            case .ccmnReg, .ccmpReg, .ccmnImm, .ccmpImm:
                if Condition.holds(op.pointee.a, s.pointee.nzcv) {
                    var y = op.pointee.kind == .ccmnImm || op.pointee.kind == .ccmpImm ? op.pointee.imm : r[Int(op.pointee.rm)]
                    let sub = op.pointee.kind == .ccmpReg || op.pointee.kind == .ccmpImm
                    if sub { y = ~y }
                    s.pointee.nzcv = ALU.addWithCarry(r[Int(op.pointee.rn)], y, sub, sf: op.pointee.size != 0).1
                } else {
                    s.pointee.nzcv = UInt32(op.pointee.b) << 28
                }
            case .csel: r[Int(op.pointee.rd)] = ALU.width(Condition.holds(op.pointee.a, s.pointee.nzcv) ? r[Int(op.pointee.rn)] : r[Int(op.pointee.rm)], sf: op.pointee.size != 0)
            case .csinc: r[Int(op.pointee.rd)] = ALU.width(Condition.holds(op.pointee.a, s.pointee.nzcv) ? r[Int(op.pointee.rn)] : r[Int(op.pointee.rm)] &+ 1, sf: op.pointee.size != 0)
            case .csinv: r[Int(op.pointee.rd)] = ALU.width(Condition.holds(op.pointee.a, s.pointee.nzcv) ? r[Int(op.pointee.rn)] : ~r[Int(op.pointee.rm)], sf: op.pointee.size != 0)
            case .csneg: r[Int(op.pointee.rd)] = ALU.width(Condition.holds(op.pointee.a, s.pointee.nzcv) ? r[Int(op.pointee.rn)] : 0 &- r[Int(op.pointee.rm)], sf: op.pointee.size != 0)
            case .rbit:
                let v = Self.reverseBits(r[Int(op.pointee.rn)])
                r[Int(op.pointee.rd)] = (op.pointee.size != 0) ? v : v >> 32
            case .rev16:
                let x = r[Int(op.pointee.rn)]
                r[Int(op.pointee.rd)] = ALU.width(((x & 0x00FF_00FF_00FF_00FF) << 8) | ((x >> 8) & 0x00FF_00FF_00FF_00FF), sf: op.pointee.size != 0)
            case .rev32:
                let x = r[Int(op.pointee.rn)].byteSwapped
                r[Int(op.pointee.rd)] = (x >> 32) | (x << 32)
            case .rev: r[Int(op.pointee.rd)] = (op.pointee.size != 0) ? r[Int(op.pointee.rn)].byteSwapped : UInt64(UInt32(truncatingIfNeeded: r[Int(op.pointee.rn)]).byteSwapped)
            case .clz:
                r[Int(op.pointee.rd)] = (op.pointee.size != 0) ? UInt64(r[Int(op.pointee.rn)].leadingZeroBitCount) : UInt64(UInt32(truncatingIfNeeded: r[Int(op.pointee.rn)]).leadingZeroBitCount)
            case .cls: r[Int(op.pointee.rd)] = ALU.countLeadingSign(r[Int(op.pointee.rn)], sf: op.pointee.size != 0)
            case .udiv:
                let x = ALU.width(r[Int(op.pointee.rn)], sf: op.pointee.size != 0), y = ALU.width(r[Int(op.pointee.rm)], sf: op.pointee.size != 0)
                r[Int(op.pointee.rd)] = y == 0 ? 0 : x / y
            case .sdiv:
                if op.pointee.size != 0 {
                    let x = Int64(bitPattern: r[Int(op.pointee.rn)]), y = Int64(bitPattern: r[Int(op.pointee.rm)])
                    r[Int(op.pointee.rd)] = y == 0 ? 0 : UInt64(bitPattern: x.dividedReportingOverflow(by: y).partialValue)
                } else {
                    let x = Int32(truncatingIfNeeded: r[Int(op.pointee.rn)]), y = Int32(truncatingIfNeeded: r[Int(op.pointee.rm)])
                    r[Int(op.pointee.rd)] = y == 0 ? 0 : UInt64(UInt32(bitPattern: x.dividedReportingOverflow(by: y).partialValue))
                }
            case .lslv: r[Int(op.pointee.rd)] = ALU.shift(r[Int(op.pointee.rn)], type: 0, amount: UInt8(r[Int(op.pointee.rm)] & ((op.pointee.size != 0) ? 63 : 31)), sf: op.pointee.size != 0)
            case .lsrv: r[Int(op.pointee.rd)] = ALU.shift(r[Int(op.pointee.rn)], type: 1, amount: UInt8(r[Int(op.pointee.rm)] & ((op.pointee.size != 0) ? 63 : 31)), sf: op.pointee.size != 0)
            case .asrv: r[Int(op.pointee.rd)] = ALU.shift(r[Int(op.pointee.rn)], type: 2, amount: UInt8(r[Int(op.pointee.rm)] & ((op.pointee.size != 0) ? 63 : 31)), sf: op.pointee.size != 0)
            case .rorv: r[Int(op.pointee.rd)] = ALU.shift(r[Int(op.pointee.rn)], type: 3, amount: UInt8(r[Int(op.pointee.rm)] & ((op.pointee.size != 0) ? 63 : 31)), sf: op.pointee.size != 0)
            case .crc32:
                r[Int(op.pointee.rd)] = UInt64(ALU.crc32(UInt32(truncatingIfNeeded: r[Int(op.pointee.rn)]), r[Int(op.pointee.rm)], bytes: 1 << Int(op.pointee.size), castagnoli: op.pointee.a == 1))
            case .madd: r[Int(op.pointee.rd)] = ALU.width(r[Int(op.pointee.ra)] &+ r[Int(op.pointee.rn)] &* r[Int(op.pointee.rm)], sf: op.pointee.size != 0)
            case .msub: r[Int(op.pointee.rd)] = ALU.width(r[Int(op.pointee.ra)] &- r[Int(op.pointee.rn)] &* r[Int(op.pointee.rm)], sf: op.pointee.size != 0)
            case .smaddl, .smsubl:
                let p = Int64(Int32(truncatingIfNeeded: r[Int(op.pointee.rn)])) &* Int64(Int32(truncatingIfNeeded: r[Int(op.pointee.rm)]))
                r[Int(op.pointee.rd)] = op.pointee.kind == .smaddl ? r[Int(op.pointee.ra)] &+ UInt64(bitPattern: p) : r[Int(op.pointee.ra)] &- UInt64(bitPattern: p)
            case .umaddl, .umsubl:
                let p = (r[Int(op.pointee.rn)] & 0xFFFF_FFFF) &* (r[Int(op.pointee.rm)] & 0xFFFF_FFFF)
                r[Int(op.pointee.rd)] = op.pointee.kind == .umaddl ? r[Int(op.pointee.ra)] &+ p : r[Int(op.pointee.ra)] &- p
            case .smulh: r[Int(op.pointee.rd)] = UInt64(bitPattern: Int64(bitPattern: r[Int(op.pointee.rn)]).multipliedFullWidth(by: Int64(bitPattern: r[Int(op.pointee.rm)])).high)
            case .umulh: r[Int(op.pointee.rd)] = r[Int(op.pointee.rn)].multipliedFullWidth(by: r[Int(op.pointee.rm)]).high

            // MARK: Branches
            case .b, .bl, .bcond, .cbz, .cbnz, .tbz, .tbnz, .br, .blr, .ret:
                var target: UInt64
                switch op.pointee.kind {
                case .b: target = pc &+ op.pointee.imm
                case .bl:
                    r[30] = pc &+ 4
                    target = pc &+ op.pointee.imm
                case .bcond: target = Condition.holds(op.pointee.a, s.pointee.nzcv) ? pc &+ op.pointee.imm : pc &+ 4
                case .cbz: target = ALU.width(r[Int(op.pointee.rn)], sf: op.pointee.size != 0) == 0 ? pc &+ op.pointee.imm : pc &+ 4
                case .cbnz: target = ALU.width(r[Int(op.pointee.rn)], sf: op.pointee.size != 0) != 0 ? pc &+ op.pointee.imm : pc &+ 4
                case .tbz: target = (r[Int(op.pointee.rn)] >> UInt64(op.pointee.a)) & 1 == 0 ? pc &+ op.pointee.imm : pc &+ 4
                case .tbnz: target = (r[Int(op.pointee.rn)] >> UInt64(op.pointee.a)) & 1 != 0 ? pc &+ op.pointee.imm : pc &+ 4
                case .blr:
                    target = r[Int(op.pointee.rn)]
                    r[30] = pc &+ 4
                default: target = r[Int(op.pointee.rn)]  // BR, RET
                }
                if target != pc &+ 4, attention.load(ordering: .relaxed) != 0 {
                    let (next, exit) = attentionPoint(target)
                    if let exit { s.pointee.pc = target; return exit }
                    target = next
                    page = 1
                    el0 = s.pointee.el == 0
                    asid = currentASID
                }
                pc = target
                continue
            case .eret:
                if el0 {
                    if let exit = undefinedInstruction(pc: pc) { s.pointee.pc = pc; return exit }
                    pc = s.pointee.pc
                    el0 = false
                    asid = currentASID
                    continue
                }
                exceptionReturn()
                pc = s.pointee.pc
                page = 1
                if s.pointee.il {
                    s.pointee.il = false
                    if let exit = takeException(Syndrome(ec: Syndrome.Class.illegalState, iss: 0), far: nil, returnAddress: pc) {
                        s.pointee.pc = pc
                        return exit
                    }
                    pc = s.pointee.pc
                }
                el0 = s.pointee.el == 0
                asid = currentASID
                if attention.load(ordering: .relaxed) != 0 {
                    let (next, exit) = attentionPoint(pc)
                    if let exit { s.pointee.pc = pc; return exit }
                    pc = next
                    el0 = s.pointee.el == 0
                }
                continue
            case .undefined:
                if let exit = undefinedInstruction(pc: pc) { s.pointee.pc = pc; return exit }
                pc = s.pointee.pc
                el0 = false
                asid = currentASID
                continue

            // MARK: Exceptions and system
            case .svc:
                if let exit = takeException(Syndrome(ec: Syndrome.Class.svc, iss: UInt32(op.pointee.imm)), far: nil, returnAddress: pc &+ 4) {
                    s.pointee.pc = pc
                    return exit
                }
                pc = s.pointee.pc
                el0 = false
                continue
            case .brk:
                if let exit = takeException(Syndrome(ec: Syndrome.Class.brk, iss: UInt32(op.pointee.imm)), far: nil, returnAddress: pc) {
                    s.pointee.pc = pc
                    return exit
                }
                pc = s.pointee.pc
                el0 = false
                continue
            case .hvc, .smc:
                if el0 {
                    if let exit = undefinedInstruction(pc: pc) { s.pointee.pc = pc; return exit }
                    pc = s.pointee.pc
                    el0 = false
                    continue
                }
                s.pointee.pc = pc &+ 4
                return op.pointee.kind == .hvc ? .hypercall(imm: UInt16(op.pointee.imm)) : .secureMonitorCall(imm: UInt16(op.pointee.imm))
            case .wfi, .wfe:
                s.pointee.pc = pc &+ 4
                return .waitForInterrupt(isWFE: op.pointee.kind == .wfe)
            case .nop, .sev, .prefetch: break
            case .clrex: s.pointee.exclusiveValid = false
            case .dmb, .dsb:
                switch op.pointee.a & 3 {
                case 1: pvm_fence_acquire()
                case 2: pvm_fence_release()
                default: pvm_fence()
                }
            case .isb: page = 1  // the next fetch sees SCTLR / TTBR / TCR changes
            case .ldrX, .ldrW, .strX, .strW:
                let va = r[Int(op.pointee.rn)] &+ op.pointee.imm
                let bytes = op.pointee.kind == .ldrX || op.pointee.kind == .strX ? 8 : 4
                let store = op.pointee.kind == .strX || op.pointee.kind == .strW
                if let p = fastPointer(va, bytes, store ? .write : .read, el0: el0, asid: asid) {
                    if store { Self.write(p, bytes, r[Int(op.pointee.rd)]) } else { r[Int(op.pointee.rd)] = Self.read(p, bytes) }
                } else if store {
                    guard self.store(va, bytes, r[Int(op.pointee.rd)]) else {
                        if let exit = deliverDataFault(op.pointee, pc: pc, value: r[Int(op.pointee.rd)]) { s.pointee.pc = pc; return exit }
                        pc = s.pointee.pc
                        el0 = false
                        page = 1
                        continue
                    }
                } else {
                    guard let v = load(va, bytes) else {
                        if let exit = deliverDataFault(op.pointee, pc: pc) { s.pointee.pc = pc; return exit }
                        pc = s.pointee.pc
                        el0 = false
                        page = 1
                        continue
                    }
                    r[Int(op.pointee.rd)] = v
                }
            case .load where fastLoadStore(op, el0: el0, asid: asid), .store where fastLoadStore(op, el0: el0, asid: asid):
                break
            default:
                // Everything else runs out of line.
                let step: Step
                switch op.pointee.kind {
                case .mrs, .msr, .msrImm, .sys: step = executeSystem(op.pointee, pc: pc)
                case .load, .store, .loadPair, .storePair, .loadLiteral, .loadExclusive, .storeExclusive,
                     .loadExclusivePair, .storeExclusivePair, .loadAcquire, .storeRelease, .cas, .casp, .atomic, .swp:
                    step = executeLoadStore(op.pointee, pc: pc)
                default:
                    step = fpEnabled ? executeSIMD(op.pointee, pc: pc) : .fpTrapped
                }
                switch step {
                case .next:
                    if op.pointee.kind == .msr || op.pointee.kind == .msrImm {
                        el0 = s.pointee.el == 0
                        asid = currentASID
                        if attention.load(ordering: .relaxed) != 0 {
                            let (next, exit) = attentionPoint(pc &+ 4)
                            if let exit { s.pointee.pc = pc &+ 4; return exit }
                            pc = next
                            page = 1
                            el0 = s.pointee.el == 0
                            continue
                        }
                    }
                case .jump:
                    pc = s.pointee.pc
                    page = 1
                    el0 = s.pointee.el == 0
                    asid = currentASID
                    continue
                case .fault:
                    let value = op.pointee.kind == .store ? r[Int(op.pointee.rd)] : 0
                    if let exit = deliverDataFault(op.pointee, pc: pc, value: value, cacheMaintenance: false) {
                        s.pointee.pc = pc
                        return exit
                    }
                    pc = s.pointee.pc
                    page = 1
                    el0 = false
                    asid = currentASID
                    continue
                case .undefined, .fpTrapped:
                    let exit = step == .undefined ? undefinedInstruction(pc: pc)
                        : takeException(Syndrome(ec: Syndrome.Class.fpAccess, iss: 0x1E0_0000), far: nil, returnAddress: pc)
                    if let exit { s.pointee.pc = pc; return exit }
                    pc = s.pointee.pc
                    page = 1
                    el0 = false
                    asid = currentASID
                    continue
                }
            }
            pc &+= 4
        }
        s.pointee.pc = pc
        return .budgetExhausted
    }

    /// A single-register load or store in any addressing mode but the unprivileged one, when
    /// the TLB has the page: done in line. False sends it out of line (a miss, a page
    /// crossing, an alignment check), which redoes it from the start.
    @_transparent
    func fastLoadStore(_ op: UnsafeMutablePointer<Op>, el0: Bool, asid: UInt32) -> Bool {
        let mode = op.pointee.a
        guard mode & AddressingMode.unprivileged == 0 else { return false }
        let r = registers
        let base = r[Int(op.pointee.rn)]
        let va: UInt64
        switch mode {
        case AddressingMode.postIndex: va = base
        case AddressingMode.register: va = base &+ ALU.extend(r[Int(op.pointee.rm)], option: op.pointee.b, amount: op.pointee.c)
        default: va = base &+ op.pointee.imm
        }
        let bytes = 1 << Int(op.pointee.size)
        let store = op.pointee.kind == .store
        guard let p = fastPointer(va, bytes, store ? .write : .read, el0: el0, asid: asid) else { return false }
        if store {
            Self.write(p, bytes, r[Int(op.pointee.rd)])
        } else {
            r[Int(op.pointee.rd)] = Self.widen(Self.read(p, bytes), size: op.pointee.size, ext: op.pointee.ra)
        }
        if mode == AddressingMode.preIndex || mode == AddressingMode.postIndex { r[Int(op.pointee.rn)] = base &+ op.pointee.imm }
        return true
    }

    /// At an instruction boundary with something pending from another thread: a TLB flush, a
    /// kick, or an interrupt (taken if PSTATE.I allows). Returns where to go on, or an exit.
    @inline(never)
    func attentionPoint(_ pc: UInt64) -> (UInt64, CPUExit?) {
        let pending = serviceAttention()
        if pending & 1 != 0 {
            attention.bitwiseAnd(~1, ordering: .acquiringAndReleasing)
            return (pc, .kicked)
        }
        if pending & 4 != 0, state.pointee.daif & (1 << 7) == 0 {
            if let exit = takeException(Syndrome(0), far: nil, returnAddress: pc, type: Vector.irq) { return (pc, exit) }
            return (state.pointee.pc, nil)
        }
        return (pc, nil)
    }

    /// The host address of the page holding `pc`, from the instruction TLB or a walk.
    @_transparent
    func fetchPage(_ pc: UInt64, el0: Bool, asid: UInt32) -> UnsafeMutableRawPointer? {
        if let p = tlb.lookup(TLB.set(el0: el0, .execute), pc, asid: asid) { return p - Int(pc & 0xFFF) }
        guard pc & 3 == 0 else { return nil }
        return slowPointer(pc & ~0xFFF, 4, .execute, unprivileged: false, aligned: false)
    }

    /// A fetch that did not translate: a PC alignment fault, or the recorded abort.
    @inline(never)
    func fetchFailed(_ pc: UInt64) -> CPUExit? {
        if pc & 3 != 0 {
            return takeException(Syndrome(ec: Syndrome.Class.pcAlignment, iss: 0), far: pc, returnAddress: pc)
        }
        var f = state.pointee.fault
        f.va = pc
        state.pointee.fault = f
        return deliverFetchFault(pc: pc)
    }

    /// RBIT of 64 bits.
    @inline(__always) static func reverseBits(_ x: UInt64) -> UInt64 {
        var v = x
        v = ((v >> 1) & 0x5555_5555_5555_5555) | ((v & 0x5555_5555_5555_5555) << 1)
        v = ((v >> 2) & 0x3333_3333_3333_3333) | ((v & 0x3333_3333_3333_3333) << 2)
        v = ((v >> 4) & 0x0F0F_0F0F_0F0F_0F0F) | ((v & 0x0F0F_0F0F_0F0F_0F0F) << 4)
        return v.byteSwapped
    }

    /// MRS, MSR and SYS.
    func executeSystem(_ op: Op, pc: UInt64) -> Step {
        let r = registers
        let result: SystemResult
        switch op.kind {
        case .mrs:
            let (value, res) = readSystemRegister(op.imm)
            if let value { r[Int(op.rd)] = value }
            result = res
        case .msr: result = writeSystemRegister(op.imm, r[Int(op.rn)])
        case .msrImm: result = writePSTATEField(op.a, op.b)
        default: result = systemInstruction(op.imm, r[Int(op.rn)])
        }
        switch result {
        case .done: return .next
        case .undefined: return .undefined
        case .fpTrapped: return .fpTrapped
        case .fault: return .fault
        }
    }
}
