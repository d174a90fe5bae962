import AArch64
import Testing

/// Stage-1 walks and faults, the ASID-tagged TLB, and stage-2 aborts with the ESR_EL2 /
/// HPFAR_EL2 / FAR_EL2 worked out by hand from the Arm ARM (D23.2.41, D23.2.48).
@Suite struct TranslationTests {
    static let ldrX1 = UInt32(0xF940_0041)   // ldr x1, [x2]
    static let strX1 = UInt32(0xF900_0041)   // str x1, [x2]
    static let ldpX1X3 = UInt32(0xA940_0C41) // ldp x1, x3, [x2]
    static let ldrshX1 = UInt32(0x7980_0041) // ldrsh x1, [x2]
    static let lduwUnaligned = UInt32(0xB840_1041) // ldur w1, [x2, #1]

    /// The L3 descriptor of identity page `pa` in `TestCPU.enableMMU`'s tables.
    static func l3Entry(_ pa: UInt64) -> UInt64 {
        TestCPU.tableBase + 0x2000 + ((pa - TestCPU.ramBase) >> 12) * 8
    }

    @Test func pagesTranslateAndUnalignedAccessesWorkWithTheMMUOn() {
        let t = TestCPU()
        t.enableMMU()
        t.write64(TestCPU.dataBase, 0x1122_3344_5566_7788)
        t[2] = TestCPU.dataBase
        #expect(t.run([Self.ldrX1, Self.lduwUnaligned]) == .hypercall(imm: 0x77))
        #expect(t[1] == 0x0011_2233_4455_6677 & 0xFFFF_FFFF)  // the unaligned word at +1
    }

    @Test func alignmentCheckingFaultsAnUnalignedAccess() {
        let t = TestCPU()
        t.enableMMU()
        t.installVectors()
        t.cpu.state.pointee.sys.sctlr |= 1 << 1  // SCTLR_EL1.A
        t[2] = TestCPU.dataBase
        // A synchronous exception from the current EL with SP_EL1: vector 0x200, entry 4.
        #expect(t.run([Self.lduwUnaligned]) == .hypercall(imm: 0x104))
        let s = t.cpu.state.pointee.sys
        #expect(s.esr == 0x9600_0021)  // EC 0x25, IL, DFSC alignment
        #expect(s.far == TestCPU.dataBase + 1)
        #expect(s.elr == TestCPU.codeBase)
    }

    @Test func aReadOnlyPageGivesAPermissionFaultOnAWrite() {
        let t = TestCPU()
        t.enableMMU()
        t.installVectors()
        let entry = Self.l3Entry(TestCPU.dataBase)
        t.write64(entry, t.read64(entry) | 1 << 7)  // AP[2]: read-only
        t[2] = TestCPU.dataBase
        t[1] = 5
        #expect(t.run([Self.strX1]) == .hypercall(imm: 0x104))
        #expect(t.cpu.state.pointee.sys.esr == 0x9600_004F)  // EC 0x25, IL, WnR, permission fault level 3
        #expect(t.read64(TestCPU.dataBase) == 0)
    }

    @Test func anInvalidDescriptorGivesATranslationFaultAtItsLevel() {
        let t = TestCPU()
        t.enableMMU()
        t.installVectors()
        t.write64(Self.l3Entry(TestCPU.dataBase), 0)
        t[2] = TestCPU.dataBase
        #expect(t.run([Self.ldrX1]) == .hypercall(imm: 0x104))
        #expect(t.cpu.state.pointee.sys.esr == 0x9600_0007)  // translation fault, level 3
        #expect(t.cpu.state.pointee.sys.far == TestCPU.dataBase)
    }

    @Test func aLevel2BlockMapsTwoMiB() {
        let t = TestCPU()
        t.enableMMU()
        // Replace the second L2 entry (VA 0x4020_0000) by a block onto the first 2 MiB.
        t.write64(TestCPU.tableBase + 0x1000 + 8, TestCPU.ramBase | 0x701 | 1 << 2)
        t.write64(TestCPU.ramBase + 0x800, 0xABCD)
        t[2] = TestCPU.ramBase + 0x20_0800
        #expect(t.run([Self.ldrX1]) == .hypercall(imm: 0x77))
        #expect(t[1] == 0xABCD)
    }

    /// Two address spaces share a VA with non-global pages: an ASID never uses another's cached
    /// translation, a cached one survives a descriptor change until TLBI ASIDE1 drops it.
    @Test func theTLBIsTaggedWithASIDs() {
        let t = TestCPU()
        t.enableMMU(pageAttributes: 1 << 11, asid: 1)  // nG on every page
        let other = TestCPU.dataBase + 0x1000
        t.write64(TestCPU.dataBase, 111)
        t.write64(other, 222)
        t[2] = TestCPU.dataBase
        #expect(t.run([Self.ldrX1]) == .hypercall(imm: 0x77))
        #expect(t[1] == 111)
        // ASID 2: the same tables but the data page remapped onto `other`. Cached entries of
        // ASID 1 must not be used.
        let entry = Self.l3Entry(TestCPU.dataBase)
        let original = t.read64(entry)
        t.write64(entry, (original & ~0x0000_FFFF_FFFF_F000) | other)
        t.cpu.state.pointee.sys.ttbr0 = TestCPU.tableBase | 2 << 48
        #expect(t.run([Self.ldrX1]) == .hypercall(imm: 0x77))
        #expect(t[1] == 222)
        // Back to ASID 1 with the original descriptor: 111 again, walked and cached under ASID 1.
        t.write64(entry, original)
        t.cpu.state.pointee.sys.ttbr0 = TestCPU.tableBase | 1 << 48
        #expect(t.run([Self.ldrX1]) == .hypercall(imm: 0x77))
        #expect(t[1] == 111)
        // Remap without a TLBI: the cached translation is still used (architecturally allowed)...
        t.write64(entry, (original & ~0x0000_FFFF_FFFF_F000) | other)
        #expect(t.run([Self.ldrX1]) == .hypercall(imm: 0x77))
        #expect(t[1] == 111)
        // ...until TLBI ASIDE1 for ASID 1 drops it: then the walk sees the new descriptor.
        t[6] = 1 << 48
        #expect(t.run([0xD508_8746, 0xD503_3FDF, Self.ldrX1]) == .hypercall(imm: 0x77))  // tlbi aside1, x6; isb; ldr
        #expect(t[1] == 222)
    }

