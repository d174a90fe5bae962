import Crypto
import EL2
import HostMemory
import Synchronization
import Tracing

/// A protected-VM machine: pKVM's host (this VMM), its EL2 (`Hypervisor`), and one guest run by
/// an execution backend (`ExecutionBackend`: KVM, a scripted test double, an interpreter).
///
/// Physical memory is one memory file: guest RAM first (guest-physical address
/// `layout.memory.lowerBound + x` is physical address `ramBase + x`, as a memslot backs IPAs
/// linearly), then the host's own pages (VM
/// structures, PGDs, memcache top-ups), then EL2's carveout. EL2 manages all of it. The VMM's
/// own code touches guest memory only through `accessor`, whose view of the file EL2 keeps
/// protected like the host stage-2 (`MachineEventSink`); the backend follows the guest's
/// stage-2 its own way.
///
/// Lifecycle: `init` builds everything and loads the images, `run()` boots vCPU 0 and returns
/// when the guest powers off, resets or is stopped, `teardown()` gives every page back to the
/// host and checks it.
public final class Machine: @unchecked Sendable {
    public let configuration: MachineConfiguration
    /// EL2. Tests and `pvm` inspect it; the VMM calls it as pKVM's host kernel would.
    public let hypervisor: Hypervisor
    /// The guest's handle in EL2.
    public let handle: VMHandle
    /// Physical address of the first guest-physical byte the VMM backs (`layout.memory`):
    /// 0x8000_0000 on x86-64, where that is guest-physical 0; on AArch64 the same address as the
    /// guest-physical one (0x7FC0_0000: pvmfw's region, then RAM). Either way a guest frame and
    /// its page are equally aligned up to 1 GiB, so `--guest-block 1g` blocks can form.
    public let ramBase: UInt64
    /// Guest memory as the VMM's device code must see it.
    public let accessor: HostAccessor
    /// What runs the guest's instructions.
    public let backend: any ExecutionBackend
    /// Where everything is in the guest's physical address space (per architecture).
    public let layout: MachineLayout
    /// The memory the guest's RAM is made of: each frame's page, its shared / private attribute
    /// (EL2's), the host's references on it, and in-place conversion (`convertGuestMemory`).
    public let guestMemory: GuestMemory

    let ram: GuestRAM
    let sink: MachineEventSink
    let hostPool: HostPagePool
    let vcpus: [any GuestVCPU]
    let firmwareEntry: UInt64
    /// Bytes of the staged payload (the AArch64 firmware gets it in x2).
    let stagedPayloadSize: UInt64
    /// Where the payload is (x1 for the AArch64 firmware): the staging area for an ELF payload,
    /// the kernel's load address for a Linux Image.
    let payloadAddress: UInt64
    /// Where a Linux kernel and its initramfs go, when the payload is one.
    let linuxPlacement: LinuxPlacement?
    let trace: EventTrace?
    let start = monotonicNanoseconds()
    /// The devices behind guest-physical MMIO pages.
    let devices: MMIODeviceMap
    /// Whether the backend emulates a GIC (the device tree then describes it).
    let hasInterruptController: Bool
    /// The host's DMA engine (stream 1, in the host's SMMU domain), when there is an SMMU.
    public private(set) var hostDMA: DMAEngine?
    /// The DMA engine assigned to the guest (stream 3; its registers at GuestLayout.dmaMMIO).
    public private(set) var guestDMA: DMAEngine?
    /// The virtio-style block device (stream 2; registers at GuestLayout.blockMMIO).
    private(set) var blockDevice: BlockDevice?
    /// The AArch64 machine's PL011, which takes the console's input (`consoleInput`).
    private(set) var uart: PL011Device?
    /// A Linux guest's virtio-rng (with an SMMU and a GIC).
    private(set) var virtioRNG: VirtioRNGDevice?

    /// Whether the machine has the virtio-rng and its restricted DMA pool: a Linux kernel on
    /// the AArch64 machine with a GIC and an SMMU.
    var hasVirtio: Bool { configuration.linux != nil && hasInterruptController && configuration.iommuMode != nil }

    /// The restricted DMA pool (a `restricted-dma-pool` reserved-memory region the guest shares
    /// for its virtio devices): the last 1 MiB of RAM below the device tree.
    var restrictedPool: Range<UInt64>? {
        hasVirtio ? layout.handoff - AArch64Layout.restrictedPoolSize ..< layout.handoff : nil
    }

