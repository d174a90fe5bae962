import CAArch64

/// The general-purpose loads and stores other than the four fast forms: every addressing
/// mode, pairs, literals, exclusives, load-acquire / store-release, and the LSE atomics
/// (Arm ARM C6.2). Exclusives and atomics are host atomics on the guest's bytes, so they are
/// atomic across vCPUs on different host threads.
extension AArch64CPU {
    /// The address of a single or pair access and the base register's new value, per
    /// `AddressingMode` (`Op.a`).
    @inline(__always)
    func effectiveAddress(_ op: Op) -> (address: UInt64, writeback: UInt64?) {
        let r = registers
        let base = r[Int(op.rn)]
        switch op.a & 3 {
        case AddressingMode.preIndex:
            let a = base &+ op.imm
            return (a, a)
        case AddressingMode.postIndex:
            return (base, base &+ op.imm)
        case AddressingMode.register:
            return (base &+ ALU.extend(r[Int(op.rm)], option: op.b, amount: op.c), nil)
        default:
            return (base &+ op.imm, nil)
        }
    }

    /// A loaded value widened as `ext` says (`LoadExtension`).
    @_transparent static func widen(_ value: UInt64, size: UInt8, ext: UInt8) -> UInt64 {
        switch ext {
        case LoadExtension.signTo64: return ALU.signExtend(value, bits: 8 << size)
        case LoadExtension.signTo32: return ALU.signExtend(value, bits: 8 << size) & 0xFFFF_FFFF
        default: return value
        }
    }

