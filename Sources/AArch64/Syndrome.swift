/// An exception syndrome (ESR_ELx, Arm ARM D23.2.40-41): the exception class, the
/// instruction-length bit and the class's ISS. Built by the CPU for exceptions it takes to EL1
/// and for the aborts it reports to EL2; decoded field by field for traces and fault records.
public struct Syndrome: Sendable, Equatable, CustomStringConvertible {
    public let rawValue: UInt64

    public init(_ rawValue: UInt64) { self.rawValue = rawValue }

    /// ESR with `ec`, IL = 1 (a 32-bit instruction) and `iss`.
    public init(ec: UInt8, iss: UInt32, il: Bool = true) {
        rawValue = UInt64(ec) << 26 | (il ? 1 << 25 : 0) | UInt64(iss & 0x1FF_FFFF)
    }

    /// Exception classes (ESR_ELx.EC).
    public enum Class {
        public static let unknown: UInt8 = 0x00
        public static let wfx: UInt8 = 0x01
        public static let fpAccess: UInt8 = 0x07
        public static let illegalState: UInt8 = 0x0E
        public static let svc: UInt8 = 0x15
        public static let hvc: UInt8 = 0x16
        public static let smc: UInt8 = 0x17
        public static let systemRegister: UInt8 = 0x18
        public static let instructionAbortLower: UInt8 = 0x20
        public static let instructionAbortSame: UInt8 = 0x21
        public static let pcAlignment: UInt8 = 0x22
        public static let dataAbortLower: UInt8 = 0x24
        public static let dataAbortSame: UInt8 = 0x25
        public static let spAlignment: UInt8 = 0x26
        public static let fpException: UInt8 = 0x2C
        public static let serror: UInt8 = 0x2F
        public static let brk: UInt8 = 0x3C
    }

    public var ec: UInt8 { UInt8((rawValue >> 26) & 0x3F) }
    public var il: Bool { rawValue & (1 << 25) != 0 }
    public var iss: UInt32 { UInt32(rawValue & 0x1FF_FFFF) }

    // Data and instruction abort ISS (D23.2.41, "ISS encoding for an exception from a Data Abort").
    public var isv: Bool { iss & (1 << 24) != 0 }
    /// Access size, log2 bytes (valid when ISV).
    public var sas: Int { Int((iss >> 22) & 3) }
    /// Sign-extend the loaded value (valid when ISV).
    public var sse: Bool { iss & (1 << 21) != 0 }
    /// The register transferred (valid when ISV; 31 is XZR).
    public var srt: Int { Int((iss >> 16) & 31) }
    /// A 64-bit register (valid when ISV).
    public var sf: Bool { iss & (1 << 15) != 0 }
    /// Acquire / release semantics (valid when ISV).
    public var ar: Bool { iss & (1 << 14) != 0 }
    public var fnv: Bool { iss & (1 << 10) != 0 }
    public var ea: Bool { iss & (1 << 9) != 0 }
    /// A cache maintenance or address translation instruction.
    public var cm: Bool { iss & (1 << 8) != 0 }
    /// A stage-2 fault on the stage-1 translation table walk.
    public var s1ptw: Bool { iss & (1 << 7) != 0 }
    public var wnr: Bool { iss & (1 << 6) != 0 }
    /// DFSC / IFSC.
    public var faultStatus: UInt8 { UInt8(iss & 0x3F) }

    public var isAbort: Bool {
        [Class.instructionAbortLower, Class.instructionAbortSame, Class.dataAbortLower, Class.dataAbortSame].contains(ec)
    }

    public var className: String {
        switch ec {
        case Class.unknown: "unknown / undefined instruction"
        case Class.wfx: "WFI / WFE"
        case Class.fpAccess: "FP/SIMD access trapped"
        case Class.illegalState: "illegal execution state"
        case Class.svc: "SVC"
        case Class.hvc: "HVC"
        case Class.smc: "SMC"
        case Class.systemRegister: "system register access trapped"
        case Class.instructionAbortLower: "instruction abort from a lower EL"
        case Class.instructionAbortSame: "instruction abort from the same EL"
        case Class.pcAlignment: "PC alignment fault"
        case Class.dataAbortLower: "data abort from a lower EL"
        case Class.dataAbortSame: "data abort from the same EL"
        case Class.spAlignment: "SP alignment fault"
        case Class.brk: "BRK"
        default: "class 0x" + String(ec, radix: 16)
        }
    }

    public var description: String {
        var parts = ["ESR 0x" + String(rawValue, radix: 16), "EC 0x" + String(ec, radix: 16) + " (" + className + ")"]
        if il { parts.append("IL") }
        if isAbort {
            let data = ec == Class.dataAbortLower || ec == Class.dataAbortSame
            if data, isv {
                parts.append("ISV SAS=\(1 << sas)B" + (sse ? " SSE" : "") + " SRT=" + (srt == 31 ? "xzr" : "x\(srt)")
                             + (sf ? " SF" : "") + (ar ? " AR" : ""))
            } else if data {
                parts.append("ISV=0")
            }
            if fnv { parts.append("FnV") }
            if ea { parts.append("EA") }
            if cm { parts.append("CM") }
            if s1ptw { parts.append("S1PTW") }
            if data { parts.append(wnr ? "WnR (write)" : "read") }
            parts.append((data ? "DFSC" : "IFSC") + " 0x" + String(faultStatus, radix: 16) + " ("
                         + FaultStatus.describe(faultStatus) + ")")
        } else if ec == Class.hvc || ec == Class.svc || ec == Class.smc || ec == Class.brk {
            parts.append("imm 0x" + String(iss & 0xFFFF, radix: 16))
        }
        return parts.joined(separator: ", ")
    }
}

/// Fault status codes (DFSC / IFSC, Arm ARM D23.2.41) for the long-descriptor format.
public enum FaultStatus {
    public static func addressSize(level: Int) -> UInt8 { UInt8(0b00_0000 | level) }
    public static func translation(level: Int) -> UInt8 { UInt8(0b00_0100 | level) }
    public static func accessFlag(level: Int) -> UInt8 { UInt8(0b00_1000 | level) }
    public static func permission(level: Int) -> UInt8 { UInt8(0b00_1100 | level) }
    public static let synchronousExternal: UInt8 = 0b01_0000
    public static func synchronousExternalOnWalk(level: Int) -> UInt8 { UInt8(0b01_0100 | level) }
    public static let alignment: UInt8 = 0b10_0001
    public static let tlbConflict: UInt8 = 0b11_0000

    public static func describe(_ code: UInt8) -> String {
        let level = Int(code & 3)
        switch code & 0x3C {
        case 0b00_0000: return "address size fault, level \(level)"
        case 0b00_0100: return "translation fault, level \(level)"
        case 0b00_1000: return "access flag fault, level \(level)"
        case 0b00_1100: return "permission fault, level \(level)"
        case 0b01_0100: return "synchronous external abort on table walk, level \(level)"
        default:
            switch code {
            case synchronousExternal: return "synchronous external abort"
            case alignment: return "alignment fault"
            case tlbConflict: return "TLB conflict abort"
            default: return "status 0x" + String(code, radix: 16)
            }
        }
    }
}
