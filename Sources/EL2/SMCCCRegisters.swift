/// The four SMCCC registers of a guest hypercall: x0 carries the function ID in (its low 32
/// bits, SMCCC v1.1 section 2.6) and the first result out; x1 to x3 carry arguments in and
/// results out (Arm DEN0028, "SMC Calling Convention"). pvm's x86 conduit maps them onto
/// rax, rbx, rcx and rdx (docs/abi.md).
public struct SMCCCRegisters: Hashable, Sendable, CustomStringConvertible {
    public var x0: UInt64
    public var x1: UInt64
    public var x2: UInt64
    public var x3: UInt64

    @inline(__always)
    public init(_ x0: UInt64, _ x1: UInt64 = 0, _ x2: UInt64 = 0, _ x3: UInt64 = 0) {
        self.x0 = x0
        self.x1 = x1
        self.x2 = x2
        self.x3 = x3
    }

    /// The function ID (w0).
    @inline(__always) public var functionID: UInt32 { UInt32(truncatingIfNeeded: x0) }

    /// x0 as a signed SMCCC / PSCI result.
    public var signedX0: Int64 { Int64(bitPattern: x0) }

    public var description: String { "x0=\(hex(x0)) x1=\(hex(x1)) x2=\(hex(x2)) x3=\(hex(x3))" }
}
