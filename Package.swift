// swift-tools-version: 6.0
//
// pvm: a Swift emulator of a pKVM/Gunyah-style protected-VM hypervisor.
//
// Modules follow the architecture and depend one way:
//
//   pvm (CLI) ──► ModelScript ──────────────────────────► EL2
//        │  ├───► KVMBackend ──► VMM (machine core) ──────┤
//        │  │         └──► KVM ──► CKVM        │           │
//        │  ├───► ScriptedBackend ──► VMM      └► HostMemory (EL2 never allocates or calls the OS)
//        │  └───► EmbeddedImages
//
// EL2 is pure Swift and deterministic: page ownership, stage-2 tables, pKVM transitions, and
// the guest hypercall ABI of each pKVM profile (what kvm_handle_pvm_hvc64 and the host answer).
// HostMemory wraps the few syscalls that back guest-physical RAM (mmap, madvise, munmap) and
// the threads pvm runs, and supplies EL2 with a fast page-clearing primitive (CHostMemory:
// non-temporal stores). Fuzzing is `pvm fuzz` and `pvm check`: a reference model and random or
// exhaustive sequences of operations against EL2.
// ModelScript is the `pvm model` language, kept out of the executable so tests drive it in-process.
// KVM is a typed layer over /dev/kvm (CKVM: the ioctl shim and uAPI definitions); it knows no
// ownership rule. VMM is the backend-neutral machine core, pKVM's host: guest memory, loading,
// vCPU threads, PSCI, the stage-2 fault path, devices, teardown and the calls into EL2. It runs
// guests through the `ExecutionBackend` seam: KVMBackend (x86-64 on /dev/kvm, mirroring EL2's
// guest stage-2 into the memslot) and ScriptedBackend (a test double replaying exits).
// EmbeddedImages carries the firmware and guest images, built from Firmware/ and GuestImages/ by
// the GuestImageBuilder plugin with the toolchain's clang and ld.lld.
// Disassembly wraps Capstone (CCapstone, Debian's libcapstone-dev) for fault decoding and traces.
// CKVMBaseline is the minimal C KVM loop `pvm bench hypercall` compares against.
import PackageDescription

let package = Package(
    name: "pvm",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "pvm", targets: ["pvm"]),
        .library(name: "EL2", targets: ["EL2"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-crypto", "3.12.0"..<"5.0.0"),
    ],
    targets: [
        .target(name: "EL2"),
        .target(name: "CAArch64"),
        .target(name: "AArch64", dependencies: ["CAArch64"]),
        .target(name: "CHostMemory"),
        .target(name: "HostMemory", dependencies: ["CHostMemory"]),
        .target(name: "ModelScript", dependencies: ["EL2", "HostMemory", "Inspection", "Tracing"]),
        .target(name: "CKVM"),
        .target(name: "KVM", dependencies: ["CKVM"]),
        .target(name: "CKVMBaseline"),
        .systemLibrary(name: "CCapstone", pkgConfig: "capstone", providers: [.apt(["libcapstone-dev"])]),
        .target(name: "Disassembly", dependencies: ["CCapstone"]),
        .target(name: "Tracing", dependencies: ["EL2", "Disassembly"]),
        .target(name: "Inspection", dependencies: ["EL2", "Tracing"]),
        .plugin(name: "GuestImageBuilder", capability: .buildTool()),
        .target(name: "EmbeddedImages", plugins: ["GuestImageBuilder"]),
        .target(
            name: "VMM",
            dependencies: ["EL2", "HostMemory", "Tracing", .product(name: "Crypto", package: "swift-crypto")]
        ),
        .target(name: "KVMBackend", dependencies: ["VMM", "EL2", "KVM", "HostMemory", "Disassembly", "Tracing"]),
        .target(name: "ScriptedBackend", dependencies: ["VMM", "EL2", "Tracing"]),
        .target(name: "InterpBackend", dependencies: ["VMM", "EL2", "AArch64", "HostMemory", "Disassembly", "Tracing"]),
        .target(name: "Fuzzing", dependencies: ["EL2", "ModelScript", "HostMemory"]),
        .target(name: "Regression", dependencies: ["EL2", "Tracing"], resources: [.copy("Scenarios")]),
        .executableTarget(
            name: "pvm",
            dependencies: [
                "EL2", "HostMemory", "ModelScript", "VMM", "KVMBackend", "ScriptedBackend", "InterpBackend", "EmbeddedImages", "KVM",
                "CKVMBaseline", "Tracing", "Inspection", "Fuzzing", "Regression",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .testTarget(name: "EL2Tests", dependencies: ["EL2", "HostMemory"]),
        .testTarget(name: "AArch64Tests", dependencies: ["AArch64"]),
        .testTarget(name: "InterpBackendTests", dependencies: ["InterpBackend", "ScriptedBackend", "VMM", "EL2", "EmbeddedImages", "Tracing"]),
        .testTarget(name: "ModelScriptTests", dependencies: ["ModelScript", "EL2"]),
        .testTarget(name: "FuzzingTests", dependencies: ["Fuzzing", "ModelScript", "EL2"]),
        .testTarget(name: "PVMCommandTests", dependencies: ["pvm"]),
        .testTarget(name: "KVMTests", dependencies: ["KVM"]),
        .testTarget(name: "VMMTests", dependencies: ["VMM", "ScriptedBackend", "EL2", "EmbeddedImages", "Tracing"]),
        .testTarget(
            name: "KVMBackendTests",
            dependencies: ["KVMBackend", "InterpBackend", "ScriptedBackend", "VMM", "EL2", "KVM", "EmbeddedImages", "Tracing", "Disassembly"]
        ),
        .testTarget(name: "TracingTests", dependencies: ["Tracing", "Disassembly", "EL2"]),
        .testTarget(name: "InspectionTests", dependencies: ["Inspection", "ModelScript", "EL2"]),
        .testTarget(name: "RegressionTests", dependencies: ["Regression", "Tracing", "EL2"]),
    ]
)
