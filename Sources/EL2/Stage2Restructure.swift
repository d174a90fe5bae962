/// A change of a stage-2's shape that keeps what it maps: a valid block split into a table of
/// the next level's entries, or such a table coalesced back into its block. Both happen only in
/// a guest stage-2 and only around a conversion of part of a block (docs/guest-first-memory.md).
public struct Stage2Restructure: Sendable, Equatable, CustomStringConvertible {
    public enum Kind: String, Sendable {
        /// Break-before-make of the block, a next-level table in its place
        /// (`stage2_split_walker`; one TLB invalidation of the whole block).
        case split
        /// A table whose entries were all the block's again, replaced by the block.
        case merge
    }

    public let kind: Kind
    public let vmid: VMID
    /// The block's first IPA.
    public let start: IPA
    /// The block's size: 2 MiB or 1 GiB.
    public let size: UInt64

    public init(kind: Kind, vmid: VMID, start: IPA, size: UInt64) {
        self.kind = kind
        self.vmid = vmid
        self.start = start
        self.size = size
    }

    public var description: String { "\(kind.rawValue) vmid=\(vmid) ipa=\(start) size=\(hex(size))" }
}
