/// Exception entry to EL1 and exception return (Arm ARM D1.10, D1.11), and the delivery of
/// the faults memory accesses record: to the guest's EL1 for stage-1 faults, to EL2 (an exit)
/// for stage-2 faults.
extension AArch64CPU {
    /// The vector offsets from VBAR_EL1 (D1.10.2): by where the exception came from, then by type.
    enum Vector {
        static let synchronous: UInt64 = 0x000
        static let irq: UInt64 = 0x080
        static let fiq: UInt64 = 0x100
        static let serror: UInt64 = 0x180
    }

    /// PSTATE as SPSR_EL1 saves it (C5.2.18): NZCV, DIT, UAO, PAN, SS, IL, SSBS, DAIF, M.
    func savedProgramStatus() -> UInt64 {
        let s = state.pointee
        var spsr = UInt64(s.nzcv & 0xF000_0000) | UInt64(s.daif & 0x3C0)
        if s.dit { spsr |= 1 << 24 }
        if s.uao { spsr |= 1 << 23 }
        if s.pan { spsr |= 1 << 22 }
        if s.ss { spsr |= 1 << 21 }
        if s.il { spsr |= 1 << 20 }
        if s.ssbs { spsr |= 1 << 12 }
        spsr |= UInt64(s.el) << 2 | (s.el == 0 ? 0 : UInt64(s.spsel))
        return spsr
    }

    /// Takes an exception to EL1 at vector offset `type` (`Vector`): saves PSTATE and the
    /// return address, writes ESR_EL1 (and FAR_EL1 when given), masks DAIF, selects SP_EL1,
    /// sets PAN unless SCTLR_EL1.SPAN, clears the exclusive monitor. Returns an exit only when
    /// the guest cannot take it: no vector table yet.
    func takeException(_ syndrome: Syndrome, far: UInt64?, returnAddress: UInt64, type: UInt64 = Vector.synchronous)
        -> CPUExit? {
        let s = state
        guard s.pointee.vectorsInstalled else {
            return .stopped("\(syndrome.className) at pc 0x\(String(returnAddress, radix: 16)) with no vector table "
                            + "installed (VBAR_EL1 never written): \(syndrome)"
                            + (far.map { ", FAR 0x" + String($0, radix: 16) } ?? ""))
        }
        let offset: UInt64 = s.pointee.el == 0 ? 0x400 : (s.pointee.spsel == 1 ? 0x200 : 0)
        s.pointee.sys.spsr = savedProgramStatus()
        s.pointee.sys.elr = returnAddress
        if type == Vector.synchronous {
            s.pointee.sys.esr = syndrome.rawValue
            if let far { s.pointee.sys.far = far }
        }
        setExceptionLevel(1, spsel: 1)
        s.pointee.daif = 0x3C0
        if s.pointee.sys.sctlr & (1 << 23) == 0 { s.pointee.pan = true }
        s.pointee.ss = false
        s.pointee.il = false
        s.pointee.exclusiveValid = false
        s.pointee.pc = (s.pointee.sys.vbar & ~0x7FF) &+ offset &+ type
        return nil
    }

    /// ERET at EL1 (D1.11): PSTATE from SPSR_EL1, the PC from ELR_EL1. An SPSR naming an EL or
    /// state the guest may not return to is an illegal exception return: PSTATE.IL is set and
    /// the next instruction takes an Illegal Execution state exception.
    func exceptionReturn() {
        let s = state
        let spsr = s.pointee.sys.spsr
        let m = spsr & 0x1F
        s.pointee.exclusiveValid = false
        guard m == 0b00000 || m == 0b00100 || m == 0b00101 else {
            s.pointee.il = true
            s.pointee.pc = s.pointee.sys.elr
            return
        }
        s.pointee.nzcv = UInt32(truncatingIfNeeded: spsr) & 0xF000_0000
        s.pointee.daif = UInt32(truncatingIfNeeded: spsr) & 0x3C0
        s.pointee.dit = spsr & (1 << 24) != 0
        s.pointee.uao = spsr & (1 << 23) != 0
        s.pointee.pan = spsr & (1 << 22) != 0
        s.pointee.ss = spsr & (1 << 21) != 0
        s.pointee.il = spsr & (1 << 20) != 0
        s.pointee.ssbs = spsr & (1 << 12) != 0
        setExceptionLevel(UInt8(m >> 2), spsel: UInt8(m & 1))
        // Returning to EL0 with a 64-bit ELR whose top bits are not a valid address is still
        // taken; the fetch faults.
        s.pointee.pc = s.pointee.sys.elr
    }

