import EL2
import Foundation
import Inspection
import ModelScript
import Testing

/// What makes the pictures readable: folded runs, marked pages, a region's mix, HTML swatches
/// that show their colour, tooltips with everything the SVG says, and one title and legend.
@Suite struct PictureReadabilityTests {
    /// 64 MiB, one guest page alone in a host region (region 1), one page shared with EL2.
    func snapshot() throws -> (ModelSession, InspectionSnapshot) {
        var c = ModelSession.Configuration()
        c.memory = 64 << 20
        let s = try ModelSession(c)
        for line in ["vm_create g", "host_donate_guest 600 0x10 g", "host_share_hyp 20"] {
            #expect(s.run(line: line, number: 1)?.text == "\(line) -> 0")
        }
        return (s, InspectionSnapshot(s.hypervisor, title: "readability"))
    }

    @Test func longUniformRunsFoldAndTheMachineStaysAScreenTall() throws {
        let (_, snap) = try snapshot()
        let svg = OwnershipPicture(snap, granularity: .page).svg()
        let elements = try XMLChecker.elements(svg)
        let height = Int(elements[0].attributes["height"]!)!
        // 16,384 pages at 64 a row would be 2,304 px of cells; folded it is a fraction.
        #expect(height < 900, "height \(height)")
        #expect(svg.contains("folded: all host OWNED"))
    }

    @Test func aHighlightedPageIsMarkedNotFoldedAndNamedInTheHeader() throws {
        var (_, snap) = try snapshot()
        snap.highlights = [.init(pfn: PFN(0x80000 + 9000), reason: "test mark")]
        let elements = try XMLChecker.elements(OwnershipPicture(snap, granularity: .page).svg())
        let marked = elements.filter { $0.name == "rect" && ($0.attributes["class"] ?? "").hasSuffix(" marked") }
        #expect(marked.map { $0.attributes["data-page"] } == ["9000"])
        let svg = OwnershipPicture(snap, granularity: .page).svg()
        #expect(svg.contains("marked: PFN 0x82328: test mark"))
        // The text summary and its JSON name it too.
        #expect(OwnershipSummary(snap).text.contains("marked: PFN 0x82328: test mark"))
        let json = try JSONSerialization.jsonObject(with: Data(OwnershipSummary(snap).json.utf8)) as! [String: Any]
        let m = (json["marked"] as! [[String: Any]])[0]
        #expect(m["pfn"] as? String == "0x82328")
        #expect((m["details"] as? String)?.contains("host stage-2:") == true)
    }

    @Test func aRegionShowsItsMinorityPages() throws {
        let (_, snap) = try snapshot()
        let elements = try XMLChecker.elements(OwnershipPicture(snap, granularity: .region).svg())
        // Region 1 (pages 512..1023) holds one guest page among 511 host pages: a bar for each.
        guard let start = elements.firstIndex(where: { $0.attributes["data-region"] == "1" }) else {
            Issue.record("region 1 missing")
            return
        }
        let bars = elements[(start + 1)...].prefix { $0.attributes["class"] != "frame" }.filter { $0.name == "rect" }
        let classes = bars.map { $0.attributes["class"]! }
        #expect(classes == [PageCategory.host.cssClass, PageCategory.guestPrivate(vm: 0).cssClass])
        #expect(bars.allSatisfy { Int($0.attributes["width"]!)! >= 1 })
    }

    @Test func htmlSwatchesHaveBackgroundsAndTheOverviewHasNoSecondTitle() throws {
        let (_, snap) = try snapshot()
        let html = OwnershipPage(snap).html()
        let elements = try XMLChecker.elements(html)
        let swatches = elements.filter { $0.name == "span" && ($0.attributes["class"] ?? "").hasPrefix("swatch c-") }
        #expect(!swatches.isEmpty)
        for s in swatches {
            let cls = s.attributes["class"]!.split(separator: " ")[1]
            #expect(html.contains("span.\(cls){background:#"), "\(cls)")
        }
        #expect(html.components(separatedBy: "readability").count - 1 == 2)  // <title> and <h1>
        #expect(!html.contains("cells a row; dot:"))  // the SVG subtitle stays out of the page
    }

    @Test func htmlTooltipsCarryEverythingTheSVGDoes() throws {
        let (_, snap) = try snapshot()
        let html = OwnershipPage(snap).html()
        // The details of the guest page (gfn, states, stage-2 leaf) are in the page's data.
        #expect(html.contains("vm 0x1000 private · owner vm 0x1000 gfn 0x10 · host NOPAGE · hyp NOPAGE · vm 0x1000 gfn 0x10 OWNED"))
        #expect(html.contains("guest stage-2: 4 KiB page"))
        #expect(html.contains("host shared with EL2") || html.contains("host, shared with EL2"))
        #expect(html.contains("gfns:[[16,600]]"))
        #expect(html.contains("id=\"query\""))
    }
}
