import EL2

/// An ELF64 executable, parsed and checked strictly before any byte of it reaches guest memory:
/// the format QEMU and crosvm load for bare-metal guests (ELF-64 Object File Format; the
/// System V gABI). Only what a static, non-relocatable image needs is accepted, with exactly
/// the checks the firmware makes (Firmware/loader.c, `elf_validate`), so an image the VMM
/// accepts is never refused later by the firmware.
public struct ELFImage: Sendable {
    /// One PT_LOAD segment.
    public struct Segment: Sendable, Equatable {
        public let address: UInt64
        public let memorySize: UInt64
        public let fileOffset: UInt64
        public let fileSize: UInt64
        public let executable: Bool
        public var range: Range<UInt64> { address ..< address + memorySize }
    }

    /// Why an image was refused.
    public enum ImageError: Error, Equatable, CustomStringConvertible {
        case unreadable(path: String, reason: String)
        case empty(name: String)
        case tooLarge(name: String, size: Int, limit: Int)
        case notELF(name: String)
        case truncated(name: String, what: String)
        case unsupported(name: String, what: String)
        case segmentOutsideMemory(name: String, segment: Int, range: Range<UInt64>, window: Range<UInt64>)
        case overlappingSegments(name: String)
        case entryOutsideSegments(name: String, entry: UInt64)

        public var description: String {
            switch self {
            case let .unreadable(path, reason): "cannot read image \(path): \(reason)"
            case let .empty(name): "\(name): the image is empty"
            case let .tooLarge(name, size, limit): "\(name): \(size) bytes is too large (at most \(limit) bytes fit)"
            case let .notELF(name): "\(name): not an ELF image (bad magic)"
            case let .truncated(name, what): "\(name): truncated: \(what)"
            case let .unsupported(name, what): "\(name): unsupported ELF: \(what)"
            case let .segmentOutsideMemory(name, segment, range, window):
                "\(name): segment \(segment) [\(hex(range.lowerBound)), \(hex(range.upperBound))) is outside guest memory window [\(hex(window.lowerBound)), \(hex(window.upperBound)))"
            case let .overlappingSegments(name): "\(name): PT_LOAD segments overlap"
            case let .entryOutsideSegments(name, entry): "\(name): entry point \(hex(entry)) is not in an executable segment"
            }
        }
    }

    public let name: String
    public let bytes: [UInt8]
    public let entry: UInt64
    public let segments: [Segment]
    /// The pKVM profile the image says it is written for: the desc of its ELF note named "pvm"
    /// of type 1 (GuestImages/include/payload.h, `PVM_REQUIRES_ABI`), if it has one.
    public let requiredProfile: String?

    static let typeExecutable: UInt16 = 2
    static let programLoad: UInt32 = 1
    static let programDynamic: UInt32 = 2
    static let programInterpreter: UInt32 = 3
    static let programNote: UInt32 = 4
    static let flagExecute: UInt32 = 1
    /// The firmware's `PVMFW_MAX_PHDRS`.
    static let maxProgramHeaders = 64

    /// The ELF `e_machine` of an architecture: EM_X86_64 (62), EM_AARCH64 (183).
    static func machineNumber(_ architecture: GuestArchitecture) -> UInt16 {
        switch architecture {
        case .x86_64: 62
        case .aarch64: 183
        }
    }

