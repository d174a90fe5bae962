import EL2
import Inspection
import Tracing

/// One operation of the `pvm model` language: its name, argument synopsis, what it does, and
/// how to run it. The table `ModelOperation.all` is the language; `help` prints it and
/// docs/model-language.md documents it.
struct ModelOperation: Sendable {
    let name: String
    let synopsis: String
    let summary: String
    let arity: ClosedRange<Int>
    let run: @Sendable (ModelArguments) throws(ModelLineError) -> String

    /// Runs an EL2 call and prints its result the way pKVM returns it: `0` or `-EXXX`.
    static func errno(_ body: () throws(HypError) -> Void) -> String {
        do throws(HypError) {
            try body()
            return "0"
        } catch {
            return error.description
        }
    }

    static let all: [ModelOperation] = lifecycle + hostHyp + ffa + guests + conversion + guestABI + reclaim + iommu + inspection

    static let byName: [String: ModelOperation] = Dictionary(uniqueKeysWithValues: all.map { ($0.name, $0) })

    // MARK: VM lifecycle

    static let lifecycle: [ModelOperation] = [
        .init(name: "vm_create", synopsis: "VM [protected|nonprotected] [VCPUS] [MEMCACHE]",
              summary: "create a VM (default protected, 1 vCPU) and top its memcache up to MEMCACHE (default \(ModelSession.defaultMemcache)) pages",
              arity: 1...4) { a throws(ModelLineError) in
            let name = String(a.tokens[0])
            guard name.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" || $0 == "-" })
            else { throw ModelLineError("vm_create: VM name '\(name)' may use letters, digits, '_' and '-' only") }
            if let h = a.session.handle(named: name), a.session.hypervisor.vm(h) != nil {
                throw ModelLineError("vm_create: VM '\(name)' already exists (tear it down first)")
            }
            var protected = true
            if a.count >= 2 {
                switch a.tokens[1] {
                case "protected": protected = true
                case "nonprotected", "non-protected": protected = false
                default: throw ModelLineError("vm_create: kind '\(a.tokens[1])' must be protected or nonprotected")
                }
            }
            let vcpus = a.count >= 3 ? try a.number(2, "VCPUS") : 1
            let memcache = a.count == 4 ? try a.number(3, "MEMCACHE") : UInt64(ModelSession.defaultMemcache)
            guard memcache <= 1 << 20 else { throw ModelLineError("vm_create: MEMCACHE \(memcache) is unreasonably large") }
            guard vcpus <= UInt64(Hypervisor.maxVCPUsPerVM) else {
                throw ModelLineError("vm_create: VCPUS \(vcpus) is more than \(Hypervisor.maxVCPUsPerVM)")
            }
            var handle: VMHandle?
            let r = errno { () throws(HypError) in
                handle = try a.session.host.createVM(protected: protected, vcpus: Int(vcpus),
                                                     memcache: Int(memcache))
            }
            if let handle {
                a.session.vmNames[name] = handle
                a.session.handleOwners[handle] = name
            }
            return r
        },
        .init(name: "vm_memcache", synopsis: "VM N", summary: "set the VM's memcache to exactly N host pages",
              arity: 2...2) { a throws(ModelLineError) in
            let vm = try a.vm(0)
            let n = try a.number(1, "N")
            guard n <= 1 << 20 else { throw ModelLineError("vm_memcache: N \(n) is unreasonably large") }
            return errno { () throws(HypError) in try a.session.host.setMemcache(vm, to: Int(n)) }
        },
        .init(name: "vm_teardown", synopsis: "VM",
              summary: "start teardown, unshare / reclaim every guest page, finalize", arity: 1...1) { a throws(ModelLineError) in
            let vm = try a.vm(0)
            return errno { () throws(HypError) in try a.session.host.teardown(vm) }
        },
        .init(name: "vm_start_teardown", synopsis: "VM", summary: "__pkvm_start_teardown_vm", arity: 1...1) { a throws(ModelLineError) in
            let vm = try a.vm(0)
            return errno { () throws(HypError) in try a.session.hypervisor.startTeardown(vm: vm) }
        },
        .init(name: "vm_reclaim", synopsis: "VM GFN", summary: "__pkvm_reclaim_dying_guest_page", arity: 2...2) { a throws(ModelLineError) in
            let vm = try a.vm(0)
            let gfn = try a.gfn(1)
            return errno { () throws(HypError) in try a.session.hypervisor.reclaimDyingGuestPage(vm: vm, gfn: gfn) }
        },
        .init(name: "vm_finalize_teardown", synopsis: "VM", summary: "__pkvm_finalize_teardown_vm", arity: 1...1) { a throws(ModelLineError) in
            let vm = try a.vm(0)
            return errno { () throws(HypError) in _ = try a.session.hypervisor.finalizeTeardown(vm: vm) }
        },
    ]

