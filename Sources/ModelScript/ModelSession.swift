import EL2
import HostMemory
import Tracing

/// A `pvm model` session: one machine (RAM, EL2 booted over it), the VMs the script named, and
/// the interpreter of the script language (see `ModelOperation.all` and docs/model-language.md).
///
/// Each line is one operation; `run(line:number:)` returns what to print: the line, ` -> `,
/// and the result (`0`, an errno name such as `-EPERM`, or the text an inspection prints).
public final class ModelSession {
    /// How the machine is built.
    public struct Configuration: Sendable {
        /// Bytes of RAM, a multiple of 4 KiB (default 64 MiB).
        public var memory: UInt64 = 64 << 20
        /// IPA size of every stage-2 (default 40 bits).
        public var ipaBits = 40
        /// Physical address of the first RAM byte; pfn 0 of the script (default 0x8000_0000,
        /// where crosvm's arm64 layout puts RAM).
        public var ramBase: UInt64 = 0x8000_0000
        /// The SMMU's design, or nil for a machine without one (default: none).
        public var iommu: IOMMUMode?
        /// The pKVM whose guest ABI (`hvc`) and errnos EL2 answers with (default: mainline).
        public var profile: PKVMProfile = .mainline
        public init() {}
    }

    /// Why a session could not start.
    public struct SetupError: Error, CustomStringConvertible {
        public let description: String
    }

    /// Memcache pages `vm_create` gives a new VM: enough for 30 distinct 2 MiB regions of a
    /// 40-bit guest before the script needs `vm_memcache`.
    public static let defaultMemcache = 32
    /// Smallest RAM a session accepts.
    public static let minimumMemory: UInt64 = 1 << 20
    /// Largest RAM a session accepts.
    public static let maximumMemory: UInt64 = 64 << 30

    public let hypervisor: Hypervisor
    let host: ModelHost
    let log = ModelEventLog()
    private let backing: AnonymousMemory
    /// Script names of VMs. A torn-down VM keeps its name (EL2 then answers for a dead handle)
    /// until `vm_create` reuses it.
    var vmNames: [String: VMHandle] = [:]
    /// The name that created the VM now (or last) at each handle: a torn-down name whose handle
    /// a later `vm_create` reused no longer names anything.
    var handleOwners: [VMHandle: String] = [:]
    /// Lines that could not be run so far.
    public private(set) var malformedLines = 0

    public init(_ configuration: Configuration = Configuration()) throws(SetupError) {
        let size = configuration.memory
        guard size >= Self.minimumMemory, size <= Self.maximumMemory, size % pageSize == 0 else {
            throw SetupError(description: "memory size \(size) bytes must be a multiple of 4 KiB between 1M and 64G")
        }
        guard configuration.ramBase % (2 << 20) == 0 else {
            throw SetupError(description: "RAM base \(hex(configuration.ramBase)) must be 2 MiB aligned")
        }
        guard configuration.ramBase <= UInt64.max - size else {
            throw SetupError(description: "RAM [\(hex(configuration.ramBase)), +\(size)) runs past the end of the address space")
        }
        do {
            backing = try AnonymousMemory(size: Int(size))
        } catch {
            throw SetupError(description: error.description)
        }
        do {
            let memory = try PhysicalMemory(regions: [MemoryRegion(base: PhysAddr(configuration.ramBase), size: size)],
                                            backing: backing.buffer, owner: backing,
                                            clearPage: AnonymousMemory.clearPage)
            hypervisor = try Hypervisor(memory: memory, ipaBits: configuration.ipaBits, iommu: configuration.iommu,
                                        profile: configuration.profile, sink: log)
        } catch let e as PhysicalMemory.LayoutError {
            throw SetupError(description: e.description)
        } catch let e as Hypervisor.InitError {
            throw SetupError(description: e.description)
        } catch {
            throw SetupError(description: "\(error)")
        }
        host = ModelHost(hyp: hypervisor)
    }

    /// What running one line produced.
    public struct LineResult: Equatable, Sendable {
        /// The text to print (may span several lines).
        public let text: String
        /// True when the line could not be run (unknown operation, bad arguments).
        public let isMalformed: Bool
        /// The line's number, the operation as shown (words joined by one space; for a comment,
        /// the comment) and its result alone (nil for a comment): what `pvm model --json` prints.
        public var number = 0
        public var operation = ""
        public var result: String?

        /// The result as one JSON object: {"line":N,"op":"…","result":"…","ok":true}, or
        /// {"line":N,"comment":"…"}.
        public var json: String {
            var o: JSONObject = ["line": .int(number)]
            if let result {
                o["op"] = .string(operation)
                o["result"] = .string(result)
                o["ok"] = .bool(!isMalformed)
            } else {
                o["comment"] = .string(operation)
            }
            return JSONValue.object(o).description
        }
    }

    /// Runs one script line. Returns nil for a blank line; a comment line comes back as itself.
    public func run(line raw: String, number: Int) -> LineResult? {
        let trimmed = raw.trimmingCharactersInWhitespace()
        if trimmed.isEmpty { return nil }
        if trimmed.hasPrefix("#") { return LineResult(text: trimmed, isMalformed: false, number: number, operation: trimmed) }
        let code = trimmed.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false)[0]
        let words = code.split(whereSeparator: { $0 == " " || $0 == "\t" })
        let shown = words.joined(separator: " ")
        do throws(ModelLineError) {
            let result = try execute(words)
            return LineResult(text: "\(shown) -> \(result)", isMalformed: false, number: number, operation: shown, result: result)
        } catch {
            malformedLines += 1
            return LineResult(text: "\(shown) -> error: line \(number): \(error.message)", isMalformed: true, number: number,
                              operation: shown, result: "error: \(error.message)")
        }
    }

    private func execute(_ words: [Substring]) throws(ModelLineError) -> String {
        let name = String(words[0])
        guard let op = ModelOperation.byName[name] else {
            let near = ModelOperation.all.map(\.name).filter { $0.hasPrefix(String(name.prefix(4))) }
            let hint = near.isEmpty ? "; try help" : "; did you mean \(near.joined(separator: ", "))?"
            throw ModelLineError("unknown operation '\(name)'\(hint)")
        }
        let args = Array(words.dropFirst())
        guard op.arity.contains(args.count) else {
            let expected = op.arity.lowerBound == op.arity.upperBound
                ? "\(op.arity.lowerBound)" : "\(op.arity.lowerBound) to \(op.arity.upperBound)"
            throw ModelLineError("\(name) takes \(expected) argument\(op.arity.upperBound == 1 ? "" : "s") "
                                 + "(\(name) \(op.synopsis)), got \(args.count)")
        }
        return try op.run(ModelArguments(operation: name, tokens: args, session: self))
    }

    /// The lines of a script: split at LF, CR LF or CR (Swift's `Character` makes "\r\n" one
    /// character, so splitting at "\n" alone would keep a CRLF script as one line).
    public static func lines(of text: String) -> [String] {
        var lines = text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline).map(String.init)
        if lines.last == "" { lines.removeLast() }
        return lines
    }

    /// The handle a script's VM name stands for, as the operations resolve it: nil for a name
    /// never created, or one whose handle a later VM took.
    public func handle(named name: String) -> VMHandle? {
        guard let h = vmNames[name], handleOwners[h] == name else { return nil }
        return h
    }

    /// The language reference `help` prints.
    public static var help: String { ModelOperation.helpText }
}
