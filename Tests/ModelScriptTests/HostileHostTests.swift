import EL2
import ModelScript
import Foundation
import Testing

/// The host is not trusted: each script here is a hostile host's sequence that once broke
/// isolation or trapped EL2. EL2 must refuse it, keep its invariants, and never crash.
@Suite struct HostileHostTests {
    struct Run {
        let lines: [String]
        let session: ModelSession
        func result(_ i: Int) -> String {
            guard let range = lines[i].range(of: " -> ") else { return lines[i] }
            return String(lines[i][range.upperBound...])
        }
    }

    func run(_ script: String, _ configure: (inout ModelSession.Configuration) -> Void = { _ in }) throws -> Run {
        var c = ModelSession.Configuration()
        configure(&c)
        let s = try ModelSession(c)
        var out: [String] = []
        for (i, line) in script.split(separator: "\n").enumerated() {
            if let r = s.run(line: String(line), number: i + 1) { out.append(r.text) }
        }
        #expect(s.hypervisor.checkInvariants().isEmpty, "\(s.hypervisor.checkInvariants())")
        return Run(lines: out, session: s)
    }

    /// hyp_unpin used to drop any non-zero refcount: a page-table page's count of entries, then
    /// the host wrote a guest's page.
    @Test func unpinOnlyUnpinsPins() throws {
        let r = try run("""
            vm_create v0
            host_donate_guest 0x600 257 v0
            hyp_unpin 0x3ffe 1
            host_access 1024
            host_write 0x600 0x42
            peek 0x600
            """) { $0.memory = 64 << 20; $0.ipaBits = 48; $0.ramBase = 0x4000_0000 }
        #expect(r.result(2) == "-EINVAL")
        #expect(r.result(4) == "-EPERM")
        #expect(r.result(5) == "zero")
        // The same with a DMA reference in refcount mode.
        let d = try run("""
            iommu_domain_alloc 1
            iommu_attach 1 1
            iommu_map 1 0x10000 20 1 rw
            hyp_unpin 20 1
            iommu_unmap 1 0x10000 1
            check
            """) { $0.iommu = .refcount }
        #expect(d.result(2) == "0")
        #expect(d.result(3) == "-EINVAL")
        #expect(d.result(4) == "1")
        // A real pin: share with hyp, pin, unpin twice.
        let p = try run("host_share_hyp 5\nhyp_pin 5 1\nhyp_unpin 5 1\nhyp_unpin 5 1\nhost_unshare_hyp 5")
        #expect((0 ..< 5).map(p.result) == ["0", "0", "0", "-EINVAL", "0"])
    }

    /// host_unshare_ffa used to accept a page shared with a guest: then the page could be
    /// donated to another VM while the first still mapped it.
    @Test func ffaUnshareOnlyUndoesFFAShares() throws {
        let r = try run("""
            vm_create a nonprotected
            vm_create b
            host_share_guest 45 0x100 1 a rw
            host_unshare_ffa 45 1
            host_donate_guest 45 0x200 b
            host_share_hyp 46
            host_unshare_ffa 46 1
            host_share_ffa 47 1
            host_unshare_ffa 47 1
            """)
        #expect(r.result(3) == "-EPERM")
        #expect(r.result(4) == "-EPERM")
        #expect(r.result(6) == "-EPERM")
        #expect(r.result(8) == "0")
    }

    /// A dying VM takes no new pages: after finalize they would have no owner.
    @Test func noDonationOrShareToADyingVM() throws {
        let r = try run("""
            vm_create g
            vm_create n nonprotected
            vm_start_teardown g
            host_donate_guest 16 0x100 g
            vm_start_teardown n
            host_share_guest 17 0x100 1 n
            vm_finalize_teardown g
            vm_finalize_teardown n
            state 16
            state 17
            """)
        #expect(r.result(3) == "-EINVAL")
        #expect(r.result(5) == "-EINVAL")
        #expect(r.result(8) == "host=OWNED hyp=NOPAGE refcount=0 share_count=0")
        #expect(r.result(9) == "host=OWNED hyp=NOPAGE refcount=0 share_count=0")
    }

    /// Arguments that used to trap EL2: an empty range, a pfn just past RAM, a huge count.
    @Test func edgeArgumentsAreErrorsNotTraps() throws {
        let r = try run("""
            hyp_donate_host 5 0
            host_donate_hyp 5 0
            host_share_ffa 5 0
            hyp_pin 5 0
            hyp_unpin 5 0
            host_write 16384 1
            host_write 0x7ffffffffffff 1
            host_donate_hyp 0 0xffffffffffffffff
            hyp_pin 0 0xffffffffffffffff
            vm_create g
            host_share_guest 5 0 0 g
            """)
        for i in 0 ..< 5 { #expect(r.result(i) == "-EINVAL", "\(r.lines[i])") }
        #expect(r.result(5) == "-EFAULT")  // past RAM: no page there to write
        #expect(r.result(6) == "-EFAULT")
        #expect(r.result(7) == "-EINVAL")
        #expect(r.result(8) == "-EINVAL")
        #expect(r.result(10) == "-EINVAL")
    }

    /// A torn-down VM's name no longer names anything, even when its handle is reused.
    @Test func aTornDownNameDoesNotTargetItsSuccessor() throws {
        let r = try run("""
            vm_create a
            vm_teardown a
            vm_create b
            host_donate_guest 16 0x100 a
            state b 0x100
            vm_create a
            host_donate_guest 16 0x100 a
            """)
        #expect(r.lines[3].contains("error: line 4: host_donate_guest: VM 'a' was torn down"))
        #expect(r.result(4) == "guest=NOPAGE")
        // The name can be used again for a new VM.
        #expect(r.result(5) == "0" && r.result(6) == "0")
    }

    /// The host's page search is linear (it was quadratic: 85 s for this at 256 MiB).
    @Test func aLargeMemcache() throws {
        let r = try run("vm_create g\nvm_memcache g 60000\nvm_memcache g 0") { $0.memory = 512 << 20 }
        #expect(r.result(1) == "0" && r.result(2) == "0")
    }

    @Test func crlfScriptsAreLines() throws {
        let s = try ModelSession(ModelSession.Configuration())
        let lines = ModelSession.lines(of: "vm_create g\r\nstate 0\r\n")
        #expect(lines == ["vm_create g", "state 0"])
        #expect(s.run(line: lines[0], number: 1)?.text == "vm_create g -> 0")
    }
}
