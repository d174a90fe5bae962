import EL2
import Testing

/// `Stage2Descriptor` and `Stage2Geometry` against values computed by hand from the Arm ARM
/// bit positions (D8.3, 4 KB granule) and pKVM's software conventions:
///
///     bit 0 valid | bit 1 type | 5:2 MemAttr | 7:6 S2AP | 9:8 SH | 10 AF | 47:12 OA
///     51 DBM | 52 contiguous | 54:53 XN | 58:55 SW (pKVM state in 56:55)
///     invalid: 3:1 owner | 59:4 meta | 63:60 type (LOCKED 1, DONATION 2, POISONED 3)
@Suite struct DescriptorTests {
    // MARK: Leaf encoding

    @Test func pageRWXOwned() {
        let d = Stage2Descriptor.leaf(level: 3, output: PhysAddr(0x8000_1000), permissions: .rwx, state: .owned)
        // 0x8000_1000 (OA) + 0x400 (AF) + 0x300 (SH=3 inner) + 0x80 (S2AP W) + 0x40 (S2AP R)
        // + 0x3C (MemAttr 0xF << 2) + 0x2 (type: page) + 0x1 (valid); XN = 0, SW = 0.
        #expect(d.rawValue == 0x0000_0000_8000_17FF)
    }

    @Test func blockRWXOwnedLevel2() {
        let d = Stage2Descriptor.leaf(level: 2, output: PhysAddr(0x8020_0000), permissions: .rwx, state: .owned)
        // 0x8020_0000 + 0x400 (AF) + 0x300 (SH) + 0xC0 (S2AP RW) + 0x3C (MemAttr) + 0x1 (valid);
        // type bit 1 = 0 for a block.
        #expect(d.rawValue == 0x0000_0000_8020_07FD)
    }

    @Test func blockLevel1() {
        let d = Stage2Descriptor.leaf(level: 1, output: PhysAddr(0x4000_0000), permissions: .rwx, state: .owned)
        // 0x4000_0000 + 0x7FD (as the level-2 block).
        #expect(d.rawValue == 0x0000_0000_4000_07FD)
    }

    @Test func pageReadOnlyNoExec() {
        let d = Stage2Descriptor.leaf(level: 3, output: PhysAddr(0x8000_2000), permissions: .read, state: .owned)
        // 0x0040_0000_0000_0000 (XN = 0b10 << 53) + 0x8000_2000 + 0x400 (AF) + 0x300 (SH)
        // + 0x40 (S2AP = 0b01, read only) + 0x3C (MemAttr) + 0x2 (page) + 0x1 (valid).
        #expect(d.rawValue == 0x0040_0000_8000_277F)
        #expect(d.s2ap == 0b01)
        #expect(d.xn == 0b10)
        #expect(d.permissions == .read)
    }

    @Test func sharedOwnedSoftwareBit() {
        let d = Stage2Descriptor.leaf(level: 3, output: PhysAddr(0x8000_3000), permissions: .rwx, state: .sharedOwned)
        // 0x0080_0000_0000_0000 (SW0 = bit 55) + 0x8000_3000 + 0x7FF.
        #expect(d.rawValue == 0x0080_0000_8000_37FF)
        #expect(d.software == 0b0001)
        #expect(d.pageState == .sharedOwned)
    }

    @Test func sharedBorrowedSoftwareBit() {
        let d = Stage2Descriptor.leaf(level: 3, output: PhysAddr(0x8000_4000), permissions: .rw, state: .sharedBorrowed)
        // 0x0100_0000_0000_0000 (SW1 = bit 56) + 0x0040_0000_0000_0000 (XN = 0b10)
        // + 0x8000_4000 + 0x7FF.
        #expect(d.rawValue == 0x0140_0000_8000_47FF)
        #expect(d.software == 0b0010)
        #expect(d.pageState == .sharedBorrowed)
        #expect(d.permissions == .rw)
    }

