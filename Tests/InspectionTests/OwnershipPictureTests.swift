import EL2
import Foundation
import Inspection
import ModelScript
import Testing

/// The pictures are well-formed, hold one cell per page (or per 2 MiB), and colour each page
/// by what EL2's tables say.
@Suite struct OwnershipPictureTests {
    /// A session with a guest owning a page, sharing another back, a page shared with EL2 and
    /// a page an SMMU paging domain maps.
    func session(memory: UInt64 = 16 << 20) throws -> ModelSession {
        var c = ModelSession.Configuration()
        c.memory = memory
        c.iommu = .refcount
        let s = try ModelSession(c)
        for line in ["vm_create g", "host_donate_guest 16 2 g", "host_donate_guest 17 3 g", "guest_share_host g 3",
                     "host_share_hyp 20", "iommu_domain_alloc 1", "iommu_map 1 0x10000 21 1 rw"] {
            let r = s.run(line: line, number: 1)
            #expect(r?.text == "\(line) -> 0", "\(r?.text ?? "")")
        }
        return s
    }

    @Test func svgHasOneWellFormedCellPerPage() throws {
        let s = try session()
        let snapshot = InspectionSnapshot(s.hypervisor, title: "test <&> \"quoted\"")
        let picture = OwnershipPicture(snapshot)
        #expect(picture.granularity == .page)
        let elements = try XMLChecker.elements(picture.svg())
        #expect(elements.first?.name == "svg")
        let pages = elements.filter { $0.name == "rect" && ($0.attributes["class"] ?? "").hasPrefix("page ") }
        // Every page is a cell or inside a folded band, once.
        let folds = elements.filter { $0.name == "g" && $0.attributes["class"] == "fold" }
        let folded = folds.reduce(0) { $0 + Int($1.attributes["data-pages"]!)! }
        #expect(!folds.isEmpty)
        #expect(pages.count + folded == s.hypervisor.memory.pageCount)
        #expect(s.hypervisor.memory.pageCount == 4096)
        var covered = Set(pages.map { Int($0.attributes["data-page"]!)! })
        for f in folds {
            let first = Int(f.attributes["data-first"]!)!
            for i in first ..< first + Int(f.attributes["data-pages"]!)! { #expect(covered.insert(i).inserted) }
        }
        #expect(covered.count == 4096)
        // Page 16 is the guest's, 17 shared back with the host, 20 shared with EL2; 21 gets a DMA dot.
        var cls: [Int: String] = [:]
        for p in pages { cls[Int(p.attributes["data-page"]!)!] = p.attributes["class"]! }
        #expect(cls[16] == "page \(PageCategory.guestPrivate(vm: 0).cssClass)")
        #expect(cls[17] == "page \(PageCategory.guestShared(vm: 0).cssClass)")
        #expect(cls[20] == "page \(PageCategory.hostSharedWithHyp.cssClass)")
        #expect(cls[0] == "page c-h")
        #expect(elements.filter { $0.name == "circle" && $0.attributes["class"] == "dma" }.count == 1)
        #expect(snapshot.categories[21] == .host && !snapshot.map.pages[21].dmaDomains.isEmpty)
    }

    @Test func regionGranularityHasOneCellPer2MiB() throws {
        let s = try session(memory: 64 << 20)
        let picture = OwnershipPicture(InspectionSnapshot(s.hypervisor, title: "regions"), granularity: .region)
        let elements = try XMLChecker.elements(picture.svg())
        let regions = elements.filter { $0.name == "g" && ($0.attributes["class"] ?? "").hasPrefix("region") }
        let folded = elements.filter { $0.attributes["class"] == "fold" }.reduce(0) { $0 + Int($1.attributes["data-pages"]!)! }
        #expect(regions.count * 512 + folded == s.hypervisor.memory.pageCount)
        #expect(picture.cellCount == s.hypervisor.memory.pageCount / 512)
        // The first region holds the guest's pages among the host's: mixed, with a bar for
        // each kind, the guest's 2 pages of 512 still visible.
        #expect(regions[0].attributes["class"] == "region mixed")
        #expect(regions[0].attributes["data-region"] == "0")
    }

    @Test func htmlIsWellFormedWithPageDataAndStage2Trees() throws {
        let s = try session()
        let snapshot = InspectionSnapshot(s.hypervisor, title: "html")
        let html = OwnershipPage(snapshot).html()
        let elements = try XMLChecker.elements(html)
        #expect(elements.first?.name == "html")
        #expect(elements.filter { ($0.attributes["class"] ?? "").hasPrefix("region") }.count == 8)
        // One category code per page in the zoom data.
        let marker = "const PVM={cats:\""
        let start = try #require(html.range(of: marker)).upperBound
        let codes = html[start...].prefix { $0 != "\"" }
        #expect(codes.count == s.hypervisor.memory.pageCount)
        #expect(Array(codes)[16] == PageCategory.guestPrivate(vm: 0).code)
        // A tree per stage-2: the host's and the guest's, with decoded descriptors.
        let trees = elements.filter { $0.name == "details" && $0.attributes["class"] == "stage2" }
        #expect(trees.count == 2)
        #expect(html.contains("INVALID DONATION owner=guest"))
        #expect(html.contains("state=SHARED_OWNED"))
    }

    @Test func stage2TextTreeIndentsByLevel() throws {
        let s = try session()
        let snapshot = InspectionSnapshot(s.hypervisor, title: "tree")
        let guest = try #require(snapshot.tables.last)
        let text = Stage2Tree.text(guest)
        let lines = text.split(separator: "\n")
        #expect(lines[0].hasPrefix("vm "))
        #expect(lines.contains { $0.hasPrefix("      L3 [0x2000, 0x3000)") && $0.contains("state=OWNED") })
        #expect(lines.contains { $0.hasPrefix("      L3 [0x3000, 0x4000)") && $0.contains("state=SHARED_OWNED") })
    }

    @Test func modelInspectWritesAPicture() throws {
        let s = try session()
        let path = "/tmp/pvm-inspect-test-\(UInt32.random(in: 0 ... .max)).svg"
        let r = s.run(line: "inspect \(path)", number: 9)
        #expect(r?.text == "inspect \(path) -> wrote 4096 pages to \(path)")
        let bad = s.run(line: "inspect /nonexistent/dir/x.svg", number: 10)
        #expect(bad?.text.contains("cannot write /nonexistent/dir/x.svg: No such file or directory") == true)
    }
}
