/// What EL2 made of a guest's hypercall (`kvm_handle_pvm_hvc64` and, for the calls it does not
/// handle, the host's `kvm_smccc_call_handler`): the registers the guest resumes with, where
/// the answer came from, and what the host must do first.
public struct GuestHypercall: Equatable, Sendable, CustomStringConvertible {
    /// x0..x3 when the guest resumes; nil when the guest re-executes the HVC (fault-then-retry:
    /// the host resolves `action` first) or never resumes (CPU_OFF, SYSTEM_OFF, ...).
    public var results: SMCCCRegisters?
    /// EL2 answered the call, or it exited to the host, whose answer the guest gets.
    public var site: HypercallSite
    /// What the host does before the guest resumes.
    public var action: HypercallAction
    /// The EL2 transition the call ran, if any, for traces.
    public var transition: GuestTransition?

    public init(results: SMCCCRegisters?, site: HypercallSite, action: HypercallAction = .none,
                transition: GuestTransition? = nil) {
        self.results = results
        self.site = site
        self.action = action
        self.transition = transition
    }

    /// Answered at EL2 with `x0`, x1..x3 = 0, as `smccc_set_retval(vcpu, val[0], 0, 0, 0)`.
    static func el2(_ x0: UInt64, _ x1: UInt64 = 0, _ x2: UInt64 = 0, _ x3: UInt64 = 0,
                    transition: GuestTransition? = nil) -> GuestHypercall {
        GuestHypercall(results: SMCCCRegisters(x0, x1, x2, x3), site: .el2, transition: transition)
    }

    /// Answered by the host.
    static func host(_ results: SMCCCRegisters?, _ action: HypercallAction = .none) -> GuestHypercall {
        GuestHypercall(results: results, site: .host, action: action)
    }

    public var description: String {
        var text = results.map { "x0=\(hex($0.x0)) x1=\(hex($0.x1)) x2=\(hex($0.x2)) x3=\(hex($0.x3))" } ?? "no return"
        text += " (\(site == .el2 ? "answered at EL2" : "exit to host"))"
        if action != .none { text += " host: \(action)" }
        return text
    }
}

/// Where a hypercall was answered.
public enum HypercallSite: String, Sendable {
    /// `kvm_handle_pvm_hvc64` handled it (or the hyp vectors' workaround fast path).
    case el2
    /// It exited to the host (`handled = false`), which answered it.
    case host
}

/// What the host must do for a hypercall before the guest goes on.
public enum HypercallAction: Equatable, Sendable, CustomStringConvertible {
    case none
    /// Fault-then-retry: resolve a stage-2 fault on each page of `[ipa, ipa + pages)` (mainline's
    /// fake data abort for MEM_SHARE of an untouched page; Android's MAP request), then let the
    /// guest run the HVC again. `syndrome` is the abort EL2 made up, when it made one.
    case faultIn(IPA, pages: UInt64, syndrome: FakeAbort?)
    /// The VM's memcache ran dry (an MMIO guard annotation needs tables): top it up and let the
    /// guest run the HVC again (Android's `pkvm_request_vcpu_memcache`).
    case topUpMemcache
    /// PSCI CPU_ON succeeded: start vCPU `vcpu` at `entry` with `context` in its first
    /// argument register, MMU off.
    case cpuOn(vcpu: Int, entry: UInt64, context: UInt64)
    /// PSCI CPU_OFF: this vCPU stops until a CPU_ON.
    case cpuOff
    /// PSCI CPU_SUSPEND, handled as WFI: the vCPU may wait for an interrupt, then resumes.
    case suspend
    /// PSCI SYSTEM_OFF / SYSTEM_OFF2: the machine powers off.
    case systemOff
    /// PSCI SYSTEM_RESET / SYSTEM_RESET2: the machine resets.
    case systemReset
    /// Android MEM_RELINQUISH of a protected guest's page: EL2 zeroed it and gave it to the
    /// host, which drops its pin and treats the frame as ballooned out.
    case relinquished(GFN, PhysAddr)
    /// Android's host answering MEM_RELINQUISH of a non-protected guest (`pkvm_host_reclaim_page`):
    /// the host takes the page back from the guest.
    case reclaim(GFN)
    /// KVM PTP: the host fills x0..x3 with the wall clock and the virtual (false) or physical
    /// (true) counter, each split in 32-bit halves (`kvm_ptp_get_time`).
    case readClock(physical: Bool)
    /// TRNG RND32 / RND64: the host fills the result registers with `bits` random bits
    /// (`kvm_trng_do_rnd`).
    case entropy(bits: Int, wide: Bool)

    public var description: String {
        switch self {
        case .none: "none"
        case let .faultIn(ipa, pages, syndrome):
            "fault in \(pages) page\(pages == 1 ? "" : "s") at IPA \(ipa), then replay the HVC"
                + (syndrome.map { " (\($0))" } ?? "")
        case .topUpMemcache: "top up the memcache, then replay the HVC"
        case let .cpuOn(vcpu, entry, context): "power on vCPU \(vcpu) at \(hex(entry)), x0=\(hex(context))"
        case .cpuOff: "power this vCPU off"
        case .suspend: "suspend (WFI)"
        case .systemOff: "system off"
        case .systemReset: "system reset"
        case let .relinquished(gfn, pa): "unpin relinquished gfn \(gfn) (PA \(pa))"
        case let .reclaim(gfn): "reclaim gfn \(gfn) from the guest"
        case let .readClock(physical): "read the wall clock and the \(physical ? "physical" : "virtual") counter"
        case let .entropy(bits, _): "fill \(bits) random bits"
        }
    }
}

/// The data abort EL2 fabricates for MEM_SHARE of a page the guest never touched
/// (`__pkvm_memshare_page_req`, arch/arm64/kvm/hyp/nvhe/pkvm.c, Linux v7.1-rc4): what the
/// host's abort handler reads in ESR_EL2, HPFAR_EL2 and FAR_EL2.
public struct FakeAbort: Equatable, Sendable, CustomStringConvertible {
    public let esr: UInt64
    public let hpfar: UInt64
    public let far: UInt64

    /// EC 0x24 (data abort from a lower EL), WnR, DFSC 0x07 (translation fault, level 3); HPFAR
    /// with NS set and the IPA's frame in bits [..:4]; FAR 0.
    public init(ipa: IPA) {
        esr = 0x24 << 26 | 1 << 6 | 0x07
        hpfar = (1 << 63 | ipa.rawValue >> 8) & ~0xF
        far = 0
    }

    public var description: String { "ESR_EL2=\(hex(esr)) HPFAR_EL2=\(hex(hpfar)) FAR_EL2=\(hex(far))" }
}

/// The ownership transition a guest hypercall ran, and how it ended: what the trace records.
public struct GuestTransition: Equatable, Sendable {
    /// pKVM's name without prefix: "guest_share_host", "guest_unshare_host", ...
    public let name: String
    public let gfn: GFN
    /// Pages asked for.
    public let pages: UInt64
    /// Pages done, on success.
    public let done: UInt64
    public let error: HypError?
}
