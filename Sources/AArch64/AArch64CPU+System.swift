import CAArch64

/// MRS, MSR (register and immediate) and SYS: the EL0 and EL1 system registers, PSTATE
/// fields, cache maintenance, TLB maintenance and address translation (Arm ARM C5, D23).
extension AArch64CPU {
    /// What a system instruction did.
    enum SystemResult {
        case done
        /// UNDEFINED at this EL (or not implemented): an Undefined Instruction exception.
        case undefined
        /// CPACR_EL1 traps FP/SIMD at this EL: an FP access exception (EC 0x07).
        case fpTrapped
        /// A DC ZVA or AT whose access faulted (`state.fault` holds it).
        case fault
    }

    var el1: Bool { state.pointee.el == 1 }

    /// FP and SIMD are usable at the current EL (CPACR_EL1.FPEN, D23.2.30).
    @inline(__always) var fpEnabled: Bool {
        let fpen = (state.pointee.sys.cpacr >> 20) & 3
        return fpen == 3 || (fpen == 1 && state.pointee.el == 1)
    }

    func readSystemRegister(_ key: UInt64) -> (UInt64?, SystemResult) {
        let s = state
        let el1 = self.el1
        let sysregs = s.pointee.sys
        typealias R = SystemRegister
        typealias ID = SystemRegister.Identification
        // Registers EL0 may read (with the SCTLR_EL1 / CNTKCTL_EL1 controls that allow it).
        switch key {
        case R.nzcv: return (UInt64(s.pointee.nzcv), .done)
        case R.daif: return el1 || sysregs.sctlr & (1 << 9) != 0 ? (UInt64(s.pointee.daif), .done) : (nil, .undefined)
        case R.fpcr: return fpEnabled ? (UInt64(s.pointee.fpcr), .done) : (nil, .fpTrapped)
        case R.fpsr: return fpEnabled ? (UInt64(s.pointee.fpsr), .done) : (nil, .fpTrapped)
        case R.tpidrEL0: return (sysregs.tpidrEL0, .done)
        case R.tpidrroEL0: return (sysregs.tpidrroEL0, .done)
        case R.ctr: return el1 || sysregs.sctlr & (1 << 15) != 0 ? (ID.ctr, .done) : (nil, .undefined)
        case R.dczid: return (ID.dczid | (el1 || sysregs.sctlr & (1 << 14) != 0 ? 0 : 1 << 4), .done)
        case R.cntfrq: return (Self.counterFrequency, .done)
        case R.cntvct, R.cntpct:
            guard el1 || sysregs.cntkctl & 3 != 0 else { return (nil, .undefined) }
            return (counterValue(), .done)
        case R.cntvCtl, R.cntvCval, R.cntvTval:
            guard el1 || sysregs.cntkctl & (1 << 8) != 0 else { return (nil, .undefined) }
            if key == R.cntvCtl { return (timerControl(sysregs.cntvCtl, sysregs.cntvCval), .done) }
            if key == R.cntvCval { return (sysregs.cntvCval, .done) }
            return (UInt64(UInt32(truncatingIfNeeded: sysregs.cntvCval &- counterValue())), .done)
        case R.cntpCtl, R.cntpCval, R.cntpTval:
            guard el1 || sysregs.cntkctl & (1 << 9) != 0 else { return (nil, .undefined) }
            if key == R.cntpCtl { return (timerControl(sysregs.cntpCtl, sysregs.cntpCval), .done) }
            if key == R.cntpCval { return (sysregs.cntpCval, .done) }
            return (UInt64(UInt32(truncatingIfNeeded: sysregs.cntpCval &- counterValue())), .done)
        default:
            break
        }
        guard el1 else { return (nil, .undefined) }
        let value: UInt64
        switch key {
        case R.midr: value = ID.midr
        case R.mpidr: value = 1 << 31 | affinity
        case R.revidr: value = 0
        case R.idAA64PFR0: value = ID.pfr0 | (cpuInterface != nil ? 1 << 24 : 0)
        case R.idAA64DFR0: value = ID.dfr0
        case R.idAA64ISAR0: value = ID.isar0
        case R.idAA64MMFR0: value = ID.mmfr0
        case R.idAA64MMFR1: value = ID.mmfr1
        case R.sctlr: value = sysregs.sctlr
        case R.actlr: value = sysregs.actlr
        case R.cpacr: value = sysregs.cpacr
        case R.ttbr0: value = sysregs.ttbr0
        case R.ttbr1: value = sysregs.ttbr1
        case R.tcr: value = sysregs.tcr
        case R.spsr: value = sysregs.spsr
        case R.elr: value = sysregs.elr
        case R.spEL0:
            // SP_EL0 is accessible at EL1 only while SP_EL1 is selected.
            guard s.pointee.spsel == 1 else { return (nil, .undefined) }
            value = s.pointee.spEL0
        case R.spsel: value = UInt64(s.pointee.spsel)
        case R.currentEL: value = UInt64(s.pointee.el) << 2
        case R.pan: value = s.pointee.pan ? 1 << 22 : 0
        case R.afsr0: value = sysregs.afsr0
        case R.afsr1: value = sysregs.afsr1
        case R.esr: value = sysregs.esr
        case R.erridr: value = 0
        case R.far: value = sysregs.far
        case R.par: value = sysregs.par
        case R.mair: value = sysregs.mair
        case R.amair: value = sysregs.amair
        case R.vbar: value = sysregs.vbar
        case R.isr: value = attention.load(ordering: .relaxed) & 4 != 0 ? 1 << 7 : 0
        case R.disr: value = 0
        case R.contextidr: value = sysregs.contextidr
        case R.tpidrEL1: value = sysregs.tpidrEL1
        case R.cntkctl: value = sysregs.cntkctl
        case R.ccsidr: value = ID.ccsidr
        case R.clidr: value = ID.clidr
        case R.csselr: value = sysregs.csselr
        case R.mdscr: value = sysregs.mdscr
        case R.oslsr: value = sysregs.osLock ? 0b1010 : 0b1000  // OSLM = 0b10, OSLK
        case R.mdccint, R.osdlr, R.mdrar, R.dbgprcr, R.dbgclaimset, R.dbgclaimclr: value = 0
        case R.dbgauthstatus: value = 0
        default:
            if SystemRegister.isGICCPUInterface(key) {
                guard let gic = cpuInterface, let v = gic.read(key) else { return (nil, .undefined) }
                value = v
                break
            }
            // The rest of the ID register space (op0 3, op1 0, CRn 0, CRm 1-7) reads as zero.
            if key >> 7 == SystemRegister.key(3, 0, 0, 0, 0) >> 7, (key >> 3) & 0xF != 0 { value = 0; break }
            // Breakpoint and watchpoint value / control registers 0 and 1.
            if let i = debugRegisterIndex(key) { value = sysregs.debug[i]; break }
            return (nil, .undefined)
        }
        return (value, .done)
    }

