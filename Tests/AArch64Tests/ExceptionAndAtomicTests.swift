import AArch64
import Synchronization
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Exceptions into the guest's vector table, the guest with none, exclusives and their
/// monitor, LSE atomics, and atomicity across vCPUs on different host threads.
@Suite struct ExceptionAndAtomicTests {
    @Test func anUndefinedInstructionIsDeliveredToTheVector() {
        let t = TestCPU()
        t.installVectors()
        // Current EL with SP_EL1: vector offset 0x200 (entry 4).
        #expect(t.run([0x0000_0000]) == .hypercall(imm: 0x104))  // udf #0
        let s = t.cpu.state.pointee
        #expect(s.sys.esr == 0x0200_0000)  // EC 0 (unknown), IL
        #expect(s.sys.elr == TestCPU.codeBase)
        #expect(s.sys.spsr & 0x3C0 == 0x3C0)  // DAIF at reset, saved
        #expect(s.sys.spsr & 0xF == 0b0101)   // from EL1h
    }

    @Test func aGuestWithNoVectorTableIsStoppedWithAReport() {
        let t = TestCPU()
        guard case let .stopped(report) = t.run([0x0000_0000]) else {
            Issue.record("not stopped")
            return
        }
        #expect(report.contains("no vector table"), "\(report)")
        #expect(report.contains("unknown / undefined instruction"), "\(report)")
    }

    @Test func svcFromEL0GoesToTheLowerELVectorWithItsImmediate() {
        let t = TestCPU()
        t.installVectors()
        // ERET to EL0 at the next instruction, which is `svc #0x42`.
        t.cpu.state.pointee.sys.spsr = 0  // EL0t
        t.cpu.state.pointee.sys.elr = TestCPU.codeBase + 4
        #expect(t.run([0xD69F_03E0, 0xD400_0841]) == .hypercall(imm: 0x108))  // lower EL AArch64: 0x400, entry 8
        let s = t.cpu.state.pointee
        #expect(s.sys.esr == 0x5600_0042)  // EC 0x15, IL, imm16
        #expect(s.sys.elr == TestCPU.codeBase + 8)
        #expect(s.el == 1)
    }

    // MARK: Exclusives

    @Test func aStoreExclusiveSucceedsOnceAfterItsLoad() {
        let t = TestCPU()
        t.enableMMU()
        t[2] = TestCPU.dataBase
        t[4] = 9
        // ldxr x1, [x2]; stxr w3, x4, [x2]; then a second stxr without a load fails.
        #expect(t.run([0xC85F_7C41, 0xC803_7C44]) == .hypercall(imm: 0x77))
        #expect(t[3] == 0)
        #expect(t.read64(TestCPU.dataBase) == 9)
        t[4] = 10
        #expect(t.run([0xC803_7C44]) == .hypercall(imm: 0x77))
        #expect(t[3] == 1)
        #expect(t.read64(TestCPU.dataBase) == 9)
    }

    @Test func clrexAndExceptionReturnClearTheMonitor() {
        let t = TestCPU()
        t.enableMMU()
        t[2] = TestCPU.dataBase
        t[4] = 9
        #expect(t.run([0xC85F_7C41, 0xD503_3F5F, 0xC803_7C44]) == .hypercall(imm: 0x77))  // ldxr; clrex; stxr
        #expect(t[3] == 1)
        // ldxr, then an ERET (to the next instruction, EL1h), then stxr: fails too.
        t.cpu.state.pointee.sys.spsr = 0b0101
        t.cpu.state.pointee.sys.elr = TestCPU.codeBase + 8
        #expect(t.run([0xC85F_7C41, 0xD69F_03E0, 0xC803_7C44]) == .hypercall(imm: 0x77))
        #expect(t[3] == 1)
        #expect(t.read64(TestCPU.dataBase) == 0)
    }

    @Test func aStoreByAnotherObserverBreaksTheExclusive() {
        let t = TestCPU()
        t.enableMMU()
        t[2] = TestCPU.dataBase
        t[4] = 9
        #expect(t.run([0xC85F_7C41]) == .hypercall(imm: 0x77))  // ldxr x1, [x2]
        t.write64(TestCPU.dataBase, 5)  // another CPU (or DMA) writes the location
        #expect(t.run([0xC803_7C44]) == .hypercall(imm: 0x77))
        #expect(t[3] == 1)
        #expect(t.read64(TestCPU.dataBase) == 5)
    }

    // MARK: LSE