    // Run state, shared between vCPU threads.
    struct RunState {
        var power: [Bool]
        var threads: [ThreadHandle?]
        var outcome: RunOutcome?
        /// Threads to join, in start order.
        var joinable: [ThreadHandle] = []
    }
    let vmmFailure = Mutex<VMMError?>(nil)
    /// Host accesses EL2 refused (the console reading a page the guest did not share), the
    /// first `hostFaultLogLimit` of them; `counters.hostFaults` counts all.
    let hostFaultLog = Mutex<[HostAccessError]>([])
    static let hostFaultLogLimit = 64
    let runState: Mutex<RunState>
    let stopRequested = Atomic<Bool>(false)
    let counters = Mutex(MachineCounters())
    /// Guest frames the VMM donated or shared (gfn), and those the guest relinquished.
    struct GuestPages {
        var given: Set<UInt64> = []
        var relinquished: Set<UInt64> = []
    }
    let guestPages = Mutex(GuestPages())
    /// The guest's PSCI_VERSION calls (the bench guest's markers): when, and the calling
    /// vCPU's instruction count if the backend keeps one.
    let markers = Mutex<[(time: UInt64, instructions: UInt64?)]>([])
    /// A deterministic run's clock (unused otherwise).
    let virtualClock = VirtualClock()
    /// TRNG's random words: the host's random source, or in a deterministic run a SplitMix64
    /// stream seeded from the run's seed, so the same seed gives the same guest entropy.
    let entropy: Mutex<UInt64?>
    static let markerLimit = 1024

