import CKVM
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// One KVM vCPU: its fd, its shared `kvm_run` page, and the register ioctls (api.rst, "vCPU
/// ioctls"). Not thread-safe: one thread runs a vCPU; other threads may only call
/// `requestExit()`.
public final class KVMVCPU: @unchecked Sendable {
    public let vm: KVMVirtualMachine
    public let id: Int
    let fd: OwnedDescriptor
    /// The `kvm_run` mapping, valid until deinit. KVM writes it during KVM_RUN on this thread.
    let shared: UnsafeMutablePointer<kvm_run>
    let mapSize: Int
    /// Whether KVM copies the general registers into `kvm_run.s` on every exit.
    public private(set) var syncsRegisters = false

    init(vm: KVMVirtualMachine, id: Int, fd: OwnedDescriptor, run: UnsafeMutableRawPointer, mapSize: Int) {
        self.vm = vm
        self.id = id
        self.fd = fd
        // The mapping is at least sizeof(kvm_run) (KVM_GET_VCPU_MMAP_SIZE) and page aligned.
        self.shared = run.bindMemory(to: kvm_run.self, capacity: 1)
        self.mapSize = mapSize
    }

    deinit { _ = munmap(UnsafeMutableRawPointer(shared), mapSize) }

    // MARK: Running

    /// `KVM_RUN` until the next exit, decoded.
    public func run() throws(KVMError) -> KVMExit {
        if pvm_kvm_run(fd.rawValue) < 0 {
            let error = errno
            switch error {
            case EINTR, EAGAIN:
                shared.pointee.immediate_exit = 0
                return .interrupted
            case EFAULT, EHWPOISON:
                if shared.pointee.exit_reason == UInt32(PVM_KVM_EXIT_MEMORY_FAULT) {
                    let fault = pvm_kvm_run_memory_fault(shared)!.pointee
                    return .memoryFault(address: fault.gpa, size: fault.size, flags: fault.flags)
                }
                if error == EFAULT { return .unreportedFault }
                throw KVMError("KVM_RUN on vCPU \(id)", errno: error, detail: "hardware-poisoned guest page")
            default:
                throw KVMError("KVM_RUN on vCPU \(id)", errno: error)
            }
        }
        let r = shared.pointee
        switch Int32(r.exit_reason) {
        case KVM_EXIT_IO:
            return .io(port: r.io.port, size: r.io.size, isWrite: r.io.direction == UInt8(KVM_EXIT_IO_OUT),
                       count: r.io.count, dataOffset: r.io.data_offset)
        case KVM_EXIT_MMIO:
            let data = withUnsafeBytes(of: r.mmio.data) { $0.loadUnaligned(as: UInt64.self) }
            return .mmio(address: r.mmio.phys_addr, length: r.mmio.len, isWrite: r.mmio.is_write != 0, data: data)
        case KVM_EXIT_HLT: return .halt
        case KVM_EXIT_SHUTDOWN: return .shutdown
        case KVM_EXIT_INTR: return .interrupted
        case KVM_EXIT_FAIL_ENTRY:
            return .failEntry(reason: r.fail_entry.hardware_entry_failure_reason, cpu: r.fail_entry.cpu)
        case KVM_EXIT_SYSTEM_EVENT: return .systemEvent(type: r.system_event.type)
        case KVM_EXIT_INTERNAL_ERROR:
            var bytes: [UInt8] = []
            let failure = r.emulation_failure
            if r.internal.suberror == UInt32(KVM_INTERNAL_ERROR_EMULATION),
               failure.flags & UInt64(KVM_INTERNAL_ERROR_EMULATION_FLAG_INSTRUCTION_BYTES) != 0 {
                withUnsafeBytes(of: failure.insn_bytes) { raw in
                    bytes = Array(raw.prefix(Int(min(failure.insn_size, 15))))
                }
            }
            return .internalError(suberror: r.internal.suberror, instructionBytes: bytes)
        default:
            return .other(reason: r.exit_reason)
        }
    }

    /// Supplies the value of an MMIO read before the next `run()`: KVM completes the guest's
    /// load with the first `length` bytes.
    public func completeMMIORead(_ value: UInt64) {
        withUnsafeMutableBytes(of: &shared.pointee.mmio.data) { $0.storeBytes(of: value, as: UInt64.self) }
    }

    /// Makes the vCPU's current or next `KVM_RUN` return at once (`immediate_exit`). Safe from any
    /// thread; pair it with a signal to the vCPU thread to interrupt a guest that is running.
    public func requestExit() {
        // A single byte store in the shared page; KVM reads it on entry and after signals.
        UnsafeMutableRawPointer(shared).storeBytes(of: 1, toByteOffset: 1, as: UInt8.self)
    }

