/// The firmware and guest images built from Firmware/ and GuestImages/ at build time (the
/// GuestImageBuilder plugin runs scripts/build-guests.sh), so `pvm boot` needs no file.
public enum EmbeddedImage: String, CaseIterable, Sendable {
    case firmware, hello, share, giveaway, bench, dma, abi, convert

    /// The x86-64 ELF file's bytes (the same as `bytes(for: "x86-64")`).
    public var bytes: [UInt8] { Base64.decode(encoded.x86) }

    /// The ELF file's bytes for `architecture`: "x86-64" or "aarch64" (both are built from the
    /// same sources by scripts/build-guests.sh). Any other name has no image: the result is empty.
    public func bytes(for architecture: String) -> [UInt8] {
        switch architecture {
        case "x86-64": Base64.decode(encoded.x86)
        case "aarch64": Base64.decode(encoded.aarch64)
        default: []
        }
    }

    /// The base64 text of both builds.
    private var encoded: (x86: String, aarch64: String) {
        switch self {
        case .firmware: (EmbeddedImageData.firmware, EmbeddedImageData.firmware_aarch64)
        case .hello: (EmbeddedImageData.hello, EmbeddedImageData.hello_aarch64)
        case .share: (EmbeddedImageData.share, EmbeddedImageData.share_aarch64)
        case .giveaway: (EmbeddedImageData.giveaway, EmbeddedImageData.giveaway_aarch64)
        case .bench: (EmbeddedImageData.bench, EmbeddedImageData.bench_aarch64)
        case .dma: (EmbeddedImageData.dma, EmbeddedImageData.dma_aarch64)
        case .abi: (EmbeddedImageData.abi, EmbeddedImageData.abi_aarch64)
        case .convert: (EmbeddedImageData.convert, EmbeddedImageData.convert_aarch64)
        }
    }

    /// The EL2 stand-in `pvm bench interp` runs pvm's AArch64 firmware and bench image on under
    /// qemu-system-aarch64 (Bench/qemu-el2-stub): not a guest, a reference to compare against.
    public static var qemuEL2Stub: [UInt8] { Base64.decode(EmbeddedImageData.qemuEL2Stub) }

    /// The guest images (not the firmware), by name.
    public static var guests: [EmbeddedImage] { allCases.filter { $0 != .firmware } }
}

/// Standard base64 (RFC 4648), decoding only what the build script writes.
enum Base64 {
    static func decode(_ text: String) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(text.utf8.count * 3 / 4)
        var accumulator: UInt32 = 0, bits = 0
        for c in text.utf8 {
            let v: UInt32
            switch c {
            case UInt8(ascii: "A") ... UInt8(ascii: "Z"): v = UInt32(c - UInt8(ascii: "A"))
            case UInt8(ascii: "a") ... UInt8(ascii: "z"): v = UInt32(c - UInt8(ascii: "a")) + 26
            case UInt8(ascii: "0") ... UInt8(ascii: "9"): v = UInt32(c - UInt8(ascii: "0")) + 52
            case UInt8(ascii: "+"): v = 62
            case UInt8(ascii: "/"): v = 63
            default: continue  // padding and whitespace
            }
            accumulator = accumulator << 6 | v
            bits += 6
            if bits >= 8 {
                bits -= 8
                out.append(UInt8(truncatingIfNeeded: accumulator >> UInt32(bits)))
            }
        }
        return out
    }
}
