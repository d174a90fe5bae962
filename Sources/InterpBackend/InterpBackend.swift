import AArch64
import EL2
import HostMemory
import Synchronization
import VMM
#if canImport(Glibc)
import Glibc
#endif

/// Runs AArch64 guests on pvm's own CPU (`AArch64CPU`), on any host. The CPU walks the guest's
/// stage-2 tables where EL2 keeps them, in the machine's physical memory, so nothing needs to
/// be mirrored: the backend only has to make EL2's TLB invalidations take effect on every vCPU
/// before the EL2 call that caused them returns, which `TLBShootdown` does.
public final class InterpBackend: ExecutionBackend, @unchecked Sendable {
    public let name = "interp"
    public let architecture = GuestArchitecture.aarch64
    public let maxVCPUs = 64

    /// Set by `attach` / `attachGuest`, before any vCPU exists; read-only afterwards.
    private var view: SharedMemoryFile.View?
    private var window: PhysicalWindow?
    private var stage2: GuestStage2?
    let shootdown = TLBShootdown()
    /// The GICv3 beside the vCPUs (set by `attachInterruptController`, before any vCPU exists).
    private(set) var gic: GICv3?
    /// The vCPUs made so far (by `makeVCPU`, on the thread that builds the machine).
    private var vcpus: [InterpVCPU] = []

    public init() {}

    public var eventSink: (any EL2EventSink)? { shootdown }

    public func attach(_ ram: GuestRAM) throws(VMMError) {
        // The whole physical memory, read-write: guest accesses reach only what stage 2 maps,
        // and the stage-2 walks read EL2's tables in the carveout.
        let view: SharedMemoryFile.View
        do { view = try ram.file.map(access: .readWrite) } catch { throw .memory(error) }
        self.view = view
        window = PhysicalWindow(base: ram.ramBase, size: UInt64(view.buffer.count), host: view.buffer.baseAddress!)
    }

    public func attachGuest(vmid: VMID, stage2: GuestStage2) {
        self.stage2 = stage2
        shootdown.vmid = vmid
    }

    public func makeVCPU(index: Int) throws(VMMError) -> any GuestVCPU {
        guard let window, let stage2 else {
            throw .backend(operation: "interpreter vCPU \(index)", error: InterpError(description: "no guest memory or stage 2 yet"))
        }
        let cpu = AArch64CPU(memory: window, affinity: MPIDR(vcpu: index).hardwareID)
        cpu.stage2Configuration = Stage2Configuration(vttbr: stage2.vttbr, vtcr: stage2.vtcr)
        shootdown.add(cpu)
        cpu.broadcastTLBInvalidation = { [shootdown, weak cpu] in
            guard let cpu else { return }
            shootdown.flushAll(except: cpu)
        }
        let vcpu = InterpVCPU(index: index, cpu: cpu, gic: gic)
        if getenv("PVM_DEBUG_UNDEFINED") != nil {
            cpu.undefinedObserver = { pc, word, el in
                let line = "pvm: vCPU \(index): UNDEFINED at EL\(el) pc 0x\(String(pc, radix: 16)): 0x\(String(word, radix: 16))\n"
                _ = line.withCString { write(2, $0, strlen($0)) }
            }
        }
        vcpus.append(vcpu)
        if let gic {
            cpu.cpuInterface = gic.cpuInterface(index)
            let wakeup = vcpu.wakeup
            gic.connect(cpu: index) { [weak cpu] raised in
                cpu?.setInterruptLine(raised)
                if raised { wakeup.signal() }
            }
            cpu.timerChanged = { [weak vcpu] in vcpu?.updateTimers() }
        }
        return vcpu
    }

    public func attachInterruptController(vcpus: Int) -> [(base: UInt64, size: UInt64, device: any MMIODevice)] {
        let gic = GICv3(affinities: (0 ..< vcpus).map { MPIDR(vcpu: $0).hardwareID })
        self.gic = gic
        return gic.devices(distributor: AArch64Layout.gicDistributor, redistributors: AArch64Layout.gicRedistributors,
                           stride: AArch64Layout.gicRedistributorStride)
    }

    public func setInterruptLine(spi: Int, level: Bool) { gic?.setSPI(spi, level: level) }

    public func bootStructures(memory: UInt64) -> [(gpa: UInt64, bytes: [UInt8])] { [] }
    public var bootStructurePages: Range<UInt64> { 0 ..< 0 }
    public var failure: String? { nil }

    /// The machine's clock in instructions becomes every vCPU's CNTVCT_EL0: one instruction a
    /// nanosecond, so CNTFRQ_EL0's 62.5 MHz is one tick per 16 instructions.
    public func useVirtualClock(_ clock: @escaping @Sendable () -> UInt64, skip: @escaping @Sendable (UInt64) -> Void) -> Bool {
        let perTick = AArch64CPU.nanosecondsPerTick
        for vcpu in vcpus {
            vcpu.cpu.counter = .external { clock() / perTick }
            vcpu.skipVirtualTime = skip
        }
        return true
    }
}

/// EL2's stage-2 TLB invalidations, made good on every vCPU of the guest: each CPU is asked to
/// drop its software TLB, and the invalidation returns only once every CPU that is running has
/// done so (a CPU outside `run` drops it before it runs again). This is what TLBI followed by
/// DSB guarantees on hardware. Also the broadcast of the guest's own inner-shareable TLBIs.
final class TLBShootdown: EL2EventSink, @unchecked Sendable {
    /// The guest's VMID (set before any invalidation can happen).
    var vmid: VMID?
    private let cpus = Mutex<[AArch64CPU]>([])

    func add(_ cpu: AArch64CPU) { cpus.withLock { $0.append(cpu) } }

    func invalidate(_ request: TLBInvalidation) {
        guard request.vmid == vmid else { return }
        flushAll(except: nil)
    }

    /// Asks every CPU but `except` to flush and waits until each has (or is not running).
    func flushAll(except: AArch64CPU?) {
        let targets = cpus.withLock { $0 }.filter { $0 !== except }
        let requests = targets.map { ($0, $0.requestTLBFlush()) }
        for (cpu, request) in requests {
            var spins = 0
            while !cpu.hasFlushed(request) {
                spins += 1
                // A CPU acknowledges at its next taken branch or page crossing.
                if spins > 64 { sched_yield() }
                // The waiting CPU may itself be asked to flush (two broadcasts at once).
                except?.servicePendingRequests()
            }
        }
    }
}

/// A backend setup error (the machine core called the seam out of order).
struct InterpError: Error, Sendable, CustomStringConvertible {
    let description: String
}
