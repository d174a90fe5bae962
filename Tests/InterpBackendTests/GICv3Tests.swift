import AArch64
import Synchronization
import Testing
@testable import InterpBackend

/// The GICv3 model: identification, SPI and PPI delivery through the CPU interface with
/// priorities and the priority mask, level re-triggering after EOI, SGIs by affinity.
@Suite struct GICv3Tests {
    /// A GIC for `cpus` CPUs whose lines are recorded.
    final class Lines: Sendable {
        let raised: Mutex<[Bool]>
        init(_ n: Int) { raised = Mutex(Array(repeating: false, count: n)) }
    }

    final class Harness: Sendable {
        let gic: GICv3
        let lines: Lines
        init(cpus: Int = 2) {
            gic = GICv3(affinities: (0 ..< cpus).map { UInt64($0) })
            let lines = Lines(cpus)
            self.lines = lines
            for cpu in 0 ..< cpus {
                gic.connect(cpu: cpu) { raised in lines.raised.withLock { $0[cpu] = raised } }
            }
        }
        func line(_ cpu: Int) -> Bool { lines.raised.withLock { $0[cpu] } }
        func distributor(_ offset: UInt64, _ value: UInt64) { gic.distributorWrite(offset, size: 4, value: value) }
        func redistributor(_ cpu: Int, _ offset: UInt64, _ value: UInt64) {
            gic.redistributorWrite(cpu: cpu, offset, size: 4, value: value)
        }
        /// What Linux's gic_dist_init / gic_cpu_init leave: groups 1 everywhere, priority 0xA0,
        /// the CPU interfaces enabled with PMR 0xF0.
        func linuxSetup(cpus: Int = 2) {
            distributor(0x0000, 0x2)                 // EnableGrp1
            distributor(0x0084, 0xFFFF_FFFF)         // IGROUPR1: SPIs 32-63 group 1
            for cpu in 0 ..< cpus {
                redistributor(cpu, 0x0014, 0)                      // wake
                redistributor(cpu, 0x1_0080, 0xFFFF_FFFF)          // IGROUPR0
                let c = gic.cpuInterface(cpu)
                _ = c.write(SystemRegister.iccPMR, 0xF0)
                _ = c.write(SystemRegister.iccIGRPEN1, 1)
            }
        }
    }

    @Test func theFramesIdentifyAGICv3WithAffinityRouting() {
        let h = Harness()
        #expect(h.gic.distributorRead(0xFFE8) & 0xF0 == 0x30)
        #expect(h.gic.distributorRead(0x0000) & (1 << 4 | 1 << 6) == 1 << 4 | 1 << 6)  // ARE, DS
        #expect(h.gic.distributorRead(0x0004) & 0x1F == 2)                             // 96 INTIDs
        #expect(h.gic.redistributorRead(cpu: 1, 0x000C) == 1)                          // affinity 1
        #expect(h.gic.redistributorRead(cpu: 1, 0x0008) & 1 << 4 != 0)                 // Last
        #expect(h.gic.redistributorRead(cpu: 0, 0x0008) & 1 << 4 == 0)
        #expect(h.gic.redistributorRead(cpu: 0, 0x0014) == 0b110)
        h.redistributor(0, 0x0014, 0)
        #expect(h.gic.redistributorRead(cpu: 0, 0x0014) == 0)
    }

    @Test func aLevelSPIIsAcknowledgedEndedAndTakenAgainWhileHigh() {
        let h = Harness()
        h.linuxSetup()
        h.distributor(0x0420, 0xA0)                        // IPRIORITYR: INTID 32 at 0xA0
        h.gic.distributorWrite(0x6100, size: 8, value: 1)  // IROUTER32: CPU 1
        h.distributor(0x0104, 1)                           // ISENABLER1: INTID 32
        h.gic.setSPI(0, level: true)
        #expect(!h.line(0) && h.line(1))
        let c = h.gic.cpuInterface(1)
        #expect(c.read(SystemRegister.iccHPPIR1) == 32)
        #expect(c.read(SystemRegister.iccIAR1) == 32)
        #expect(!h.line(1))                                // active: not signalled again
        #expect(c.read(SystemRegister.iccRPR) == 0xA0)
        #expect(c.read(SystemRegister.iccIAR1) == 1023)
        _ = c.write(SystemRegister.iccEOIR1, 32)
        #expect(h.line(1))                                 // still high: pending again
        #expect(c.read(SystemRegister.iccIAR1) == 32)
        h.gic.setSPI(0, level: false)
        _ = c.write(SystemRegister.iccEOIR1, 32)
        #expect(!h.line(1) && c.read(SystemRegister.iccIAR1) == 1023)
        #expect(c.read(SystemRegister.iccRPR) == 0xFF)
    }

    @Test func thePriorityMaskAndTheRunningPriorityHoldInterruptsBack() {
        let h = Harness(cpus: 1)
        h.linuxSetup(cpus: 1)
        let c = h.gic.cpuInterface(0)
        h.redistributor(0, 0x1_0400 + 24, 0xF0 << 24 | 0x80)  // INTID 24 at 0x80, 27 at 0xF0
        h.redistributor(0, 0x1_0100, 1 << 27 | 1 << 24)      // enable PPIs 24 and 27
        h.gic.setPPI(27, cpu: 0, level: true)
        #expect(!h.line(0))                                   // 0xF0 is not below PMR 0xF0
        _ = c.write(SystemRegister.iccPMR, 0xFF)              // 5 bits: reads back 0xF8
        #expect(c.read(SystemRegister.iccPMR) == 0xF8)
        #expect(h.line(0))
        #expect(c.read(SystemRegister.iccIAR1) == 27)
        h.gic.setPPI(24, cpu: 0, level: true)
        #expect(h.line(0))                                    // 0x80 preempts 0xF8
        #expect(c.read(SystemRegister.iccIAR1) == 24)
        _ = c.write(SystemRegister.iccEOIR1, 24)
        _ = c.write(SystemRegister.iccEOIR1, 27)
        #expect(c.read(SystemRegister.iccRPR) == 0xFF)
    }

    @Test func anSGIReachesTheCPUsItsAffinityNames() {
        let h = Harness(cpus: 3)
        h.linuxSetup(cpus: 3)
        for cpu in 0 ..< 3 { h.redistributor(cpu, 0x1_0100, 1 << 5) }  // SGI 5 enabled
        let sender = h.gic.cpuInterface(0)
        _ = sender.write(SystemRegister.iccSGI1R, 5 << 24 | 0b100)     // Aff0 2 only
        #expect(!h.line(0) && !h.line(1) && h.line(2))
        #expect(h.gic.cpuInterface(2).read(SystemRegister.iccIAR1) == 5)
        _ = sender.write(SystemRegister.iccSGI1R, 5 << 24 | 1 << 40)   // everyone else
        #expect(!h.line(0) && h.line(1))
    }

    @Test func withoutGroupOneEnabledNothingIsSignalled() {
        let h = Harness(cpus: 1)
        h.redistributor(0, 0x1_0080, 0xFFFF_FFFF)
        h.redistributor(0, 0x1_0100, 1 << 27)
        h.gic.setPPI(27, cpu: 0, level: true)
        #expect(!h.line(0))
        h.distributor(0x0000, 0x2)
        _ = h.gic.cpuInterface(0).write(SystemRegister.iccPMR, 0xFF)
        #expect(!h.line(0))                                   // ICC_IGRPEN1 still 0
        _ = h.gic.cpuInterface(0).write(SystemRegister.iccIGRPEN1, 1)
        #expect(h.line(0))
    }
}
