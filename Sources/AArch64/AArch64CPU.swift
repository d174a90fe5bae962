import Synchronization

/// One AArch64 processing element running at EL0 and EL1 under a hypervisor: the interpreter
/// behind pvm's `interp` backend. `run(budget:)` executes until something EL2 must handle
/// (a hypercall, a stage-2 abort, a WFI), or the budget is spent, or `kick()` asks it to stop.
///
/// It implements ARMv8.0-A for EL0 and EL1 plus FEAT_LSE, FEAT_CRC32 and FEAT_PAN, with the
/// 4 KB granule at both stages: exactly what `readSystemRegister` advertises in the ID
/// registers. Anything else is UNDEFINED in the guest.
///
/// Memory ordering: guest loads and stores are host loads and stores on the same bytes, so
/// vCPUs on different host threads share memory as CPUs do; barriers are host fences and
/// exclusives and atomics are host atomics (`CAArch64`).
///
/// Thread-safety: one thread runs a CPU at a time; `kick()`, `requestTLBFlush()` and the
/// interrupt line may be used from any thread.
public final class AArch64CPU: @unchecked Sendable {
    /// The general-purpose register file (`RegisterFile` slots).
    public let registers: UnsafeMutablePointer<UInt64>
    /// V0..V31, two 64-bit halves each (low half first).
    public let vectors: UnsafeMutablePointer<UInt64>
    public let state: UnsafeMutablePointer<ArchState>
    /// The physical memory this CPU's stage 2 maps into.
    public let memory: PhysicalWindow
    /// The guest's stage 2, or nil for a bare CPU whose IPAs are physical addresses.
    public var stage2Configuration: Stage2Configuration? {
        didSet { tlb.flushAll() }
    }
    /// This vCPU's MPIDR_EL1 affinity fields (Aff2:Aff1:Aff0 in bits 23:0, Aff3 in 39:32).
    public let affinity: UInt64
    /// Called after a broadcast TLBI (the inner-shareable forms) flushed this CPU's TLB: the
    /// backend makes every other vCPU of the VM flush too, before the instruction completes.
    public var broadcastTLBInvalidation: (@Sendable () -> Void)?
    /// Where CNTVCT_EL0 comes from.
    public var counter: CounterSource = .hostClock(start: ContinuousClock.now)
    /// Told about every instruction the CPU treats as UNDEFINED (its PC, word and EL) before the
    /// guest takes the exception: what the interpreter lacks shows up in traces this way.
    public var undefinedObserver: (@Sendable (UInt64, UInt32, UInt8) -> Void)?
    /// The GIC CPU interface behind the ICC_* registers (set before the CPU first runs).
    public var cpuInterface: (any CPUInterface)?
    /// Called on the CPU's thread after the guest wrote a timer register (CNTV_* / CNTP_*),
    /// so the timer's interrupt line follows at once (set before the CPU first runs).
    public var timerChanged: (@Sendable () -> Void)?

    let tlb = TLB()
    let decodeCache: UnsafeMutablePointer<Op>
    static let decodeCacheBits = 15

    /// Set from other threads: bit 0 kick, bit 1 TLB flush requested, bit 2 IRQ line.
    let attention = Atomic<UInt32>(0)
    /// TLB flush requests made, and the last request this CPU has flushed for
    /// (`requestTLBFlush`).
    let flushRequests = Atomic<UInt64>(0)
    let flushCompleted = Atomic<UInt64>(0)
    /// Inside `run` (the CPU may hold translations it must drop before a flush completes).
    let running = Atomic<Bool>(false)

    /// PARange: 40-bit physical (and guest intermediate physical) addresses.
    static let physicalAddressBits: UInt64 = 40

    public enum CounterSource: Sendable {
        /// The host's monotonic clock, scaled to CNTFRQ_EL0.
        case hostClock(start: ContinuousClock.Instant)
        /// Derived from instructions retired (deterministic mode): `instructionsPerTick`
        /// instructions per counter tick.
        case instructions(perTick: UInt64)
        /// Counter ticks from elsewhere (a deterministic machine's clock, shared by its vCPUs).
        case external(@Sendable () -> UInt64)
    }

