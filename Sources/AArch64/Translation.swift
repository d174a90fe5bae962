/// What an access does, for permission checks and syndromes.
public enum AccessKind: UInt8, Sendable {
    case read = 0, write = 1, execute = 2
}

/// A translation that succeeded: the page's physical address, host address and attributes.
struct PageTranslation {
    var pa: UInt64
    var ipa: UInt64
    var host: UnsafeMutableRawPointer
    /// Device memory at stage 1 or stage 2 (alignment is enforced).
    var device: Bool
    /// Not tagged with an ASID (nG = 0, or the MMU is off).
    var global: Bool
    /// Bytes around the page that the same two leaves map, contiguously and with the same
    /// attributes: the smaller of the stage-1 and stage-2 leaf sizes (4 KiB, 2 MiB, 1 GiB).
    var span: UInt64 = 4096
}

/// A translation that failed, and where the fault goes.
enum TranslationFault: Error {
    /// A stage-1 fault: an exception to EL1 with FAR_EL1 = the VA.
    case stage1(status: UInt8)
    /// A stage-2 fault: an exit to EL2 with HPFAR_EL2 = `ipa`; `onWalk` when it happened on the
    /// stage-1 table walk (S1PTW).
    case stage2(status: UInt8, ipa: UInt64, onWalk: Bool)
    /// Stage 2 mapped the IPA to a physical address that is not RAM: a synchronous external abort.
    case external(onWalk: Bool, level: Int)
}

/// The guest's stage 2 as the CPU walks it: VTTBR_EL2 and VTCR_EL2 as EL2 programs them for
/// the VM (Arm ARM D8.2, D23.2.183 VTCR_EL2). The tables are read from physical memory, where
/// EL2 keeps them: the interpreter walks exactly the descriptors EL2 wrote.
public struct Stage2Configuration: Sendable, Equatable {
    public var vttbr: UInt64
    public var vtcr: UInt64

    public init(vttbr: UInt64, vtcr: UInt64) {
        self.vttbr = vttbr
        self.vtcr = vtcr
    }
}

