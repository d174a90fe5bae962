/// The physical memory a CPU can reach: one contiguous range of RAM backed by host memory
/// (pvm's physical memory file: guest RAM, the host's pages and EL2's carveout, where EL2
/// keeps the guest's stage-2 tables). Stage 2 decides which of it a guest may touch; the
/// window only turns a physical address into a host pointer and refuses what is not RAM.
public struct PhysicalWindow: @unchecked Sendable {
    public let base: UInt64
    public let size: UInt64
    /// Host address of `base`. Valid for as long as whoever made the window keeps it mapped.
    public let host: UnsafeMutableRawPointer

    public init(base: UInt64, size: UInt64, host: UnsafeMutableRawPointer) {
        self.base = base
        self.size = size
        self.host = host
    }

    /// The host address of the `bytes` at `pa`, or nil if any of them is not RAM.
    @inline(__always)
    public func pointer(_ pa: UInt64, bytes: UInt64 = 1) -> UnsafeMutableRawPointer? {
        let offset = pa &- base
        guard offset < size, bytes <= size - offset else { return nil }
        return host + Int(offset)
    }

    /// Reads the 64-bit little-endian descriptor at `pa` (a translation table entry).
    @inline(__always)
    func descriptor(_ pa: UInt64) -> UInt64? {
        guard pa & 7 == 0, let p = pointer(pa, bytes: 8) else { return nil }
        // Descriptors are naturally aligned: a single-copy-atomic 64-bit read, as a hardware
        // walk makes (EL2 may be rewriting the table on another thread).
        return UInt64(littleEndian: p.load(as: UInt64.self))
    }
}
