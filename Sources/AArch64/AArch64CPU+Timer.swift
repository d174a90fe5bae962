/// The generic timer's EL1 view (Arm ARM D11): the virtual and physical timers' interrupt
/// conditions, for the interrupt controller's PPIs, and the next deadline, for a WFI to sleep
/// until.
extension AArch64CPU {
    /// Whether each timer's output is asserted now: ENABLE set, IMASK clear and the condition
    /// met (CNTVCT >= CNTV_CVAL; D11.2.4). Level-sensitive, as the architecture wires it.
    public func timerOutputs() -> (virtual: Bool, physical: Bool) {
        let sys = state.pointee.sys
        let now = counterValue()
        func asserted(_ ctl: UInt64, _ cval: UInt64) -> Bool { ctl & 3 == 1 && now >= cval }
        return (asserted(sys.cntvCtl, sys.cntvCval), asserted(sys.cntpCtl, sys.cntpCval))
    }

    /// Counter ticks until the earliest enabled, unmasked timer fires (0 if one is asserted),
    /// or nil if none is armed.
    public func ticksUntilTimer() -> UInt64? {
        let sys = state.pointee.sys
        let now = counterValue()
        func wait(_ ctl: UInt64, _ cval: UInt64) -> UInt64? { ctl & 3 == 1 ? (cval > now ? cval - now : 0) : nil }
        switch (wait(sys.cntvCtl, sys.cntvCval), wait(sys.cntpCtl, sys.cntpCval)) {
        case let (v?, p?): return min(v, p)
        case let (v?, nil): return v
        case let (nil, p?): return p
        case (nil, nil): return nil
        }
    }

    /// Nanoseconds per counter tick at CNTFRQ_EL0.
    public static var nanosecondsPerTick: UInt64 { 1_000_000_000 / counterFrequency }
}
