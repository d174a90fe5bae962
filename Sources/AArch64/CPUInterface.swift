/// The GIC CPU interface behind a vCPU's ICC_* system registers (GICv3 architecture
/// specification, IHI 0069, chapter 12): the interrupt controller a backend attaches to each
/// CPU. The CPU forwards every MRS and MSR of the ICC_* group here, from its own thread; the
/// controller drives the CPU's interrupt line (`AArch64CPU.setInterruptLine`).
///
/// With one attached, ID_AA64PFR0_EL1.GIC reads 1 (the system register interface is
/// implemented); without one, ICC_* accesses are UNDEFINED.
public protocol CPUInterface: AnyObject, Sendable {
    /// An MRS of `key` (`SystemRegister.key`); nil for a register the interface does not have.
    func read(_ key: UInt64) -> UInt64?
    /// An MSR; false for a register the interface does not have.
    func write(_ key: UInt64, _ value: UInt64) -> Bool
}

extension SystemRegister {
    /// Whether `key` is one of the GIC CPU interface's registers: ICC_PMR_EL1, and op0 3, op1 0,
    /// CRn 12, CRm 8-12 (ICC_IAR0 ... ICC_IGRPEN1_EL1).
    @inline(__always)
    static func isGICCPUInterface(_ key: UInt64) -> Bool {
        key == iccPMR || (key >> 7 == iccIAR0 >> 7 && (key >> 3) & 0xF >= 8)
    }

    public static let iccPMR = key(3, 0, 4, 6, 0)
    public static let iccIAR0 = key(3, 0, 12, 8, 0)
    public static let iccEOIR0 = key(3, 0, 12, 8, 1)
    public static let iccHPPIR0 = key(3, 0, 12, 8, 2)
    public static let iccBPR0 = key(3, 0, 12, 8, 3)
    public static let iccAP0R0 = key(3, 0, 12, 8, 4)
    public static let iccAP1R0 = key(3, 0, 12, 9, 0)
    public static let iccDIR = key(3, 0, 12, 11, 1)
    public static let iccRPR = key(3, 0, 12, 11, 3)
    public static let iccSGI1R = key(3, 0, 12, 11, 5)
    public static let iccASGI1R = key(3, 0, 12, 11, 6)
    public static let iccSGI0R = key(3, 0, 12, 11, 7)
    public static let iccIAR1 = key(3, 0, 12, 12, 0)
    public static let iccEOIR1 = key(3, 0, 12, 12, 1)
    public static let iccHPPIR1 = key(3, 0, 12, 12, 2)
    public static let iccBPR1 = key(3, 0, 12, 12, 3)
    public static let iccCTLR = key(3, 0, 12, 12, 4)
    public static let iccSRE = key(3, 0, 12, 12, 5)
    public static let iccIGRPEN0 = key(3, 0, 12, 12, 6)
    public static let iccIGRPEN1 = key(3, 0, 12, 12, 7)
}
