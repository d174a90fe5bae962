/// A hypercall regression scenario: a guest image, the `pvm boot` flags to run it with, and what
/// must happen — the outcome, each vCPU's transcript (its hypercalls with all four results, and
/// the faults that are not plain first-touch donations), and the state of named pages at the end.
/// docs/testing.md documents the file format; `Scenario(parsing:path:)` reads it.
public struct Scenario: Sendable, Equatable {
    /// Something the host does to a guest page when an event of the payload happens (the event
    /// in `pvm inspect --at` syntax, counted from the payload's start):
    /// - `touch`: it reads the page; EL2 refuses a protected guest's page, and the host then
    ///   force-reclaims it (`__pkvm_host_force_reclaim_page_guest`), poisoning the guest's entry.
    /// - `pin` / `unpin`: a host device maps / unmaps the shared page (a long-term pin under
    ///   `--host-pins longterm`, nothing otherwise); `ref`: a short-term reference (GUP-fast).
    /// - `convert-private` / `convert-shared`: the host converts `pages` pages from the page in
    ///   place (`Machine.convertGuestMemory`), retrying on -EAGAIN.
    public struct HostAction: Sendable, Equatable {
        public static let kinds = ["touch", "pin", "unpin", "ref", "convert-private", "convert-shared"]
        public let kind: String
        public let address: String
        /// Pages, for the conversions (1 otherwise).
        public let pages: UInt64
        public let event: String
        public let line: Int
        public init(kind: String = "touch", address: String, pages: UInt64 = 1, event: String, line: Int) {
            self.kind = kind
            self.address = address
            self.pages = pages
            self.event = event
            self.line = line
        }

        /// `host KIND ADDRESS [PAGES]`: how the transcript names what was done.
        public var label: String { "host \(kind) \(address)" + (kind.hasPrefix("convert") ? " \(pages)" : "") }
        /// The scenario line that reads back as this action.
        public var text: String { label + " at \(event)" }
    }

    /// An expected page state at the end of the run, before teardown.
    public struct PageExpectation: Sendable, Equatable {
        /// The page as the transcript names it (`ram+0x9000`).
        public let address: String
        /// `guest=SHARED_OWNED host=SHARED_BORROWED hyp=NOPAGE`, in that order.
        public let state: String
        public let line: Int
        public init(address: String, state: String, line: Int) {
            self.address = address
            self.state = state
            self.line = line
        }
    }

    /// A transcript line with the line of the file that expects it.
    public struct Expected: Sendable, Equatable {
        public let text: String
        public let line: Int
        /// A `*` line: matches any number of consecutive equal lines, none included (a vCPU
        /// polling another, whose count depends on timing).
        public let repeats: Bool
        public init(text: String, line: Int, repeats: Bool = false) {
            self.text = text
            self.line = line
            self.repeats = repeats
        }
    }

    public var name: String
    /// Where the file is (for messages and for image paths relative to it).
    public var path: String
    /// A built-in image name, or a path (relative to the scenario file's directory).
    public var image: String
    /// `pvm boot` flags: profile, vCPUs, memory, protection, IOMMU mode, argument.
    public var flags: [String]
    /// `powered-off`, `faulted`, `reset`.
    public var outcome: String
    public var outcomeLine: Int
    /// Per vCPU, in order.
    public var transcripts: [Int: [Expected]]
    public var pages: [PageExpectation]
    /// Host actions to take during the run: `host KIND ADDRESS [PAGES] at EVENT`.
    public var hostActions: [HostAction] = []
    /// Backends the scenario does not run on, with why (`skip interp: needs ...`).
    public var skips: [String: String]
    /// The kernel command line (`append ARGS`, for `image linux:NAME`).
    public var append: String?
    /// Lines to type on the console, each once the console shows `prompt` again (`type TEXT`).
    public var typed: [String] = []
    /// What the console prints before each typed line is sent (`prompt TEXT`).
    public var prompt = "pvm>"
    /// Text the console must show, in this order (`console TEXT`).
    public var consoleExpectations: [Expected] = []
    /// `transcript calls`: compare hypercall names only (a kernel's arguments and results,
    /// such as TRNG's random words, differ from run to run).
    public var callsOnly = false
    /// `ignore NAME...`: hypercalls left out of the comparison (a kernel's TRNG_RND64 entropy
    /// top-ups come whenever its timers say, so their place in the transcript varies).
    public var ignored: [String] = []
    /// `shared-pages N`: pages the guest has shared with the host at the end.
    public var sharedPages: Int?
    public var sharedPagesLine = 0