    /// CNTx_CTL with ISTATUS (bit 2) computed from the counter.
    private func timerControl(_ ctl: UInt64, _ cval: UInt64) -> UInt64 {
        let enabled = ctl & 1 != 0
        return (ctl & 3) | (enabled && counterValue() >= cval ? 4 : 0)
    }

    /// DBGBVR<n>/DBGBCR<n>/DBGWVR<n>/DBGWCR<n> for n = 0, 1: (op0 2, op1 0, CRn 0, CRm n, op2 4-7).
    private func debugRegisterIndex(_ key: UInt64) -> Int? {
        guard key >> 7 == SystemRegister.key(2, 0, 0, 0, 0) >> 7 else { return nil }
        let crm = (key >> 3) & 0xF, op2 = key & 7
        guard crm < 2, op2 >= 4 else { return nil }
        return Int(crm) * 4 + Int(op2 - 4)
    }

    func writeSystemRegister(_ key: UInt64, _ value: UInt64) -> SystemResult {
        let s = state
        typealias R = SystemRegister
        switch key {
        case R.nzcv: s.pointee.nzcv = UInt32(truncatingIfNeeded: value) & 0xF000_0000; return .done
        case R.daif:
            guard el1 || s.pointee.sys.sctlr & (1 << 9) != 0 else { return .undefined }
            s.pointee.daif = UInt32(truncatingIfNeeded: value) & 0x3C0
            return .done
        case R.fpcr:
            guard fpEnabled else { return .fpTrapped }
            s.pointee.fpcr = UInt32(truncatingIfNeeded: value) & 0x07F7_9F00
            return .done
        case R.fpsr:
            guard fpEnabled else { return .fpTrapped }
            s.pointee.fpsr = UInt32(truncatingIfNeeded: value) & 0xF800_009F
            return .done
        case R.tpidrEL0: s.pointee.sys.tpidrEL0 = value; return .done
        case R.cntvCtl, R.cntvCval, R.cntvTval:
            guard el1 || s.pointee.sys.cntkctl & (1 << 8) != 0 else { return .undefined }
            if key == R.cntvCtl { s.pointee.sys.cntvCtl = value & 3 }
            else if key == R.cntvCval { s.pointee.sys.cntvCval = value }
            else { s.pointee.sys.cntvCval = counterValue() &+ UInt64(bitPattern: Int64(Int32(truncatingIfNeeded: value))) }
            timerChanged?()
            return .done
        case R.cntpCtl, R.cntpCval, R.cntpTval:
            guard el1 || s.pointee.sys.cntkctl & (1 << 9) != 0 else { return .undefined }
            if key == R.cntpCtl { s.pointee.sys.cntpCtl = value & 3 }
            else if key == R.cntpCval { s.pointee.sys.cntpCval = value }
            else { s.pointee.sys.cntpCval = counterValue() &+ UInt64(bitPattern: Int64(Int32(truncatingIfNeeded: value))) }
            timerChanged?()
            return .done
        default:
            break
        }
        guard el1 else { return .undefined }
        switch key {
        case R.sctlr: s.pointee.sys.sctlr = value; tlb.flushAll()
        case R.actlr: s.pointee.sys.actlr = value
        case R.cpacr: s.pointee.sys.cpacr = value & (3 << 20)
        case R.ttbr0: s.pointee.sys.ttbr0 = value
        case R.ttbr1: s.pointee.sys.ttbr1 = value
        case R.tcr: s.pointee.sys.tcr = value; tlb.flushAll()
        case R.spsr: s.pointee.sys.spsr = value
        case R.elr: s.pointee.sys.elr = value
        case R.spEL0:
            guard s.pointee.spsel == 1 else { return .undefined }
            s.pointee.spEL0 = value
        case R.afsr0: s.pointee.sys.afsr0 = value
        case R.afsr1: s.pointee.sys.afsr1 = value
        case R.esr: s.pointee.sys.esr = value
        case R.far: s.pointee.sys.far = value
        case R.par: s.pointee.sys.par = value
        case R.mair: s.pointee.sys.mair = value; tlb.flushAll()
        case R.amair: s.pointee.sys.amair = value
        case R.vbar:
            s.pointee.sys.vbar = value & ~0x7FF
            s.pointee.vectorsInstalled = true
        case R.contextidr: s.pointee.sys.contextidr = value
        case R.tpidrEL1: s.pointee.sys.tpidrEL1 = value
        case R.tpidrroEL0: s.pointee.sys.tpidrroEL0 = value
        case R.cntkctl: s.pointee.sys.cntkctl = value
        case R.csselr: s.pointee.sys.csselr = value & 0xF
        case R.mdscr: s.pointee.sys.mdscr = value
        case R.oslar: s.pointee.sys.osLock = value & 1 != 0
        case R.mdccint, R.osdlr, R.dbgprcr, R.dbgclaimset, R.dbgclaimclr, R.disr: break
        case R.spsel: setExceptionLevel(s.pointee.el, spsel: UInt8(value & 1))
        case R.pan: s.pointee.pan = value & (1 << 22) != 0
        default:
            if SystemRegister.isGICCPUInterface(key) {
                guard let gic = cpuInterface, gic.write(key, value) else { return .undefined }
                break
            }
            if let i = debugRegisterIndex(key) { s.pointee.sys.debug[i] = value; break }
            return .undefined
        }
        return .done
    }

