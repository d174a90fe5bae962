/// Data accesses: the TLB fast path, the translating slow path, accesses that cross a page,
/// and recording the fault an access raises (delivered by the executor, which knows the
/// instruction's syndrome).
extension AArch64CPU {
    /// The host address of `size` bytes at `va` for `access`, from the TLB alone: nil on a miss,
    /// a page crossing or an access the slow path must check for alignment.
    @_transparent
    func fastPointer(_ va: UInt64, _ size: Int, _ access: AccessKind, el0: Bool, asid: UInt32, alignment: Int = 0)
        -> UnsafeMutableRawPointer? {
        let e = tlb.slot(TLB.set(el0: el0, access), va)
        let align = alignment == 0 ? size : alignment
        guard e.pointee.page == va & ~0xFFF, e.pointee.asid == asid || e.pointee.asid == TLB.global,
              Int(va & 0xFFF) + size <= 4096, !e.pointee.device || va & UInt64(align - 1) == 0 else { return nil }
        return e.pointee.host.unsafelyUnwrapped + Int(va & 0xFFF)
    }

    /// The host address of the page holding `va` after a full check (translation, permission,
    /// alignment to `alignment` bytes (default `size`) if `aligned`, SCTLR_EL1.A or Device
    /// memory), filling the TLB; nil with `state.fault` set. Pairs and multi-register
    /// accesses are checked against the element size (Arm ARM B2.5.2).
    @inline(never)
    func slowPointer(_ va: UInt64, _ size: Int, _ access: AccessKind, unprivileged: Bool, aligned: Bool, alignment: Int = 0)
        -> UnsafeMutableRawPointer? {
        let s = state
        let align = UInt64(alignment == 0 ? size : alignment)
        let alignmentCheck = aligned || s.pointee.sys.sctlr & 2 != 0
        if alignmentCheck, va & (align - 1) != 0 {
            recordFault(.alignment, status: FaultStatus.alignment, va: va, access: access, size: size)
            return nil
        }
        let el0 = s.pointee.el == 0 || unprivileged
        let set = TLB.set(el0: el0, access)
        let asid = currentASID
        let b = tlb.blockSlot(set, va)
        if b.pointee.page == va & ~(TLB.blockSize - 1), b.pointee.asid == asid || b.pointee.asid == TLB.global {
            // A 2 MiB entry covers the page: refill the page entry from it, no walk.
            let offset = va & (TLB.blockSize - 1) & ~0xFFF
            if b.pointee.device, va & (align - 1) != 0 {
                recordFault(.alignment, status: FaultStatus.alignment, va: va, access: access, size: size)
                return nil
            }
            let host = b.pointee.host.unsafelyUnwrapped + Int(offset)
            tlb.slot(set, va).pointee = TLBEntry(page: va & ~0xFFF, asid: b.pointee.asid, device: b.pointee.device, host: host,
                                                 ipa: b.pointee.ipa + offset)
            return host + Int(va & 0xFFF)
        }
        let translation: PageTranslation
        do {
            translation = try translate(va, access, unprivileged: unprivileged)
        } catch {
            record(error, va: va, access: access, size: size)
            return nil
        }
        if translation.device, va & (align - 1) != 0 {
            recordFault(.alignment, status: FaultStatus.alignment, va: va, access: access, size: size)
            return nil
        }
        let entryASID = translation.global ? TLB.global : asid
        tlb.slot(set, va).pointee = TLBEntry(page: va & ~0xFFF, asid: entryASID, device: translation.device,
                                             host: translation.host, ipa: translation.ipa)
        if translation.span >= TLB.blockSize {
            // Both stages map the whole 2 MiB around the page, and its memory is one host run.
            let offset = va & (TLB.blockSize - 1) & ~0xFFF
            let paBase = translation.pa & ~0xFFF - offset
            let hostBase = translation.host - Int(offset)
            if memory.pointer(paBase, bytes: TLB.blockSize) == hostBase {
                b.pointee = TLBEntry(page: va & ~(TLB.blockSize - 1), asid: entryASID, device: translation.device,
                                     host: hostBase, ipa: translation.ipa & ~0xFFF - offset)
            }
        }
        return translation.host + Int(va & 0xFFF)
    }

