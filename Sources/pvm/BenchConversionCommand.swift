import ArgumentParser
import EL2
import EmbeddedImages
import InterpBackend
import VMM

/// `pvm bench conversion`: in-place conversion of 1 GiB of a protected guest's memory, private
/// to shared (the guest's range MEM_SHARE) and back (the host's range conversion), in ranges of
/// 4 KiB, 2 MiB and 1 GiB over memory mapped by leaves of that size, against single-page
/// MEM_SHARE / MEM_UNSHARE of the same memory in the same run; then the interpreter's MIPS on a
/// memory-bound loop over 256 MiB with 4 KiB and 2 MiB stage-2 leaves.
struct BenchConversionCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "conversion",
        abstract: "1 GiB private -> shared -> private in 4 KiB / 2 MiB / 1 GiB ranges vs single pages; interpreter MIPS with 4 KiB vs 2 MiB leaves.",
        discussion: """
            EL2 time is the wall time of the EL2 calls alone, on a machine with the default SMMU \
            (mirror), no trace and no backend: what the transitions cost, without a VMM. The \
            guest's memory is donated first with leaves of the range's size (the host's own \
            conversion, timed too). The best of --repeats runs is reported. The interpreter part \
            boots the bench image (mode 5: read-modify-write of one word per 4 KiB page over 256 \
            MiB, so every access misses the interpreter's page TLB) with --memory 512M and \
            --guest-block 4k, then 2m; its MIPS is between the guest's markers, after an \
            untimed first pass that takes the stage-2 faults.
            """
    )

    @Option(help: "Repetitions of each EL2 measurement; the best is reported.")
    var repeats: Int = 3

    @Option(help: "Timed passes over the 256 MiB in the interpreter part (0 skips it).")
    var passes: Int = 64

    func validate() throws {
        guard (1 ... 50).contains(repeats) else { throw ValidationError("--repeats must be 1...50") }
        guard (0 ... 10_000).contains(passes) else { throw ValidationError("--passes must be 0...10000") }
    }

    static let gib: UInt64 = 1 << 30
    static let pages = gib >> pageShift

    func run() throws {
        benchPrint("1 GiB of a protected guest's memory, converted in place (EL2 time, best of \(repeats)):")
        let single = try singlePages()
        benchPrint("  baseline, single-page MEM_SHARE then MEM_UNSHARE of every page (4 KiB leaves): "
                   + "\(grouped(Double(Self.pages) / single.share)) + \(grouped(Double(Self.pages) / single.unshare)) pages/s "
                   + "(\(format2(single.share * 1e3)) + \(format2(single.unshare * 1e3)) ms)")
        for (name, block) in [("4 KiB", UInt64(1)), ("2 MiB", 512), ("1 GiB", 512 * 512)] {
            let r = try ranges(block: block)
            let rate = { (t: Double) in grouped(Double(Self.pages) / t) }
            var line = "  ranges of \(name) on \(name) leaves: to shared \(format2(r.share * 1e3)) ms (\(rate(r.share)) pages/s, "
                + "\(format2(single.share / r.share))x single pages), to private \(format2(r.unshare * 1e3)) ms "
                + "(\(rate(r.unshare)) pages/s, \(format2(single.unshare / r.unshare))x)"
            if block == 512 * 512 { line += "; aim: each under 10 ms" }
            benchPrint(line)
            benchPrint("    first donation of the 1 GiB by the host's conversion: \(format2(r.donate * 1e3)) ms")
        }
        if passes > 0 { try interpreterSweep() }
    }

    /// A protected VM over 1 GiB + 64 MiB of RAM, with a memcache for every table a 4 KiB
    /// mapping of 1 GiB takes.
    private func machine() throws -> (BenchMachine, VMHandle) {
        let m = try BenchMachine(bytes: Self.gib + (64 << 20), iommu: .mirror)
        return (m, try m.vm(protected: true, memcache: 1100))
    }

    /// Single-page MEM_SHARE of every page of 1 GiB mapped by pages, then MEM_UNSHARE of each.
    private func singlePages() throws -> (share: Double, unshare: Double) {
        var best = (share: Double.infinity, unshare: Double.infinity)
        for k in 0 ..< repeats {
            benchProgress("pvm bench conversion: single pages, run \(k + 1) of \(repeats)")
            let (m, vm) = try machine()
            try m.hyp.hostConvertGuestRange(vm: vm, gfn: GFN(0), pages: Self.pages, to: .private, backing: m.pfn(0))
            best.share = min(best.share, try measure {
                for g in 0 ..< Self.pages { try m.hyp.guestShareHost(vm: vm, gfn: GFN(g)) }
            })
            best.unshare = min(best.unshare, try measure {
                for g in 0 ..< Self.pages { try m.hyp.guestUnshareHost(vm: vm, gfn: GFN(g)) }
            })
            try check(m)
        }
        return best
    }

    /// The host donates 1 GiB with `block`-page leaves; the guest shares it in ranges of `block`
    /// pages (range MEM_SHARE, repeated where EL2 stops after 256 leaves); the host converts it
    /// back to private in ranges of `block` pages.
    private func ranges(block: UInt64) throws -> (donate: Double, share: Double, unshare: Double) {
        var best = (donate: Double.infinity, share: Double.infinity, unshare: Double.infinity)
        for k in 0 ..< repeats {
            benchProgress("pvm bench conversion: ranges of \(block) pages, run \(k + 1) of \(repeats)")
            let (m, vm) = try machine()
            best.donate = min(best.donate, try measure {
                try m.hyp.hostConvertGuestRange(vm: vm, gfn: GFN(0), pages: Self.pages, to: .private, backing: m.pfn(0),
                                                blockPages: block)
            })
            best.share = min(best.share, try measure {
                var g: UInt64 = 0
                while g < Self.pages {
                    let end = min(g + block, Self.pages)
                    while g < end { g += try m.hyp.guestShareHostRange(vm: vm, gfn: GFN(g), pages: end - g) }
                }
            })
            best.unshare = min(best.unshare, try measure {
                for g in stride(from: 0, to: Self.pages, by: Int(block)) {
                    try m.hyp.hostConvertGuestRange(vm: vm, gfn: GFN(g), pages: block, to: .private, backing: m.pfn(g))
                }
            })
            try check(m)
            guard m.hyp.vm(vm)!.stage2.splits == 0 else { throw ValidationError("a whole-leaf conversion split a block") }
        }
        return best
    }

    private func check(_ m: BenchMachine) throws {
        let v = m.hyp.checkInvariants()
        guard v.isEmpty else { throw ValidationError("the benchmark broke EL2's invariants: \(v[0])") }
    }

    /// The bench image's memory sweep on the interpreter, 4 KiB then 2 MiB leaves.
    private func interpreterSweep() throws {
        benchPrint("interpreter, read-modify-write of one word per 4 KiB page over 256 MiB, \(passes) passes:")
        var mips: [GuestBlockSize: Double] = [:]
        for block in [GuestBlockSize.page, .block2M] {
            benchProgress("pvm bench conversion: interpreter sweep, \(block) leaves")
            var c = MachineConfiguration(firmware: EmbeddedImage.firmware.bytes(for: "aarch64"),
                                         payload: EmbeddedImage.bench.bytes(for: "aarch64"))
            c.payloadName = "bench"
            c.memory = 512 << 20
            c.guestBlock = block
            c.payloadArgument = UInt64(passes) | GuestLayout.benchModeMemory << 48
            let machine = try Machine(c, backend: InterpBackend())
            let outcome = try machine.run()
            let stats = machine.statistics
            _ = try machine.teardown()
            let times = machine.markerTimes, counts = machine.markerInstructions
            guard outcome == .poweredOff, times.count == 2, let a = counts[0], let b = counts[1] else {
                throw ValidationError("the bench guest did not finish its sweep: \(outcome)")
            }
            let m = Double(b - a) / (Double(times[1] - times[0]) / 1e9) / 1e6
            mips[block] = m
            benchPrint("  \(block) leaves: \(format2(m)) MIPS (\(grouped(Double(b - a))) instructions); first pass took "
                       + "\(grouped(Double(stats.stage2Faults))) stage-2 faults, \(format2(Double(times[0]) / 1e9)) s from boot")
        }
        if let small = mips[.page], let big = mips[.block2M], small > 0 {
            benchPrint("  2 MiB / 4 KiB leaves: \(format2(big / small))x")
        }
    }
}
