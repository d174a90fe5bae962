import EL2

/// Renders an `InspectionSnapshot` as one self-contained HTML page (no network, no external
/// file): the machine, a legend, an overview with one cell per 2 MiB region, a zoomed view with
/// one cell per page of the region you click, the runs of pages by owner, and every stage-2
/// table as a tree of levels. The page is also well-formed XML, so tools can parse it.
public struct OwnershipPage: Sendable {
    public let snapshot: InspectionSnapshot

    public init(_ snapshot: InspectionSnapshot) { self.snapshot = snapshot }

    public func html() -> String {
        let map = snapshot.map
        let legend = PageCategory.present(in: snapshot.categories, map)
        var o = "<!DOCTYPE html>\n<html xmlns=\"http://www.w3.org/1999/xhtml\" lang=\"en\">\n<head>\n<meta charset=\"utf-8\"/>\n"
        o += "<title>\(xmlEscaped(snapshot.title))</title>\n<style>\n" + Self.style + OwnershipPicture.css(legend) + "</style>\n</head>\n<body>\n"
        o += "<h1>\(xmlEscaped(snapshot.title))</h1>\n<p>"
        o += "\(map.pages.count) pages (\(map.pages.count >> 8) MiB) of RAM in \(xmlEscaped(map.regions.map { "\($0)" }.joined(separator: ", "))); "
        o += "EL2 carveout PFN [\(hex(map.carveout.lowerBound.rawValue)), \(hex(map.carveout.upperBound.rawValue))); "
        o += "SMMU: \(map.iommuMode.map { "\($0)" } ?? "none"); VMs: "
        o += map.vms.isEmpty ? "none" : xmlEscaped(map.vms.map { "\($0.handle) (vmid \($0.vmid.rawValue)\($0.isProtected ? ", protected" : ""))" }.joined(separator: ", "))
        o += "</p>\n<div class=\"legend\">"
        for c in legend {
            o += "<span><svg xmlns=\"http://www.w3.org/2000/svg\" width=\"12\" height=\"12\"><rect class=\"\(c.cssClass)\" width=\"12\" height=\"12\"/></svg> \(xmlEscaped(c.label(map)))</span>\n"
        }
        o += "<span><svg xmlns=\"http://www.w3.org/2000/svg\" width=\"12\" height=\"12\"><circle class=\"dma\" cx=\"6\" cy=\"6\" r=\"3\"/></svg> mapped by an SMMU domain</span></div>\n"
        o += "<h2>Overview: one cell per 2 MiB region</h2>\n<p class=\"hint\">Click a region to see its pages below. "
        o += "A dark border marks a region holding more than one kind of page.</p>\n<div id=\"overview\">\n"
        o += OwnershipPicture(snapshot, granularity: .region).svg(standalone: false)
        o += "</div>\n<h2 id=\"zoom-title\">Pages</h2>\n<p id=\"zoom-info\" class=\"hint\">Hover a page for its owner and states.</p>\n"
        o += "<div id=\"zoom\"></div>\n"
        o += "<h2>Runs of pages</h2>\n<table class=\"runs\"><tr><th>physical range</th><th>pages</th><th>owner and state</th></tr>\n"
        let runs = snapshot.runs
        for run in runs.prefix(2000) {
            let start = map.pfn(at: run.first).rawValue << pageShift
            o += "<tr><td>[\(hex(start)), \(hex(start + UInt64(run.count) << pageShift)))</td><td>\(run.count)</td>"
            o += "<td><span class=\"swatch \(run.category.cssClass)\"></span>\(xmlEscaped(run.category.label(map)))</td></tr>\n"
        }
        if runs.count > 2000 { o += "<tr><td colspan=\"3\">… \(runs.count - 2000) more runs</td></tr>\n" }
        o += "</table>\n<h2>Stage-2 tables</h2>\n"
        for t in snapshot.tables { o += Stage2Tree.html(t) }
        o += "<script>//<![CDATA[\n" + data(legend) + Self.script + "//]]></script>\n</body>\n</html>\n"
        return o
    }

    /// The page data the zoomed view draws from: a category code and a DMA mark per page.
    private func data(_ legend: [PageCategory]) -> String {
        let map = snapshot.map
        var o = "const PVM={cats:\""
        o += String(snapshot.categories.map(\.code))
        o += "\",dma:\""
        o += String(map.pages.map { $0.dmaDomains.isEmpty ? "." : "d" })
        o += "\",regions:["
        o += map.regions.map { "[\($0.base.rawValue >> pageShift),\($0.pageCount)]" }.joined(separator: ",")
        o += "],labels:{"
        o += legend.map { "\"\($0.code)\":\(JSONString.quote($0.label(map)))" }.joined(separator: ",")
        o += "},regionPages:\(InspectionSnapshot.regionPages)};\n"
        return o
    }

