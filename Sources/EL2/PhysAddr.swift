/// Size of the translation granule and of every page pvm manages: 4 KiB (Arm ARM D8.2, "4KB granule").
public let pageShift: UInt64 = 12
/// Bytes in one page.
public let pageSize: UInt64 = 1 << pageShift

/// A physical (output) address: what the host stage-2 and the guest stage-2 translate to.
///
/// The host's stage-2 is an identity map, so a host IPA is numerically a `PhysAddr`; guests use `IPA`.
public struct PhysAddr: RawRepresentable, Hashable, Comparable, Sendable, CustomStringConvertible {
    public var rawValue: UInt64
    @inline(__always) public init(rawValue: UInt64) { self.rawValue = rawValue }
    @inline(__always) public init(_ rawValue: UInt64) { self.rawValue = rawValue }

    /// The page frame that holds this address.
    @inline(__always) public var pfn: PFN { PFN(rawValue >> pageShift) }
    @inline(__always) public var isPageAligned: Bool { rawValue & (pageSize - 1) == 0 }
    @inline(__always) public func advanced(by bytes: UInt64) -> PhysAddr { PhysAddr(rawValue &+ bytes) }

    public static func < (a: PhysAddr, b: PhysAddr) -> Bool { a.rawValue < b.rawValue }
    public var description: String { hex(rawValue) }
}

/// A physical page frame number: `PhysAddr >> 12`, counted from physical address 0
/// (as `hyp_phys_to_pfn` does), not from the start of RAM.
public struct PFN: RawRepresentable, Hashable, Comparable, Sendable, CustomStringConvertible {
    public var rawValue: UInt64
    @inline(__always) public init(rawValue: UInt64) { self.rawValue = rawValue }
    @inline(__always) public init(_ rawValue: UInt64) { self.rawValue = rawValue }

    @inline(__always) public var address: PhysAddr { PhysAddr(rawValue << pageShift) }
    @inline(__always) public func advanced(by pages: UInt64) -> PFN { PFN(rawValue &+ pages) }

    public static func < (a: PFN, b: PFN) -> Bool { a.rawValue < b.rawValue }
    public var description: String { hex(rawValue) }
}

/// `0x`-prefixed lower-case hexadecimal, the way addresses are printed everywhere in pvm.
@inline(never)
public func hex<T: BinaryInteger>(_ value: T) -> String { "0x" + String(value, radix: 16) }
