import AArch64
import Foundation
import Testing

/// pvm's CPU against a reference the project did not write: random sequences of user-level
/// A64 instructions (integer, load/store, atomics, a SIMD&FP subset) run under Debian's
/// qemu-aarch64 and on `AArch64CPU`; final registers, flags and memory must be equal.
@Suite struct DifferentialTests {
    static let qemu = ["/usr/bin/qemu-aarch64", "/usr/local/bin/qemu-aarch64"].first { FileManager.default.isExecutableFile(atPath: $0) }

    @Test(arguments: [(UInt64(1), false), (2, false), (3, false), (4, false), (5, true), (6, true), (7, true), (8, true)])
    func randomSequencesAgreeWithQEMU(seed: UInt64, fp: Bool) throws {
        guard let qemu = Self.qemu else {
            print("DifferentialTests: skipped: qemu-aarch64 is not installed (apt-get install qemu-user; .ci/run does)")
            return
        }
        let cases = 500
        var generator = SequenceGenerator(seed: seed)
        var program = DifferentialProgram(sequences: [], initialStates: [], initialScratch: [])
        for _ in 0 ..< cases {
            var sequence: [UInt32] = []
            while sequence.count < 12 { sequence += generator.instruction(fp: fp) }
            program.sequences.append(sequence)
            program.initialStates.append(initialState(&generator, index: program.initialStates.count, fp: fp))
            program.initialScratch.append((0 ..< DifferentialProgram.scratchBytes).map { _ in UInt8(truncatingIfNeeded: generator.next()) })
        }
        let (elf, output) = program.build()
        let expected = try runQEMU(qemu, elf)
        let actual = try runPVM(elf, output: output)
        #expect(expected.count == output.count, "qemu wrote \(expected.count) bytes")
        let instructions = program.sequences.reduce(0) { $0 + $1.count }
        var failures = 0
        for c in 0 ..< cases where failures < 5 {
            let state = (c * DifferentialProgram.stateBytes) ..< ((c + 1) * DifferentialProgram.stateBytes)
            let scratchOffset = (cases * DifferentialProgram.stateBytes).roundedUpToPage
            let scratch = (scratchOffset + c * DifferentialProgram.scratchBytes) ..< (scratchOffset + (c + 1) * DifferentialProgram.scratchBytes)
            guard state.upperBound <= expected.count, scratch.upperBound <= expected.count else { break }
            if Array(expected[state]) != Array(actual[state]) || Array(expected[scratch]) != Array(actual[scratch]) {
                failures += 1
                let words = program.sequences[c].map { String($0, radix: 16) }.joined(separator: " ")
                let memory = Array(expected[scratch]) != Array(actual[scratch]) ? "\n  scratch memory differs" : ""
                Issue.record("case \(c): \(describe(expected[state], actual[state]))\n  words: \(words)\(memory)")
            }
        }
        print("DifferentialTests seed \(seed)\(fp ? " (with SIMD&FP)" : ""): \(cases - failures) of \(cases) sequences, "
              + "\(instructions) instructions, agree with qemu-aarch64")
    }