    public init(memory: PhysicalWindow, affinity: UInt64 = 0) {
        self.memory = memory
        self.affinity = affinity
        registers = .allocate(capacity: RegisterFile.count)
        registers.initialize(repeating: 0, count: RegisterFile.count)
        vectors = .allocate(capacity: 64)
        vectors.initialize(repeating: 0, count: 64)
        state = .allocate(capacity: 1)
        state.initialize(to: ArchState())
        let entries = 1 << Self.decodeCacheBits
        decodeCache = .allocate(capacity: entries)
        // Every slot holds the decoding of word 0: a slot's tag only ever matches the word it
        // was filled with, and word 0 hashes to slot 0, so this is a valid cache.
        decodeCache.initialize(repeating: Decoder.decode(0), count: entries)
    }

    deinit {
        registers.deallocate()
        vectors.deallocate()
        state.deinitialize(count: 1)
        state.deallocate()
        decodeCache.deallocate()
        tlb.deallocate()
    }

    // MARK: Reset and access from outside

    /// Powers the CPU on at `pc` in EL1h with DAIF masked, the MMU off and `x0` set (what PSCI
    /// CPU_ON and pKVM's vCPU reset give a protected VM's vCPU).
    public func reset(pc: UInt64, x0: UInt64 = 0, x1: UInt64 = 0, x2: UInt64 = 0, x3: UInt64 = 0) {
        registers.update(repeating: 0, count: RegisterFile.count)
        vectors.update(repeating: 0, count: 64)
        let instructions = state.pointee.instructions
        state.pointee = ArchState()
        state.pointee.instructions = instructions
        state.pointee.pc = pc
        registers[0] = x0
        registers[1] = x1
        registers[2] = x2
        registers[3] = x3
        tlb.flushAll()
    }

    /// General-purpose register `n` (0...30), 31 reading as zero.
    public func x(_ n: Int) -> UInt64 { n >= 31 ? 0 : registers[n] }
    public func setX(_ n: Int, _ value: UInt64) { if n < 31 { registers[n] = value } }
    public var pc: UInt64 {
        get { state.pointee.pc }
        set { state.pointee.pc = newValue }
    }
    /// The stack pointer of the current exception level.
    public var sp: UInt64 {
        get { registers[Int(RegisterFile.sp)] }
        set { registers[Int(RegisterFile.sp)] = newValue }
    }
    public var instructionsRetired: UInt64 { state.pointee.instructions }

    // MARK: Cross-thread requests

    /// Makes `run` return `.kicked` at the next instruction boundary it checks (every taken
    /// branch and every page crossing), from any thread.
    public func kick() { attention.bitwiseOr(1, ordering: .releasing) }

    /// Asks the CPU to drop its whole TLB before it uses a translation again, from any thread;
    /// returns the request to wait for with `hasFlushed(_:)`. EL2's stage-2 invalidations
    /// reach vCPUs on other threads this way: the request is made after the tables changed,
    /// and the CPU flushes only after it has seen the request, so no translation walked before
    /// the change survives.
    public func requestTLBFlush() -> UInt64 {
        let request = flushRequests.add(1, ordering: .sequentiallyConsistent).newValue
        attention.bitwiseOr(2, ordering: .sequentiallyConsistent)
        return request
    }

    /// Whether the CPU has flushed for `request`, or is not running (it flushes before it
    /// runs again). A caller waits while this is false.
    public func hasFlushed(_ request: UInt64) -> Bool {
        !running.load(ordering: .sequentiallyConsistent) || flushCompleted.load(ordering: .acquiring) >= request
    }

    /// Takes a pending TLB flush request now, from inside a broadcast TLBI that waits for the
    /// other CPUs (one of which may be waiting for this one).
    public func servicePendingRequests() { _ = serviceAttention() }

    /// Takes pending cross-thread requests: a TLB flush. Returns whether a kick or the
    /// interrupt line needs the caller.
    @inline(never)
    func serviceAttention() -> UInt32 {
        let pending = attention.load(ordering: .sequentiallyConsistent)
        if pending & 2 != 0 {
            attention.bitwiseAnd(~2, ordering: .sequentiallyConsistent)
            let request = flushRequests.load(ordering: .sequentiallyConsistent)
            tlb.flushAll()
            flushCompleted.store(request, ordering: .releasing)
        }
        return pending & ~2
    }

