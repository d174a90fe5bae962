/// One 64-bit VMSAv8-64 stage-2 translation table descriptor, 4 KB granule
/// (Arm ARM D8.3, "Translation table descriptor formats"), with the software conventions of
/// newest mainline pKVM layered on the bits hardware ignores.
///
/// Valid entries:
///
/// | bits | field |
/// |---|---|
/// | 0 | valid |
/// | 1 | type: table (levels 0–2) or page (level 3) when 1, block (levels 1–2) when 0 |
/// | 5:2 | MemAttr (0xF Normal write-back, 0x1 Device-nGnRE, without FEAT_S2FWB) |
/// | 7:6 | S2AP: bit 6 read, bit 7 write |
/// | 9:8 | SH: 0 non-, 2 outer, 3 inner shareable |
/// | 10 | AF |
/// | 47:12 | output address (table: next-level table) |
/// | 51 | DBM |
/// | 52 | Contiguous |
/// | 54:53 | XN (0b10: not executable) |
/// | 58:55 | software; pKVM keeps the page state in SW0|SW1 (bits 56:55) |
///
/// Invalid entries (bit 0 clear) are free for software; pKVM annotates them with an owner
/// (bits 3:1), metadata (bits 59:4) and an annotation type (bits 63:60). A zero entry means
/// "never mapped"; a non-zero invalid entry means "owned by someone else", "locked" or "poisoned".
public struct Stage2Descriptor: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public var rawValue: UInt64
    @inline(__always) public init(rawValue: UInt64) { self.rawValue = rawValue }

    public static let zero = Stage2Descriptor(rawValue: 0)

    // MARK: Field masks (Arm ARM D8.3; Linux kvm_pgtable.h names in comments)

    static let validBit: UInt64 = 1 << 0  // KVM_PTE_VALID
    static let typeBit: UInt64 = 1 << 1  // KVM_PTE_TYPE
    static let memAttrShift: UInt64 = 2  // KVM_PTE_LEAF_ATTR_LO_S2_MEMATTR
    static let s2apReadBit: UInt64 = 1 << 6  // KVM_PTE_LEAF_ATTR_LO_S2_S2AP_R
    static let s2apWriteBit: UInt64 = 1 << 7  // KVM_PTE_LEAF_ATTR_LO_S2_S2AP_W
    static let shShift: UInt64 = 8  // KVM_PTE_LEAF_ATTR_LO_S2_SH
    static let afBit: UInt64 = 1 << 10  // KVM_PTE_LEAF_ATTR_LO_S2_AF
    static let addressMask: UInt64 = 0x0000_FFFF_FFFF_F000  // KVM_PTE_ADDR_MASK, bits 47:12
    static let dbmBit: UInt64 = 1 << 51
    static let contiguousBit: UInt64 = 1 << 52
    static let xnShift: UInt64 = 53  // KVM_PTE_LEAF_ATTR_HI_S2_XN, bits 54:53
    static let swShift: UInt64 = 55  // KVM_PTE_LEAF_ATTR_HI_SW, bits 58:55
    static let stateMask: UInt64 = 3 << 55  // PKVM_PAGE_STATE_PROT_MASK = SW0 | SW1

    /// Normal memory, inner and outer write-back (`MT_S2_NORMAL`).
    public static let memAttrNormal: UInt8 = 0xF
    /// Device-nGnRE (`MT_S2_DEVICE_nGnRE`).
    public static let memAttrDevice: UInt8 = 0x1
    /// Inner shareable.
    public static let shInner: UInt8 = 3
    /// XN field value forbidding execution at EL1 and EL0.
    public static let xnNone: UInt8 = 2

    // MARK: Decoding

    @inline(__always) public var isValid: Bool { rawValue & Self.validBit != 0 }
    @inline(__always) public var isZero: Bool { rawValue == 0 }

    /// A table descriptor: bits [1:0] = 0b11 at levels 0–2.
    @inline(__always) public func isTable(level: Int) -> Bool { level < 3 && rawValue & 3 == 3 }

    /// A block (levels 1–2, bits [1:0] = 0b01) or page (level 3, 0b11) descriptor.
    @inline(__always) public func isLeaf(level: Int) -> Bool {
        guard isValid else { return false }
        if level == 3 { return rawValue & Self.typeBit != 0 }
        return rawValue & Self.typeBit == 0 && level >= Stage2Geometry.minBlockLevel
    }

    /// The next-level table of a table descriptor, or the output address of a leaf at `level`
    /// (page: bits 47:12; 2 MiB block: 47:21; 1 GiB block: 47:30).
    @inline(__always) public func outputAddress(level: Int) -> PhysAddr {
        let low = Stage2Geometry.shift(level: level)
        return PhysAddr(rawValue & Self.addressMask & ~((1 << low) - 1))
    }

    @inline(__always) public var tableAddress: PhysAddr { PhysAddr(rawValue & Self.addressMask) }
    public var memAttr: UInt8 { UInt8(truncatingIfNeeded: (rawValue >> Self.memAttrShift) & 0xF) }
    /// S2AP, bits 7:6: 0b00 none, 0b01 read-only, 0b10 write-only, 0b11 read-write.
    public var s2ap: UInt8 { UInt8(truncatingIfNeeded: (rawValue >> 6) & 3) }
    public var sh: UInt8 { UInt8(truncatingIfNeeded: (rawValue >> Self.shShift) & 3) }
    public var af: Bool { rawValue & Self.afBit != 0 }
    public var dbm: Bool { rawValue & Self.dbmBit != 0 }
    public var contiguous: Bool { rawValue & Self.contiguousBit != 0 }
    /// XN, bits 54:53 (FEAT_XNX encoding; without XNX only bit 54 matters).
    public var xn: UInt8 { UInt8(truncatingIfNeeded: (rawValue >> Self.xnShift) & 3) }
    /// Software bits 58:55.
    public var software: UInt8 { UInt8(truncatingIfNeeded: (rawValue >> Self.swShift) & 0xF) }

    /// The access a valid leaf grants.
    @inline(__always) public var permissions: Stage2Permissions {
        var p: Stage2Permissions = []
        if rawValue & Self.s2apReadBit != 0 { p.insert(.read) }
        if rawValue & Self.s2apWriteBit != 0 { p.insert(.write) }
        if (rawValue >> Self.xnShift) & 2 == 0 { p.insert(.execute) }
        return p
    }

    /// The page state a valid leaf carries in SW0|SW1 (`pkvm_getstate`).
    @inline(__always) public var pageState: PageState {
        PageState(rawValue: UInt8(truncatingIfNeeded: (rawValue & Self.stateMask) >> Self.swShift)) ?? .noPage
    }

    // MARK: Invalid-entry annotations (newest mainline pKVM, `kvm_pgtable_stage2_annotate`)

    /// The annotation type of an invalid entry, bits 63:60.
    public var annotationType: InvalidPTEType? {
        guard !isValid else { return nil }
        return InvalidPTEType(rawValue: UInt8(truncatingIfNeeded: rawValue >> 60))
    }

    /// The owner ID of an annotated invalid entry, bits 3:1.
    public var annotationOwner: OwnerID? {
        guard !isValid, !isZero else { return nil }
        return OwnerID(rawValue: UInt8(truncatingIfNeeded: (rawValue >> 1) & 7))
    }

    /// The 56-bit metadata of an annotated invalid entry, bits 59:4.
    public var annotationMeta: UInt64 { (rawValue >> 4) & ((1 << 56) - 1) }

    /// True for Android's MMIO guard note (`KVM_INVALID_PTE_MMIO_NOTE`): an invalid entry
    /// that is exactly 0x800, with no owner and no type.
    @inline(__always) public var isMMIOGuardNote: Bool { rawValue == SMCCCConstant.mmioGuardNote }

    /// Android's MMIO guard note.
    public static let mmioGuardNote = Stage2Descriptor(rawValue: SMCCCConstant.mmioGuardNote)

    /// True when this is an invalid entry of type POISONED (`guest_pte_is_poisoned`).
    @inline(__always) public var isPoisoned: Bool {
        !isValid && rawValue >> 60 == UInt64(InvalidPTEType.poisoned.rawValue)
    }

    // MARK: Encoding

    /// A table descriptor pointing at the next-level table at `next`.
    @inline(__always) public static func table(_ next: PhysAddr) -> Stage2Descriptor {
        Stage2Descriptor(rawValue: (next.rawValue & addressMask) | typeBit | validBit)
    }

    /// A block (level 1 or 2) or page (level 3) descriptor for normal memory: inner shareable,
    /// write-back, AF set, with `permissions` and the page `state` in the software bits.
    @inline(__always)
    public static func leaf(level: Int, output: PhysAddr, permissions: Stage2Permissions, state: PageState,
                            memAttr: UInt8 = memAttrNormal) -> Stage2Descriptor {
        var v = output.rawValue & addressMask | validBit | afBit
        if level == 3 { v |= typeBit }
        v |= UInt64(memAttr & 0xF) << memAttrShift
        v |= UInt64(shInner) << shShift
        if permissions.contains(.read) { v |= s2apReadBit }
        if permissions.contains(.write) { v |= s2apWriteBit }
        if !permissions.contains(.execute) { v |= UInt64(xnNone) << xnShift }
        v |= UInt64(state.rawValue & 3) << swShift
        return Stage2Descriptor(rawValue: v)
    }

    /// An invalid entry annotated with an owner and metadata (`kvm_pgtable_stage2_annotate`).
    /// `meta` must fit 56 bits.
    @inline(__always)
    public static func annotation(_ type: InvalidPTEType, owner: OwnerID, meta: UInt64 = 0) -> Stage2Descriptor {
        Stage2Descriptor(rawValue: UInt64(type.rawValue) << 60 | (meta & ((1 << 56) - 1)) << 4
                         | UInt64(owner.rawValue) << 1)
    }

    /// The same leaf with another output address: used when splitting a block into a table.
    @inline(__always) func withOutput(_ oa: PhysAddr, level: Int) -> Stage2Descriptor {
        var v = rawValue & ~Self.addressMask | oa.rawValue & Self.addressMask
        if level == 3 { v |= Self.typeBit } else { v &= ~Self.typeBit }
        return Stage2Descriptor(rawValue: v)
    }

    public var description: String { hex(rawValue) }

    /// The descriptor decoded field by field, as `pvm model`'s dump prints it.
    public func decoded(level: Int) -> String {
        if isZero { return "INVALID (empty)" }
        if isMMIOGuardNote { return "INVALID MMIO guard note" }
        if !isValid {
            let type = annotationType.map(String.init(describing:)) ?? "type \(rawValue >> 60)"
            var s = "INVALID \(type) owner=\(annotationOwner.map(String.init(describing:)) ?? "?")"
            if annotationOwner == .guest {
                let (handle, gfn) = GuestOwnerMeta.decode(annotationMeta)
                s += " vm=\(handle) gfn=\(gfn)"
            } else if annotationMeta != 0 {
                s += " meta=\(hex(annotationMeta))"
            }
            return s
        }
        if isTable(level: level) { return "TABLE next=\(tableAddress)" }
        guard isLeaf(level: level) else { return "RESERVED (faults)" }
        let kind = level == 3 ? "PAGE" : "BLOCK"
        var s = "\(kind) oa=\(outputAddress(level: level)) S2AP=\(permissions.subtracting(.execute)) "
        s += "XN=\(xn) MemAttr=\(hex(memAttr)) SH=\(sh) AF=\(af ? 1 : 0)"
        if contiguous { s += " CONT" }
        if dbm { s += " DBM" }
        s += " SW=\(hex(software)) state=\(pageState)"
        return s
    }
}

/// The annotation types newest mainline pKVM writes in bits 63:60 of an invalid stage-2 entry
/// (`KVM_INVALID_PTE_TYPE_LOCKED`, `KVM_HOST_INVALID_PTE_TYPE_DONATION`,
/// `KVM_GUEST_INVALID_PTE_TYPE_POISONED`).
public enum InvalidPTEType: UInt8, Sendable, CustomStringConvertible {
    case locked = 1
    case donation = 2
    case poisoned = 3

    public var description: String {
        switch self {
        case .locked: "LOCKED"
        case .donation: "DONATION"
        case .poisoned: "POISONED"
        }
    }
}

/// How a host stage-2 DONATION annotation names a guest owner (`host_stage2_encode_gfn_meta`):
/// metadata bits 15:0 = VM handle, bits 55:16 = gfn.
public enum GuestOwnerMeta {
    public static func encode(handle: VMHandle, gfn: GFN) -> UInt64 {
        UInt64(handle.rawValue) | (gfn.rawValue & ((1 << 40) - 1)) << 16
    }
    public static func decode(_ meta: UInt64) -> (VMHandle, GFN) {
        (VMHandle(rawValue: UInt16(truncatingIfNeeded: meta)), GFN(meta >> 16))
    }
}
