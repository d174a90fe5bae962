import AArch64

/// One CPU's GICv3 system-register CPU interface (IHI 0069 chapter 12.2, the ICC_*_EL1
/// registers), group 1 only, as a non-secure EL1 sees it with GICD_CTLR.DS = 1: group-0
/// acknowledges return the spurious INTID, and SGIs are group-1 SGIs (ICC_SGI1R_EL1).
public final class GICCPUInterface: CPUInterface, @unchecked Sendable {
    let gic: GICv3
    let cpu: Int

    init(gic: GICv3, cpu: Int) {
        self.gic = gic
        self.cpu = cpu
    }

    public func read(_ key: UInt64) -> UInt64? {
        typealias R = SystemRegister
        return gic.state.withLock { s -> UInt64? in
            let c = s.cpus[cpu]
            switch key {
            case R.iccPMR: return UInt64(c.pmr)
            case R.iccIAR1: return acknowledge(&s)
            case R.iccIAR0, R.iccHPPIR0: return GICv3.spurious
            case R.iccHPPIR1: return gic.highestPending(s, cpu: cpu).map { UInt64($0.intid) } ?? GICv3.spurious
            case R.iccRPR: return UInt64(c.runningPriority)
            case R.iccBPR1: return c.bpr1
            case R.iccBPR0: return 2
            // CTLR: PRIbits 4 (5 bits), IDbits 0 (16), EOImode as written; no SEIS, A3V, RSS.
            case R.iccCTLR: return 4 << 8 | (c.eoiMode ? 2 : 0)
            case R.iccSRE: return 0b111  // SRE, DFB, DIB: the system register interface only
            case R.iccIGRPEN1: return c.group1Enabled ? 1 : 0
            case R.iccIGRPEN0: return 0
            case R.iccAP1R0: return activePriorityBits(c)
            default:
                // AP0R0-3, AP1R1-3: nothing beyond 32 priority levels.
                if key >> 3 == R.iccAP1R0 >> 3 || (key >> 3 == R.iccAP0R0 >> 3 && key & 7 >= 4) { return 0 }
                return nil
            }
        }
    }

    public func write(_ key: UInt64, _ value: UInt64) -> Bool {
        typealias R = SystemRegister
        if key == R.iccSGI1R || key == R.iccASGI1R {
            generateSGI(value)
            return true
        }
        return gic.state.withLock { s -> Bool in
            switch key {
            case R.iccPMR: s.cpus[cpu].pmr = UInt8(truncatingIfNeeded: value) & GICv3.priorityMask
            case R.iccEOIR1: endOfInterrupt(&s, UInt64(value & 0xFF_FFFF))
            case R.iccDIR: deactivate(&s, Int(value & 0xFF_FFFF))
            case R.iccBPR1: s.cpus[cpu].bpr1 = max(value & 7, 3)  // 5 priority bits: group 1's minimum is 3
            case R.iccCTLR: s.cpus[cpu].eoiMode = value & 2 != 0
            case R.iccIGRPEN1: s.cpus[cpu].group1Enabled = value & 1 != 0
            case R.iccAP1R0:
                // Linux clears the active priorities at CPU bring-up; other values are kept as
                // the set of levels whose bits are set.
                s.cpus[cpu].activePriorities = (0 ..< 32).reversed().filter { value & (1 << UInt64($0)) != 0 }.map { UInt8($0 << 3) }
            case R.iccSRE, R.iccBPR0, R.iccIGRPEN0, R.iccEOIR0, R.iccSGI0R: break
            default:
                if key >> 3 == R.iccAP1R0 >> 3 || (key >> 3 == R.iccAP0R0 >> 3 && key & 7 >= 4) { break }
                return false
            }
            gic.update(&s, cpu: cpu)
            return true
        }
    }

    /// ICC_AP1R0_EL1: bit n set while priority n << 3 is active.
    private func activePriorityBits(_ c: GICv3.CPU) -> UInt64 {
        c.activePriorities.reduce(0) { $0 | 1 << UInt64($1 >> 3) }
    }

    /// A read of ICC_IAR1_EL1 (IHI 0069 12.2.13): the highest-priority pending interrupt that
    /// can be signalled becomes active, its priority the running priority; else 1023.
    private func acknowledge(_ s: inout GICv3.State) -> UInt64 {
        guard gic.signalled(s, cpu: cpu), let (intid, priority) = gic.highestPending(s, cpu: cpu) else { return GICv3.spurious }
        _ = gic.withInterrupt(&s, cpu: cpu, intid) { irq in
            irq.active = true
            irq.latched = false
        }
        s.cpus[cpu].activePriorities.append(priority)
        gic.update(&s, cpu: cpu)
        return UInt64(intid)
    }

    /// ICC_EOIR1_EL1: a priority drop (the highest active priority), and with EOImode 0 the
    /// deactivation too.
    private func endOfInterrupt(_ s: inout GICv3.State, _ intid: UInt64) {
        guard intid < 1020 else { return }
        if !s.cpus[cpu].activePriorities.isEmpty { s.cpus[cpu].activePriorities.removeLast() }
        if !s.cpus[cpu].eoiMode { deactivate(&s, Int(intid)) }
    }

    private func deactivate(_ s: inout GICv3.State, _ intid: Int) {
        _ = gic.withInterrupt(&s, cpu: cpu, intid) { $0.active = false }
    }

    /// ICC_SGI1R_EL1 (IHI 0069 12.2.22): SGI INTID (27:24) to the CPUs of Aff3.Aff2.Aff1 whose
    /// Aff0 is in TargetList (15:0), or with IRM (bit 40) to every CPU but this one.
    private func generateSGI(_ value: UInt64) {
        let intid = Int((value >> 24) & 0xF)
        let everyOther = value & (1 << 40) != 0
        let cluster = (value >> 48 & 0xFF) << 32 | (value >> 32 & 0xFF) << 16 | (value >> 16 & 0xFF) << 8
        let rangeBase = (value >> 44 & 0xF) * 16
        gic.state.withLock { s in
            for target in 0 ..< gic.cpuCount {
                let a = gic.affinities[target]
                let hit: Bool
                if everyOther {
                    hit = target != cpu
                } else {
                    let aff0 = a & 0xFF
                    hit = a & ~0xFF == cluster && aff0 >= rangeBase && aff0 < rangeBase + 16
                        && value & (1 << (aff0 - rangeBase)) != 0
                }
                guard hit else { continue }
                s.cpus[target].privates[intid].latched = true
                gic.update(&s, cpu: target)
            }
        }
    }
}
