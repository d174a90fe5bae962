/// A whole-state snapshot of EL2, for fault injection and exhaustive checking: two snapshots are
/// equal exactly when no page's metadata, no stage-2 (host, guest, IOMMU), no VM's state and no
/// byte of RAM differs.
extension Hypervisor {
    public struct Snapshot: Equatable, Sendable {
        /// Every page's `HypPage`.
        public let pages: [HypPage]
        /// The host stage-2, every VM (its stage-2 and state) and every IOMMU domain, as text.
        public let tables: String
        /// FNV-1a of every byte of RAM.
        public let ramDigest: UInt64
    }

    /// Takes every lock in order and records the whole state.
    public func snapshot() -> Snapshot {
        vmTableLock.withLock { _ in
            hostLock.withLock { _ in
                hypLock.withLock { _ in
                    var pages: [HypPage] = []
                    pages.reserveCapacity(memory.pageCount)
                    for i in 0 ..< memory.pageCount { pages.append(vmemmap[i]) }
                    var text = hostStage2.dump()
                    for vm in vmTable.compactMap({ $0 }) {
                        let psci = vm.psci.withLock { "\($0.power) \($0.loaded)" }
                        vm.lock.withLock { _ in
                            text += "\nvm \(vm.handle) dying=\(vm.isDying) refs=\(vm.references) accepts=\(vm.acceptsPages) "
                                + "enrolled=\(vm.mmioGuardEnrolled) psci=\(psci)\n" + vm.stage2.dump()
                        }
                    }
                    if let smmu {
                        smmu.configLock.withLock { _ in
                            for d in smmu.domains.values.sorted(by: { $0.id < $1.id }) where d.vm == nil {
                                text += "\n\(d.id) \(d.kind) streams=\(d.streams.sorted())\n" + d.table.dump()
                            }
                            for s in 0 ..< SMMU.streamCount {
                                let ste = smmu.readSTE(StreamID(UInt32(s)), memory: memory)
                                if ste.isValid { text += "\nSTE \(s) \(ste)" }
                            }
                            text += "\nsmmu pool=\(smmu.pool.count) pgds=\(smmu.pgdSlots.count)"
                        }
                    }
                    return Snapshot(pages: pages, tables: text, ramDigest: ramDigest())
                }
            }
        }
    }

    /// FNV-1a over every byte of RAM, a word at a time.
    func ramDigest() -> UInt64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        var word = [UInt64](repeating: 0, count: Int(pageSize / 8))
        for i in 0 ..< memory.pageCount {
            word.withUnsafeMutableBytes { memory.read(memory.pageAddress(index: i), into: $0) }
            for w in word { h = (h ^ w) &* 0x100_0000_01b3 }
        }
        return h
    }
}
