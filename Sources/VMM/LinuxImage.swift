import EL2

/// A Linux arm64 kernel Image (Documentation/arch/arm64/booting.rst, "Call the kernel image"):
/// the 64-byte header's fields, checked. The VMM places the image at a 2 MiB-aligned base plus
/// `textOffset`, as the boot protocol requires, with `imageSize` bytes free from there (the
/// kernel's BSS and initial page tables lie past the file's end).
public struct LinuxImage: Sendable, Equatable {
    /// The header's text_offset: where in its 2 MiB-aligned region the image goes.
    public let textOffset: UInt64
    /// image_size: the bytes from the load address the kernel uses (at least the file's size).
    public let imageSize: UInt64
    /// flags: bit 0 big-endian, bits 2:1 the kernel's page size (1 = 4 KiB), bit 3 "anywhere".
    public let flags: UInt64

    /// "ARM\x64" at offset 56.
    static let magic: UInt32 = 0x644D_5241
    static let headerSize = 64

    public enum ImageError: Error, Equatable, Sendable, CustomStringConvertible {
        case notLinux(name: String)
        case unsupported(name: String, what: String)

        public var description: String {
            switch self {
            case let .notLinux(name):
                "\(name): not a Linux arm64 Image (no \"ARM\\x64\" magic at byte 56; a compressed vmlinuz must be unpacked first)"
            case let .unsupported(name, what): "\(name): unsupported Linux Image: \(what)"
            }
        }
    }

    /// Whether `bytes` starts with an arm64 Image header (its magic).
    public static func isImage(_ bytes: [UInt8]) -> Bool {
        bytes.count >= headerSize && field32(bytes, 56) == magic
    }

    public init(bytes: [UInt8], name: String) throws(ImageError) {
        guard Self.isImage(bytes) else { throw .notLinux(name: name) }
        textOffset = Self.field64(bytes, 8)
        let size = Self.field64(bytes, 16)
        flags = Self.field64(bytes, 24)
        // image_size 0 is a kernel older than 3.17, which also had a text_offset of unknown
        // endianness: not supported.
        guard size != 0 else { throw .unsupported(name: name, what: "image_size is 0 (a kernel before Linux 3.17)") }
        guard flags & 1 == 0 else { throw .unsupported(name: name, what: "big-endian kernel") }
        let pageSize = (flags >> 1) & 3
        guard pageSize == 0 || pageSize == 1 else {
            throw .unsupported(name: name, what: "the kernel uses \(pageSize == 2 ? "16" : "64") KiB pages; pvm's CPU implements the 4 KiB granule only")
        }
        guard textOffset < 2 << 20, textOffset % 4096 == 0 else {
            throw .unsupported(name: name, what: "text_offset \(hex(textOffset)) is not a page offset inside 2 MiB")
        }
        guard size >= UInt64(bytes.count), size <= 1 << 32 else {
            throw .unsupported(name: name, what: "image_size \(size) is smaller than the file (\(bytes.count) bytes) or above 4 GiB")
        }
        imageSize = size
    }

    static func field32(_ b: [UInt8], _ at: Int) -> UInt32 {
        (0 ..< 4).reduce(0) { $0 | UInt32(b[at + $1]) << (8 * UInt32($1)) }
    }

    static func field64(_ b: [UInt8], _ at: Int) -> UInt64 {
        (0 ..< 8).reduce(0) { $0 | UInt64(b[at + $1]) << (8 * UInt64($1)) }
    }
}

/// A Linux kernel to boot instead of an ELF payload (`pvm boot --kernel`): the Image, the
/// initramfs, the command line. pvmfw checks both digests before it enters the kernel.
public struct LinuxBoot: Sendable {
    public var initrd: [UInt8]?
    public var commandLine: String

    public init(initrd: [UInt8]?, commandLine: String) {
        self.initrd = initrd
        self.commandLine = commandLine
    }
}

/// Where a Linux kernel and its initramfs go in guest RAM, as crosvm places them for a
/// protected VM: the Image at the start of RAM (plus its text_offset), the initramfs at the
/// next 2 MiB boundary after the kernel's image_size, the device tree at the end of RAM with
/// the restricted DMA pool below it.
struct LinuxPlacement: Sendable {
    let image: LinuxImage
    /// The Image file's bytes in guest-physical memory.
    let kernel: Range<UInt64>
    let initrd: Range<UInt64>?

    init(kernel bytes: [UInt8], name: String, linux: LinuxBoot, layout: MachineLayout) throws(VMMError) {
        guard layout.architecture == .aarch64 else {
            throw .linuxPlacement("\(name): a Linux arm64 Image needs the AArch64 machine (--backend interp)")
        }
        do { image = try LinuxImage(bytes: bytes, name: name) } catch { throw .linux(error) }
        let base = AArch64Layout.linuxKernel + image.textOffset
        kernel = base ..< base + UInt64(bytes.count)
        let kernelEnd = base + image.imageSize
        var end = kernelEnd
        if let initrd = linux.initrd {
            let start = (kernelEnd + (2 << 20) - 1) & ~((2 << 20) - 1)
            self.initrd = start ..< start + UInt64(initrd.count)
            end = start + UInt64(initrd.count)
        } else {
            self.initrd = nil
        }
        // Below the restricted DMA pool, which sits under the device tree.
        let limit = layout.handoff - AArch64Layout.restrictedPoolSize
        guard end <= limit else {
            let needed = (end - AArch64Layout.ramBase + AArch64Layout.fdtMaxSize + AArch64Layout.restrictedPoolSize + (4 << 20) + (1 << 20) - 1) >> 20
            throw .linuxPlacement("\(name): the kernel (\(image.imageSize >> 20) MiB with its BSS)"
                                  + (linux.initrd.map { " and the \($0.count >> 10) KiB initramfs" } ?? "")
                                  + " do not fit below the DMA pool and device tree at \(hex(limit)); use --memory \(needed)M or more")
        }
    }
}
