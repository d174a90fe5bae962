import EL2
import Testing

/// The guest hypercall ABI at EL2's entry point (`Hypervisor.guestHypercall`), call by call and
/// error path by error path, for each profile: the values docs/abi.md gives with their sources
/// (mainline v7.1-rc4 pkvm.c / hypercalls.c / psci.c; Android 6.12 pkvm.c / mem_protect.c).
@Suite struct GuestABITests {
    static let invalid = SMCCCResult.invalidParameter
    static let unsupported = SMCCCResult.notSupported

    /// A machine with one VM of `vcpus` vCPUs whose page `gfn 0x100` is donated (touched).
    struct Guest {
        let m: TestMachine
        let vm: VMHandle
        static let touched = GFN(0x100)
        static let untouched = GFN(0x101)

        init(_ profile: PKVMProfile, protected: Bool = true, vcpus: Int = 4) throws {
            m = try TestMachine(profile: profile)
            vm = try m.createVM(protected: protected, at: 100, memcache: 16, vcpus: vcpus)
            if protected {
                try m.hyp.hostDonateGuest(m.pfn(0x600), gfn: Self.touched, vm: vm)
            } else {
                try m.hyp.hostShareGuest(m.pfn(0x600), gfn: Self.touched, pages: 1, vm: vm, prot: .rwx)
            }
            try m.hyp.loadVCPU(vm: vm, vcpu: 0)
        }

        /// Makes the call from vCPU 0 and checks the machine stayed sound.
        func call(_ fid: SMCCCFunction, _ x1: UInt64 = 0, _ x2: UInt64 = 0, _ x3: UInt64 = 0,
                  sourceLocation: SourceLocation = #_sourceLocation) -> GuestHypercall {
            call(fid.rawValue, x1, x2, x3, sourceLocation: sourceLocation)
        }

        func call(_ fid: UInt32, _ x1: UInt64 = 0, _ x2: UInt64 = 0, _ x3: UInt64 = 0, upper: UInt64 = 0,
                  sourceLocation: SourceLocation = #_sourceLocation) -> GuestHypercall {
            let r = m.hyp.guestHypercall(vm: vm, vcpu: 0, SMCCCRegisters(upper << 32 | UInt64(fid), x1, x2, x3))
            m.expectSound(sourceLocation: sourceLocation)
            return r
        }

        func ipa(_ gfn: GFN) -> UInt64 { gfn.ipa.rawValue }
    }

    static func regs(_ x0: UInt64, _ x1: UInt64 = 0, _ x2: UInt64 = 0, _ x3: UInt64 = 0) -> SMCCCRegisters {
        SMCCCRegisters(x0, x1, x2, x3)
    }

    // MARK: Discovery