extension AArch64CPU {
    /// Translates `va` for `access` at the current EL (or at EL0 for an unprivileged access):
    /// stage 1 per SCTLR_EL1 / TCR_EL1 / TTBRn_EL1, then stage 2 (Arm ARM D8, the
    /// AArch64.FullTranslate pseudocode, 4 KB granule).
    ///
    /// With `stage1Only` (AT S1E1*), the output IPA is returned without its stage-2 walk (the
    /// stage-1 walk's own table reads still go through stage 2); `host` is then meaningless.
    func translate(_ va: UInt64, _ access: AccessKind, unprivileged: Bool, stage1Only: Bool = false)
        throws(TranslationFault) -> PageTranslation {
        let st = state
        let sys = st.pointee.sys
        let el0 = st.pointee.el == 0 || unprivileged
        guard sys.sctlr & 1 != 0 else {
            // MMU off (D8.2.10): a flat map; data accesses are Device-nGnRnE, instruction
            // fetches Normal. The VA must fit the physical address size.
            guard va >> Self.physicalAddressBits == 0 else { throw .stage1(status: FaultStatus.addressSize(level: 0)) }
            if stage1Only { return PageTranslation(pa: va & ~0xFFF, ipa: va & ~0xFFF, host: memory.host, device: true, global: true) }
            let (pa, host, s2device, s2span) = try stage2(va & ~0xFFF, access: access, onWalk: false)
            return PageTranslation(pa: pa, ipa: va & ~0xFFF, host: host, device: access != .execute || s2device, global: true,
                                   span: s2span)
        }
        let tcr = sys.tcr
        let upper = (va >> 55) & 1 == 1
        let tsz = Int(upper ? (tcr >> 16) & 0x3F : tcr & 0x3F)
        let epd = upper ? tcr & (1 << 23) != 0 : tcr & (1 << 7) != 0
        let tbi = access != .execute && (upper ? tcr & (1 << 38) != 0 : tcr & (1 << 37) != 0)
        let size = 64 - min(max(tsz, 16), 39)
        // The bits above the input size must all equal bit 55: zeros for TTBR0, ones for TTBR1
        // (the top byte ignored with TBI).
        var v = va
        if tbi { v = upper ? v | 0xFF00_0000_0000_0000 : v & 0x00FF_FFFF_FFFF_FFFF }
        let inRange = upper ? (~v) >> UInt64(size) == 0 : v >> UInt64(size) == 0
        guard !epd, inRange else { throw .stage1(status: FaultStatus.translation(level: 0)) }
        let ttbr = upper ? sys.ttbr1 : sys.ttbr0
        var level = 4 - (size - 12 + 8) / 9
        var table = ttbr & 0x0000_FFFF_FFFF_FFFE
        var apTable: UInt64 = 0, uxnTable = false, pxnTable = false
        while true {
            let shift = 12 + 9 * (3 - level)
            let indexBits = level == 4 - (size - 12 + 8) / 9 ? size - shift : 9
            let index = (va >> UInt64(shift)) & ((1 << UInt64(indexBits)) - 1)
            let entryIPA = table + index * 8
            let (entryPA, _, _, _) = try stage2(entryIPA, access: .read, onWalk: true, level: level)
            guard let desc = memory.descriptor(entryPA) else { throw .external(onWalk: true, level: level) }
            guard desc & 1 == 1 else { throw .stage1(status: FaultStatus.translation(level: level)) }
            if level < 3, desc & 2 != 0 {
                apTable |= (desc >> 61) & 3
                uxnTable = uxnTable || desc & (1 << 60) != 0
                pxnTable = pxnTable || desc & (1 << 59) != 0
                table = desc & 0x0000_FFFF_FFFF_F000
                level += 1
                continue
            }
            guard level > 0, level == 3 || desc & 2 == 0, level < 3 || desc & 2 != 0 else {
                throw .stage1(status: FaultStatus.translation(level: level))
            }
            let blockMask = (UInt64(1) << UInt64(shift)) - 1
            let output = (desc & 0x0000_FFFF_FFFF_F000 & ~blockMask) | (va & blockMask & ~0xFFF)
            guard output >> Self.physicalAddressBits == 0 else { throw .stage1(status: FaultStatus.addressSize(level: level)) }
            guard desc & (1 << 10) != 0 else { throw .stage1(status: FaultStatus.accessFlag(level: level)) }
            // Permissions (D8.4): AP[2:1], restricted by APTable; UXN / PXN with their table bits.
            var ap = (desc >> 6) & 3
            if apTable & 1 != 0 { ap &= ~1 }   // APTable[0]: no EL0 access
            if apTable & 2 != 0 { ap |= 2 }    // APTable[1]: read-only
            let el0Access = ap & 1 != 0
            let readOnly = ap & 2 != 0
            let uxn = uxnTable || desc & (1 << 54) != 0
            let pxn = pxnTable || desc & (1 << 53) != 0
            let wxn = sys.sctlr & (1 << 19) != 0
            let status = FaultStatus.permission(level: level)
            switch access {
            case .read:
                if el0 && !el0Access { throw .stage1(status: status) }
                if !el0 && el0Access && st.pointee.pan { throw .stage1(status: status) }
            case .write:
                if readOnly || (el0 && !el0Access) { throw .stage1(status: status) }
                if !el0 && el0Access && st.pointee.pan { throw .stage1(status: status) }
            case .execute:
                let writable = !readOnly && (el0 ? el0Access : true)
                if el0 {
                    // EL0 may execute what it cannot read (execute-only memory): only UXN and WXN.
                    if uxn || (wxn && writable) { throw .stage1(status: status) }
                } else if pxn || (el0Access && !readOnly) || (wxn && !readOnly) {
                    // A region writable at EL0 is never executable at EL1.
                    throw .stage1(status: status)
                }
            }
            let attrIndex = (desc >> 2) & 7
            let attr = (sys.mair >> (attrIndex * 8)) & 0xFF
            if stage1Only {
                return PageTranslation(pa: output, ipa: output, host: memory.host, device: attr & 0xF0 == 0,
                                       global: desc & (1 << 11) == 0)
            }
            let (pa, host, s2device, s2span) = try stage2(output, access: access, onWalk: false)
            return PageTranslation(pa: pa, ipa: output, host: host, device: attr & 0xF0 == 0 || s2device,
                                   global: desc & (1 << 11) == 0, span: min(blockMask + 1, s2span))
        }
    }

