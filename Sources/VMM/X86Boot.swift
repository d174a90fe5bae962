import KVM

/// The x86-64 boot state pvm gives a vCPU: straight into 64-bit long mode, no BIOS and no real
/// mode (as Firecracker and KVM's selftests do; ../shared/spec/kvm-uapi.md section 8).
enum X86Boot {
    /// The GDT: null, 64-bit code (selector 0x08), data (0x10), and a TSS descriptor (0x18) for
    /// KVM's task register check.
    static let gdtEntries: [UInt64] = [0, 0x00af_9b00_0000_ffff, 0x00cf_9300_0000_ffff, 0x0080_8b00_0000_0067]

    /// The pages the VMM writes before boot: GDT, PML4, PDPT, and four page directories that
    /// identity-map 0–4 GiB with 2 MiB pages (present, writable, executable).
    static func structures(memory: UInt64) -> [(UInt64, [UInt8])] {
        func bytes(_ words: [UInt64]) -> [UInt8] { words.flatMap { w in (0 ..< 8).map { UInt8(truncatingIfNeeded: w >> ($0 * 8)) } } }
        let present: UInt64 = 0x3, large: UInt64 = 0x80
        let pml4 = [GuestABI.pdpt | present]
        let pdpt = (0 ..< 4).map { GuestABI.pageDirectories + UInt64($0) * 0x1000 | present }
        let pds = (0 ..< 2048).map { UInt64($0) << 21 | present | large }
        return [(GuestABI.gdt, bytes(gdtEntries)), (GuestABI.pml4, bytes(pml4)), (GuestABI.pdpt, bytes(pdpt)),
                (GuestABI.pageDirectories, bytes(pds))]
    }

    /// Long-mode segments, paging on, PAE, NX, SSE enabled.
    static func specialRegisters(from current: X86SpecialRegisters) -> X86SpecialRegisters {
        var s = current
        let code = X86Segment(base: 0, limit: 0xffff_ffff, selector: 0x08, type: 0xb, present: true, s: true, l: true, g: true)
        let data = X86Segment(base: 0, limit: 0xffff_ffff, selector: 0x10, type: 0x3, present: true, db: true, s: true, g: true)
        s.cs = code
        (s.ds, s.es, s.fs, s.gs, s.ss) = (data, data, data, data, data)
        s.tr = X86Segment(base: 0, limit: 0x67, selector: 0x18, type: 0xb, present: true)
        s.gdt = (GuestABI.gdt, UInt16(gdtEntries.count * 8 - 1))
        s.idt = (0, 0)
        s.cr0 = 0x8000_0033  // PG | NE | ET | MP | PE
        s.cr3 = GuestABI.pml4
        s.cr4 = 0x620  // OSXMMEXCPT | OSFXSR | PAE
        s.efer = 0xd00  // NXE | LMA | LME
        return s
    }

    /// Puts `vcpu` in long mode at `rip` with the given first argument and stack.
    static func start(_ vcpu: KVMVCPU, rip: UInt64, rdi: UInt64, rsp: UInt64) throws(KVMError) {
        try vcpu.setSpecialRegisters(specialRegisters(from: try vcpu.specialRegisters()))
        var regs = X86Registers()
        regs.rip = rip
        regs.rdi = rdi
        regs.rsp = rsp
        try vcpu.setRegisters(regs)
    }
}
