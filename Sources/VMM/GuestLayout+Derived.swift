/// What follows from the table's numbers (ABI/guest-abi.table).
extension GuestLayout {
    /// Where the firmware's PT_LOAD segments must lie.
    public static let firmwareWindow: Range<UInt64> = firmwareBase ..< firmwareEnd

    /// Byte `offset` of the block device's synthetic disk (GuestImages/include/pvm_abi.h has
    /// the same formula as `PVM_BLOCK_BYTE`).
    @inline(__always) public static func blockByte(_ offset: UInt64) -> UInt8 {
        UInt8(truncatingIfNeeded: (offset >> 9) &* 31 &+ offset &* 7 &+ 0x5A)
    }

    /// Bytes of the boot configuration.
    public static var configBytes: Int { Int(configSize) }
}
