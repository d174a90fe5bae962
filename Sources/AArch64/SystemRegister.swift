/// System register keys as the decoder packs them: op0:op1:CRn:CRm:op2 in bits 15:0 (the same
/// fields as Linux's `sys_reg(op0, op1, crn, crm, op2)`, packed tighter).
public enum SystemRegister {
    @inline(__always)
    public static func key(_ op0: UInt64, _ op1: UInt64, _ crn: UInt64, _ crm: UInt64, _ op2: UInt64) -> UInt64 {
        op0 << 14 | op1 << 11 | crn << 7 | crm << 3 | op2
    }

    public static let midr = key(3, 0, 0, 0, 0)
    public static let mpidr = key(3, 0, 0, 0, 5)
    public static let revidr = key(3, 0, 0, 0, 6)
    public static let idAA64PFR0 = key(3, 0, 0, 4, 0)
    public static let idAA64PFR1 = key(3, 0, 0, 4, 1)
    public static let idAA64DFR0 = key(3, 0, 0, 5, 0)
    public static let idAA64ISAR0 = key(3, 0, 0, 6, 0)
    public static let idAA64ISAR1 = key(3, 0, 0, 6, 1)
    public static let idAA64MMFR0 = key(3, 0, 0, 7, 0)
    public static let idAA64MMFR1 = key(3, 0, 0, 7, 1)
    public static let idAA64MMFR2 = key(3, 0, 0, 7, 2)
    public static let sctlr = key(3, 0, 1, 0, 0)
    public static let actlr = key(3, 0, 1, 0, 1)
    public static let cpacr = key(3, 0, 1, 0, 2)
    public static let ttbr0 = key(3, 0, 2, 0, 0)
    public static let ttbr1 = key(3, 0, 2, 0, 1)
    public static let tcr = key(3, 0, 2, 0, 2)
    public static let spsr = key(3, 0, 4, 0, 0)
    public static let elr = key(3, 0, 4, 0, 1)
    public static let spEL0 = key(3, 0, 4, 1, 0)
    public static let spsel = key(3, 0, 4, 2, 0)
    public static let currentEL = key(3, 0, 4, 2, 2)
    public static let pan = key(3, 0, 4, 2, 3)
    public static let uao = key(3, 0, 4, 2, 4)
    public static let afsr0 = key(3, 0, 5, 1, 0)
    public static let afsr1 = key(3, 0, 5, 1, 1)
    public static let esr = key(3, 0, 5, 2, 0)
    public static let erridr = key(3, 0, 5, 3, 0)
    public static let far = key(3, 0, 6, 0, 0)
    public static let par = key(3, 0, 7, 4, 0)
    public static let mair = key(3, 0, 10, 2, 0)
    public static let amair = key(3, 0, 10, 3, 0)
    public static let vbar = key(3, 0, 12, 0, 0)
    public static let isr = key(3, 0, 12, 1, 0)
    public static let disr = key(3, 0, 12, 1, 1)
    public static let contextidr = key(3, 0, 13, 0, 1)
    public static let tpidrEL1 = key(3, 0, 13, 0, 4)
    public static let cntkctl = key(3, 0, 14, 1, 0)
    public static let ccsidr = key(3, 1, 0, 0, 0)
    public static let clidr = key(3, 1, 0, 0, 1)
    public static let csselr = key(3, 2, 0, 0, 0)
    public static let ctr = key(3, 3, 0, 0, 1)
    public static let dczid = key(3, 3, 0, 0, 7)
    public static let nzcv = key(3, 3, 4, 2, 0)
    public static let daif = key(3, 3, 4, 2, 1)
    public static let dit = key(3, 3, 4, 2, 5)
    public static let ssbs = key(3, 3, 4, 2, 6)
    public static let fpcr = key(3, 3, 4, 4, 0)
    public static let fpsr = key(3, 3, 4, 4, 1)
    public static let tpidrEL0 = key(3, 3, 13, 0, 2)
    public static let tpidrroEL0 = key(3, 3, 13, 0, 3)
    public static let cntfrq = key(3, 3, 14, 0, 0)
    public static let cntpct = key(3, 3, 14, 0, 1)
    public static let cntvct = key(3, 3, 14, 0, 2)
    public static let cntpTval = key(3, 3, 14, 2, 0)
    public static let cntpCtl = key(3, 3, 14, 2, 1)
    public static let cntpCval = key(3, 3, 14, 2, 2)
    public static let cntvTval = key(3, 3, 14, 3, 0)
    public static let cntvCtl = key(3, 3, 14, 3, 1)
    public static let cntvCval = key(3, 3, 14, 3, 2)
    public static let mdscr = key(2, 0, 0, 2, 2)
    public static let mdccint = key(2, 0, 0, 2, 0)
    public static let oslar = key(2, 0, 1, 0, 4)
    public static let oslsr = key(2, 0, 1, 1, 4)
    public static let osdlr = key(2, 0, 1, 3, 4)
    public static let mdrar = key(2, 0, 1, 0, 0)
    public static let dbgprcr = key(2, 0, 1, 4, 4)
    public static let dbgclaimset = key(2, 0, 7, 8, 6)
    public static let dbgclaimclr = key(2, 0, 7, 9, 6)
    public static let dbgauthstatus = key(2, 0, 7, 14, 6)