    /// Parses `bytes` as an executable for `machine`; every PT_LOAD segment must lie inside
    /// `window`.
    public init(bytes: [UInt8], name: String, window: Range<UInt64>, machine: GuestArchitecture) throws(ImageError) {
        self.name = name
        self.bytes = bytes
        guard !bytes.isEmpty else { throw .empty(name: name) }
        guard bytes.count >= 4, bytes[0] == 0x7f, bytes[1] == 0x45, bytes[2] == 0x4c, bytes[3] == 0x46 else {
            throw .notELF(name: name)
        }
        guard bytes.count >= 64 else { throw .truncated(name: name, what: "\(bytes.count) bytes, the ELF header needs 64") }
        guard bytes[4] == 2 else { throw .unsupported(name: name, what: "not ELFCLASS64") }
        guard bytes[5] == 1 else { throw .unsupported(name: name, what: "not little-endian") }
        guard bytes[6] == 1, Self.u32(bytes, 20) == 1 else {
            throw .unsupported(name: name, what: "ELF version \(bytes[6]) / \(Self.u32(bytes, 20)), expected 1")
        }
        let type = Self.u16(bytes, 16), found = Self.u16(bytes, 18), wanted = Self.machineNumber(machine)
        guard found == wanted else {
            throw .unsupported(name: name, what: "machine \(found), expected \(machine) (\(wanted))")
        }
        guard type == Self.typeExecutable else { throw .unsupported(name: name, what: "type \(type), expected ET_EXEC (2)") }
        guard Self.u16(bytes, 52) >= 64 else { throw .unsupported(name: name, what: "e_ehsize \(Self.u16(bytes, 52))") }
        let entry = Self.u64(bytes, 24)
        self.entry = entry
        let phoff = Self.u64(bytes, 32), phentsize = Self.u16(bytes, 54), phnum = Self.u16(bytes, 56)
        guard phnum > 0 else { throw .unsupported(name: name, what: "no program headers") }
        guard phnum <= Self.maxProgramHeaders else {
            throw .unsupported(name: name, what: "\(phnum) program headers (at most \(Self.maxProgramHeaders))")
        }
        guard phentsize == 56 else { throw .unsupported(name: name, what: "program header size \(phentsize)") }
        let tableEnd = phoff.addingReportingOverflow(UInt64(phnum) * 56)
        guard !tableEnd.overflow, tableEnd.partialValue <= UInt64(bytes.count) else {
            throw .truncated(name: name, what: "program headers end past the file")
        }
        var segments: [Segment] = []
        var profile: String?
        for i in 0 ..< Int(phnum) {
            let h = Int(phoff) + i * 56
            let kind = Self.u32(bytes, h)
            if kind == Self.programDynamic || kind == Self.programInterpreter {
                throw .unsupported(name: name, what: "dynamic executable (PT_DYNAMIC / PT_INTERP)")
            }
            if kind == Self.programNote {
                let offset = Self.u64(bytes, h + 8), size = Self.u64(bytes, h + 32)
                let end = offset.addingReportingOverflow(size)
                guard !end.overflow, end.partialValue <= UInt64(bytes.count) else {
                    throw .truncated(name: name, what: "note segment \(i) ends past the file")
                }
                profile = profile ?? Self.pvmNote(bytes, from: Int(offset), to: Int(end.partialValue))
                continue
            }
            guard kind == Self.programLoad else { continue }
            let flags = Self.u32(bytes, h + 4)
            let offset = Self.u64(bytes, h + 8), address = Self.u64(bytes, h + 16)
            let fileSize = Self.u64(bytes, h + 32), memorySize = Self.u64(bytes, h + 40)
            guard fileSize <= memorySize else {
                throw .unsupported(name: name, what: "segment \(i) has more file bytes than memory bytes")
            }
            let fileEnd = offset.addingReportingOverflow(fileSize)
            guard !fileEnd.overflow, fileEnd.partialValue <= UInt64(bytes.count) else {
                throw .truncated(name: name, what: "segment \(i) ends past the file")
            }
            let end = address.addingReportingOverflow(memorySize)
            guard !end.overflow, address >= window.lowerBound, end.partialValue <= window.upperBound else {
                throw .segmentOutsideMemory(name: name, segment: i, range: address ..< (end.overflow ? .max : end.partialValue),
                                            window: window)
            }
            if memorySize == 0 { continue }
            segments.append(Segment(address: address, memorySize: memorySize, fileOffset: offset, fileSize: fileSize,
                                    executable: flags & Self.flagExecute != 0))
        }
        guard !segments.isEmpty else { throw .unsupported(name: name, what: "no loadable segment") }
        let sorted = segments.sorted { $0.address < $1.address }
        for (a, b) in zip(sorted, sorted.dropFirst()) where a.range.upperBound > b.address {
            throw .overlappingSegments(name: name)
        }
        guard segments.contains(where: { $0.executable && $0.range.contains(entry) }) else {
            throw .entryOutsideSegments(name: name, entry: entry)
        }
        self.segments = segments
        self.requiredProfile = profile
    }

    /// The desc of the first note named "pvm" with type 1 in `bytes[start ..< end]`, as text
    /// without its NUL padding (ELF gABI "Note Section": namesz, descsz, type, then the name
    /// and the desc, each padded to 4 bytes). Malformed notes end the search.
    static func pvmNote(_ bytes: [UInt8], from start: Int, to end: Int) -> String? {
        var p = start
        while p + 12 <= end {
            let nameSize = Int(u32(bytes, p)), descSize = Int(u32(bytes, p + 4)), type = u32(bytes, p + 8)
            let name = p + 12, desc = name + (nameSize + 3) & ~3, next = desc + (descSize + 3) & ~3
            guard nameSize <= 64, descSize <= 64, next <= end else { return nil }
            if type == 1, bytes[name ..< name + nameSize].prefix(while: { $0 != 0 }).elementsEqual("pvm".utf8) {
                return String(decoding: bytes[desc ..< desc + descSize].prefix(while: { $0 != 0 }), as: UTF8.self)
            }
            p = next
        }
        return nil
    }

    static func u16(_ b: [UInt8], _ o: Int) -> UInt16 { UInt16(b[o]) | UInt16(b[o + 1]) << 8 }
    static func u32(_ b: [UInt8], _ o: Int) -> UInt32 { UInt32(u16(b, o)) | UInt32(u16(b, o + 2)) << 16 }
    static func u64(_ b: [UInt8], _ o: Int) -> UInt64 { UInt64(u32(b, o)) | UInt64(u32(b, o + 4)) << 32 }
}
