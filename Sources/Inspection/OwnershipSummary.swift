import EL2
import Tracing

/// `pvm inspect`'s text output: runs of pages by owner and state, counts by kind, the marked
/// pages; and the same as one JSON object (`--json`), with addresses as "0x…" strings.
public struct OwnershipSummary: Sendable {
    public let snapshot: InspectionSnapshot

    public init(_ snapshot: InspectionSnapshot) { self.snapshot = snapshot }

    private var counts: [(PageCategory, Int)] {
        var counts: [PageCategory: Int] = [:]
        for c in snapshot.categories { counts[c, default: 0] += 1 }
        return PageCategory.present(in: Array(counts.keys), snapshot.map).map { ($0, counts[$0]!) }
    }

    private var dmaMapped: Int { snapshot.map.pages.count { !$0.dmaDomains.isEmpty } }

    public var text: String {
        let s = snapshot
        var o = "\(s.title)\n\(s.map.pages.count) pages in \(s.map.regions.map { "\($0)" }.joined(separator: ", "))\n"
        for run in s.runs {
            let start = s.map.pfn(at: run.first).rawValue << pageShift
            let range = "[\(hex(start)), \(hex(start + UInt64(run.count) << pageShift)))"
            o += "  " + pad(range, 44) + " " + pad(String(run.count), 7, right: true) + " \(run.category.label(s.map))\n"
        }
        o += "pages by kind: " + counts.map { "\($1) \($0.label(s.map))" }.joined(separator: ", ") + "\n"
        if dmaMapped > 0 { o += "\(dmaMapped) pages mapped by an SMMU domain besides the identity domain\n" }
        for m in s.highlightIndices {
            o += "marked: PFN \(hex(s.map.pfn(at: m.index).rawValue)): \(m.reason)\n  \(s.details(page: m.index))\n"
        }
        return o
    }

    public var json: String {
        let s = snapshot
        func address(_ v: UInt64) -> JSONValue { .string(hex(v)) }
        let runs: [JSONValue] = s.runs.map { run in
            let start = s.map.pfn(at: run.first).rawValue << pageShift
            return .object(["start": address(start), "end": address(start + UInt64(run.count) << pageShift),
                            "pages": .int(run.count), "kind": .string(run.category.label(s.map))])
        }
        let vms: [JSONValue] = s.map.vms.map { vm in
            .object(["handle": address(UInt64(vm.handle.rawValue)), "vmid": .int(Int(vm.vmid.rawValue)),
                     "protected": .bool(vm.isProtected), "dying": .bool(vm.isDying)])
        }
        let marked: [JSONValue] = s.highlightIndices.map { m in
            .object(["pfn": address(s.map.pfn(at: m.index).rawValue), "reason": .string(m.reason),
                     "details": .string(s.details(page: m.index))])
        }
        let root: JSONObject = [
            "title": .string(s.title), "pages": .int(s.map.pages.count),
            "regions": .array(s.map.regions.map { .object(["base": address($0.base.rawValue), "pages": .int(Int($0.pageCount))]) }),
            "carveout": .object(["first_pfn": address(s.map.carveout.lowerBound.rawValue),
                                 "end_pfn": address(s.map.carveout.upperBound.rawValue)]),
            "iommu": .string(s.map.iommuMode.map { "\($0)" } ?? "none"), "vms": .array(vms),
            "runs": .array(runs),
            "counts": .object(JSONObject(counts.map { (key: $0.label(s.map), value: JSONValue.int($1)) })),
            "dma_mapped": .int(dmaMapped), "marked": .array(marked),
        ]
        return JSONValue.object(root).description
    }

    private func pad(_ s: String, _ width: Int, right: Bool = false) -> String {
        s.count >= width ? s : right ? String(repeating: " ", count: width - s.count) + s : s + String(repeating: " ", count: width - s.count)
    }
}
