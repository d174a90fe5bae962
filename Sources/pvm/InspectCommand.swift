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
            stops, before teardown; at an event with --at (\(CapturePoint.forms)); or --at-ms \
            after the start while it runs. With --model SCRIPT it runs a pvm model script and \
            captures the state at its end. --format html writes one self-contained page (search \
            box, overview by 2 MiB region, click to zoom to pages, stage-2 trees); svg writes one \
            image with a cell per page (per 2 MiB region above 256 MiB, or as --granularity says), \
            long uniform runs folded; text prints runs of pages by owner (--json: as JSON); stage2 \
            prints every stage-2 table as a tree of decoded descriptors. The format defaults to the \
            --output extension (.html, .svg, .json, .txt), else text; '-o -' is standard output. \
            The faulting page of a stopped guest, the page of an --at fault, and every \
            --highlight page are marked. Exit status: 0, 2 when the guest could not be built or \
            the output not written, 64 for a bad flag.
            """
    )

    enum Format: String, ExpressibleByArgument, CaseIterable {
        case html, svg, text, stage2, json
    }

    @Argument(help: ArgumentHelp("Guest image: an ELF file or a built-in name (default hello).", valueName: "IMAGE"))
    var imageArgument: String?

    var image: String { imageArgument ?? guest.kernel ?? "hello" }

    @Option(name: .long, help: ArgumentHelp("Run this pvm model script instead of booting a guest.", valueName: "SCRIPT"))
    var model: String?

    @Option(name: .shortAndLong, help: ArgumentHelp("Write the picture here instead of standard output ('-': standard output).", valueName: "FILE"))
    var output: String?

    @Option(name: .long, help: ArgumentHelp("html, svg, text, json or stage2 (default: from --output's extension, else text).", valueName: "FORMAT"))
    var format: Format?

    @Flag(name: .long, help: "The text output as JSON (the same as --format json).")
    var json = false

    @Option(name: .long, parsing: .singleValue, help: ArgumentHelp("Mark this page: a PFN (0x80010), pa:ADDR or gfn:GFN (repeatable).", valueName: "PAGE"))
    var highlight: [String] = []

    @Option(name: .long, help: ArgumentHelp("Capture the running guest at an event: \(CapturePoint.forms).", valueName: "EVENT"))
    var at: String?

    @Option(name: .long, help: ArgumentHelp("SVG cells: page, region (2 MiB) or auto.", valueName: "CELLS"))
    var granularity: String = "auto"

    @Option(name: .long, help: ArgumentHelp("Capture the running guest this many milliseconds after the start (default: when it stops).", valueName: "MS"))
    var atMs: Int?

    @Option(name: .long, help: ArgumentHelp("With --model: the IPA size of every stage-2 (default 40).", valueName: "BITS"))
    var ipaBits: Int?

    @OptionGroup var guest: GuestOptions

    func validate() throws {
        if model == nil {
            try guest.check()
            if ipaBits != nil { throw ValidationError("--ipa-bits applies to --model; a booted guest's IPA size comes from EL2") }
            if guest.kernel != nil, let imageArgument { throw ValidationError("give IMAGE ('\(imageArgument)') or --kernel, not both") }
        } else {
            var ignored = guest.bootOnlyFlagsGiven
            if imageArgument != nil { ignored.insert("IMAGE", at: 0) }
            if atMs != nil { ignored.append("--at-ms") }
            if at != nil { ignored.append("--at") }
            if !ignored.isEmpty {
                throw ValidationError("\(ignored.joined(separator: ", ")) describe\(ignored.count == 1 ? "s" : "") a booted guest; --model runs a script instead")
            }
            _ = try modelConfiguration()
        }
        if at != nil && atMs != nil { throw ValidationError("--at and --at-ms both choose when to capture: give one") }
        if let at, CapturePoint(at) == nil {
            throw ValidationError("--at '\(at)' is not an event: use \(CapturePoint.forms)")
        }
        for h in highlight where HighlightFlag(h) == nil {
            throw ValidationError("--highlight '\(h)' is not a page: use a PFN (0x80010), pa:ADDR or gfn:GFN")
        }
        if json, let format, format != .json, format != .text {
            throw ValidationError("--json is the text output as JSON; it cannot be combined with --format \(format.rawValue)")
        }
        if let output, output != TextFile.standardStream {
            let ext = output.split(separator: ".").last.map { $0.lowercased() } ?? ""
            if ["png", "jpg", "jpeg", "gif", "webp", "pdf", "bmp"].contains(ext), output.contains(".") {
                throw ValidationError("-o \(output): pvm inspect writes SVG, HTML, text or JSON, not .\(ext); write .svg and convert it (for example rsvg-convert -o x.png x.svg)")
            }
        }
        if let atMs, atMs < 0 || atMs > 86_400_000 {
            throw ValidationError("--at-ms \(atMs) must be between 0 and 86400000 (a day)")
        }
        guard granularity == "auto" || OwnershipPicture.Granularity(rawValue: granularity) != nil else {
            throw ValidationError("--granularity '\(granularity)' must be page, region or auto")
        }
    }

    private func modelConfiguration() throws -> ModelSession.Configuration {
        var c = try MachineOptions.configuration(memory: guest.memory, ipaBits: ipaBits ?? 40, ramBase: "0x80000000",
                                                 iommuMode: guest.iommuMode)
        if let profile = try guest.explicitProfile() { c.profile = profile }
        return c
    }

    private var chosenFormat: Format {
        if json { return .json }
        if let format { return format }
        let name = (output ?? "").lowercased()
        if name.hasSuffix(".svg") { return .svg }
        if name.hasSuffix(".html") || name.hasSuffix(".htm") { return .html }
        if name.hasSuffix(".json") { return .json }
        return .text
    }

    func run() throws {
        var snapshot = try model.map { try modelSnapshot($0) } ?? guestSnapshot()
        for h in highlight {
            let pages = HighlightFlag(h)!.pages(in: snapshot)
            if pages.isEmpty { printError("pvm inspect: --highlight \(h): no such page in RAM") }
            snapshot.highlights += pages.map { .init(pfn: $0, reason: "--highlight \(h)") }
        }
        let text: String
        switch chosenFormat {
        case .html: text = OwnershipPage(snapshot).html()
        case .svg: text = OwnershipPicture(snapshot, granularity: OwnershipPicture.Granularity(rawValue: granularity)).svg()
        case .text: text = OwnershipSummary(snapshot).text
        case .json: text = OwnershipSummary(snapshot).json + "\n"
        case .stage2: text = snapshot.tables.map { Stage2Tree.text($0) }.joined(separator: "\n\n") + "\n"
        }
        if let output, output != TextFile.standardStream {
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

    /// Boots, captures (at `--at` or `--at-ms` while running, else when the guest stops, with
    /// its faulting page marked), tears down.
    private func capture(_ configuration: MachineConfiguration, backend: any ExecutionBackend) throws(VMMError) -> InspectionSnapshot {
        var configuration = configuration
        let kind = guest.nonProtected ? "non-protected" : "protected"
        let captured = Mutex<InspectionSnapshot?>(nil)
        // The observer runs on a vCPU thread once the machine exists; it reaches EL2 through this.
        let el2 = Mutex<Hypervisor?>(nil)
        let seen = Mutex(0)
        let point = at.flatMap(CapturePoint.init)
        if let point {
            let title = "pvm inspect \(image) (\(kind)), running, at \(point)"
            configuration.trace = EventTrace { event in
                guard point.counts(event) else { return }
                let n = seen.withLock { n -> Int in
                    n += 1
                    return n
                }
                guard n == point.occurrence, let hypervisor = el2.withLock({ $0 }) else { return }
                var snapshot = InspectionSnapshot(hypervisor, title: title)
                if case let .fault(f) = event, let pa = f.ownership?.page {
                    snapshot.highlights.append(.init(pfn: pa.pfn, reason: "the page of \(point) (\(f.access.rawValue), \(f.action.rawValue))"))
                }
                captured.withLock { $0 = snapshot }
            }
        }
        let machine = try Machine(configuration, backend: backend)
        el2.withLock { $0 = machine.hypervisor }
        let outcome: RunOutcome
        if let point {
            outcome = try machine.run()
            if captured.withLock({ $0 }) == nil {
                let count = seen.withLock { $0 }
                printError("pvm inspect: the guest stopped before \(point) (it made \(count) such event\(count == 1 ? "" : "s")); showing it stopped")
            }
        } else if let atMs {
            let title = "pvm inspect \(image) (\(kind)), running, \(atMs) ms after boot"
            let run = try machine.run(observingAfter: UInt64(atMs) * 1_000_000) {
                captured.withLock { $0 = InspectionSnapshot(machine.hypervisor, title: title) }
            }
            outcome = run.0
            if !run.observed { printError("pvm inspect: the guest stopped before \(atMs) ms; showing it stopped (--at EVENT captures at an event)") }
        } else {
            outcome = try machine.run()
        }
        let ending = switch outcome {
        case .poweredOff: "powered off"
        case .reset: "asked for a reset"
        case .faulted: "stopped for a fault"
        case .interrupted: "interrupted"
        }
        var snapshot = captured.withLock { $0 } ?? InspectionSnapshot(
            machine.hypervisor, title: "pvm inspect \(image) (\(kind)), guest \(ending), before teardown")
        if captured.withLock({ $0 }) == nil, case let .faulted(report) = outcome {
            if let pa = report.record?.ownership?.page {
                snapshot.highlights.append(.init(pfn: pa.pfn, reason: "the faulting page: \(report.reason)"))
            }
        }
        _ = try machine.teardown()
        return snapshot
    }
}
