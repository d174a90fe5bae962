import ArgumentParser

/// The `pvm` command: a pKVM/Gunyah-style protected-VM hypervisor emulator.
@main
struct PVM: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pvm",
        abstract: "Emulate a pKVM-style protected-VM hypervisor: page ownership, stage-2 tables, transitions.",
        subcommands: [ModelCommand.self, BenchCommand.self]
    )
}