    /// The values the interpreter advertises: what it implements, nothing more, so a kernel
    /// enables no feature it lacks (no SVE, MTE, pointer authentication, BTI, hardware AF/DBM).
    public enum Identification {
        /// An implementer code reserved for software (0x00), architecture 0xF, part 0x070.
        public static let midr: UInt64 = 0x000F_0700
        /// EL0 and EL1 AArch64 only; FP and AdvSIMD implemented (0b0000 fields); CSV2 = CSV3 = 1:
        /// nothing is speculated, so no data leaks across contexts and a kernel needs neither
        /// branch-predictor hardening nor KPTI. GIC (bits 27:24) is added when a GIC CPU
        /// interface is attached (`AArch64CPU.cpuInterface`).
        public static let pfr0: UInt64 = 0x11 | 1 << 56 | 1 << 60
        /// ARMv8.0 debug with two breakpoints and two watchpoints, no PMU.
        public static let dfr0: UInt64 = 0x6 | 1 << 12 | 1 << 20
        /// SHA-1 (bits 11:8 = 1) and SHA-256 (bits 15:12 = 1) instructions (the architecture
        /// allows SHA2 only with SHA1), CRC32 (bits 19:16 = 1) and LSE atomics (bits 23:20 = 2).
        public static let isar0: UInt64 = 1 << 8 | 1 << 12 | 1 << 16 | 2 << 20
        /// PARange 40 bits, 16-bit ASIDs, 4 KB granule only (16 KB and 64 KB not implemented).
        public static let mmfr0: UInt64 = 0x2 | 0x2 << 4 | 0xF << 24
        /// PAN (bits 23:20 = 1).
        public static let mmfr1: UInt64 = 1 << 20
        /// Cache lines of 64 bytes (IminLine = DminLine = 4 words, ERG = CWG = 4), PIPT
        /// instruction cache, and IDC = DIC = 1: the interpreter's instruction fetch is coherent
        /// with data writes (its decode cache is keyed by the instruction word).
        public static let ctr: UInt64 = 1 << 31 | 1 << 29 | 1 << 28 | 4 << 24 | 4 << 20 | 4 << 16 | 3 << 14 | 4
        /// DC ZVA zeroes 64 bytes (BS = 4 words), permitted (DZP = 0).
        public static let dczid: UInt64 = 4
        /// One level of unified cache (Ctype1 = 0b100), LoC = LoUU = LoUIS = 1.
        public static let clidr: UInt64 = 0b100 | 1 << 21 | 1 << 24 | 1 << 27
        /// 64-byte lines, 4 ways, 256 sets.
        public static let ccsidr: UInt64 = 0b010 | 3 << 3 | 255 << 13
    }
}