    /// A kernel scenario (`image linux:NAME`): the name of the cached kernel it boots.
    public var linuxKernel: String? { image.hasPrefix("linux:") ? String(image.dropFirst(6)) : nil }

    public static let outcomes = ["powered-off", "faulted", "reset"]

    public init(name: String, path: String, image: String, flags: [String], outcome: String,
                transcripts: [Int: [Expected]], pages: [PageExpectation], skips: [String: String] = [:]) {
        self.name = name
        self.path = path
        self.image = image
        self.flags = flags
        self.outcome = outcome
        outcomeLine = 0
        self.transcripts = transcripts
        self.pages = pages
        self.skips = skips
    }

    /// Reads a scenario file. Every malformed line is an error naming the file and the line;
    /// a file without `image` or `outcome` is refused, so a broken file never passes.
    /// `recording` accepts a file without an outcome (`pvm test --record` writes one).
    public init(parsing text: String, path: String, recording: Bool = false) throws(ScenarioError) {
        var name: String?
        var image: String?
        var flags: [String] = []
        var outcome: String?
        var outcomeLine = 0
        var transcripts: [Int: [Expected]] = [:]
        var pages: [PageExpectation] = []
        var skips: [String: String] = [:]
        var hostActions: [HostAction] = []
        var vcpu: Int?
        var append: String?, typed: [String] = [], prompt: String?, console: [Expected] = []
        var callsOnly = false, sharedPages: Int?, sharedPagesLine = 0, ignored: [String] = []
        func fail(_ line: Int, _ message: String) -> ScenarioError { ScenarioError(path: path, line: line, message: message) }
        guard text.utf8.count <= Self.sizeLimit else { throw fail(0, "larger than \(Self.sizeLimit >> 10) KiB") }
        for (index, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let number = index + 1
            let code = raw.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false)[0]
            var words = code.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\r" }).map(String.init)
            let repeats = words.first == "*"
            if repeats { words.removeFirst() }
            guard let keyword = words.first else {
                if repeats { throw fail(number, "'*' must be followed by an hvc or fault line") }
                continue
            }
            if repeats, keyword != "hvc", keyword != "fault" { throw fail(number, "'*' applies to hvc and fault lines only") }
            let rest = Array(words.dropFirst())
            switch keyword {
            case "scenario":
                guard rest.count == 1 else { throw fail(number, "scenario takes one name") }
                name = rest[0]
            case "image":
                guard rest.count == 1 else { throw fail(number, "image takes one built-in name or path") }
                image = rest[0]
            case "flags":
                flags += rest
            case "append":
                append = rest.joined(separator: " ")
            case "type":
                typed.append(rest.joined(separator: " "))
            case "prompt":
                guard !rest.isEmpty else { throw fail(number, "prompt takes the text the console shows before input") }
                prompt = rest.joined(separator: " ")
            case "console":
                guard !rest.isEmpty else { throw fail(number, "console takes the text the console must show") }
                console.append(Expected(text: rest.joined(separator: " "), line: number))
            case "transcript":
                guard rest == ["calls"] else { throw fail(number, "transcript takes 'calls' (compare hypercall names only)") }
                callsOnly = true
            case "ignore":
                guard !rest.isEmpty else { throw fail(number, "ignore takes hypercall names") }
                ignored += rest
            case "shared-pages":
                guard rest.count == 1, let n = Int(rest[0]), n >= 0 else { throw fail(number, "shared-pages takes a page count") }
                sharedPages = n
                sharedPagesLine = number
            case "outcome":
                guard rest.count == 1, Self.outcomes.contains(rest[0]) else {
                    throw fail(number, "outcome must be one of \(Self.outcomes.joined(separator: ", "))")
                }
                outcome = rest[0]
                outcomeLine = number
            case "skip":
                guard rest.count >= 2, ["kvm", "interp"].contains(rest[0]) else { throw fail(number, "skip takes a backend (kvm, interp) and a reason") }
                skips[rest[0]] = rest.dropFirst().joined(separator: " ")
            case "vcpu":
                guard rest.count == 1, let n = Int(rest[0]), (0 ..< 64).contains(n) else { throw fail(number, "vcpu takes a vCPU index, 0 to 63") }
                guard transcripts[n] == nil else { throw fail(number, "vcpu \(n) appears twice") }
                vcpu = n
                transcripts[n] = []
            case "host" where Self.HostAction.kinds.contains(rest.first ?? "") && !rest.contains("->"):
                let kind = rest[0], converts = kind.hasPrefix("convert")
                let n = converts ? 5 : 4
                guard rest.count == n, rest[1].hasPrefix("ram+") || rest[1].hasPrefix("scratch+"), rest[n - 2] == "at" else {
                    throw fail(number, "host takes \(kind) ADDRESS\(converts ? " PAGES" : "") at EVENT (ADDRESS ram+.. or scratch+..)")
                }
                var pages: UInt64 = 1
                if converts {
                    guard let p = UInt64(rest[2]), p >= 1, p <= 1 << 20 else { throw fail(number, "\(kind): PAGES must be 1 to 1048576") }
                    pages = p
                }
                hostActions.append(HostAction(kind: kind, address: rest[1], pages: pages, event: rest[n - 1], line: number))
            case "hvc", "fault", "host":
                guard let v = vcpu else { throw fail(number, "\(keyword) before any 'vcpu N' line") }
                let line = words.joined(separator: " ")
                if callsOnly {
                    guard words.count == 2, keyword == "hvc" else { throw fail(number, "with 'transcript calls', a line is hvc NAME") }
                } else if let problem = Self.checkTranscriptLine(words) { throw fail(number, problem) }
                transcripts[v]!.append(Expected(text: line, line: number, repeats: repeats))
            case "page":
                guard rest.count == 4, rest[0].hasPrefix("ram+") || rest[0].hasPrefix("scratch+"),
                      rest[1].hasPrefix("guest="), rest[2].hasPrefix("host="), rest[3].hasPrefix("hyp=") else {
                    throw fail(number, "page takes ram+OFFSET or scratch+OFFSET, then guest=STATE host=STATE hyp=STATE")
                }
                pages.append(PageExpectation(address: rest[0], state: rest[1...].joined(separator: " "), line: number))
            default:
                throw fail(number, "unknown keyword '\(keyword)' (scenario, image, flags, append, type, prompt, console, "
                           + "transcript, ignore, shared-pages, outcome, skip, host, vcpu, hvc, fault, page)")
            }
        }
        guard let image else { throw fail(0, "no 'image' line") }
        guard let outcome = outcome ?? (recording ? "powered-off" : nil) else { throw fail(0, "no 'outcome' line") }
        let base = path.split(separator: "/").last.map(String.init) ?? path
        self.init(name: name ?? (base.hasSuffix(".scenario") ? String(base.dropLast(9)) : base), path: path, image: image,
                  flags: flags, outcome: outcome, transcripts: transcripts, pages: pages, skips: skips)
        self.outcomeLine = outcomeLine
        self.hostActions = hostActions
        self.append = append
        self.typed = typed
        if let prompt { self.prompt = prompt }
        consoleExpectations = console
        self.callsOnly = callsOnly
        self.ignored = ignored
        self.sharedPages = sharedPages
        self.sharedPagesLine = sharedPagesLine
        if append != nil || !typed.isEmpty, linuxKernel == nil {
            throw fail(0, "append and type go with 'image linux:NAME'")
        }
    }

    /// The largest scenario file read.
    public static let sizeLimit = 1 << 20

    /// `hvc NAME A1 A2 A3 -> R0 R1 R2 R3` or `fault ACCESS ADDRESS ACTION`.
    static func checkTranscriptLine(_ w: [String]) -> String? {
        if w[0] == "host" {
            // What the host did: `host read ADDRESS -> RESULT`, `host force-reclaim ADDRESS -> RESULT`,
            // and the host actions' own lines: `host KIND ADDRESS [PAGES] -> RESULT...`.
            let kinds = ["read", "force-reclaim"] + HostAction.kinds.filter { $0 != "touch" }
            let arrow = w.count > 4 && w[1].hasPrefix("convert") ? 4 : 3
            guard w.count > arrow + 1, kinds.contains(w[1]), Transcript.isValue(w[2]), w[arrow] == "->",
                  arrow == 3 || UInt64(w[3]) != nil else {
                return "a host transcript line is host read|force-reclaim|\(HostAction.kinds.dropFirst().joined(separator: "|")) ADDRESS [PAGES] -> RESULT"
            }
            return nil
        }
        if w[0] == "hvc" {
            guard w.count == 10, w[5] == "->" else { return "hvc takes NAME A1 A2 A3 -> R0 R1 R2 R3" }
            for v in w[2 ... 4] + w[6 ... 9] where !Transcript.isValue(v) { return "'\(v)' is not a value (0x.., ram+0x.., scratch+0x.., img, dev:NAME+0x..)" }
            return nil
        }
        guard w.count == 4 else { return "fault takes ACCESS ADDRESS ACTION" }
        guard ["read", "write", "fetch", "share", "unknown"].contains(w[1]) else { return "fault access must be read, write, fetch, share or unknown" }
        guard Transcript.isValue(w[2]) else { return "'\(w[2])' is not an address" }
        guard ["donated", "shared", "stopped", "poisoned", "refused"].contains(w[3]) else {
            return "fault action must be donated, shared, stopped, poisoned or refused"
        }
        return nil
    }

    /// The scenario as a file: what `pvm test --record` writes.
    public var text: String {
        var o = "# pvm test scenario (docs/testing.md)\nscenario \(name)\nimage \(image)\n"
        if !flags.isEmpty { o += "flags \(flags.joined(separator: " "))\n" }
        if let append { o += "append \(append)\n" }
        if !typed.isEmpty { o += "prompt \(prompt)\n" }
        for t in typed { o += "type \(t)\n" }
        for c in consoleExpectations { o += "console \(c.text)\n" }
        if callsOnly { o += "transcript calls\n" }
        if !ignored.isEmpty { o += "ignore \(ignored.joined(separator: " "))\n" }
        if let sharedPages { o += "shared-pages \(sharedPages)\n" }
        for (backend, why) in skips.sorted(by: { $0.key < $1.key }) { o += "skip \(backend) \(why)\n" }
        for h in hostActions { o += h.text + "\n" }
        o += "outcome \(outcome)\n"
        for v in transcripts.keys.sorted() {
            o += "\nvcpu \(v)\n"
            for e in transcripts[v]! { o += (e.repeats ? "* " : "  ") + e.text + "\n" }
        }
        if !pages.isEmpty { o += "\n" }
        for p in pages { o += "page \(p.address) \(p.state)\n" }
        return o
    }
}

/// A scenario file that cannot be used: the file, the line (0: the file as a whole), what is wrong.
public struct ScenarioError: Error, Sendable, Equatable, CustomStringConvertible {
    public let path: String
    public let line: Int
    public let message: String
    public init(path: String, line: Int, message: String) {
        self.path = path
        self.line = line
        self.message = message
    }
    public var description: String { line > 0 ? "\(path):\(line): \(message)" : "\(path): \(message)" }
}
