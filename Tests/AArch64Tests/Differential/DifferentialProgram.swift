/// A static AArch64 Linux executable that runs N instruction sequences, each from its own
/// initial registers (x0-x25, NZCV, V0-V7) and scratch buffer, stores the final registers,
/// then writes every result and every scratch buffer to standard output and exits. The same
/// bytes run under qemu-aarch64 and on pvm's CPU; the outputs must be equal.
struct DifferentialProgram {
    static let base: UInt64 = 0x40_0000
    static let codeOffset: UInt64 = 0x1000
    /// Per case: 26 registers, NZCV, padding, V0-V7.
    static let stateBytes = 26 * 8 + 16 + 8 * 16
    static let scratchBytes = 1024

    var sequences: [[UInt32]]
    var initialStates: [[UInt8]]
    var initialScratch: [[UInt8]]

    /// The ELF file, and the (offset, length) of what it writes.
    func build() -> (elf: [UInt8], output: Range<UInt64>) {
        var code: [UInt32] = []
        let cases = sequences.count
        // Layout after the code: initial states, results, scratch buffers, each 4 KiB aligned.
        let codeWords = sequences.reduce(0) { $0 + $1.count + 90 } + 32
        let dataStart = (Self.base + Self.codeOffset + UInt64(codeWords * 4) + 0xFFF) & ~0xFFF
        let initStart = dataStart
        let resultStart = (initStart + UInt64(cases * Self.stateBytes) + 0xFFF) & ~0xFFF
        let scratchStart = (resultStart + UInt64(cases * Self.stateBytes) + 0xFFF) & ~0xFFF
        let end = scratchStart + UInt64(cases * Self.scratchBytes)

        func mov(_ rd: UInt32, _ value: UInt64) {
            code.append(A64.moveWide(sf: true, opc: 2, hw: 0, imm16: UInt32(value & 0xFFFF), rd: rd))
            for hw in 1 ..< 4 { code.append(A64.moveWide(sf: true, opc: 3, hw: UInt32(hw), imm16: UInt32((value >> (16 * UInt64(hw))) & 0xFFFF), rd: rd)) }
        }
        for (i, sequence) in sequences.enumerated() {
            let initial = initStart + UInt64(i * Self.stateBytes)
            let result = resultStart + UInt64(i * Self.stateBytes)
            let scratch = scratchStart + UInt64(i * Self.scratchBytes)
            mov(26, initial)
            for r in stride(from: 0, to: 26, by: 2) {
                code.append(A64.pair(opc: 2, mode: 2, load: true, rt: UInt32(r), rt2: UInt32(r + 1), rn: 26, imm7: Int32(r)))
            }
            code.append(A64.loadStoreUnsigned(size: 3, opc: 1, rt: 27, rn: 26, imm12: 26))  // ldr x27, [x26, #208]
            code.append(A64.msrNZCV(27))
            for v in stride(from: 0, to: 8, by: 2) {
                code.append(A64.pair(opc: 2, vector: true, mode: 2, load: true, rt: UInt32(v), rt2: UInt32(v + 1), rn: 26,
                                     imm7: Int32(14 + v)))  // ldp q, q, [x26, #224 + 16 v]
            }
            mov(28, scratch)
            code.append(A64.addImm(sf: true, sub: false, setFlags: false, rd: 25, rn: 28, imm12: 512, shift12: false))
            code += sequence
            mov(27, result)
            for r in stride(from: 0, to: 26, by: 2) {
                code.append(A64.pair(opc: 2, mode: 2, load: false, rt: UInt32(r), rt2: UInt32(r + 1), rn: 27, imm7: Int32(r)))
            }
            code.append(A64.mrsNZCV(26))
            code.append(A64.loadStoreUnsigned(size: 3, opc: 0, rt: 26, rn: 27, imm12: 26))
            for v in stride(from: 0, to: 8, by: 2) {
                code.append(A64.pair(opc: 2, vector: true, mode: 2, load: false, rt: UInt32(v), rt2: UInt32(v + 1), rn: 27, imm7: Int32(14 + v)))
            }
        }
        // write(1, results, end - results); exit(0)
        mov(0, 1)
        mov(1, resultStart)
        mov(2, end - resultStart)
        mov(8, 64)
        code.append(A64.svc(0))
        mov(0, 0)
        mov(8, 93)
        code.append(A64.svc(0))

        var image = [UInt8](repeating: 0, count: Int(end - Self.base))
        for (i, w) in code.enumerated() {
            let o = Int(Self.codeOffset) + 4 * i
            for b in 0 ..< 4 { image[o + b] = UInt8(truncatingIfNeeded: w >> (8 * UInt32(b))) }
        }
        for i in 0 ..< cases {
            let o = Int(initStart - Self.base) + i * Self.stateBytes
            image.replaceSubrange(o ..< o + Self.stateBytes, with: initialStates[i])
            let s = Int(scratchStart - Self.base) + i * Self.scratchBytes
            image.replaceSubrange(s ..< s + Self.scratchBytes, with: initialScratch[i])
        }
        writeHeader(&image, fileSize: UInt64(image.count), entry: Self.base + Self.codeOffset)
        return (image, (resultStart - Self.base) ..< (end - Self.base))
    }

    /// ELF64 header and one RWX PT_LOAD covering the whole file at `base`.
    private func writeHeader(_ image: inout [UInt8], fileSize: UInt64, entry: UInt64) {
        func put(_ value: UInt64, _ offset: Int, _ bytes: Int) {
            for b in 0 ..< bytes { image[offset + b] = UInt8(truncatingIfNeeded: value >> (8 * UInt64(b))) }
        }
        image.replaceSubrange(0 ..< 16, with: [0x7F, 0x45, 0x4C, 0x46, 2, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0])
        put(2, 16, 2)        // ET_EXEC
        put(183, 18, 2)      // EM_AARCH64
        put(1, 20, 4)
        put(entry, 24, 8)
        put(64, 32, 8)       // e_phoff
        put(0, 40, 8)
        put(64, 52, 2)       // e_ehsize
        put(56, 54, 2)
        put(1, 56, 2)        // e_phnum
        put(64, 58, 2)
        let ph = 64
        put(1, ph, 4)        // PT_LOAD
        put(7, ph + 4, 4)    // RWX
        put(0, ph + 8, 8)
        put(Self.base, ph + 16, 8)
        put(Self.base, ph + 24, 8)
        put(fileSize, ph + 32, 8)
        put(fileSize, ph + 40, 8)
        put(0x1000, ph + 48, 8)
    }
}
