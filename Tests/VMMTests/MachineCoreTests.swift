import EL2
import EmbeddedImages
import ScriptedBackend
import Testing
import Tracing
@testable import VMM

/// The machine core on the scripted backend: hypercalls through EL2, lazy donation, the MMIO
/// guard, devices, PSCI and teardown, on any machine (no /dev/kvm).
@Suite struct MachineCoreTests {
    static let page = GuestLayout.payloadWindowStart + 0x40_0000  // never touched by the loader
    static let console = GuestLayout.consoleMMIO

    @Test func systemOffPowersOffAndTeardownIsClean() throws {
        let m = try ScriptedMachine([[.systemOff]])
        #expect(try m.machine.run() == .poweredOff)
        let report = try m.machine.teardown()
        #expect(report.isClean)
        #expect(m.transcript().first == .poweredOn(entry: m.machine.firmwareEntry, context: GuestLayout.bootConfig))
    }

    @Test(arguments: PKVMProfile.allCases)
    func discoveryCallsGetTheProfilesAnswers(profile: PKVMProfile) throws {
        let m = try ScriptedMachine([[.call(.version), .call(.vendorHypFeatures), .call(.hypMemInfo),
                                      .call(.psciVersion), .call(.psciMigrateInfoType), .systemOff]], profile: profile)
        #expect(try m.machine.run() == .poweredOff)
        let android = profile == .android
        #expect(m.results() == [
            SMCCCRegisters(android ? 0x10002 : 0x10001), SMCCCRegisters(android ? 0xFFD : 0x1D),
            SMCCCRegisters(4096, android ? 1 : 0), SMCCCRegisters(android ? 0x10001 : 0x10003),
            SMCCCRegisters(android ? SMCCCResult.notSupported : 2),
        ])
        #expect(m.machine.statistics.hypercalls == 6)
    }

    @Test func firstTouchDonatesAndTheAccessRunsAgain() throws {
        let m = try ScriptedMachine([[.write(gpa: Self.page, size: 8, value: 0x1122_3344_5566_7788),
                                      .read(gpa: Self.page, size: 8), .systemOff]])
        #expect(try m.machine.run() == .poweredOff)
        #expect(m.transcript().contains(.abort(ipa: Self.page, access: "write")))
        #expect(m.transcript().contains(.read(gpa: Self.page, value: 0x1122_3344_5566_7788)))
        #expect(try m.machine.hypervisor.guestPageView(vm: m.machine.handle, gfn: IPA(Self.page).gfn).state == .owned)
        // The host may not read it; after teardown it reads zero.
        #expect(throws: HostAccessError.self) { _ = try m.machine.accessor.read(gpa: Self.page, count: 8) }
        let report = try m.machine.teardown()
        #expect(report.isClean && report.verifiedZero >= 1)
        #expect(try m.machine.accessor.read(gpa: Self.page, count: 8) == [UInt8](repeating: 0, count: 8))
    }

    @Test func nonProtectedGuestGetsSharedPagesTheHostCanRead() throws {
        let m = try ScriptedMachine([[.write(gpa: Self.page, size: 4, value: 0xabcd), .systemOff]], protected: false)
        #expect(try m.machine.run() == .poweredOff)
        #expect(try m.machine.accessor.read(gpa: Self.page, count: 2) == [0xcd, 0xab])
        #expect(try m.machine.teardown().isClean)
    }

    @Test(arguments: PKVMProfile.allCases)
    func memShareOfAnUntouchedPageFaultsItInAndRetries(profile: PKVMProfile) throws {
        let m = try ScriptedMachine([[.call(.memShare, Self.page), .call(.memUnshare, Self.page), .systemOff]],
                                    profile: profile)
        #expect(try m.machine.run() == .poweredOff)
        let t = m.transcript()
        #expect(t.contains(.retried(SMCCCRegisters(UInt64(SMCCCFunction.memShare.rawValue), Self.page))))
        #expect(m.results().prefix(2) == [SMCCCRegisters(0, profile == .android ? 1 : 0),
                                          SMCCCRegisters(0, profile == .android ? 1 : 0)])
        let stats = m.machine.statistics
        #expect(stats.shared == 1 && stats.unshared == 1 && stats.donated >= 1)
        #expect(try m.machine.teardown().isClean)
    }

    /// MEM_SHARE of an IPA the host cannot fault in (no RAM there): pKVM's host fails its abort
    /// handler (KVM_RUN returns an error), so the VM is stopped.
    @Test(arguments: PKVMProfile.allCases)
    func memShareOutsideRAMStopsTheGuest(profile: PKVMProfile) throws {
        let m = try ScriptedMachine([[.call(.memShare, 0x1_0000_0000), .systemOff]], profile: profile)
        guard case let .faulted(report) = try m.machine.run() else {
            Issue.record("expected a stop")
            return
        }
        #expect(report.reason.contains("no guest RAM"))
        #expect(try m.machine.teardown().isClean)
    }

    /// The console prints what the guest shared; a page it did not share is refused by EL2.
    @Test func consolePrintsSharedPagesAndRefusesPrivateOnes() throws {
        let buffer = GuestLayout.consolePage
        let m = try ScriptedMachine([[
            .write(gpa: buffer, size: 8, value: 0x0a_6948),  // "Hi\n"
            .write(gpa: Self.console + GuestLayout.consoleFlush, size: 4, value: 3),  // not shared: refused
            .call(.memShare, buffer),
            .write(gpa: Self.console + GuestLayout.consoleFlush, size: 4, value: 3),
            .read(gpa: Self.console, size: 4),
            .systemOff,
        ]])
        #expect(try m.machine.run() == .poweredOff)
        #expect(m.console.text == "Hi\n")
        #expect(m.machine.statistics.hostFaults == 1)
        #expect(m.machine.hostFaults.first?.error == .EPERM)
        #expect(m.transcript().contains(.read(gpa: Self.console, value: 0)))
        #expect(try m.machine.teardown().isClean)
    }

    @Test func unassignedMMIOStopsTheGuest() throws {
        let m = try ScriptedMachine([[.write(gpa: 0xE000_0000, size: 4, value: 1), .systemOff]])
        guard case let .faulted(report) = try m.machine.run() else {
            Issue.record("expected a stop")
            return
        }
        #expect(report.reason == "access to unassigned guest-physical address")
        #expect(report.gpa == 0xE000_0000)
    }

    /// Android's MMIO guard: once enrolled, MMIO outside guarded pages cannot be emulated.
    @Test(arguments: [(PKVMProfile.android, true), (.android, false), (.mainline, true)])
    func mmioGuard(profile: PKVMProfile, mapsTheConsole: Bool) throws {
        var script: [VCPUStep] = [.call(.mmioGuardEnroll)]
        if mapsTheConsole { script.append(.call(.mmioGuardMap, Self.console)) }
        script += [.read(gpa: Self.console + 8, size: 8), .systemOff]
        let m = try ScriptedMachine([script], profile: profile)
        let outcome = try m.machine.run()
        if profile == .android && !mapsTheConsole {
            guard case let .faulted(report) = outcome else {
                Issue.record("expected a stop")
                return
            }
            #expect(report.reason.contains("MMIO guard"))
        } else {
            #expect(outcome == .poweredOff)
        }
        #expect(m.machine.hypervisor.checkInvariants().isEmpty)
        #expect(try m.machine.teardown().isClean)
    }

    /// PSCI CPU_ON names vCPU 1 by its MPIDR; it runs its own script and turns itself off.
    @Test(arguments: PKVMProfile.allCases)
    func cpuOnStartsTheTargetByMPIDR(profile: PKVMProfile) throws {
        let target = MPIDR(vcpu: 1).hardwareID
        let m = try ScriptedMachine([
            [.call(.psciAffinityInfo, target), .call(.psciCPUOn, target, 0x4000, 0x77),
             .call(.psciCPUOn, MPIDR(vcpu: 2).hardwareID, 0x4000, 0)],
            [.write(gpa: Self.page, size: 8, value: 1), .call(.psciSystemOff)],
        ], profile: profile)
        #expect(try m.machine.run() == .poweredOff)
        let r = m.results(0)
        #expect(r.first?.x0 == SMCCCResult.affinityOff)
        #expect(r.dropFirst().first?.x0 == SMCCCResult.success)
        #expect(r.last?.x0 == SMCCCResult.psciInvalidParameters)  // there is no vCPU 2
        #expect(m.transcript(1).first == .poweredOn(entry: 0x4000, context: 0x77))
        #expect(try m.machine.teardown().isClean)
    }

    @Test func resetEndsTheRunAsAReset() throws {
        let m = try ScriptedMachine([[.call(.psciSystemReset)]])
        #expect(try m.machine.run() == .reset)
    }

    @Test func everyVCPUHaltingWithoutSystemOffIsAFault() throws {
        let m = try ScriptedMachine([[.halt]])
        guard case let .faulted(report) = try m.machine.run() else {
            Issue.record("expected a fault")
            return
        }
        #expect(report.reason.contains("without PSCI SYSTEM_OFF"))
    }

    /// A stop from outside (what SIGINT does in pvm boot): the vCPUs leave the guest, the run
    /// reports the signal, teardown still verifies everything.
    @Test func requestStopInterruptsTheRun() throws {
        let m = try ScriptedMachine([[.write(gpa: Self.page, size: 8, value: 5),
                                      .hypercalls(SMCCCRegisters(0x8000_0000), count: 50_000_000), .systemOff]])
        let (outcome, observed) = try m.machine.run(observingAfter: 20_000_000) { m.machine.requestStop(signal: 2) }
        #expect(observed)
        #expect(outcome == .interrupted(signal: 2))
        #expect(try m.machine.teardown().isClean)
    }

    /// Android's MEM_RELINQUISH: the page goes back to the host zeroed; a later touch stops the
    /// guest instead of donating it again.
    @Test func relinquishedPageIsBallooned() throws {
        let m = try ScriptedMachine([[.write(gpa: Self.page, size: 8, value: 9), .call(.memRelinquish, Self.page),
                                      .write(gpa: Self.page, size: 1, value: 1), .systemOff]], profile: .android)
        guard case let .faulted(report) = try m.machine.run() else {
            Issue.record("expected a stop")
            return
        }
        #expect(report.reason.contains("MEM_RELINQUISH"))
        #expect(m.results().first == SMCCCRegisters(0, Self.page, 0, 0))
        #expect(m.machine.statistics.relinquished == 1)
        let teardown = try m.machine.teardown()
        #expect(teardown.isClean && teardown.verifiedZero >= 1)
    }

    /// The assigned DMA engine fills guest memory through the guest's own stage-2.
    @Test func guestDMAEngineWritesThroughTheGuestsStage2() throws {
        let dma = GuestLayout.dmaMMIO
        let m = try ScriptedMachine([[
            .write(gpa: Self.page, size: 8, value: 0),
            .write(gpa: dma + GuestLayout.dmaDestination, size: 8, value: Self.page),
            .write(gpa: dma + GuestLayout.dmaLength, size: 8, value: 64),
            .write(gpa: dma + GuestLayout.dmaFill, size: 8, value: 0x5A),
            .write(gpa: dma + GuestLayout.dmaCommand, size: 8, value: 2),
            .read(gpa: dma + GuestLayout.dmaStatus, size: 8),
            .read(gpa: Self.page + 8, size: 8),
            .write(gpa: dma + GuestLayout.dmaDestination, size: 8, value: Self.page + 0x1000),  // not the guest's yet
            .write(gpa: dma + GuestLayout.dmaCommand, size: 8, value: 2),
            .read(gpa: dma + GuestLayout.dmaStatus, size: 8),
            .systemOff,
        ]])
        #expect(try m.machine.run() == .poweredOff)
        let reads = m.transcript().compactMap { if case let .read(g, v) = $0 { (g, v) } else { nil } }
        #expect(reads.map(\.1) == [0, 0x5A5A_5A5A_5A5A_5A5A, 3])  // done, the bytes, SMMU fault
        #expect(try m.machine.teardown().isClean)
    }

    @Test(arguments: [
        ([UInt8](), "empty"),
        ([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1], "truncated"),
        (Array("#!/bin/sh\necho not an image\n".utf8), "not an ELF"),
        (Array(EmbeddedImage.hello.bytes.prefix(200)), "truncated"),
        ([0x7f, 0x45, 0x4c, 0x46, 0xff], "too large"),  // stands for 16 MiB, built below
    ])
    func badImagesAreRefusedBeforeBoot(bytes: [UInt8], message: String) throws {
        let payload = message == "too large" ? [UInt8](repeating: 0x7f, count: 16 << 20) : bytes
        var c = MachineConfiguration(firmware: EmbeddedImage.firmware.bytes, payload: payload)
        c.payloadName = "bad"
        #expect {
            _ = try Machine(c, backend: ScriptedBackend(scripts: [[]]))
        } throws: { error in
            guard let e = error as? VMMError, case .image = e else { return false }
            return e.description.contains(message)
        }
    }

    /// The VMM's ELF checks match the firmware's (Firmware/loader.c), field for field.
    @Test(arguments: [(20, UInt8(0), "ELF version"), (52, 0, "e_ehsize"), (56, 100, "program headers")])
    func elfChecksMatchTheFirmwares(offset: Int, value: UInt8, message: String) throws {
        var payload = EmbeddedImage.hello.bytes
        payload[offset] = value
        if offset == 52 { payload[53] = 0 }
        var c = MachineConfiguration(firmware: EmbeddedImage.firmware.bytes, payload: payload)
        c.payloadName = "bad"
        #expect {
            _ = try Machine(c, backend: ScriptedBackend(scripts: [[]]))
        } throws: { error in
            (error as? VMMError)?.description.contains(message) == true
        }
    }

    @Test func theImageNoteNamesItsProfile() throws {
        let giveaway = try ELFImage(bytes: EmbeddedImage.giveaway.bytes, name: "giveaway", window: 0 ..< .max, machine: .x86_64)
        #expect(giveaway.requiredProfile == "android")
        let hello = try ELFImage(bytes: EmbeddedImage.hello.bytes, name: "hello", window: 0 ..< .max, machine: .x86_64)
        #expect(hello.requiredProfile == nil)
    }

    @Test func anImageForAnotherArchitectureIsRefused() throws {
        var c = MachineConfiguration(firmware: EmbeddedImage.firmware.bytes, payload: EmbeddedImage.hello.bytes)
        c.payloadName = "x86"
        #expect {
            _ = try Machine(c, backend: ScriptedBackend(scripts: [[]], architecture: .aarch64))
        } throws: { error in
            (error as? VMMError)?.description.contains("expected aarch64 (183)") == true
        }
    }
}

