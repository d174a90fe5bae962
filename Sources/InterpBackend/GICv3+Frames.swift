import VMM

/// The GICv3's memory-mapped frames (IHI 0069 12.8, 12.10, 12.11): the distributor's 64 KiB,
/// and per CPU a redistributor's RD_base and SGI_base frames (64 KiB each). Registers the
/// architecture makes RAZ/WI with affinity routing (the distributor's copies of SGI and PPI
/// state, ITARGETSR), and those of LPIs and security, read as zero and ignore writes.
extension GICv3 {
    /// The bit-per-INTID register banks, at the same offsets in the distributor and in
    /// SGI_base (IHI 0069 12.9).
    enum Bank: UInt64 {
        case group = 0x080, setEnable = 0x100, clearEnable = 0x180, setPending = 0x200, clearPending = 0x280
        case setActive = 0x300, clearActive = 0x380
    }

    /// GICD_PIDR2 / GICR_PIDR2: ArchRev 3 (bits 7:4), what Linux's gic_of_init checks.
    static let peripheralID2: UInt64 = 0x3B
    /// GICD_IIDR / GICR_IIDR: implementer Arm (0x43B).
    static let implementer: UInt64 = 0x0100_043B

    /// A 32-bit read of a bit bank for INTIDs `first ..< first + 32` as `cpu` sees them.
    func readBank(_ s: inout State, _ bank: Bank, first: Int, cpu: Int) -> UInt64 {
        var value: UInt64 = 0
        for bit in 0 ..< 32 {
            let on = withInterrupt(&s, cpu: cpu, first + bit) { irq -> Bool in
                switch bank {
                case .group: return irq.group1
                case .setEnable, .clearEnable: return irq.enabled
                case .setPending, .clearPending: return irq.pending
                case .setActive, .clearActive: return irq.active
                }
            } ?? false
            if on { value |= 1 << UInt64(bit) }
        }
        return value
    }

    /// A 32-bit write to a bit bank: set and clear banks act on the 1 bits; the group bank
    /// takes the whole value.
    func writeBank(_ s: inout State, _ bank: Bank, first: Int, cpu: Int, value: UInt64) {
        for bit in 0 ..< 32 {
            let one = value & (1 << UInt64(bit)) != 0
            guard one || bank == .group else { continue }
            _ = withInterrupt(&s, cpu: cpu, first + bit) { irq in
                switch bank {
                case .group: irq.group1 = one
                case .setEnable: irq.enabled = true
                case .clearEnable: irq.enabled = false
                case .setPending: irq.latched = true
                case .clearPending: irq.latched = false
                case .setActive: irq.active = true
                case .clearActive: irq.active = false
                }
            }
        }
    }

    /// A register shared by the distributor (SPIs, `first >= 32`) and SGI_base (`first == 0`):
    /// the banks, IPRIORITYR (a byte per INTID) and ICFGR (two bits per INTID, bit 1 = edge).
    func readShared(_ s: inout State, _ offset: UInt64, base: Int, cpu: Int, limit: Int = GICv3.intidLimit) -> UInt64? {
        func at(_ intid: Int) -> Int { intid < limit ? intid : Int.max }
        switch offset {
        case 0x080 ..< 0x400:
            guard let bank = Bank(rawValue: offset & ~0x7F) else { return nil }
            return readBank(&s, bank, first: base + Int(offset & 0x7F) * 8, cpu: cpu)
        case 0x400 ..< 0x800:
            var value: UInt64 = 0
            for byte in 0 ..< 4 {
                let p = withInterrupt(&s, cpu: cpu, at(base + Int(offset - 0x400) + byte)) { $0.priority } ?? 0
                value |= UInt64(p) << UInt64(8 * byte)
            }
            return value
        case 0xC00 ..< 0xD00:
            var value: UInt64 = 0
            for field in 0 ..< 16 {
                let edge = withInterrupt(&s, cpu: cpu, at(base + Int(offset - 0xC00) * 4 + field)) { $0.edge } ?? false
                if edge { value |= 2 << UInt64(2 * field) }
            }
            return value
        default:
            return nil
        }
    }