    /// The stage-2 walk of `ipa` (page aligned or not) for `access`: the physical address, its
    /// host address, whether stage 2 says Device, and the leaf's size. `onWalk` for the reads
    /// of a stage-1 walk (`level` is then the stage-1 level, for an external abort's status).
    @inline(__always)
    func stage2(_ ipa: UInt64, access: AccessKind, onWalk: Bool, level: Int = 0)
        throws(TranslationFault) -> (UInt64, UnsafeMutableRawPointer, Bool, UInt64) {
        guard let s2 = stage2Configuration else {
            // No stage 2 (a bare CPU in tests): the IPA is the physical address.
            guard let host = memory.pointer(ipa & ~0xFFF, bytes: 4096) else { throw .external(onWalk: onWalk, level: level) }
            return (ipa, host + Int(ipa & 0xFFF), false, 4096)
        }
        let t0sz = Int(s2.vtcr & 0x3F)
        let size = 64 - t0sz
        let sl0 = Int((s2.vtcr >> 6) & 3)
        var level = 2 - sl0
        guard size < 64, ipa >> UInt64(size) == 0 else {
            throw .stage2(status: FaultStatus.translation(level: level), ipa: ipa, onWalk: onWalk)
        }
        var table = s2.vttbr & 0x0000_FFFF_FFFF_FFFE
        let start = level
        while true {
            let shift = 12 + 9 * (3 - level)
            let index = level == start ? ipa >> UInt64(shift) : (ipa >> UInt64(shift)) & 511
            guard let desc = memory.descriptor(table + index * 8) else {
                throw .external(onWalk: onWalk, level: level)
            }
            guard desc & 1 == 1 else { throw .stage2(status: FaultStatus.translation(level: level), ipa: ipa, onWalk: onWalk) }
            if level < 3, desc & 2 != 0 {
                table = desc & 0x0000_FFFF_FFFF_F000
                level += 1
                continue
            }
            guard level > 0, level == 3 || desc & 2 == 0, level < 3 || desc & 2 != 0 else {
                throw .stage2(status: FaultStatus.translation(level: level), ipa: ipa, onWalk: onWalk)
            }
            guard desc & (1 << 10) != 0 else {
                throw .stage2(status: FaultStatus.accessFlag(level: level), ipa: ipa, onWalk: onWalk)
            }
            // S2AP (D8.4.5): bit 6 read, bit 7 write; XN (bit 54) forbids execution at EL0 and EL1.
            let allowed: Bool
            switch access {
            case .read: allowed = desc & (1 << 6) != 0
            case .write: allowed = desc & (1 << 7) != 0
            case .execute: allowed = desc & (1 << 6) != 0 && desc & (1 << 54) == 0
            }
            guard allowed else { throw .stage2(status: FaultStatus.permission(level: level), ipa: ipa, onWalk: onWalk) }
            let blockMask = (UInt64(1) << UInt64(shift)) - 1
            let pa = (desc & 0x0000_FFFF_FFFF_F000 & ~blockMask) | (ipa & blockMask)
            guard let host = memory.pointer(pa & ~0xFFF, bytes: 4096) else { throw .external(onWalk: onWalk, level: level) }
            // MemAttr[3:2] = 00: Device.
            return (pa, host + Int(pa & 0xFFF), (desc >> 4) & 3 == 0, blockMask + 1)
        }
    }
}
