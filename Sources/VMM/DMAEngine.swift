import EL2
import Tracing

/// A DMA engine: a bus master that copies or fills memory through the SMMU as its own stream,
/// one chunk at a time, never touching memory any other way. It is the data mover of every
/// pvm device: the host can drive one directly (`perform`), the guest drives one assigned to it
/// through MMIO registers, and the block device's backend uses one.
///
/// A chunk never crosses a page; when the SMMU faults, the engine stops there, so the bytes
/// moved are exactly the chunks before the fault.
public final class DMAEngine: Sendable {
    public let name: String
    public let stream: StreamID
    let hypervisor: Hypervisor
    let trace: EventTrace?

    /// What to move. Addresses are IOVAs: physical addresses in the host's identity domain, a
    /// paging domain's IOVAs, or the guest's IPAs for an assigned engine.
    public enum Operation: Sendable, Equatable {
        case copy(from: UInt64, to: UInt64, count: Int)
        case fill(at: UInt64, byte: UInt8, count: Int)
    }

    /// How far an operation got.
    public struct Outcome: Sendable, Equatable {
        /// Bytes written at the destination.
        public let bytes: Int
        /// The SMMU fault that stopped it, if one did.
        public let fault: DMAFault?
    }

    /// Largest chunk (one page).
    public static let maxChunk = 4096

    public init(name: String, stream: StreamID, hypervisor: Hypervisor, trace: EventTrace?) {
        self.name = name
        self.stream = stream
        self.hypervisor = hypervisor
        self.trace = trace
    }

    /// Runs `operation` in chunks of at most `chunk` bytes; `between` runs after every chunk
    /// (a device pacing its transfer over time). Returns the bytes written and the fault that
    /// stopped it.
    public func perform(_ operation: Operation, chunk: Int = maxChunk, between: () -> Void = {}) -> Outcome {
        let chunk = max(1, min(chunk, Self.maxChunk))
        let (destination, count): (UInt64, Int)
        switch operation {
        case let .copy(_, to, n): (destination, count) = (to, n)
        case let .fill(at, _, n): (destination, count) = (at, n)
        }
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: chunk, alignment: 16)
        defer { buffer.deallocate() }
        let began = trace?.now ?? 0
        var done = 0
        var fault: DMAFault?
        while done < count, fault == nil {
            let dst = destination &+ UInt64(done)
            // Stay inside one destination page (and one source page for a copy).
            var n = min(chunk, count - done, Int(pageSize - (dst & (pageSize - 1))))
            let piece = UnsafeMutableRawBufferPointer(rebasing: buffer[0 ..< n])
            do throws(DMAFault) {
                switch operation {
                case let .copy(from, _, _):
                    let src = from &+ UInt64(done)
                    n = min(n, Int(pageSize - (src & (pageSize - 1))))
                    let part = UnsafeMutableRawBufferPointer(rebasing: buffer[0 ..< n])
                    try hypervisor.dmaRead(stream: stream, iova: src, into: part)
                    try hypervisor.dmaWrite(stream: stream, iova: dst, from: UnsafeRawBufferPointer(part))
                case let .fill(_, byte, _):
                    piece.initializeMemory(as: UInt8.self, repeating: byte)
                    try hypervisor.dmaWrite(stream: stream, iova: dst, from: UnsafeRawBufferPointer(piece))
                }
                done += n
                if done < count { between() }
            } catch {
                fault = error
            }
        }
        trace?.record(.dma(device: name, stream: stream.rawValue, iova: destination, bytes: done,
                           result: fault.map { "\($0.event.id)" } ?? "ok", duration: (trace?.now ?? 0) &- began))
        return Outcome(bytes: done, fault: fault)
    }

    /// Writes `count` bytes the device produces (`produce(offset, chunk)` fills each chunk) to
    /// `destination`, chunk by chunk. After each chunk `between(bytesSoFar)` runs; returning
    /// false abandons the transfer (a device reset).
    public func store(at destination: UInt64, count: Int, chunk: Int,
                      produce: (Int, UnsafeMutableRawBufferPointer) -> Void, between: (Int) -> Bool) -> Outcome {
        let chunk = max(1, min(chunk, Self.maxChunk))
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: chunk, alignment: 16)
        defer { buffer.deallocate() }
        let began = trace?.now ?? 0
        var done = 0
        var fault: DMAFault?
        while done < count {
            let dst = destination &+ UInt64(done)
            let n = min(chunk, count - done, Int(pageSize - (dst & (pageSize - 1))))
            let piece = UnsafeMutableRawBufferPointer(rebasing: buffer[0 ..< n])
            produce(done, piece)
            do throws(DMAFault) {
                try hypervisor.dmaWrite(stream: stream, iova: dst, from: UnsafeRawBufferPointer(piece))
            } catch {
                fault = error
                break
            }
            done += n
            if done < count, !between(done) { break }
        }
        trace?.record(.dma(device: name, stream: stream.rawValue, iova: destination, bytes: done,
                           result: fault.map { "\($0.event.id)" } ?? (done == count ? "ok" : "abandoned"),
                           duration: (trace?.now ?? 0) &- began))
        return Outcome(bytes: done, fault: fault)
    }
}