    @Test func deviceBlock() {
        let d = Stage2Descriptor.leaf(level: 2, output: PhysAddr(0x0900_0000), permissions: .rw, state: .owned,
                                      memAttr: Stage2Descriptor.memAttrDevice)
        // 0x0040_0000_0000_0000 (XN) + 0x0900_0000 + 0x400 (AF) + 0x300 (SH) + 0xC0 (S2AP RW)
        // + 0x4 (MemAttr 0x1 << 2) + 0x1 (valid).
        #expect(d.rawValue == 0x0040_0000_0900_07C5)
        #expect(d.memAttr == 0x1)
    }

    @Test func leafDropsAddressBitsOutside47To12() {
        // Bits 11:0 and 63:48 of the output are not part of the OA field.
        let d = Stage2Descriptor.leaf(level: 3, output: PhysAddr(0xFFFF_0000_8000_1ABC), permissions: .rwx,
                                      state: .owned)
        #expect(d.rawValue == 0x0000_0000_8000_17FF)
    }

    /// Permissions and the S2AP (7:6) and XN (54:53) bits they must produce.
    static let permissionCases: [(Stage2Permissions, UInt64)] = [
        ([], 0x0040_0000_0000_0000),  // S2AP 00, XN 0b10
        (.read, 0x0040_0000_0000_0040),  // S2AP 01, XN 0b10
        (.write, 0x0040_0000_0000_0080),  // S2AP 10, XN 0b10
        (.rw, 0x0040_0000_0000_00C0),  // S2AP 11, XN 0b10
        (.execute, 0x0000_0000_0000_0000),  // S2AP 00, XN 00
        ([.read, .execute], 0x0000_0000_0000_0040),
        (.rwx, 0x0000_0000_0000_00C0),
    ]

    @Test(arguments: permissionCases)
    func permissionBits(permissions: Stage2Permissions, bits: UInt64) {
        let d = Stage2Descriptor.leaf(level: 3, output: PhysAddr(0), permissions: permissions, state: .owned)
        let permissionMask: UInt64 = 0x0060_0000_0000_00C0  // XN 54:53 | S2AP 7:6
        #expect(d.rawValue & permissionMask == bits)
        #expect(d.permissions == permissions)
    }

    // MARK: Table descriptors

    @Test func tableDescriptor() {
        // 0x8000_5000 + 0x2 (type: table) + 0x1 (valid).
        #expect(Stage2Descriptor.table(PhysAddr(0x8000_5000)).rawValue == 0x0000_0000_8000_5003)
        // Low bits and bits above 47 of the next-table address are dropped.
        #expect(Stage2Descriptor.table(PhysAddr(0xFFFF_0000_8000_5123)).rawValue == 0x0000_0000_8000_5003)
        let t = Stage2Descriptor(rawValue: 0x0000_0000_8000_5003)
        #expect(t.tableAddress == PhysAddr(0x8000_5000))
        #expect(t.isTable(level: 0) && t.isTable(level: 1) && t.isTable(level: 2))
        #expect(!t.isTable(level: 3))
        #expect(!t.isLeaf(level: 1) && !t.isLeaf(level: 2))
        // At level 3 the same bits are a page.
        #expect(t.isLeaf(level: 3))
    }

    // MARK: Decoding

    @Test func outputAddressMasksLowBitsPerLevel() {
        // A leaf whose OA field holds 0x8020_1000: bits 20:12 belong to the OA only at level 3,
        // bits 29:21 only at levels 2 and 3.
        let d = Stage2Descriptor(rawValue: 0x0000_0000_8020_17FD)
        #expect(d.outputAddress(level: 3) == PhysAddr(0x8020_1000))
        #expect(d.outputAddress(level: 2) == PhysAddr(0x8020_0000))
        #expect(d.outputAddress(level: 1) == PhysAddr(0x8000_0000))
        let all = Stage2Descriptor(rawValue: .max)
        #expect(all.outputAddress(level: 3) == PhysAddr(0x0000_FFFF_FFFF_F000))
        #expect(all.outputAddress(level: 2) == PhysAddr(0x0000_FFFF_FFE0_0000))
        #expect(all.outputAddress(level: 1) == PhysAddr(0x0000_FFFF_C000_0000))
        #expect(all.tableAddress == PhysAddr(0x0000_FFFF_FFFF_F000))
    }

