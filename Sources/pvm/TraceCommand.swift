import ArgumentParser
import ModelScript
import Tracing

/// `pvm trace FILE`: read a `pvm boot --trace` file back as text, filtered; follow one page's
/// life; export a Perfetto timeline.
struct TraceCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "trace",
        abstract: "Read a trace (pvm boot --trace) back as text, filter it, follow a page, or export it for Perfetto.",
        discussion: """
            Every line of FILE is checked against the format (docs/trace-format.md); a corrupt or \
            truncated file is reported with its line number and nothing is printed from it. Filters \
            combine: an event is shown when it passes all of them. --follow PFN shows the life of one \
            physical page: every event that touches it and, after each change, what the host \
            stage-2, the guest stage-2 and the SMMU domains say about it. --chrome writes the \
            (filtered) events as Chrome trace-event JSON instead of printing them: open it at \
            ui.perfetto.dev. FILE '-' reads standard input and --chrome - writes to standard output. \
            An empty trace, or filters that select nothing, are said so on standard error. Exit status: \
            0, 2 when the file cannot be read or is not a valid trace, 64 for a bad flag.
            """
    )

    @Argument(help: ArgumentHelp("The trace file (JSON Lines; '-' for standard input).", valueName: "FILE"))
    var file: String

    @Option(name: .long, parsing: .singleValue,
            help: ArgumentHelp("Show only these kinds (repeat, or separate with commas); 'faults' means fault, host-fault and iommu-fault.", valueName: "KIND"))
    var kind: [String] = []

    @Option(name: .long, help: ArgumentHelp("Show only events of this VM (its handle, e.g. 0x1000), and host or EL2 events on its pages.", valueName: "HANDLE"))
    var vm: String?

    @Option(name: .long, parsing: .singleValue, help: ArgumentHelp("Show only events that touch this physical frame (repeatable).", valueName: "PFN"))
    var pfn: [String] = []

    @Option(name: .long, parsing: .singleValue, help: ArgumentHelp("Show only events that touch the page holding this physical address (repeatable).", valueName: "PA"))
    var pa: [String] = []

    @Option(name: .long, help: ArgumentHelp("Show only events of this vCPU.", valueName: "N"))
    var vcpu: Int?

    @Option(name: .long, help: ArgumentHelp("Show only events at or after this time (milliseconds since the trace began).", valueName: "MS"))
    var since: Double?

    @Option(name: .long, help: ArgumentHelp("Show only events at or before this time (milliseconds).", valueName: "MS"))
    var until: Double?

    @Option(name: .long, help: ArgumentHelp("Tell the life of one physical page.", valueName: "PFN"))
    var follow: String?

    @Flag(name: .long, help: "Print the selected events as JSON Lines, exactly as the file holds them.")
    var json = false

    @Option(name: .long, help: ArgumentHelp("Write the selected events as Chrome trace-event JSON (Perfetto) to FILE ('-': standard output) instead of printing them.", valueName: "FILE"))
    var chrome: String?

    @Flag(name: .long, help: "End with a count of the selected events by kind, and of faults by action.")
    var summary = false

    func validate() throws {
        _ = try filter()
        if let follow, NumberParser.unsigned(Substring(follow)).map({ $0 < 1 << 52 }) != true {
            throw ValidationError("--follow '\(follow)' is not a page frame number (below 2^52)")
        }
        if json && follow != nil { throw ValidationError("--json and --follow cannot be combined") }
        if chrome != nil && (json || follow != nil) {
            throw ValidationError("--chrome writes the events as a Perfetto timeline; it cannot be combined with --json or --follow")
        }
    }

    private func filter() throws -> TraceFilter {
        var f = TraceFilter()
        for list in kind {
            for name in list.split(separator: ",").map(String.init) {
                if name == "faults" { f.kinds.formUnion(TraceKind.faults); continue }
                guard let k = TraceKind(rawValue: name) else {
                    throw ValidationError("--kind '\(name)' is not an event kind: use \(TraceKind.allCases.map(\.rawValue).joined(separator: ", ")) or faults")
                }
                f.kinds.insert(k)
            }
        }
        if let vm {
            guard let v = NumberParser.unsigned(Substring(vm)) else { throw ValidationError("--vm '\(vm)' is not a VM handle") }
            f.vm = v
        }
        for p in pfn {
            guard let v = NumberParser.unsigned(Substring(p)) else { throw ValidationError("--pfn '\(p)' is not a page frame number") }
            f.pfns.append(v)
        }
        for p in pa {
            guard let v = NumberParser.unsigned(Substring(p)) else { throw ValidationError("--pa '\(p)' is not an address") }
            f.pfns.append(v >> 12)
        }
        f.vcpu = vcpu
        for (name, value) in [("--since", since), ("--until", until)] {
            if let value, !(value >= 0 && value < 1e12) { throw ValidationError("\(name) \(value) must be a non-negative number of milliseconds") }
        }
        f.since = since.map { UInt64($0 * 1e6) }
        f.until = until.map { UInt64($0 * 1e6) }
        return f
    }

    func run() throws {
        let trace: TraceFile
        do { trace = try TraceFile(path: file) } catch {
            printError("pvm trace: \(file): \(error)")
            throw ExitCode(2)
        }
        var filter = try filter()
        var history: PageHistory?
        if let follow {
            let p = NumberParser.unsigned(Substring(follow))!
            history = PageHistory(pfn: p)
            filter.pfns.append(p)
        }
        var resolver = TracePageResolver()
        var selected: [TraceRecord] = []
        var out = ""
        if let history { out += "life of PFN 0x\(String(history.pfn, radix: 16)) (PA 0x\(String(history.pfn << 12, radix: 16)))\n" }
        for r in trace.records {
            resolver.observe(r)
            if var h = history, r.kind == .machine {
                _ = h.apply(r, resolver)
                history = h
                if let m = resolver.soleMachine, let gfn = m.gfn(pfn: h.pfn) {
                    out += "  guest RAM of vm 0x\(String(m.vm, radix: 16)) (\(m.image)): gfn 0x\(String(gfn, radix: 16))\n"
                }
                out += "  at start: \(h.summary)\n"
            }
            guard filter.accepts(r, resolver) else { continue }
            selected.append(r)
            if chrome != nil { continue }
            if json {
                out += r.jsonLine + "\n"
            } else {
                out += TraceFormatter.line(r) + "\n"
                if var h = history, r.kind != .machine {
                    if h.apply(r, resolver) { out += String(repeating: " ", count: 36) + "now: \(h.summary)\n" }
                    history = h
                }
            }
            if out.utf8.count > 1 << 16 {
                print(out, terminator: "")
                out = ""
            }
        }
        if let history { out += "\(selected.count) events touch PFN 0x\(String(history.pfn, radix: 16)); at the end: \(history.summary)\n" }
        if summary { out += summaryText(selected, total: trace.records.count) }
        let name = file == TextFile.standardStream ? "standard input" : file
        if trace.records.isEmpty {
            printError("pvm trace: \(name) holds no events")
        } else if selected.isEmpty {
            printError("pvm trace: none of the \(trace.records.count) events of \(name) passes the filters")
        }
        if chrome == TextFile.standardStream && summary {
            // The timeline owns standard output: the summary goes to standard error.
            printError(out, newline: false)
        } else {
            print(out, terminator: "")
        }
        if let chrome {
            do { try TextFile.write(ChromeTraceExporter.export(selected), to: chrome) } catch {
                printError("pvm trace: \(error)")
                throw ExitCode(2)
            }
            if chrome != TextFile.standardStream {
                printError("pvm trace: wrote \(selected.count) events to \(chrome) (Chrome trace-event JSON; open it at ui.perfetto.dev)")
            }
        }
    }

    private func summaryText(_ records: [TraceRecord], total: Int) -> String {
        var byKind: [TraceKind: Int] = [:]
        var byAction: [String: Int] = [:]
        for r in records {
            byKind[r.kind, default: 0] += 1
            if TraceKind.faults.contains(r.kind) { byAction[r.string("action") ?? "?", default: 0] += 1 }
        }
        var o = "\(records.count) of \(total) events: "
        o += byKind.keys.sorted().map { "\(byKind[$0]!) \($0.rawValue)" }.joined(separator: ", ")
        if !byAction.isEmpty { o += "; faults: " + byAction.keys.sorted().map { "\(byAction[$0]!) \($0)" }.joined(separator: ", ") }
        return o + "\n"
    }

}