    func executeLoadStore(_ op: Op, pc: UInt64) -> Step {
        let r = registers
        let s = state
        let bytes = 1 << Int(op.size)
        switch op.kind {
        case .load, .store:
            let (va, writeback) = effectiveAddress(op)
            let unprivileged = op.a & AddressingMode.unprivileged != 0 && s.pointee.el == 1
            if op.kind == .load {
                guard let v = load(va, bytes, unprivileged: unprivileged) else { return .fault }
                r[Int(op.rd)] = Self.widen(v, size: op.size, ext: op.ra)
            } else {
                guard store(va, bytes, r[Int(op.rd)], unprivileged: unprivileged) else { return .fault }
            }
            if let writeback { r[Int(op.rn)] = writeback }
        case .loadPair, .storePair:
            let (va, writeback) = effectiveAddress(op)
            var buffer: (UInt64, UInt64) = (0, 0)
            let ok = withUnsafeMutableBytes(of: &buffer) { b -> Bool in
                if op.kind == .storePair {
                    Self.write(b.baseAddress!, bytes, r[Int(op.rd)])
                    Self.write(b.baseAddress! + bytes, bytes, r[Int(op.rm)])
                    return storeBytes(va, 2 * bytes, from: b.baseAddress!, element: bytes)
                }
                return loadBytes(va, 2 * bytes, into: b.baseAddress!, element: bytes)
            }
            guard ok else { return .fault }
            if op.kind == .loadPair {
                let first: UInt64, second: UInt64
                if bytes == 8 {
                    (first, second) = (UInt64(littleEndian: buffer.0), UInt64(littleEndian: buffer.1))
                } else {
                    let v = UInt64(littleEndian: buffer.0)
                    (first, second) = (v & 0xFFFF_FFFF, v >> 32)
                }
                r[Int(op.rd)] = Self.widen(first, size: op.size, ext: op.ra)
                r[Int(op.rm)] = Self.widen(second, size: op.size, ext: op.ra)
            }
            if let writeback { r[Int(op.rn)] = writeback }
        case .loadLiteral:
            guard let v = load(pc &+ op.imm, bytes) else { return .fault }
            r[Int(op.rd)] = Self.widen(v, size: op.size, ext: op.ra)
        case .loadAcquire, .storeRelease:
            let va = r[Int(op.rn)] &+ op.imm
            var crossing = false
            let access: AccessKind = op.kind == .loadAcquire ? .read : .write
            guard let p = pointer(va, bytes, access, aligned: true, crossing: &crossing) else { return .fault }
            if op.kind == .loadAcquire {
                let v: UInt64
                switch bytes {
                case 1: v = UInt64(pvm_load_acquire8(p))
                case 2: v = UInt64(pvm_load_acquire16(p))
                case 4: v = UInt64(pvm_load_acquire32(p))
                default: v = pvm_load_acquire64(p)
                }
                r[Int(op.rd)] = Self.widen(v, size: op.size, ext: op.ra)
            } else {
                let v = r[Int(op.rd)]
                switch bytes {
                case 1: pvm_store_release8(p, UInt8(truncatingIfNeeded: v))
                case 2: pvm_store_release16(p, UInt16(truncatingIfNeeded: v))
                case 4: pvm_store_release32(p, UInt32(truncatingIfNeeded: v))
                default: pvm_store_release64(p, v)
                }
            }
        case .loadExclusive, .loadExclusivePair:
            let pair = op.kind == .loadExclusivePair
            let total = pair ? 2 * bytes : bytes
            var crossing = false
            guard let p = pointer(r[Int(op.rn)], total, .read, aligned: true, crossing: &crossing) else { return .fault }
            s.pointee.exclusiveValid = true
            s.pointee.exclusiveAddress = UInt64(UInt(bitPattern: p))
            s.pointee.exclusiveSize = UInt8(total)
            if total == 16 {
                // A 16-byte single-copy-atomic snapshot: a compare-and-swap of the value with itself.
                var lo: UInt64 = 0, hi: UInt64 = 0
                _ = pvm_cas128(p, &lo, &hi, 0, 0)
                s.pointee.exclusiveValue = lo
                s.pointee.exclusiveValueHigh = hi
                r[Int(op.rd)] = lo
                r[Int(op.rm)] = hi
            } else {
                let v: UInt64
                switch total {
                case 1: v = UInt64(pvm_load_acquire8(p))
                case 2: v = UInt64(pvm_load_acquire16(p))
                case 4: v = UInt64(pvm_load_acquire32(p))
                default: v = pvm_load_acquire64(p)
                }
                s.pointee.exclusiveValue = v
                if pair {
                    r[Int(op.rd)] = v & 0xFFFF_FFFF
                    r[Int(op.rm)] = v >> 32
                } else {
                    r[Int(op.rd)] = v
                }
            }
        case .storeExclusive, .storeExclusivePair:
            let pair = op.kind == .storeExclusivePair
            let total = pair ? 2 * bytes : bytes
            var crossing = false
            guard let p = pointer(r[Int(op.rn)], total, .write, aligned: true, crossing: &crossing) else { return .fault }
            var stored = false
            if s.pointee.exclusiveValid, s.pointee.exclusiveAddress == UInt64(UInt(bitPattern: p)),
               s.pointee.exclusiveSize == UInt8(total) {
                let first = r[Int(op.rd)]
                let second = pair ? r[Int(op.rm)] : 0
                switch total {
                case 16:
                    var lo = s.pointee.exclusiveValue, hi = s.pointee.exclusiveValueHigh
                    stored = pvm_cas128(p, &lo, &hi, first, second)
                case 8:
                    var expected = s.pointee.exclusiveValue
                    stored = pvm_cas64(p, &expected, pair ? (first & 0xFFFF_FFFF) | (second << 32) : first)
                case 4:
                    var expected = UInt32(truncatingIfNeeded: s.pointee.exclusiveValue)
                    stored = pvm_cas32(p, &expected, UInt32(truncatingIfNeeded: first))
                case 2:
                    var expected = UInt16(truncatingIfNeeded: s.pointee.exclusiveValue)
                    stored = pvm_cas16(p, &expected, UInt16(truncatingIfNeeded: first))
                default:
                    var expected = UInt8(truncatingIfNeeded: s.pointee.exclusiveValue)
                    stored = pvm_cas8(p, &expected, UInt8(truncatingIfNeeded: first))
                }
            }
            s.pointee.exclusiveValid = false
            r[Int(op.ra)] = stored ? 0 : 1
        case .cas:
            var crossing = false
            guard let p = pointer(r[Int(op.rn)], bytes, .write, aligned: true, crossing: &crossing) else { return .fault }
            let compare = r[Int(op.rm)], new = r[Int(op.rd)]
            let old: UInt64
            switch bytes {
            case 1:
                var e = UInt8(truncatingIfNeeded: compare)
                _ = pvm_cas8(p, &e, UInt8(truncatingIfNeeded: new))
                old = UInt64(e)
            case 2:
                var e = UInt16(truncatingIfNeeded: compare)
                _ = pvm_cas16(p, &e, UInt16(truncatingIfNeeded: new))
                old = UInt64(e)
            case 4:
                var e = UInt32(truncatingIfNeeded: compare)
                _ = pvm_cas32(p, &e, UInt32(truncatingIfNeeded: new))
                old = UInt64(e)
            default:
                var e = compare
                _ = pvm_cas64(p, &e, new)
                old = e
            }
            r[Int(op.ra)] = old
        case .casp:
            // Rs:Rs+1 compared with and receiving the memory; Rt:Rt+1 the new value.
            let rs = Int(op.rm), rt = Int(op.rd)
            let pairBytes = 1 << Int(op.size)
            var crossing = false
            guard let p = pointer(r[Int(op.rn)], pairBytes, .write, aligned: true, crossing: &crossing) else { return .fault }
            let destination = { (slot: Int) -> Int in slot == 31 ? Int(RegisterFile.discard) : slot }
            if pairBytes == 16 {
                var lo = r[rs], hi = r[rs + 1]
                _ = pvm_cas128(p, &lo, &hi, r[rt], r[rt + 1])
                r[destination(rs)] = lo
                r[destination(rs + 1)] = hi
            } else {
                var e = (r[rs] & 0xFFFF_FFFF) | (r[rs + 1] << 32)
                _ = pvm_cas64(p, &e, (r[rt] & 0xFFFF_FFFF) | (r[rt + 1] << 32))
                r[destination(rs)] = e & 0xFFFF_FFFF
                r[destination(rs + 1)] = e >> 32
            }
        case .atomic, .swp:
            var crossing = false
            guard let p = pointer(r[Int(op.rn)], bytes, .write, aligned: true, crossing: &crossing) else { return .fault }
            let operand = r[Int(op.rm)]
            let old = Self.atomicUpdate(p, bytes: bytes) { current in
                op.kind == .swp ? operand : Self.atomicResult(op.a, current, operand, bytes: bytes)
            }
            r[Int(op.rd)] = old
        default:
            return .undefined
        }
        return .next
    }

