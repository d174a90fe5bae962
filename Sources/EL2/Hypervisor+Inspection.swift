/// Read-only views of EL2's state for `pvm model`, tests and tools. Each takes the locks it needs.
extension Hypervisor {
    /// A page's host and hyp view and counters, as `state PFN` prints it.
    public struct PageView: Equatable, Sendable, CustomStringConvertible {
        public let host: PageState
        public let hyp: PageState
        public let refcount: UInt16
        public let shareCount: UInt32
        public let use: HypPageUse

        public init(host: PageState, hyp: PageState, refcount: UInt16 = 0, shareCount: UInt32 = 0, use: HypPageUse = .none) {
            self.host = host
            self.hyp = hyp
            self.refcount = refcount
            self.shareCount = shareCount
            self.use = use
        }

        public var description: String {
            "host=\(host) hyp=\(hyp) refcount=\(refcount) share_count=\(shareCount)"
        }
    }

    /// The view of the RAM page at `pa`, or nil if `pa` is not RAM.
    public func pageView(_ pa: PhysAddr) -> PageView? {
        guard memory.contains(pa) else { return nil }
        let p = hostLock.withLock { _ in meta(pa).pointee }
        return PageView(host: p.hostState, hyp: p.hypState, refcount: p.refcount,
                        shareCount: p.hostShareGuestCount, use: p.use)
    }

    /// A guest's view of one page: its state and, when mapped, the physical page and rights.
    public struct GuestPageView: Equatable, Sendable, CustomStringConvertible {
        public let state: PageState
        public let phys: PhysAddr?
        public let permissions: Stage2Permissions
        /// Level of the leaf (3 = page, 2 = 2 MiB block, 1 = 1 GiB block), when mapped.
        public let level: Int?

        public var description: String {
            guard let phys else { return "guest=\(state)" }
            return "guest=\(state) pa=\(phys) prot=\(permissions)" + (level == 3 ? "" : " block=L\(level ?? 0)")
        }
    }

    /// The guest's view of `gfn`: -EINVAL if there is no such VM, -ERANGE past the IPA limit.
    public func guestPageView(vm handle: VMHandle, gfn: GFN) throws(HypError) -> GuestPageView {
        let vm = try transitionVM(handle)
        guard gfn.ipa.rawValue < geometry.limit, gfn.rawValue < geometry.limit >> pageShift else { throw .ERANGE }
        return vm.lock.withLock { _ in
            let (d, level) = vm.stage2.leaf(at: gfn.ipa)
            let state = guestState(d)
            guard d.isLeaf(level: level) else {
                return GuestPageView(state: state, phys: nil, permissions: [], level: nil)
            }
            let offset = gfn.ipa.rawValue & (Stage2Geometry.blockSize(level: level) - 1)
            return GuestPageView(state: state, phys: d.outputAddress(level: level).advanced(by: offset),
                                 permissions: d.permissions, level: level)
        }
    }

    /// One mapping or annotation in a guest's stage-2.
    public struct GuestMapping: Equatable, Sendable {
        public let gfn: GFN
        public let pages: UInt64
        public let state: PageState
        /// The page the mapping starts at; nil for a poisoned entry.
        public let phys: PhysAddr?
    }

    /// Every valid leaf and every poisoned entry of a VM's stage-2, in IPA order: what the host
    /// walks through at teardown.
    public func guestMappings(vm handle: VMHandle) throws(HypError) -> [GuestMapping] {
        let vm = try transitionVM(handle)
        return vm.lock.withLock { _ in
            var out: [GuestMapping] = []
            vm.stage2.forEachEntry { e in
                guard !e.isTable else { return }
                let d = e.descriptor
                if d.isLeaf(level: e.level) {
                    out.append(GuestMapping(gfn: GFN(e.ipa >> pageShift), pages: e.size >> pageShift,
                                            state: d.pageState, phys: d.outputAddress(level: e.level)))
                } else if d.isPoisoned {
                    out.append(GuestMapping(gfn: GFN(e.ipa >> pageShift), pages: e.size >> pageShift,
                                            state: .poison, phys: nil))
                }
            }
            return out
        }
    }

    /// The host stage-2 dump.
    public func dumpHostStage2(limit: Int = 0) -> String {
        hostLock.withLock { _ in hostStage2.dump(limit: limit) }
    }

    /// A guest stage-2 dump: -EINVAL if there is no such VM.
    public func dumpGuestStage2(vm handle: VMHandle, limit: Int = 0) throws(HypError) -> String {
        let vm = try transitionVM(handle)
        let header = "vm \(vm.handle) vmid=\(vm.vmid) \(vm.isProtected ? "protected" : "non-protected")"
            + (vm.isDying ? " dying" : "")
        return header + "\n" + vm.lock.withLock { _ in vm.stage2.dump(limit: limit) }
    }

    /// Runs of consecutive RAM pages whose metadata differs from the boot default (host OWNED,
    /// hyp NOPAGE, no counts), grouped by identical metadata.
    public func nonDefaultPages() -> [(first: PhysAddr, pages: Int, view: PageView)] {
        hostLock.withLock { _ in
            var out: [(first: PhysAddr, pages: Int, view: PageView)] = []
            let zero = HypPage()
            var i = 0
            while i < memory.pageCount {
                let p = vmemmap[i]
                if p == zero { i += 1; continue }
                var j = i + 1
                let start = memory.pageAddress(index: i)
                while j < memory.pageCount, vmemmap[j] == p,
                      memory.pageAddress(index: j) == start.advanced(by: UInt64(j - i) << pageShift) { j += 1 }
                out.append((start, j - i, PageView(host: p.hostState, hyp: p.hypState, refcount: p.refcount,
                                                   shareCount: p.hostShareGuestCount, use: p.use)))
                i = j
            }
            return out
        }
    }
}

extension Hypervisor {
    /// Pages in a VM's memcache (the pool the host tops up): -EINVAL if there is no such VM.
    public func memcacheCount(vm handle: VMHandle) throws(HypError) -> Int {
        let vm = try transitionVM(handle)
        return vm.lock.withLock { _ in vm.stage2.memcache.count }
    }
}
