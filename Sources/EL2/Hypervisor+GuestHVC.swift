/// The guest hypercall ABI: what a guest's `HVC #0` gets, call for call, as the profile's tree
/// answers it. docs/abi.md has the whole table with the source of every answer.
///
/// The path of an HVC on arm64 pKVM, which this file follows:
/// 1. The hyp vectors' fast path (arch/arm64/kvm/hyp/hyp-entry.S, `el1_sync`): the Spectre
///    workaround calls return at once, for every guest.
/// 2. For a protected VM, `kvm_handle_pvm_hvc64` (arch/arm64/kvm/hyp/nvhe/pkvm.c): mainline
///    handles FEATURES, HYP_MEMINFO, MEM_SHARE and MEM_UNSHARE; Android 6.12 much more
///    (`androidProtectedCall`). Non-protected VMs have no EL2 handler in either tree.
/// 3. Everything else exits to the host, whose `kvm_smccc_call_handler` (hypercalls.c) and
///    `kvm_psci_call` (psci.c) answer (`hostCall`).
extension Hypervisor {
    /// Handles a hypercall from vCPU `index` of `vm` with registers `r`. Never fails: a call
    /// from a VM or vCPU that does not exist gets NOT_SUPPORTED.
    public func guestHypercall(vm handle: VMHandle, vcpu index: Int, _ r: SMCCCRegisters) -> GuestHypercall {
        switch r.functionID {
        case SMCCCFunction.archWorkaround1.rawValue, SMCCCFunction.archWorkaround2.rawValue,
             SMCCCFunction.archWorkaround3.rawValue:
            // wa_epilogue: x0 = 0 and x1 cleared by the compare; x2, x3 as they were.
            return .el2(SMCCCResult.success, 0, r.x2, r.x3)
        default:
            break
        }
        guard let vm = vm(handle), index >= 0, index < vm.vcpuCount else { return .host(SMCCCRegisters(SMCCCResult.notSupported)) }
        guard vm.isProtected else { return hostCall(vm, vcpu: index, r) }
        switch profile {
        case .mainline: return mainlineProtectedCall(vm, vcpu: index, r)
        case .android: return androidProtectedCall(vm, vcpu: index, r)
        }
    }

    // MARK: Mainline (Linux v7.1-rc4)

    /// `kvm_handle_pvm_hvc64`, mainline: four calls at EL2, each answering x1..x3 = 0, the rest
    /// to the host unmodified.
    private func mainlineProtectedCall(_ vm: GuestVM, vcpu: Int, _ r: SMCCCRegisters) -> GuestHypercall {
        switch SMCCCFunction(rawValue: r.functionID) {
        case .vendorHypFeatures:
            return .el2(1 << UInt64(VendorHypFeature.features) | 1 << UInt64(VendorHypFeature.hypMemInfo)
                        | 1 << UInt64(VendorHypFeature.memShare) | 1 << UInt64(VendorHypFeature.memUnshare))
        case .hypMemInfo:
            return .el2(r.x1 | r.x2 | r.x3 != 0 ? SMCCCResult.invalidParameter : pageSize)
        case .memShare:
            guard r.x2 | r.x3 == 0 else { return .el2(SMCCCResult.invalidParameter) }
            return mainlineMemShare(vm, ipa: IPA(r.x1))
        case .memUnshare:
            guard r.x2 | r.x3 == 0 else { return .el2(SMCCCResult.invalidParameter) }
            // `pkvm_memunshare_call`: unaligned, or any error of the transition → -3.
            guard IPA(r.x1).isPageAligned else { return .el2(SMCCCResult.invalidParameter) }
            let gfn = IPA(r.x1).gfn
            do {
                try guestUnshareHost(vm: vm.handle, gfn: gfn)
                return .el2(SMCCCResult.success, transition: GuestTransition(name: "guest_unshare_host", gfn: gfn, pages: 1,
                                                                              done: 1, error: nil))
            } catch {
                return .el2(SMCCCResult.invalidParameter, transition: GuestTransition(
                    name: "guest_unshare_host", gfn: gfn, pages: 1, done: 0, error: error))
            }
        default:
            return hostCall(vm, vcpu: vcpu, r)
        }
    }

