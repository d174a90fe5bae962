import Crypto
import EL2

/// What the VMM tells the firmware at boot: the boot configuration page on x86-64
/// (docs/abi.md, "Boot configuration"), a flattened device tree on AArch64 (docs/abi.md,
/// "AArch64 device tree"), as crosvm writes one for a protected VM.
extension Machine {
    /// The handoff bytes this machine writes at `layout.handoff` (the boot configuration or the
    /// device tree), for running the same firmware and payload elsewhere (`pvm bench interp`
    /// under QEMU).
    public var handoffBytes: [UInt8] {
        let digest = Array(SHA256.hash(data: configuration.payload))
        switch layout.architecture {
        case .x86_64: return bootConfiguration(payloadSize: configuration.payload.count, digest: digest)
        case .aarch64: return deviceTree(payloadSize: configuration.payload.count, digest: digest)
        }
    }

    /// The boot configuration page (docs/abi.md).
    func bootConfiguration(payloadSize: Int, digest: [UInt8]) -> [UInt8] {
        var c = [UInt8](repeating: 0, count: GuestLayout.configBytes)
        func put<T: FixedWidthInteger>(_ value: T, at offset: Int) {
            withUnsafeBytes(of: value.littleEndian) { c.replaceSubrange(offset ..< offset + MemoryLayout<T>.size, with: $0) }
        }
        let flags: UInt32 = configuration.isProtected ? GuestLayout.configFlagProtected : 0
        put(GuestLayout.configMagic, at: 0)
        put(GuestLayout.configVersion, at: 4)
        put(GuestLayout.configSize, at: 8)
        put(flags, at: 12)
        put(GuestLayout.payloadStaging, at: 16)
        put(UInt64(payloadSize), at: 24)
        c.replaceSubrange(32 ..< 64, with: digest)
        put(UInt64(0), at: 64)
        put(configuration.memory, at: 72)
        put(GuestLayout.consolePage, at: 80)
        put(GuestLayout.consoleMMIO, at: 88)
        put(UInt32(configuration.vcpus), at: 96)
        put(configuration.payloadArgument, at: 104)
        put(GuestLayout.payloadWindowStart, at: 112)
        put(configuration.memory, at: 120)
        return c
    }

    /// The AArch64 machine's device tree: memory, CPUs with PSCI, the PL011 and its clock, the
    /// pvm devices, /chosen, and crosvm's /config node (kernel-address, kernel-size) with the
    /// payload's digest, argument and load window that pvm's firmware checks.
    func deviceTree(payloadSize: Int, digest: [UInt8]) -> [UInt8] {
        func reg(_ address: UInt64, _ size: UInt64) -> [UInt32] {
            [UInt32(address >> 32), UInt32(truncatingIfNeeded: address), UInt32(size >> 32), UInt32(truncatingIfNeeded: size)]
        }
        var tree = DeviceTree()
        tree.root.property("#address-cells", cells: [2])
        tree.root.property("#size-cells", cells: [2])
        tree.root.property("compatible", string: "pvm,virt")
        tree.root.property("model", string: "pvm protected VM")

        var memory = DeviceTree.Node("memory@" + String(layout.ram.lowerBound, radix: 16))
        memory.property("device_type", string: "memory")
        memory.property("reg", cells: reg(layout.ram.lowerBound, configuration.memory))
        tree.root.child(memory)

        var cpus = DeviceTree.Node("cpus")
        cpus.property("#address-cells", cells: [1])
        cpus.property("#size-cells", cells: [0])
        for index in 0 ..< configuration.vcpus {
            let mpidr = MPIDR(vcpu: index).hardwareID
            var cpu = DeviceTree.Node("cpu@" + String(mpidr, radix: 16))
            cpu.property("device_type", string: "cpu")
            cpu.property("compatible", string: "arm,arm-v8")
            cpu.property("enable-method", string: "psci")
            cpu.property("reg", cells: [UInt32(mpidr)])
            cpus.child(cpu)
        }
        tree.root.child(cpus)

        var psci = DeviceTree.Node("psci")
        psci.property("compatible", strings: ["arm,psci-1.0", "arm,psci-0.2"])
        psci.property("method", string: "hvc")
        tree.root.child(psci)

        // The UART's clock: Linux's AMBA bus needs "apb_pclk" to read the PrimeCell IDs.
        let clockHandle: UInt32 = 1
        var clock = DeviceTree.Node("apb-pclk")
        clock.property("compatible", string: "fixed-clock")
        clock.property("#clock-cells", cells: [0])
        clock.property("clock-frequency", cells: [24_000_000])
        clock.property("phandle", cells: [clockHandle])
        tree.root.child(clock)

        if hasInterruptController { addInterruptNodes(&tree, reg: reg) }

        let uartName = "pl011@" + String(layout.console, radix: 16)
        var uart = DeviceTree.Node(uartName)
        uart.property("compatible", strings: ["arm,pl011", "arm,primecell"])
        uart.property("reg", cells: reg(layout.console, pageSize))
        uart.property("clocks", cells: [clockHandle, clockHandle])
        uart.property("clock-names", strings: ["uartclk", "apb_pclk"])
        if hasInterruptController {
            uart.property("interrupts", cells: [Self.spiType, UInt32(AArch64Layout.uartInterrupt), Self.levelHigh])
        }
        tree.root.child(uart)

        if let pool = restrictedPool { addVirtioNodes(&tree, pool: pool, reg: reg) }

        if configuration.iommuMode != nil {
            for (name, address) in [("block", layout.block), ("dma", layout.dma)] {
                var device = DeviceTree.Node(name + "@" + String(address, radix: 16))
                device.property("compatible", string: "pvm," + name)
                device.property("reg", cells: reg(address, pageSize))
                tree.root.child(device)
            }
        }

        var chosen = DeviceTree.Node("chosen")
        chosen.property("stdout-path", string: "/" + uartName)
        chosen.property("bootargs", string: configuration.linux?.commandLine ?? "")
        if let initrd = linuxPlacement?.initrd {
            chosen.property("linux,initrd-start", u64: initrd.lowerBound)
            chosen.property("linux,initrd-end", u64: initrd.upperBound)
        }
        tree.root.child(chosen)

        var config = DeviceTree.Node("config")
        config.property("kernel-address", u64: payloadAddress)
        config.property("kernel-size", u64: UInt64(payloadSize))
        config.property("pvm,payload-sha256", digest)
        config.property("pvm,payload-argument", u64: configuration.payloadArgument)
        config.property("pvm,load-window", cells: reg(layout.payloadWindow.lowerBound, layout.payloadWindow.upperBound))
        if configuration.isProtected { config.property("pvm,protected") }
        if let initrd = configuration.linux?.initrd { config.property("pvm,initrd-sha256", Array(SHA256.hash(data: initrd))) }
        tree.root.child(config)
        return tree.serialized()
    }

