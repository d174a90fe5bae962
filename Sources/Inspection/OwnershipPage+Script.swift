extension OwnershipPage {
    /// The page's script: draws the zoomed region from `PVM.cats` as SVG cells with the
    /// overview's classes and full tooltips (`PVM.details` by `PVM.runs`), wires the overview's
    /// regions and the marked-page links to it, and answers the search box: "0x80010" or
    /// "pfn 0x80010" is a frame, "pa 0x80010000" an address, "gfn 0x10" a guest frame.
    static let script = """
        (function(){
        var NS="http://www.w3.org/2000/svg",COLS=32,CELL=14,current=-1;
        function hex(n){return "0x"+n.toString(16);}
        function pfnOf(i){var r=PVM.regions;for(var k=0;k!==r.length;k++){if(i-r[k][1]>=0){i-=r[k][1];}else{return r[k][0]+i;}}return -1;}
        function indexOf(p){var r=PVM.regions,o=0;for(var k=0;k!==r.length;k++){if(p>=r[k][0]&&p<r[k][0]+r[k][1]){return o+p-r[k][0];}o+=r[k][1];}return -1;}
        function details(i){var R=PVM.runs,lo=0,hi=R.length/3-1;
          while(lo<hi){var mid=(lo+hi+1)>>1;if(R[mid*3]<=i){lo=mid;}else{hi=mid-1;}}
          return PVM.details[R[lo*3+2]];}
        function describe(i){var p=pfnOf(i);return "PFN "+hex(p)+" (PA "+hex(p*4096)+"): "+details(i);}
        function info(text){document.getElementById("zoom-info").textContent=text;}
        function show(region,page){
          current=region;
          var first=region*PVM.regionPages,last=Math.min(first+PVM.regionPages,PVM.cats.length);
          var svg=document.createElementNS(NS,"svg"),rows=Math.ceil((last-first)/COLS);
          svg.setAttribute("width",COLS*CELL+4);svg.setAttribute("height",rows*CELL+4);
          for(var i=first;i!==last;i++){
            var k=i-first,r=document.createElementNS(NS,"rect"),c=PVM.cats.charAt(i);
            r.setAttribute("class","page c-"+c+(i===page?" found":""));r.setAttribute("data-page",String(i));
            r.setAttribute("x",(k%COLS)*CELL);r.setAttribute("y",Math.floor(k/COLS)*CELL);
            r.setAttribute("width",CELL-1);r.setAttribute("height",CELL-1);
            var t=document.createElementNS(NS,"title");t.textContent=describe(i);r.appendChild(t);svg.appendChild(r);
            if(PVM.dma.charAt(i)==="d"){var d=document.createElementNS(NS,"circle");d.setAttribute("class","dma");
              d.setAttribute("cx",(k%COLS)*CELL+6);d.setAttribute("cy",Math.floor(k/COLS)*CELL+6);d.setAttribute("r",3);svg.appendChild(d);}
          }
          svg.addEventListener("click",function(e){var a=e.target.getAttribute("data-page");if(a!==null){info(describe(parseInt(a,10)));}});
          var z=document.getElementById("zoom");while(z.firstChild){z.removeChild(z.firstChild);}z.appendChild(svg);
          document.getElementById("zoom-title").textContent="Pages of region "+region+": PA "+hex(pfnOf(first)*4096)+" (+2 MiB), one cell per 4 KiB page";
          var cells=document.querySelectorAll("#overview g.region");
          for(var j=0;j!==cells.length;j++){cells[j].classList.toggle("selected",cells[j].getAttribute("data-region")===String(region));}
          if(page>=0){info(describe(page));}
        }
        function showPage(i){show(Math.floor(i/PVM.regionPages),i);}
        function find(q){
          var m=/^\\s*(pfn|pa|gfn)?\\s*(0x[0-9a-f]+|[0-9]+)\\s*$/i.exec(q),out=document.getElementById("found");
          if(!m){out.textContent="type a PFN (0x80010), pa 0x80010000 or gfn 0x10";return -1;}
          var n=parseInt(m[2]),kind=(m[1]||"pfn").toLowerCase(),i=-1;
          if(kind==="gfn"){var hits=PVM.gfns.filter(function(g){return g[0]===n;});
            if(hits.length===0){out.textContent="no page backs gfn "+hex(n);return -1;}
            i=hits[0][1];out.textContent=hits.length+" page"+(hits.length===1?"":"s")+" back gfn "+hex(n)+(hits.length>1?"; showing the first":"");}
          else{i=indexOf(kind==="pa"?Math.floor(n/4096):n);
            if(i<0){out.textContent=hex(n)+" is not in RAM";return -1;}out.textContent="";}
          showPage(i);return i;
        }
        var cells=document.querySelectorAll("#overview g.region");
        for(var j=0;j!==cells.length;j++){cells[j].addEventListener("click",function(e){show(parseInt(e.currentTarget.getAttribute("data-region"),10),-1);});}
        var links=document.querySelectorAll("#marked a");
        for(var j=0;j!==links.length;j++){links[j].addEventListener("click",function(e){showPage(parseInt(e.currentTarget.getAttribute("data-page"),10));});}
        document.getElementById("find").addEventListener("submit",function(e){e.preventDefault();find(document.getElementById("query").value);});
        window.pvmFind=find;
        if(PVM.marked.length>0){showPage(PVM.marked[0][0]);}
        else{var start=0;for(var i=0;i!==PVM.cats.length;i++){var c=PVM.cats.charAt(i);if(c>="0"&&c<="Z"){start=Math.floor(i/PVM.regionPages);break;}}show(start,-1);}
        })();

        """
}
