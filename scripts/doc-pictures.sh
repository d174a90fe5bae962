#!/usr/bin/env bash
# Writes the pictures docs/tracing.md and the README show into docs/pictures/ (not committed:
# they are generated from the current code). Usage: scripts/doc-pictures.sh [path/to/pvm]
set -euo pipefail
cd "$(dirname "$0")/.."
pvm=${1:-}
if [ -z "$pvm" ]; then
    swift build -c release --product pvm >/dev/null
    pvm=.build/release/pvm
fi
out=docs/pictures
mkdir -p "$out"
# A stopped guest, one cell per page, long host runs folded, the faulting page marked.
"$pvm" inspect giveaway --backend interp -o "$out/giveaway.svg"
# The same as a page: search box, overview by region, zoom, full tooltips, stage-2 trees.
"$pvm" inspect giveaway --backend interp -o "$out/giveaway.html"
# A running guest captured at an event, with a guest frame marked.
"$pvm" inspect share --backend interp --at hypercall:MEM_SHARE --highlight gfn:0x81000 -o "$out/share-at-mem-share.html"
# 1 GiB by 2 MiB region: each cell's bars show the mix of owners in it.
"$pvm" inspect dma --backend interp -m 1024 --granularity region -o "$out/dma-regions.svg"
# A Perfetto timeline: DMA slices, faults with flow arrows to what they caused.
"$pvm" boot dma --backend interp --trace "$out/dma.jsonl" >/dev/null 2>&1
"$pvm" trace "$out/dma.jsonl" --chrome "$out/dma-perfetto.json"
echo "scripts/doc-pictures.sh: wrote $(ls "$out" | wc -l) files to $out"
