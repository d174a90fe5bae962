import Dispatch
import EL2
import Synchronization
import Testing

/// Several threads racing through the transitions on shared pages. Races make individual calls
/// fail (-EPERM, -ENOENT, ...); what must hold is that EL2's locks keep every state consistent:
/// the invariant checker finds nothing, and share counts equal the guest mappings.
@Suite struct ConcurrencyTests {
    /// SplitMix64: a small deterministic generator, one per worker.
    struct SplitMix64 {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        mutating func below(_ n: UInt64) -> UInt64 { next() % n }
    }

    /// Errors a worker did not expect, and successes per operation, collected across threads.
    final class Unexpected: Sendable {
        private let messages = Mutex<[String]>([])
        private let successes = Mutex<[String: Int]>([:])
        func record(_ message: String) { messages.withLock { $0.append(message) } }
        func succeeded(_ what: String) { successes.withLock { $0[what, default: 0] += 1 } }
        var all: [String] { messages.withLock { $0 } }
        func successCount(_ what: String) -> Int { successes.withLock { $0[what, default: 0] } }
    }

    /// Runs `body`, counting a success or recording any error outside `allowed`.
    static func attempt(_ what: String, allowed: Set<HypError>, _ unexpected: Unexpected, _ body: () throws -> Void) {
        do {
            try body()
            unexpected.succeeded(what)
        } catch let e as HypError {
            if !allowed.contains(e) { unexpected.record("\(what): \(e)") }
        } catch {
            unexpected.record("\(what): \(error)")
        }
    }

