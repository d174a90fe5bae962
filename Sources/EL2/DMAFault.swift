/// A DMA transaction the SMMU terminated: the event it recorded, and how many bytes of the
/// transfer had completed before the faulting page (a device moves data page by page, so the
/// pages before the fault were transferred, and nothing at or after it).
public struct DMAFault: Error, Sendable, Equatable, CustomStringConvertible {
    public let event: IOMMUEvent
    public let bytesTransferred: Int

    public var description: String { "\(event) after \(bytesTransferred) bytes" }
}
