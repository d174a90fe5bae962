#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// A trace read back and checked: every line an event of the documented format.
public struct TraceFile: Sendable {
    public let records: [TraceRecord]

    /// Parses JSON Lines text. Blank lines are skipped; a last line without its newline that
    /// does not parse is reported as truncated.
    public init(text bytes: [UInt8]) throws(TraceFileError) {
        var records: [TraceRecord] = []
        var lineNumber = 0
        var start = 0
        while start < bytes.count {
            lineNumber += 1
            var end = start
            while end < bytes.count, bytes[end] != 0x0a { end += 1 }
            let isLast = end == bytes.count
            let line = bytes[start ..< end]
            start = end + 1
            if line.allSatisfy({ $0 == 0x20 || $0 == 0x09 || $0 == 0x0d }) { continue }
            guard let text = String(validating: line, as: UTF8.self) else { throw .encoding(line: lineNumber) }
            let value: JSONValue
            do { value = try JSONValue.parse(text) } catch {
                if isLast && error.message.contains("truncated?") {
                    throw .truncated(line: lineNumber, message: error.description)
                }
                throw .syntax(line: lineNumber, column: error.offset + 1, message: error.message)
            }
            guard let object = value.object else {
                throw .schema(line: lineNumber, message: "each line must be a JSON object, found \(value)")
            }
            records.append(try TraceRecord(line: lineNumber, object: object))
        }
        self.records = records
    }

    /// The largest trace `pvm trace` reads: 256 MiB (about 1.5 million hypercalls; a parsed
    /// trace takes several times its size in memory).
    public static let sizeLimit = 256 << 20

    /// Reads and checks the trace at `path` (at most `sizeLimit` bytes).
    public init(path: String) throws(TraceFileError) {
        switch TextFile.read(path, limit: Self.sizeLimit) {
        case let .success(bytes): try self.init(text: bytes)
        case let .failure(.unreadable(e)): throw .io(path: path, errno: e)
        case let .failure(.tooLarge(limit)): throw .tooLarge(path: path, limit: limit)
        }
    }

    /// The machines the trace describes (one per `pvm boot`).
    public var machines: [TraceMachine] { records.compactMap(TraceMachine.init) }
}

/// A `machine` event, read back.
public struct TraceMachine: Sendable, Equatable {
    public let vm: UInt64
    public let vmid: UInt64
    public let vcpus: Int
    public let guestRAMBase: UInt64
    public let guestMemory: UInt64
    public let isProtected: Bool
    public let iommu: String
    public let image: String

    init?(_ r: TraceRecord) {
        guard r.kind == .machine, let vm = r.unsigned("vm"), let vmid = r.unsigned("vmid"), let vcpus = r.integer("vcpus"),
              let base = r.unsigned("ram_base"), let memory = r.unsigned("memory") else { return nil }
        self.vm = vm
        self.vmid = vmid
        self.vcpus = vcpus
        guestRAMBase = base
        guestMemory = memory
        isProtected = r["protected"]?.bool ?? true
        iommu = r.string("iommu") ?? "none"
        image = r.string("image") ?? "?"
    }

    /// The guest frame backed by physical frame `pfn`, if it is guest RAM.
    public func gfn(pfn: UInt64) -> UInt64? {
        let base = guestRAMBase >> 12
        return pfn >= base && pfn - base < guestMemory >> 12 ? pfn - base : nil
    }

    /// The physical frame behind guest frame `gfn`, if it is guest RAM.
    public func pfn(gfn: UInt64) -> UInt64? {
        gfn < guestMemory >> 12 ? (guestRAMBase >> 12) + gfn : nil
    }
}