    // MARK: Stage 2

    /// A stage 2 (39-bit IPA, starting at level 1, 4 KB pages) identity-mapping all of RAM
    /// except `unmapped` pages, read-write and executable.
    static func enableStage2(_ t: TestCPU, unmapped: Set<UInt64> = []) {
        let l1 = TestCPU.tableBase + 0x10000, l2 = l1 + 0x1000, l3 = l2 + 0x1000
        t.write64(l1 + 8 * (TestCPU.ramBase >> 30), l2 | 3)
        for table in 0 ..< UInt64(2) {
            t.write64(l2 + 8 * (((TestCPU.ramBase >> 21) & 511) + table), (l3 + table * 0x1000) | 3)
            for i in 0 ..< UInt64(512) {
                let pa = TestCPU.ramBase + table << 21 + i << 12
                let descriptor: UInt64 = unmapped.contains(pa) ? 0 : pa | 1 << 10 | 3 << 8 | 3 << 6 | 0xF << 2 | 3
                t.write64(l3 + table * 0x1000 + 8 * i, descriptor)
            }
        }
        // VTCR_EL2: T0SZ 25, SL0 1 (level 1), TG0 4 KB.
        t.cpu.stage2Configuration = Stage2Configuration(vttbr: l1 | 7 << 48, vtcr: 25 | 1 << 6)
    }

    @Test(arguments: [
        (ldrX1, UInt64(0x93C1_8007), false),   // ISV, SAS 8 bytes, SRT x1, SF, translation fault level 3
        (strX1, 0x93C1_8047, true),            // the same, WnR
        (ldpX1X3, 0x9200_0007, false),         // a pair: ISV = 0
        (ldrshX1, 0x9361_8007, false),         // SAS 2 bytes, SSE, SF
    ] as [(UInt32, UInt64, Bool)])
    func aStage2AbortExitsWithTheHardwareSyndrome(word: UInt32, esr: UInt64, isWrite: Bool) throws {
        let t = TestCPU()
        t.enableMMU()
        Self.enableStage2(t, unmapped: [TestCPU.dataBase])
        t[2] = TestCPU.dataBase + 0x18
        t[1] = 0x1234
        guard case let .stage2Abort(fault) = t.run([word]) else {
            Issue.record("no stage-2 abort")
            return
        }
        #expect(fault.esr == esr, "ESR_EL2 0x\(String(fault.esr, radix: 16))")
        #expect(fault.far == TestCPU.dataBase + 0x18)
        #expect(fault.hpfar == (TestCPU.dataBase >> 12) << 4)
        #expect(fault.ipa == TestCPU.dataBase + 0x18)
        #expect(fault.isWrite == isWrite)
        #expect(isWrite ? fault.value == 0x1234 : true)
        #expect(t.cpu.pc == TestCPU.codeBase, "the instruction runs again once EL2 has resolved it")
    }

    /// The page holding the stage-1 table of the data page is not mapped at stage 2: the walk
    /// itself faults (S1PTW), HPFAR_EL2 names the table's page, FAR_EL2 the VA, WnR is 0.
    @Test func aStage2FaultOnTheStage1WalkSetsS1PTW() throws {
        let t = TestCPU()
        t.enableMMU()
        // Data in the second 2 MiB, whose L3 table (the second one) stage 2 does not map; the
        // code's L3 table (the first) stays mapped.
        let data = TestCPU.ramBase + 0x25_0000
        let tablePage = TestCPU.tableBase + 0x3000
        Self.enableStage2(t, unmapped: [tablePage])
        t[2] = data
        guard case let .stage2Abort(fault) = t.run([Self.strX1]) else {
            Issue.record("no stage-2 abort")
            return
        }
        #expect(fault.esr == 0x9200_0087)  // EC 0x24, IL, S1PTW, translation fault level 3
        #expect(fault.hpfar == (tablePage >> 12) << 4)
        #expect(fault.far == data)
        #expect(!fault.isWrite)
        #expect(Syndrome(fault.esr).s1ptw)
    }

    @Test func anInstructionFetchFromAnUnmappedIPAIsAnInstructionAbort() throws {
        let t = TestCPU()
        t.enableMMU()
        Self.enableStage2(t, unmapped: [TestCPU.codeBase])
        guard case let .stage2Abort(fault) = t.run([Self.ldrX1]) else {
            Issue.record("no stage-2 abort")
            return
        }
        #expect(fault.esr == 0x8200_0007)  // EC 0x20, IL, IFSC translation level 3
        #expect(fault.isInstructionFetch)
        #expect(fault.far == TestCPU.codeBase)
    }
}