    @Test func fieldsDecode() {
        // valid | MemAttr 0b1010 | S2AP 0b10 | SH 0b10 | AF | OA 0x1234_5678_9000 | DBM | Contiguous
        // | XN 0b01 | SW 0b1011
        let raw: UInt64 = 0x1 | 0xA << 2 | 0b10 << 6 | 0b10 << 8 | 1 << 10 | 0x1234_5678_9000
            | 1 << 51 | 1 << 52 | 0b01 << 53 | 0b1011 << 55
        // Written out: 0x0580_0000_0000_0000 (SW 0b1011 << 55) + 0x0020_0000_0000_0000 (XN 0b01)
        // + 0x0010_0000_0000_0000 (contiguous) + 0x0008_0000_0000_0000 (DBM) + OA
        // + 0x400 (AF) + 0x200 (SH 0b10) + 0x80 (S2AP 0b10) + 0x28 (MemAttr 0xA << 2) + 0x1.
        #expect(raw == 0x05B8_1234_5678_96A9)
        let d = Stage2Descriptor(rawValue: raw)
        #expect(d.isValid)
        #expect(d.memAttr == 0xA)
        #expect(d.s2ap == 0b10)
        #expect(d.sh == 0b10)
        #expect(d.af)
        #expect(d.dbm)
        #expect(d.contiguous)
        #expect(d.xn == 0b01)
        #expect(d.software == 0b1011)
        #expect(d.pageState == .noPage)  // SW1|SW0 = 0b11
        #expect(d.outputAddress(level: 3) == PhysAddr(0x1234_5678_9000))
        // XN = 0b01 forbids execution at EL1 only: the descriptor still counts as executable.
        #expect(d.permissions == [.write, .execute])
        let bare = Stage2Descriptor(rawValue: 0x1)
        #expect(!bare.af && !bare.dbm && !bare.contiguous && bare.sh == 0 && bare.memAttr == 0)
    }

