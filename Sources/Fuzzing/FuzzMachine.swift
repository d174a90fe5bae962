import EL2
import ModelScript
import Synchronization

/// EL2 as the fuzzer drives it: a `pvm model` session, with each `FuzzOperation` applied
/// exactly as its script line would apply it (the same EL2 call, the same arguments), so a
/// saved failing sequence replays the same under `pvm model`. The common operations call EL2
/// directly (a line costs more to parse than EL2 takes to run it); VM lifecycle goes through
/// the session, which owns the script's VM names. `FuzzMachineTests` checks that both paths agree.
public final class FuzzMachine: @unchecked Sendable {
    public let session: ModelSession
    public var hyp: Hypervisor { session.hypervisor }
    /// The session is not thread-safe: threads take this around lifecycle operations.
    let sessionLock: Mutex<Void>
    /// Bumped by every lifecycle operation: a world's cached handles are good while it stays.
    let generation = Atomic<Int>(0)

    /// What an operation did.
    public enum Outcome: Equatable, Sendable {
        /// Done; `done` pages for the range calls (MEM_SHARE, MMIO_GUARD_MAP).
        case ok(done: UInt64)
        case error(HypError)
        /// A guest hypercall that asked the host to act and replay (nothing changed).
        case retry
        /// The line would not run (a VM name that names nothing any more).
        case skipped
    }

    public init(_ configuration: ModelSession.Configuration) throws(ModelSession.SetupError) {
        session = try ModelSession(configuration)
        sessionLock = Mutex(())
    }

    /// Runs script lines (setup, lifecycle) through the session.
    @discardableResult
    public func run(_ lines: String) -> [ModelSession.LineResult] {
        generation.add(1, ordering: .releasing)
        return sessionLock.withLock { _ in
            ModelSession.lines(of: lines).enumerated().compactMap { session.run(line: $1, number: $0 + 1) }
        }
    }

    /// The setup a fuzz world starts from (and a saved script begins with).
    public static func setup(_ domain: FuzzDomain, iommu: IOMMUMode?, shared: Bool) -> String {
        var lines: [String] = []
        if shared {
            switch iommu {
            case .mirror: lines.append("iommu_attach \(FuzzDomain.hostStream) host")
            case .refcount:
                lines.append("iommu_domain_alloc \(FuzzDomain.pagingDomain)")
                lines.append("iommu_attach \(FuzzDomain.hostStream) \(FuzzDomain.pagingDomain)")
            case nil: break
            }
        }
        for slot in 0 ..< domain.vmCount { lines.append(FuzzOperation.create(slot).scriptLine(domain)) }
        if iommu != nil { lines.append("iommu_assign \(domain.guestStream) \(domain.vmName(0))") }
        return lines.joined(separator: "\n")
    }

    func handle(_ slot: Int, _ domain: FuzzDomain) -> VMHandle? {
        sessionLock.withLock { _ in session.handle(named: domain.vmName(slot)) }
    }

    /// A world's VM handles, resolved once per lifecycle generation (name lookups cost more
    /// than most EL2 calls).
    public final class Handles: @unchecked Sendable {
        var generation = -1
        var handles: [VMHandle?] = []
        public init() {}
    }

    func handle(_ slot: Int, _ domain: FuzzDomain, _ cache: Handles) -> VMHandle? {
        let now = generation.load(ordering: .acquiring)
        if cache.generation != now {
            cache.handles = (0 ..< domain.vmCount).map { handle($0, domain) }
            // A lifecycle operation of another thread may have run meanwhile: keep the older
            // generation so the next call looks again.
            cache.generation = generation.load(ordering: .acquiring) == now ? now : -1
        }
        return cache.handles[slot]
    }

    func pfn(_ page: UInt64) -> PFN { PFN(hyp.memory.ramStart.pfn.rawValue &+ page) }

