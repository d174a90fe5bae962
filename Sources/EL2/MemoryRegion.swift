/// One range of RAM in the physical address space, as a memblock region in pKVM's
/// `hyp_memory[]`. Base and size are page aligned.
public struct MemoryRegion: Hashable, Sendable, CustomStringConvertible {
    public let base: PhysAddr
    public let size: UInt64

    public init(base: PhysAddr, size: UInt64) {
        self.base = base
        self.size = size
    }

    public var end: PhysAddr { base.advanced(by: size) }
    public var pageCount: UInt64 { size >> pageShift }
    @inline(__always) public func contains(_ pa: PhysAddr) -> Bool {
        pa.rawValue &- base.rawValue < size
    }
    public var description: String { "[\(base), \(end))" }
}