    /// Applies `update` to the `bytes` at `p` atomically (a compare-and-swap loop); returns
    /// the old value, zero-extended.
    @inline(__always)
    static func atomicUpdate(_ p: UnsafeMutableRawPointer, bytes: Int, _ update: (UInt64) -> UInt64) -> UInt64 {
        switch bytes {
        case 1:
            var e = p.load(as: UInt8.self)
            while !pvm_cas8(p, &e, UInt8(truncatingIfNeeded: update(UInt64(e)))) {}
            return UInt64(e)
        case 2:
            var e = p.load(as: UInt16.self)
            while !pvm_cas16(p, &e, UInt16(truncatingIfNeeded: update(UInt64(e)))) {}
            return UInt64(e)
        case 4:
            var e = p.load(as: UInt32.self)
            while !pvm_cas32(p, &e, UInt32(truncatingIfNeeded: update(UInt64(e)))) {}
            return UInt64(e)
        default:
            var e = p.load(as: UInt64.self)
            while !pvm_cas64(p, &e, update(e)) {}
            return e
        }
    }

    /// LDADD, LDCLR, LDEOR, LDSET, LDSMAX, LDSMIN, LDUMAX, LDUMIN (`op` 0-7) of `bytes`-wide values.
    @inline(__always)
    static func atomicResult(_ op: UInt8, _ current: UInt64, _ operand: UInt64, bytes: Int) -> UInt64 {
        let bits = UInt8(8 * bytes)
        switch op {
        case 0: return current &+ operand
        case 1: return current & ~operand
        case 2: return current ^ operand
        case 3: return current | operand
        case 4, 5:
            let a = Int64(bitPattern: ALU.signExtend(current, bits: bits))
            let b = Int64(bitPattern: ALU.signExtend(operand, bits: bits))
            return UInt64(bitPattern: op == 4 ? max(a, b) : min(a, b))
        default:
            let a = current & ALU.ones(bits), b = operand & ALU.ones(bits)
            return op == 6 ? max(a, b) : min(a, b)
        }
    }
}