    // MARK: Sync registers (KVM_CAP_SYNC_REGS, x86)

    #if arch(x86_64)
    /// Asks KVM to copy the general registers into `kvm_run` on every exit, so a hypercall reads
    /// and writes them without a KVM_GET_REGS / KVM_SET_REGS pair (about 10 µs on nested hosts).
    public func enableRegisterSync() throws(KVMError) {
        let mask = vm.system.check(.syncRegisters)
        guard mask & Int(KVM_SYNC_X86_REGS) != 0 else {
            throw KVMError("KVM_CAP_SYNC_REGS", errno: 0, detail: "this KVM cannot sync general registers")
        }
        shared.pointee.kvm_valid_regs = UInt64(KVM_SYNC_X86_REGS)
        syncsRegisters = true
    }

    /// The general registers as KVM left them at the last exit (requires `enableRegisterSync`).
    public var syncedRegisters: X86Registers {
        get { X86Registers(shared.pointee.s.regs.regs) }
        set {
            shared.pointee.s.regs.regs = newValue.kvm
            shared.pointee.kvm_dirty_regs |= UInt64(KVM_SYNC_X86_REGS)
        }
    }

    /// rax, rbx, rcx and rdx as KVM left them at the last exit, without copying the rest of
    /// the sync area (the four registers of pvm's x86 hypercall conduit).
    @inline(__always)
    public var syncedRAXToRDX: (UInt64, UInt64, UInt64, UInt64) {
        let r = shared.pointee.s.regs.regs
        return (r.rax, r.rbx, r.rcx, r.rdx)
    }

    /// Sets rax, rbx, rcx and rdx for the next run through the sync area; the other registers
    /// keep the values KVM reported at the exit.
    @inline(__always)
    public func setSyncedRAXToRDX(_ values: (UInt64, UInt64, UInt64, UInt64)) {
        shared.pointee.s.regs.regs.rax = values.0
        shared.pointee.s.regs.regs.rbx = values.1
        shared.pointee.s.regs.regs.rcx = values.2
        shared.pointee.s.regs.regs.rdx = values.3
        shared.pointee.kvm_dirty_regs |= UInt64(KVM_SYNC_X86_REGS)
    }

    // MARK: Register ioctls

    public func registers() throws(KVMError) -> X86Registers {
        var regs = kvm_regs()
        _ = try KVMError.check(pvm_kvm_ioctl(fd.rawValue, PVM_KVM_GET_REGS, &regs), "KVM_GET_REGS")
        return X86Registers(regs)
    }

    /// `KVM_SET_REGS`. Drops any pending write to the sync area, which would otherwise
    /// overwrite these registers on the next run.
    public func setRegisters(_ registers: X86Registers) throws(KVMError) {
        shared.pointee.kvm_dirty_regs &= ~UInt64(KVM_SYNC_X86_REGS)
        var regs = registers.kvm
        _ = try KVMError.check(pvm_kvm_ioctl(fd.rawValue, PVM_KVM_SET_REGS, &regs), "KVM_SET_REGS")
    }

    public func specialRegisters() throws(KVMError) -> X86SpecialRegisters {
        var sregs = kvm_sregs()
        _ = try KVMError.check(pvm_kvm_ioctl(fd.rawValue, PVM_KVM_GET_SREGS, &sregs), "KVM_GET_SREGS")
        return X86SpecialRegisters(sregs)
    }

    public func setSpecialRegisters(_ registers: X86SpecialRegisters) throws(KVMError) {
        var sregs = registers.raw
        _ = try KVMError.check(pvm_kvm_ioctl(fd.rawValue, PVM_KVM_SET_SREGS, &sregs), "KVM_SET_SREGS")
    }

    /// `KVM_SET_CPUID2`.
    public func setCPUID(_ cpuid: KVMCPUID) throws(KVMError) {
        _ = try KVMError.check(pvm_kvm_ioctl(fd.rawValue, PVM_KVM_SET_CPUID2, cpuid.pointer), "KVM_SET_CPUID2")
    }

    /// `KVM_TRANSLATE`: the guest-physical address of a guest-virtual one under the vCPU's
    /// current page tables, or nil when it is not mapped.
    public func translate(_ virtualAddress: UInt64) throws(KVMError) -> UInt64? {
        var t = kvm_translation()
        t.linear_address = virtualAddress
        _ = try KVMError.check(pvm_kvm_ioctl(fd.rawValue, PVM_KVM_TRANSLATE, &t), "KVM_TRANSLATE")
        return t.valid != 0 ? t.physical_address : nil
    }
    #endif
}