    /// `pkvm_memshare_call`: unaligned → -3; `__pkvm_guest_share_host` 0 → 0; -ENOENT (nothing
    /// mapped yet) → `__pkvm_memshare_page_req`: a made-up write translation fault at the IPA
    /// and ELR_EL2 rewound, so the host faults the page in and the guest runs the HVC again;
    /// any other error → -3.
    private func mainlineMemShare(_ vm: GuestVM, ipa: IPA) -> GuestHypercall {
        guard ipa.isPageAligned else { return .el2(SMCCCResult.invalidParameter) }
        let gfn = ipa.gfn
        do {
            try guestShareHost(vm: vm.handle, gfn: gfn)
            return .el2(SMCCCResult.success, transition: GuestTransition(name: "guest_share_host", gfn: gfn, pages: 1,
                                                                          done: 1, error: nil))
        } catch .ENOENT {
            return GuestHypercall(results: nil, site: .host, action: .faultIn(ipa, pages: 1, syndrome: FakeAbort(ipa: ipa)),
                                  transition: GuestTransition(name: "guest_share_host", gfn: gfn, pages: 1, done: 0,
                                                              error: .ENOENT))
        } catch {
            return .el2(SMCCCResult.invalidParameter, transition: GuestTransition(
                name: "guest_share_host", gfn: gfn, pages: 1, done: 0, error: error))
        }
    }

    // MARK: Android (common kernel android16-6.12)

    /// `kvm_handle_pvm_hvc64`, Android 6.12 (as of 6.12.74): discovery, the MMIO guard, the
    /// range forms of MEM_SHARE / MEM_UNSHARE and MEM_RELINQUISH at EL2; PSCI in
    /// `pkvm_handle_psci` (`androidPSCI`). Every unhandled ID ends in PSCI's NOT_SUPPORTED.
    private func androidProtectedCall(_ vm: GuestVM, vcpu: Int, _ r: SMCCCRegisters) -> GuestHypercall {
        switch SMCCCFunction(rawValue: r.functionID) {
        case .version:
            return .el2(SMCCCConstant.smcccVersion1_2)
        case .vendorHypUID:
            return .el2(SMCCCConstant.kvmUID0, SMCCCConstant.kvmUID1, SMCCCConstant.kvmUID2, SMCCCConstant.kvmUID3)
        case .vendorHypFeatures:
            // Bits 0 and 2-11; no PTP. (6.12.93 also sets DEV_REQ_PWR, bit 60 in x1.)
            var bits: UInt64 = 1 << UInt64(VendorHypFeature.features)
            for bit in VendorHypFeature.hypMemInfo ... VendorHypFeature.mmioRangeGuardUnmap { bits |= 1 << UInt64(bit) }
            return .el2(bits)
        case .mmioGuardEnroll:
            vm.lock.withLock { _ in vm.mmioGuardEnrolled = true }
            return .el2(SMCCCResult.success)
        case .mmioGuardInfo, .hypMemInfo:
            // `pkvm_meminfo_call`: x1..x3 must be 0; the granule and KVM_FUNC_HAS_RANGE.
            guard r.x1 | r.x2 | r.x3 == 0 else { return .el2(SMCCCResult.invalidParameter) }
            return .el2(pageSize, SMCCCConstant.hasRange)
        case .mmioGuardMap:
            // The legacy form: one page; x2 and x3 are not looked at.
            return installIOGuard(vm, ipa: IPA(r.x1), pages: 1)
        case .mmioRangeGuardMap:
            guard r.x3 == 0 else { return .el2(SMCCCResult.invalidParameter) }
            return installIOGuard(vm, ipa: IPA(r.x1), pages: r.x2)
        case .mmioGuardUnmap:
            return removeIOGuard(vm, pages: 1)
        case .mmioRangeGuardUnmap:
            guard r.x3 == 0 else { return .el2(SMCCCResult.invalidParameter, r.x2) }
            return removeIOGuard(vm, pages: r.x2)
        case .memShare, .memUnshare:
            return androidMemShare(vm, r, share: r.functionID == SMCCCFunction.memShare.rawValue)
        case .memRelinquish:
            return androidRelinquish(vm, r)
        case .trngVersion, .trngFeatures, .trngGetUUID, .trngRandom32, .trngRandom64:
            // Forwarded to EL3 when the platform has a TRNG (`pkvm_forward_trng`); pvm's has none.
            return .el2(SMCCCResult.notSupported)
        default:
            if Self.isFFACall(r.functionID) {
                // `kvm_guest_ffa_handler`: pvm has no FF-A secure world behind its proxy.
                return .el2(SMCCCResult.notSupported)
            }
            return androidPSCI(vm, vcpu: vcpu, r)
        }
    }

