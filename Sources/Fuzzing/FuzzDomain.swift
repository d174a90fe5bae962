/// The small world one fuzz thread (or `pvm check`) works in: a few pages, a few guest frames,
/// a few VMs (the last one non-protected, the others protected), a host device stream and a
/// stream assigned to the first VM. Small on purpose: operations collide often, and every state
/// the reference model tracks is compared with EL2's after every operation.
public struct FuzzDomain: Sendable {
    /// The first page (counted from the start of RAM, as `pvm model` counts) and how many.
    public var firstPage: UInt64
    public var pages: Int
    /// The first guest frame of every VM, and how many.
    public var firstGFN: UInt64 = 0x100
    public var gfns: Int
    /// How many VMs: slots `0 ..< vmCount`, the last non-protected.
    public var vmCount: Int
    /// Appended to the VM names, so several threads' worlds do not collide.
    public var tag: String
    /// The stream assigned to VM slot 0.
    public var guestStream: UInt32
    /// Memcache pages a VM is created with; nil for `vm_create`'s default.
    public var memcache: Int?

    public init(firstPage: UInt64 = 16, pages: Int = 8, gfns: Int = 8, vmCount: Int = 3, tag: String = "",
                guestStream: UInt32 = 3) {
        precondition((2 ... 3).contains(vmCount) && pages > 0 && vmCount * gfns <= 64, "a fuzz world is small")
        self.firstPage = firstPage
        self.pages = pages
        self.gfns = gfns
        self.vmCount = vmCount
        self.tag = tag
        self.guestStream = guestStream
    }

    /// The VM slots: p (and q) protected, n non-protected.
    public func vmName(_ slot: Int) -> String { (isProtected(slot) ? ["p", "q"][slot] : "n") + tag }
    public func isProtected(_ slot: Int) -> Bool { slot != vmCount - 1 }

    /// The host's DMA stream, its paging domain (refcount design), and the stream assigned to
    /// VM slot 0.
    public static let hostStream: UInt32 = 1
    public static let pagingDomain = 1
    /// Where the host maps page `p` in its paging domain.
    public static func iova(page p: UInt64) -> UInt64 { 0x1000_0000 + p << 12 }

    public var pageRange: Range<UInt64> { firstPage ..< firstPage + UInt64(pages) }
    public var gfnRange: Range<UInt64> { firstGFN ..< firstGFN + UInt64(gfns) }
}
