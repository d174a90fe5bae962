import EL2
import ModelScript
import Testing

/// The SMMU operations of `pvm model` (docs/iommu.md): the same scenario in both designs.
@Suite struct ModelIOMMUTests {
    func run(_ script: String, mode: IOMMUMode?) throws -> [String] {
        var c = ModelSession.Configuration()
        c.iommu = mode
        let s = try ModelSession(c)
        var out: [String] = []
        for (i, line) in script.split(separator: "\n").enumerated() {
            if let r = s.run(line: String(line), number: i + 1) { out.append(r.text) }
        }
        return out
    }

    /// A guest shares a page with the host, a host device maps it, the guest unshares it.
    static let scenario = """
        vm_create g
        host_donate_guest 10 0x40 g
        guest_share_host g 0x40
        dma_write 1 pfn:10 16 0x22
        guest_unshare_host g 0x40
        dma_write 1 pfn:10 16 0x33
        peek 10
        check
        """

    @Test func mirrorModeUnmapsOnUnshare() throws {
        let lines = try run("iommu_attach 1 host\n" + Self.scenario + "\niommu_events", mode: .mirror)
        #expect(lines[4] == "dma_write 1 pfn:10 16 0x22 -> 0")
        #expect(lines[5] == "guest_unshare_host g 0x40 -> 0")
        #expect(lines[6].hasPrefix("dma_write 1 pfn:10 16 0x33 -> fault F_TRANSLATION sid 1 iova=0x8000a000 write size=16 domain 0 "))
        #expect(lines[6].contains("owner=vm 0x1000 gfn 0x40 host=NOPAGE"))
        #expect(lines[7] == "peek 10 -> nonzero first=22 22 22 22 22 22 22 22")
        #expect(lines[8] == "check -> ok")
        #expect(lines[9].hasPrefix("iommu_events -> 1 events"))
    }

    @Test func refcountModeRefusesTheUnshare() throws {
        let lines = try run("""
            iommu_domain_alloc 1
            iommu_attach 1 1
            vm_create g
            host_donate_guest 10 0x40 g
            guest_share_host g 0x40
            iommu_map 1 0x100000 10 1 rw
            dma_write 1 0x100000 16 0x22
            guest_unshare_host g 0x40
            state 10
            check
            iommu_unmap 1 0x100000
            dma_write 1 0x100000 16 0x33
            guest_unshare_host g 0x40
            check
            """, mode: .refcount)
        #expect(lines[5] == "iommu_map 1 0x100000 10 1 rw -> 0")
        #expect(lines[6] == "dma_write 1 0x100000 16 0x22 -> 0")
        #expect(lines[7] == "guest_unshare_host g 0x40 -> -EBUSY")
        #expect(lines[8].contains("refcount=1"))
        #expect(lines[9] == "check -> ok")
        #expect(lines[10] == "iommu_unmap 1 0x100000 -> 1")
        #expect(lines[11].hasPrefix("dma_write 1 0x100000 16 0x33 -> fault F_TRANSLATION"))
        #expect(lines[12] == "guest_unshare_host g 0x40 -> 0")
        #expect(lines[13] == "check -> ok")
    }

    @Test func badArgumentsAreLineErrors() throws {
        let lines = try run("""
            iommu_attach x host
            dma_write 1 pfn:zz 4
            dma_write 1 0 0
            iommu_translate 1 0 q
            iommu_attach 1 host
            iommu_show
            """, mode: nil)
        #expect(lines[0].contains("error: line 1: iommu_attach: SID 'x' is not a number"))
        #expect(lines[1].contains("error: line 2: dma_write: IOVA 'pfn:zz' is not pfn:N"))
        #expect(lines[2].contains("error: line 3: dma_write: LEN 0 must be 1 to"))
        #expect(lines[3].contains("error: line 4: iommu_translate: access 'q' must be r or w"))
        #expect(lines[4] == "iommu_attach 1 host -> -ENODEV")
        #expect(lines[5].hasPrefix("iommu_show -> no SMMU"))
    }
}