    /// Drops every cached translation now (the CPU's own thread, or while it is not running).
    public func flushTLB() { tlb.flushAll() }

    /// The interrupt line (a later interrupt controller drives it): while raised and PSTATE.I
    /// is clear, the CPU takes an IRQ exception at the next instruction boundary it checks.
    public func setInterruptLine(_ raised: Bool) {
        if raised { attention.bitwiseOr(4, ordering: .releasing) } else { attention.bitwiseAnd(~4, ordering: .releasing) }
    }

    // MARK: PSTATE helpers

    /// Switches PSTATE.EL and PSTATE.SP, banking the stack pointers (D1.6.2).
    @inline(__always)
    func setExceptionLevel(_ el: UInt8, spsel: UInt8) {
        let s = state
        let oldUsesEL1 = s.pointee.el == 1 && s.pointee.spsel == 1
        let newUsesEL1 = el == 1 && spsel == 1
        if oldUsesEL1 != newUsesEL1 {
            let current = registers[Int(RegisterFile.sp)]
            if oldUsesEL1 {
                s.pointee.spEL1 = current
                registers[Int(RegisterFile.sp)] = s.pointee.spEL0
            } else {
                s.pointee.spEL0 = current
                registers[Int(RegisterFile.sp)] = s.pointee.spEL1
            }
        }
        s.pointee.el = el
        s.pointee.spsel = spsel
    }

    /// The ASID translations are tagged with now (TCR_EL1.A1 selects TTBR0's or TTBR1's;
    /// TCR_EL1.AS 16 or 8 bits).
    @inline(__always) var currentASID: UInt32 {
        let sys = state.pointee.sys
        let ttbr = sys.tcr & (1 << 22) != 0 ? sys.ttbr1 : sys.ttbr0
        let asid = UInt32(truncatingIfNeeded: ttbr >> 48)
        return sys.tcr & (1 << 36) != 0 ? asid & 0xFFFF : asid & 0xFF
    }

    /// CNTVCT_EL0 now.
    func counterValue() -> UInt64 {
        switch counter {
        case let .hostClock(start):
            let elapsed = (ContinuousClock.now - start).components
            let ns = UInt64(max(elapsed.seconds, 0)) &* 1_000_000_000 &+ UInt64(max(elapsed.attoseconds, 0) / 1_000_000_000)
            // 62.5 MHz: 16 ns a tick.
            return ns / (1_000_000_000 / Self.counterFrequency)
        case let .instructions(perTick):
            return state.pointee.instructions / max(perTick, 1)
        case let .external(ticks):
            return ticks()
        }
    }

    /// CNTFRQ_EL0.
    public static let counterFrequency: UInt64 = 62_500_000
}

extension AArch64CPU {
    /// The instruction word at `va` as the CPU would fetch it now, or nil if the fetch would
    /// fault: for fault records and debuggers. It walks the tables without filling the TLB
    /// and never raises an exception.
    public func peekInstruction(at va: UInt64) -> UInt32? {
        guard va & 3 == 0, let t = try? translate(va & ~0xFFF, .execute, unprivileged: false) else { return nil }
        return UInt32(littleEndian: t.host.load(fromByteOffset: Int(va & 0xFFF), as: UInt32.self))
    }

    /// The 8 bytes at `va` as a read by the current EL would see them, or nil if the read would
    /// fault (no TLB fill, no exception): for debuggers and reports.
    public func peek64(at va: UInt64) -> UInt64? {
        guard let t = try? translate(va & ~0xFFF, .read, unprivileged: false), va & 0xFFF <= 4088 else { return nil }
        return UInt64(littleEndian: t.host.loadUnaligned(fromByteOffset: Int(va & 0xFFF), as: UInt64.self))
    }

    /// The value of register `name` as Capstone names it ("x3", "w3", "sp", "wzr"), for fault
    /// records; nil for a register the CPU does not name that way.
    public func registerValue(_ name: String) -> UInt64? {
        switch name {
        case "sp", "wsp": return sp
        case "xzr", "wzr": return 0
        case "fp": return x(29)
        case "lr": return x(30)
        default:
            guard let first = name.first, first == "x" || first == "w", let n = Int(name.dropFirst()), n <= 30 else { return nil }
            return first == "x" ? x(n) : x(n) & 0xFFFF_FFFF
        }
    }
}