    // MARK: Host ↔ hyp

    static let hostHyp: [ModelOperation] = [
        .init(name: "host_share_hyp", synopsis: "PFN", summary: "__pkvm_host_share_hyp", arity: 1...1) { a throws(ModelLineError) in
            let pfn = try a.pfn(0)
            return errno { () throws(HypError) in try a.session.hypervisor.hostShareHyp(pfn) }
        },
        .init(name: "host_unshare_hyp", synopsis: "PFN", summary: "__pkvm_host_unshare_hyp", arity: 1...1) { a throws(ModelLineError) in
            let pfn = try a.pfn(0)
            return errno { () throws(HypError) in try a.session.hypervisor.hostUnshareHyp(pfn) }
        },
        .init(name: "hyp_pin", synopsis: "PFN NR", summary: "hyp_pin_shared_mem", arity: 2...2) { a throws(ModelLineError) in
            let pfn = try a.pfn(0), nr = try a.pages(1)
            return errno { () throws(HypError) in try a.session.hypervisor.hypPin(pfn, pages: nr) }
        },
        .init(name: "hyp_unpin", synopsis: "PFN NR", summary: "hyp_unpin_shared_mem", arity: 2...2) { a throws(ModelLineError) in
            let pfn = try a.pfn(0), nr = try a.pages(1)
            return errno { () throws(HypError) in try a.session.hypervisor.hypUnpin(pfn, pages: nr) }
        },
        .init(name: "host_donate_hyp", synopsis: "PFN NR", summary: "__pkvm_host_donate_hyp", arity: 2...2) { a throws(ModelLineError) in
            let pfn = try a.pfn(0), nr = try a.pages(1)
            return errno { () throws(HypError) in try a.session.hypervisor.hostDonateHyp(pfn, pages: nr) }
        },
        .init(name: "hyp_donate_host", synopsis: "PFN NR", summary: "__pkvm_hyp_donate_host", arity: 2...2) { a throws(ModelLineError) in
            let pfn = try a.pfn(0), nr = try a.pages(1)
            return errno { () throws(HypError) in try a.session.hypervisor.hypDonateHost(pfn, pages: nr) }
        },
    ]

    static let ffa: [ModelOperation] = [
        .init(name: "host_share_ffa", synopsis: "PFN NR", summary: "__pkvm_host_share_ffa", arity: 2...2) { a throws(ModelLineError) in
            let pfn = try a.pfn(0), nr = try a.pages(1)
            return errno { () throws(HypError) in try a.session.hypervisor.hostShareFFA(pfn, pages: nr) }
        },
        .init(name: "host_unshare_ffa", synopsis: "PFN NR", summary: "__pkvm_host_unshare_ffa", arity: 2...2) { a throws(ModelLineError) in
            let pfn = try a.pfn(0), nr = try a.pages(1)
            return errno { () throws(HypError) in try a.session.hypervisor.hostUnshareFFA(pfn, pages: nr) }
        },
    ]

