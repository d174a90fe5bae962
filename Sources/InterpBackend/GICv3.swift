import AArch64
import Synchronization
import VMM

/// A GICv3 interrupt controller (Arm IHI 0069 H.b) for the interpreter's vCPUs, as crosvm gives
/// a protected VM one: a distributor for SPIs, one redistributor per vCPU for its SGIs and PPIs,
/// and the system-register CPU interface (`GICCPUInterface`). It has one security state
/// (GICD_CTLR.DS = 1, as a VM sees it), affinity routing always on, no LPIs and no ITS,
/// 5 priority bits, and 64 SPIs (INTIDs 32-95).
///
/// Everything is one state under one lock: an interrupt changes state a few thousand times a
/// second, an instruction runs a few hundred million times, so the lock is never hot. After any
/// change the controller recomputes each affected CPU's highest-priority pending interrupt and
/// raises or lowers that CPU's IRQ line (`AArch64CPU.setInterruptLine`), waking it from WFI.
///
/// The distributor and redistributor frames are MMIO pages behind the guest's stage 2, like
/// any device: a protected guest reaches them through EL2's MMIO path (and, under the android
/// profile, only through pages the MMIO guard maps), as it reaches host KVM's vGIC.
public final class GICv3: @unchecked Sendable {
    /// INTIDs 0-15 are SGIs, 16-31 PPIs (both per CPU), 32 up SPIs.
    static let spiCount = 64
    static let intidLimit = 32 + spiCount
    /// INTID 1023: no pending interrupt (IHI 0069 2.2.1).
    static let spurious: UInt64 = 1023
    /// Priorities keep their top 5 bits (ICC_CTLR_EL1.PRIbits = 4).
    static let priorityMask: UInt8 = 0xF8
    /// The virtual and physical timers' PPIs (Arm's SBSA numbering, as the DT says).
    public static let virtualTimerPPI = 27
    public static let physicalTimerPPI = 30

    /// One interrupt's state for one target (a CPU's SGI or PPI, or an SPI).
    struct Interrupt {
        var enabled = false
        /// Latched pending: an edge, an SGI, a write to ISPENDR. Cleared by acknowledge or ICPENDR.
        var latched = false
        /// The input line, for level-sensitive interrupts.
        var level = false
        var active = false
        var priority: UInt8 = 0
        var edge = false
        var group1 = false
        /// GICD_IROUTER<n> (SPIs): Aff3 in 39:32, Aff2:Aff1:Aff0 in 23:0, IRM in bit 31.
        var route: UInt64 = 0

        var pending: Bool { latched || (!edge && level) }
    }

    struct CPU {
        var privates = [Interrupt](repeating: Interrupt(), count: 32)
        /// GICR_WAKER.ProcessorSleep; ChildrenAsleep reads the same.
        var asleep = true
        var pmr: UInt8 = 0
        var bpr1: UInt64 = 3
        var eoiMode = false
        var group1Enabled = false
        /// Priorities of the interrupts this CPU has acknowledged and not yet dropped, highest
        /// (numerically lowest) last: the active priorities registers as a stack.
        var activePriorities: [UInt8] = []
        var lineRaised = false
        /// The CPU's IRQ line, connected as its vCPU is made (before any runs).
        var line: (@Sendable (Bool) -> Void)?

        var runningPriority: UInt8 { activePriorities.last ?? 0xFF }

        init() {
            // SGIs are edge-triggered and always enabled for forwarding (GICR_ICFGR0 is RO).
            for i in 0 ..< 16 { privates[i].edge = true }
        }
    }

    struct State {
        /// GICD_CTLR: EnableGrp0 (bit 0), EnableGrp1 (bit 1); ARE (bit 4) and DS (bit 6) read as 1.
        var control: UInt32 = 0
        var spis = [Interrupt](repeating: Interrupt(), count: GICv3.spiCount)
        var cpus: [CPU]
    }

    let state: Mutex<State>
    /// Each CPU's MPIDR affinity (Aff3 in 39:32, Aff2:Aff1:Aff0 in 23:0).
    let affinities: [UInt64]

    public init(affinities: [UInt64]) {
        self.affinities = affinities
        state = Mutex(State(cpus: Array(repeating: CPU(), count: affinities.count)))
    }

    public var cpuCount: Int { affinities.count }

