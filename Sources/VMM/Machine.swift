import Crypto
import Disassembly
import EL2
import Tracing
import HostMemory
import KVM
import Synchronization
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// A protected-VM machine: pKVM's host (this VMM), its EL2 (`Hypervisor`), and one guest run
/// on KVM.
///
/// Physical memory is one memfd: guest RAM first (guest-physical address x is physical address
/// `ramBase + x`, as a memslot backs IPAs linearly), then the host's own pages (VM structures,
/// PGDs, memcache top-ups), then EL2's carveout. EL2 manages all of it; the KVM memslot (the
/// guest view) and the VMM's host view are protected page by page to match EL2's stage-2s
/// (`StageTwoMirror`).
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
    /// Physical address of guest-physical 0.
    public let ramBase: UInt64 = 0x8000_0000
    /// Guest memory as the VMM's device code must see it.
    public let accessor: HostAccessor

    let file: SharedMemoryFile
    let mirror: StageTwoMirror
    let hostPool: HostPagePool
    let kvm: KVMVirtualMachine
    let vcpus: [KVMVCPU]
    let firmwareEntry: UInt64
    let trace: EventTrace?
    let start = monotonicNanoseconds()
    /// The host's DMA engine (stream 1, in the host's SMMU domain), when there is an SMMU.
    public private(set) var hostDMA: DMAEngine?
    /// The DMA engine assigned to the guest (stream 3; its registers at GuestABI.dmaMMIO).
    public private(set) var guestDMA: DMAEngine?
    /// The virtio-style block device (stream 2; registers at GuestABI.blockMMIO).
    private(set) var blockDevice: BlockDevice?
    /// The guest DMA engine's registers: SRC, DST, LEN, FILL, STATUS, DONE.
    let guestDMARegisters = Mutex<[UInt64]>([0, 0, 0, 0, 0, 0])
    /// Capstone for x86-64, opened once: decodes faulting instructions.
    let disassembler = try? Disassembler(.x86_64)

    // Run state, shared between vCPU threads.
    struct RunState {
        var power: [Bool]
        var threads: [pthread_t?]
        var outcome: RunOutcome?
        /// Threads to join, in start order.
        var joinable: [pthread_t] = []
    }
    let vmmFailure = Mutex<VMMError?>(nil)
    /// Host accesses EL2 refused (the console reading a page the guest did not share).
    let hostFaultLog = Mutex<[HostAccessError]>([])
    let runState: Mutex<RunState>
    let stopRequested = Atomic<Bool>(false)
    let counters = Mutex(MachineCounters())
    /// Guest pages the VMM donated or shared (gfn), the relinquished ones, the MMIO guard.
    struct GuestPages {
        var given: Set<UInt64> = []
        var relinquished: Set<UInt64> = []
        var guardEnrolled = false
        var guardMapped: Set<UInt64> = []
    }
    let guestPages = Mutex(GuestPages())
    /// Timestamps of the guest's PSCI_VERSION calls (the bench guest's markers).
    let markers = Mutex<[UInt64]>([])
    /// The console buffer page, as the guest last set it.
    let consoleBuffer = Atomic<UInt64>(GuestABI.consolePage)

    /// Builds the machine: memory, EL2, the EL2 VM, the KVM VM and vCPUs; loads firmware,
    /// payload and boot structures into host-owned pages; donates the boot structures.
    public init(_ configuration: MachineConfiguration) throws(VMMError) {
        self.configuration = configuration
        trace = configuration.trace
        let system: KVMSystem
        do { system = try KVMSystem() } catch { throw .kvm(error) }
        let maxVCPUs = min(64, max(1, system.check(.maxVCPUs)))
        try configuration.validate(maxVCPUs: maxVCPUs)

        // Images first: a bad image is refused before anything is built.
        let firmware: ELFImage, payloadWindow = GuestABI.payloadWindowStart ..< configuration.memory
        do throws(ELFImage.ImageError) {
            firmware = try ELFImage(bytes: configuration.firmware, name: configuration.firmwareName,
                                    window: GuestABI.firmwareWindow)
            let stagingLimit = Int(GuestABI.payloadStagingEnd - GuestABI.payloadStaging)
            if configuration.payload.count > stagingLimit {
                throw ELFImage.ImageError.tooLarge(name: configuration.payloadName, size: configuration.payload.count,
                                                   limit: stagingLimit)
            }
            _ = try ELFImage(bytes: configuration.payload, name: configuration.payloadName, window: payloadWindow)
        } catch { throw .image(error) }
        firmwareEntry = firmware.entry

        // Physical memory: guest RAM, then the host's pool and EL2's carveout.
        let guestSize = configuration.memory
        let physicalSize = guestSize + (8 << 20) + guestSize / 32
        do {
            file = try SharedMemoryFile(name: "pvm-ram", size: Int(physicalSize))
            let el2View = try file.map(access: .readWrite)
            let hostView = try file.map(access: .readWrite)
            let guestView = try file.map(offset: 0, count: Int(guestSize), access: .none)
            mirror = StageTwoMirror(hostView: hostView, guestView: guestView, ramBase: ramBase, guestSize: guestSize,
                                    trace: configuration.trace)
            let memory = try PhysicalMemory(regions: [MemoryRegion(base: PhysAddr(ramBase), size: physicalSize)],
                                            backing: el2View.buffer, owner: file, clearPage: AnonymousMemory.clearPage)
            hypervisor = try Hypervisor(memory: memory, ipaBits: 40, iommu: configuration.iommuMode, sink: mirror)
            hostPool = HostPagePool(PhysAddr(ramBase + guestSize).pfn ..< hypervisor.carveout.lowerBound)
            accessor = HostAccessor(hypervisor: hypervisor, hostView: hostView, ramBase: ramBase, guestSize: guestSize,
                                    trace: configuration.trace)
        } catch let error as SharedMemoryFile.MemoryError {
            throw .memory(error)
        } catch {
            throw .el2("\(error)")
        }

        // The EL2 VM (pkvm_create_hyp_vm): a metadata page and an aligned PGD from the host.
        let pgdPages = hypervisor.geometry.pgdPages
        guard let pgd = hostPool.allocate(count: pgdPages, alignment: pgdPages), let metadata = hostPool.allocate() else {
            throw .configuration("the host pool is too small for the VM structures")
        }
        do {
            handle = try hypervisor.createVM(protected: configuration.isProtected,
                                             donating: .init(metadata: metadata, pgd: pgd))
        } catch { throw .hypervisor(operation: "__pkvm_init_vm", error: error) }
        mirror.attach(guest: hypervisor.vm(handle)!.vmid)
        trace?.record(.machine(MachineInfo(
            vm: handle, vmid: hypervisor.vm(handle)!.vmid.rawValue, isProtected: configuration.isProtected,
            vcpus: configuration.vcpus, architecture: "x86-64", guestRAMBase: ramBase, guestMemory: guestSize,
            physicalBase: ramBase, physicalSize: physicalSize, iommu: configuration.iommuMode.map { "\($0)" } ?? "none",
            image: configuration.payloadName)))

        // KVM: the VM, one memslot over the guest view, the vCPUs.
        do {
            kvm = try system.createVM()
            try kvm.setTSSAddress(0xfffb_d000)
            try kvm.setIdentityMapAddress(0xfffb_c000)
            let guestView = mirror.guestViewBase
            try kvm.setMemoryRegion(slot: 0, guestPhysical: 0, size: guestSize, host: guestView)
            let cpuid = try system.supportedCPUID()
            var vcpus: [KVMVCPU] = []
            for i in 0 ..< configuration.vcpus {
                let vcpu = try kvm.createVCPU(id: i)
                try vcpu.setCPUID(cpuid)
                try vcpu.enableRegisterSync()
                vcpus.append(vcpu)
            }
            self.vcpus = vcpus
        } catch { throw .kvm(error) }
        runState = Mutex(RunState(power: Array(repeating: false, count: configuration.vcpus),
                                  threads: Array(repeating: nil, count: configuration.vcpus)))
        VCPUKick.install()

        try attachDevices()
        try topUpMemcache()
        try load(firmware: firmware)
        try checkMirror()
    }

    // MARK: Devices

    /// Stream IDs of pvm's DMA masters.
    public static let hostDMAStream = StreamID(1)
    public static let guestDMAStream = StreamID(3)
    /// The host driver's paging domain in `IOMMUMode.refcount`.
    public static let hostPagingDomain = IOMMUDomainID(1)

    /// Configures the SMMU as the host would at boot: the host's DMA engine and the block device
    /// in the host's domain (the identity domain, or a paging domain in refcount mode), the
    /// guest's DMA engine assigned to the guest.
    private func attachDevices() throws(VMMError) {
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
        } catch { throw .hypervisor(operation: "SMMU setup", error: error) }
        hostDMA = DMAEngine(name: "host-dma", stream: Self.hostDMAStream, hypervisor: hypervisor, trace: trace)
        guestDMA = DMAEngine(name: "guest-dma", stream: Self.guestDMAStream, hypervisor: hypervisor, trace: trace)
        blockDevice = BlockDevice(hypervisor: hypervisor, ramBase: ramBase, guestSize: configuration.memory,
                                  pagingDomain: mode == .refcount ? Self.hostPagingDomain : nil, trace: trace)
    }

    // MARK: Loading

    /// Writes the boot structures, firmware, boot configuration and staged payload into guest
    /// RAM while the host still owns it (through the EL2-checked accessor), then donates the
    /// boot structures so the CPU can walk its page tables from the first instruction.
    private func load(firmware: ELFImage) throws(VMMError) {
        var payload = configuration.payload
        let digest = Array(SHA256.hash(data: payload))
        if configuration.tamperPayload { payload[payload.count / 2] ^= 0x01 }
        do {
            for (gpa, bytes) in X86Boot.structures(memory: configuration.memory) {
                try accessor.write(gpa: gpa, bytes)
            }
            try accessor.write(gpa: GuestABI.bootConfig, bootConfiguration(payloadSize: payload.count, digest: digest))
            for segment in firmware.segments {
                let start = Int(segment.fileOffset)
                try accessor.write(gpa: segment.address, Array(firmware.bytes[start ..< start + Int(segment.fileSize)]))
            }
            try accessor.write(gpa: GuestABI.payloadStaging, payload)
        } catch {
            throw .el2("loading the guest: \(error)")
        }
        for page in GuestABI.bootStructurePages {
            if case let .refused(report) = resolveGuestFault(vcpu: 0, gpa: page << 12, access: .boot, size: 0) {
                throw .el2("donating boot page: \(report.reason)")
            }
        }
    }

    /// The boot configuration page (docs/abi.md).
    private func bootConfiguration(payloadSize: Int, digest: [UInt8]) -> [UInt8] {
        var c = [UInt8](repeating: 0, count: GuestABI.configSize)
        func put<T: FixedWidthInteger>(_ value: T, at offset: Int) {
            withUnsafeBytes(of: value.littleEndian) { c.replaceSubrange(offset ..< offset + MemoryLayout<T>.size, with: $0) }
        }
        put(GuestABI.configMagic, at: 0)
        put(GuestABI.configVersion, at: 4)
        put(UInt32(GuestABI.configSize), at: 8)
        put(configuration.isProtected ? GuestABI.configFlagProtected : 0, at: 12)
        put(GuestABI.payloadStaging, at: 16)
        put(UInt64(payloadSize), at: 24)
        c.replaceSubrange(32 ..< 64, with: digest)
        put(UInt64(0), at: 64)
        put(configuration.memory, at: 72)
        put(GuestABI.consolePage, at: 80)
        put(GuestABI.consoleMMIO, at: 88)
        put(UInt32(configuration.vcpus), at: 96)
        put(configuration.payloadArgument, at: 104)
        put(GuestABI.payloadWindowStart, at: 112)
        put(configuration.memory, at: 120)
        return c
    }

    // MARK: Host-side EL2 calls

    /// The number of memcache pages kept ready for the guest's stage-2 tables.
    static let memcacheTarget = 16

    /// `topup_hyp_memcache`: refills the VM's memcache before a donation might need tables, as
    /// pkvm_mem_abort does first.
    func topUpMemcache() throws(VMMError) {
        do throws(HypError) {
            let current = try hypervisor.memcacheCount(vm: handle)
            guard current < Self.memcacheTarget else { return }
            var pages: [PFN] = []
            for _ in current ..< Self.memcacheTarget {
                guard let page = hostPool.allocate() else { throw HypError.ENOMEM }
                pages.append(page)
            }
            try hypervisor.topUpMemcache(vm: handle, pages: pages)
        } catch { throw .hypervisor(operation: "memcache top-up", error: error) }
    }

    /// Throws if an mprotect failed: the real MMU no longer matches EL2, so nothing may run.
    func checkMirror() throws(VMMError) {
        if let failure = mirror.firstFailure { throw .configuration("mirroring EL2 into the MMU failed: \(failure)") }
    }

    /// Nanoseconds since the machine was created.
    var elapsed: UInt64 { monotonicNanoseconds() - start }

    /// The counters so far.
    public var statistics: MachineCounters { counters.withLock { $0 } }

    /// Every host access EL2 refused during the run.
    public var hostFaults: [HostAccessError] { hostFaultLog.withLock { $0 } }

    /// The guest's PSCI_VERSION timestamps (ns since machine creation): the bench guest brackets
    /// its timed loop with them.
    public var markerTimes: [UInt64] { markers.withLock { $0 } }
}
