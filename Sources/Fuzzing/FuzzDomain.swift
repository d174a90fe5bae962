/// The small world one fuzz thread works in: a few pages, a few guest frames, three VMs (two
/// protected, one not), a host device stream and a stream assigned to the first VM. Small on
/// purpose: operations collide often, and every state the reference model tracks is compared
/// with EL2's after every operation.
public struct FuzzDomain: Sendable {
    /// The first page (counted from the start of RAM, as `pvm model` counts) and how many.
    public var firstPage: UInt64
    public var pages: Int
    /// The first guest frame of every VM, and how many.
    public var firstGFN: UInt64 = 0x100
    public var gfns = 8
    /// Appended to the VM names, so several threads' worlds do not collide.
    public var tag: String
    /// The stream assigned to VM slot 0.
    public var guestStream: UInt32

    public init(firstPage: UInt64 = 16, pages: Int = 8, tag: String = "", guestStream: UInt32 = 3) {
        self.firstPage = firstPage
        self.pages = pages
        self.tag = tag
        self.guestStream = guestStream
    }

    /// The VM slots: p and q protected, n non-protected.
    public static let vmCount = 3
    public func vmName(_ slot: Int) -> String { ["p", "q", "n"][slot] + tag }
    public func isProtected(_ slot: Int) -> Bool { slot != 2 }

    /// The host's DMA stream, its paging domain (refcount design), and the stream assigned to
    /// VM slot 0.
    public static let hostStream: UInt32 = 1
    public static let pagingDomain = 1
    /// Where the host maps page `p` in its paging domain.
    public static func iova(page p: UInt64) -> UInt64 { 0x1000_0000 + p << 12 }

    public var pageRange: Range<UInt64> { firstPage ..< firstPage + UInt64(pages) }
    public var gfnRange: Range<UInt64> { firstGFN ..< firstGFN + UInt64(gfns) }
}
