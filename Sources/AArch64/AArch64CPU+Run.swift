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
            let op = slot.pointee
            executed &+= 1
            let rd = Int(op.rd), rn = Int(op.rn), rm = Int(op.rm)
            let sf = op.size != 0

            switch op.kind {
            // MARK: Data processing, immediate
            case .adr: r[rd] = pc &+ op.imm
            case .adrp: r[rd] = (pc & ~0xFFF) &+ op.imm
            case .addImm: r[rd] = ALU.width(r[rn] &+ op.imm, sf: sf)
            case .subImm: r[rd] = ALU.width(r[rn] &- op.imm, sf: sf)
            case .addsImm:
                let (v, f) = ALU.addWithCarry(r[rn], op.imm, false, sf: sf)
                r[rd] = v
                s.pointee.nzcv = f
            case .subsImm:
                let (v, f) = ALU.addWithCarry(r[rn], ~op.imm, true, sf: sf)
                r[rd] = v
                s.pointee.nzcv = f
            case .andImm: r[rd] = r[rn] & op.imm
            case .orrImm: r[rd] = ALU.width(r[rn] | op.imm, sf: sf)
            case .eorImm: r[rd] = ALU.width(r[rn] ^ op.imm, sf: sf)
            case .andsImm:
                let v = r[rn] & op.imm
                r[rd] = v
                s.pointee.nzcv = ALU.logicFlags(v, sf: sf)
            case .movImm: r[rd] = op.imm
            case .movk:
                let mask: UInt64 = 0xFFFF << UInt64(op.a)
                r[rd] = ALU.width((r[rd] & ~mask) | (op.imm << UInt64(op.a)), sf: sf)
            case .ubfx: r[rd] = (ALU.width(r[rn], sf: sf) >> UInt64(op.a)) & ALU.ones(op.b)
            case .ubfiz: r[rd] = ALU.width((r[rn] & ALU.ones(op.b)) << UInt64(op.a), sf: sf)
            case .sbfx:
                r[rd] = ALU.width(ALU.signExtend((ALU.width(r[rn], sf: sf) >> UInt64(op.a)) & ALU.ones(op.b), bits: op.b), sf: sf)
            case .sbfiz: r[rd] = ALU.width(ALU.signExtend(r[rn] & ALU.ones(op.b), bits: op.b) << UInt64(op.a), sf: sf)
            case .bfxil:
                let mask = ALU.ones(op.b)
                r[rd] = ALU.width((r[rd] & ~mask) | ((ALU.width(r[rn], sf: sf) >> UInt64(op.a)) & mask), sf: sf)
            case .bfi:
                let mask = ALU.ones(op.b) << UInt64(op.a)
                r[rd] = ALU.width((r[rd] & ~mask) | ((r[rn] << UInt64(op.a)) & mask), sf: sf)
            case .extr:
                let lsb = UInt64(op.a)
                if sf {
                    r[rd] = lsb == 0 ? r[rm] : (r[rm] >> lsb) | (r[rn] << (64 - lsb))
                } else {
                    let lo = r[rm] & 0xFFFF_FFFF, hi = r[rn] & 0xFFFF_FFFF
                    r[rd] = lsb == 0 ? lo : ((lo >> lsb) | (hi << (32 - lsb))) & 0xFFFF_FFFF
                }

            // MARK: Data processing, register
            case .movReg: r[rd] = ALU.width(r[rm], sf: sf)
            case .andReg: r[rd] = ALU.width(r[rn] & ALU.shift(r[rm], type: op.a, amount: op.b, sf: sf), sf: sf)
            case .bicReg: r[rd] = ALU.width(r[rn] & ~ALU.shift(r[rm], type: op.a, amount: op.b, sf: sf), sf: sf)
            case .orrReg: r[rd] = ALU.width(r[rn] | ALU.shift(r[rm], type: op.a, amount: op.b, sf: sf), sf: sf)
            case .ornReg: r[rd] = ALU.width(r[rn] | ~ALU.shift(r[rm], type: op.a, amount: op.b, sf: sf), sf: sf)
            case .eorReg: r[rd] = ALU.width(r[rn] ^ ALU.shift(r[rm], type: op.a, amount: op.b, sf: sf), sf: sf)
            case .eonReg: r[rd] = ALU.width(r[rn] ^ ~ALU.shift(r[rm], type: op.a, amount: op.b, sf: sf), sf: sf)
            case .andsReg, .bicsReg:
                var y = ALU.shift(r[rm], type: op.a, amount: op.b, sf: sf)
                if op.kind == .bicsReg { y = ~y }
                let v = ALU.width(r[rn] & y, sf: sf)
                r[rd] = v
                s.pointee.nzcv = ALU.logicFlags(v, sf: sf)
            case .addShifted: r[rd] = ALU.width(r[rn] &+ ALU.shift(r[rm], type: op.a, amount: op.b, sf: sf), sf: sf)
            case .subShifted: r[rd] = ALU.width(r[rn] &- ALU.shift(r[rm], type: op.a, amount: op.b, sf: sf), sf: sf)
            case .addsShifted, .subsShifted:
                var y = ALU.shift(r[rm], type: op.a, amount: op.b, sf: sf)
                let sub = op.kind == .subsShifted
                if sub { y = ~y }
                let (v, f) = ALU.addWithCarry(r[rn], y, sub, sf: sf)
                r[rd] = v
                s.pointee.nzcv = f
            case .addExtended: r[rd] = ALU.width(r[rn] &+ ALU.extend(r[rm], option: op.a, amount: op.b), sf: sf)
            case .subExtended: r[rd] = ALU.width(r[rn] &- ALU.extend(r[rm], option: op.a, amount: op.b), sf: sf)
            case .addsExtended, .subsExtended:
                var y = ALU.extend(r[rm], option: op.a, amount: op.b)
                let sub = op.kind == .subsExtended
                if sub { y = ~y }
                let (v, f) = ALU.addWithCarry(r[rn], y, sub, sf: sf)
                r[rd] = v
                s.pointee.nzcv = f
            case .adc, .adcs, .sbc, .sbcs:
                let sub = op.kind == .sbc || op.kind == .sbcs
                let (v, f) = ALU.addWithCarry(r[rn], sub ? ~r[rm] : r[rm], s.pointee.nzcv & (1 << 29) != 0, sf: sf)
                r[rd] = v
                if op.kind == .adcs || op.kind == .sbcs { s.pointee.nzcv = f }
            case .ccmnReg, .ccmpReg, .ccmnImm, .ccmpImm:
                if Condition.holds(op.a, s.pointee.nzcv) {
                    var y = op.kind == .ccmnImm || op.kind == .ccmpImm ? op.imm : r[rm]
                    let sub = op.kind == .ccmpReg || op.kind == .ccmpImm
                    if sub { y = ~y }
                    s.pointee.nzcv = ALU.addWithCarry(r[rn], y, sub, sf: sf).1
                } else {
                    s.pointee.nzcv = UInt32(op.b) << 28
                }
            case .csel: r[rd] = ALU.width(Condition.holds(op.a, s.pointee.nzcv) ? r[rn] : r[rm], sf: sf)
            case .csinc: r[rd] = ALU.width(Condition.holds(op.a, s.pointee.nzcv) ? r[rn] : r[rm] &+ 1, sf: sf)
            case .csinv: r[rd] = ALU.width(Condition.holds(op.a, s.pointee.nzcv) ? r[rn] : ~r[rm], sf: sf)
            case .csneg: r[rd] = ALU.width(Condition.holds(op.a, s.pointee.nzcv) ? r[rn] : 0 &- r[rm], sf: sf)
            case .rbit:
                let v = Self.reverseBits(r[rn])
                r[rd] = sf ? v : v >> 32
            case .rev16:
                let x = r[rn]
                r[rd] = ALU.width(((x & 0x00FF_00FF_00FF_00FF) << 8) | ((x >> 8) & 0x00FF_00FF_00FF_00FF), sf: sf)
            case .rev32:
                let x = r[rn].byteSwapped
                r[rd] = (x >> 32) | (x << 32)
            case .rev: r[rd] = sf ? r[rn].byteSwapped : UInt64(UInt32(truncatingIfNeeded: r[rn]).byteSwapped)
            case .clz:
                r[rd] = sf ? UInt64(r[rn].leadingZeroBitCount) : UInt64(UInt32(truncatingIfNeeded: r[rn]).leadingZeroBitCount)
            case .cls: r[rd] = ALU.countLeadingSign(r[rn], sf: sf)
            case .udiv:
                let x = ALU.width(r[rn], sf: sf), y = ALU.width(r[rm], sf: sf)
                r[rd] = y == 0 ? 0 : x / y
            case .sdiv:
                if sf {
                    let x = Int64(bitPattern: r[rn]), y = Int64(bitPattern: r[rm])
                    r[rd] = y == 0 ? 0 : UInt64(bitPattern: x.dividedReportingOverflow(by: y).partialValue)
                } else {
                    let x = Int32(truncatingIfNeeded: r[rn]), y = Int32(truncatingIfNeeded: r[rm])
                    r[rd] = y == 0 ? 0 : UInt64(UInt32(bitPattern: x.dividedReportingOverflow(by: y).partialValue))
                }
            case .lslv: r[rd] = ALU.shift(r[rn], type: 0, amount: UInt8(r[rm] & (sf ? 63 : 31)), sf: sf)
            case .lsrv: r[rd] = ALU.shift(r[rn], type: 1, amount: UInt8(r[rm] & (sf ? 63 : 31)), sf: sf)
            case .asrv: r[rd] = ALU.shift(r[rn], type: 2, amount: UInt8(r[rm] & (sf ? 63 : 31)), sf: sf)
            case .rorv: r[rd] = ALU.shift(r[rn], type: 3, amount: UInt8(r[rm] & (sf ? 63 : 31)), sf: sf)
            case .crc32:
                r[rd] = UInt64(ALU.crc32(UInt32(truncatingIfNeeded: r[rn]), r[rm], bytes: 1 << Int(op.size), castagnoli: op.a == 1))
            case .madd: r[rd] = ALU.width(r[Int(op.ra)] &+ r[rn] &* r[rm], sf: sf)
            case .msub: r[rd] = ALU.width(r[Int(op.ra)] &- r[rn] &* r[rm], sf: sf)
            case .smaddl, .smsubl:
                let p = Int64(Int32(truncatingIfNeeded: r[rn])) &* Int64(Int32(truncatingIfNeeded: r[rm]))
                r[rd] = op.kind == .smaddl ? r[Int(op.ra)] &+ UInt64(bitPattern: p) : r[Int(op.ra)] &- UInt64(bitPattern: p)
            case .umaddl, .umsubl:
                let p = (r[rn] & 0xFFFF_FFFF) &* (r[rm] & 0xFFFF_FFFF)
                r[rd] = op.kind == .umaddl ? r[Int(op.ra)] &+ p : r[Int(op.ra)] &- p
            case .smulh: r[rd] = UInt64(bitPattern: Int64(bitPattern: r[rn]).multipliedFullWidth(by: Int64(bitPattern: r[rm])).high)
            case .umulh: r[rd] = r[rn].multipliedFullWidth(by: r[rm]).high

            // MARK: Branches
            case .b, .bl, .bcond, .cbz, .cbnz, .tbz, .tbnz, .br, .blr, .ret:
                var target: UInt64
                switch op.kind {
                case .b: target = pc &+ op.imm
                case .bl:
                    r[30] = pc &+ 4
                    target = pc &+ op.imm
                case .bcond: target = Condition.holds(op.a, s.pointee.nzcv) ? pc &+ op.imm : pc &+ 4
                case .cbz: target = ALU.width(r[rn], sf: sf) == 0 ? pc &+ op.imm : pc &+ 4
                case .cbnz: target = ALU.width(r[rn], sf: sf) != 0 ? pc &+ op.imm : pc &+ 4
                case .tbz: target = (r[rn] >> UInt64(op.a)) & 1 == 0 ? pc &+ op.imm : pc &+ 4
                case .tbnz: target = (r[rn] >> UInt64(op.a)) & 1 != 0 ? pc &+ op.imm : pc &+ 4
                case .blr:
                    target = r[rn]
                    r[30] = pc &+ 4
                default: target = r[rn]  // BR, RET
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
                if let exit = takeException(Syndrome(ec: Syndrome.Class.svc, iss: UInt32(op.imm)), far: nil, returnAddress: pc &+ 4) {
                    s.pointee.pc = pc
                    return exit
                }
                pc = s.pointee.pc
                el0 = false
                continue
            case .brk:
                if let exit = takeException(Syndrome(ec: Syndrome.Class.brk, iss: UInt32(op.imm)), far: nil, returnAddress: pc) {
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
                return op.kind == .hvc ? .hypercall(imm: UInt16(op.imm)) : .secureMonitorCall(imm: UInt16(op.imm))
            case .wfi, .wfe:
                s.pointee.pc = pc &+ 4
                return .waitForInterrupt(isWFE: op.kind == .wfe)
            case .nop, .sev, .prefetch: break
            case .clrex: s.pointee.exclusiveValid = false
            case .dmb, .dsb:
                switch op.a & 3 {
                case 1: pvm_fence_acquire()
                case 2: pvm_fence_release()
                default: pvm_fence()
                }
            case .isb: page = 1  // the next fetch sees SCTLR / TTBR / TCR changes
            case .ldrX, .ldrW, .strX, .strW:
                let va = r[rn] &+ op.imm
                let bytes = op.kind == .ldrX || op.kind == .strX ? 8 : 4
                let store = op.kind == .strX || op.kind == .strW
                if let p = fastPointer(va, bytes, store ? .write : .read, el0: el0, asid: asid) {
                    if store { Self.write(p, bytes, r[rd]) } else { r[rd] = Self.read(p, bytes) }
                } else if store {
                    guard self.store(va, bytes, r[rd]) else {
                        if let exit = deliverDataFault(op, pc: pc, value: r[rd]) { s.pointee.pc = pc; return exit }
                        pc = s.pointee.pc
                        el0 = false
                        page = 1
                        continue
                    }
                } else {
                    guard let v = load(va, bytes) else {
                        if let exit = deliverDataFault(op, pc: pc) { s.pointee.pc = pc; return exit }
                        pc = s.pointee.pc
                        el0 = false
                        page = 1
                        continue
                    }
                    r[rd] = v
                }
            default:
                // Everything else runs out of line.
                let step: Step
                switch op.kind {
                case .mrs, .msr, .msrImm, .sys: step = executeSystem(op, pc: pc)
                case .load, .store, .loadPair, .storePair, .loadLiteral, .loadExclusive, .storeExclusive,
                     .loadExclusivePair, .storeExclusivePair, .loadAcquire, .storeRelease, .cas, .casp, .atomic, .swp:
                    step = executeLoadStore(op, pc: pc)
                default:
                    step = fpEnabled ? executeSIMD(op, pc: pc) : .fpTrapped
                }
                switch step {
                case .next:
                    if op.kind == .msr || op.kind == .msrImm {
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
                    let value = op.kind == .store ? r[rd] : 0
                    if let exit = deliverDataFault(op, pc: pc, value: value, cacheMaintenance: false) {
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
    @inline(__always)
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