    func writeShared(_ s: inout State, _ offset: UInt64, base: Int, cpu: Int, size: Int, value: UInt64,
                     limit: Int = GICv3.intidLimit) {
        func at(_ intid: Int) -> Int { intid < limit ? intid : Int.max }
        switch offset {
        case 0x080 ..< 0x400:
            guard let bank = Bank(rawValue: offset & ~0x7F) else { return }
            writeBank(&s, bank, first: base + Int(offset & 0x7F) * 8, cpu: cpu, value: value)
        case 0x400 ..< 0x800:
            // Byte-accessible (IHI 0069 12.9.21); a redistributor's stop at INTID 31.
            for byte in 0 ..< min(size, 8) {
                let p = UInt8(truncatingIfNeeded: value >> UInt64(8 * byte)) & Self.priorityMask
                _ = withInterrupt(&s, cpu: cpu, at(base + Int(offset - 0x400) + byte)) { $0.priority = p }
            }
        case 0xC00 ..< 0xD00:
            for field in 0 ..< 16 {
                let intid = base + Int(offset - 0xC00) * 4 + field
                guard intid >= 16 else { continue }  // SGIs are always edge-triggered
                _ = withInterrupt(&s, cpu: cpu, at(intid)) { $0.edge = value & (2 << UInt64(2 * field)) != 0 }
            }
        default:
            break
        }
    }

    // MARK: Distributor

    func distributorRead(_ offset: UInt64) -> UInt64 {
        state.withLock { s -> UInt64 in
            switch offset {
            case 0x0000: return UInt64(s.control) | 1 << 4 | 1 << 6        // CTLR: ARE, DS
            case 0x0004: return UInt64(Self.intidLimit / 32 - 1) | 9 << 19  // TYPER: ITLinesNumber, IDbits
            case 0x0008: return Self.implementer
            case 0xFFE8: return Self.peripheralID2
            case 0x6100 ..< 0x6100 + UInt64(Self.spiCount) * 8:
                let route = s.spis[Int(offset - 0x6100) / 8].route
                return offset & 4 == 0 ? route & 0xFFFF_FFFF : route >> 32
            default:
                // SGIs and PPIs live in the redistributors: the distributor's first word of each
                // bank, and their priorities and configuration, are RAZ/WI.
                if offset >= 0x080, offset < 0x400, offset & 0x7F == 0 { return 0 }
                if offset >= 0x400, offset < 0x420 { return 0 }
                if offset >= 0xC00, offset < 0xC08 { return 0 }
                return readShared(&s, offset, base: 0, cpu: 0) ?? 0
            }
        }
    }

    func distributorWrite(_ offset: UInt64, size: Int, value: UInt64) {
        state.withLock { s in
            switch offset {
            case 0x0000: s.control = UInt32(truncatingIfNeeded: value) & 3
            case 0x6100 ..< 0x6100 + UInt64(Self.spiCount) * 8:
                let i = Int(offset - 0x6100) / 8
                // Any access width: the bytes written replace those at their offset.
                let shift = (offset & 7) * 8
                let mask = (size >= 8 ? UInt64.max : (UInt64(1) << UInt64(8 * size)) - 1) << shift
                let route = (s.spis[i].route & ~mask) | ((value << shift) & mask)
                s.spis[i].route = route & 0xFF_80FF_FFFF
            default:
                if offset >= 0x080, offset < 0x400, offset & 0x7F == 0 { return }
                if offset >= 0x400, offset < 0x420 { return }
                if offset >= 0xC00, offset < 0xC08 { return }
                writeShared(&s, offset, base: 0, cpu: 0, size: size, value: value)
            }
            updateAll(&s)
        }
    }

    // MARK: Redistributors

    /// GICR_TYPER: the CPU's affinity in 63:32, its number in 23:8, Last (bit 4) on the last.
    func redistributorType(_ cpu: Int) -> UInt64 {
        let a = affinities[cpu]
        let affinity = (a >> 32 & 0xFF) << 24 | (a & 0xFF_FFFF)
        return affinity << 32 | UInt64(cpu) << 8 | (cpu == cpuCount - 1 ? 1 << 4 : 0)
    }

    func redistributorRead(cpu: Int, _ offset: UInt64) -> UInt64 {
        state.withLock { s -> UInt64 in
            switch offset {
            case 0x0004: return Self.implementer
            case 0x0008: return redistributorType(cpu) & 0xFFFF_FFFF
            case 0x000C: return redistributorType(cpu) >> 32
            case 0x0014: return s.cpus[cpu].asleep ? 0b110 : 0
            case 0xFFE8: return Self.peripheralID2
            case 0x1_0000 ..< 0x2_0000:
                let o = offset - 0x1_0000
                guard o < 0xC08 else { return 0 }
                if o >= 0x084, o < 0x400, o & 0x7F != 0 { return 0 }
                if o >= 0x420, o < 0xC00 { return 0 }
                return readShared(&s, o, base: 0, cpu: cpu, limit: 32) ?? 0
            default: return 0
            }
        }
    }

