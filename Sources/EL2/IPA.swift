/// An intermediate physical address: what a guest believes is physical, the input of its stage-2
/// translation (Arm ARM D8.1, "stage 2 translation").
public struct IPA: RawRepresentable, Hashable, Comparable, Sendable, CustomStringConvertible {
    public var rawValue: UInt64
    @inline(__always) public init(rawValue: UInt64) { self.rawValue = rawValue }
    @inline(__always) public init(_ rawValue: UInt64) { self.rawValue = rawValue }

    @inline(__always) public var gfn: GFN { GFN(rawValue >> pageShift) }
    @inline(__always) public var isPageAligned: Bool { rawValue & (pageSize - 1) == 0 }

    public static func < (a: IPA, b: IPA) -> Bool { a.rawValue < b.rawValue }
    public var description: String { hex(rawValue) }
}

/// A guest frame number: `IPA >> 12`.
public struct GFN: RawRepresentable, Hashable, Comparable, Sendable, CustomStringConvertible {
    public var rawValue: UInt64
    @inline(__always) public init(rawValue: UInt64) { self.rawValue = rawValue }
    @inline(__always) public init(_ rawValue: UInt64) { self.rawValue = rawValue }

    @inline(__always) public var ipa: IPA { IPA(rawValue << pageShift) }
    @inline(__always) public func advanced(by pages: UInt64) -> GFN { GFN(rawValue &+ pages) }

    public static func < (a: GFN, b: GFN) -> Bool { a.rawValue < b.rawValue }
    public var description: String { hex(rawValue) }
}
