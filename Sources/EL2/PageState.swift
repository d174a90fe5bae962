/// A party's view of one page, as pKVM's `enum pkvm_page_state` (newest mainline values).
///
/// `noPage` is stored explicitly for the host and the hypervisor; for a guest it is inferred
/// from an invalid stage-2 entry, `poison` from a POISONED invalid entry and `mmio` from an
/// MMIO guard note.
public enum PageState: UInt8, Sendable, CaseIterable, CustomStringConvertible {
    /// Owned by this party and accessible only to it (`PKVM_PAGE_OWNED`).
    case owned = 0
    /// Owned and accessible; at least one other party can access it too (`PKVM_PAGE_SHARED_OWNED`).
    case sharedOwned = 1
    /// Accessible but owned by someone else (`PKVM_PAGE_SHARED_BORROWED`).
    case sharedBorrowed = 2
    /// No access (`PKVM_NOPAGE`).
    case noPage = 3
    /// Guest-only meta-state for a page the host force-reclaimed (`PKVM_POISON`).
    case poison = 4
    /// Guest-only meta-state for an IPA Android's MMIO guard has marked for MMIO
    /// (`PKVM_NOPAGE | PKVM_MMIO`: an invalid entry equal to `KVM_INVALID_PTE_MMIO_NOTE`). No
    /// page may be donated or shared there.
    case mmio = 5

    /// True for the states in which the party may access the page.
    @inline(__always) public var isAccessible: Bool { rawValue <= 2 }

    /// The name pKVM's enum uses without its prefix, as `pvm model` prints it.
    public var description: String {
        switch self {
        case .owned: "OWNED"
        case .sharedOwned: "SHARED_OWNED"
        case .sharedBorrowed: "SHARED_BORROWED"
        case .noPage: "NOPAGE"
        case .poison: "POISON"
        case .mmio: "MMIO"
        }
    }
}