    /// GIC interrupt specifier cells (Linux's arm,gic-v3 binding): type, number, flags.
    static let spiType: UInt32 = 0, ppiType: UInt32 = 1, levelHigh: UInt32 = 4
    static let gicHandle: UInt32 = 2

    /// The GICv3 (distributor, one redistributor region for every vCPU) as the root's
    /// interrupt parent, and the architected timer's PPIs: secure and non-secure physical,
    /// virtual (27) and hypervisor (as crosvm and QEMU describe them).
    private func addInterruptNodes(_ tree: inout DeviceTree, reg: (UInt64, UInt64) -> [UInt32]) {
        tree.root.property("interrupt-parent", cells: [Self.gicHandle])
        var gic = DeviceTree.Node("intc@" + String(AArch64Layout.gicDistributor, radix: 16))
        gic.property("compatible", string: "arm,gic-v3")
        gic.property("#interrupt-cells", cells: [3])
        gic.property("interrupt-controller")
        gic.property("#redistributor-regions", cells: [1])
        gic.property("reg", cells: reg(AArch64Layout.gicDistributor, 0x1_0000)
            + reg(AArch64Layout.gicRedistributors, AArch64Layout.gicRedistributorStride * UInt64(configuration.vcpus)))
        gic.property("phandle", cells: [Self.gicHandle])
        tree.root.child(gic)

        var timer = DeviceTree.Node("timer")
        timer.property("compatible", string: "arm,armv8-timer")
        timer.property("interrupts", cells: [13, 14, 11, 10].flatMap { [Self.ppiType, UInt32($0), Self.levelHigh] })
        timer.property("always-on")
        tree.root.child(timer)
    }

    static let poolHandle: UInt32 = 3

    /// The virtio-rng (virtio,mmio, Documentation/devicetree/bindings/virtio/mmio.yaml), coherent,
    /// its DMA restricted to a `restricted-dma-pool` (reserved-memory binding; kernel/dma/swiotlb.c
    /// rmem_swiotlb_setup): the pool a pKVM guest shares with the host when the device probes, so
    /// the host's device only ever touches shared pages (docs/linux.md).
    private func addVirtioNodes(_ tree: inout DeviceTree, pool: Range<UInt64>, reg: (UInt64, UInt64) -> [UInt32]) {
        var reserved = DeviceTree.Node("reserved-memory")
        reserved.property("#address-cells", cells: [2])
        reserved.property("#size-cells", cells: [2])
        reserved.property("ranges")
        var restricted = DeviceTree.Node("restricted-dma@" + String(pool.lowerBound, radix: 16))
        restricted.property("compatible", string: "restricted-dma-pool")
        restricted.property("reg", cells: reg(pool.lowerBound, pool.upperBound - pool.lowerBound))
        restricted.property("phandle", cells: [Self.poolHandle])
        reserved.child(restricted)
        tree.root.child(reserved)

        var virtio = DeviceTree.Node("virtio@" + String(AArch64Layout.virtioRNG, radix: 16))
        virtio.property("compatible", string: "virtio,mmio")
        virtio.property("reg", cells: reg(AArch64Layout.virtioRNG, pageSize))
        virtio.property("interrupts", cells: [Self.spiType, UInt32(AArch64Layout.virtioRNGInterrupt), Self.levelHigh])
        virtio.property("dma-coherent")
        virtio.property("memory-region", cells: [Self.poolHandle])
        tree.root.child(virtio)
    }
}
