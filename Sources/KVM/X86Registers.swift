import CKVM

/// The x86-64 general registers (`struct kvm_regs`).
public struct X86Registers: Equatable, Sendable {
    public var rax: UInt64 = 0, rbx: UInt64 = 0, rcx: UInt64 = 0, rdx: UInt64 = 0
    public var rsi: UInt64 = 0, rdi: UInt64 = 0, rsp: UInt64 = 0, rbp: UInt64 = 0
    public var r8: UInt64 = 0, r9: UInt64 = 0, r10: UInt64 = 0, r11: UInt64 = 0
    public var r12: UInt64 = 0, r13: UInt64 = 0, r14: UInt64 = 0, r15: UInt64 = 0
    public var rip: UInt64 = 0
    /// Bit 1 is reserved and must be set.
    public var rflags: UInt64 = 0x2

    public init() {}

    init(_ r: kvm_regs) {
        (rax, rbx, rcx, rdx, rsi, rdi, rsp, rbp) = (r.rax, r.rbx, r.rcx, r.rdx, r.rsi, r.rdi, r.rsp, r.rbp)
        (r8, r9, r10, r11, r12, r13, r14, r15) = (r.r8, r.r9, r.r10, r.r11, r.r12, r.r13, r.r14, r.r15)
        (rip, rflags) = (r.rip, r.rflags)
    }

    var kvm: kvm_regs {
        kvm_regs(rax: rax, rbx: rbx, rcx: rcx, rdx: rdx, rsi: rsi, rdi: rdi, rsp: rsp, rbp: rbp,
                 r8: r8, r9: r9, r10: r10, r11: r11, r12: r12, r13: r13, r14: r14, r15: r15,
                 rip: rip, rflags: rflags)
    }
}

/// One x86 segment register as KVM sees it (`struct kvm_segment`).
public struct X86Segment: Equatable, Sendable {
    public var base: UInt64 = 0
    public var limit: UInt32 = 0
    public var selector: UInt16 = 0
    public var type: UInt8 = 0
    public var present = false, dpl: UInt8 = 0, db = false, s = false, l = false, g = false, avl = false
    public var unusable = false

    public init(base: UInt64 = 0, limit: UInt32 = 0, selector: UInt16 = 0, type: UInt8 = 0, present: Bool = false,
                dpl: UInt8 = 0, db: Bool = false, s: Bool = false, l: Bool = false, g: Bool = false) {
        (self.base, self.limit, self.selector, self.type) = (base, limit, selector, type)
        (self.present, self.dpl, self.db, self.s, self.l, self.g) = (present, dpl, db, s, l, g)
    }

    init(_ k: kvm_segment) {
        (base, limit, selector, type) = (k.base, k.limit, k.selector, k.type)
        (present, dpl, db, s, l, g, avl, unusable) = (k.present != 0, k.dpl, k.db != 0, k.s != 0, k.l != 0,
                                                       k.g != 0, k.avl != 0, k.unusable != 0)
    }

    func store(into k: inout kvm_segment) {
        (k.base, k.limit, k.selector, k.type) = (base, limit, selector, type)
        k.present = present ? 1 : 0
        k.dpl = dpl
        k.db = db ? 1 : 0
        k.s = s ? 1 : 0
        k.l = l ? 1 : 0
        k.g = g ? 1 : 0
        k.avl = avl ? 1 : 0
        k.unusable = unusable ? 1 : 0
    }
}

/// The x86 system state KVM_SET_SREGS takes: segments, descriptor tables, control registers.
/// Fields pvm does not name (the interrupt bitmap, LDT) keep the values KVM reported.
public struct X86SpecialRegisters: Sendable {
    var raw: kvm_sregs

    init(_ raw: kvm_sregs) { self.raw = raw }

    public var cs: X86Segment { get { X86Segment(raw.cs) } set { newValue.store(into: &raw.cs) } }
    public var ds: X86Segment { get { X86Segment(raw.ds) } set { newValue.store(into: &raw.ds) } }
    public var es: X86Segment { get { X86Segment(raw.es) } set { newValue.store(into: &raw.es) } }
    public var fs: X86Segment { get { X86Segment(raw.fs) } set { newValue.store(into: &raw.fs) } }
    public var gs: X86Segment { get { X86Segment(raw.gs) } set { newValue.store(into: &raw.gs) } }
    public var ss: X86Segment { get { X86Segment(raw.ss) } set { newValue.store(into: &raw.ss) } }
    public var tr: X86Segment { get { X86Segment(raw.tr) } set { newValue.store(into: &raw.tr) } }
    public var ldt: X86Segment { get { X86Segment(raw.ldt) } set { newValue.store(into: &raw.ldt) } }
    public var gdt: (base: UInt64, limit: UInt16) {
        get { (raw.gdt.base, raw.gdt.limit) }
        set { (raw.gdt.base, raw.gdt.limit) = newValue }
    }
    public var idt: (base: UInt64, limit: UInt16) {
        get { (raw.idt.base, raw.idt.limit) }
        set { (raw.idt.base, raw.idt.limit) = newValue }
    }
    public var cr0: UInt64 { get { raw.cr0 } set { raw.cr0 = newValue } }
    public var cr3: UInt64 { get { raw.cr3 } set { raw.cr3 = newValue } }
    public var cr4: UInt64 { get { raw.cr4 } set { raw.cr4 = newValue } }
    public var efer: UInt64 { get { raw.efer } set { raw.efer = newValue } }
}