    /// Builds the machine on `backend`: memory, EL2, the EL2 VM, the backend's VM and vCPUs;
    /// loads firmware, payload and boot structures into host-owned pages; donates the boot
    /// structures.
    public init(_ configuration: MachineConfiguration, backend: any ExecutionBackend) throws(VMMError) {
        self.configuration = configuration
        self.backend = backend
        trace = configuration.trace
        try configuration.validate(maxVCPUs: backend.maxVCPUs)
        if case .deterministic = configuration.scheduling {
            // Every event, from EL2's boot on, at virtual time: 0 until a vCPU has run.
            let clock = virtualClock
            trace?.useClock { clock.now }
        }
        let layout = MachineLayout(architecture: backend.architecture, ram: configuration.memory)
        self.layout = layout
        ramBase = layout.memory.lowerBound == 0 ? 0x8000_0000 : layout.memory.lowerBound

        // Images first: a bad image is refused before anything is built.
        let firmware: ELFImage
        do throws(ELFImage.ImageError) {
            firmware = try ELFImage(bytes: configuration.firmware, name: configuration.firmwareName,
                                    window: layout.firmwareWindow, machine: backend.architecture)
            if configuration.linux == nil {
                let stagingLimit = Int(layout.payloadStaging.upperBound - layout.payloadStaging.lowerBound)
                if configuration.payload.count > stagingLimit {
                    throw ELFImage.ImageError.tooLarge(name: configuration.payloadName, size: configuration.payload.count,
                                                       limit: stagingLimit)
                }
                _ = try ELFImage(bytes: configuration.payload, name: configuration.payloadName,
                                 window: layout.payloadWindow, machine: backend.architecture)
            }
        } catch { throw .image(error) }
        firmwareEntry = firmware.entry
        stagedPayloadSize = UInt64(configuration.payload.count)
        if let linux = configuration.linux {
            linuxPlacement = try LinuxPlacement(kernel: configuration.payload, name: configuration.payloadName, linux: linux,
                                                layout: layout)
            payloadAddress = linuxPlacement!.kernel.lowerBound
        } else {
            linuxPlacement = nil
            payloadAddress = layout.payloadStaging.lowerBound
        }

        // Physical memory: guest memory, then the host's pool and EL2's carveout.
        let guestSize = layout.memorySize
        let physicalSize = guestSize + (8 << 20) + guestSize / 32
        let file: SharedMemoryFile, el2View: SharedMemoryFile.View, hostView: SharedMemoryFile.View
        do {
            file = try SharedMemoryFile(name: "pvm-ram", size: Int(physicalSize))
            el2View = try file.map(access: .readWrite)
            hostView = try file.map(access: .readWrite)
        } catch { throw .memory(error) }
        let memory: PhysicalMemory
        do {
            memory = try PhysicalMemory(regions: [MemoryRegion(base: PhysAddr(ramBase), size: physicalSize)],
                                        backing: el2View.buffer, owner: file, clearPage: AnonymousMemory.clearPage)
        } catch { throw .layout(error) }
        ram = GuestRAM(file: file, ramBase: ramBase, guestBase: layout.memory.lowerBound, guestSize: guestSize, memory: memory)
        try backend.attach(ram)
        sink = MachineEventSink(hostView: hostView, ramBase: ramBase, trace: trace, backend: backend.eventSink)
        do {
            hypervisor = try Hypervisor(memory: memory, ipaBits: 40, iommu: configuration.iommuMode,
                                        profile: configuration.profile, sink: sink)
        } catch { throw .el2Boot(error) }
        hostPool = HostPagePool(PhysAddr(ramBase + guestSize).pfn ..< hypervisor.carveout.lowerBound)
        accessor = HostAccessor(hypervisor: hypervisor, hostView: hostView, ramBase: ramBase,
                                guestBase: layout.memory.lowerBound, guestSize: guestSize, trace: trace)

        // The EL2 VM (pkvm_create_hyp_vm): a metadata page and an aligned PGD from the host.
        let pgdPages = hypervisor.geometry.pgdPages
        guard let pgd = hostPool.allocate(count: pgdPages, alignment: pgdPages), let metadata = hostPool.allocate() else {
            throw .configuration(.hostPoolExhausted)
        }
        do {
            handle = try hypervisor.createVM(protected: configuration.isProtected, vcpus: configuration.vcpus,
                                             donating: .init(metadata: metadata, pgd: pgd))
        } catch { throw .hypervisor(operation: "__pkvm_init_vm", error: error) }
        guestMemory = GuestMemory(hypervisor: hypervisor, handle: handle, firstGFN: IPA(layout.memory.lowerBound).gfn,
                                  firstPFN: PhysAddr(ramBase).pfn, pageCount: guestSize >> pageShift,
                                  pinMode: configuration.hostPins, blockSize: configuration.guestBlock)
        let vmid = hypervisor.vm(handle)!.vmid
        let stage2 = hypervisor.stage2Registers(vm: handle)!
        backend.attachGuest(vmid: vmid, stage2: GuestStage2(vttbr: stage2.vttbr, vtcr: stage2.vtcr))
        trace?.recordHeader(.machine(MachineInfo(
            vm: handle, vmid: vmid.rawValue, isProtected: configuration.isProtected,
            vcpus: configuration.vcpus, architecture: backend.architecture.rawValue, guestRAMBase: layout.memory.lowerBound,
            guestMemory: guestSize, physicalBase: ramBase, physicalSize: physicalSize,
            iommu: configuration.iommuMode.map { "\($0)" } ?? "none", image: configuration.payloadName)))

        let interruptFrames = backend.attachInterruptController(vcpus: configuration.vcpus)
        var vcpus: [any GuestVCPU] = []
        for i in 0 ..< configuration.vcpus { vcpus.append(try backend.makeVCPU(index: i)) }
        self.vcpus = vcpus
        if case let .deterministic(seed) = configuration.scheduling { entropy = Mutex(seed ^ 0x544E_5247) } else { entropy = Mutex(nil) }
        runState = Mutex(RunState(power: Array(repeating: false, count: configuration.vcpus),
                                  threads: Array(repeating: nil, count: configuration.vcpus)))
        devices = MMIODeviceMap()
        for frame in interruptFrames { devices.add(frame.device, at: frame.base, size: frame.size) }
        hasInterruptController = !interruptFrames.isEmpty

        try attachDevices()
        try topUpMemcache()
        try load(firmware: firmware)
        try checkBackend()
        if case .deterministic = configuration.scheduling {
            virtualClock.vcpus.withLock { $0 = vcpus }
            let clock = virtualClock
            guard backend.useVirtualClock({ clock.now }, skip: { clock.skip($0) }) else {
                throw .configuration(.deterministic(backend: backend.name))
            }
        }
    }

