import KVM
import VMM

/// The x86-64 boot state pvm gives a vCPU: straight into 64-bit long mode, no BIOS and no real
/// mode (as Firecracker and KVM's selftests do: Intel SDM vol. 3, 9.8.5 "Initializing IA-32e mode").
enum X86Boot {
    /// The GDT: null, kernel code (0x08) and data (0x10), a 16-byte TSS descriptor (0x18), and
    /// the user code (0x28, used as 0x2b) and data (0x30, used as 0x33) segments guests run in.
    static let gdtEntries: [UInt64] = [
        0, 0x00af_9b00_0000_ffff, 0x00cf_9300_0000_ffff,
        tssLimit | (tss << 16) | 0x8b << 40, 0,
        0x00af_fb00_0000_ffff, 0x00cf_f300_0000_ffff,
    ]
    /// `out $0xf1, %eax` is pvm's x86 stand-in for `HVC #0`; x0..x3 = rax, rbx, rcx, rdx.
    static let hypercallPort: UInt16 = 0xF1
    /// Guest frames the VMM writes before the first instruction and donates up front: the GDT,
    /// page tables and boot configuration (the CPU walks the tables before any exit could
    /// donate them).
    static let bootStructurePages: Range<UInt64> = 0x1 ..< 0x9
    static let codeSelector: UInt16 = 0x2b
    static let dataSelector: UInt16 = 0x33
    /// RFLAGS: interrupts off, IOPL 0. Bit 1 is reserved and set.
    static let rflags: UInt64 = 0x2

    /// The TSS, in the GDT's page: only its I/O permission bitmap matters. It lets ring 3 use
    /// the four ports a 32-bit `out $0xf1, %eax` covers (0xF1–0xF4, the hypercall conduit) and
    /// no other port.
    static let tss: UInt64 = GuestLayout.gdt + 0x800
    static let ioBitmapOffset: UInt64 = 0x68
    static let tssLimit: UInt64 = ioBitmapOffset + 32  // 256 ports, then the 0xff terminator

    static func tssBytes() -> [UInt8] {
        var t = [UInt8](repeating: 0, count: Int(tssLimit) + 1)
        t[0x66] = UInt8(ioBitmapOffset)
        for i in 0 ..< 33 { t[Int(ioBitmapOffset) + i] = 0xff }
        for port in Int(hypercallPort) ..< Int(hypercallPort) + 4 {
            t[Int(ioBitmapOffset) + port / 8] &= ~(1 << UInt8(port % 8))
        }
        return t
    }

    /// The pages the VMM writes before boot: GDT, PML4, PDPT, and four page directories that
    /// identity-map 0–4 GiB with 2 MiB pages (present, writable, user, executable).
    static func structures(memory: UInt64) -> [(UInt64, [UInt8])] {
        func bytes(_ words: [UInt64]) -> [UInt8] { words.flatMap { w in (0 ..< 8).map { UInt8(truncatingIfNeeded: w >> ($0 * 8)) } } }
        let present: UInt64 = 0x7, large: UInt64 = 0x80  // P | RW | US
        let pml4 = [GuestLayout.pdpt | present]
        let pdpt = (0 ..< 4).map { GuestLayout.pageDirectories + UInt64($0) * 0x1000 | present }
        let pds = (0 ..< 2048).map { UInt64($0) << 21 | present | large }
        return [(GuestLayout.gdt, bytes(gdtEntries)), (tss, tssBytes()), (GuestLayout.pml4, bytes(pml4)), (GuestLayout.pdpt, bytes(pdpt)),
                (GuestLayout.pageDirectories, bytes(pds))]
    }

    /// Long mode at CPL 3: paging on, PAE, NX, SSE enabled.
    ///
    /// Guests run in ring 3, allowed one I/O port by the TSS bitmap. Their code needs no
    /// privileged instruction (no interrupts, no page-table changes), and some KVM hosts emulate every ring-0 instruction
    /// of a guest that is not paravirtualized for them (kvm-pvm, the pagetable-based KVM of
    /// nested clouds, does: 444,000 emulated instructions to boot hello in ring 0, 13 in
    /// ring 3). On a VMX or SVM host ring 3 costs nothing either.
    static func specialRegisters(from current: X86SpecialRegisters) -> X86SpecialRegisters {
        var s = current
        let code = X86Segment(base: 0, limit: 0xffff_ffff, selector: codeSelector, type: 0xb, present: true, dpl: 3,
                              s: true, l: true, g: true)
        let data = X86Segment(base: 0, limit: 0xffff_ffff, selector: dataSelector, type: 0x3, present: true, dpl: 3,
                              db: true, s: true, g: true)
        s.cs = code
        (s.ds, s.es, s.fs, s.gs, s.ss) = (data, data, data, data, data)
        s.tr = X86Segment(base: tss, limit: UInt32(tssLimit), selector: 0x18, type: 0xb, present: true)
        // No LDT. KVM's reset LDTR is not a valid 64-bit state for VMX, which would make KVM
        // emulate every guest instruction (emulate_invalid_guest_state) instead of running it.
        var ldt = X86Segment()
        ldt.unusable = true
        s.ldt = ldt
        s.gdt = (GuestLayout.gdt, UInt16(gdtEntries.count * 8 - 1))
        s.idt = (0, 0)
        s.cr0 = 0x8000_0033  // PG | NE | ET | MP | PE
        s.cr3 = GuestLayout.pml4
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
        regs.rflags = rflags
        try vcpu.setRegisters(regs)
    }
}