    /// Applies `op` in `domain`'s world.
    public func apply(_ op: FuzzOperation, _ domain: FuzzDomain, handles cache: Handles = Handles()) -> Outcome {
        func call(_ body: () throws(HypError) -> Void) -> Outcome {
            do { try body(); return .ok(done: 1) } catch { return .error(error) }
        }
        func vm(_ slot: Int, _ body: (VMHandle) throws(HypError) -> Void) -> Outcome {
            guard let h = handle(slot, domain, cache) else { return .skipped }
            return call { () throws(HypError) in try body(h) }
        }
        switch op {
        case let .shareHyp(p): return call { () throws(HypError) in try hyp.hostShareHyp(pfn(p)) }
        case let .unshareHyp(p): return call { () throws(HypError) in try hyp.hostUnshareHyp(pfn(p)) }
        case let .pin(p, n): return call { () throws(HypError) in try hyp.hypPin(pfn(p), pages: n) }
        case let .unpin(p, n): return call { () throws(HypError) in try hyp.hypUnpin(pfn(p), pages: n) }
        case let .donateHyp(p, n): return call { () throws(HypError) in try hyp.hostDonateHyp(pfn(p), pages: n) }
        case let .hypDonateHost(p, n): return call { () throws(HypError) in try hyp.hypDonateHost(pfn(p), pages: n) }
        case let .shareFFA(p, n): return call { () throws(HypError) in try hyp.hostShareFFA(pfn(p), pages: n) }
        case let .unshareFFA(p, n): return call { () throws(HypError) in try hyp.hostUnshareFFA(pfn(p), pages: n) }
        case let .shareGuest(p, g, n, slot, prot):
            return vm(slot) { h throws(HypError) in try hyp.hostShareGuest(pfn(p), gfn: GFN(g), pages: n, vm: h, prot: prot) }
        case let .unshareGuest(g, n, slot):
            return vm(slot) { h throws(HypError) in try hyp.hostUnshareGuest(gfn: GFN(g), pages: n, vm: h) }
        case let .donateGuest(p, g, slot):
            return vm(slot) { h throws(HypError) in try hyp.hostDonateGuest(pfn(p), gfn: GFN(g), vm: h) }
        case let .guestShare(slot, g): return vm(slot) { h throws(HypError) in try hyp.guestShareHost(vm: h, gfn: GFN(g)) }
        case let .guestUnshare(slot, g): return vm(slot) { h throws(HypError) in try hyp.guestUnshareHost(vm: h, gfn: GFN(g)) }
        case let .relinquish(slot, g): return vm(slot) { h throws(HypError) in try hyp.guestRelinquish(vm: h, gfn: GFN(g)) }
        case let .forceReclaim(p): return call { () throws(HypError) in try hyp.hostForceReclaimPageGuest(pfn(p).address) }
        case let .reclaimGuest(g, slot): return vm(slot) { h throws(HypError) in try hyp.hostReclaimPageGuest(gfn: GFN(g), vm: h) }
        case let .reclaimDying(slot, g): return vm(slot) { h throws(HypError) in try hyp.reclaimDyingGuestPage(vm: h, gfn: GFN(g)) }
        case let .hostAccess(p): return call { () throws(HypError) in _ = try hyp.hostMemAbort(pfn(p).address) }
        case let .hostWrite(p, byte):
            return call { () throws(HypError) in
                let pa = pfn(p).address
                guard hyp.memory.contains(pa) else { throw .EFAULT }
                let bytes = [UInt8](repeating: byte, count: Int(pageSize))
                try hyp.withHostAccess(pa, count: Int(pageSize)) { bytes.withUnsafeBytes { hyp.memory.write(pa, from: $0) } }
            }
        case .startTeardown, .finalize, .teardown, .create:
            return lifecycle(op, domain)
        case let .hvc(slot, function, x1, x2, x3):
            guard let h = handle(slot, domain, cache) else { return .skipped }
            let r = hyp.guestHypercall(vm: h, vcpu: 0, SMCCCRegisters(UInt64(function.rawValue), x1, x2, x3))
            guard let results = r.results else { return .retry }
            if results.x0 != SMCCCResult.success { return .error(.EINVAL) }
            let ranged = hyp.profile == .android && [.memShare, .memUnshare, .mmioGuardMap].contains(function)
            return .ok(done: ranged ? results.x1 : 1)
        case let .dmaWrite(stream, iova, byte):
            let data = [UInt8](repeating: byte, count: Int(pageSize))
            return data.withUnsafeBytes { b -> Outcome in
                do throws(DMAFault) {
                    try hyp.dmaWrite(stream: StreamID(stream), iova: iova, from: b)
                    return .ok(done: 1)
                } catch {
                    return .error(.EFAULT)
                }
            }
        case let .iommuMap(iova, p):
            return call { () throws(HypError) in
                try hyp.iommuMap(domain: IOMMUDomainID(UInt16(FuzzDomain.pagingDomain)), iova: iova, pfn: pfn(p),
                                 pages: 1, prot: .rw)
            }
        case let .iommuUnmap(iova):
            do throws(HypError) {
                let n = try hyp.iommuUnmap(domain: IOMMUDomainID(UInt16(FuzzDomain.pagingDomain)), iova: iova, pages: 1)
                return n > 0 ? .ok(done: n) : .error(.ENOENT)
            } catch {
                return .error(error)
            }
        }
    }

    /// VM lifecycle, through the session (it tracks the names).
    private func lifecycle(_ op: FuzzOperation, _ domain: FuzzDomain) -> Outcome {
        var lines = op.scriptLine(domain)
        if case .create(0) = op, hyp.smmu != nil { lines += "\niommu_assign \(domain.guestStream) \(domain.vmName(0))" }
        let results = run(lines)
        guard let first = results.first, !first.isMalformed else { return .skipped }
        let value = first.text.split(separator: ">").last.map { $0.trimmingCharacters(in: " ") } ?? ""
        if value == "0" { return .ok(done: 1) }
        return .error(HypError.allCases.first { $0.description == value } ?? .EINVAL)
    }
}

extension Substring {
    func trimmingCharacters(in set: Character) -> String {
        String(drop { $0 == set }.reversed().drop { $0 == set }.reversed())
    }
}
