import Foundation
import Testing
@testable import AArch64

/// Every instruction in Debian's static busybox (the initramfs's userspace, glibc included)
/// that llvm-objdump decodes must decode here too, except the extensions the ID registers do not
/// advertise (SVE, SME, MTE, MOPS: glibc uses them only when HWCAP says so). Runs where
/// scripts/fetch-linux.sh has filled the cache and the toolchain has llvm-objdump; skips,
/// saying why, elsewhere.
@Suite struct BusyboxCoverageTests {
    /// Mnemonics of extensions pvm does not implement or advertise.
    static let unadvertised: Set<String> = [
        "st1b", "ld1b", "whilelo", "cntb", "cntd", "ptrue", "mov",  // SVE (mov here is SVE's DUP)
        "stg", "stzg", "st2g", "stz2g", "ldg", "irg", "gmi",        // MTE
        "cpyp", "cpym", "cpye", "cpyfp", "cpyfm", "cpyfe", "setp", "setm", "sete",  // MOPS
    ]

    static var busybox: String? {
        let env = ProcessInfo.processInfo.environment
        let cache = env["PVM_CACHE"].map { $0 + "/linux" } ?? env["XDG_CACHE_HOME"].map { $0 + "/pvm/linux" }
            ?? ((env["HOME"] ?? "/root") + "/.cache/pvm/linux")
        guard let manifest = try? String(contentsOfFile: cache + "/current", encoding: .utf8) else { return nil }
        for line in manifest.split(separator: "\n") where line.hasPrefix("busybox=") {
            let path = cache + "/" + line.dropFirst(8)
            return FileManager.default.fileExists(atPath: path) ? path : nil
        }
        return nil
    }

    static var objdump: String? {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? ""
        for dir in path.split(separator: ":") {
            let swiftc = URL(fileURLWithPath: String(dir)).appendingPathComponent("swiftc").resolvingSymlinksInPath()
            let candidate = swiftc.deletingLastPathComponent().appendingPathComponent("llvm-objdump").path
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        return nil
    }

    @Test func everyBusyboxInstructionDecodes() throws {
        guard let busybox = Self.busybox else {
            print("BusyboxCoverageTests: skipped: no cached busybox (scripts/fetch-linux.sh)")
            return
        }
        guard let objdump = Self.objdump else {
            print("BusyboxCoverageTests: skipped: no llvm-objdump next to swiftc")
            return
        }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: objdump)
        p.arguments = ["-d", busybox]
        let out = Pipe()
        p.standardOutput = out
        p.standardError = FileHandle.nullDevice
        try p.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        var checked = 0
        var missing: [String: (count: Int, example: String)] = [:]
        for line in String(decoding: data, as: UTF8.self).split(separator: "\n") {
            // "  40028c: 9402d7ee     \tbl\t0x4b6244", or (older LLVM) the bytes in memory order:
            // "  40028c: ee d7 02 94  \tbl\t0x4b6244".
            let fields = line.split(separator: "\t", omittingEmptySubsequences: false)
            guard fields.count >= 2 else { continue }
            let head = fields[0].split(separator: " ")
            guard head.count == 2 || head.count == 5, head[0].hasSuffix(":") else { continue }
            let word: UInt32
            if head.count == 2 {
                guard let w = UInt32(head[1], radix: 16) else { continue }
                word = w
            } else {
                let bytes = head.dropFirst().compactMap { UInt32($0, radix: 16) }
                guard bytes.count == 4 else { continue }
                word = bytes[0] | bytes[1] << 8 | bytes[2] << 16 | bytes[3] << 24
            }
            let mnemonic = String(fields[1])
            guard mnemonic != "<unknown>", mnemonic != ".word", mnemonic != "udf" else { continue }
            checked += 1
            if Decoder.decode(word).kind == .undefined, !Self.unadvertised.contains(mnemonic) {
                missing[mnemonic, default: (0, String(word, radix: 16))].count += 1
            }
        }
        #expect(checked > 100_000, "only \(checked) instructions found in \(busybox) by \(objdump)")
        #expect(missing.isEmpty, "undecoded: \(missing.map { "\($0.key) x\($0.value.count) (\($0.value.example))" }.sorted())")
        print("BusyboxCoverageTests: \(checked) instructions of \(busybox.split(separator: "/").last ?? "") decode")
    }
}