    // MARK: Devices

    /// Stream IDs of pvm's DMA masters.
    public static let hostDMAStream = StreamID(1)
    public static let guestDMAStream = StreamID(3)
    /// The host driver's paging domain in `IOMMUMode.refcount`.
    public static let hostPagingDomain = IOMMUDomainID(1)

    /// The console always; with an SMMU, configures it as the host would at boot: the host's DMA
    /// engine and the block device in the host's domain (the identity domain, or a paging
    /// domain in refcount mode), the guest's DMA engine assigned to the guest.
    private func attachDevices() throws(VMMError) {
        switch layout.architecture {
        case .x86_64:
            devices.add(ConsoleDevice(accessor: accessor, console: configuration.console,
                                      refused: { [self] error in noteHostFault(error) }),
                        at: layout.console)
        case .aarch64:
            let backend = backend
            let uart = PL011Device(console: configuration.console) { level in
                backend.setInterruptLine(spi: Int(AArch64Layout.uartInterrupt), level: level)
            }
            self.uart = uart
            devices.add(uart, at: layout.console)
        }
        guard let mode = configuration.iommuMode else { return }
        do throws(HypError) {
            let domain: IOMMUDomainID
            if mode == .refcount {
                try hypervisor.iommuAllocDomain(Self.hostPagingDomain)
                domain = Self.hostPagingDomain
            } else {
                domain = .identity
            }
            try hypervisor.iommuAttach(Self.hostDMAStream, domain: domain)
            try hypervisor.iommuAttach(BlockDevice.stream, domain: domain)
            try hypervisor.iommuAssign(Self.guestDMAStream, vm: handle)
            if hasVirtio { try hypervisor.iommuAttach(VirtioRNGDevice.stream, domain: domain) }
        } catch { throw .hypervisor(operation: "SMMU setup", error: error) }
        if hasVirtio {
            let backend = backend
            var seed = UInt64.random(in: 1 ... .max)
            if case let .deterministic(s) = configuration.scheduling { seed = s ^ 0x7669_7274 }
            let rng = VirtioRNGDevice(hypervisor: hypervisor, ramBase: ramBase, guestMemory: layout.memory,
                                      pagingDomain: mode == .refcount ? Self.hostPagingDomain : nil, seed: seed, trace: trace) { level in
                backend.setInterruptLine(spi: Int(AArch64Layout.virtioRNGInterrupt), level: level)
            }
            virtioRNG = rng
            devices.add(rng, at: AArch64Layout.virtioRNG)
        }
        hostDMA = DMAEngine(name: "host-dma", stream: Self.hostDMAStream, hypervisor: hypervisor, trace: trace)
        let guestEngine = DMAEngine(name: "guest-dma", stream: Self.guestDMAStream, hypervisor: hypervisor, trace: trace)
        guestDMA = guestEngine
        let block = BlockDevice(hypervisor: hypervisor, ramBase: ramBase, guestMemory: layout.memory,
                                pagingDomain: mode == .refcount ? Self.hostPagingDomain : nil, trace: trace,
                                deterministic: configuration.scheduling != .threads)
        blockDevice = block
        devices.add(block, at: layout.block)
        devices.add(GuestDMADevice(engine: guestEngine), at: layout.dma)
    }

    /// Counts a host access EL2 refused and keeps the first few for the summary.
    func noteHostFault(_ error: HostAccessError) {
        counters.withLock { $0.hostFaults += 1 }
        hostFaultLog.withLock { if $0.count < Self.hostFaultLogLimit { $0.append(error) } }
    }

    // MARK: Loading