    @Test(arguments: PKVMProfile.allCases)
    func discovery(profile: PKVMProfile) throws {
        let g = try Guest(profile)
        let android = profile == .android
        let version = g.call(.version)
        #expect(version.results == Self.regs(android ? 0x10002 : 0x10001))
        #expect(version.site == (android ? .el2 : .host))
        let uid = g.call(.vendorHypUID)
        #expect(uid.results == Self.regs(0xb66f_b428, 0xe911_c52e, 0x564b_caa9, 0x743a_004d))
        let features = g.call(.vendorHypFeatures)
        #expect(features.results == Self.regs(android ? 0xFFD : 0x1D))
        #expect(features.site == .el2)
        // The upper half of x0 is ignored: (u32)x0 is the function.
        #expect(g.call(SMCCCFunction.vendorHypFeatures.rawValue, upper: 0xdead).results == features.results)
        // ARCH_FEATURES: the host's answers (an unaffected CPU) in mainline; Android's EL2 has no
        // case for it and PSCI says NOT_SUPPORTED.
        let wa: [(SMCCCFunction, UInt64)] = [(.archWorkaround1, 1), (.archWorkaround2, SMCCCResult.notRequired),
                                             (.archWorkaround3, 1), (.pvTimeFeatures, 0), (.version, Self.unsupported),
                                             (.memShare, Self.unsupported)]
        for (fid, expected) in wa {
            #expect(g.call(.archFeatures, UInt64(fid.rawValue)).results?.x0 == (android ? Self.unsupported : expected), "\(fid)")
        }
        // The workaround calls themselves: the hyp vectors' fast path, x0 = x1 = 0, x2/x3 kept.
        for fid: SMCCCFunction in [.archWorkaround1, .archWorkaround2, .archWorkaround3] {
            let r = g.call(fid, 7, 8, 9)
            #expect(r.results == Self.regs(0, 0, 8, 9) && r.site == .el2)
        }
        // Unknown vendor and standard IDs.
        #expect(g.call(0xC600_0030).results == Self.regs(Self.unsupported))
        #expect(g.call(0x8600_0002).results == Self.regs(Self.unsupported))
        #expect(g.call(0x8400_0060).results == Self.regs(Self.unsupported))  // FF-A range
        // PTP: host-answered in mainline (it reads the clock); Android's EL2 refuses it.
        #expect(g.call(.ptp, 0).action == (android ? .none : .readClock(physical: false)))
        #expect(g.call(.ptp, 2).results == (android ? Self.regs(Self.unsupported) : Self.regs(Self.unsupported)))
        // TRNG: the host's v1.0 in mainline, none in Android (no EL3 TRNG).
        #expect(g.call(.trngVersion).results == Self.regs(android ? Self.unsupported : 0x10000))
        #expect(g.call(.trngGetUUID).results == (android ? Self.regs(Self.unsupported)
                                                   : Self.regs(0x00e0_210d, 0xeb11_8443, 0x4452_7080, 0x4c5a_4e55)))
        if !android {
            #expect(g.call(.trngRandom32, 97).results == Self.regs(SMCCCResult.trngInvalidParameter))
            #expect(g.call(.trngRandom64, 192).action == .entropy(bits: 192, wide: true))
        }
        // MMIO_GUARD (0xC6000007) in mainline reaches the host, which denies it.
        if !android { #expect(g.call(.mmioGuardMap, 0xD000_0000).results == Self.regs(Self.unsupported)) }
    }

    @Test(arguments: PKVMProfile.allCases)
    func hypMemInfo(profile: PKVMProfile) throws {
        let g = try Guest(profile)
        let android = profile == .android
        #expect(g.call(.hypMemInfo).results == Self.regs(4096, android ? 1 : 0))
        for (x1, x2, x3): (UInt64, UInt64, UInt64) in [(1, 0, 0), (0, 1, 0), (0, 0, 1)] {
            #expect(g.call(.hypMemInfo, x1, x2, x3).results == Self.regs(Self.invalid))
        }
        #expect(g.call(.mmioGuardInfo).results == (android ? Self.regs(4096, 1) : Self.regs(Self.unsupported)))
    }

    // MARK: MEM_SHARE / MEM_UNSHARE

    @Test(arguments: PKVMProfile.allCases)
    func memShareAndUnshare(profile: PKVMProfile) throws {
        let g = try Guest(profile)
        let android = profile == .android
        let ipa = g.ipa(Guest.touched)
        let shared = g.call(.memShare, ipa)
        #expect(shared.results == Self.regs(0, android ? 1 : 0))
        #expect(shared.transition?.error == nil && shared.transition?.name == "guest_share_host")
        #expect(try g.m.hyp.guestPageView(vm: g.vm, gfn: Guest.touched).state == .sharedOwned)
        // Share twice: the page is no longer OWNED.
        #expect(g.call(.memShare, ipa).results == Self.regs(Self.invalid))
        #expect(g.call(.memUnshare, ipa).results == Self.regs(0, android ? 1 : 0))
        #expect(g.call(.memUnshare, ipa).results == Self.regs(Self.invalid))  // never shared now
        #expect(g.call(.memShare, ipa + 8).results == Self.regs(Self.invalid))  // misaligned
        #expect(g.call(.memUnshare, ipa + 8).results == Self.regs(Self.invalid))
        #expect(g.call(.memShare, ipa, 0, 1).results == Self.regs(Self.invalid))  // x3
        // x2: reserved in mainline, a page count in Android.
        #expect(g.call(.memShare, ipa, 1).results == (android ? Self.regs(0, 1) : Self.regs(Self.invalid)))
        // Past the IPA space.
        #expect(g.call(.memUnshare, g.m.hyp.geometry.limit).results == Self.regs(Self.invalid))
    }

    @Test(arguments: PKVMProfile.allCases)
    func memShareOfAnUntouchedPageFaultsThenRetries(profile: PKVMProfile) throws {
        let g = try Guest(profile)
        let ipa = IPA(g.ipa(Guest.untouched))
        let first = g.call(.memShare, ipa.rawValue)
        #expect(first.results == nil && first.site == .host)
        if profile == .mainline {
            // __pkvm_memshare_page_req: a level-3 write translation fault, ELR rewound.
            let fake = FakeAbort(ipa: ipa)
            #expect(fake.esr == 0x9000_0047)
            #expect(fake.hpfar == (1 << 63 | ipa.rawValue >> 8) & ~0xF)
            #expect(first.action == .faultIn(ipa, pages: 1, syndrome: fake))
            #expect(first.transition?.error == .ENOENT)
        } else {
            #expect(first.action == .faultIn(ipa, pages: 1, syndrome: nil))  // pkvm_request_map
            #expect(first.transition?.error == .EFAULT)
        }
        // The host faults it in; the retried HVC succeeds.
        try g.m.hyp.hostDonateGuest(g.m.pfn(0x601), gfn: Guest.untouched, vm: g.vm)
        #expect(g.call(.memShare, ipa.rawValue).results == Self.regs(0, profile == .android ? 1 : 0))
        // MEM_UNSHARE has no such path: -3.
        #expect(g.call(.memUnshare, g.ipa(GFN(0x150))).results == Self.regs(Self.invalid))
    }

    @Test func androidRangeSharesUpTo256Entries() throws {
        let g = try Guest(.android)
        for k in 0 ..< UInt64(300) { try g.m.hyp.hostDonateGuest(g.m.pfn(0x800 + k), gfn: GFN(0x200 + k), vm: g.vm) }
        // 300 pages asked, one leaf entry each: 256 done, the walk stops.
        #expect(g.call(.memShare, GFN(0x200).ipa.rawValue, 300).results == Self.regs(0, 256))
        #expect(g.call(.memShare, GFN(0x300).ipa.rawValue, 44).results == Self.regs(0, 44))
        // All or nothing: one page already shared in the range refuses the whole call.
        #expect(g.call(.memUnshare, GFN(0x200).ipa.rawValue, 10).results == Self.regs(0, 10))
        #expect(g.call(.memShare, GFN(0x200).ipa.rawValue, 11).results == Self.regs(Self.invalid))
        #expect(try g.m.hyp.guestPageView(vm: g.vm, gfn: GFN(0x200)).state == .owned)
        // A range that wraps, or runs past the IPA space.
        #expect(g.call(.memShare, GFN(0x200).ipa.rawValue, UInt64.max >> 12).results == Self.regs(Self.invalid))
        #expect(g.call(.memShare, g.m.hyp.geometry.limit - 4096, 2).results == Self.regs(Self.invalid))
    }

    // MARK: MEM_RELINQUISH

    @Test(arguments: PKVMProfile.allCases)
    func memRelinquish(profile: PKVMProfile) throws {
        let g = try Guest(profile)
        let ipa = g.ipa(Guest.touched)
        guard profile == .android else {
            #expect(g.call(.memRelinquish, ipa).results == Self.regs(Self.unsupported))
            return
        }
        #expect(g.call(.memRelinquish, ipa, 1).results == Self.regs(Self.invalid))
        #expect(g.call(.memRelinquish, ipa + 8).results == Self.regs(Self.invalid))
        // Shared pages cannot be relinquished.
        _ = g.call(.memShare, ipa)
        #expect(g.call(.memRelinquish, ipa).results == Self.regs(Self.invalid))
        _ = g.call(.memUnshare, ipa)
        let r = g.call(.memRelinquish, ipa)
        #expect(r.results == Self.regs(0, ipa, 0, 0) && r.site == .host)
        #expect(r.action == .relinquished(Guest.touched, g.m.pfn(0x600).address))
        #expect(g.m.view(0x600) == TestMachine.hostOwned)
        // Nothing mapped any more: a no-op success at EL2.
        #expect(g.call(.memRelinquish, ipa).results == Self.regs(0) && g.call(.memRelinquish, ipa).site == .el2)
    }

    // MARK: MMIO guard

    @Test func mmioGuardAndroid() throws {
        let g = try Guest(.android)
        let mmio: UInt64 = 0xD000_0000
        // Not enrolled: MAP refused, every access allowed.
        #expect(g.call(.mmioGuardMap, mmio).results == Self.regs(Self.invalid))
        #expect(g.call(.mmioGuardUnmap, mmio).results == Self.regs(Self.invalid, 1))
        #expect(g.m.hyp.guestMMIOAllowed(vm: g.vm, ipa: IPA(mmio + 0x10)))
        #expect(g.call(.mmioGuardEnroll).results == Self.regs(0))
        #expect(!g.m.hyp.guestMMIOAllowed(vm: g.vm, ipa: IPA(mmio)))
        #expect(g.call(.mmioGuardMap, mmio, 0xdead, 0xbeef).results == Self.regs(0, 1))  // x2, x3 ignored
        #expect(g.m.hyp.guestMMIOAllowed(vm: g.vm, ipa: IPA(mmio + 0xFF8), size: 8))
        #expect(!g.m.hyp.guestMMIOAllowed(vm: g.vm, ipa: IPA(mmio + 0xFFC), size: 8))  // runs into the next page
        #expect(g.call(.mmioGuardMap, mmio).results == Self.regs(0, 1))  // idempotent
        #expect(g.call(.mmioGuardMap, mmio + 8).results == Self.regs(Self.invalid))  // misaligned
        #expect(g.call(.mmioGuardMap, g.ipa(Guest.touched)).results == Self.regs(Self.invalid))  // mapped RAM
        #expect(g.call(.mmioGuardMap, g.m.hyp.geometry.limit).results == Self.regs(Self.invalid))
        #expect(g.call(.mmioGuardMap, UInt64.max & ~0xFFF).results == Self.regs(Self.invalid))
        // Never-touched RAM is accepted (pKVM cannot tell it from MMIO); nothing can be given there after.
        #expect(g.call(.mmioGuardMap, g.ipa(Guest.untouched)).results == Self.regs(0, 1))
        #expect(try g.m.hyp.guestPageView(vm: g.vm, gfn: Guest.untouched).state == .mmio)
        g.m.expectRefused(.EPERM) { try g.m.hyp.hostDonateGuest(g.m.pfn(0x601), gfn: Guest.untouched, vm: g.vm) }
        #expect(g.call(.memShare, g.ipa(Guest.untouched)).results == Self.regs(Self.invalid))
        // The range form: x3 must be 0; pages guarded reported in x1.
        #expect(g.call(.mmioRangeGuardMap, 0xD010_0000, 4, 1).results == Self.regs(Self.invalid))
        #expect(g.call(.mmioRangeGuardMap, 0xD010_0000, 4).results == Self.regs(0, 4))
        #expect(g.call(.mmioRangeGuardMap, 0xD010_0000, 0).results == Self.regs(Self.invalid))
        #expect(g.call(.mmioRangeGuardUnmap, 0xD010_0000, 4, 1).results == Self.regs(Self.invalid, 4))
        // UNMAP is a no-op: the page stays guarded.
        #expect(g.call(.mmioRangeGuardUnmap, 0xD010_0000, 4).results == Self.regs(0, 4))
        #expect(g.m.hyp.guestMMIOAllowed(vm: g.vm, ipa: IPA(0xD010_3000)))
    }

    @Test func mmioGuardRunsTheMemcacheDryThenAsksTheHost() throws {
        let m = try TestMachine(profile: .android)
        let vm = try m.createVM(protected: true, at: 100, memcache: 1)
        try m.hyp.loadVCPU(vm: vm)
        _ = m.hyp.guestHypercall(vm: vm, vcpu: 0, SMCCCRegisters(UInt64(SMCCCFunction.mmioGuardEnroll.rawValue)))
        let r = m.hyp.guestHypercall(vm: vm, vcpu: 0, SMCCCRegisters(UInt64(SMCCCFunction.mmioGuardMap.rawValue), 0xD000_0000))
        #expect(r.results == nil && r.action == .topUpMemcache)
        m.expectSound()
    }

    // MARK: PSCI

    @Test(arguments: PKVMProfile.allCases)
    func psciCPUOnAndAffinityInfo(profile: PKVMProfile) throws {
        let g = try Guest(profile, vcpus: 20)
        let android = profile == .android
        // vCPU 17 is Aff1 = 1, Aff0 = 1.
        let target: UInt64 = 0x101
        #expect(MPIDR(vcpu: 17).hardwareID == target)
        #expect(g.call(.psciAffinityInfo, target).results?.x0 == SMCCCResult.affinityOff)
        #expect(g.call(.psciCPUOn, target | 1 << 31, 0x1000, 7).results?.x0 == SMCCCResult.psciInvalidParameters)
        #expect(g.call(.psciCPUOn, 0x2000, 0x1000, 7).results?.x0 == SMCCCResult.psciInvalidParameters)  // no such vCPU
        let on = g.call(.psciCPUOn, target, 0x1000, 7)
        #expect(on.action == .cpuOn(vcpu: 17, entry: 0x1000, context: 7))
        // Android writes only x0 back; mainline's host zeroes x1..x3.
        #expect(on.results == (android ? Self.regs(0, target, 0x1000, 7) : Self.regs(0)))
        #expect(on.site == .host)
        // Before it runs: Android reports ON_PENDING, mainline ALREADY_ON / ON.
        #expect(g.call(.psciCPUOn, target, 0x1000, 7).results?.x0
                    == (android ? SMCCCResult.psciOnPending : SMCCCResult.psciAlreadyOn))
        #expect(g.call(.psciAffinityInfo, target).results?.x0
                    == (android ? SMCCCResult.affinityOnPending : SMCCCResult.affinityOn))
        try g.m.hyp.loadVCPU(vm: g.vm, vcpu: 17)
        #expect(g.m.hyp.powerState(vm: g.vm, vcpu: 17) == .on)
        #expect(g.call(.psciCPUOn, target, 0x1000, 7).results?.x0 == SMCCCResult.psciAlreadyOn)
        // Affinity levels: level 1 names the cluster Aff1 = 1 (vCPUs 16-19), lower bits ignored.
        #expect(g.call(.psciAffinityInfo, 0x1FF, 1).results?.x0 == SMCCCResult.affinityOn)
        #expect(g.call(.psciAffinityInfo, 0x200, 1).results?.x0 == SMCCCResult.psciInvalidParameters)
        #expect(g.call(.psciAffinityInfo, 0, 3).results?.x0 == SMCCCResult.affinityOn)
        #expect(g.call(.psciAffinityInfo, 0, 4).results?.x0 == SMCCCResult.psciInvalidParameters)
        // The 32-bit forms cut x1..x3 to 32 bits first.
        let on32 = g.call(.psciCPUOn32, 1 << 32 | 2, 1 << 40 | 0x2000, 5)
        #expect(on32.action == .cpuOn(vcpu: 2, entry: 0x2000, context: 5))
        #expect(g.call(.psciAffinityInfo32, 1 << 32 | 2).results?.x0 != SMCCCResult.psciInvalidParameters)
        // CPU_OFF.
        try g.m.hyp.loadVCPU(vm: g.vm, vcpu: 2)
        #expect(g.m.hyp.guestHypercall(vm: g.vm, vcpu: 2, SMCCCRegisters(UInt64(SMCCCFunction.psciCPUOff.rawValue))).action == .cpuOff)
        #expect(g.call(.psciAffinityInfo, 2).results?.x0 == SMCCCResult.affinityOff)
    }

    @Test(arguments: PKVMProfile.allCases)
    func psciVersionFeaturesAndTheRest(profile: PKVMProfile) throws {
        let g = try Guest(profile)
        let android = profile == .android
        #expect(g.call(.psciVersion).results == Self.regs(android ? 0x10001 : 0x10003))
        let supported: [SMCCCFunction] = [.psciVersion, .psciCPUSuspend, .psciCPUSuspend32, .psciCPUOff, .psciCPUOn,
                                          .psciCPUOn32, .psciAffinityInfo, .psciAffinityInfo32, .psciSystemOff,
                                          .psciSystemReset, .psciFeatures, .psciSystemReset2, .psciSystemReset2_32, .version]
        for f in supported { #expect(g.call(.psciFeatures, UInt64(f.rawValue)).results == Self.regs(0), "\(f)") }
        #expect(g.call(.psciFeatures, UInt64(SMCCCFunction.psciMigrateInfoType.rawValue)).results
                    == Self.regs(android ? Self.unsupported : 0))
        #expect(g.call(.psciFeatures, UInt64(SMCCCFunction.psciSystemOff2.rawValue)).results
                    == Self.regs(android ? Self.unsupported : 1))
        for f: SMCCCFunction in [.psciSystemSuspend, .psciCPUFreeze, .psciMigrate, .archFeatures] {
            #expect(g.call(.psciFeatures, UInt64(f.rawValue)).results == Self.regs(Self.unsupported), "\(f)")
        }
        #expect(g.call(.psciMigrateInfoType).results == Self.regs(android ? Self.unsupported : 2))
        #expect(g.call(.psciMigrate, 0).results == Self.regs(Self.unsupported))
        #expect(g.call(.psciSystemSuspend, 0x1000).results == Self.regs(Self.unsupported))
        let suspend = g.call(.psciCPUSuspend, 1, 2, 3)
        #expect(suspend.action == .suspend && suspend.results == (android ? Self.regs(0, 1, 2, 3) : Self.regs(0)))
        #expect(g.call(.psciSystemOff).action == .systemOff)
        #expect(g.call(.psciSystemReset).action == .systemReset)
        #expect(g.call(.psciSystemReset2, 0).action == .systemReset)
        #expect(g.call(.psciSystemReset2, 0x8000_0001).action == .systemReset)
        let badReset = g.call(.psciSystemReset2, 1, 0xc00c1e)
        #expect(badReset.action == .none)
        #expect(badReset.results == (android ? Self.regs(SMCCCResult.psciInvalidParameters, 1, 0xc00c1e)
                                             : Self.regs(SMCCCResult.psciInvalidParameters)))
        #expect(g.call(.psciSystemOff2, 2).results == Self.regs(android ? Self.unsupported : SMCCCResult.psciInvalidParameters))
    }

    // MARK: Non-protected VMs: no EL2 handler, the host answers

    @Test(arguments: PKVMProfile.allCases)
    func nonProtectedGuestsGetTheHost(profile: PKVMProfile) throws {
        let g = try Guest(profile, protected: false)
        let android = profile == .android
        for fid: SMCCCFunction in [.version, .vendorHypFeatures, .hypMemInfo, .memShare, .psciVersion] {
            #expect(g.call(fid).site == .host, "\(fid)")
        }
        #expect(g.call(.version).results == Self.regs(0x10001))
        #expect(g.call(.vendorHypFeatures).results == Self.regs(android ? 0x207 : 0x3))
        #expect(g.call(.hypMemInfo).results == Self.regs(android ? 4096 : Self.unsupported))
        #expect(g.call(.memShare, g.ipa(Guest.touched)).results == Self.regs(Self.unsupported))
        #expect(g.call(.psciVersion).results == Self.regs(android ? 0x10001 : 0x10003))
        let relinquish = g.call(.memRelinquish, g.ipa(Guest.touched))
        #expect(relinquish.results == Self.regs(android ? 0 : Self.unsupported))
        #expect(relinquish.action == (android ? .reclaim(Guest.touched) : .none))
    }

    @Test func aCallFromAVMThatIsNotThereIsRefused() throws {
        let m = try TestMachine()
        let r = m.hyp.guestHypercall(vm: VMHandle(rawValue: 0x1000), vcpu: 0, SMCCCRegisters(0x8000_0000))
        #expect(r.results == Self.regs(Self.unsupported))
        let vm = try m.createVM(protected: true, at: 100)
        #expect(m.hyp.guestHypercall(vm: vm, vcpu: 9, SMCCCRegisters(0x8000_0000)).results == Self.regs(Self.unsupported))
    }
}
