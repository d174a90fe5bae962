import ArgumentParser
import EL2
import Foundation
import KVMBackend
import Synchronization
import Regression
import Tracing
import VMM

/// Runs one scenario on one backend: builds the machine from the scenario's `pvm boot` flags,
/// records the transcript from the trace (kept in a file, deleted when the scenario passes),
/// reads the named pages' states before teardown, checks teardown, and compares.
struct ScenarioRunner: Sendable {
    enum Verdict: Equatable, Sendable {
        case passed
        case failed(String)
        case skipped(String)
        /// The scenario could not run: a bad image, bad flags, a VMM error.
        case error(String)
    }

    struct Result: Sendable {
        let scenario: Scenario
        let backend: GuestOptions.BackendKind
        let verdict: Verdict
        let seconds: Double
        /// The full trace, when it was kept (a failure).
        let tracePath: String?
        /// What the run did, for `--record`.
        let transcript: Transcript
        let outcome: String
        let pages: [Scenario.PageExpectation]
    }

    let deterministic: UInt64?
    let traceDirectory: String
    /// Record mode: no comparison; named pages are the ones the payload's calls touched.
    let recording: Bool

    func run(_ scenario: Scenario, on backend: GuestOptions.BackendKind) -> Result {
        let start = monotonicNanoseconds()
        func result(_ v: Verdict, trace: String? = nil, transcript: Transcript = Transcript(), outcome: String = "",
                    pages: [Scenario.PageExpectation] = []) -> Result {
            Result(scenario: scenario, backend: backend, verdict: v, seconds: Double(monotonicNanoseconds() - start) / 1e9,
                   tracePath: trace, transcript: transcript, outcome: outcome, pages: pages)
        }
        if let why = scenario.skips[backend.rawValue] { return result(.skipped(why)) }
        if backend == .kvm, let why = KVMBackend.unavailableReason() { return result(.skipped(why)) }
        var flags = scenario.flags + ["--backend", backend.rawValue]
        if let name = scenario.linuxKernel {
            if backend == .kvm { return result(.skipped("a Linux arm64 kernel runs on the interpreter")) }
            guard let cached = LinuxCache.find(name) else { return result(.skipped(LinuxCache.missing(name))) }
            flags += ["--kernel", cached.kernel, "--initrd", cached.initrd, "--append", scenario.append ?? ""]
        }
        if let deterministic, backend == .interp { flags += ["--deterministic", String(deterministic)] }
        let options: GuestOptions
        do {
            options = try GuestOptions.parse(flags)
            try options.check()
        } catch {
            return result(.error("\(scenario.path): flags: \(GuestOptions.message(for: error).split(separator: "\n").first ?? "")"))
        }
        let image = scenario.linuxKernel == nil ? Self.resolve(scenario.image, relativeTo: scenario.path) : "hello"
        let built: (MachineConfiguration, any ExecutionBackend)
        do { built = try options.machine(image: image, command: "test", quiet: true) } catch {
            return result(.error("\(scenario.path): \(error)"))
        }
        var (configuration, executor) = built
        let layout = MachineLayout(architecture: executor.architecture, ram: configuration.memory)
        // The payload's extent, as payload.h computes __scratch_start: the end of its last segment.
        let segments = (try? ELFImage(bytes: configuration.payload, name: "payload", window: 0 ..< .max,
                                      machine: executor.architecture))?.segments ?? []
        let imageStart = segments.map(\.address).min() ?? layout.payloadWindow.lowerBound
        let imageEnd = ((segments.map { $0.address &+ $0.memorySize }.max() ?? imageStart) &+ 0xFFF) & ~0xFFF
        let map = AddressMap(ram: layout.ram.lowerBound ..< layout.ram.upperBound, image: imageStart ..< imageEnd, devices: [
            ("console", layout.console ..< layout.console + 0x1000), ("block", layout.block ..< layout.block + 0x1000),
            ("dma", layout.dma ..< layout.dma + 0x1000),
        ])
        let recorder = TranscriptRecorder(map: map, waitForPayload: options.firmware == nil)
        var actions: [(action: Scenario.HostAction, point: CapturePoint)] = []
        for a in scenario.hostActions {
            guard let point = CapturePoint(a.event) else {
                return result(.error("\(scenario.path):\(a.line): host \(a.kind): '\(a.event)' is not an event (\(CapturePoint.forms))"))
            }
            actions.append((a, point))
        }
        let machineBox = Mutex<Machine?>(nil)
        let seen = Mutex([Int](repeating: 0, count: actions.count))
        // The name comes from a user's file: only its safe characters go into the path.
        let safeName = String(scenario.name.map { $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" ? $0 : "_" }.prefix(64))
        let tracePath = traceDirectory + "/pvm-test-\(safeName)-\(backend.rawValue)-\(getpid()).jsonl"
        do {
            configuration.trace = try EventTrace(path: tracePath) { [actions] event in
                recorder.observe(event)
                for (k, a) in actions.enumerated() where a.point.counts(event) && recorder.isInPayload {
                    let n = seen.withLock { counts -> Int in
                        counts[k] += 1
                        return counts[k]
                    }
                    guard n == a.point.occurrence, let machine = machineBox.withLock({ $0 }) else { continue }
                    Self.hostAction(a.action, machine: machine, recorder: recorder, vcpu: Self.vcpu(of: event))
                }
            }
        } catch { return result(.error("\(error)")) }
        let console = ConsoleScript(typed: scenario.typed, prompt: scenario.prompt)
        configuration.console = { bytes in
            recorder.console(bytes)
            if let line = console.output(bytes), let machine = machineBox.withLock({ $0 }) {
                machine.consoleInput(Array((line + "\n").utf8))
            }
        }
        let outcome: String
        var pages: [Scenario.PageExpectation] = []
        var sharedAtEnd = 0
        do {
            let machine = try Machine(configuration, backend: executor)
            machineBox.withLock { $0 = machine }
            outcome = try machine.run().name
            // A kernel's pages (`transcript calls`) are counted (`shared-pages`), not named.
            let wanted = recording && !scenario.callsOnly ? Array(Set(scenario.pages.map(\.address) + recorder.namedPages)).sorted {
                (map.ipa($0) ?? 0) < (map.ipa($1) ?? 0)
            } : scenario.pages.map(\.address)
            for (n, address) in wanted.enumerated() {
                let line = recording && !scenario.callsOnly ? n : scenario.pages[n].line
                pages.append(.init(address: address, state: Self.state(of: address, map: map, in: machine), line: line))
            }
            if scenario.sharedPages != nil { sharedAtEnd = Self.sharedPages(in: machine, layout: layout) }
            let teardown = try machine.teardown()
            guard teardown.isClean else {
                return result(.failed("teardown: \(teardown.leaks.count) leaked pages, \(teardown.violations.count) invariant violations"
                                      + (teardown.violations.first.map { ": \($0)" } ?? "")), trace: tracePath)
            }
        } catch {
            return result(.error("\(scenario.path) on \(backend.rawValue): \(error)"), trace: tracePath)
        }
        let transcript = recorder.transcript
        if recording {
            try? FileManager.default.removeItem(atPath: tracePath)
            return result(.passed, transcript: transcript, outcome: outcome, pages: pages)
        }
        var problem: String?
        if outcome != scenario.outcome {
            problem = "outcome (\(scenario.path):\(scenario.outcomeLine)):\n      expected: \(scenario.outcome)\n      actual:   \(outcome)"
        } else if let d = TranscriptComparison.firstDivergence(scenario, transcript.compared(by: scenario)) {
            problem = d
        } else if let missing = console.firstMissing(scenario.consoleExpectations) {
            problem = "console (\(scenario.path):\(missing.line)):\n      expected: \(missing.text)\n      actual:   (not printed, or not in this order)"
        } else if let wanted = scenario.sharedPages, wanted != sharedAtEnd {
            problem = "pages shared with the host at the end (\(scenario.path):\(scenario.sharedPagesLine)):\n      expected: \(wanted)\n      actual:   \(sharedAtEnd)"
        } else {
            for (e, a) in zip(scenario.pages, pages) where e.state != a.state {
                problem = "page \(e.address) at the end (\(scenario.path):\(e.line)):\n      expected: \(e.state)\n      actual:   \(a.state)"
                break
            }
        }
        if let problem { return result(.failed(problem), trace: tracePath, transcript: transcript, outcome: outcome, pages: pages) }
        try? FileManager.default.removeItem(atPath: tracePath)
        return result(.passed, transcript: transcript, outcome: outcome, pages: pages)
    }

    /// Does `action` (Scenario.HostAction); its result joins the transcript of the vCPU whose
    /// event triggered it, as `host KIND ADDRESS [PAGES] -> RESULT`.
    static func hostAction(_ action: Scenario.HostAction, machine: Machine, recorder: TranscriptRecorder, vcpu: Int) {
        if action.kind == "touch" { return hostTouch(action.address, machine: machine, recorder: recorder, vcpu: vcpu) }
        guard let ipa = recorder.ipa(action.address) else { return }
        let gfn = GFN(ipa >> 12), memory = machine.guestMemory
        let outcome: String
        switch action.kind {
        case "pin":
            do { outcome = try memory.pin(gfn) ? "pinned" : "no pin (EL2 unmaps it from every IOMMU)" } catch { outcome = "\(error)" }
        case "unpin":
            do { outcome = try memory.unpin(gfn) ? "0" : "no pin held" } catch { outcome = "\(error)" }
        case "ref":
            memory.holdTransientReference(gfn)
            outcome = memory.pinMode == .longterm ? "held" : "none taken"
        default:
            let to: GuestMemoryAttribute = action.kind == "convert-private" ? .private : .shared
            do {
                let (changed, retries) = try machine.convertGuestMemoryRetrying(gfn: gfn, pages: action.pages, to: to)
                outcome = "0 (\(changed) changed" + (retries > 0 ? ", after \(retries) -EAGAIN)" : ")")
            } catch {
                let page = recorder.name(of: error.gfn.ipa.rawValue)
                outcome = "\(error.errno) at \(page)"
            }
        }
        recorder.host(action.label + " -> " + outcome, vcpu: vcpu)
    }

    /// The host reads the guest page at `address`, as a VMM touching guest memory does. If EL2
    /// refuses (the page is the protected guest's), the host force-reclaims it
    /// (`__pkvm_host_force_reclaim_page_guest`), as Android's host does after such a fault.
    /// Both results join the transcript of the vCPU whose event triggered it.
    static func hostTouch(_ address: String, machine: Machine, recorder: TranscriptRecorder, vcpu: Int) {
        guard let ipa = recorder.ipa(address) else { return }
        let view = try? machine.hypervisor.guestPageView(vm: machine.handle, gfn: GFN(ipa >> 12))
        do {
            _ = try machine.accessor.read(gpa: ipa, count: 1)
            recorder.host("host read \(address) -> 0", vcpu: vcpu)
        } catch {
            recorder.host("host read \(address) -> \(error.error)", vcpu: vcpu)
            guard let pa = view?.phys else { return recorder.host("host force-reclaim \(address) -> -ENOENT", vcpu: vcpu) }
            let outcome: String
            do {
                try machine.hypervisor.hostForceReclaimPageGuest(pa)
                outcome = "0"
            } catch { outcome = "\(error)" }
            recorder.host("host force-reclaim \(address) -> \(outcome)", vcpu: vcpu)
        }
    }

    static func vcpu(of event: TraceEvent) -> Int {
        switch event {
        case let .hypercall(h): h.vcpu
        case let .fault(f): if case let .vcpu(_, index) = f.source { index } else { 0 }
        case let .power(vcpu, _): vcpu
        default: 0
        }
    }

    /// `guest=STATE host=STATE hyp=STATE` of the guest page at `address`, from EL2's tables.
    static func state(of address: String, map: AddressMap, in machine: Machine) -> String {
        guard let ipa = map.ipa(address) else { return "guest=? host=? hyp=?" }
        guard let view = try? machine.hypervisor.guestPageView(vm: machine.handle, gfn: GFN(ipa >> 12)) else {
            return "guest=? host=? hyp=?"
        }
        guard let pa = view.phys, let page = machine.hypervisor.pageView(pa) else {
            if (try? machine.hypervisor.isPoisoned(vm: machine.handle, ipa: IPA(ipa))) == true { return "guest=POISONED host=- hyp=-" }
            return "guest=\(view.state) host=- hyp=-"
        }
        return "guest=\(view.state) host=\(page.host) hyp=\(page.hyp)"
    }

    /// Guest pages in SHARED_OWNED state (shared with the host) now, from EL2's tables.
    static func sharedPages(in machine: Machine, layout: MachineLayout) -> Int {
        var n = 0
        for gfn in stride(from: layout.memory.lowerBound >> 12, to: layout.memory.upperBound >> 12, by: 1) {
            if let view = try? machine.hypervisor.guestPageView(vm: machine.handle, gfn: GFN(gfn)), view.state == .sharedOwned {
                n += 1
            }
        }
        return n
    }

    /// A built-in name stays a name; a path is taken relative to the scenario file's directory.
    static func resolve(_ image: String, relativeTo scenarioPath: String) -> String {
        guard image.contains("/") || image.hasSuffix(".elf") else { return image }
        if image.hasPrefix("/") { return image }
        let dir = scenarioPath.split(separator: "/", omittingEmptySubsequences: false).dropLast().joined(separator: "/")
        return dir.isEmpty ? image : dir + "/" + image
    }
}