    /// Connects CPU `index`'s IRQ line.
    public func connect(cpu index: Int, line: @escaping @Sendable (Bool) -> Void) {
        state.withLock { $0.cpus[index].line = line }
    }

    /// The CPU interface for CPU `index`, to attach to its `AArch64CPU`.
    public func cpuInterface(_ index: Int) -> GICCPUInterface { GICCPUInterface(gic: self, cpu: index) }

    // MARK: Inputs

    /// Drives SPI `spi` (INTID 32 + spi) to `level`: a device's interrupt output.
    public func setSPI(_ spi: Int, level: Bool) {
        guard spi >= 0, spi < Self.spiCount else { return }
        state.withLock { s in
            Self.drive(&s.spis[spi], level)
            updateAll(&s)
        }
    }

    /// Drives PPI `intid` (16-31) of CPU `cpu` to `level`: the CPU's timers.
    public func setPPI(_ intid: Int, cpu: Int, level: Bool) {
        guard (16 ..< 32).contains(intid), cpu >= 0, cpu < cpuCount else { return }
        state.withLock { s in
            guard s.cpus[cpu].privates[intid].level != level else { return }
            Self.drive(&s.cpus[cpu].privates[intid], level)
            update(&s, cpu: cpu)
        }
    }

    /// Whether CPU `cpu` has an interrupt it would take if unmasked (what wakes a WFI).
    public func interruptPending(cpu: Int) -> Bool { state.withLock { $0.cpus[cpu].lineRaised } }

    private static func drive(_ irq: inout Interrupt, _ level: Bool) {
        if irq.edge, level, !irq.level { irq.latched = true }
        irq.level = level
    }

    // MARK: Priority resolution

    /// The highest-priority pending, enabled, inactive group-1 interrupt for `cpu`: (INTID,
    /// priority), lowest INTID first among equals.
    func highestPending(_ s: State, cpu: Int) -> (intid: Int, priority: UInt8)? {
        guard s.control & 2 != 0 else { return nil }
        var best: (Int, UInt8)?
        let c = s.cpus[cpu]
        for i in 0 ..< 32 {
            let irq = c.privates[i]
            if irq.enabled, irq.pending, !irq.active, irq.group1, best == nil || irq.priority < best!.1 { best = (i, irq.priority) }
        }
        for i in 0 ..< Self.spiCount {
            let irq = s.spis[i]
            guard irq.enabled, irq.pending, !irq.active, irq.group1, target(of: irq) == cpu else { continue }
            if best == nil || irq.priority < best!.1 { best = (32 + i, irq.priority) }
        }
        return best
    }

    /// The CPU an SPI goes to: the one its IROUTER names, or CPU 0 for "any" (IRM = 1) or an
    /// affinity no CPU has.
    func target(of irq: Interrupt) -> Int {
        if irq.route & (1 << 31) != 0 { return 0 }
        let affinity = irq.route & 0xFF_00FF_FFFF
        return affinities.firstIndex(of: affinity) ?? 0
    }

    /// Whether `cpu` should be interrupted: a pending interrupt above the priority mask and
    /// above the running priority, with group 1 enabled at the CPU interface.
    func signalled(_ s: State, cpu: Int) -> Bool {
        let c = s.cpus[cpu]
        guard c.group1Enabled, let (_, priority) = highestPending(s, cpu: cpu) else { return false }
        return priority < c.pmr && priority < c.runningPriority
    }

    func update(_ s: inout State, cpu: Int) {
        let raised = signalled(s, cpu: cpu)
        guard raised != s.cpus[cpu].lineRaised else { return }
        s.cpus[cpu].lineRaised = raised
        s.cpus[cpu].line?(raised)
    }

    func updateAll(_ s: inout State) {
        for cpu in 0 ..< cpuCount { update(&s, cpu: cpu) }
    }

    /// The interrupt INTID `intid` as CPU `cpu` sees it.
    func withInterrupt<R>(_ s: inout State, cpu: Int, _ intid: Int, _ body: (inout Interrupt) -> R) -> R? {
        guard intid >= 0 else { return nil }
        if intid < 32 { return body(&s.cpus[cpu].privates[intid]) }
        guard intid < Self.intidLimit else { return nil }
        return body(&s.spis[intid - 32])
    }
}