/// The race of a console flush (the VMM reading the buffer page) against MEM_UNSHARE of that
/// page on another vCPU: the copy runs under EL2's host lock, so the host view's PROT_NONE can
/// never land between EL2's check and the copy (before, the VMM could take SIGSEGV here).
@Suite struct HostAccessRaceTests {
    @Test func consoleFlushRacingUnshareNeverFaultsTheVMM() throws {
        let buffer = GuestLayout.consolePage
        let flush = VCPUStep.write(gpa: GuestLayout.consoleMMIO + GuestLayout.consoleFlush, size: 4, value: 4096)
        let rounds = 3000
        let flusher: [VCPUStep] = [.write(gpa: buffer, size: 8, value: 0x0a_21), .call(.memShare, buffer),
                                   .call(.psciCPUOn, MPIDR(vcpu: 1).hardwareID, 0, 0)]
            + Array(repeating: flush, count: rounds) + [.systemOff]
        let toggler: [VCPUStep] = Array((0 ..< rounds).flatMap { _ in
            [VCPUStep.call(.memUnshare, buffer), .call(.memShare, buffer)]
        }) + [.call(.psciCPUOff)]
        let m = try ScriptedMachine([flusher, toggler])
        #expect(try m.machine.run() == .poweredOff)
        let s = m.machine.statistics
        // Every flush either printed the whole page or was refused; none crashed the process.
        let printed = m.console.text.utf8.count
        #expect(printed % 4096 == 0)
        #expect(s.hostFaults + printed / 4096 == rounds)
        #expect(m.machine.hypervisor.checkInvariants().isEmpty)
        #expect(try m.machine.teardown().isClean)
    }
}