    // MARK: Host ↔ guest

    static let guests: [ModelOperation] = [
        .init(name: "host_share_guest", synopsis: "PFN GFN NR VM [r|rw|rwx]", summary: "__pkvm_host_share_guest",
              arity: 4...5) { a throws(ModelLineError) in
            let pfn = try a.pfn(0), gfn = try a.gfn(1), nr = try a.pages(2), vm = try a.vm(3), prot = try a.prot(4)
            return errno { () throws(HypError) in
                try a.session.hypervisor.hostShareGuest(pfn, gfn: gfn, pages: nr, vm: vm, prot: prot)
            }
        },
        .init(name: "host_unshare_guest", synopsis: "GFN NR VM", summary: "__pkvm_host_unshare_guest",
              arity: 3...3) { a throws(ModelLineError) in
            let gfn = try a.gfn(0), nr = try a.pages(1), vm = try a.vm(2)
            return errno { () throws(HypError) in try a.session.hypervisor.hostUnshareGuest(gfn: gfn, pages: nr, vm: vm) }
        },
        .init(name: "host_donate_guest", synopsis: "PFN GFN VM", summary: "__pkvm_host_donate_guest",
              arity: 3...3) { a throws(ModelLineError) in
            let pfn = try a.pfn(0), gfn = try a.gfn(1), vm = try a.vm(2)
            return errno { () throws(HypError) in try a.session.hypervisor.hostDonateGuest(pfn, gfn: gfn, vm: vm) }
        },
        .init(name: "guest_share_host", synopsis: "VM GFN", summary: "__pkvm_guest_share_host (MEM_SHARE)",
              arity: 2...2) { a throws(ModelLineError) in
            let vm = try a.vm(0), gfn = try a.gfn(1)
            return errno { () throws(HypError) in try a.session.hypervisor.guestShareHost(vm: vm, gfn: gfn) }
        },
        .init(name: "guest_unshare_host", synopsis: "VM GFN", summary: "__pkvm_guest_unshare_host (MEM_UNSHARE)",
              arity: 2...2) { a throws(ModelLineError) in
            let vm = try a.vm(0), gfn = try a.gfn(1)
            return errno { () throws(HypError) in try a.session.hypervisor.guestUnshareHost(vm: vm, gfn: gfn) }
        },
        .init(name: "guest_relinquish", synopsis: "VM GFN", summary: "__pkvm_guest_relinquish_to_host (Android MEM_RELINQUISH)",
              arity: 2...2) { a throws(ModelLineError) in
            let vm = try a.vm(0), gfn = try a.gfn(1)
            return errno { () throws(HypError) in try a.session.hypervisor.guestRelinquish(vm: vm, gfn: gfn) }
        },
    ]

    // MARK: Reclaim

    static let reclaim: [ModelOperation] = [
        .init(name: "host_force_reclaim", synopsis: "PFN", summary: "__pkvm_host_force_reclaim_page_guest (poison + zero)",
              arity: 1...1) { a throws(ModelLineError) in
            let pfn = try a.pfn(0)
            return errno { () throws(HypError) in try a.session.hypervisor.hostForceReclaimPageGuest(pfn.address) }
        },
        .init(name: "host_reclaim_guest", synopsis: "GFN VM", summary: "__pkvm_host_reclaim_page_guest (teardown reclaim)",
              arity: 2...2) { a throws(ModelLineError) in
            let gfn = try a.gfn(0), vm = try a.vm(1)
            return errno { () throws(HypError) in try a.session.hypervisor.hostReclaimPageGuest(gfn: gfn, vm: vm) }
        },
        .init(name: "host_access", synopsis: "PFN", summary: "the host touches a page: handle_host_mem_abort (0 or -EPERM)",
              arity: 1...1) { a throws(ModelLineError) in
            let pfn = try a.pfn(0)
            return errno { () throws(HypError) in _ = try a.session.hypervisor.hostMemAbort(pfn.address) }
        },
        .init(name: "host_write", synopsis: "PFN BYTE", summary: "the host fills a RAM page with BYTE, if EL2 lets it (-EFAULT where there is no RAM)",
              arity: 2...2) { a throws(ModelLineError) in
            let pfn = try a.pfn(0)
            let byte = try a.number(1, "BYTE")
            guard byte <= 0xFF else { throw ModelLineError("host_write: BYTE \(byte) does not fit in 8 bits") }
            let hyp = a.session.hypervisor
            return errno { () throws(HypError) in
                // The host may reach MMIO, but there is no RAM there for the model to write.
                guard hyp.memory.contains(pfn.address) else { throw .EFAULT }
                let bytes = [UInt8](repeating: UInt8(byte), count: Int(pageSize))
                try hyp.withHostAccess(pfn.address, count: Int(pageSize)) {
                    bytes.withUnsafeBytes { hyp.memory.write(pfn.address, from: $0) }
                }
            }
        },
    ]

