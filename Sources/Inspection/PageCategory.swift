import EL2

/// What a cell of the ownership picture shows: one colour per owner and state. Guests get one
/// colour each (up to 8, then the palette repeats), lighter when the guest shares the page.
public enum PageCategory: Sendable, Hashable {
    /// Host OWNED, nobody else can reach it.
    case host
    /// The host owns it and shares it with a guest (a non-protected guest's memory).
    case hostSharedWithGuest
    /// The host owns it and shares it with EL2 (`__pkvm_host_share_hyp`).
    case hostSharedWithHyp
    /// The host owns it and shares it with another party (FF-A).
    case hostSharedOther
    /// EL2 owns it: carveout or donated page with no recorded use.
    case hyp
    /// EL2 owns it as a page-table page (host, guest or SMMU stage-2; stream table).
    case hypTable
    /// EL2 owns it as a free page in a table pool or a memcache.
    case hypPool
    /// EL2 owns it as a VM's metadata.
    case hypVMMetadata
    /// Guest `vm` (index into `OwnershipMap.vms`) owns it privately.
    case guestPrivate(vm: Int)
    /// Guest `vm` owns it and shares it with the host (MEM_SHARE).
    case guestShared(vm: Int)
    /// The host may not touch it and no one maps it: a dying guest's page waiting for reclaim.
    case unreachable

    /// Classifies one page of `map`.
    public init(_ page: PageSummary, in map: OwnershipMap) {
        // A VM torn down since the capture began gets an index of its own ("vm #n").
        func index(_ h: VMHandle) -> Int { map.vms.firstIndex { $0.handle == h } ?? map.vms.count }
        switch page.owner {
        case let .guest(h, _):
            self = page.guestState == .sharedOwned || page.host == .sharedBorrowed ? .guestShared(vm: index(h)) : .guestPrivate(vm: index(h))
        case .hyp:
            switch page.use {
            case .hostTable, .guestTable, .iommuTable, .streamTable: self = .hypTable
            case .hostPoolFree, .guestPoolFree, .iommuPoolFree: self = .hypPool
            case .vmMetadata: self = .hypVMMetadata
            case .none: self = .hyp
            }
        case .host, .notRAM:
            if page.host == .sharedOwned {
                if page.guestState == .sharedBorrowed { self = .hostSharedWithGuest }
                else if page.hyp == .sharedBorrowed { self = .hostSharedWithHyp }
                else { self = .hostSharedOther }
            } else if page.host == .noPage {
                self = .unreachable
            } else {
                self = .host
            }
        }
    }

    /// One character per category, for the data a page embeds: guests are digits (private) and
    /// capitals (shared) by VM index modulo 8.
    public var code: Character {
        switch self {
        case .host: "h"
        case .hostSharedWithGuest: "s"
        case .hostSharedWithHyp: "y"
        case .hostSharedOther: "f"
        case .hyp: "x"
        case .hypTable: "t"
        case .hypPool: "p"
        case .hypVMMetadata: "m"
        case let .guestPrivate(vm): Character(UnicodeScalar(UInt8(ascii: "0") + UInt8(vm % 8)))
        case let .guestShared(vm): Character(UnicodeScalar(UInt8(ascii: "A") + UInt8(vm % 8)))
        case .unreachable: "u"
        }
    }

    /// The CSS class of the category's cells.
    public var cssClass: String { "c-\(code)" }

    /// Palette: host in greys and blues, EL2 in ambers, guests in distinct hues.
    static let guestColours = ["#2e9d4f", "#8e44ad", "#c0392b", "#16a085", "#d35400", "#2c3e94", "#7f8c1d", "#b03a78"]
    static let guestSharedColours = ["#9fdcad", "#d2a8e3", "#efa79f", "#94dccd", "#f5bf93", "#a3add9", "#d4dc94", "#e5a5c6"]

    public var colour: String {
        switch self {
        case .host: "#d5dbe3"
        case .hostSharedWithGuest: "#5b8fd6"
        case .hostSharedWithHyp: "#9ab8e6"
        case .hostSharedOther: "#b9c9e8"
        case .hyp: "#f2b134"
        case .hypTable: "#c8741a"
        case .hypPool: "#f7dd9c"
        case .hypVMMetadata: "#a85a12"
        case let .guestPrivate(vm): Self.guestColours[vm % 8]
        case let .guestShared(vm): Self.guestSharedColours[vm % 8]
        case .unreachable: "#555555"
        }
    }

    /// What the legend says.
    public func label(_ map: OwnershipMap) -> String {
        func vm(_ i: Int) -> String { i < map.vms.count ? "vm \(map.vms[i].handle)" : "vm #\(i)" }
        return switch self {
        case .host: "host OWNED"
        case .hostSharedWithGuest: "host, shared with a guest"
        case .hostSharedWithHyp: "host, shared with EL2"
        case .hostSharedOther: "host, shared (FF-A)"
        case .hyp: "EL2 (carveout, donated)"
        case .hypTable: "EL2 page table"
        case .hypPool: "EL2 pool / memcache (free)"
        case .hypVMMetadata: "EL2 VM metadata"
        case let .guestPrivate(i): "\(vm(i)) private"
        case let .guestShared(i): "\(vm(i)) shared with host"
        case .unreachable: "unreachable (awaiting reclaim)"
        }
    }

    /// The categories `map` uses, in legend order.
    static func present(in categories: [PageCategory], _ map: OwnershipMap) -> [PageCategory] {
        var fixed: [PageCategory] = [.host, .hostSharedWithGuest, .hostSharedWithHyp, .hostSharedOther, .hyp, .hypTable,
                                     .hypPool, .hypVMMetadata]
        for i in 0 ..< max(map.vms.count, 1) { fixed += [.guestPrivate(vm: i), .guestShared(vm: i)] }
        fixed.append(.unreachable)
        let used = Set(categories)
        return fixed.filter(used.contains)
    }
}

/// Text that is safe inside XML character data and attribute values.
public func xmlEscaped(_ s: String) -> String {
    var o = ""
    o.reserveCapacity(s.utf8.count)
    for c in s.unicodeScalars {
        switch c {
        case "&": o += "&amp;"
        case "<": o += "&lt;"
        case ">": o += "&gt;"
        case "\"": o += "&quot;"
        default:
            if c.value < 0x20 && c != "\n" && c != "\t" { o += " " } else { o.unicodeScalars.append(c) }
        }
    }
    return o
}
