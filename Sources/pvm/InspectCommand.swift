import ArgumentParser
import EL2
import Inspection
import ModelScript
import Synchronization
import Tracing
import VMM
#if canImport(Glibc)
import Glibc
#endif

/// `pvm inspect`: picture the ownership of every page, and every stage-2 table, of a guest
/// (running or finished) or of a `pvm model` session.
struct InspectCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inspect",
        abstract: "Picture page ownership (SVG or HTML) and the stage-2 tables of a guest or a model session.",
        discussion: """
            Boots IMAGE (default hello) like pvm boot and captures EL2's state when the guest \
            stops, before teardown, or --at-ms after the start while it runs; or, with --model \
            SCRIPT, runs a pvm model script and captures the state at its end. --format html \
            writes one self-contained page (overview by 2 MiB region, click to zoom to pages, \
            stage-2 trees); svg writes one image with a cell per page (per 2 MiB region above \
            256 MiB, or as --granularity says); text prints runs of pages by owner; stage2 prints \
            every stage-2 table as a tree of decoded descriptors. The format defaults to the \
            --output extension (.html, .svg), else text. Exit status: 0, 2 when the guest could \
            not be built or the output not written, 64 for a bad flag.
            """
    )

    enum Format: String, ExpressibleByArgument, CaseIterable {
        case html, svg, text, stage2
    }

    @Argument(help: ArgumentHelp("Guest image: an ELF file or a built-in name.", valueName: "IMAGE"))
    var image: String = "hello"

    @Option(name: .long, help: ArgumentHelp("Run this pvm model script instead of booting a guest.", valueName: "SCRIPT"))
    var model: String?

    @Option(name: .shortAndLong, help: ArgumentHelp("Write the picture here instead of standard output.", valueName: "FILE"))
    var output: String?

    @Option(name: .long, help: ArgumentHelp("html, svg, text or stage2 (default: from --output's extension, else text).", valueName: "FORMAT"))
    var format: Format?

    @Option(name: .long, help: ArgumentHelp("SVG cells: page, region (2 MiB) or auto.", valueName: "CELLS"))
    var granularity: String = "auto"

    @Option(name: .long, help: ArgumentHelp("Capture the running guest this many milliseconds after the start (default: when it stops).", valueName: "MS"))
    var atMs: Int?

    @Option(name: .long, help: ArgumentHelp("With --model: the IPA size of every stage-2.", valueName: "BITS"))
    var ipaBits: Int = 40

    @OptionGroup var guest: GuestOptions

    func validate() throws {
        if model == nil { try guest.check() } else {
            if atMs != nil { throw ValidationError("--at-ms applies to a booted guest, not to --model") }
            _ = try modelConfiguration()
        }
        if let atMs, atMs < 0 || atMs > 86_400_000 {
            throw ValidationError("--at-ms \(atMs) must be between 0 and 86400000 (a day)")
        }
        guard granularity == "auto" || OwnershipPicture.Granularity(rawValue: granularity) != nil else {
            throw ValidationError("--granularity '\(granularity)' must be page, region or auto")
        }
    }

    private func modelConfiguration() throws -> ModelSession.Configuration {
        try MachineOptions.configuration(memory: guest.memory, ipaBits: ipaBits, ramBase: "0x80000000", iommuMode: guest.iommuMode)
    }

    private var chosenFormat: Format {
        if let format { return format }
        if let output, output.hasSuffix(".svg") { return .svg }
        if let output, output.hasSuffix(".html") || output.hasSuffix(".htm") { return .html }
        return .text
    }

    func run() throws {
        let snapshot = try model.map { try modelSnapshot($0) } ?? guestSnapshot()
        let text: String
        switch chosenFormat {
        case .html: text = OwnershipPage(snapshot).html()
        case .svg: text = OwnershipPicture(snapshot, granularity: OwnershipPicture.Granularity(rawValue: granularity)).svg()
        case .text: text = Self.summary(snapshot)
        case .stage2: text = snapshot.tables.map { Stage2Tree.text($0) }.joined(separator: "\n\n") + "\n"
        }
        if let output {
            do { try TextFile.write(text, to: output) } catch { throw fatal("inspect", "\(error)") }
            printError("pvm inspect: wrote \(chosenFormat.rawValue) for \(snapshot.map.pages.count) pages to \(output)")
        } else {
            print(text, terminator: "")
        }
    }

    private func modelSnapshot(_ script: String) throws -> InspectionSnapshot {
        let session: ModelSession
        do { session = try ModelSession(try modelConfiguration()) } catch let e as ModelSession.SetupError {
            throw ValidationError(e.description)
        }
        guard let text = readFile(script) else {
            throw fatal("inspect", "cannot read script '\(script)': \(String(cString: strerror(errno)))")
        }
        let lines = ModelSession.lines(of: text)
        for (i, line) in lines.enumerated() {
            if let r = session.run(line: line, number: i + 1), r.isMalformed { printError("pvm inspect: \(script): \(r.text)") }
        }
        if session.malformedLines > 0 { throw fatal("inspect", "\(session.malformedLines) malformed line(s) in \(script)") }
        return InspectionSnapshot(session.hypervisor, title: "pvm model \(script): after \(lines.count) lines")
    }

    private func guestSnapshot() throws -> InspectionSnapshot {
        var (configuration, backend) = try guest.machine(image: image, command: "inspect")
        configuration.console = { _ in }
        do { return try capture(configuration, backend: backend) } catch { throw fatal("inspect", "\(error)") }
    }

    /// Boots, captures (at `--at-ms` while running, else when the guest stops), tears down.
    private func capture(_ configuration: MachineConfiguration, backend: any ExecutionBackend) throws(VMMError) -> InspectionSnapshot {
        let machine = try Machine(configuration, backend: backend)
        let kind = guest.nonProtected ? "non-protected" : "protected"
        let captured = Mutex<InspectionSnapshot?>(nil)
        let outcome: RunOutcome
        if let atMs {
            let title = "pvm inspect \(image) (\(kind)), running, \(atMs) ms after boot"
            let run = try machine.run(observingAfter: UInt64(atMs) * 1_000_000) {
                captured.withLock { $0 = InspectionSnapshot(machine.hypervisor, title: title) }
            }
            outcome = run.0
            if !run.observed { printError("pvm inspect: the guest stopped before \(atMs) ms; showing it stopped") }
        } else {
            outcome = try machine.run()
        }
        let ending = switch outcome {
        case .poweredOff: "powered off"
        case .reset: "asked for a reset"
        case .faulted: "stopped for a fault"
        case .interrupted: "interrupted"
        }
        let snapshot = captured.withLock { $0 } ?? InspectionSnapshot(
            machine.hypervisor, title: "pvm inspect \(image) (\(kind)), guest \(ending), before teardown")
        _ = try machine.teardown()
        return snapshot
    }

    /// Runs of pages by owner and state, then counts.
    static func summary(_ s: InspectionSnapshot) -> String {
        var o = "\(s.title)\n\(s.map.pages.count) pages in \(s.map.regions.map { "\($0)" }.joined(separator: ", "))\n"
        var counts: [PageCategory: Int] = [:]
        for c in s.categories { counts[c, default: 0] += 1 }
        for run in s.runs {
            let start = s.map.pfn(at: run.first).rawValue << pageShift
            let range = "[\(hex(start)), \(hex(start + UInt64(run.count) << pageShift)))"
            o += "  \(range.padding(44)) \(String(run.count).padding(7, left: false)) \(run.category.label(s.map))\n"
        }
        let cats = counts.keys.sorted { "\($0.code)" < "\($1.code)" }
        o += "pages by kind: " + cats.map { "\(counts[$0]!) \($0.label(s.map))" }.joined(separator: ", ") + "\n"
        let dma = s.map.pages.indices.filter { !s.map.pages[$0].dmaDomains.isEmpty }
        if !dma.isEmpty { o += "\(dma.count) pages mapped by an SMMU domain besides the identity domain\n" }
        return o
    }
}

extension String {
    fileprivate func padding(_ width: Int, left: Bool = true) -> String {
        count >= width ? self : (left ? self + String(repeating: " ", count: width - count) : String(repeating: " ", count: width - count) + self)
    }
}
