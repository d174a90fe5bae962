import Glibc
import KVM
import Testing

let kvmUnavailable: String? = {
    let reason = KVMSystem.unavailableReason()
    if let reason { print("KVMTests: skipping: \(reason)") }
    return reason
}()

@Suite(.enabled(if: kvmUnavailable == nil, "needs /dev/kvm"))
struct KVMSystemTests {
    @Test func probesCapabilitiesItUses() throws {
        let kvm = try KVMSystem()
        #expect(kvm.vcpuMapSize >= 2352)
        #expect(kvm.check(.userMemory) == 1)
        #expect(kvm.check(.syncRegisters) & 1 == 1)  // KVM_SYNC_X86_REGS
        #expect(kvm.check(.maxVCPUs) >= 1)
    }

    @Test func failuresNameTheIoctlAndErrno() throws {
        let vm = try KVMSystem().createVM()
        // A memslot whose host address is not page aligned: EINVAL from the ioctl.
        #expect {
            try vm.setMemoryRegion(slot: 0, guestPhysical: 0, size: 4096, host: UnsafeMutableRawPointer(bitPattern: 0x1001))
        } throws: { error in
            let e = error as! KVMError
            return e.operation.hasPrefix("KVM_SET_USER_MEMORY_REGION") && e.errno == 22 && e.description.contains("Invalid argument")
        }
    }

    @Test func openingSomethingElseFailsCleanly() {
        #expect(throws: KVMError.self) { _ = try KVMSystem(path: "/nonexistent/kvm") }
        #expect(KVMSystem.unavailableReason(path: "/nonexistent/kvm")?.contains("open /nonexistent/kvm") == true)
    }

    @Test func vcpuRunsAndReportsAPortExitWithSyncedRegisters() throws {
        let vm = try KVMSystem().createVM()
        // One page of real-mode code at 0x1000: mov $0x1234, %ax; out %ax, $0xf1; hlt.
        let page = mmap(nil, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)!
        defer { munmap(page, 4096) }
        let code: [UInt8] = [0xb8, 0x34, 0x12, 0xe7, 0xf1, 0xf4]
        page.copyMemory(from: code, byteCount: code.count)
        try vm.setMemoryRegion(slot: 0, guestPhysical: 0x1000, size: 4096, host: page)
        let vcpu = try vm.createVCPU(id: 0)
        try vcpu.enableRegisterSync()
        var sregs = try vcpu.specialRegisters()
        var cs = sregs.cs
        cs.base = 0
        cs.selector = 0
        sregs.cs = cs
        try vcpu.setSpecialRegisters(sregs)
        var regs = X86Registers()
        regs.rip = 0x1000
        try vcpu.setRegisters(regs)
        var exit = try vcpu.run()
        while exit == .interrupted { exit = try vcpu.run() }
        guard case let .io(port, size, isWrite, count, _) = exit else {
            Issue.record("expected a port exit, got \(exit)")
            return
        }
        #expect(port == 0xf1 && size == 2 && isWrite && count == 1)
        #expect(vcpu.syncedRAXToRDX.0 & 0xffff == 0x1234)
        #expect(try vcpu.registers().rax & 0xffff == 0x1234)
    }
}
