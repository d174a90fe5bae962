extension Hypervisor {
    /// VTTBR_EL2 and VTCR_EL2 as EL2 programs them before it enters one of `vm`'s vCPUs (pKVM's
    /// `__load_stage2`: VTTBR_EL2 = VMID << 48 | the PGD's physical address, VTCR_EL2 from the
    /// stage-2 geometry, Arm ARM D23.2.183-184): what a CPU that walks the guest's stage 2
    /// itself needs. Nil for a VM that does not exist.
    public func stage2Registers(vm handle: VMHandle) -> (vttbr: UInt64, vtcr: UInt64)? {
        guard let vm = vm(handle) else { return nil }
        return (UInt64(vm.vmid.rawValue) << 48 | vm.stage2.root.rawValue, geometry.vtcr(physBits: geometry.ipaBits))
    }
}
