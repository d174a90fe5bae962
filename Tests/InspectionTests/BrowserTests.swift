import EL2
import Foundation
import Inspection
import ModelScript
import Testing

/// The HTML page in a real browser: Debian's headless Chromium (installed by .ci/run) loads
/// it, a test script clicks a region and searches for a guest frame, and the DOM after the
/// page's own script ran is checked, with a screenshot's dimensions. Skips, saying why,
/// where Chromium is missing.
@Suite struct BrowserTests {
    static let chromium = ["/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"]
        .first { FileManager.default.isExecutableFile(atPath: $0) }

    func page() throws -> String {
        var c = ModelSession.Configuration()
        c.memory = 64 << 20
        let s = try ModelSession(c)
        for line in ["vm_create g", "host_donate_guest 600 0x10 g", "host_donate_guest 601 0x11 g", "guest_share_host g 0x11"] {
            #expect(s.run(line: line, number: 1)?.text == "\(line) -> 0")
        }
        var snap = InspectionSnapshot(s.hypervisor, title: "browser test")
        snap.highlights = [.init(pfn: PFN(0x80000 + 20), reason: "a mark")]
        // After the page's script: click region 1, record, then search for gfn 0x11 and record.
        let probe = """
            <script>//<![CDATA[
            (function(){
            var out=[];function rec(k,v){out.push(k+"="+v);}
            var first=document.querySelector("#zoom-title").textContent;rec("initial",first);
            var g=document.querySelector('#overview g.region[data-region="1"]');
            g.dispatchEvent(new MouseEvent("click",{bubbles:true}));
            rec("title",document.querySelector("#zoom-title").textContent);
            rec("selected",document.querySelectorAll("#overview g.selected").length);
            rec("cells",document.querySelectorAll("#zoom rect.page").length);
            rec("guest",document.querySelectorAll("#zoom rect.c-0").length);
            var svg=document.querySelector("#zoom svg");rec("zoomsize",svg.getAttribute("width")+"x"+svg.getAttribute("height"));
            rec("tooltip",document.querySelectorAll("#zoom rect.c-0 title")[0].textContent);
            window.pvmFind("gfn 0x11");
            rec("found",document.querySelectorAll("#zoom rect.found").length);
            rec("info",document.getElementById("zoom-info").textContent);
            window.pvmFind("0x1");
            rec("notram",document.getElementById("found").textContent);
            var swatch=getComputedStyle(document.querySelector(".legend span.swatch.c-0")).backgroundColor;rec("swatch",swatch);
            var pre=document.createElement("pre");pre.id="probe";pre.textContent=out.join("\\n");document.body.appendChild(pre);
            })();
            //]]></script>
            """
        return OwnershipPage(snap).html().replacingOccurrences(of: "</body>", with: probe + "</body>")
    }

    func run(_ arguments: [String]) throws -> String {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: Self.chromium!)
        let profile = FileManager.default.temporaryDirectory.appendingPathComponent("pvm-chromium-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: profile) }
        p.arguments = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--user-data-dir=\(profile.path)"] + arguments
        let out = Pipe()
        p.standardOutput = out
        p.standardError = FileHandle.nullDevice
        try p.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return String(decoding: data, as: UTF8.self)
    }

    @Test func clickingARegionAndSearchingWorkInChromium() throws {
        guard Self.chromium != nil else {
            print("BrowserTests: skipped: no Chromium (apt-get install chromium; .ci/run does)")
            return
        }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("pvm-browser-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let file = dir.appendingPathComponent("page.html")
        try page().write(to: file, atomically: true, encoding: .utf8)
        let dom = try run(["--dump-dom", file.absoluteString])
        let probe = try #require(dom.range(of: "<pre id=\"probe\">").map { dom[$0.upperBound...].prefix { $0 != "<" } },
                                 "no probe output: the page's script failed? DOM: \(dom.prefix(400))")
        var r: [String: String] = [:]
        for line in probe.split(separator: "\n") {
            let kv = line.split(separator: "=", maxSplits: 1)
            if kv.count == 2 { r[String(kv[0])] = String(kv[1]).replacingOccurrences(of: "&amp;", with: "&") }
        }
        // The marked page opens first: region 0.
        #expect(r["initial"]?.hasPrefix("Pages of region 0:") == true, "\(r)")
        #expect(r["title"]?.hasPrefix("Pages of region 1: PA 0x80200000") == true, "\(r)")
        #expect(r["selected"] == "1")
        #expect(r["cells"] == "512")
        #expect(r["guest"] == "1")
        #expect(r["zoomsize"] == "452x228")
        #expect(r["tooltip"]?.contains("gfn 0x10") == true && r["tooltip"]?.contains("guest stage-2: 4 KiB page") == true, "\(r)")
        #expect(r["found"] == "1")
        #expect(r["info"]?.hasPrefix("PFN 0x80259 (PA 0x80259000): vm 0x1000 shared with host") == true, "\(r)")
        #expect(r["notram"] == "0x1 is not in RAM")
        #expect(r["swatch"] == "rgb(46, 157, 79)")  // guest 0's colour, #2e9d4f, as a background

        let png = dir.appendingPathComponent("shot.png")
        _ = try run(["--screenshot=\(png.path)", "--window-size=1024,1600", file.absoluteString])
        let bytes = try [UInt8](Data(contentsOf: png))
        #expect(bytes.count > 10_000)
        #expect(Array(bytes.prefix(8)) == [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A])
        func be32(_ at: Int) -> Int { bytes[at ..< at + 4].reduce(0) { $0 << 8 | Int($1) } }
        #expect(be32(16) == 1024 && be32(20) == 1600, "screenshot \(be32(16))x\(be32(20))")
    }
}