    /// Expects every pfn's share count to equal the number of guest pages borrowing it across
    /// `vms`, and its host state to follow (SHARED_OWNED while borrowed).
    func expectCountsMatchMappings(_ m: TestMachine, vms: [VMHandle], pages: [UInt64]) throws {
        var borrowers: [PhysAddr: UInt32] = [:]
        for vm in vms {
            for mapping in try m.hyp.guestMappings(vm: vm) where mapping.state == .sharedBorrowed {
                let base = try #require(mapping.phys)
                for k in 0..<mapping.pages { borrowers[base.advanced(by: k << 12), default: 0] += 1 }
            }
        }
        for n in pages {
            let v = m.view(n)
            let count = borrowers[m.pfn(n).address, default: 0]
            #expect(v.shareCount == count, "page \(n)")
            if count > 0 { #expect(v.host == .sharedOwned && v.hyp == .noPage, "page \(n): \(v)") }
        }
    }

    @Test func racingHostSharesAcrossThreeVMs() throws {
        let m = try TestMachine()
        var vms: [VMHandle] = []
        for base: UInt64 in [100, 200, 300] {
            vms.append(try m.createVM(protected: false, at: base))
            m.expectSound()
        }
        let p = try m.createVM(protected: true, at: 400)
        m.expectSound()
        for k: UInt64 in 0..<8 {
            try m.hyp.hostDonateGuest(m.pfn(40 + k), gfn: GFN(0x80 + k), vm: p)
            m.expectSound()
        }
        let hot: UInt64 = 10  // every worker shares this page
        let warm: [UInt64] = [20, 21, 22, 23]  // shared with guests, and with the hypervisor
        let unexpected = Unexpected()
        let expected: Set<HypError> = [.EPERM, .ENOENT]
        let workers = 4, iterations = 2500

        let vmList = vms
        DispatchQueue.concurrentPerform(iterations: workers) { w in
            var rng = SplitMix64(state: UInt64(w) &* 0x1234_5678 &+ 1)
            for i in 0..<iterations {
                let vm = vmList[Int(rng.below(3))]
                let gfn = GFN(0x100 + rng.below(8))
                let warmPage = m.pfn(warm[Int(rng.below(4))])
                let guestGFN = GFN(0x80 + rng.below(8))
                switch rng.below(10) {
                case 0, 1, 2:
                    Self.attempt("share hot", allowed: expected, unexpected) {
                        try m.hyp.hostShareGuest(m.pfn(hot), gfn: gfn, pages: 1, vm: vm, prot: .rwx)
                    }
                case 3:
                    Self.attempt("share warm", allowed: expected, unexpected) {
                        try m.hyp.hostShareGuest(warmPage, gfn: gfn, pages: 1, vm: vm, prot: .read)
                    }
                case 4, 5, 6:
                    Self.attempt("unshare", allowed: expected, unexpected) {
                        try m.hyp.hostUnshareGuest(gfn: gfn, pages: 1, vm: vm)
                    }
                case 7:
                    Self.attempt("guest share", allowed: expected, unexpected) {
                        try m.hyp.guestShareHost(vm: p, gfn: guestGFN)
                    }
                case 8:
                    Self.attempt("guest unshare", allowed: expected, unexpected) {
                        try m.hyp.guestUnshareHost(vm: p, gfn: guestGFN)
                    }
                default:
                    Self.attempt("hyp share/unshare", allowed: expected, unexpected) {
                        if rng.below(2) == 0 { try m.hyp.hostShareHyp(warmPage) } else { try m.hyp.hostUnshareHyp(warmPage) }
                    }
                }
                // One worker checks the whole machine while the others keep going: the checker
                // takes every lock, so it must see a consistent state.
                if w == 0 && i % 300 == 0 {
                    let violations = m.hyp.checkInvariants()
                    if !violations.isEmpty { unexpected.record("mid-run: \(violations.map(\.message))") }
                }
            }
        }

        #expect(unexpected.all == [])
        // The races did happen: every kind of call both succeeded and lost sometimes.
        for what in ["share hot", "share warm", "unshare", "guest share", "guest unshare", "hyp share/unshare"] {
            #expect(unexpected.successCount(what) > 10, "\(what)")
        }
        m.expectSound()
        try expectCountsMatchMappings(m, vms: vms, pages: [hot] + warm)
        for k: UInt64 in 0..<8 {
            let state = try m.guest(p, 0x80 + k).state
            #expect(state == .owned || state == .sharedOwned)
            #expect(m.view(40 + k).host == (state == .owned ? .noPage : .sharedBorrowed))
        }
        // Unshare everything: every page goes back to the host.
        for vm in vms {
            for mapping in try m.hyp.guestMappings(vm: vm) {
                try m.hyp.hostUnshareGuest(gfn: mapping.gfn, pages: mapping.pages, vm: vm)
                m.expectSound()
            }
        }
        #expect(m.view(hot) == TestMachine.hostOwned)
        for n in warm {
            let v = m.view(n)
            #expect(v.shareCount == 0)
            #expect(v == TestMachine.hostOwned || v == Hypervisor.PageView(host: .sharedOwned, hyp: .sharedBorrowed))
        }
    }

    @Test func racingBlocksAndPagesOnOneVM() throws {
        // 2 MiB shares and single-page shares of overlapping pages and gfns, from two VMs.
        let m = try TestMachine()
        let first = try m.createVM(protected: false, at: 100)
        m.expectSound()
        let vms = [first, try m.createVM(protected: false, at: 200)]
        m.expectSound()
        let unexpected = Unexpected()
        let expected: Set<HypError> = [.EPERM, .ENOENT, .E2BIG]
        DispatchQueue.concurrentPerform(iterations: 3) { w in
            var rng = SplitMix64(state: UInt64(w) &+ 99)
            for _ in 0..<1000 {
                let vm = vms[Int(rng.below(2))]
                let block = rng.below(2)  // gfn block 0x200 or 0x400
                let gfnBase = 0x200 + block * 0x200
                switch rng.below(4) {
                case 0:
                    Self.attempt("share block", allowed: expected, unexpected) {
                        try m.hyp.hostShareGuest(m.pfn(512), gfn: GFN(gfnBase), pages: 512, vm: vm, prot: .rwx)
                    }
                case 1:
                    Self.attempt("share page", allowed: expected, unexpected) {
                        try m.hyp.hostShareGuest(m.pfn(512 + rng.below(4)), gfn: GFN(gfnBase + rng.below(4)),
                                                 pages: 1, vm: vm, prot: .rwx)
                    }
                case 2:
                    Self.attempt("unshare block", allowed: expected, unexpected) {
                        try m.hyp.hostUnshareGuest(gfn: GFN(gfnBase), pages: 512, vm: vm)
                    }
                default:
                    Self.attempt("unshare page", allowed: expected, unexpected) {
                        try m.hyp.hostUnshareGuest(gfn: GFN(gfnBase + rng.below(4)), pages: 1, vm: vm)
                    }
                }
            }
        }
        #expect(unexpected.all == [])
        for what in ["share block", "share page", "unshare block", "unshare page"] {
            #expect(unexpected.successCount(what) > 10, "\(what)")
        }
        m.expectSound()
        try expectCountsMatchMappings(m, vms: vms, pages: [512, 513, 514, 515, 600, 1023])
    }

    @Test func forceReclaimRacesWithGuestShares() throws {
        let m = try TestMachine()
        let p = try m.createVM(protected: true, at: 100, memcache: 16)
        m.expectSound()
        for k: UInt64 in 0..<32 {
            try m.hyp.hostDonateGuest(m.pfn(1000 + k), gfn: GFN(0x1000 + k), vm: p)
            m.expectSound()
            m.fill(m.pfn(1000 + k).address, with: 0xEE)
        }
        let unexpected = Unexpected()
        let expected: Set<HypError> = [.EPERM, .EAGAIN, .EHWPOISON]
        DispatchQueue.concurrentPerform(iterations: 3) { w in
            var rng = SplitMix64(state: UInt64(w) &+ 7)
            for _ in 0..<600 {
                let k = rng.below(32)
                // Force reclaims are rare enough that most pages live through many shares first.
                switch rng.below(20) {
                case 0:
                    Self.attempt("force reclaim", allowed: expected, unexpected) {
                        try m.hyp.hostForceReclaimPageGuest(m.pfn(1000 + k).address)
                    }
                case 1...10:
                    Self.attempt("guest share", allowed: expected, unexpected) {
                        try m.hyp.guestShareHost(vm: p, gfn: GFN(0x1000 + k))
                    }
                default:
                    Self.attempt("guest unshare", allowed: expected, unexpected) {
                        try m.hyp.guestUnshareHost(vm: p, gfn: GFN(0x1000 + k))
                    }
                }
            }
        }
        #expect(unexpected.all == [])
        #expect(unexpected.successCount("force reclaim") > 5)
        #expect(unexpected.successCount("guest share") > 5)
        #expect(unexpected.successCount("guest unshare") > 5)
        m.expectSound()
        // Each page is either still the guest's, or poisoned in the guest and the host's, zeroed.
        for k: UInt64 in 0..<32 {
            let g = try m.guest(p, 0x1000 + k)
            let pa = m.pfn(1000 + k).address
            switch g.state {
            case .poison:
                #expect(m.view(1000 + k) == TestMachine.hostOwned)
                #expect(m.hyp.memory.isZeroPage(pa))
            case .owned:
                #expect(m.view(1000 + k).host == .noPage)
                #expect(m.pageHolds(pa, only: 0xEE))
            case .sharedOwned:
                #expect(m.view(1000 + k).host == .sharedBorrowed)
                #expect(m.pageHolds(pa, only: 0xEE))
            default:
                Issue.record("gfn \(0x1000 + k): \(g)")
            }
        }
    }

    /// Every sink report must come with EL2's locks held (EL2EventSink's contract), which
    /// RecordingSink relies on. finalizeTeardown once reported its whole-VMID invalidation with
    /// no lock held, so a top-up of pages the host had mapped again (the host stage-2
    /// invalidates them) racing a teardown entered the sink from two threads and the process
    /// aborted ("double free or corruption"). This guards the fix.
    @Test
    func topUpRacingTeardownCallsTheSinkSerially() throws {
        let m = try TestMachine(megabytes: 16, ipaBits: 36)
        for _ in 0..<2000 {
            let h = try m.createVM(protected: true, at: 100, memcache: 0)
            m.expectSound()
            DispatchQueue.concurrentPerform(iterations: 2) { w in
                if w == 0 {
                    for k: UInt64 in 0..<8 { _ = try? m.hyp.topUpMemcache(vm: h, pages: [m.pfn(200 + k)]) }
                } else {
                    _ = try? m.hyp.startTeardown(vm: h)
                    _ = try? m.hyp.finalizeTeardown(vm: h)
                }
            }
            m.expectSound()
        }
    }
}