    /// MSR (immediate) to a PSTATE field: `field` is op1:op2, `imm` CRm.
    func writePSTATEField(_ field: UInt8, _ imm: UInt8) -> SystemResult {
        let s = state
        switch field {
        case 0b000_101:  // SPSel
            guard el1 else { return .undefined }
            setExceptionLevel(1, spsel: imm & 1)
        case 0b011_110:  // DAIFSet
            guard el1 || s.pointee.sys.sctlr & (1 << 9) != 0 else { return .undefined }
            s.pointee.daif |= UInt32(imm & 0xF) << 6
        case 0b011_111:  // DAIFClr
            guard el1 || s.pointee.sys.sctlr & (1 << 9) != 0 else { return .undefined }
            s.pointee.daif &= ~(UInt32(imm & 0xF) << 6)
        case 0b000_100:  // PAN
            guard el1 else { return .undefined }
            s.pointee.pan = imm & 1 != 0
        default:
            return .undefined
        }
        return .done
    }

    /// SYS: `key` is 1:op1:CRn:CRm:op2, `value` the Xt operand.
    func systemInstruction(_ key: UInt64, _ value: UInt64) -> SystemResult {
        let s = state
        let k = SystemRegister.key
        let sctlr = s.pointee.sys.sctlr
        switch key {
        case k(1, 0, 7, 1, 0), k(1, 0, 7, 5, 0):  // IC IALLUIS, IC IALLU
            return el1 ? .done : .undefined
        case k(1, 3, 7, 5, 1):  // IC IVAU
            return el1 || sctlr & (1 << 26) != 0 ? .done : .undefined
        case k(1, 3, 7, 4, 1):  // DC ZVA: zero the 64-byte block
            guard el1 || sctlr & (1 << 14) != 0 else { return .undefined }
            let va = value & ~63
            var zeros = (UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0))
            return withUnsafeBytes(of: &zeros) { storeBytes(va, 64, from: $0.baseAddress!) } ? .done : .fault
        case k(1, 3, 7, 10, 1), k(1, 3, 7, 11, 1), k(1, 3, 7, 12, 1), k(1, 3, 7, 13, 1), k(1, 3, 7, 14, 1):
            // DC CVAC, CVAU, CVAP, CVADP, CIVAC: no caches to maintain.
            return el1 || sctlr & (1 << 26) != 0 ? .done : .undefined
        case k(1, 0, 7, 6, 1), k(1, 0, 7, 6, 2), k(1, 0, 7, 10, 2), k(1, 0, 7, 14, 2):
            return el1 ? .done : .undefined  // DC IVAC, ISW, CSW, CISW
        case k(1, 0, 7, 8, 0), k(1, 0, 7, 8, 1), k(1, 0, 7, 8, 2), k(1, 0, 7, 8, 3):
            guard el1 else { return .undefined }
            return addressTranslate(value, write: key & 1 != 0, unprivileged: key & 2 != 0)
        default:
            break
        }
        // TLBI (C5.5): op1 0, CRn 8, CRm 3 (inner shareable) or 7.
        guard el1, (key >> 7) & 0xF == 8, (key >> 11) & 7 == 0 else { return .undefined }
        let crm = (key >> 3) & 0xF, op2 = key & 7
        guard crm == 3 || crm == 7 else { return .undefined }
        let page = (value & 0x0000_0FFF_FFFF_FFFF) << 12
        // The page fields hold VA[55:12]; rebuild the VA's top bits from bit 55.
        let va = page & (1 << 55) != 0 ? page | 0xFF00_0000_0000_0000 : page
        let asid = UInt32(truncatingIfNeeded: value >> 48) & (s.pointee.sys.tcr & (1 << 36) != 0 ? 0xFFFF : 0xFF)
        switch op2 {
        case 0: tlb.flushAll()                                        // VMALLE1
        case 1, 5: tlb.flush(page: va, asid: asid)                    // VAE1, VALE1
        case 2: tlb.flush(page: nil, asid: asid, includeGlobal: false) // ASIDE1
        case 3, 7: tlb.flush(page: va, asid: nil)                     // VAAE1, VAALE1
        default: return .undefined
        }
        if crm == 3 { broadcastTLBInvalidation?() }
        return .done
    }

    /// AT S1E1R / S1E1W / S1E0R / S1E0W: stage-1 translation into PAR_EL1 (D23.2.108).
    private func addressTranslate(_ va: UInt64, write: Bool, unprivileged: Bool) -> SystemResult {
        let s = state
        do {
            let t = try translate(va, write ? .write : .read, unprivileged: unprivileged, stage1Only: true)
            s.pointee.sys.par = (t.ipa & 0x0000_FFFF_FFFF_F000) | (t.device ? 0 : 0xFF << 56) | 3 << 7
        } catch {
            switch error {
            case let .stage1(status):
                s.pointee.sys.par = 1 | UInt64(status) << 1
            case let .stage2(status, ipa, onWalk):
                // A stage-2 fault on the stage-1 walk goes to EL2.
                recordFault(.stage2, status: status, va: va, ipa: ipa, access: .read, size: 8, onWalk: onWalk)
                return .fault
            case .external:
                s.pointee.sys.par = 1 | UInt64(FaultStatus.synchronousExternal) << 1
            }
        }
        return .done
    }

}
