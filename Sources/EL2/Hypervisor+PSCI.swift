/// PSCI for guests, in the two places pKVM puts it: at EL2 for Android's protected VMs
/// (`pkvm_handle_psci`, arch/arm64/kvm/hyp/nvhe/pkvm.c, android16-6.12) and in the host's
/// arch/arm64/kvm/psci.c (`kvm_psci_call`) for everyone else. vCPUs are named by MPIDR
/// (`MPIDR(vcpu:)`), their power states kept in `GuestVM.psci`.
extension Hypervisor {
    /// The 32-bit forms' arguments, as `kvm_psci_narrow_to_32bit` leaves them: x1..x3 cut to
    /// their low 32 bits, in the guest's registers too.
    static func narrowed(_ r: SMCCCRegisters) -> SMCCCRegisters {
        SMCCCRegisters(r.x0, r.x1 & 0xFFFF_FFFF, r.x2 & 0xFFFF_FFFF, r.x3 & 0xFFFF_FFFF)
    }

    /// The vCPU whose MPIDR affinity is `target` (`kvm_mpidr_to_vcpu`), or nil.
    func vcpu(_ vm: GuestVM, mpidr target: UInt64) -> Int? {
        let wanted = target & SMCCCConstant.mpidrHardwareID
        for i in 0 ..< vm.vcpuCount where MPIDR(vcpu: i).hardwareID == wanted { return i }
        return nil
    }

    /// `psci_affinity_mask`: the MPIDR bits AFFINITY_INFO compares at `level` (0-3), or nil.
    static func affinityMask(level: UInt64) -> UInt64? {
        guard level <= 3 else { return nil }
        return SMCCCConstant.mpidrHardwareID & ~((1 << (level * 8)) - 1)
    }

    // MARK: Android, at EL2

    /// `pkvm_handle_psci`: VERSION (1.1), FEATURES and AFFINITY_INFO answered at EL2; CPU_ON
    /// checked at EL2 (the target goes ON_PENDING), then forwarded; CPU_OFF, CPU_SUSPEND,
    /// SYSTEM_OFF, SYSTEM_RESET and SYSTEM_RESET2 forwarded. A forwarded call returns only x0 to
    /// the guest (`handle_pvm_entry_psci`): x1..x3 keep what the guest passed. Anything else,
    /// MIGRATE_INFO_TYPE included, is NOT_SUPPORTED.
    func androidPSCI(_ vm: GuestVM, vcpu index: Int, _ call: SMCCCRegisters) -> GuestHypercall {
        let id = call.functionID
        let is32 = id == SMCCCFunction.psciCPUOn32.rawValue || id == SMCCCFunction.psciAffinityInfo32.rawValue
        let r = is32 ? Self.narrowed(call) : call
        switch SMCCCFunction(rawValue: id) {
        case .psciVersion:
            return .el2(SMCCCConstant.psciVersion1_1)
        case .psciFeatures:
            let supported: Set<SMCCCFunction> = [
                .psciVersion, .psciCPUSuspend32, .psciCPUSuspend, .psciCPUOff, .psciCPUOn32, .psciCPUOn,
                .psciAffinityInfo32, .psciAffinityInfo, .psciSystemOff, .psciSystemReset, .psciFeatures,
                .psciSystemReset2_32, .psciSystemReset2, .version,
            ]
            let feature = SMCCCFunction(rawValue: UInt32(truncatingIfNeeded: r.x1))
            return .el2(feature.map(supported.contains) == true ? SMCCCResult.psciSuccess : SMCCCResult.psciNotSupported)
        case .psciCPUOn32, .psciCPUOn:
            guard r.x1 & ~SMCCCConstant.mpidrHardwareID == 0, let target = vcpu(vm, mpidr: r.x1) else {
                return .el2(SMCCCResult.psciInvalidParameters)
            }
            let previous = vm.psci.withLock { p -> VCPUPowerState in
                let was = p.power[target]
                if was == .off { p.power[target] = .onPending }
                return was
            }
            switch previous {
            case .onPending: return .el2(SMCCCResult.psciOnPending)
            case .on: return .el2(SMCCCResult.psciAlreadyOn)
            case .off:
                // The host's kvm_psci_vcpu_on succeeds (the target is stopped on its side) and
                // returns 0; EL2 writes only x0 back.
                return .host(SMCCCRegisters(SMCCCResult.psciSuccess, r.x1, r.x2, r.x3),
                             .cpuOn(vcpu: target, entry: r.x2, context: r.x3))
            }
        case .psciAffinityInfo32, .psciAffinityInfo:
            guard r.x1 & ~SMCCCConstant.mpidrHardwareID == 0, let mask = Self.affinityMask(level: r.x2) else {
                return .el2(SMCCCResult.psciInvalidParameters)
            }
            let target = r.x1 & mask
            let states = vm.psci.withLock { p in
                (0 ..< vm.vcpuCount).filter { MPIDR(vcpu: $0).hardwareID & mask == target }.map { p.power[$0] }
            }
            if states.isEmpty { return .el2(SMCCCResult.psciInvalidParameters) }
            if states.contains(.on) { return .el2(SMCCCResult.affinityOn) }
            return .el2(states.contains(.onPending) ? SMCCCResult.affinityOnPending : SMCCCResult.affinityOff)
        case .psciCPUOff:
            vm.psci.withLock { $0.power[index] = .off }
            return .host(nil, .cpuOff)
        case .psciCPUSuspend32, .psciCPUSuspend:
            // Only x0 goes to the host, whose kvm_psci_call treats it as WFI and returns 0.
            return .host(SMCCCRegisters(SMCCCResult.psciSuccess, r.x1, r.x2, r.x3), .suspend)
        case .psciSystemOff:
            return .host(nil, .systemOff)
        case .psciSystemReset:
            return .host(nil, .systemReset)
        case .psciSystemReset2_32, .psciSystemReset2:
            // Forwarded with x0..x2; the host's PSCI 1.1 checks the reset type.
            if let refused = Self.systemReset2Refusal(r) {
                return .host(SMCCCRegisters(refused, r.x1, r.x2, r.x3))
            }
            return .host(nil, .systemReset)
        default:
            return .el2(SMCCCResult.psciNotSupported)
        }
    }