    /// `is_ffa_call`: a fast call of the standard owner with function number 0x60-0xFF.
    static func isFFACall(_ id: UInt32) -> Bool {
        id & 0x8000_0000 != 0 && (id >> 24) & 0x3F == 4 && (0x60 ... 0xFF).contains(id & 0xFFFF)
    }

    /// `pkvm_memshare_call` / `pkvm_memunshare_call`, Android: x2 is a page count (0 means 1),
    /// x3 must be 0 and x1 page aligned (-3, x1 = 0). Success returns x1 = pages done. MEM_SHARE
    /// of pages never mapped (-EFAULT) asks the host to map the range and replays the HVC;
    /// every other error (and every MEM_UNSHARE error) is -3.
    private func androidMemShare(_ vm: GuestVM, _ r: SMCCCRegisters, share: Bool) -> GuestHypercall {
        let pages = r.x2 == 0 ? 1 : r.x2
        let name = share ? "guest_share_host" : "guest_unshare_host"
        guard r.x3 == 0, IPA(r.x1).isPageAligned else { return .el2(SMCCCResult.invalidParameter) }
        let ipa = IPA(r.x1)
        do {
            let done = share ? try guestShareHostRange(vm, ipa: ipa, pages: pages)
                             : try guestUnshareHostRange(vm, ipa: ipa, pages: pages)
            return .el2(SMCCCResult.success, done,
                        transition: GuestTransition(name: name, gfn: ipa.gfn, pages: pages, done: done, error: nil))
        } catch {
            let transition = GuestTransition(name: name, gfn: ipa.gfn, pages: pages, done: 0, error: error)
            if share, error == .EFAULT {
                // `pkvm_request_map`: the host maps [ipa, ipa + pages), then the HVC replays.
                return GuestHypercall(results: nil, site: .host, action: .faultIn(ipa, pages: pages, syndrome: nil),
                                      transition: transition)
            }
            return .el2(SMCCCResult.invalidParameter, transition: transition)
        }
    }

    /// `pkvm_memrelinquish_call`, Android: x2 and x3 must be 0 (-3). `__pkvm_guest_relinquish_to_host`
    /// (with 6.12.74's alignment check first): nothing mapped → 0 at EL2; the page zeroed and given
    /// back → exit to the host with its address, and the guest sees x0 = 0 with x1..x3 its own;
    /// any error → -3.
    private func androidRelinquish(_ vm: GuestVM, _ r: SMCCCRegisters) -> GuestHypercall {
        guard r.x2 | r.x3 == 0, IPA(r.x1).isPageAligned else { return .el2(SMCCCResult.invalidParameter) }
        let gfn = IPA(r.x1).gfn
        do {
            guard let pa = try guestRelinquish(vm: vm.handle, gfn: gfn) else {
                return .el2(SMCCCResult.success, transition: GuestTransition(name: "guest_relinquish_to_host", gfn: gfn,
                                                                              pages: 1, done: 0, error: nil))
            }
            return GuestHypercall(results: SMCCCRegisters(SMCCCResult.success, r.x1, r.x2, r.x3), site: .host,
                                  action: .relinquished(gfn, pa),
                                  transition: GuestTransition(name: "guest_relinquish_to_host", gfn: gfn, pages: 1,
                                                              done: 1, error: nil))
        } catch {
            return .el2(SMCCCResult.invalidParameter, transition: GuestTransition(
                name: "guest_relinquish_to_host", gfn: gfn, pages: 1, done: 0, error: error))
        }
    }
}