    static let style = """
        body{font-family:system-ui,sans-serif;margin:16px;color:#222}
        h1{font-size:18px}h2{font-size:15px;margin-top:22px}
        .hint{color:#666;font-size:12px}
        .legend span{display:inline-block;margin:2px 12px 2px 0;font-size:12px}
        .legend svg{vertical-align:middle}
        #overview rect.region{cursor:pointer}
        #overview rect.selected{stroke:#e00;stroke-width:2}
        table.runs{border-collapse:collapse;font-family:monospace;font-size:12px}
        table.runs td,table.runs th{border:1px solid #ccc;padding:1px 6px;text-align:left}
        .swatch{display:inline-block;width:10px;height:10px;margin-right:6px}
        span.c-h,span.c-s,span.c-y,span.c-f,span.c-x,span.c-t,span.c-p,span.c-m,span.c-u{border:1px solid #999}
        ul.tree,ul.tree ul{list-style:none;padding-left:18px;font-family:monospace;font-size:12px;margin:0}
        details.stage2>summary{font-family:monospace;font-size:12px;font-weight:bold}
        li.annotation{color:#a05000}li.leaf{color:#14602e}

        """

    /// Draws the zoomed region from PVM.cats as SVG cells, with the same classes as the
    /// overview, and wires the overview's cells to it.
    static let script = """
        (function(){
        var NS="http://www.w3.org/2000/svg",COLS=32,CELL=14;
        function pfnOf(i){var r=PVM.regions;for(var k=0;k!==r.length;k++){if(i-r[k][1]>=0){i-=r[k][1];}else{return r[k][0]+i;}}return 0;}
        function hex(n){return "0x"+n.toString(16);}
        function show(region){
          var first=region*PVM.regionPages,last=Math.min(first+PVM.regionPages,PVM.cats.length);
          var svg=document.createElementNS(NS,"svg"),rows=Math.ceil((last-first)/COLS);
          svg.setAttribute("width",COLS*CELL+4);svg.setAttribute("height",rows*CELL+4);
          for(var i=first;i!==last;i++){
            var k=i-first,r=document.createElementNS(NS,"rect"),c=PVM.cats.charAt(i);
            r.setAttribute("class","page c-"+c);r.setAttribute("x",(k%COLS)*CELL);r.setAttribute("y",Math.floor(k/COLS)*CELL);
            r.setAttribute("width",CELL-1);r.setAttribute("height",CELL-1);
            var t=document.createElementNS(NS,"title"),p=pfnOf(i);
            t.textContent="PFN "+hex(p)+" (PA "+hex(p*4096)+"): "+(PVM.labels[c]||c)+(PVM.dma.charAt(i)==="d"?" \\u00b7 mapped by an SMMU domain":"");
            r.appendChild(t);svg.appendChild(r);
            if(PVM.dma.charAt(i)==="d"){var d=document.createElementNS(NS,"circle");d.setAttribute("class","dma");
              d.setAttribute("cx",(k%COLS)*CELL+6);d.setAttribute("cy",Math.floor(k/COLS)*CELL+6);d.setAttribute("r",3);svg.appendChild(d);}
          }
          var z=document.getElementById("zoom");while(z.firstChild){z.removeChild(z.firstChild);}z.appendChild(svg);
          document.getElementById("zoom-title").textContent="Pages of region "+region+": PA "+hex(pfnOf(first)*4096)+" (+2 MiB), one cell per 4 KiB page";
          var cells=document.querySelectorAll("#overview rect.region");
          for(var j=0;j!==cells.length;j++){cells[j].classList.toggle("selected",cells[j].getAttribute("data-region")===String(region));}
        }
        var cells=document.querySelectorAll("#overview rect.region");
        for(var j=0;j!==cells.length;j++){cells[j].addEventListener("click",function(e){show(parseInt(e.currentTarget.getAttribute("data-region"),10));});}
        var start=0;for(var i=0;i!==PVM.cats.length;i++){var c=PVM.cats.charAt(i);if(c>="0"&&c<="Z"){start=Math.floor(i/PVM.regionPages);break;}}
        show(start);
        })();

        """
}

/// JSON string quoting for the page's embedded data.
enum JSONString {
    static func quote(_ s: String) -> String {
        var o = "\""
        for c in s.unicodeScalars {
            switch c {
            case "\"": o += "\\\""
            case "\\": o += "\\\\"
            case "<": o += "\\u003c"
            case "&": o += "\\u0026"
            default: if c.value < 0x20 { o += " " } else { o.unicodeScalars.append(c) }
            }
        }
        return o + "\""
    }
}