    /// Writes the boot structures, firmware, boot configuration and staged payload into guest
    /// RAM while the host still owns it (through the EL2-checked accessor), then donates the
    /// boot structures so the CPU can walk its page tables from the first instruction.
    private func load(firmware: ELFImage) throws(VMMError) {
        var payload = configuration.payload
        let digest = Array(SHA256.hash(data: payload))
        if configuration.tamperPayload { payload[payload.count / 2] ^= 0x01 }
        do throws(HostAccessError) {
            for (gpa, bytes) in backend.bootStructures(memory: configuration.memory) {
                try accessor.write(gpa: gpa, bytes)
            }
            switch layout.architecture {
            case .x86_64: try accessor.write(gpa: layout.handoff, bootConfiguration(payloadSize: payload.count, digest: digest))
            case .aarch64: try accessor.write(gpa: layout.handoff, deviceTree(payloadSize: payload.count, digest: digest))
            }
            for segment in firmware.segments {
                let start = Int(segment.fileOffset)
                try accessor.write(gpa: segment.address, Array(firmware.bytes[start ..< start + Int(segment.fileSize)]))
            }
            try accessor.write(gpa: payloadAddress, payload)
            if let initrd = linuxPlacement?.initrd, let bytes = configuration.linux?.initrd {
                try accessor.write(gpa: initrd.lowerBound, bytes)
            }
        } catch { throw .hostAccess(error) }
        for page in backend.bootStructurePages {
            if case let .refused(report) = resolveGuestFault(vcpu: 0, gpa: page << pageShift, access: .boot, size: 0) {
                throw .bootDonation(gpa: page << pageShift, reason: report.reason)
            }
        }
    }

    // MARK: Host-side EL2 calls

    /// The number of memcache pages kept ready for the guest's stage-2 tables.
    static let memcacheTarget = 16

    /// `topup_hyp_memcache`: refills the VM's memcache before a donation might need tables, as
    /// pkvm_mem_abort does first; to `tables` pages beyond pKVM's minimum when a range
    /// conversion may need that many.
    func topUpMemcache(atLeast tables: Int = 0) throws(VMMError) {
        do throws(HypError) {
            let current = try hypervisor.memcacheCount(vm: handle)
            let target = max(Self.memcacheTarget, tables + hypervisor.geometry.minMemcachePages)
            guard current < target else { return }
            var pages: [PFN] = []
            for _ in current ..< target {
                guard let page = hostPool.allocate() else { throw HypError.ENOMEM }
                pages.append(page)
            }
            try hypervisor.topUpMemcache(vm: handle, pages: pages)
        } catch { throw .hypervisor(operation: "memcache top-up", error: error) }
    }

    /// Throws if the host view or the backend stopped following EL2 (an mprotect failed): the
    /// MMU would no longer match EL2, so nothing may run.
    func checkBackend() throws(VMMError) {
        if let failure = sink.failure ?? backend.failure { throw .mirror(failure) }
    }

    /// Nanoseconds since the machine was created.
    /// Nanoseconds since the machine was created; in a deterministic run, the virtual clock
    /// (instructions retired by every vCPU, one a nanosecond).
    var elapsed: UInt64 {
        if case .deterministic = configuration.scheduling { return virtualNanoseconds }
        return monotonicNanoseconds() - start
    }

    /// The deterministic run's clock: instructions retired by all vCPUs.
    var virtualNanoseconds: UInt64 { virtualClock.now }

    /// The counters so far.
    public var statistics: MachineCounters {
        var c = counters.withLock { $0 }
        c.splits = sink.splits.load(ordering: .relaxed)
        c.merges = sink.merges.load(ordering: .relaxed)
        return c
    }

    /// Instructions every vCPU has retired, when the backend counts them (the interpreter).
    public var instructionsRetired: UInt64? {
        let counts = vcpus.map(\.instructionsRetired)
        return counts.contains(where: { $0 == nil }) ? nil : counts.reduce(0) { $0 + ($1 ?? 0) }
    }

    /// Whether the machine's console takes input (the AArch64 machine's PL011).
    public var acceptsConsoleInput: Bool { uart != nil }

    /// Bytes typed on the console, for the guest's UART to receive (from any thread); dropped
    /// on a machine whose console has no input.
    public func consoleInput(_ bytes: [UInt8]) { uart?.receive(bytes) }

    /// The first host accesses EL2 refused during the run (`statistics.hostFaults` counts all).
    public var hostFaults: [HostAccessError] { hostFaultLog.withLock { $0 } }

    /// The guest's PSCI_VERSION timestamps (ns since machine creation): the bench guest brackets
    /// its timed loop with them.
    public var markerTimes: [UInt64] { markers.withLock { $0.map(\.time) } }

    /// The calling vCPU's retired-instruction count at each marker (nil entries on backends
    /// that do not count).
    public var markerInstructions: [UInt64?] { markers.withLock { $0.map(\.instructions) } }
}
