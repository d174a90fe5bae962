import EL2
import ModelScript
import Testing

/// Runs a script through a fresh session and returns the printed lines.
private func run(_ script: String, _ configure: (inout ModelSession.Configuration) -> Void = { _ in })
    throws -> (lines: [String], session: ModelSession)
{
    var c = ModelSession.Configuration()
    configure(&c)
    let s = try ModelSession(c)
    var out: [String] = []
    for (i, line) in script.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
        if let r = s.run(line: String(line), number: i + 1) { out.append(contentsOf: r.text.split(separator: "\n").map(String.init)) }
    }
    return (out, s)
}

@Suite struct ModelSessionTests {
    @Test func protectedGuestLifecycleTranscript() throws {
        let (lines, s) = try run("""
            vm_create g protected
            host_donate_guest 10 0x40 g
            state 10
            state g 0x40
            guest_share_host g 0x40
            state 10
            guest_unshare_host g 0x40
            host_donate_guest 10 0x41 g
            host_force_reclaim 10
            state g 0x40
            guest_share_host g 0x40
            check
            vm_teardown g
            state 10
            check
            """)
        #expect(lines == [
            "vm_create g protected -> 0",
            "host_donate_guest 10 0x40 g -> 0",
            "state 10 -> host=NOPAGE hyp=NOPAGE refcount=0 share_count=0",
            "state g 0x40 -> guest=OWNED pa=0x8000a000 prot=rwx",
            "guest_share_host g 0x40 -> 0",
            "state 10 -> host=SHARED_BORROWED hyp=NOPAGE refcount=0 share_count=0",
            "guest_unshare_host g 0x40 -> 0",
            "host_donate_guest 10 0x41 g -> -EPERM",
            "host_force_reclaim 10 -> 0",
            "state g 0x40 -> guest=POISON",
            "guest_share_host g 0x40 -> -EHWPOISON",
            "check -> ok",
            "vm_teardown g -> 0",
            "state 10 -> host=OWNED hyp=NOPAGE refcount=0 share_count=0",
            "check -> ok",
        ])
        #expect(s.malformedLines == 0)
    }

    @Test func hostHypAndFFA() throws {
        let (lines, _) = try run("""
            host_share_hyp 5
            hyp_pin 5 1
            host_unshare_hyp 5
            hyp_unpin 5 1
            hyp_unpin 5 1
            host_unshare_hyp 5
            host_donate_hyp 20 4
            state 21
            hyp_donate_host 20 4
            host_share_ffa 30 2
            host_share_guest 30 0 1 x
            host_unshare_ffa 30 2
            state 31
            """)
        #expect(lines == [
            "host_share_hyp 5 -> 0",
            "hyp_pin 5 1 -> 0",
            "host_unshare_hyp 5 -> -EBUSY",
            "hyp_unpin 5 1 -> 0",
            "hyp_unpin 5 1 -> -EINVAL",
            "host_unshare_hyp 5 -> 0",
            "host_donate_hyp 20 4 -> 0",
            "state 21 -> host=NOPAGE hyp=OWNED refcount=0 share_count=0",
            "hyp_donate_host 20 4 -> 0",
            "host_share_ffa 30 2 -> 0",
            "host_share_guest 30 0 1 x -> error: line 11: host_share_guest: unknown VM 'x' (create it with vm_create x)",
            "host_unshare_ffa 30 2 -> 0",
            "state 31 -> host=OWNED hyp=NOPAGE refcount=0 share_count=0",
        ])
    }

    @Test func nonProtectedSharingWithBlocksAndCounts() throws {
        let (lines, _) = try run("""
            vm_create a nonprotected
            vm_create b nonprotected
            host_share_guest 512 0x200 512 a rw
            state a 0x3ff
            host_share_guest 7 1 1 a r
            host_share_guest 7 1 1 b
            state 7
            host_unshare_guest 0x200 1 a
            host_unshare_guest 0x200 512 a
            host_unshare_guest 1 1 a
            state 7
            host_unshare_guest 1 1 b
            state 7
            host_share_guest 7 1 1 a 8
            host_share_guest 7 3 2 a
            check
            """)
        #expect(lines == [
            "vm_create a nonprotected -> 0",
            "vm_create b nonprotected -> 0",
            "host_share_guest 512 0x200 512 a rw -> 0",
            "state a 0x3ff -> guest=SHARED_BORROWED pa=0x803ff000 prot=rw block=L2",
            "host_share_guest 7 1 1 a r -> 0",
            "host_share_guest 7 1 1 b -> 0",
            "state 7 -> host=SHARED_OWNED hyp=NOPAGE refcount=0 share_count=2",
            "host_unshare_guest 0x200 1 a -> -E2BIG",
            "host_unshare_guest 0x200 512 a -> 0",
            "host_unshare_guest 1 1 a -> 0",
            "state 7 -> host=SHARED_OWNED hyp=NOPAGE refcount=0 share_count=1",
            "host_unshare_guest 1 1 b -> 0",
            "state 7 -> host=OWNED hyp=NOPAGE refcount=0 share_count=0",
            "host_share_guest 7 1 1 a 8 -> -EINVAL",
            "host_share_guest 7 3 2 a -> -EINVAL",
            "check -> ok",
        ])
    }

    @Test func memcacheExhaustionGivesENOMEMAndChangesNothing() throws {
        let (lines, _) = try run("""
            vm_create g
            vm_memcache g 1
            host_donate_guest 3 0 g
            state 3
            vm_memcache g 2
            host_donate_guest 3 0 g
            check
            """)
        #expect(lines == [
            "vm_create g -> 0",
            "vm_memcache g 1 -> 0",
            "host_donate_guest 3 0 g -> -ENOMEM",
            "state 3 -> host=OWNED hyp=NOPAGE refcount=0 share_count=0",
            "vm_memcache g 2 -> 0",
            "host_donate_guest 3 0 g -> 0",
            "check -> ok",
        ])
    }

    @Test func reclaimZeroesPrivatePagesButNotSharedOnes() throws {
        let (lines, _) = try run("""
            host_write 4 0xab
            host_write 5 0xcd
            peek 4
            vm_create g
            host_donate_guest 4 0 g
            host_donate_guest 5 1 g
            host_write 4 0x11
            guest_share_host g 1
            vm_teardown g
            peek 4
            peek 5
            """)
        #expect(lines == [
            "host_write 4 0xab -> 0",
            "host_write 5 0xcd -> 0",
            "peek 4 -> nonzero first=ab ab ab ab ab ab ab ab",
            "vm_create g -> 0",
            "host_donate_guest 4 0 g -> 0",
            "host_donate_guest 5 1 g -> 0",
            "host_write 4 0x11 -> -EPERM",
            "guest_share_host g 1 -> 0",
            "vm_teardown g -> 0",
            "peek 4 -> zero",
            "peek 5 -> nonzero first=cd cd cd cd cd cd cd cd",
        ])
    }

    @Test func malformedLinesAreReportedWithLineNumbersAndTheScriptGoesOn() throws {
        let (lines, s) = try run("""
            # comment lines echo
            host_share_hyp 0x
            host_share_hyp -1
            frobnicate
            host_donate_hyp 1
            vm_create g maybe
            vm_create g
            vm_create g
            host_share_guest 1 1 1 g rwz

            host_share_hyp 1   # trailing comment
            """)
        #expect(lines == [
            "# comment lines echo",
            "host_share_hyp 0x -> error: line 2: host_share_hyp: PFN '0x' is not a number (decimal or 0x-hex)",
            "host_share_hyp -1 -> error: line 3: host_share_hyp: PFN '-1' is not a number (decimal or 0x-hex)",
            "frobnicate -> error: line 4: unknown operation 'frobnicate'; try help",
            "host_donate_hyp 1 -> error: line 5: host_donate_hyp takes 2 arguments (host_donate_hyp PFN NR), got 1",
            "vm_create g maybe -> error: line 6: vm_create: kind 'maybe' must be protected or nonprotected",
            "vm_create g -> 0",
            "vm_create g -> error: line 8: vm_create: VM 'g' already exists (tear it down first)",
            "host_share_guest 1 1 1 g rwz -> error: line 9: host_share_guest: protection 'rwz' must be r, rw, rwx (any subset of rwx) or a number",
            "host_share_hyp 1 -> 0",
        ])
        #expect(s.malformedLines == 7)
    }

    @Test func memoryCheckErrorsAtTheEdgeOfRAM() throws {
        // 64 MiB = 16384 pages; the last pages are EL2's carveout.
        let (lines, _) = try run("""
            host_share_ffa 16384 1
            host_share_ffa 16383 2
            host_share_ffa 0x10000000 1
            host_share_hyp 16383
            """)
        #expect(lines == [
            "host_share_ffa 16384 1 -> -EPERM",
            "host_share_ffa 16383 2 -> -EINVAL",
            "host_share_ffa 0x10000000 1 -> -EINVAL",
            "host_share_hyp 16383 -> -EPERM",
        ])
    }

    @Test(arguments: [40, 48]) func ipaLimitGivesERANGE(bits: Int) throws {
        let limitGFN = (UInt64(1) << UInt64(bits)) >> 12
        let (lines, _) = try run("""
            vm_create g
            host_donate_guest 3 \(limitGFN) g
            host_donate_guest 3 \(limitGFN - 1) g
            check
            """) { $0.ipaBits = bits }
        #expect(lines == [
            "vm_create g -> 0",
            "host_donate_guest 3 \(limitGFN) g -> -ERANGE",
            "host_donate_guest 3 \(limitGFN - 1) g -> 0",
            "check -> ok",
        ])
    }

    @Test func inspectionOperationsDescribeTheTables() throws {
        let (lines, _) = try run("""
            host_access 0
            host_donate_hyp 3 1
            tlb
            dump host 4
            """)
        #expect(lines[0] == "host_access 0 -> 0")
        #expect(lines[1] == "host_donate_hyp 3 1 -> 0")
        // The identity block mapped by host_access is split by the donation: break-before-make.
        #expect(lines[2] == "tlb -> 1 invalidations")
        #expect(lines[3] == "  tlbi vmid=0 ipa=0x80000000 size=0x200000")
        #expect(lines.contains { $0.contains("L2 [0x80000000, 0x80200000)") && $0.contains("TABLE") })
        #expect(lines.contains { $0.contains("L3 [0x80000000, 0x80001000)") && $0.contains("PAGE oa=0x80000000") })
        let (help, _) = try run("help")
        #expect(help.count > 30)
    }

    @Test func badConfigurationsAreRefused() {
        var c = ModelSession.Configuration()
        c.memory = 512 << 10
        #expect(throws: ModelSession.SetupError.self) { try ModelSession(c) }
        c = ModelSession.Configuration()
        c.ipaBits = 52
        #expect(throws: ModelSession.SetupError.self) { try ModelSession(c) }
        // RAM that would run past 2^64 is refused, not a trap.
        c = ModelSession.Configuration()
        c.ramBase = 0xFFFF_FFFF_FC00_0000
        #expect(throws: ModelSession.SetupError.self) { try ModelSession(c) }
    }

    /// `hvc` calls EL2's guest entry point: results, where answered, what the host must do.
    @Test func hvcShowsTheGuestABIWithoutBootingAGuest() throws {
        let (lines, _) = try run("""
            vm_create g protected 2
            hvc g MEM_SHARE 0x100000
            host_donate_guest 16 0x100 g
            hvc g MEM_SHARE 0x100000
            hvc g 0xC6000003 0x100000 1
            hvc g PSCI_AFFINITY_INFO 1
            hvc g PSCI_CPU_ON 1 0x4000 7
            vcpu_state g 1
            hvc g NO_SUCH_CALL
            """)
        #expect(lines[1].hasPrefix("hvc g MEM_SHARE 0x100000 -> no return (exit to host) host: fault in 1 page at IPA 0x100000"))
        #expect(lines[1].contains("ESR_EL2=0x90000047"))
        #expect(lines.contains("hvc g MEM_SHARE 0x100000 -> x0=0x0 x1=0x0 x2=0x0 x3=0x0 (answered at EL2)"))
        #expect(lines.contains { $0.hasPrefix("hvc g 0xC6000003 0x100000 1 -> x0=0xfffffffffffffffd") })
        #expect(lines.contains("hvc g PSCI_AFFINITY_INFO 1 -> x0=0x1 x1=0x0 x2=0x0 x3=0x0 (exit to host)"))
        #expect(lines.contains { $0.hasSuffix("host: power on vCPU 1 at 0x4000, x0=0x7") })
        #expect(lines.contains("vcpu_state g 1 -> on"))
        #expect(lines.last?.contains("error: line 9: hvc: FID 'NO_SUCH_CALL' is not a number") == true)
    }

    @Test func hvcUnderTheAndroidProfile() throws {
        let (lines, s) = try run("""
            vm_create g
            hvc g MMIO_GUARD_MAP 0xd0000000
            hvc g MMIO_GUARD_ENROLL
            hvc g MMIO_GUARD_MAP 0xd0000000
            hvc g PSCI_CPU_ON 0
            vcpu_load g 0
            hvc g PSCI_CPU_ON 0
            check
            """) { $0.profile = .android }
        #expect(lines[1].hasSuffix("-> x0=0xfffffffffffffffd x1=0x0 x2=0x0 x3=0x0 (answered at EL2)"))
        #expect(lines[3].hasSuffix("-> x0=0x0 x1=0x1 x2=0x0 x3=0x0 (answered at EL2)"))
        #expect(lines[4].contains("x0=0xfffffffffffffffb"))  // ON_PENDING: vCPU 0 has not run yet
        #expect(lines[6].contains("x0=0xfffffffffffffffc"))  // ALREADY_ON
        #expect(lines.last == "check -> ok")
        #expect(s.hypervisor.profile == .android)
    }

    @Test func sizesAndNumbersParse() {
        #expect(NumberParser.size("64M") == 64 << 20)
        #expect(NumberParser.size("1g") == 1 << 30)
        #expect(NumberParser.size("0x1000") == 4096)
        #expect(NumberParser.size("12") == 12)
        #expect(NumberParser.size("M") == nil)
        #expect(NumberParser.size("99999999999T") == nil)
        #expect(NumberParser.unsigned("0x") == nil)
        #expect(NumberParser.unsigned("18446744073709551616") == nil)
        #expect(NumberParser.unsigned("0xFFFFFFFFFFFFFFFF") == UInt64.max)
    }
}
