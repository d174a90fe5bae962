import EL2

/// Guest-first memory in a model session (docs/guest-first-memory.md): block donation, range
/// conversions from the guest and the host, the host's long-term pins, and the splits and
/// merges they cause.
extension ModelOperation {
    static let conversion: [ModelOperation] = [
        .init(name: "host_donate_guest_block", synopsis: "PFN GFN NR VM",
              summary: "lazy donation of a whole block: NR 1, 512 (2 MiB) or 262144 (1 GiB), both frames aligned to it",
              arity: 4...4) { a throws(ModelLineError) in
            let pfn = try a.pfn(0), gfn = try a.gfn(1), nr = try a.pages(2), vm = try a.vm(3)
            return errno { () throws(HypError) in try a.session.hypervisor.hostDonateGuestBlock(pfn, gfn: gfn, pages: nr, vm: vm) }
        },
        .init(name: "guest_share_range", synopsis: "VM GFN NR",
              summary: "Android's range MEM_SHARE: prints 0 and the pages shared (at most 256 leaves a call), or the errno",
              arity: 3...3) { a throws(ModelLineError) in
            let vm = try a.vm(0), gfn = try a.gfn(1), nr = try a.pages(2)
            return pagesDone { () throws(HypError) in try a.session.hypervisor.guestShareHostRange(vm: vm, gfn: gfn, pages: nr) }
        },
        .init(name: "guest_unshare_range", synopsis: "VM GFN NR", summary: "Android's range MEM_UNSHARE", arity: 3...3) { a throws(ModelLineError) in
            let vm = try a.vm(0), gfn = try a.gfn(1), nr = try a.pages(2)
            return pagesDone { () throws(HypError) in try a.session.hypervisor.guestUnshareHostRange(vm: vm, gfn: gfn, pages: nr) }
        },
        .init(name: "convert", synopsis: "VM GFN NR private|shared PFN [4k|2m|1g]",
              summary: "the host converts NR frames backed from PFN in place, all or nothing: 0 and the pages changed, or the errno and the first offending gfn",
              arity: 5...6) { a throws(ModelLineError) in
            let vm = try a.vm(0), gfn = try a.gfn(1), nr = try a.pages(2)
            guard let to = GuestMemoryAttribute(rawValue: String(a.tokens[3])) else {
                throw ModelLineError("convert: '\(a.tokens[3])' must be private or shared")
            }
            let pfn = try a.pfn(4)
            var block: UInt64 = 1
            if a.count == 6 {
                switch a.tokens[5] {
                case "4k": block = 1
                case "2m": block = 512
                case "1g": block = 512 * 512
                default: throw ModelLineError("convert: block '\(a.tokens[5])' must be 4k, 2m or 1g")
                }
            }
            do throws(ConversionError) {
                let n = try a.session.hypervisor.hostConvertGuestRange(vm: vm, gfn: gfn, pages: nr, to: to, backing: pfn,
                                                                       blockPages: block)
                return "0 (\(n) changed)"
            } catch {
                return "\(error.errno) at gfn \(error.gfn)"
            }
        },
        .init(name: "host_pin", synopsis: "PFN NR", summary: "long-term host pins on pages a guest shared (--host-pins longterm)",
              arity: 2...2) { a throws(ModelLineError) in
            let pfn = try a.pfn(0), nr = try a.pages(1)
            return errno { () throws(HypError) in try a.session.hypervisor.hostPinShared(pfn, pages: nr) }
        },
        .init(name: "host_unpin", synopsis: "PFN NR", summary: "drop one long-term host pin from each page", arity: 2...2) { a throws(ModelLineError) in
            let pfn = try a.pfn(0), nr = try a.pages(1)
            return errno { () throws(HypError) in try a.session.hypervisor.hostUnpinShared(pfn, pages: nr) }
        },
        .init(name: "blocks", synopsis: "", summary: "block splits and merges in guest stage-2s since the last blocks", arity: 0...0) { a throws(ModelLineError) in
            ModelOperation.listing(a.session.log.takeRestructures(), "splits and merges")
        },
    ]

    /// `0 (N pages)` or the errno.
    static func pagesDone(_ body: () throws(HypError) -> UInt64) -> String {
        do throws(HypError) { return "0 (\(try body()) pages)" } catch { return error.description }
    }
}
