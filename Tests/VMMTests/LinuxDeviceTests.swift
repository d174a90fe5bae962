import Synchronization
import Testing
@testable import VMM

/// The PL011's receive side and interrupt line, and the Linux Image header checks.
@Suite struct LinuxDeviceTests {
    final class Recorder: Sendable {
        let printed = Mutex<[[UInt8]]>([])
        let line = Mutex(false)
    }

    func uart(_ r: Recorder) -> PL011Device {
        PL011Device(console: { bytes in r.printed.withLock { $0.append(bytes) } },
                    interrupt: { level in r.line.withLock { $0 = level } })
    }

    @Test func receivedBytesAreReadInOrderAndRaiseTheReceiveInterrupt() {
        let r = Recorder(), u = uart(r)
        #expect(u.read(offset: 0x18, size: 4) & 0x10 != 0)       // RXFE
        u.write(offset: 0x38, size: 4, value: 1 << 4 | 1 << 6)    // RXIM, RTIM
        #expect(!r.line.withLock { $0 })
        u.receive(Array("ls\n".utf8))
        #expect(r.line.withLock { $0 })
        #expect(u.read(offset: 0x40, size: 4) == 1 << 4 | 1 << 6)  // MIS
        #expect(u.read(offset: 0x00, size: 4) == UInt64(UInt8(ascii: "l")))
        #expect(u.read(offset: 0x00, size: 4) == UInt64(UInt8(ascii: "s")))
        #expect(u.read(offset: 0x00, size: 4) == 0x0A)
        #expect(u.read(offset: 0x18, size: 4) & 0x10 != 0)
        #expect(!r.line.withLock { $0 })
    }

    @Test func loopbackReceivesWhatIsSentAndAPromptIsShownWhenTransmitIsMasked() {
        let r = Recorder(), u = uart(r)
        u.write(offset: 0x30, size: 4, value: 0x381)              // UARTEN, TXE, RXE, LBE
        u.write(offset: 0x00, size: 4, value: 0x41)
        #expect(r.printed.withLock { $0.isEmpty })
        #expect(u.read(offset: 0x00, size: 4) == 0x41)
        u.write(offset: 0x30, size: 4, value: 0x301)
        for b in "pvm> ".utf8 { u.write(offset: 0x00, size: 4, value: UInt64(b)) }
        #expect(r.printed.withLock { $0.isEmpty })                // no newline yet
        u.write(offset: 0x38, size: 4, value: 0)                  // pl011_stop_tx
        #expect(r.printed.withLock { $0 } == [Array("pvm> ".utf8)])
    }

    /// A 64-byte arm64 Image header: text_offset, image_size, flags, the magic.
    func header(textOffset: UInt64 = 0, imageSize: UInt64 = 1 << 20, flags: UInt64 = 0b1010, size: Int = 4096) -> [UInt8] {
        var b = [UInt8](repeating: 0, count: size)
        func put(_ v: UInt64, _ at: Int, _ n: Int) { for i in 0 ..< n { b[at + i] = UInt8(truncatingIfNeeded: v >> (8 * UInt64(i))) } }
        put(textOffset, 8, 8)
        put(imageSize, 16, 8)
        put(flags, 24, 8)
        put(0x644D_5241, 56, 4)
        return b
    }

    @Test func anImageHeaderIsCheckedBeforeAnythingIsPlaced() throws {
        let image = try LinuxImage(bytes: header(), name: "k")
        #expect(image.imageSize == 1 << 20 && image.textOffset == 0)
        #expect(throws: LinuxImage.ImageError.notLinux(name: "k")) { try LinuxImage(bytes: [UInt8](repeating: 0, count: 64), name: "k") }
        #expect(throws: LinuxImage.ImageError.self) { try LinuxImage(bytes: header(flags: 1), name: "k") }           // big-endian
        #expect(throws: LinuxImage.ImageError.self) { try LinuxImage(bytes: header(flags: 3 << 1), name: "k") }      // 64 KiB pages
        #expect(throws: LinuxImage.ImageError.self) { try LinuxImage(bytes: header(imageSize: 0), name: "k") }
        #expect(throws: LinuxImage.ImageError.self) { try LinuxImage(bytes: header(imageSize: 100), name: "k") }      // < file
        #expect(throws: LinuxImage.ImageError.self) { try LinuxImage(bytes: header(textOffset: 0x123), name: "k") }
    }

    @Test func aKernelThatDoesNotFitNamesTheMemoryItNeeds() {
        let layout = MachineLayout(architecture: .aarch64, ram: 32 << 20)
        let big = header(imageSize: 40 << 20)
        #expect {
            _ = try LinuxPlacement(kernel: big, name: "k", linux: LinuxBoot(initrd: nil, commandLine: ""), layout: layout)
        } throws: { error in
            "\(error)".contains("use --memory") && "\(error)".contains("do not fit")
        }
        let x86 = MachineLayout(architecture: .x86_64, ram: 64 << 20)
        #expect(throws: VMMError.self) {
            _ = try LinuxPlacement(kernel: header(), name: "k", linux: LinuxBoot(initrd: nil, commandLine: ""), layout: x86)
        }
    }
}