    @Test func leafAndTableRules() {
        let block = Stage2Descriptor(rawValue: 0x8020_07FD)  // bits [1:0] = 0b01
        let pageBits = Stage2Descriptor(rawValue: 0x8000_17FF)  // bits [1:0] = 0b11
        // Level 3 with [1:0] = 0b01 is reserved (a translation fault), not a leaf.
        #expect(!block.isLeaf(level: 3))
        #expect(block.isLeaf(level: 2))
        #expect(block.isLeaf(level: 1))
        // No level-0 blocks without LPA2.
        #expect(!block.isLeaf(level: 0))
        #expect(!block.isTable(level: 0) && !block.isTable(level: 1) && !block.isTable(level: 2))
        #expect(pageBits.isLeaf(level: 3))
        #expect(!pageBits.isLeaf(level: 2))
        #expect(pageBits.isTable(level: 2))
        // Invalid entries are neither, whatever else they hold.
        for raw: UInt64 in [0, 0x2, 0x2000_0000_0000_0002, 0xFFFF_FFFF_FFFF_FFFE] {
            let d = Stage2Descriptor(rawValue: raw)
            #expect(!d.isValid)
            for level in 0...3 { #expect(!d.isLeaf(level: level) && !d.isTable(level: level)) }
        }
        #expect(Stage2Descriptor.zero.isZero && Stage2Descriptor.zero.rawValue == 0)
    }

    // MARK: Annotations

    @Test func hypDonationAnnotation() {
        let d = Stage2Descriptor.annotation(.donation, owner: .hyp)
        // 0x2000_0000_0000_0000 (type DONATION = 2 << 60) + 0x2 (owner HYP = 1 << 1).
        #expect(d.rawValue == 0x2000_0000_0000_0002)
        #expect(!d.isValid && !d.isZero && !d.isPoisoned)
        #expect(d.annotationType == .donation)
        #expect(d.annotationOwner == .hyp)
        #expect(d.annotationMeta == 0)
    }

    @Test func guestDonationAnnotation() {
        let meta = GuestOwnerMeta.encode(handle: VMHandle(rawValue: 0x1000), gfn: GFN(0x40))
        // meta = 0x1000 (handle, bits 15:0) + 0x40 << 16 (gfn, bits 55:16) = 0x40_1000.
        #expect(meta == 0x0040_1000)
        let d = Stage2Descriptor.annotation(.donation, owner: .guest, meta: meta)
        // 0x2000_0000_0000_0000 (DONATION) + 0x40_1000 << 4 = 0x401_0000 (handle in PTE bits 19:4,
        // gfn in 59:20) + 0x4 (owner GUEST = 2 << 1).
        #expect(d.rawValue == 0x2000_0000_0401_0004)
        #expect(d.annotationOwner == .guest)
        #expect(d.annotationMeta == meta)
        let (handle, gfn) = GuestOwnerMeta.decode(d.annotationMeta)
        #expect(handle == VMHandle(rawValue: 0x1000))
        #expect(gfn == GFN(0x40))
    }

    @Test func widestGuestMeta() {
        let gfn = GFN((1 << 40) - 1)
        let meta = GuestOwnerMeta.encode(handle: VMHandle(rawValue: 0xFFFF), gfn: gfn)
        #expect(meta == 0x00FF_FFFF_FFFF_FFFF)  // all 56 metadata bits
        let d = Stage2Descriptor.annotation(.donation, owner: .guest, meta: meta)
        // 0x2000_0000_0000_0000 + 0x0FFF_FFFF_FFFF_FFF0 (meta << 4) + 0x4.
        #expect(d.rawValue == 0x2FFF_FFFF_FFFF_FFF4)
        let (h, g) = GuestOwnerMeta.decode(d.annotationMeta)
        #expect(h == VMHandle(rawValue: 0xFFFF) && g == gfn)
        // A gfn wider than 40 bits is truncated to 40 bits.
        #expect(GuestOwnerMeta.encode(handle: VMHandle(rawValue: 1), gfn: GFN(1 << 40 | 5)) == 0x5_0001)
    }

    @Test func metaWiderThan56BitsIsTruncated() {
        let d = Stage2Descriptor.annotation(.locked, owner: .hyp, meta: .max)
        // 0x1000_0000_0000_0000 (LOCKED) + 0x0FFF_FFFF_FFFF_FFF0 + 0x2 (owner HYP).
        #expect(d.rawValue == 0x1FFF_FFFF_FFFF_FFF2)
        #expect(d.annotationType == .locked)
        #expect(d.annotationMeta == 0x00FF_FFFF_FFFF_FFFF)
    }

    @Test func poisonedAnnotation() {
        let d = Stage2Descriptor.annotation(.poisoned, owner: .host)
        #expect(d.rawValue == 0x3000_0000_0000_0000)  // type POISONED = 3 << 60
        #expect(d.isPoisoned)
        #expect(d.annotationType == .poisoned)
        #expect(d.annotationOwner == .host)
        // A valid entry with the same top bits is not poisoned, and has no annotation.
        let valid = Stage2Descriptor(rawValue: 0x3000_0000_0000_0001)
        #expect(!valid.isPoisoned)
        #expect(valid.annotationType == nil)
        #expect(valid.annotationOwner == nil)
        // Type 0 and unknown types decode to nil; a zero entry has no owner.
        #expect(Stage2Descriptor(rawValue: 0x2).annotationType == nil)
        #expect(Stage2Descriptor(rawValue: 0x7000_0000_0000_0000).annotationType == nil)
        #expect(Stage2Descriptor.zero.annotationOwner == nil)
        #expect(Stage2Descriptor(rawValue: 0xE).annotationOwner == nil)  // owner field 7 is no component
    }

    @Test func decodedText() {
        #expect(Stage2Descriptor.zero.decoded(level: 3) == "INVALID (empty)")
        #expect(Stage2Descriptor.table(PhysAddr(0x8000_5000)).decoded(level: 1) == "TABLE next=0x80005000")
        #expect(Stage2Descriptor(rawValue: 0x8020_07FD).decoded(level: 3) == "RESERVED (faults)")
        let guest = Stage2Descriptor(rawValue: 0x2000_0000_0401_0004)
        #expect(guest.decoded(level: 3) == "INVALID DONATION owner=guest vm=0x1000 gfn=0x40")
    }

    // MARK: Geometry

    @Test func geometry40() throws {
        let g = try #require(Stage2Geometry(ipaBits: 40))
        #expect(g.levels == 3)
        #expect(g.startLevel == 1)
        #expect(g.pgdBytes == 8192)
        #expect(g.pgdPages == 2)
        #expect(g.pgdEntries == 1024)
        #expect(g.limit == 1 << 40)
        #expect(g.minMemcachePages == 2)
        let vtcr = g.vtcr(physBits: 40)
        // T0SZ 24 (0x18) + SL0 1 (0x40) + IRGN0 (0x100) + ORGN0 (0x400) + SH0 3 (0x3000)
        // + TG0 4K (0) + PS 2 (0x2_0000) + RES1 (0x8000_0000).
        #expect(vtcr == 0x8002_3558)
        #expect(vtcr & 0x3F == 24)
        #expect((vtcr >> 6) & 3 == 1)
    }

    @Test func geometry48() throws {
        let g = try #require(Stage2Geometry(ipaBits: 48))
        #expect(g.levels == 4)
        #expect(g.startLevel == 0)
        #expect(g.pgdBytes == 4096)
        #expect(g.pgdPages == 1)
        #expect(g.pgdEntries == 512)
        #expect(g.minMemcachePages == 3)
        let vtcr = g.vtcr(physBits: 48)
        // T0SZ 16 (0x10) + SL0 2 (0x80) + 0x100 + 0x400 + 0x3000 + PS 5 (0x5_0000) + 0x8000_0000.
        #expect(vtcr == 0x8005_3590)
        #expect(vtcr & 0x3F == 16)
        #expect((vtcr >> 6) & 3 == 2)
    }

    @Test func geometry32() throws {
        let g = try #require(Stage2Geometry(ipaBits: 32))
        // Two levels from level 2: four concatenated level-2 tables (x = 32 - 18 = 14).
        #expect(g.levels == 2)
        #expect(g.startLevel == 2)
        #expect(g.pgdBytes == 16384)
        #expect(g.pgdPages == 4)
        #expect(g.pgdEntries == 2048)
        // T0SZ 32 (0x20) + SL0 0 + 0x3500 + PS 0 + 0x8000_0000.
        #expect(g.vtcr(physBits: 32) == 0x8000_3520)
    }

    @Test func geometry36() throws {
        let g = try #require(Stage2Geometry(ipaBits: 36))
        // Three levels from level 1; x = 36 - 27 = 9: one table of which 64 entries are used.
        #expect(g.levels == 3)
        #expect(g.startLevel == 1)
        #expect(g.pgdBytes == 4096)
        #expect(g.pgdPages == 1)
        #expect(g.pgdEntries == 64)
        // T0SZ 28 (0x1C) + SL0 1 (0x40) + 0x3500 + PS 1 (0x1_0000) + 0x8000_0000.
        #expect(g.vtcr(physBits: 36) == 0x8001_355C)
    }

    @Test(arguments: [0, 31, 49, 52, 64])
    func unsupportedIPASizes(bits: Int) {
        #expect(Stage2Geometry(ipaBits: bits) == nil)
    }

    @Test func levelShiftsAndBlockSizes() {
        #expect((0...3).map(Stage2Geometry.shift(level:)) == [39, 30, 21, 12])
        #expect((0...3).map(Stage2Geometry.blockSize(level:)) == [1 << 39, 1 << 30, 1 << 21, 1 << 12])
        #expect(Stage2Geometry.minBlockLevel == 1)
        #expect(Stage2Geometry.lastLevel == 3)
    }

    @Test func tablesNeededBound() throws {
        let g40 = try #require(Stage2Geometry(ipaBits: 40))
        let g48 = try #require(Stage2Geometry(ipaBits: 48))
        #expect(g40.tablesNeededBound(start: 0x8000_0000, end: 0x8000_1000) == 2)
        #expect(g48.tablesNeededBound(start: 0x8000_0000, end: 0x8000_1000) == 3)
        #expect(g40.tablesNeededBound(start: 0x8000_0000, end: 0x8000_0000) == 0)
        // Two pages either side of a 1 GiB boundary: 2 level-2 tables + 2 level-3 tables.
        #expect(g40.tablesNeededBound(start: 0x3FFF_F000, end: 0x4000_1000) == 4)
        // 64 MiB aligned: 1 level-2 table + 32 level-3 tables.
        #expect(g40.tablesNeededBound(start: 0x8000_0000, end: 0x8400_0000) == 33)
    }
}
