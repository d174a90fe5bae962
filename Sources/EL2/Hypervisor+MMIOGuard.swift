/// Android's MMIO guard (android16-6.12: arch/arm64/kvm/hyp/nvhe/pkvm.c `pkvm_install_ioguard_page`,
/// mem_protect.c `__pkvm_install_ioguard_page`, `__pkvm_check_ioguard_page`): a protected guest
/// that enrolled names the IPAs it will use for MMIO, and EL2 lets the host emulate only
/// accesses there. The record lives in the guest's own stage-2, as an invalid last-level entry
/// equal to `KVM_INVALID_PTE_MMIO_NOTE` (0x800) per guarded page, so it costs the VMM nothing
/// and nothing can later be mapped there. Mainline has no MMIO guard.
extension Hypervisor {
    /// `pkvm_install_ioguard_page` for MMIO_GUARD_MAP (one page) and MMIO_RGUARD_MAP (`pages`):
    ///
    /// In order: not enrolled (-EINVAL); `ipa` not page aligned (-EINVAL); any part of the range
    /// past the IPA space (-EINVAL); a walk of at most 256 leaf entries, every one invalid and
    /// empty or already a guard note (a mapped page gives -EPERM; pvm also refuses a poisoned
    /// entry, whose marker the note would erase); the guarded end is the smaller of the request
    /// and the entries walked (an empty range is -EINVAL). Then each page is annotated with
    /// tables from the VM's memcache; when it runs dry the call stops there and reports the
    /// pages guarded so far, or, before the first, asks the host to top it up and replay
    /// (`pkvm_request_vcpu_memcache`). Android's annotation can stop part-way the same; pvm
    /// never leaves a page half-annotated. Success: x0 = 0, x1 = pages guarded; an error: x0 =
    /// -3, x1 = 0.
    func installIOGuard(_ vm: GuestVM, ipa: IPA, pages: UInt64) -> GuestHypercall {
        let outcome = vm.lock.withLock { _ -> Result<UInt64, HypError> in
            guard vm.mmioGuardEnrolled, ipa.isPageAligned else { return .failure(.EINVAL) }
            guard pages <= UInt64.max >> pageShift else { return .failure(.EINVAL) }
            let (requestEnd, wraps) = ipa.rawValue.addingReportingOverflow(pages << pageShift)
            guard !wraps, ipa.rawValue < geometry.limit, requestEnd <= geometry.limit else { return .failure(.EINVAL) }
            var a = ipa.rawValue
            var covered = a
            var entries = 0
            while a < requestEnd, entries < Self.maxRequestEntries {
                let (d, level) = vm.stage2.leaf(at: IPA(a))
                guard !d.isValid, d.isZero || d.isMMIOGuardNote else { return .failure(.EPERM) }
                let granule = Stage2Geometry.blockSize(level: level)
                a = (a & ~(granule - 1)) + granule
                covered = a
                entries += 1
            }
            let end = min(requestEnd, covered)
            guard ipa.rawValue < end else { return .failure(.EINVAL) }
            var page = ipa.rawValue
            while page < end {
                // A page may need a table per level below the PGD; stop short of running dry.
                let short = (try? faults.check(.mmioGuardTables)) == nil
                    || vm.stage2.memcache.count + vm.stage2.freeTables.count < geometry.minMemcachePages
                if short { return page == ipa.rawValue ? .failure(.ENOMEM) : .success((page - ipa.rawValue) >> pageShift) }
                vm.stage2.apply(.annotate(.mmioGuardNote), start: page, end: page + pageSize)
                page += pageSize
            }
            return .success((end - ipa.rawValue) >> pageShift)
        }
        switch outcome {
        case let .success(guarded):
            return .el2(SMCCCResult.success, guarded)
        case .failure(.ENOMEM):
            return GuestHypercall(results: nil, site: .host, action: .topUpMemcache)
        case .failure:
            return .el2(SMCCCResult.invalidParameter, 0)
        }
    }

    /// `pkvm_remove_ioguard_page` for MMIO_GUARD_UNMAP and MMIO_RGUARD_UNMAP: in 6.12 a no-op
    /// kept for older guests (MAP is idempotent). Not enrolled: x0 = -3; else 0. Both return
    /// x1 = `pages`.
    func removeIOGuard(_ vm: GuestVM, pages: UInt64) -> GuestHypercall {
        let enrolled = vm.lock.withLock { _ in vm.mmioGuardEnrolled }
        return .el2(enrolled ? SMCCCResult.success : SMCCCResult.invalidParameter, pages)
    }

    /// `__pkvm_check_ioguard_page`: may the host emulate a guest's MMIO access of `size` bytes
    /// at `ipa`? Always, for a guest that has not enrolled (or is not protected, or under the
    /// mainline profile, which has no guard). Otherwise every page the access touches must hold
    /// a guard note at the last level.
    public func guestMMIOAllowed(vm handle: VMHandle, ipa: IPA, size: Int = 1) -> Bool {
        guard profile == .android, let vm = vm(handle), vm.isProtected else { return true }
        return vm.lock.withLock { _ -> Bool in
            guard vm.mmioGuardEnrolled else { return true }
            let last = ipa.rawValue &+ UInt64(max(size, 1) - 1)
            for a in [ipa.rawValue, last] {
                guard a >= ipa.rawValue, a < geometry.limit else { return false }
                let (d, level) = vm.stage2.leaf(at: IPA(a))
                guard level == Stage2Geometry.lastLevel, d.isMMIOGuardNote else { return false }
            }
            return true
        }
    }

    /// Whether the VM enrolled in the MMIO guard (`KVM_ARCH_FLAG_MMIO_GUARD`).
    public func isMMIOGuardEnrolled(vm handle: VMHandle) -> Bool {
        guard let vm = vm(handle) else { return false }
        return vm.lock.withLock { _ in vm.mmioGuardEnrolled }
    }
}
