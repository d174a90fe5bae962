import EL2
import Tracing
import HostMemory

/// A host access to guest memory that EL2 refused: the VMM's view of pKVM's host stage-2 fault
/// (`handle_host_mem_abort` answering -EPERM).
public struct HostAccessError: Error, Equatable, CustomStringConvertible {
    public let gpa: UInt64
    public let pa: UInt64
    public let count: Int
    public let isWrite: Bool
    public let error: HypError

    public var description: String {
        "host \(isWrite ? "write to" : "read of") \(count) bytes at GPA \(hex(gpa)) (PA \(hex(pa))) refused by EL2: \(error)"
    }
}

/// The only way the VMM's own code touches guest memory. Every access first asks EL2 whether
/// the host may touch those pages (`Hypervisor.hostAccess`, which maps host-owned pages into
/// the host stage-2 on demand as host_stage2_idmap does) and only then copies through the host
/// view, whose protection EL2 keeps in step: a bypass would fault, not leak.
public final class HostAccessor: Sendable {
    let hypervisor: Hypervisor
    let hostView: SharedMemoryFile.View
    let ramBase: UInt64
    let guestSize: UInt64
    let trace: EventTrace?

    init(hypervisor: Hypervisor, hostView: SharedMemoryFile.View, ramBase: UInt64, guestSize: UInt64, trace: EventTrace?) {
        self.hypervisor = hypervisor
        self.hostView = hostView
        self.ramBase = ramBase
        self.guestSize = guestSize
        self.trace = trace
    }

    /// Reads `count` bytes of guest RAM at `gpa`.
    public func read(gpa: UInt64, count: Int) throws(HostAccessError) -> [UInt8] {
        let offset = try check(gpa: gpa, count: count, isWrite: false)
        return Array(UnsafeRawBufferPointer(rebasing: hostView.buffer[offset ..< offset + count]))
    }

    /// Writes `bytes` to guest RAM at `gpa`.
    public func write(gpa: UInt64, _ bytes: [UInt8]) throws(HostAccessError) {
        guard !bytes.isEmpty else { return }
        let offset = try check(gpa: gpa, count: bytes.count, isWrite: true)
        bytes.withUnsafeBytes { UnsafeMutableRawBufferPointer(rebasing: hostView.buffer[offset ..< offset + bytes.count]).copyMemory(from: $0) }
    }

    /// Asks EL2, page by page, and returns the offset into the host view.
    private func check(gpa: UInt64, count: Int, isWrite: Bool) throws(HostAccessError) -> Int {
        let pa = ramBase &+ gpa
        guard count > 0, gpa < guestSize, UInt64(count) <= guestSize - gpa else {
            throw HostAccessError(gpa: gpa, pa: pa, count: count, isWrite: isWrite, error: .EFAULT)
        }
        do {
            try hypervisor.hostAccess(PhysAddr(pa), count: count)
        } catch {
            if let trace {
                trace.record(.fault(FaultRecord(
                    source: .host(vm: nil), gpa: gpa, access: isWrite ? .write : .read, size: count, action: .refused,
                    reason: "EL2 refused the host access (handle_host_mem_abort)",
                    ownership: hypervisor.ownership(of: PhysAddr(pa)), error: error)))
            }
            throw HostAccessError(gpa: gpa, pa: pa, count: count, isWrite: isWrite, error: error)
        }
        return Int(gpa)
    }
}
