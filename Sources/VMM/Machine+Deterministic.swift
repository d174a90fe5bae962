import EL2
import Synchronization

/// Deterministic scheduling (docs/vmm.md): every vCPU on the calling thread, in turns whose
/// order and length a seed picks, with time counted in instructions. A race between vCPUs, or
/// between a vCPU and the block device's transfer, then happens the same way every time for
/// a seed and differently for another: a reproducible test instead of a flaky one.
extension Machine {
    /// A splitmix64 stream (Steele, Lea and Flood, "Fast splittable pseudorandom number
    /// generators", OOPSLA 2014): the scheduler's only source of choices.
    struct SchedulerRandom {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        mutating func below(_ n: Int) -> Int { Int(next() % UInt64(n)) }
    }

    /// The shortest and longest turn, in instructions.
    static let shortestTurn = 100
    static let longestTurn = 5_000

    /// Runs the machine to its end on this thread.
    func runDeterministic(seed: UInt64) throws(VMMError) -> RunOutcome {
        var random = SchedulerRandom(state: seed)
        do { try hypervisor.loadVCPU(vm: handle, vcpu: 0) } catch { throw .hypervisor(operation: "vcpu_load", error: error) }
        runState.withLock { $0.power[0] = true }
        trace?.record(.power(vcpu: 0, event: "start"))
        var exits = Array(repeating: 0, count: vcpus.count)
        while !stopRequested.load(ordering: .acquiring) {
            let on = runState.withLock { state in state.power.indices.filter { state.power[$0] } }
            guard !on.isEmpty else { break }
            // A turn: a vCPU, or (when a transfer is in flight) one chunk of the block device.
            if let block = blockDevice, block.hasPendingChunk, random.below(on.count + 1) == 0 {
                block.stepOneChunk()
                continue
            }
            let index = on[random.below(on.count)]
            let budget = Self.shortestTurn + random.below(Self.longestTurn - Self.shortestTurn)
            exits[index] += 1
            if !handleExit(vcpus[index].run(budget: budget), vcpu: index) {
                hypervisor.putVCPU(vm: handle, vcpu: index)
                finish(index, exits: exits[index])
                exits[index] = 0
            }
        }
        // vCPUs still on when the machine stopped (SYSTEM_OFF from another vCPU).
        for index in runState.withLock({ state in state.power.indices.filter { state.power[$0] } }) {
            hypervisor.putVCPU(vm: handle, vcpu: index)
            finish(index, exits: exits[index])
        }
        blockDevice?.stepUntilIdle()
        return try endOfRun()
    }
}

/// A deterministic machine's time: the instructions every vCPU has retired, one a nanosecond,
/// plus the time idle vCPUs skipped (a WFI moves the clock to its timer's deadline instead of
/// spinning there). Read by the trace (from EL2's boot on, when it is still 0) and by the
/// guest's counter.
final class VirtualClock: Sendable {
    let vcpus = Mutex<[any GuestVCPU]>([])
    let skipped = Atomic<UInt64>(0)

    var now: UInt64 { vcpus.withLock { $0 }.reduce(0) { $0 &+ ($1.instructionsRetired ?? 0) } &+ skipped.load(ordering: .relaxed) }

    /// An idle vCPU lets `nanoseconds` of virtual time pass.
    func skip(_ nanoseconds: UInt64) { skipped.add(nanoseconds, ordering: .relaxed) }
}