    func record(_ error: TranslationFault, va: UInt64, access: AccessKind, size: Int) {
        switch error {
        case let .stage1(status):
            recordFault(.stage1, status: status, va: va, access: access, size: size)
        case let .stage2(status, ipa, onWalk):
            recordFault(.stage2, status: status, va: va, ipa: ipa, access: access, size: size, onWalk: onWalk)
        case let .external(onWalk, level):
            recordFault(.external, status: onWalk ? FaultStatus.synchronousExternalOnWalk(level: level) : FaultStatus.synchronousExternal,
                        va: va, access: access, size: size, onWalk: onWalk)
        }
    }

    func recordFault(_ kind: PendingFault.Kind, status: UInt8, va: UInt64, ipa: UInt64 = 0, access: AccessKind, size: Int,
                     onWalk: Bool = false) {
        state.pointee.fault = PendingFault(kind: kind, status: status, va: va, ipa: ipa, access: access, size: size,
                                           onWalk: onWalk)
    }

    /// The host address of a `size`-byte access at `va`, or nil with the fault recorded. An
    /// access that crosses a page returns nil with `crossing` set instead: the caller splits it.
    @inline(__always)
    func pointer(_ va: UInt64, _ size: Int, _ access: AccessKind, unprivileged: Bool = false, aligned: Bool = false,
                 alignment: Int = 0, crossing: inout Bool) -> UnsafeMutableRawPointer? {
        let s = state
        let el0 = s.pointee.el == 0 || unprivileged
        if let p = fastPointer(va, size, access, el0: el0, asid: currentASID, alignment: alignment),
           !aligned || va & UInt64(size - 1) == 0 { return p }
        if Int(va & 0xFFF) + size > 4096, !aligned, s.pointee.sys.sctlr & 2 == 0 {
            crossing = true
            return nil
        }
        return slowPointer(va, size, access, unprivileged: unprivileged, aligned: aligned, alignment: alignment)
    }

    /// Loads `size` (1, 2, 4, 8) bytes little-endian, zero-extended; nil on a fault.
    @inline(__always)
    func load(_ va: UInt64, _ size: Int, unprivileged: Bool = false) -> UInt64? {
        var crossing = false
        if let p = pointer(va, size, .read, unprivileged: unprivileged, crossing: &crossing) { return Self.read(p, size) }
        return crossing ? loadSplit(va, size, unprivileged: unprivileged) : nil
    }

    /// Stores the low `size` bytes of `value`; false on a fault (nothing stored).
    @inline(__always)
    func store(_ va: UInt64, _ size: Int, _ value: UInt64, unprivileged: Bool = false) -> Bool {
        var crossing = false
        if let p = pointer(va, size, .write, unprivileged: unprivileged, crossing: &crossing) {
            Self.write(p, size, value)
            return true
        }
        return crossing ? storeSplit(va, size, value, unprivileged: unprivileged) : false
    }

    @_transparent static func read(_ p: UnsafeMutableRawPointer, _ size: Int) -> UInt64 {
        switch size {
        case 1: return UInt64(p.load(as: UInt8.self))
        case 2: return UInt64(UInt16(littleEndian: p.loadUnaligned(as: UInt16.self)))
        case 4: return UInt64(UInt32(littleEndian: p.loadUnaligned(as: UInt32.self)))
        default: return UInt64(littleEndian: p.loadUnaligned(as: UInt64.self))
        }
    }