    // MARK: Inspection

    static let inspection: [ModelOperation] = [
        .init(name: "state", synopsis: "PFN | VM GFN", summary: "a page's host/hyp state, or a guest's view of a gfn",
              arity: 1...2) { a throws(ModelLineError) in
            let hyp = a.session.hypervisor
            if a.count == 1 {
                let pfn = try a.pfn(0)
                guard let v = hyp.pageView(pfn.address) else { return "not RAM" }
                return v.description
            }
            let vm = try a.vm(0), gfn = try a.gfn(1)
            do throws(HypError) {
                return try hyp.guestPageView(vm: vm, gfn: gfn).description
            } catch {
                return error.description
            }
        },
        .init(name: "peek", synopsis: "PFN", summary: "what the page holds, bypassing every check (zero or its first bytes)",
              arity: 1...1) { a throws(ModelLineError) in
            let pfn = try a.pfn(0)
            let memory = a.session.hypervisor.memory
            guard memory.contains(pfn.address) else { return "not RAM" }
            if memory.isZeroPage(pfn.address) { return "zero" }
            var bytes = [UInt8](repeating: 0, count: 8)
            bytes.withUnsafeMutableBytes { memory.read(pfn.address, into: $0) }
            return "nonzero first=" + bytes.map { String($0, radix: 16).leftPadded(2) }.joined(separator: " ")
        },
        .init(name: "dump", synopsis: "host|VM [MAX]", summary: "the stage-2 table, one decoded entry a line",
              arity: 1...2) { a throws(ModelLineError) in
            let hyp = a.session.hypervisor
            let limit = a.count == 2 ? Int(min(try a.number(1, "MAX"), 1 << 20)) : 0
            if a.tokens[0] == "host" { return hyp.dumpHostStage2(limit: limit) }
            let vm = try a.vm(0)
            do throws(HypError) { return try hyp.dumpGuestStage2(vm: vm, limit: limit) } catch { return error.description }
        },
        .init(name: "mappings", synopsis: "VM", summary: "every guest mapping and poisoned entry", arity: 1...1) { a throws(ModelLineError) in
            let vm = try a.vm(0)
            do throws(HypError) {
                let ms = try a.session.hypervisor.guestMappings(vm: vm)
                if ms.isEmpty { return "none" }
                return "\(ms.count) entries\n" + ms.map { m in
                    "  gfn \(m.gfn) pages \(m.pages) \(m.state)" + (m.phys.map { " pa \($0)" } ?? "")
                }.joined(separator: "\n")
            } catch {
                return error.description
            }
        },
        .init(name: "summary", synopsis: "", summary: "every page whose metadata is not the boot default, in runs",
              arity: 0...0) { a throws(ModelLineError) in
            let hyp = a.session.hypervisor
            let base = hyp.memory.ramStart.pfn.rawValue
            let runs = hyp.nonDefaultPages()
            return "\(runs.count) runs\n" + runs.map { r in
                let first = r.first.pfn.rawValue - base
                let span = r.pages == 1 ? "pfn \(first) (1 page)" : "pfn \(first)-\(first + UInt64(r.pages) - 1) (\(r.pages) pages)"
                return "  \(span): \(r.view)" + (r.view.use == .none ? "" : " use=\(r.view.use)")
            }.joined(separator: "\n")
        },
        .init(name: "vms", synopsis: "", summary: "the VMs of this script", arity: 0...0) { a throws(ModelLineError) in
            let hyp = a.session.hypervisor
            let rows = a.session.vmNames.sorted { $0.value < $1.value }.map { name, h -> String in
                guard let vm = hyp.vm(h) else { return "  \(name) handle=\(h) (torn down)" }
                let memcache = (try? hyp.memcacheCount(vm: h)) ?? 0
                return "  \(name) handle=\(h) vmid=\(vm.vmid) \(vm.isProtected ? "protected" : "nonprotected")"
                    + (vm.isDying ? " dying" : "") + " memcache=\(memcache) tables=\(vm.stage2.tablePages)"
            }
            return "\(rows.count) VMs" + (rows.isEmpty ? "" : "\n" + rows.joined(separator: "\n"))
        },
        .init(name: "tlb", synopsis: "", summary: "TLB invalidations EL2 issued since the last tlb", arity: 0...0) { a throws(ModelLineError) in
            ModelOperation.listing(a.session.log.takeInvalidations(), "invalidations")
        },
        .init(name: "warnings", synopsis: "", summary: "conditions pKVM would WARN_ON, since the last warnings", arity: 0...0) { a throws(ModelLineError) in
            ModelOperation.listing(a.session.log.takeWarnings(), "warnings")
        },
        .init(name: "inspect", synopsis: "FILE", summary: "picture every page's owner now: FILE.svg (one cell a page) or FILE.html (zoomable, with stage-2 trees)",
              arity: 1...1) { a throws(ModelLineError) in
            let path = String(a.tokens[0])
            let snapshot = InspectionSnapshot(a.session.hypervisor, title: "pvm model session")
            let text = path.hasSuffix(".svg") ? OwnershipPicture(snapshot).svg() : OwnershipPage(snapshot).html()
            do { try TextFile.write(text, to: path) } catch { return "\(error)" }
            return "wrote \(snapshot.map.pages.count) pages to \(path)"
        },
        .init(name: "check", synopsis: "", summary: "run the invariant checker", arity: 0...0) { a throws(ModelLineError) in
            let v = a.session.hypervisor.checkInvariants()
            return v.isEmpty ? "ok" : "\(v.count) violations\n" + v.map { "  \($0)" }.joined(separator: "\n")
        },
        .init(name: "help", synopsis: "", summary: "this list", arity: 0...0) { _ throws(ModelLineError) in
            ModelOperation.helpText
        },
    ]

    /// "N things", then one line each, then how many were not kept.
    static func listing<T>(_ taken: (records: [T], dropped: Int), _ noun: String) -> String {
        let (records, dropped) = taken
        var text = "\(records.count + dropped) \(noun)"
        if !records.isEmpty { text += "\n" + records.map { "  \($0)" }.joined(separator: "\n") }
        if dropped > 0 { text += "\n  ... and \(dropped) more, not kept" }
        return text
    }

    static var helpText: String {
        let width = all.map { $0.name.count + 1 + $0.synopsis.count }.max() ?? 0
        return "operations (numbers decimal or 0x-hex; PFN counts from the start of RAM):\n"
            + all.map { op in
                let head = op.synopsis.isEmpty ? op.name : "\(op.name) \(op.synopsis)"
                return "  " + head + String(repeating: " ", count: max(1, width - head.count + 2)) + op.summary
            }.joined(separator: "\n")
    }
}

extension String {
    func leftPadded(_ width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}
