/// What the host kernel answers for the hypercalls EL2 does not handle:
/// `kvm_smccc_call_handler` (arch/arm64/kvm/hypercalls.c), `kvm_trng_call` (trng.c),
/// `kvm_hypercall_pv_features` (pvtime.c) and `kvm_psci_call` (psci.c). pvm models an arm64
/// host whose CPUs are not affected by Spectre v2, SSB or Spectre-BHB (as a Cortex-A55 or
/// A510), with no stolen-time region configured and no SMCCC filter installed by the VMM.
extension Hypervisor {
    /// The host's answer. Results carry x1..x3 = 0 unless the call returns more.
    func hostCall(_ vm: GuestVM, vcpu index: Int, _ r: SMCCCRegisters) -> GuestHypercall {
        let android = profile == .android
        let id = r.functionID
        func answer(_ x0: UInt64, _ x1: UInt64 = 0, _ x2: UInt64 = 0, _ x3: UInt64 = 0) -> GuestHypercall {
            .host(SMCCCRegisters(x0, x1, x2, x3))
        }
        switch SMCCCFunction(rawValue: id) {
        case .version:
            return answer(SMCCCConstant.smcccVersion1_1)
        case .archFeatures:
            switch SMCCCFunction(rawValue: UInt32(truncatingIfNeeded: r.x1)) {
            case .archWorkaround1, .archWorkaround3: return answer(SMCCCResult.workaroundUnaffected)
            case .archWorkaround2: return answer(SMCCCResult.notRequired)
            case .pvTimeFeatures: return answer(SMCCCResult.success)
            default: return answer(SMCCCResult.notSupported)
            }
        case .vendorHypUID:
            return answer(SMCCCConstant.kvmUID0, SMCCCConstant.kvmUID1, SMCCCConstant.kvmUID2, SMCCCConstant.kvmUID3)
        case .vendorHypFeatures:
            // The default vendor_hyp_bmap (FEATURES, PTP); vendor_hyp_bmap_2 (x2) is 0. Android's
            // host adds HYP_MEMINFO and MEM_RELINQUISH when pKVM is on.
            var bits: UInt64 = 1 << UInt64(VendorHypFeature.features) | 1 << UInt64(VendorHypFeature.ptp)
            if android { bits |= 1 << UInt64(VendorHypFeature.hypMemInfo) | 1 << UInt64(VendorHypFeature.memRelinquish) }
            return answer(bits)
        case .ptp:
            // kvm_ptp_get_time: w1 = 0 (virtual counter) or 1 (physical counter).
            let kind = UInt32(truncatingIfNeeded: r.x1)
            guard kind <= 1 else { return answer(SMCCCResult.notSupported) }
            return .host(nil, .readClock(physical: kind == 1))
        case .pvTimeFeatures, .pvTimeStolenTime:
            // Both need a stolen-time region (KVM_ARM_VCPU_PVTIME_CTRL), which pvm never sets.
            return answer(SMCCCResult.notSupported)
        case .trngVersion:
            return answer(SMCCCConstant.trngVersion1_0)
        case .trngFeatures:
            switch SMCCCFunction(rawValue: UInt32(truncatingIfNeeded: r.x1)) {
            case .trngVersion, .trngFeatures, .trngGetUUID, .trngRandom32, .trngRandom64: return answer(SMCCCResult.success)
            default: return answer(SMCCCResult.notSupported)
            }
        case .trngGetUUID:
            return answer(SMCCCConstant.trngUUID0, SMCCCConstant.trngUUID1, SMCCCConstant.trngUUID2, SMCCCConstant.trngUUID3)
        case .trngRandom32, .trngRandom64:
            let wide = id == SMCCCFunction.trngRandom64.rawValue
            let bits = UInt32(truncatingIfNeeded: r.x1)
            guard bits <= (wide ? 192 : 96) else { return answer(SMCCCResult.trngInvalidParameter) }
            return .host(nil, .entropy(bits: Int(bits), wide: wide))
        case .hypMemInfo where android:
            return answer(pageSize)
        case .memRelinquish where android:
            // pkvm_host_reclaim_page: the host takes the page at the IPA back; no check.
            return .host(SMCCCRegisters(SMCCCResult.success), .reclaim(IPA(r.x1).gfn))
        default:
            // kvm_smccc_default_allowed: the PSCI range goes to kvm_psci_call; everything else is
            // denied with NOT_SUPPORTED.
            if (id >> 24) & 0x3F == 4, id & 0xFFFF <= 0x1F {
                return hostPSCI(vm, vcpu: index, r, minor: android ? 1 : 3)
            }
            return answer(SMCCCResult.notSupported)
        }
    }
}