    @_transparent static func write(_ p: UnsafeMutableRawPointer, _ size: Int, _ value: UInt64) {
        switch size {
        case 1: p.storeBytes(of: UInt8(truncatingIfNeeded: value), as: UInt8.self)
        case 2: p.storeBytes(of: UInt16(truncatingIfNeeded: value).littleEndian, as: UInt16.self)
        case 4: p.storeBytes(of: UInt32(truncatingIfNeeded: value).littleEndian, as: UInt32.self)
        default: p.storeBytes(of: value.littleEndian, as: UInt64.self)
        }
    }

    /// A load that crosses into the next page: both pages are translated (and may fault)
    /// before any byte is read.
    @inline(never)
    func loadSplit(_ va: UInt64, _ size: Int, unprivileged: Bool) -> UInt64? {
        let first = 4096 - Int(va & 0xFFF)
        guard let a = slowPointer(va, 1, .read, unprivileged: unprivileged, aligned: false),
              let b = slowPointer(va &+ UInt64(first), 1, .read, unprivileged: unprivileged, aligned: false) else { return nil }
        var value: UInt64 = 0
        for i in 0 ..< size {
            let byte = i < first ? a.load(fromByteOffset: i, as: UInt8.self) : b.load(fromByteOffset: i - first, as: UInt8.self)
            value |= UInt64(byte) << UInt64(8 * i)
        }
        return value
    }

    /// A store that crosses into the next page: both pages are checked before any byte is
    /// written, so a fault on the second leaves the first untouched.
    @inline(never)
    func storeSplit(_ va: UInt64, _ size: Int, _ value: UInt64, unprivileged: Bool) -> Bool {
        let first = 4096 - Int(va & 0xFFF)
        guard let a = slowPointer(va, 1, .write, unprivileged: unprivileged, aligned: false),
              let b = slowPointer(va &+ UInt64(first), 1, .write, unprivileged: unprivileged, aligned: false) else { return false }
        for i in 0 ..< size {
            let byte = UInt8(truncatingIfNeeded: value >> UInt64(8 * i))
            if i < first { a.storeBytes(of: byte, toByteOffset: i, as: UInt8.self) } else {
                b.storeBytes(of: byte, toByteOffset: i - first, as: UInt8.self)
            }
        }
        return true
    }

    /// Reads `count` bytes at `va` into `buffer` (SIMD&FP registers, pairs of up to 32 bytes,
    /// checked for alignment to `element` bytes); false on a fault, with nothing read.
    func loadBytes(_ va: UInt64, _ count: Int, into buffer: UnsafeMutableRawPointer, element: Int = 0) -> Bool {
        var crossing = false
        if let p = pointer(va, count, .read, alignment: element, crossing: &crossing) {
            buffer.copyMemory(from: p, byteCount: count)
            return true
        }
        guard crossing else { return false }
        let first = 4096 - Int(va & 0xFFF)
        guard let a = slowPointer(va, 1, .read, unprivileged: false, aligned: false),
              let b = slowPointer(va &+ UInt64(first), 1, .read, unprivileged: false, aligned: false) else { return false }
        buffer.copyMemory(from: a, byteCount: first)
        (buffer + first).copyMemory(from: b, byteCount: count - first)
        return true
    }

    /// Writes `count` bytes from `buffer` at `va` (elements of `element` bytes); false on a
    /// fault, with nothing written.
    func storeBytes(_ va: UInt64, _ count: Int, from buffer: UnsafeRawPointer, element: Int = 0) -> Bool {
        var crossing = false
        if let p = pointer(va, count, .write, alignment: element, crossing: &crossing) {
            p.copyMemory(from: buffer, byteCount: count)
            return true
        }
        guard crossing else { return false }
        let first = 4096 - Int(va & 0xFFF)
        guard let a = slowPointer(va, 1, .write, unprivileged: false, aligned: false),
              let b = slowPointer(va &+ UInt64(first), 1, .write, unprivileged: false, aligned: false) else { return false }
        a.copyMemory(from: buffer, byteCount: first)
        b.copyMemory(from: buffer + first, byteCount: count - first)
        return true
    }
}
