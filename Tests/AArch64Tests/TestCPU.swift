import AArch64
import Testing

/// A bare AArch64 CPU over 4 MiB of RAM at 0x4000_0000 with no stage 2 (IPA = PA), for
/// instruction-level tests: code goes at `codeBase`, data at `dataBase`; `mmuOn` builds an
/// identity map (Normal memory) with 4 KB pages so unaligned accesses behave as user code expects.
final class TestCPU {
    static let ramBase: UInt64 = 0x4000_0000
    static let ramSize: UInt64 = 4 << 20
    static let codeBase: UInt64 = ramBase + 0x10000
    static let dataBase: UInt64 = ramBase + 0x100000
    static let tableBase: UInt64 = ramBase + 0x300000
    static let vectorBase: UInt64 = ramBase + 0x8000

    let buffer: UnsafeMutableRawPointer
    let cpu: AArch64CPU

    init() {
        buffer = .allocate(byteCount: Int(Self.ramSize), alignment: 4096)
        buffer.initializeMemory(as: UInt8.self, repeating: 0, count: Int(Self.ramSize))
        cpu = AArch64CPU(memory: PhysicalWindow(base: Self.ramBase, size: Self.ramSize, host: buffer))
        cpu.reset(pc: Self.codeBase)
    }

    deinit { buffer.deallocate() }

    func write32(_ pa: UInt64, _ value: UInt32) {
        buffer.storeBytes(of: value.littleEndian, toByteOffset: Int(pa - Self.ramBase), as: UInt32.self)
    }

    func write64(_ pa: UInt64, _ value: UInt64) {
        buffer.storeBytes(of: value.littleEndian, toByteOffset: Int(pa - Self.ramBase), as: UInt64.self)
    }

    func read64(_ pa: UInt64) -> UInt64 {
        UInt64(littleEndian: buffer.loadUnaligned(fromByteOffset: Int(pa - Self.ramBase), as: UInt64.self))
    }

    func read8(_ pa: UInt64) -> UInt8 { buffer.load(fromByteOffset: Int(pa - Self.ramBase), as: UInt8.self) }

    /// Places `words` at the code base followed by `HVC #0x77`, and runs to an exit.
    @discardableResult
    func run(_ words: [UInt32], budget: Int = 100_000) -> CPUExit {
        for (i, w) in words.enumerated() { write32(Self.codeBase + UInt64(4 * i), w) }
        write32(Self.codeBase + UInt64(4 * words.count), 0xD400_0EE2)  // hvc #0x77
        cpu.pc = Self.codeBase
        return cpu.run(budget: budget)
    }

    /// An identity map of RAM with 4 KB pages (Normal WB, EL1 RW, executable), TTBR0, 39-bit
    /// VA, ASID 0; the MMU on. `attributes` are ORed into every page descriptor.
    func enableMMU(pageAttributes: UInt64 = 0, asid: UInt64 = 0) {
        let l1 = Self.tableBase, l2 = l1 + 0x1000, l3 = l2 + 0x1000
        // VA 0x4000_0000 -> L1 index 1 -> L2 table; L2 index 0, 1 -> two L3 tables (4 MiB).
        write64(l1 + 8, l2 | 3)
        for t in 0 ..< 2 {
            let table = l3 + UInt64(t) * 0x1000
            write64(l2 + UInt64(t) * 8, table | 3)
            for i in 0 ..< 512 {
                let pa = Self.ramBase + UInt64(t) << 21 + UInt64(i) << 12
                write64(table + UInt64(i) * 8, pa | 0x703 | 1 << 2 | pageAttributes)  // AF, SH=11, AttrIndx 1, page
            }
        }
        let s = cpu.state
        s.pointee.sys.mair = 0xFF00  // Attr0 Device-nGnRnE, Attr1 Normal WB
        s.pointee.sys.tcr = 25 | 1 << 23 | 0b01 << 8 | 0b01 << 10 | 0b11 << 12 | 0b010 << 32 | 1 << 36
        s.pointee.sys.ttbr0 = l1 | asid << 48
        s.pointee.sys.sctlr |= 1 | 1 << 2 | 1 << 12
        cpu.flushTLB()
    }

    /// Installs a vector table whose every entry is `HVC #(0x100 + entry index)`, so a test sees
    /// which vector was taken as an exit.
    func installVectors() {
        for entry in 0 ..< 16 {
            write32(Self.vectorBase + UInt64(entry * 0x80), 0xD400_0002 | UInt32(0x100 + entry) << 5)
        }
        cpu.state.pointee.sys.vbar = Self.vectorBase
        cpu.state.pointee.vectorsInstalled = true
    }

    subscript(_ n: Int) -> UInt64 {
        get { cpu.x(n) }
        set { cpu.setX(n, newValue) }
    }

    var nzcv: UInt32 { cpu.state.pointee.nzcv >> 28 }
}