    @Test func lseAtomicsReturnTheOldValueAndUpdateMemory() {
        let t = TestCPU()
        t.enableMMU()
        t[2] = TestCPU.dataBase
        t.write64(TestCPU.dataBase, 100)
        // cas x1, x3, [x2]: x1 (100) matches, x3 (7) stored, x1 gets the old value.
        t[1] = 100
        t[3] = 7
        t.run([0xC8A1_7C43])
        #expect(t[1] == 100 && t.read64(TestCPU.dataBase) == 7)
        // cas again with a stale compare value: no store, x1 gets the current value.
        t[1] = 100
        t[3] = 8
        t.run([0xC8A1_7C43])
        #expect(t[1] == 7 && t.read64(TestCPU.dataBase) == 7)
        // ldadd x1, x3, [x2]: x3 = old, memory += x1.
        t[1] = 5
        t.run([0xF821_0043])
        #expect(t[3] == 7 && t.read64(TestCPU.dataBase) == 12)
        // swp x1, x3, [x2]
        t[1] = 0xAAAA
        t.run([0xF821_8043])
        #expect(t[3] == 12 && t.read64(TestCPU.dataBase) == 0xAAAA)
        // ldsmax w1, w3, [x2]: signed; -1 is smaller than 0xAAAA.
        t.write64(TestCPU.dataBase, 0x0000_0000_FFFF_FFFF)
        t[1] = 3
        t.run([0xB821_4043])
        #expect(t[3] == 0xFFFF_FFFF && t.read64(TestCPU.dataBase) == 3)
        // ldumin w1, w3, [x2]: unsigned.
        t[1] = 0xFFFF_FFF0
        t.run([0xB821_7043])
        #expect(t[3] == 3 && t.read64(TestCPU.dataBase) == 3)
    }

    /// CASP compares and swaps a pair: 16 bytes for X registers (what Linux's
    /// this_cpu_cmpxchg128 in the slab allocator uses), 8 for W registers.
    @Test func caspSwapsAPairOfDoublewordsOrWords() {
        let t = TestCPU()
        t.enableMMU()
        t[4] = TestCPU.dataBase
        t.write64(TestCPU.dataBase, 0x1111)
        t.write64(TestCPU.dataBase + 8, 0x2222)
        t[0] = 0x1111
        t[1] = 0x2222
        t[2] = 0xAAAA_0000_0000_0001
        t[3] = 0xBBBB_0000_0000_0002
        t.run([0x4820_7C82])  // casp x0, x1, x2, x3, [x4]
        #expect(t.read64(TestCPU.dataBase) == 0xAAAA_0000_0000_0001 && t.read64(TestCPU.dataBase + 8) == 0xBBBB_0000_0000_0002)
        #expect(t[0] == 0x1111 && t[1] == 0x2222)
        // A stale pair: nothing stored, the registers get what memory holds.
        t.run([0x4820_7C82])
        #expect(t[0] == 0xAAAA_0000_0000_0001 && t[1] == 0xBBBB_0000_0000_0002)
        #expect(t.read64(TestCPU.dataBase) == 0xAAAA_0000_0000_0001)
        // casp w0, w1, w2, w3, [x4] on the low 8 bytes.
        t.write64(TestCPU.dataBase, 0x0000_0005_0000_0004)
        t[0] = 4
        t[1] = 5
        t[2] = 6
        t[3] = 7
        t.run([0x0820_7C82])
        #expect(t.read64(TestCPU.dataBase) == 0x0000_0007_0000_0006)
    }

    /// Two CPUs on two host threads increment one counter, one with an LDXR/STXR loop and one
    /// with LDADD: no increment is lost.
    @Test func atomicsAreAtomicAcrossHostThreads() {
        let t = TestCPU()
        t.enableMMU()
        let second = AArch64CPU(memory: t.cpu.memory)
        second.state.pointee.sys = t.cpu.state.pointee.sys
        let rounds: UInt64 = 200_000
        // CPU 0 at codeBase: 1: ldaxr x1, [x2]; add x1, x1, #1; stlxr w3, x1, [x2]; cbnz w3, 1b;
        //                        subs x5, x5, #1; b.ne 1b; hvc
        let loop: [UInt32] = [0xC85F_FC41, 0x9100_0421, 0xC803_FC41, 0x35FF_FFA3, 0xF100_04A5, 0x54FF_FF61]
        for (i, w) in loop.enumerated() { t.write32(TestCPU.codeBase + UInt64(4 * i), w) }
        t.write32(TestCPU.codeBase + 24, 0xD400_0EE2)
        // CPU 1 at codeBase + 0x1000: 1: ldadd x4, x3, [x2]; subs x5, x5, #1; b.ne 1b; hvc
        let other = TestCPU.codeBase + 0x1000
        for (i, w) in [UInt32(0xF824_0043), 0xF100_04A5, 0x54FF_FFC1, 0xD400_0EE2].enumerated() {
            t.write32(other + UInt64(4 * i), w)
        }
        t.cpu.pc = TestCPU.codeBase
        t[2] = TestCPU.dataBase
        t[5] = rounds
        second.pc = other
        second.setX(2, TestCPU.dataBase)
        second.setX(4, 1)
        second.setX(5, rounds)
        let done = Atomic<Int>(0)
        let thread = Thread { while second.run(budget: 1 << 20) == .budgetExhausted {}; done.add(1, ordering: .releasing) }
        thread.start()
        while t.cpu.run(budget: 1 << 20) == .budgetExhausted {}
        while done.load(ordering: .acquiring) == 0 { sched_yield() }
        #expect(t.read64(TestCPU.dataBase) == 2 * rounds)
    }
}

/// A plain POSIX thread for the cross-thread test.
final class Thread: @unchecked Sendable {
    private let body: @Sendable () -> Void
    init(_ body: @escaping @Sendable () -> Void) { self.body = body }
    func start() {
        var handle = pthread_t()
        let box = Unmanaged.passRetained(self).toOpaque()
        pthread_create(&handle, nil, { raw in
            let me = Unmanaged<Thread>.fromOpaque(raw!).takeRetainedValue()
            me.body()
            return nil
        }, box)
        pthread_detach(handle)
    }
}
