import EL2

/// A script line that cannot be run: wrong operation, arguments or names. Reported with the
/// line number; the script goes on.
public struct ModelLineError: Error, Equatable, CustomStringConvertible {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// The arguments of one script line, with typed accessors that explain what is wrong.
struct ModelArguments {
    let operation: String
    let tokens: [Substring]
    let session: ModelSession

    var count: Int { tokens.count }

    private func token(_ i: Int, _ what: String) throws(ModelLineError) -> Substring {
        guard i < tokens.count else { throw ModelLineError("\(operation): missing \(what)") }
        return tokens[i]
    }

    /// A number (decimal or 0x-hex).
    func number(_ i: Int, _ what: String) throws(ModelLineError) -> UInt64 {
        let t = try token(i, what)
        guard let n = NumberParser.unsigned(t) else {
            throw ModelLineError("\(operation): \(what) '\(t)' is not a number (decimal or 0x-hex)")
        }
        return n
    }

    /// A page frame counted from the start of RAM, turned into an absolute PFN. Frames past the
    /// end of RAM are allowed (EL2 answers for them); only arithmetic overflow is refused.
    func pfn(_ i: Int) throws(ModelLineError) -> PFN {
        let n = try number(i, "PFN")
        let base = session.hypervisor.memory.ramStart.pfn.rawValue
        let (sum, overflow) = base.addingReportingOverflow(n)
        guard !overflow, sum <= UInt64.max >> pageShift else {
            throw ModelLineError("\(operation): PFN \(t(i)) is beyond any physical address")
        }
        return PFN(sum)
    }

    /// A guest frame number. Frames past the IPA limit are allowed (EL2 answers -ERANGE).
    func gfn(_ i: Int) throws(ModelLineError) -> GFN {
        let n = try number(i, "GFN")
        guard n <= UInt64.max >> pageShift else {
            throw ModelLineError("\(operation): GFN \(t(i)) is beyond any address")
        }
        return GFN(n)
    }

    /// A page count.
    func pages(_ i: Int) throws(ModelLineError) -> UInt64 { try number(i, "NR") }

    /// A VM name the script created.
    func vm(_ i: Int) throws(ModelLineError) -> VMHandle {
        let name = String(try token(i, "VM"))
        guard let h = session.vmNames[name] else {
            throw ModelLineError("\(operation): unknown VM '\(name)' (create it with vm_create \(name))")
        }
        if let owner = session.handleOwners[h], owner != name {
            throw ModelLineError("\(operation): VM '\(name)' was torn down; its handle \(h) now names '\(owner)'")
        }
        return h
    }

    /// Access rights: letters from `rwx`, or a raw KVM_PGTABLE_PROT value (so that bits outside
    /// RWX can be tried). Defaults to `rwx` when absent.
    func prot(_ i: Int) throws(ModelLineError) -> Stage2Permissions {
        guard i < tokens.count else { return .rwx }
        let t = tokens[i]
        if let p = Stage2Permissions(letters: String(t)) { return p }
        if let n = NumberParser.unsigned(t), n <= 0xFF { return Stage2Permissions(rawValue: UInt8(n)) }
        throw ModelLineError("\(operation): protection '\(t)' must be r, rw, rwx (any subset of rwx) or a number")
    }

    /// A stream ID (the SMMU checks the range itself).
    func stream(_ i: Int) throws(ModelLineError) -> StreamID {
        let n = try number(i, "SID")
        guard n <= UInt64(UInt32.max) else { throw ModelLineError("\(operation): SID \(n) does not fit 32 bits") }
        return StreamID(UInt32(n))
    }

    /// An IOMMU domain: `host` (the identity domain) or a number.
    func domain(_ i: Int) throws(ModelLineError) -> IOMMUDomainID {
        if i < tokens.count, tokens[i] == "host" || tokens[i] == "identity" { return .identity }
        let n = try number(i, "DOMAIN")
        guard n <= UInt64(UInt16.max) else { throw ModelLineError("\(operation): DOMAIN \(n) does not fit 16 bits") }
        return IOMMUDomainID(UInt16(n))
    }

    /// A device address: a number, or `pfn:N` for the address of RAM page N (what the identity
    /// domain maps there).
    func iova(_ i: Int) throws(ModelLineError) -> UInt64 {
        let t = try token(i, "IOVA")
        if t.hasPrefix("pfn:") {
            guard let n = NumberParser.unsigned(t.dropFirst(4)) else {
                throw ModelLineError("\(operation): IOVA '\(t)' is not pfn:N")
            }
            let base = session.hypervisor.memory.ramStart.pfn.rawValue
            let (sum, overflow) = base.addingReportingOverflow(n)
            guard !overflow, sum <= UInt64.max >> pageShift else { throw ModelLineError("\(operation): IOVA '\(t)' overflows") }
            return sum << pageShift
        }
        return try number(i, "IOVA")
    }

    private func t(_ i: Int) -> String { i < tokens.count ? String(tokens[i]) : "" }
}