    func redistributorWrite(cpu: Int, _ offset: UInt64, size: Int, value: UInt64) {
        state.withLock { s in
            switch offset {
            case 0x0014: s.cpus[cpu].asleep = value & 2 != 0
            case 0x1_0000 ..< 0x2_0000:
                let o = offset - 0x1_0000
                guard o < 0xC08 else { return }
                if o >= 0x084, o < 0x400, o & 0x7F != 0 { return }
                if o >= 0x420, o < 0xC00 { return }
                writeShared(&s, o, base: 0, cpu: cpu, size: size, value: value, limit: 32)
            default: return
            }
            update(&s, cpu: cpu)
        }
    }

    /// The distributor and redistributor frames as MMIO devices, for the machine's bus.
    public func devices(distributor: UInt64, redistributors: UInt64, stride: UInt64)
        -> [(base: UInt64, size: UInt64, device: any MMIODevice)] {
        [(distributor, 0x1_0000, GICDistributorFrame(gic: self)),
         (redistributors, stride * UInt64(cpuCount), GICRedistributorFrames(gic: self, stride: stride))]
    }
}

/// The distributor's 64 KiB, as one MMIO device (64-bit accesses split in two 32-bit ones).
final class GICDistributorFrame: MMIODevice {
    let name = "gicd"
    let gic: GICv3
    init(gic: GICv3) { self.gic = gic }

    func read(offset: UInt64, size: Int) -> UInt64 {
        let word = gic.distributorRead(offset & ~3)
        let value = size == 8 ? word | gic.distributorRead((offset & ~3) + 4) << 32 : word >> (8 * (offset & 3))
        return size >= 8 ? value : value & ((1 << UInt64(8 * size)) - 1)
    }

    func write(offset: UInt64, size: Int, value: UInt64) {
        if offset >= 0x6100 || (offset >= 0x400 && offset < 0x800) {
            gic.distributorWrite(offset, size: size, value: value)  // IROUTER, IPRIORITYR: any width
        } else if size == 8 {
            gic.distributorWrite(offset & ~3, size: 4, value: value & 0xFFFF_FFFF)
            gic.distributorWrite((offset & ~3) + 4, size: 4, value: value >> 32)
        } else {
            gic.distributorWrite(offset & ~3, size: 4, value: value << (8 * (offset & 3)))
        }
    }
}

/// Every CPU's redistributor (RD_base then SGI_base, `stride` bytes a CPU), as one MMIO device.
final class GICRedistributorFrames: MMIODevice {
    let name = "gicr"
    let gic: GICv3
    let stride: UInt64
    init(gic: GICv3, stride: UInt64) {
        self.gic = gic
        self.stride = stride
    }

    func read(offset: UInt64, size: Int) -> UInt64 {
        let cpu = Int(offset / stride), o = offset % stride
        guard cpu < gic.cpuCount else { return 0 }
        let word = gic.redistributorRead(cpu: cpu, o & ~3)
        let value = size == 8 ? word | gic.redistributorRead(cpu: cpu, (o & ~3) + 4) << 32 : word >> (8 * (o & 3))
        return size >= 8 ? value : value & ((1 << UInt64(8 * size)) - 1)
    }

    func write(offset: UInt64, size: Int, value: UInt64) {
        let cpu = Int(offset / stride), o = offset % stride
        guard cpu < gic.cpuCount else { return }
        if o >= 0x1_0400, o < 0x1_0420 {
            gic.redistributorWrite(cpu: cpu, o, size: size, value: value)
        } else if size == 8 {
            gic.redistributorWrite(cpu: cpu, o & ~3, size: 4, value: value & 0xFFFF_FFFF)
            gic.redistributorWrite(cpu: cpu, (o & ~3) + 4, size: 4, value: value >> 32)
        } else {
            gic.redistributorWrite(cpu: cpu, o & ~3, size: 4, value: value << (8 * (o & 3)))
        }
    }
}
