import EL2
import Inspection
import ModelScript

/// `pvm inspect --highlight PAGE`: a PFN ("0x80010", "pfn:0x80010"), a physical address
/// ("pa:0x80010000") or a guest frame ("gfn:0x10": every page that backs it, one per VM).
enum HighlightFlag {
    case pfn(UInt64)
    case gfn(UInt64)

    init?(_ text: String) {
        let lower = text.lowercased()
        for (prefix, make) in [("pfn:", { HighlightFlag.pfn($0) }), ("pa:", { HighlightFlag.pfn($0 >> 12) }),
                               ("gfn:", { HighlightFlag.gfn($0) })] as [(String, (UInt64) -> HighlightFlag)]
            where lower.hasPrefix(prefix) {
            guard let n = NumberParser.unsigned(Substring(lower.dropFirst(prefix.count))), n < 1 << 52 else { return nil }
            self = make(n)
            return
        }
        guard let n = NumberParser.unsigned(Substring(lower)), n < 1 << 52 else { return nil }
        self = .pfn(n)
    }

    func pages(in snapshot: InspectionSnapshot) -> [PFN] {
        switch self {
        case let .pfn(p): snapshot.index(of: PFN(p)) == nil ? [] : [PFN(p)]
        case let .gfn(g): snapshot.pages(gfn: GFN(g))
        }
    }
}