    /// Whether the faulting instruction's syndrome is valid (ISV = 1): a single general-purpose
    /// register load or store without writeback, including load-acquire / store-release and
    /// literal loads (as QEMU's disas_ldst_* decide; pairs, exclusives, atomics, SIMD&FP and
    /// writeback forms have ISV = 0). Returns the ISS bits 24:14 (ISV, SAS, SSE, SRT, SF, AR).
    static func instructionSyndrome(_ op: Op) -> UInt32? {
        var store = false, acquireRelease = false
        switch op.kind {
        case .ldrX, .ldrW: break
        case .strX, .strW: store = true
        case .load, .store:
            guard op.a & 3 == AddressingMode.offset || op.a & 3 == AddressingMode.register else { return nil }
            store = op.kind == .store
        case .loadLiteral: break
        case .loadAcquire: acquireRelease = true
        case .storeRelease:
            acquireRelease = true
            store = true
        default: return nil
        }
        let rt: UInt32 = op.rd >= 31 ? 31 : UInt32(op.rd)
        let sse = !store && op.ra != LoadExtension.zero && op.kind != .ldrX && op.kind != .ldrW
        let sixtyFour = store ? op.size == 3 : (op.size == 3 || op.ra == LoadExtension.signTo64)
        return 1 << 24 | UInt32(op.size & 3) << 22 | (sse ? 1 << 21 : 0) | rt << 16 | (sixtyFour ? 1 << 15 : 0)
            | (acquireRelease ? 1 << 14 : 0)
    }

    /// Delivers the fault the last data access recorded, for instruction `op` at `pc`: a
    /// stage-1, alignment or external fault becomes a data abort at EL1; a stage-2 fault an exit
    /// to EL2 with ESR_EL2, FAR_EL2 and HPFAR_EL2 as hardware reports them.
    func deliverDataFault(_ op: Op, pc: UInt64, value: UInt64 = 0, cacheMaintenance: Bool = false) -> CPUExit? {
        let f = state.pointee.fault
        let write = f.access == .write
        switch f.kind {
        case .stage2:
            var iss = UInt32(f.status)
            if f.onWalk {
                iss |= 1 << 7  // S1PTW; WnR is 0 for a walk's read
            } else {
                if write { iss |= 1 << 6 }
                if let syndrome = Self.instructionSyndrome(op), !cacheMaintenance { iss |= syndrome }
            }
            if cacheMaintenance { iss |= 1 << 8 | 1 << 6 }
            let ipa = f.onWalk ? f.ipa : (f.ipa & ~0xFFF) | (f.va & 0xFFF)
            let esr = Syndrome(ec: Syndrome.Class.dataAbortLower, iss: iss).rawValue
            return .stage2Abort(Stage2Fault(esr: esr, far: f.va, hpfar: (ipa >> 12) << 4, ipa: ipa, isWrite: write && !f.onWalk,
                                            isInstructionFetch: false, size: f.size, value: value))
        default:
            let ec = state.pointee.el == 0 ? Syndrome.Class.dataAbortLower : Syndrome.Class.dataAbortSame
            var iss = UInt32(f.status) | (write ? 1 << 6 : 0)
            if cacheMaintenance { iss |= 1 << 8 | 1 << 6 }
            return takeException(Syndrome(ec: ec, iss: iss), far: f.va, returnAddress: pc)
        }
    }

    /// Delivers a failed instruction fetch at `pc`.
    func deliverFetchFault(pc: UInt64) -> CPUExit? {
        let f = state.pointee.fault
        switch f.kind {
        case .stage2:
            let iss = UInt32(f.status) | (f.onWalk ? 1 << 7 : 0)
            let ipa = f.onWalk ? f.ipa : (f.ipa & ~0xFFF) | (pc & 0xFFF)
            let esr = Syndrome(ec: Syndrome.Class.instructionAbortLower, iss: iss).rawValue
            return .stage2Abort(Stage2Fault(esr: esr, far: pc, hpfar: (ipa >> 12) << 4, ipa: ipa, isWrite: false,
                                            isInstructionFetch: true, size: 4, value: 0))
        default:
            let ec = state.pointee.el == 0 ? Syndrome.Class.instructionAbortLower : Syndrome.Class.instructionAbortSame
            return takeException(Syndrome(ec: ec, iss: UInt32(f.status)), far: pc, returnAddress: pc)
        }
    }

    /// Injects a synchronous external abort on the data access of the instruction at the PC
    /// (DFSC 0b010000), as KVM's `kvm_inject_sea_dabt` does for an access it cannot emulate.
    /// False when the guest has no vector table to take it (the caller stops the vCPU).
    public func injectExternalDataAbort(far: UInt64) -> Bool {
        let ec = state.pointee.el == 0 ? Syndrome.Class.dataAbortLower : Syndrome.Class.dataAbortSame
        return takeException(Syndrome(ec: ec, iss: UInt32(FaultStatus.synchronousExternal)), far: far, returnAddress: pc) == nil
    }

    /// The Undefined Instruction exception for the instruction at `pc`.
    func undefinedInstruction(pc: UInt64) -> CPUExit? {
        if let observer = undefinedObserver { observer(pc, peekInstruction(at: pc) ?? 0, state.pointee.el) }
        return takeException(Syndrome(ec: Syndrome.Class.unknown, iss: 0), far: nil, returnAddress: pc)
    }
}
