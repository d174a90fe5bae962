/// An SMMU stream ID: the number a DMA master's transactions carry and the index of its Stream
/// Table Entry (SMMUv3 `StreamID`, IDR1.SIDSIZE bits wide). pvm's SMMU has 8-bit stream IDs.
public struct StreamID: RawRepresentable, Hashable, Comparable, Sendable, CustomStringConvertible {
    public var rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }
    public init(_ value: UInt32) { self.rawValue = value }

    public static func < (a: StreamID, b: StreamID) -> Bool { a.rawValue < b.rawValue }
    public var description: String { "sid \(rawValue)" }
}