    func initialState(_ g: inout SequenceGenerator, index: Int, fp: Bool) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: DifferentialProgram.stateBytes)
        func put(_ value: UInt64, at offset: Int) {
            for b in 0 ..< 8 { bytes[offset + b] = UInt8(truncatingIfNeeded: value >> (8 * UInt64(b))) }
        }
        for r in 0 ..< 24 {
            // Edge values now and then: 0, all ones, the sign bits.
            let v: UInt64
            switch g.below(8) {
            case 0: v = [0, ~0, 0x8000_0000_0000_0000, 0x7FFF_FFFF_FFFF_FFFF, 0x8000_0000, 0xFFFF_FFFF, 1][Int(g.below(7))]
            case 1: v = UInt64(g.below(256))
            default: v = g.next()
            }
            put(v, at: 8 * r)
        }
        put(UInt64(g.below(9)) * 8, at: 8 * 24)  // x24: a small index
        // x25, the moving base, is set by the program to the middle of the case's scratch buffer.
        put(UInt64(g.below(16)) << 28, at: 208)  // NZCV
        for v in 0 ..< 8 {
            for half in 0 ..< 2 {
                let value: UInt64
                if fp && g.below(3) != 0 {
                    // Ordinary floats and doubles, so FP arithmetic is exercised on numbers.
                    let f = Float(Int(g.below(2001)) - 1000) / Float(g.below(16) + 1)
                    let d = Double(Int(g.below(20001)) - 10000) / Double(g.below(64) + 1)
                    value = g.flag() ? UInt64(f.bitPattern) | UInt64(Float(g.below(100)).bitPattern) << 32 : d.bitPattern
                } else {
                    value = g.next()
                }
                put(value, at: 224 + 16 * v + 8 * half)
            }
        }
        return bytes
    }

    func describe(_ expected: ArraySlice<UInt8>, _ actual: ArraySlice<UInt8>) -> String {
        let e = Array(expected), a = Array(actual)
        func word(_ bytes: [UInt8], _ i: Int) -> UInt64 { (0 ..< 8).reduce(0) { $0 | UInt64(bytes[i + $1]) << (8 * UInt64($1)) } }
        var parts: [String] = []
        for r in 0 ..< 26 where word(e, 8 * r) != word(a, 8 * r) {
            parts.append("x\(r) qemu 0x\(String(word(e, 8 * r), radix: 16)) pvm 0x\(String(word(a, 8 * r), radix: 16))")
        }
        if word(e, 208) != word(a, 208) { parts.append("NZCV qemu \(word(e, 208) >> 28) pvm \(word(a, 208) >> 28)") }
        for v in 0 ..< 8 {
            let lo = 224 + 16 * v
            if word(e, lo) != word(a, lo) || word(e, lo + 8) != word(a, lo + 8) {
                parts.append("v\(v) qemu \(String(word(e, lo + 8), radix: 16)):\(String(word(e, lo), radix: 16)) "
                             + "pvm \(String(word(a, lo + 8), radix: 16)):\(String(word(a, lo), radix: 16))")
            }
        }
        return parts.joined(separator: "; ")
    }

    /// Runs the ELF under qemu-aarch64 (at most 30 s, at most 64 MiB of output).
    func runQEMU(_ qemu: String, _ elf: [UInt8]) throws -> [UInt8] {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("pvm-diff-\(getpid())-\(UInt32.random(in: 0 ... .max)).elf")
        try Data(elf).write(to: path)
        defer { try? FileManager.default.removeItem(at: path) }
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: path.path)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: qemu)
        p.arguments = [path.path]
        let out = Pipe()
        p.standardOutput = out
        try p.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        #expect(p.terminationStatus == 0, "qemu-aarch64 exited \(p.terminationStatus)")
        return [UInt8](data.prefix(64 << 20))
    }

    /// Runs the same ELF on `AArch64CPU` at EL1 with an identity map (Normal memory, so
    /// unaligned accesses behave as under Linux), serving write and exit from the SVCs.
    func runPVM(_ elf: [UInt8], output: Range<UInt64>) throws -> [UInt8] {
        let base = DifferentialProgram.base
        let imageSize = (UInt64(elf.count) + 0x1F_FFFF) & ~0x1F_FFFF
        let tables = base + imageSize
        let size = imageSize + 0x40_0000
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: Int(size), alignment: 4096)
        defer { buffer.deallocate() }
        buffer.initializeMemory(as: UInt8.self, repeating: 0, count: Int(size))
        elf.withUnsafeBytes { buffer.copyMemory(from: $0.baseAddress!, byteCount: elf.count) }
        func put(_ pa: UInt64, _ value: UInt64) { buffer.storeBytes(of: value, toByteOffset: Int(pa - base), as: UInt64.self) }
        let cpu = AArch64CPU(memory: PhysicalWindow(base: base, size: size, host: buffer))
        // L1 at `tables`, one L2, L3 tables for every 2 MiB of the image (VA 0x40_0000 up).
        let l1 = tables, l2 = tables + 0x1000
        put(l1 + 8 * (base >> 30), l2 | 3)
        for chunk in 0 ..< imageSize >> 21 {
            let va = base + chunk << 21
            let l3 = tables + 0x2000 + chunk * 0x1000
            put(l2 + 8 * ((va >> 21) & 511), l3 | 3)
            for i in 0 ..< UInt64(512) { put(l3 + 8 * i, (va + i << 12) | 0x703 | 1 << 2) }
        }
        let s = cpu.state
        s.pointee.sys.mair = 0xFF00
        s.pointee.sys.tcr = 25 | 1 << 23 | 0b01 << 8 | 0b01 << 10 | 0b11 << 12 | 0b010 << 32
        s.pointee.sys.ttbr0 = l1
        s.pointee.sys.sctlr |= 1 | 1 << 2 | 1 << 12
        s.pointee.sys.cpacr = 3 << 20
        cpu.pc = base + DifferentialProgram.codeOffset
        var written: [UInt8] = []
        loop: while true {
            switch cpu.run(budget: 50_000_000) {
            case .stopped:
                // An SVC with no vector table: serve it as Linux would, then go on past it.
                switch cpu.x(8) {
                case 64:
                    let from = Int(cpu.x(1) - base), count = Int(cpu.x(2))
                    written += [UInt8](UnsafeRawBufferPointer(start: buffer + from, count: count))
                    cpu.setX(0, cpu.x(2))
                case 93: break loop
                default: Issue.record("unexpected system call \(cpu.x(8))"); break loop
                }
                cpu.pc += 4
            case let other:
                Issue.record("pvm stopped: \(other) at pc 0x\(String(cpu.pc, radix: 16))")
                break loop
            }
        }
        return written
    }
}

extension Int {
    var roundedUpToPage: Int { (self + 0xFFF) & ~0xFFF }
}