    /// psci.c's SYSTEM_RESET2 check: `reset_type` (w1) must be SYSTEM_WARM_RESET (0) or a vendor
    /// type (bit 31 set), else INVALID_PARAMETERS; the cookie (x2) is not checked.
    static func systemReset2Refusal(_ r: SMCCCRegisters) -> UInt64? {
        let type = UInt32(truncatingIfNeeded: r.x1)
        return type == 0 || type >= 0x8000_0000 ? nil : SMCCCResult.psciInvalidParameters
    }

    // MARK: The host's psci.c

    /// `kvm_psci_call` for PSCI 1.`minor` (`kvm_psci_1_x_call`, then `kvm_psci_0_2_call`): what a
    /// guest's PSCI call gets from the host. Results have x1..x3 = 0 (`smccc_set_retval(val, 0,
    /// 0, 0)`). Mainline's host is PSCI 1.3 (`KVM_ARM_PSCI_LATEST` since 6.13), Android 6.12's 1.1.
    func hostPSCI(_ vm: GuestVM, vcpu index: Int, _ call: SMCCCRegisters, minor: UInt64) -> GuestHypercall {
        let id = call.functionID
        let narrow: Set<UInt32> = [SMCCCFunction.psciCPUOn32.rawValue, SMCCCFunction.psciAffinityInfo32.rawValue,
                                   SMCCCFunction.psciSystemSuspend32.rawValue, SMCCCFunction.psciSystemReset2_32.rawValue,
                                   SMCCCFunction.psciSystemOff2_32.rawValue]
        let r = narrow.contains(id) ? Self.narrowed(call) : call
        func answer(_ x0: UInt64, _ action: HypercallAction = .none) -> GuestHypercall {
            .host(SMCCCRegisters(x0), action)
        }
        switch SMCCCFunction(rawValue: id) {
        case .psciVersion:
            return answer(1 << 16 | minor)
        case .psciFeatures:
            let feature = SMCCCFunction(rawValue: UInt32(truncatingIfNeeded: r.x1))
            switch feature {
            case .psciVersion, .psciCPUSuspend32, .psciCPUSuspend, .psciCPUOff, .psciCPUOn32, .psciCPUOn,
                 .psciAffinityInfo32, .psciAffinityInfo, .psciMigrateInfoType, .psciSystemOff, .psciSystemReset,
                 .psciFeatures, .version:
                return answer(SMCCCResult.psciSuccess)
            case .psciSystemReset2_32, .psciSystemReset2:
                return answer(minor >= 1 ? SMCCCResult.psciSuccess : SMCCCResult.psciNotSupported)
            case .psciSystemOff2_32, .psciSystemOff2:
                return answer(minor >= 3 ? SMCCCConstant.systemOff2Hibernate : SMCCCResult.psciNotSupported)
            default:
                // SYSTEM_SUSPEND needs KVM_CAP_ARM_SYSTEM_SUSPEND, which pvm's VMM does not enable.
                return answer(SMCCCResult.psciNotSupported)
            }
        case .psciSystemReset2_32, .psciSystemReset2:
            guard minor >= 1 else { return answer(SMCCCResult.psciNotSupported) }
            if let refused = Self.systemReset2Refusal(r) { return answer(refused) }
            return .host(nil, .systemReset)
        case .psciSystemOff2_32, .psciSystemOff2:
            guard minor >= 3 else { return answer(SMCCCResult.psciNotSupported) }
            let type = UInt32(truncatingIfNeeded: r.x1)
            guard type <= 1, r.x2 == 0 else { return answer(SMCCCResult.psciInvalidParameters) }
            return .host(nil, .systemOff)
        case .psciCPUSuspend32, .psciCPUSuspend:
            // kvm_vcpu_wfi, then success: every power state is a standby that keeps registers.
            return answer(SMCCCResult.psciSuccess, .suspend)
        case .psciCPUOff:
            vm.psci.withLock { $0.power[index] = .off }
            return .host(nil, .cpuOff)
        case .psciCPUOn32, .psciCPUOn:
            // kvm_psci_vcpu_on: the target's affinity, the vCPU, then "not stopped" → ALREADY_ON.
            // The host never reports ON_PENDING: a started vCPU is RUNNABLE at once.
            guard r.x1 & ~SMCCCConstant.mpidrHardwareID == 0, let target = vcpu(vm, mpidr: r.x1) else {
                return answer(SMCCCResult.psciInvalidParameters)
            }
            let started = vm.psci.withLock { p -> Bool in
                guard p.power[target] == .off else { return false }
                p.power[target] = .on
                return true
            }
            guard started else { return answer(SMCCCResult.psciAlreadyOn) }
            return answer(SMCCCResult.psciSuccess, .cpuOn(vcpu: target, entry: r.x2, context: r.x3))
        case .psciAffinityInfo32, .psciAffinityInfo:
            guard r.x1 & ~SMCCCConstant.mpidrHardwareID == 0, let mask = Self.affinityMask(level: r.x2) else {
                return answer(SMCCCResult.psciInvalidParameters)
            }
            let target = r.x1 & mask
            let states = vm.psci.withLock { p in
                (0 ..< vm.vcpuCount).filter { MPIDR(vcpu: $0).hardwareID & mask == target }.map { p.power[$0] }
            }
            if states.isEmpty { return answer(SMCCCResult.psciInvalidParameters) }
            return answer(states.contains { $0 != .off } ? SMCCCResult.affinityOn : SMCCCResult.affinityOff)
        case .psciMigrateInfoType:
            return answer(SMCCCConstant.migrateInfoNoTrustedOS)
        case .psciSystemOff:
            return .host(nil, .systemOff)
        case .psciSystemReset:
            return .host(nil, .systemReset)
        default:
            return answer(SMCCCResult.psciNotSupported)
        }
    }
}
