// swift-tools-version: 6.0
//
// pvm: a Swift emulator of a pKVM/Gunyah-style protected-VM hypervisor.
//
// Modules follow the architecture and depend one way:
//
//   pvm (CLI) ──► ModelScript ──► EL2
//        │                         ▲
//        └──────► HostMemory ──────┘ (test and CLI only: EL2 never allocates or calls the OS)
//
// EL2 is pure Swift and deterministic: page ownership, stage-2 tables, pKVM transitions.
// HostMemory wraps the few syscalls that back guest-physical RAM (mmap, madvise, munmap), and
// supplies EL2 with a fast page-clearing primitive (CHostMemory: non-temporal stores).
// ModelScript is the `pvm model` language, kept out of the executable so tests drive it in-process.
// The VMM (KVM backend), tracing and interpreter modules arrive with their own issues.
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
    ],
    targets: [
        .target(name: "EL2"),
        .target(name: "CHostMemory"),
        .target(name: "HostMemory", dependencies: ["CHostMemory"]),
        .target(name: "ModelScript", dependencies: ["EL2", "HostMemory"]),
        .executableTarget(
            name: "pvm",
            dependencies: [
                "EL2", "HostMemory", "ModelScript",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .testTarget(name: "EL2Tests", dependencies: ["EL2", "HostMemory"]),
        .testTarget(name: "ModelScriptTests", dependencies: ["ModelScript", "EL2"]),
        .testTarget(name: "PVMCommandTests", dependencies: ["pvm"]),
    ]
)
