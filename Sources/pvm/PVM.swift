import ArgumentParser

/// The `pvm` command: a pKVM/Gunyah-style protected-VM hypervisor emulator.
@main
struct PVM: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pvm",
        abstract: "Emulate a pKVM-style protected-VM hypervisor: page ownership, stage-2 tables, transitions, guests on KVM.",
        subcommands: [BootCommand.self, ModelCommand.self, TraceCommand.self, InspectCommand.self, FuzzCommand.self, CheckCommand.self,
                      BenchCommand.self]
    )
}
