import EL2
import Tracing
import HostMemory

/// A host access to guest memory that EL2 refused: the VMM's view of pKVM's host stage-2 fault
/// (`handle_host_mem_abort` answering -EPERM).
public struct HostAccessError: Error, Equatable, Sendable, CustomStringConvertible {
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
/// the host may touch those pages (`Hypervisor.withHostAccess`, which maps host-owned pages into
/// the host stage-2 on demand as host_stage2_idmap does) and copies while EL2 still holds the
/// host lock, so no guest MEM_UNSHARE on another vCPU can take a page away between the check and
/// the copy. The copy goes through the host view, whose protection EL2 keeps in step with the
/// host stage-2: a bypass would fault, not leak.
public final class HostAccessor: Sendable {
    let hypervisor: Hypervisor
    let hostView: SharedMemoryFile.View
    let ramBase: UInt64
    /// Guest-physical address of the host view's first byte.
    let guestBase: UInt64
    let guestSize: UInt64
    let trace: EventTrace?

    init(hypervisor: Hypervisor, hostView: SharedMemoryFile.View, ramBase: UInt64, guestBase: UInt64, guestSize: UInt64,
         trace: EventTrace?) {
        self.hypervisor = hypervisor
        self.hostView = hostView
        self.ramBase = ramBase
        self.guestBase = guestBase
        self.guestSize = guestSize
        self.trace = trace
    }

    /// Reads `count` bytes of guest RAM at `gpa`.
    public func read(gpa: UInt64, count: Int) throws(HostAccessError) -> [UInt8] {
        try access(gpa: gpa, count: count, isWrite: false) { bytes in Array(UnsafeRawBufferPointer(bytes)) }
    }

    /// Writes `bytes` to guest RAM at `gpa`.
    public func write(gpa: UInt64, _ bytes: [UInt8]) throws(HostAccessError) {
        guard !bytes.isEmpty else { return }
        try access(gpa: gpa, count: bytes.count, isWrite: true) { window in
            bytes.withUnsafeBytes { window.copyMemory(from: $0) }
        }
    }

    /// Checks `[gpa, gpa + count)` with EL2 and runs `body` on the host view's bytes while EL2
    /// holds the host lock.
    private func access<R>(gpa: UInt64, count: Int, isWrite: Bool,
                           _ body: (UnsafeMutableRawBufferPointer) -> R) throws(HostAccessError) -> R {
        let offset = gpa &- guestBase
        let pa = ramBase &+ offset
        guard count > 0, gpa >= guestBase, offset < guestSize, UInt64(count) <= guestSize - offset else {
            throw HostAccessError(gpa: gpa, pa: pa, count: count, isWrite: isWrite, error: .EFAULT)
        }
        let start = Int(offset)
        do {
            return try hypervisor.withHostAccess(PhysAddr(pa), count: count) {
                // Inside the host view: offset + count <= guestSize, checked above.
                body(UnsafeMutableRawBufferPointer(rebasing: hostView.buffer[start ..< start + count]))
            }
        } catch {
            if let trace {
                trace.record(.fault(FaultRecord(
                    source: .host(vm: nil), gpa: gpa, access: isWrite ? .write : .read, size: count, action: .refused,
                    reason: "EL2 refused the host access (handle_host_mem_abort)",
                    ownership: hypervisor.ownership(of: PhysAddr(pa)), error: error)))
            }
            throw HostAccessError(gpa: gpa, pa: pa, count: count, isWrite: isWrite, error: error)
        }
    }
}
