import EL2
import Foundation
import Testing

/// The constants shared by Swift and the guests' C come from one table (ABI/guest-abi.table):
/// the committed generated files must be what the generator makes of it today.
@Suite struct ABITableTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()
    static let generated = ["Sources/EL2/SMCCCFunction.swift", "Sources/EL2/SMCCCConstants.swift",
                            "Sources/VMM/GuestLayout.swift", "Sources/VMM/AArch64Layout.swift",
                            "GuestImages/include/pvm_abi_table.h"]

    @Test func generatedFilesAreUpToDate() throws {
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("pvm-abi-\(getpid())")
        defer { try? FileManager.default.removeItem(at: out) }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/sh")
        p.arguments = [Self.root.appendingPathComponent("scripts/generate-abi.sh").path, out.path]
        try p.run()
        p.waitUntilExit()
        #expect(p.terminationStatus == 0)
        for file in Self.generated {
            let committed = try String(contentsOf: Self.root.appendingPathComponent(file), encoding: .utf8)
            let fresh = try String(contentsOf: out.appendingPathComponent(file), encoding: .utf8)
            #expect(committed == fresh, "\(file) is out of date: run scripts/generate-abi.sh")
        }
    }

    @Test func functionIDsFollowTheSMCCCEncoding() {
        for f in SMCCCFunction.allCases {
            let id = f.rawValue
            #expect(id & 0x8000_0000 != 0, "\(f.name) is a fast call")
            let owner = (id >> 24) & 0x3F
            #expect([0, 4, 5, 6].contains(owner), "\(f.name): owner \(owner)")
            // SMC64 names end in a 64-bit form; the table's 32-bit twins say so.
            if f.name.hasSuffix("32") { #expect(id & 0x4000_0000 == 0, "\(f.name)") }
        }
        #expect(Set(SMCCCFunction.allCases.map(\.name)).count == SMCCCFunction.allCases.count)
    }
}
