import ArgumentParser

/// The `pvm` command: a pKVM/Gunyah-style protected-VM hypervisor emulator.
@main
struct PVM: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pvm",
        abstract: "Emulate a pKVM-style protected-VM hypervisor: page ownership, stage-2 tables, transitions, guests on KVM or an AArch64 interpreter.",
        version: PVM.version,
        subcommands: [BootCommand.self, ModelCommand.self, TraceCommand.self, InspectCommand.self, FuzzCommand.self, CheckCommand.self, TestCommand.self,
                      BenchCommand.self]
    )

    /// What `pvm --version` prints (the project's release; docs/benchmarks.md dates figures).
    static let version = "pvm 0.13.0 (EL2 model with mainline and Android pKVM ABIs; KVM x86-64 and AArch64 interpreter backends)"
}
